"""The sandbox answers a repeated create as AWS does (cdpoc/sandbox/idempotency.py), where moto 5.2.5 made a
second resource or refused the repeat.

EC2: the same ClientToken with the same parameters returns the first result, also after its resource was
deleted; with other parameters it fails with IdempotentParameterMismatch. ELBv2: a create with the
settings of an existing load balancer, target group or listener returns it; other settings are a Duplicate*
error. In-process and in server mode.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cdpoc.sandbox import idempotency
from cdpoc.sandbox.patching import PATCHES
from cdpoc.sandbox.server import Sandbox

REGION = "us-east-1"
S3_SERVICE = f"com.amazonaws.{REGION}.s3"


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@dataclass
class Network:
    ec2: Any
    vpc: str
    other_vpc: str
    subnets: tuple[str, str]
    addresses: tuple[str, str]
    ami: str


def network(ec2: Any) -> Network:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    other_vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnets = tuple(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for n, zone in ((1, "a"), (2, "b"))
    )
    addresses = tuple(ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(2))
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return Network(ec2, vpc, other_vpc, subnets, addresses, ami)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TokenCreate:
    """One EC2 create cdpoc sends with a ClientToken: how to call it (variant 0 or 1 differ in a parameter),
    the id in its answer, how many such resources exist, and how to delete one."""

    name: str
    create: Callable[[Network, str, int], dict[str, Any]]
    resource_id: Callable[[dict[str, Any]], str]
    count: Callable[[Network], int]
    delete: Callable[[Network, str], None]


def _run(net: Network, token: str, variant: int) -> dict[str, Any]:
    reply: dict[str, Any] = net.ec2.run_instances(
        ImageId=net.ami,
        MinCount=1,
        MaxCount=1,
        InstanceType=("t3.micro", "t3.small")[variant],
        SubnetId=net.subnets[0],
        ClientToken=token,
    )
    return reply


def _instances(net: Network) -> int:
    return sum(len(r["Instances"]) for r in net.ec2.describe_instances()["Reservations"])


def _nat(net: Network, token: str, variant: int) -> dict[str, Any]:
    reply: dict[str, Any] = net.ec2.create_nat_gateway(
        SubnetId=net.subnets[variant], AllocationId=net.addresses[variant], ClientToken=token
    )
    return reply


def _route_table(net: Network, token: str, variant: int) -> dict[str, Any]:
    reply: dict[str, Any] = net.ec2.create_route_table(VpcId=(net.vpc, net.other_vpc)[variant], ClientToken=token)
    return reply


def _user_route_tables(net: Network) -> int:
    return sum(
        not any(a.get("Main") for a in t.get("Associations", []))
        for t in net.ec2.describe_route_tables()["RouteTables"]
    )


def _acl(net: Network, token: str, variant: int) -> dict[str, Any]:
    reply: dict[str, Any] = net.ec2.create_network_acl(VpcId=(net.vpc, net.other_vpc)[variant], ClientToken=token)
    return reply


def _user_acls(net: Network) -> int:
    return sum(not a["IsDefault"] for a in net.ec2.describe_network_acls()["NetworkAcls"])


def _endpoint(net: Network, token: str, variant: int) -> dict[str, Any]:
    reply: dict[str, Any] = net.ec2.create_vpc_endpoint(
        VpcEndpointType="Gateway", VpcId=(net.vpc, net.other_vpc)[variant], ServiceName=S3_SERVICE, ClientToken=token
    )
    return reply


def _template(net: Network, token: str, variant: int) -> dict[str, Any]:
    reply: dict[str, Any] = net.ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData={"ImageId": net.ami, "InstanceType": ("t3.micro", "t3.small")[variant]},
        ClientToken=token,
    )
    return reply


TOKEN_CREATES = [
    TokenCreate(
        "RunInstances",
        _run,
        lambda r: str(r["Instances"][0]["InstanceId"]),
        _instances,
        lambda net, i: net.ec2.terminate_instances(InstanceIds=[i]),
    ),
    TokenCreate(
        "CreateNatGateway",
        _nat,
        lambda r: str(r["NatGateway"]["NatGatewayId"]),
        lambda net: len(net.ec2.describe_nat_gateways()["NatGateways"]),
        lambda net, i: net.ec2.delete_nat_gateway(NatGatewayId=i),
    ),
    TokenCreate(
        "CreateRouteTable",
        _route_table,
        lambda r: str(r["RouteTable"]["RouteTableId"]),
        _user_route_tables,
        lambda net, i: net.ec2.delete_route_table(RouteTableId=i),
    ),
    TokenCreate(
        "CreateNetworkAcl",
        _acl,
        lambda r: str(r["NetworkAcl"]["NetworkAclId"]),
        _user_acls,
        lambda net, i: net.ec2.delete_network_acl(NetworkAclId=i),
    ),
    TokenCreate(
        "CreateVpcEndpoint",
        _endpoint,
        lambda r: str(r["VpcEndpoint"]["VpcEndpointId"]),
        lambda net: len(net.ec2.describe_vpc_endpoints()["VpcEndpoints"]),
        lambda net, i: net.ec2.delete_vpc_endpoints(VpcEndpointIds=[i]),
    ),
    TokenCreate(
        "CreateLaunchTemplate",
        _template,
        lambda r: str(r["LaunchTemplate"]["LaunchTemplateId"]),
        lambda net: len(net.ec2.describe_launch_templates()["LaunchTemplates"]),
        lambda net, i: net.ec2.delete_launch_template(LaunchTemplateId=i),
    ),
]
BY_NAME = pytest.mark.parametrize("op", TOKEN_CREATES, ids=[c.name for c in TOKEN_CREATES])


@pytest.fixture
def net(aws: None) -> Network:
    return network(boto3.client("ec2", region_name=REGION))


@BY_NAME
def test_the_same_token_twice_answers_the_first_resource_and_creates_one(op: TokenCreate, net: Network) -> None:
    before = op.count(net)
    first = op.resource_id(op.create(net, "retry-1", 0))
    assert op.resource_id(op.create(net, "retry-1", 0)) == first
    assert op.count(net) == before + 1


@BY_NAME
def test_the_same_token_with_other_parameters_is_refused(op: TokenCreate, net: Network) -> None:
    op.create(net, "retry-2", 0)
    before = op.count(net)
    with pytest.raises(ClientError) as refused:
        op.create(net, "retry-2", 1)
    assert code(refused) == "IdempotentParameterMismatch"
    assert op.count(net) == before


@BY_NAME
def test_another_token_is_another_request(op: TokenCreate, net: Network) -> None:
    first = op.resource_id(op.create(net, "one", 0))
    if op.name == "CreateLaunchTemplate":  # the name is taken: a new request is refused for that
        with pytest.raises(ClientError) as refused:
            op.create(net, "two", 1)
        assert code(refused) == "InvalidLaunchTemplateName.AlreadyExistsException"
        return
    assert op.resource_id(op.create(net, "two", 1)) != first


@BY_NAME
def test_a_token_replayed_after_its_resource_was_deleted_answers_the_deleted_one(op: TokenCreate, net: Network) -> None:
    """What AwsRun.create_with_token relies on: the old id comes back, and cdpoc's dead_id sees it is gone."""
    first = op.resource_id(op.create(net, "replayed", 0))
    op.delete(net, first)
    before = op.count(net)
    again = op.create(net, "replayed", 0)
    assert op.resource_id(again) == first
    assert op.count(net) == before
    if op.name == "RunInstances":
        assert again["Instances"][0]["State"]["Name"] in ("shutting-down", "terminated")
    if op.name == "CreateNatGateway":
        assert again["NatGateway"]["State"] in ("deleting", "deleted")
    if op.name == "CreateVpcEndpoint":
        assert again["VpcEndpoint"]["State"].lower() in ("deleting", "deleted")


def test_tokens_are_per_operation_and_per_region(net: Network) -> None:
    table = net.ec2.create_route_table(VpcId=net.vpc, ClientToken="shared")["RouteTable"]["RouteTableId"]
    acl = net.ec2.create_network_acl(VpcId=net.vpc, ClientToken="shared")["NetworkAcl"]["NetworkAclId"]
    assert table.startswith("rtb-") and acl.startswith("acl-")

    west = boto3.client("ec2", region_name="us-west-2")
    west_vpc = west.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    west_table = west.create_route_table(VpcId=west_vpc, ClientToken="shared")["RouteTable"]["RouteTableId"]
    assert west_table != table


def test_a_failed_request_does_not_use_its_token_up(net: Network) -> None:
    with pytest.raises(ClientError):
        net.ec2.create_route_table(VpcId="vpc-00000000000000000", ClientToken="after-failure")
    table = net.ec2.create_route_table(VpcId=net.vpc, ClientToken="after-failure")["RouteTable"]["RouteTableId"]
    assert net.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"]


def test_a_launch_template_version_is_added_once_per_token(net: Network) -> None:
    template = _template(net, "template", 0)["LaunchTemplate"]["LaunchTemplateId"]

    def add_version(token: str, instance_type: str) -> int:
        return int(
            net.ec2.create_launch_template_version(
                LaunchTemplateId=template, LaunchTemplateData={"InstanceType": instance_type}, ClientToken=token
            )["LaunchTemplateVersion"]["VersionNumber"]
        )

    assert add_version("v2", "t3.large") == add_version("v2", "t3.large") == 2
    with pytest.raises(ClientError) as refused:
        add_version("v2", "t3.xlarge")
    assert code(refused) == "IdempotentParameterMismatch"
    assert add_version("v3", "t3.xlarge") == 3
    versions = net.ec2.describe_launch_template_versions(LaunchTemplateId=template)["LaunchTemplateVersions"]
    assert sorted(v["VersionNumber"] for v in versions) == [1, 2, 3]


# ---- ELBv2


@dataclass
class Balancing:
    elbv2: Any
    net: Network
    groups: tuple[str, str]


@pytest.fixture
def balancing(net: Network) -> Balancing:
    groups = tuple(
        net.ec2.create_security_group(GroupName=f"g{n}", Description="d", VpcId=net.vpc)["GroupId"] for n in (1, 2)
    )
    return Balancing(boto3.client("elbv2", region_name=REGION), net, groups)  # type: ignore[arg-type]


def _load_balancer(b: Balancing, subnets: list[str], group: str, tags: dict[str, str] | None = None) -> str:
    extra = {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]} if tags else {}
    arn: str = b.elbv2.create_load_balancer(Name="web", Subnets=subnets, SecurityGroups=[group], **extra)[
        "LoadBalancers"
    ][0]["LoadBalancerArn"]
    return arn


def test_a_load_balancer_created_again_with_the_same_settings_is_the_same(balancing: Balancing) -> None:
    subnets = list(balancing.net.subnets)
    first = _load_balancer(balancing, subnets, balancing.groups[0], {"cdpoc:stack": "s"})
    # The subnets' order is not a setting.
    assert _load_balancer(balancing, subnets[::-1], balancing.groups[0], {"cdpoc:stack": "s"}) == first
    assert [lb["LoadBalancerArn"] for lb in balancing.elbv2.describe_load_balancers()["LoadBalancers"]] == [first]


@pytest.mark.parametrize("change", ["security group", "subnets", "tags"])
def test_a_load_balancer_name_in_use_with_other_settings_is_refused(balancing: Balancing, change: str) -> None:
    subnets = list(balancing.net.subnets)
    _load_balancer(balancing, subnets, balancing.groups[0], {"cdpoc:stack": "s"})
    with pytest.raises(ClientError) as refused:
        _load_balancer(
            balancing,
            subnets[:1] if change == "subnets" else subnets,
            balancing.groups[change == "security group"],
            {"cdpoc:stack": "other" if change == "tags" else "s"},
        )
    assert code(refused) == "DuplicateLoadBalancerName"
    assert len(balancing.elbv2.describe_load_balancers()["LoadBalancers"]) == 1


def test_a_deleted_load_balancers_name_is_free_again(balancing: Balancing) -> None:
    first = _load_balancer(balancing, list(balancing.net.subnets), balancing.groups[0])
    balancing.elbv2.delete_load_balancer(LoadBalancerArn=first)
    assert _load_balancer(balancing, list(balancing.net.subnets), balancing.groups[1]) != first


def _target_group(b: Balancing, port: int) -> str:
    arn: str = b.elbv2.create_target_group(
        Name="web", Protocol="HTTP", Port=port, VpcId=b.net.vpc, HealthCheckPath="/health"
    )["TargetGroups"][0]["TargetGroupArn"]
    return arn


def test_a_target_group_created_again_is_the_same_and_other_settings_are_refused(balancing: Balancing) -> None:
    first = _target_group(balancing, 80)
    assert _target_group(balancing, 80) == first
    with pytest.raises(ClientError) as refused:
        _target_group(balancing, 8080)
    assert code(refused) == "DuplicateTargetGroupName"
    assert [g["TargetGroupArn"] for g in balancing.elbv2.describe_target_groups()["TargetGroups"]] == [first]


def _listener(b: Balancing, lb: str, port: int, status: str) -> str:
    action = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": status, "ContentType": "text/plain"}}
    arn: str = b.elbv2.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=port, DefaultActions=[action])[
        "Listeners"
    ][0]["ListenerArn"]
    return arn


def test_a_listener_created_again_is_the_same_and_a_port_in_use_otherwise_is_refused(balancing: Balancing) -> None:
    lb = _load_balancer(balancing, list(balancing.net.subnets), balancing.groups[0])
    first = _listener(balancing, lb, 80, "200")
    assert _listener(balancing, lb, 80, "200") == first
    with pytest.raises(ClientError) as refused:
        _listener(balancing, lb, 80, "404")
    assert code(refused) == "DuplicateListener"
    other_port = _listener(balancing, lb, 8080, "404")
    listeners = balancing.elbv2.describe_listeners(LoadBalancerArn=lb)["Listeners"]
    assert sorted((x["Port"], x["ListenerArn"]) for x in listeners) == [(80, first), (8080, other_port)]


def test_a_listener_on_a_port_freed_by_a_delete_is_new(balancing: Balancing) -> None:
    lb = _load_balancer(balancing, list(balancing.net.subnets), balancing.groups[0])
    first = _listener(balancing, lb, 80, "200")
    balancing.elbv2.delete_listener(ListenerArn=first)
    assert _listener(balancing, lb, 80, "404") != first


# ---- server mode and the moto pin


def test_server_mode_answers_repeats_and_moto_reset_forgets_tokens() -> None:
    with Sandbox() as sandbox:

        def client(service: str) -> Any:
            return boto3.client(
                service,
                region_name=REGION,
                endpoint_url=sandbox.endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )

        net = network(client("ec2"))
        first = _run(net, "served", 0)["Instances"][0]["InstanceId"]
        assert _run(net, "served", 0)["Instances"][0]["InstanceId"] == first
        with pytest.raises(ClientError) as refused:
            _run(net, "served", 1)
        assert code(refused) == "IdempotentParameterMismatch"
        assert _instances(net) == 1

        balancing = Balancing(
            client("elbv2"),
            net,
            (net.ec2.create_security_group(GroupName="g", Description="d", VpcId=net.vpc)["GroupId"],) * 2,
        )
        lb = _load_balancer(balancing, list(net.subnets), balancing.groups[0])
        assert _listener(balancing, lb, 80, "200") == _listener(balancing, lb, 80, "200")
        with pytest.raises(ClientError) as duplicate:
            _listener(balancing, lb, 80, "404")
        assert code(duplicate) == "DuplicateListener"

        urllib.request.urlopen(
            urllib.request.Request(sandbox.endpoint + "/moto-api/reset", data=b"", method="POST"), timeout=10
        ).close()
        net = network(client("ec2"))
        assert _run(net, "served", 1)["Instances"][0]["InstanceId"] != first  # the token is new again


def test_moto_still_has_the_creates_the_sandbox_replaces() -> None:
    """Fails when moto drops or renames one of them (then re-check idempotency.py against the new moto)."""
    expected = {op for ops in idempotency.EC2_TOKEN_OPERATIONS.values() for op in ops} | set(
        idempotency.ELBV2_OPERATIONS
    )
    # Other additions replace other EC2 operations (network ACLs, delete order): only these are idempotency's.
    ours = {
        p.name: p
        for p in PATCHES
        if p.response_class.__module__.startswith(("moto.ec2.", "moto.elbv2.")) and p.name in expected
    }
    assert set(ours) == expected
    assert all(p.replaces and p.moto_had_it for p in ours.values())
