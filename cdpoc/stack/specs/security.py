"""Specs of the network security kinds: the S3 gateway endpoint, network ACLs and security groups.

What AWS cannot change in place (force_new): an endpoint's VPC, service and type (ModifyVpcEndpoint
changes only route tables, policy and DNS), an ACL's VPC, and a security group's VPC and description
(no EC2 call changes either). Entries, rules, route tables and subnet associations all change in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cdpoc.spec import Ref, Spec

PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "-1": "all"}


def ports_text(ports: tuple[int, int] | None) -> str:
    if not ports:
        return ""
    return f" {ports[0]}" if ports[0] == ports[1] else f" {ports[0]}-{ports[1]}"


@dataclass(frozen=True)
class VpcEndpointSpec(Spec):
    """A gateway endpoint of `service` in `vpc`, routed from `route_tables`."""

    kind: ClassVar[str] = "vpc_endpoint"
    force_new: ClassVar[frozenset[str]] = frozenset({"vpc", "service", "endpoint_type"})
    vpc: Ref
    service: str
    route_tables: tuple[Ref, ...]
    endpoint_type: str = "Gateway"


@dataclass(frozen=True)
class NaclEntry:
    """One numbered NACL entry; protocol by number ("6" TCP, "-1" all), ports None for every port."""

    number: int
    protocol: str
    action: str
    cidr: str
    ports: tuple[int, int] | None = None

    def __str__(self) -> str:
        """What the entry does; a plan names its number in the field (ingress[100])."""
        protocol = PROTOCOL_NAMES.get(self.protocol, self.protocol)
        return f"{self.action} {protocol}{ports_text(self.ports)} {self.cidr}"


@dataclass(frozen=True)
class NetworkAclSpec(Spec):
    """A network ACL in `vpc` with exactly these entries, used by exactly `subnets`."""

    kind: ClassVar[str] = "network_acl"
    force_new: ClassVar[frozenset[str]] = frozenset({"vpc"})
    vpc: Ref
    subnets: tuple[Ref, ...]
    ingress: tuple[NaclEntry, ...]
    egress: tuple[NaclEntry, ...]


@dataclass(frozen=True)
class SgRule:
    """One allowance from (ingress) or to (egress) a CIDR block or the members of another group."""

    protocol: str  # "tcp", "udp", "icmp" or "-1" (all traffic, no ports)
    ports: tuple[int, int] | None
    description: str = ""
    cidr: str = ""
    group: Ref | None = None

    def __post_init__(self) -> None:
        if bool(self.cidr) == (self.group is not None):
            raise ValueError("a security group rule names either a CIDR block or a group, exactly one")


@dataclass(frozen=True)
class SecurityGroupSpec(Spec):
    """A security group in `vpc` with exactly these rules."""

    kind: ClassVar[str] = "security_group"
    force_new: ClassVar[frozenset[str]] = frozenset({"vpc", "description"})
    vpc: Ref
    description: str
    ingress: tuple[SgRule, ...]
    egress: tuple[SgRule, ...]
