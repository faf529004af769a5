"""A rough hourly cost of what a stack runs, and a monthly one of the data `down --keep-data` keeps
(us-east-1 list prices; other regions differ a little)."""

from __future__ import annotations

from collections.abc import Iterable

from cdpoc.model import Resource
from cdpoc.stack.specs.compute import AutoScalingGroupSpec, InstanceSpec

# USD per hour. Sources: AWS price pages (NAT gateway, public IPv4, EC2 on-demand Linux, ALB).
# Keys are resource kinds, or EC2 instance types for what runs instances (see instances).
HOURLY = {
    "nat_gateway": 0.045,
    "elastic_ip": 0.005,
    # The load balancer's hour plus its two public IPv4 addresses (one per zone, $0.005/h each).
    "load_balancer": 0.0225 + 2 * 0.005,
    "t3.micro": 0.0104,
    "t3.small": 0.0208,
    "t3.medium": 0.0416,
}


# USD per GB-month (AWS's "GB" here is 2**30 bytes) of what `down --keep-data` keeps, by resource kind:
# S3 Standard storage, EBS snapshots (standard tier; only the blocks written are billed); standard-tier
# SSM parameters are free. Sources: the S3, EBS and Systems Manager price pages.
MONTHLY_PER_GB = {"bucket": 0.023, "snapshot": 0.05, "ssm_parameter": 0.0}
STORAGE_NAMES = {"bucket": "S3 Standard", "snapshot": "EBS snapshots", "ssm_parameter": "standard SSM parameters"}
GB = 1024**3


def instances(resource: Resource) -> tuple[int, str]:
    """How many EC2 instances a resource keeps running, and of which type: one for an instance, the desired
    capacity of a group; none for anything else."""
    spec = resource.spec
    if isinstance(spec, InstanceSpec):
        return 1, spec.instance_type
    if isinstance(spec, AutoScalingGroupSpec):
        return spec.desired_capacity, spec.instance_type
    return 0, ""


def hourly_cost(resources: Iterable[Resource]) -> float:
    """Instance types without a price here count as $0 (the estimate then says less than the bill)."""
    total = 0.0
    for resource in resources:
        count, instance_type = instances(resource)
        total += HOURLY.get(resource.kind, 0.0) + count * HOURLY.get(instance_type, 0.0)
    return round(total, 4)


def describe_cost(per_hour: float) -> str:
    if per_hour == 0:
        return "about $0/h: nothing that bills by the hour is running"
    return f"about ${per_hour:.3f}/h (~${per_hour * 730:.0f}/month) before data transfer"


def monthly_storage_cost(stored: Iterable[tuple[str, int]]) -> float:
    """The monthly cost of (kind, bytes) stored; kinds without a price here count as $0."""
    return sum(MONTHLY_PER_GB.get(kind, 0.0) * size / GB for kind, size in stored)


def describe_monthly(per_month: float) -> str:
    if per_month == 0:
        return "about $0/month"
    return f"about ${per_month:.2f}/month" if per_month >= 0.01 else "less than $0.01/month"


def storage_prices() -> str:
    """e.g. "S3 Standard $0.023/GB-month, EBS snapshots $0.05/GB-month, standard SSM parameters free"."""
    return ", ".join(
        f"{STORAGE_NAMES[kind]} ${price}/GB-month" if price else f"{STORAGE_NAMES[kind]} free"
        for kind, price in MONTHLY_PER_GB.items()
    )
