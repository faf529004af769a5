"""Buckets and SSM parameters against moto: what `up` creates, idempotency, ownership, region rules, teardown.

param.mongodb.host depends on instance.mongodb (the compute area's); its handler is tested directly
with an Observed instance, and the graphs here leave it out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from cdpoc.apply import apply_plan, refuse_conflicts
from cdpoc.aws import storage as storage_handlers
from cdpoc.aws.account import account_id, resolve_zones
from cdpoc.context import Context
from cdpoc.errors import AwsError, ConflictError
from cdpoc.graph import Graph
from cdpoc.model import Action, Observed, Resource
from cdpoc.planner import make_plan
from cdpoc.stack import storage
from cdpoc.stack.names import StackNames
from cdpoc.sweeper import find_everything, sweep

BUCKETS = ("bucket.artifacts", "bucket.web", "bucket.uploads")
PASSWORDS = ("param.mongodb.admin-password", "param.mongodb.app-password")


@pytest.fixture
def ctx(aws: None, make_context: Callable[..., Context]) -> Context:
    return make_context()


def declared(ctx: Context) -> list[Resource]:
    zones = resolve_zones(ctx.run, ctx.settings.availability_zones)
    ctx.run.zones = zones
    return storage.declare(StackNames(ctx.settings, zones, account_id(ctx.run)))


def storage_graph(ctx: Context, keys: tuple[str, ...] = (*BUCKETS, *PASSWORDS)) -> Graph:
    return Graph.of(r for r in declared(ctx) if r.key in keys)


def up(ctx: Context, graph: Graph) -> dict[str, Observed]:
    return apply_plan(ctx.run, make_plan(ctx.run, graph, ctx.handlers), ctx.handlers)


def s3(region: str = "us-east-1") -> Any:
    return boto3.client("s3", region_name=region)


def bucket_name(ctx: Context, purpose: str) -> str:
    return f"t1-{account_id(ctx.run)}-{ctx.settings.region}-{purpose}"


def record(ctx: Context, service: str, operation: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    ctx.run.client(service).meta.events.register(
        f"provide-client-params.{service}.{operation}", lambda params, **_: calls.append(dict(params))
    )
    return calls


def refuse(ctx: Context, service: str, operation: str, code: str, status: int, message: str = "") -> list[int]:
    """Make every `operation` call of the run's client fail as AWS would; returns a list counting the calls."""
    calls: list[int] = []

    def answer(**_: Any) -> tuple[Any, dict[str, Any]]:
        calls.append(1)
        return SimpleNamespace(status_code=status, headers={}), {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    ctx.run.client(service).meta.events.register(f"before-call.{service}.{operation}", answer)
    return calls


def tags_of(tag_list: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list}


# --- buckets --------------------------------------------------------------------------------------


def test_up_creates_the_three_buckets_as_configured(ctx: Context) -> None:
    creates = record(ctx, "s3", "CreateBucket")
    results = up(ctx, storage_graph(ctx, BUCKETS))
    client = s3()
    artifacts, web, uploads = (bucket_name(ctx, p) for p in ("artifacts", "web", "uploads"))

    # us-east-1: no LocationConstraint; tags and disabled ACLs in the create call itself.
    assert sorted(c["Bucket"] for c in creates) == sorted([artifacts, web, uploads])
    for call in creates:
        assert "LocationConstraint" not in call["CreateBucketConfiguration"]
        assert tags_of(call["CreateBucketConfiguration"]["Tags"])["cdpoc:stack"] == "t1"
        assert call["ObjectOwnership"] == "BucketOwnerEnforced"

    private = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    for name in (artifacts, web, uploads):
        rules = client.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert client.get_bucket_tagging(Bucket=artifacts)["TagSet"]

    assert client.get_bucket_versioning(Bucket=artifacts)["Status"] == "Enabled"
    assert client.get_public_access_block(Bucket=artifacts)["PublicAccessBlockConfiguration"] == private

    assert client.get_public_access_block(Bucket=web)["PublicAccessBlockConfiguration"] == {
        **private,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    website = client.get_bucket_website(Bucket=web)
    assert (website["IndexDocument"]["Suffix"], website["ErrorDocument"]["Key"]) == ("index.html", "error.html")
    assert json.loads(client.get_bucket_policy(Bucket=web)["Policy"])["Statement"] == [
        {
            "Sid": "PublicReadObjects",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{web}/*"],
        }
    ]
    web_url = f"http://{web}.s3-website-us-east-1.amazonaws.com"
    assert results["bucket.web"].attrs["website_url"] == web_url

    assert client.get_public_access_block(Bucket=uploads)["PublicAccessBlockConfiguration"] == private
    for private_bucket in (artifacts, uploads):
        [tls_only] = json.loads(client.get_bucket_policy(Bucket=private_bucket)["Policy"])["Statement"]
        assert tls_only["Effect"] == "Deny" and tls_only["Action"] == "s3:*"
        assert tls_only["Resource"] == [f"arn:aws:s3:::{private_bucket}", f"arn:aws:s3:::{private_bucket}/*"]
        assert tls_only["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [cors] = client.get_bucket_cors(Bucket=uploads)["CORSRules"]
    assert cors["AllowedOrigins"] == [web_url]
    assert set(cors["AllowedMethods"]) == {"GET", "HEAD", "PUT", "POST"}


def test_outside_us_east_1_the_location_constraint_is_passed(aws: None, make_context: Callable[..., Context]) -> None:
    ctx = make_context(region="eu-central-1")
    creates = record(ctx, "s3", "CreateBucket")
    results = up(ctx, storage_graph(ctx, ("bucket.web", "bucket.uploads")))

    assert [c["CreateBucketConfiguration"]["LocationConstraint"] for c in creates] == ["eu-central-1"] * 2
    web = bucket_name(ctx, "web")
    assert s3("eu-central-1").head_bucket(Bucket=web)["BucketRegion"] == "eu-central-1"
    # Newer regions' website endpoints use a dot: s3-website.<region>.
    web_url = f"http://{web}.s3-website.eu-central-1.amazonaws.com"
    assert results["bucket.web"].attrs["website_url"] == web_url
    [cors] = s3("eu-central-1").get_bucket_cors(Bucket=bucket_name(ctx, "uploads"))["CORSRules"]
    assert cors["AllowedOrigins"] == [web_url]


def test_second_up_makes_no_mutating_call_and_plan_is_clean(ctx: Context) -> None:
    graph = storage_graph(ctx)
    up(ctx, graph)
    before = len(ctx.clients.mutating_calls())

    plan = make_plan(ctx.run, graph, ctx.handlers)

    assert [(s.resource.key, s.changes) for s in plan.steps if s.action is not Action.NONE] == []
    apply_plan(ctx.run, plan, ctx.handlers)
    assert ctx.clients.mutating_calls()[before:] == []


def test_drifted_bucket_settings_are_put_back(ctx: Context) -> None:
    graph = storage_graph(ctx, BUCKETS)
    up(ctx, graph)
    client = s3()
    artifacts, web, uploads = (bucket_name(ctx, p) for p in ("artifacts", "web", "uploads"))
    client.put_bucket_versioning(Bucket=artifacts, VersioningConfiguration={"Status": "Suspended"})
    client.put_public_access_block(
        Bucket=uploads,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        },
    )
    client.delete_bucket_cors(Bucket=uploads)
    client.delete_bucket_policy(Bucket=web)

    plan = make_plan(ctx.run, graph, ctx.handlers)
    assert {s.resource.key: len(s.changes) for s in plan.by_action(Action.UPDATE)} == {
        "bucket.artifacts": 1,
        "bucket.web": 1,
        "bucket.uploads": 2,
    }
    apply_plan(ctx.run, plan, ctx.handlers)

    assert make_plan(ctx.run, graph, ctx.handlers).has_work is False
    assert client.get_bucket_versioning(Bucket=artifacts)["Status"] == "Enabled"
    assert client.get_bucket_cors(Bucket=uploads)["CORSRules"]


def test_a_bucket_name_taken_by_another_account_is_a_clear_error(ctx: Context) -> None:
    res = storage_graph(ctx, ("bucket.artifacts",))["bucket.artifacts"]
    refuse(ctx, "s3", "CreateBucket", "BucketAlreadyExists", 409, "The requested bucket name is not available.")

    with pytest.raises(ConflictError, match="taken by another AWS account") as raised:
        ctx.handlers["bucket"].create(ctx.run, res, {})
    assert "buckets.artifacts" in raised.value.hint


def test_a_bucket_of_another_account_is_a_conflict_in_the_plan(ctx: Context) -> None:
    graph = storage_graph(ctx, ("bucket.artifacts",))
    refuse(ctx, "s3", "HeadBucket", "403", 403, "Forbidden")

    [step] = make_plan(ctx.run, graph, ctx.handlers).steps

    assert step.action is Action.CONFLICT
    assert "another AWS account" in step.changes[0].text


def test_an_untagged_bucket_of_this_account_is_refused_not_adopted(ctx: Context) -> None:
    graph = storage_graph(ctx, ("bucket.artifacts",))
    name = bucket_name(ctx, "artifacts")
    s3().create_bucket(Bucket=name)

    plan = make_plan(ctx.run, graph, ctx.handlers)
    assert [s.action for s in plan.steps] == [Action.CONFLICT]
    with pytest.raises(ConflictError):
        refuse_conflicts(plan)
    # The create call itself (a race with the planner) refuses too: BucketAlreadyOwnedByYou without our tag.
    with pytest.raises(ConflictError, match="belongs to nothing cdpoc manages"):
        ctx.handlers["bucket"].create(ctx.run, graph["bucket.artifacts"], {})
    assert s3().get_bucket_versioning(Bucket=name).get("Status") is None


def test_a_tagged_bucket_left_by_an_interrupted_run_is_adopted_and_finished(ctx: Context) -> None:
    res = storage_graph(ctx, ("bucket.artifacts",))["bucket.artifacts"]
    s3().create_bucket(Bucket=res.name)
    s3().put_bucket_tagging(Bucket=res.name, Tagging={"TagSet": ctx.run.tags(res.key, res.name)})

    created = ctx.handlers["bucket"].create(ctx.run, res, {})

    assert created.id == res.name
    assert s3().get_bucket_versioning(Bucket=res.name)["Status"] == "Enabled"


def test_account_level_block_public_access_is_named_when_the_public_policy_is_refused(ctx: Context) -> None:
    graph = storage_graph(ctx, ("bucket.web",))
    refused = refuse(ctx, "s3", "PutBucketPolicy", "AccessDenied", 403, "Access Denied")

    with pytest.raises(AwsError) as raised:
        ctx.handlers["bucket"].create(ctx.run, graph["bucket.web"], {})

    assert "Block Public Access is on for the whole account" in raised.value.message
    assert "will not ask you to weaken it" in raised.value.hint
    assert "put-public-access-block" not in raised.value.hint and "Turn off" not in raised.value.hint
    # Bucket settings are eventually consistent, so a few attempts are made first; then it stops.
    assert len(refused) == storage_handlers.PUBLIC_POLICY_ATTEMPTS


def test_down_empties_every_version_and_delete_marker_in_batches(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = storage_graph(ctx, BUCKETS)
    up(ctx, graph)
    client = s3()
    artifacts, uploads = bucket_name(ctx, "artifacts"), bucket_name(ctx, "uploads")
    for body in ("one", "two", "three"):
        client.put_object(Bucket=artifacts, Key="rev.zip", Body=body.encode())
    client.delete_object(Bucket=artifacts, Key="rev.zip")  # a delete marker on top of three versions
    client.put_object(Bucket=uploads, Key="books/a.pdf", Body=b"pdf")
    assert storage_handlers.DELETE_BATCH == 1000  # the API's limit
    monkeypatch.setattr(storage_handlers, "DELETE_BATCH", 3)
    batches = record(ctx, "s3", "DeleteObjects")

    deleted = sweep(ctx.run, graph, ctx.handlers, find_everything(ctx.run, graph, ctx.handlers))

    assert set(deleted) == set(BUCKETS)
    names = {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert names.isdisjoint({artifacts, uploads, bucket_name(ctx, "web")})
    assert [len(b["Delete"]["Objects"]) for b in batches if b["Bucket"] == artifacts] == [3, 1]
    for found in (Observed(k, "bucket", graph[k].name) for k in BUCKETS):
        ctx.handlers["bucket"].delete(ctx.run, found)  # already gone: NotFound is success


def test_website_url_follows_the_regions_endpoint_style() -> None:
    assert storage_handlers.website_url("b", "us-west-2") == "http://b.s3-website-us-west-2.amazonaws.com"
    assert storage_handlers.website_url("b", "eu-west-2") == "http://b.s3-website.eu-west-2.amazonaws.com"


# --- SSM parameters -----------------------------------------------------------------------------------


def test_passwords_are_generated_secure_and_never_shown(ctx: Context) -> None:
    puts = record(ctx, "ssm", "PutParameter")
    results = up(ctx, storage_graph(ctx, PASSWORDS))
    ssm = boto3.client("ssm", region_name="us-east-1")

    values = []
    for key, name in (
        ("param.mongodb.admin-password", "/t1/mongodb/admin-password"),
        ("param.mongodb.app-password", "/t1/mongodb/app-password"),
    ):
        parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        assert parameter["Type"] == "SecureString"
        value = parameter["Value"]
        assert len(value) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", value)
        values.append(value)
        handler = ctx.handlers["ssm_parameter"]
        assert value not in handler.describe(results[key])
        assert value not in repr(results[key].attrs)
    assert values[0] != values[1]
    for call in puts:
        assert tags_of(call["Tags"])["cdpoc:stack"] == "t1"
        assert "Overwrite" not in call


def test_a_rerun_keeps_the_passwords(ctx: Context) -> None:
    graph = storage_graph(ctx, PASSWORDS)
    up(ctx, graph)
    ssm = boto3.client("ssm", region_name="us-east-1")
    first = ssm.get_parameter(Name="/t1/mongodb/app-password", WithDecryption=True)["Parameter"]
    puts = record(ctx, "ssm", "PutParameter")

    up(ctx, graph)
    # An interrupted run that created the parameter but did not record it: create() keeps the value too.
    ctx.handlers["ssm_parameter"].create(ctx.run, graph["param.mongodb.app-password"], {})

    again = ssm.get_parameter(Name="/t1/mongodb/app-password", WithDecryption=True)["Parameter"]
    assert (again["Value"], again["Version"]) == (first["Value"], first["Version"])
    assert len(puts) == 1  # only the create call that found it existing


def test_mongodb_host_follows_the_instances_private_ip(ctx: Context) -> None:
    [res] = [r for r in declared(ctx) if r.key == "param.mongodb.host"]
    assert res.depends_on == ("instance.mongodb",)
    handler = ctx.handlers["ssm_parameter"]
    instance = Observed("instance.mongodb", "instance", "i-0abc", {"private_ip": "10.0.20.11"})
    puts = record(ctx, "ssm", "PutParameter")
    ssm = boto3.client("ssm", region_name="us-east-1")

    created = handler.create(ctx.run, res, {"instance.mongodb": instance})
    found = handler.find(ctx.run, res)
    assert found is not None
    assert ssm.get_parameter(Name="/t1/mongodb/host")["Parameter"]["Value"] == "10.0.20.11"
    assert created.attrs["value"] == found.attrs["value"] == "10.0.20.11"
    assert handler.changes(ctx.run, res, found, {"instance.mongodb": instance}) == []

    moved = Observed("instance.mongodb", "instance", "i-0def", {"private_ip": "10.0.20.99"})
    [change] = handler.changes(ctx.run, res, found, {"instance.mongodb": moved})
    assert (change.text, change.field, change.old, change.new) == (
        "value: 10.0.20.11 → 10.0.20.99",
        "value",
        "10.0.20.11",
        "10.0.20.99",
    )
    assert [c.text for c in handler.changes(ctx.run, res, found, {})] == [
        "value: 10.0.20.11 → (instance.mongodb to be created)"
    ]
    handler.update(ctx.run, res, found, {"instance.mongodb": moved}, [change])

    parameter = ssm.get_parameter(Name="/t1/mongodb/host")["Parameter"]
    assert (parameter["Type"], parameter["Value"]) == ("String", "10.0.20.99")
    assert puts[0]["Tags"] and puts[1]["Overwrite"] is True and "Tags" not in puts[1]


def test_a_parameter_of_someone_else_is_refused(ctx: Context) -> None:
    graph = storage_graph(ctx, PASSWORDS)
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/t1/mongodb/admin-password", Value="theirs", Type="SecureString")

    plan = make_plan(ctx.run, graph, ctx.handlers)
    assert {s.resource.key: s.action for s in plan.steps}["param.mongodb.admin-password"] is Action.CONFLICT
    with pytest.raises(ConflictError, match="belongs to nothing cdpoc manages"):
        ctx.handlers["ssm_parameter"].create(ctx.run, graph["param.mongodb.admin-password"], {})
    assert ssm.get_parameter(Name="/t1/mongodb/admin-password", WithDecryption=True)["Parameter"]["Value"] == "theirs"


def test_down_deletes_parameters_and_a_second_delete_is_fine(ctx: Context) -> None:
    graph = storage_graph(ctx, PASSWORDS)
    up(ctx, graph)

    sweep(ctx.run, graph, ctx.handlers, find_everything(ctx.run, graph, ctx.handlers))

    ssm = boto3.client("ssm", region_name="us-east-1")
    assert ssm.describe_parameters()["Parameters"] == []
    ctx.handlers["ssm_parameter"].delete(ctx.run, Observed("param.mongodb.app-password", "ssm_parameter", "/t1/x"))
