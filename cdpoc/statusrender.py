"""Pure functions from a StatusSnapshot to a rich screen, plain lines, a JSON-ready dict, or the changes
between two snapshots (what `status --watch` highlights, or prints a line for off a terminal).

Strings that come from AWS go into Text objects, never into markup. The JSON keys are documented in
cdpoc.status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cdpoc.cost import describe_cost
from cdpoc.statussnapshot import StatusSnapshot
from cdpoc.statusviews import (
    Activity,
    DeploymentView,
    Endpoints,
    Fleet,
    FleetInstance,
    HttpCheck,
    LifecycleEventView,
    PipelineView,
    StackView,
    TargetView,
)

SCHEMA = 1
CHANGED = "bold reverse"
GOOD = ("healthy", "Healthy", "InService", "Succeeded", "Successful", "running")
SETTLING = (
    *("initial", "draining", "Pending", "Pending:Wait", "Pending:Proceed", "InProgress", "Created", "Queued"),
    *("Ready", "Baking", "Terminating", "Terminating:Wait", "Terminating:Proceed", "PreInService", "Stopping"),
)
BAD = ("unhealthy", "unavailable", "Unhealthy", "Failed", "Stopped", "Cancelled", "Abandoned")
EVENT_MARK = {
    "Succeeded": "ok",
    "Failed": "FAILED",
    "InProgress": "running",
    "Pending": "pending",
    "Skipped": "skipped",
}
LOG_TAIL_LINES = 12


def style_of(state: str) -> str:
    if state in GOOD:
        return "green"
    if state in BAD or state.startswith(("unhealthy", "Target.")):
        return "bold red"
    if state in SETTLING:
        return "yellow"
    return ""


# --- time ---------------------------------------------------------------------------------------------


def span(seconds: float) -> str:
    """3s, 4m 05s, 2h 13m, 3d 4h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def took(seconds: float) -> str:
    """A step's duration: tenths below ten seconds (sandbox steps are fractions of a second)."""
    return f"{seconds:.1f}s" if seconds < 10 and seconds != int(seconds) else span(seconds)


def ago(when: datetime | None, now: datetime) -> str:
    return f"{span((now - when).total_seconds())} ago" if when is not None else ""


def iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.isoformat().replace("+00:00", "Z")


def short(revision: str) -> str:
    """A commit id shortened like git does; other labels as they are."""
    if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision[:8]
    return revision


def first_line(text: str, width: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


# --- wording shared by the screen and the lines ---------------------------------------------------------


def stack_heading(stack: StackView, now: datetime) -> str:
    parts = [f"Stack {stack.name}", stack.region_label, f"account {stack.account}"]
    if stack.created_at is not None:
        parts.append(f"up {span((now - stack.created_at).total_seconds())}")
    parts.append(describe_cost(stack.cost_per_hour))
    return " · ".join(parts)


def resources_line(stack: StackView) -> str:
    total, present = len(stack.resources), len(stack.present)
    if not present:
        return (
            f"Nothing of stack {stack.name} exists in {stack.region_label}: `cdpoc up` would create {total} resources."
        )
    text = f"Resources: {present} of {total} exist"
    missing = stack.missing
    if missing:
        text += f"; `cdpoc up` would create {len(missing)}: " + ", ".join(r.key for r in missing)
    return text + "."


def check_text(check: HttpCheck) -> str:
    path = check.url.split("/", 3)[3] if check.url.count("/") >= 3 else ""
    if check.status is not None:
        latency = f" in {check.latency_ms:.0f} ms" if check.latency_ms is not None else ""
        detail = f" ({check.error})" if check.error else ""
        return f"GET /{path}: {check.status}{latency}{detail}"
    return f"GET /{path}: {check.error or 'no answer'}"


def endpoint_rows(endpoints: Endpoints) -> list[tuple[str, str, str, str]]:
    """(name, address, check text, check style) for each endpoint that exists."""
    rows = []
    if endpoints.app_url:
        check = endpoints.app_health
        rows.append(
            (
                "app",
                endpoints.app_url,
                check_text(check) if check else "",
                ("green" if check.ok else "bold red") if check else "",
            )
        )
    if endpoints.website_url:
        rows.append(("website", endpoints.website_url, "", ""))
    if endpoints.bastion:
        rows.append(("bastion", endpoints.bastion, "ssh ec2-user@" + endpoints.bastion, "dim"))
    if endpoints.mongodb:
        rows.append(("mongodb", endpoints.mongodb, "private, port 27017", "dim"))
    return rows


def fleet_heading(fleet: Fleet) -> str:
    check = f" · health check {fleet.health_check_type}" if fleet.health_check_type else ""
    return f"Fleet {fleet.name}: min {fleet.min_size} · desired {fleet.desired} · max {fleet.max_size}{check}"


def target_text(instance: FleetInstance) -> str:
    if not instance.target_state:
        return "not registered"
    return instance.target_state + (f" ({instance.target_reason})" if instance.target_reason else "")


def revision_text(instance: FleetInstance) -> str:
    text = short(instance.revision) if instance.revision else "none"
    if instance.pending_revision:
        text += f" → {short(instance.pending_revision)} {instance.pending_status}"
    return text


def pipeline_heading(pipeline: PipelineView, now: datetime) -> str:
    text = f"Pipeline {pipeline.name}"
    if pipeline.source_revision:
        text += f": source {short(pipeline.source_revision)}"
        if pipeline.source_message:
            text += f' "{first_line(pipeline.source_message, 60)}"'
        if pipeline.source_time is not None:
            text += f" · {ago(pipeline.source_time, now)}"
    return text


def deployment_heading(deployment: DeploymentView, now: datetime) -> str:
    parts = [f"Deployment {deployment.id}", deployment.status]
    if deployment.config:
        parts.append(deployment.config)
    if deployment.creator:
        parts.append(f"by {deployment.creator}")
    if deployment.created_at is not None:
        parts.append(f"created {ago(deployment.created_at, now)}")
    if deployment.completed_at is not None and deployment.created_at is not None:
        parts.append(f"took {span((deployment.completed_at - deployment.created_at).total_seconds())}")
    if deployment.revision:
        parts.append(f"revision {short(deployment.revision)}")
    if deployment.rollback_of:
        parts.append(f"rolls back {deployment.rollback_of}")
    return " · ".join(parts)


def overview_text(deployment: DeploymentView) -> str:
    return " · ".join(f"{k} {v}" for k, v in deployment.overview.items() if v or k in ("Pending", "Succeeded"))


def event_text(event: LifecycleEventView, now: datetime) -> str:
    duration = event.duration(now)
    length = f" {took(duration)}" if duration is not None else ""
    return f"{event.name} {EVENT_MARK.get(event.status, event.status)}{length}"


def failure_lines(target: TargetView) -> list[str]:
    """The failed hook, its script, the message and the tail of its log, ready to show inline."""
    event = target.failed_event
    if event is None:
        return []
    script = f" running {event.script}" if event.script else ""
    code = f" ({event.error_code})" if event.error_code else ""
    lines = [f"{target.instance_id} failed at {event.name}{script}{code}"]
    if event.message:
        lines.append(f"  {first_line(event.message, 160)}")
    tail = [line for line in event.log_tail.splitlines() if line.strip()][-LOG_TAIL_LINES:]
    lines.extend(f"  | {line}" for line in tail)
    return lines


def rolled_back_lines(deployment: DeploymentView, now: datetime) -> list[str]:
    """What failed in the deployment a rollback undoes: its error, and each failed hook with its log tail."""
    failed = deployment.rolls_back
    if failed is None:
        return []
    lines = [f"Rolled back: {deployment_heading(failed, now)}"]
    if failed.error_message:
        lines.append(f"  {failed.error_code}: {failed.error_message}")
    for target in failed.targets:
        lines.extend(f"  {line}" for line in failure_lines(target))
    return lines


def activity_text(item: Activity, now: datetime) -> str:
    when = ago(item.started_at, now)
    cause = f" — {first_line(item.cause, 140)}" if item.cause else ""
    return f"{when:>12}  {item.status:<12} {item.description}{cause}"


def verdict(snapshot: StatusSnapshot) -> list[str]:
    found = snapshot.issues
    if not found:
        return ["Healthy: everything that exists is in service."]
    return [f"Not healthy ({len(found)}):", *(f"  - {issue}" for issue in found)]


# --- the screen ---------------------------------------------------------------------------------------------


def _cell(text: str, path: str, changed: frozenset[str], style: str = "") -> Text:
    return Text(text, style=CHANGED if path in changed else style)


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, expand=False, show_edge=False)
    for column in columns:
        # fold, never cut: an address, an id or a URL is copied from here, and "http://…el…" is useless
        table.add_column(column, overflow="fold")
    return table


def _section(heading: RenderableType, *body: RenderableType) -> Group:
    """A heading line above its table: a table's own title would wrap at the table's width."""
    return Group(Text(""), heading if not isinstance(heading, str) else Text(heading, style="bold"), *body)


def status_renderable(
    snapshot: StatusSnapshot, changed: frozenset[str] = frozenset(), footer: RenderableType | None = None
) -> RenderableType:
    """The whole screen; cells whose fact path is in `changed` are highlighted."""
    now = snapshot.taken_at
    parts: list[RenderableType] = [
        Text(stack_heading(snapshot.stack, now), style="bold"),
        _cell(resources_line(snapshot.stack), "stack.resources", changed),
    ]
    parts.extend(Text(note, style="yellow") for note in snapshot.notes)
    if snapshot.stack.present:
        parts.extend(_sections(snapshot, changed))
    style = "bold red" if snapshot.issues else "bold green"
    parts.append(Text(""))
    parts.extend(Text(line, style=style if n == 0 else "red") for n, line in enumerate(verdict(snapshot)))
    if footer is not None:
        parts.append(footer)
    return Group(*parts)


def _sections(snapshot: StatusSnapshot, changed: frozenset[str]) -> list[RenderableType]:
    now = snapshot.taken_at
    parts: list[RenderableType] = []
    rows = endpoint_rows(snapshot.endpoints)
    if rows:
        table = _table("endpoint", "address", "check")
        for name, address, check, style in rows:
            table.add_row(Text(name), Text(address), _cell(check, f"endpoints.{name}.health", changed, style))
        parts.append(_section("Endpoints", table))
    if snapshot.fleet is not None:
        parts.append(_fleet_table(snapshot.fleet, changed))
    if snapshot.pipeline is not None:
        parts.append(_pipeline_table(snapshot.pipeline, now, changed))
    if snapshot.deployment is not None:
        parts.extend(_deployment_parts(snapshot.deployment, now, changed))
    if snapshot.activities:
        table = _table("when", "status", "activity")
        for item in snapshot.activities:
            table.add_row(
                Text(ago(item.started_at, now)),
                _cell(item.status, f"activity.{item.id}", changed, style_of(item.status)),
                Text(item.description + (f"\n{first_line(item.cause, 160)}" if item.cause else "")),
            )
        parts.append(_section("Recent Auto Scaling activity", table))
    return parts


def _fleet_table(fleet: Fleet, changed: frozenset[str]) -> Group:
    table = _table("instance", "zone", "lifecycle", "EC2 health", "target", "revision")
    for i in fleet.instances:
        path = f"fleet.{i.id}"
        lifecycle = i.lifecycle or f"not in group ({i.state or 'gone'})"
        table.add_row(
            _cell(i.id, f"{path}.lifecycle", changed) if i.id else Text(""),
            Text(i.zone),
            _cell(lifecycle, f"{path}.lifecycle", changed, style_of(i.lifecycle or "Terminating")),
            _cell(i.ec2_health, f"{path}.ec2_health", changed, style_of(i.ec2_health)),
            _cell(target_text(i), f"{path}.target", changed, style_of(i.target_state or "Pending")),
            _cell(
                revision_text(i), f"{path}.revision", changed, style_of(i.pending_status) if i.pending_status else ""
            ),
        )
    return _section(_cell(fleet_heading(fleet), "fleet.size", changed, "bold"), table)


def _pipeline_table(pipeline: PipelineView, now: datetime, changed: frozenset[str]) -> Group:
    table = _table("stage", "status", "when", "detail")
    for stage in pipeline.stages:
        table.add_row(
            Text(stage.name),
            _cell(stage.status or "never ran", f"pipeline.{stage.name}", changed, style_of(stage.status)),
            Text(ago(stage.changed_at, now)),
            Text(first_line(stage.summary, 100)),
        )
    return _section(_cell(pipeline_heading(pipeline, now), "pipeline.source", changed, "bold"), table)


def _deployment_parts(deployment: DeploymentView, now: datetime, changed: frozenset[str]) -> list[RenderableType]:
    parts: list[RenderableType] = [
        Text(""),
        _cell(deployment_heading(deployment, now), "deployment", changed, "bold " + style_of(deployment.status)),
        _cell(overview_text(deployment), "deployment.overview", changed),
    ]
    if deployment.error_message:
        parts.append(Text(f"{deployment.error_code}: {deployment.error_message}", style="red"))
    if deployment.targets:
        table = _table("instance", "status", "lifecycle events")
        for target in deployment.targets:
            events = Text()
            for n, event in enumerate(target.events):
                if n:
                    events.append(" · ")
                path = f"deployment.{target.instance_id}.{event.name}"
                events.append(event_text(event, now), style=CHANGED if path in changed else style_of(event.status))
            table.add_row(
                Text(target.instance_id),
                _cell(target.status, f"deployment.{target.instance_id}", changed, style_of(target.status)),
                events,
            )
        parts.append(table)
    for target in deployment.targets:
        lines = failure_lines(target)
        if lines:
            parts.append(Text(lines[0], style="bold red"))
            parts.extend(Text(line, style="red" if n == 0 else "") for n, line in enumerate(lines[1:]))
    for n, line in enumerate(rolled_back_lines(deployment, now)):
        parts.append(Text(line, style="bold red" if n == 0 else ("" if "| " in line else "red")))
    return parts


def watch_footer(taken_at: datetime, interval: float, note: str = "") -> Text:
    text = Text(f"refreshed {taken_at.strftime('%H:%M:%S')} UTC · every {interval:g}s · Ctrl-C to stop", style="dim")
    if note:
        text.append(f"\n{note}", style="yellow")
    return text


# --- plain lines (not a terminal) ---------------------------------------------------------------------------


def status_lines(snapshot: StatusSnapshot) -> list[str]:
    now = snapshot.taken_at
    lines = [stack_heading(snapshot.stack, now), resources_line(snapshot.stack), *snapshot.notes]
    if snapshot.stack.present:
        for name, address, check, _ in endpoint_rows(snapshot.endpoints):
            lines.append(f"endpoint {name:8} {address}  {check}".rstrip())
        if snapshot.fleet is not None:
            lines.append(fleet_heading(snapshot.fleet))
            for i in snapshot.fleet.instances:
                lifecycle = i.lifecycle or f"not-in-group({i.state or 'gone'})"
                lines.append(
                    f"  {i.id:20} {i.zone:12} {lifecycle:18} {i.ec2_health or '-':10} {target_text(i):40} "
                    f"{revision_text(i)}".rstrip()
                )
        if snapshot.pipeline is not None:
            lines.append(pipeline_heading(snapshot.pipeline, now))
            for stage in snapshot.pipeline.stages:
                detail = f"  {first_line(stage.summary, 100)}" if stage.summary else ""
                lines.append(f"  {stage.name:16} {stage.status or 'never ran':12} {ago(stage.changed_at, now)}{detail}")
        if snapshot.deployment is not None:
            lines.extend(_deployment_lines(snapshot.deployment, now))
        if snapshot.activities:
            lines.append("Recent Auto Scaling activity")
            lines.extend(f"  {activity_text(a, now)}" for a in snapshot.activities)
    lines.extend(verdict(snapshot))
    return lines


def _deployment_lines(deployment: DeploymentView, now: datetime) -> list[str]:
    lines = [deployment_heading(deployment, now), f"  {overview_text(deployment)}"]
    if deployment.error_message:
        lines.append(f"  {deployment.error_code}: {deployment.error_message}")
    for target in deployment.targets:
        events = ", ".join(event_text(e, now) for e in target.events)
        lines.append(f"  {target.instance_id:20} {target.status:12} {events}".rstrip())
    for target in deployment.targets:
        lines.extend(f"  {line}" for line in failure_lines(target))
    lines.extend(rolled_back_lines(deployment, now))
    return lines


# --- JSON ----------------------------------------------------------------------------------------------------


def snapshot_dict(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The documented JSON form (schema 1; see cdpoc.status)."""
    stack = snapshot.stack
    now = snapshot.taken_at
    counts = {a: sum(1 for r in stack.resources if r.action == a) for a in ("exists", "create", "update", "differs")}
    return {
        "schema": SCHEMA,
        "taken_at": iso(now),
        "healthy": snapshot.healthy,
        "issues": snapshot.issues,
        "notes": list(snapshot.notes),
        "stack": {
            "name": stack.name,
            "region": stack.region,
            "region_source": stack.region_source,
            "account": stack.account,
            "created_at": iso(stack.created_at),
            "age_seconds": round((now - stack.created_at).total_seconds()) if stack.created_at else None,
            "cost_per_hour": stack.cost_per_hour,
            "counts": counts,
            "resources": [
                {"key": r.key, "kind": r.kind, "name": r.name, "action": r.action, "id": r.id, "detail": r.detail}
                for r in stack.resources
            ],
        },
        "endpoints": _endpoints_dict(snapshot.endpoints),
        "fleet": _fleet_dict(snapshot.fleet) if snapshot.fleet else None,
        "pipeline": _pipeline_dict(snapshot.pipeline) if snapshot.pipeline else None,
        "deployment": _deployment_dict(snapshot.deployment, now) if snapshot.deployment else None,
        "activities": [
            {
                "id": a.id,
                "status": a.status,
                "description": a.description,
                "cause": a.cause,
                "started_at": iso(a.started_at),
                "ended_at": iso(a.ended_at),
            }
            for a in snapshot.activities
        ],
    }


def _endpoints_dict(endpoints: Endpoints) -> dict[str, Any]:
    check = endpoints.app_health
    health = None
    if check is not None:
        latency = round(check.latency_ms, 1) if check.latency_ms is not None else None
        health = {"url": check.url, "status": check.status, "latency_ms": latency, "error": check.error, "ok": check.ok}
    return {
        "app": {"url": endpoints.app_url, "health": health} if endpoints.app_url else None,
        "website": {"url": endpoints.website_url} if endpoints.website_url else None,
        "bastion": {"address": endpoints.bastion} if endpoints.bastion else None,
        "mongodb": {"address": endpoints.mongodb} if endpoints.mongodb else None,
    }


def _fleet_dict(fleet: Fleet) -> dict[str, Any]:
    return {
        "name": fleet.name,
        "min": fleet.min_size,
        "desired": fleet.desired,
        "max": fleet.max_size,
        "health_check_type": fleet.health_check_type,
        "instances": [
            {
                "id": i.id,
                "zone": i.zone,
                "state": i.state,
                "lifecycle": i.lifecycle,
                "ec2_health": i.ec2_health,
                "target_state": i.target_state,
                "target_reason": i.target_reason,
                "target_description": i.target_description,
                "private_ip": i.private_ip,
                "launched_at": iso(i.launched_at),
                "revision": i.revision,
                "pending_revision": i.pending_revision,
                "pending_status": i.pending_status,
            }
            for i in fleet.instances
        ],
    }


def _pipeline_dict(pipeline: PipelineView) -> dict[str, Any]:
    return {
        "name": pipeline.name,
        "source": {
            "revision": pipeline.source_revision,
            "message": pipeline.source_message,
            "time": iso(pipeline.source_time),
        },
        "stages": [
            {
                "name": s.name,
                "status": s.status,
                "execution_id": s.execution_id,
                "changed_at": iso(s.changed_at),
                "summary": s.summary,
            }
            for s in pipeline.stages
        ],
    }


def _deployment_dict(deployment: DeploymentView, now: datetime) -> dict[str, Any]:
    error = {"code": deployment.error_code, "message": deployment.error_message}
    return {
        "id": deployment.id,
        "status": deployment.status,
        "config": deployment.config,
        "creator": deployment.creator,
        "created_at": iso(deployment.created_at),
        "completed_at": iso(deployment.completed_at),
        "revision": deployment.revision,
        "message": deployment.message,
        "overview": dict(deployment.overview),
        "error": error if deployment.error_code or deployment.error_message else None,
        "rollback_of": deployment.rollback_of,
        "rolls_back": _deployment_dict(deployment.rolls_back, now) if deployment.rolls_back else None,
        "targets": [
            {
                "instance": t.instance_id,
                "status": t.status,
                "updated_at": iso(t.updated_at),
                "events": [_event_dict(e, now) for e in t.events],
            }
            for t in deployment.targets
        ],
    }


def _event_dict(event: LifecycleEventView, now: datetime) -> dict[str, Any]:
    duration = event.duration(now)
    return {
        "name": event.name,
        "status": event.status,
        "started_at": iso(event.started_at),
        "ended_at": iso(event.ended_at),
        "duration_seconds": round(duration, 1) if duration is not None else None,
        "error_code": event.error_code,
        "script": event.script,
        "message": event.message,
        "log_tail": event.log_tail,
    }


# --- what changed between two snapshots ----------------------------------------------------------------------


def facts(snapshot: StatusSnapshot | None) -> dict[str, str]:
    """The snapshot as {path: value} for what a watcher cares about (no clocks, no latencies)."""
    if snapshot is None:
        return {}
    result = {"stack.resources": resources_line(snapshot.stack)}
    check = snapshot.endpoints.app_health
    if check is not None:
        result["endpoints.app.health"] = str(check.status) if check.status is not None else "unreachable"
    if snapshot.fleet is not None:
        fleet = snapshot.fleet
        result["fleet.size"] = f"min {fleet.min_size} desired {fleet.desired} max {fleet.max_size}"
        for i in fleet.instances:
            result[f"fleet.{i.id}.lifecycle"] = i.lifecycle or f"not in group ({i.state})"
            result[f"fleet.{i.id}.ec2_health"] = i.ec2_health
            result[f"fleet.{i.id}.target"] = target_text(i)
            result[f"fleet.{i.id}.revision"] = revision_text(i)
    if snapshot.pipeline is not None:
        result["pipeline.source"] = short(snapshot.pipeline.source_revision)
        for stage in snapshot.pipeline.stages:
            result[f"pipeline.{stage.name}"] = stage.status
    if snapshot.deployment is not None:
        deployment = snapshot.deployment
        result["deployment"] = f"{deployment.id} {deployment.status}"
        result["deployment.overview"] = overview_text(deployment)
        for target in deployment.targets:
            result[f"deployment.{target.instance_id}"] = target.status
            for event in target.events:
                result[f"deployment.{target.instance_id}.{event.name}"] = event.status
    for item in snapshot.activities:
        result[f"activity.{item.id}"] = f"{item.status}: {item.description}"
    result["health"] = "healthy" if snapshot.healthy else f"{len(snapshot.issues)} issue(s)"
    return result


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(path, old, new) for every fact that changed, appeared or went away; in the order of `after`."""
    keys: Iterable[str] = [*after, *(k for k in before if k not in after)]
    return [(k, before.get(k, ""), after.get(k, "")) for k in keys if before.get(k, "") != after.get(k, "")]


def paths(found: Sequence[tuple[str, str, str]]) -> frozenset[str]:
    return frozenset(path for path, _, _ in found)
