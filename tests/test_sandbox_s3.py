"""S3 in the sandbox as on AWS: a bucket carries the tags given to CreateBucket from its first moment, and its
policy's statements apply only when their conditions hold."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from cdpoc.stack.storage import tls_only_policy

pytestmark = pytest.mark.usefixtures("aws")


def test_create_bucket_tags_the_new_bucket_and_a_repeat_leaves_them() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    tags = [{"Key": "cdpoc:stack", "Value": "t1"}, {"Key": "cdpoc:component", "Value": "bucket.web"}]
    s3.create_bucket(Bucket="tagged-at-birth", CreateBucketConfiguration={"Tags": tags})
    assert s3.get_bucket_tagging(Bucket="tagged-at-birth")["TagSet"] == tags
    # us-east-1 answers a repeated CreateBucket of one's own bucket with success; it does not retag it.
    s3.create_bucket(Bucket="tagged-at-birth", CreateBucketConfiguration={"Tags": [{"Key": "other", "Value": "x"}]})
    assert s3.get_bucket_tagging(Bucket="tagged-at-birth")["TagSet"] == tags


def _deny_put(condition: dict[str, object] | None = None) -> dict[str, object]:
    statement: dict[str, object] = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::guarded/*",
    }
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def test_a_bucket_policy_statement_applies_only_when_its_condition_holds() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="guarded")
    # SDK calls reach S3 over HTTPS: a TLS-only policy lets them through (moto 5.2.5 refused them all).
    s3.put_bucket_policy(Bucket="guarded", Policy=json.dumps(tls_only_policy("guarded")))
    s3.put_object(Bucket="guarded", Key="a", Body=b"1")
    assert s3.get_object(Bucket="guarded", Key="a")["Body"].read() == b"1"
    # A condition on a key the request does not carry is false: the Deny does not apply.
    s3.put_bucket_policy(Bucket="guarded", Policy=json.dumps(_deny_put({"StringEquals": {"aws:SourceVpce": "v"}})))
    s3.put_object(Bucket="guarded", Key="b", Body=b"2")
    # Without a condition, the Deny applies to everyone.
    s3.put_bucket_policy(Bucket="guarded", Policy=json.dumps(_deny_put()))
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="guarded", Key="c", Body=b"3")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
