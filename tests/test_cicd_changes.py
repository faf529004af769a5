"""The CI/CD kinds' one diff, through the real handlers on the sandbox: a stack is brought up, something
drifts (out of band, or in the config), the plan names each field with both values, `up` applies exactly
that, and the next plan is clean. Collections are diffed both ways: an entry nobody declares any more (an
Auto Scaling group, an alarm, a trigger, a stage, a rule target) is removed. Fields AWS cannot change in
place are conflicts that `up` refuses before touching anything.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from cdpoc.context import Context
from cdpoc.errors import ConflictError
from cdpoc.graph import Graph
from cdpoc.lifecycle import up
from cdpoc.model import Action, Plan, Resource, Step
from cdpoc.planner import make_plan
from cdpoc.spec import declare

APPLICATION, GROUP = "t1", "t1-fleet"


@pytest.fixture
def ctx(aws: None, make_context: Callable[..., Context]) -> Context:
    made = make_context()
    up(made)
    return made


def plan_of(ctx: Context, graph: Graph | None = None) -> Plan:
    return make_plan(ctx.run, graph or ctx.graph(), ctx.handlers)


def step(plan: Plan, key: str) -> Step:
    return next(s for s in plan.steps if s.resource.key == key)


def texts(plan: Plan, key: str) -> list[str]:
    return [c.text for c in step(plan, key).changes]


def only_work(plan: Plan) -> dict[str, Action]:
    """The steps that are not `exists`: what the drift made the plan want."""
    return {s.resource.key: s.action for s in plan.steps if s.action is not Action.NONE}


def clean(ctx: Context) -> bool:
    return not plan_of(ctx).has_work


def with_spec(ctx: Context, key: str, **fields: object) -> Graph:
    """The stack's graph with some fields of one resource's spec changed (what another config would say)."""
    resources: list[Resource] = []
    for res in ctx.graph().order():
        if res.key == key:
            assert res.spec is not None
            spec: Any = res.spec
            res = declare(res.key, res.name, dataclasses.replace(spec, **fields))
        resources.append(res)
    return Graph.of(resources)


def group_info(ctx: Context) -> dict[str, Any]:
    reply = ctx.run.client("codedeploy").get_deployment_group(applicationName=APPLICATION, deploymentGroupName=GROUP)
    return dict(reply["deploymentGroupInfo"])


# --- the deployment group ------------------------------------------------------------------------------


def second_auto_scaling_group(ctx: Context) -> str:
    """Another Auto Scaling group (from the fleet's launch template) to add to the deployment group by hand."""
    autoscaling = ctx.run.client("autoscaling")
    fleet = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["t1-app"])["AutoScalingGroups"][0]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="t1-stray",
        LaunchTemplate={"LaunchTemplateId": fleet["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
        MinSize=0,
        MaxSize=1,
        VPCZoneIdentifier=fleet["VPCZoneIdentifier"],
    )
    return "t1-stray"


def second_target_group(ctx: Context) -> str:
    """Another target group in the stack's VPC, to add to the deployment group's load balancer info by hand."""
    elbv2 = ctx.run.client("elbv2")
    fleet = elbv2.describe_target_groups(Names=["t1-app"])["TargetGroups"][0]
    elbv2.create_target_group(Name="t1-stray", Protocol="HTTP", Port=80, VpcId=fleet["VpcId"], TargetType="instance")
    return "t1-stray"


def launch_hooks(ctx: Context, group: str) -> list[str]:
    hooks = ctx.run.client("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName=group)["LifecycleHooks"]
    return [h["LifecycleHookName"] for h in hooks]


def test_every_drifted_group_setting_is_named_with_both_values_and_up_puts_each_back(ctx: Context) -> None:
    info = group_info(ctx)
    topic = info["triggerConfigurations"][0]["triggerTargetArn"]
    role = info["serviceRoleArn"]
    other_role = ctx.run.client("iam").get_role(RoleName="t1-pipeline")["Role"]["Arn"]
    stray = second_auto_scaling_group(ctx)
    stray_target_group = second_target_group(ctx)
    ctx.run.client("codedeploy").update_deployment_group(
        applicationName=APPLICATION,
        currentDeploymentGroupName=GROUP,
        serviceRoleArn=other_role,
        loadBalancerInfo={"targetGroupInfoList": [{"name": "t1-app"}, {"name": stray_target_group}]},
        autoScalingGroups=["t1-app", stray],
        autoRollbackConfiguration={"enabled": False},
        alarmConfiguration={"enabled": True, "alarms": [{"name": "someone-elses-alarm"}]},
        deploymentStyle={"deploymentType": "IN_PLACE", "deploymentOption": "WITHOUT_TRAFFIC_CONTROL"},
        triggerConfigurations=[
            {"triggerName": "t1-deployments", "triggerTargetArn": topic, "triggerEvents": ["DeploymentFailure"]},
            {"triggerName": "by-hand", "triggerTargetArn": topic, "triggerEvents": ["DeploymentStart"]},
        ],
    )
    assert launch_hooks(ctx, stray)  # CodeDeploy hooked the added group

    plan = plan_of(ctx)
    assert only_work(plan) == {"deploy.group": Action.UPDATE}
    assert sorted(texts(plan, "deploy.group")) == sorted(
        [
            f"service_role: {other_role} → {role}",
            f"target_groups[{stray_target_group}]: {stray_target_group} → (none)",
            "deployment_style: IN_PLACE/WITHOUT_TRAFFIC_CONTROL → IN_PLACE/WITH_TRAFFIC_CONTROL",
            f"autoscaling_groups[{stray}]: {stray} → (none)",
            "auto_rollback: off → on DEPLOYMENT_FAILURE",
            "alarms[someone-elses-alarm]: someone-elses-alarm → (none)",
            f"triggers[t1-deployments]: {topic} on DeploymentFailure → {topic} on DeploymentFailure, DeploymentSuccess",
            f"triggers[by-hand]: {topic} on DeploymentStart → (none)",
        ]
    )
    sent: list[dict[str, Any]] = []
    ctx.run.client("codedeploy").meta.events.register(
        "provide-client-params.codedeploy.UpdateDeploymentGroup", lambda params, **_: sent.append(dict(params))
    )
    up(ctx)
    # One call, with exactly the settings that differed (not the deployment config, for one).
    [request] = sent
    assert set(request) - {"applicationName", "currentDeploymentGroupName"} == {
        "serviceRoleArn",
        "loadBalancerInfo",
        "deploymentStyle",
        "autoScalingGroups",
        "autoRollbackConfiguration",
        "alarmConfiguration",
        "triggerConfigurations",
    }
    info = group_info(ctx)
    assert info["serviceRoleArn"] == role
    assert info["loadBalancerInfo"] == {"targetGroupInfoList": [{"name": "t1-app"}]}
    assert [g["name"] for g in info["autoScalingGroups"]] == ["t1-app"]
    assert launch_hooks(ctx, stray) == []  # removing the group from the deployment group unhooked it
    assert info["alarmConfiguration"]["enabled"] is False
    assert [t["triggerName"] for t in info["triggerConfigurations"]] == ["t1-deployments"]
    assert clean(ctx)


def test_a_new_deployment_config_is_an_update_in_place(ctx: Context, make_context: Callable[..., Context]) -> None:
    changed = make_context(pipeline={"deployment_config": "CodeDeployDefault.HalfAtATime"})
    plan = plan_of(changed)
    # The pipeline role's policy names the deployment config too (the IAM area's change).
    assert only_work(plan) == {"deploy.group": Action.UPDATE, "role.pipeline": Action.UPDATE}
    [change] = step(plan, "deploy.group").changes
    assert (change.field, change.old, change.new, change.in_place) == (
        "deployment_config",
        "CodeDeployDefault.OneAtATime",
        "CodeDeployDefault.HalfAtATime",
        True,
    )
    up(changed)
    assert group_info(changed)["deploymentConfigName"] == "CodeDeployDefault.HalfAtATime"
    assert clean(changed)


def test_a_group_or_application_whose_compute_platform_differs_is_a_conflict(ctx: Context) -> None:
    for key in ("deploy.group", "deploy.app"):
        plan = plan_of(ctx, with_spec(ctx, key, compute_platform="ECS"))
        assert step(plan, key).action is Action.CONFLICT
        [change] = step(plan, key).changes
        assert (change.text, change.in_place) == ("compute_platform: Server → ECS", False)


def test_the_application_under_another_name_is_found_by_its_tags_and_is_a_conflict(ctx: Context) -> None:
    graph = with_spec(ctx, "deploy.app", name="t1-renamed")
    plan = plan_of(ctx, graph)
    assert step(plan, "deploy.app").action is Action.CONFLICT
    assert texts(plan, "deploy.app") == ["name: t1 → t1-renamed"]
    before = len(ctx.clients.mutating_calls())
    with pytest.raises(ConflictError, match="name: t1 → t1-renamed"):
        from cdpoc.apply import apply_plan

        apply_plan(ctx.run, plan, ctx.handlers)
    assert len(ctx.clients.mutating_calls()) == before


# --- the pipeline ---------------------------------------------------------------------------------------


def test_a_changed_action_and_a_stage_nobody_declares_are_named_and_put_back(ctx: Context) -> None:
    codepipeline = ctx.run.client("codepipeline")
    pipeline = codepipeline.get_pipeline(name="t1-pipeline")["pipeline"]
    deploy = pipeline["stages"][1]["actions"][0]
    deploy["configuration"]["DeploymentGroupName"] = "by-hand"
    approval = {
        "name": "Approve",
        "actions": [
            {
                "name": "Approve",
                "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
                "runOrder": 1,
            }
        ],
    }
    pipeline["stages"].insert(1, approval)
    pipeline["executionMode"] = "QUEUED"
    codepipeline.update_pipeline(pipeline=pipeline)

    plan = plan_of(ctx)
    assert only_work(plan) == {"pipeline": Action.UPDATE}
    assert texts(plan, "pipeline") == [
        "execution_mode: QUEUED → SUPERSEDED",
        "stages[Approve]: Approve → (none)",
        "stages[Deploy].actions[Deploy].configuration[DeploymentGroupName]: by-hand → t1-fleet",
    ]
    up(ctx)
    stages = codepipeline.get_pipeline(name="t1-pipeline")["pipeline"]["stages"]
    assert [s["name"] for s in stages] == ["Source", "Deploy"]
    assert codepipeline.get_pipeline(name="t1-pipeline")["pipeline"]["executionMode"] == "SUPERSEDED"
    assert stages[1]["actions"][0]["configuration"]["DeploymentGroupName"] == "t1-fleet"
    assert clean(ctx)


# --- the rule and the source ------------------------------------------------------------------------------


def test_a_new_branch_changes_the_pattern_and_the_source_action_and_a_stale_target_is_removed(
    ctx: Context, make_context: Callable[..., Context]
) -> None:
    events = ctx.run.client("events")
    [target] = events.list_targets_by_rule(Rule="t1-source-changes")["Targets"]
    events.put_targets(Rule="t1-source-changes", Targets=[{"Id": "by-hand", "Arn": target["Arn"]}])
    events.disable_rule(Name="t1-source-changes")
    changed = make_context(pipeline={"branch": "release"})

    plan = plan_of(changed)
    assert only_work(plan) == {"pipeline": Action.UPDATE, "rule.pipeline": Action.UPDATE}
    assert texts(plan, "pipeline") == ["stages[Source].actions[Source].configuration[BranchName]: main → release"]
    [pattern, state, stale] = step(plan, "rule.pipeline").changes
    assert state.text == "state: DISABLED → ENABLED"
    assert pattern.field == "pattern"
    assert json.loads(pattern.old)["detail"]["referenceName"] == ["main"]
    assert json.loads(pattern.new)["detail"]["referenceName"] == ["release"]
    assert pattern.text == f"pattern: {pattern.old} → {pattern.new}"
    assert stale.text == f"targets[by-hand]: {target['Arn']} as (no role) → (none)"

    up(changed)
    rule = events.describe_rule(Name="t1-source-changes")
    assert rule["State"] == "ENABLED"
    assert json.loads(rule["EventPattern"])["detail"]["referenceName"] == ["release"]
    assert [t["Id"] for t in events.list_targets_by_rule(Rule="t1-source-changes")["Targets"]] == ["pipeline"]
    assert clean(changed)


def test_the_repository_description_is_updated_in_place(ctx: Context) -> None:
    codecommit = ctx.run.client("codecommit")
    wanted = codecommit.get_repository(repositoryName="t1-s3upload")["repositoryMetadata"]["repositoryDescription"]
    codecommit.update_repository_description(repositoryName="t1-s3upload", repositoryDescription="by hand")
    plan = plan_of(ctx)
    assert only_work(plan) == {"source": Action.UPDATE}
    assert texts(plan, "source") == [f"description: by hand → {wanted}"]
    up(ctx)
    metadata = codecommit.get_repository(repositoryName="t1-s3upload")["repositoryMetadata"]
    assert metadata["repositoryDescription"] == wanted
    assert clean(ctx)


def test_another_repository_name_is_a_conflict_not_a_second_repository(
    ctx: Context, make_context: Callable[..., Context]
) -> None:
    renamed = make_context(pipeline={"repository": "t1-renamed"})
    plan = plan_of(renamed)
    assert step(plan, "source").action is Action.CONFLICT
    # (its Name tag, the repository's name, differs too)
    assert "repository: t1-s3upload → t1-renamed" in texts(plan, "source")
    before = len(renamed.clients.mutating_calls())
    with pytest.raises(ConflictError, match="repository: t1-s3upload → t1-renamed"):
        up(renamed)
    assert len(renamed.clients.mutating_calls()) == before
    names = [r["repositoryName"] for r in renamed.run.client("codecommit").list_repositories()["repositories"]]
    assert names == ["t1-s3upload"]
