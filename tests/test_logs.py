"""`cdpoc logs` against moto's CloudWatch Logs: selection by instance and source, filters, JSON, --follow."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from cdpoc import logs
from cdpoc.aws.logs_read import LogGroupNotFound
from cdpoc.aws.observe import Throttled
from cdpoc.cli import app
from cdpoc.context import Context
from cdpoc.errors import ConfigError
from cdpoc.logs import LogRequest, choose_streams, parse_since


@pytest.fixture
def quick_iam(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logs need none of IAM's managed policies; loading them costs seconds per test (moto reads this lazily)."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")


GROUP = "/cdpoc/t1"
A, B = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"
NOW = time.time()


def ms(seconds_ago: float) -> int:
    return int((NOW - seconds_ago) * 1000)


def put(ctx: Context, stream: str, *events: tuple[float, str]) -> None:
    client = ctx.run.client("logs")
    existing = client.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=stream)["logStreams"]
    if not any(s["logStreamName"] == stream for s in existing):
        client.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    client.put_log_events(
        logGroupName=GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": ms(ago), "message": message} for ago, message in events],
    )


@pytest.fixture
def ctx(make_context: Callable[..., Context], quick_iam: None, aws: None) -> Context:
    context = make_context()
    context.run.client("logs").create_log_group(logGroupName=GROUP)
    put(context, f"{A}/app", (7200, "too old"), (300, "GET /health 200"), (60, "ERROR mongodb timeout"))
    put(context, f"{A}/deploy", (200, "ApplicationStart: scripts/start.sh"))
    put(context, f"{B}/app", (120, "GET /api/files 200\n"))
    put(context, f"{B}/cloud-init", (500, "Cloud-init v. 22 finished"))
    return context


def requests(ctx: Context) -> list[dict[str, Any]]:
    """Every FilterLogEvents request's parameters, as botocore sends them."""
    seen: list[dict[str, Any]] = []
    ctx.run.client("logs").meta.events.register(
        "provide-client-params.logs.FilterLogEvents", lambda params, **_: seen.append(dict(params))
    )
    return seen


def output(ctx: Context, request: LogRequest, **kwargs: Any) -> list[str]:
    written: list[str] = []
    ctx.ui.out = written.append  # type: ignore[method-assign]
    assert logs.show(ctx, request, clock=lambda: NOW, **kwargs) == 0
    return written


def test_parse_since() -> None:
    assert [parse_since(t) for t in ("30s", "10m", "2h", "1d", " 5m ")] == [30, 600, 7200, 86400, 300]
    for bad in ("10", "m", "-1m", "1w", "0s", "1.5h", ""):
        with pytest.raises(ConfigError):
            parse_since(bad)


def test_bad_options_are_usage_errors_before_any_aws_call() -> None:
    with pytest.raises(ConfigError, match="--source 'web'"):
        LogRequest.parse(source="web")
    with pytest.raises(ConfigError, match="--instance"):
        LogRequest.parse(instance="web-1")
    result = CliRunner().invoke(app, ["logs", "--since", "ten minutes"])
    assert result.exit_code == 2 and "expected a number and a unit" in result.output


def test_prints_recent_lines_of_every_instance_with_time_instance_and_source(ctx: Context) -> None:
    sent = requests(ctx)
    lines = output(ctx, LogRequest.parse(since="10m"))
    assert [line.split(" ", 2)[2] for line in lines] == [
        f"{B} cloud-init Cloud-init v. 22 finished",
        f"{A} app        GET /health 200",
        f"{A} deploy     ApplicationStart: scripts/start.sh",
        f"{B} app        GET /api/files 200",
        f"{A} app        ERROR mongodb timeout",
    ]
    assert len(lines) == 5 and lines[0].endswith("Cloud-init v. 22 finished")
    assert lines[0][:10].count("-") == 2 and lines[0][19:24].startswith(".") and lines[0][23] == "Z"
    assert sent == [{"logGroupName": GROUP, "startTime": ms(600)}]


def test_instance_and_source_narrow_the_request(ctx: Context) -> None:
    sent = requests(ctx)
    lines = output(ctx, LogRequest.parse(since="1h", instance=A))
    assert {line.split()[2] for line in lines} == {A} and len(lines) == 3
    lines = output(ctx, LogRequest.parse(since="1h", instance=A, source="app"))
    assert [line.split(None, 4)[4] for line in lines] == ["GET /health 200", "ERROR mongodb timeout"]
    lines = output(ctx, LogRequest.parse(since="1h", source="app"))
    assert [line.split()[2] for line in lines] == [A, B, A]
    # A prefix for an instance (a stream not written yet is no error), the stream names for a source;
    # never both in one request (AWS refuses that).
    assert sent[0]["logStreamNamePrefix"] == f"{A}/" and "logStreamNames" not in sent[0]
    assert sent[1]["logStreamNamePrefix"] == f"{A}/app"
    assert sent[2]["logStreamNames"] == [f"{A}/app", f"{B}/app"] and "logStreamNamePrefix" not in sent[2]


def test_a_source_no_instance_has_written_yet_prints_nothing(ctx: Context) -> None:
    sent = requests(ctx)
    assert output(ctx, LogRequest.parse(source="agent")) == []
    assert sent == []
    assert "No log events in /cdpoc/t1 in the last 10m (source agent)." in ctx.ui.err.export_text()


def test_more_streams_than_the_api_takes_are_filtered_here() -> None:
    names = [f"i-{n:017x}/{source}" for n in range(80) for source in ("app", "deploy")]
    choice = choose_streams(LogRequest.parse(source="app"), lambda: names)
    assert len(choice.streams) == 80
    many = [f"i-{n:017x}/app" for n in range(150)]
    choice = choose_streams(LogRequest.parse(source="app"), lambda: many)
    assert choice.streams == () and choice.suffix == "/app"
    assert choice.keeps("i-00000000000000001/app") and not choice.keeps("i-00000000000000001/deploy")


def test_filter_pattern_is_passed_to_cloudwatch(ctx: Context) -> None:
    sent = requests(ctx)
    lines = output(ctx, LogRequest.parse(since="1h", pattern="ERROR"))
    assert sent[0]["filterPattern"] == "ERROR"
    assert [line.split(None, 4)[4] for line in lines] == ["ERROR mongodb timeout"]


def test_json_prints_one_object_per_event(ctx: Context) -> None:
    ctx.ui.json_mode = True
    lines = output(ctx, LogRequest.parse(since="10m", instance=B))
    [event] = [json.loads(line) for line in lines if "files" in line]
    assert set(event) == {"time", "timestamp", "instance", "source", "stream", "message", "event_id"}
    assert (event["instance"], event["source"], event["stream"]) == (B, "app", f"{B}/app")
    assert event["message"] == "GET /api/files 200" and event["timestamp"] == ms(120)
    assert event["time"].endswith("Z") and event["event_id"]


def test_missing_log_group_says_the_stack_is_not_up(ctx: Context) -> None:
    ctx.run.client("logs").delete_log_group(logGroupName=GROUP)
    with pytest.raises(LogGroupNotFound, match="log group /cdpoc/t1 does not exist") as raised:
        logs.show(ctx, LogRequest.parse())
    assert raised.value.exit_code == 3
    with pytest.raises(LogGroupNotFound):
        logs.show(ctx, LogRequest.parse(source="app"))


def test_missing_log_group_through_the_cli_exits_3(aws: None, quick_iam: None, tmp_path: Any) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: nothing\n")
    result = CliRunner().invoke(app, ["--config", str(config), "logs"])
    assert result.exit_code == 3
    assert "log group /cdpoc/nothing does not exist: the stack is not up" in result.output


def test_follow_prints_each_event_once_including_late_arrivals(ctx: Context) -> None:
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            put(ctx, f"{B}/app", (10, "new line"))
            # Delivered late by the agent: older than the newest event already printed.
            put(ctx, f"{A}/deploy", (70, "late line"))
        elif len(polls) == 3:
            raise KeyboardInterrupt

    lines = output(ctx, LogRequest.parse(since="10m", follow=True), sleep=sleep)
    messages = [line.split(None, 4)[4] for line in lines]
    assert messages[-2:] == ["late line", "new line"]
    assert len(messages) == len(set(messages)) == 7
    assert polls == [2.0, 2.0, 2.0]
    assert "Following /cdpoc/t1; Ctrl-C to stop." in ctx.ui.err.export_text()


def test_follow_backs_off_when_throttled(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    real = logs.read_lines
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) in (2, 3):
            raise Throttled("reading log group: AWS is throttling requests")
        return real(*args, **kwargs)

    monkeypatch.setattr(logs, "read_lines", flaky)
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 4:
            raise KeyboardInterrupt

    output(ctx, LogRequest.parse(follow=True), sleep=sleep)
    assert polls == [2.0, 4.0, 8.0, 2.0]
    assert "next read in 8s" in ctx.ui.err.export_text()


def test_a_forged_log_line_cannot_steer_the_terminal_or_fake_another_line(ctx: Context) -> None:
    """An upload's file name is logged by the app; whoever chose it must not rewrite the operator's screen."""
    forged = "upload of a.pdf\x1b]0;pwned\x07\x1b[2J\r\n2026-01-01 00:00:00.000Z i-0fake app        all good\u202e"
    put(ctx, f"{A}/app", (30, forged))
    lines = output(ctx, LogRequest.parse(since="1m"))[-1:]
    assert "\n" not in lines[0] and "\x1b" not in lines[0] and "\r" not in lines[0]
    assert lines[0].endswith(
        "upload of a.pdf\\x1b]0;pwned\\x07\\x1b[2J\\r\\n2026-01-01 00:00:00.000Z i-0fake app        all good\\u202e"
    )
    ctx.ui.json_mode = True  # JSON keeps the message exactly (json.dumps escapes every control character)
    assert json.loads(output(ctx, LogRequest.parse(since="1m"))[-1])["message"] == forged
