"""The network core: VPC, seven subnets, internet gateway, NAT gateway(s) with EIPs, route tables."""

from __future__ import annotations

from cdpoc.model import Resource
from cdpoc.spec import Ref
from cdpoc.spec import declare as declare_spec
from cdpoc.stack.names import StackNames
from cdpoc.stack.specs.network import (
    ElasticIpSpec,
    InternetGatewaySpec,
    NatGatewaySpec,
    RouteTableSpec,
    SubnetSpec,
    VpcSpec,
)

ZONE_SUFFIXES = ("a", "b")
TIERS = ("public", "app", "data")
VPC = Ref("vpc")
INTERNET_GATEWAY = Ref("igw")


def declare(names: StackNames) -> list[Resource]:
    settings, zones, name = names.settings, names.zones, names.settings.name
    net = settings.network
    bastion_zone = settings.bastion_availability_zone or zones[0]
    resources = [
        declare_spec("vpc", f"{name}-vpc", VpcSpec(net.vpc_cidr)),
        declare_spec(INTERNET_GATEWAY.key, f"{name}-igw", InternetGatewaySpec(VPC)),
    ]
    for tier in TIERS:
        for suffix, zone, cidr in zip(ZONE_SUFFIXES, zones, net.subnets(tier), strict=True):
            resources.append(
                declare_spec(f"subnet.{tier}.{suffix}", f"{name}-{tier}-{suffix}", SubnetSpec(VPC, cidr, zone))
            )
    resources.append(
        declare_spec("subnet.bastion", f"{name}-bastion", SubnetSpec(VPC, net.bastion_subnet, bastion_zone))
    )
    nat_suffixes = ZONE_SUFFIXES[: net.nat_gateways]
    for suffix in nat_suffixes:
        # The EIP and the NAT need the internet gateway attached, and must go before it is detached.
        resources.append(
            declare_spec(f"eip.nat.{suffix}", f"{name}-nat-{suffix}", ElasticIpSpec(), after=(INTERNET_GATEWAY.key,))
        )
        resources.append(
            declare_spec(
                f"nat.{suffix}",
                f"{name}-nat-{suffix}",
                NatGatewaySpec(subnet=Ref(f"subnet.public.{suffix}"), eip=Ref(f"eip.nat.{suffix}")),
                after=(INTERNET_GATEWAY.key,),
            )
        )
    public_subnets = tuple(Ref(key) for key in ("subnet.public.a", "subnet.public.b", "subnet.bastion"))
    resources.append(
        declare_spec(
            "rt.public",
            f"{name}-public",
            RouteTableSpec(VPC, routes={"0.0.0.0/0": INTERNET_GATEWAY}, subnets=public_subnets),
        )
    )
    for suffix in ZONE_SUFFIXES:
        # With one NAT gateway, both zones' private subnets go out through zone a's.
        nat = Ref(f"nat.{suffix}" if suffix in nat_suffixes else "nat.a")
        private = (Ref(f"subnet.app.{suffix}"), Ref(f"subnet.data.{suffix}"))
        resources.append(
            declare_spec(
                f"rt.private.{suffix}",
                f"{name}-private-{suffix}",
                RouteTableSpec(VPC, routes={"0.0.0.0/0": nat}, subnets=private),
            )
        )
    return resources
