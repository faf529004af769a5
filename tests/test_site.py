"""The website content: `up` uploads the bundle's page with content types and a config.json naming the ALB."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import boto3
import pytest

from cdpoc import lifecycle
from cdpoc.context import Context
from cdpoc.model import Action
from cdpoc.planner import make_plan
from cdpoc.stack.site import web_dir

pytestmark = pytest.mark.usefixtures("aws")


def md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def test_up_publishes_the_page_and_its_config(make_context: Callable[..., Context]) -> None:
    ctx = make_context(name="site1", pipeline={"repository": "site1-repo"})
    results = lifecycle.up(ctx)
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = results["bucket.web"].id
    for name, content_type in (("index.html", "text/html"), ("app.js", "text/javascript"), ("style.css", "text/css")):
        head = s3.head_object(Bucket=bucket, Key=name)
        assert head["ContentType"].startswith(content_type), name
        assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == (web_dir() / name).read_bytes()
    config = json.loads(s3.get_object(Bucket=bucket, Key="config.json")["Body"].read())
    assert config == {"apiUrl": f"http://{results['alb'].attrs['dns_name']}"}
    assert s3.head_object(Bucket=bucket, Key="config.json")["CacheControl"] == "no-cache"

    # Unchanged files are not uploaded again; a changed one is, and only it.
    before = len(ctx.clients.mutating_calls())
    assert not make_plan(ctx.run, ctx.graph(), ctx.handlers).has_work
    s3.put_object(Bucket=bucket, Key="style.css", Body=b"tampered")
    [step] = [s for s in make_plan(ctx.run, ctx.graph(), ctx.handlers).steps if s.action is not Action.NONE]
    tampered, wanted = md5(b"tampered"), md5((web_dir() / "style.css").read_bytes())
    assert step.resource.key == "site.web"
    assert [(c.field, c.old, c.new) for c in step.changes] == [("files[style.css]", tampered, wanted)]
    assert [c.text for c in step.changes] == [f"files[style.css]: {tampered} → {wanted}"]
    lifecycle.up(ctx)
    uploads = [op for _, op in ctx.clients.mutating_calls()[before:]]
    assert uploads == ["PutObject"]
    assert s3.get_object(Bucket=bucket, Key="style.css")["Body"].read() == (web_dir() / "style.css").read_bytes()

    # An object the bundle no longer has (e.g. a page removed from it) would still be served: it goes.
    s3.put_object(Bucket=bucket, Key="old.js", Body=b"stale")
    [step] = [s for s in make_plan(ctx.run, ctx.graph(), ctx.handlers).steps if s.action is not Action.NONE]
    assert [c.text for c in step.changes] == [f"files[old.js]: {md5(b'stale')} → (none)"]
    before = len(ctx.clients.mutating_calls())
    lifecycle.up(ctx)
    assert [op for _, op in ctx.clients.mutating_calls()[before:]] == ["DeleteObjects"]
    assert "old.js" not in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert not make_plan(ctx.run, ctx.graph(), ctx.handlers).has_work

    lifecycle.down(ctx, yes=True, confirm=lambda question: False)
