"""CodeDeploy in the sandbox: the operations moto 5.2.5 lacks, and deployments that actually run.

moto creates a deployment and leaves it `Created` forever. Here every deployment gets a plan
(cdpoc/sandbox/deployments.py) when it is created: its instances (the deployment group's Auto Scaling
groups' InService instances, plus EC2 tag filters) go through the in-place lifecycle events, one step each,
and the deployment ends Succeeded, Failed (at a hook chosen with SIMULATION.fail_next_deployment, or at
DownloadBundle when the S3 revision does not exist) or Stopped. On failure with auto-rollback enabled a
rollback deployment of the last successful revision starts, as on AWS. The state is read lazily at each
request; nothing in the responses says it was simulated (see cdpoc/sandbox/simulation.py).

Added operations: UpdateDeploymentGroup, DeleteDeploymentGroup, DeleteApplication, BatchGetDeploymentGroups,
StopDeployment, GetDeploymentConfig, ListDeploymentConfigs, ListDeploymentTargets, BatchGetDeploymentTargets,
GetDeploymentTarget, ListDeploymentInstances, GetDeploymentInstance, BatchGetDeploymentInstances.
Replaced: CreateDeploymentGroup (installs the Auto Scaling launch lifecycle hook, as CodeDeploy does),
GetDeploymentGroup (moto loses the ASG names and the alarm configuration), CreateDeployment,
GetDeployment, BatchGetDeployments, ListDeployments (state as of now; newest first).
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import yaml
from moto.autoscaling.models import autoscaling_backends
from moto.codedeploy.models import CodeDeployBackend, DeploymentGroup, DeploymentInfo, codedeploy_backends
from moto.codedeploy.responses import CodeDeployResponse, _deployment_group_info
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.models import ec2_backends
from moto.s3.models import s3_backends
from moto.utilities.utils import get_partition

from cdpoc.sandbox import instance_calls, service_roles
from cdpoc.sandbox.deployments import (
    FAILED,
    STOPPED,
    SUCCEEDED,
    DeploymentPlan,
    Diagnostics,
    HealthRule,
    InstanceFailure,
    Script,
    TargetPlan,
    plan_deployment,
)
from cdpoc.sandbox.patching import add_operations, replace_operations
from cdpoc.sandbox.simulation import (
    ALLOW_TRAFFIC_EVENTS,
    IN_PLACE_EVENTS,
    SIMULATION,
    FailureRequest,
    lifecycle_events,
)

# The default configurations every account has. AWS documents that GetDeploymentConfig reports OneAtATime
# as MOST_CONCURRENCY 1 (a type outside the request-side enum; botocore does not check response enums).
DEFAULT_CONFIGS = {
    "CodeDeployDefault.OneAtATime": HealthRule("MOST_CONCURRENCY", 1),
    "CodeDeployDefault.HalfAtATime": HealthRule("FLEET_PERCENT", 50),
    "CodeDeployDefault.AllAtOnce": HealthRule("HOST_COUNT", 0),
}
DEFAULT_CONFIG_NAME = "CodeDeployDefault.OneAtATime"
CONFIGS_CREATED = datetime(2014, 11, 12, tzinfo=UTC)  # the default configurations predate every account
ACTIVE = ("Created", "Queued", "InProgress", "Ready", "Baking")
LAUNCH_HOOK_PREFIX = "CodeDeploy-managed-automatic-launch-deployment-hook"
MAX_BATCH_TARGETS = 25
PAGE_SIZE = 100
_SIM = "_cdpoc_sim"
_HOOKS = "_cdpoc_hooks"


@dataclass
class DeploymentSim:
    plan: DeploymentPlan
    previous_revision: dict[str, Any] | None = None
    rollback_info: dict[str, str] = field(default_factory=dict)
    rollback_settled: bool = False
    rollback_on_stop: bool | None = None  # StopDeployment's autoRollbackEnabled
    app_down: frozenset[str] = frozenset()  # instances whose app exits at start (its role may not read SSM)


# ---- state on moto's objects


def backend_of(account: str, region: str) -> CodeDeployBackend:
    return codedeploy_backends[account][region]


def sim_of(deployment: DeploymentInfo) -> DeploymentSim | None:
    return cast(DeploymentSim | None, getattr(deployment, _SIM, None))


def hooks_of(group: DeploymentGroup) -> dict[str, str]:
    hooks = getattr(group, _HOOKS, None)
    if hooks is None:
        hooks = {}
        setattr(group, _HOOKS, hooks)
    return cast(dict[str, str], hooks)


def _refused(code: str, message: str) -> JsonRESTError:
    return JsonRESTError(code, message)


def _naive(instant: float) -> datetime:
    # moto keeps CodeDeploy times as naive UTC datetimes
    return datetime.fromtimestamp(instant, UTC).replace(tzinfo=None)


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp() if moment.tzinfo is None else moment.timestamp()


def group_of(backend: CodeDeployBackend, application: str, name: str) -> DeploymentGroup | None:
    return backend.deployment_groups.get(application, {}).get(name)


def deployments_of(backend: CodeDeployBackend, application: str, group: str) -> list[DeploymentInfo]:
    """The group's deployments, oldest first."""
    found = [
        d
        for d in backend.deployments.values()
        if d.application_name == application and d.deployment_group_name == group
    ]
    return sorted(found, key=lambda d: _epoch(d.create_time))


def health_rule(config_name: str | None) -> HealthRule:
    return DEFAULT_CONFIGS.get(str(config_name or DEFAULT_CONFIG_NAME), DEFAULT_CONFIGS[DEFAULT_CONFIG_NAME])


# ---- targets, revision, plan


def targets_for(account: str, region: str, group: DeploymentGroup) -> list[str]:
    """InService instances of the group's Auto Scaling groups and running instances its EC2 tags match."""
    found: list[str] = []
    asgs = autoscaling_backends[account][region].autoscaling_groups
    for name in group.auto_scaling_groups:
        asg = asgs.get(name)
        if asg is not None:
            found.extend(s.instance.id for s in asg.instance_states if s.lifecycle_state == "InService")
    if group.ec2_tag_filters:
        for instance in ec2_backends[account][region].all_instances():
            if instance.state == "running" and _matches_tag_filters(instance.get_tags(), group.ec2_tag_filters):
                found.append(instance.id)
    # AWS picks the order; instance-id order keeps the sandbox's runs reproducible
    return sorted(set(found))


def _matches_tag_filters(tags: list[dict[str, str]], filters: list[dict[str, str]]) -> bool:
    pairs = {(t.get("key", t.get("Key")), t.get("value", t.get("Value"))) for t in tags}
    for f in filters:
        kind = f.get("Type", "KEY_AND_VALUE")
        if kind == "KEY_ONLY" and any(k == f.get("Key") for k, _ in pairs):
            return True
        if kind == "VALUE_ONLY" and any(v == f.get("Value") for _, v in pairs):
            return True
        if kind == "KEY_AND_VALUE" and (f.get("Key"), f.get("Value")) in pairs:
            return True
    return False


def read_revision(account: str, revision: dict[str, Any]) -> tuple[dict[str, Script], str | None]:
    """The appspec's hook scripts of an S3 revision, or why DownloadBundle would fail."""
    if revision.get("revisionType") != "S3":
        return {}, None
    location = revision.get("s3Location") or {}
    bucket, key = location.get("bucket", ""), location.get("key", "")
    try:
        obj = s3_backends[account][get_partition("us-east-1")].get_object(bucket, key, location.get("version"))
    except Exception:  # moto raises its own MissingBucket/MissingKey types
        obj = None
    if obj is None:
        return {}, f"The specified key does not exist. (s3://{bucket}/{key})"
    return appspec_scripts(obj.value), None


def appspec_scripts(bundle: bytes) -> dict[str, Script]:
    """Hook -> first script of that hook in the bundle's appspec.yml (empty when unreadable)."""
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
            names = [n for n in archive.namelist() if n in ("appspec.yml", "appspec.yaml")]
            spec = yaml.safe_load(archive.read(names[0])) if names else None
    except (zipfile.BadZipFile, yaml.YAMLError, KeyError):
        return {}
    hooks = spec.get("hooks") if isinstance(spec, dict) else None
    scripts: dict[str, Script] = {}
    for hook, entries in (hooks or {}).items():
        if isinstance(entries, list) and entries and isinstance(entries[0], dict) and entries[0].get("location"):
            scripts[str(hook)] = Script(str(entries[0]["location"]), str(entries[0].get("runas") or "root"))
    return scripts


def begin(
    account: str,
    region: str,
    deployment: DeploymentInfo,
    instant: float,
    *,
    may_fail: bool = True,
    targets: list[str] | None = None,
    events: tuple[str, ...] | None = None,
    not_before: float = 0.0,
) -> None:
    """Attach the deployment's plan, starting at `instant` (back-dated when a pipeline created it).

    `targets`, `events` and `not_before` are for Auto Scaling launch deployments: one new instance, no
    block-traffic events, and nothing before its agent runs. Otherwise the group's instances, all events."""
    group = deployment.deployment_group
    if events is None:
        events = lifecycle_events((group.deployment_style or {}).get("deploymentOption") == "WITH_TRAFFIC_CONTROL")
    scripts, missing_revision = read_revision(account, deployment.revision or {})
    failure: FailureRequest | None
    if missing_revision is not None:
        failure = FailureRequest("DownloadBundle", missing_revision)
    else:
        failure = SIMULATION.take_failure(events, instant) if may_fail else None
    if targets is None:
        targets = targets_for(account, region, group)
    refused = service_roles.deployment_denial(account, region, group)
    app_down: frozenset[str] = frozenset()
    if refused is not None:
        # CodeDeploy cannot act with its service role: the deployment fails before any instance is touched
        started = instant + SIMULATION.step_seconds
        plan = DeploymentPlan(instant, started, started, FAILED, [], refused)
    else:
        failures, app_down = instance_failures(account, region, targets, deployment.revision or {}, events, scripts)
        plan = plan_deployment(
            created=instant,
            step=SIMULATION.step_seconds,
            target_ids=targets,
            events=events,
            rule=health_rule(deployment.deployment_config_name),
            failure=failure,
            scripts=scripts,
            # an Auto Scaling group that is empty right now is not an error: its instances get the revision later
            no_instances_fail=not group.auto_scaling_groups,
            agent_failures=failures,
            not_before=not_before,
        )
    backend = backend_of(account, region)
    previous = _last_successful(backend, deployment.application_name, deployment.deployment_group_name, instant)
    setattr(deployment, _SIM, DeploymentSim(plan, previous.revision if previous else None, app_down=app_down))
    deployment.create_time = _naive(instant)
    _sync(deployment, plan, instant)


def instance_failures(
    account: str,
    region: str,
    targets: list[str],
    revision: dict[str, Any],
    events: tuple[str, ...],
    scripts: dict[str, Script],
) -> tuple[dict[str, InstanceFailure], frozenset[str]]:
    """Where each instance fails for want of credentials or permissions of its role: the agent's own download
    (cdpoc/sandbox/service_roles.py), then the calls cdpoc's bundle makes (cdpoc/sandbox/instance_calls.py);
    and the instances whose app exits at start for the same reason."""
    failures: dict[str, InstanceFailure] = {}
    app_down = set()
    for target in targets:
        denied = service_roles.agent_denial(account, region, target, revision)
        if denied is not None:
            event, message = denied
            # no credentials: the agent never receives the first event; denied: DownloadBundle fails
            failures[target] = (event or events[0], Diagnostics("UnknownError", "", message, ""))
            continue
        outcome = instance_calls.bundle_outcome(account, region, target, scripts)
        if outcome.failure is not None:
            failures[target] = outcome.failure
        if outcome.app_down:
            app_down.add(target)
    return failures, frozenset(app_down)


def create_deployment_at(
    account: str, region: str, application: str, group: str, revision: dict[str, Any], instant: float
) -> str:
    """CreateDeployment as CodePipeline's deploy action calls it; moto's errors propagate (JsonRESTError)."""
    backend = backend_of(account, region)
    # the rollbacks due by then exist then, however the reads that brought time forward fell
    advance(account, region, instant)
    _refuse_concurrent(backend, application, group, instant)
    deployment_id = backend.create_deployment(application, group, revision)
    begin(account, region, backend.deployments[deployment_id], instant)
    return deployment_id


def _refuse_concurrent(backend: CodeDeployBackend, application: str, group: str, instant: float) -> None:
    for other in deployments_of(backend, application, group):
        sim = sim_of(other)
        if sim is not None and sim.plan.status(instant) in ACTIVE:
            raise _refused(
                "DeploymentLimitExceededException",
                f"The Deployment Group '{group}' already has an active Deployment '{other.deployment_id}'",
            )


def _last_successful(
    backend: CodeDeployBackend, application: str, group: str, before: float, excluding: str = ""
) -> DeploymentInfo | None:
    done = []
    for deployment in deployments_of(backend, application, group):
        sim = sim_of(deployment)
        if (
            deployment.deployment_id != excluding
            and sim is not None
            and sim.plan.outcome == SUCCEEDED
            and sim.plan.completed <= before
        ):
            done.append((sim.plan.completed, deployment))
    return max(done, key=lambda pair: pair[0])[1] if done else None


# ---- advancing time


def advance(account: str, region: str, now: float) -> None:
    """Bring every deployment of the region to `now`: status fields, and rollbacks that are due."""
    backend = backend_of(account, region)
    for deployment in sorted(backend.deployments.values(), key=lambda d: _epoch(d.create_time)):
        sim = sim_of(deployment)
        if sim is None:
            continue
        _sync(deployment, sim.plan, now)
        if not sim.rollback_settled and sim.plan.status(now) in (FAILED, STOPPED):
            _settle_rollback(account, region, deployment, sim, now)


def _sync(deployment: DeploymentInfo, plan: DeploymentPlan, now: float) -> None:
    deployment.status = plan.status(now)
    deployment.start_time = _naive(plan.started) if now >= plan.started else None
    deployment.complete_time = _naive(plan.completed) if now >= plan.completed else None
    deployment.deployment_overview = plan.overview(now)


def _wants_rollback(deployment: DeploymentInfo, sim: DeploymentSim) -> bool:
    if deployment.creator == "codeDeployRollback":
        return False  # a failed rollback is not rolled back again
    if deployment.creator == LAUNCH_CREATOR:
        return False  # it already deployed the last good revision; Auto Scaling abandons (terminates) the instance
    config = deployment.auto_rollback_configuration or deployment.deployment_group.auto_rollback_configuration or {}
    events = (config.get("events") or []) if config.get("enabled") else []
    if sim.plan.outcome == STOPPED:
        return sim.rollback_on_stop if sim.rollback_on_stop is not None else "DEPLOYMENT_STOP_ON_REQUEST" in events
    return "DEPLOYMENT_FAILURE" in events


def _settle_rollback(account: str, region: str, failed: DeploymentInfo, sim: DeploymentSim, now: float) -> None:
    sim.rollback_settled = True
    if not _wants_rollback(failed, sim):
        return
    backend = backend_of(account, region)
    app, group = failed.application_name, failed.deployment_group_name
    previous = _last_successful(backend, app, group, sim.plan.completed, excluding=failed.deployment_id)
    if previous is None:
        sim.rollback_info = {
            "rollbackMessage": "Automatic rollback was not performed: the deployment group has no previous "
            "successful revision to redeploy."
        }
        return
    rollback_id = backend.create_deployment(app, group, previous.revision)
    rollback = backend.deployments[rollback_id]
    rollback.creator = "codeDeployRollback"
    begin(account, region, rollback, sim.plan.completed, may_fail=False)
    rollback_sim = sim_of(rollback)
    if rollback_sim is not None:
        rollback_sim.rollback_settled = True
        rollback_sim.rollback_info = {
            "rollbackTriggeringDeploymentId": failed.deployment_id,
            "rollbackMessage": f"Rollback of deployment {failed.deployment_id}",
        }
        _sync(rollback, rollback_sim.plan, now)
    sim.rollback_info = {
        "rollbackDeploymentId": rollback_id,
        "rollbackMessage": f"Deployment {failed.deployment_id} failed; rolling back to the last successful "
        f"revision with deployment {rollback_id}.",
    }


def _now(response: CodeDeployResponse) -> float:
    return SIMULATION.advance(response.current_account, response.region)


# ---- Auto Scaling launch hooks


def install_launch_hooks(account: str, region: str, group: DeploymentGroup, asg_names: Iterable[str]) -> None:
    asgs = autoscaling_backends[account][region]
    hooks = hooks_of(group)
    for name in asg_names:
        if name in asgs.autoscaling_groups and name not in hooks:
            hook = f"{LAUNCH_HOOK_PREFIX}-{group.deployment_group_name}-{uuid.uuid4()}"
            asgs.create_lifecycle_hook(hook, name, "autoscaling:EC2_INSTANCE_LAUNCHING", 600, "ABANDON")
            hooks[name] = hook


def remove_launch_hooks(account: str, region: str, group: DeploymentGroup, asg_names: Iterable[str]) -> None:
    asgs = autoscaling_backends[account][region]
    hooks = hooks_of(group)
    for name in list(asg_names):
        hook = hooks.pop(name, None)
        if hook is not None:
            asgs.delete_lifecycle_hook(name, hook)


# ---- Auto Scaling launch deployments (what CodeDeploy does for an instance its launch hook holds)

LAUNCH_CREATOR = "autoscaling"
# A new instance is not registered with the load balancer yet, so there is no traffic to block: a launch
# deployment runs the in-place events and, with traffic control, the allow-traffic ones.
LAUNCH_EVENTS_WITH_TRAFFIC = IN_PLACE_EVENTS + ALLOW_TRAFFIC_EVENTS


def launch_hook_owner(account: str, region: str, asg_name: str, hook_name: str) -> DeploymentGroup | None:
    """The deployment group that installed this launch hook on this Auto Scaling group, if any."""
    for groups in backend_of(account, region).deployment_groups.values():
        for group in groups.values():
            if hooks_of(group).get(asg_name) == hook_name:
                return group
    return None


def create_launch_deployment(
    account: str, region: str, group: DeploymentGroup, instance_id: str, instant: float, agent_ready_at: float
) -> str | None:
    """A deployment of the group's last successful revision to the one new instance, created by `autoscaling`
    at `instant`; None when no revision has succeeded yet (CodeDeploy then lets the instance go on at once).

    It is created even while another deployment of the group is active, as CodeDeploy does for scale-outs."""
    backend = backend_of(account, region)
    application = group.application.application_name
    previous = _last_successful(backend, application, group.deployment_group_name, instant)
    if previous is None:
        return None
    deployment_id = backend.create_deployment(application, group.deployment_group_name, previous.revision)
    deployment = backend.deployments[deployment_id]
    deployment.creator = LAUNCH_CREATOR
    with_traffic = (group.deployment_style or {}).get("deploymentOption") == "WITH_TRAFFIC_CONTROL"
    events = LAUNCH_EVENTS_WITH_TRAFFIC if with_traffic else IN_PLACE_EVENTS
    begin(account, region, deployment, instant, targets=[instance_id], events=events, not_before=agent_ready_at)
    return deployment_id


def launch_outcome(account: str, region: str, deployment_id: str) -> tuple[str, float] | None:
    """(Succeeded | Failed | Stopped, when) of a launch deployment, or None when it is gone."""
    deployment = backend_of(account, region).deployments.get(deployment_id)
    sim = sim_of(deployment) if deployment is not None else None
    return None if sim is None else (sim.plan.outcome, sim.plan.completed)


# ---- response shaping


def _last_deployment_info(deployment: DeploymentInfo) -> dict[str, Any]:
    info: dict[str, Any] = {
        "deploymentId": deployment.deployment_id,
        "status": deployment.status,
        "createTime": deployment.create_time,
    }
    if deployment.complete_time is not None:
        info["endTime"] = deployment.complete_time
    return info


def decorate_group(info: dict[str, Any], group: DeploymentGroup, backend: CodeDeployBackend) -> dict[str, Any]:
    hooks = hooks_of(group)
    info["autoScalingGroups"] = [
        {"name": name, **({"hook": hooks[name]} if name in hooks else {})} for name in group.auto_scaling_groups
    ]
    alarms = group.alarm_configuration if isinstance(group.alarm_configuration, dict) else None
    info["alarmConfiguration"] = alarms or {"enabled": False, "ignorePollAlarmFailure": False, "alarms": []}
    for placeholder in ("targetRevision", "lastSuccessfulDeployment", "lastAttemptedDeployment"):
        info.pop(placeholder, None)
    history = deployments_of(backend, group.application.application_name, group.deployment_group_name)
    if history:
        info["targetRevision"] = history[-1].revision
        info["lastAttemptedDeployment"] = _last_deployment_info(history[-1])
    succeeded = [d for d in history if d.status == SUCCEEDED]
    if succeeded:
        info["lastSuccessfulDeployment"] = _last_deployment_info(succeeded[-1])
    return info


def decorate_deployment(info: dict[str, Any], deployment: DeploymentInfo, now: float) -> dict[str, Any]:
    for placeholder in ("previousRevision", "errorInformation", "rollbackInfo", "relatedDeployments"):
        info.pop(placeholder, None)
    sim = sim_of(deployment)
    if sim is None:
        return info
    if sim.previous_revision:
        info["previousRevision"] = sim.previous_revision
    if sim.plan.error is not None and now >= sim.plan.completed:
        info["errorInformation"] = {"code": sim.plan.error[0], "message": sim.plan.error[1]}
    if sim.rollback_info:
        info["rollbackInfo"] = dict(sim.rollback_info)
    return info


def _deployment(response: CodeDeployResponse, deployment_id: str | None) -> tuple[DeploymentInfo, DeploymentSim]:
    if not deployment_id:
        raise _refused("DeploymentIdRequiredException", "At least one deployment ID must be specified.")
    deployment = backend_of(response.current_account, response.region).deployments.get(deployment_id)
    sim = sim_of(deployment) if deployment is not None else None
    if deployment is None or sim is None:
        raise _refused(
            "DeploymentDoesNotExistException",
            f"The deployment {deployment_id} does not exist with the user or AWS account.",
        )
    return deployment, sim


def _started(deployment: DeploymentInfo, sim: DeploymentSim, now: float) -> None:
    if sim.plan.status(now) == "Created":
        raise _refused(
            "DeploymentNotStartedException", f"The deployment {deployment.deployment_id} has not started yet."
        )


def _instance_arn(response: CodeDeployResponse, instance_id: str) -> str:
    return (
        f"arn:{get_partition(response.region)}:ec2:{response.region}:{response.current_account}:instance/{instance_id}"
    )


def _instance_target(
    response: CodeDeployResponse, deployment: DeploymentInfo, plan: DeploymentPlan, target: TargetPlan, now: float
) -> dict[str, Any]:
    return {
        "deploymentId": deployment.deployment_id,
        "targetId": target.target_id,
        "targetArn": _instance_arn(response, target.target_id),
        "status": target.status(now),
        "lastUpdatedAt": target.last_updated(now, plan.created),
        "lifecycleEvents": [event.to_json(now) for event in target.events],
    }


def _instance_summary(
    response: CodeDeployResponse, deployment: DeploymentInfo, plan: DeploymentPlan, target: TargetPlan, now: float
) -> dict[str, Any]:
    return {
        "deploymentId": deployment.deployment_id,
        # the deprecated instance API reports instances by ARN (ListDeploymentInstances lists plain ids)
        "instanceId": _instance_arn(response, target.target_id),
        "status": target.status(now),
        "lastUpdatedAt": target.last_updated(now, plan.created),
        "lifecycleEvents": [event.to_json(now) for event in target.events],
    }


def _page(items: list[Any], token: str | None, size: int = PAGE_SIZE) -> tuple[list[Any], str | None]:
    start = 0
    if token:
        if not token.isdigit() or int(token) > len(items):
            raise _refused("InvalidNextTokenException", "The next token was specified in an invalid format.")
        start = int(token)
    return items[start : start + size], (str(start + size) if start + size < len(items) else None)


def _result(result: ActionResult) -> dict[str, Any]:
    return cast(dict[str, Any], result.result)


# ---- replaced operations


def create_deployment_group(self: CodeDeployResponse, original: Callable[[CodeDeployResponse], ActionResult]) -> Any:
    result = original(self)
    group = group_of(
        backend_of(self.current_account, self.region),
        self._get_param("applicationName"),
        self._get_param("deploymentGroupName"),
    )
    if group is not None:
        install_launch_hooks(self.current_account, self.region, group, group.auto_scaling_groups)
    return result


def get_deployment_group(self: CodeDeployResponse, original: Callable[[CodeDeployResponse], ActionResult]) -> Any:
    _now(self)
    result = original(self)
    backend = backend_of(self.current_account, self.region)
    info = _result(result)["deploymentGroupInfo"]
    group = group_of(backend, info["applicationName"], info["deploymentGroupName"])
    if group is not None:
        decorate_group(info, group, backend)
    return result


def create_deployment(self: CodeDeployResponse, original: Callable[[CodeDeployResponse], ActionResult]) -> Any:
    now = _now(self)
    config = self._get_param("deploymentConfigName")
    if config and config not in DEFAULT_CONFIGS:
        raise _refused("DeploymentConfigDoesNotExistException", f"No deployment configuration found for name: {config}")
    backend = backend_of(self.current_account, self.region)
    application, group = self._get_param("applicationName"), self._get_param("deploymentGroupName")
    if group_of(backend, application, group) is not None:
        _refuse_concurrent(backend, application, group, now)
    result = original(self)
    deployment = backend.deployments[_result(result)["deploymentId"]]
    begin(self.current_account, self.region, deployment, now)
    return result


def get_deployment(self: CodeDeployResponse, original: Callable[[CodeDeployResponse], ActionResult]) -> Any:
    now = _now(self)
    result = original(self)
    info = _result(result)["deploymentInfo"]
    decorate_deployment(info, backend_of(self.current_account, self.region).deployments[info["deploymentId"]], now)
    return result


def batch_get_deployments(self: CodeDeployResponse, original: Callable[[CodeDeployResponse], ActionResult]) -> Any:
    now = _now(self)
    result = original(self)
    deployments = backend_of(self.current_account, self.region).deployments
    for info in _result(result)["deploymentsInfo"]:
        decorate_deployment(info, deployments[info["deploymentId"]], now)
    return result


def list_deployments(self: CodeDeployResponse, original: Callable[[CodeDeployResponse], ActionResult]) -> Any:
    _now(self)
    result = original(self)
    deployments = backend_of(self.current_account, self.region).deployments
    order = {deployment_id: index for index, deployment_id in enumerate(deployments)}
    ids = _result(result)["deployments"]
    ids.sort(key=lambda i: (_epoch(deployments[i].create_time), order[i]), reverse=True)
    return result


# ---- added operations: deployment groups and applications


def batch_get_deployment_groups(self: CodeDeployResponse) -> ActionResult:
    _now(self)
    backend = backend_of(self.current_account, self.region)
    application = self._get_param("applicationName")
    backend.get_application(application)
    infos, missing = [], []
    for name in self._get_param("deploymentGroupNames") or []:
        group = group_of(backend, application, name)
        if group is None:
            missing.append(name)
        else:
            infos.append(decorate_group(_deployment_group_info(group), group, backend))
    result: dict[str, Any] = {"deploymentGroupsInfo": infos}
    if missing:
        result["errorMessage"] = f"Deployment groups not found: {', '.join(missing)}"
    return ActionResult(result)


def update_deployment_group(self: CodeDeployResponse) -> ActionResult:
    backend = backend_of(self.current_account, self.region)
    application = self._get_param("applicationName")
    current = self._get_param("currentDeploymentGroupName")
    backend.get_application(application)
    group = group_of(backend, application, current)
    if group is None:
        raise _refused(
            "DeploymentGroupDoesNotExistException",
            f"The deployment group {current} does not exist with the user or AWS account.",
        )
    config = self._get_param("deploymentConfigName")
    if config and config not in DEFAULT_CONFIGS:
        raise _refused("DeploymentConfigDoesNotExistException", f"No deployment configuration found for name: {config}")
    new_name = self._get_param("newDeploymentGroupName")
    if new_name and new_name != current:
        _rename_group(backend, group, application, current, new_name)
    asgs = self._get_param("autoScalingGroups")
    if asgs is not None:
        gone = [name for name in group.auto_scaling_groups if name not in asgs]
        remove_launch_hooks(self.current_account, self.region, group, gone)
        group.auto_scaling_groups = list(asgs)
        install_launch_hooks(self.current_account, self.region, group, asgs)
    for param, attribute in UPDATABLE.items():
        value = self._get_param(param)
        if value is not None:
            setattr(group, attribute, value)
    return ActionResult({"hooksNotCleanedUp": []})


# request parameter -> moto DeploymentGroup attribute (absent parameters leave the setting as it is)
UPDATABLE = {
    "deploymentConfigName": "deployment_config_name",
    "ec2TagFilters": "ec2_tag_filters",
    "onPremisesInstanceTagFilters": "on_premises_instance_tag_filters",
    "serviceRoleArn": "service_role_arn",
    "triggerConfigurations": "trigger_configurations",
    "alarmConfiguration": "alarm_configuration",
    "autoRollbackConfiguration": "auto_rollback_configuration",
    "outdatedInstancesStrategy": "outdated_instances_strategy",
    "deploymentStyle": "deployment_style",
    "blueGreenDeploymentConfiguration": "blue_green_deployment_configuration",
    "loadBalancerInfo": "load_balancer_info",
    "ec2TagSet": "ec2_tag_set",
    "ecsServices": "ecs_services",
    "onPremisesTagSet": "on_premises_tag_set",
    "terminationHookEnabled": "termination_hook_enabled",
}


def _rename_group(backend: CodeDeployBackend, group: DeploymentGroup, application: str, old: str, new: str) -> None:
    groups = backend.deployment_groups[application]
    if new in groups:
        raise _refused("DeploymentGroupAlreadyExistsException", f"Deployment group {new} already exists.")
    old_arn = backend._deployment_group_arn(application, old)
    tags = backend.tagger.list_tags_for_resource(old_arn)["Tags"]
    backend.tagger.delete_all_tags_for_resource(old_arn)
    if tags:
        backend.tagger.tag_resource(backend._deployment_group_arn(application, new), tags)
    groups[new] = groups.pop(old)
    group.deployment_group_name = new


def delete_deployment_group(self: CodeDeployResponse) -> ActionResult:
    # AWS answers success when the group (or its application) does not exist: deletes are idempotent
    backend = backend_of(self.current_account, self.region)
    application, name = self._get_param("applicationName"), self._get_param("deploymentGroupName")
    group = group_of(backend, application, name)
    if group is not None:
        _forget_group(self.current_account, self.region, backend, application, group)
    return ActionResult({"hooksNotCleanedUp": []})


def _forget_group(
    account: str, region: str, backend: CodeDeployBackend, application: str, group: DeploymentGroup
) -> None:
    remove_launch_hooks(account, region, group, list(hooks_of(group)))
    backend.tagger.delete_all_tags_for_resource(backend._deployment_group_arn(application, group.deployment_group_name))
    del backend.deployment_groups[application][group.deployment_group_name]


def delete_application(self: CodeDeployResponse) -> EmptyResult:
    backend = backend_of(self.current_account, self.region)
    application = self._get_param("applicationName")
    if application in backend.applications:
        for group in list(backend.deployment_groups.get(application, {}).values()):
            _forget_group(self.current_account, self.region, backend, application, group)
        backend.deployment_groups.pop(application, None)
        for deployment_id in [
            d.deployment_id for d in backend.deployments.values() if d.application_name == application
        ]:
            del backend.deployments[deployment_id]
        backend.tagger.delete_all_tags_for_resource(backend._application_arn(application))
        del backend.applications[application]
    return EmptyResult()


# ---- added operations: deployments


def stop_deployment(self: CodeDeployResponse) -> ActionResult:
    now = _now(self)
    deployment, sim = _deployment(self, self._get_param("deploymentId"))
    if sim.plan.status(now) not in ACTIVE:
        raise _refused(
            "DeploymentAlreadyCompletedException", f"The deployment {deployment.deployment_id} has already completed."
        )
    sim.plan.stop(now)
    sim.rollback_on_stop = self._get_param("autoRollbackEnabled")
    SIMULATION.advance(self.current_account, self.region)
    return ActionResult({"status": "Pending", "statusMessage": "Stopping the deployment."})


def get_deployment_config(self: CodeDeployResponse) -> ActionResult:
    name = self._get_param("deploymentConfigName")
    if not name:
        raise _refused("DeploymentConfigNameRequiredException", "The deployment configuration name was not specified.")
    rule = DEFAULT_CONFIGS.get(name)
    if rule is None:
        raise _refused("DeploymentConfigDoesNotExistException", f"No deployment configuration found for name: {name}")
    return ActionResult(
        {
            "deploymentConfigInfo": {
                "deploymentConfigId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"codedeploy:{name}")),
                "deploymentConfigName": name,
                "minimumHealthyHosts": {"type": rule.kind, "value": rule.value},
                "createTime": CONFIGS_CREATED,
                "computePlatform": "Server",
            }
        }
    )


def list_deployment_configs(self: CodeDeployResponse) -> ActionResult:
    return ActionResult({"deploymentConfigsList": sorted(DEFAULT_CONFIGS)})


def list_deployment_targets(self: CodeDeployResponse) -> ActionResult:
    now = _now(self)
    deployment, sim = _deployment(self, self._get_param("deploymentId"))
    _started(deployment, sim, now)
    filters = self._get_param("targetFilters") or {}
    unknown = set(filters) - {"TargetStatus", "ServerInstanceLabel"}
    if unknown:
        raise _refused("InvalidTargetFilterNameException", f"The target filter name {sorted(unknown)[0]} is invalid.")
    statuses = filters.get("TargetStatus")
    # in-place targets carry no Blue/Green label, so any label filter matches none of them
    ids = [
        t.target_id
        for t in sim.plan.targets
        if (not statuses or t.status(now) in statuses) and not filters.get("ServerInstanceLabel")
    ]
    page, token = _page(ids, self._get_param("nextToken"))
    return ActionResult({"targetIds": page, **({"nextToken": token} if token else {})})


def batch_get_deployment_targets(self: CodeDeployResponse) -> ActionResult:
    now = _now(self)
    deployment, sim = _deployment(self, self._get_param("deploymentId"))
    _started(deployment, sim, now)
    targets = self._get_param("targetIds") or []
    if not targets:
        raise _refused("DeploymentTargetIdRequiredException", "A deployment target ID was not provided.")
    if len(targets) > MAX_BATCH_TARGETS:
        raise _refused(
            "DeploymentTargetListSizeExceededException",
            f"The maximum number of targets that can be associated with a deployment is {MAX_BATCH_TARGETS}.",
        )
    found = []
    for target_id in targets:
        target = sim.plan.target(target_id)
        if target is None:
            raise _refused("DeploymentTargetDoesNotExistException", f"The target {target_id} does not exist.")
        found.append(
            {
                "deploymentTargetType": "InstanceTarget",
                "instanceTarget": _instance_target(self, deployment, sim.plan, target, now),
            }
        )
    return ActionResult({"deploymentTargets": found})


def get_deployment_target(self: CodeDeployResponse) -> ActionResult:
    now = _now(self)
    deployment, sim = _deployment(self, self._get_param("deploymentId"))
    _started(deployment, sim, now)
    target_id = self._get_param("targetId")
    target = sim.plan.target(target_id or "")
    if target is None:
        raise _refused("DeploymentTargetDoesNotExistException", f"The target {target_id} does not exist.")
    instance = _instance_target(self, deployment, sim.plan, target, now)
    return ActionResult({"deploymentTarget": {"deploymentTargetType": "InstanceTarget", "instanceTarget": instance}})


def list_deployment_instances(self: CodeDeployResponse) -> ActionResult:
    now = _now(self)
    deployment, sim = _deployment(self, self._get_param("deploymentId"))
    _started(deployment, sim, now)
    statuses = self._get_param("instanceStatusFilter")
    ids = [t.target_id for t in sim.plan.targets if not statuses or t.status(now) in statuses]
    page, token = _page(ids, self._get_param("nextToken"))
    return ActionResult({"instancesList": page, **({"nextToken": token} if token else {})})


def get_deployment_instance(self: CodeDeployResponse) -> ActionResult:
    now = _now(self)
    deployment, sim = _deployment(self, self._get_param("deploymentId"))
    instance_id = self._get_param("instanceId")
    target = sim.plan.target(_instance_id(instance_id))
    if target is None:
        raise _refused("InstanceDoesNotExistException", f"The instance {instance_id} is not part of the deployment.")
    return ActionResult({"instanceSummary": _instance_summary(self, deployment, sim.plan, target, now)})


def batch_get_deployment_instances(self: CodeDeployResponse) -> ActionResult:
    now = _now(self)
    deployment, sim = _deployment(self, self._get_param("deploymentId"))
    summaries, missing = [], []
    for instance_id in self._get_param("instanceIds") or []:
        target = sim.plan.target(_instance_id(instance_id))
        if target is None:
            missing.append(instance_id)
        else:
            summaries.append(_instance_summary(self, deployment, sim.plan, target, now))
    result: dict[str, Any] = {"instancesSummary": summaries}
    if missing:
        result["errorMessage"] = f"Instances not found in deployment {deployment.deployment_id}: {', '.join(missing)}"
    return ActionResult(result)


def _instance_id(value: str | None) -> str:
    """Instance APIs accept an instance id or its ARN."""
    return (value or "").rsplit("/", 1)[-1]


def install() -> None:
    replace_operations(
        CodeDeployResponse,
        create_deployment_group,
        get_deployment_group,
        create_deployment,
        get_deployment,
        batch_get_deployments,
        list_deployments,
    )
    add_operations(
        CodeDeployResponse,
        batch_get_deployment_groups,
        update_deployment_group,
        delete_deployment_group,
        delete_application,
        stop_deployment,
        get_deployment_config,
        list_deployment_configs,
        list_deployment_targets,
        batch_get_deployment_targets,
        get_deployment_target,
        list_deployment_instances,
        get_deployment_instance,
        batch_get_deployment_instances,
    )
