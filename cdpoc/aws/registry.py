"""Every resource kind cdpoc manages, mapped to its handler."""

from __future__ import annotations

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
from cdpoc.aws.base import Handler

MODULES = (network, security, iam, storage, notify, loadbalancing, compute, site, source, deploy, pipeline, snapshots)

HANDLERS: dict[str, Handler] = {h.kind: h for module in MODULES for h in module.HANDLERS}
