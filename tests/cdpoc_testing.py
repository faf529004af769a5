"""Helpers the tests import by name (conftest.py is not importable by name: tests/bundle has its own)."""

from __future__ import annotations

from rich.console import Console

from cdpoc.aws.base import Waits
from cdpoc.ui import Ui

FAST_WAITS = Waits(default=30.0, nat_gateway=30.0, poll_initial=0.01, poll_max=0.05)


def recording_ui() -> Ui:
    return Ui(
        console=Console(record=True, width=200, force_terminal=False), err=Console(record=True, width=200, stderr=True)
    )
