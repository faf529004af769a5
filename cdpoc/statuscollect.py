"""Collecting a `cdpoc status` snapshot: what exists (the read-only plan), then one read per view.

The inventory is the plan `cdpoc plan` makes (each kind listed once); then one call per view:
describe_auto_scaling_groups, describe_target_health (per target group, normally one), describe_instances
(all fleet ids at once), describe_scaling_activities, describe_nat_gateways (the stack's age: the VPC
has no creation time), get_pipeline_state, list_action_executions, list_deployments,
batch_get_deployments, and list_deployment_targets + batch_get_deployment_targets for the latest
deployment (and for at most two older ones). At most LIVE_CALLS besides the plan; views of what does
not exist cost no call. Every read goes through cdpoc.aws.observe; cdpoc.statusshapes turns the replies
into values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cdpoc.aws import observe
from cdpoc.aws.account import account_id
from cdpoc.cost import hourly_cost
from cdpoc.graph import Graph
from cdpoc.model import Action, Observed, Plan
from cdpoc.planner import make_plan
from cdpoc.render import extra_details
from cdpoc.stack.names import StackNames
from cdpoc.stack.parts import (
    BASTION,
    BASTION_ADDRESS,
    DATABASE,
    DEPLOYMENT_GROUP,
    FLEET,
    LOAD_BALANCER,
    PIPELINE,
    SITE_BUCKET,
    TARGET_GROUP,
    Part,
)
from cdpoc.statusprobe import HttpProbe, probe_http
from cdpoc.statusshapes import (
    activity,
    commits_by_deployment,
    deployment_ids,
    instance_revisions,
    latest_deployment,
    pipeline_view,
    rolled_back,
    with_same_revisions,
)
from cdpoc.statussnapshot import StatusSnapshot
from cdpoc.statusviews import Activity, Endpoints, Fleet, FleetInstance, ResourceRow, StackView

if TYPE_CHECKING:
    from cdpoc.context import Context

# How many deployments (newest first) are read to find the revision each instance runs.
DEPLOYMENT_HISTORY = 3
# The most calls one snapshot makes besides the plan's: Auto Scaling group, target health (one target group),
# instances, scaling activities, NAT gateways, pipeline state, action executions, deployments (list + batch),
# and targets (list + batch) of up to DEPLOYMENT_HISTORY deployments of at most 25 instances.
LIVE_CALLS = 9 + 2 * DEPLOYMENT_HISTORY


@dataclass(frozen=True)
class Inventory:
    """What exists of the stack (the read-only plan), kept between --watch refreshes."""

    view: StackView
    found: Mapping[str, Observed | None]
    graph: Graph
    names: StackNames
    nat_created: datetime | None = None


def take_inventory(ctx: Context) -> Inventory:
    graph = ctx.graph()
    account = account_id(ctx.run)  # memoized by graph(); read before the plan clears the memo
    plan = make_plan(ctx.run, graph, ctx.handlers)
    found = {step.resource.key: step.found for step in plan.steps}
    view = StackView(
        name=ctx.settings.name,
        region=ctx.settings.region,
        account=account,
        resources=_rows(ctx, plan),
        cost_per_hour=hourly_cost(step.resource for step in plan.steps if step.found is not None),
        region_source=ctx.region_source,
        extras=tuple(f"{found.key}: {extra_details(found, ctx.describe)}" for found in plan.extras),
    )
    has_nat = any(step.found is not None and step.resource.kind == "nat_gateway" for step in plan.steps)
    nat_created = observe.oldest_nat_gateway_time(ctx.run) if has_nat else None
    return Inventory(view, found, graph, StackNames(ctx.settings, ctx.run.zones, account), nat_created)


def _rows(ctx: Context, plan: Plan) -> tuple[ResourceRow, ...]:
    rows = []
    for step in plan.steps:
        res, found = step.resource, step.found
        if step.changes:
            detail = "; ".join(c.text for c in step.changes)
        elif found is not None:
            detail = ctx.handlers[found.kind].describe(found)
        else:
            detail = ""
        rows.append(ResourceRow(res.key, res.kind, res.name, step.action.value, found.id if found else "", detail))
    return tuple(rows)


def collect(
    ctx: Context, inventory: Inventory | None = None, probe: HttpProbe = probe_http, now: datetime | None = None
) -> StatusSnapshot:
    """One snapshot; pass the previous inventory to skip re-reading what exists."""
    inventory = inventory or take_inventory(ctx)
    run, found = ctx.run, inventory.found
    endpoints = _endpoints(found, ctx.settings.load_balancer.health_check_path, probe)
    pipeline_name = _existing_name(inventory, PIPELINE)
    pipeline_state = observe.pipeline_state(run, pipeline_name) if pipeline_name else None
    executions = observe.action_executions(run, pipeline_name) if pipeline_state else []
    commits = commits_by_deployment(executions)
    deployments: list[dict[str, Any]] = []
    group_name = _existing_name(inventory, DEPLOYMENT_GROUP)
    if group_name:
        deployments = observe.recent_deployments(
            run, inventory.names.codedeploy_application, group_name, also=deployment_ids(executions)
        )
    commits = with_same_revisions(commits, deployments)
    group = _group(ctx, inventory)
    fleet_ids = [i["InstanceId"] for i in group.get("Instances", [])] if group else []
    targets_by_deployment = _targets(run, deployments, fleet_ids)
    fleet: Fleet | None = None
    activities: tuple[Activity, ...] = ()
    if group is not None:
        fleet = _fleet(run, group, inventory, deployments, targets_by_deployment, commits)
        activities = tuple(activity(a) for a in observe.scaling_activities(run, group["AutoScalingGroupName"]))
    pipeline = pipeline_view(pipeline_name, pipeline_state, executions) if pipeline_state else None
    deployment = latest_deployment(deployments, targets_by_deployment, commits)
    stack = replace(inventory.view, created_at=_created(inventory, group, fleet, pipeline_state))
    return StatusSnapshot(
        taken_at=now or datetime.now(UTC),
        stack=stack,
        endpoints=endpoints,
        fleet=fleet,
        pipeline=pipeline,
        deployment=deployment,
        activities=activities,
        notes=_drift_notes(stack),
    )


def _existing_name(inventory: Inventory, part: Part) -> str:
    """The part's AWS name when the stack declares it and it exists; "" otherwise (no call for its view then)."""
    declared = part.of(inventory.graph)
    return declared.name if declared is not None and part.found_in(inventory.found) is not None else ""


def _group(ctx: Context, inventory: Inventory) -> dict[str, Any] | None:
    found = FLEET.found_in(inventory.found)
    return observe.auto_scaling_group(ctx.run, found.id) if found is not None else None


def _endpoints(found: Mapping[str, Observed | None], health_path: str, probe: HttpProbe) -> Endpoints:
    alb, web = LOAD_BALANCER.found_in(found), SITE_BUCKET.found_in(found)
    bastion, bastion_ip, mongodb = BASTION.found_in(found), BASTION_ADDRESS.found_in(found), DATABASE.found_in(found)
    dns = str(alb.attrs.get("dns_name", "")) if alb else ""
    return Endpoints(
        app_url=f"http://{dns}/" if dns else "",
        app_health=probe(f"http://{dns}{health_path}") if dns else None,
        website_url=str(web.attrs.get("website_url", "")) if web else "",
        bastion=str(
            (bastion.attrs.get("public_ip") if bastion else "")
            or (bastion_ip.attrs.get("public_ip", "") if bastion_ip else "")
        ),
        mongodb=str(mongodb.attrs.get("private_ip", "")) if mongodb else "",
    )


def _targets(
    run: Any, deployments: Sequence[Mapping[str, Any]], fleet_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Targets of the latest deployment and of the one it rolls back (its failure is the story), then of older
    ones until each fleet instance has a succeeded one; at most DEPLOYMENT_HISTORY deployments."""
    result: dict[str, list[dict[str, Any]]] = {}
    settled: set[str] = set()
    undone = rolled_back(deployments[0]) if deployments else ""
    for deployment in deployments[:DEPLOYMENT_HISTORY]:
        needed = not result or deployment["deploymentId"] == undone or not settled.issuperset(fleet_ids)
        if not needed:
            continue
        if deployment.get("status") in ("Created", "Queued"):
            result[deployment["deploymentId"]] = []  # not started: no targets to list yet
            continue
        targets = observe.deployment_targets(run, deployment["deploymentId"])
        result[deployment["deploymentId"]] = targets
        settled.update(t["instanceTarget"]["targetId"] for t in targets if _instance_status(t) == "Succeeded")
    return result


def _instance_status(target: Mapping[str, Any]) -> str:
    return str(target.get("instanceTarget", {}).get("status", ""))


def _fleet(
    run: Any,
    group: Mapping[str, Any],
    inventory: Inventory,
    deployments: Sequence[Mapping[str, Any]],
    targets_by_deployment: Mapping[str, Sequence[Mapping[str, Any]]],
    commits: Mapping[str, tuple[str, str]],
) -> Fleet:
    target_groups = list(group.get("TargetGroupARNs", []))
    tg = TARGET_GROUP.found_in(inventory.found)
    if not target_groups and tg is not None:
        target_groups = [tg.id]
    health: dict[str, Mapping[str, Any]] = {}
    for arn in target_groups:
        for description in observe.target_health(run, arn):
            health[description["Target"]["Id"]] = description.get("TargetHealth", {})
    members = {i["InstanceId"]: i for i in group.get("Instances", [])}
    ec2 = {i["InstanceId"]: i for i in observe.instances(run, [*members, *health])}
    revisions = instance_revisions(deployments, targets_by_deployment, commits)
    rows = []
    for instance_id in [*members, *(i for i in health if i not in members)]:
        member, target, described = members.get(instance_id, {}), health.get(instance_id, {}), ec2.get(instance_id, {})
        revision, pending, pending_status = revisions.get(instance_id, ("", "", ""))
        rows.append(
            FleetInstance(
                id=instance_id,
                zone=str(member.get("AvailabilityZone") or described.get("Placement", {}).get("AvailabilityZone", "")),
                state=str(described.get("State", {}).get("Name", "")),
                lifecycle=str(member.get("LifecycleState", "")),
                ec2_health=str(member.get("HealthStatus", "")),
                target_state=str(target.get("State", "")),
                target_reason=str(target.get("Reason", "")),
                target_description=str(target.get("Description", "")),
                private_ip=str(described.get("PrivateIpAddress", "")),
                launched_at=described.get("LaunchTime"),
                revision=revision,
                pending_revision=pending,
                pending_status=pending_status,
            )
        )
    return Fleet(
        name=str(group["AutoScalingGroupName"]),
        min_size=int(group["MinSize"]),
        desired=int(group["DesiredCapacity"]),
        max_size=int(group["MaxSize"]),
        health_check_type=str(group.get("HealthCheckType", "")),
        instances=tuple(rows),
    )


def _created(
    inventory: Inventory, group: Mapping[str, Any] | None, fleet: Fleet | None, pipeline_state: Mapping[str, Any] | None
) -> datetime | None:
    """The oldest creation time among what was read (the VPC itself has none)."""
    times: list[datetime] = [t for t in (inventory.nat_created,) if t is not None]
    if group is not None and group.get("CreatedTime"):
        times.append(group["CreatedTime"])
    if fleet is not None:
        times.extend(i.launched_at for i in fleet.instances if i.launched_at is not None)
    if pipeline_state and pipeline_state.get("created"):
        times.append(pipeline_state["created"])
    return min(times) if times else None


def _drift_notes(stack: StackView) -> tuple[str, ...]:
    notes = []
    for row in stack.with_action(Action.UPDATE):
        notes.append(f"`cdpoc up` would change {row.key}: {row.detail}")
    for row in stack.with_action(Action.CONFLICT):
        notes.append(f"{row.key} differs from the config and cannot be changed in place: {row.detail}")
    notes.extend(f"extra resource of the stack: {extra}" for extra in stack.extras)
    return tuple(notes)
