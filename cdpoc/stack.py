"""The resources of one cdpoc stack, declared once from the settings: names, properties, dependencies."""

from __future__ import annotations

from cdpoc.config import Settings
from cdpoc.graph import Graph
from cdpoc.model import Resource

ZONE_SUFFIXES = ("a", "b")
TIERS = ("public", "app", "data")


def network_core(settings: Settings, zones: tuple[str, ...]) -> list[Resource]:
    """VPC, seven subnets, internet gateway, NAT gateway(s) with their EIPs, route tables."""
    name = settings.name
    net = settings.network
    bastion_zone = settings.bastion_availability_zone or zones[0]
    resources = [
        Resource("vpc", "vpc", f"{name}-vpc", {"cidr": net.vpc_cidr}),
        Resource("igw", "internet_gateway", f"{name}-igw", {"vpc": "vpc"}, ("vpc",)),
    ]
    for tier in TIERS:
        for suffix, zone, cidr in zip(ZONE_SUFFIXES, zones, net.subnets(tier), strict=True):
            resources.append(
                Resource(
                    f"subnet.{tier}.{suffix}",
                    "subnet",
                    f"{name}-{tier}-{suffix}",
                    {"vpc": "vpc", "cidr": cidr, "zone": zone, "tier": tier},
                    ("vpc",),
                )
            )
    resources.append(
        Resource(
            "subnet.bastion",
            "subnet",
            f"{name}-bastion",
            {"vpc": "vpc", "cidr": net.bastion_subnet, "zone": bastion_zone, "tier": "bastion"},
            ("vpc",),
        )
    )
    nat_suffixes = ZONE_SUFFIXES[: net.nat_gateways]
    for suffix in nat_suffixes:
        # The EIP and the NAT need the internet gateway attached, and must go before it is detached.
        resources.append(Resource(f"eip.nat.{suffix}", "elastic_ip", f"{name}-nat-{suffix}", {}, ("igw",)))
        resources.append(
            Resource(
                f"nat.{suffix}",
                "nat_gateway",
                f"{name}-nat-{suffix}",
                {"subnet": f"subnet.public.{suffix}", "eip": f"eip.nat.{suffix}"},
                (f"subnet.public.{suffix}", f"eip.nat.{suffix}", "igw"),
            )
        )
    public_subnets = ("subnet.public.a", "subnet.public.b", "subnet.bastion")
    resources.append(
        Resource(
            "rt.public",
            "route_table",
            f"{name}-public",
            {"vpc": "vpc", "routes": {"0.0.0.0/0": "igw"}, "subnets": public_subnets},
            ("vpc", "igw", *public_subnets),
        )
    )
    for suffix in ZONE_SUFFIXES:
        nat = f"nat.{suffix}" if suffix in nat_suffixes else "nat.a"
        private = (f"subnet.app.{suffix}", f"subnet.data.{suffix}")
        resources.append(
            Resource(
                f"rt.private.{suffix}",
                "route_table",
                f"{name}-private-{suffix}",
                {"vpc": "vpc", "routes": {"0.0.0.0/0": nat}, "subnets": private},
                ("vpc", nat, *private),
            )
        )
    return resources


def build(settings: Settings, zones: tuple[str, ...]) -> Graph:
    """The whole stack's graph; `zones` are the two resolved availability zones."""
    return Graph.of(network_core(settings, zones))
