"""The stack's parts by role: which declared resource is the fleet, its target group, the load balancer...

Each part is named once, here. The declarations (cdpoc/stack/*) take a part's key from it, and what
looks at a running stack (status, push-app, the outputs of `up`) asks for the part by its role, never
by a logical key: a second target group or a blue/green copy of the fleet means changing this module
and the declarations, not every reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cdpoc.graph import Graph, GraphError
from cdpoc.model import Observed, Resource


@dataclass(frozen=True)
class Part:
    """One role in the stack, played by the resource declared under `key`, of `kind`."""

    role: str
    key: str
    kind: str

    def of(self, graph: Graph) -> Resource | None:
        """The resource the graph declares in this role; None in a graph without it (a partial stack)."""
        declared = graph.resources.get(self.key)
        if declared is not None and declared.kind != self.kind:
            raise GraphError(f"{self.key} is declared of kind {declared.kind}, but {self.role} is of kind {self.kind}")
        return declared

    def found_in(self, found: Mapping[str, Observed | None]) -> Observed | None:
        """What a plan or an `up` found of this part ({key: found}); None when it does not exist."""
        return found.get(self.key)


FLEET = Part("the app's Auto Scaling group", "asg.app", "autoscaling_group")
TARGET_GROUP = Part("the app's target group", "tg.app", "target_group")
LOAD_BALANCER = Part("the load balancer in front of the app", "alb", "load_balancer")
SITE_BUCKET = Part("the static website's bucket", "bucket.web", "bucket")
BASTION = Part("the bastion host", "instance.bastion", "instance")
BASTION_ADDRESS = Part("the bastion's Elastic IP", "eip.bastion", "elastic_ip")
DATABASE = Part("the MongoDB host", "instance.mongodb", "instance")
PIPELINE = Part("the pipeline", "pipeline", "pipeline")
DEPLOYMENT_APPLICATION = Part("the CodeDeploy application", "deploy.app", "codedeploy_application")
DEPLOYMENT_GROUP = Part("the CodeDeploy deployment group", "deploy.group", "deployment_group")
LOG_GROUP = Part("the instances' log group", "loggroup", "log_group")

PARTS = (
    FLEET,
    TARGET_GROUP,
    LOAD_BALANCER,
    SITE_BUCKET,
    BASTION,
    BASTION_ADDRESS,
    DATABASE,
    PIPELINE,
    DEPLOYMENT_APPLICATION,
    DEPLOYMENT_GROUP,
    LOG_GROUP,
)
