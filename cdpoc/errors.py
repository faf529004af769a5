"""The one error type cdpoc raises for anything a user should read, and the exit codes it maps to."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LEFTOVERS = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130


class CdpocError(Exception):
    """A failure with a message for the user, a hint on what to do, and the exit code it ends with."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class Declined(CdpocError):
    """The user answered no to a question (delete these? remove the lock?): nothing was done. Exit 1 and a
    plain line, not an error, as Terraform does when a destroy is not confirmed."""


class ConfigError(CdpocError):
    """Bad configuration or usage: nothing was created."""

    exit_code = EXIT_USAGE


class AccessError(CdpocError):
    """Credentials, profile, region or endpoint cannot be used: nothing was created."""

    exit_code = EXIT_USAGE


class AwsError(CdpocError):
    """An AWS call failed in a way cdpoc does not recover from."""


class WaitTimeout(CdpocError):
    """Something did not become ready (or go away) within its time limit."""


class Cancelled(CdpocError):
    """The run was interrupted (Ctrl-C); work in flight stopped at the next safe point."""

    exit_code = EXIT_INTERRUPTED


class ConflictError(CdpocError):
    """A resource exists but cannot be brought to the desired state in place, or is not ours."""

    exit_code = EXIT_USAGE


class LeftoversFound(CdpocError):
    """`down` finished but the scan still finds resources tagged with the stack."""

    exit_code = EXIT_LEFTOVERS


class Locked(CdpocError):
    """Another run holds the stack lock: nothing was done."""

    exit_code = EXIT_LOCKED
