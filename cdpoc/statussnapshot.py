"""The snapshot `cdpoc status` takes: the parts (cdpoc.statusviews) at one moment, and its verdict.

Pure data: the verdict is cdpoc.statushealth's rules applied to the parts, computed when asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cdpoc.errors import EXIT_OK
from cdpoc.statushealth import EXIT_UNHEALTHY, issues
from cdpoc.statusviews import Activity, DeploymentView, Endpoints, Fleet, PipelineView, StackView


@dataclass(frozen=True)
class StatusSnapshot:
    taken_at: datetime
    stack: StackView
    endpoints: Endpoints = field(default_factory=Endpoints)
    fleet: Fleet | None = None
    pipeline: PipelineView | None = None
    deployment: DeploymentView | None = None
    activities: tuple[Activity, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def issues(self) -> list[str]:
        return issues(self.stack, self.endpoints, self.fleet, self.pipeline, self.deployment)

    @property
    def healthy(self) -> bool:
        return not self.issues


def exit_code(snapshot: StatusSnapshot) -> int:
    return EXIT_OK if snapshot.healthy else EXIT_UNHEALTHY
