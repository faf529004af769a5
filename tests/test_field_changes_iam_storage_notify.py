"""One diff for the IAM, storage and notify kinds, against moto through the real handlers.

Each case changes one field behind cdpoc's back (or in the declaration), then: the plan names the field
with the observed and the desired value, `up` applies exactly that, and the next plan is clean. Every
collection field also loses a stale entry that way (an inline policy, a managed attachment, a bucket's
website, policy or CORS, an email subscription).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import boto3
import pytest

from cdpoc.apply import apply_plan
from cdpoc.aws.account import account_id, resolve_zones
from cdpoc.context import Context
from cdpoc.graph import Graph
from cdpoc.model import Action, Change, Observed, Resource
from cdpoc.planner import make_plan
from cdpoc.render import plan_lines
from cdpoc.spec import Ref, declare, spec_of
from cdpoc.stack import iam, notify, storage
from cdpoc.stack.names import StackNames
from cdpoc.stack.specs.iam import RoleSpec
from cdpoc.stack.specs.storage import ParameterSpec

SSM_CORE = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
CODEDEPLOY_ROLE = "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRole"


@pytest.fixture
def ctx(aws: None, make_context: Callable[..., Context]) -> Context:
    return make_context(operator={"email": "ops@example.com"})


def stack_names(ctx: Context) -> StackNames:
    zones = resolve_zones(ctx.run, ctx.settings.availability_zones)
    ctx.run.zones = zones
    return StackNames(ctx.settings, zones, account_id(ctx.run))


def area_graph(ctx: Context) -> Graph:
    names = stack_names(ctx)
    return Graph.of(
        [
            *iam.declare(names),
            *(r for r in storage.declare(names) if r.key != "param.mongodb.host"),
            *notify.declare(names),
        ]
    )


def up(ctx: Context, graph: Graph) -> dict[str, Observed]:
    return apply_plan(ctx.run, make_plan(ctx.run, graph, ctx.handlers), ctx.handlers)


def changes_then_apply(ctx: Context, graph: Graph) -> dict[str, list[Change]]:
    """The plan's updates {key: changes}; `up` applies the plan, and the next plan must be clean."""
    plan = make_plan(ctx.run, graph, ctx.handlers)
    assert plan.conflicts == []
    updates = {s.resource.key: list(s.changes) for s in plan.by_action(Action.UPDATE)}
    apply_plan(ctx.run, plan, ctx.handlers)
    again = make_plan(ctx.run, graph, ctx.handlers)
    assert [(s.resource.key, [c.text for c in s.changes]) for s in again.steps if s.action is not Action.NONE] == []
    return updates


def fields(changes: list[Change]) -> list[tuple[str, Any, Any]]:
    return [(c.field, c.old, c.new) for c in changes]


def texts(changes: list[Change]) -> list[str]:
    return [c.text for c in changes]


def iam_client() -> Any:
    return boto3.client("iam", region_name="us-east-1")


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


# --- IAM ---------------------------------------------------------------------------------------------


def test_a_changed_trust_policy_and_description_are_shown_both_ways_and_put_back(ctx: Context) -> None:
    graph = area_graph(ctx)
    up(ctx, graph)
    iam_client().update_assume_role_policy(
        RoleName="t1-events", PolicyDocument=json.dumps(iam.trust("ec2.amazonaws.com"))
    )
    iam_client().update_role(RoleName="t1-events", Description="changed by hand")

    changes = changes_then_apply(ctx, graph)

    assert set(changes) == {"role.events"}
    by_hand = '{"Action":["sts:AssumeRole"],"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com"]}}'
    wanted = (
        '{"Action":["sts:AssumeRole"],"Condition":{"ArnLikeIfExists":{"aws:SourceArn":'
        '["arn:aws:events:us-east-1:123456789012:rule/t1-source-changes"]},'
        '"StringEqualsIfExists":{"aws:SourceAccount":["123456789012"]}},"Effect":"Allow",'
        '"Principal":{"Service":["events.amazonaws.com"]}}'
    )
    assert texts(changes["role.events"]) == [
        "description: changed by hand → cdpoc stack t1: events",
        f"assume_role_policy: statements [{by_hand}] → [{wanted}]",
    ]
    role = iam_client().get_role(RoleName="t1-events")["Role"]
    assert role["Description"] == "cdpoc stack t1: events"
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}


def test_managed_attachments_are_diffed_both_ways(ctx: Context) -> None:
    graph = area_graph(ctx)
    up(ctx, graph)
    iam_client().detach_role_policy(RoleName="t1-codedeploy", PolicyArn=CODEDEPLOY_ROLE)
    iam_client().attach_role_policy(RoleName="t1-instance", PolicyArn=SSM_CORE)

    changes = changes_then_apply(ctx, graph)

    assert fields(changes["role.codedeploy"]) == [(f"managed_policies[{CODEDEPLOY_ROLE}]", None, "attached")]
    assert fields(changes["role.instance"]) == [(f"managed_policies[{SSM_CORE}]", "attached", None)]
    assert iam_client().list_attached_role_policies(RoleName="t1-instance")["AttachedPolicies"] == []
    attached = iam_client().list_attached_role_policies(RoleName="t1-codedeploy")["AttachedPolicies"]
    assert {p["PolicyArn"] for p in attached} == {CODEDEPLOY_ROLE}


def test_an_inline_policy_the_declaration_drops_is_deleted_and_a_new_one_added(ctx: Context) -> None:
    graph = area_graph(ctx)
    up(ctx, graph)
    old = graph["role.events"]
    spec = spec_of(old, RoleSpec)
    [(_old_name, document)] = spec.inline_policies.items()
    renamed = declare(old.key, old.name, replace(spec, inline_policies={"t1-events-start": document}))
    graph = Graph.of([renamed if r.key == old.key else r for r in graph.resources.values()])

    changes = changes_then_apply(ctx, graph)

    assert [(c.field, c.old is None, c.new is None) for c in changes["role.events"]] == [
        ("inline_policies[t1-events-access]", False, True),
        ("inline_policies[t1-events-start]", True, False),
    ]
    assert changes["role.events"][1].new == document
    assert iam_client().list_role_policies(RoleName="t1-events")["PolicyNames"] == ["t1-events-start"]


def test_a_roles_path_cannot_change_in_place(ctx: Context) -> None:
    graph = area_graph(ctx)
    up(ctx, graph)
    res = graph["role.events"]
    ctx.run.forget()  # the listing this run made before the create
    found = ctx.handlers["iam_role"].find(ctx.run, res)
    assert found is not None
    moved = declare(res.key, res.name, replace(spec_of(res, RoleSpec), path="/elsewhere/"))

    [change] = ctx.handlers["iam_role"].changes(ctx.run, moved, found, {})

    assert (change.field, change.old, change.new, change.in_place) == ("path", "/cdpoc/t1/", "/elsewhere/", False)
    assert change.text == "path: /cdpoc/t1/ → /elsewhere/"


def test_the_instance_profile_is_given_its_role_back(ctx: Context) -> None:
    graph = area_graph(ctx)
    up(ctx, graph)
    iam_client().remove_role_from_instance_profile(InstanceProfileName="t1-instance", RoleName="t1-instance")
    iam_client().add_role_to_instance_profile(InstanceProfileName="t1-instance", RoleName="t1-events")

    changes = changes_then_apply(ctx, graph)

    assert fields(changes["profile.instance"]) == [("role", "t1-events", "t1-instance")]
    assert texts(changes["profile.instance"]) == ["role: t1-events → t1-instance"]
    profile = iam_client().get_instance_profile(InstanceProfileName="t1-instance")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["t1-instance"]


def test_a_profile_whose_role_is_not_made_yet_shows_it_to_be_created(ctx: Context) -> None:
    graph = area_graph(ctx)
    up(ctx, graph)
    iam_client().remove_role_from_instance_profile(InstanceProfileName="t1-instance", RoleName="t1-instance")
    res = graph["profile.instance"]
    ctx.run.forget()  # the listing this run made before the create
    found = ctx.handlers["instance_profile"].find(ctx.run, res)
    assert found is not None

    [change] = ctx.handlers["instance_profile"].changes(ctx.run, res, found, {"role.instance": None})

    assert change.text == "role: (none) → (role.instance to be created)"
    assert change.new == Ref("role.instance")


# --- buckets -----------------------------------------------------------------------------------------


def test_bucket_settings_show_old_and_new_and_stale_ones_are_removed(ctx: Context) -> None:
    graph = area_graph(ctx)
    up(ctx, graph)
    names = stack_names(ctx)
    artifacts, web, uploads = (names.bucket(p) for p in ("artifacts", "web", "uploads"))
    client = s3()
    # Settings the declarations do not want at all: each must be removed.
    client.put_bucket_website(Bucket=artifacts, WebsiteConfiguration={"IndexDocument": {"Suffix": "a.html"}})
    client.put_bucket_cors(
        Bucket=artifacts, CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]}
    )
    client.put_bucket_versioning(Bucket=uploads, VersioningConfiguration={"Status": "Enabled"})
    stray_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteObject",
                "Resource": f"arn:aws:s3:::{uploads}/*",
            }
        ],
    }
    client.put_bucket_policy(Bucket=uploads, Policy=json.dumps(stray_policy))
    # A setting the declaration wants otherwise.
    client.put_bucket_website(
        Bucket=web,
        WebsiteConfiguration={"IndexDocument": {"Suffix": "home.html"}, "ErrorDocument": {"Key": "error.html"}},
    )

    changes = changes_then_apply(ctx, graph)

    assert texts(changes["bucket.artifacts"]) == [
        "website: {error: (none), index: a.html} → (none)",
        "cors: * may GET → (none)",
    ]
    assert texts(changes["bucket.web"]) == [
        "website: {error: error.html, index: home.html} → {error: error.html, index: index.html}"
    ]
    [versioning, policy] = changes["bucket.uploads"]
    assert (versioning.field, versioning.old, versioning.new) == ("versioning", "Enabled", "Suspended")
    assert policy.field == "policy" and "aws:SecureTransport" in str(policy.new)
    assert '"Action":["s3:DeleteObject"]' in policy.text and "DenyInsecureTransport" in policy.text

    assert "WebsiteConfiguration" not in str(_website_or_none(artifacts))
    assert client.get_bucket_website(Bucket=web)["IndexDocument"] == {"Suffix": "index.html"}
    assert client.get_bucket_versioning(Bucket=uploads)["Status"] == "Suspended"
    assert "DenyInsecureTransport" in client.get_bucket_policy(Bucket=uploads)["Policy"]
    with pytest.raises(client.exceptions.ClientError, match="NoSuchCORSConfiguration"):
        client.get_bucket_cors(Bucket=artifacts)


def _website_or_none(bucket: str) -> dict[str, Any] | None:
    try:
        return dict(s3().get_bucket_website(Bucket=bucket))
    except s3().exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchWebsiteConfiguration"
        return None


def test_a_bucket_policy_change_shows_the_statements_that_differ(ctx: Context) -> None:
    graph = area_graph(ctx)
    up(ctx, graph)
    web = stack_names(ctx).bucket("web")
    wider = storage.public_read_policy(web)
    wider["Statement"][0]["Action"] = ["s3:GetObject", "s3:ListBucket"]
    s3().put_bucket_policy(Bucket=web, Policy=json.dumps(wider))

    [change] = changes_then_apply(ctx, graph)["bucket.web"]

    assert change.field == "policy"
    assert change.text == (
        'policy: statements [{"Action":["s3:GetObject","s3:ListBucket"],"Effect":"Allow","Principal":"*",'
        f'"Resource":["arn:aws:s3:::{web}/*"],"Sid":"PublicReadObjects"}}] → '
        '[{"Action":["s3:GetObject"],"Effect":"Allow","Principal":"*",'
        f'"Resource":["arn:aws:s3:::{web}/*"],"Sid":"PublicReadObjects"}}]'
    )
    assert json.loads(s3().get_bucket_policy(Bucket=web)["Policy"])["Statement"][0]["Action"] == ["s3:GetObject"]


def test_the_uploads_cors_is_shown_with_its_origin_and_put_back(ctx: Context) -> None:
    graph = area_graph(ctx)
    results = up(ctx, graph)
    uploads = stack_names(ctx).bucket("uploads")
    s3().put_bucket_cors(
        Bucket=uploads,
        CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["http://elsewhere"], "AllowedMethods": ["GET"]}]},
    )
    site = results["bucket.web"].attrs["website_url"]

    [change] = changes_then_apply(ctx, graph)["bucket.uploads"]

    assert change.text == f"cors: http://elsewhere may GET → {site} may GET,HEAD,PUT,POST"
    [rule] = s3().get_bucket_cors(Bucket=uploads)["CORSRules"]
    assert rule["AllowedOrigins"] == [site]


# --- parameters --------------------------------------------------------------------------------------


def test_a_generated_passwords_type_cannot_change_in_place(ctx: Context) -> None:
    graph = area_graph(ctx)
    up(ctx, graph)
    res = graph["param.mongodb.app-password"]
    changed = declare(res.key, res.name, replace(spec_of(res, ParameterSpec), type="String"))
    graph = Graph.of([changed if r.key == res.key else r for r in graph.resources.values()])

    plan = make_plan(ctx.run, graph, ctx.handlers)

    [step] = plan.conflicts
    assert step.resource.key == res.key
    assert [(c.field, c.in_place, c.text) for c in step.changes] == [("type", False, "type: SecureString → String")]


def test_a_copied_parameters_description_and_value_change_in_one_put(ctx: Context) -> None:
    [res] = [r for r in storage.declare(stack_names(ctx)) if r.key == "param.mongodb.host"]
    handler = ctx.handlers["ssm_parameter"]
    instance = {"instance.mongodb": Observed("instance.mongodb", "instance", "i-1", {"private_ip": "10.0.20.11"})}
    handler.create(ctx.run, res, instance)
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name=res.name, Value="10.9.9.9", Type="String", Description="edited", Overwrite=True)
    found = handler.find(ctx.run, res)
    assert found is not None

    changes = handler.changes(ctx.run, res, found, instance)
    assert texts(changes) == [
        "description: edited → private IP of the MongoDB instance",
        "value: 10.9.9.9 → 10.0.20.11",
    ]
    puts = _record(ctx, "ssm", "PutParameter")
    after = handler.update(ctx.run, res, found, instance, changes)

    assert len(puts) == 1
    [parameter] = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [res.name]}])["Parameters"]
    assert parameter["Description"] == "private IP of the MongoDB instance"
    assert ssm.get_parameter(Name=res.name)["Parameter"]["Value"] == "10.0.20.11"
    assert handler.changes(ctx.run, res, after, instance) == []


def _record(ctx: Context, service: str, operation: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    ctx.run.client(service).meta.events.register(
        f"provide-client-params.{service}.{operation}", lambda params, **_: calls.append(dict(params))
    )
    return calls


def test_a_secure_strings_value_never_appears_in_the_plan(ctx: Context) -> None:
    """A SecureString taken from another resource: compared, changed and applied, but never shown."""
    res = declare(
        "param.token",
        "/t1/token",
        ParameterSpec(type="SecureString", description="a token", value_from=Ref("source", "token")),
    )
    handler = ctx.handlers["ssm_parameter"]
    ssm = boto3.client("ssm", region_name="us-east-1")
    first = {"source": Observed("source", "thing", "s-1", {"token": "first-s3cr3t"})}
    handler.create(ctx.run, res, first)
    found = handler.find(ctx.run, res)
    assert found is not None
    assert handler.changes(ctx.run, res, found, first) == []

    second = {"source": Observed("source", "thing", "s-1", {"token": "second-s3cr3t"})}
    [change] = handler.changes(ctx.run, res, found, second)
    assert change.text == "value: (secret) → (secret)"
    assert "s3cr3t" not in repr(change)
    plan_text = "\n".join(plan_lines(_plan_of(res, found, [change]), handler.describe))
    assert "s3cr3t" not in plan_text and "value: (secret) → (secret)" in plan_text

    handler.update(ctx.run, res, found, second, [change])

    assert ssm.get_parameter(Name="/t1/token", WithDecryption=True)["Parameter"]["Value"] == "second-s3cr3t"
    again = handler.find(ctx.run, res)
    assert again is not None and handler.changes(ctx.run, res, again, second) == []
    assert "s3cr3t" not in repr(again.attrs)


def _plan_of(res: Resource, found: Observed, changes: list[Change]) -> Any:
    from cdpoc.model import Plan, Step

    return Plan((Step(res, Action.UPDATE, found, tuple(changes)),))


# --- notify ------------------------------------------------------------------------------------------


def test_a_stale_subscription_goes_and_retention_comes_back(aws: None, make_context: Callable[..., Context]) -> None:
    first = make_context(operator={"email": "old@example.com"}, logs={"retention_days": 30})
    up(first, Graph.of(notify.declare(stack_names(first))))
    ctx = make_context(operator={"email": "new@example.com"}, logs={"retention_days": 90})

    changes = changes_then_apply(ctx, Graph.of(notify.declare(stack_names(ctx))))

    assert fields(changes["topic.alerts"]) == [
        ("email_subscriptions[new@example.com]", None, "subscribed"),
        ("email_subscriptions[old@example.com]", "subscribed", None),
    ]
    assert texts(changes["loggroup"]) == ["retention_days: 30 → 90"]
