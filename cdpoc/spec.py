"""Typed declarations: one frozen dataclass per resource kind, whose Ref fields are the graph's edges.

A spec says what one resource should be. Where it needs another resource (the VPC a subnet lives in,
the target group a fleet registers with) it holds a Ref to it, and the graph's dependency edges are
read from those Refs, so they cannot be forgotten or drift from what the handler uses. Ordering that
AWS needs without a reference (release an address before detaching the internet gateway) is declared
as `after` on the Resource, with a comment saying why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from cdpoc.model import Change, Observed, Resource


@dataclass(frozen=True)
class Ref:
    """Another declared resource, by its logical key: its physical id, or one of its observed attributes."""

    key: str
    attr: str = ""  # "" means the physical id (Observed.id)

    def value(self, deps: Mapping[str, Observed | None]) -> str | None:
        """What the reference stands for now; None while the resource (or that attribute) does not exist."""
        found = deps.get(self.key)
        if found is None:
            return None
        if not self.attr:
            return found.id
        return str(found.attrs.get(self.attr, "")) or None

    def need(self, deps: Mapping[str, Observed | None]) -> str:
        """value(), where the executor guarantees the dependency exists (create, update)."""
        resolved = self.value(deps)
        if resolved is None:
            raise KeyError(f"{self.key}{'.' + self.attr if self.attr else ''} is not available yet")
        return resolved

    def shown(self, deps: Mapping[str, Observed | None]) -> str:
        """For a plan: the value, or what it will be once the resource exists."""
        return self.value(deps) or f"({self.key} to be created)"


class Spec:
    """Base of every kind's spec (each a frozen dataclass).

    kind: the handler's kind. force_new: the fields AWS cannot change in place (terraform's ForceNew);
    a difference there is a conflict the plan refuses, never an update.
    """

    kind: ClassVar[str] = ""
    force_new: ClassVar[frozenset[str]] = frozenset()


def refs(value: Any) -> Iterator[Ref]:
    """Every Ref inside a spec: its fields, nested specs and dataclasses, sequences and mapping values."""
    if isinstance(value, Ref):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from refs(getattr(value, item.name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from refs(item)
    elif isinstance(value, (tuple, list, frozenset, set)):
        for item in value:
            yield from refs(item)


def edges(spec: Spec, after: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The keys a resource depends on: those its spec references, then the ordering-only ones."""
    keys = [ref.key for ref in refs(spec)]
    return tuple(dict.fromkeys([*keys, *after]))


def shown(value: Any) -> str:
    """A desired or observed value as a plan shows it."""
    if value is None or value == "":
        return "(none)"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in sorted(value.items(), key=str)) + "}"
    if isinstance(value, (tuple, list, frozenset, set)):
        items = sorted(value, key=str) if isinstance(value, (frozenset, set)) else value
        return "[" + ", ".join(shown(v) for v in items) + "]"
    return str(value)


def field_change(spec: Spec | type[Spec], field: str, old: Any, new: Any, text: str = "") -> Change:
    """One field that differs, old → new; not in place when the kind lists the field in force_new."""
    return Change(
        text or f"{field}: {shown(old)} → {shown(new)}",
        in_place=field not in spec.force_new,
        field=field,
        old=old,
        new=new,
    )


def field_changes(spec: Spec | type[Spec], have: Mapping[str, Any], want: Mapping[str, Any]) -> list[Change]:
    """A change for each field of `want` whose value differs from `have`'s, in `want`'s order."""
    return [field_change(spec, name, have.get(name), value) for name, value in want.items() if have.get(name) != value]


def declare(key: str, name: str, spec: Spec, after: tuple[str, ...] = ()) -> Resource:
    """The Resource for a spec: its kind from the spec's type, its edges from the spec's Refs plus `after`
    (ordering-only edges AWS needs; say why where you declare them)."""
    if not spec.kind:
        raise TypeError(f"{type(spec).__name__} declares no kind")
    return Resource(key, spec.kind, name, edges(spec, after), spec)


S = TypeVar("S", bound=Spec)


def spec_of(res: Resource, spec_type: type[S]) -> S:
    """The resource's spec as the type its handler reads (the registry checked it when the graph was built)."""
    if not isinstance(res.spec, spec_type):
        raise TypeError(f"{res.key}: expected a {spec_type.__name__}, got {type(res.spec).__name__}")
    return res.spec


@runtime_checkable
class HoldsData(Protocol):
    """A spec of user data that `down --keep-data` keeps (the uploads bucket, the MongoDB passwords)."""

    keep_data: bool


def keeps_data(res: Resource) -> bool:
    """Whether `down --keep-data` keeps this declared resource."""
    return isinstance(res.spec, HoldsData) and res.spec.keep_data


def entry_field(name: str, entry: str) -> str:
    """The Change.field of one entry of a collection or mapping field: `routes[0.0.0.0/0]`."""
    return f"{name}[{entry}]"


def entry_of(change: Change | str, name: str) -> str | None:
    """The entry a change of `name[entry]` is about (a Change or its field); None for another field."""
    field = change if isinstance(change, str) else change.field
    prefix = f"{name}["
    return field[len(prefix) : -1] if field.startswith(prefix) and field.endswith("]") else None


def ref_change(
    spec: Spec | type[Spec], field: str, old: Any, want: Ref | None, deps: Mapping[str, Observed | None]
) -> Change:
    """A field whose desired value is a reference: `new` is the Ref (update resolves it once the resource
    exists); the plan shows its id, or that it is to be created."""
    wanted = want.shown(deps) if want is not None else shown(None)
    return field_change(spec, field, old, want, f"{field}: {shown(old)} → {wanted}")
