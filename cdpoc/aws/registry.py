"""Every resource kind cdpoc manages, mapped to its handler."""

from __future__ import annotations

from cdpoc.aws import network
from cdpoc.aws.base import Handler

MODULES = (network,)

HANDLERS: dict[str, Handler] = {h.kind: h for module in MODULES for h in module.HANDLERS}
