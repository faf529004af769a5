"""The values the engine passes around: a desired Resource, what was Observed, and a Plan of Steps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Resource:
    """One resource the stack wants: a logical key, its kind, its AWS name and its typed spec.

    The spec references other resources with Refs; depends_on is derived from them (cdpoc.spec.declare)
    plus the ordering-only edges AWS needs.
    """

    key: str
    kind: str
    name: str
    depends_on: tuple[str, ...] = ()
    # A cdpoc.spec.Spec (typed as object: the spec module builds on this one); handlers read it through
    # cdpoc.spec.spec_of(), which checks its type.
    spec: object | None = None


@dataclass(frozen=True)
class Observed:
    """A resource as found in AWS: its physical id and the attributes dependents or diffs need."""

    key: str
    kind: str
    id: str
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        """The stack named by the cdpoc:stack tag read from the resource itself; "" when it has none.

        Only this proves a resource is a stack's: never its name, nor the filter of the listing that found it.
        """
        return str(self.attrs.get("stack") or "")


def owner_text(owner: str) -> str:
    """Who a resource belongs to, from its cdpoc:stack tag ("" for none), in words."""
    return f"stack {owner}" if owner else "nothing cdpoc manages (no cdpoc:stack tag)"


def not_ours_change(what: str, name: str, owner: str) -> Change:
    """The conflict for a resource that holds a name the stack wants but whose tags do not prove it ours."""
    return Change(
        f"{what} {name} exists and belongs to {owner_text(owner)}: cdpoc will not take it over", False, foreign=True
    )


@dataclass(frozen=True)
class Change:
    """One difference between desired and observed; in_place=False means AWS cannot change it."""

    text: str
    in_place: bool = True
    # The resource is not this stack's: no command of this stack may change or delete it.
    foreign: bool = False
    # The spec field that differs, and its observed and desired values ("" for a note or a conflict that
    # is not one field's). `up` applies exactly these: a handler's update() acts on the plan's changes.
    field: str = ""
    old: Any = None
    new: Any = None


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    NONE = "exists"
    CONFLICT = "differs"


@dataclass(frozen=True)
class Step:
    resource: Resource
    action: Action
    found: Observed | None = None
    changes: tuple[Change, ...] = ()


def extra_key(component: str, physical_id: str) -> str:
    """The key a scan gives a second resource of one component (a create whose answer was lost and that
    AWS ran twice, a crash between create and lookup), so that it is reported and removed, never dropped."""
    return f"{component}#{physical_id}"


# The component prefix of an instance an Auto Scaling group launched and left behind (its group is gone).
ORPHAN_PREFIX = "orphan."


def is_extra(key: str) -> bool:
    return "#" in key


def duplicated_component(key: str) -> str:
    """The component an extra_key() is a second resource of."""
    return key.split("#", 1)[0]


@dataclass(frozen=True)
class Plan:
    """What `up` would do, one step per resource in dependency order.

    extras: resources of the stack (by their tags) that it does not declare: a second resource of a
    component, an instance its Auto Scaling group left behind, a component the config no longer wants.
    """

    steps: tuple[Step, ...]
    extras: tuple[Observed, ...] = ()

    def by_action(self, action: Action) -> list[Step]:
        return [s for s in self.steps if s.action is action]

    @property
    def has_work(self) -> bool:
        return any(s.action in (Action.CREATE, Action.UPDATE) for s in self.steps)

    @property
    def conflicts(self) -> list[Step]:
        return self.by_action(Action.CONFLICT)

    def counts(self) -> dict[str, int]:
        return {a.value: len(self.by_action(a)) for a in Action}
