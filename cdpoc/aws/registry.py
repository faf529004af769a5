"""Every resource kind cdpoc manages, mapped to its handler; checked against a graph when it is built."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cdpoc.aws import (
    compute,
    deploy,
    iam,
    loadbalancing,
    network,
    notify,
    pipeline,
    security,
    site,
    snapshots,
    source,
    storage,
)
from cdpoc.aws.handler import Handler
from cdpoc.graph import Graph, GraphError

MODULES = (network, security, iam, storage, notify, loadbalancing, compute, site, source, deploy, pipeline, snapshots)


def by_kind(handlers: Iterable[Handler]) -> dict[str, Handler]:
    """{kind: handler}; a kind claimed twice is a GraphError (one would silently replace the other)."""
    registry: dict[str, Handler] = {}
    for handler in handlers:
        if not handler.kind:
            raise GraphError(f"{type(handler).__name__} declares no kind")
        if handler.kind in registry:
            raise GraphError(
                f"kind {handler.kind!r} is handled twice: {type(registry[handler.kind]).__name__} and "
                f"{type(handler).__name__}"
            )
        registry[handler.kind] = handler
    return registry


def check(graph: Graph, handlers: Mapping[str, Handler]) -> None:
    """Every declared resource has a handler for its kind, and its spec is the type that handler reads:
    a GraphError when the graph is built, never a KeyError in the middle of a run."""
    for res in graph.order():
        handler = handlers.get(res.kind)
        if handler is None:
            raise GraphError(f"{res.key} is of kind {res.kind!r}, which no handler manages")
        wanted = handler.spec_type
        if wanted is not None and not isinstance(res.spec, wanted):
            raise GraphError(
                f"{res.key}: the {res.kind} handler reads a {wanted.__name__}, not {type(res.spec).__name__}"
            )


HANDLERS: dict[str, Handler] = by_kind(h for module in MODULES for h in module.HANDLERS)
