"""The sandbox refuses the deletes AWS refuses (cdpoc/sandbox/deletes.py), where moto 5.2.5 deletes anyway.

Each refusal: the sandbox answers with AWS's error code and changes nothing, and the same delete succeeds
once the dependency is gone. test_moto_alone_allows_every_refused_delete pins moto's own behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from cdpoc.sandbox import deletes
from cdpoc.sandbox.patching import PATCHES
from cdpoc.sandbox.simulation import SIMULATION

REGION = "us-east-1"
AMI = "ami-12c6146b"  # in moto's AMI list (MOTO_ENABLE_AMI_VALIDATION is on in the tests)


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    fake = Clock()
    SIMULATION.clock = fake
    try:
        yield fake
    finally:
        SIMULATION.reset()


@dataclass
class World:
    ec2: Any
    vpc: str
    subnet: str

    def group(self, name: str) -> str:
        return str(self.ec2.create_security_group(VpcId=self.vpc, GroupName=name, Description=name)["GroupId"])

    def instance(self, **extra: Any) -> str:
        placement = {} if "NetworkInterfaces" in extra else {"SubnetId": self.subnet}
        reply = self.ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, **placement, **extra)
        return str(reply["Instances"][0]["InstanceId"])

    def terminate(self, instance_id: str) -> None:
        self.ec2.terminate_instances(InstanceIds=[instance_id])

    def vpcs(self) -> list[str]:
        return [v["VpcId"] for v in self.ec2.describe_vpcs()["Vpcs"]]

    def subnets(self) -> list[str]:
        return [s["SubnetId"] for s in self.ec2.describe_subnets()["Subnets"]]

    def groups(self) -> list[str]:
        return [g["GroupId"] for g in self.ec2.describe_security_groups()["SecurityGroups"]]

    def nat_state(self, gateway_id: str) -> str:
        return str(self.ec2.describe_nat_gateways(NatGatewayIds=[gateway_id])["NatGateways"][0]["State"])

    def address(self, allocation_id: str) -> dict[str, Any]:
        [address] = self.ec2.describe_addresses(AllocationIds=[allocation_id])["Addresses"]
        return dict(address)


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        yield World(ec2, vpc, subnet)


def _igw(world: World) -> str:
    gateway = str(world.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"])
    world.ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    return gateway


def _attached_vpcs(world: World, gateway: str) -> list[str]:
    [igw] = world.ec2.describe_internet_gateways(InternetGatewayIds=[gateway])["InternetGateways"]
    return [a["VpcId"] for a in igw.get("Attachments", [])]


# --- DeleteVpc ---------------------------------------------------------------------------------------------


def test_a_vpc_with_a_security_group_is_refused_until_the_group_is_gone(world: World) -> None:
    group = world.group("app")
    world.ec2.delete_subnet(SubnetId=world.subnet)
    with pytest.raises(ClientError) as refused:
        world.ec2.delete_vpc(VpcId=world.vpc)
    assert code(refused) == "DependencyViolation"
    assert world.vpc in world.vpcs() and group in world.groups()

    world.ec2.delete_security_group(GroupId=group)
    world.ec2.delete_vpc(VpcId=world.vpc)  # the default group goes with the VPC, as on AWS
    assert world.vpc not in world.vpcs()


def test_a_vpc_with_an_attached_internet_gateway_is_refused_until_it_is_detached(world: World) -> None:
    gateway = _igw(world)
    world.ec2.delete_subnet(SubnetId=world.subnet)
    with pytest.raises(ClientError) as refused:
        world.ec2.delete_vpc(VpcId=world.vpc)
    assert code(refused) == "DependencyViolation"
    assert world.vpc in world.vpcs() and _attached_vpcs(world, gateway) == [world.vpc]

    world.ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    world.ec2.delete_vpc(VpcId=world.vpc)
    assert world.vpc not in world.vpcs()


def test_a_vpc_with_an_endpoint_is_refused_until_the_endpoint_is_deleted(world: World) -> None:
    endpoint = world.ec2.create_vpc_endpoint(
        VpcId=world.vpc, ServiceName=f"com.amazonaws.{REGION}.s3", VpcEndpointType="Gateway"
    )
    endpoint_id = endpoint["VpcEndpoint"]["VpcEndpointId"]
    world.ec2.delete_subnet(SubnetId=world.subnet)
    with pytest.raises(ClientError) as refused:
        world.ec2.delete_vpc(VpcId=world.vpc)
    assert code(refused) == "DependencyViolation"
    assert world.vpc in world.vpcs()

    world.ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    world.ec2.delete_vpc(VpcId=world.vpc)
    assert world.vpc not in world.vpcs()


def test_moto_itself_refuses_a_vpc_with_subnets(world: World) -> None:
    """Kept by moto 5.2.5 (and by the sandbox): the subnet check is moto's own."""
    with pytest.raises(ClientError) as refused:
        world.ec2.delete_vpc(VpcId=world.vpc)
    assert code(refused) == "DependencyViolation"


# --- DeleteSubnet ------------------------------------------------------------------------------------------


def test_a_subnet_with_an_instance_is_refused_until_it_is_terminated(world: World) -> None:
    instance = world.instance()
    with pytest.raises(ClientError) as refused:
        world.ec2.delete_subnet(SubnetId=world.subnet)
    assert code(refused) == "DependencyViolation"
    assert world.subnet in world.subnets()

    world.terminate(instance)  # a terminated instance is no dependency
    world.ec2.delete_subnet(SubnetId=world.subnet)
    assert world.subnet not in world.subnets()


def test_a_subnet_with_a_network_interface_is_refused_until_it_is_deleted(world: World) -> None:
    eni = world.ec2.create_network_interface(SubnetId=world.subnet)["NetworkInterface"]["NetworkInterfaceId"]
    with pytest.raises(ClientError) as refused:
        world.ec2.delete_subnet(SubnetId=world.subnet)
    assert code(refused) == "DependencyViolation"

    world.ec2.delete_network_interface(NetworkInterfaceId=eni)
    world.ec2.delete_subnet(SubnetId=world.subnet)
    assert world.subnet not in world.subnets()


def test_a_subnet_with_a_nat_gateway_is_refused_until_the_gateway_is_deleted(world: World, clock: Clock) -> None:
    allocation = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
    gateway = world.ec2.create_nat_gateway(SubnetId=world.subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    world.ec2.delete_nat_gateway(NatGatewayId=gateway)
    with pytest.raises(ClientError) as refused:  # `deleting` still holds the subnet
        world.ec2.delete_subnet(SubnetId=world.subnet)
    assert code(refused) == "DependencyViolation"
    assert world.subnet in world.subnets()

    clock.now += deletes.nat_deleting_seconds()
    assert world.nat_state(gateway) == "deleted"
    world.ec2.delete_subnet(SubnetId=world.subnet)
    assert world.subnet not in world.subnets()


# --- NAT gateways: deleting, then deleted ------------------------------------------------------------------


def test_a_deleted_nat_gateway_holds_its_address_while_deleting_then_lets_go(world: World, clock: Clock) -> None:
    """moto 5.2.5: `deleted` at once and the address stays associated for ever (so it can never be released)."""
    allocation = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
    gateway = world.ec2.create_nat_gateway(SubnetId=world.subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    interfaces_before = len(world.ec2.describe_network_interfaces()["NetworkInterfaces"])

    world.ec2.delete_nat_gateway(NatGatewayId=gateway)
    clock.now += deletes.nat_deleting_seconds() / 2
    world.ec2.delete_nat_gateway(NatGatewayId=gateway)  # again: still deleting, the clock not restarted
    assert world.nat_state(gateway) == "deleting"
    assert world.address(allocation).get("AssociationId")
    with pytest.raises(ClientError) as in_use:
        world.ec2.release_address(AllocationId=allocation)
    assert code(in_use) == "InvalidIPAddress.InUse"

    clock.now += deletes.nat_deleting_seconds() / 2
    assert world.nat_state(gateway) == "deleted"
    assert not world.address(allocation).get("AssociationId")  # disassociated, not released
    assert len(world.ec2.describe_network_interfaces()["NetworkInterfaces"]) == interfaces_before - 1
    world.ec2.release_address(AllocationId=allocation)
    assert not world.ec2.describe_addresses()["Addresses"]


def test_an_unknown_nat_gateway_is_not_found(world: World) -> None:
    with pytest.raises(ClientError) as missing:
        world.ec2.delete_nat_gateway(NatGatewayId="nat-0123456789abcdef0")
    assert code(missing) == "NatGatewayNotFound"


def test_the_nat_gateway_deleted_waiter_ends_once_the_time_has_passed(world: World, clock: Clock) -> None:
    allocation = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
    gateway = world.ec2.create_nat_gateway(SubnetId=world.subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    world.ec2.delete_nat_gateway(NatGatewayId=gateway)
    waiter = world.ec2.get_waiter("nat_gateway_deleted")
    with pytest.raises(Exception, match="Max attempts exceeded"):
        waiter.wait(NatGatewayIds=[gateway], WaiterConfig={"Delay": 0, "MaxAttempts": 2})
    clock.now += deletes.nat_deleting_seconds()
    waiter.wait(NatGatewayIds=[gateway], WaiterConfig={"Delay": 0, "MaxAttempts": 1})


# --- DetachInternetGateway ---------------------------------------------------------------------------------


def test_detaching_with_an_associated_elastic_ip_is_refused_until_it_is_disassociated(world: World) -> None:
    gateway = _igw(world)
    instance = world.instance()
    allocation = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
    association = world.ec2.associate_address(AllocationId=allocation, InstanceId=instance)["AssociationId"]
    with pytest.raises(ClientError) as refused:
        world.ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    assert code(refused) == "DependencyViolation"
    assert "mapped public address" in str(refused.value)
    assert _attached_vpcs(world, gateway) == [world.vpc]

    world.ec2.disassociate_address(AssociationId=association)
    world.ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    assert _attached_vpcs(world, gateway) == []


def test_detaching_with_an_instance_with_a_public_ip_is_refused_until_it_is_terminated(world: World) -> None:
    gateway = _igw(world)
    instance = world.instance(
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": world.subnet, "AssociatePublicIpAddress": True}]
    )
    with pytest.raises(ClientError) as refused:
        world.ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    assert code(refused) == "DependencyViolation"

    world.terminate(instance)
    world.ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    assert _attached_vpcs(world, gateway) == []


def test_detaching_with_a_nat_gateway_is_refused_until_it_is_deleted(world: World, clock: Clock) -> None:
    gateway = _igw(world)
    allocation = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = world.ec2.create_nat_gateway(SubnetId=world.subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    world.ec2.delete_nat_gateway(NatGatewayId=nat)
    with pytest.raises(ClientError) as refused:
        world.ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    assert code(refused) == "DependencyViolation"

    clock.now += deletes.nat_deleting_seconds()
    world.ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    assert _attached_vpcs(world, gateway) == []


def test_detaching_with_an_internet_facing_load_balancer_is_refused_until_it_is_deleted(world: World) -> None:
    gateway = _igw(world)
    other = world.ec2.create_subnet(VpcId=world.vpc, CidrBlock="10.0.2.0/24", AvailabilityZone=f"{REGION}b")
    elbv2 = boto3.client("elbv2", region_name=REGION)
    subnets = [world.subnet, other["Subnet"]["SubnetId"]]
    lb = elbv2.create_load_balancer(Name="web", Subnets=subnets, Scheme="internet-facing")["LoadBalancers"][0]
    with pytest.raises(ClientError) as refused:
        world.ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    assert code(refused) == "DependencyViolation"
    with pytest.raises(ClientError) as subnet_held:
        world.ec2.delete_subnet(SubnetId=world.subnet)
    assert code(subnet_held) == "DependencyViolation"

    elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    world.ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=world.vpc)
    world.ec2.delete_subnet(SubnetId=world.subnet)
    assert _attached_vpcs(world, gateway) == [] and world.subnet not in world.subnets()


# --- ReleaseAddress ----------------------------------------------------------------------------------------


def test_releasing_an_associated_address_is_refused_until_it_is_disassociated(world: World) -> None:
    instance = world.instance()
    allocation = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
    association = world.ec2.associate_address(AllocationId=allocation, InstanceId=instance)["AssociationId"]
    with pytest.raises(ClientError) as refused:
        world.ec2.release_address(AllocationId=allocation)
    assert code(refused) == "InvalidIPAddress.InUse"
    assert world.address(allocation)["AssociationId"] == association

    world.ec2.disassociate_address(AssociationId=association)
    world.ec2.release_address(AllocationId=allocation)
    assert not world.ec2.describe_addresses()["Addresses"]


# --- DeleteSecurityGroup -----------------------------------------------------------------------------------


def test_a_group_referenced_by_another_is_refused_until_the_rule_is_revoked(world: World) -> None:
    alb, app = world.group("alb"), world.group("app")
    rule = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": alb}]}
    world.ec2.authorize_security_group_ingress(GroupId=app, IpPermissions=[rule])
    with pytest.raises(ClientError) as refused:
        world.ec2.delete_security_group(GroupId=alb)
    assert code(refused) == "DependencyViolation"
    assert alb in world.groups()

    world.ec2.revoke_security_group_ingress(GroupId=app, IpPermissions=[rule])
    world.ec2.delete_security_group(GroupId=alb)
    assert alb not in world.groups()


def test_a_group_referring_to_itself_can_be_deleted(world: World) -> None:
    group = world.group("self")
    rule = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]}
    world.ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[rule])
    world.ec2.delete_security_group(GroupId=group)
    assert group not in world.groups()


def test_a_group_on_an_instance_is_refused_until_the_instance_is_terminated(world: World) -> None:
    group = world.group("app")
    instance = world.instance(SecurityGroupIds=[group])
    with pytest.raises(ClientError) as refused:
        world.ec2.delete_security_group(GroupId=group)
    assert code(refused) == "DependencyViolation"
    assert group in world.groups()

    world.terminate(instance)
    world.ec2.delete_security_group(GroupId=group)
    assert group not in world.groups()


def test_a_group_on_a_network_interface_is_refused_until_the_interface_is_deleted(world: World) -> None:
    group = world.group("endpoint")
    eni = world.ec2.create_network_interface(SubnetId=world.subnet, Groups=[group])["NetworkInterface"]
    with pytest.raises(ClientError) as refused:
        world.ec2.delete_security_group(GroupId=group)
    assert code(refused) == "DependencyViolation"

    world.ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    world.ec2.delete_security_group(GroupId=group)
    assert group not in world.groups()


# --- DeleteAutoScalingGroup --------------------------------------------------------------------------------


def _group_with_an_instance(world: World) -> Any:
    world.ec2.create_launch_template(LaunchTemplateName="app", LaunchTemplateData={"ImageId": AMI})
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="app",
        LaunchTemplate={"LaunchTemplateName": "app"},
        MinSize=1,
        MaxSize=1,
        VPCZoneIdentifier=world.subnet,
    )
    return autoscaling


def _group_names(autoscaling: Any) -> list[str]:
    return [g["AutoScalingGroupName"] for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]]


def test_a_group_with_instances_is_refused_without_force_delete(world: World) -> None:
    autoscaling = _group_with_an_instance(world)
    with pytest.raises(ClientError) as refused:
        autoscaling.delete_auto_scaling_group(AutoScalingGroupName="app")
    assert code(refused) == "ResourceInUse"
    [group] = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    assert len(group["Instances"]) == 1

    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="app", ForceDelete=True)
    assert _group_names(autoscaling) == []


def test_an_emptied_group_deletes_without_force(world: World) -> None:
    autoscaling = _group_with_an_instance(world)
    autoscaling.update_auto_scaling_group(AutoScalingGroupName="app", MinSize=0, DesiredCapacity=0)
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="app")
    assert _group_names(autoscaling) == []


def test_deleting_a_launch_template_in_use_is_allowed_as_on_aws(world: World) -> None:
    """AWS documents no refusal for DeleteLaunchTemplate: the sandbox leaves moto's behaviour alone."""
    _group_with_an_instance(world)
    world.ec2.delete_launch_template(LaunchTemplateName="app")
    assert not world.ec2.describe_launch_templates()["LaunchTemplates"]


# --- tag filters -------------------------------------------------------------------------------------------


def _tagged_nat_gateways(world: World) -> dict[str, str]:
    """{stack tag value: NAT gateway id} for three gateways."""
    made = {}
    for value in ("shop", "shop-2", "other"):
        allocation = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
        tags = [{"Key": "cdpoc:stack", "Value": value}, {"Key": value, "Value": ""}]
        specs = [{"ResourceType": "natgateway", "Tags": tags}]
        reply = world.ec2.create_nat_gateway(SubnetId=world.subnet, AllocationId=allocation, TagSpecifications=specs)
        made[value] = reply["NatGateway"]["NatGatewayId"]
    return made


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([{"Name": "tag:cdpoc:stack", "Values": ["shop"]}], {"shop"}),
        ([{"Name": "tag:cdpoc:stack", "Values": ["shop", "other"]}], {"shop", "other"}),  # values ORed
        ([{"Name": "tag:cdpoc:stack", "Values": ["shop*"]}], {"shop", "shop-2"}),
        ([{"Name": "tag:cdpoc:stack", "Values": ["?ther"]}], {"other"}),
        ([{"Name": "tag:cdpoc:stack", "Values": ["shop?"]}], set()),
        ([{"Name": "tag-key", "Values": ["shop-2"]}], {"shop-2"}),
        # filters ANDed
        ([{"Name": "tag:cdpoc:stack", "Values": ["shop*"]}, {"Name": "tag-key", "Values": ["shop"]}], {"shop"}),
        ([{"Name": "tag:nope", "Values": ["*"]}], set()),
        # a gateway just made is `pending` (sandbox/health.py), as on AWS
        ([{"Name": "tag:cdpoc:stack", "Values": ["shop"]}, {"Name": "state", "Values": ["pending"]}], {"shop"}),
        ([{"Name": "tag:cdpoc:stack", "Values": ["shop"]}, {"Name": "state", "Values": ["available"]}], set()),
    ],
)
def test_nat_gateways_are_filtered_by_tags(world: World, filters: list[Any], expected: set[str]) -> None:
    """moto 5.2.5 returns all three gateways for each of these filters."""
    made = _tagged_nat_gateways(world)
    found = {g["NatGatewayId"] for g in world.ec2.describe_nat_gateways(Filter=filters)["NatGateways"]}
    assert found == {made[value] for value in expected}


def test_the_other_tag_filtered_describes_cdpoc_makes_are_honoured_by_moto(world: World) -> None:
    """Measured: moto 5.2.5 applies tag filters itself to these (so the sandbox leaves them alone)."""
    mine = [{"Key": "cdpoc:stack", "Value": "shop"}]
    filters = [{"Name": "tag:cdpoc:stack", "Values": ["shop"]}]
    world.ec2.create_tags(Resources=[world.vpc, world.subnet], Tags=mine)
    world.ec2.create_vpc(CidrBlock="10.1.0.0/16")
    world.ec2.create_security_group(VpcId=world.vpc, GroupName="untagged", Description="x")
    world.instance()
    assert [v["VpcId"] for v in world.ec2.describe_vpcs(Filters=filters)["Vpcs"]] == [world.vpc]
    assert [s["SubnetId"] for s in world.ec2.describe_subnets(Filters=filters)["Subnets"]] == [world.subnet]
    assert world.ec2.describe_security_groups(Filters=filters)["SecurityGroups"] == []
    assert world.ec2.describe_instances(Filters=filters)["Reservations"] == []
    assert world.ec2.describe_route_tables(Filters=filters)["RouteTables"] == []
    assert world.ec2.describe_network_acls(Filters=filters)["NetworkAcls"] == []


# --- moto alone --------------------------------------------------------------------------------------------


def test_moto_alone_allows_every_refused_delete(world: World) -> None:
    """What moto 5.2.5's own backend does with the deletes the sandbox refuses: each one goes through."""
    from moto.autoscaling.models import autoscaling_backends
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
    alb, app = world.group("alb"), world.group("app")
    rule = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": alb}]}
    world.ec2.authorize_security_group_ingress(GroupId=app, IpPermissions=[rule])
    instance = world.instance(SecurityGroupIds=[app])
    allocation = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
    world.ec2.associate_address(AllocationId=allocation, InstanceId=instance)
    gateway = _igw(world)
    nat_allocation = world.ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = world.ec2.create_nat_gateway(SubnetId=world.subnet, AllocationId=nat_allocation)["NatGateway"]["NatGatewayId"]
    autoscaling = _group_with_an_instance(world)

    backend.delete_security_group(group_id=alb)  # referenced by app
    backend.delete_security_group(group_id=app)  # on a running instance
    backend.release_address(allocation_id=allocation)  # associated
    backend.detach_internet_gateway(gateway, world.vpc)  # mapped addresses
    assert backend.delete_nat_gateway(nat).state == "deleted"  # at once, its address still associated
    assert [a.association_id for a in backend.addresses if a.allocation_id == nat_allocation] != [None]
    backend.delete_subnet(world.subnet)  # instances, interfaces, a NAT gateway in it
    backend.delete_vpc(world.vpc)  # an internet gateway was attached until just now; no subnets left
    autoscaling_backends[DEFAULT_ACCOUNT_ID][REGION].delete_auto_scaling_group("app")  # no ForceDelete exists
    assert _group_names(autoscaling) == []


def test_the_replaced_operations_are_moto_operations() -> None:
    """Fails when moto drops or renames one of them (then re-check deletes.py against the new moto)."""
    replaced = {op.__name__ for ops in deletes.EC2_OPERATIONS.values() for op in ops} | {"delete_auto_scaling_group"}
    ours = [p for p in PATCHES if p.name in replaced and p.response_class.__module__.startswith("moto.")]
    assert {p.name for p in ours} == replaced
    assert all(p.replaces and p.moto_had_it for p in ours)
