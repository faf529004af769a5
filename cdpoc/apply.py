"""`up`: execute a Plan with the parallel executor, creating and updating resources through handlers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cdpoc.errors import Cancelled, CdpocError, ConflictError
from cdpoc.executor import Event, NoChange, Outcome, run_graph
from cdpoc.model import Action, Observed, Plan

if TYPE_CHECKING:
    from cdpoc.aws.handler import Handler


class ApplyFailed(CdpocError):
    """Some steps failed; the rest that could be done is done, and a re-run resumes."""


def refuse_conflicts(plan: Plan) -> None:
    if not plan.conflicts:
        return
    lines = [
        f"{s.resource.key} ({s.resource.name}): {'; '.join(c.text for c in s.changes if not c.in_place)}"
        for s in plan.conflicts
    ]
    hints = []
    if any(c.foreign for s in plan.conflicts for c in s.changes):
        # Never suggest `down` here: it is this stack's down, and it leaves those resources alone anyway.
        hints.append(
            "Names held by resources that are not this stack's: set other names in the config (e.g. "
            "pipeline.repository, buckets.*) or choose another stack name; if they are yours and unused, "
            "delete them yourself. cdpoc never changes or deletes them."
        )
    if any(not c.in_place and not c.foreign for s in plan.conflicts for c in s.changes):
        hints.append("Revert the other settings, or run `cdpoc down` and then `cdpoc up` to rebuild this stack.")
    raise ConflictError(
        "resources differ from the config in ways AWS cannot change in place, or cannot safely be made anew:\n  "
        + "\n  ".join(lines),
        " ".join(hints) + " Nothing was changed.",
    )


def apply_plan(
    run: Any,
    plan: Plan,
    handlers: Mapping[str, Handler],
    *,
    parallelism: int = 8,
    on_event: Callable[[Event], None] = lambda event: None,
) -> dict[str, Observed]:
    """Create what is missing and update what differs; returns every resource as it now is."""
    refuse_conflicts(plan)
    steps = {s.resource.key: s for s in plan.steps}
    results: dict[str, Observed] = {}
    lock = threading.Lock()

    def work(key: str) -> str:
        step = steps[key]
        res = step.resource
        handler = handlers[res.kind]
        if step.action is Action.NONE:
            assert step.found is not None
            with lock:
                results[key] = step.found
            raise NoChange(handler.describe(step.found))
        with lock:
            deps = {d: results[d] for d in res.depends_on}
        if step.action is Action.CREATE:
            done = handler.create(run, res, deps)
        else:
            assert step.found is not None
            done = handler.update(run, res, step.found, deps, step.changes)
        with lock:
            results[key] = done
        verb = "created" if step.action is Action.CREATE else "updated"
        return f"{verb} {handler.describe(done)}"

    needs = {key: set(step.resource.depends_on) for key, step in steps.items()}
    outcome = run_graph(needs, work, parallelism=parallelism, cancel=run.cancel, on_event=on_event)
    raise_for(outcome, "up")
    return results


def raise_for(outcome: Outcome, command: str) -> None:
    if outcome.cancelled:
        raise Cancelled(
            f"interrupted: {len(outcome.done)} step(s) finished, {len(outcome.skipped)} not started",
            f"Re-run `cdpoc {command}` to resume; it picks up what exists.",
        )
    if outcome.failed:
        lines = [f"{key}: {err.message if isinstance(err, CdpocError) else err}" for key, err in outcome.failed.items()]
        hints = [err.hint for err in outcome.failed.values() if isinstance(err, CdpocError) and err.hint]
        skipped = f"; {len(outcome.skipped)} step(s) skipped because of them" if outcome.skipped else ""
        raise ApplyFailed(
            f"{len(outcome.failed)} step(s) failed{skipped}:\n  " + "\n  ".join(lines),
            " ".join(dict.fromkeys(hints)) or f"Fix the cause and re-run `cdpoc {command}`; finished steps are kept.",
        )
