"""Read-only: find what of the stack exists (by tags and deterministic names) and diff it -> Plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from cdpoc.graph import Graph
from cdpoc.model import Action, Observed, Plan, Resource, Step, not_ours_change

if TYPE_CHECKING:
    from cdpoc.aws.handler import Handler


# Reads the planner makes at once: discovery (one task per kind) and the diffs (one per resource) only read,
# and a no-op `up` or `plan` is otherwise one call after another (issue 14). As many as `up`'s parallelism.
PLAN_WORKERS = 8

T = TypeVar("T")
R = TypeVar("R")


def in_parallel(work: Callable[[T], R], items: Sequence[T], workers: int = PLAN_WORKERS) -> list[R]:
    """work(item) for every item, several at a time, answers in the items' order; the first error raised."""
    if len(items) <= 1:
        return [work(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cdpoc-plan")
    try:
        return list(pool.map(work, items))
    finally:
        # On an error or Ctrl-C, start nothing more (calls under way finish on their own threads).
        pool.shutdown(wait=False, cancel_futures=True)


def discover(run: Any, graph: Graph, handlers: Mapping[str, Handler]) -> dict[str, Observed | None]:
    """What exists of each declared resource. Handlers share one listing per kind through run.memo; the
    kinds are looked up in parallel."""
    run.forget()
    by_kind: dict[str, list[Resource]] = {}
    for res in graph.order():
        by_kind.setdefault(res.kind, []).append(res)

    def find_kind(resources: list[Resource]) -> list[tuple[str, Observed | None]]:
        return [(res.key, handlers[res.kind].find(run, res)) for res in resources]

    found = dict(pair for pairs in in_parallel(find_kind, list(by_kind.values())) for pair in pairs)
    return {res.key: found[res.key] for res in graph.order()}


def make_plan(run: Any, graph: Graph, handlers: Mapping[str, Handler]) -> Plan:
    found = discover(run, graph, handlers)

    def step(res: Resource) -> Step:
        existing = found[res.key]
        if existing is None:
            notes = tuple(handlers[res.kind].missing(run, res, found))
            return Step(res, Action.CONFLICT if any(not n.in_place for n in notes) else Action.CREATE, None, notes)
        changes = tuple(handlers[res.kind].changes(run, res, existing, found))
        if existing.owner != run.stack and all(c.in_place for c in changes):
            changes = (not_ours_change(handlers[res.kind].label, res.name, existing.owner), *changes)
        if any(not c.in_place for c in changes):
            action = Action.CONFLICT
        elif changes:
            action = Action.UPDATE
        else:
            action = Action.NONE
        return Step(res, action, existing, changes)

    return Plan(tuple(in_parallel(step, graph.order())), extras(run, graph, handlers))


def extras(run: Any, graph: Graph, handlers: Mapping[str, Handler]) -> tuple[Observed, ...]:
    """The stack's resources, by their own tags, that it does not declare, among the kinds discovery
    listed anyway (no listing is made for this alone)."""
    found: list[Observed] = []
    for handler in handlers.values():
        listed = run.memoized(f"scan:{handler.kind}") or {}
        found.extend(
            obs for key, obs in sorted(listed.items()) if key not in graph.resources and obs.owner == run.stack
        )
    return tuple(found)
