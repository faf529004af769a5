"""Storage: the artifact, web and uploads buckets, and the SSM parameters MongoDB and the app read.

The buckets' names come from config or from the stack name, account and region (StackNames.bucket).
The two MongoDB passwords are generated at the first `up` and kept; the host parameter follows the
MongoDB instance's private IP (instance.mongodb is declared by the compute area).

"keep_data": what `down --keep-data` keeps (the uploads and the passwords the kept MongoDB data was set
up with). "consumed_by": the resource set up with a generated secret, whose existence forbids making a
new one.
"""

from __future__ import annotations

from typing import Any

from cdpoc.model import Resource
from cdpoc.stack.iam import allow, bucket_arn, document
from cdpoc.stack.names import StackNames
from cdpoc.stack.parts import DATABASE, SITE_BUCKET

ENCRYPTION = "AES256"  # SSE-S3: no key to manage, and no KMS permissions for readers.

# New buckets come with all four flags on; the website bucket turns off only the two that block a
# public bucket policy. ACLs stay blocked (and disabled: BucketOwnerEnforced).
PRIVATE = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
PUBLIC_POLICY_ONLY = {**PRIVATE, "BlockPublicPolicy": False, "RestrictPublicBuckets": False}

WEBSITE = {"index": "index.html", "error": "error.html"}

# The page downloads files with presigned URLs and may upload the same way.
UPLOADS_CORS = {
    "origins_from": (SITE_BUCKET.key,),
    "methods": ("GET", "HEAD", "PUT", "POST"),
    "headers": ("*",),
    "expose": ("ETag",),
    "max_age": 3000,
}

MONGODB_INSTANCE = DATABASE.key


def public_read_policy(bucket: str) -> dict[str, Any]:
    """Anyone may GET the website's objects; nothing else (no list, no write)."""
    statement = allow("PublicReadObjects", ["s3:GetObject"], [bucket_arn(bucket, "*")])
    statement["Principal"] = "*"
    return document(statement)


def declare(names: StackNames) -> list[Resource]:
    web = names.bucket("web")
    return [
        Resource(
            "bucket.artifacts",
            "bucket",
            names.bucket("artifacts"),
            {"encryption": ENCRYPTION, "versioning": True, "public_access_block": PRIVATE},
        ),
        Resource(
            SITE_BUCKET.key,
            SITE_BUCKET.kind,
            web,
            {
                "encryption": ENCRYPTION,
                "public_access_block": PUBLIC_POLICY_ONLY,
                "website": WEBSITE,
                "policy": public_read_policy(web),
            },
        ),
        Resource(
            "bucket.uploads",
            "bucket",
            names.bucket("uploads"),
            {"encryption": ENCRYPTION, "public_access_block": PRIVATE, "cors": UPLOADS_CORS, "keep_data": True},
            (SITE_BUCKET.key,),
        ),
        Resource(
            "param.mongodb.admin-password",
            "ssm_parameter",
            names.parameter("mongodb/admin-password"),
            {
                "type": "SecureString",
                "generate": True,
                "description": "MongoDB administrator password",
                "consumed_by": MONGODB_INSTANCE,
                "keep_data": True,
            },
        ),
        Resource(
            "param.mongodb.app-password",
            "ssm_parameter",
            names.parameter("mongodb/app-password"),
            {
                "type": "SecureString",
                "generate": True,
                "description": "MongoDB password of the application user",
                "consumed_by": MONGODB_INSTANCE,
                "keep_data": True,
            },
        ),
        Resource(
            "param.mongodb.host",
            "ssm_parameter",
            names.parameter("mongodb/host"),
            {
                "type": "String",
                "value_from": {"resource": MONGODB_INSTANCE, "attr": "private_ip"},
                "description": "private IP of the MongoDB instance",
            },
            (MONGODB_INSTANCE,),
        ),
    ]
