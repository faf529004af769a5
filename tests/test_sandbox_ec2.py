"""The sandbox's EC2 where moto 5.2.5 differs from AWS: network ACL and instance profile associations."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

REGION = "us-east-1"


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def acl_of(ec2: Any, subnet_id: str) -> tuple[str, str]:
    """(ACL id, association id) of the subnet's one association."""
    acls = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])
    [acl] = acls["NetworkAcls"]
    [association] = [a for a in acl["Associations"] if a["SubnetId"] == subnet_id]
    return acl["NetworkAclId"], association["NetworkAclAssociationId"]


def test_replacing_an_association_that_is_gone_is_refused_and_changes_nothing() -> None:
    """A retry after a lost answer names the association the first attempt replaced: AWS answers
    InvalidAssociationID.NotFound (moto 5.2.5: StopIteration, an HTTP 500 that botocore retries)."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
        default_acl, first = acl_of(ec2, subnet)

        moved = ec2.replace_network_acl_association(AssociationId=first, NetworkAclId=acl)["NewAssociationId"]
        with pytest.raises(ClientError) as again:
            ec2.replace_network_acl_association(AssociationId=first, NetworkAclId=acl)
        assert code(again) == "InvalidAssociationID.NotFound"
        assert acl_of(ec2, subnet) == (acl, moved)
        assert default_acl != acl


def test_an_unknown_acl_is_refused_before_the_subnet_leaves_its_own() -> None:
    """AWS refuses a NetworkAclId that does not exist and the subnet keeps its ACL (moto 5.2.5 removed the
    subnet's association first, leaving it with none)."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        before = acl_of(ec2, subnet)
        with pytest.raises(ClientError) as refused:
            ec2.replace_network_acl_association(AssociationId=before[1], NetworkAclId="acl-0123456789abcdef0")
        assert code(refused) == "InvalidNetworkAclID.NotFound"
        assert acl_of(ec2, subnet) == before


# --- instance profile associations


def two_profiles() -> list[str]:
    iam = boto3.client("iam", region_name=REGION)
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    arns = []
    for name in ("first", "second"):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
        arns.append(iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"])
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return arns


def test_an_instance_shows_the_profile_its_replaced_association_holds() -> None:
    """DescribeInstances shows the profile ReplaceIamInstanceProfileAssociation gave the instance (moto 5.2.5's
    own backend replaces the association and leaves the instance showing the one it was launched with)."""
    from moto.ec2.models import ec2_backends

    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        first, second = two_profiles()
        launched = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, IamInstanceProfile={"Arn": first})
        instance_id = launched["Instances"][0]["InstanceId"]
        [association] = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]

        ec2.replace_iam_instance_profile_association(
            IamInstanceProfile={"Arn": second}, AssociationId=association["AssociationId"]
        )

        shown = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        assert shown["IamInstanceProfile"]["Arn"] == second
        [now] = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
        assert now["IamInstanceProfile"]["Arn"] == second and now["AssociationId"] == association["AssociationId"]

        # moto's backend alone: the association moves, the instance does not follow
        backend = ec2_backends["123456789012"][REGION]
        backend.replace_iam_instance_profile_association(association["AssociationId"], iam_instance_profile_arn=first)
        assert backend.get_instance(instance_id).iam_instance_profile["Arn"] == second
