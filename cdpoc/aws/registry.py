"""Every resource kind cdpoc manages, mapped to its handler."""

from __future__ import annotations

from cdpoc.aws import network, security
from cdpoc.aws.base import Handler

MODULES = (network, security)

HANDLERS: dict[str, Handler] = {h.kind: h for module in MODULES for h in module.HANDLERS}
