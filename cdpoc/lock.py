"""The stack lock: one mutating command (up, down, push-app) per stack at a time, across machines.

Terraform's state lock is the model. The lock is a record in AWS itself (an SSM parameter, see
cdpoc/aws/lock.py) created only if absent, so two runs on two laptops or CI runners cannot both hold
it. The holder renews a heartbeat in it; a lock whose heartbeat is older than EXPIRY, or whose
process on this very machine is gone, is stale and the next run takes it over, saying so. Read-only
commands (plan, status, logs) never take it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cdpoc.aws import lock as stored_lock
from cdpoc.aws.account import caller_identity
from cdpoc.aws.run import AwsRun
from cdpoc.errors import CdpocError, ConflictError, Declined, Locked
from cdpoc.ui import Ui

# A holder renews its heartbeat this often; one silent for EXPIRY is taken to be dead (its machine
# crashed, its CI job was killed). Generous: a holder stalled by a slow network must not lose it.
HEARTBEAT_SECONDS = 60.0
EXPIRY = timedelta(minutes=15)
# Rounds of create -> read -> (stale: remove) before giving up: each round loses only to a live holder
# or to another run taking over the same stale lock at the same moment.
ATTEMPTS = 3
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no USER variable and no passwd entry (some containers)
        return "unknown"


def _boot_id() -> str:
    """Tells apart two machines that share a host name (CI containers often do); "" where unknown."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a pid reused since counts as alive: safe side)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, it is another user's
        return True
    return True


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "unknown"
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        when = "in the future: clocks differ"
    elif seconds < 120:
        when = f"{seconds} s ago"
    elif seconds < 7200:
        when = f"{seconds // 60} min ago"
    else:
        when = f"{seconds // 3600} h ago"
    return f"{_stamp(moment)} ({when})"


@dataclass(frozen=True)
class Holder:
    """The lock record: who holds the lock, where, for which command, since when, last heartbeat."""

    who: str  # user@host
    arn: str  # the caller's identity from STS, "" when it could not be read
    host: str
    boot: str
    pid: int
    command: str
    run_id: str
    since: str  # UTC ISO 8601
    heartbeat: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The record, or None when it is not one of ours (edited by hand, another version's)."""
        try:
            data = json.loads(text)
            return cls(**{name: type(getattr(EMPTY, name))(data[name]) for name in asdict(EMPTY)})
        except (ValueError, TypeError, KeyError):
            return None

    def time(self, field: str) -> datetime | None:
        try:
            moment = datetime.fromisoformat(getattr(self, field))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def describe(self, now: datetime) -> str:
        identity = f" ({self.arn})" if self.arn else ""
        return (
            f"`cdpoc {self.command}` run by {self.who}{identity} as pid {self.pid} on {self.host}, "
            f"since {_ago(self.time('since'), now)}, last heartbeat {_ago(self.time('heartbeat'), now)}"
        )


EMPTY = Holder("", "", "", "", 0, "", "", "", "")


def _shown(stored: stored_lock.Stored, now: datetime) -> str:
    holder = Holder.parse(stored.value)
    return holder.describe(now) if holder else f"an unreadable lock record: {stored.value[:200]!r}"


class StackLock:
    """`with StackLock(run, ui, "up"):` holds the stack's lock for the block, or raises Locked (exit 4).

    Released at the end of the block, also on error and Ctrl-C. A daemon thread renews the heartbeat
    every `heartbeat_every` seconds, writing only after reading the record back and seeing its own run id.
    """

    def __init__(
        self,
        run: AwsRun,
        ui: Ui,
        command: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        expiry: timedelta = EXPIRY,
        heartbeat_every: float = HEARTBEAT_SECONDS,
        alive: Callable[[int], bool] = pid_alive,
        host: str | None = None,
        boot: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.run = run
        self.ui = ui
        self.command = command
        self.clock = clock
        self.expiry = expiry
        self.heartbeat_every = heartbeat_every
        self.alive = alive
        self.host = host if host is not None else socket.gethostname()
        self.boot = boot if boot is not None else _boot_id()
        self.pid = pid if pid is not None else os.getpid()
        self.name = stored_lock.lock_name(run.stack)
        self.record: Holder | None = None  # ours, while we hold the lock
        self.lost = False
        self._stop = threading.Event()
        # A heartbeat's read-then-rewrite and the release's read-then-delete never interleave: a rewrite
        # after the delete would bring the lock back.
        self._writing = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- the policy --------------------------------------------------------------------------------

    def stale_reason(self, holder: Holder) -> str:
        """Why `holder`'s lock may be taken over, or "" while it must be respected."""
        if holder.host == self.host and holder.boot == self.boot and not self.alive(holder.pid):
            return f"its process {holder.pid} on this machine ({self.host}) is no longer running"
        heartbeat = holder.time("heartbeat")
        if heartbeat is not None and self.clock() - heartbeat > self.expiry:
            minutes = int(self.expiry.total_seconds() // 60)
            return f"its last heartbeat is older than {minutes} min"
        return ""

    def mine(self) -> Holder:
        try:
            arn = caller_identity(self.run)["Arn"]
        except CdpocError:  # the identity only decorates the record; the lock works without it
            arn = ""
        now = _stamp(self.clock())
        who = f"{_user()}@{self.host}"
        return Holder(who, arn, self.host, self.boot, self.pid, self.command, uuid.uuid4().hex, now, now)

    # --- taking and releasing ----------------------------------------------------------------------

    def acquire(self) -> None:
        with self.run.clients.bookkeeping():
            mine = self.mine()
            for _ in range(ATTEMPTS):
                if stored_lock.create(self.run, mine.to_json()):
                    self.record = mine
                    break
                stored = stored_lock.read(self.run)
                if stored is None:
                    continue  # released between our create and our read: try again
                holder = Holder.parse(stored.value)
                if holder is not None and holder.run_id == mine.run_id:
                    # Our own create took effect but its answer was lost: botocore's retry was refused.
                    self.record = mine
                    break
                reason = self.stale_reason(holder) if holder is not None else ""
                if not reason:
                    raise self._held_by(stored)
                self.ui.warn(
                    f"taking over the lock of stack {self.run.stack}: it is stale ({reason}); "
                    f"it was held by {_shown(stored, self.clock())}"
                )
                self._remove_if_unchanged(stored)
            else:
                raise Locked(
                    f"could not take the lock of stack {self.run.stack}: other runs took it first, {ATTEMPTS} times",
                    "Another cdpoc run is starting on this stack: wait for it and try again.",
                )
        self._thread = threading.Thread(target=self._beat_until_stopped, name="cdpoc-lock-heartbeat", daemon=True)
        self._thread.start()

    def _remove_if_unchanged(self, stale: stored_lock.Stored) -> None:
        """Remove the stale lock, unless it changed since we judged it.

        The residual race: SSM has no conditional delete (no "delete if version is N"). Between this
        read and the delete another run may take over the same stale lock and write its own record,
        which we would then delete; both runs would go on to create the lock and only one succeeds, but
        the first may already be working. The window is two API calls wide and opens only on a stale
        lock that two runs try to take over at the same moment.
        """
        current = stored_lock.read(self.run)
        if current is not None and current.version == stale.version:
            stored_lock.delete(self.run)

    def _held_by(self, stored: stored_lock.Stored) -> Locked:
        minutes = int(self.expiry.total_seconds() // 60)
        return Locked(
            f"stack {self.run.stack} in {self.run.region} is locked by another cdpoc run: "
            f"{_shown(stored, self.clock())} (lock {self.name})",
            f"Wait for that run to end, then run the command again. A lock its run left behind expires {minutes} "
            f"min after its last heartbeat (at once on the machine that ran it); if you are sure no run is going "
            f"on, `cdpoc unlock` removes it now.",
        )

    def release(self) -> None:
        """Remove the lock if it is still ours; say so when it no longer is."""
        self._stop.set()
        if self.record is None:
            return
        with self._writing, self.run.clients.bookkeeping():
            stored = stored_lock.read(self.run)
            holder = Holder.parse(stored.value) if stored is not None else None
            if holder is not None and holder.run_id == self.record.run_id:
                stored_lock.delete(self.run)
            elif stored is None:
                self.ui.warn(f"the lock of stack {self.run.stack} was already gone (removed by `cdpoc unlock`?)")
            else:
                self.ui.warn(
                    f"the lock of stack {self.run.stack} was taken over while this run held it, by "
                    f"{_shown(stored, self.clock())}: left in place"
                )
        self.record = None

    # --- the heartbeat -----------------------------------------------------------------------------

    def beat(self) -> bool:
        """Renew our heartbeat if the lock is still ours; False, and no write at all, when it is not."""
        with self._writing, self.run.clients.bookkeeping():
            if self._stop.is_set() or self.record is None:
                return False
            stored = stored_lock.read(self.run)
            holder = Holder.parse(stored.value) if stored is not None else None
            if holder is None or holder.run_id != self.record.run_id:
                self.lost = True
                owner = f"it is now held by {_shown(stored, self.clock())}" if stored else "it was removed"
                self.ui.warn(
                    f"this run no longer holds the lock of stack {self.run.stack} ({owner}); another run may "
                    "change the stack at the same time"
                )
                return False
            renewed = replace(self.record, heartbeat=_stamp(self.clock()))
            stored_lock.rewrite(self.run, renewed.to_json())
            self.record = renewed
            return True

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            try:
                if not self.beat():
                    return
            except Exception as exc:  # raised in a thread, it would print a traceback and stop the heartbeat
                message = exc.message if isinstance(exc, CdpocError) else f"{type(exc).__name__}: {exc}"
                self.ui.warn(f"could not renew the lock of stack {self.run.stack} ({message}); will try again")

    # --- with ----------------------------------------------------------------------------------------

    def __enter__(self) -> StackLock:
        try:
            self.acquire()
        except BaseException:
            if self.record is not None:  # interrupted right after taking it: do not leave it behind
                self._release_quietly(failing=True)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._release_quietly(failing=exc is not None)

    def _release_quietly(self, failing: bool) -> None:
        """Release; a failure to release never hides the command's own outcome, it only warns."""
        try:
            self.release()
        except (Exception, KeyboardInterrupt) as problem:
            message = problem.message if isinstance(problem, CdpocError) else type(problem).__name__
            self.ui.warn(
                f"the lock of stack {self.run.stack} was not released ({message}): the next run on this machine "
                "takes it over; elsewhere `cdpoc unlock` removes it"
            )
            if isinstance(problem, KeyboardInterrupt) and not failing:
                raise


def unlock(run: AwsRun, ui: Ui, *, yes: bool, confirm: Callable[[str], bool]) -> bool:
    """`cdpoc unlock`: remove the stack's lock whoever holds it, after showing the holder. False if none."""
    name = stored_lock.lock_name(run.stack)
    with run.clients.bookkeeping():
        stored = stored_lock.read(run)
        if stored is None:
            ui.say(f"Stack {run.stack} in {run.region} is not locked ({name} does not exist): nothing to remove.")
            return False
        shown = _shown(stored, utc_now())
        ui.say(f"Stack {run.stack} in {run.region} is locked by {shown}.")
        if not yes:
            if not confirm("Remove this lock? Only do so if that run is no longer going on."):
                raise Declined("unlock cancelled: the lock was left in place.")
            current = stored_lock.read(run)
            if current is not None and current.version != stored.version:
                raise ConflictError(
                    f"the lock changed while you answered: it is now held by {_shown(current, utc_now())}",
                    "Nothing was removed; run `cdpoc unlock` again to see the new holder.",
                )
        removed = stored_lock.delete(run)
    ui.say(f"Removed the lock {name}, held by {shown}." if removed else f"The lock {name} was already gone.")
    return removed
