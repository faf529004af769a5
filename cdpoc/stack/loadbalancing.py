"""Load balancing: the internet-facing ALB in the public subnets, the app target group, the :80 listener.

The target group is of type `instance` (CodeDeploy's traffic control needs that) with a 30 s
deregistration delay instead of AWS's 300 s, which would drain every one-at-a-time deployment for
five minutes per instance.
"""

from __future__ import annotations

from cdpoc.model import Resource
from cdpoc.stack.names import StackNames
from cdpoc.stack.parts import LOAD_BALANCER, TARGET_GROUP

PUBLIC_SUBNETS = ("subnet.public.a", "subnet.public.b")
HTTP_PORT = 80


def declare(names: StackNames) -> list[Resource]:
    lb = names.settings.load_balancer
    return [
        Resource(
            TARGET_GROUP.key,
            TARGET_GROUP.kind,
            f"{names.name}-app",
            {
                "vpc": "vpc",
                "protocol": "HTTP",
                "port": HTTP_PORT,
                "target_type": "instance",
                "health_check": {
                    "path": lb.health_check_path,
                    "interval": lb.health_check_interval,
                    # AWS refuses a timeout that is not shorter than the interval (5 s is its default).
                    "timeout": min(5, lb.health_check_interval - 1),
                    "matcher": "200",
                    "healthy_threshold": lb.healthy_threshold,
                    "unhealthy_threshold": lb.unhealthy_threshold,
                },
                "deregistration_delay": lb.deregistration_delay,
            },
            ("vpc",),
        ),
        Resource(
            LOAD_BALANCER.key,
            LOAD_BALANCER.kind,
            f"{names.name}-alb",
            {"subnets": PUBLIC_SUBNETS, "security_groups": ("sg.alb",), "scheme": "internet-facing"},
            # An internet-facing ALB needs the internet gateway attached (and must be gone before it is
            # detached: its public addresses block that).
            (*PUBLIC_SUBNETS, "sg.alb", "igw"),
        ),
        Resource(
            "listener.http",
            "listener",
            f"{names.name}-http",
            {
                "load_balancer": LOAD_BALANCER.key,
                "target_group": TARGET_GROUP.key,
                "protocol": "HTTP",
                "port": HTTP_PORT,
            },
            (LOAD_BALANCER.key, TARGET_GROUP.key),
        ),
    ]
