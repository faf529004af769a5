"""The parts of a `cdpoc status` snapshot as pure values: frozen dataclasses, no I/O, no rendering.

cdpoc.statusshapes fills them from botocore's replies, cdpoc.statushealth judges them, cdpoc.statussnapshot
puts them together, cdpoc.statusrender shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cdpoc.config import describe_region
from cdpoc.model import Action


@dataclass(frozen=True)
class ResourceRow:
    """One declared resource and what `up` would do with it (exists, create, update, differs)."""

    key: str
    kind: str
    name: str
    action: str
    id: str = ""
    detail: str = ""


@dataclass(frozen=True)
class StackView:
    name: str
    region: str
    account: str
    resources: tuple[ResourceRow, ...] = ()
    cost_per_hour: float = 0.0
    created_at: datetime | None = None
    # Where the region came from: --region, the config file, AWS_REGION, AWS_DEFAULT_REGION or a profile.
    region_source: str = ""
    # Resources of the stack (by their tags) it does not declare: a duplicate, an orphan, an old component.
    extras: tuple[str, ...] = ()

    @property
    def region_label(self) -> str:
        return describe_region(self.region, self.region_source)

    def with_action(self, action: Action) -> list[ResourceRow]:
        return [r for r in self.resources if r.action == action.value]

    @property
    def present(self) -> list[ResourceRow]:
        return [r for r in self.resources if r.action != Action.CREATE.value]

    @property
    def missing(self) -> list[ResourceRow]:
        return self.with_action(Action.CREATE)


@dataclass(frozen=True)
class HttpCheck:
    """The result of one HTTP GET: a status code and latency, or why there was no answer."""

    url: str
    status: int | None = None
    latency_ms: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Endpoints:
    app_url: str = ""
    app_health: HttpCheck | None = None
    website_url: str = ""
    bastion: str = ""
    mongodb: str = ""


@dataclass(frozen=True)
class FleetInstance:
    id: str
    zone: str = ""
    state: str = ""  # EC2 state: pending, running, shutting-down, terminated...
    lifecycle: str = ""  # Auto Scaling lifecycle state; "" when not in the group
    ec2_health: str = ""  # Auto Scaling's health status: Healthy / Unhealthy
    target_state: str = ""  # initial, healthy, unhealthy, unused, draining, unavailable; "" when not registered
    target_reason: str = ""
    target_description: str = ""
    private_ip: str = ""
    launched_at: datetime | None = None
    revision: str = ""  # installed by the newest deployment that succeeded on it
    pending_revision: str = ""  # a newer deployment to it that has not succeeded...
    pending_status: str = ""  # ...and its status there (InProgress, Pending, Failed...)


@dataclass(frozen=True)
class Fleet:
    name: str
    min_size: int
    desired: int
    max_size: int
    health_check_type: str = ""
    instances: tuple[FleetInstance, ...] = ()

    @property
    def in_group(self) -> list[FleetInstance]:
        return [i for i in self.instances if i.lifecycle]


@dataclass(frozen=True)
class StageView:
    name: str
    status: str = ""  # the stage's latest execution status; "" = never ran
    execution_id: str = ""
    changed_at: datetime | None = None
    summary: str = ""


@dataclass(frozen=True)
class PipelineView:
    name: str
    stages: tuple[StageView, ...] = ()
    source_revision: str = ""
    source_message: str = ""
    source_time: datetime | None = None


@dataclass(frozen=True)
class LifecycleEventView:
    name: str
    status: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error_code: str = ""
    script: str = ""
    message: str = ""
    log_tail: str = ""

    def duration(self, now: datetime) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, ((self.ended_at or now) - self.started_at).total_seconds())


@dataclass(frozen=True)
class TargetView:
    instance_id: str
    status: str
    updated_at: datetime | None = None
    events: tuple[LifecycleEventView, ...] = ()

    @property
    def failed_event(self) -> LifecycleEventView | None:
        return next((e for e in self.events if e.status == "Failed"), None)


@dataclass(frozen=True)
class DeploymentView:
    id: str
    status: str
    config: str = ""
    creator: str = ""
    created_at: datetime | None = None
    completed_at: datetime | None = None
    revision: str = ""
    message: str = ""  # the commit message, when the pipeline says which commit it deploys
    overview: Mapping[str, int] = field(default_factory=dict)
    error_code: str = ""
    error_message: str = ""
    rollback_of: str = ""  # the failed deployment this one rolls back...
    targets: tuple[TargetView, ...] = ()
    rolls_back: DeploymentView | None = None  # ...and that deployment, with the failure that caused it


@dataclass(frozen=True)
class Activity:
    id: str
    status: str
    description: str
    cause: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
