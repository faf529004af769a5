"""A rough hourly cost of what a stack runs (us-east-1 list prices; other regions differ a little)."""

from __future__ import annotations

from collections.abc import Iterable

from cdpoc.model import Resource

# USD per hour. Sources: AWS price pages (NAT gateway, public IPv4, EC2 on-demand Linux, ALB).
HOURLY = {
    "nat_gateway": 0.045,
    "elastic_ip": 0.005,
}


def hourly_cost(resources: Iterable[Resource]) -> float:
    return round(sum(HOURLY.get(r.kind, 0.0) for r in resources), 4)


def describe_cost(per_hour: float) -> str:
    if per_hour == 0:
        return "about $0/h: nothing that bills by the hour is running"
    return f"about ${per_hour:.3f}/h (~${per_hour * 730:.0f}/month) before data transfer"
