"""Runs a dependency graph of work in parallel: a node starts as soon as everything it needs is done.

It knows nothing of AWS: `up` gives it create/update steps, `down` gives it deletes with the edges
reversed. It reports each node's life as Events (for the live progress) from worker threads.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from types import FrameType

from cdpoc.errors import Cancelled, CdpocError


class State(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Event:
    key: str
    state: State
    detail: str = ""
    elapsed: float = 0.0


@dataclass
class Outcome:
    done: dict[str, str] = field(default_factory=dict)
    failed: dict[str, BaseException] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.cancelled


class NoChange(Exception):
    """Raised by work that had nothing to do; the node counts as done and shows as unchanged."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


def run_graph(
    needs: Mapping[str, set[str]],
    work: Callable[[str], str],
    *,
    parallelism: int = 8,
    cancel: threading.Event | None = None,
    on_event: Callable[[Event], None] = lambda event: None,
) -> Outcome:
    """Run work(node) for every node once all of needs[node] are done; independent nodes overlap.

    A failed node's dependents are skipped, everything else goes on (so a re-run has less to do).
    Ctrl-C sets `cancel`: nothing new starts, running work stops at its next safe point (its current
    AWS call completes), and the outcome says cancelled.
    """
    cancel = cancel or threading.Event()
    pending = {node: set(deps) & needs.keys() for node, deps in needs.items()}
    outcome = Outcome()
    running: dict[Future[str], tuple[str, float]] = {}
    lock = threading.Lock()

    def emit(event: Event) -> None:
        with lock:
            on_event(event)

    for node in pending:
        emit(Event(node, State.WAITING))

    def call(node: str, started: float) -> str:
        if cancel.is_set():
            raise Cancelled("interrupted")
        emit(Event(node, State.RUNNING))
        return work(node)

    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="cdpoc")
    try:
        with _ctrl_c_sets(cancel):
            _walk(pending, running, outcome, pool, cancel, call, emit)
    except BaseException:
        # A second Ctrl-C (KeyboardInterrupt) stops hard: stop waiting for work in flight, which would
        # block here (and then in the pool's exit) until its AWS call returns; what has not started never
        # will. Running work sees `cancel` at its next safe point; cdpoc.interrupts leaves without it.
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if cancel.is_set():
        outcome.cancelled = True
        outcome.skipped.extend(pending)
    return outcome


def _walk(
    pending: dict[str, set[str]],
    running: dict[Future[str], tuple[str, float]],
    outcome: Outcome,
    pool: ThreadPoolExecutor,
    cancel: threading.Event,
    call: Callable[[str, float], str],
    emit: Callable[[Event], None],
) -> None:
    """Start every node whose needs are done, settle whatever finishes, until nothing is left to run."""

    def blocked(node: str) -> bool:
        return any(dep in outcome.failed or dep in outcome.skipped for dep in pending[node])

    while pending or running:
        for node in [n for n in pending if blocked(n)]:
            del pending[node]
            outcome.skipped.append(node)
            emit(Event(node, State.SKIPPED, "a dependency failed"))
        if not cancel.is_set():
            for node in [n for n, deps in pending.items() if not deps]:
                del pending[node]
                started = time.monotonic()
                running[pool.submit(call, node, started)] = (node, started)
        if not running:
            break
        finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in finished:
            node, started = running.pop(future)
            _settle(node, future, time.monotonic() - started, outcome, emit)
            for deps in pending.values():
                if node in outcome.done:
                    deps.discard(node)


@contextlib.contextmanager
def _ctrl_c_sets(cancel: threading.Event) -> Iterator[None]:
    """The first Ctrl-C asks running work to stop at its next safe point; a second one stops hard."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if not cancel.is_set():
            cancel.set()
            return
        # The second one is handled as if the executor were not there (cdpoc.interrupts' handler, when
        # the CLI installed it, or Python's own KeyboardInterrupt).
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _settle(node: str, future: Future[str], elapsed: float, outcome: Outcome, emit: Callable[[Event], None]) -> None:
    error = future.exception()
    if error is None:
        outcome.done[node] = future.result()
        emit(Event(node, State.DONE, outcome.done[node], elapsed))
    elif isinstance(error, NoChange):
        outcome.done[node] = error.detail
        emit(Event(node, State.UNCHANGED, error.detail, elapsed))
    elif isinstance(error, Cancelled):
        outcome.skipped.append(node)
        emit(Event(node, State.SKIPPED, "interrupted", elapsed))
    else:
        outcome.failed[node] = error
        message = error.message if isinstance(error, CdpocError) else f"{type(error).__name__}: {error}"
        emit(Event(node, State.FAILED, message, elapsed))
