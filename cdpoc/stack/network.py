"""The network core: VPC, seven subnets, internet gateway, NAT gateway(s) with EIPs, route tables."""

from __future__ import annotations

from cdpoc.model import Resource
from cdpoc.stack.names import StackNames

ZONE_SUFFIXES = ("a", "b")
TIERS = ("public", "app", "data")


def declare(names: StackNames) -> list[Resource]:
    settings, zones, name = names.settings, names.zones, names.settings.name
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
