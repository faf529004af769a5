"""IAM propagation at the calls that meet it (issue 12 item 7), as terraform-provider-aws retries them:
RunInstances' InvalidParameterValue about the instance profile ("Invalid IAM Instance Profile", "... has no
associated IAM Roles"), CreateDeploymentGroup's InvalidRoleException and InvalidTriggerConfigException about
the topic ARN; and EventBridge PutTargets, whose refusals come back in FailedEntries with a 200.

The handlers' real calls against botocore's Stubber (requests and replies validated against the models);
attempts are counted from the stubbed answers, waits are the tests' fast ones.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from botocore.stub import Stubber
from test_cicd import ctx, declared, group_deps, make_application, pipeline_deps, prerequisites, rule_deps

from cdpoc.aws.compute import InstanceHandler
from cdpoc.aws.deploy import DeploymentGroupHandler
from cdpoc.aws.pipeline import RuleHandler
from cdpoc.context import Context
from cdpoc.errors import AwsError
from cdpoc.model import Observed

__all__ = ["ctx", "pipeline_deps", "prerequisites", "rule_deps"]

LAUNCH = {"ImageId": "ami-12c6146b", "InstanceType": "t3.micro", "MinCount": 1, "MaxCount": 1}
PROFILE = "arn:aws:iam::123456789012:instance-profile/t1-mongodb"


def launch(ctx: Context) -> dict[str, Any]:
    res = cast(Any, SimpleNamespace(name="t1-mongodb"))
    return InstanceHandler()._launch(ctx.run, res, LAUNCH, "token-1")


@pytest.mark.parametrize(
    "message",
    [
        f'IAM Instance Profile "{PROFILE}" has no associated IAM Roles',
        f"Value ({PROFILE}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
    ],
)
def test_run_instances_waits_out_a_profile_not_usable_yet(ctx: Context, message: str) -> None:
    with Stubber(ctx.run.client("ec2")) as ec2:
        for _ in range(2):
            ec2.add_client_error("run_instances", "InvalidParameterValue", message)
        ec2.add_response("run_instances", {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]})
        assert launch(ctx)["InstanceId"] == "i-0123456789abcdef0"
        ec2.assert_no_pending_responses()  # two refusals, then the launch


def test_run_instances_does_not_retry_another_invalid_parameter(ctx: Context) -> None:
    with Stubber(ctx.run.client("ec2")) as ec2:
        ec2.add_client_error(
            "run_instances", "InvalidParameterValue", "Value (t9.nano) for parameter instanceType is invalid."
        )
        ec2.add_response("run_instances", {"Instances": [{"InstanceId": "i-never"}]})
        with pytest.raises(AwsError, match=r"InvalidParameterValue: Value \(t9\.nano\)"):
            launch(ctx)
        # the second answer was never asked for: one attempt only
        with pytest.raises(AssertionError):
            ec2.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("InvalidRoleException", "AWS CodeDeploy does not have the permissions required to assume the role"),
        (
            "InvalidTriggerConfigException",
            "Topic ARN arn:aws:sns:us-east-1:123456789012:t1-events is not valid or the service role cannot "
            "publish to it",
        ),
    ],
)
def test_deployment_group_creation_waits_out_its_role_and_topic(
    ctx: Context, prerequisites: dict[str, Observed], code: str, message: str
) -> None:
    res = declared(ctx)["deploy.group"]
    deps = group_deps(ctx, prerequisites, make_application(ctx))
    with Stubber(ctx.run.client("codedeploy")) as codedeploy:
        codedeploy.add_client_error("create_deployment_group", code, message)
        codedeploy.add_response("create_deployment_group", {"deploymentGroupId": "g-1"})
        made = DeploymentGroupHandler().create(ctx.run, res, deps)
        codedeploy.assert_no_pending_responses()
    assert made.id == res.name


def test_another_trigger_mistake_is_not_retried(ctx: Context, prerequisites: dict[str, Observed]) -> None:
    res = declared(ctx)["deploy.group"]
    deps = group_deps(ctx, prerequisites, make_application(ctx))
    with Stubber(ctx.run.client("codedeploy")) as codedeploy:
        codedeploy.add_client_error(
            "create_deployment_group", "InvalidTriggerConfigException", "The trigger name is not valid."
        )
        with pytest.raises(AwsError, match="trigger name is not valid"):
            DeploymentGroupHandler().create(ctx.run, res, deps)
        codedeploy.assert_no_pending_responses()


def test_a_refused_target_is_not_a_success(ctx: Context, rule_deps: dict[str, Observed]) -> None:
    """PutTargets answers 200 with the refused target in FailedEntries: `up` stops there, saying which and why."""
    res = declared(ctx)["rule.pipeline"]
    with Stubber(ctx.run.client("events")) as events:
        events.add_client_error("describe_rule", "ResourceNotFoundException")
        events.add_response("put_rule", {"RuleArn": "arn:aws:events:us-east-1:123456789012:rule/t1-source-changes"})
        events.add_response(
            "put_targets",
            {
                "FailedEntryCount": 1,
                "FailedEntries": [
                    {"TargetId": "pipeline", "ErrorCode": "ConcurrentModificationException", "ErrorMessage": "busy"}
                ],
            },
        )
        with pytest.raises(
            AwsError,
            match="refused the pipeline as the target of rule t1-source-changes: target "
            "pipeline: ConcurrentModificationException: busy",
        ) as refused:
            RuleHandler().create(ctx.run, res, rule_deps)
        events.assert_no_pending_responses()
    assert "cdpoc up" in refused.value.hint
