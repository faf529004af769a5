"""The one owner of the terminal: live views on a TTY, plain lines otherwise, errors on stderr.

Every region redrawn in place (up/down progress, `status --watch`, `push-app --wait`) is a Ui.live view:
no other module builds a rich Live, so there is one place that decides when the terminal is live.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderableType, RenderHook, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.text import Text

from cdpoc import __version__
from cdpoc.errors import CdpocError
from cdpoc.executor import Event, State
from cdpoc.printable import printable
from cdpoc.render import JSON_SCHEMA, ProgressRow, progress_line, progress_table


class _Printable:
    """A renderable whose text reaches the terminal with its control characters escaped (cdpoc.printable);
    rich's own control segments (cursor moves of live views) pass untouched."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self.renderable, options):
            yield segment if segment.control else Segment(printable(segment.text), segment.style)


class _EscapeControlCharacters(RenderHook):
    """On every console the Ui owns: whatever is printed or shown live, AWS strings included (tags, messages,
    log lines, S3 keys), cannot steer the operator's terminal."""

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [_Printable(renderable) for renderable in renderables]


class Ui:
    def __init__(self, console: Console | None = None, err: Console | None = None, json_mode: bool = False) -> None:
        self.console = console or Console(highlight=False)
        self.err = err or Console(stderr=True, highlight=False)
        for owned in (self.console, self.err):
            owned.push_render_hook(_EscapeControlCharacters())
        self.json_mode = json_mode
        # --quiet: only errors, warnings and machine output; --verbose: every AWS call on stderr.
        self.quiet = False
        self.verbose = False
        # `--json` on up, down and push-app: the command whose JSON lines stdout carries ("" when none), and
        # what its final summary line reports besides the exit code (cdpoc.render.JSON_SCHEMA).
        self.stream = ""
        self.results: dict[str, object] = {}
        self._stream_started = 0.0
        self._stream_lock = threading.Lock()  # executor threads report steps concurrently

    def start_stream(self, command: str) -> None:
        """From now on stdout is JSON lines: this version line first, one line per message and step change,
        and a summary line at the end (finish_stream)."""
        self.json_mode = True
        self.stream = command
        self._stream_started = time.monotonic()
        self.event("version", cdpoc=__version__, schema=JSON_SCHEMA, command=command)

    def event(self, kind: str, **fields: object) -> None:
        """One JSON line of the stream (nothing when no stream was started)."""
        if self.stream:
            stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
            with self._stream_lock:
                self.out(json.dumps({"type": kind, "time": stamp, **fields}, default=str))

    def report(self, **fields: object) -> None:
        """Facts for the stream's summary line (outputs, counts, cost...); ignored without a stream."""
        self.results.update(fields)

    def finish_stream(self, exit_code: int, error: CdpocError | None = None) -> None:
        """The stream's last line: the command, its exit code, what it reported, the error if it failed."""
        if not self.stream:
            return
        failure = {"error": {"message": error.message, "hint": error.hint}} if error is not None else {}
        seconds = round(time.monotonic() - self._stream_started, 1)
        self.event("summary", command=self.stream, exit_code=exit_code, seconds=seconds, **self.results, **failure)
        self.stream = ""

    def configure(self, *, quiet: bool = False, verbose: bool = False, no_color: bool = False) -> None:
        """Apply the global output switches (NO_COLOR in the environment works too, through rich)."""
        self.quiet = self.quiet or quiet
        self.verbose = self.verbose or verbose
        if no_color:
            self.console.no_color = self.err.no_color = True

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal and not self.json_mode and not self.quiet

    def print(self, *items: RenderableType | str, style: str | None = None) -> None:
        """Print text as-is (no markup: it may hold AWS strings) or a renderable."""
        if self.json_mode or self.quiet:
            return
        for item in items:
            if isinstance(item, str):
                self.console.print(Text(item, style=style or ""), soft_wrap=True)
            else:
                self.console.print(item)

    def say(self, message: str, style: str = "") -> None:
        if self.stream:
            self.event("message", text=message)
            return
        self.print(message, style=style)

    def out(self, text: str) -> None:
        """Machine-readable output (JSON), printed even in json mode, never styled or wrapped."""
        self.console.file.write(text + "\n")
        self.console.file.flush()

    def error(self, exc: CdpocError) -> None:
        # soft_wrap: paths and ids in messages must stay whole for copy and paste.
        self.err.print(Text(f"error: {exc.message}", style="bold red"), soft_wrap=True)
        if exc.hint:
            self.err.print(Text(f"hint: {exc.hint}", style="yellow"), soft_wrap=True)

    def bug(self, trace: str) -> None:
        """An unexpected exception: the traceback, and a line saying it is cdpoc's fault and what to report."""
        self.err.print(Text(trace.rstrip()), soft_wrap=True)
        self.err.print(
            Text(
                "error: this is a bug in cdpoc, not something you did. Please report it with the lines above "
                f"and the command you ran (cdpoc {__version__}).",
                style="bold red",
            ),
            soft_wrap=True,
        )

    def aws_call(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        """One AWS call, for --verbose: on stderr, so that stdout (and --json) stays as it is."""
        if self.verbose:
            self.err.print(Text(f"aws: {service} {operation} {outcome} {seconds:.2f}s", style="dim"), soft_wrap=True)

    def warn(self, message: str) -> None:
        self.event("warning", text=message)
        self.err.print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)

    @contextmanager
    def live(self, renderable: RenderableType | None = None, *, refresh_per_second: float = 0) -> Iterator[LiveView]:
        """A region of the terminal redrawn in place while the block runs; it stays on screen afterwards.

        Off a terminal (or in JSON mode) the view is inactive and shows nothing: the caller prints lines
        instead. refresh_per_second > 0 also redraws on its own, for a renderable that changes by itself
        (a clock); otherwise only update() redraws.
        """
        if not self.interactive:
            yield LiveView(None)
            return
        auto = refresh_per_second > 0
        # Live draws through its own render hook, after the one escaping control characters: wrapped here.
        with Live(
            _Printable(renderable) if renderable is not None else None,
            console=self.console,
            auto_refresh=auto,
            refresh_per_second=refresh_per_second if auto else 4,
            transient=False,
        ) as live:
            yield LiveView(live)

    @contextmanager
    def progress(self, title: str, labels: Mapping[str, str]) -> Iterator[Progress]:
        progress = Progress(self, title, labels)
        if not self.interactive and not self.json_mode and not self.quiet:
            self.console.print(Text(title, style="bold"))
        # The table shows each running step's clock: it redraws on its own.
        with self.live(progress, refresh_per_second=8):
            yield progress


class LiveView:
    """What Ui.live hands out: update() redraws the region with a new renderable; inactive off a terminal."""

    def __init__(self, live: Live | None) -> None:
        self._live = live

    @property
    def active(self) -> bool:
        return self._live is not None

    def update(self, renderable: RenderableType) -> None:
        if self._live is not None:
            self._live.update(_Printable(renderable), refresh=True)


class Progress:
    """Receives executor events (from worker threads) and shows them live or as lines."""

    def __init__(self, ui: Ui, title: str, labels: Mapping[str, str]) -> None:
        self.ui = ui
        self.title = title
        self.labels = dict(labels)
        self.rows: dict[str, ProgressRow] = {}
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def __call__(self, event: Event) -> None:
        now = time.monotonic()
        with self.lock:
            row = self.rows.setdefault(event.key, ProgressRow(event.key, self.labels.get(event.key, "")))
            row.state = event.state
            row.detail = event.detail
            if event.state is State.RUNNING:
                row.started = now
            elif event.state is not State.WAITING:
                row.elapsed = event.elapsed
        if event.state is not State.WAITING:
            self.ui.event(
                "step",
                key=event.key,
                label=row.label,
                state=event.state.value,
                detail=event.detail,
                seconds=round(event.elapsed, 1) if event.elapsed is not None else None,
            )
        quiet = self.ui.json_mode or self.ui.quiet
        if not self.ui.interactive and not quiet and event.state not in (State.WAITING,):
            self.ui.console.print(Text(progress_line(row, now)), soft_wrap=True)

    def __rich__(self) -> RenderableType:
        with self.lock:
            rows = list(self.rows.values())
        now = time.monotonic()
        height = self.ui.console.size.height
        return progress_table(rows, now, self.title, height=height, seconds=now - self.started)
