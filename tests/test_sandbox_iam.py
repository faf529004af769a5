"""IAM evaluation in the sandbox: the evaluator (AWS's policy evaluation logic), and end to end, that every
permission the simulated services need from cdpoc's roles is needed: take one away and the rollout fails,
naming it where AWS does; `up` puts it back.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cdpoc_testing import sandbox_client as client
from cdpoc_testing import wait_until_no_deployment_is_active
from typer.testing import CliRunner

from cdpoc import rollout
from cdpoc.cli import app
from cdpoc.sandbox.cicd import SIMULATION
from cdpoc.sandbox.iam_evaluation import (
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    Policy,
    Principal,
    Request,
    UnsupportedCondition,
    authorize,
    evaluate,
    may_assume,
)
from cdpoc.sandbox.instance_calls import SECRETS_VERDICT
from cdpoc.sandbox.server import Sandbox

ACCOUNT_ID = "123456789012"  # moto's default account
REPO_BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
BUCKET_OBJECT = "arn:aws:s3:::artifacts/pipe/Source/abc"


def policy(*statements: dict[str, Any]) -> Policy:
    return Policy("p", {"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


# --- the evaluator ------------------------------------------------------------------------------------


def test_nothing_allowed_is_an_implicit_deny_and_an_allow_allows() -> None:
    request = Request("s3:GetObject", BUCKET_OBJECT)
    assert evaluate([], request).outcome == IMPLICIT_DENY
    assert evaluate([policy(allow("s3:PutObject"))], request).outcome == IMPLICIT_DENY
    assert evaluate([policy(allow("s3:GetObject", "arn:aws:s3:::artifacts/*"))], request).allowed


def test_an_explicit_deny_wins_over_any_allow_in_any_policy() -> None:
    request = Request("s3:GetObject", BUCKET_OBJECT)
    granting = policy(allow("s3:*"))
    denying = Policy("other", {"Statement": {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}})
    decision = evaluate([granting, denying], request)
    assert decision.outcome == EXPLICIT_DENY and decision.policy == "other"
    assert "explicit deny" in decision.because(request)


def test_action_wildcards_ignore_case_resource_wildcards_do_not() -> None:
    grant = policy(allow("CodeCommit:Get*", "arn:aws:codecommit:us-east-1:1:app-?"))
    assert evaluate([grant], Request("codecommit:GetBranch", "arn:aws:codecommit:us-east-1:1:app-1")).allowed
    assert not evaluate([grant], Request("codecommit:GetBranch", "arn:aws:codecommit:us-east-1:1:app-12")).allowed
    assert not evaluate([grant], Request("codecommit:GetBranch", "arn:aws:codecommit:us-east-1:1:APP-1")).allowed
    assert not evaluate([grant], Request("codecommit:UploadArchive", "arn:aws:codecommit:us-east-1:1:app-1")).allowed


def test_not_action_and_not_resource_grant_everything_else() -> None:
    everything_but_iam = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate([everything_but_iam], Request("s3:GetObject", BUCKET_OBJECT)).allowed
    assert not evaluate([everything_but_iam], Request("iam:PassRole", "arn:aws:iam::1:role/r")).allowed
    all_but_secrets = policy({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secrets/*"})
    assert evaluate([all_but_secrets], Request("s3:GetObject", BUCKET_OBJECT)).allowed
    assert not evaluate([all_but_secrets], Request("s3:GetObject", "arn:aws:s3:::secrets/key")).allowed


def test_policy_variables_in_resources_and_conditions() -> None:
    own_prefix = policy(allow("s3:GetObject", "arn:aws:s3:::home/${aws:username}/*"))
    alice = {"aws:username": "alice"}
    assert evaluate([own_prefix], Request("s3:GetObject", "arn:aws:s3:::home/alice/f", alice)).allowed
    assert not evaluate([own_prefix], Request("s3:GetObject", "arn:aws:s3:::home/bob/f", alice)).allowed
    # a variable whose key the request lacks matches nothing; a default stands in for it
    assert not evaluate([own_prefix], Request("s3:GetObject", "arn:aws:s3:::home/alice/f")).allowed
    defaulted = policy(allow("s3:GetObject", "arn:aws:s3:::home/${aws:username, 'guest'}/*"))
    assert evaluate([defaulted], Request("s3:GetObject", "arn:aws:s3:::home/guest/f")).allowed
    # the escapes are literal characters, not wildcards
    literal_star = policy(allow("s3:GetObject", "arn:aws:s3:::b/${*}"))
    assert evaluate([literal_star], Request("s3:GetObject", "arn:aws:s3:::b/*")).allowed
    assert not evaluate([literal_star], Request("s3:GetObject", "arn:aws:s3:::b/x")).allowed


def test_a_policy_variable_in_a_condition_is_the_calling_instances_arn() -> None:
    """StringEquals aws:ARN = ${ec2:SourceInstanceARN}: an instance may act only on itself."""
    itself = policy(
        allow(
            ["ec2:CreateTags"],
            ["arn:aws:ec2:us-east-1:1:instance/*"],
            Condition={"StringEquals": {"aws:ARN": "${ec2:SourceInstanceARN}"}},
        )
    )
    me = "arn:aws:ec2:us-east-1:1:instance/i-1"
    other = "arn:aws:ec2:us-east-1:1:instance/i-2"
    assert evaluate([itself], Request("ec2:CreateTags", me, {"aws:ARN": me, "ec2:SourceInstanceARN": me})).allowed
    assert not evaluate(
        [itself], Request("ec2:CreateTags", other, {"aws:ARN": other, "ec2:SourceInstanceARN": me})
    ).allowed
    # not called from an instance: the key is absent and StringEquals is false
    assert not evaluate([itself], Request("ec2:CreateTags", me, {"aws:ARN": me})).allowed


def test_cdpoc_pass_role_condition_and_absent_keys_per_operator() -> None:
    """PassInstanceRole: StringEquals iam:PassedToService; absent keys: false, except negated operators and
    IfExists (AWS's documented rule)."""
    role = "arn:aws:iam::1:role/s-instance"
    pass_role = policy(
        allow("iam:PassRole", role, Condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}})
    )
    assert evaluate([pass_role], Request("iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"})).allowed
    assert not evaluate(
        [pass_role], Request("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
    ).allowed
    assert not evaluate([pass_role], Request("iam:PassRole", role)).allowed
    for operator, absent_holds in (
        ("StringNotEquals", True),
        ("StringLikeIfExists", True),
        ("StringLike", False),
        ("ArnNotLike", True),
    ):
        statement = allow("s3:GetObject", Condition={operator: {"aws:SourceArn": "arn:aws:x"}})
        assert evaluate([policy(statement)], Request("s3:GetObject", BUCKET_OBJECT)).allowed is absent_holds, operator
    must_be_absent = policy(allow("s3:GetObject", Condition={"Null": {"aws:SourceArn": "true"}}))
    assert evaluate([must_be_absent], Request("s3:GetObject", BUCKET_OBJECT)).allowed
    assert not evaluate([must_be_absent], Request("s3:GetObject", BUCKET_OBJECT, {"aws:SourceArn": "a"})).allowed


def test_set_operators_and_an_unknown_operator_is_refused_not_guessed() -> None:
    tags = policy(allow("ec2:CreateTags", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}))
    assert evaluate([tags], Request("ec2:CreateTags", "*", {"aws:TagKeys": ["a"]})).allowed
    assert not evaluate([tags], Request("ec2:CreateTags", "*", {"aws:TagKeys": ["a", "c"]})).allowed
    weird = policy(allow("s3:GetObject", Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))
    with pytest.raises(UnsupportedCondition):
        evaluate([weird], Request("s3:GetObject", BUCKET_OBJECT, {"aws:CurrentTime": "2026-01-01T00:00:00Z"}))


def test_a_permissions_boundary_must_allow_too() -> None:
    request = Request("s3:GetObject", BUCKET_OBJECT)
    boundary = policy(allow("s3:PutObject"))
    verdict = authorize(Principal("arn:aws:iam::1:role/r", (policy(allow("s3:*")),), boundary), request)
    assert not verdict.allowed and "no permissions boundary allows the s3:GetObject action" in verdict.reason()
    assert authorize(
        Principal("arn:aws:iam::1:role/r", (policy(allow("s3:*")),), policy(allow("s3:Get*"))), request
    ).allowed


def test_trust_policies_name_the_service_that_may_assume_the_role() -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": ["codepipeline.amazonaws.com"]}, "Action": "sts:AssumeRole"}
        ],
    }
    assert may_assume(trust, "codepipeline.amazonaws.com")
    assert not may_assume(trust, "codedeploy.amazonaws.com")
    assert not may_assume(json.dumps({"Statement": []}), "codepipeline.amazonaws.com")
    denied = {"Statement": [*trust["Statement"], {"Effect": "Deny", "Principal": "*", "Action": "sts:*"}]}
    assert not may_assume(denied, "codepipeline.amazonaws.com")


def test_a_confused_deputy_condition_holds_only_for_the_source_the_service_sends() -> None:
    """aws:SourceAccount / aws:SourceArn are what the service sends when it assumes the role on a resource's
    behalf; a service that sends none (EC2 for an instance profile) does not satisfy a condition on them."""
    group = "arn:aws:codedeploy:us-east-1:111122223333:deploymentgroup:app/app-fleet"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "codedeploy.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": "111122223333"},
                    "ArnLike": {"aws:SourceArn": group},
                },
            }
        ],
    }
    mine = {"aws:SourceAccount": "111122223333", "aws:SourceArn": group}
    assert may_assume(trust, "codedeploy.amazonaws.com", source=mine)
    other_group = {**mine, "aws:SourceArn": group.replace("app-fleet", "other")}
    assert not may_assume(trust, "codedeploy.amazonaws.com", source=other_group)
    assert not may_assume(trust, "codedeploy.amazonaws.com", source={**mine, "aws:SourceAccount": "444455556666"})
    assert not may_assume(trust, "codedeploy.amazonaws.com")  # nothing sent


# --- end to end: every needed permission of cdpoc's roles --------------------------------------------

STACK = "iame2e"
REPOSITORY = "iame2e-app"
VERSIONS = itertools.count(1)


def cdpoc(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, ...], Path]]:
    """One stack for the module, up, with a first revision deployed (so later failures roll back to it)."""
    directory = tmp_path_factory.mktemp("iam")
    config = directory / "cdpoc.yaml"
    config.write_text(yaml.safe_dump({"pipeline": {"repository": REPOSITORY}}))
    bundle = directory / "bundle"
    shutil.copytree(REPO_BUNDLE, bundle, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    SIMULATION.step_seconds = 0.02
    with Sandbox() as server:
        base = ("--config", str(config), "--endpoint-url", server.endpoint, "--name", STACK)
        code, out = cdpoc(*base, "up")
        assert code == 0, out
        code, out = push(base, bundle)
        assert code == 0, out
        yield base, bundle
    SIMULATION.reset()


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollout, "POLL_SECONDS", 0.05)


def push(base: tuple[str, ...], bundle: Path, timeout: str = "60") -> tuple[int, str]:
    (bundle / "web" / "index.html").write_text(f"<html>version {next(VERSIONS)}</html>\n")
    return cdpoc(*base, "push-app", "--bundle", str(bundle), "--wait", "--timeout", timeout)


def inline(base: tuple[str, ...], role: str) -> tuple[str, dict[str, Any]]:
    name = f"{STACK}-{role}"
    policy_name = f"{name}-access"
    return policy_name, client(base, "iam").get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]


def put_inline(base: tuple[str, ...], role: str, document: dict[str, Any]) -> None:
    name = f"{STACK}-{role}"
    client(base, "iam").put_role_policy(RoleName=name, PolicyName=f"{name}-access", PolicyDocument=json.dumps(document))


def without(document: dict[str, Any], action: str) -> dict[str, Any]:
    """The policy with one action taken out of every statement (statements left empty are dropped)."""
    statements = []
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        kept = [a for a in actions if a != action]
        if kept:
            statements.append({**statement, "Action": kept})
    assert sum(len(s["Action"]) for s in statements) < sum(
        len(s["Action"]) if isinstance(s["Action"], list) else 1 for s in document["Statement"]
    ), f"{action} is not in the policy"
    return {**document, "Statement": statements}


def denying(document: dict[str, Any], action: str) -> dict[str, Any]:
    """The policy plus an explicit Deny of one action: how to take a permission an AWS-managed policy grants."""
    deny = {"Sid": "TakenAway", "Effect": "Deny", "Action": action, "Resource": "*"}
    return {**document, "Statement": [*document["Statement"], deny]}


def settle(base: tuple[str, ...]) -> None:
    """Until the failed deployment's auto-rollback has ended too: the next push would be refused before."""
    wait_until_no_deployment_is_active(base, STACK, f"{STACK}-fleet")


# (role, action taken from its inline policy, what push-app --wait must show)
REMOVED = [
    ("pipeline", "codecommit:GetBranch", "is not authorized to perform: codecommit:GetBranch"),
    ("pipeline", "codecommit:GetCommit", "is not authorized to perform: codecommit:GetCommit"),
    ("pipeline", "codecommit:UploadArchive", "is not authorized to perform: codecommit:UploadArchive"),
    (
        "pipeline",
        "codecommit:GetUploadArchiveStatus",
        "is not authorized to perform: codecommit:GetUploadArchiveStatus",
    ),
    ("pipeline", "s3:PutObject", "is not authorized to perform: s3:PutObject"),
    ("pipeline", "codedeploy:GetApplication", "is not authorized to perform: codedeploy:GetApplication"),
    (
        "pipeline",
        "codedeploy:RegisterApplicationRevision",
        "is not authorized to perform: codedeploy:RegisterApplicationRevision",
    ),
    ("pipeline", "codedeploy:GetDeploymentConfig", "is not authorized to perform: codedeploy:GetDeploymentConfig"),
    ("pipeline", "codedeploy:CreateDeployment", "is not authorized to perform: codedeploy:CreateDeployment"),
    (
        "pipeline",
        "codedeploy:GetApplicationRevision",
        "is not authorized to perform: codedeploy:GetApplicationRevision",
    ),
    ("pipeline", "codedeploy:GetDeployment", "is not authorized to perform: codedeploy:GetDeployment"),
    ("instance", "s3:GetObject", "is not authorized to perform: s3:GetObject"),
]
# (role, action denied on top of AWSCodeDeployRole, the AWS service CodeDeploy's IAM_ROLE_PERMISSIONS names)
DENIED = [
    ("codedeploy", "autoscaling:DescribeAutoScalingGroups", "AmazonAutoScaling"),
    ("codedeploy", "ec2:DescribeInstances", "AmazonEC2"),
    ("codedeploy", "elasticloadbalancing:DescribeTargetGroups", "AmazonElasticLoadBalancing"),
    ("codedeploy", "elasticloadbalancing:DeregisterTargets", "AmazonElasticLoadBalancing"),
    ("codedeploy", "elasticloadbalancing:RegisterTargets", "AmazonElasticLoadBalancing"),
]


@pytest.mark.parametrize(("role", "action", "shown"), REMOVED, ids=[f"{r}-{a}" for r, a, _ in REMOVED])
def test_taking_one_permission_away_fails_the_rollout_naming_it(
    sandbox: tuple[tuple[str, ...], Path], role: str, action: str, shown: str
) -> None:
    base, bundle = sandbox
    _, original = inline(base, role)
    put_inline(base, role, without(original, action))
    try:
        code, out = push(base, bundle)
        assert code == 1, out
        assert shown in out, out
        assert f"assumed-role/{STACK}-{role}/" in out
        settle(base)
    finally:
        put_inline(base, role, original)


@pytest.mark.parametrize(("role", "action", "service"), DENIED, ids=[a for _, a, _ in DENIED])
def test_denying_what_the_managed_codedeploy_policy_grants_fails_the_deployment(
    sandbox: tuple[tuple[str, ...], Path], role: str, action: str, service: str
) -> None:
    base, bundle = sandbox
    _, original = inline(base, role)
    put_inline(base, role, denying(original, action))
    try:
        code, out = push(base, bundle)
        assert code == 1, out
        assert "IAM_ROLE_PERMISSIONS" in out and f"following AWS service: {service}" in out, out
        settle(base)
    finally:
        put_inline(base, role, original)


def test_a_pipeline_role_codepipeline_may_not_assume_fails_the_source(sandbox: tuple[tuple[str, ...], Path]) -> None:
    base, bundle = sandbox
    name = f"{STACK}-pipeline"
    original = client(base, "iam").get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    other = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    client(base, "iam").update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(other))
    try:
        code, out = push(base, bundle)
        assert code == 1, out
        assert "CodePipeline is not authorized to perform AssumeRole on role" in out, out
    finally:
        client(base, "iam").update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(original))


def test_without_start_pipeline_execution_the_rule_starts_nothing(sandbox: tuple[tuple[str, ...], Path]) -> None:
    """EventBridge reports the refusal only in the rule's FailedInvocations metric: no execution starts, and
    push-app's wait says what to check."""
    base, bundle = sandbox
    _, original = inline(base, "events")
    put_inline(base, "events", denying(original, "codepipeline:StartPipelineExecution"))
    try:
        code, out = push(base, bundle, timeout="2")
        assert code == 1, out
        assert "waiting for a pipeline execution of revision" in out, out
        assert "codepipeline:StartPipelineExecution" in out, out
    finally:
        put_inline(base, "events", original)


def test_up_restores_a_policy_that_lost_a_permission(sandbox: tuple[tuple[str, ...], Path]) -> None:
    base, bundle = sandbox
    _, original = inline(base, "pipeline")
    put_inline(base, "pipeline", without(original, "codecommit:GetBranch"))
    code, out = push(base, bundle)
    assert code == 1 and "codecommit:GetBranch" in out, out
    code, out = cdpoc(*base, "up")
    assert code == 0, out
    assert inline(base, "pipeline")[1] == original
    code, out = push(base, bundle)
    assert code == 0, out


# --- the instance role's own calls, and CodeDeploy completing its launch hook -----------------------------


def without_parameter(document: dict[str, Any], parameter: str) -> dict[str, Any]:
    """The policy with one parameter's ARN taken out of ReadOwnParameters: no AWS managed policy grants
    ssm:GetParameter beside it any more, so that is enough to refuse the read."""
    statements = []
    for statement in document["Statement"]:
        if statement.get("Sid") == "ReadOwnParameters":
            kept = [r for r in statement["Resource"] if not r.endswith(f":parameter/{STACK}/{parameter}")]
            assert len(kept) < len(statement["Resource"]), f"{parameter} is not in ReadOwnParameters"
            statement = {**statement, "Resource": kept} if kept else None
        if statement is not None:
            statements.append(statement)
    return {**document, "Statement": statements}


def latest_deployment(base: tuple[str, ...]) -> dict[str, Any]:
    codedeploy = client(base, "codedeploy")
    (newest, *_) = codedeploy.list_deployments(applicationName=STACK, deploymentGroupName=f"{STACK}-fleet")[
        "deployments"
    ]
    return dict(codedeploy.get_deployment(deploymentId=newest)["deploymentInfo"])


# (parameter the instance may not read, the hook that fails, what its log tail shows)
UNREADABLE = [
    ("mongodb/host", "AfterInstall", f"ERROR: cannot read SSM parameter /{STACK}/mongodb/host in us-east-1"),
    ("mongodb/app-password", "ValidateService", "ERROR: not healthy after 120s"),
]


@pytest.mark.parametrize(("parameter", "hook", "shown"), UNREADABLE, ids=[p for p, _, _ in UNREADABLE])
def test_an_instance_that_may_not_read_its_parameter_fails_the_hook_that_reads_it(
    sandbox: tuple[tuple[str, ...], Path], parameter: str, hook: str, shown: str
) -> None:
    """AfterInstall reads the MongoDB host (`aws ssm get-parameter`); the app reads its password when it starts,
    exits, and ValidateService gives up, its log ending with the app's AccessDeniedException (nothing answers
    on the instance meanwhile, as for any failed ValidateService)."""
    base, bundle = sandbox
    _, original = inline(base, "instance")
    put_inline(base, "instance", without_parameter(original, parameter))
    try:
        code, out = push(base, bundle)
        assert code == 1, out
        assert f"failed at {hook}" in out and shown in out, out
        assert "An error occurred (AccessDeniedException) when calling the GetParameter operation" in out, out
        assert f"assumed-role/{STACK}-instance/i-" in out and "ssm:GetParameter on resource: arn:aws:ssm:" in out
        settle(base)  # the auto-rollback fails the same way: the permission is still missing
    finally:
        put_inline(base, "instance", original)


def test_without_validate_service_the_deployment_succeeds_with_the_app_down(
    sandbox: tuple[tuple[str, ...], Path], tmp_path: Path
) -> None:
    """Nothing checks the app that exits at start (its role may not read its password): CodeDeploy reports
    success, as AWS would, and the instances answer nothing; the next good push repairs them."""
    from moto.ec2.models import ec2_backends

    from cdpoc.sandbox import health

    base, bundle = sandbox
    unchecked = tmp_path / "bundle"
    shutil.copytree(bundle, unchecked)
    appspec = yaml.safe_load((unchecked / "appspec.yml").read_text())
    del appspec["hooks"]["ValidateService"]
    (unchecked / "appspec.yml").write_text(yaml.safe_dump(appspec))
    _, original = inline(base, "instance")
    put_inline(base, "instance", without_parameter(original, "mongodb/app-password"))
    try:
        code, out = push(base, unchecked)
        deployed = latest_deployment(base)
    finally:
        put_inline(base, "instance", original)
    assert code == 0 and deployed["status"] == "Succeeded", out
    assert "unhealthy in the target group" in out, out
    group = client(base, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[f"{STACK}-app"])
    ec2 = ec2_backends[ACCOUNT_ID]["us-east-1"]
    for member in group["AutoScalingGroups"][0]["Instances"]:
        instance = ec2.get_instance_by_id(member["InstanceId"])
        assert health.answer(ACCOUNT_ID, "us-east-1", instance, "/health", SIMULATION.now()).refused
    code, out = push(base, bundle)
    assert code == 0, out


def test_a_mongodb_instance_that_may_not_read_its_passwords_never_becomes_ready(
    sandbox: tuple[tuple[str, ...], Path],
) -> None:
    """The MongoDB user data reads both passwords from SSM at boot with the instance role; refused, it gives up
    and the database the app is configured for never becomes ready (its /health: 503), also once the
    permission is back (user data runs once)."""
    from moto.ec2.models import ec2_backends

    from cdpoc.sandbox import health

    base, _ = sandbox
    ec2, ssm = client(base, "ec2"), client(base, "ssm")
    host = f"/{STACK}/mongodb/host"
    real_host = ssm.get_parameter(Name=host)["Parameter"]["Value"]
    # by its tags: another instance (one a test launched and terminated) may have held the same address
    running_mongodb = [
        {"Name": "tag:cdpoc:stack", "Values": [STACK]},
        {"Name": "tag:cdpoc:component", "Values": ["instance.mongodb"]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    (mongodb,) = [i for r in ec2.describe_instances(Filters=running_mongodb)["Reservations"] for i in r["Instances"]]
    assert mongodb["PrivateIpAddress"] == real_host
    user_data = ec2.describe_instance_attribute(InstanceId=mongodb["InstanceId"], Attribute="userData")["UserData"]
    script = base64.b64decode(user_data["Value"]).decode()
    assert f"/{STACK}/mongodb/admin-password" in script and f"/{STACK}/mongodb/app-password" in script
    group = client(base, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[f"{STACK}-app"])
    app_instance = ec2_backends[ACCOUNT_ID]["us-east-1"].get_instance_by_id(
        group["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    )

    def ready() -> bool:
        return health.database_ready(ACCOUNT_ID, "us-east-1", app_instance, SIMULATION.now())

    assert ready()  # the stack's own MongoDB read its passwords at boot
    assert mongodb["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/cdpoc/{STACK}/{STACK}-mongodb")

    # the MongoDB host reads with its own profile's role: without its admin password's ARN, it may not
    _, original = inline(base, "mongodb")
    put_inline(base, "mongodb", without_parameter(original, "mongodb/admin-password"))
    replacement = ""
    try:
        replacement = ec2.run_instances(
            ImageId=mongodb["ImageId"],
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            SubnetId=mongodb["SubnetId"],
            UserData=script,
            IamInstanceProfile={"Arn": mongodb["IamInstanceProfile"]["Arn"]},
        )["Instances"][0]["InstanceId"]
        new_instance = ec2_backends[ACCOUNT_ID]["us-east-1"].get_instance_by_id(replacement)
        ssm.put_parameter(Name=host, Value=new_instance.private_ip, Type="String", Overwrite=True)
        # its user data reads the passwords once boot and install are over (asking for the database takes it then)
        deadline = time.monotonic() + 60
        while SECRETS_VERDICT not in new_instance.__dict__ and time.monotonic() < deadline:
            assert not ready()
            time.sleep(SIMULATION.seconds("mongodb") / 4)
        assert SECRETS_VERDICT in new_instance.__dict__, "the replacement's user data never got to its SSM reads"
        refused = new_instance.__dict__[SECRETS_VERDICT]
        assert f"assumed-role/{STACK}-mongodb/{replacement}" in refused and "mongodb/admin-password" in refused
        assert not ready()  # with its passwords it would be ready by now
        put_inline(base, "mongodb", original)
        assert not ready()  # it gave up for good
    finally:
        put_inline(base, "mongodb", original)
        ssm.put_parameter(Name=host, Value=real_host, Type="String", Overwrite=True)
        if replacement:
            ec2.terminate_instances(InstanceIds=[replacement])
    assert ready()


def test_an_app_instance_may_not_read_the_mongodb_admin_password_and_the_mongodb_host_may(
    sandbox: tuple[tuple[str, ...], Path],
) -> None:
    """Each host's role reads only its own parameters: the app hosts' role (the launch template's profile) is
    refused the admin password; the MongoDB host (its own profile) reads it, and neither reads another stack's."""
    from cdpoc.sandbox import service_roles

    base, _ = sandbox
    ec2 = client(base, "ec2")
    group = client(base, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[f"{STACK}-app"])
    app_instance = group["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    running_mongodb = [
        {"Name": "tag:cdpoc:component", "Values": ["instance.mongodb"]},
        {"Name": "tag:cdpoc:stack", "Values": [STACK]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    (mongodb,) = [
        i["InstanceId"] for r in ec2.describe_instances(Filters=running_mongodb)["Reservations"] for i in r["Instances"]
    ]

    def refused(instance_id: str, parameter: str) -> str | None:
        return service_roles.instance_parameter_denial(ACCOUNT_ID, "us-east-1", instance_id, f"/{STACK}/{parameter}")

    admin = refused(app_instance, "mongodb/admin-password")
    assert admin is not None and f"assumed-role/{STACK}-instance/{app_instance}" in admin
    assert "because no identity-based policy allows the ssm:GetParameter action" in admin
    assert refused(app_instance, "mongodb/host") is None and refused(app_instance, "mongodb/app-password") is None
    assert refused(mongodb, "mongodb/admin-password") is None and refused(mongodb, "mongodb/app-password") is None
    assert refused(mongodb, "mongodb/host") is not None  # the MongoDB host has no use for its own address
    other_stack = service_roles.instance_parameter_denial(ACCOUNT_ID, "us-east-1", mongodb, "/other/mongodb/x")
    assert other_stack is not None


def test_a_codedeploy_role_that_trusts_another_deployment_group_fails_the_deployment(
    sandbox: tuple[tuple[str, ...], Path],
) -> None:
    """The service role's trust holds CodeDeploy to this stack's application's deployment groups (aws:SourceArn,
    which CodeDeploy sends when it assumes the role): a role trusting another application's is one CodeDeploy may
    not assume here."""
    base, bundle = sandbox
    name = f"{STACK}-codedeploy"
    original = client(base, "iam").get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    [statement] = original["Statement"]
    other_app = statement["Condition"]["ArnLikeIfExists"]["aws:SourceArn"].replace(f":{STACK}/", ":someone-elses/")
    elsewhere = {
        **statement,
        "Condition": {**statement["Condition"], "ArnLikeIfExists": {"aws:SourceArn": other_app}},
    }
    client(base, "iam").update_assume_role_policy(
        RoleName=name, PolicyDocument=json.dumps({**original, "Statement": [elsewhere]})
    )
    try:
        code, out = push(base, bundle)
        assert code == 1, out
        assert "CodeDeploy does not have the permissions required to assume the role" in out, out
        settle(base)
    finally:
        client(base, "iam").update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(original))


def test_an_events_role_that_trusts_another_account_starts_nothing(sandbox: tuple[tuple[str, ...], Path]) -> None:
    """EventBridge assumes the target's role on the rule's behalf (aws:SourceAccount, aws:SourceArn): a trust
    held to another account lets it start nothing."""
    base, bundle = sandbox
    name = f"{STACK}-events"
    original = client(base, "iam").get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    [statement] = original["Statement"]
    assert statement["Condition"]["ArnLikeIfExists"]["aws:SourceArn"].endswith(f":rule/{STACK}-source-changes")
    other_account = {"aws:SourceAccount": "1" * 12}
    foreign = {**statement, "Condition": {**statement["Condition"], "StringEqualsIfExists": other_account}}
    client(base, "iam").update_assume_role_policy(
        RoleName=name, PolicyDocument=json.dumps({**original, "Statement": [foreign]})
    )
    try:
        code, out = push(base, bundle, timeout="2")
        assert code == 1, out
        assert "waiting for a pipeline execution of revision" in out, out
    finally:
        client(base, "iam").update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(original))


def test_without_complete_lifecycle_action_a_new_instance_waits_out_the_heartbeat_and_is_abandoned(
    sandbox: tuple[tuple[str, ...], Path],
) -> None:
    """CodeDeploy's launch deployment succeeds, but its service role may not complete the launch hook: the
    instance stays Pending:Wait until the hook's heartbeat timeout, then is terminated (ABANDON) and replaced."""
    base, _ = sandbox
    autoscaling, ec2 = client(base, "autoscaling"), client(base, "ec2")
    asg = f"{STACK}-app"

    def members() -> dict[str, str]:
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
        return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}

    (hook,) = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=asg)["LifecycleHooks"]
    heartbeat = SIMULATION.timing.scaled(hook["HeartbeatTimeout"])
    before = set(members())
    _, original = inline(base, "codedeploy")
    put_inline(base, "codedeploy", denying(original, "autoscaling:CompleteLifecycleAction"))
    try:
        autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=len(before) + 1)
        (new,) = set(members()) - before
        launch = latest_deployment(base)
        assert launch["creator"] == "autoscaling"
        deadline = time.monotonic() + 60
        while latest_deployment(base)["status"] != "Succeeded" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client(base, "codedeploy").get_deployment(deploymentId=launch["deploymentId"])["deploymentInfo"][
            "status"
        ] == ("Succeeded")
        assert members()[new] == "Pending:Wait"  # moto has no hooks; with the permission: InService by now
        time.sleep(heartbeat)
        while new in members() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert new not in members()
        (state,) = [
            i["State"]["Name"]
            for r in ec2.describe_instances(InstanceIds=[new])["Reservations"]
            for i in r["Instances"]
        ]
        assert state == "terminated"
        assert len(members()) == len(before) + 1  # a replacement, held the same way
    finally:
        put_inline(base, "codedeploy", original)
        autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=len(before))
        settled = time.monotonic() + 60
        while set(members().values()) != {"InService"} and time.monotonic() < settled:
            time.sleep(0.05)
        settle(base)
    assert set(members().values()) == {"InService"} and len(members()) == len(before)
