"""The website's objects in the web bucket: upload what differs (by MD5 = ETag), write config.json."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from cdpoc.aws.base import AwsRun, Handler, aws_errors, caused_by, observed, ownership
from cdpoc.aws.storage import bucket_tags
from cdpoc.model import Change, Observed, Resource
from cdpoc.stack.site import CONFIG_KEY, config_json, web_file_bytes

# The page and its config must never be served stale from a browser cache after a change.
NO_CACHE = "no-cache"


def _wanted(res: Resource, deps: Mapping[str, Observed | None]) -> dict[str, tuple[str, str | None]]:
    """key -> (content type, MD5); config.json's MD5 is None while the load balancer does not exist."""
    wanted: dict[str, tuple[str, str | None]] = {f["key"]: (f["content_type"], f["md5"]) for f in res.props["files"]}
    alb = deps.get(res.props["api"])
    body = config_json(alb.attrs["dns_name"]) if alb and alb.attrs.get("dns_name") else None
    wanted[CONFIG_KEY] = ("application/json", hashlib.md5(body, usedforsecurity=False).hexdigest() if body else None)
    return wanted


class SiteContentHandler(Handler):
    kind = "site_content"
    label = "website content"

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        """The web bucket's objects and their ETags; None while the bucket does not exist."""
        etags: dict[str, str] = {}
        try:
            with aws_errors(f"listing the website objects in {res.name}"):
                for page in run.client("s3").get_paginator("list_objects_v2").paginate(Bucket=res.name):
                    etags.update({o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])})
        except Exception as exc:
            if caused_by(exc, "NoSuchBucket"):
                return None
            raise
        if not etags:
            return None
        # The objects are ours only if the bucket is: its tags say so (never its name).
        owner = ownership(bucket_tags(run, res.name) or {})
        # SSE-S3 (the web bucket's encryption) keeps the ETag of a single-part upload equal to its MD5.
        return observed(res, self.kind, res.name, etags=etags, stack=owner["stack"])

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = []
        for key, (_, md5) in _wanted(res, deps).items():
            if md5 is None:
                changes.append(Change(f"{key} (once the load balancer exists)"))
            elif found.attrs["etags"].get(key) != md5:
                changes.append(Change(f"upload {key}"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        return self.update(run, res, observed(res, self.kind, res.name, etags={}), deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        s3 = run.client("s3")
        etags = dict(found.attrs["etags"])
        for key, (content_type, md5) in _wanted(res, deps).items():
            if md5 is None or etags.get(key) == md5:
                continue
            body = config_json(deps[res.props["api"]].attrs["dns_name"]) if key == CONFIG_KEY else web_file_bytes(key)
            with aws_errors(f"uploading {key} to {res.name}"):
                s3.put_object(Bucket=res.name, Key=key, Body=body, ContentType=content_type, CacheControl=NO_CACHE)
            etags[key] = md5
        return observed(res, self.kind, res.name, etags=etags)

    def delete(self, run: AwsRun, found: Observed) -> None:
        keys = [{"Key": key} for key in found.attrs.get("etags", {})]
        try:
            with aws_errors(f"deleting the website objects in {found.id}"):
                # The bucket is versioned only if someone turned it on; its own deletion empties the rest.
                for start in range(0, len(keys), 1000):
                    run.client("s3").delete_objects(
                        Bucket=found.id, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
                    )
        except Exception as exc:
            if not caused_by(exc, "NoSuchBucket"):
                raise

    def describe(self, found: Observed) -> str:
        return f"{len(found.attrs.get('etags', {}))} objects in {found.id}"


HANDLERS: tuple[Handler, ...] = (SiteContentHandler(),)
