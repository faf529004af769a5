"""One run's AWS state: the clients, the stack's tags, deterministic client tokens, memoised listings, waits."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import botocore.exceptions

from cdpoc.aws.clients import ClientFactory
from cdpoc.aws.errors import aws_errors, caused_by
from cdpoc.errors import AwsError, Cancelled, WaitTimeout
from cdpoc.model import Resource

STACK_TAG = "cdpoc:stack"


# How many deterministic token generations create_with_token tries before giving up.
TOKEN_GENERATIONS = 4


COMPONENT_TAG = "cdpoc:component"


T = TypeVar("T")


@dataclass
class Waits:
    """Time limits (seconds) for things that become ready, or go away, asynchronously."""

    default: float = 300.0
    nat_gateway: float = 900.0
    # How long a fresh IAM role or instance profile may be refused by other services (AWS says up to ~2 min).
    iam_propagation: float = 120.0
    # Auto Scaling instances InService and healthy in the target group (boot, user data, health checks),
    # or gone after a forced delete.
    fleet: float = 900.0
    # An ALB becoming active, or its network interfaces being released after deletion: often minutes.
    load_balancer: float = 900.0
    poll_initial: float = 2.0
    poll_max: float = 15.0


@dataclass
class AwsRun:
    """Everything an AWS module needs for one run: clients, the stack's identity and tags, waits."""

    clients: ClientFactory
    stack: str
    zones: tuple[str, ...] = ()
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)
    waits: Waits = field(default_factory=Waits)
    sleep: Callable[[float], None] | None = None
    _memo: dict[str, Any] = field(default_factory=dict)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock)
    _memo_key_locks: dict[str, threading.RLock] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return self.clients.client(service)

    @property
    def region(self) -> str:
        return self.clients.region

    def tags(self, component: str, name: str = "") -> list[dict[str, str]]:
        tags = {**self.extra_tags, STACK_TAG: self.stack, COMPONENT_TAG: component}
        if name:
            tags["Name"] = name
        return tag_list(tags)

    def ec2_tag_specs(self, resource_type: str, res: Resource) -> list[dict[str, Any]]:
        return [{"ResourceType": resource_type, "Tags": self.tags(res.key, res.name)}]

    def stack_filter(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{STACK_TAG}", "Values": [self.stack]}]

    def component_filter(self, res: Resource) -> list[dict[str, Any]]:
        """EC2 filters for the resources tagged as this stack's `res` (a filter finds, the tags prove)."""
        return [*self.stack_filter(), {"Name": f"tag:{COMPONENT_TAG}", "Values": [res.key]}]

    def client_token(self, res: Resource, *parts: str) -> str:
        """A deterministic idempotency token; parts (e.g. the parent's id) make it new after a teardown."""
        digest = hashlib.sha256("/".join((self.stack, res.key, *parts)).encode()).hexdigest()
        return f"cdpoc-{digest[:58]}"

    def create_with_token(
        self, res: Resource, parts: Sequence[str], create: Callable[[str], T], dead_id: Callable[[T], str | None]
    ) -> T:
        """create(token) with a deterministic token, so a retried or re-run create cannot duplicate.

        AWS answers a token it has seen with its first result for hours, also after that resource was
        deleted (a `down` stopped halfway leaves the parent whose id is in the token). dead_id says when
        the answer is such a deleted resource; then the create runs again with a token salted by its id.
        A token already used with other parameters (IdempotentParameterMismatch: the resource was made,
        then deleted by a `down` that stopped before its parent, and the settings or a dependency changed
        since) moves on to the next generation of tokens, each as deterministic as the first.
        """
        for generation in range(TOKEN_GENERATIONS):
            salt = (f"generation {generation}",) if generation else ()
            try:
                result = create(self.client_token(res, *parts, *salt))
            except AwsError as exc:
                if caused_by(exc, "IdempotentParameterMismatch"):
                    continue
                raise
            gone = dead_id(result)
            if gone:
                result = create(self.client_token(res, *parts, *salt, gone))
            return result
        raise AwsError(
            f"creating {res.key}: AWS refused {TOKEN_GENERATIONS} idempotency tokens as used with other parameters",
            "Run `cdpoc up` again in a few hours (AWS forgets tokens), or `cdpoc down` and `cdpoc up`.",
        )

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Cache one discovery call per run (e.g. all of the stack's subnets), shared by all handlers.

        Computed once even when several threads ask at the same time (the planner discovers in parallel):
        the others wait for that key's answer instead of making the same calls again."""
        with self._memo_lock:
            if key in self._memo:
                return self._memo[key]
            key_lock = self._memo_key_locks.setdefault(key, threading.RLock())
        with key_lock:
            with self._memo_lock:
                if key in self._memo:
                    return self._memo[key]
            value = compute()
            with self._memo_lock:
                self._memo[key] = value
                return value

    def memoized(self, key: str) -> Any | None:
        """What memo(key, ...) computed in this run, without computing it; None if nothing did."""
        with self._memo_lock:
            return self._memo.get(key)

    def forget(self) -> None:
        with self._memo_lock:
            self._memo.clear()
            self._memo_key_locks.clear()

    def pause(self, seconds: float) -> None:
        """Sleep, but wake and stop at once when the run is cancelled."""
        if self.sleep is not None:
            self.sleep(seconds)
            if self.cancel.is_set():
                raise Cancelled("interrupted")
            return
        if self.cancel.wait(seconds):
            raise Cancelled("interrupted")

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("interrupted")

    def wait_until(self, what: str, ready: Callable[[], bool], timeout: float | None = None) -> None:
        """Poll `ready` with jittered, growing pauses until it is true, or raise WaitTimeout naming `what`."""
        limit = self.waits.default if timeout is None else timeout
        deadline = time.monotonic() + limit
        delay = self.waits.poll_initial
        while True:
            self.check_cancelled()
            if ready():
                return
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"timed out after {limit:.0f}s waiting for {what}",
                    "Re-run the command to keep waiting; it resumes where it stopped.",
                )
            self.pause(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.8, 1.2))
            delay = min(delay * 1.5, self.waits.poll_max)

    def wait_with(
        self,
        service: str,
        waiter_name: str,
        what: str,
        timeout: float | None = None,
        passing_states: bool = False,
        **params: Any,
    ) -> None:
        """Use botocore's waiter one attempt at a time, so that our timeout and Ctrl-C apply to it.

        A NotFound answer means "not yet": EC2 is eventually consistent, and a resource created a moment
        ago may not be visible (botocore's vpc_available and subnet_available waiters would fail on it).
        passing_states: the waiter's failure states are steps on the way, not failures (instance_terminated
        calls `pending` and `stopping` failures; an instance being terminated passes through them).
        """
        waiter = self.client(service).get_waiter(waiter_name)

        def ready() -> bool:
            try:
                waiter.wait(**params, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
            except botocore.exceptions.WaiterError as exc:
                reason = str(exc.kwargs.get("reason", ""))
                code = str((exc.last_response or {}).get("Error", {}).get("Code", ""))
                if reason.startswith("Max attempts exceeded") or code.endswith(".NotFound"):
                    return False
                if passing_states and "terminal failure" in reason and not code:
                    return False
                raise AwsError(f"{what} failed: {reason}") from None
            return True

        self.wait_until(what, ready, timeout)


def tag_map(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or ()}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags the way most AWS APIs take them, [{"Key": ..., "Value": ...}]: tag_map's inverse."""
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`, for the batch APIs (DeleteObjects, GetParameters, ...)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def paginate(
    run: AwsRun, operation: str, key: str, *, service: str = "ec2", what: str = "", **params: Any
) -> list[dict[str, Any]]:
    """Every item under `key` on every page of a listing (EC2's unless `service` names another client).

    `what` says what a failure was doing; by default "listing the stack's <key>".
    """
    items: list[dict[str, Any]] = []
    with aws_errors(what or f"listing the stack's {key}"):
        for page in run.client(service).get_paginator(operation).paginate(**params):
            items.extend(page[key])
    return items
