"""The specs of the load balancing kinds: target group, load balancer, listener (ELBv2).

force_new lists what the ELBv2 API has no call to change: ModifyTargetGroup changes only the health
check (not the protocol, port, VPC or target type given to CreateTargetGroup); a load balancer's
scheme and type are fixed at CreateLoadBalancer (SetSubnets, SetSecurityGroups, SetIpAddressType and
ModifyLoadBalancerAttributes change the rest); ModifyListener changes the port, protocol and default
actions, but a listener never moves to another load balancer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from cdpoc.spec import Ref, Spec


@dataclass(frozen=True)
class HealthCheck:
    """How the target group checks its targets (all of it changeable with ModifyTargetGroup)."""

    path: str
    interval: int
    timeout: int
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: str = "200"
    protocol: str = "HTTP"


@dataclass(frozen=True)
class TargetGroupSpec(Spec):
    kind: ClassVar[str] = "target_group"
    force_new: ClassVar[frozenset[str]] = frozenset({"protocol", "port", "vpc", "target_type"})

    vpc: Ref
    protocol: str
    port: int
    target_type: str
    health_check: HealthCheck
    # Target group attributes by their API key ("deregistration_delay.timeout_seconds": "30"), values as
    # the API spells them. Only these keys are managed: AWS gives every other one its default.
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadBalancerSpec(Spec):
    kind: ClassVar[str] = "load_balancer"
    force_new: ClassVar[frozenset[str]] = frozenset({"scheme", "type"})

    subnets: tuple[Ref, ...]
    security_groups: tuple[Ref, ...]
    scheme: str
    type: str = "application"
    ip_address_type: str = "ipv4"
    # Load balancer attributes by their API key ("idle_timeout.timeout_seconds": "60"); only these are managed.
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListenerAction:
    """One default action of a listener: forward to a target group (the only type cdpoc declares)."""

    target_group: Ref
    type: str = "forward"


@dataclass(frozen=True)
class ListenerSpec(Spec):
    kind: ClassVar[str] = "listener"
    force_new: ClassVar[frozenset[str]] = frozenset({"load_balancer"})

    load_balancer: Ref
    protocol: str
    port: int
    default_actions: tuple[ListenerAction, ...]
