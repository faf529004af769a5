"""Operations moto lacks, added to its service Response classes (moto dispatches by snake_case name).

Each addition is shaped like the botocore service model; tests/test_sandbox*.py pin them. The list
grows as commands need operations moto 5.2.5 does not implement.
"""

from __future__ import annotations

from collections.abc import Callable

ADDITIONS: list[Callable[[], None]] = []
_installed = False


def install() -> None:
    """Apply every addition once per process (before any request is served)."""
    global _installed
    if _installed:
        return
    for add in ADDITIONS:
        add()
    _installed = True
