"""The stack's resources as a dependency graph: validation, topological order, reverse edges."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cdpoc.errors import CdpocError
from cdpoc.model import Resource


class GraphError(CdpocError):
    """The declared resources do not form a DAG (a bug in cdpoc, never a user error)."""


@dataclass(frozen=True)
class Graph:
    resources: Mapping[str, Resource]

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Graph:
        by_key: dict[str, Resource] = {}
        for res in resources:
            if res.key in by_key:
                raise GraphError(f"resource {res.key!r} is declared twice")
            by_key[res.key] = res
        for res in by_key.values():
            missing = [d for d in res.depends_on if d not in by_key]
            if missing:
                raise GraphError(f"resource {res.key!r} depends on undeclared {', '.join(missing)}")
        graph = cls(by_key)
        graph.order()  # raises on a cycle
        return graph

    def __getitem__(self, key: str) -> Resource:
        return self.resources[key]

    def __len__(self) -> int:
        return len(self.resources)

    def deps(self) -> dict[str, set[str]]:
        return {k: set(r.depends_on) for k, r in self.resources.items()}

    def order(self) -> list[Resource]:
        """Dependencies before dependents; ties keep declaration order (stable, readable output)."""
        return [self.resources[k] for k in topological(self.deps())]

    def ancestors(self, key: str) -> set[str]:
        """Everything `key` depends on, directly or through others."""
        seen: set[str] = set()
        stack = list(self.resources[key].depends_on)
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(self.resources[dep].depends_on)
        return seen


def topological(deps: Mapping[str, set[str]]) -> list[str]:
    """Kahn's algorithm over {node: its prerequisites}; raises GraphError naming a cycle."""
    remaining = {k: set(v) & deps.keys() for k, v in deps.items()}
    order: list[str] = []
    while remaining:
        ready = [k for k, v in remaining.items() if not v]
        if not ready:
            raise GraphError(f"dependency cycle among: {', '.join(sorted(remaining))}")
        for key in ready:
            order.append(key)
            del remaining[key]
        for v in remaining.values():
            v.difference_update(ready)
    return order
