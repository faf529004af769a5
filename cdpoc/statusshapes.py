"""Pure conversions from botocore's replies (Auto Scaling, CodePipeline, CodeDeploy) to snapshot parts.

No call happens here: cdpoc.statuscollect reads, these functions turn what it read into cdpoc.statusviews values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from cdpoc.statusviews import Activity, DeploymentView, LifecycleEventView, PipelineView, StageView, TargetView


def activity(raw: Mapping[str, Any]) -> Activity:
    return Activity(
        id=str(raw.get("ActivityId", "")),
        status=str(raw.get("StatusCode", "")),
        description=str(raw.get("Description", "")),
        cause=str(raw.get("Cause", "")),
        started_at=raw.get("StartTime"),
        ended_at=raw.get("EndTime"),
    )


def _provider(execution: Mapping[str, Any]) -> tuple[str, str]:
    action_type = execution.get("input", {}).get("actionTypeId", {})
    return str(action_type.get("category", "")), str(action_type.get("provider", ""))


def deployment_ids(executions: Iterable[Mapping[str, Any]], limit: int = 5) -> list[str]:
    """The CodeDeploy deployments the pipeline's recent deploy actions created, newest first.

    Only CodeDeploy actions' externalExecutionId is a deployment id (a source action's is a commit id),
    and a wrong id would make BatchGetDeployments fail: the provider decides, not the id's look.
    """
    ids = []
    for execution in executions:
        external = str(execution.get("output", {}).get("executionResult", {}).get("externalExecutionId", ""))
        if _provider(execution) == ("Deploy", "CodeDeploy") and external and external not in ids:
            ids.append(external)
    return ids[:limit]


def commits_by_deployment(executions: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """{deployment id: (commit id, commit message)}, joined through the pipeline execution that made it."""
    sources: dict[str, tuple[str, str]] = {}
    deploys: dict[str, str] = {}
    for execution in executions:
        category, provider = _provider(execution)
        output = execution.get("output", {})
        result = output.get("executionResult", {})
        pipeline_execution = str(execution.get("pipelineExecutionId", ""))
        if category == "Source":
            variables = output.get("outputVariables", {})
            commit = variables.get("CommitId") or result.get("externalExecutionId", "")
            message = variables.get("CommitMessage") or result.get("externalExecutionSummary", "")
            sources.setdefault(pipeline_execution, (str(commit), str(message)))
        elif (category, provider) == ("Deploy", "CodeDeploy") and result.get("externalExecutionId"):
            deploys.setdefault(str(result["externalExecutionId"]), pipeline_execution)
    return {d: sources[e] for d, e in deploys.items() if e in sources}


def _revision_key(deployment: Mapping[str, Any]) -> str:
    revision = deployment.get("revision")
    return json.dumps(revision, sort_keys=True, default=str) if revision else ""


def with_same_revisions(
    commits: Mapping[str, tuple[str, str]], deployments: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[str, str]]:
    """Commits also for deployments that install a revision a pipeline deployment installed (a rollback, or
    Auto Scaling deploying the last good revision to a new instance): same bundle location, same commit."""
    deployments = list(deployments)
    by_revision = {_revision_key(d): commits[d["deploymentId"]] for d in deployments if d["deploymentId"] in commits}
    extended = {
        d["deploymentId"]: by_revision[_revision_key(d)]
        for d in deployments
        if _revision_key(d) and _revision_key(d) in by_revision
    }
    return {**extended, **commits}


def revision_label(deployment: Mapping[str, Any], commits: Mapping[str, tuple[str, str]]) -> str:
    """The commit a deployment installs when the pipeline says so; else where its bundle came from."""
    if deployment.get("deploymentId") in commits:
        return commits[deployment["deploymentId"]][0]
    revision = deployment.get("revision", {})
    kind = revision.get("revisionType", "")
    if kind == "S3":
        location = revision.get("s3Location", {})
        return "s3:" + str(location.get("key", "")).rsplit("/", 1)[-1]
    if kind == "GitHub":
        return str(revision.get("gitHubLocation", {}).get("commitId", ""))
    for name in ("string", "appSpecContent"):
        digest = revision.get(name, {}).get("sha256", "")
        if digest:
            return f"sha256:{digest[:12]}"
    return ""


def instance_revisions(
    deployments: Sequence[Mapping[str, Any]],
    targets_by_deployment: Mapping[str, Sequence[Mapping[str, Any]]],
    commits: Mapping[str, tuple[str, str]],
) -> dict[str, tuple[str, str, str]]:
    """{instance: (revision it runs, newer revision not yet succeeded there, that one's status)}.

    Deployments come newest first; an instance runs what its newest Succeeded target installed.
    Skipped targets installed nothing.
    """
    result: dict[str, tuple[str, str, str]] = {}
    for deployment in deployments:
        label = revision_label(deployment, commits)
        for target in targets_by_deployment.get(deployment["deploymentId"], []):
            instance = target.get("instanceTarget")
            if not instance:
                continue
            current = result.get(instance["targetId"], ("", "", ""))
            if current[0]:
                continue
            status = str(instance.get("status", ""))
            if status == "Succeeded":
                result[instance["targetId"]] = (label, current[1], current[2])
            elif status not in ("Skipped", "Unknown") and not current[1]:
                result[instance["targetId"]] = ("", label, status)
    return result


def pipeline_view(name: str, state: Mapping[str, Any], executions: Sequence[Mapping[str, Any]]) -> PipelineView:
    stages = []
    for stage in state.get("stageStates", []):
        latest = stage.get("latestExecution", {})
        actions = [a.get("latestExecution", {}) for a in stage.get("actionStates", [])]
        changes = [a["lastStatusChange"] for a in actions if a.get("lastStatusChange")]
        failed = next((a for a in actions if a.get("status") == "Failed"), None)
        if failed is not None:
            summary = str(failed.get("errorDetails", {}).get("message") or failed.get("summary", ""))
        else:
            summary = next((str(a["summary"]) for a in actions if a.get("summary")), "")
        stages.append(
            StageView(
                name=str(stage.get("stageName", "")),
                status=str(latest.get("status", "")),
                execution_id=str(latest.get("pipelineExecutionId", "")),
                changed_at=max(changes) if changes else None,
                summary=summary,
            )
        )
    revision, message, when = _source(state, executions)
    return PipelineView(name, tuple(stages), revision, message, when)


def _source(state: Mapping[str, Any], executions: Sequence[Mapping[str, Any]]) -> tuple[str, str, datetime | None]:
    """The source revision of the first stage: commit id, message and time."""
    stages = state.get("stageStates", [])
    actions = stages[0].get("actionStates", []) if stages else []
    if not actions:
        return "", "", None
    action = actions[0]
    revision = action.get("currentRevision", {})
    latest = action.get("latestExecution", {})
    commit = str(revision.get("revisionId") or latest.get("externalExecutionId", ""))
    message = str(latest.get("summary", ""))
    if not message:
        message = next(
            (
                str(e.get("output", {}).get("outputVariables", {}).get("CommitMessage", ""))
                for e in executions
                if e.get("output", {}).get("outputVariables", {}).get("CommitId") == commit
            ),
            "",
        )
    return commit, message, revision.get("created") or latest.get("lastStatusChange")


def latest_deployment(
    deployments: Sequence[Mapping[str, Any]],
    targets_by_deployment: Mapping[str, Sequence[Mapping[str, Any]]],
    commits: Mapping[str, tuple[str, str]],
) -> DeploymentView | None:
    """The newest deployment; when it is a rollback, with the deployment it rolls back attached."""
    if not deployments:
        return None
    by_id = {d["deploymentId"]: d for d in deployments}
    latest = deployments[0]
    view = deployment_view(latest, targets_by_deployment.get(latest["deploymentId"], []), commits)
    failed = by_id.get(rolled_back(latest))
    if failed is not None:
        failed_view = deployment_view(failed, targets_by_deployment.get(failed["deploymentId"], []), commits)
        view = replace(view, rolls_back=failed_view)
    return view


def deployment_view(
    raw: Mapping[str, Any], targets: Sequence[Mapping[str, Any]], commits: Mapping[str, tuple[str, str]]
) -> DeploymentView:
    error = raw.get("errorInformation") or {}
    overview = raw.get("deploymentOverview") or {}
    return DeploymentView(
        id=str(raw["deploymentId"]),
        status=str(raw.get("status", "")),
        config=str(raw.get("deploymentConfigName", "")),
        creator=str(raw.get("creator", "")),
        created_at=raw.get("createTime"),
        completed_at=raw.get("completeTime"),
        revision=revision_label(raw, commits),
        message=commits.get(str(raw["deploymentId"]), ("", ""))[1],
        overview={
            k: int(overview.get(k, 0)) for k in ("Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Ready")
        },
        error_code=str(error.get("code", "")),
        error_message=str(error.get("message", "")),
        rollback_of=rolled_back(raw),
        targets=tuple(target_view(t) for t in targets if t.get("instanceTarget")),
    )


def target_view(raw: Mapping[str, Any]) -> TargetView:
    target = raw["instanceTarget"]
    events = []
    for event in target.get("lifecycleEvents", []):
        diagnostics = event.get("diagnostics") or {}
        events.append(
            LifecycleEventView(
                name=str(event.get("lifecycleEventName", "")),
                status=str(event.get("status", "")),
                started_at=event.get("startTime"),
                ended_at=event.get("endTime"),
                error_code=str(diagnostics.get("errorCode", "")),
                script=str(diagnostics.get("scriptName", "")),
                message=str(diagnostics.get("message", "")),
                log_tail=str(diagnostics.get("logTail", "")),
            )
        )
    return TargetView(
        instance_id=str(target.get("targetId", "")),
        status=str(target.get("status", "")),
        updated_at=target.get("lastUpdatedAt"),
        events=tuple(events),
    )


def rolled_back(deployment: Mapping[str, Any]) -> str:
    """The failed deployment a rollback deployment undoes; "" for any other deployment."""
    return str((deployment.get("rollbackInfo") or {}).get("rollbackTriggeringDeploymentId", ""))
