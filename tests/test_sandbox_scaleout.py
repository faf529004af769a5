"""Auto Scaling with CodeDeploy in the sandbox (cdpoc/sandbox/scaleout.py), pinned against moto 5.2.5.

A deployment group's launch hook holds a new instance in Pending:Wait while CodeDeploy deploys the last
successful revision to it (a deployment created by `autoscaling`); the instance goes InService, into the
target group, when that deployment succeeds, and is terminated (and replaced) when it fails. Instances
spread over the group's zones and take the launch template's MetadataOptions.

In-process tests run on a fake clock (STEP seconds per lifecycle event, instance boot under the `fast`
profile); the last test drives the real CLI (`up`, `push-app --wait`) against a served sandbox.
"""

from __future__ import annotations

import io
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto.autoscaling.models import autoscaling_backends
from moto.core import DEFAULT_ACCOUNT_ID
from sandbox_world import (
    IMAGE,
    STEP,
    FakeClock,
    bundle,
    client,
    clock,
    make_instance_profile,
    make_role,
    without_managed_policies,
)
from typer.testing import CliRunner

from cdpoc import rollout
from cdpoc.cli import app
from cdpoc.sandbox import scaleout
from cdpoc.sandbox.cicd import SIMULATION
from cdpoc.sandbox.server import Sandbox
from cdpoc.sandbox.simulation import ALLOW_TRAFFIC_EVENTS, IN_PLACE_EVENTS

__all__ = ["clock", "without_managed_policies"]

REGION = "us-east-1"
ZONES = (f"{REGION}a", f"{REGION}b")
METADATA = {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "InstanceMetadataTags": "enabled"}
LAUNCH_EVENTS = len(IN_PLACE_EVENTS + ALLOW_TRAFFIC_EVENTS)  # no block-traffic events for a new instance
LONG_ENOUGH = 100 * STEP  # every deployment here ends well within it


@dataclass
class Fleet:
    asg: str = "web-asg"
    application: str = "web"
    group: str = "web-dg"
    bucket: str = "web-artifacts"
    subnets: tuple[str, ...] = ()
    target_group: str = ""

    def instances(self) -> dict[str, str]:
        """Instance id -> lifecycle state, as DescribeAutoScalingGroups reports them."""
        group = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[self.asg])
        return {i["InstanceId"]: i["LifecycleState"] for i in group["AutoScalingGroups"][0]["Instances"]}

    def scale_to(self, desired: int) -> list[str]:
        """SetDesiredCapacity; the ids of the instances it launched."""
        before = set(self.instances())
        client("autoscaling").set_desired_capacity(AutoScalingGroupName=self.asg, DesiredCapacity=desired)
        return sorted(set(self.instances()) - before)

    def deployments(self) -> list[str]:
        """Newest first."""
        return list(
            client("codedeploy").list_deployments(applicationName=self.application, deploymentGroupName=self.group)[
                "deployments"
            ]
        )

    def registered(self) -> set[str]:
        health = client("elbv2").describe_target_health(TargetGroupArn=self.target_group)["TargetHealthDescriptions"]
        return {h["Target"]["Id"] for h in health}

    def upload(self, key: str) -> dict[str, Any]:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path, content in bundle().items():
                archive.writestr(path, content)
        client("s3").put_object(Bucket=self.bucket, Key=key, Body=buffer.getvalue())
        return {"revisionType": "S3", "s3Location": {"bucket": self.bucket, "key": key, "bundleType": "zip"}}

    def deploy(self, revision: dict[str, Any]) -> str:
        return str(
            client("codedeploy").create_deployment(
                applicationName=self.application, deploymentGroupName=self.group, revision=revision
            )["deploymentId"]
        )


def build_fleet(*, size: int = 2, deployment_group: bool = True, metadata: bool = True) -> Fleet:
    """Two subnets in two zones, a launch template, a target group, the group on both subnets, CodeDeploy."""
    fleet = Fleet()
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    fleet.subnets = tuple(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for n, zone in enumerate(ZONES)
    )
    data: dict[str, Any] = {
        "ImageId": IMAGE,
        "InstanceType": "t3.micro",
        # the agent downloads revisions with the profile's role (the sandbox evaluates it)
        "IamInstanceProfile": {"Arn": make_instance_profile("web-instance")},
    }
    if metadata:
        data["MetadataOptions"] = METADATA
    ec2.create_launch_template(LaunchTemplateName="web-lt", LaunchTemplateData=data)
    fleet.target_group = client("elbv2").create_target_group(Name="web-tg", Protocol="HTTP", Port=80, VpcId=vpc)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=fleet.asg,
        LaunchTemplate={"LaunchTemplateName": "web-lt"},
        MinSize=0,
        MaxSize=6,
        DesiredCapacity=size,
        VPCZoneIdentifier=",".join(fleet.subnets),
        TargetGroupARNs=[fleet.target_group],
    )
    client("s3").create_bucket(Bucket=fleet.bucket)
    if deployment_group:
        codedeploy = client("codedeploy")
        codedeploy.create_application(applicationName=fleet.application, computePlatform="Server")
        codedeploy.create_deployment_group(
            applicationName=fleet.application,
            deploymentGroupName=fleet.group,
            serviceRoleArn=make_role("codedeploy-role", "codedeploy.amazonaws.com"),
            autoScalingGroups=[fleet.asg],
            deploymentStyle={"deploymentType": "IN_PLACE", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            loadBalancerInfo={"targetGroupInfoList": [{"name": "web-tg"}]},
            autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
        )
    return fleet


def deployment(deployment_id: str) -> dict[str, Any]:
    return dict(client("codedeploy").get_deployment(deploymentId=deployment_id)["deploymentInfo"])


def targets_of(deployment_id: str) -> list[dict[str, Any]]:
    codedeploy = client("codedeploy")
    ids = codedeploy.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
    return [
        t["instanceTarget"]
        for t in codedeploy.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=ids)["deploymentTargets"]
    ]


@pytest.fixture
def fleet(clock: FakeClock) -> Fleet:
    return build_fleet()


def released(fleet: Fleet, clock: FakeClock) -> dict[str, Any]:
    """A first revision deployed and succeeded on the fleet; its revision."""
    revision = fleet.upload("v1.zip")
    first = fleet.deploy(revision)
    clock.advance(LONG_ENOUGH)
    assert deployment(first)["status"] == "Succeeded"
    return revision


def test_a_new_instance_waits_for_a_launch_deployment_of_the_last_good_revision(fleet: Fleet, clock: FakeClock) -> None:
    revision = released(fleet, clock)
    original = fleet.deployments()
    (new,) = fleet.scale_to(3)

    assert fleet.instances()[new] == "Pending:Wait"  # moto: InService at once
    assert new not in fleet.registered()  # AWS registers it when the hook completes
    (launch,) = [d for d in fleet.deployments() if d not in original]
    info = deployment(launch)
    assert info["creator"] == "autoscaling" and info["revision"] == revision
    assert info["status"] == "Created"  # its events wait for the instance to boot
    clock.advance(SIMULATION.seconds("instance_boot") + STEP)
    (target,) = targets_of(launch)
    assert target["targetId"] == new
    assert [e["lifecycleEventName"] for e in target["lifecycleEvents"]] == list(IN_PLACE_EVENTS + ALLOW_TRAFFIC_EVENTS)
    assert fleet.instances()[new] == "Pending:Wait"

    clock.advance(LAUNCH_EVENTS * STEP)
    assert deployment(launch)["status"] == "Succeeded"
    assert set(fleet.instances().values()) == {"InService"}
    assert new in fleet.registered()
    group = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[fleet.asg])["AutoScalingGroups"]
    assert len(group[0]["Instances"]) == 3  # the held instance counted towards the capacity: nothing extra


def test_before_any_successful_revision_a_new_instance_goes_on_at_once(fleet: Fleet, clock: FakeClock) -> None:
    (new,) = fleet.scale_to(3)
    assert fleet.instances()[new] == "InService"
    assert fleet.deployments() == []
    assert new in fleet.registered()
    released(fleet, clock)
    (held,) = fleet.scale_to(4)  # once a revision has succeeded, the hook holds the next one
    assert fleet.instances()[held] == "Pending:Wait"


def test_a_failed_launch_deployment_abandons_the_instance_and_the_group_replaces_it(
    fleet: Fleet, clock: FakeClock
) -> None:
    released(fleet, clock)
    SIMULATION.fail_next_deployment("ValidateService", "curl: (7) connection refused")
    (doomed,) = fleet.scale_to(3)
    clock.advance(LONG_ENOUGH)

    instances = fleet.instances()
    assert doomed not in instances and len(instances) == 3  # abandoned, and a replacement launched
    state = client("ec2").describe_instances(InstanceIds=[doomed])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "terminated"
    (replacement,) = [i for i, s in instances.items() if s == "Pending:Wait"]
    statuses = {d: deployment(d) for d in fleet.deployments()}
    failed = [d for d, info in statuses.items() if info["status"] == "Failed"]
    assert len(failed) == 1 and statuses[failed[0]]["creator"] == "autoscaling"
    assert "rollbackInfo" not in statuses[failed[0]]  # no group-wide rollback for a launch deployment
    clock.advance(LONG_ENOUGH)
    assert fleet.instances()[replacement] == "InService"
    assert doomed not in fleet.registered()


def test_deleting_the_deployment_group_abandons_the_launch_its_hook_holds(fleet: Fleet, clock: FakeClock) -> None:
    """DeleteLifecycleHook completes outstanding launch actions with ABANDON (AWS API reference)."""
    released(fleet, clock)
    (held,) = fleet.scale_to(3)
    client("codedeploy").delete_deployment_group(applicationName=fleet.application, deploymentGroupName=fleet.group)
    instances = fleet.instances()
    assert held not in instances and len(instances) == 3
    assert set(instances.values()) == {"InService"}  # the replacement has no hook to wait for


def test_an_own_launch_hook_times_out_with_its_default_result(clock: FakeClock) -> None:
    fleet = build_fleet(deployment_group=False)
    autoscaling = client("autoscaling")
    autoscaling.put_lifecycle_hook(
        AutoScalingGroupName=fleet.asg,
        LifecycleHookName="warm-up",
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
        HeartbeatTimeout=300,
        DefaultResult="CONTINUE",
    )
    (new,) = fleet.scale_to(3)
    assert fleet.instances()[new] == "Pending:Wait"
    clock.advance(SIMULATION.timing.scaled(300) - 0.001)
    assert fleet.instances()[new] == "Pending:Wait"
    clock.advance(0.002)
    assert fleet.instances()[new] == "InService"


def zones_and_metadata(fleet: Fleet) -> list[tuple[str, str, str, int]]:
    reservations = client("ec2").describe_instances(InstanceIds=list(fleet.instances()))["Reservations"]
    return sorted(
        (
            i["SubnetId"],
            i["Placement"]["AvailabilityZone"],
            i["MetadataOptions"]["HttpTokens"],
            i["MetadataOptions"]["HttpPutResponseHopLimit"],
        )
        for r in reservations
        for i in r["Instances"]
    )


def test_instances_spread_over_the_zones_and_take_the_templates_metadata_options(clock: FakeClock) -> None:
    fleet = build_fleet(size=3, deployment_group=False)
    first, second = fleet.subnets
    launched = zones_and_metadata(fleet)
    assert {row[2:] for row in launched} == {("required", 2)}  # moto: optional, 1
    placed = [row[:2] for row in launched]
    # two in the first zone (first in VPCZoneIdentifier), one in the second; moto puts all in the first
    assert sorted(placed) == sorted([(first, ZONES[0]), (first, ZONES[0]), (second, ZONES[1])])
    fleet.scale_to(4)  # the next one goes to the zone with fewer instances
    assert [row[0] for row in zones_and_metadata(fleet)].count(second) == 2


def test_moto_alone_puts_new_instances_in_service_in_the_first_subnet_without_the_options(clock: FakeClock) -> None:
    """What moto 5.2.5's own launch does, with a launch hook on the group and two subnets."""
    fleet = build_fleet(size=0, deployment_group=False)
    client("autoscaling").put_lifecycle_hook(
        AutoScalingGroupName=fleet.asg,
        LifecycleHookName="warm-up",
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
    )
    group = autoscaling_backends[DEFAULT_ACCOUNT_ID][REGION].autoscaling_groups[fleet.asg]
    scaleout.MOTO["replace_autoscaling_group_instances"](group, 2, {})
    states = group.instance_states
    assert [s.lifecycle_state for s in states] == ["InService", "InService"]
    assert {s.instance.subnet_id for s in states} == {fleet.subnets[0]}
    assert {s.instance.metadata_options.http_tokens for s in states} == {"optional"}
    assert len(scaleout.MOTO["active_instances"](group)) == 2


# --- the acceptance test: cdpoc up, push-app --wait, then one more instance ------------------------------

STACK = "scaleout"
REPOSITORY = "scaleout-app"
REPO_BUNDLE = Path(__file__).resolve().parents[1] / "bundle"


def cdpoc(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[tuple[str, ...], Any]]:
    config = tmp_path / "cdpoc.yaml"
    config.write_text(yaml.safe_dump({"pipeline": {"repository": REPOSITORY}}))
    monkeypatch.setattr(rollout, "POLL_SECONDS", 0.1)
    SIMULATION.step_seconds = 0.02
    with Sandbox() as server:
        # status probes the load balancer's DNS name through the sandbox, as `cdpoc sandbox` tells users to
        monkeypatch.setenv("HTTP_PROXY", server.endpoint)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        base = ("--config", str(config), "--endpoint-url", server.endpoint, "--name", STACK)
        code, out = cdpoc(*base, "up")
        assert code == 0, out

        def aws(service: str) -> Any:
            return boto3.client(service, region_name=REGION, endpoint_url=server.endpoint)

        yield base, aws
        code, out = cdpoc(*base, "down", "--yes")
        assert code == 0, out
    SIMULATION.reset()


def test_a_scaled_out_instance_ends_up_on_the_running_revision(
    stack: tuple[tuple[str, ...], Any], tmp_path: Path
) -> None:
    base, aws = stack
    shutil.copytree(REPO_BUNDLE, tmp_path / "bundle", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    code, out = cdpoc(*base, "push-app", "--bundle", str(tmp_path / "bundle"), "--wait", "--timeout", "120")
    assert code == 0, out
    running, pushed_commit = re.search(r"Deployed: (\S+) succeeded", out), re.search(r"commit ([0-9a-f]{40})", out)
    assert running and pushed_commit, out
    commit = pushed_commit.group(1)
    codedeploy, autoscaling, elbv2 = aws("codedeploy"), aws("autoscaling"), aws("elbv2")
    pushed = codedeploy.get_deployment(deploymentId=running.group(1))["deploymentInfo"]

    def group() -> dict[str, Any]:
        reply = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[f"{STACK}-app"])
        return dict(reply["AutoScalingGroups"][0])

    before = {i["InstanceId"] for i in group()["Instances"]}
    autoscaling.set_desired_capacity(AutoScalingGroupName=f"{STACK}-app", DesiredCapacity=len(before) + 1)
    (new,) = [i for i in group()["Instances"] if i["InstanceId"] not in before]
    assert new["LifecycleState"] == "Pending:Wait"

    launches = [
        d
        for d in codedeploy.list_deployments(applicationName=STACK, deploymentGroupName=f"{STACK}-fleet")["deployments"]
        if codedeploy.get_deployment(deploymentId=d)["deploymentInfo"]["creator"] == "autoscaling"
    ]
    assert len(launches) == 1
    launch = codedeploy.get_deployment(deploymentId=launches[0])["deploymentInfo"]
    assert launch["revision"] == pushed["revision"]

    target_group = group()["TargetGroupARNs"][0]
    polls = 0
    while polls < 600:
        polls += 1
        states = {i["InstanceId"]: i["LifecycleState"] for i in group()["Instances"]}
        health = {
            h["Target"]["Id"]: h["TargetHealth"]["State"]
            for h in elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
        }
        if states.get(new["InstanceId"]) == "InService" and health.get(new["InstanceId"]) == "healthy":
            break
        time.sleep(0.05)
    assert codedeploy.get_deployment(deploymentId=launches[0])["deploymentInfo"]["status"] == "Succeeded"
    assert codedeploy.list_deployment_targets(deploymentId=launches[0])["targetIds"] == [new["InstanceId"]]
    assert states[new["InstanceId"]] == "InService" and health[new["InstanceId"]] == "healthy", (states, health)
    instance = aws("ec2").describe_instances(InstanceIds=[new["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"

    # cdpoc sees the fleet healthy, the new instance on the pushed revision like the others
    code, out = cdpoc(*base, "status")
    assert code == 0, out
    rows = [line for line in out.splitlines() if re.match(r"\s+i-\w+\s+us-east-1", line)]
    assert len(rows) == 3 and "GET /health: 200" in out, out
    assert any(new["InstanceId"] in line for line in rows), out
    assert {line.split()[-1] for line in rows} == {commit[:8]}, out
    # and `up` leaves the scaled-out group alone (the desired capacity is the scaling's, not cdpoc's)
    code, out = cdpoc(*base, "up")
    assert code == 0 and "No changes" in out, out
