"""`push-app`: against moto in process (commits and API-call budgets), and the real CLI end to end
against the sandbox (up, push-app, --wait success and failure, down leaves nothing).

API-call budget of a push of the project bundle to a CodeCommit source (F = folders in the bundle):
  first push to an empty repository:  GetPipeline, GetBranch, CreateCommit                 = 3 calls, 1 commit
  unchanged bundle:                    GetPipeline, GetBranch, GetFolder x F                = 2 + F calls, 0 commits
  one changed file:                    GetPipeline, GetBranch, GetFolder x F, CreateCommit  = 3 + F calls, 1 commit
No GetFile or GetBlob: unchanged content is compared by blob id and never downloaded.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from cdpoc_testing import sandbox_client as client
from cdpoc_testing import wait_until_no_deployment_is_active
from faults import LostAnswer
from rich.console import Console
from typer.testing import CliRunner

from cdpoc import rollout
from cdpoc.aws.run import AwsRun, Waits
from cdpoc.aws.source import branch_tip
from cdpoc.bundle import BundleInvalid
from cdpoc.cli import app
from cdpoc.context import Context
from cdpoc.errors import ConflictError
from cdpoc.rollout import push_app
from cdpoc.sandbox.cicd import SIMULATION
from cdpoc.sandbox.server import Sandbox
from cdpoc.ui import Ui

REPO_BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
ROLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(REPO_BUNDLE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def folder_count(root: Path) -> int:
    """Folders holding bundle files, the root included (one GetFolder each)."""
    return 1 + sum(1 for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__")


@pytest.fixture
def ctx(aws: None, make_context: Callable[..., Context]) -> Context:
    """A stack whose pipeline reads a CodeCommit repository (made directly: push-app needs only these two)."""
    context = make_context()
    client = context.run.client
    client("codecommit").create_repository(repositoryName="s3upload")
    client("s3").create_bucket(Bucket="t1-artifacts")
    role = client("iam").create_role(RoleName="t1-pipeline", AssumeRolePolicyDocument=json.dumps(ROLE_TRUST))["Role"]
    client("codepipeline").create_pipeline(
        pipeline={
            "name": "t1-pipeline",
            "roleArn": role["Arn"],
            "artifactStore": {"type": "S3", "location": "t1-artifacts"},
            "stages": [
                {
                    "name": "Source",
                    "actions": [
                        {
                            "name": "Source",
                            "actionTypeId": {
                                "category": "Source",
                                "owner": "AWS",
                                "provider": "CodeCommit",
                                "version": "1",
                            },
                            "configuration": {
                                "RepositoryName": "s3upload",
                                "BranchName": "main",
                                "PollForSourceChanges": "false",
                            },
                            "outputArtifacts": [{"name": "SourceOutput"}],
                        }
                    ],
                },
                {
                    "name": "Deploy",
                    "actions": [
                        {
                            "name": "Deploy",
                            "actionTypeId": {
                                "category": "Deploy",
                                "owner": "AWS",
                                "provider": "CodeDeploy",
                                "version": "1",
                            },
                            "configuration": {"ApplicationName": "t1", "DeploymentGroupName": "t1-fleet"},
                            "inputArtifacts": [{"name": "SourceOutput"}],
                        }
                    ],
                },
            ],
        }
    )
    context.clients.calls.clear()
    return context


def calls(ctx: Context) -> list[str]:
    taken = [op for _, op in ctx.clients.calls]
    ctx.clients.calls.clear()
    return taken


def changed_paths(ctx: Context, before: str, after: str) -> dict[str, str]:
    reply = ctx.run.client("codecommit").get_differences(
        repositoryName="s3upload", beforeCommitSpecifier=before, afterCommitSpecifier=after
    )
    return {(d.get("afterBlob") or d.get("beforeBlob"))["path"]: d["changeType"] for d in reply["differences"]}


def test_push_commits_once_then_nothing_then_only_the_change(ctx: Context, bundle: Path) -> None:
    first = push_app(ctx, bundle, None, wait=False, timeout=60)
    assert len(first.commits) == 1
    assert calls(ctx) == ["GetPipeline", "GetBranch", "CreateCommit"]
    files = ctx.run.client("codecommit").get_folder(
        repositoryName="s3upload", commitSpecifier=first.revision, folderPath="/scripts"
    )["files"]
    modes = {f["relativePath"]: f["fileMode"] for f in files}
    assert modes["application_start.sh"] == "EXECUTABLE" and modes["common.sh"] == "NORMAL"
    calls(ctx)  # not push-app's

    second = push_app(ctx, bundle, None, wait=False, timeout=60)
    assert not second.changed and second.commits == ()
    assert calls(ctx) == ["GetPipeline", "GetBranch"] + ["GetFolder"] * folder_count(bundle)

    (bundle / "web" / "index.html").write_text("<html>changed</html>\n")
    (bundle / "web" / "style.css").unlink()
    third = push_app(ctx, bundle, "change the page", wait=False, timeout=60)
    assert len(third.commits) == 1
    assert calls(ctx) == ["GetPipeline", "GetBranch"] + ["GetFolder"] * folder_count(bundle) + ["CreateCommit"]
    assert changed_paths(ctx, first.revision, third.revision) == {"web/index.html": "M", "web/style.css": "D"}
    commit = ctx.run.client("codecommit").get_commit(repositoryName="s3upload", commitId=third.revision)["commit"]
    assert commit["message"].strip() == "change the page" and commit["parents"] == [first.revision]
    out = ctx.ui.console.export_text()
    assert "Nothing to push" in out and f"commit {third.revision}" in out


@pytest.mark.parametrize("earlier_pushes", [0, 1], ids=["first commit", "on a parent"])
def test_a_lost_commit_answer_is_recognised_as_the_push_itself(
    ctx: Context, bundle: Path, earlier_pushes: int, make_context: Callable[..., Context]
) -> None:
    """CreateCommit took effect, its answer was lost, botocore sent it again: CodeCommit refuses the repeat
    (ParentCommitIdRequired on an empty repository's first commit, else ParentCommitIdOutdated) and
    push-app finds its own commit at the tip instead of blaming someone else's push."""
    if earlier_pushes:
        push_app(ctx, bundle, None, wait=False, timeout=60)
        (bundle / "web" / "index.html").write_text("<html>changed</html>\n")
    tip_before = branch_tip(ctx.run, "s3upload", "main")
    pushing = make_context()  # clients take the session's event hooks when made: the fault needs new ones
    fault = LostAnswer(pushing.clients, "codecommit:CreateCommit")

    pushed = push_app(pushing, bundle, "lost answer", wait=False, timeout=60)

    assert fault.lost == 1  # CreateCommit was sent twice
    assert pushed.commits == (branch_tip(ctx.run, "s3upload", "main"),)
    commit = ctx.run.client("codecommit").get_commit(repositoryName="s3upload", commitId=pushed.revision)["commit"]
    assert commit["parents"] == ([tip_before] if tip_before else [])
    assert not push_app(ctx, bundle, None, wait=False, timeout=60).changed


def test_another_push_on_the_same_parent_with_the_same_message_is_still_a_conflict(
    ctx: Context, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same refusal, but the tip holds other content (someone pushed in between, even with cdpoc and the
    same message): not this push's commit."""
    push_app(ctx, bundle, None, wait=False, timeout=60)
    tip = branch_tip(ctx.run, "s3upload", "main")
    original = ctx.run.client("codecommit").create_commit

    def someone_pushes_first(**params: Any) -> Any:
        original(
            repositoryName="s3upload",
            branchName="main",
            parentCommitId=tip,
            commitMessage=params["commitMessage"],
            authorName="cdpoc",
            putFiles=[{"filePath": "web/index.html", "fileContent": b"<html>theirs</html>\n"}],
        )
        return original(**params)

    (bundle / "web" / "index.html").write_text("<html>mine</html>\n")
    monkeypatch.setattr(ctx.run.client("codecommit"), "create_commit", someone_pushes_first)
    with pytest.raises(ConflictError, match="moved while push-app was committing"):
        push_app(ctx, bundle, "mine", wait=False, timeout=60)


def test_a_broken_appspec_is_refused_before_any_aws_call(ctx: Context, bundle: Path) -> None:
    (bundle / "appspec.yml").write_text("version: 0.0\nos: plan9\nhooks:\n  Install: []\n")
    with pytest.raises(BundleInvalid) as refused:
        push_app(ctx, bundle, None, wait=False, timeout=60)
    assert "plan9" in refused.value.message and "Install" in refused.value.message
    assert ctx.clients.calls == []


def test_push_without_a_pipeline_says_to_run_up(aws: None, make_context: Callable[..., Context], bundle: Path) -> None:
    context = make_context()
    with pytest.raises(Exception, match="pipeline t1-pipeline does not exist") as refused:
        push_app(context, bundle, None, wait=False, timeout=60)
    assert "cdpoc up" in getattr(refused.value, "hint", "")


# --- the real CLI against the sandbox ------------------------------------------------------------------

STACK = "pushe2e"
REPOSITORY = "pushe2e-app"


def cdpoc(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ...]]:
    """A sandbox with the whole stack up; the simulation's steps short so a deployment takes about a second.

    The repository gets a name of its own: moto's state is shared by every sandbox of the process.
    """
    config = tmp_path_factory.mktemp("push") / "cdpoc.yaml"
    config.write_text(yaml.safe_dump({"pipeline": {"repository": REPOSITORY}}))
    SIMULATION.step_seconds = 0.02
    with Sandbox() as server:
        base = ("--config", str(config), "--endpoint-url", server.endpoint, "--name", STACK)
        code, out = cdpoc(*base, "up")
        assert code == 0, out
        yield base
    SIMULATION.reset()


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollout, "POLL_SECONDS", 0.1)


def codecommit(base: tuple[str, ...]) -> Any:
    return client(base, "codecommit")


def tip(base: tuple[str, ...]) -> str:
    return str(codecommit(base).get_branch(repositoryName=REPOSITORY, branchName="main")["branch"]["commitId"])


def test_cli_push_app_commits_once_and_then_says_nothing_changed(sandbox: tuple[str, ...], bundle: Path) -> None:
    code, out = cdpoc(*sandbox, "push-app", "--bundle", str(bundle), "-m", "first version")
    assert code == 0, out
    assert f"commit {tip(sandbox)}" in out
    code, out = cdpoc(*sandbox, "push-app", "--bundle", str(bundle))
    assert code == 0, out
    assert "Nothing to push" in out and "commit " not in out


def test_cli_push_app_outside_the_repository_pushes_the_sample_app_that_ships_with_cdpoc(
    sandbox: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdpoc.bundle import shipped_bundle

    monkeypatch.chdir(tmp_path)  # no ./bundle here
    code, out = cdpoc(*sandbox, "push-app", "-m", "the sample app")
    assert code == 0, out
    assert f"Bundle: {shipped_bundle()} (the sample app that ships with cdpoc" in out
    pushed = codecommit(sandbox).get_file(
        repositoryName=REPOSITORY, commitSpecifier=tip(sandbox), filePath="appspec.yml"
    )
    assert pushed["fileContent"] == (shipped_bundle() / "appspec.yml").read_bytes()


def test_cli_refuses_a_broken_appspec_listing_every_problem(sandbox: tuple[str, ...], bundle: Path) -> None:
    cdpoc(*sandbox, "push-app", "--bundle", str(bundle))
    before = tip(sandbox)
    (bundle / "appspec.yml").write_text("version: 1.0\nos: plan9\nhooks:\n  Install:\n    - location: nope.sh\n")
    (bundle / "web" / "index.html").write_text("must not be pushed\n")
    code, out = cdpoc(*sandbox, "push-app", "--bundle", str(bundle))
    assert code == 2, out
    assert "3 problem(s)" in out and "plan9" in out and "version" in out and "Install" in out
    assert "Traceback" not in out
    assert tip(sandbox) == before


def test_cli_push_app_wait_follows_the_change_to_the_instances(
    sandbox: tuple[str, ...], bundle: Path, fast_polls: None
) -> None:
    (bundle / "web" / "index.html").write_text("<html>version 2</html>\n")
    code, out = cdpoc(*sandbox, "push-app", "--bundle", str(bundle), "--wait", "--timeout", "120")
    assert code == 0, out
    assert "pipeline execution" in out and "Deploy: Succeeded" in out
    assert "ValidateService Succeeded" in out and "healthy in the target group" in out
    assert re.search(r"Deployed: \S+ succeeded on 2 instance\(s\)", out)
    group = client(sandbox, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[f"{STACK}-app"])[
        "AutoScalingGroups"
    ][0]
    assert group["HealthCheckType"] == "ELB"
    # `up` keeps the ELB health checks the first good deployment switched on, and changes nothing else.
    code, out = cdpoc(*sandbox, "up")
    assert code == 0 and "No changes" in out, out


def test_cli_push_app_wait_reports_the_failing_hook_and_its_log(
    sandbox: tuple[str, ...], bundle: Path, fast_polls: None
) -> None:
    SIMULATION.fail_next_deployment("ValidateService", "curl: (7) Failed to connect to localhost port 8080")
    (bundle / "web" / "index.html").write_text("<html>broken version</html>\n")
    code, out = cdpoc(*sandbox, "push-app", "--bundle", str(bundle), "--wait", "--timeout", "120")
    assert code == 1, out
    assert re.search(r"instance i-\w+ failed at ValidateService, script \S+", out)
    assert "curl: (7) Failed to connect to localhost port 8080" in out
    assert "rolls the instances back" in out
    wait_until_no_deployment_is_active(sandbox, STACK, f"{STACK}-fleet")


def test_ctrl_c_stops_waiting_not_the_deployment(
    sandbox: tuple[str, ...], bundle: Path, fast_polls: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_look = rollout.look
    seen: list[rollout.Rollout] = []

    def look_then_interrupt(*args: Any) -> rollout.Rollout:
        # Ctrl-C at the look after the one that found the deployment (as if pressed while it waited).
        if seen and seen[-1].deployment_id:
            raise KeyboardInterrupt
        seen.append(real_look(*args))
        return seen[-1]

    monkeypatch.setattr(rollout, "look", look_then_interrupt)
    # Steps slow enough that the deployment is surely still running when the wait is interrupted.
    monkeypatch.setattr(SIMULATION, "step_seconds", 0.3)
    (bundle / "web" / "index.html").write_text("<html>interrupted version</html>\n")
    code, out = cdpoc(*sandbox, "push-app", "--bundle", str(bundle), "--wait", "--timeout", "120")
    assert code == 130, out
    deployment = seen[-1].deployment_id
    assert f"stopped waiting: deployment {deployment} continues" in out
    assert "cdpoc status" in out
    codedeploy = client(sandbox, "codedeploy")
    assert codedeploy.get_deployment(deploymentId=deployment)["deploymentInfo"]["status"] in ("Created", "InProgress")
    codedeploy.stop_deployment(deploymentId=deployment, autoRollbackEnabled=False)  # not to hold up the next test
    wait_until_no_deployment_is_active(sandbox, STACK, f"{STACK}-fleet")


def test_cli_push_app_wait_gives_up_at_the_timeout(
    sandbox: tuple[str, ...], bundle: Path, fast_polls: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Last before down: the slow deployment it starts is still running when the stack is deleted.
    monkeypatch.setattr(SIMULATION, "step_seconds", 60.0)
    (bundle / "web" / "index.html").write_text("<html>slow version</html>\n")
    code, out = cdpoc(*sandbox, "push-app", "--bundle", str(bundle), "--wait", "--timeout", "1")
    assert code == 1, out
    assert "gave up after 1s waiting for" in out and "cdpoc status" in out


def test_cli_down_leaves_nothing_of_the_ci_cd(sandbox: tuple[str, ...]) -> None:
    code, out = cdpoc(*sandbox, "down", "--yes")
    assert code == 0, out
    assert f"Leftover scan: nothing tagged cdpoc:stack={STACK} remains" in out
    repositories = client(sandbox, "codecommit").list_repositories()["repositories"]
    assert REPOSITORY not in [r["repositoryName"] for r in repositories]
    assert f"{STACK}-pipeline" not in [p["name"] for p in client(sandbox, "codepipeline").list_pipelines()["pipelines"]]
    assert STACK not in client(sandbox, "codedeploy").list_applications()["applications"]
    assert client(sandbox, "events").list_rules(NamePrefix=f"{STACK}-")["Rules"] == []


# --- following a rollout: pure functions of the API replies ----------------------------------------------

ACTIONS = [
    {"stageName": "Source", "status": "Succeeded", "startTime": "1", "output": {"executionResult": {}}},
    {
        "stageName": "Deploy",
        "status": "InProgress",
        "startTime": "2",
        "output": {"executionResult": {"externalExecutionId": "d-ABC"}},
    },
]


def target(instance: str, status: str, events: list[tuple[str, str]], log: str = "") -> dict[str, Any]:
    lifecycle = []
    for name, state in events:
        event: dict[str, Any] = {"lifecycleEventName": name, "status": state}
        if state == "Failed":
            event["diagnostics"] = {
                "errorCode": "ScriptFailed",
                "scriptName": "scripts/validate_service.sh",
                "message": "exit code 7",
                "logTail": log,
            }
        lifecycle.append(event)
    return {"targetId": instance, "status": status, "lifecycleEvents": lifecycle}


def test_a_rollout_is_read_from_the_execution_down_to_the_hooks() -> None:
    start = rollout.Rollout("c0ffee", execution_id="e-1")
    state = rollout.rollout_from(
        start,
        {"status": "InProgress"},
        ACTIONS,
        {"status": "InProgress"},
        [target("i-2", "InProgress", [("ApplicationStop", "Succeeded"), ("BeforeInstall", "InProgress")])],
        {"i-2": "healthy"},
    )
    assert state.deployment_id == "d-ABC" and state.actions == (("Source", "Succeeded"), ("Deploy", "InProgress"))
    assert state.instances[0].current_event == "BeforeInstall" and state.instances[0].health == "healthy"
    assert rollout.outcome(state) == ""
    assert "deployment d-ABC (InProgress: i-2 BeforeInstall InProgress)" in rollout.waiting_for(state)
    assert rollout.events(state, state) == []
    lines = rollout.events(start, state)
    assert "  Source: Succeeded" in lines and "  deployment d-ABC" in lines
    assert "    i-2: BeforeInstall InProgress" in lines and "    i-2: healthy in the target group" in lines


def test_a_failed_hook_is_reported_with_its_script_and_log_tail() -> None:
    log = "\n".join(f"[stderr]line {n}" for n in range(30))
    state = rollout.rollout_from(
        rollout.Rollout("c0ffee", execution_id="e-1"),
        {"status": "Failed"},
        ACTIONS,
        {"status": "Failed", "errorInformation": {"code": "HEALTH_CONSTRAINTS", "message": "too few healthy"}},
        [
            target("i-1", "Failed", [("ApplicationStart", "Succeeded"), ("ValidateService", "Failed")], log),
            target("i-2", "Skipped", [("ApplicationStop", "Skipped")]),
        ],
        {},
    )
    assert rollout.outcome(state) == rollout.FAILED
    lines = rollout.failure_lines(state)
    assert lines[0] == "instance i-1 failed at ValidateService, script scripts/validate_service.sh"
    assert lines[1].strip() == "ScriptFailed: exit code 7"
    assert (
        lines[-1].strip() == "[stderr]line 29" and len([x for x in lines if "[stderr]" in x]) == rollout.LOG_TAIL_LINES
    )


def test_failures_without_an_instance_say_what_failed_instead() -> None:
    source_failed = rollout.rollout_from(
        rollout.Rollout("c0ffee", execution_id="e-1"),
        {"status": "Failed"},
        [
            {
                "stageName": "Source",
                "status": "Failed",
                "output": {"executionResult": {"errorDetails": {"code": "X", "message": "branch main not found"}}},
            }
        ],
        None,
        [],
        {},
    )
    assert rollout.failure_lines(source_failed) == ["pipeline action Source: branch main not found"]
    assert rollout.outcome(replace(source_failed, execution_status="Superseded")) == rollout.FAILED
    assert rollout.outcome(replace(source_failed, execution_status="Succeeded")) == rollout.SUCCEEDED


def test_stopping_the_wait_names_what_keeps_going() -> None:
    pushed = rollout.Rollout("c0ffee1234567890")
    assert "revision c0ffee123456 is pushed" in rollout.stopped_waiting(pushed).message
    deploying = replace(pushed, execution_id="e-1", deployment_id="d-ABC")
    stopped = rollout.stopped_waiting(deploying)
    assert stopped.message == "stopped waiting: deployment d-ABC continues" and stopped.exit_code == 130
    assert "cdpoc status" in stopped.hint


def test_the_live_view_has_a_row_per_step_and_instance() -> None:
    state = rollout.rollout_from(
        rollout.Rollout("c0ffee", execution_id="e-1"),
        {"status": "InProgress"},
        ACTIONS,
        {"status": "InProgress"},
        [target("i-2", "InProgress", [("AfterInstall", "InProgress")])],
        {"i-2": "draining"},
    )
    console = Console(record=True, width=120)
    console.print(rollout.table(state))
    text = console.export_text()
    assert "Deploy" in text and "d-ABC" in text and "i-2" in text and "AfterInstall, draining in target group" in text


def test_a_failed_last_instance_is_a_failure_even_when_codedeploy_says_succeeded() -> None:
    state = rollout.rollout_from(
        rollout.Rollout("c0ffee", execution_id="e-1"),
        {"status": "Succeeded"},
        ACTIONS,
        {"status": "Succeeded"},
        [
            target("i-1", "Succeeded", [("ValidateService", "Succeeded")]),
            target("i-2", "Failed", [("ValidateService", "Failed")], "[stderr]no route to mongodb"),
        ],
        {},
    )
    assert rollout.outcome(state) == rollout.SUCCEEDED
    problem = rollout.verdict(state)
    assert problem is not None and problem.exit_code == 1
    assert (
        "succeeded, but not on every instance" in problem.message and "i-2 failed at ValidateService" in problem.message
    )
    assert "rolled nothing back" in problem.hint
    healthy = replace(state, instances=state.instances[:1])
    assert rollout.verdict(healthy) is None


def test_on_a_terminal_the_rollout_is_one_live_table(monkeypatch: pytest.MonkeyPatch) -> None:
    states = iter(
        [
            rollout.Rollout("c0ffee", execution_id="e-1", execution_status="InProgress"),
            rollout.Rollout("c0ffee", execution_id="e-1", execution_status="Succeeded", deployment_id="d-ABC"),
        ]
    )
    monkeypatch.setattr(rollout, "look", lambda *args: next(states))
    run = AwsRun(clients=None, stack="t1", waits=Waits(poll_max=0.0), sleep=lambda seconds: None)  # type: ignore[arg-type]
    terminal = Ui(console=Console(record=True, force_terminal=True, width=120))
    final = rollout.follow(run, terminal, "t1-pipeline", rollout.Rollout("c0ffee"), "t1-app", timeout=60)
    assert final.deployment_id == "d-ABC"
    text = terminal.console.export_text()
    assert "push-app: revision c0ffee" in text and "Succeeded" in text
    assert "pipeline execution e-1: Succeeded" not in text  # lines are for logs, the table is for terminals
