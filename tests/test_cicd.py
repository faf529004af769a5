"""CI/CD handlers against moto (and botocore's Stubber where moto lacks an operation): the source, the
CodeDeploy application and deployment group, the pipeline and its EventBridge rule.

moto is lenient (it checks no ASG or target group name, drops ASG names from GetDeploymentGroup), so
the exact request parameters are pinned; idempotency is "a second apply makes no mutating call".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from cdpoc.apply import apply_plan
from cdpoc.aws.account import account_id, arn_type, resolve_zones
from cdpoc.aws.deploy import LAUNCH_HOOK_PREFIX, ApplicationHandler, DeploymentGroupHandler, _comparable
from cdpoc.aws.ownership import ownership
from cdpoc.aws.pipeline import PipelineHandler, RuleHandler, branch_event_pattern
from cdpoc.aws.source import SourceHandler
from cdpoc.context import Context
from cdpoc.errors import ConflictError
from cdpoc.graph import Graph
from cdpoc.lifecycle import up
from cdpoc.model import Observed, Resource
from cdpoc.planner import make_plan
from cdpoc.stack import cicd, iam, notify, storage
from cdpoc.stack.names import StackNames

ACCOUNT = "123456789012"
TAGS = {"cdpoc:stack": "t1", "Name": ""}


@pytest.fixture
def ctx(aws: None, make_context: Callable[..., Context]) -> Context:
    return make_context()


def stack_names(ctx: Context) -> StackNames:
    return StackNames(ctx.settings, resolve_zones(ctx.run, ctx.settings.availability_zones), account_id(ctx.run))


def declared(ctx: Context) -> dict[str, Resource]:
    return {r.key: r for r in cicd.declare(stack_names(ctx))}


def source_deps(ctx: Context) -> dict[str, Observed]:
    """What the source references: the artifact bucket (its id is its name), which holds the S3 source."""
    bucket = stack_names(ctx).bucket("artifacts")
    return {"bucket.artifacts": Observed("bucket.artifacts", "bucket", bucket)}


@pytest.fixture
def prerequisites(ctx: Context) -> dict[str, Observed]:
    """The IAM roles, buckets and topic (built by their own areas), and stand-ins for the fleet's ASG and TG."""
    names = stack_names(ctx)
    wanted = [*iam.declare(names), *storage.declare(names), *notify.declare(names)]
    graph = Graph.of(r for r in wanted if r.kind != "ssm_parameter")
    found = dict(apply_plan(ctx.run, make_plan(ctx.run, graph, ctx.handlers), ctx.handlers))
    found["asg.app"] = Observed("asg.app", "autoscaling_group", "t1-app")
    tg_arn = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/t1-app/0123456789abcdef"
    found["tg.app"] = Observed("tg.app", "target_group", tg_arn, {"name": "t1-app"})
    return found


def ours(ctx: Context, key: str, name: str) -> dict[str, Any]:
    """The ownership attrs of a resource of this stack, as the handlers observe them."""
    return ownership({t["Key"]: t["Value"] for t in ctx.run.tags(key, name)})


def recorded(ctx: Context, service: str, operation: str) -> list[dict[str, Any]]:
    """Every request of one operation, as sent (after botocore's validation)."""
    calls: list[dict[str, Any]] = []
    ctx.run.client(service).meta.events.register(
        f"provide-client-params.{service}.{operation}", lambda params, **_: calls.append(dict(params))
    )
    return calls


def tag_list(ctx: Context, key: str, name: str, key_field: str = "Key", value_field: str = "Value") -> list[Any]:
    return [{key_field: t["Key"], value_field: t["Value"]} for t in ctx.run.tags(key, name)]


# --- declaration -----------------------------------------------------------------------------------------


def test_the_pipeline_is_created_after_everything_it_uses(ctx: Context) -> None:
    resources = declared(ctx)
    assert [r.kind for r in resources.values()] == [
        "pipeline_source",
        "codedeploy_application",
        "deployment_group",
        "pipeline",
        "event_rule",
    ]
    assert set(resources["pipeline"].depends_on) == {
        "source",
        "deploy.app",
        "deploy.group",
        "role.pipeline",
        "bucket.artifacts",
    }
    assert set(resources["deploy.group"].depends_on) >= {"asg.app", "tg.app", "role.codedeploy", "topic.alerts"}
    assert "pipeline" in resources["rule.pipeline"].depends_on
    assert resources["source"].name == "t1-s3upload" and resources["source"].spec.branch == "main"
    assert resources["deploy.group"].spec.deployment_config == "CodeDeployDefault.OneAtATime"


# --- source -------------------------------------------------------------------------------------------


def test_the_repository_is_created_with_its_tags_and_found_again(ctx: Context) -> None:
    sent = recorded(ctx, "codecommit", "CreateRepository")
    res = declared(ctx)["source"]
    made = SourceHandler().create(ctx.run, res, {})
    assert sent == [
        {
            "repositoryName": "t1-s3upload",
            "repositoryDescription": res.spec.description,
            "tags": {t["Key"]: t["Value"] for t in ctx.run.tags("source", "t1-s3upload")},
        }
    ]
    assert made.id == "t1-s3upload" and made.attrs["provider"] == "CodeCommit" and made.attrs["branch"] == "main"
    found = SourceHandler().find(ctx.run, res)
    assert found is not None and SourceHandler().changes(ctx.run, res, found, {}) == []
    assert SourceHandler().scan(ctx.run)["source"].id == "t1-s3upload"
    SourceHandler().delete(ctx.run, found)
    SourceHandler().delete(ctx.run, found)  # a second delete is fine
    assert SourceHandler().find(ctx.run, res) is None


def test_codecommit_refusing_the_repository_falls_back_to_the_s3_source(ctx: Context) -> None:
    res = declared(ctx)["source"]
    with Stubber(ctx.run.client("codecommit")) as codecommit:
        codecommit.add_client_error(
            "create_repository",
            "OperationNotAllowedException",
            "CreateRepository request is not allowed because there is no existing repository in this AWS account",
        )
        made = SourceHandler().create(ctx.run, res, source_deps(ctx))
    assert made.attrs["provider"] == "S3"
    assert made.attrs["bucket"] == stack_names(ctx).bucket("artifacts") and made.attrs["key"] == "source/s3upload.zip"
    assert "CodeCommit refused" in SourceHandler().describe(made)


def test_a_repository_of_someone_else_is_refused_and_ours_adopted(ctx: Context) -> None:
    res = declared(ctx)["source"]
    codecommit = ctx.run.client("codecommit")
    codecommit.create_repository(repositoryName="t1-s3upload", tags={"cdpoc:stack": "other"})
    found = SourceHandler().find(ctx.run, res)
    assert found is not None
    [conflict] = SourceHandler().changes(ctx.run, res, found, {})
    assert not conflict.in_place and "stack other" in conflict.text
    with pytest.raises(ConflictError, match="belongs to stack other"):
        SourceHandler().create(ctx.run, res, {})
    codecommit.delete_repository(repositoryName="t1-s3upload")
    # Left by an interrupted run (tagged ours): created again means adopted, not refused.
    codecommit.create_repository(repositoryName="t1-s3upload", tags={"cdpoc:stack": "t1"})
    adopted = SourceHandler().create(ctx.run, res, {})
    assert adopted.attrs["tags"]["cdpoc:component"] == "source"


def test_configured_s3_source_needs_no_call(ctx: Context, make_context: Callable[..., Context]) -> None:
    s3_ctx = make_context(pipeline={"source": "s3"})
    res = declared(s3_ctx)["source"]
    before = len(s3_ctx.clients.calls)
    made = SourceHandler().create(s3_ctx.run, res, source_deps(s3_ctx))
    assert made.attrs["provider"] == "S3" and made.id.startswith("s3://")
    assert len(s3_ctx.clients.calls) == before


# --- CodeDeploy --------------------------------------------------------------------------------------------


def make_application(ctx: Context) -> Observed:
    return ApplicationHandler().create(ctx.run, declared(ctx)["deploy.app"], {})


def group_deps(ctx: Context, prerequisites: dict[str, Observed], application: Observed) -> dict[str, Observed]:
    return {**prerequisites, "deploy.app": application}


def expected_group_settings(
    prerequisites: dict[str, Observed], config: str = "CodeDeployDefault.OneAtATime"
) -> dict[str, Any]:
    return {
        "deploymentConfigName": config,
        "serviceRoleArn": prerequisites["role.codedeploy"].attrs["arn"],
        "autoScalingGroups": ["t1-app"],
        "deploymentStyle": {"deploymentType": "IN_PLACE", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        "loadBalancerInfo": {"targetGroupInfoList": [{"name": "t1-app"}]},
        "autoRollbackConfiguration": {"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
        "triggerConfigurations": [
            {
                "triggerName": "t1-deployments",
                "triggerTargetArn": prerequisites["topic.alerts"].id,
                "triggerEvents": ["DeploymentFailure", "DeploymentSuccess"],
            }
        ],
    }


def test_application_is_a_tagged_server_application_and_goes_away(ctx: Context) -> None:
    sent = recorded(ctx, "codedeploy", "CreateApplication")
    res = declared(ctx)["deploy.app"]
    made = make_application(ctx)
    assert sent == [{"applicationName": "t1", "computePlatform": "Server", "tags": tag_list(ctx, "deploy.app", "t1")}]
    found = ApplicationHandler().find(ctx.run, res)
    assert found is not None and ApplicationHandler().changes(ctx.run, res, found, {}) == []
    assert ApplicationHandler().scan(ctx.run)["deploy.app"].id == "t1"
    ApplicationHandler().delete(ctx.run, made)
    assert ApplicationHandler().find(ctx.run, res) is None


def test_deployment_group_is_created_with_exactly_these_settings(
    ctx: Context, prerequisites: dict[str, Observed]
) -> None:
    sent = recorded(ctx, "codedeploy", "CreateDeploymentGroup")
    res = declared(ctx)["deploy.group"]
    made = DeploymentGroupHandler().create(ctx.run, res, group_deps(ctx, prerequisites, make_application(ctx)))
    assert sent == [
        {
            "applicationName": "t1",
            "deploymentGroupName": "t1-fleet",
            "tags": tag_list(ctx, "deploy.group", "t1-fleet"),
            **expected_group_settings(prerequisites),
        }
    ]
    assert made.attrs["arn"] == f"arn:aws:codedeploy:us-east-1:{ACCOUNT}:deploymentgroup:t1/t1-fleet"


def test_an_unchanged_deployment_group_needs_no_change(ctx: Context, prerequisites: dict[str, Observed]) -> None:
    res = declared(ctx)["deploy.group"]
    deps = group_deps(ctx, prerequisites, make_application(ctx))
    DeploymentGroupHandler().create(ctx.run, res, deps)
    ctx.run.forget()
    found = DeploymentGroupHandler().find(ctx.run, res)
    assert found is not None
    assert DeploymentGroupHandler().changes(ctx.run, res, found, deps) == []
    mutating = len(ctx.clients.mutating_calls())
    DeploymentGroupHandler().update(ctx.run, res, found, deps)
    assert len(ctx.clients.mutating_calls()) == mutating
    assert DeploymentGroupHandler().scan(ctx.run)["deploy.group"].id == "t1-fleet"


def test_group_names_a_reply_leaves_out_are_not_a_difference(ctx: Context, prerequisites: dict[str, Observed]) -> None:
    # moto 5.2.5's own GetDeploymentGroup answers autoScalingGroups [{}]: unreadable names cannot be compared.
    res = declared(ctx)["deploy.group"]
    deps = group_deps(ctx, prerequisites, make_application(ctx))
    reply = {**expected_group_settings(prerequisites), "autoScalingGroups": [{}]}
    found = Observed(
        "deploy.group",
        "deployment_group",
        "t1-fleet",
        {**ours(ctx, "deploy.group", "t1-fleet"), "application": "t1", "settings": _comparable(reply)},
    )
    assert found.attrs["settings"]["autoscaling_groups"] is None
    assert DeploymentGroupHandler().changes(ctx.run, res, found, deps) == []
    named = {**reply, "autoScalingGroups": [{"name": "other-asg", "hook": "h"}]}
    moved = Observed(
        "deploy.group",
        "deployment_group",
        "t1-fleet",
        {**ours(ctx, "deploy.group", "t1-fleet"), "application": "t1", "settings": _comparable(named)},
    )
    # Both ways: the declared group is added, the one no longer declared removed.
    assert [c.text for c in DeploymentGroupHandler().changes(ctx.run, res, moved, deps)] == [
        "autoscaling_groups[t1-app]: (none) → t1-app",
        "autoscaling_groups[other-asg]: other-asg → (none)",
    ]


def test_a_config_change_updates_the_group_in_place(
    ctx: Context, make_context: Callable[..., Context], prerequisites: dict[str, Observed]
) -> None:
    res = declared(ctx)["deploy.group"]
    deps = group_deps(ctx, prerequisites, make_application(ctx))
    DeploymentGroupHandler().create(ctx.run, res, deps)
    found = DeploymentGroupHandler().find(ctx.run, res)
    assert found is not None
    changed = declared(make_context(pipeline={"deployment_config": "CodeDeployDefault.HalfAtATime"}))["deploy.group"]
    [change] = DeploymentGroupHandler().changes(ctx.run, changed, found, deps)
    assert change.in_place
    assert change.text == "deployment_config: CodeDeployDefault.OneAtATime → CodeDeployDefault.HalfAtATime"
    sent = recorded(ctx, "codedeploy", "UpdateDeploymentGroup")
    DeploymentGroupHandler().update(ctx.run, changed, found, deps, [change])
    # Only the setting that differs: UpdateDeploymentGroup leaves what it is not given as it is.
    assert sent == [
        {
            "applicationName": "t1",
            "currentDeploymentGroupName": "t1-fleet",
            "deploymentConfigName": "CodeDeployDefault.HalfAtATime",
        }
    ]
    updated = DeploymentGroupHandler().find(ctx.run, changed)
    assert updated is not None
    assert DeploymentGroupHandler().changes(ctx.run, changed, updated, deps) == []


def test_deleting_the_group_removes_the_hooks_codedeploy_left(ctx: Context) -> None:
    found = Observed("deploy.group", "deployment_group", "t1-fleet", {"application": "t1"})
    with Stubber(ctx.run.client("codedeploy")) as codedeploy, Stubber(ctx.run.client("autoscaling")) as autoscaling:
        hook = f"{LAUNCH_HOOK_PREFIX}t1-abc"
        codedeploy.add_response(
            "delete_deployment_group",
            {"hooksNotCleanedUp": [{"name": "t1-app", "hook": hook}]},
            {"applicationName": "t1", "deploymentGroupName": "t1-fleet"},
        )
        autoscaling.add_response(
            "delete_lifecycle_hook", {}, {"AutoScalingGroupName": "t1-app", "LifecycleHookName": hook}
        )
        codedeploy.add_response("delete_deployment_group", {"hooksNotCleanedUp": []})
        DeploymentGroupHandler().delete(ctx.run, found)
        DeploymentGroupHandler().delete(ctx.run, found)  # a second delete is fine
        codedeploy.assert_no_pending_responses()
        autoscaling.assert_no_pending_responses()


def test_deleting_the_application_removes_leftover_launch_hooks_only(ctx: Context) -> None:
    ec2, autoscaling = ctx.run.client("ec2"), ctx.run.client("autoscaling")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(LaunchTemplateName="lt", LaunchTemplateData={"ImageId": image})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="t1-app",
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"]},
        MinSize=0,
        MaxSize=1,
        AvailabilityZones=["us-east-1a"],
        Tags=[
            {
                "Key": "cdpoc:stack",
                "Value": "t1",
                "PropagateAtLaunch": False,
                "ResourceId": "t1-app",
                "ResourceType": "auto-scaling-group",
            }
        ],
    )
    for name in (f"{LAUNCH_HOOK_PREFIX}t1-d-123", "someone-elses-hook", f"{LAUNCH_HOOK_PREFIX}other-d-9"):
        autoscaling.put_lifecycle_hook(
            AutoScalingGroupName="t1-app",
            LifecycleHookName=name,
            LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
        )
    application = make_application(ctx)
    ApplicationHandler().delete(ctx.run, application)
    hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName="t1-app")["LifecycleHooks"]
    assert sorted(h["LifecycleHookName"] for h in hooks) == [f"{LAUNCH_HOOK_PREFIX}other-d-9", "someone-elses-hook"]


# --- pipeline and rule ------------------------------------------------------------------------------------


def codecommit_source(ctx: Context) -> Observed:
    arn = f"arn:aws:codecommit:us-east-1:{ACCOUNT}:t1-s3upload"
    return Observed(
        "source", "pipeline_source", "t1-s3upload", {"provider": "CodeCommit", "arn": arn, "branch": "main"}
    )


def s3_source(prerequisites: dict[str, Observed]) -> Observed:
    bucket = prerequisites["bucket.artifacts"].id
    return Observed(
        "source",
        "pipeline_source",
        f"s3://{bucket}/source/s3upload.zip",
        {"provider": "S3", "bucket": bucket, "key": "source/s3upload.zip"},
    )


@pytest.fixture
def pipeline_deps(ctx: Context, prerequisites: dict[str, Observed]) -> dict[str, Observed]:
    application = make_application(ctx)
    group = DeploymentGroupHandler().create(
        ctx.run, declared(ctx)["deploy.group"], group_deps(ctx, prerequisites, application)
    )
    return {**prerequisites, "deploy.app": application, "deploy.group": group, "source": codecommit_source(ctx)}


def expected_pipeline(deps: dict[str, Observed], source_action: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "t1-pipeline",
        "roleArn": deps["role.pipeline"].attrs["arn"],
        "artifactStore": {"type": "S3", "location": deps["bucket.artifacts"].id},
        "pipelineType": "V2",
        "executionMode": "SUPERSEDED",
        "stages": [
            {"name": "Source", "actions": [source_action]},
            {
                "name": "Deploy",
                "actions": [
                    {
                        "name": "Deploy",
                        "actionTypeId": {
                            "category": "Deploy",
                            "owner": "AWS",
                            "provider": "CodeDeploy",
                            "version": "1",
                        },
                        "runOrder": 1,
                        "configuration": {"ApplicationName": "t1", "DeploymentGroupName": "t1-fleet"},
                        "inputArtifacts": [{"name": "SourceOutput"}],
                    }
                ],
            },
        ],
    }


def source_action(provider: str, configuration: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "Source",
        "actionTypeId": {"category": "Source", "owner": "AWS", "provider": provider, "version": "1"},
        "runOrder": 1,
        "configuration": configuration,
        "outputArtifacts": [{"name": "SourceOutput"}],
    }


CODECOMMIT_ACTION = source_action(
    "CodeCommit",
    {
        "RepositoryName": "t1-s3upload",
        "BranchName": "main",
        "PollForSourceChanges": "false",
        "OutputArtifactFormat": "CODE_ZIP",
    },
)


def test_pipeline_is_source_then_deploy_and_a_second_apply_changes_nothing(
    ctx: Context, pipeline_deps: dict[str, Observed]
) -> None:
    sent = recorded(ctx, "codepipeline", "CreatePipeline")
    res = declared(ctx)["pipeline"]
    PipelineHandler().create(ctx.run, res, pipeline_deps)
    assert sent == [
        {
            "pipeline": expected_pipeline(pipeline_deps, CODECOMMIT_ACTION),
            "tags": tag_list(ctx, "pipeline", "t1-pipeline", "key", "value"),
        }
    ]
    ctx.run.forget()
    found = PipelineHandler().find(ctx.run, res)
    assert found is not None and PipelineHandler().changes(ctx.run, res, found, pipeline_deps) == []
    mutating = len(ctx.clients.mutating_calls())
    PipelineHandler().update(ctx.run, res, found, pipeline_deps)
    assert len(ctx.clients.mutating_calls()) == mutating
    assert PipelineHandler().scan(ctx.run)["pipeline"].id == "t1-pipeline"


def test_switching_to_the_s3_source_updates_the_pipeline_and_is_remembered(
    ctx: Context, prerequisites: dict[str, Observed], pipeline_deps: dict[str, Observed]
) -> None:
    res = declared(ctx)["pipeline"]
    PipelineHandler().create(ctx.run, res, pipeline_deps)
    ctx.run.forget()
    found = PipelineHandler().find(ctx.run, res)
    assert found is not None
    s3_deps = {**pipeline_deps, "source": s3_source(prerequisites)}
    changes = PipelineHandler().changes(ctx.run, res, found, s3_deps)
    assert "stages[Source].actions[Source].provider: CodeCommit → S3" in [c.text for c in changes]
    sent = recorded(ctx, "codepipeline", "UpdatePipeline")
    PipelineHandler().update(ctx.run, res, found, s3_deps, changes)
    bucket = prerequisites["bucket.artifacts"].id
    s3_action = source_action(
        "S3", {"S3Bucket": bucket, "S3ObjectKey": "source/s3upload.zip", "PollForSourceChanges": "false"}
    )
    assert sent == [{"pipeline": expected_pipeline(s3_deps, s3_action)}]
    # The pipeline is the record of the fallback: the source is found as S3 without asking CodeCommit again.
    ctx.run.forget()
    with Stubber(ctx.run.client("codecommit")) as codecommit:
        codecommit.add_client_error("get_repository", "RepositoryDoesNotExistException")
        source = SourceHandler().find(ctx.run, declared(ctx)["source"])
    assert source is not None and source.attrs["provider"] == "S3"
    rule = RuleHandler().find(ctx.run, declared(ctx)["rule.pipeline"])
    assert rule is not None and rule.attrs["not_needed"]


def test_a_renamed_artifact_bucket_shows_in_the_store_and_in_the_s3_source_action(
    ctx: Context, prerequisites: dict[str, Observed], pipeline_deps: dict[str, Observed]
) -> None:
    res = declared(ctx)["pipeline"]
    s3_deps = {**pipeline_deps, "source": s3_source(prerequisites)}
    PipelineHandler().create(ctx.run, res, s3_deps)
    ctx.run.forget()
    found = PipelineHandler().find(ctx.run, res)
    assert found is not None and PipelineHandler().changes(ctx.run, res, found, s3_deps) == []
    old = prerequisites["bucket.artifacts"].id
    renamed = {**s3_deps, "bucket.artifacts": Observed("bucket.artifacts", "bucket", "t1-renamed-artifacts")}
    assert [c.text for c in PipelineHandler().changes(ctx.run, res, found, renamed)] == [
        f"artifact_bucket: {old} → t1-renamed-artifacts",
        f"stages[Source].actions[Source].configuration[S3Bucket]: {old} → t1-renamed-artifacts",
    ]


def test_pipeline_creation_waits_out_iam_propagation(ctx: Context, pipeline_deps: dict[str, Observed]) -> None:
    res = declared(ctx)["pipeline"]
    with Stubber(ctx.run.client("codepipeline")) as stubber:
        stubber.add_client_error(
            "create_pipeline", "InvalidStructureException", "CodePipeline is not authorized to perform AssumeRole"
        )
        stubber.add_response("create_pipeline", {"pipeline": expected_pipeline(pipeline_deps, CODECOMMIT_ACTION)})
        made = PipelineHandler().create(ctx.run, res, pipeline_deps)
        stubber.assert_no_pending_responses()
    assert made.id == "t1-pipeline"


def test_pipeline_delete_is_idempotent(ctx: Context, pipeline_deps: dict[str, Observed]) -> None:
    res = declared(ctx)["pipeline"]
    made = PipelineHandler().create(ctx.run, res, pipeline_deps)
    PipelineHandler().delete(ctx.run, made)
    PipelineHandler().delete(ctx.run, made)
    ctx.run.forget()
    assert PipelineHandler().find(ctx.run, res) is None


@pytest.fixture
def rule_deps(ctx: Context, pipeline_deps: dict[str, Observed]) -> dict[str, Observed]:
    return {**pipeline_deps, "pipeline": PipelineHandler().create(ctx.run, declared(ctx)["pipeline"], pipeline_deps)}


def test_rule_starts_the_pipeline_on_a_push_to_the_branch(ctx: Context, rule_deps: dict[str, Observed]) -> None:
    put_rule, put_targets = recorded(ctx, "events", "PutRule"), recorded(ctx, "events", "PutTargets")
    res = declared(ctx)["rule.pipeline"]
    RuleHandler().create(ctx.run, res, rule_deps)
    [rule] = put_rule
    assert json.loads(rule.pop("EventPattern")) == {
        "source": ["aws.codecommit"],
        "detail-type": ["CodeCommit Repository State Change"],
        "resources": [f"arn:aws:codecommit:us-east-1:{ACCOUNT}:t1-s3upload"],
        "detail": {
            "event": ["referenceCreated", "referenceUpdated"],
            "referenceType": ["branch"],
            "referenceName": ["main"],
        },
    }
    assert rule == {
        "Name": "t1-source-changes",
        "State": "ENABLED",
        "Description": res.spec.description,
        "Tags": tag_list(ctx, "rule.pipeline", "t1-source-changes"),
    }
    assert put_targets == [
        {
            "Rule": "t1-source-changes",
            "Targets": [
                {
                    "Id": "pipeline",
                    "Arn": f"arn:aws:codepipeline:us-east-1:{ACCOUNT}:t1-pipeline",
                    "RoleArn": rule_deps["role.events"].attrs["arn"],
                }
            ],
        }
    ]
    found = RuleHandler().find(ctx.run, res)
    assert found is not None and RuleHandler().changes(ctx.run, res, found, rule_deps) == []
    mutating = len(ctx.clients.mutating_calls())
    RuleHandler().update(ctx.run, res, found, rule_deps)
    assert len(ctx.clients.mutating_calls()) == mutating


def test_rule_delete_removes_targets_first_and_is_idempotent(ctx: Context, rule_deps: dict[str, Observed]) -> None:
    res = declared(ctx)["rule.pipeline"]
    made = RuleHandler().create(ctx.run, res, rule_deps)
    before = len(ctx.clients.calls)
    RuleHandler().delete(ctx.run, made)
    RuleHandler().delete(ctx.run, made)
    operations = [op for service, op in ctx.clients.calls[before:] if service == "events"]
    assert operations.index("RemoveTargets") < operations.index("DeleteRule")
    assert RuleHandler().find(ctx.run, res) is None


def test_rule_is_not_wanted_with_the_s3_source_and_an_old_one_is_removed(
    ctx: Context, prerequisites: dict[str, Observed], rule_deps: dict[str, Observed]
) -> None:
    res = declared(ctx)["rule.pipeline"]
    old = RuleHandler().create(ctx.run, res, rule_deps)
    s3_deps = {**rule_deps, "source": s3_source(prerequisites)}
    assert [c.text for c in RuleHandler().changes(ctx.run, res, old, s3_deps)] == [
        "remove it: the S3 source is started by push-app"
    ]
    gone = RuleHandler().update(ctx.run, res, old, s3_deps)
    assert gone.attrs["not_needed"]
    assert ctx.run.client("events").list_rules(NamePrefix="t1-")["Rules"] == []
    before = len(ctx.clients.calls)
    assert RuleHandler().create(ctx.run, res, s3_deps).attrs["not_needed"]
    assert len(ctx.clients.calls) == before


def test_the_branch_pattern_names_one_branch_of_one_repository() -> None:
    pattern = branch_event_pattern("arn:aws:codecommit:us-east-1:1:r", "release/1")
    assert pattern["resources"] == ["arn:aws:codecommit:us-east-1:1:r"]
    assert pattern["detail"]["referenceName"] == ["release/1"]


# --- the whole stack -----------------------------------------------------------------------------------


def refuse_repositories(ctx: Context) -> list[str]:
    """Make CreateRepository answer as it does for accounts closed to CodeCommit; returns the refusals made."""
    refused: list[str] = []

    def refuse(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        refused.append(json.loads(params["body"])["repositoryName"])  # params is the serialized request here
        error = {"Code": "OperationNotAllowedException", "Message": "CreateRepository request is not allowed"}
        return AWSResponse("https://codecommit", 400, {}, None), {"Error": error, "ResponseMetadata": {}}

    ctx.run.client("codecommit").meta.events.register("before-call.codecommit.CreateRepository", refuse)
    return refused


def test_a_refused_repository_gives_an_s3_pipeline_that_the_next_up_keeps(
    ctx: Context, make_context: Callable[..., Context]
) -> None:
    refused = refuse_repositories(ctx)
    up(ctx)
    assert refused == ["t1-s3upload"]
    pipeline = ctx.run.client("codepipeline").get_pipeline(name="t1-pipeline")["pipeline"]
    source = pipeline["stages"][0]["actions"][0]
    assert source["actionTypeId"]["provider"] == "S3"
    assert source["configuration"]["S3ObjectKey"] == "source/s3upload.zip"
    assert ctx.run.client("codecommit").list_repositories()["repositories"] == []
    assert ctx.run.client("events").list_rules(NamePrefix="t1-")["Rules"] == []

    again = make_context()
    refused_again = refuse_repositories(again)
    up(again)
    assert again.clients.mutating_calls() == [] and refused_again == []
    assert "No changes" in again.ui.console.export_text()


def test_the_leftover_scan_leaves_ci_cd_arns_to_the_handlers(ctx: Context) -> None:
    """The tagging API lags behind deletes: ARN types a handler scans are judged by that handler instead."""
    covered = {t for h in ctx.handlers.values() for t in h.arn_types}
    for arn in (
        f"arn:aws:codecommit:us-east-1:{ACCOUNT}:t1-s3upload",
        f"arn:aws:codepipeline:us-east-1:{ACCOUNT}:t1-pipeline",
        f"arn:aws:codedeploy:us-east-1:{ACCOUNT}:application:t1",
        f"arn:aws:codedeploy:us-east-1:{ACCOUNT}:deploymentgroup:t1/t1-fleet",
        f"arn:aws:events:us-east-1:{ACCOUNT}:rule/t1-source-changes",
    ):
        assert arn_type(arn) in covered, arn


def test_deployment_group_creation_waits_out_iam_propagation(ctx: Context, prerequisites: dict[str, Observed]) -> None:
    res = declared(ctx)["deploy.group"]
    deps = group_deps(ctx, prerequisites, Observed("deploy.app", "codedeploy_application", "t1"))
    with Stubber(ctx.run.client("codedeploy")) as stubber:
        stubber.add_client_error("create_deployment_group", "InvalidRoleException", "Cannot assume role provided.")
        stubber.add_response("create_deployment_group", {"deploymentGroupId": "g-1"})
        made = DeploymentGroupHandler().create(ctx.run, res, deps)
        stubber.assert_no_pending_responses()
    assert made.id == "t1-fleet"
