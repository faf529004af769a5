"""S3 in the sandbox as on AWS: a bucket carries the tags given to CreateBucket from its first moment."""

from __future__ import annotations

import boto3
import pytest

pytestmark = pytest.mark.usefixtures("aws")


def test_create_bucket_tags_the_new_bucket_and_a_repeat_leaves_them() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    tags = [{"Key": "cdpoc:stack", "Value": "t1"}, {"Key": "cdpoc:component", "Value": "bucket.web"}]
    s3.create_bucket(Bucket="tagged-at-birth", CreateBucketConfiguration={"Tags": tags})
    assert s3.get_bucket_tagging(Bucket="tagged-at-birth")["TagSet"] == tags
    # us-east-1 answers a repeated CreateBucket of one's own bucket with success; it does not retag it.
    s3.create_bucket(Bucket="tagged-at-birth", CreateBucketConfiguration={"Tags": [{"Key": "other", "Value": "x"}]})
    assert s3.get_bucket_tagging(Bucket="tagged-at-birth")["TagSet"] == tags
