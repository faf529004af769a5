"""The CI/CD kinds' specs: the pipeline's source, the CodeDeploy application and deployment group, the
pipeline (its stages and actions as typed values) and the EventBridge rule that starts it.

force_new lists what AWS has no call to change: a CodeDeploy application's compute platform and name,
a deployment group's application and compute platform (UpdateDeploymentGroup moves neither), the
repository's name (the pipeline, the rule's pattern and the roles' policies are built on it: cdpoc never
renames it under them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from cdpoc.spec import Ref, Spec


@dataclass(frozen=True)
class SourceSpec(Spec):
    """The pipeline's source: a CodeCommit repository (preferred "codecommit"), or the zip `s3_key` in the
    artifact bucket (preferred "s3", or where CodeCommit refuses to create a repository)."""

    kind: ClassVar[str] = "pipeline_source"
    force_new: ClassVar[frozenset[str]] = frozenset({"repository"})

    preferred: str
    repository: str
    # The branch the pipeline's source action and the rule's pattern follow (a change shows in their plans:
    # a repository has no setting of its own for it).
    branch: str
    description: str  # updated in place (UpdateRepositoryDescription)
    bucket: Ref  # the artifact bucket, which holds the S3 source's zip
    s3_key: str
    # Where an earlier fallback to the S3 source is recorded: the pipeline's source action. A name, not a
    # Ref: the pipeline depends on the source, and find() reads the record before anything is resolved.
    pipeline_name: str


@dataclass(frozen=True)
class ApplicationSpec(Spec):
    kind: ClassVar[str] = "codedeploy_application"
    # CodeDeploy has UpdateApplication (a rename), but the deployment group, the pipeline's deploy action
    # and the CodeDeploy role's policy name the application: a new name is a new application.
    force_new: ClassVar[frozenset[str]] = frozenset({"name", "compute_platform"})

    name: str
    compute_platform: str


@dataclass(frozen=True)
class DeploymentStyle:
    deployment_type: str  # IN_PLACE or BLUE_GREEN
    deployment_option: str  # WITH_TRAFFIC_CONTROL or WITHOUT_TRAFFIC_CONTROL

    def __str__(self) -> str:
        return f"{self.deployment_type}/{self.deployment_option}"


@dataclass(frozen=True)
class AutoRollback:
    enabled: bool
    events: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"on {', '.join(sorted(self.events))}" if self.enabled and self.events else "off"


@dataclass(frozen=True)
class Trigger:
    """A CodeDeploy notification: these deployment events go to the topic."""

    name: str
    topic: Ref
    events: tuple[str, ...]


@dataclass(frozen=True)
class DeploymentGroupSpec(Spec):
    kind: ClassVar[str] = "deployment_group"
    force_new: ClassVar[frozenset[str]] = frozenset({"application", "compute_platform"})

    application: Ref
    # The application's name, for find() (which runs before any reference is resolved).
    application_name: str
    compute_platform: str
    service_role: Ref
    deployment_config: str
    deployment_style: DeploymentStyle
    autoscaling_groups: tuple[Ref, ...]
    # The load balancer info: the target groups CodeDeploy's traffic control takes instances out of.
    target_groups: tuple[Ref, ...]
    auto_rollback: AutoRollback
    triggers: tuple[Trigger, ...] = ()
    # CloudWatch alarm names that stop a deployment; none: the alarm configuration is off.
    alarms: tuple[str, ...] = ()


@dataclass(frozen=True)
class PipelineAction:
    """One action of a stage. An action with `source` reads the pipeline's source: its provider and
    configuration are what the source turned out to be (CodeCommit, or S3 after a fallback)."""

    name: str
    category: str
    provider: str = ""
    configuration: Mapping[str, str | Ref] = field(default_factory=dict)
    source: Ref | None = None
    run_order: int = 1
    input_artifacts: tuple[str, ...] = ()
    output_artifacts: tuple[str, ...] = ()
    owner: str = "AWS"
    version: str = "1"


@dataclass(frozen=True)
class PipelineStage:
    name: str
    actions: tuple[PipelineAction, ...]


@dataclass(frozen=True)
class PipelineSpec(Spec):
    kind: ClassVar[str] = "pipeline"

    role: Ref
    artifact_bucket: Ref
    pipeline_type: str
    execution_mode: str
    stages: tuple[PipelineStage, ...]


@dataclass(frozen=True)
class BranchPushPattern:
    """A push (new or moved branch) to one branch of one repository."""

    repository: Ref  # the repository's ARN
    branch: str


@dataclass(frozen=True)
class RuleTarget:
    id: str
    arn: Ref
    role: Ref


@dataclass(frozen=True)
class EventRuleSpec(Spec):
    kind: ClassVar[str] = "event_rule"

    # The rule is wanted only while this source is CodeCommit (S3 reaches EventBridge only through a trail).
    source: Ref
    pattern: BranchPushPattern
    targets: tuple[RuleTarget, ...]
    description: str
    # Where an S3 source is recorded, for find() (see SourceSpec.pipeline_name).
    pipeline_name: str
    state: str = "ENABLED"
