"""The health rules of `cdpoc status`: why a stack is not (yet) healthy, as sentences (pure).

Exit code 0 means none of these; 3 (EXIT_UNHEALTHY) any: something missing, failing or still settling.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdpoc.errors import EXIT_LEFTOVERS
from cdpoc.statusviews import DeploymentView, Endpoints, Fleet, HttpCheck, PipelineView, ResourceRow, StackView

EXIT_UNHEALTHY = EXIT_LEFTOVERS

# Target health states that mean "on its way" rather than "broken" (both keep the stack from healthy).
SETTLING_TARGET_STATES = ("initial", "draining", "unhealthy.draining")
BROKEN_TARGET_STATES = ("unhealthy", "unavailable")
SETTLED_DEPLOYMENT_STATES = ("Succeeded",)
FAILED_DEPLOYMENT_STATES = ("Failed", "Stopped")


def issues(
    stack: StackView,
    endpoints: Endpoints,
    fleet: Fleet | None,
    pipeline: PipelineView | None,
    deployment: DeploymentView | None,
) -> list[str]:
    """Why the stack is not (yet) healthy: missing parts, failures, and things still settling."""
    if not stack.present:
        return [f"nothing of stack {stack.name} exists in {stack.region}: run `cdpoc up`"]
    found: list[str] = []
    if stack.missing:
        found.append(f"{len(stack.missing)} resource(s) missing: {_keys(stack.missing)} (run `cdpoc up`)")
    check = endpoints.app_health
    if check is not None and not check.ok:
        found.append(f"the app does not answer {check.url}: {describe_check(check)}")
    if fleet is not None:
        found.extend(_fleet_issues(fleet))
    if pipeline is not None:
        found.extend(
            f"pipeline stage {s.name} {s.status.lower()}" + (f": {s.summary}" if s.summary else "")
            for s in pipeline.stages
            if s.status in ("Failed", "Stopped", "Cancelled")
        )
    if deployment is not None:
        found.extend(_deployment_issues(deployment))
    return found


def _deployment_issues(deployment: DeploymentView) -> list[str]:
    found = []
    if deployment.status in FAILED_DEPLOYMENT_STATES:
        reason = f": {deployment.error_message}" if deployment.error_message else ""
        found.append(f"deployment {deployment.id} {deployment.status.lower()}{reason}")
    elif deployment.status not in SETTLED_DEPLOYMENT_STATES:
        found.append(f"deployment {deployment.id} is {deployment.status}")
    if deployment.rollback_of:
        # Even a finished rollback means the latest revision did not make it.
        failed = deployment.rolls_back
        reason = f": {failed.error_message}" if failed is not None and failed.error_message else ""
        found.append(f"deployment {deployment.rollback_of} failed and is rolled back by {deployment.id}{reason}")
    return found


def _fleet_issues(fleet: Fleet) -> list[str]:
    found = []
    in_service = [i for i in fleet.in_group if i.lifecycle == "InService"]
    if len(in_service) < fleet.desired:
        found.append(f"{len(in_service)} of {fleet.desired} instances of {fleet.name} are in service")
    for instance in fleet.in_group:
        if instance.ec2_health and instance.ec2_health != "Healthy":
            found.append(f"{instance.id} is {instance.ec2_health} (Auto Scaling)")
        if instance.lifecycle != "InService":
            continue
        if not instance.target_state:
            found.append(f"{instance.id} is not registered in the target group")
        elif instance.target_state in BROKEN_TARGET_STATES or instance.target_state in SETTLING_TARGET_STATES:
            reason = f" ({instance.target_reason})" if instance.target_reason else ""
            found.append(f"{instance.id} is {instance.target_state} in the target group{reason}")
    return found


def describe_check(check: HttpCheck) -> str:
    if check.status is not None:
        latency = f" in {check.latency_ms:.0f} ms" if check.latency_ms is not None else ""
        return f"HTTP {check.status}{latency}" + (f": {check.error}" if check.error else "")
    return check.error or "no answer"


def _keys(rows: Sequence[ResourceRow], limit: int = 8) -> str:
    keys = [r.key for r in rows]
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
