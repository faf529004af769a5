"""Status snapshots rendered as a screen, plain lines and JSON; what --watch sees change (no AWS)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from cdpoc.statusrender import (
    CHANGED,
    changes,
    facts,
    paths,
    snapshot_dict,
    span,
    status_lines,
    status_renderable,
    took,
    watch_footer,
)
from cdpoc.statussnapshot import StatusSnapshot, exit_code
from cdpoc.statusviews import (
    Activity,
    DeploymentView,
    Endpoints,
    Fleet,
    FleetInstance,
    HttpCheck,
    LifecycleEventView,
    PipelineView,
    ResourceRow,
    StackView,
    StageView,
    TargetView,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
OLD = "0f1e2d3c4b5a69788796a5b4c3d2e1f001234567"
NEW = "3f2a1b9c0d4e5f60718293a4b5c6d7e8f9012345"
A, B = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"
KEYS = ("vpc", "nat.a", "alb", "tg.app", "asg.app", "bucket.web", "instance.bastion", "instance.mongodb")
EVENTS = ("ApplicationStop", "DownloadBundle", "BeforeInstall", "Install", "AfterInstall", "ApplicationStart")


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def stack(missing: tuple[str, ...] = ()) -> StackView:
    rows = tuple(
        ResourceRow(k, "kind", f"t1-{k}", "create" if k in missing else "exists", "" if k in missing else f"id-{k}")
        for k in KEYS
    )
    return StackView("t1", "us-east-1", "123456789012", rows, 0.1305, ago(2 * 3600 + 13 * 60))


def endpoints(status: int | None = 200) -> Endpoints:
    url = "http://t1-alb-1.us-east-1.elb.amazonaws.com"
    check = HttpCheck(f"{url}/health", status=status, latency_ms=42.4 if status else None)
    if status is None:
        check = replace(check, error="unreachable: timed out")
    return Endpoints(f"{url}/", check, "http://web.s3-website-us-east-1.amazonaws.com", "54.0.0.10", "10.0.20.15")


def instance(instance_id: str, zone: str, **changes: str) -> FleetInstance:
    base = FleetInstance(
        id=instance_id,
        zone=zone,
        state="running",
        lifecycle="InService",
        ec2_health="Healthy",
        target_state="healthy",
        private_ip="10.0.10.5",
        launched_at=ago(3600),
        revision=NEW,
    )
    return replace(base, **changes)


def events(
    last_status: str = "Succeeded", upto: int = len(EVENTS), **diagnostics: str
) -> tuple[LifecycleEventView, ...]:
    done = [
        LifecycleEventView(name, "Succeeded", ago(300 - 10 * n), ago(295 - 10 * n)) for n, name in enumerate(EVENTS)
    ]
    result = done[: upto - 1]
    last = replace(done[upto - 1], status=last_status, **diagnostics)
    if last_status == "InProgress":
        last = replace(last, ended_at=None)
    return (*result, last)


def deployment(status: str, targets: tuple[TargetView, ...], **more: object) -> DeploymentView:
    base = DeploymentView(
        id="d-AAAAAAAAA",
        status=status,
        config="CodeDeployDefault.OneAtATime",
        creator="user",
        created_at=ago(310),
        revision=NEW,
        message="Add uploads",
        overview={"Pending": 0, "InProgress": 0, "Succeeded": 2, "Failed": 0, "Skipped": 0, "Ready": 0},
        targets=targets,
    )
    return replace(base, **more)  # type: ignore[arg-type]


def pipeline(deploy_status: str = "Succeeded", summary: str = "") -> PipelineView:
    return PipelineView(
        "t1-pipeline",
        (
            StageView("Source", "Succeeded", "e-1", ago(320), "Add uploads"),
            StageView("Deploy", deploy_status, "e-1", ago(60), summary),
        ),
        NEW,
        "Add uploads\n\nlonger body",
        ago(330),
    )


def activities() -> tuple[Activity, ...]:
    return (
        Activity(
            "act-2",
            "Successful",
            f"Launching a new EC2 instance: {B}",
            "At 2025-03-01 an instance was started",
            ago(3500),
        ),
        Activity("act-1", "Successful", f"Launching a new EC2 instance: {A}", "", ago(3600)),
    )


def healthy() -> StatusSnapshot:
    targets = (TargetView(A, "Succeeded", ago(200), events()), TargetView(B, "Succeeded", ago(150), events()))
    return StatusSnapshot(
        taken_at=NOW,
        stack=stack(),
        endpoints=endpoints(),
        fleet=Fleet("t1-app", 2, 2, 4, "EC2", (instance(A, "us-east-1a"), instance(B, "us-east-1b"))),
        pipeline=pipeline(),
        deployment=deployment("Succeeded", targets, completed_at=ago(100)),
        activities=activities(),
    )


def in_progress() -> StatusSnapshot:
    fleet = Fleet(
        "t1-app",
        2,
        2,
        4,
        "EC2",
        (
            instance(
                A,
                "us-east-1a",
                revision=OLD,
                pending_revision=NEW,
                pending_status="InProgress",
                target_state="draining",
                target_reason="Target.DeregistrationInProgress",
            ),
            instance(B, "us-east-1b", revision=OLD, pending_revision=NEW, pending_status="Pending"),
        ),
    )
    targets = (
        TargetView(A, "InProgress", ago(5), events("InProgress", upto=2)),
        TargetView(B, "Pending", None, ()),
    )
    overview = {"Pending": 1, "InProgress": 1, "Succeeded": 0, "Failed": 0, "Skipped": 0, "Ready": 0}
    return replace(
        healthy(),
        fleet=fleet,
        pipeline=pipeline("InProgress"),
        deployment=deployment("InProgress", targets, overview=overview),
    )


LOG_TAIL = (
    "[stderr]Traceback (most recent call last):\n"
    '[stderr]  File "/opt/app/main.py", line 1, in <module>\n'
    "[stderr]ModuleNotFoundError: No module named 'fastapi'\n"
)


def failed() -> StatusSnapshot:
    failing = events(
        "Failed",
        upto=6,
        error_code="ScriptFailed",
        script="scripts/start.sh",
        message="Script at specified location: scripts/start.sh run as user root failed with exit code 1",
        log_tail=LOG_TAIL,
    )
    targets = (TargetView(A, "Failed", ago(20), failing), TargetView(B, "Skipped", ago(20), ()))
    overview = {"Pending": 0, "InProgress": 0, "Succeeded": 0, "Failed": 1, "Skipped": 1, "Ready": 0}
    fleet = Fleet(
        "t1-app",
        2,
        2,
        4,
        "EC2",
        (
            instance(
                A,
                "us-east-1a",
                revision=OLD,
                pending_revision=NEW,
                pending_status="Failed",
                target_state="unhealthy",
                target_reason="Target.ResponseCodeMismatch",
            ),
            instance(B, "us-east-1b", revision=OLD),
        ),
    )
    return replace(
        healthy(),
        fleet=fleet,
        pipeline=pipeline("Failed", "Deployment d-AAAAAAAAA failed"),
        deployment=deployment(
            "Failed",
            targets,
            overview=overview,
            completed_at=ago(15),
            error_code="HOOK_EXECUTION_FAILURE",
            error_message="The overall deployment failed because too many individual instances failed deployment",
        ),
    )


def nothing() -> StatusSnapshot:
    rows = tuple(ResourceRow(k, "kind", f"t1-{k}", "create") for k in KEYS)
    return StatusSnapshot(taken_at=NOW, stack=StackView("t1", "us-east-1", "123456789012", rows, 0.0, None))


def partial() -> StatusSnapshot:
    return StatusSnapshot(taken_at=NOW, stack=stack(missing=("alb", "asg.app")))


def screen(snapshot: StatusSnapshot, **kwargs: object) -> str:
    console = Console(record=True, width=220, force_terminal=False)
    console.print(status_renderable(snapshot, **kwargs))  # type: ignore[arg-type]
    return console.export_text()


def test_healthy_fleet_screen() -> None:
    text = screen(healthy())
    assert "Stack t1 · us-east-1 · account 123456789012 · up 2h 13m · about $0.131/h" in text
    assert "Resources: 8 of 8 exist." in text
    assert "http://t1-alb-1.us-east-1.elb.amazonaws.com/" in text and "GET /health: 200 in 42 ms" in text
    assert "http://web.s3-website-us-east-1.amazonaws.com" in text
    assert "54.0.0.10" in text and "10.0.20.15" in text
    assert "Fleet t1-app: min 2 · desired 2 · max 4 · health check EC2" in text
    for row in (A, B):
        line = next(line for line in text.splitlines() if row in line and "us-east-1" in line)
        assert "InService" in line and "Healthy" in line and "healthy" in line and "3f2a1b9c" in line
    assert 'Pipeline t1-pipeline: source 3f2a1b9c "Add uploads" · 5m 30s ago' in text
    assert "Deployment d-AAAAAAAAA · Succeeded · CodeDeployDefault.OneAtATime · by user" in text
    assert "took 3m 30s" in text and "ApplicationStart ok 5s" in text
    assert f"Launching a new EC2 instance: {B}" in text
    assert "Healthy: everything that exists is in service." in text
    assert exit_code(healthy()) == 0


def test_deployment_in_progress_screen_and_lines() -> None:
    snapshot = in_progress()
    text = screen(snapshot)
    assert "draining (Target.DeregistrationInProgress)" in text
    assert "0f1e2d3c → 3f2a1b9c InProgress" in text and "0f1e2d3c → 3f2a1b9c Pending" in text
    assert "Deployment d-AAAAAAAAA · InProgress" in text and "Pending 1 · InProgress 1 · Succeeded 0" in text
    assert "ApplicationStop ok 5s · DownloadBundle running 4m 50s" in text
    assert "Not healthy (2):" in text
    assert f"{A} is draining in the target group (Target.DeregistrationInProgress)" in snapshot.issues
    assert "deployment d-AAAAAAAAA is InProgress" in snapshot.issues
    assert exit_code(snapshot) == 3
    lines = status_lines(snapshot)
    assert any(A in line and "draining (Target.DeregistrationInProgress)" in line for line in lines)
    assert any(line.strip().startswith("Deploy") and "InProgress" in line for line in lines)


def test_failed_deployment_shows_hook_script_and_log_tail_inline() -> None:
    snapshot = failed()
    text = screen(snapshot)
    assert f"{A} failed at ApplicationStart running scripts/start.sh (ScriptFailed)" in text
    assert "Script at specified location: scripts/start.sh run as user root failed with exit code 1" in text
    assert "| [stderr]ModuleNotFoundError: No module named 'fastapi'" in text
    assert "HOOK_EXECUTION_FAILURE: The overall deployment failed" in text
    assert "unhealthy (Target.ResponseCodeMismatch)" in text and "→ 3f2a1b9c Failed" in text
    assert any(i.startswith("deployment d-AAAAAAAAA failed: The overall deployment") for i in snapshot.issues)
    assert "pipeline stage Deploy failed: Deployment d-AAAAAAAAA failed" in snapshot.issues
    lines = status_lines(snapshot)
    assert f"  {A} failed at ApplicationStart running scripts/start.sh (ScriptFailed)" in lines
    assert "    | [stderr]ModuleNotFoundError: No module named 'fastapi'" in lines


def test_nothing_deployed_is_an_answer_not_an_error() -> None:
    snapshot = nothing()
    text = screen(snapshot)
    assert "Nothing of stack t1 exists in us-east-1: `cdpoc up` would create 8 resources." in text
    assert "Fleet" not in text and "Endpoints" not in text
    assert "about $0/h" in text
    assert snapshot.issues == ["nothing of stack t1 exists in us-east-1: run `cdpoc up`"]
    assert exit_code(snapshot) == 3
    assert status_lines(snapshot)[-2:] == [
        "Not healthy (1):",
        "  - nothing of stack t1 exists in us-east-1: run `cdpoc up`",
    ]


def test_partially_deployed_lists_what_up_would_create() -> None:
    snapshot = partial()
    text = screen(snapshot)
    assert "Resources: 6 of 8 exist; `cdpoc up` would create 2: alb, asg.app." in text
    assert snapshot.issues == ["2 resource(s) missing: alb, asg.app (run `cdpoc up`)"]
    assert exit_code(snapshot) == 3


def test_unreachable_app_is_a_row_and_an_issue() -> None:
    snapshot = replace(healthy(), endpoints=endpoints(status=None))
    assert "GET /health: unreachable: timed out" in screen(snapshot)
    assert snapshot.issues == [
        "the app does not answer http://t1-alb-1.us-east-1.elb.amazonaws.com/health: unreachable: timed out"
    ]


def test_fleet_short_of_desired_and_unregistered_instances_are_issues() -> None:
    fleet = Fleet(
        "t1-app",
        2,
        2,
        4,
        "ELB",
        (
            instance(A, "us-east-1a", target_state=""),
            instance(B, "us-east-1b", lifecycle="Pending:Wait", target_state=""),
        ),
    )
    snapshot = replace(healthy(), fleet=fleet)
    assert snapshot.issues == [
        "1 of 2 instances of t1-app are in service",
        f"{A} is not registered in the target group",
    ]
    assert "Pending:Wait" in screen(snapshot) and "not registered" in screen(snapshot)


JSON_KEYS = {"schema", "taken_at", "healthy", "issues", "notes", "stack", "endpoints", "fleet", "pipeline"}
JSON_KEYS |= {"deployment", "activities"}


def test_json_has_the_documented_stable_keys() -> None:
    data = json.loads(json.dumps(snapshot_dict(failed())))
    assert set(data) == JSON_KEYS
    assert data["schema"] == 1 and data["taken_at"] == "2025-03-01T12:00:00Z" and data["healthy"] is False
    assert set(data["stack"]) == {
        "name",
        "region",
        "region_source",
        "account",
        "created_at",
        "age_seconds",
        "cost_per_hour",
        "counts",
        "resources",
    }
    assert data["stack"]["age_seconds"] == 7980
    assert data["stack"]["counts"] == {"exists": 8, "create": 0, "update": 0, "differs": 0}
    assert set(data["stack"]["resources"][0]) == {"key", "kind", "name", "action", "id", "detail"}
    assert set(data["endpoints"]) == {"app", "website", "bastion", "mongodb"}
    assert data["endpoints"]["app"]["health"] == {
        "url": "http://t1-alb-1.us-east-1.elb.amazonaws.com/health",
        "status": 200,
        "latency_ms": 42.4,
        "error": "",
        "ok": True,
    }
    assert set(data["fleet"]) == {"name", "min", "desired", "max", "health_check_type", "instances"}
    assert set(data["fleet"]["instances"][0]) == {
        "id",
        "zone",
        "state",
        "lifecycle",
        "ec2_health",
        "target_state",
        "target_reason",
        "target_description",
        "private_ip",
        "launched_at",
        "revision",
        "pending_revision",
        "pending_status",
    }
    assert set(data["pipeline"]) == {"name", "source", "stages"}
    assert set(data["pipeline"]["source"]) == {"revision", "message", "time"}
    assert set(data["pipeline"]["stages"][0]) == {"name", "status", "execution_id", "changed_at", "summary"}
    deployment = data["deployment"]
    assert set(deployment) == {
        "id",
        "status",
        "config",
        "creator",
        "created_at",
        "completed_at",
        "revision",
        "message",
        "overview",
        "error",
        "rollback_of",
        "rolls_back",
        "targets",
    }
    assert deployment["rolls_back"] is None
    assert deployment["error"] == {
        "code": "HOOK_EXECUTION_FAILURE",
        "message": "The overall deployment failed because too many individual instances failed deployment",
    }
    assert set(deployment["targets"][0]) == {"instance", "status", "updated_at", "events"}
    failed_event = deployment["targets"][0]["events"][-1]
    assert set(failed_event) == {
        "name",
        "status",
        "started_at",
        "ended_at",
        "duration_seconds",
        "error_code",
        "script",
        "message",
        "log_tail",
    }
    assert failed_event["script"] == "scripts/start.sh" and failed_event["log_tail"] == LOG_TAIL
    assert failed_event["duration_seconds"] == 5.0
    assert set(data["activities"][0]) == {"id", "status", "description", "cause", "started_at", "ended_at"}


def test_json_of_nothing_deployed() -> None:
    data = snapshot_dict(nothing())
    assert data["fleet"] is None and data["pipeline"] is None and data["deployment"] is None
    assert data["endpoints"] == {"app": None, "website": None, "bastion": None, "mongodb": None}
    assert data["stack"]["created_at"] is None and data["stack"]["age_seconds"] is None
    assert data["stack"]["counts"]["create"] == 8


def test_changes_between_snapshots_name_what_moved() -> None:
    found = changes(facts(in_progress()), facts(healthy()))
    by_path = {path: (old, new) for path, old, new in found}
    assert by_path[f"fleet.{A}.target"] == ("draining (Target.DeregistrationInProgress)", "healthy")
    assert by_path["deployment"] == ("d-AAAAAAAAA InProgress", "d-AAAAAAAAA Succeeded")
    assert by_path[f"deployment.{A}.DownloadBundle"] == ("InProgress", "Succeeded")
    assert by_path[f"deployment.{A}.AfterInstall"] == ("", "Succeeded")
    assert by_path["health"] == ("2 issue(s)", "healthy")
    assert changes(facts(healthy()), facts(replace(healthy(), taken_at=NOW + timedelta(seconds=5)))) == []
    gone = replace(healthy(), fleet=replace(healthy().fleet, instances=healthy().fleet.instances[:1]))  # type: ignore[arg-type]
    assert (f"fleet.{B}.lifecycle", "InService", "") in changes(facts(healthy()), facts(gone))


def styled(snapshot: StatusSnapshot, changed: frozenset[str]) -> str:
    console = Console(record=True, width=220, force_terminal=True, color_system="standard")
    console.print(status_renderable(snapshot, changed=changed, footer=watch_footer(NOW, 5, "throttled")))
    return console.export_text(styles=True)


def test_changed_cells_are_highlighted() -> None:
    bold_reverse = "\x1b[1;7m"
    assert CHANGED == "bold reverse"
    assert bold_reverse not in styled(healthy(), frozenset())
    changed = paths(changes(facts(in_progress()), facts(healthy())))
    text = styled(healthy(), changed)
    assert f"{bold_reverse}healthy" in text and f"{bold_reverse}Succeeded" in text
    assert "refreshed 12:00:00 UTC · every 5s · Ctrl-C to stop" in text and "throttled" in text


def test_aws_strings_are_not_markup() -> None:
    snapshot = replace(
        healthy(), activities=(Activity("x", "Failed", "[bold]Launching[/bold] failed", "[red]cause[/red]", ago(5)),)
    )
    text = screen(snapshot)
    assert "[bold]Launching[/bold] failed" in text and "[red]cause[/red]" in text


def rolling_back() -> StatusSnapshot:
    broken = failed()
    assert broken.deployment is not None
    rollback = replace(
        deployment("InProgress", (TargetView(A, "InProgress", ago(2), events("InProgress", upto=1)),)),
        id="d-CCCCCCCCC",
        creator="codeDeployRollback",
        revision=OLD,
        message="",
        rollback_of=broken.deployment.id,
        rolls_back=broken.deployment,
    )
    return replace(broken, deployment=rollback)


def test_a_rollback_shows_the_failure_it_undoes() -> None:
    snapshot = rolling_back()
    lines = status_lines(snapshot)
    heading = next(line for line in lines if line.startswith("Deployment d-CCCCCCCCC"))
    assert "by codeDeployRollback" in heading and "revision 0f1e2d3c" in heading and "rolls back d-AAAAAAAAA" in heading
    rolled = lines.index(
        next(line for line in lines if line.startswith("Rolled back: Deployment d-AAAAAAAAA · Failed"))
    )
    assert lines[rolled + 1].startswith("  HOOK_EXECUTION_FAILURE: The overall deployment failed")
    assert lines[rolled + 2] == f"  {A} failed at ApplicationStart running scripts/start.sh (ScriptFailed)"
    assert lines[rolled + 6] == "    | [stderr]ModuleNotFoundError: No module named 'fastapi'"
    assert "    | [stderr]ModuleNotFoundError: No module named 'fastapi'" in screen(snapshot)
    assert any(i.startswith("deployment d-AAAAAAAAA failed and is rolled back by d-CCCCCCCCC") for i in snapshot.issues)
    data = snapshot_dict(snapshot)["deployment"]
    assert data["rollback_of"] == "d-AAAAAAAAA" and data["rolls_back"]["status"] == "Failed"
    assert data["rolls_back"]["targets"][0]["events"][-1]["log_tail"] == LOG_TAIL


def test_durations_read_like_a_person_would_say_them() -> None:
    assert [span(s) for s in (0, 59, 61, 3599, 7980, 90000)] == ["0s", "59s", "1m 01s", "59m 59s", "2h 13m", "1d 1h"]
    assert [took(s) for s in (0.5, 5.0, 9.95, 75.0)] == ["0.5s", "5s", "9.9s", "1m 15s"]


def unfolded(screen: str, start: str) -> str:
    """The word that begins with `start`, joined with its continuation folded onto the lines below (same column)."""
    lines = screen.splitlines()
    row = next(n for n, line in enumerate(lines) if start in line)
    column = lines[row].index(start)
    word = lines[row][column:].split()[0]
    for line in lines[row + 1 :]:
        rest = line[column:]
        if line[:column].strip() or not rest or rest[0].isspace():  # a new row, or nothing folded
            break
        word += rest.split()[0]
    return word


@pytest.mark.parametrize("width", [60, 80])
def test_urls_are_never_cut_at_any_width(width: int) -> None:
    """A URL is copied from the screen: at any width it is whole, folded onto the next line if need be."""
    console = Console(record=True, width=width, force_terminal=False)
    console.print(status_renderable(healthy()))
    text = console.export_text()
    assert "…" not in text
    assert unfolded(text, "http://t1-alb") == "http://t1-alb-1.us-east-1.elb.amazonaws.com/"
    assert unfolded(text, "http://web.") == "http://web.s3-website-us-east-1.amazonaws.com"
