"""How the program ends on Ctrl-C: always the "interrupted" message and exit code 130, never a traceback,
never death by the signal, whenever the Ctrl-C (or the second, or the third) arrives.

The first Ctrl-C raises KeyboardInterrupt as usual (the executor turns its own first one into a
cancel, see cdpoc/executor.py); from then on the program is on its way out, and any further Ctrl-C
leaves at once. Only the standard library is imported here: it is installed before the slow imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

from cdpoc.errors import EXIT_INTERRUPTED

MESSAGE = "error: interrupted\nhint: Re-run the same command to resume; it picks up what exists.\n"


class _State:
    interrupted = False  # a KeyboardInterrupt was raised: the program is leaving
    announced = False  # the "interrupted" message was printed
    finishing = False  # the command is over; only the interpreter's shutdown is left


_state = _State()


def install() -> None:
    """Take over SIGINT for the whole run (main thread only; the CLI's entry point calls it first)."""
    signal.signal(signal.SIGINT, _on_sigint)


def announced() -> None:
    """The CLI printed the interrupted message: leaving now must not print it twice."""
    _state.announced = True


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if _state.interrupted or _state.finishing:
        leave_now()
    _state.interrupted = True
    raise KeyboardInterrupt


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        # closed, a broken pipe, or a write that this signal handler interrupted (RuntimeError: reentrant call)
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            stream.flush()


def leave_now() -> NoReturn:
    """Exit 130 at once, from a signal handler too.

    os._exit, not sys.exit: a Ctrl-C while the program is already leaving means "do not wait". Worker
    threads blocked in an AWS call (botocore's read timeout is a minute, with retries) would otherwise
    keep the interpreter waiting at shutdown, and another Ctrl-C there ends it with a traceback or by the
    signal. Output is flushed first; the message goes straight to the file descriptor, because the
    handler may have interrupted a write to sys.stderr (re-entering it raises RuntimeError).
    """
    _flush()
    try:
        if sys.stdout.isatty():
            os.write(sys.stdout.fileno(), b"\x1b[?25h")  # the live display hides the cursor: give it back
        if not _state.announced:
            os.write(sys.stderr.fileno(), MESSAGE.encode())
    except (OSError, ValueError):
        pass
    os._exit(EXIT_INTERRUPTED)


def _abandoned_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]


def run(main: Callable[[], object]) -> NoReturn:
    """Run the CLI (which ends with SystemExit) under this policy and exit with its code."""
    install()
    try:
        main()
        code: str | int | None = 0
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:  # one that came before any command could catch it (while importing)
        code = EXIT_INTERRUPTED
    finish(0 if code is None else code)


def finish(code: str | int) -> NoReturn:
    """Exit with the command's code; nothing a Ctrl-C does from here on may turn it into a traceback."""
    _state.finishing = True
    if code == EXIT_INTERRUPTED:
        # Always os._exit (see leave_now): the interpreter's shutdown waits for work a second Ctrl-C
        # abandoned, and once it has reset SIGINT to its default a further Ctrl-C kills the process by
        # the signal. An interrupted run has nothing left to tidy that its `with` blocks did not.
        if not _state.announced:
            _flush()
            sys.stderr.write(MESSAGE)
            announced()
        leave_now()
    if not _abandoned_threads():
        # The command is over and its outcome known: a late Ctrl-C during the (short) shutdown must not
        # end it by the signal instead of its exit code.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
