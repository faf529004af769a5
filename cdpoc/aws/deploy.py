"""CodeDeploy: the application and its deployment group, and the reads that follow a deployment.

The deployment group deploys in place to the Auto Scaling group with CodeDeploy's own traffic control
on the target group (no register/deregister scripts, no ELB or ASG rights on the instances), rolls back
on failure, and tells the alerts topic how each deployment ended. A config change updates it in place
(UpdateDeploymentGroup, given only the settings the plan found different); the Auto Scaling groups,
target groups, alarms and triggers are compared entry by entry, so one no longer declared is removed.

Deleting the group returns the Auto Scaling lifecycle hooks CodeDeploy could not remove
(hooksNotCleanedUp); those, and any hook an interrupted teardown left behind, are deleted, or new
instances would wait in Pending:Wait for a deployment that never comes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cdpoc.aws.account import account_id
from cdpoc.aws.compute import stack_auto_scaling_groups
from cdpoc.aws.errors import aws_errors, call_or_none, caused_by
from cdpoc.aws.handler import Handler, observed
from cdpoc.aws.iam import CREATE_DEPLOYMENT_GROUP_PROPAGATION, retry_iam_propagation
from cdpoc.aws.ownership import missing_tags, ownership, ownership_changes, refuse_not_ours, wanted_tags
from cdpoc.aws.run import STACK_TAG, AwsRun, chunks, tag_list, tag_map
from cdpoc.errors import AwsError
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import Ref, field_change, field_changes, spec_of
from cdpoc.stack.specs.cicd import ApplicationSpec, AutoRollback, DeploymentGroupSpec, DeploymentStyle

APPLICATION_MISSING = ("ApplicationDoesNotExistException",)
GROUP_MISSING = ("ApplicationDoesNotExistException", "DeploymentGroupDoesNotExistException")
# What CodeDeploy names the launch hook it puts on an Auto Scaling group: <prefix><application>-<id>.
LAUNCH_HOOK_PREFIX = "CodeDeploy-managed-automatic-launch-deployment-hook-"
TARGETS_PER_BATCH = 25  # BatchGetDeploymentTargets takes at most 25 target ids.


def _codedeploy(run: AwsRun) -> Any:
    return run.client("codedeploy")


def deployment_config_exists(run: AwsRun, name: str) -> bool:
    """Whether CodeDeploy knows this deployment configuration (a CodeDeployDefault.* one, or the account's)."""
    reply = call_or_none(
        f"looking up deployment configuration {name}",
        _codedeploy(run).get_deployment_config,
        ("DeploymentConfigDoesNotExistException", "InvalidDeploymentConfigNameException"),
        deploymentConfigName=name,
    )
    return reply is not None


def _tags_of(run: AwsRun, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    with aws_errors(f"reading the tags of {arn}"):
        reply = _codedeploy(run).list_tags_for_resource(ResourceArn=arn)
        tags.update(tag_map(reply.get("Tags")))
        while reply.get("NextToken"):
            reply = _codedeploy(run).list_tags_for_resource(ResourceArn=arn, NextToken=reply["NextToken"])
            tags.update(tag_map(reply.get("Tags")))
    return tags


def _tag(run: AwsRun, arn: str, tags: Mapping[str, str]) -> None:
    if tags:
        with aws_errors(f"tagging {arn}"):
            _codedeploy(run).tag_resource(ResourceArn=arn, Tags=tag_list(tags))


def application_arn(run: AwsRun, name: str) -> str:
    return f"arn:aws:codedeploy:{run.region}:{account_id(run)}:application:{name}"


def deployment_group_arn(run: AwsRun, application: str, group: str) -> str:
    return f"arn:aws:codedeploy:{run.region}:{account_id(run)}:deploymentgroup:{application}/{group}"


def _stack_applications(run: AwsRun) -> dict[str, dict[str, str]]:
    """{application name: tags} of the applications tagged with the stack (one listing per run)."""

    def lookup() -> dict[str, dict[str, str]]:
        names: list[str] = []
        with aws_errors("listing CodeDeploy applications"):
            for page in _codedeploy(run).get_paginator("list_applications").paginate():
                names.extend(page.get("applications", []))
        tagged = {name: _tags_of(run, application_arn(run, name)) for name in names}
        return {name: tags for name, tags in tagged.items() if tags.get(STACK_TAG) == run.stack}

    return run.memo("codedeploy:applications", lookup)


# --- application ----------------------------------------------------------------------------------------


class ApplicationHandler(Handler):
    """The CodeDeploy application: nothing of it changes in place but its tags. Its name and compute
    platform are force_new; this stack's application under another name (found by its tags) is a conflict."""

    kind = "codedeploy_application"
    label = "CodeDeploy application"
    arn_types = ("codedeploy:application",)
    spec_type = ApplicationSpec

    def _observe(self, run: AwsRun, key: str, application: Mapping[str, Any]) -> Observed:
        name = application["applicationName"]
        return observed(
            key,
            self.kind,
            name,
            arn=application_arn(run, name),
            compute_platform=application.get("computePlatform", ""),
            **ownership(_tags_of(run, application_arn(run, name))),
        )

    def _read(self, run: AwsRun, name: str) -> dict[str, Any] | None:
        reply = call_or_none(
            f"reading CodeDeploy application {name}",
            _codedeploy(run).get_application,
            APPLICATION_MISSING,
            applicationName=name,
        )
        return None if reply is None else dict(reply["application"])

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        application = self._read(run, spec_of(res, ApplicationSpec).name)
        if application is None:
            # Renamed in the config: the stack's application for this component, by its tags.
            tagged = run.memo(f"scan:{self.kind}", lambda: self.scan(run)).get(res.key)
            application = None if tagged is None else self._read(run, tagged.id)
        return None if application is None else self._observe(run, res.key, application)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        result = {}
        for name, tags in _stack_applications(run).items():
            attrs = ownership(tags)
            if attrs["component"]:
                result[attrs["component"]] = observed(
                    attrs["component"], self.kind, name, arn=application_arn(run, name), **attrs
                )
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, ApplicationSpec)
        changes = ownership_changes(run, res, found, "CodeDeploy application")
        have = {"name": found.id, "compute_platform": found.attrs.get("compute_platform") or spec.compute_platform}
        return changes + field_changes(spec, have, {"name": spec.name, "compute_platform": spec.compute_platform})

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, ApplicationSpec)
        try:
            with aws_errors(f"creating CodeDeploy application {spec.name}"):
                _codedeploy(run).create_application(
                    applicationName=spec.name,
                    computePlatform=spec.compute_platform,
                    tags=tag_list(wanted_tags(run, res)),
                )
        except AwsError as exc:
            if not caused_by(exc, "ApplicationAlreadyExistsException"):
                raise
            application = self._read(run, spec.name)
            if application is None:
                raise
            found = self._observe(run, res.key, application)
            refuse_not_ours(run, res, "CodeDeploy application", found.attrs["tags"])
            return self.adopt(run, res, found, deps, "CodeDeploy application")
        return observed(
            res,
            self.kind,
            spec.name,
            arn=application_arn(run, spec.name),
            compute_platform=spec.compute_platform,
            **ownership(wanted_tags(run, res)),
        )

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        # Only the tags change in place (every field is force_new).
        missing = missing_tags(run, res, found.attrs.get("tags", {}))
        _tag(run, found.attrs["arn"], missing)
        return observed(res, self.kind, found.id, **{**found.attrs, **ownership({**found.attrs["tags"], **missing})})

    def delete(self, run: AwsRun, found: Observed) -> None:
        # DeleteApplication of an application that is not there succeeds.
        with aws_errors(f"deleting CodeDeploy application {found.id}"):
            _codedeploy(run).delete_application(applicationName=found.id)
        remove_leftover_launch_hooks(run, found.id)


# --- deployment group -----------------------------------------------------------------------------------


def _trigger(name: str, topic: str, events: Sequence[str]) -> tuple[str, str, tuple[str, ...]]:
    return (name, topic, tuple(sorted(events)))


def _comparable(group: Mapping[str, Any]) -> dict[str, Any]:
    """The settings cdpoc manages, by spec field, normalized (order-free lists), from a GetDeploymentGroup
    reply (or a request: the same shapes)."""
    rollback = group.get("autoRollbackConfiguration") or {}
    alarms = group.get("alarmConfiguration") or {}
    asgs = [a if isinstance(a, str) else a.get("name") for a in group.get("autoScalingGroups", [])]
    style = group.get("deploymentStyle") or {}
    return {
        "compute_platform": group.get("computePlatform", ""),
        "deployment_config": group.get("deploymentConfigName", ""),
        "service_role": group.get("serviceRoleArn", ""),
        "deployment_style": DeploymentStyle(style.get("deploymentType", ""), style.get("deploymentOption", "")),
        # None: a reply that leaves out the group names (moto does) cannot be compared, only rewritten.
        "autoscaling_groups": None if None in asgs else tuple(sorted(str(a) for a in asgs)),
        "target_groups": tuple(
            sorted(t.get("name", "") for t in (group.get("loadBalancerInfo") or {}).get("targetGroupInfoList", []))
        ),
        "auto_rollback": AutoRollback(
            bool(rollback.get("enabled")),
            tuple(sorted(rollback.get("events", []))) if rollback.get("enabled") else (),
        ),
        # Alarms in a configuration that is off stop nothing: they are not there.
        "alarms": tuple(sorted(a["name"] for a in alarms.get("alarms", []))) if alarms.get("enabled") else (),
        "triggers": tuple(
            sorted(
                _trigger(t.get("triggerName", ""), t.get("triggerTargetArn", ""), t.get("triggerEvents", []))
                for t in group.get("triggerConfigurations", [])
            )
        ),
    }


def _names(refs: Sequence[Ref], deps: Mapping[str, Observed | None]) -> tuple[str, ...]:
    """The referenced values, sorted; a reference not resolved yet shows what it will be."""
    return tuple(sorted(ref.shown(deps) for ref in refs))


def _desired(spec: DeploymentGroupSpec, deps: Mapping[str, Observed | None]) -> dict[str, Any]:
    """What the spec wants, in _comparable's form (a reference to be created as its `shown` text)."""
    return {
        "compute_platform": spec.compute_platform,
        "deployment_config": spec.deployment_config,
        "service_role": spec.service_role.shown(deps),
        "deployment_style": spec.deployment_style,
        "autoscaling_groups": _names(spec.autoscaling_groups, deps),
        "target_groups": _names(spec.target_groups, deps),
        "auto_rollback": AutoRollback(
            spec.auto_rollback.enabled, tuple(sorted(spec.auto_rollback.events)) if spec.auto_rollback.enabled else ()
        ),
        "alarms": tuple(sorted(spec.alarms)),
        "triggers": tuple(sorted(_trigger(t.name, t.topic.shown(deps), t.events) for t in spec.triggers)),
    }


# The collection fields, diffed entry by entry both ways: an entry no longer declared is removed.
COLLECTIONS = ("autoscaling_groups", "target_groups", "alarms")


def _entry_changes(spec: DeploymentGroupSpec, field: str, have: Sequence[str], want: Sequence[str]) -> list[Change]:
    added = [field_change(spec, f"{field}[{name}]", None, name) for name in want if name not in have]
    removed = [field_change(spec, f"{field}[{name}]", name, None) for name in have if name not in want]
    return added + removed


def _trigger_changes(spec: DeploymentGroupSpec, have: Sequence[Any], want: Sequence[Any]) -> list[Change]:
    """One change per trigger name whose target or events differ, is new, or is no longer declared."""
    have_by, want_by = {t[0]: t for t in have}, {t[0]: t for t in want}

    def shown(trigger: Any) -> Any:
        return None if trigger is None else f"{trigger[1]} on {', '.join(trigger[2])}"

    names = [*want_by, *(n for n in have_by if n not in want_by)]
    return [
        field_change(spec, f"triggers[{name}]", shown(have_by.get(name)), shown(want_by.get(name)))
        for name in names
        if have_by.get(name) != want_by.get(name)
    ]


def group_changes(spec: DeploymentGroupSpec, settings: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[Change]:
    """The deployment group's field changes: observed `settings` against `wanted` (both _comparable's form)."""
    changes: list[Change] = []
    for field, want in wanted.items():
        have = settings.get(field)
        if field == "autoscaling_groups" and have is None:
            continue  # the reply did not name them: nothing to compare
        if field == "compute_platform" and not have:
            continue  # a reply without it (an older API version) says nothing against the spec
        if field in COLLECTIONS:
            changes.extend(_entry_changes(spec, field, have or (), want))
        elif field == "triggers":
            changes.extend(_trigger_changes(spec, have or (), want))
        elif have != want:
            changes.append(field_change(spec, field, have, want))
    return changes


def _base(field: str) -> str:
    """The spec field a change is about: `autoscaling_groups[t1-app]` -> `autoscaling_groups`."""
    return field.split("[", 1)[0]


def group_parameters(
    spec: DeploymentGroupSpec, deps: Mapping[str, Observed | None], fields: Sequence[str]
) -> dict[str, Any]:
    """The CreateDeploymentGroup / UpdateDeploymentGroup parameters of these spec fields (each a whole
    setting: UpdateDeploymentGroup replaces what it is given and leaves the rest)."""
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "deployment_config": lambda: {"deploymentConfigName": spec.deployment_config},
        "service_role": lambda: {"serviceRoleArn": spec.service_role.need(deps)},
        "autoscaling_groups": lambda: {"autoScalingGroups": [ref.need(deps) for ref in spec.autoscaling_groups]},
        "deployment_style": lambda: {
            "deploymentStyle": {
                "deploymentType": spec.deployment_style.deployment_type,
                "deploymentOption": spec.deployment_style.deployment_option,
            }
        },
        "target_groups": lambda: {
            "loadBalancerInfo": {"targetGroupInfoList": [{"name": ref.need(deps)} for ref in spec.target_groups]}
        },
        "auto_rollback": lambda: {
            "autoRollbackConfiguration": {
                "enabled": spec.auto_rollback.enabled,
                "events": list(spec.auto_rollback.events),
            }
        },
        "alarms": lambda: {
            "alarmConfiguration": {"enabled": bool(spec.alarms), "alarms": [{"name": name} for name in spec.alarms]}
        },
        "triggers": lambda: {
            "triggerConfigurations": [
                {"triggerName": t.name, "triggerTargetArn": t.topic.need(deps), "triggerEvents": list(t.events)}
                for t in spec.triggers
            ]
        },
    }
    parameters: dict[str, Any] = {}
    for field in dict.fromkeys(fields):
        parameters.update(builders[field]())
    return parameters


# What CreateDeploymentGroup is given (alarms only when some are declared: none is its default).
CREATE_FIELDS = (
    "deployment_config",
    "service_role",
    "autoscaling_groups",
    "deployment_style",
    "target_groups",
    "auto_rollback",
    "triggers",
)


class DeploymentGroupHandler(Handler):
    """The deployment group: every setting but its application and compute platform is updated in place
    (UpdateDeploymentGroup, given only the settings that differ)."""

    kind = "deployment_group"
    label = "CodeDeploy deployment group"
    arn_types = ("codedeploy:deploymentgroup",)
    spec_type = DeploymentGroupSpec

    def _read(self, run: AwsRun, application: str, name: str) -> dict[str, Any] | None:
        reply = call_or_none(
            f"reading deployment group {application}/{name}",
            _codedeploy(run).get_deployment_group,
            GROUP_MISSING,
            applicationName=application,
            deploymentGroupName=name,
        )
        return None if reply is None else dict(reply["deploymentGroupInfo"])

    def _observe(self, run: AwsRun, key: str, group: Mapping[str, Any]) -> Observed:
        application, name = group["applicationName"], group["deploymentGroupName"]
        arn = deployment_group_arn(run, application, name)
        last_success = group.get("lastSuccessfulDeployment") or {}
        return observed(
            key,
            self.kind,
            name,
            application=application,
            arn=arn,
            settings=_comparable(group),
            last_successful_deployment=last_success.get("deploymentId", ""),
            **ownership(_tags_of(run, arn)),
        )

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        group = self._read(run, spec_of(res, DeploymentGroupSpec).application_name, res.name)
        return None if group is None else self._observe(run, res.key, group)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        result = {}
        for application in _stack_applications(run):
            names: list[str] = []
            with aws_errors(f"listing the deployment groups of {application}"):
                paginator = _codedeploy(run).get_paginator("list_deployment_groups")
                for page in paginator.paginate(applicationName=application):
                    names.extend(page.get("deploymentGroups", []))
            for name in names:
                arn = deployment_group_arn(run, application, name)
                attrs = ownership(_tags_of(run, arn))
                if attrs["stack"] == run.stack and attrs["component"]:
                    result[attrs["component"]] = observed(
                        attrs["component"], self.kind, name, application=application, arn=arn, **attrs
                    )
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, DeploymentGroupSpec)
        changes = ownership_changes(run, res, found, "deployment group")
        if any(not c.in_place for c in changes):
            return changes
        application = spec.application.value(deps)
        if application is not None and found.attrs["application"] != application:
            changes.append(field_change(spec, "application", found.attrs["application"], application))
        return changes + group_changes(spec, found.attrs.get("settings", {}), _desired(spec, deps))

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, DeploymentGroupSpec)
        application = spec.application.need(deps)
        fields = CREATE_FIELDS + (("alarms",) if spec.alarms else ())
        request = group_parameters(spec, deps, fields)

        def call() -> None:
            with aws_errors(f"creating deployment group {application}/{res.name}"):
                _codedeploy(run).create_deployment_group(
                    applicationName=application,
                    deploymentGroupName=res.name,
                    tags=tag_list(wanted_tags(run, res)),
                    **request,
                )

        try:
            # A fresh service role is refused for a while (InvalidRoleException "cannot be assumed"; the trigger's
            # topic: InvalidTriggerConfigException "... Topic ARN ..."): CREATE_DEPLOYMENT_GROUP_PROPAGATION.
            retry_iam_propagation(
                run, f"creating deployment group {res.name}", call, CREATE_DEPLOYMENT_GROUP_PROPAGATION
            )
        except AwsError as exc:
            if not caused_by(exc, "DeploymentGroupAlreadyExistsException"):
                raise
            group = self._read(run, application, res.name)
            if group is None:
                raise
            found = self._observe(run, res.key, group)
            refuse_not_ours(run, res, "deployment group", found.attrs["tags"])
            return self.adopt(run, res, found, deps, "deployment group")
        arn = deployment_group_arn(run, application, res.name)
        return observed(
            res,
            self.kind,
            res.name,
            application=application,
            arn=arn,
            settings=_desired(spec, deps),
            last_successful_deployment="",
            **ownership(wanted_tags(run, res)),
        )

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        spec = spec_of(res, DeploymentGroupSpec)
        application = found.attrs["application"]
        missing = missing_tags(run, res, found.attrs.get("tags", {}))
        _tag(run, found.attrs["arn"], missing)
        fields = [_base(c.field) for c in changes if c.field and c.in_place]
        settings = dict(found.attrs.get("settings", {}))
        if fields:
            request = group_parameters(spec, deps, fields)

            def call() -> None:
                with aws_errors(f"updating deployment group {application}/{found.id}"):
                    _codedeploy(run).update_deployment_group(
                        applicationName=application, currentDeploymentGroupName=found.id, **request
                    )

            retry_iam_propagation(run, f"updating deployment group {found.id}", call)
            desired = _desired(spec, deps)
            settings.update({field: desired[field] for field in fields})
        return observed(
            res,
            self.kind,
            found.id,
            **{**found.attrs, "settings": settings, **ownership({**found.attrs["tags"], **missing})},
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        application = found.attrs["application"]
        reply = call_or_none(
            f"deleting deployment group {application}/{found.id}",
            _codedeploy(run).delete_deployment_group,
            GROUP_MISSING,
            applicationName=application,
            deploymentGroupName=found.id,
        )
        for hook in (reply or {}).get("hooksNotCleanedUp", []):
            _delete_lifecycle_hook(run, hook["name"], hook["hook"])

    def describe(self, found: Observed) -> str:
        return f"{found.attrs.get('application', '?')}/{found.id}"


# --- Auto Scaling lifecycle hooks CodeDeploy leaves behind ------------------------------------------------


def _autoscaling(run: AwsRun) -> Any:
    return run.client("autoscaling")


def _delete_lifecycle_hook(run: AwsRun, group: str, hook: str) -> None:
    # A group that is already gone took its hooks with it: ValidationError is its "not found".
    call_or_none(
        f"removing lifecycle hook {hook} from {group}",
        _autoscaling(run).delete_lifecycle_hook,
        ("ValidationError",),
        AutoScalingGroupName=group,
        LifecycleHookName=hook,
    )


def remove_leftover_launch_hooks(run: AwsRun, application: str) -> list[str]:
    """Delete the launch hooks CodeDeploy installed for `application` on the stack's Auto Scaling groups."""
    groups = [g["AutoScalingGroupName"] for g in stack_auto_scaling_groups(run)]
    removed = []
    for group in groups:
        reply = call_or_none(
            f"listing the lifecycle hooks of {group}",
            _autoscaling(run).describe_lifecycle_hooks,
            ("ValidationError",),
            AutoScalingGroupName=group,
        )
        for hook in (reply or {}).get("LifecycleHooks", []):
            if hook["LifecycleHookName"].startswith(f"{LAUNCH_HOOK_PREFIX}{application}-"):
                _delete_lifecycle_hook(run, group, hook["LifecycleHookName"])
                removed.append(hook["LifecycleHookName"])
    return removed


# --- following a deployment (push-app --wait, status) --------------------------------------------------


def get_deployment(run: AwsRun, deployment_id: str) -> dict[str, Any]:
    with aws_errors(f"reading deployment {deployment_id}"):
        return dict(_codedeploy(run).get_deployment(deploymentId=deployment_id)["deploymentInfo"])


def deployment_targets(run: AwsRun, deployment_id: str) -> list[dict[str, Any]]:
    """Each instance of an EC2 deployment with its lifecycle events (and a failed event's diagnostics).

    Empty until CodeDeploy has picked the instances (DeploymentNotStartedException).
    """
    client, target_ids = _codedeploy(run), []
    params: dict[str, Any] = {"deploymentId": deployment_id}
    while True:
        reply = call_or_none(
            f"listing the targets of deployment {deployment_id}",
            client.list_deployment_targets,
            ("DeploymentNotStartedException",),
            **params,
        )
        if reply is None:
            return []
        target_ids.extend(reply.get("targetIds", []))
        if not reply.get("nextToken"):
            break
        params["nextToken"] = reply["nextToken"]
    targets: list[dict[str, Any]] = []
    for batch in chunks(target_ids, TARGETS_PER_BATCH):
        with aws_errors(f"reading the targets of deployment {deployment_id}"):
            reply = client.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=list(batch))
        targets.extend(t["instanceTarget"] for t in reply.get("deploymentTargets", []) if t.get("instanceTarget"))
    return targets


def target_health(run: AwsRun, target_group_name: str) -> dict[str, str]:
    """{instance id: health state} of the target group's targets; {} when the group does not exist."""

    def arn() -> str:
        reply = call_or_none(
            f"looking up target group {target_group_name}",
            run.client("elbv2").describe_target_groups,
            ("TargetGroupNotFound",),
            Names=[target_group_name],
        )
        groups = (reply or {}).get("TargetGroups", [])
        return str(groups[0]["TargetGroupArn"]) if groups else ""

    group_arn = run.memo(f"elbv2:target-group:{target_group_name}", arn)
    if not group_arn:
        return {}
    with aws_errors(f"reading the target health of {target_group_name}"):
        descriptions = run.client("elbv2").describe_target_health(TargetGroupArn=group_arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in descriptions}


def use_elb_health_checks(run: AwsRun, group: str, grace_seconds: int) -> bool:
    """Switch the Auto Scaling group to ELB health checks (after the first good deployment); True if it changed."""
    with aws_errors(f"reading Auto Scaling group {group}"):
        groups = _autoscaling(run).describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
    if not groups or groups[0].get("HealthCheckType") == "ELB":
        return False
    with aws_errors(f"switching Auto Scaling group {group} to ELB health checks"):
        _autoscaling(run).update_auto_scaling_group(
            AutoScalingGroupName=group, HealthCheckType="ELB", HealthCheckGracePeriod=grace_seconds
        )
    return True


HANDLERS: tuple[Handler, ...] = (ApplicationHandler(), DeploymentGroupHandler())
