"""The stack lock's AWS side: one SSM parameter per stack, created only when it does not exist.

The parameter lives outside the stack on purpose: its name is not under the stack's /cdpoc/<name>/
prefix and it carries `cdpoc:lock=<stack>`, never `cdpoc:stack`, so neither `down`'s sweep (which
deletes what is tagged with the stack) nor the leftover scan ever sees it. The policy (who may take
it, heartbeats, staleness) is in cdpoc/lock.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdpoc.aws.errors import aws_errors, call_or_none, caused_by, ignore_missing
from cdpoc.aws.run import AwsRun
from cdpoc.errors import AwsError

LOCK_PREFIX = "/cdpoc-locks/"
LOCK_TAG = "cdpoc:lock"
NOT_FOUND = ("ParameterNotFound",)


def lock_name(stack: str) -> str:
    return f"{LOCK_PREFIX}{stack}"


@dataclass(frozen=True)
class Stored:
    """The lock parameter as read: its value (the holder's JSON record) and SSM's version of it."""

    value: str
    version: int


def create(run: AwsRun, value: str) -> bool:
    """PutParameter without Overwrite: True when this call created the lock, False when it exists already.

    SSM refuses a second create with ParameterAlreadyExists, so of two runs that race only one gets True.
    TooManyUpdates (another writer on the same parameter at that moment) is an answer too: not ours now.
    """
    name = lock_name(run.stack)
    try:
        with aws_errors(f"taking the stack lock {name}"):
            run.client("ssm").put_parameter(
                Name=name,
                Description=f"cdpoc: the run that may change stack {run.stack} now (cdpoc unlock removes it)",
                Value=value,
                Type="String",
                Tier="Standard",
                Overwrite=False,
                Tags=[{"Key": LOCK_TAG, "Value": run.stack}],
            )
    except AwsError as exc:
        if caused_by(exc, "ParameterAlreadyExists", "TooManyUpdates"):
            return False
        raise
    return True


def read(run: AwsRun) -> Stored | None:
    name = lock_name(run.stack)
    reply = call_or_none(f"reading the stack lock {name}", run.client("ssm").get_parameter, NOT_FOUND, Name=name)
    if reply is None:
        return None
    return Stored(str(reply["Parameter"]["Value"]), int(reply["Parameter"].get("Version", 0)))


def rewrite(run: AwsRun, value: str) -> None:
    """Overwrite the record (the heartbeat); the caller has just read it and seen its own run id.

    Tags cannot be passed with Overwrite (ValidationException): the ones set at creation stay.
    """
    name = lock_name(run.stack)
    with aws_errors(f"renewing the stack lock {name}"):
        run.client("ssm").put_parameter(Name=name, Value=value, Type="String", Overwrite=True)


def delete(run: AwsRun) -> bool:
    """Remove the lock; False when there was none. Unconditional: SSM has no delete-if-version."""
    name = lock_name(run.stack)
    return ignore_missing(f"removing the stack lock {name}", run.client("ssm").delete_parameter, NOT_FOUND, Name=name)
