"""The sandbox's CI/CD simulation end to end: commit -> pipeline execution -> deployment -> instances.

Built with boto3 against moto (in process, and once through the sandbox server) on a fake clock: each
lifecycle event takes STEP seconds of simulated time, and every read at one instant must agree.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile
from typing import Any

import moto
import pytest
from botocore.exceptions import ClientError
from sandbox_world import (
    ACCOUNT,
    REGION,
    STEP,
    FakeClock,
    World,
    build_world,
    bundle,
    client,
    clock,
    make_rule,
    without_managed_policies,
)

from cdpoc.sandbox.cicd import SIMULATION, ask_sandbox
from cdpoc.sandbox.patching import PATCHES
from cdpoc.sandbox.server import Sandbox
from cdpoc.sandbox.simulation import ALL_EVENTS

__all__ = ["clock", "without_managed_policies"]

PINNED_MOTO = "5.2.5"
DEPLOY_STEPS = 1 + 2 * len(ALL_EVENTS)  # Created, then two instances one at a time with traffic control


def stage_states(world: World) -> dict[str, dict[str, Any]]:
    state = client("codepipeline").get_pipeline_state(name=world.pipeline)
    return {s["stageName"]: s for s in state["stageStates"]}


def action_executions(world: World, execution_id: str) -> dict[str, dict[str, Any]]:
    details = client("codepipeline").list_action_executions(
        pipelineName=world.pipeline, filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    return {d["actionName"]: d for d in details}


def execution(world: World, execution_id: str) -> dict[str, Any]:
    codepipeline = client("codepipeline")
    return dict(
        codepipeline.get_pipeline_execution(pipelineName=world.pipeline, pipelineExecutionId=execution_id)[
            "pipelineExecution"
        ]
    )


def deployment(deployment_id: str) -> dict[str, Any]:
    return dict(client("codedeploy").get_deployment(deploymentId=deployment_id)["deploymentInfo"])


def instance_targets(deployment_id: str) -> list[dict[str, Any]]:
    codedeploy = client("codedeploy")
    ids = codedeploy.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
    found = codedeploy.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=ids)["deploymentTargets"]
    return [t["instanceTarget"] for t in found]


def test_a_new_pipeline_runs_at_once_and_fails_on_an_empty_repository(clock: FakeClock) -> None:
    world = build_world()
    [created] = world.executions()
    assert created["trigger"]["triggerType"] == "CreatePipeline" and created["status"] == "InProgress"
    clock.advance(STEP)
    [created] = world.executions()
    assert created["status"] == "Failed"
    source = stage_states(world)["Source"]["actionStates"][0]["latestExecution"]
    assert source["status"] == "Failed" and "no branch named main" in source["errorDetails"]["message"]
    assert "latestExecution" not in stage_states(world)["Deploy"]


def test_commit_runs_the_pipeline_and_deploys_instance_by_instance(clock: FakeClock) -> None:
    world = build_world()
    clock.advance(STEP)  # the run CreatePipeline started has failed on the empty repository
    commit_id = world.commit(bundle(), message="first release")
    newest = world.executions()[0]
    assert newest["trigger"] == {
        "triggerType": "CloudWatchEvent",
        "triggerDetail": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{world.rule}",
    }
    assert newest["status"] == "InProgress"
    execution_id = newest["pipelineExecutionId"]
    assert stage_states(world)["Source"]["latestExecution"] == {
        "pipelineExecutionId": execution_id,
        "status": "InProgress",
        "type": "STANDARD",
    }

    clock.advance(STEP)  # Source done: the commit is zipped into the artifact bucket, Deploy has started
    states = stage_states(world)
    source_state = states["Source"]["actionStates"][0]
    assert source_state["currentRevision"]["revisionId"] == commit_id
    assert source_state["latestExecution"]["externalExecutionId"] == commit_id
    deploy_state = states["Deploy"]["actionStates"][0]["latestExecution"]
    assert deploy_state["status"] == "InProgress"
    deployment_id = deploy_state["externalExecutionId"]
    assert world.deployments() == [deployment_id]

    actions = action_executions(world, execution_id)
    assert actions["Source"]["status"] == "Succeeded"
    assert actions["Source"]["output"]["outputVariables"] == {
        "AuthorDate": "2023-11-14T22:13:21Z",
        "BranchName": "main",
        "CommitId": commit_id,
        "CommitMessage": "first release",
        "CommitterDate": "2023-11-14T22:13:21Z",
        "RepositoryName": world.repository,
    }
    artifact = actions["Source"]["output"]["outputArtifacts"][0]["s3location"]
    assert actions["Deploy"]["input"]["inputArtifacts"][0]["s3location"] == artifact
    assert actions["Deploy"]["output"]["executionResult"]["externalExecutionId"] == deployment_id
    revision = deployment(deployment_id)["revision"]
    assert revision["revisionType"] == "S3"
    assert revision["s3Location"]["bundleType"] == "zip"
    assert {k: revision["s3Location"][k] for k in ("bucket", "key")} == artifact
    zipped = client("s3").get_object(Bucket=artifact["bucket"], Key=artifact["key"])["Body"].read()
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        assert sorted(archive.namelist()) == sorted(bundle())
        assert archive.read("appspec.yml") == bundle()["appspec.yml"]

    clock.advance(STEP * (1 + len(ALL_EVENTS) + 0.5))  # first instance done, second half-way through its first event
    info = deployment(deployment_id)
    assert info["status"] == "InProgress" and info["deploymentOverview"]["Succeeded"] == 1
    assert sorted(t["status"] for t in instance_targets(deployment_id)) == ["InProgress", "Succeeded"]
    assert execution(world, execution_id)["status"] == "InProgress"
    assert stage_states(world)["Deploy"]["latestExecution"]["status"] == "InProgress"

    clock.advance(STEP * len(ALL_EVENTS))
    assert deployment(deployment_id)["status"] == "Succeeded"
    finished = execution(world, execution_id)
    assert finished["status"] == "Succeeded"
    assert finished["artifactRevisions"][0]["revisionId"] == commit_id
    assert stage_states(world)["Deploy"]["actionStates"][0]["latestExecution"]["status"] == "Succeeded"
    assert world.executions()[0]["sourceRevisions"][0]["revisionId"] == commit_id
    assert {t["status"] for t in instance_targets(deployment_id)} == {"Succeeded"}


def test_a_failed_hook_fails_the_deployment_and_the_execution(clock: FakeClock) -> None:
    world = build_world()
    SIMULATION.fail_next_deployment("ValidateService", "curl: (22) The requested URL returned error: 503")
    world.commit(bundle())
    execution_id = world.executions()[0]["pipelineExecutionId"]
    clock.advance(STEP * (1 + DEPLOY_STEPS))
    failed = execution(world, execution_id)
    assert failed["status"] == "Failed"
    deploy = stage_states(world)["Deploy"]
    assert deploy["latestExecution"]["status"] == "Failed"
    action = deploy["actionStates"][0]["latestExecution"]
    assert action["status"] == "Failed" and action["errorDetails"]["code"] == "JobFailed"
    deployment_id = action["externalExecutionId"]
    assert deployment_id in failed["statusSummary"]
    assert deployment(deployment_id)["status"] == "Failed"
    first, second = sorted(instance_targets(deployment_id), key=lambda t: t["status"])
    assert (first["status"], second["status"]) == ("Failed", "Skipped")
    hook = next(e for e in first["lifecycleEvents"] if e["status"] == "Failed")
    assert hook["lifecycleEventName"] == "ValidateService"
    assert hook["diagnostics"]["scriptName"] == "scripts/validate.sh"
    assert hook["diagnostics"]["logTail"] == "[stderr]curl: (22) The requested URL returned error: 503"
    assert {e["status"] for e in second["lifecycleEvents"]} == {"Skipped"}


def test_no_rule_no_execution(clock: FakeClock) -> None:
    world = build_world(rule=False)
    client("events").put_rule(
        Name="disabled", EventPattern=json.dumps({"source": ["aws.codecommit"]}), State="DISABLED"
    )
    client("events").put_targets(Rule="disabled", Targets=[{"Id": "p", "Arn": world.pipeline_arn}])
    world.rule = "other-branch"
    make_rule(world, branch="release")
    world.commit(bundle())
    assert [e["trigger"]["triggerType"] for e in world.executions()] == ["CreatePipeline"]
    assert world.deployments() == []


def test_a_polling_source_starts_without_a_rule(clock: FakeClock) -> None:
    world = build_world(rule=False, poll=True)
    world.commit(bundle())
    newest = world.executions()[0]
    assert newest["trigger"] == {"triggerType": "PollForSourceChanges", "triggerDetail": "Source"}


def test_a_newer_commit_supersedes_the_one_waiting_for_deploy(clock: FakeClock) -> None:
    world = build_world()
    first = world.commit(bundle(), message="one")
    clock.advance(STEP * 2)  # "one" is deploying
    world.commit({"README.md": b"two"}, message="two")
    clock.advance(STEP * 2)  # "two" waits at Deploy's entrance
    states = stage_states(world)
    waiting = states["Deploy"]["inboundExecutions"]
    assert len(waiting) == 1 and states["Deploy"]["inboundExecution"] == waiting[0]
    third = world.commit({"README.md": b"three"}, message="three")
    clock.advance(STEP * 2)
    clock.advance(STEP * 2 * DEPLOY_STEPS)
    runs = {e["sourceRevisions"][0]["revisionSummary"]: e["status"] for e in world.executions() if e["sourceRevisions"]}
    assert runs == {"one": "Succeeded", "two": "Superseded", "three": "Succeeded"}
    deployed = [deployment(d)["revision"]["s3Location"]["key"] for d in world.deployments()]
    assert len(deployed) == 2
    assert stage_states(world)["Source"]["actionStates"][0]["currentRevision"]["revisionId"] == third
    assert first != third


def test_start_pipeline_execution_deploys_the_branch_tip(clock: FakeClock) -> None:
    world = build_world(rule=False)
    commit_id = world.commit(bundle())
    codepipeline = client("codepipeline")
    execution_id = codepipeline.start_pipeline_execution(name=world.pipeline)["pipelineExecutionId"]
    assert execution(world, execution_id)["trigger"]["triggerType"] == "StartPipelineExecution"
    # it waits one step for Source, where the run CreatePipeline started is failing on the then empty repository
    clock.advance(STEP * (2 + DEPLOY_STEPS))
    assert execution(world, execution_id)["status"] == "Succeeded"
    assert execution(world, execution_id)["artifactRevisions"][0]["revisionId"] == commit_id
    with pytest.raises(ClientError) as exc:
        codepipeline.list_action_executions(pipelineName=world.pipeline, filter={"pipelineExecutionId": "nope"})
    assert exc.value.response["Error"]["Code"] == "PipelineExecutionNotFoundException"
    with pytest.raises(ClientError) as exc:
        codepipeline.get_pipeline_state(name="nope")
    assert exc.value.response["Error"]["Code"] == "PipelineNotFoundException"


def test_the_running_sandbox_takes_control_requests(
    without_managed_policies: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeClock()
    try:
        with Sandbox() as sandbox:
            monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")  # Sandbox.start sets it for real use
            monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.endpoint)
            SIMULATION.clock = fake
            SIMULATION.step_seconds = STEP
            assert ask_sandbox(sandbox.endpoint, "step-seconds", {"seconds": STEP})["stepSeconds"] == STEP
            state = ask_sandbox(sandbox.endpoint, "fail-next-deployment", {"hook": "AfterInstall", "message": "boom"})
            assert state["pendingFailures"] == [{"hook": "AfterInstall", "message": "boom"}]
            with pytest.raises(urllib.error.HTTPError) as refused:
                ask_sandbox(sandbox.endpoint, "fail-next-deployment", {"hook": "NotAHook"})
            assert refused.value.code == 400

            world = build_world()
            world.commit(bundle())
            fake.advance(STEP * (1 + DEPLOY_STEPS))
            deployment_id = stage_states(world)["Deploy"]["actionStates"][0]["latestExecution"]["externalExecutionId"]
            failed = next(t for t in instance_targets(deployment_id) if t["status"] == "Failed")
            hook = next(e for e in failed["lifecycleEvents"] if e["status"] == "Failed")
            assert hook["lifecycleEventName"] == "AfterInstall" and hook["diagnostics"]["logTail"] == "[stderr]boom"
            assert ask_sandbox(sandbox.endpoint, "simulation")["pendingFailures"] == []

            ask_sandbox(sandbox.endpoint, "fail-next-deployment", {"hook": "ValidateService"})
            reset = urllib.request.Request(sandbox.endpoint + "/moto-api/reset", data=b"", method="POST")
            urllib.request.urlopen(reset, timeout=10).close()
            assert ask_sandbox(sandbox.endpoint, "simulation")["pendingFailures"] == []
    finally:
        SIMULATION.reset()


def test_moto_still_lacks_what_the_sandbox_adds() -> None:
    """Fails when moto changes under us: an operation we add that moto now has (drop ours), or one we
    replace that moto no longer has (re-check ours), or a different moto version (re-run this file)."""
    assert moto.__version__ == PINNED_MOTO, f"moto {moto.__version__}: re-check cdpoc/sandbox additions"
    ours = {(p.response_class.__name__, p.name) for p in PATCHES}
    assert ("CodeCommitResponse", "create_commit") in ours and ("CodePipelineResponse", "get_pipeline_state") in ours
    now_native = [f"{p.response_class.__name__}.{p.name}" for p in PATCHES if not p.replaces and p.moto_had_it]
    assert now_native == [], f"moto implements these natively now; drop cdpoc's versions: {now_native}"
    vanished = [f"{p.response_class.__name__}.{p.name}" for p in PATCHES if p.replaces and not p.moto_had_it]
    assert vanished == [], f"moto no longer has these operations that cdpoc replaces: {vanished}"


@pytest.mark.parametrize("read_every_step", [False, True])
def test_a_push_during_a_rollback_is_refused_however_it_is_watched(clock: FakeClock, read_every_step: bool) -> None:
    """The rollback of a failed deployment is active when the next run reaches Deploy, as on AWS; the
    outcome must not depend on when the sandbox was read."""
    world = build_world()
    world.commit(bundle(), message="good")
    clock.advance(STEP * (1 + DEPLOY_STEPS))
    SIMULATION.fail_next_deployment("ValidateService")
    world.commit({"README.md": b"bad"}, message="bad")
    clock.advance(STEP * 2)
    world.commit({"README.md": b"next"}, message="next")  # waits at Deploy until "bad" fails
    for _ in range(3 * DEPLOY_STEPS if read_every_step else 1):
        clock.advance(STEP if read_every_step else STEP * 3 * DEPLOY_STEPS)
        if read_every_step:
            world.executions()
    runs = {e["sourceRevisions"][0]["revisionSummary"]: e for e in world.executions() if e["sourceRevisions"]}
    assert (runs["good"]["status"], runs["bad"]["status"], runs["next"]["status"]) == ("Succeeded", "Failed", "Failed")
    assert "DeploymentLimitExceededException" in runs["next"]["statusSummary"]
    creators = [deployment(d)["creator"] for d in world.deployments()]
    assert creators == ["codeDeployRollback", "user", "user"]


def test_an_s3_source_deploys_the_object_version(clock: FakeClock) -> None:
    world = build_world(pipeline=False, rule=False)
    s3 = client("s3")
    s3.put_bucket_versioning(Bucket=world.bucket, VersioningConfiguration={"Status": "Enabled"})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, content in bundle().items():
            archive.writestr(path, content)
    version = s3.put_object(Bucket=world.bucket, Key="source/app.zip", Body=buffer.getvalue())["VersionId"]
    source = {
        "name": "Source",
        "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
        "configuration": {"S3Bucket": world.bucket, "S3ObjectKey": "source/app.zip", "PollForSourceChanges": "false"},
        "outputArtifacts": [{"name": "SourceOutput"}],
    }
    deploy = {
        "name": "Deploy",
        "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"},
        "configuration": {"ApplicationName": world.application, "DeploymentGroupName": world.group},
        "inputArtifacts": [{"name": "SourceOutput"}],
    }
    client("codepipeline").create_pipeline(
        pipeline={
            "name": world.pipeline,
            "roleArn": world.role_arn,
            "artifactStore": {"type": "S3", "location": world.bucket},
            "stages": [{"name": "Source", "actions": [source]}, {"name": "Deploy", "actions": [deploy]}],
        }
    )
    [created] = world.executions()  # a new pipeline runs at once, here on the object already there
    clock.advance(STEP * (1 + DEPLOY_STEPS))
    assert execution(world, created["pipelineExecutionId"])["status"] == "Succeeded"
    actions = action_executions(world, created["pipelineExecutionId"])
    assert actions["Source"]["output"]["outputVariables"]["VersionId"] == version
    assert deployment(world.deployments()[0])["status"] == "Succeeded"
