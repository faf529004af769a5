"""Shared pieces for the sandbox CI/CD tests: a fake clock and a small CI/CD world built with boto3.

The world is what cdpoc builds, minus the network: a CodeCommit repository, an artifact bucket, an Auto
Scaling group, a CodeDeploy application and deployment group on it, a pipeline (CodeCommit source with
PollForSourceChanges false -> CodeDeploy) and, optionally, the EventBridge rule that starts it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from cdpoc.sandbox.cicd import SIMULATION

REGION = "us-east-1"
ACCOUNT = "123456789012"
START = 1_700_000_000.0
STEP = 1.0
IMAGE = "ami-12c6146b"  # one of moto's built-in AMIs (AMI ids are validated under conftest's settings)
APPSPEC = b"""version: 0.0
os: linux
files:
  - source: /app
    destination: /opt/app
hooks:
  ApplicationStop:
    - location: scripts/stop.sh
  ValidateService:
    - location: scripts/validate.sh
      runas: app
"""


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def without_managed_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests use no AWS-managed IAM policy; loading them costs seconds at every moto start and reset
    (moto touches IAM on every request), so they are left out here, before `aws` starts moto."""
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "false")


@pytest.fixture
def clock(without_managed_policies: None, aws: None) -> Iterator[FakeClock]:
    """moto plus the simulation on a fake clock, each lifecycle event taking STEP seconds."""
    fake = FakeClock()
    SIMULATION.reset()
    SIMULATION.clock = fake
    SIMULATION.step_seconds = STEP
    yield fake
    SIMULATION.reset()


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


@dataclass
class World:
    repository: str = "app-repo"
    branch: str = "main"
    bucket: str = "app-artifacts"
    asg: str = "app-asg"
    application: str = "app"
    group: str = "app-dg"
    pipeline: str = "app-pipeline"
    rule: str = "app-on-push"
    repository_arn: str = ""
    pipeline_arn: str = ""
    role_arn: str = ""
    instances: list[str] = field(default_factory=list)

    def commit(self, files: dict[str, bytes], message: str = "change", parent: str | None = None) -> str:
        codecommit = client("codecommit")
        if parent is None and self.has_branch():
            parent = codecommit.get_branch(repositoryName=self.repository, branchName=self.branch)["branch"]["commitId"]
        request: dict[str, Any] = {
            "repositoryName": self.repository,
            "branchName": self.branch,
            "commitMessage": message,
            "putFiles": [{"filePath": path, "fileContent": content} for path, content in files.items()],
        }
        if parent:
            request["parentCommitId"] = parent
        return str(codecommit.create_commit(**request)["commitId"])

    def has_branch(self) -> bool:
        branches = client("codecommit").list_branches(repositoryName=self.repository)["branches"]
        return self.branch in branches

    def executions(self) -> list[dict[str, Any]]:
        return list(
            client("codepipeline").list_pipeline_executions(pipelineName=self.pipeline)["pipelineExecutionSummaries"]
        )

    def deployments(self) -> list[str]:
        codedeploy = client("codedeploy")
        return list(
            codedeploy.list_deployments(applicationName=self.application, deploymentGroupName=self.group)["deployments"]
        )


def bundle(validate: bytes = b"#!/bin/sh\ncurl -fsS localhost/health\n") -> dict[str, bytes]:
    return {"appspec.yml": APPSPEC, "scripts/stop.sh": b"#!/bin/sh\n", "scripts/validate.sh": validate}


def build_world(
    *,
    instances: int = 2,
    rule: bool = True,
    traffic_control: bool = True,
    rollback: bool = True,
    poll: bool = False,
    config: str = "CodeDeployDefault.OneAtATime",
    pipeline: bool = True,
) -> World:
    world = World()
    world.repository_arn = client("codecommit").create_repository(repositoryName=world.repository)[
        "repositoryMetadata"
    ]["Arn"]
    client("s3").create_bucket(Bucket=world.bucket)
    world.instances = make_asg(world.asg, instances)
    make_deployment_group(world, traffic_control=traffic_control, rollback=rollback, config=config)
    world.role_arn = make_role("pipeline-role", "codepipeline.amazonaws.com")
    world.pipeline_arn = f"arn:aws:codepipeline:{REGION}:{ACCOUNT}:{world.pipeline}"
    if rule:
        make_rule(world)
    if pipeline:
        make_pipeline(world, poll=poll)
    return world


def make_asg(name: str, size: int) -> list[str]:
    template = f"{name}-lt"
    client("ec2").create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={
            "ImageId": IMAGE,
            "InstanceType": "t3.micro",
            "IamInstanceProfile": {"Arn": make_instance_profile(f"{name}-instance")},
        },
    )
    autoscaling = client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": template},
        MinSize=size,
        MaxSize=max(size, 1),
        DesiredCapacity=size,
        AvailabilityZones=[f"{REGION}a"],
    )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return sorted(i["InstanceId"] for i in group["Instances"])  # the order the sandbox deploys them in


# What each simulated service does with its role in these worlds (the sandbox evaluates every call: see
# cdpoc/sandbox/service_roles.py); cdpoc's own, narrower policies are tested in tests/test_sandbox_iam.py.
SERVICE_ACTIONS = {
    "codepipeline.amazonaws.com": ["codecommit:Get*", "codecommit:UploadArchive", "codedeploy:*", "s3:*"],
    "codedeploy.amazonaws.com": [
        "autoscaling:Describe*",
        "autoscaling:CompleteLifecycleAction",
        "ec2:Describe*",
        "elasticloadbalancing:*",
    ],
    "events.amazonaws.com": ["codepipeline:StartPipelineExecution"],
    "ec2.amazonaws.com": ["s3:GetObject", "s3:GetObjectVersion"],
}


def make_role(name: str, service: str) -> str:
    """A role the service may assume, allowed what the sandbox's simulation of that service needs."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    iam = client("iam")
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
    access = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": SERVICE_ACTIONS[service], "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=name, PolicyName="access", PolicyDocument=json.dumps(access))
    return arn


def make_instance_profile(name: str) -> str:
    """An instance profile whose role the CodeDeploy agent downloads revisions with."""
    make_role(name, "ec2.amazonaws.com")
    iam = client("iam")
    profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return str(profile["Arn"])


def make_deployment_group(world: World, *, traffic_control: bool, rollback: bool, config: str) -> None:
    codedeploy = client("codedeploy")
    codedeploy.create_application(applicationName=world.application, computePlatform="Server")
    request: dict[str, Any] = {
        "applicationName": world.application,
        "deploymentGroupName": world.group,
        "serviceRoleArn": make_role("codedeploy-role", "codedeploy.amazonaws.com"),
        "autoScalingGroups": [world.asg],
        "deploymentConfigName": config,
        "deploymentStyle": {
            "deploymentType": "IN_PLACE",
            "deploymentOption": "WITH_TRAFFIC_CONTROL" if traffic_control else "WITHOUT_TRAFFIC_CONTROL",
        },
        "autoRollbackConfiguration": {"enabled": rollback, "events": ["DEPLOYMENT_FAILURE"] if rollback else []},
    }
    if traffic_control:
        request["loadBalancerInfo"] = {"targetGroupInfoList": [{"name": "app-tg"}]}
    codedeploy.create_deployment_group(**request)


def make_pipeline(world: World, *, poll: bool) -> None:
    source = {
        "name": "Source",
        "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeCommit", "version": "1"},
        "configuration": {
            "RepositoryName": world.repository,
            "BranchName": world.branch,
            "PollForSourceChanges": "true" if poll else "false",
        },
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


def make_rule(world: World, branch: str | None = None) -> None:
    events = client("events")
    pattern = {
        "source": ["aws.codecommit"],
        "detail-type": ["CodeCommit Repository State Change"],
        "resources": [world.repository_arn],
        "detail": {
            "event": ["referenceCreated", "referenceUpdated"],
            "referenceType": ["branch"],
            "referenceName": [branch or world.branch],
        },
    }
    events.put_rule(Name=world.rule, EventPattern=json.dumps(pattern), State="ENABLED")
    events_role = make_role("events-role", "events.amazonaws.com")
    events.put_targets(Rule=world.rule, Targets=[{"Id": "pipeline", "Arn": world.pipeline_arn, "RoleArn": events_role}])
