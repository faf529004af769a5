"""Faults a real account brings, injected through botocore's event hooks on a run's client factory:

- a lost answer: AWS runs the call, the reply never arrives, and botocore sends it again;
- a hard stop (SIGKILL, a lost laptop): after the Nth mutating call has taken effect, no further call
  reaches AWS, whatever the process goes on doing.

Both are registered on the boto3 session of a ClientFactory before any client exists, so every client
the run makes carries them.
"""

from __future__ import annotations

import threading
from typing import Any

from cdpoc.aws.clients import ClientFactory, is_mutating


class Killed(BaseException):
    """The process died here: raised for every AWS call after the kill point (not an Exception, so that
    no handler of cdpoc's can mistake it for an AWS answer and carry on)."""


def operation_name(model: Any) -> str:
    return f"{model.service_model.service_name}:{model.name}"


class LostAnswer:
    """One call takes effect and its answer is lost: botocore retries it at once, as after a connection
    reset. The call is the first of `operation` ("ec2:CreateVpc"), or else the `nth` mutating call."""

    def __init__(self, clients: ClientFactory, operation: str | None = None, nth: int | None = None) -> None:
        self.operation = operation
        self.nth = nth
        self.seen = 0
        self.lost = 0
        self.lost_call = ""
        self._lock = threading.Lock()
        clients.session.events.register_first("needs-retry", self._retry)

    def _retry(self, response: Any = None, operation: Any = None, caught_exception: Any = None, **_: Any) -> int | None:
        if operation is None or not is_mutating(operation.name):
            return None
        with self._lock:
            if self.lost or caught_exception is not None or response is None or response[0].status_code >= 300:
                return None
            self.seen += 1
            name = f"{operation.service_model.service_name}:{operation.name}"
            if name != self.operation and self.seen != self.nth:
                return None
            self.lost += 1
            self.lost_call = name
        return 0  # retry at once: the call took effect, the caller never heard


class KillAfter:
    """Every AWS call raises Killed once the run has made `calls` mutating calls, or once the first call
    of `operation` ("ec2:CreateVpc") has taken effect."""

    def __init__(self, clients: ClientFactory, calls: int | None = None, operation: str | None = None) -> None:
        self.limit = calls
        self.operation = operation
        self.done: list[str] = []
        self.killed = False
        self._lock = threading.Lock()
        clients.session.events.register("before-call", self._before)
        clients.session.events.register("after-call", self._after)

    def _before(self, model: Any, **_: Any) -> None:
        with self._lock:
            if self.killed:
                raise Killed(f"killed after {self.done[-1]}")

    def _after(self, model: Any, **_: Any) -> None:
        if not is_mutating(model.name):
            return
        with self._lock:
            self.done.append(operation_name(model))
            if self.done[-1] == self.operation or (self.limit is not None and len(self.done) >= self.limit):
                self.killed = True


class Recorder:
    """The mutating operations a run makes, in order (to choose kill points and lost answers from)."""

    def __init__(self, clients: ClientFactory) -> None:
        self.operations: list[str] = []
        self._lock = threading.Lock()
        clients.session.events.register("after-call", self._after)

    def _after(self, model: Any, **_: Any) -> None:
        if is_mutating(model.name):
            with self._lock:
                self.operations.append(operation_name(model))
