"""S3 buckets (artifacts, website, uploads) and SSM Parameter Store parameters.

Buckets have global names, so they are found by name (HeadBucket, then their tags): a bucket of
another account is refused, one of ours without the stack's tag is refused, never taken over.
Tags go into CreateBucket itself (CreateBucketConfiguration.Tags). `down` empties a bucket of every
object version and delete marker before deleting it.

Parameters: generated passwords (SecureString) are created once and never read back, printed or
compared by value; the MongoDB host parameter (String) follows instance.mongodb's private IP. A
password that is missing while the database that uses it exists (the spec's consumed_by names it; its
kept snapshot counts too) is a conflict, never silently generated anew: the database keeps the old one.

`down --keep-data` keeps the uploads bucket and the passwords, tagged cdpoc:kept=true (keep); the next
`up` finds them as usual and removes the marker (update).
"""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cdpoc.aws.account import account_id
from cdpoc.aws.errors import DependencyViolation, aws_errors, call_or_none, caused_by, ignore_missing
from cdpoc.aws.handler import Handler, observed
from cdpoc.aws.iam import normalize_policy, policy_change
from cdpoc.aws.ownership import (
    UNTAGGED,
    missing_tags,
    ownership,
    ownership_changes,
    tagged_resources,
    tags_change,
    wanted_tags,
)
from cdpoc.aws.run import STACK_TAG, AwsRun, chunks, tag_list, tag_map
from cdpoc.aws.snapshots import KEPT_TAG, KEPT_VALUE, describe_snapshot, is_kept, kept_snapshots
from cdpoc.errors import AwsError, ConflictError
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import Ref, field_change, spec_of
from cdpoc.stack.specs.storage import BucketSpec, CorsRule, ParameterSpec

DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys per call.
# `down` counts a bucket's objects before asking; past this many (100 listings) it says "at least".
USAGE_LIMIT = 100_000
TAKEN_BACK = "kept by `cdpoc down --keep-data`: taken back into the stack"
PUBLIC_POLICY_ATTEMPTS = 4  # bucket settings are eventually consistent: a just-relaxed block may still refuse.

# Regions whose website endpoint is "s3-website-<region>"; every other region uses "s3-website.<region>".
DASH_WEBSITE_REGIONS = frozenset(
    {
        "us-east-1",
        "us-west-1",
        "us-west-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "eu-west-1",
        "sa-east-1",
        "us-gov-west-1",
    }
)
BUCKET_MISSING = ("404", "NoSuchBucket", "NotFound")
BUCKET_FORBIDDEN = ("403", "AccessDenied", "Forbidden")
# The settings a bucket's spec manages, as _settings reads them back.
SETTINGS = ("public_access_block", "encryption", "versioning", "website", "policy", "cors")
VERSIONING_ON, VERSIONING_OFF = "Enabled", "Suspended"


def website_url(bucket: str, region: str) -> str:
    """The bucket's static-website address (HTTP only); also the web page's origin for CORS."""
    separator = "-" if region in DASH_WEBSITE_REGIONS else "."
    return f"http://{bucket}.s3-website{separator}{region}.amazonaws.com"


def _s3(run: AwsRun) -> Any:
    return run.client("s3")


def _purpose(res: Resource) -> str:
    return res.key.split(".", 1)[-1]


# --- buckets --------------------------------------------------------------------------------------


def _cors_rules(rules: Sequence[CorsRule], deps: Mapping[str, Observed | None]) -> list[dict[str, Any]] | None:
    """The spec's CORS rules as S3 takes them, or None while an origin (another bucket's website) does
    not exist yet."""
    wanted = []
    for rule in rules:
        origins = [origin.value(deps) for origin in rule.origins]
        if None in origins:
            return None
        wanted.append(
            {
                "AllowedOrigins": origins,
                "AllowedMethods": list(rule.methods),
                "AllowedHeaders": list(rule.headers),
                "ExposeHeaders": list(rule.expose),
                "MaxAgeSeconds": rule.max_age,
            }
        )
    return wanted


def _cors_text(
    rules: Sequence[CorsRule] | Sequence[Mapping[str, Any]] | None, deps: Mapping[str, Observed | None]
) -> str:
    """CORS rules in a plan: who may do what, e.g. "http://site may GET,PUT"; (none) for no rules."""
    texts = []
    for rule in rules or ():
        if isinstance(rule, CorsRule):
            origins, methods = [o.shown(deps) for o in rule.origins], rule.methods
        else:
            origins, methods = rule.get("AllowedOrigins", []), rule.get("AllowedMethods", [])
        texts.append(f"{','.join(origins)} may {','.join(methods)}")
    return "; ".join(texts) or "(none)"


def _normalize_cors(rules: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    if rules is None:
        return None
    normalized = [
        {key: sorted(value) if isinstance(value, list) else value for key, value in rule.items() if key != "ID"}
        for rule in rules
    ]
    return sorted(normalized, key=lambda r: json.dumps(r, sort_keys=True))


def _website(config: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The website settings as the spec's Website holds them ({index, error}); None without a website."""
    if config is None:
        return None
    return {
        "index": config.get("IndexDocument", {}).get("Suffix", ""),
        "error": config.get("ErrorDocument", {}).get("Key", ""),
    }


def bucket_tags(run: AwsRun, name: str) -> dict[str, str] | None:
    """The bucket's tags; None when it has none (NoSuchTagSet)."""
    reply = call_or_none(
        f"reading the tags of bucket {name}", _s3(run).get_bucket_tagging, ("NoSuchTagSet",), Bucket=name
    )
    return tag_map(reply["TagSet"]) if reply else None


class BucketHandler(Handler):
    kind = "bucket"
    label = "S3 bucket"
    arn_types = ("s3:bucket",)
    spec_type = BucketSpec

    def _region(self, run: AwsRun, name: str) -> str | None:
        """The bucket's region; None when no bucket has the name; "" when it exists but is not ours to see."""
        try:
            with aws_errors(f"looking up bucket {name}"):
                reply = _s3(run).head_bucket(Bucket=name)
        except AwsError as exc:
            if caused_by(exc, *BUCKET_MISSING):
                return None
            if caused_by(exc, *BUCKET_FORBIDDEN):
                return ""
            raise
        headers = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return str(reply.get("BucketRegion") or headers.get("x-amz-bucket-region") or run.region)

    def _tags(self, run: AwsRun, name: str) -> dict[str, str] | None:
        return bucket_tags(run, name)

    def _settings(self, run: AwsRun, name: str) -> dict[str, Any]:
        """Everything of the bucket that the stack manages, read back for comparison."""
        s3 = _s3(run)
        block = call_or_none(
            f"reading the public access block of {name}",
            s3.get_public_access_block,
            ("NoSuchPublicAccessBlockConfiguration",),
            Bucket=name,
        )
        encryption = call_or_none(
            f"reading the encryption of {name}",
            s3.get_bucket_encryption,
            ("ServerSideEncryptionConfigurationNotFoundError",),
            Bucket=name,
        )
        rules = encryption["ServerSideEncryptionConfiguration"]["Rules"] if encryption else []
        with aws_errors(f"reading the versioning of {name}"):
            versioning = s3.get_bucket_versioning(Bucket=name).get("Status", "")
        website = call_or_none(
            f"reading the website of {name}", s3.get_bucket_website, ("NoSuchWebsiteConfiguration",), Bucket=name
        )
        policy = call_or_none(
            f"reading the policy of {name}", s3.get_bucket_policy, ("NoSuchBucketPolicy",), Bucket=name
        )
        cors = call_or_none(
            f"reading the CORS of {name}", s3.get_bucket_cors, ("NoSuchCORSConfiguration",), Bucket=name
        )
        return {
            "public_access_block": dict(block["PublicAccessBlockConfiguration"]) if block else None,
            "encryption": rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] if rules else "",
            "versioning": versioning,
            "website": _website(website),
            "policy": normalize_policy(policy["Policy"]) if policy else None,
            "cors": _normalize_cors(cors["CORSRules"]) if cors else None,
        }

    def _attrs(self, run: AwsRun, res: Resource, settings: Mapping[str, Any]) -> dict[str, Any]:
        attrs = dict(settings)
        if spec_of(res, BucketSpec).website:
            attrs["website_url"] = website_url(res.name, run.region)
        return attrs

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        region = self._region(run, res.name)
        if region is None:
            return None
        if region == "":
            return observed(res, self.kind, res.name, foreign=True, stack="", tags={})
        tags = self._tags(run, res.name) or {}
        base = {
            "region": region,
            **ownership(tags),
            "kept": is_kept(tags),
        }
        if base["stack"] != run.stack or region != run.region:
            return observed(res, self.kind, res.name, **base)
        return observed(res, self.kind, res.name, **base, **self._attrs(run, res, self._settings(run, res.name)))

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        result = {}
        for component, (arn, _tags) in tagged_resources(run, "s3").items():
            name = arn.split(":::", 1)[-1]
            if self._region(run, name) == run.region:
                result[component] = observed(component, self.kind, name)
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        if found.attrs.get("foreign"):
            return [
                Change(f"bucket {res.name} exists in another AWS account (or this one may not read it)", in_place=False)
            ]
        conflicts = [c for c in ownership_changes(run, res, found, "bucket") if not c.in_place]
        if conflicts:
            return conflicts
        if found.attrs["region"] != run.region:
            return [Change(f"bucket {res.name} is in {found.attrs['region']}, not {run.region}", in_place=False)]
        have_tags = found.attrs.get("tags", {})
        changes = tags_change(BucketSpec, have_tags, missing_tags(run, res, have_tags))
        if found.attrs.get("kept"):
            changes.append(field_change(BucketSpec, "kept", True, False, text=TAKEN_BACK))
        return changes + self._differences(spec_of(res, BucketSpec), found, deps)

    def _differences(self, spec: BucketSpec, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        """Each setting the bucket has otherwise than the spec says, observed → desired."""
        attrs = found.attrs
        changes = []
        block = spec.public_access_block.api()
        if attrs["public_access_block"] != block:
            changes.append(field_change(BucketSpec, "public_access_block", attrs["public_access_block"], block))
        if attrs["encryption"] != spec.encryption:
            changes.append(field_change(BucketSpec, "encryption", attrs["encryption"], spec.encryption))
        if (attrs["versioning"] == VERSIONING_ON) != spec.versioning:
            # S3 cannot make a versioned bucket unversioned again: the spec's False is "Suspended".
            wanted = VERSIONING_ON if spec.versioning else VERSIONING_OFF
            changes.append(field_change(BucketSpec, "versioning", attrs["versioning"], wanted))
        website = {"index": spec.website.index, "error": spec.website.error} if spec.website else None
        if attrs["website"] != website:
            changes.append(field_change(BucketSpec, "website", attrs["website"], website))
        if attrs["policy"] != normalize_policy(spec.policy):
            changes.append(policy_change(BucketSpec, "policy", attrs["policy"], spec.policy or None))
        changes.extend(self._cors_changes(spec, found, deps))
        return changes

    def _cors_changes(self, spec: BucketSpec, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        """new: the rules as S3 takes them, the spec's rules while an origin does not exist yet, or None."""
        have = found.attrs["cors"]
        if not spec.cors:
            return [] if have is None else [self._cors_change(have, None, deps)]
        wanted = _cors_rules(spec.cors, deps)
        if wanted is None:  # an origin's bucket does not exist yet
            return [self._cors_change(have, spec.cors, deps)]
        return [] if have == _normalize_cors(wanted) else [self._cors_change(have, wanted, deps)]

    def _cors_change(self, have: Any, new: Any, deps: Mapping[str, Observed | None]) -> Change:
        return field_change(
            BucketSpec, "cors", have, new, text=f"cors: {_cors_text(have, deps)} → {_cors_text(new, deps)}"
        )

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        # In us-east-1 CreateBucket answers success for a bucket this account already owns (and ignores the
        # tags), so a bucket that appeared since the plan must be caught before, not after, the call.
        region = self._region(run, res.name)
        if region == "":
            raise self._taken(res)
        if region is not None:
            return self._adopt(run, res, deps)
        configuration: dict[str, Any] = {"Tags": run.tags(res.key, res.name)}
        # us-east-1 refuses a LocationConstraint naming itself; every other region requires one.
        if run.region != "us-east-1":
            configuration["LocationConstraint"] = run.region
        try:
            with aws_errors(f"creating bucket {res.name}"):
                _s3(run).create_bucket(
                    Bucket=res.name, CreateBucketConfiguration=configuration, ObjectOwnership="BucketOwnerEnforced"
                )
        except AwsError as exc:
            if caused_by(exc, "BucketAlreadyExists"):
                raise self._taken(res) from exc
            if caused_by(exc, "BucketAlreadyOwnedByYou"):
                return self._adopt(run, res, deps)
            raise
        run.wait_with("s3", "bucket_exists", f"bucket {res.name} to exist", Bucket=res.name)
        if self._tags(run, res.name) is None:
            # Only an endpoint that ignores CreateBucketConfiguration.Tags (moto) gets here: the bucket is new.
            with aws_errors(f"tagging bucket {res.name}"):
                _s3(run).put_bucket_tagging(Bucket=res.name, Tagging={"TagSet": run.tags(res.key, res.name)})
        empty = {
            "public_access_block": None,
            "encryption": "",
            "versioning": "",
            "website": None,
            "policy": None,
            "cors": None,
        }
        found = observed(
            res,
            self.kind,
            res.name,
            region=run.region,
            **ownership(wanted_tags(run, res)),
            **empty,
        )
        return self.converge(run, res, found, deps)

    def _taken(self, res: Resource) -> ConflictError:
        return ConflictError(
            f"bucket name {res.name} is taken by another AWS account (S3 names are global)",
            f"Set buckets.{_purpose(res)} in your config to a name of your own, or change the stack name.",
        )

    def _not_ours(self, res: Resource, tags: Mapping[str, str]) -> ConflictError:
        owner = f"stack {tags[STACK_TAG]}" if tags.get(STACK_TAG) else UNTAGGED
        return ConflictError(
            f"bucket {res.name} already exists in this account and belongs to {owner}",
            f"Empty and delete it yourself, or set buckets.{_purpose(res)} to another name: cdpoc will not adopt it.",
        )

    def _adopt(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        """The bucket exists in this account already: finish it if it is tagged as ours, refuse it otherwise."""
        tags = self._tags(run, res.name) or {}
        if tags.get(STACK_TAG) != run.stack:
            raise self._not_ours(res, tags)
        found = self.find(run, res)
        if found is None:
            raise AwsError(f"bucket {res.name} was reported as ours but cannot be found", "Re-run `cdpoc up`.")
        return self.adopt(run, res, found, deps, "bucket", "Delete the bucket or choose another name.")

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        s3, name = _s3(run), found.id
        by_field = {c.field: c for c in changes if c.field}
        tags = dict(found.attrs.get("tags", {}))
        if "tags" in by_field or "kept" in by_field:
            # PutBucketTagging replaces the whole set: one call adds the missing tags and drops the kept marker.
            tags.update(by_field["tags"].new if "tags" in by_field else {})
            if "kept" in by_field:
                tags.pop(KEPT_TAG, None)
            with aws_errors(f"tagging bucket {name}"):
                s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(tags)})
        settings = {key: found.attrs[key] for key in SETTINGS}
        for change in changes:
            if change.field in SETTINGS:
                settings[change.field] = getattr(self, f"_set_{change.field}")(run, name, change.new, deps)
        return observed(
            res,
            self.kind,
            name,
            region=found.attrs.get("region", run.region),
            **ownership(tags),
            **self._attrs(run, res, settings),
        )

    # Each setting's change, applied: the setting as the bucket now has it (as _settings reads it).
    # The changes come in the spec's order, so Block Public Access is relaxed before a public policy goes on.

    def _set_public_access_block(self, run: AwsRun, name: str, block: Any, deps: Mapping[str, Observed]) -> Any:
        with aws_errors(f"setting Block Public Access on {name}"):
            _s3(run).put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=dict(block))
        return dict(block)

    def _set_encryption(self, run: AwsRun, name: str, algorithm: Any, deps: Mapping[str, Observed]) -> Any:
        with aws_errors(f"turning on default encryption of {name}"):
            _s3(run).put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm}}]
                },
            )
        return algorithm

    def _set_versioning(self, run: AwsRun, name: str, status: Any, deps: Mapping[str, Observed]) -> Any:
        with aws_errors(f"setting the versioning of {name} to {status}"):
            _s3(run).put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
        return status

    def _set_website(self, run: AwsRun, name: str, website: Any, deps: Mapping[str, Observed]) -> Any:
        if website is None:
            ignore_missing(
                f"removing the website of {name}", _s3(run).delete_bucket_website, BUCKET_MISSING, Bucket=name
            )
            return None
        with aws_errors(f"configuring the website of {name}"):
            _s3(run).put_bucket_website(
                Bucket=name,
                WebsiteConfiguration={
                    "IndexDocument": {"Suffix": website["index"]},
                    "ErrorDocument": {"Key": website["error"]},
                },
            )
        return dict(website)

    def _set_policy(self, run: AwsRun, name: str, policy: Any, deps: Mapping[str, Observed]) -> Any:
        if policy is None:
            ignore_missing(f"removing the policy of {name}", _s3(run).delete_bucket_policy, BUCKET_MISSING, Bucket=name)
            return None
        self._put_public_policy(run, name, policy)
        return normalize_policy(policy)

    def _set_cors(self, run: AwsRun, name: str, rules: Any, deps: Mapping[str, Observed]) -> Any:
        if rules is None:
            ignore_missing(f"removing the CORS of {name}", _s3(run).delete_bucket_cors, BUCKET_MISSING, Bucket=name)
            return None
        if rules and isinstance(rules[0], CorsRule):
            # The plan ran before the origin's bucket existed; the executor has made it since.
            rules = _cors_rules(rules, deps)
            if rules is None:
                raise AwsError(f"setting CORS on {name}: an origin's bucket has no website address yet")
        with aws_errors(f"setting CORS on {name}"):
            _s3(run).put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
        return _normalize_cors(rules)

    def _put_public_policy(self, run: AwsRun, name: str, policy: str) -> None:
        """Put the public-read policy. A bare AccessDenied here almost always means the account-level block."""
        delay = run.waits.poll_initial
        for attempt in range(1, PUBLIC_POLICY_ATTEMPTS + 1):
            try:
                with aws_errors(f"putting the public-read policy on {name}"):
                    _s3(run).put_bucket_policy(Bucket=name, Policy=policy)
                return
            except AwsError as exc:
                if not caused_by(exc, "AccessDenied"):
                    raise
                if attempt == PUBLIC_POLICY_ATTEMPTS:
                    raise self._public_policy_refused(run, name) from exc
                run.pause(delay)
                delay = min(delay * 2, run.waits.poll_max)

    def _public_policy_refused(self, run: AwsRun, name: str) -> AwsError:
        account = account_id(run)
        return AwsError(
            f"S3 refused the public-read policy of website bucket {name} (AccessDenied). The bucket's own Block "
            f"Public Access allows it, so S3 Block Public Access is on for the whole account {account} "
            "(BlockPublicPolicy / RestrictPublicBuckets), or your credentials lack s3:PutBucketPolicy.",
            "An account-wide Block Public Access is a guardrail your account's administrators set for every bucket: "
            "cdpoc will not ask you to weaken it. Run the stack in an account meant for public test sites (your "
            "organisation's sandbox account), or ask the administrators whether this one may host one; the API "
            "behind the load balancer does not depend on the website.",
        )

    def keep(self, run: AwsRun, found: Observed) -> None:
        tags = self._tags(run, found.id) or {}
        if tags.get(STACK_TAG) != run.stack:
            raise self._not_ours(Resource(found.key, self.kind, found.id), tags)
        if not is_kept(tags):
            with aws_errors(f"tagging bucket {found.id} as kept data"):
                _s3(run).put_bucket_tagging(
                    Bucket=found.id, Tagging={"TagSet": tag_list({**tags, KEPT_TAG: KEPT_VALUE})}
                )

    def delete(self, run: AwsRun, found: Observed) -> None:
        if not self._empty(run, found.id):
            return
        try:
            with aws_errors(f"deleting bucket {found.id}"):
                _s3(run).delete_bucket(Bucket=found.id)
        except AwsError as exc:
            if caused_by(exc, "NoSuchBucket"):
                return
            if caused_by(exc, "BucketNotEmpty"):
                # Something wrote to it while we emptied it; the sweeper retries (and we empty it again).
                raise DependencyViolation(f"bucket {found.id} is not empty yet") from exc
            raise

    def _empty(self, run: AwsRun, name: str) -> bool:
        """Delete every object version and delete marker; False when the bucket is already gone."""
        s3 = _s3(run)
        try:
            with aws_errors(f"listing the object versions of {name}"):
                for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
                    run.check_cancelled()
                    keys = [
                        {"Key": item["Key"], "VersionId": item["VersionId"]}
                        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                    ]
                    for batch in chunks(keys, DELETE_BATCH):
                        self._delete_batch(run, name, batch)
        except AwsError as exc:
            if caused_by(exc, "NoSuchBucket"):
                return False
            raise
        return True

    def _delete_batch(self, run: AwsRun, name: str, batch: Sequence[Mapping[str, str]]) -> None:
        with aws_errors(f"deleting {len(batch)} object version(s) from {name}"):
            reply = _s3(run).delete_objects(Bucket=name, Delete={"Objects": list(batch), "Quiet": True})
        errors = reply.get("Errors", [])
        if errors:
            first = errors[0]
            raise AwsError(
                f"emptying bucket {name}: {len(errors)} object version(s) not deleted, e.g. "
                f"{first.get('Key')} ({first.get('Code')}: {first.get('Message')})",
                "Object Lock or a bucket policy may protect them; remove that and re-run `cdpoc down`.",
            )

    def describe(self, found: Observed) -> str:
        url = found.attrs.get("website_url")
        return f"{found.id} ({url})" if url else found.id


@dataclass(frozen=True)
class BucketUsage:
    objects: int
    bytes: int
    complete: bool  # False when the count stopped at USAGE_LIMIT objects

    def describe(self) -> str:
        more = "" if self.complete else "+"
        return f"{self.objects}{more} object(s), {human_bytes(self.bytes)}{more}"


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def bucket_usage(run: AwsRun, name: str, limit: int = USAGE_LIMIT) -> BucketUsage | None:
    """How many objects (current versions) the bucket holds and their size; None when it is gone."""
    objects = size = 0
    try:
        with aws_errors(f"counting the objects of bucket {name}"):
            for page in _s3(run).get_paginator("list_objects_v2").paginate(Bucket=name):
                contents = page.get("Contents", [])
                objects += len(contents)
                size += sum(int(item.get("Size", 0)) for item in contents)
                if objects >= limit:
                    return BucketUsage(objects, size, complete=not page.get("IsTruncated"))
    except AwsError as exc:
        if caused_by(exc, "NoSuchBucket"):
            return None
        raise
    return BucketUsage(objects, size, complete=True)


# --- SSM parameters -------------------------------------------------------------------------------

PASSWORD_BYTES = 32  # secrets.token_urlsafe(32) gives 43 URL-safe characters.
SECURE = "SecureString"
# What a plan shows for a SecureString's value, old and new: never the value, nor a digest of it (a
# digest of a short secret can be guessed back).
SECRET = "(secret)"


def generate_password() -> str:
    """A URL-safe random password; never starting with "-", so no command line takes it for an option."""
    while True:
        value = secrets.token_urlsafe(PASSWORD_BYTES)
        if value[0].isalnum():
            return value


def _ssm(run: AwsRun) -> Any:
    return run.client("ssm")


# The password comes from the user's shell (e.g. `read -rs PASSWORD`), never from cdpoc's output.
PASSWORD_WORD = '"$PASSWORD"'


def restore_command(run: AwsRun, res: Resource) -> str:
    """The AWS CLI command that puts a lost password back as `up` would have created it (name, type, tags)."""
    words = [
        "aws", "ssm", "put-parameter", "--region", run.region, "--name", res.name,
        "--type", spec_of(res, ParameterSpec).type, "--value", PASSWORD_WORD,
        "--tags", *(f"Key={t['Key']},Value={t['Value']}" for t in run.tags(res.key, res.name)),
    ]  # fmt: skip
    return " ".join(word if word == PASSWORD_WORD else shlex.quote(word) for word in words)


class ParameterHandler(Handler):
    kind = "ssm_parameter"
    label = "SSM parameter"
    arn_types = ("ssm:parameter",)
    spec_type = ParameterSpec

    def _tags(self, run: AwsRun, name: str) -> dict[str, str]:
        with aws_errors(f"reading the tags of parameter {name}"):
            reply = _ssm(run).list_tags_for_resource(ResourceType="Parameter", ResourceId=name)
        return tag_map(reply.get("TagList"))

    def _describe(self, run: AwsRun, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with aws_errors("listing SSM parameters"):
            return [
                p
                for page in _ssm(run).get_paginator("describe_parameters").paginate(ParameterFilters=filters)
                for p in page["Parameters"]
            ]

    def _plain_values(self, run: AwsRun, names: list[str]) -> dict[str, str]:
        """Values of String parameters only: SecureString values are never read."""
        values: dict[str, str] = {}
        for batch in chunks(names, 10):
            with aws_errors("reading SSM parameter values"):
                reply = _ssm(run).get_parameters(Names=list(batch), WithDecryption=False)
            values.update({p["Name"]: p["Value"] for p in reply["Parameters"] if p["Type"] == "String"})
        return values

    def _observe(self, run: AwsRun, params: list[dict[str, Any]], key: str = "") -> dict[str, Observed]:
        plain = self._plain_values(run, [p["Name"] for p in params if p["Type"] == "String"])
        result = {}
        for param in params:
            tags = self._tags(run, param["Name"])
            attrs: dict[str, Any] = {
                "type": param["Type"],
                "description": param.get("Description", ""),
                **ownership(tags),
                "kept": is_kept(tags),
            }
            component = attrs["component"]
            if param["Name"] in plain:
                attrs["value"] = plain[param["Name"]]
            result[key or component] = observed(key or component, self.kind, param["Name"], **attrs)
        return result

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        params = self._describe(run, [{"Key": f"tag:{STACK_TAG}", "Values": [run.stack]}])
        return {k: v for k, v in self._observe(run, params).items() if k and v.attrs["stack"] == run.stack}

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        found = super().find(run, res)
        if found is not None and found.id == res.name:
            return found
        # Not tagged as ours: a parameter of that name may still exist (someone else's); plan shows it.
        same_name = self._describe(run, [{"Key": "Name", "Option": "Equals", "Values": [res.name]}])
        return self._observe(run, same_name, res.key)[res.key] if same_name else None

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, ParameterSpec)
        conflicts = [c for c in ownership_changes(run, res, found, "parameter") if not c.in_place]
        if conflicts:
            return conflicts
        have_tags = found.attrs.get("tags", {})
        changes = tags_change(ParameterSpec, have_tags, missing_tags(run, res, have_tags))
        if found.attrs.get("kept"):
            changes.append(field_change(ParameterSpec, "kept", True, False, text=TAKEN_BACK))
        # PutParameter rewrites type and description only with the value, and a generated password's value
        # is never read back: its type cannot change in place (it would take a new password), and its
        # description is written once, with it (a password put back by hand may have none).
        if found.attrs["type"] != spec.type:
            change = field_change(ParameterSpec, "type", found.attrs["type"], spec.type)
            changes.append(replace(change, in_place=not spec.generate))
        if spec.value_from is not None:
            if found.attrs.get("description", "") != spec.description:
                changes.append(
                    field_change(ParameterSpec, "description", found.attrs.get("description"), spec.description)
                )
            changes.extend(self._value_changes(run, spec, spec.value_from, found, deps))
        return changes

    def _value_changes(
        self, run: AwsRun, spec: ParameterSpec, source: Ref, found: Observed, deps: Mapping[str, Observed | None]
    ) -> list[Change]:
        """The value taken from another resource. A SecureString's value never appears in the plan, nor in
        the Change: it is compared here (read decrypted, kept nowhere) and shown as (secret)."""
        wanted = source.value(deps)
        if spec.type == SECURE:
            if wanted is not None and not self._secret_differs(run, found.id, wanted):
                return []
            text = f"value: {SECRET} → {SECRET if wanted is not None else source.shown(deps)}"
            return [field_change(ParameterSpec, "value", SECRET, source, text=text)]
        have = found.attrs.get("value")
        if wanted is not None and have == wanted:
            return []
        text = f"value: {have or '(unknown)'} → {source.shown(deps)}"
        return [field_change(ParameterSpec, "value", have, wanted or source, text=text)]

    def _secret_differs(self, run: AwsRun, name: str, wanted: str) -> bool:
        with aws_errors(f"comparing the value of parameter {name}"):
            reply = _ssm(run).get_parameter(Name=name, WithDecryption=True)
        return bool(reply["Parameter"]["Value"] != wanted)

    def missing(self, run: AwsRun, res: Resource, found: Mapping[str, Observed | None]) -> list[Change]:
        """A generated password must not be generated anew while the database it was given to exists."""
        spec = spec_of(res, ParameterSpec)
        if not spec.generate or spec.consumed_by is None:
            return []
        consumer = spec.consumed_by.key
        user = found.get(consumer)
        if user is not None:
            holder = f"{consumer} ({user.id})"
        else:
            kept = kept_snapshots(run, consumer)
            if not kept:
                return []
            holder = f"the data of {consumer} kept in snapshot {describe_snapshot(kept[0])}"
        return [
            Change(
                f"parameter {res.name} is missing, but {holder} was set up with the password it held: a new "
                f"password would lock its users out. If you know the password, put it back: "
                f"{restore_command(run, res)} (then `cdpoc up`). If not, delete the database with the stack: "
                "`cdpoc down` (without --keep-data; its data and any kept data go), then `cdpoc up`",
                in_place=False,
            )
        ]

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, ParameterSpec)
        value = generate_password() if spec.generate else spec.value_from.need(deps) if spec.value_from else None
        if value is None:
            raise AwsError(f"parameter {res.name}: its spec neither generates a value nor names where it comes from")
        try:
            with aws_errors(f"creating parameter {res.name}"):
                _ssm(run).put_parameter(
                    Name=res.name,
                    Value=value,
                    Type=spec.type,
                    Description=spec.description,
                    Tier="Standard",
                    Tags=run.tags(res.key, res.name),
                )
        except AwsError as exc:
            if not caused_by(exc, "ParameterAlreadyExists"):
                raise
            return self._adopt(run, res, deps)
        return self._result(run, res, spec.type, spec.description, value)

    def _adopt(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        """It exists already (a run interrupted after PutParameter): keep it, and its value, if it is ours."""
        found = self.find(run, res)
        if found is None:
            raise AwsError(f"parameter {res.name} was reported to exist but cannot be found", "Re-run `cdpoc up`.")
        hint = f"Delete parameter {res.name} yourself if it is not needed, or choose another stack name."
        return self.adopt(run, res, found, deps, "parameter", hint)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        spec = spec_of(res, ParameterSpec)
        by_field = {c.field: c for c in changes if c.field}
        if "tags" in by_field:
            with aws_errors(f"tagging parameter {found.id}"):
                _ssm(run).add_tags_to_resource(
                    ResourceType="Parameter", ResourceId=found.id, Tags=tag_list(by_field["tags"].new)
                )
        if "kept" in by_field:
            with aws_errors(f"taking parameter {found.id} back from kept data"):
                _ssm(run).remove_tags_from_resource(ResourceType="Parameter", ResourceId=found.id, TagKeys=[KEPT_TAG])
        value = found.attrs.get("value")
        kind, description = found.attrs["type"], found.attrs.get("description", "")
        if by_field.keys() & {"value", "type", "description"}:
            if spec.value_from is None:
                raise ConflictError(f"parameter {found.id}: a generated password is never rewritten in place")
            # One PutParameter writes value, type and description. Overwrite cannot carry Tags (an API
            # rule); the tags stay from the create.
            value, kind, description = spec.value_from.need(deps), spec.type, spec.description
            with aws_errors(f"updating parameter {found.id}"):
                _ssm(run).put_parameter(Name=found.id, Value=value, Type=kind, Description=description, Overwrite=True)
        return self._result(run, res, kind, description, value)

    def _result(self, run: AwsRun, res: Resource, kind: str, description: str, value: str | None) -> Observed:
        attrs: dict[str, Any] = {
            "type": kind,
            "description": description,
            **ownership(wanted_tags(run, res)),
        }
        if kind == "String" and value is not None:
            attrs["value"] = value
        return observed(res, self.kind, res.name, **attrs)

    def keep(self, run: AwsRun, found: Observed) -> None:
        tags = self._tags(run, found.id)
        if tags.get(STACK_TAG) != run.stack:
            owner = f"stack {tags[STACK_TAG]}" if tags.get(STACK_TAG) else UNTAGGED
            raise ConflictError(f"parameter {found.id} belongs to {owner}: cdpoc will not keep it as this stack's")
        if not is_kept(tags):
            with aws_errors(f"tagging parameter {found.id} as kept data"):
                _ssm(run).add_tags_to_resource(
                    ResourceType="Parameter", ResourceId=found.id, Tags=[{"Key": KEPT_TAG, "Value": KEPT_VALUE}]
                )

    def delete(self, run: AwsRun, found: Observed) -> None:
        ignore_missing(
            f"deleting parameter {found.id}", _ssm(run).delete_parameter, ("ParameterNotFound",), Name=found.id
        )

    def describe(self, found: Observed) -> str:
        kind = found.attrs.get("type", "")
        if kind == "String" and found.attrs.get("value"):
            return f"{found.id} ({kind}: {found.attrs['value']})"
        return f"{found.id} ({kind})" if kind else found.id


HANDLERS: tuple[Handler, ...] = (BucketHandler(), ParameterHandler())
