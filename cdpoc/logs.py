"""`cdpoc logs`: the stack's instance logs from CloudWatch Logs, once or followed.

The CloudWatch agent on each instance writes to the stack's log group (StackNames.log_group), one
stream per instance and source: "<instance id>/<source>", source one of app, deploy, cloud-init, agent.

    cdpoc logs [--follow] [--since 10m] [--instance ID] [--source app|deploy|cloud-init|agent] [--filter P] [--json]

--since takes 30s, 10m, 2h or 1d (default 10m). --filter is a CloudWatch Logs filter pattern
(e.g. ERROR, or "\"connection refused\""). --follow keeps polling every 2 s from the newest event
seen (re-reading the last 30 s so that events the agent delivers late are not lost; each event is
printed once, by its eventId) until Ctrl-C. --json prints one object per line:

    {"time": "2025-01-01T12:00:00.123Z", "timestamp": 1735732800123, "instance": "i-0abc...",
     "source": "app", "stream": "i-0abc.../app", "message": "...", "event_id": "..."}

Exit codes: 0 ok (also when Ctrl-C ends --follow: that is how it is meant to stop, nothing is left
undone); 2 bad option; 3 the log group does not exist (the stack is not up); 1 any other failure.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.text import Text

from cdpoc.aws import logs_read
from cdpoc.aws.observe import Throttled
from cdpoc.errors import EXIT_OK, ConfigError
from cdpoc.printable import printable

if TYPE_CHECKING:
    from cdpoc.context import Context
    from cdpoc.ui import Ui

SOURCES = ("app", "deploy", "cloud-init", "agent")
SINCE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# CloudWatch keeps events for at most the group's retention; FilterLogEvents has no use for more.
MAX_SINCE_SECONDS = 3653 * 86400
FOLLOW_POLL_SECONDS = 2.0
MAX_POLL_SECONDS = 60.0
# The agent batches events for a few seconds, and instances' clocks differ: an event may arrive after
# newer ones were read. Each poll re-reads this much before the newest event seen.
LATE_ARRIVAL_MS = 30_000
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


def parse_since(text: str) -> int:
    """'30s', '10m', '2h', '1d' -> seconds."""
    match = SINCE.match(text)
    if not match:
        raise ConfigError(f"--since {text!r}: expected a number and a unit, like 30s, 10m, 2h or 1d")
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds <= 0 or seconds > MAX_SINCE_SECONDS:
        raise ConfigError(f"--since {text!r}: must be more than 0 and at most 10 years")
    return seconds


@dataclass(frozen=True)
class LogRequest:
    """What the user asked for, validated before any AWS call."""

    since_seconds: int = 600
    instance: str = ""
    source: str = ""
    pattern: str = ""
    follow: bool = False

    @classmethod
    def parse(
        cls,
        since: str = "10m",
        instance: str | None = None,
        source: str | None = None,
        pattern: str | None = None,
        follow: bool = False,
    ) -> LogRequest:
        if source and source not in SOURCES:
            raise ConfigError(f"--source {source!r}: expected one of {', '.join(SOURCES)}")
        if instance and not INSTANCE_ID.match(instance):
            raise ConfigError(f"--instance {instance!r}: expected an EC2 instance id like i-0123456789abcdef0")
        return cls(parse_since(since), instance or "", source or "", pattern or "", follow)


@dataclass(frozen=True)
class LogLine:
    timestamp: int  # milliseconds since the epoch, as CloudWatch gives it
    stream: str
    message: str
    event_id: str

    @property
    def instance(self) -> str:
        return self.stream.split("/", 1)[0]

    @property
    def source(self) -> str:
        return self.stream.split("/", 1)[1] if "/" in self.stream else ""

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp / 1000, UTC)


def log_line(event: dict[str, Any]) -> LogLine:
    return LogLine(
        timestamp=int(event.get("timestamp", 0)),
        stream=str(event.get("logStreamName", "")),
        message=str(event.get("message", "")).rstrip("\r\n"),
        event_id=str(event.get("eventId", "")),
    )


def format_line(line: LogLine) -> str:
    stamp = line.time.strftime("%Y-%m-%d %H:%M:%S") + f".{line.timestamp % 1000:03d}Z"
    # Written raw to stdout (Ui.out): one event per line, whatever its message holds (cdpoc.printable).
    return printable(f"{stamp} {line.instance} {line.source:10} {line.message}", one_line=True)


def line_dict(line: LogLine) -> dict[str, Any]:
    return {
        "time": line.time.strftime("%Y-%m-%dT%H:%M:%S") + f".{line.timestamp % 1000:03d}Z",
        "timestamp": line.timestamp,
        "instance": line.instance,
        "source": line.source,
        "stream": line.stream,
        "message": line.message,
        "event_id": line.event_id,
    }


@dataclass(frozen=True)
class StreamChoice:
    """How to narrow FilterLogEvents: stream names or a prefix (never both), or a suffix checked here."""

    streams: tuple[str, ...] = ()
    prefix: str = ""
    suffix: str = ""
    nothing: bool = False  # the asked-for streams do not exist (yet)

    def keeps(self, stream: str) -> bool:
        """Checked on every event too: cheap, and right where an endpoint ignores the prefix (moto 5.2.5 does)."""
        if self.streams and stream not in self.streams:
            return False
        return stream.startswith(self.prefix) and stream.endswith(self.suffix)


def choose_streams(request: LogRequest, list_streams: Callable[[], list[str]]) -> StreamChoice:
    if request.instance:
        # A prefix, not logStreamNames: a stream that does not exist yet is no error with a prefix.
        prefix = f"{request.instance}/" + (request.source or "")
        return StreamChoice(prefix=prefix)
    if not request.source:
        return StreamChoice()
    names = [n for n in list_streams() if n.endswith(f"/{request.source}")]
    if not names:
        return StreamChoice(nothing=True)
    if len(names) <= logs_read.MAX_STREAM_NAMES:
        return StreamChoice(streams=tuple(sorted(names)))
    # Over the API's 100 names: read the whole group and keep the source's streams.
    return StreamChoice(suffix=f"/{request.source}")


def read_lines(ctx: Context, group: str, request: LogRequest, start_ms: int) -> list[LogLine]:
    choice = choose_streams(request, lambda: logs_read.stream_names(ctx.run, group))
    if choice.nothing:
        return []
    events = logs_read.events(
        ctx.run, group, start_ms=start_ms, streams=choice.streams, prefix=choice.prefix, pattern=request.pattern
    )
    lines = (log_line(e) for e in events)
    kept = [line for line in lines if choice.keeps(line.stream)]
    return sorted(kept, key=lambda line: (line.timestamp, line.event_id))


class Tail:
    """Remembers which events were printed, so that overlapping reads print each event once."""

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.seen: dict[str, int] = {}

    def fresh(self, lines: Iterable[LogLine]) -> list[LogLine]:
        new = [line for line in lines if line.event_id not in self.seen]
        for line in new:
            self.seen[line.event_id] = line.timestamp
        return new

    def advance(self) -> None:
        """Next read starts a little before the newest event seen; forget what is older than that."""
        if self.seen:
            self.start_ms = max(self.start_ms, max(self.seen.values()) - LATE_ARRIVAL_MS)
        self.seen = {k: ts for k, ts in self.seen.items() if ts >= self.start_ms}


def show(
    ctx: Context,
    request: LogRequest,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> int:
    # The log group's name follows from the settings: reading logs needs no zone or account look-up.
    group = ctx.names.log_group
    tail = Tail(int((clock() - request.since_seconds) * 1000))
    ui = ctx.ui
    printed = _emit(ui, tail.fresh(read_lines(ctx, group, request, tail.start_ms)))
    if not request.follow:
        if not printed and not ui.json_mode:
            _info(ui, f"No log events in {group} in the last {_since_text(request.since_seconds)}{_what(request)}.")
        return EXIT_OK
    _info(ui, f"Following {group}{_what(request)}; Ctrl-C to stop.")
    interval = FOLLOW_POLL_SECONDS
    try:
        while True:
            tail.advance()
            sleep(interval)
            try:
                _emit(ui, tail.fresh(read_lines(ctx, group, request, tail.start_ms)))
                interval = FOLLOW_POLL_SECONDS
            except Throttled:
                interval = min(interval * 2, MAX_POLL_SECONDS)
                ui.warn(f"CloudWatch Logs is throttling requests: next read in {interval:.0f}s")
    except KeyboardInterrupt:
        return EXIT_OK


def _emit(ui: Ui, lines: list[LogLine]) -> int:
    for line in lines:
        ui.out(json.dumps(line_dict(line)) if ui.json_mode else format_line(line))
    return len(lines)


def _info(ui: Ui, message: str) -> None:
    """Remarks go to stderr, so that stdout holds only log lines (or JSON)."""
    ui.err.print(Text(message, style="dim"), soft_wrap=True)


def _since_text(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def _what(request: LogRequest) -> str:
    parts = []
    if request.instance:
        parts.append(f"instance {request.instance}")
    if request.source:
        parts.append(f"source {request.source}")
    if request.pattern:
        parts.append(f"filter {request.pattern!r}")
    return f" ({', '.join(parts)})" if parts else ""
