"""`cdpoc status` against moto (and botocore Stubbers for what moto lacks): snapshots, call budget, --watch."""

from __future__ import annotations

import base64
import http.server
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from cdpoc_testing import recording_ui
from sandbox_world import (
    STEP,
    FakeClock,
    World,
    bundle,
    clock,
    make_deployment_group,
    make_instance_profile,
    make_pipeline,
    make_role,
    make_rule,
    without_managed_policies,
)
from sandbox_world import client as sandbox_client
from typer.testing import CliRunner

from cdpoc import status, statuscollect, statusprobe
from cdpoc.apply import apply_plan
from cdpoc.aws.account import account_id
from cdpoc.cli import app
from cdpoc.context import Context, Options
from cdpoc.graph import Graph
from cdpoc.model import Observed, Resource
from cdpoc.planner import make_plan
from cdpoc.sandbox.cicd import SIMULATION
from cdpoc.sandbox.server import Sandbox
from cdpoc.sandbox.simulation import Timing
from cdpoc.stack import network
from cdpoc.stack.names import StackNames
from cdpoc.statuscollect import Inventory, collect, take_inventory
from cdpoc.statusprobe import probe_http
from cdpoc.statusrender import status_lines
from cdpoc.statussnapshot import exit_code
from cdpoc.statusviews import HttpCheck, ResourceRow, StackView
from cdpoc.statuswatch import Watcher


@pytest.fixture
def quick_iam(monkeypatch: pytest.MonkeyPatch) -> None:
    """Status needs none of IAM's managed policies; loading them costs seconds per test (moto reads this lazily)."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")


__all__ = ["clock", "without_managed_policies"]  # fixtures of the sandbox's simulated CI/CD

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
OLD_COMMIT = "0f1e2d3c4b5a69788796a5b4c3d2e1f001234567"
NEW_COMMIT = "3f2a1b9c0d4e5f60718293a4b5c6d7e8f9012345"
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


def healthy_probe(url: str) -> HttpCheck:
    return HttpCheck(url, status=200, latency_ms=12.0)


@pytest.fixture
def network_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack as the network core alone: a graph that stays the same while other areas are built."""
    monkeypatch.setattr("cdpoc.stack.AREAS", (network,))


@pytest.fixture
def ctx(quick_iam: None, aws: None, make_context: Callable[..., Context], network_only: None) -> Context:
    """moto in-process (quick_iam first, so that it still holds when moto resets at the end of the test)."""
    return make_context()


def operations(ctx: Context) -> Counter[str]:
    return Counter(op for _, op in ctx.clients.calls)


# --- a fleet built directly in moto: VPC, ALB, target group, launch template, Auto Scaling group ----------


@pytest.fixture(autouse=True)
def instant_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's readiness delays and health checks take no time here (AWS's durations x 0)."""
    monkeypatch.setattr(SIMULATION, "timing", Timing.parse("0"))


def build_fleet(ctx: Context, desired: int = 2) -> dict[str, str]:
    ec2, elbv2 = ctx.run.client("ec2"), ctx.run.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.1{n}.0/24", AvailabilityZone=f"us-east-1{zone}")["Subnet"][
            "SubnetId"
        ]
        for n, zone in enumerate("ab")
    ]
    tg = elbv2.create_target_group(Name="t1-app", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")
    tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
    lb = elbv2.create_load_balancer(Name="t1-alb", Subnets=subnets)["LoadBalancers"][0]
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    ami = ctx.run.client("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    # the sandbox's instances answer health checks when their user data starts cdpoc's stub server
    stub = base64.b64encode(b"#!/bin/bash\nreadonly STUB_SERVICE=cdpoc-stub.service\n").decode()
    # the instance profile's role is what the CodeDeploy agent downloads revisions with (the sandbox checks it)
    profile = make_instance_profile(f"t1-app-instance-{vpc}")
    ec2.create_launch_template(
        LaunchTemplateName="t1-app",
        LaunchTemplateData={
            "ImageId": ami,
            "InstanceType": "t3.micro",
            "UserData": stub,
            "IamInstanceProfile": {"Arn": profile},
        },
    )
    ctx.run.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="t1-app",
        LaunchTemplate={"LaunchTemplateName": "t1-app", "Version": "$Default"},
        MinSize=2,
        MaxSize=4,
        DesiredCapacity=desired,
        VPCZoneIdentifier=",".join(subnets),
        TargetGroupARNs=[tg_arn],
    )
    return {"tg": tg_arn, "alb": lb["LoadBalancerArn"], "dns": lb["DNSName"]}


def fleet_ids(ctx: Context) -> list[str]:
    group = ctx.run.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["t1-app"])
    return [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]


CICD = (
    Resource("pipeline", "pipeline", "t1-pipeline"),
    Resource("deploy.group", "deployment_group", "t1-fleet"),
)


def fleet_inventory(ctx: Context, fleet: dict[str, str], cicd: bool = False) -> Inventory:
    """What take_inventory would give once the stack's compute, load balancing (and CI/CD) areas exist."""
    declared = [
        Resource("alb", "load_balancer", "t1-alb"),
        Resource("tg.app", "target_group", "t1-app"),
        Resource("asg.app", "autoscaling_group", "t1-app"),
        *(CICD if cicd else ()),
    ]
    found: dict[str, Observed | None] = {
        "alb": Observed("alb", "load_balancer", fleet["alb"], {"dns_name": fleet["dns"]}),
        "tg.app": Observed("tg.app", "target_group", fleet["tg"]),
        "asg.app": Observed("asg.app", "autoscaling_group", "t1-app"),
    }
    if cicd:
        found.update({r.key: Observed(r.key, r.kind, r.name) for r in CICD})
    names = StackNames(ctx.settings, ("us-east-1a", "us-east-1b"), account_id(ctx.run))
    rows = tuple(ResourceRow(r.key, r.kind, r.name, "exists", found[r.key].id) for r in declared)  # type: ignore[union-attr]
    view = StackView("t1", "us-east-1", names.account, rows)
    return Inventory(view, found, Graph.of(declared), names)


def test_healthy_fleet_from_moto_in_one_call_per_view(ctx: Context) -> None:
    fleet = build_fleet(ctx)
    inventory = fleet_inventory(ctx, fleet)
    expected_ids = sorted(fleet_ids(ctx))
    ctx.clients.calls.clear()
    probed: list[str] = []

    def probe(url: str) -> HttpCheck:
        probed.append(url)
        return healthy_probe(url)

    snapshot = collect(ctx, inventory, probe=probe)

    assert probed == [f"http://{fleet['dns']}/health"]
    assert snapshot.fleet is not None
    assert (snapshot.fleet.name, snapshot.fleet.min_size, snapshot.fleet.desired, snapshot.fleet.max_size) == (
        "t1-app",
        2,
        2,
        4,
    )
    rows = snapshot.fleet.instances
    assert sorted(r.id for r in rows) == expected_ids
    for row in rows:
        assert (row.lifecycle, row.ec2_health, row.target_state, row.state) == (
            "InService",
            "Healthy",
            "healthy",
            "running",
        )
        assert row.zone.startswith("us-east-1") and row.private_ip.startswith("10.0.1")
    assert snapshot.endpoints.app_url == f"http://{fleet['dns']}/"
    assert snapshot.healthy and exit_code(snapshot) == 0
    # The budget: one call per view, whatever the fleet's size; nothing for views that do not exist.
    assert operations(ctx) == Counter(
        {
            "DescribeAutoScalingGroups": 1,
            "DescribeTargetHealth": 1,
            "DescribeInstances": 1,
            "DescribeScalingActivities": 1,
        }
    )
    assert ctx.clients.mutating_calls() == []


def test_fleet_calls_do_not_grow_with_the_fleet(ctx: Context) -> None:
    fleet = build_fleet(ctx, desired=4)
    inventory = fleet_inventory(ctx, fleet)
    ctx.clients.calls.clear()
    snapshot = collect(ctx, inventory, probe=healthy_probe)
    assert snapshot.fleet is not None and len(snapshot.fleet.instances) == 4
    assert sum(operations(ctx).values()) == 4


# --- CodePipeline and CodeDeploy: botocore Stubbers with the service model's shapes ---------------------


def stage(name: str, status: str, execution: str, action: dict[str, Any]) -> dict[str, Any]:
    return {
        "stageName": name,
        "latestExecution": {"pipelineExecutionId": execution, "status": status},
        "actionStates": [action],
    }


def pipeline_state(deploy_status: str, deployment_id: str) -> dict[str, Any]:
    source_action = {
        "actionName": "Source",
        "currentRevision": {
            "revisionId": NEW_COMMIT,
            "revisionChangeId": NEW_COMMIT,
            "created": NOW - timedelta(minutes=6),
        },
        "latestExecution": {
            "status": "Succeeded",
            "summary": "Add uploads",
            "lastStatusChange": NOW - timedelta(minutes=6),
            "externalExecutionId": NEW_COMMIT,
        },
    }
    deploy_action: dict[str, Any] = {
        "actionName": "Deploy",
        "latestExecution": {
            "status": deploy_status,
            "lastStatusChange": NOW - timedelta(minutes=1),
            "externalExecutionId": deployment_id,
        },
    }
    if deploy_status == "Failed":
        deploy_action["latestExecution"]["errorDetails"] = {"code": "JobFailed", "message": "Deployment failed"}
    return {
        "pipelineName": "t1-pipeline",
        "stageStates": [
            stage("Source", "Succeeded", "e-2", source_action),
            stage("Deploy", deploy_status, "e-2", deploy_action),
        ],
        "created": NOW - timedelta(hours=3),
    }


def action_execution(execution: str, category: str, external: str, **variables: str) -> dict[str, Any]:
    provider = "CodeCommit" if category == "Source" else "CodeDeploy"
    return {
        "pipelineExecutionId": execution,
        "actionExecutionId": f"{execution}-{category}",
        "stageName": category,
        "actionName": category,
        "status": "Succeeded",
        "input": {"actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"}},
        "output": {"executionResult": {"externalExecutionId": external}, "outputVariables": variables},
    }


def action_executions(new_deployment: str, old_deployment: str) -> dict[str, Any]:
    return {
        "actionExecutionDetails": [
            action_execution("e-2", "Deploy", new_deployment),
            action_execution("e-2", "Source", NEW_COMMIT, CommitId=NEW_COMMIT, CommitMessage="Add uploads"),
            action_execution("e-1", "Deploy", old_deployment),
            action_execution("e-1", "Source", OLD_COMMIT, CommitId=OLD_COMMIT, CommitMessage="First"),
        ]
    }


def deployment_info(deployment_id: str, status: str, minutes_ago: int, **more: Any) -> dict[str, Any]:
    overview = {"Pending": 0, "InProgress": 0, "Succeeded": 0, "Failed": 0, "Skipped": 0, "Ready": 0}
    overview.update(more.pop("overview", {}))
    return {
        "applicationName": "t1",
        "deploymentGroupName": "t1-fleet",
        "deploymentConfigName": "CodeDeployDefault.OneAtATime",
        "deploymentId": deployment_id,
        "status": status,
        "createTime": NOW - timedelta(minutes=minutes_ago),
        "creator": "user",
        "revision": {
            "revisionType": "S3",
            "s3Location": {"bucket": "artifacts", "key": f"t1-pipeline/SourceArti/{deployment_id}.zip"},
        },
        "deploymentOverview": overview,
        **more,
    }


def event(name: str, status: str, started: int, ended: int | None, **diagnostics: str) -> dict[str, Any]:
    result: dict[str, Any] = {"lifecycleEventName": name, "status": status}
    if started:
        result["startTime"] = NOW - timedelta(seconds=started)
    if ended is not None:
        result["endTime"] = NOW - timedelta(seconds=ended)
    if diagnostics:
        result["diagnostics"] = diagnostics
    return result


def target(deployment_id: str, instance_id: str, status: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "deploymentTargetType": "InstanceTarget",
        "instanceTarget": {
            "deploymentId": deployment_id,
            "targetId": instance_id,
            "targetArn": f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}",
            "status": status,
            "lastUpdatedAt": NOW - timedelta(seconds=30),
            "lifecycleEvents": events,
        },
    }


SUCCEEDED_EVENTS = [
    event(n, "Succeeded", 600 - i * 10, 595 - i * 10) for i, n in enumerate(("ApplicationStop", "Install"))
]
LOG_TAIL = "[stderr]Traceback (most recent call last):\n[stderr]ModuleNotFoundError: No module named 'fastapi'\n"


@pytest.fixture
def stubs(ctx: Context) -> Iterator[tuple[Stubber, Stubber]]:
    pipeline = Stubber(ctx.run.client("codepipeline"))
    deploy = Stubber(ctx.run.client("codedeploy"))
    with pipeline, deploy:
        yield pipeline, deploy
        pipeline.assert_no_pending_responses()
        deploy.assert_no_pending_responses()


def stub_pipeline(pipeline: Stubber, deploy_status: str, new: str, old: str) -> None:
    pipeline.add_response("get_pipeline_state", pipeline_state(deploy_status, new), {"name": "t1-pipeline"})
    pipeline.add_response(
        "list_action_executions", action_executions(new, old), {"pipelineName": "t1-pipeline", "maxResults": 50}
    )


def stub_targets(deploy: Stubber, deployment_id: str, targets: list[dict[str, Any]]) -> None:
    ids = [t["instanceTarget"]["targetId"] for t in targets]
    deploy.add_response("list_deployment_targets", {"targetIds": ids}, {"deploymentId": deployment_id})
    deploy.add_response(
        "batch_get_deployment_targets",
        {"deploymentTargets": targets},
        {"deploymentId": deployment_id, "targetIds": ids},
    )


def test_failed_deployment_with_log_tail_and_running_revisions(ctx: Context, stubs: tuple[Stubber, Stubber]) -> None:
    pipeline, deploy = stubs
    fleet = build_fleet(ctx)
    a, b = sorted(fleet_ids(ctx))
    new, old = "d-BBBBBBBBB", "d-AAAAAAAAA"
    stub_pipeline(pipeline, "Failed", new, old)
    # ListDeployments does not document its order: oldest first here, and status still finds the newest.
    deploy.add_response(
        "list_deployments", {"deployments": [old, new]}, {"applicationName": "t1", "deploymentGroupName": "t1-fleet"}
    )
    error = {"code": "HOOK_EXECUTION_FAILURE", "message": "too many individual instances failed deployment"}
    deploy.add_response(
        "batch_get_deployments",
        {
            "deploymentsInfo": [
                deployment_info(old, "Succeeded", 60, overview={"Succeeded": 2}),
                deployment_info(
                    new,
                    "Failed",
                    5,
                    overview={"Failed": 1, "Skipped": 1},
                    errorInformation=error,
                    completeTime=NOW - timedelta(minutes=1),
                ),
            ]
        },
        {"deploymentIds": [old, new]},
    )
    failing = [
        *SUCCEEDED_EVENTS,
        event(
            "ApplicationStart",
            "Failed",
            40,
            38,
            errorCode="ScriptFailed",
            scriptName="scripts/start.sh",
            message="Script at specified location: scripts/start.sh run as user root failed with exit code 1",
            logTail=LOG_TAIL,
        ),
    ]
    stub_targets(deploy, new, [target(new, a, "Failed", failing), target(new, b, "Skipped", [])])
    # Nobody succeeded in the newest deployment: the one before says what the instances run.
    stub_targets(
        deploy, old, [target(old, a, "Succeeded", SUCCEEDED_EVENTS), target(old, b, "Succeeded", SUCCEEDED_EVENTS)]
    )
    inventory = fleet_inventory(ctx, fleet, cicd=True)
    ctx.clients.calls.clear()

    snapshot = collect(ctx, inventory, probe=healthy_probe, now=NOW)

    assert snapshot.pipeline is not None
    assert snapshot.pipeline.source_revision == NEW_COMMIT and snapshot.pipeline.source_message == "Add uploads"
    assert [(s.name, s.status) for s in snapshot.pipeline.stages] == [("Source", "Succeeded"), ("Deploy", "Failed")]
    deployment = snapshot.deployment
    assert deployment is not None
    assert (deployment.id, deployment.status, deployment.revision) == (new, "Failed", NEW_COMMIT)
    assert deployment.error_code == "HOOK_EXECUTION_FAILURE" and deployment.overview["Failed"] == 1
    failed_target = next(t for t in deployment.targets if t.instance_id == a)
    assert failed_target.failed_event is not None and failed_target.failed_event.log_tail == LOG_TAIL
    rows = {r.id: r for r in snapshot.fleet.instances} if snapshot.fleet else {}
    assert (rows[a].revision, rows[a].pending_revision, rows[a].pending_status) == (OLD_COMMIT, NEW_COMMIT, "Failed")
    assert (rows[b].revision, rows[b].pending_revision) == (OLD_COMMIT, "")
    lines = status_lines(snapshot)
    assert f"  {a} failed at ApplicationStart running scripts/start.sh (ScriptFailed)" in lines
    assert "    | [stderr]ModuleNotFoundError: No module named 'fastapi'" in lines
    assert exit_code(snapshot) == 3
    # moto-backed calls counted by the client factory; the stubbed ones are exactly the queued responses.
    assert sum(operations(ctx).values()) == 4


def test_deployment_in_progress(ctx: Context, stubs: tuple[Stubber, Stubber]) -> None:
    pipeline, deploy = stubs
    fleet = build_fleet(ctx)
    a, b = sorted(fleet_ids(ctx))
    new, old = "d-BBBBBBBBB", "d-AAAAAAAAA"
    stub_pipeline(pipeline, "InProgress", new, old)
    deploy.add_response(
        "list_deployments", {"deployments": [new, old]}, {"applicationName": "t1", "deploymentGroupName": "t1-fleet"}
    )
    deploy.add_response(
        "batch_get_deployments",
        {
            "deploymentsInfo": [
                deployment_info(new, "InProgress", 2, overview={"InProgress": 1, "Succeeded": 1}),
                deployment_info(old, "Succeeded", 60, overview={"Succeeded": 2}),
            ]
        },
        {"deploymentIds": [new, old]},
    )
    running = [
        *SUCCEEDED_EVENTS[:1],
        event("DownloadBundle", "InProgress", 20, None),
        event("Install", "Pending", 0, None),
    ]
    stub_targets(deploy, new, [target(new, a, "Succeeded", SUCCEEDED_EVENTS), target(new, b, "InProgress", running)])
    stub_targets(
        deploy, old, [target(old, a, "Succeeded", SUCCEEDED_EVENTS), target(old, b, "Succeeded", SUCCEEDED_EVENTS)]
    )

    snapshot = collect(ctx, fleet_inventory(ctx, fleet, cicd=True), probe=healthy_probe, now=NOW)

    rows = {r.id: r for r in snapshot.fleet.instances} if snapshot.fleet else {}
    assert (rows[a].revision, rows[a].pending_revision) == (NEW_COMMIT, "")
    assert (rows[b].revision, rows[b].pending_revision, rows[b].pending_status) == (
        OLD_COMMIT,
        NEW_COMMIT,
        "InProgress",
    )
    assert snapshot.deployment is not None and snapshot.deployment.status == "InProgress"
    text = "\n".join(status_lines(snapshot))
    assert "DownloadBundle running 20s" in text and "Install pending" in text
    assert f"deployment {new} is InProgress" in snapshot.issues


def test_a_deployment_not_started_yet_has_no_targets_to_ask_for(ctx: Context, stubs: tuple[Stubber, Stubber]) -> None:
    pipeline, deploy = stubs
    fleet = build_fleet(ctx)
    a, b = sorted(fleet_ids(ctx))
    new, old = "d-BBBBBBBBB", "d-AAAAAAAAA"
    stub_pipeline(pipeline, "InProgress", new, old)
    group = {"applicationName": "t1", "deploymentGroupName": "t1-fleet"}
    deploy.add_response("list_deployments", {"deployments": [new]}, group)
    # The older deployment the pipeline names is read too (ListDeployments may list it on a later page).
    infos = [deployment_info(new, "Created", 0), deployment_info(old, "Succeeded", 60)]
    deploy.add_response("batch_get_deployments", {"deploymentsInfo": infos}, {"deploymentIds": [new, old]})
    # No ListDeploymentTargets for the new one: AWS answers DeploymentNotStartedException while it is Created.
    stub_targets(
        deploy, old, [target(old, a, "Succeeded", SUCCEEDED_EVENTS), target(old, b, "Succeeded", SUCCEEDED_EVENTS)]
    )
    snapshot = collect(ctx, fleet_inventory(ctx, fleet, cicd=True), probe=healthy_probe, now=NOW)
    assert snapshot.deployment is not None and snapshot.deployment.targets == ()
    assert snapshot.deployment.status == "Created"
    assert {r.revision for r in snapshot.fleet.instances} == {OLD_COMMIT}  # type: ignore[union-attr]


def test_many_deployments_are_read_in_one_batch_of_at_most_25(ctx: Context, stubs: tuple[Stubber, Stubber]) -> None:
    pipeline, deploy = stubs
    fleet = build_fleet(ctx)
    listed = [f"d-{n:09d}" for n in range(100)]
    stub_pipeline(pipeline, "Succeeded", listed[-1], listed[-2])
    deploy.add_response(
        "list_deployments", {"deployments": listed}, {"applicationName": "t1", "deploymentGroupName": "t1-fleet"}
    )
    both_ends = [*listed[:13], *listed[-12:]]
    deploy.add_response(
        "batch_get_deployments",
        {"deploymentsInfo": [deployment_info(d, "Succeeded", 100 - n) for n, d in enumerate(listed) if d in both_ends]},
        {"deploymentIds": both_ends},
    )
    stub_targets(deploy, listed[-1], [target(listed[-1], i, "Succeeded", SUCCEEDED_EVENTS) for i in fleet_ids(ctx)])
    snapshot = collect(ctx, fleet_inventory(ctx, fleet, cicd=True), probe=healthy_probe, now=NOW)
    assert snapshot.deployment is not None and snapshot.deployment.id == listed[-1]


# --- whole-stack views: nothing deployed, partially deployed ---------------------------------------------


def test_nothing_deployed_is_a_normal_answer(ctx: Context) -> None:
    snapshot = collect(ctx, probe=healthy_probe)
    assert snapshot.stack.present == [] and len(snapshot.stack.missing) == len(ctx.graph())
    assert snapshot.stack.account == "123456789012" and snapshot.stack.created_at is None
    assert snapshot.stack.cost_per_hour == 0.0
    assert (snapshot.fleet, snapshot.pipeline, snapshot.deployment, snapshot.activities) == (None, None, None, ())
    assert exit_code(snapshot) == 3
    live = {"DescribeAutoScalingGroups", "DescribeTargetHealth", "DescribeScalingActivities", "GetPipelineState"}
    assert not live & set(operations(ctx))
    assert operations(ctx)["DescribeNatGateways"] == 1  # the plan's; none for the stack's age
    assert ctx.clients.mutating_calls() == []


def test_partially_deployed_lists_what_is_missing(ctx: Context) -> None:
    graph = ctx.graph()
    apply_plan(ctx.run, make_plan(ctx.run, graph, ctx.handlers), ctx.handlers)
    subnet = next(
        s
        for s in ctx.run.client("ec2").describe_subnets()["Subnets"]
        if {"Key": "cdpoc:component", "Value": "subnet.data.b"} in s.get("Tags", [])
    )
    ctx.run.client("ec2").delete_subnet(SubnetId=subnet["SubnetId"])
    ctx.clients.calls.clear()

    snapshot = collect(ctx, probe=healthy_probe)

    assert [r.key for r in snapshot.stack.missing] == ["subnet.data.b"]
    assert snapshot.stack.created_at is not None  # the NAT gateway's creation time
    assert snapshot.stack.cost_per_hour == pytest.approx(0.05)  # NAT gateway + its address
    assert snapshot.issues == ["1 resource(s) missing: subnet.data.b (run `cdpoc up`)"]
    assert operations(ctx)["DescribeNatGateways"] == 2  # one by the plan, one for the stack's age
    assert ctx.clients.mutating_calls() == []


def test_take_inventory_lists_each_kind_once(ctx: Context) -> None:
    ctx.graph()
    ctx.clients.calls.clear()
    take_inventory(ctx)
    listed = operations(ctx)
    for operation in ("DescribeVpcs", "DescribeSubnets", "DescribeRouteTables", "DescribeInternetGateways"):
        assert listed[operation] == 1


def test_a_snapshot_of_the_registered_stack_costs_the_plan_plus_a_few_calls(
    aws: None, make_context: Callable[..., Context]
) -> None:
    """Whatever areas are registered: status reads what `plan` reads, plus at most LIVE_CALLS for its views."""
    ctx = make_context()
    apply_plan(ctx.run, make_plan(ctx.run, ctx.graph(), ctx.handlers), ctx.handlers)
    ctx.clients.calls.clear()
    make_plan(ctx.run, ctx.graph(), ctx.handlers)
    plan_calls = len(ctx.clients.calls)
    ctx.clients.calls.clear()

    snapshot = collect(ctx, probe=healthy_probe)

    assert snapshot.stack.missing == []
    assert plan_calls <= len(ctx.clients.calls) <= plan_calls + statuscollect.LIVE_CALLS
    assert ctx.clients.mutating_calls() == []


# --- the HTTP probe ---------------------------------------------------------------------------------------


class HealthHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/health" else 503
        body = b'{"status": "ok"}' if code == 200 else b"mongodb: connection refused\nmore"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """quiet"""


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_reports_status_latency_and_failures(web: str) -> None:
    ok = probe_http(f"{web}/health")
    assert ok.ok and ok.status == 200 and ok.latency_ms is not None and ok.error == ""
    bad = probe_http(f"{web}/other")
    assert not bad.ok and bad.status == 503 and bad.error == "mongodb: connection refused"
    down = probe_http(f"http://127.0.0.1:{free_port()}/health", timeout=1)
    assert not down.ok and down.status is None and down.error.startswith("unreachable:")


def test_probe_gives_up_when_even_the_name_lookup_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(statusprobe, "_get", lambda url, timeout: release.wait(30))
    check = probe_http("http://t1-alb.example/health", timeout=0.05)
    release.set()
    assert not check.ok and check.error == "unreachable: no answer within 0.05s"


# --- --watch -------------------------------------------------------------------------------------------------


def sleeper(actions: list[Callable[[], None]], slept: list[float]) -> Callable[[float], None]:
    """A sleep that runs one action per refresh, then stops the watch the way Ctrl-C does."""

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if not actions:
            raise KeyboardInterrupt
        actions.pop(0)()

    return sleep


def test_watch_off_a_terminal_prints_a_line_per_change(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = build_fleet(ctx)
    inventory = fleet_inventory(ctx, fleet)
    monkeypatch.setattr(statuscollect, "take_inventory", lambda ctx: inventory)
    autoscaling = ctx.run.client("autoscaling")
    slept: list[float] = []
    actions = [
        lambda: None,  # nothing changes: nothing printed
        lambda: autoscaling.set_desired_capacity(AutoScalingGroupName="t1-app", DesiredCapacity=3),
    ]
    code = status.show(ctx, watch=True, interval=5, probe=healthy_probe, sleep=sleeper(actions, slept))

    assert code == 0 and slept == [5, 5, 5]
    out = ctx.ui.console.export_text()
    assert out.count("Fleet t1-app: min 2 · desired 2 · max 4") == 1  # the full view once
    assert "fleet.size: min 2 desired 2 max 4 -> min 2 desired 3 max 4" in out
    new_instance = next(i for i in fleet_ids(ctx) if f"fleet.{i}.lifecycle" in out)
    assert f"fleet.{new_instance}.lifecycle: (none) -> InService" in out
    assert out.count("->") >= 2


def test_watch_backs_off_when_throttled(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = build_fleet(ctx)
    inventory = fleet_inventory(ctx, fleet)
    monkeypatch.setattr(statuscollect, "take_inventory", lambda ctx: inventory)
    slept: list[float] = []
    stubber = Stubber(ctx.run.client("autoscaling"))
    group = {
        "AutoScalingGroupName": "t1-app",
        "MinSize": 0,
        "MaxSize": 4,
        "DesiredCapacity": 0,
        "DefaultCooldown": 300,
        "AvailabilityZones": ["us-east-1a"],
        "HealthCheckType": "EC2",
        "CreatedTime": NOW,
        "Instances": [],
    }
    by_name = {"AutoScalingGroupNames": ["t1-app"]}
    activities = {"AutoScalingGroupName": "t1-app", "MaxRecords": 8}
    stubber.add_client_error("describe_auto_scaling_groups", "Throttling", http_status_code=400)
    stubber.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": [group]}, by_name)
    stubber.add_response("describe_scaling_activities", {"Activities": []}, activities)
    stubber.add_client_error("describe_auto_scaling_groups", "Throttling", http_status_code=400)
    stubber.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": [group]}, by_name)
    stubber.add_response("describe_scaling_activities", {"Activities": []}, activities)
    with stubber:
        Watcher(ctx, 5, healthy_probe, sleeper([lambda: None] * 3, slept)).run()
        stubber.assert_no_pending_responses()
    assert slept == [10, 5, 10, 5]
    err = ctx.ui.err.export_text()
    assert err.count("AWS is throttling requests: next refresh in 10s") == 2
    assert ctx.ui.console.export_text().count("Fleet t1-app") == 1


def test_watch_json_prints_one_object_per_change(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = build_fleet(ctx)
    inventory = fleet_inventory(ctx, fleet)
    monkeypatch.setattr(statuscollect, "take_inventory", lambda ctx: inventory)
    ctx.ui.json_mode = True
    written: list[str] = []
    monkeypatch.setattr(ctx.ui, "out", written.append)
    autoscaling = ctx.run.client("autoscaling")
    actions = [lambda: None, lambda: autoscaling.set_desired_capacity(AutoScalingGroupName="t1-app", DesiredCapacity=3)]
    status.show(ctx, watch=True, interval=5, probe=healthy_probe, sleep=sleeper(actions, []))
    documents = [json.loads(line) for line in written]
    assert [d["fleet"]["desired"] for d in documents] == [2, 3]
    assert all("\n" not in line for line in written)


def test_watch_reads_the_inventory_at_most_once_a_minute(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[int] = []
    real = statuscollect.take_inventory

    def counting(ctx: Context) -> Inventory:
        taken.append(1)
        return real(ctx)

    monkeypatch.setattr(statuscollect, "take_inventory", counting)
    status.show(ctx, watch=True, interval=1, probe=healthy_probe, sleep=sleeper([lambda: None] * 3, []))
    assert len(taken) == 1


# --- the sandbox's simulated CI/CD: a commit runs the pipeline, and the deployment moves through its hooks ---


def cicd_world(ctx: Context) -> tuple[World, dict[str, str]]:
    """The pipeline, deployment group and rule the CI/CD area makes, named as status expects, on the fleet."""
    fleet = build_fleet(ctx)
    world = World(
        repository="s3upload",
        bucket="t1-artifacts",
        asg="t1-app",
        application="t1",
        group="t1-fleet",
        pipeline="t1-pipeline",
        rule="t1-source-changes",
    )
    world.repository_arn = sandbox_client("codecommit").create_repository(repositoryName=world.repository)[
        "repositoryMetadata"
    ]["Arn"]
    sandbox_client("s3").create_bucket(Bucket=world.bucket)
    world.instances = sorted(fleet_ids(ctx))
    make_deployment_group(world, traffic_control=True, rollback=True, config="CodeDeployDefault.OneAtATime")
    world.role_arn = make_role("pipeline-role", "codepipeline.amazonaws.com")
    world.pipeline_arn = f"arn:aws:codepipeline:us-east-1:123456789012:{world.pipeline}"
    make_rule(world)
    make_pipeline(world, poll=False)
    return world, fleet


def at(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock.now, UTC)


def test_sandbox_deployment_in_progress_then_healthy(ctx: Context, clock: FakeClock) -> None:
    world, fleet = cicd_world(ctx)
    inventory = fleet_inventory(ctx, fleet, cicd=True)
    first, second = world.instances
    commit = world.commit(bundle(), "Add uploads")
    clock.advance(STEP * 3.5)
    ctx.clients.calls.clear()

    snapshot = collect(ctx, inventory, probe=healthy_probe, now=at(clock))

    assert snapshot.pipeline is not None and snapshot.pipeline.source_revision == commit
    assert snapshot.pipeline.source_message == "Add uploads"
    assert dict((s.name, s.status) for s in snapshot.pipeline.stages)["Deploy"] == "InProgress"
    deployment = snapshot.deployment
    assert deployment is not None and deployment.status == "InProgress" and deployment.revision == commit
    assert deployment.config == "CodeDeployDefault.OneAtATime"
    targets = {t.instance_id: t for t in deployment.targets}
    assert targets[first].status == "InProgress" and targets[second].status == "Pending"
    statuses = [e.status for e in targets[first].events]
    running = statuses.index("InProgress")
    assert set(statuses[:running]) <= {"Succeeded"} and set(statuses[running + 1 :]) == {"Pending"}
    assert targets[first].events[running].duration(at(clock)) is not None
    rows = {r.id: r for r in snapshot.fleet.instances} if snapshot.fleet else {}
    assert (rows[first].revision, rows[first].pending_revision, rows[first].pending_status) == (
        "",
        commit,
        "InProgress",
    )
    assert f"deployment {deployment.id} is InProgress" in snapshot.issues
    text = "\n".join(status_lines(snapshot))
    assert f"Deployment {deployment.id} · InProgress · CodeDeployDefault.OneAtATime" in text
    assert f"{targets[first].events[running].name} running" in text
    # The whole live view (fleet, load balancer, pipeline, deployment, activities) in 10 calls.
    assert operations(ctx) == Counter(
        {
            "DescribeAutoScalingGroups": 1,
            "DescribeTargetHealth": 1,
            "DescribeInstances": 1,
            "DescribeScalingActivities": 1,
            "GetPipelineState": 1,
            "ListActionExecutions": 1,
            "ListDeployments": 1,
            "BatchGetDeployments": 1,
            "ListDeploymentTargets": 1,
            "BatchGetDeploymentTargets": 1,
        }
    )

    clock.advance(STEP * 100)
    snapshot = collect(ctx, inventory, probe=healthy_probe, now=at(clock))
    assert snapshot.deployment is not None and snapshot.deployment.status == "Succeeded"
    assert {r.id: r.revision for r in snapshot.fleet.instances} == {first: commit, second: commit}  # type: ignore[union-attr]
    assert snapshot.healthy and exit_code(snapshot) == 0


def test_sandbox_failed_deployment_shows_the_hook_script_and_log_tail(ctx: Context, clock: FakeClock) -> None:
    world, fleet = cicd_world(ctx)
    inventory = fleet_inventory(ctx, fleet, cicd=True)
    good = world.commit(bundle(), "First")
    clock.advance(STEP * 100)
    collect(ctx, inventory, probe=healthy_probe, now=at(clock))  # the sandbox moves on when it is read
    SIMULATION.fail_next_deployment("ValidateService", "curl: (7) Failed to connect to localhost port 80")
    bad = world.commit(bundle(b"#!/bin/sh\nexit 1\n"), "Break validation")
    snapshot = collect(ctx, inventory, probe=healthy_probe, now=at(clock))
    for _ in range(40):  # one lifecycle step at a time, until CodeDeploy starts the rollback
        if snapshot.deployment is not None and snapshot.deployment.rollback_of:
            break
        clock.advance(STEP)
        snapshot = collect(ctx, inventory, probe=healthy_probe, now=at(clock))
    rollback = snapshot.deployment
    assert rollback is not None and rollback.creator == "codeDeployRollback" and rollback.revision == good
    failed = rollback.rolls_back
    assert failed is not None and (failed.status, failed.revision, failed.message) == (
        "Failed",
        bad,
        "Break validation",
    )
    [failed_target] = [t for t in failed.targets if t.status == "Failed"]
    broken = failed_target.instance_id
    assert broken in world.instances
    event = failed_target.failed_event
    assert event is not None and (event.name, event.script) == ("ValidateService", "scripts/validate.sh")
    lines = status_lines(snapshot)
    assert f"  {broken} failed at ValidateService running scripts/validate.sh (ScriptFailed)" in lines
    assert "    | [stderr]curl: (7) Failed to connect to localhost port 80" in lines
    assert any(line.startswith(f"Rolled back: Deployment {failed.id} · Failed") for line in lines)
    # the instance whose ValidateService failed does not answer (the sandbox's health checks say so too)
    assert any(issue.startswith("pipeline stage Deploy failed: ") for issue in snapshot.issues)

    clock.advance(STEP * 100)
    snapshot = collect(ctx, inventory, probe=healthy_probe, now=at(clock))
    assert snapshot.deployment is not None and snapshot.deployment.status == "Succeeded"
    assert {r.revision for r in snapshot.fleet.instances} == {good}  # type: ignore[union-attr]
    assert any(i.startswith(f"deployment {failed.id} failed and is rolled back by") for i in snapshot.issues)
    assert exit_code(snapshot) == 3


# --- the command line: exit codes, --json, and --watch in a real terminal ---------------------------------


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_status_exit_codes_and_json(ctx: Context, tmp_path: Path) -> None:
    config = tmp_path / "status.yaml"
    config.write_text("name: t1\n")
    code, out = cli("--config", str(config), "status")
    assert code == 3, out
    where = "us-east-1 (region from AWS_DEFAULT_REGION)"
    assert f"Nothing of stack t1 exists in {where}: `cdpoc up` would create 14 resources." in out

    code, out = cli("--config", str(config), "status", "--json")
    assert code == 3
    data = json.loads(out)
    assert data["healthy"] is False and data["stack"]["counts"]["create"] == 14 and data["fleet"] is None
    assert data["stack"]["region"] == "us-east-1" and data["stack"]["region_source"] == "AWS_DEFAULT_REGION"

    apply_plan(ctx.run, make_plan(ctx.run, ctx.graph(), ctx.handlers), ctx.handlers)
    code, out = cli("--config", str(config), "status")
    assert code == 0, out
    assert "Resources: 14 of 14 exist." in out and "Healthy: everything that exists is in service." in out
    assert "about $0.050/h" in out
    code, out = cli("--config", str(config), "status", "--json")
    assert code == 0 and json.loads(out)["healthy"] is True


WATCH_HARNESS = """
import sys
import cdpoc.stack
import cdpoc.statuswatch
from cdpoc.stack import network

cdpoc.stack.AREAS = (network,)     # the network core alone: a stack that other areas' work does not change
cdpoc.statuswatch.INVENTORY_MAX_AGE = 0  # re-read what exists on every refresh, so that `up` shows at once
from cdpoc.cli import app

app(sys.argv[1:])
"""


def read_until(fd: int, wanted: str, seen: bytearray, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while wanted not in seen.decode("utf-8", "replace"):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{wanted!r} did not appear in:\n{seen.decode('utf-8', 'replace')[-3000:]}"
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if ready:
            try:
                seen.extend(os.read(fd, 65536))
            except OSError:
                break
    return seen.decode("utf-8", "replace")


def test_watch_in_a_terminal_refreshes_in_place_and_highlights_changes(tmp_path: Path) -> None:
    with Sandbox() as sandbox:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "TERM": "xterm-256color",
            "COLUMNS": "160",
            "LINES": "60",
        }
        leader, follower = pty.openpty()
        command = ["--endpoint-url", sandbox.endpoint, "--name", "w1", "status", "--watch", "--interval", "1"]
        child = subprocess.Popen(
            [sys.executable, "-c", WATCH_HARNESS, *command],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
        os.close(follower)
        seen = bytearray()
        try:
            read_until(leader, "Nothing of stack w1 exists", seen)
            context = Context.build(Options(name="w1", endpoint_url=sandbox.endpoint), recording_ui())
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr("cdpoc.stack.AREAS", (network,))
                apply_plan(context.run, make_plan(context.run, context.graph(), context.handlers), context.handlers)
            screen = read_until(leader, "Resources: 14 of 14 exist.", seen)
            os.killpg(child.pid, signal.SIGINT)
            assert child.wait(timeout=30) == 0  # Ctrl-C is how --watch ends: not an error
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            os.close(leader)
    # Refreshed in place: rich's Live moves the cursor up over the previous screen instead of scrolling.
    assert "\x1b[1A" in screen or "\x1b[2K" in screen
    assert screen.count("Nothing of stack w1 exists") >= 1
    # The line that changed is highlighted (bold reverse) on the refresh that shows the change.
    changed = screen[screen.index("Resources: 14 of 14 exist.") - 40 : screen.index("Resources: 14 of 14 exist.")]
    assert "\x1b[1;7m" in changed
    assert "refreshed" in screen and "Ctrl-C to stop" in screen
    assert "Traceback" not in screen and "error:" not in screen
