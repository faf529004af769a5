"""The network kinds' specs: VPC, subnet, internet gateway, Elastic IP, NAT gateway, route table.

force_new lists what the EC2 API has no call to change: a VPC's primary CIDR, a subnet's VPC, CIDR and
zone, a NAT gateway's subnet and primary address, a route table's VPC. The rest has one: the VPC's DNS
attributes (ModifyVpcAttribute), the internet gateway's VPC (Detach/AttachInternetGateway), a route
(Create/Replace/DeleteRoute) and a subnet's association (Associate/ReplaceRouteTableAssociation,
DisassociateRouteTable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from cdpoc.spec import Ref, Spec


@dataclass(frozen=True)
class VpcSpec(Spec):
    kind: ClassVar[str] = "vpc"
    force_new: ClassVar[frozenset[str]] = frozenset({"cidr"})
    cidr: str
    # Both on: the instances resolve the VPC's own names and AWS service endpoints (SSM, S3 gateway endpoint).
    enable_dns_support: bool = True
    enable_dns_hostnames: bool = True


@dataclass(frozen=True)
class SubnetSpec(Spec):
    kind: ClassVar[str] = "subnet"
    force_new: ClassVar[frozenset[str]] = frozenset({"vpc", "cidr", "zone"})
    vpc: Ref
    cidr: str
    zone: str


@dataclass(frozen=True)
class InternetGatewaySpec(Spec):
    kind: ClassVar[str] = "internet_gateway"
    # The VPC it is attached to (a gateway holds at most one).
    vpc: Ref


@dataclass(frozen=True)
class ElasticIpSpec(Spec):
    """A VPC address. Nothing about it is chosen but its tags: what it is associated with is its user's
    spec (a NAT gateway's eip, an instance's)."""

    kind: ClassVar[str] = "elastic_ip"


@dataclass(frozen=True)
class NatGatewaySpec(Spec):
    """A public NAT gateway in `subnet`, whose primary address is the Elastic IP `eip` (its allocation)."""

    kind: ClassVar[str] = "nat_gateway"
    force_new: ClassVar[frozenset[str]] = frozenset({"subnet", "eip"})
    subnet: Ref
    eip: Ref


@dataclass(frozen=True)
class RouteTableSpec(Spec):
    """routes: destination CIDR → the gateway (internet or NAT) it goes to; subnets: those associated with
    the table. Both are the whole truth: a route or an association the table has and this does not list
    is removed."""

    kind: ClassVar[str] = "route_table"
    force_new: ClassVar[frozenset[str]] = frozenset({"vpc"})
    vpc: Ref
    routes: Mapping[str, Ref] = field(default_factory=dict)
    subnets: tuple[Ref, ...] = ()
