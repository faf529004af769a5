"""IAM against moto: roles and the instance profile, least privilege, idempotency, teardown, IAM retries."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
import pytest

from cdpoc.apply import apply_plan
from cdpoc.aws.account import account_id, resolve_zones
from cdpoc.aws.errors import aws_errors
from cdpoc.aws.iam import normalize_policy, retry_iam_propagation, same_policy
from cdpoc.aws.run import AwsRun, Waits
from cdpoc.context import Context
from cdpoc.errors import ConflictError, WaitTimeout
from cdpoc.graph import Graph
from cdpoc.model import Action, Observed
from cdpoc.planner import make_plan
from cdpoc.spec import spec_of
from cdpoc.stack import iam, storage
from cdpoc.stack.names import StackNames
from cdpoc.stack.specs.iam import RoleSpec
from cdpoc.sweeper import find_everything, sweep

PATH = "/cdpoc/t1/"
ROLES = ("t1-instance", "t1-mongodb", "t1-codedeploy", "t1-pipeline", "t1-events")
KEYS = {
    "role.instance",
    "role.mongodb",
    "role.codedeploy",
    "role.pipeline",
    "role.events",
    "profile.instance",
    "profile.mongodb",
}


@pytest.fixture
def ctx(aws: None, make_context: Callable[..., Context]) -> Context:
    return make_context()


def stack_names(ctx: Context) -> StackNames:
    zones = resolve_zones(ctx.run, ctx.settings.availability_zones)
    return StackNames(ctx.settings, zones, account_id(ctx.run))


def iam_graph(ctx: Context) -> Graph:
    return Graph.of(iam.declare(stack_names(ctx)))


def up(ctx: Context, graph: Graph) -> dict[str, Any]:
    return apply_plan(ctx.run, make_plan(ctx.run, graph, ctx.handlers), ctx.handlers)


def client() -> Any:
    return boto3.client("iam", region_name="us-east-1")


def inline_policy(role: str) -> dict[str, Any]:
    iam_client = client()
    [name] = iam_client.list_role_policies(RoleName=role)["PolicyNames"]
    return dict(iam_client.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])


def statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    [found] = [s for s in policy["Statement"] if s.get("Sid") == sid]
    return found


def record(ctx: Context, service: str, operation: str) -> list[dict[str, Any]]:
    """The parameters of every `operation` call the run's client makes (as sent, after validation)."""
    calls: list[dict[str, Any]] = []
    ctx.run.client(service).meta.events.register(
        f"provide-client-params.{service}.{operation}", lambda params, **_: calls.append(dict(params))
    )
    return calls


def test_up_creates_the_roles_and_profile_under_the_stack_path_tagged_in_the_create_calls(ctx: Context) -> None:
    role_calls = record(ctx, "iam", "CreateRole")
    profile_calls = record(ctx, "iam", "CreateInstanceProfile")
    results = up(ctx, iam_graph(ctx))
    iam_client = client()

    roles = {r["RoleName"]: r for r in iam_client.list_roles(PathPrefix=PATH)["Roles"]}
    assert set(roles) == set(ROLES)
    services = {
        name: r["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"] for name, r in roles.items()
    }
    assert services == {
        "t1-instance": "ec2.amazonaws.com",
        "t1-mongodb": "ec2.amazonaws.com",
        "t1-codedeploy": "codedeploy.amazonaws.com",
        "t1-pipeline": "codepipeline.amazonaws.com",
        "t1-events": "events.amazonaws.com",
    }
    profiles = {
        p["InstanceProfileName"]: p for p in iam_client.list_instance_profiles(PathPrefix=PATH)["InstanceProfiles"]
    }
    assert {name: [r["RoleName"] for r in p["Roles"]] for name, p in profiles.items()} == {
        "t1-instance": ["t1-instance"],
        "t1-mongodb": ["t1-mongodb"],
    }
    profile = profiles["t1-instance"]
    assert results["role.instance"].id == "t1-instance"
    assert results["role.instance"].attrs["arn"] == roles["t1-instance"]["Arn"]
    assert results["profile.instance"].id == "t1-instance"
    assert results["profile.instance"].attrs["arn"] == profile["Arn"]

    def attached(role: str) -> set[str]:
        return {p["PolicyName"] for p in iam_client.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}

    assert attached("t1-codedeploy") == {"AWSCodeDeployRole"}
    assert attached("t1-instance") == attached("t1-mongodb") == attached("t1-pipeline") == attached("t1-events")
    assert attached("t1-instance") == set()

    components = KEYS
    assert len(role_calls) == 5 and len(profile_calls) == 2
    for call in [*role_calls, *profile_calls]:
        tags = {t["Key"]: t["Value"] for t in call["Tags"]}
        assert tags["cdpoc:stack"] == "t1" and tags["cdpoc:region"] == "us-east-1"
        assert tags["cdpoc:component"] in components
        assert call["Path"] == PATH


def test_policies_grant_what_is_needed_scoped_to_this_stack(ctx: Context) -> None:
    up(ctx, iam_graph(ctx))
    policy = inline_policy("t1-instance")
    account = account_id(ctx.run)
    artifacts = f"t1-{account}-us-east-1-artifacts"
    uploads = f"t1-{account}-us-east-1-uploads"

    read = statement(policy, "ReadRevisions")
    assert set(read["Resource"]) == {f"arn:aws:s3:::{artifacts}/*", "arn:aws:s3:::aws-codedeploy-us-east-1/*"}
    assert set(read["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    write = statement(policy, "ReadWriteUploads")
    assert set(write["Resource"]) == {f"arn:aws:s3:::{uploads}/books/*", f"arn:aws:s3:::{uploads}/files/images/*"}
    assert set(write["Action"]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    logs = statement(policy, "WriteLogs")
    assert f"arn:aws:logs:us-east-1:{account}:log-group:/cdpoc/t1:*" in logs["Resource"]
    params = statement(policy, "ReadOwnParameters")
    assert params["Action"] == ["ssm:GetParameter"]
    # the app hosts read the MongoDB host (AfterInstall) and the app's password, never the admin password
    assert params["Resource"] == [
        f"arn:aws:ssm:us-east-1:{account}:parameter/t1/mongodb/host",
        f"arn:aws:ssm:us-east-1:{account}:parameter/t1/mongodb/app-password",
    ]
    assert "TagItself" not in {s.get("Sid") for s in policy["Statement"]}
    session = statement(policy, "SessionManager")
    assert session["Resource"] == ["*"] and set(session["Action"]) == set(iam.SESSION_MANAGER_ACTIONS)

    mongodb = inline_policy("t1-mongodb")
    assert {s["Sid"] for s in mongodb["Statement"]} == {"ReadOwnParameters", "SessionManager"}
    assert statement(mongodb, "ReadOwnParameters")["Resource"] == [
        f"arn:aws:ssm:us-east-1:{account}:parameter/t1/mongodb/admin-password",
        f"arn:aws:ssm:us-east-1:{account}:parameter/t1/mongodb/app-password",
    ]

    codedeploy = inline_policy("t1-codedeploy")
    assert {a for s in codedeploy["Statement"] for a in s["Action"]} == {
        "ec2:RunInstances",
        "ec2:CreateTags",
        "iam:PassRole",
    }
    # only the app hosts' role is passed (to the instances CodeDeploy's Auto Scaling launches get)
    assert statement(codedeploy, "PassInstanceRole")["Resource"] == [
        f"arn:aws:iam::{account}:role/cdpoc/t1/t1-instance"
    ]

    pipeline = inline_policy("t1-pipeline")
    assert statement(pipeline, "SourceFromRepository")["Resource"] == [
        f"arn:aws:codecommit:us-east-1:{account}:t1-s3upload"
    ]
    assert statement(pipeline, "DeployToGroup")["Resource"] == [
        f"arn:aws:codedeploy:us-east-1:{account}:deploymentgroup:t1/t1-fleet"
    ]
    assert statement(pipeline, "ReadDeploymentConfig")["Resource"] == [
        f"arn:aws:codedeploy:us-east-1:{account}:deploymentconfig:CodeDeployDefault.OneAtATime"
    ]

    events = inline_policy("t1-events")
    assert events["Statement"] == [
        {
            "Sid": "StartPipeline",
            "Effect": "Allow",
            "Action": ["codepipeline:StartPipelineExecution"],
            "Resource": [f"arn:aws:codepipeline:us-east-1:{account}:t1-pipeline"],
        }
    ]


def test_service_roles_trust_only_this_account_and_this_stacks_resources(ctx: Context) -> None:
    """Confused-deputy conditions: a service may assume the role only on this account's behalf, and where it
    sends aws:SourceArn only for this stack's deployment group or rule; the instance roles trust EC2 alone."""
    up(ctx, iam_graph(ctx))
    account = account_id(ctx.run)
    roles = {r["RoleName"]: r for r in client().list_roles(PathPrefix=PATH)["Roles"]}

    def condition(role: str) -> dict[str, Any] | None:
        [only] = roles[role]["AssumeRolePolicyDocument"]["Statement"]
        return only.get("Condition")

    same_account = {"StringEqualsIfExists": {"aws:SourceAccount": account}}
    assert condition("t1-codedeploy") == {
        **same_account,
        "ArnLikeIfExists": {"aws:SourceArn": f"arn:aws:codedeploy:us-east-1:{account}:deploymentgroup:t1/*"},
    }
    assert condition("t1-events") == {
        **same_account,
        "ArnLikeIfExists": {"aws:SourceArn": f"arn:aws:events:us-east-1:{account}:rule/t1-source-changes"},
    }
    assert condition("t1-pipeline") == same_account
    assert condition("t1-instance") is None and condition("t1-mongodb") is None


def test_second_up_makes_no_mutating_call_and_plan_is_clean(ctx: Context) -> None:
    graph = iam_graph(ctx)
    up(ctx, graph)
    before = len(ctx.clients.mutating_calls())

    plan = make_plan(ctx.run, graph, ctx.handlers)

    assert [s.resource.key for s in plan.steps if s.action is not Action.NONE] == []
    apply_plan(ctx.run, plan, ctx.handlers)
    assert ctx.clients.mutating_calls()[before:] == []


def test_drifted_policies_are_put_back(ctx: Context) -> None:
    graph = iam_graph(ctx)
    up(ctx, graph)
    iam_client = client()
    iam_client.attach_role_policy(
        RoleName="t1-instance", PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    )
    iam_client.put_role_policy(
        RoleName="t1-events",
        PolicyName="t1-events-access",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "codepipeline:*", "Resource": "*"}],
            }
        ),
    )
    iam_client.put_role_policy(
        RoleName="t1-pipeline", PolicyName="extra", PolicyDocument=json.dumps(inline_policy("t1-events"))
    )

    plan = make_plan(ctx.run, graph, ctx.handlers)
    changed = {s.resource.key: [c.text for c in s.changes] for s in plan.by_action(Action.UPDATE)}
    start_pipeline = (
        '{"Action":["codepipeline:StartPipelineExecution"],"Effect":"Allow",'
        '"Resource":["arn:aws:codepipeline:us-east-1:123456789012:t1-pipeline"],"Sid":"StartPipeline"}'
    )
    everything = '{"Action":["codepipeline:*"],"Effect":"Allow","Resource":["*"]}'
    assert changed == {
        "role.instance": ["managed_policies[arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore]: attached → (none)"],
        # A stale inline policy (a copy of the drifted one): the whole of it is shown going away.
        "role.pipeline": [f'inline_policies[extra]: {{"Statement":[{everything}],"Version":"2012-10-17"}} → (none)'],
        # A changed one: the statements only the old one has → those only the new one has.
        "role.events": [f"inline_policies[t1-events-access]: statements [{everything}] → [{start_pipeline}]"],
    }
    [extra] = {s.resource.key: s for s in plan.steps}["role.pipeline"].changes
    assert (extra.field, extra.new) == ("inline_policies[extra]", None)
    apply_plan(ctx.run, plan, ctx.handlers)

    assert make_plan(ctx.run, graph, ctx.handlers).has_work is False
    assert statement(inline_policy("t1-events"), "StartPipeline")["Action"] == ["codepipeline:StartPipelineExecution"]
    assert iam_client.list_attached_role_policies(RoleName="t1-instance")["AttachedPolicies"] == []


MANAGED_BEFORE = (
    "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)


def test_up_converges_the_one_instance_role_an_earlier_version_made(ctx: Context) -> None:
    """Earlier versions gave every host one instance role with two AWS managed policies, an inline policy that
    read every parameter of the stack and tagged the instance itself, and service roles without conditions.
    `up` shows and makes the difference: the managed policies detached, the inline policy narrowed, the trust
    policies conditioned, the MongoDB role and profile created; a second plan is clean."""
    graph = iam_graph(ctx)
    up(ctx, graph)
    iam_client = client()
    account = account_id(ctx.run)
    for arn in MANAGED_BEFORE:
        iam_client.attach_role_policy(RoleName="t1-instance", PolicyArn=arn)
    old_inline = iam.document(
        iam.allow(
            "ReadOwnParameters",
            ["ssm:GetParameter", "ssm:GetParameters"],
            [f"arn:aws:ssm:us-east-1:{account}:parameter/t1/*"],
        ),
        iam.allow(
            "TagItself",
            ["ec2:CreateTags"],
            [f"arn:aws:ec2:us-east-1:{account}:instance/*"],
            StringEquals={"aws:ARN": "${ec2:SourceInstanceARN}"},
        ),
    )
    iam_client.put_role_policy(
        RoleName="t1-instance", PolicyName="t1-instance-access", PolicyDocument=json.dumps(old_inline)
    )
    iam_client.update_assume_role_policy(
        RoleName="t1-codedeploy", PolicyDocument=json.dumps(iam.trust("codedeploy.amazonaws.com"))
    )
    iam_client.remove_role_from_instance_profile(InstanceProfileName="t1-mongodb", RoleName="t1-mongodb")
    iam_client.delete_instance_profile(InstanceProfileName="t1-mongodb")
    iam_client.delete_role_policy(RoleName="t1-mongodb", PolicyName="t1-mongodb-access")
    iam_client.delete_role(RoleName="t1-mongodb")

    plan = make_plan(ctx.run, graph, ctx.handlers)

    assert {s.resource.key for s in plan.by_action(Action.CREATE)} == {"role.mongodb", "profile.mongodb"}
    changed = {s.resource.key: s.changes for s in plan.by_action(Action.UPDATE)}
    assert set(changed) == {"role.instance", "role.codedeploy"}
    texts = [c.text for c in changed["role.instance"]]
    for arn in MANAGED_BEFORE:
        assert f"managed_policies[{arn}]: attached → (none)" in texts
    [narrowed] = [c for c in changed["role.instance"] if c.field == "inline_policies[t1-instance-access]"]
    assert '"Sid":"TagItself"' in narrowed.text and '"Sid":"SessionManager"' in narrowed.text
    assert [c.field for c in changed["role.codedeploy"]] == ["assume_role_policy"]

    apply_plan(ctx.run, plan, ctx.handlers)

    assert iam_client.list_attached_role_policies(RoleName="t1-instance")["AttachedPolicies"] == []
    assert "TagItself" not in {s.get("Sid") for s in inline_policy("t1-instance")["Statement"]}
    assert make_plan(ctx.run, graph, ctx.handlers).has_work is False


def test_a_same_named_role_of_someone_else_is_refused(ctx: Context) -> None:
    graph = iam_graph(ctx)
    client().create_role(
        RoleName="t1-events",
        AssumeRolePolicyDocument=json.dumps(iam.trust("events.amazonaws.com")),
        Tags=[{"Key": "owner", "Value": "someone"}],
    )
    handler = ctx.handlers["iam_role"]

    # Outside the stack's path the planner does not see it; the create call runs into it and refuses.
    with pytest.raises(ConflictError, match="t1-events already exists and belongs to nothing cdpoc manages"):
        handler.create(ctx.run, graph["role.events"], {})
    assert client().list_role_policies(RoleName="t1-events")["PolicyNames"] == []


def test_a_role_left_by_an_interrupted_run_is_adopted(ctx: Context) -> None:
    graph = iam_graph(ctx)
    res = graph["role.pipeline"]
    client().create_role(
        RoleName=res.name,
        Path=PATH,
        AssumeRolePolicyDocument=spec_of(res, RoleSpec).assume_role_policy,
        Tags=ctx.run.tags(res.key, res.name),
    )

    created = ctx.handlers["iam_role"].create(ctx.run, res, {})

    assert created.id == "t1-pipeline"
    assert same_policy(inline_policy("t1-pipeline"), spec_of(res, RoleSpec).inline_policies["t1-pipeline-access"])
    # Made before roles carried their region (or by the interrupted run): it is this region's from now on.
    tags = {t["Key"]: t["Value"] for t in client().list_role_tags(RoleName="t1-pipeline")["Tags"]}
    assert tags["cdpoc:region"] == "us-east-1"


def test_the_same_stack_name_in_another_region_never_takes_or_deletes_these_roles(
    ctx: Context, make_context: Callable[..., Context]
) -> None:
    """IAM is global: a stack `t1` in us-west-2 sees us-east-1's `t1` roles as another stack's."""
    up(ctx, iam_graph(ctx))
    west = make_context(region="us-west-2")
    graph = iam_graph(west)

    plan = make_plan(west.run, graph, west.handlers)
    iam_keys = KEYS
    conflicts = {s.resource.key: s.changes for s in plan.steps if s.resource.key in iam_keys}
    assert set(conflicts) == iam_keys
    for changes in conflicts.values():
        assert [c.foreign for c in changes] == [True]
        assert "belongs to stack t1 in us-east-1" in changes[0].text
    assert find_everything(west.run, graph, west.handlers) == {}  # so `down` there leaves them alone
    with pytest.raises(ConflictError, match=r"belongs to stack t1 in us-east-1 \(IAM names are global\)"):
        west.handlers["iam_role"].create(west.run, graph["role.events"], {})
    assert len(client().list_roles(PathPrefix=PATH)["Roles"]) == len(ROLES)


def test_down_removes_profile_policies_and_roles_and_a_second_down_is_fine(ctx: Context) -> None:
    graph = iam_graph(ctx)
    up(ctx, graph)
    deleted = sweep(ctx.run, graph, ctx.handlers, find_everything(ctx.run, graph, ctx.handlers))

    assert set(deleted) == KEYS
    assert client().list_roles(PathPrefix=PATH)["Roles"] == []
    assert client().list_instance_profiles(PathPrefix=PATH)["InstanceProfiles"] == []
    assert find_everything(ctx.run, graph, ctx.handlers) == {}
    for key in ("role.instance", "profile.instance"):
        res = graph[key]
        ctx.handlers[res.kind].delete(ctx.run, Observed(key, res.kind, res.name))  # NotFound is success


def test_deleting_a_role_still_in_a_profile_detaches_it_first(ctx: Context) -> None:
    graph = iam_graph(ctx)
    results = up(ctx, graph)

    # The role alone (as when the profile's deletion was interrupted): it must leave the profile first.
    ctx.handlers["iam_role"].delete(ctx.run, results["role.instance"])

    assert client().get_instance_profile(InstanceProfileName="t1-instance")["InstanceProfile"]["Roles"] == []
    assert "t1-instance" not in {r["RoleName"] for r in client().list_roles(PathPrefix=PATH)["Roles"]}


def test_every_declared_policy_is_least_privilege(make_context: Callable[..., Context]) -> None:
    settings = make_context().settings
    names = StackNames(settings, ("us-east-1a", "us-east-1b"), "123456789012")
    declared = [*iam.declare(names), *storage.declare(names)]

    assert iam.least_privilege_problems(declared) == []
    # 5 trust + 5 inline + the web bucket's policy + the TLS-only policies of the artifacts and uploads buckets
    assert len(list(iam.policies_of(declared))) == 13


def managed_document(arn: str) -> dict[str, Any]:
    iam_client = client()
    version = iam_client.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return dict(iam_client.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"])


def test_every_statement_of_every_role_up_makes_is_least_privilege(ctx: Context) -> None:
    """What IAM holds after `up`, every role of the stack, inline and attached: no "*" resource but for the
    actions without resource level (iam.ACTIONS_WITHOUT_RESOURCE_LEVEL), and no AWS managed policy but the
    ones iam.ALLOWED_MANAGED_POLICIES names and justifies."""
    up(ctx, iam_graph(ctx))
    iam_client = client()
    problems, walked = [], 0
    for role in iam_client.list_roles(PathPrefix=PATH)["Roles"]:
        name = role["RoleName"]
        for policy_name in iam_client.list_role_policies(RoleName=name)["PolicyNames"]:
            document = iam_client.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            walked += len(document["Statement"])
            problems += iam.policy_problems(document, f"{name} {policy_name}")
        for attached in iam_client.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            arn = attached["PolicyArn"]
            walked += len(iam.as_list(managed_document(arn)["Statement"]))
            if arn not in iam.ALLOWED_MANAGED_POLICIES:
                problems.append(f"{name} has {arn} attached")
    assert problems == []
    assert walked > 15  # every role's statements, AWSCodeDeployRole's too


def test_the_walk_fails_on_a_managed_policy_or_a_star_resource_outside_the_written_list(ctx: Context) -> None:
    up(ctx, iam_graph(ctx))
    # the managed policies earlier versions attached: each of them alone is refused
    for arn in MANAGED_BEFORE:
        granted = [s for s in iam.as_list(managed_document(arn)["Statement"]) if "*" in iam.as_list(s["Resource"])]
        assert iam.policy_problems({"Statement": granted}, arn), arn
    names = StackNames(ctx.settings, ("us-east-1a", "us-east-1b"), "123456789012")
    declared = iam.declare(names)
    role = next(r for r in declared if r.key == "role.instance")
    spec = spec_of(role, RoleSpec)
    with_managed = dataclasses.replace(role, spec=dataclasses.replace(spec, managed_policies=MANAGED_BEFORE))
    assert iam.managed_policy_problems([with_managed]) == [
        f"role.instance has AWS managed policy {arn} attached" for arn in MANAGED_BEFORE
    ]


def test_the_least_privilege_check_catches_a_regression() -> None:
    broad = iam.document(
        iam.allow("Everything", ["s3:*"], ["*"]),
        iam.allow("Gets", ["ec2:Describe*", "ec2:CreateTags"], ["arn:aws:ec2:us-east-1:1:instance/*"]),
        {"Sid": "Inverted", "Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"},
    )

    problems = iam.policy_problems(broad, "test")
    # the written-down actions without resource level may name "*", and only they: one more action is refused
    session = iam.allow("Session", ["ssm:UpdateInstanceInformation", "ssmmessages:OpenDataChannel"], ["*"])
    assert iam.policy_problems(iam.document(session), "ok") == []
    sneaked = iam.allow("Session", ["ssm:UpdateInstanceInformation", "ssm:GetParameter"], ["*"])
    assert iam.policy_problems(iam.document(sneaked), "bad") == [
        "bad statement Session applies ssm:GetParameter to every resource ('*')"
    ]

    assert problems == [
        "test statement Everything has a wildcard action 's3:*'",
        "test statement Everything applies s3:* to every resource ('*')",
        "test statement Gets has a wildcard action 'ec2:Describe*'",
        "test statement Inverted uses NotAction (grants everything else)",
    ]
    # a Deny grants nothing, however broad: the TLS-only bucket statement is no problem, the same as Allow is
    deny_plain_http = {**iam.allow("TlsOnly", ["s3:*"], ["*"]), "Effect": "Deny"}
    assert iam.policy_problems(iam.document(deny_plain_http), "deny") == []


def test_policies_compare_equal_however_written() -> None:
    listed = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": ["arn:aws:s3:::b/*"]},
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": "arn:aws:sns:us-east-1:1:t"},
        ],
    }
    written = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sns:Publish", "Resource": ["arn:aws:sns:us-east-1:1:t"]},
                {"Resource": "arn:aws:s3:::b/*", "Action": ["s3:GetObject", "s3:PutObject"], "Effect": "Allow"},
            ],
        }
    )

    assert normalize_policy(listed) == normalize_policy(written)
    assert not same_policy(listed, {**listed, "Statement": listed["Statement"][:1]})


# --- retry_iam_propagation -----------------------------------------------------------------------------


def client_error(code: str, message: str, operation: str = "RunInstances") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": message}}, operation)


def fake_run(budget: float = 120.0) -> tuple[AwsRun, list[float]]:
    pauses: list[float] = []
    run = AwsRun(
        clients=None,  # type: ignore[arg-type]  # the retry needs no AWS client
        stack="t1",
        waits=Waits(iam_propagation=budget, poll_initial=2.0, poll_max=15.0),
        sleep=pauses.append,
    )
    return run, pauses


PROPAGATION_CASES = [
    (
        "InvalidParameterValue",
        "Value (t1-instance) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
        "RunInstances",
    ),
    ("ValidationError", "Invalid IAM Instance Profile name: t1-instance", "CreateAutoScalingGroup"),
    (
        "InvalidRoleException",
        "AWS CodeDeploy does not have the permissions required to assume the role",
        "CreateDeploymentGroup",
    ),
    (
        "InvalidStructureException",
        "CodePipeline is not authorized to perform AssumeRole on role arn:aws:iam::1:role/x",
        "CreatePipeline",
    ),
]


@pytest.mark.parametrize(("code", "message", "operation"), PROPAGATION_CASES)
def test_propagation_errors_are_retried_until_the_call_succeeds(code: str, message: str, operation: str) -> None:
    run, pauses = fake_run()
    attempts: list[int] = []

    def call() -> str:
        attempts.append(1)
        if len(attempts) <= 2:
            raise client_error(code, message, operation)
        return "i-123"

    assert retry_iam_propagation(run, "launching", call) == "i-123"
    assert len(attempts) == 3
    assert len(pauses) == 2
    assert all(0 < p <= 15.0 for p in pauses)


def test_other_errors_are_not_retried() -> None:
    run, pauses = fake_run()
    attempts: list[int] = []

    def call() -> str:
        attempts.append(1)
        raise client_error("InvalidParameterValue", "Invalid value 't9.nano' for InstanceType")

    with pytest.raises(botocore.exceptions.ClientError, match=r"t9\.nano"):
        retry_iam_propagation(run, "launching", call)
    assert attempts == [1]
    assert pauses == []


def test_a_wrapped_propagation_error_is_recognized_and_the_retry_is_bounded() -> None:
    run, pauses = fake_run(budget=0.0)

    def call() -> None:
        with aws_errors("creating the deployment group"):
            raise client_error("InvalidRoleException", "cannot be assumed", "CreateDeploymentGroup")

    with pytest.raises(WaitTimeout, match="IAM still refuses"):
        retry_iam_propagation(run, "creating the deployment group", call)
    assert pauses == []
