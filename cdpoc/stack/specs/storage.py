"""Specs of the storage kinds: S3 buckets and SSM parameters.

Every bucket setting has a Put call (and the optional ones a Delete call), so none is force_new: a
bucket's name is its identity (Resource.name), not a field. A parameter's type can change only by
rewriting its value, which cdpoc never does for a generated password (the handler makes that a conflict).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cdpoc.spec import Ref, Spec


@dataclass(frozen=True)
class PublicAccessBlock:
    """The bucket's S3 Block Public Access flags."""

    block_public_acls: bool = True
    ignore_public_acls: bool = True
    block_public_policy: bool = True
    restrict_public_buckets: bool = True

    def api(self) -> dict[str, bool]:
        """As PutPublicAccessBlock takes it (and GetPublicAccessBlock returns it)."""
        return {
            "BlockPublicAcls": self.block_public_acls,
            "IgnorePublicAcls": self.ignore_public_acls,
            "BlockPublicPolicy": self.block_public_policy,
            "RestrictPublicBuckets": self.restrict_public_buckets,
        }


@dataclass(frozen=True)
class Website:
    """Static website hosting: the index and error documents."""

    index: str
    error: str


@dataclass(frozen=True)
class CorsRule:
    """One CORS rule; its origins are other resources' attributes (a website bucket's website_url)."""

    origins: tuple[Ref, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    max_age: int = 0


@dataclass(frozen=True)
class BucketSpec(Spec):
    """An S3 bucket. versioning False means never Enabled (S3 can only suspend it, not undo it). policy:
    canonical JSON ("" for none); website, policy and cors the spec leaves out are removed.
    keep_data: `down --keep-data` keeps the bucket (cdpoc.spec.keeps_data)."""

    kind: ClassVar[str] = "bucket"
    encryption: str
    public_access_block: PublicAccessBlock
    versioning: bool = False
    website: Website | None = None
    policy: str = ""
    cors: tuple[CorsRule, ...] = ()
    keep_data: bool = False


@dataclass(frozen=True)
class UsedBy:
    """A resource set up with this one's value that depends on it: the reverse of a Ref (no edge here;
    the user has the edge), named so that the value is never replaced while the user exists."""

    key: str


@dataclass(frozen=True)
class ParameterSpec(Spec):
    """An SSM parameter: a generated password (generate, SecureString, never read back), or a value taken
    from another resource's attribute (value_from). keep_data: `down --keep-data` keeps it.

    PutParameter rewrites type and description only together with the value, so for a generated password
    the type is not changeable in place (the handler's conflict) and the description is written once."""

    kind: ClassVar[str] = "ssm_parameter"
    type: str
    description: str
    value_from: Ref | None = None
    generate: bool = False
    consumed_by: UsedBy | None = None
    keep_data: bool = False
