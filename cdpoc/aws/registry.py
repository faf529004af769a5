"""Every resource kind cdpoc manages, mapped to its handler."""

from __future__ import annotations

from cdpoc.aws import compute, iam, loadbalancing, network, notify, security, site, storage
from cdpoc.aws.base import Handler

MODULES = (network, security, iam, storage, notify, loadbalancing, compute, site)

HANDLERS: dict[str, Handler] = {h.kind: h for module in MODULES for h in module.HANDLERS}
