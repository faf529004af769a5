"""`down`: delete everything of the stack in reverse dependency order, then prove nothing is left.

Deletion is a sweep against an empty wanted set: every resource the stack declares, plus anything
else of a known kind tagged with the stack (e.g. a second NAT gateway after nat_gateways went 2 -> 1).
NotFound counts as deleted; DependencyViolation is retried within a time budget per resource.

Data kept by `down --keep-data` (tagged cdpoc:kept=true) is neither deleted by another --keep-data
nor a leftover; a plain `down` deletes it with the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cdpoc.apply import raise_for
from cdpoc.aws.account import arn_type
from cdpoc.errors import WaitTimeout
from cdpoc.executor import Event, run_graph
from cdpoc.graph import Graph
from cdpoc.model import Observed
from cdpoc.planner import discover
from cdpoc.spec import keeps_data

if TYPE_CHECKING:
    from cdpoc.aws.handler import Handler

DEPENDENCY_BUDGET = 600.0


@dataclass(frozen=True)
class Doomed:
    """A resource found in AWS that `down` will delete."""

    found: Observed
    ancestors: frozenset[str]  # logical keys it depends on (empty for resources outside the graph)


@dataclass(frozen=True)
class Survey:
    """What `down` found: the stack's own resources, and same-named ones it must leave alone."""

    doomed: dict[str, Doomed]
    not_ours: dict[str, Observed]


def survey(run: Any, graph: Graph, handlers: Mapping[str, Handler]) -> Survey:
    """The stack's declared resources that exist, plus tagged extras of any kind cdpoc knows (a second
    resource of one component, an orphaned instance, a resource no longer declared).

    Only what the resource's own cdpoc:stack tag proves to be this stack's is doomed: a declared name
    can be held by another stack or by someone's hand-made resource, which `down` must never touch.
    """
    found = discover(run, graph, handlers)
    doomed: dict[str, Doomed] = {}
    not_ours: dict[str, Observed] = {}
    for key, obs in found.items():
        if obs is None:
            continue
        if obs.owner == run.stack:
            doomed[key] = Doomed(obs, frozenset(graph.ancestors(key)))
        else:
            not_ours[key] = obs
    for handler in handlers.values():
        for key, obs in run.memo(f"scan:{handler.kind}", lambda h=handler: h.scan(run)).items():
            if obs.owner == run.stack and key not in not_ours:
                doomed.setdefault(key, Doomed(obs, frozenset()))
    return Survey(doomed, not_ours)


def find_everything(run: Any, graph: Graph, handlers: Mapping[str, Handler]) -> dict[str, Doomed]:
    """survey()'s doomed: everything of the stack that exists."""
    return survey(run, graph, handlers).doomed


def is_kept(item: Doomed) -> bool:
    """Data an earlier `down --keep-data` kept: the handler read cdpoc:kept=true from the resource."""
    return bool(item.found.attrs.get("kept"))


def spare_data(
    graph: Graph, doomed: Mapping[str, Doomed], keep_data: bool
) -> tuple[dict[str, Doomed], dict[str, Doomed]]:
    """(what `down` deletes, what it keeps): with keep_data, the declared data (cdpoc.spec.keeps_data) and
    what was kept before stay; without, everything goes."""
    if not keep_data:
        return dict(doomed), {}

    def keeps(key: str, item: Doomed) -> bool:
        return is_kept(item) or (key in graph.resources and keeps_data(graph[key]))

    return (
        {key: item for key, item in doomed.items() if not keeps(key, item)},
        {key: item for key, item in doomed.items() if keeps(key, item)},
    )


def deletion_needs(graph: Graph, doomed: Mapping[str, Doomed]) -> dict[str, set[str]]:
    """For each resource, what must be deleted before it: everything that depends on it."""
    kind_ancestors: dict[str, set[str]] = {}
    for res in graph.resources.values():
        kind_ancestors.setdefault(res.kind, set()).update(graph[a].kind for a in graph.ancestors(res.key))
    needs: dict[str, set[str]] = {key: set() for key in doomed}
    for key, item in doomed.items():
        for other_key, other in doomed.items():
            if other_key == key:
                continue
            if key in graph.resources and other_key in graph.resources:
                if key in other.ancestors:
                    needs[key].add(other_key)
            elif item.found.kind != other.found.kind and item.found.kind in kind_ancestors.get(other.found.kind, set()):
                needs[key].add(other_key)
    return needs


def sweep(
    run: Any,
    graph: Graph,
    handlers: Mapping[str, Handler],
    doomed: Mapping[str, Doomed],
    *,
    parallelism: int = 8,
    on_event: Callable[[Event], None] = lambda event: None,
    budget: float = DEPENDENCY_BUDGET,
) -> dict[str, str]:
    """Delete everything in `doomed`; returns {key: what was deleted} for the report."""
    from cdpoc.aws.errors import DependencyViolation

    def work(key: str) -> str:
        found = doomed[key].found
        handler = handlers[found.kind]
        deadline = time.monotonic() + budget
        delay = run.waits.poll_initial
        while True:
            try:
                handler.delete(run, found)
                return f"deleted {handler.label} {handler.describe(found)}"
            except DependencyViolation as exc:
                if time.monotonic() >= deadline:
                    raise WaitTimeout(
                        f"{exc.message} (still refused after {budget:.0f}s)",
                        "Something outside cdpoc may use it; remove that and re-run `cdpoc down`.",
                    ) from exc
                run.pause(delay)
                delay = min(delay * 1.5, run.waits.poll_max)

    outcome = run_graph(
        deletion_needs(graph, doomed), work, parallelism=parallelism, cancel=run.cancel, on_event=on_event
    )
    raise_for(outcome, "down")
    return outcome.done


def leftovers(
    run: Any,
    graph: Graph,
    handlers: Mapping[str, Handler],
    tagged: Callable[[], Iterable[str]],
    spare: Callable[[Doomed], bool] = lambda item: False,
) -> list[str]:
    """Everything still there after `down`: handler scans (state-aware) plus the tagging API for other types.

    `spare`: what is there on purpose (is_kept: the data `down --keep-data` kept) is not a leftover.
    """
    remaining = {key: item for key, item in find_everything(run, graph, handlers).items() if not spare(item)}
    names = [
        f"{handlers[d.found.kind].label} {handlers[d.found.kind].describe(d.found)} ({key})"
        for key, d in sorted(remaining.items())
    ]
    covered = {t for h in handlers.values() for t in h.arn_types}
    # The tagging API keeps listing deleted NAT gateways and terminated instances; covered types are
    # judged by the handlers' state-aware scans instead.
    names.extend(arn for arn in tagged() if arn_type(arn) not in covered)
    return names
