"""The timeline of one simulated CodeDeploy in-place deployment, fixed when it is created.

A plan says when every lifecycle event of every instance starts and ends and how it ends; reading it at
any instant gives the deployment's, each target's and each event's status at that instant, so the
sandbox needs no background thread and every read agrees. Only StopDeployment changes a plan afterwards.

Batching and success follow CodeDeploy's minimum-healthy-hosts rules: OneAtATime deploys to one instance
at a time and fails on the first failed instance unless it was the last of several (AWS documents that
exception); HalfAtATime and AllAtOnce deploy in larger batches and fail only when too few instances can
still succeed. A failure fails the rest of that instance's events as Skipped and, when the deployment
fails, the instances not yet started as Skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from cdpoc.sandbox.simulation import SERVICE_EVENTS, FailureRequest

PENDING, IN_PROGRESS, SUCCEEDED, FAILED, SKIPPED, STOPPED = (
    "Pending",
    "InProgress",
    "Succeeded",
    "Failed",
    "Skipped",
    "Stopped",
)
HEALTH_CONSTRAINTS_MESSAGE = (
    "The overall deployment failed because too many individual instances failed deployment, too few healthy "
    "instances are available for deployment, or some instances in your deployment group are experiencing "
    "problems."
)
NO_INSTANCES_MESSAGE = (
    "The deployment failed because no instances were found for your deployment group. Check your deployment "
    "group settings to make sure the tags for your Amazon EC2 instances or Auto Scaling groups correctly "
    "identify the instances you want to deploy to, and then try again."
)
STOPPED_MESSAGE = "The deployment was stopped by a user."
STOPPED_EVENT_MESSAGE = "The deployment was stopped while this lifecycle event was running."


@dataclass(frozen=True)
class Script:
    location: str
    runas: str = "root"


@dataclass(frozen=True)
class Diagnostics:
    error_code: str
    script_name: str
    message: str
    log_tail: str

    def to_json(self) -> dict[str, str]:
        return {
            "errorCode": self.error_code,
            "scriptName": self.script_name,
            "message": self.message,
            "logTail": self.log_tail,
        }


SUCCESS = Diagnostics("Success", "", "Succeeded", "")
# Diagnostics whose log lines carry the times the failed event started and ended (start, end).
DiagnosticsAt = Callable[[float, float], Diagnostics]
InstanceFailure = tuple[str, Diagnostics | DiagnosticsAt]


@dataclass(frozen=True)
class EventPlan:
    name: str
    start: float
    end: float
    outcome: str  # Succeeded | Failed | Skipped
    diagnostics: Diagnostics | None = None

    def status(self, now: float) -> str:
        if self.outcome == SKIPPED:
            return SKIPPED if now >= self.end else PENDING
        if now < self.start:
            return PENDING
        return IN_PROGRESS if now < self.end else self.outcome

    def to_json(self, now: float) -> dict[str, object]:
        status = self.status(now)
        event: dict[str, object] = {"lifecycleEventName": self.name, "status": status}
        if status in (IN_PROGRESS, SUCCEEDED, FAILED):
            event["startTime"] = self.start
        if status in (SUCCEEDED, FAILED):
            event["endTime"] = self.end
            if self.diagnostics is not None:
                event["diagnostics"] = self.diagnostics.to_json()
        return event


@dataclass(frozen=True)
class TargetPlan:
    target_id: str
    events: tuple[EventPlan, ...]
    outcome: str  # Succeeded | Failed | Skipped
    start: float
    end: float

    def status(self, now: float) -> str:
        if self.outcome == SKIPPED:
            return SKIPPED if now >= self.end else PENDING
        if now < self.start:
            return PENDING
        return IN_PROGRESS if now < self.end else self.outcome

    def last_updated(self, now: float, created: float) -> float:
        moments = [created] + [t for e in self.events for t in (e.start, e.end) if t <= now]
        return max(moments)


@dataclass(frozen=True)
class HealthRule:
    """A deployment configuration's minimum healthy hosts (MOST_CONCURRENCY is OneAtATime's own type)."""

    kind: str  # MOST_CONCURRENCY | HOST_COUNT | FLEET_PERCENT
    value: int

    def required_healthy(self, fleet: int) -> int:
        if self.kind == "HOST_COUNT":
            return self.value
        if self.kind == "FLEET_PERCENT":
            return math.ceil(fleet * self.value / 100)
        return fleet - 1

    def batch_size(self, fleet: int) -> int:
        if self.kind == "MOST_CONCURRENCY":
            return 1
        return max(1, fleet - self.required_healthy(fleet))

    def fails(self, fleet: int, failed: list[int]) -> bool:
        """Whether these failed instances (indexes in deployment order) fail the whole deployment."""
        if not failed:
            return False
        if self.kind == "MOST_CONCURRENCY":
            # AWS: with OneAtATime a failure on the last of several instances still succeeds
            return fleet == 1 or any(index != fleet - 1 for index in failed)
        # AllAtOnce (HOST_COUNT 0) still needs one instance to succeed
        return fleet - len(failed) < max(1, self.required_healthy(fleet))


@dataclass
class DeploymentPlan:
    created: float
    started: float
    completed: float
    outcome: str  # Succeeded | Failed | Stopped
    targets: list[TargetPlan] = field(default_factory=list)
    error: tuple[str, str] | None = None

    def status(self, now: float) -> str:
        if now < self.started:
            return "Created"
        return IN_PROGRESS if now < self.completed else self.outcome

    def target(self, target_id: str) -> TargetPlan | None:
        return next((t for t in self.targets if t.target_id == target_id), None)

    def overview(self, now: float) -> dict[str, int]:
        counts = dict.fromkeys((PENDING, IN_PROGRESS, SUCCEEDED, FAILED, SKIPPED, "Ready"), 0)
        for target in self.targets:
            counts[target.status(now)] += 1
        return counts

    def stop(self, at: float) -> None:
        """StopDeployment at `at`: the running event fails, everything not yet started is Skipped."""
        self.targets = [_stopped(target, at) for target in self.targets]
        self.completed = at
        self.outcome = STOPPED
        self.error = ("MANUAL_STOP", STOPPED_MESSAGE)


def plan_deployment(
    *,
    created: float,
    step: float,
    target_ids: list[str],
    events: tuple[str, ...],
    rule: HealthRule,
    failure: FailureRequest | None = None,
    scripts: Mapping[str, Script] | None = None,
    no_instances_fail: bool = True,
    agent_failures: Mapping[str, InstanceFailure] | None = None,
    not_before: float = 0.0,
) -> DeploymentPlan:
    """The whole timeline: one step in Created, then instances in batches, each event taking one step.

    `agent_failures`: instance id -> (event, diagnostics) where that instance fails whatever the bundle is
    asked to do: its agent has no credentials or may not download the revision, or the bundle's own calls
    with the instance role are refused (cdpoc/sandbox/instance_calls.py).
    `not_before`: the instances cannot start earlier (a just-launched instance's agent is not running yet)."""
    started = max(created + step, not_before)
    if not target_ids:
        if no_instances_fail:
            return DeploymentPlan(created, started, started, FAILED, [], ("NO_INSTANCES", NO_INSTANCES_MESSAGE))
        return DeploymentPlan(created, started, started, SUCCEEDED)
    fleet = len(target_ids)
    size = rule.batch_size(fleet)
    targets: list[TargetPlan] = []
    failed: list[int] = []
    batch_start = started
    for first in range(0, fleet, size):
        batch = [
            _run_target(
                tid,
                events,
                batch_start,
                step,
                failure if index == 0 else None,
                scripts or {},
                (agent_failures or {}).get(tid),
            )
            for index, tid in enumerate(target_ids[first : first + size], start=first)
        ]
        targets.extend(batch)
        failed.extend(first + i for i, t in enumerate(batch) if t.outcome == FAILED)
        batch_start = max(t.end for t in batch)
        if rule.fails(fleet, failed):
            targets.extend(_skipped(tid, events, batch_start) for tid in target_ids[first + size :])
            return DeploymentPlan(
                created, started, batch_start, FAILED, targets, ("HEALTH_CONSTRAINTS", HEALTH_CONSTRAINTS_MESSAGE)
            )
    return DeploymentPlan(created, started, batch_start, SUCCEEDED, targets)


def _run_target(
    target_id: str,
    events: tuple[str, ...],
    start: float,
    step: float,
    failure: FailureRequest | None,
    scripts: Mapping[str, Script],
    agent_failure: InstanceFailure | None = None,
) -> TargetPlan:
    planned: list[EventPlan] = []
    moment = start
    for name in events:
        diagnostics = None
        if agent_failure is not None and name == agent_failure[0]:
            found = agent_failure[1]
            diagnostics = found if isinstance(found, Diagnostics) else found(moment, moment + step)
        elif failure is not None and name == failure.hook:
            diagnostics = failure_diagnostics(failure, scripts)
        if diagnostics is not None:
            planned.append(EventPlan(name, moment, moment + step, FAILED, diagnostics))
            moment += step
            planned.extend(EventPlan(rest, moment, moment, SKIPPED) for rest in events[len(planned) :])
            return TargetPlan(target_id, tuple(planned), FAILED, start, moment)
        planned.append(EventPlan(name, moment, moment + step, SUCCEEDED, SUCCESS))
        moment += step
    return TargetPlan(target_id, tuple(planned), SUCCEEDED, start, moment)


def _skipped(target_id: str, events: tuple[str, ...], at: float) -> TargetPlan:
    return TargetPlan(target_id, tuple(EventPlan(name, at, at, SKIPPED) for name in events), SKIPPED, at, at)


def _stopped(target: TargetPlan, at: float) -> TargetPlan:
    if target.end <= at and target.outcome != SKIPPED:
        return target
    if target.start > at or target.outcome == SKIPPED:
        return _skipped(target.target_id, tuple(e.name for e in target.events), min(at, target.end))
    events = []
    for event in target.events:
        if event.end <= at and event.outcome != SKIPPED:
            events.append(event)
        elif event.start <= at and event.outcome != SKIPPED:
            diagnostics = Diagnostics("UnknownError", "", STOPPED_EVENT_MESSAGE, "")
            events.append(replace(event, end=at, outcome=FAILED, diagnostics=diagnostics))
        else:
            events.append(EventPlan(event.name, at, at, SKIPPED))
    return TargetPlan(target.target_id, tuple(events), FAILED, target.start, at)


def failure_diagnostics(failure: FailureRequest, scripts: Mapping[str, Script]) -> Diagnostics:
    """What CodeDeploy reports for a failed event: the hook's script from the appspec, its exit, its log."""
    if failure.hook in SERVICE_EVENTS:
        return Diagnostics("UnknownError", "", failure.message, "")
    script = scripts.get(failure.hook)
    log_tail = "\n".join(f"[stderr]{line}" for line in failure.message.splitlines())
    if script is None:
        message = f"Script for lifecycle event {failure.hook} failed with exit code 1"
        return Diagnostics("ScriptFailed", "", message, log_tail)
    message = f"Script at specified location: {script.location} run as user {script.runas} failed with exit code 1"
    return Diagnostics("ScriptFailed", script.location, message, log_tail)
