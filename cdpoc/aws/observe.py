"""Read-only AWS calls behind `cdpoc status`: the fleet, the load balancer's view of it, the pipeline, deployments.

Each function makes a fixed number of calls (batch describes, never one call per resource where a
batch call exists) and returns botocore's own dictionaries; cdpoc.status turns them into a snapshot.
"Not found" answers are normal here (a stack may be half built) and come back as None or empty;
throttling is raised as Throttled so that `status --watch` can back off instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from cdpoc.aws.errors import aws_errors, caused_by
from cdpoc.aws.run import STACK_TAG, AwsRun
from cdpoc.errors import AwsError

# Every throttling code the services behind status and logs answer with (EC2 uses RequestLimitExceeded).
THROTTLING = ("Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException")

# BatchGetDeployments and BatchGetDeploymentTargets accept at most 25 ids per call.
BATCH_LIMIT = 25
# Scaling activities shown: the recent launches and terminations, newest first.
ACTIVITY_LIMIT = 8


class Throttled(AwsError):
    """AWS asked us to slow down (after botocore's own retries); the caller may wait longer and try again."""


@contextmanager
def reading(what: str) -> Iterator[None]:
    """aws_errors, with throttling told apart from other failures."""
    try:
        with aws_errors(what):
            yield
    except AwsError as exc:
        if caused_by(exc, *THROTTLING):
            raise Throttled(
                f"{what}: AWS is throttling requests", "Wait a little, or refresh less often."
            ) from exc.__cause__
        raise


# --- Auto Scaling and the load balancer ---------------------------------------------------------------


def auto_scaling_group(run: AwsRun, name: str) -> dict[str, Any] | None:
    """The group with its instances (each with zone, lifecycle state and health), or None."""
    with reading(f"reading Auto Scaling group {name}"):
        groups = run.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
            "AutoScalingGroups"
        ]
    return dict(groups[0]) if groups else None


def scaling_activities(run: AwsRun, group: str, limit: int = ACTIVITY_LIMIT) -> list[dict[str, Any]]:
    """The group's most recent activities (launches, terminations, failures), newest first."""
    with reading(f"reading the scaling activities of {group}"):
        reply = run.client("autoscaling").describe_scaling_activities(AutoScalingGroupName=group, MaxRecords=limit)
    return list(reply["Activities"])


def target_health(run: AwsRun, target_group_arn: str) -> list[dict[str, Any]]:
    """Every registered target with its state and reason; empty when the target group is gone."""
    try:
        with reading("reading the target group's health"):
            reply = run.client("elbv2").describe_target_health(TargetGroupArn=target_group_arn)
    except AwsError as exc:
        if caused_by(exc, "TargetGroupNotFound", "TargetGroupNotFoundException"):
            return []
        raise
    return list(reply["TargetHealthDescriptions"])


def instances(run: AwsRun, instance_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The given instances in one call; a filter (not InstanceIds) so that an id gone meanwhile is no error."""
    if not instance_ids:
        return []
    found: list[dict[str, Any]] = []
    with reading("reading the fleet's instances"):
        pages = (
            run.client("ec2")
            .get_paginator("describe_instances")
            .paginate(Filters=[{"Name": "instance-id", "Values": sorted(set(instance_ids))}])
        )
        for page in pages:
            found.extend(i for r in page["Reservations"] for i in r["Instances"])
    return found


def oldest_nat_gateway_time(run: AwsRun) -> datetime | None:
    """When the stack's first NAT gateway was created (the VPC itself carries no creation time)."""
    filters = [
        {"Name": f"tag:{STACK_TAG}", "Values": [run.stack]},
        {"Name": "state", "Values": ["pending", "available"]},
    ]
    with reading("reading the stack's NAT gateways"):
        gateways = run.client("ec2").describe_nat_gateways(Filter=filters)["NatGateways"]
    times = [g["CreateTime"] for g in gateways if g.get("CreateTime")]
    return min(times) if times else None


# --- CodePipeline and CodeDeploy ---------------------------------------------------------------------


def pipeline_state(run: AwsRun, name: str) -> dict[str, Any] | None:
    """Each stage's latest execution and action states (the deploy action names its CodeDeploy deployment)."""
    try:
        with reading(f"reading the state of pipeline {name}"):
            return dict(run.client("codepipeline").get_pipeline_state(name=name))
    except AwsError as exc:
        if caused_by(exc, "PipelineNotFoundException"):
            return None
        raise


def action_executions(run: AwsRun, pipeline: str, limit: int = 50) -> list[dict[str, Any]]:
    """The pipeline's recent action executions (one page): each source action's commit and each deploy
    action's deployment id, with the pipeline execution that joins them."""
    try:
        with reading(f"reading the action executions of pipeline {pipeline}"):
            reply = run.client("codepipeline").list_action_executions(pipelineName=pipeline, maxResults=limit)
    except AwsError as exc:
        if caused_by(exc, "PipelineNotFoundException"):
            return []
        raise
    return list(reply.get("actionExecutionDetails", []))


def _candidates(listed: Sequence[str], also: Sequence[str]) -> list[str]:
    """At most BATCH_LIMIT ids that include the newest, whichever end of the page ListDeployments puts them.

    ListDeployments does not document its order, so both ends of the first page are kept, plus ids
    known from elsewhere (the pipeline's deploy action).
    """
    extra = [i for i in dict.fromkeys(also) if i and i not in listed]
    room = BATCH_LIMIT - len(extra)
    if len(listed) <= room:
        picked = list(listed)
    else:
        head = (room + 1) // 2
        picked = [*listed[:head], *listed[len(listed) - (room - head) :]]
    return [*picked, *extra][:BATCH_LIMIT]


def recent_deployments(run: AwsRun, application: str, group: str, also: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The deployment group's recent deployments, newest first (two calls: one list, one batch get)."""
    client = run.client("codedeploy")
    try:
        with reading(f"listing the deployments of {application}/{group}"):
            listed = client.list_deployments(applicationName=application, deploymentGroupName=group)["deployments"]
    except AwsError as exc:
        if caused_by(exc, "ApplicationDoesNotExistException", "DeploymentGroupDoesNotExistException"):
            return []
        raise
    ids = _candidates(listed, also)
    if not ids:
        return []
    with reading(f"reading the deployments of {application}/{group}"):
        infos = client.batch_get_deployments(deploymentIds=ids)["deploymentsInfo"]
    return sorted(infos, key=lambda d: (d.get("createTime") or datetime.min, d["deploymentId"]), reverse=True)


def deployment_targets(run: AwsRun, deployment_id: str) -> list[dict[str, Any]]:
    """Every target of a deployment with its lifecycle events (and, for a failed hook, script and log tail).

    One list call plus one batch get per 25 targets; a deployment that has not started has none yet.
    """
    client = run.client("codedeploy")
    target_ids: list[str] = []
    try:
        with reading(f"listing the targets of deployment {deployment_id}"):
            for page in client.get_paginator("list_deployment_targets").paginate(deploymentId=deployment_id):
                target_ids.extend(page.get("targetIds", []))
    except AwsError as exc:
        if caused_by(exc, "DeploymentNotStartedException", "DeploymentDoesNotExistException"):
            return []
        raise
    targets: list[dict[str, Any]] = []
    for start in range(0, len(target_ids), BATCH_LIMIT):
        with reading(f"reading the targets of deployment {deployment_id}"):
            reply = client.batch_get_deployment_targets(
                deploymentId=deployment_id, targetIds=target_ids[start : start + BATCH_LIMIT]
            )
        targets.extend(reply.get("deploymentTargets", []))
    return targets
