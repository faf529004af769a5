"""Give moto's Response classes the operations they lack, or replace one whose behaviour is wrong.

moto dispatches a request to the method of the service's Response class named by the operation's
snake_case name. Each patch records whether moto's own class defined the method before we touched it, so
tests can fail loudly when the pinned moto changes: an operation we add that moto now implements (drop
ours), or one we replace that moto no longer has (re-check ours).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cdpoc.sandbox.simulation import SIMULATION


@dataclass(frozen=True)
class Patch:
    response_class: type
    name: str
    replaces: bool  # True: moto has the operation and we change it; False: moto lacks it
    moto_had_it: bool  # whether moto's class defined the method before any patch


PATCHES: list[Patch] = []


def _apply(response_class: type, function: Callable[..., Any], replaces: bool) -> None:
    name = function.__name__
    if any(p.response_class is response_class and p.name == name for p in PATCHES):
        return
    moto_had_it = name in vars(response_class)
    original = vars(response_class).get(name)

    @functools.wraps(function)
    def locked(self: Any) -> Any:
        with SIMULATION.lock:
            if replaces:
                return function(self, original)
            return function(self)

    setattr(response_class, name, locked)
    PATCHES.append(Patch(response_class, name, replaces, moto_had_it))


def add_operations(response_class: type, *functions: Callable[[Any], Any]) -> None:
    """Operations moto lacks: `def operation_name(self) -> str | ActionResult`."""
    for function in functions:
        _apply(response_class, function, replaces=False)


def replace_operations(response_class: type, *functions: Callable[[Any, Any], Any]) -> None:
    """Operations moto has but gets wrong: `def operation_name(self, original)`; original(self) is moto's."""
    for function in functions:
        _apply(response_class, function, replaces=True)
