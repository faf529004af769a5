"""`cdpoc status`: one snapshot of the stack, its endpoints, fleet, pipeline and latest deployment.

The snapshot is pure data (frozen dataclasses) collected with a bounded number of AWS calls: the
inventory is the read-only plan `cdpoc plan` makes (each kind listed once), then one call per view:
describe_auto_scaling_groups, describe_target_health (per target group, normally one),
describe_instances (all fleet ids at once), describe_scaling_activities, describe_nat_gateways (the
stack's age: the VPC has no creation time), get_pipeline_state, list_action_executions,
list_deployments, batch_get_deployments, and list_deployment_targets + batch_get_deployment_targets
for the latest deployment (and for at most two older ones: the one a rollback undoes, or the one that
installed what an instance runs). At most LIVE_CALLS besides the plan; views of what does not exist
cost no call. cdpoc.statusrender turns a snapshot into a screen, lines or JSON; `--watch` refreshes
it, re-reading the inventory at most once a minute, and backs off (doubles its interval) when AWS
throttles.

Exit codes: 0 everything that exists is healthy and settled; 3 something is missing (including an
empty account), unhealthy, failed or still converging (a deployment in progress, a target draining);
1 an error. `--watch` runs until Ctrl-C and then exits 0 (that is how it is meant to end).

`cdpoc status --json` prints one object (with --watch: one compact object per line, whenever something
changed). Stable keys, schema 1:

    schema            1
    taken_at          ISO 8601 UTC time of the snapshot
    healthy           true when nothing is missing, failing or still converging (exit code 0, else 3)
    issues            [str]: why it is not healthy, one sentence each
    notes             [str]: remarks that are not problems (drift `cdpoc up` would fix)
    stack             {name, region, region_source, account, created_at, age_seconds, cost_per_hour,
                       counts: {exists, create, update, differs},
                       resources: [{key, kind, name, action, id, detail}]}
                      action is what `up` would do: exists | create | update | differs
    endpoints         {app: {url, health: {url, status, latency_ms, error, ok}} | null,
                       website: {url} | null, bastion: {address} | null, mongodb: {address} | null}
                      app.health is one GET of the health check path through the load balancer
    fleet             null | {name, min, desired, max, health_check_type,
                       instances: [{id, zone, state, lifecycle, ec2_health, target_state, target_reason,
                                    target_description, private_ip, launched_at, revision,
                                    pending_revision, pending_status}]}
                      lifecycle "" = not in the group (e.g. a terminated instance still draining);
                      target_state "" = not registered in the target group;
                      revision = what the newest deployment that succeeded on it installed ("" = none);
                      pending_* = a newer deployment to it that has not succeeded (in progress or failed)
    pipeline          null | {name, source: {revision, message, time},
                       stages: [{name, status, execution_id, changed_at, summary}]}
    deployment        null | {id, status, config, creator, created_at, completed_at, revision, message,
                       overview: {Pending, InProgress, Succeeded, Failed, Skipped, Ready},
                       error: {code, message} | null, rollback_of,
                       targets: [{instance, status, updated_at,
                                  events: [{name, status, started_at, ended_at, duration_seconds,
                                            error_code, script, message, log_tail}]}],
                       rolls_back: <the same object, for the failed deployment> | null}
                      the newest deployment of the group; a rollback carries the deployment it undoes
    activities        [{id, status, description, cause, started_at, ended_at}], newest first

Revisions are commit ids where the pipeline says which commit a deployment installed (also for a
rollback or an Auto Scaling deployment of the same bundle), else "s3:<bundle file>", a GitHub commit
or "sha256:<12 hex>". Times are ISO 8601 UTC strings or null. New keys may be added; existing ones
keep their meaning.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cdpoc import __version__
from cdpoc.aws import observe
from cdpoc.aws.account import account_id
from cdpoc.aws.observe import Throttled
from cdpoc.config import describe_region
from cdpoc.cost import hourly_cost
from cdpoc.errors import EXIT_LEFTOVERS, EXIT_OK
from cdpoc.graph import Graph
from cdpoc.model import Action, Observed, Plan
from cdpoc.planner import make_plan
from cdpoc.render import extra_details
from cdpoc.stack.names import StackNames

if TYPE_CHECKING:
    from cdpoc.context import Context

SCHEMA = 1
PROBE_TIMEOUT = 3.0
# --watch re-reads the inventory (the plan: every kind listed) at most this often; the live views each refresh.
INVENTORY_MAX_AGE = 60.0
# Throttling doubles the refresh interval, up to this.
MAX_INTERVAL = 300.0
# How many deployments (newest first) are read to find the revision each instance runs.
DEPLOYMENT_HISTORY = 3
# The most calls one snapshot makes besides the plan's: Auto Scaling group, target health (one target group),
# instances, scaling activities, NAT gateways, pipeline state, action executions, deployments (list + batch),
# and targets (list + batch) of up to DEPLOYMENT_HISTORY deployments of at most 25 instances.
LIVE_CALLS = 9 + 2 * DEPLOYMENT_HISTORY
EXIT_UNHEALTHY = EXIT_LEFTOVERS

# Target health states that mean "on its way" rather than "broken" (both keep the stack from healthy).
SETTLING_TARGET_STATES = ("initial", "draining", "unhealthy.draining")
BROKEN_TARGET_STATES = ("unhealthy", "unavailable")
SETTLED_DEPLOYMENT_STATES = ("Succeeded",)
FAILED_DEPLOYMENT_STATES = ("Failed", "Stopped")


# --- the snapshot ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceRow:
    """One declared resource and what `up` would do with it (exists, create, update, differs)."""

    key: str
    kind: str
    name: str
    action: str
    id: str = ""
    detail: str = ""


@dataclass(frozen=True)
class StackView:
    name: str
    region: str
    account: str
    resources: tuple[ResourceRow, ...] = ()
    cost_per_hour: float = 0.0
    created_at: datetime | None = None
    # Where the region came from: --region, the config file, AWS_REGION, AWS_DEFAULT_REGION or a profile.
    region_source: str = ""
    # Resources of the stack (by their tags) it does not declare: a duplicate, an orphan, an old component.
    extras: tuple[str, ...] = ()

    @property
    def region_label(self) -> str:
        return describe_region(self.region, self.region_source)

    def with_action(self, action: Action) -> list[ResourceRow]:
        return [r for r in self.resources if r.action == action.value]

    @property
    def present(self) -> list[ResourceRow]:
        return [r for r in self.resources if r.action != Action.CREATE.value]

    @property
    def missing(self) -> list[ResourceRow]:
        return self.with_action(Action.CREATE)


@dataclass(frozen=True)
class HttpCheck:
    """The result of one HTTP GET: a status code and latency, or why there was no answer."""

    url: str
    status: int | None = None
    latency_ms: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Endpoints:
    app_url: str = ""
    app_health: HttpCheck | None = None
    website_url: str = ""
    bastion: str = ""
    mongodb: str = ""


@dataclass(frozen=True)
class FleetInstance:
    id: str
    zone: str = ""
    state: str = ""  # EC2 state: pending, running, shutting-down, terminated...
    lifecycle: str = ""  # Auto Scaling lifecycle state; "" when not in the group
    ec2_health: str = ""  # Auto Scaling's health status: Healthy / Unhealthy
    target_state: str = ""  # initial, healthy, unhealthy, unused, draining, unavailable; "" when not registered
    target_reason: str = ""
    target_description: str = ""
    private_ip: str = ""
    launched_at: datetime | None = None
    revision: str = ""  # installed by the newest deployment that succeeded on it
    pending_revision: str = ""  # a newer deployment to it that has not succeeded...
    pending_status: str = ""  # ...and its status there (InProgress, Pending, Failed...)


@dataclass(frozen=True)
class Fleet:
    name: str
    min_size: int
    desired: int
    max_size: int
    health_check_type: str = ""
    instances: tuple[FleetInstance, ...] = ()

    @property
    def in_group(self) -> list[FleetInstance]:
        return [i for i in self.instances if i.lifecycle]


@dataclass(frozen=True)
class StageView:
    name: str
    status: str = ""  # the stage's latest execution status; "" = never ran
    execution_id: str = ""
    changed_at: datetime | None = None
    summary: str = ""


@dataclass(frozen=True)
class PipelineView:
    name: str
    stages: tuple[StageView, ...] = ()
    source_revision: str = ""
    source_message: str = ""
    source_time: datetime | None = None


@dataclass(frozen=True)
class LifecycleEventView:
    name: str
    status: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error_code: str = ""
    script: str = ""
    message: str = ""
    log_tail: str = ""

    def duration(self, now: datetime) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, ((self.ended_at or now) - self.started_at).total_seconds())


@dataclass(frozen=True)
class TargetView:
    instance_id: str
    status: str
    updated_at: datetime | None = None
    events: tuple[LifecycleEventView, ...] = ()

    @property
    def failed_event(self) -> LifecycleEventView | None:
        return next((e for e in self.events if e.status == "Failed"), None)


@dataclass(frozen=True)
class DeploymentView:
    id: str
    status: str
    config: str = ""
    creator: str = ""
    created_at: datetime | None = None
    completed_at: datetime | None = None
    revision: str = ""
    message: str = ""  # the commit message, when the pipeline says which commit it deploys
    overview: Mapping[str, int] = field(default_factory=dict)
    error_code: str = ""
    error_message: str = ""
    rollback_of: str = ""  # the failed deployment this one rolls back...
    targets: tuple[TargetView, ...] = ()
    rolls_back: DeploymentView | None = None  # ...and that deployment, with the failure that caused it


@dataclass(frozen=True)
class Activity:
    id: str
    status: str
    description: str
    cause: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class StatusSnapshot:
    taken_at: datetime
    stack: StackView
    endpoints: Endpoints = Endpoints()
    fleet: Fleet | None = None
    pipeline: PipelineView | None = None
    deployment: DeploymentView | None = None
    activities: tuple[Activity, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def issues(self) -> list[str]:
        return issues(self)

    @property
    def healthy(self) -> bool:
        return not self.issues


# --- health ----------------------------------------------------------------------------------------


def issues(snapshot: StatusSnapshot) -> list[str]:
    """Why the stack is not (yet) healthy: missing parts, failures, and things still settling."""
    stack = snapshot.stack
    if not stack.present:
        return [f"nothing of stack {stack.name} exists in {stack.region}: run `cdpoc up`"]
    found: list[str] = []
    if stack.missing:
        found.append(f"{len(stack.missing)} resource(s) missing: {_keys(stack.missing)} (run `cdpoc up`)")
    check = snapshot.endpoints.app_health
    if check is not None and not check.ok:
        found.append(f"the app does not answer {check.url}: {describe_check(check)}")
    if snapshot.fleet is not None:
        found.extend(_fleet_issues(snapshot.fleet))
    if snapshot.pipeline is not None:
        found.extend(
            f"pipeline stage {s.name} {s.status.lower()}" + (f": {s.summary}" if s.summary else "")
            for s in snapshot.pipeline.stages
            if s.status in ("Failed", "Stopped", "Cancelled")
        )
    if snapshot.deployment is not None:
        found.extend(_deployment_issues(snapshot.deployment))
    return found


def _deployment_issues(deployment: DeploymentView) -> list[str]:
    found = []
    if deployment.status in FAILED_DEPLOYMENT_STATES:
        reason = f": {deployment.error_message}" if deployment.error_message else ""
        found.append(f"deployment {deployment.id} {deployment.status.lower()}{reason}")
    elif deployment.status not in SETTLED_DEPLOYMENT_STATES:
        found.append(f"deployment {deployment.id} is {deployment.status}")
    if deployment.rollback_of:
        # Even a finished rollback means the latest revision did not make it.
        failed = deployment.rolls_back
        reason = f": {failed.error_message}" if failed is not None and failed.error_message else ""
        found.append(f"deployment {deployment.rollback_of} failed and is rolled back by {deployment.id}{reason}")
    return found


def _fleet_issues(fleet: Fleet) -> list[str]:
    found = []
    in_service = [i for i in fleet.in_group if i.lifecycle == "InService"]
    if len(in_service) < fleet.desired:
        found.append(f"{len(in_service)} of {fleet.desired} instances of {fleet.name} are in service")
    for instance in fleet.in_group:
        if instance.ec2_health and instance.ec2_health != "Healthy":
            found.append(f"{instance.id} is {instance.ec2_health} (Auto Scaling)")
        if instance.lifecycle != "InService":
            continue
        if not instance.target_state:
            found.append(f"{instance.id} is not registered in the target group")
        elif instance.target_state in BROKEN_TARGET_STATES or instance.target_state in SETTLING_TARGET_STATES:
            reason = f" ({instance.target_reason})" if instance.target_reason else ""
            found.append(f"{instance.id} is {instance.target_state} in the target group{reason}")
    return found


def describe_check(check: HttpCheck) -> str:
    if check.status is not None:
        latency = f" in {check.latency_ms:.0f} ms" if check.latency_ms is not None else ""
        return f"HTTP {check.status}{latency}" + (f": {check.error}" if check.error else "")
    return check.error or "no answer"


def _keys(rows: Sequence[ResourceRow], limit: int = 8) -> str:
    keys = [r.key for r in rows]
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def exit_code(snapshot: StatusSnapshot) -> int:
    return EXIT_OK if snapshot.healthy else EXIT_UNHEALTHY


# --- the HTTP probe -------------------------------------------------------------------------------

HttpProbe = Callable[[str], HttpCheck]


def probe_http(url: str, timeout: float = PROBE_TIMEOUT) -> HttpCheck:
    """GET url once with a short timeout; any failure is a result, never an exception.

    urllib's timeout does not cover the DNS lookup, which can hang for long on a broken resolver: the
    request runs in a daemon thread, and the answer not there in time is a timeout too.
    """
    result: list[HttpCheck] = []
    worker = threading.Thread(target=lambda: result.append(_get(url, timeout)), name="cdpoc-probe", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return result[0] if result else HttpCheck(url, error=f"unreachable: no answer within {timeout:g}s")


def _get(url: str, timeout: float) -> HttpCheck:
    request = urllib.request.Request(url, headers={"User-Agent": f"cdpoc/{__version__} status"})
    started = time.monotonic()
    try:
        # a new opener per probe: it reads HTTP_PROXY/NO_PROXY now (urlopen's is built once per process)
        with urllib.request.build_opener().open(request, timeout=timeout) as reply:
            status, error = reply.status, ""
    except urllib.error.HTTPError as exc:
        status, error = exc.code, _first_line(exc.read(300))
    except urllib.error.URLError as exc:
        return HttpCheck(url, error=f"unreachable: {exc.reason}")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return HttpCheck(url, error=f"unreachable: {exc or type(exc).__name__}")
    return HttpCheck(url, status=status, latency_ms=(time.monotonic() - started) * 1000, error=error)


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:160] if text else ""


# --- collecting -----------------------------------------------------------------------------------


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
    pipeline_state = None
    if _exists(inventory, inventory.names.pipeline, "pipeline"):
        pipeline_state = observe.pipeline_state(run, inventory.names.pipeline)
    executions = observe.action_executions(run, inventory.names.pipeline) if pipeline_state else []
    commits = commits_by_deployment(executions)
    deployments: list[dict[str, Any]] = []
    if _exists(inventory, inventory.names.deployment_group, "deployment_group"):
        deployments = observe.recent_deployments(
            run,
            inventory.names.codedeploy_application,
            inventory.names.deployment_group,
            also=deployment_ids(executions),
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
    pipeline = pipeline_view(inventory.names.pipeline, pipeline_state, executions) if pipeline_state else None
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


def _exists(inventory: Inventory, name: str, kind: str) -> bool:
    """Whether the stack declares a resource of that name and kind, and it exists (no call when it does not)."""
    return any(
        res.name == name and res.kind == kind and inventory.found.get(res.key) is not None
        for res in inventory.graph.resources.values()
    )


def _group(ctx: Context, inventory: Inventory) -> dict[str, Any] | None:
    found = inventory.found.get("asg.app")
    return observe.auto_scaling_group(ctx.run, found.id) if found is not None else None


def _endpoints(found: Mapping[str, Observed | None], health_path: str, probe: HttpProbe) -> Endpoints:
    alb, web = found.get("alb"), found.get("bucket.web")
    bastion, bastion_ip, mongodb = (
        found.get("instance.bastion"),
        found.get("eip.bastion"),
        found.get("instance.mongodb"),
    )
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


def _rolled_back(deployment: Mapping[str, Any]) -> str:
    return str((deployment.get("rollbackInfo") or {}).get("rollbackTriggeringDeploymentId", ""))


def _targets(
    run: Any, deployments: Sequence[Mapping[str, Any]], fleet_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Targets of the latest deployment and of the one it rolls back (its failure is the story), then of older
    ones until each fleet instance has a succeeded one; at most DEPLOYMENT_HISTORY deployments."""
    result: dict[str, list[dict[str, Any]]] = {}
    settled: set[str] = set()
    rolled_back = _rolled_back(deployments[0]) if deployments else ""
    for deployment in deployments[:DEPLOYMENT_HISTORY]:
        needed = not result or deployment["deploymentId"] == rolled_back or not settled.issuperset(fleet_ids)
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
    tg = inventory.found.get("tg.app")
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


# --- pure conversions from botocore shapes ------------------------------------------------------------


def activity(raw: Mapping[str, Any]) -> Activity:
    return Activity(
        id=str(raw.get("ActivityId", "")),
        status=str(raw.get("StatusCode", "")),
        description=str(raw.get("Description", "")),
        cause=str(raw.get("Cause", "")),
        started_at=raw.get("StartTime"),
        ended_at=raw.get("EndTime"),
    )


def _provider(execution: Mapping[str, Any]) -> tuple[str, str]:
    action_type = execution.get("input", {}).get("actionTypeId", {})
    return str(action_type.get("category", "")), str(action_type.get("provider", ""))


def deployment_ids(executions: Iterable[Mapping[str, Any]], limit: int = 5) -> list[str]:
    """The CodeDeploy deployments the pipeline's recent deploy actions created, newest first.

    Only CodeDeploy actions' externalExecutionId is a deployment id (a source action's is a commit id),
    and a wrong id would make BatchGetDeployments fail: the provider decides, not the id's look.
    """
    ids = []
    for execution in executions:
        external = str(execution.get("output", {}).get("executionResult", {}).get("externalExecutionId", ""))
        if _provider(execution) == ("Deploy", "CodeDeploy") and external and external not in ids:
            ids.append(external)
    return ids[:limit]


def commits_by_deployment(executions: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """{deployment id: (commit id, commit message)}, joined through the pipeline execution that made it."""
    sources: dict[str, tuple[str, str]] = {}
    deploys: dict[str, str] = {}
    for execution in executions:
        category, provider = _provider(execution)
        output = execution.get("output", {})
        result = output.get("executionResult", {})
        pipeline_execution = str(execution.get("pipelineExecutionId", ""))
        if category == "Source":
            variables = output.get("outputVariables", {})
            commit = variables.get("CommitId") or result.get("externalExecutionId", "")
            message = variables.get("CommitMessage") or result.get("externalExecutionSummary", "")
            sources.setdefault(pipeline_execution, (str(commit), str(message)))
        elif (category, provider) == ("Deploy", "CodeDeploy") and result.get("externalExecutionId"):
            deploys.setdefault(str(result["externalExecutionId"]), pipeline_execution)
    return {d: sources[e] for d, e in deploys.items() if e in sources}


def _revision_key(deployment: Mapping[str, Any]) -> str:
    revision = deployment.get("revision")
    return json.dumps(revision, sort_keys=True, default=str) if revision else ""


def with_same_revisions(
    commits: Mapping[str, tuple[str, str]], deployments: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[str, str]]:
    """Commits also for deployments that install a revision a pipeline deployment installed (a rollback, or
    Auto Scaling deploying the last good revision to a new instance): same bundle location, same commit."""
    deployments = list(deployments)
    by_revision = {_revision_key(d): commits[d["deploymentId"]] for d in deployments if d["deploymentId"] in commits}
    extended = {
        d["deploymentId"]: by_revision[_revision_key(d)]
        for d in deployments
        if _revision_key(d) and _revision_key(d) in by_revision
    }
    return {**extended, **commits}


def revision_label(deployment: Mapping[str, Any], commits: Mapping[str, tuple[str, str]]) -> str:
    """The commit a deployment installs when the pipeline says so; else where its bundle came from."""
    if deployment.get("deploymentId") in commits:
        return commits[deployment["deploymentId"]][0]
    revision = deployment.get("revision", {})
    kind = revision.get("revisionType", "")
    if kind == "S3":
        location = revision.get("s3Location", {})
        return "s3:" + str(location.get("key", "")).rsplit("/", 1)[-1]
    if kind == "GitHub":
        return str(revision.get("gitHubLocation", {}).get("commitId", ""))
    for name in ("string", "appSpecContent"):
        digest = revision.get(name, {}).get("sha256", "")
        if digest:
            return f"sha256:{digest[:12]}"
    return ""


def instance_revisions(
    deployments: Sequence[Mapping[str, Any]],
    targets_by_deployment: Mapping[str, Sequence[Mapping[str, Any]]],
    commits: Mapping[str, tuple[str, str]],
) -> dict[str, tuple[str, str, str]]:
    """{instance: (revision it runs, newer revision not yet succeeded there, that one's status)}.

    Deployments come newest first; an instance runs what its newest Succeeded target installed.
    Skipped targets installed nothing.
    """
    result: dict[str, tuple[str, str, str]] = {}
    for deployment in deployments:
        label = revision_label(deployment, commits)
        for target in targets_by_deployment.get(deployment["deploymentId"], []):
            instance = target.get("instanceTarget")
            if not instance:
                continue
            current = result.get(instance["targetId"], ("", "", ""))
            if current[0]:
                continue
            status = str(instance.get("status", ""))
            if status == "Succeeded":
                result[instance["targetId"]] = (label, current[1], current[2])
            elif status not in ("Skipped", "Unknown") and not current[1]:
                result[instance["targetId"]] = ("", label, status)
    return result


def pipeline_view(name: str, state: Mapping[str, Any], executions: Sequence[Mapping[str, Any]]) -> PipelineView:
    stages = []
    for stage in state.get("stageStates", []):
        latest = stage.get("latestExecution", {})
        actions = [a.get("latestExecution", {}) for a in stage.get("actionStates", [])]
        changes = [a["lastStatusChange"] for a in actions if a.get("lastStatusChange")]
        failed = next((a for a in actions if a.get("status") == "Failed"), None)
        if failed is not None:
            summary = str(failed.get("errorDetails", {}).get("message") or failed.get("summary", ""))
        else:
            summary = next((str(a["summary"]) for a in actions if a.get("summary")), "")
        stages.append(
            StageView(
                name=str(stage.get("stageName", "")),
                status=str(latest.get("status", "")),
                execution_id=str(latest.get("pipelineExecutionId", "")),
                changed_at=max(changes) if changes else None,
                summary=summary,
            )
        )
    revision, message, when = _source(state, executions)
    return PipelineView(name, tuple(stages), revision, message, when)


def _source(state: Mapping[str, Any], executions: Sequence[Mapping[str, Any]]) -> tuple[str, str, datetime | None]:
    """The source revision of the first stage: commit id, message and time."""
    stages = state.get("stageStates", [])
    actions = stages[0].get("actionStates", []) if stages else []
    if not actions:
        return "", "", None
    action = actions[0]
    revision = action.get("currentRevision", {})
    latest = action.get("latestExecution", {})
    commit = str(revision.get("revisionId") or latest.get("externalExecutionId", ""))
    message = str(latest.get("summary", ""))
    if not message:
        message = next(
            (
                str(e.get("output", {}).get("outputVariables", {}).get("CommitMessage", ""))
                for e in executions
                if e.get("output", {}).get("outputVariables", {}).get("CommitId") == commit
            ),
            "",
        )
    return commit, message, revision.get("created") or latest.get("lastStatusChange")


def latest_deployment(
    deployments: Sequence[Mapping[str, Any]],
    targets_by_deployment: Mapping[str, Sequence[Mapping[str, Any]]],
    commits: Mapping[str, tuple[str, str]],
) -> DeploymentView | None:
    """The newest deployment; when it is a rollback, with the deployment it rolls back attached."""
    if not deployments:
        return None
    by_id = {d["deploymentId"]: d for d in deployments}
    latest = deployments[0]
    view = deployment_view(latest, targets_by_deployment.get(latest["deploymentId"], []), commits)
    failed = by_id.get(_rolled_back(latest))
    if failed is not None:
        failed_view = deployment_view(failed, targets_by_deployment.get(failed["deploymentId"], []), commits)
        view = replace(view, rolls_back=failed_view)
    return view


def deployment_view(
    raw: Mapping[str, Any], targets: Sequence[Mapping[str, Any]], commits: Mapping[str, tuple[str, str]]
) -> DeploymentView:
    error = raw.get("errorInformation") or {}
    overview = raw.get("deploymentOverview") or {}
    return DeploymentView(
        id=str(raw["deploymentId"]),
        status=str(raw.get("status", "")),
        config=str(raw.get("deploymentConfigName", "")),
        creator=str(raw.get("creator", "")),
        created_at=raw.get("createTime"),
        completed_at=raw.get("completeTime"),
        revision=revision_label(raw, commits),
        message=commits.get(str(raw["deploymentId"]), ("", ""))[1],
        overview={
            k: int(overview.get(k, 0)) for k in ("Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Ready")
        },
        error_code=str(error.get("code", "")),
        error_message=str(error.get("message", "")),
        rollback_of=_rolled_back(raw),
        targets=tuple(target_view(t) for t in targets if t.get("instanceTarget")),
    )


def target_view(raw: Mapping[str, Any]) -> TargetView:
    target = raw["instanceTarget"]
    events = []
    for event in target.get("lifecycleEvents", []):
        diagnostics = event.get("diagnostics") or {}
        events.append(
            LifecycleEventView(
                name=str(event.get("lifecycleEventName", "")),
                status=str(event.get("status", "")),
                started_at=event.get("startTime"),
                ended_at=event.get("endTime"),
                error_code=str(diagnostics.get("errorCode", "")),
                script=str(diagnostics.get("scriptName", "")),
                message=str(diagnostics.get("message", "")),
                log_tail=str(diagnostics.get("logTail", "")),
            )
        )
    return TargetView(
        instance_id=str(target.get("targetId", "")),
        status=str(target.get("status", "")),
        updated_at=target.get("lastUpdatedAt"),
        events=tuple(events),
    )


# --- showing it -------------------------------------------------------------------------------------


def show(
    ctx: Context,
    *,
    watch: bool = False,
    interval: float = 5.0,
    probe: HttpProbe = probe_http,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """`cdpoc status`: print one snapshot (exit 0 healthy, 3 not), or refresh until Ctrl-C (exit 0)."""
    if not watch:
        snapshot = collect(ctx, probe=probe)
        print_snapshot(ctx, snapshot)
        return exit_code(snapshot)
    Watcher(ctx, interval, probe, sleep).run()
    return EXIT_OK


def print_snapshot(ctx: Context, snapshot: StatusSnapshot) -> None:
    from cdpoc.statusrender import snapshot_dict, status_lines, status_renderable

    if ctx.ui.json_mode:
        ctx.ui.out(json.dumps(snapshot_dict(snapshot), indent=2))
    elif ctx.ui.interactive:
        ctx.ui.print(status_renderable(snapshot))
    else:
        for line in status_lines(snapshot):
            ctx.ui.say(line)


class Watcher:
    """--watch: refresh in place on a terminal; elsewhere print the first snapshot, then a line per change."""

    def __init__(self, ctx: Context, interval: float, probe: HttpProbe, sleep: Callable[[float], None]) -> None:
        self.ctx = ctx
        self.base_interval = max(interval, 0.0)
        self.interval = self.base_interval
        self.probe = probe
        self.sleep = sleep
        self.inventory: Inventory | None = None
        self.inventory_read_at = 0.0
        self.previous: StatusSnapshot | None = None

    def run(self) -> None:
        from rich.live import Live

        ui = self.ctx.ui
        live = Live(console=ui.console, auto_refresh=False, transient=False) if ui.interactive else None
        try:
            with live if live is not None else nullcontext():
                while True:
                    self.refresh(live)
                    self.sleep(self.interval)
        except KeyboardInterrupt:
            return

    def refresh(self, live: Any) -> None:
        note = ""
        try:
            snapshot = self._collect()
            self.interval = self.base_interval
        except Throttled:
            self.interval = min(max(self.interval, 1.0) * 2, MAX_INTERVAL)
            note = f"AWS is throttling requests: next refresh in {self.interval:.0f}s"
            if self.previous is None:
                self.ctx.ui.warn(note)
                return
            snapshot = self.previous
        self._show(live, snapshot, note)

    def _collect(self) -> StatusSnapshot:
        if self.inventory is None or time.monotonic() - self.inventory_read_at >= INVENTORY_MAX_AGE:
            self.inventory = take_inventory(self.ctx)
            self.inventory_read_at = time.monotonic()
        return collect(self.ctx, self.inventory, self.probe)

    def _show(self, live: Any, snapshot: StatusSnapshot, note: str) -> None:
        from cdpoc.statusrender import (
            changes,
            facts,
            paths,
            snapshot_dict,
            status_lines,
            status_renderable,
            watch_footer,
        )

        ui = self.ctx.ui
        previous, self.previous = self.previous, snapshot
        changed = changes(facts(previous), facts(snapshot)) if previous is not None else []
        if ui.json_mode:
            if previous is None or (changed and snapshot is not previous):
                ui.out(json.dumps(snapshot_dict(snapshot), separators=(",", ":")))
        elif live is not None:
            footer = watch_footer(snapshot.taken_at, self.interval, note)
            live.update(status_renderable(snapshot, changed=paths(changed), footer=footer), refresh=True)
        elif previous is None:
            for line in status_lines(snapshot):
                ui.say(line)
        else:
            stamp = snapshot.taken_at.strftime("%H:%M:%S")
            for path, old, new in changed:
                ui.say(f"{stamp} {path}: {old or '(none)'} -> {new or '(none)'}")
        if note and live is None:
            ui.warn(note)
