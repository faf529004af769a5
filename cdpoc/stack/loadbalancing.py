"""Load balancing: the internet-facing ALB in the public subnets, the app target group, the :80 listener.

The target group is of type `instance` (CodeDeploy's traffic control needs that) with a 30 s
deregistration delay instead of AWS's 300 s, which would drain every one-at-a-time deployment for
five minutes per instance.
"""

from __future__ import annotations

from cdpoc import spec
from cdpoc.model import Resource
from cdpoc.spec import Ref
from cdpoc.stack.names import StackNames
from cdpoc.stack.parts import LOAD_BALANCER, TARGET_GROUP
from cdpoc.stack.specs.loadbalancing import (
    HealthCheck,
    ListenerAction,
    ListenerSpec,
    LoadBalancerSpec,
    TargetGroupSpec,
)

PUBLIC_SUBNETS = ("subnet.public.a", "subnet.public.b")
HTTP_PORT = 80
DEREGISTRATION_DELAY = "deregistration_delay.timeout_seconds"


def declare(names: StackNames) -> list[Resource]:
    lb = names.settings.load_balancer
    return [
        spec.declare(
            TARGET_GROUP.key,
            f"{names.name}-app",
            TargetGroupSpec(
                vpc=Ref("vpc"),
                protocol="HTTP",
                port=HTTP_PORT,
                target_type="instance",
                health_check=HealthCheck(
                    path=lb.health_check_path,
                    interval=lb.health_check_interval,
                    # AWS refuses a timeout that is not shorter than the interval (5 s is its default).
                    timeout=min(5, lb.health_check_interval - 1),
                    healthy_threshold=lb.healthy_threshold,
                    unhealthy_threshold=lb.unhealthy_threshold,
                    matcher="200",
                ),
                attributes={DEREGISTRATION_DELAY: str(lb.deregistration_delay)},
            ),
        ),
        spec.declare(
            LOAD_BALANCER.key,
            f"{names.name}-alb",
            LoadBalancerSpec(
                subnets=tuple(Ref(key) for key in PUBLIC_SUBNETS),
                security_groups=(Ref("sg.alb"),),
                scheme="internet-facing",
            ),
            # An internet-facing ALB needs the internet gateway attached (and must be gone before it is
            # detached: its public addresses block that).
            after=("igw",),
        ),
        spec.declare(
            "listener.http",
            f"{names.name}-http",
            ListenerSpec(
                load_balancer=Ref(LOAD_BALANCER.key),
                protocol="HTTP",
                port=HTTP_PORT,
                default_actions=(ListenerAction(Ref(TARGET_GROUP.key)),),
            ),
        ),
    ]
