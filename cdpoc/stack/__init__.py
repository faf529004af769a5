"""The resources of one cdpoc stack, declared once from the settings (one module per area), as a graph."""

from __future__ import annotations

from cdpoc.config import Settings
from cdpoc.graph import Graph
from cdpoc.stack import cicd, compute, iam, loadbalancing, network, notify, security, site, storage
from cdpoc.stack.names import StackNames

AREAS = (network, security, iam, storage, notify, loadbalancing, compute, site, cicd)


def build(settings: Settings, zones: tuple[str, ...], account: str) -> Graph:
    """The whole stack's graph; `zones` are the two resolved availability zones."""
    names = StackNames(settings, zones, account)
    return Graph.of(resource for area in AREAS for resource in area.declare(names))
