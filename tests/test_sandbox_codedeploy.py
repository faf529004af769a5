"""The sandbox's CodeDeploy: the operations moto lacks, and deployments that move through their lifecycle.

Deployments are driven by a fake clock (STEP seconds per lifecycle event), so every assertion is about an
instant chosen by the test, never about wall-clock time.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sandbox_world import (
    IMAGE,
    STEP,
    FakeClock,
    World,
    build_world,
    bundle,
    client,
    clock,
    make_asg,
    make_role,
    without_managed_policies,
)

from cdpoc.sandbox.cicd import SIMULATION
from cdpoc.sandbox.deployments import HealthRule
from cdpoc.sandbox.simulation import ALL_EVENTS, IN_PLACE_EVENTS

__all__ = ["clock", "without_managed_policies"]

TRAFFIC_EVENTS = len(ALL_EVENTS)  # 13 events per instance with traffic control


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def upload_bundle(world: World, key: str = "bundle.zip", files: dict[str, bytes] | None = None) -> dict[str, Any]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, content in (files or bundle()).items():
            archive.writestr(path, content)
    client("s3").put_object(Bucket=world.bucket, Key=key, Body=buffer.getvalue())
    return {"revisionType": "S3", "s3Location": {"bucket": world.bucket, "key": key, "bundleType": "zip"}}


def deploy(world: World, revision: dict[str, Any]) -> str:
    codedeploy = client("codedeploy")
    return str(
        codedeploy.create_deployment(
            applicationName=world.application, deploymentGroupName=world.group, revision=revision
        )["deploymentId"]
    )


def deployment(deployment_id: str) -> dict[str, Any]:
    return dict(client("codedeploy").get_deployment(deploymentId=deployment_id)["deploymentInfo"])


def targets(deployment_id: str) -> dict[str, dict[str, Any]]:
    codedeploy = client("codedeploy")
    ids = codedeploy.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
    if not ids:
        return {}
    found = codedeploy.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=ids)["deploymentTargets"]
    return {t["instanceTarget"]["targetId"]: t["instanceTarget"] for t in found}


def event_statuses(target: dict[str, Any]) -> dict[str, str]:
    return {e["lifecycleEventName"]: e["status"] for e in target["lifecycleEvents"]}


@pytest.fixture
def world(clock: FakeClock) -> World:
    return build_world(pipeline=False, rule=False)


def test_deployment_group_keeps_asg_names_hooks_and_alarms(world: World) -> None:
    codedeploy = client("codedeploy")
    alarms = {"enabled": True, "ignorePollAlarmFailure": False, "alarms": [{"name": "app-5xx"}]}
    codedeploy.update_deployment_group(
        applicationName=world.application, currentDeploymentGroupName=world.group, alarmConfiguration=alarms
    )
    info = codedeploy.get_deployment_group(applicationName=world.application, deploymentGroupName=world.group)[
        "deploymentGroupInfo"
    ]
    [asg] = info["autoScalingGroups"]
    assert asg["name"] == world.asg
    assert asg["hook"].startswith(f"CodeDeploy-managed-automatic-launch-deployment-hook-{world.group}-")
    hooks = client("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName=world.asg)["LifecycleHooks"]
    assert [(h["LifecycleHookName"], h["LifecycleTransition"]) for h in hooks] == [
        (asg["hook"], "autoscaling:EC2_INSTANCE_LAUNCHING")
    ]
    assert info["alarmConfiguration"] == alarms
    assert "lastSuccessfulDeployment" not in info and "targetRevision" not in info
    batch = codedeploy.batch_get_deployment_groups(
        applicationName=world.application, deploymentGroupNames=[world.group, "x"]
    )
    assert [g["deploymentGroupName"] for g in batch["deploymentGroupsInfo"]] == [world.group]
    assert "x" in batch["errorMessage"]


def test_update_deployment_group(world: World) -> None:
    codedeploy = client("codedeploy")
    make_asg("other-asg", 1)
    codedeploy.update_deployment_group(
        applicationName=world.application,
        currentDeploymentGroupName=world.group,
        newDeploymentGroupName="renamed",
        deploymentConfigName="CodeDeployDefault.AllAtOnce",
        autoScalingGroups=["other-asg"],
        autoRollbackConfiguration={"enabled": False, "events": []},
    )
    info = codedeploy.get_deployment_group(applicationName=world.application, deploymentGroupName="renamed")[
        "deploymentGroupInfo"
    ]
    assert info["deploymentConfigName"] == "CodeDeployDefault.AllAtOnce"
    assert [g["name"] for g in info["autoScalingGroups"]] == ["other-asg"]
    assert info["autoRollbackConfiguration"] == {"enabled": False, "events": []}
    assert info["deploymentStyle"]["deploymentOption"] == "WITH_TRAFFIC_CONTROL"  # not sent, so unchanged
    autoscaling = client("autoscaling")
    assert autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=world.asg)["LifecycleHooks"] == []
    assert len(autoscaling.describe_lifecycle_hooks(AutoScalingGroupName="other-asg")["LifecycleHooks"]) == 1

    refusals = [
        ({"currentDeploymentGroupName": world.group}, "DeploymentGroupDoesNotExistException"),
        (
            {"currentDeploymentGroupName": "renamed", "deploymentConfigName": "Mine"},
            "DeploymentConfigDoesNotExistException",
        ),
    ]
    codedeploy.create_deployment_group(
        applicationName=world.application,
        deploymentGroupName="second",
        serviceRoleArn=make_role("r2", "codedeploy.amazonaws.com"),
    )
    refusals.append(
        (
            {"currentDeploymentGroupName": "renamed", "newDeploymentGroupName": "second"},
            "DeploymentGroupAlreadyExistsException",
        )
    )
    for request, expected in refusals:
        with pytest.raises(ClientError) as exc:
            codedeploy.update_deployment_group(applicationName=world.application, **request)
        assert code(exc) == expected


def test_deletes_remove_hooks_and_are_idempotent(world: World) -> None:
    codedeploy = client("codedeploy")
    autoscaling = client("autoscaling")
    deleted = codedeploy.delete_deployment_group(applicationName=world.application, deploymentGroupName=world.group)
    assert deleted["hooksNotCleanedUp"] == []
    assert autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=world.asg)["LifecycleHooks"] == []
    assert codedeploy.list_deployment_groups(applicationName=world.application)["deploymentGroups"] == []
    codedeploy.delete_deployment_group(applicationName=world.application, deploymentGroupName=world.group)
    codedeploy.delete_application(applicationName=world.application)
    codedeploy.delete_application(applicationName=world.application)
    with pytest.raises(ClientError) as exc:
        codedeploy.get_application(applicationName=world.application)
    assert code(exc) == "ApplicationDoesNotExistException"


def test_deleting_the_application_deletes_its_groups(world: World) -> None:
    codedeploy = client("codedeploy")
    codedeploy.delete_application(applicationName=world.application)
    assert client("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName=world.asg)["LifecycleHooks"] == []
    codedeploy.create_application(applicationName=world.application)
    assert codedeploy.list_deployment_groups(applicationName=world.application)["deploymentGroups"] == []


def test_one_at_a_time_moves_through_the_lifecycle(world: World, clock: FakeClock) -> None:
    deployment_id = deploy(world, upload_bundle(world))
    first, second = world.instances
    assert deployment(deployment_id)["status"] == "Created"
    with pytest.raises(ClientError) as exc:
        client("codedeploy").list_deployment_targets(deploymentId=deployment_id)
    assert code(exc) == "DeploymentNotStartedException"

    clock.advance(STEP * 1.5)  # half-way through the first instance's first event
    info = deployment(deployment_id)
    assert info["status"] == "InProgress"
    assert info["deploymentOverview"] == {
        "Pending": 1,
        "InProgress": 1,
        "Succeeded": 0,
        "Failed": 0,
        "Skipped": 0,
        "Ready": 0,
    }
    now = targets(deployment_id)
    assert now[first]["status"] == "InProgress" and now[second]["status"] == "Pending"
    assert event_statuses(now[first])["BeforeBlockTraffic"] == "InProgress"
    assert event_statuses(now[first])["BlockTraffic"] == "Pending"
    assert "endTime" not in now[first]["lifecycleEvents"][0]

    clock.advance(STEP * TRAFFIC_EVENTS)  # the first instance is done, the second has started
    now = targets(deployment_id)
    assert now[first]["status"] == "Succeeded" and now[second]["status"] == "InProgress"
    assert set(event_statuses(now[first]).values()) == {"Succeeded"}
    assert [e["lifecycleEventName"] for e in now[first]["lifecycleEvents"]] == list(ALL_EVENTS)
    assert now[first]["lifecycleEvents"][-1]["diagnostics"] == {
        "errorCode": "Success",
        "scriptName": "",
        "message": "Succeeded",
        "logTail": "",
    }
    codedeploy = client("codedeploy")
    assert codedeploy.list_deployment_instances(deploymentId=deployment_id, instanceStatusFilter=["Succeeded"])[
        "instancesList"
    ] == [first]
    summary = codedeploy.get_deployment_instance(deploymentId=deployment_id, instanceId=second)["instanceSummary"]
    assert summary["status"] == "InProgress" and summary["instanceId"].endswith(f":instance/{second}")
    filtered = codedeploy.list_deployment_targets(
        deploymentId=deployment_id, targetFilters={"TargetStatus": ["Pending"]}
    )
    assert filtered["targetIds"] == []

    clock.advance(STEP * TRAFFIC_EVENTS)
    info = deployment(deployment_id)
    assert info["status"] == "Succeeded" and info["deploymentOverview"]["Succeeded"] == 2
    assert "errorInformation" not in info
    assert info["completeTime"] > info["startTime"] > info["createTime"]
    group = codedeploy.get_deployment_group(applicationName=world.application, deploymentGroupName=world.group)[
        "deploymentGroupInfo"
    ]
    assert group["lastSuccessfulDeployment"]["deploymentId"] == deployment_id
    assert group["targetRevision"]["s3Location"]["key"] == "bundle.zip"


def test_failure_at_a_hook_skips_the_rest(world: World, clock: FakeClock) -> None:
    SIMULATION.fail_next_deployment("ValidateService", "curl: (7) Failed to connect to localhost port 80")
    deployment_id = deploy(world, upload_bundle(world))
    first, second = world.instances
    clock.advance(STEP * 100)
    info = deployment(deployment_id)
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "HEALTH_CONSTRAINTS"
    assert info["deploymentOverview"]["Failed"] == 1 and info["deploymentOverview"]["Skipped"] == 1
    assert "no previous successful revision" in info["rollbackInfo"]["rollbackMessage"]
    found = targets(deployment_id)
    assert found[first]["status"] == "Failed" and found[second]["status"] == "Skipped"
    statuses = event_statuses(found[first])
    assert statuses["ApplicationStart"] == "Succeeded" and statuses["ValidateService"] == "Failed"
    assert statuses["AllowTraffic"] == "Skipped"
    assert set(event_statuses(found[second]).values()) == {"Skipped"}
    failed = next(e for e in found[first]["lifecycleEvents"] if e["status"] == "Failed")
    assert failed["diagnostics"] == {
        "errorCode": "ScriptFailed",
        "scriptName": "scripts/validate.sh",
        "message": "Script at specified location: scripts/validate.sh run as user app failed with exit code 1",
        "logTail": "[stderr]curl: (7) Failed to connect to localhost port 80",
    }
    only_failed = client("codedeploy").list_deployment_targets(
        deploymentId=deployment_id, targetFilters={"TargetStatus": ["Failed"]}
    )
    assert only_failed["targetIds"] == [first]
    assert SIMULATION.pending_failures() == []


def test_a_failure_after_a_success_rolls_back(world: World, clock: FakeClock) -> None:
    good = deploy(world, upload_bundle(world, "v1.zip"))
    clock.advance(STEP * 100)
    SIMULATION.fail_next_deployment("AfterInstall")
    bad = deploy(world, upload_bundle(world, "v2.zip"))
    failed_at = clock.now + STEP * (1 + 8)  # Created, then eight events up to and including AfterInstall
    clock.advance(STEP * 9.5)
    info = deployment(bad)
    assert info["status"] == "Failed" and info["previousRevision"]["s3Location"]["key"] == "v1.zip"
    rollback_id = info["rollbackInfo"]["rollbackDeploymentId"]
    rollback = deployment(rollback_id)
    assert rollback["creator"] == "codeDeployRollback"
    assert rollback["rollbackInfo"]["rollbackTriggeringDeploymentId"] == bad
    assert rollback["revision"]["s3Location"]["key"] == "v1.zip"
    assert rollback["createTime"].timestamp() == failed_at
    assert rollback["status"] == "Created"  # one step queued, like any deployment
    listed = client("codedeploy").list_deployments(applicationName=world.application, deploymentGroupName=world.group)
    assert listed["deployments"] == [rollback_id, bad, good]  # newest first
    clock.advance(STEP * 100)
    assert deployment(rollback_id)["status"] == "Succeeded"


def test_stop_deployment(world: World, clock: FakeClock) -> None:
    codedeploy = client("codedeploy")
    deployment_id = deploy(world, upload_bundle(world))
    first, second = world.instances
    clock.advance(STEP * 3.5)
    stopped = codedeploy.stop_deployment(deploymentId=deployment_id)
    assert stopped["status"] in ("Pending", "Succeeded")
    info = deployment(deployment_id)
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "MANUAL_STOP"
    found = targets(deployment_id)
    statuses = event_statuses(found[first])
    assert statuses["BlockTraffic"] == "Succeeded" and statuses["AfterBlockTraffic"] == "Failed"
    assert statuses["ApplicationStop"] == "Skipped"
    assert found[second]["status"] == "Skipped"
    clock.advance(STEP * 100)
    assert deployment(deployment_id)["status"] == "Stopped"
    with pytest.raises(ClientError) as exc:
        codedeploy.stop_deployment(deploymentId=deployment_id)
    assert code(exc) == "DeploymentAlreadyCompletedException"

    # asked to, a stop rolls back to the last successful revision (there is one now)
    good = deploy(world, upload_bundle(world, "good.zip"))
    clock.advance(STEP * 100)
    stopped_id = deploy(world, upload_bundle(world, "next.zip"))
    clock.advance(STEP * 3)
    codedeploy.stop_deployment(deploymentId=stopped_id, autoRollbackEnabled=True)
    rollback_id = deployment(stopped_id)["rollbackInfo"]["rollbackDeploymentId"]
    assert deployment(rollback_id)["revision"] == deployment(good)["revision"]


def test_all_at_once_deploys_together_and_survives_one_failure(clock: FakeClock) -> None:
    world = build_world(pipeline=False, rule=False, traffic_control=False, config="CodeDeployDefault.AllAtOnce")
    SIMULATION.fail_next_deployment("ApplicationStart")
    deployment_id = deploy(world, upload_bundle(world))
    clock.advance(STEP * 2.5)
    assert {t["status"] for t in targets(deployment_id).values()} == {"InProgress"}
    clock.advance(STEP * 100)
    info = deployment(deployment_id)
    # AllAtOnce succeeds when at least one instance does
    assert info["status"] == "Succeeded"
    assert sorted(t["status"] for t in targets(deployment_id).values()) == ["Failed", "Succeeded"]
    assert [e["lifecycleEventName"] for e in next(iter(targets(deployment_id).values()))["lifecycleEvents"]] == list(
        IN_PLACE_EVENTS
    )


def test_missing_revision_fails_at_download_bundle(world: World, clock: FakeClock) -> None:
    revision = {"revisionType": "S3", "s3Location": {"bucket": world.bucket, "key": "nope.zip", "bundleType": "zip"}}
    deployment_id = deploy(world, revision)
    clock.advance(STEP * 100)
    assert deployment(deployment_id)["status"] == "Failed"
    first = targets(deployment_id)[world.instances[0]]
    failed = next(e for e in first["lifecycleEvents"] if e["status"] == "Failed")
    assert failed["lifecycleEventName"] == "DownloadBundle"
    assert failed["diagnostics"]["errorCode"] == "UnknownError" and "nope.zip" in failed["diagnostics"]["message"]


def test_one_active_deployment_per_group(world: World, clock: FakeClock) -> None:
    revision = upload_bundle(world)
    first = deploy(world, revision)
    with pytest.raises(ClientError) as exc:
        deploy(world, revision)
    assert code(exc) == "DeploymentLimitExceededException" and first in str(exc.value)
    clock.advance(STEP * 100)
    deploy(world, revision)


def test_instances_found_by_the_group(clock: FakeClock) -> None:
    world = build_world(instances=0, pipeline=False, rule=False)
    codedeploy = client("codedeploy")
    empty_asg = deploy(world, upload_bundle(world))
    codedeploy.create_deployment_group(
        applicationName=world.application,
        deploymentGroupName="tagged",
        serviceRoleArn=make_role("r3", "codedeploy.amazonaws.com"),
        ec2TagFilters=[{"Key": "Role", "Value": "web", "Type": "KEY_AND_VALUE"}],
    )
    ec2 = client("ec2")
    tagged = ec2.run_instances(
        ImageId=IMAGE,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Role", "Value": "web"}]}],
    )["Instances"][0]["InstanceId"]
    ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1)
    by_tags = codedeploy.create_deployment(
        applicationName=world.application, deploymentGroupName="tagged", revision=upload_bundle(world)
    )["deploymentId"]
    codedeploy.create_deployment_group(
        applicationName=world.application,
        deploymentGroupName="nothing",
        serviceRoleArn=make_role("r4", "codedeploy.amazonaws.com"),
    )
    nothing = codedeploy.create_deployment(
        applicationName=world.application, deploymentGroupName="nothing", revision=upload_bundle(world)
    )["deploymentId"]
    clock.advance(STEP * 100)
    # an empty Auto Scaling group is fine (instances launched later get the revision); no instances at all is not
    assert deployment(empty_asg)["status"] == "Succeeded" and targets(empty_asg) == {}
    assert list(targets(by_tags)) == [tagged]
    assert deployment(nothing)["errorInformation"]["code"] == "NO_INSTANCES"


def test_deployment_configs() -> None:
    assert HealthRule("MOST_CONCURRENCY", 1).batch_size(4) == 1
    assert HealthRule("FLEET_PERCENT", 50).batch_size(5) == 2  # half, rounded down
    assert HealthRule("FLEET_PERCENT", 40).batch_size(9) == 5  # AWS's own example
    assert HealthRule("HOST_COUNT", 0).batch_size(4) == 4
    one_at_a_time = HealthRule("MOST_CONCURRENCY", 1)
    # AWS: with OneAtATime a failure on the last of several instances still succeeds; on one instance it fails
    assert one_at_a_time.fails(2, [0]) and not one_at_a_time.fails(2, [1]) and one_at_a_time.fails(1, [0])
    assert not HealthRule("FLEET_PERCENT", 50).fails(2, [0]) and HealthRule("FLEET_PERCENT", 50).fails(1, [0])
    assert not HealthRule("HOST_COUNT", 0).fails(3, [0, 1]) and HealthRule("HOST_COUNT", 0).fails(2, [0, 1])


def test_get_deployment_config_and_unknown_ids(world: World) -> None:
    codedeploy = client("codedeploy")
    one = codedeploy.get_deployment_config(deploymentConfigName="CodeDeployDefault.OneAtATime")["deploymentConfigInfo"]
    assert one["minimumHealthyHosts"] == {"type": "MOST_CONCURRENCY", "value": 1}
    assert one["computePlatform"] == "Server"
    half = codedeploy.get_deployment_config(deploymentConfigName="CodeDeployDefault.HalfAtATime")[
        "deploymentConfigInfo"
    ]
    assert half["minimumHealthyHosts"] == {"type": "FLEET_PERCENT", "value": 50}
    assert "CodeDeployDefault.AllAtOnce" in codedeploy.list_deployment_configs()["deploymentConfigsList"]
    deployment_id = deploy(world, upload_bundle(world))
    refusals = [
        (
            lambda: codedeploy.get_deployment_config(deploymentConfigName="Mine"),
            "DeploymentConfigDoesNotExistException",
        ),
        (lambda: codedeploy.list_deployment_targets(deploymentId="d-NOPE"), "DeploymentDoesNotExistException"),
        (lambda: codedeploy.stop_deployment(deploymentId="d-NOPE"), "DeploymentDoesNotExistException"),
        (
            lambda: codedeploy.get_deployment_instance(deploymentId=deployment_id, instanceId="i-0"),
            "InstanceDoesNotExistException",
        ),
        (
            lambda: codedeploy.create_deployment(
                applicationName=world.application,
                deploymentGroupName=world.group,
                deploymentConfigName="Mine",
                revision=upload_bundle(world),
            ),
            "DeploymentConfigDoesNotExistException",
        ),
    ]
    for call, expected in refusals:
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == expected
    SIMULATION.clock = lambda: 1e10  # long after: the deployment has started and finished
    with pytest.raises(ClientError) as exc:
        codedeploy.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=["i-0"])
    assert code(exc) == "DeploymentTargetDoesNotExistException"
