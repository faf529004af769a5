"""`push-app` and `push-app --wait`: push the bundle, then follow that change to the instances.

Following is a loop of reads turned into a pure value (Rollout) and pure functions of it: what changed
since the last look (a line per change off a terminal), a table (live on a terminal), the outcome, what
it is still waiting for, and why it failed. The chain it follows:

  the pipeline execution whose source revision is the pushed commit (or the S3 version)
  -> its Source and Deploy actions (ListActionExecutions; Deploy's externalExecutionId is the deployment)
  -> the CodeDeploy deployment -> each instance's lifecycle events (with the failing hook's script and log)
  -> each instance's health in the target group.

Ctrl-C stops the waiting, never the deployment. After the first successful deployment the Auto Scaling
group switches to ELB health checks (before it, instances had nothing to answer the ALB with).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from cdpoc.aws.deploy import deployment_targets, get_deployment, target_health, use_elb_health_checks
from cdpoc.aws.pipeline import action_executions, find_execution, get_execution, newest_execution_id
from cdpoc.aws.run import AwsRun
from cdpoc.bundle import PushResult, check_bundle, choose_bundle, push
from cdpoc.context import Context, holding_lock
from cdpoc.errors import Cancelled, CdpocError, WaitTimeout
from cdpoc.spec import spec_of
from cdpoc.stack.parts import FLEET, TARGET_GROUP
from cdpoc.stack.specs.compute import AutoScalingGroupSpec
from cdpoc.ui import Ui

# Seconds between looks (capped by the run's poll_max, so tests with fast waits look faster).
POLL_SECONDS = 2.0
LOG_TAIL_LINES = 20
SUCCEEDED, FAILED = "succeeded", "failed"
FAILED_STATUSES = frozenset({"Failed", "Stopped", "Cancelled", "Superseded", "Abandoned"})


class DeploymentFailed(CdpocError):
    """The pushed change did not reach the instances (exit 1); the message says where it broke."""


# --- the state: pure values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HookFailure:
    instance: str
    hook: str
    script: str
    error_code: str
    message: str
    log_tail: str


@dataclass(frozen=True)
class Instance:
    id: str
    status: str
    events: tuple[tuple[str, str], ...] = ()  # (lifecycle event, status), in CodeDeploy's order
    health: str = ""  # state in the target group
    failure: HookFailure | None = None

    @property
    def current_event(self) -> str:
        """The event running now, else the last one that finished; "" before any."""
        running = [name for name, status in self.events if status == "InProgress"]
        done = [name for name, status in self.events if status not in ("Pending", "Unknown")]
        return (running or done or [""])[-1]


@dataclass(frozen=True)
class Rollout:
    """Everything known about one pushed revision's way to the instances."""

    revision: str
    execution_id: str = ""
    execution_status: str = ""
    actions: tuple[tuple[str, str], ...] = ()  # (stage, status) of the execution's actions
    action_error: str = ""
    deployment_id: str = ""
    deployment_status: str = ""
    deployment_error: str = ""
    instances: tuple[Instance, ...] = ()
    # the pipeline's newest execution before the push ("" none; None: find the execution by revision only)
    newer_than: str | None = None


def _instance(target: Mapping[str, Any], health: Mapping[str, str]) -> Instance:
    instance_id = str(target.get("targetId", ""))
    events, failure = [], None
    for event in target.get("lifecycleEvents", []):
        events.append((event["lifecycleEventName"], event.get("status", "")))
        diagnostics = event.get("diagnostics") or {}
        if event.get("status") == "Failed" and failure is None:
            failure = HookFailure(
                instance_id,
                event["lifecycleEventName"],
                diagnostics.get("scriptName", ""),
                diagnostics.get("errorCode", ""),
                diagnostics.get("message", ""),
                diagnostics.get("logTail", ""),
            )
    return Instance(instance_id, str(target.get("status", "")), tuple(events), health.get(instance_id, ""), failure)


def _result(action: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict((action.get("output") or {}).get("executionResult") or {})


def rollout_from(
    current: Rollout,
    execution: Mapping[str, Any] | None,
    actions: Sequence[Mapping[str, Any]],
    deployment: Mapping[str, Any] | None,
    targets: Sequence[Mapping[str, Any]],
    health: Mapping[str, str],
) -> Rollout:
    """The Rollout the API replies describe (pure: every AWS read happens before)."""
    ordered = sorted(actions, key=lambda a: str(a.get("startTime", "")))
    errors = [
        f"{a.get('stageName')}: {_result(a).get('errorDetails', {}).get('message')}"
        for a in ordered
        if a.get("status") == "Failed" and _result(a).get("errorDetails", {}).get("message")
    ]
    deployment_ids = [_result(a).get("externalExecutionId", "") for a in ordered if a.get("stageName") == "Deploy"]
    error = (deployment or {}).get("errorInformation") or {}
    return replace(
        current,
        execution_status=str((execution or {}).get("status", current.execution_status)),
        actions=tuple((str(a.get("stageName", "")), str(a.get("status", ""))) for a in ordered),
        action_error=errors[0] if errors else "",
        deployment_id=next((str(d) for d in deployment_ids if d), current.deployment_id),
        deployment_status=str((deployment or {}).get("status", current.deployment_status)),
        deployment_error=f"{error.get('code', '')}: {error.get('message', '')}" if error else "",
        instances=tuple(sorted((_instance(t, health) for t in targets), key=lambda i: i.id)),
    )


def outcome(state: Rollout) -> str:
    """SUCCEEDED, FAILED, or "" while it is still under way (the execution ends after its deployment)."""
    if state.deployment_status in FAILED_STATUSES or state.execution_status in FAILED_STATUSES:
        return FAILED
    return SUCCEEDED if state.execution_status == "Succeeded" else ""


def waiting_for(state: Rollout) -> str:
    if not state.execution_id:
        return f"a pipeline execution of revision {state.revision[:12]} to start"
    if not state.deployment_id:
        stages = ", ".join(f"{stage} {status}" for stage, status in state.actions) or "no action started yet"
        return f"pipeline execution {state.execution_id} ({stages})"
    busy = [f"{i.id} {i.current_event or i.status} {i.status}" for i in state.instances if i.status != "Succeeded"]
    detail = "; ".join(busy) or f"{len(state.instances)} instance(s) done"
    return f"deployment {state.deployment_id} ({state.deployment_status}: {detail})"


def events(before: Rollout, after: Rollout) -> list[str]:
    """One line per thing that changed between two looks, in the order it happens."""
    lines = []
    if after.execution_id and after.execution_id != before.execution_id:
        lines.append(f"pipeline execution {after.execution_id} started for revision {after.revision[:12]}")
    before_actions = dict(before.actions)
    lines.extend(f"  {stage}: {status}" for stage, status in after.actions if before_actions.get(stage) != status)
    if after.deployment_id and after.deployment_id != before.deployment_id:
        lines.append(f"  deployment {after.deployment_id}")
    if after.deployment_status != before.deployment_status and after.deployment_status:
        lines.append(f"  deployment {after.deployment_id}: {after.deployment_status}")
    previous = {i.id: i for i in before.instances}
    for instance in after.instances:
        old = previous.get(instance.id, Instance(instance.id, ""))
        old_events = dict(old.events)
        for name, status in instance.events:
            # Skipped events (after a failure, or on an instance never reached) would only repeat the outcome.
            if old_events.get(name) != status and status not in ("Pending", "Unknown", "Skipped"):
                lines.append(f"    {instance.id}: {name} {status}")
        if instance.status != old.status:
            lines.append(f"    {instance.id}: {instance.status}")
        if instance.health != old.health and instance.health:
            lines.append(f"    {instance.id}: {instance.health} in the target group")
    if after.execution_status != before.execution_status and after.execution_status:
        lines.append(f"pipeline execution {after.execution_id}: {after.execution_status}")
    return lines


def failure_lines(state: Rollout) -> list[str]:
    """Where and why it failed: the instance, hook, script and the tail of its log when CodeDeploy has them."""
    failures = [i.failure for i in state.instances if i.failure is not None]
    lines = []
    for failure in failures:
        script = f", script {failure.script}" if failure.script else ""
        lines.append(f"instance {failure.instance} failed at {failure.hook}{script}")
        if failure.error_code or failure.message:
            lines.append(f"  {failure.error_code}: {failure.message}".rstrip(": "))
        tail = [line for line in failure.log_tail.splitlines() if line.strip()][-LOG_TAIL_LINES:]
        if tail:
            lines.append("  log tail:")
            lines.extend(f"    {line}" for line in tail)
    if not failures and state.deployment_error:
        lines.append(f"deployment {state.deployment_id}: {state.deployment_error}")
    if not failures and not state.deployment_error and state.action_error:
        lines.append(f"pipeline action {state.action_error}")
    if not lines:
        lines.append(f"pipeline execution {state.execution_id or '?'} ended {state.execution_status or '?'}")
    return lines


def table(state: Rollout) -> Table:
    """The live view: the pipeline's actions, the deployment, one row per instance."""
    view = Table(title=f"push-app: revision {state.revision[:12]}", title_justify="left", expand=False)
    for column in ("step", "status", "detail"):
        view.add_column(column)
    view.add_row(Text("pipeline execution"), Text(state.execution_status or "waiting"), Text(state.execution_id))
    for stage, status in state.actions:
        view.add_row(Text(f"  {stage}"), Text(status), Text(""))
    if state.deployment_id:
        view.add_row(Text("deployment"), Text(state.deployment_status), Text(state.deployment_id))
    for instance in state.instances:
        health = f", {instance.health} in target group" if instance.health else ""
        view.add_row(Text(f"  {instance.id}"), Text(instance.status), Text(f"{instance.current_event}{health}"))
    return view


# --- the reads ---------------------------------------------------------------------------------------


def look(run: AwsRun, pipeline: str, target_group: str, state: Rollout) -> Rollout:
    """One round of reads: from the execution (found by revision) down to the instances' health."""
    if not state.execution_id:
        summary = find_execution(run, pipeline, state.revision, state.newer_than)
        if summary is None:
            return state
        state = replace(state, execution_id=str(summary["pipelineExecutionId"]))
    execution = get_execution(run, pipeline, state.execution_id)
    actions = action_executions(run, pipeline, state.execution_id)
    current = rollout_from(state, execution, actions, None, (), {})
    if not current.deployment_id:
        return current
    deployment = get_deployment(run, current.deployment_id)
    targets = deployment_targets(run, current.deployment_id)
    health = target_health(run, target_group) if targets and target_group else {}
    return rollout_from(current, execution, actions, deployment, targets, health)


def follow(
    run: AwsRun,
    ui: Ui,
    pipeline: str,
    start: Rollout,
    target_group: str,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> Rollout:
    """Look until the rollout succeeds or fails; WaitTimeout after `timeout`; Ctrl-C stops only the waiting."""
    state = start
    deadline = clock() + timeout
    poll = min(run.waits.poll_max, POLL_SECONDS)
    try:
        with ui.live(table(state)) as view:
            while True:
                current = look(run, pipeline, target_group, state)
                if view.active:
                    view.update(table(current))
                else:
                    for line in events(state, current):
                        ui.say(line)
                state = current
                if outcome(state):
                    return state
                if clock() >= deadline:
                    raise WaitTimeout(
                        f"gave up after {timeout:.0f}s waiting for {waiting_for(state)}", timeout_hint(state)
                    )
                run.pause(poll)
    except (KeyboardInterrupt, Cancelled):
        raise stopped_waiting(state) from None


# EventBridge reports a refused target only in the rule's FailedInvocations metric: nothing the rollout can
# read names the missing permission, so the hint does.
NOT_STARTED_HINT = (
    "No pipeline execution started for the push: the EventBridge rule on the branch starts the pipeline with "
    "its role, which needs codepipeline:StartPipelineExecution on the pipeline (the rule's FailedInvocations "
    "metric counts refusals); `cdpoc up` restores cdpoc's policies."
)


def timeout_hint(state: Rollout) -> str:
    if not state.execution_id:
        return NOT_STARTED_HINT
    return "It may still finish: `cdpoc status --watch` follows it."


def stopped_waiting(state: Rollout) -> Cancelled:
    if state.deployment_id:
        what = f"deployment {state.deployment_id} continues"
    elif state.execution_id:
        what = f"pipeline execution {state.execution_id} continues"
    else:
        what = f"revision {state.revision[:12]} is pushed; its pipeline run starts on its own"
    return Cancelled(f"stopped waiting: {what}", "`cdpoc status` shows how it goes (`--watch` to follow it live).")


# --- push-app ----------------------------------------------------------------------------------------


def verdict(state: Rollout) -> DeploymentFailed | None:
    """The error a finished rollout ends push-app with; None when every instance has the change.

    CodeDeploy calls a OneAtATime deployment Succeeded when only its last instance failed (the minimum of
    healthy hosts still held), and rolls nothing back: that instance runs the old revision or none.
    """
    failed = [i for i in state.instances if i.failure is not None]
    if outcome(state) == FAILED:
        hint = (
            "Fix the bundle and push again; CodeDeploy rolls the instances back to the last good revision."
            if failed
            else "`cdpoc status` shows the pipeline and the latest deployment; push again once the cause is gone."
        )
        return DeploymentFailed("the change did not deploy:\n  " + "\n  ".join(failure_lines(state)), hint)
    if failed:
        return DeploymentFailed(
            f"deployment {state.deployment_id} succeeded, but not on every instance:\n  "
            + "\n  ".join(failure_lines(state)),
            "CodeDeploy tolerated the failure (its minimum of healthy hosts held) and rolled nothing back: "
            "fix the bundle and push again.",
        )
    return None


def _pushed(ui: Ui, result: PushResult) -> None:
    ui.report(
        target=result.target,
        changed=result.changed,
        revision=result.revision or None,
        commits=list(result.commits),
        execution_id=result.execution_id or None,
    )
    if not result.changed:
        ui.say(f"Nothing to push: {result.target} already has this bundle ({result.summary}).", style="bold")
        return
    ui.say(f"Pushed to {result.target}: {result.summary}.")
    for commit in result.commits:
        ui.say(f"  commit {commit}")
    if not result.commits:
        ui.say(f"  version {result.revision}, pipeline execution {result.execution_id}")


def _after_success(ctx: Context, state: Rollout) -> None:
    ui = ctx.ui
    ready = sum(1 for i in state.instances if i.status == "Succeeded")
    ui.report(deployment_id=state.deployment_id, deployed_instances=ready)
    ui.say(f"Deployed: {state.deployment_id} succeeded on {ready} instance(s).", style="bold green")
    group = FLEET.of(ctx.graph())
    if group is not None:
        grace = spec_of(group, AutoScalingGroupSpec).health_check_grace_period
        if use_elb_health_checks(ctx.run, group.name, grace):
            ui.say(f"Auto Scaling group {group.name} now replaces instances that fail the ALB health check.")


@holding_lock("push-app")
def push_app(
    ctx: Context,
    bundle_dir: Path | None,
    message: str | None,
    wait: bool,
    timeout: float,
    allowed_secrets: frozenset[str] = frozenset(),
) -> PushResult:
    """Validate, push what changed, and with `wait` follow it to the instances (DeploymentFailed if it fails).

    bundle_dir None: ./bundle, or the sample app that ships with cdpoc (cdpoc.bundle.choose_bundle)."""
    bundle_dir, chosen_by = choose_bundle(bundle_dir)
    ctx.ui.say(f"Bundle: {bundle_dir} ({chosen_by})")
    newer_than = newest_execution_id(ctx.run, ctx.names.pipeline) if wait else None
    result = push_bundle(ctx, bundle_dir, message, allowed_secrets)
    if result.changed and wait:
        follow_push(ctx, result, timeout, newer_than)
    elif result.changed:
        ctx.ui.say("The pipeline picks it up on its own; `cdpoc status --watch` follows it.")
    return result


@holding_lock("push-app")
def push_bundle(
    ctx: Context, bundle_dir: Path, message: str | None, allowed_secrets: frozenset[str] = frozenset()
) -> PushResult:
    """Validate the bundle (before any AWS call), then push only what differs from the source."""
    files = check_bundle(bundle_dir, allowed_secrets)
    result = push(ctx.run, ctx.names.pipeline, files, message)
    _pushed(ctx.ui, result)
    return result


@holding_lock("push-app")
def follow_push(ctx: Context, result: PushResult, timeout: float, newer_than: str | None = None) -> None:
    """Follow a pushed change through the pipeline to every instance; DeploymentFailed if it did not deploy.

    `newer_than` (the newest execution before the push) lets a run that failed before its source action
    fetched the change count as this push's: nothing else ties it to the commit."""
    target_group = TARGET_GROUP.of(ctx.graph())
    start = Rollout(result.revision, execution_id=result.execution_id, newer_than=newer_than)
    state = follow(ctx.run, ctx.ui, ctx.names.pipeline, start, target_group.name if target_group else "", timeout)
    problem = verdict(state)
    if problem is not None:
        raise problem
    _after_success(ctx, state)
