"""The website's objects in the web bucket: upload what differs (by MD5 = ETag), write config.json, and
delete what the bundle no longer has. Each object is one entry of the spec's `files` in the plan."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from cdpoc.aws.errors import aws_errors, caused_by
from cdpoc.aws.handler import Handler, observed
from cdpoc.aws.ownership import ownership
from cdpoc.aws.run import AwsRun, chunks
from cdpoc.aws.storage import bucket_tags
from cdpoc.errors import AwsError
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import entry_field, entry_of, field_change, shown, spec_of
from cdpoc.stack.site import CONFIG_KEY, config_json, web_file_bytes
from cdpoc.stack.specs.site import SiteContentSpec

# The page and its config must never be served stale from a browser cache after a change.
NO_CACHE = "no-cache"
CONFIG_TYPE = "application/json"
# DeleteObjects takes at most 1000 keys.
DELETE_BATCH = 1000


def _config_md5(spec: SiteContentSpec, deps: Mapping[str, Observed | None]) -> str | None:
    """config.json's MD5; None while the load balancer (and so its address) does not exist."""
    dns_name = spec.api.value(deps)
    return hashlib.md5(config_json(dns_name), usedforsecurity=False).hexdigest() if dns_name else None


class SiteContentHandler(Handler):
    kind = "site_content"
    label = "website content"
    spec_type = SiteContentSpec

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
        """One change per object: old is its ETag (None when missing), new the wanted MD5 (None to delete)."""
        spec = spec_of(res, SiteContentSpec)
        have: Mapping[str, str] = found.attrs["etags"]
        changes = [
            field_change(spec, entry_field("files", f.key), have.get(f.key), f.md5)
            for f in spec.files
            if have.get(f.key) != f.md5
        ]
        config = _config_md5(spec, deps)
        if config is None:
            # Written once the load balancer exists: update() reads its address then.
            text = f"{entry_field('files', CONFIG_KEY)}: {shown(have.get(CONFIG_KEY))} → {spec.api.shown(deps)}"
            changes.append(field_change(spec, entry_field("files", CONFIG_KEY), have.get(CONFIG_KEY), spec.api, text))
        elif have.get(CONFIG_KEY) != config:
            changes.append(field_change(spec, entry_field("files", CONFIG_KEY), have.get(CONFIG_KEY), config))
        # The web bucket holds the site only: an object the bundle no longer has would still be served.
        wanted = {f.key for f in spec.files} | {CONFIG_KEY}
        changes.extend(
            field_change(spec, entry_field("files", key), have[key], None) for key in sorted(set(have) - wanted)
        )
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        empty = observed(res, self.kind, res.name, etags={})
        return self.converge(run, res, empty, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        """Upload each object the plan changes, delete each it removes."""
        spec = spec_of(res, SiteContentSpec)
        content_types = {f.key: f.content_type for f in spec.files}
        s3 = run.client("s3")
        etags = dict(found.attrs["etags"])
        doomed = []
        for change in changes:
            key = entry_of(change, "files")
            if key is None:
                continue
            if change.new is None:
                doomed.append(key)
                continue
            if key == CONFIG_KEY:
                # The plan may have been made before the load balancer existed: its address is known now.
                body, content_type = config_json(spec.api.need(deps)), CONFIG_TYPE
            else:
                body, content_type = web_file_bytes(key), content_types[key]
            with aws_errors(f"uploading {key} to {res.name}"):
                s3.put_object(Bucket=res.name, Key=key, Body=body, ContentType=content_type, CacheControl=NO_CACHE)
            etags[key] = hashlib.md5(body, usedforsecurity=False).hexdigest()
        self._delete_objects(run, res.name, doomed)
        for key in doomed:
            etags.pop(key, None)
        return observed(res, self.kind, res.name, etags=etags)

    def _delete_objects(self, run: AwsRun, bucket: str, keys: Sequence[str]) -> None:
        for batch in chunks(keys, DELETE_BATCH):
            with aws_errors(f"deleting {', '.join(batch)} from {bucket}"):
                reply = run.client("s3").delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
                )
            # A bulk API: failures come back in the reply, not as an error.
            for error in reply.get("Errors", []):
                raise AwsError(
                    f"deleting {error.get('Key')} from {bucket}: {error.get('Code')}: {error.get('Message')}"
                )

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
