"""Read-only CloudWatch Logs calls behind `cdpoc logs`: the group's stream names and its events, paginated."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from cdpoc.aws.errors import caused_by
from cdpoc.aws.observe import reading
from cdpoc.aws.run import AwsRun
from cdpoc.errors import EXIT_LEFTOVERS, AwsError, CdpocError

# FilterLogEvents accepts at most 100 names in logStreamNames.
MAX_STREAM_NAMES = 100


class LogGroupNotFound(CdpocError):
    """The stack's log group does not exist: the stack is not up (exit 3, like anything missing)."""

    exit_code = EXIT_LEFTOVERS


def _group_missing(group: str) -> LogGroupNotFound:
    return LogGroupNotFound(
        f"log group {group} does not exist: the stack is not up in this region",
        "Run `cdpoc up` (or check --name / --region); `cdpoc status` shows what exists.",
    )


def stream_names(run: AwsRun, group: str) -> list[str]:
    """Every stream of the group (the stack writes a handful per instance)."""
    names: list[str] = []
    try:
        with reading(f"listing the streams of log group {group}"):
            for page in run.client("logs").get_paginator("describe_log_streams").paginate(logGroupName=group):
                names.extend(s["logStreamName"] for s in page.get("logStreams", []))
    except AwsError as exc:
        if caused_by(exc, "ResourceNotFoundException"):
            raise _group_missing(group) from None
        raise
    return names


def events(
    run: AwsRun,
    group: str,
    *,
    start_ms: int,
    streams: Sequence[str] = (),
    prefix: str = "",
    pattern: str = "",
) -> Iterator[dict[str, Any]]:
    """Events from start_ms on, every page; `streams` (at most 100) and `prefix` narrow the search and exclude
    each other (an API rule); `pattern` is a CloudWatch Logs filter pattern."""
    params: dict[str, Any] = {"logGroupName": group, "startTime": max(0, start_ms)}
    if streams:
        params["logStreamNames"] = list(streams)[:MAX_STREAM_NAMES]
    elif prefix:
        params["logStreamNamePrefix"] = prefix
    if pattern:
        params["filterPattern"] = pattern
    try:
        with reading(f"reading log group {group}"):
            for page in run.client("logs").get_paginator("filter_log_events").paginate(**params):
                yield from page.get("events", [])
    except AwsError as exc:
        if caused_by(exc, "ResourceNotFoundException"):
            raise _group_missing(group) from None
        raise
