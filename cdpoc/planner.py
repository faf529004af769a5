"""Read-only: find what of the stack exists (by tags and deterministic names) and diff it -> Plan."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cdpoc.graph import Graph
from cdpoc.model import Action, Observed, Plan, Step, not_ours_change

if TYPE_CHECKING:
    from cdpoc.aws.handler import Handler


def discover(run: Any, graph: Graph, handlers: Mapping[str, Handler]) -> dict[str, Observed | None]:
    """What exists of each declared resource. Handlers share one listing per kind through run.memo."""
    run.forget()
    return {res.key: handlers[res.kind].find(run, res) for res in graph.order()}


def make_plan(run: Any, graph: Graph, handlers: Mapping[str, Handler]) -> Plan:
    found = discover(run, graph, handlers)
    steps = []
    for res in graph.order():
        existing = found[res.key]
        if existing is None:
            notes = tuple(handlers[res.kind].missing(run, res, found))
            action = Action.CONFLICT if any(not n.in_place for n in notes) else Action.CREATE
            steps.append(Step(res, action, None, notes))
            continue
        changes = tuple(handlers[res.kind].changes(run, res, existing, found))
        if existing.owner != run.stack and all(c.in_place for c in changes):
            changes = (not_ours_change(handlers[res.kind].label, res.name, existing.owner), *changes)
        if any(not c.in_place for c in changes):
            action = Action.CONFLICT
        elif changes:
            action = Action.UPDATE
        else:
            action = Action.NONE
        steps.append(Step(res, action, existing, changes))
    return Plan(tuple(steps), extras(run, graph, handlers))


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
