"""Two stacks in one account, and resources that merely hold a name a stack wants: the real CLI against
the sandbox. A resource is a stack's only when its own cdpoc:stack tag says so."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from cdpoc.cli import app
from cdpoc.sandbox.server import Sandbox

ACCOUNT = "123456789012"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with Sandbox() as sandbox:
        yield sandbox.endpoint


def cdpoc(endpoint: str, name: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--endpoint-url", endpoint, "--name", name, *args])
    return result.exit_code, result.output


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def tagged_vpcs(endpoint: str, stack: str) -> list[dict[str, Any]]:
    return client(endpoint, "ec2").describe_vpcs(Filters=[{"Name": "tag:cdpoc:stack", "Values": [stack]}])["Vpcs"]


def test_two_stacks_with_default_settings_live_side_by_side(endpoint: str) -> None:
    for name in ("alpha", "beta"):
        code, out = cdpoc(endpoint, name, "up")
        assert code == 0, out
    repositories = {r["repositoryName"] for r in client(endpoint, "codecommit").list_repositories()["repositories"]}
    assert {"alpha-s3upload", "beta-s3upload"} <= repositories

    code, out = cdpoc(endpoint, "beta", "down", "--yes")
    assert code == 0, out
    assert "Left alone" not in out  # nothing of alpha's is even looked at as a candidate
    assert "Leftover scan: nothing tagged cdpoc:stack=beta remains" in out

    code, out = cdpoc(endpoint, "alpha", "plan")
    assert code == 0 and "No changes" in out, out
    assert len(tagged_vpcs(endpoint, "alpha")) == 1
    assert cdpoc(endpoint, "alpha", "down", "--yes")[0] == 0


def test_same_named_resources_of_others_are_refused_and_never_touched(endpoint: str) -> None:
    """An untagged bucket holding the stack's uploads name (with someone's objects), a repository of
    another stack holding its repository name, and another stack's NAT gateway (which the sandbox, like
    moto, returns whatever the tag filter says): `up` refuses and creates nothing, `down` leaves them."""
    s3, codecommit, ec2 = client(endpoint, "s3"), client(endpoint, "codecommit"), client(endpoint, "ec2")
    bucket = f"gamma-{ACCOUNT}-{REGION}-uploads"
    s3.create_bucket(Bucket=bucket)
    for n in range(3):
        s3.put_object(Bucket=bucket, Key=f"mine/{n}.txt", Body=b"precious")
    codecommit.create_repository(repositoryName="gamma-s3upload", tags={"cdpoc:stack": "other"})
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(
        SubnetId=subnet,
        AllocationId=allocation,
        TagSpecifications=[
            {
                "ResourceType": "natgateway",
                "Tags": [{"Key": "cdpoc:stack", "Value": "other"}, {"Key": "cdpoc:component", "Value": "nat.a"}],
            }
        ],
    )["NatGateway"]["NatGatewayId"]

    code, out = cdpoc(endpoint, "gamma", "up")
    assert code == 2, out
    assert re.search(rf"bucket {bucket} exists and belongs to nothing cdpoc manages", out), out
    assert "gamma-s3upload exists and belongs to stack other" in out
    assert "cdpoc down" not in out
    assert tagged_vpcs(endpoint, "gamma") == []

    code, out = cdpoc(endpoint, "gamma", "down", "--yes")
    assert code == 0, out
    assert re.search(rf"Left alone: S3 bucket {bucket}.*belongs to nothing cdpoc manages", out), out
    assert re.search(r"Left alone: pipeline source .*gamma-s3upload.*belongs to stack other", out), out
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 3
    assert codecommit.get_repository(repositoryName="gamma-s3upload")["repositoryMetadata"]
    assert ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "available"
