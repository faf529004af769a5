"""Storage: the artifact, web and uploads buckets, and the SSM parameters MongoDB and the app read.

The buckets' names come from config or from the stack name, account and region (StackNames.bucket).
The two MongoDB passwords are generated at the first `up` and kept; the host parameter follows the
MongoDB instance's private IP (instance.mongodb is declared by the compute area).

keep_data: what `down --keep-data` keeps (the uploads and the passwords the kept MongoDB data was set
up with). consumed_by: the resource set up with a generated secret, whose existence forbids making a
new one.
"""

from __future__ import annotations

from typing import Any

from cdpoc.model import Resource
from cdpoc.spec import Ref
from cdpoc.spec import declare as declare_spec
from cdpoc.stack.iam import allow, bucket_arn, document
from cdpoc.stack.names import StackNames
from cdpoc.stack.parts import DATABASE, SITE_BUCKET
from cdpoc.stack.specs.iam import policy_text
from cdpoc.stack.specs.storage import BucketSpec, CorsRule, ParameterSpec, PublicAccessBlock, UsedBy, Website

ENCRYPTION = "AES256"  # SSE-S3: no key to manage, and no KMS permissions for readers.

# New buckets come with all four flags on; the website bucket turns off only the two that block a
# public bucket policy. ACLs stay blocked (and disabled: BucketOwnerEnforced).
PRIVATE = PublicAccessBlock()
PUBLIC_POLICY_ONLY = PublicAccessBlock(block_public_policy=False, restrict_public_buckets=False)

WEBSITE = Website(index="index.html", error="error.html")

# The page downloads files with presigned URLs and may upload the same way.
UPLOADS_CORS = CorsRule(
    origins=(Ref(SITE_BUCKET.key, "website_url"),),
    methods=("GET", "HEAD", "PUT", "POST"),
    headers=("*",),
    expose=("ETag",),
    max_age=3000,
)

# The passwords are given to the MongoDB instance, which depends on them (so no Ref from here).
MONGODB_INSTANCE = UsedBy(DATABASE.key)


def public_read_policy(bucket: str) -> dict[str, Any]:
    """Anyone may GET the website's objects; nothing else (no list, no write)."""
    statement = allow("PublicReadObjects", ["s3:GetObject"], [bucket_arn(bucket, "*")])
    statement["Principal"] = "*"
    return document(statement)


def tls_only_policy(bucket: str) -> dict[str, Any]:
    """Every request over plain HTTP is refused, whoever makes it: AWS's documented way to enforce encryption
    in transit (https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html, "Enforce
    encryption of data in transit"). Not for the website bucket: S3 website endpoints speak HTTP only."""
    statement: dict[str, Any] = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn(bucket), bucket_arn(bucket, "*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return document(statement)


def password(names: StackNames, key: str, path: str, description: str) -> Resource:
    """A generated MongoDB password, kept with --keep-data like the database it was set up with."""
    return declare_spec(
        key,
        names.parameter(path),
        ParameterSpec(
            type="SecureString",
            description=description,
            generate=True,
            consumed_by=MONGODB_INSTANCE,
            keep_data=True,
        ),
    )


def private_bucket(key: str, name: str, **settings: Any) -> Resource:
    """A bucket no one reaches anonymously or over plain HTTP: every private bucket of the stack is one."""
    spec = BucketSpec(
        encryption=ENCRYPTION,
        public_access_block=PRIVATE,
        policy=policy_text(tls_only_policy(name)),
        **settings,
    )
    return declare_spec(key, name, spec)


def declare(names: StackNames) -> list[Resource]:
    web = names.bucket("web")
    return [
        private_bucket("bucket.artifacts", names.bucket("artifacts"), versioning=True),
        declare_spec(
            SITE_BUCKET.key,
            web,
            BucketSpec(
                encryption=ENCRYPTION,
                public_access_block=PUBLIC_POLICY_ONLY,
                website=WEBSITE,
                policy=policy_text(public_read_policy(web)),
            ),
        ),
        private_bucket("bucket.uploads", names.bucket("uploads"), cors=(UPLOADS_CORS,), keep_data=True),
        password(names, "param.mongodb.admin-password", "mongodb/admin-password", "MongoDB administrator password"),
        password(
            names, "param.mongodb.app-password", "mongodb/app-password", "MongoDB password of the application user"
        ),
        declare_spec(
            "param.mongodb.host",
            names.parameter("mongodb/host"),
            ParameterSpec(
                type="String",
                description="private IP of the MongoDB instance",
                value_from=Ref(DATABASE.key, "private_ip"),
            ),
        ),
    ]
