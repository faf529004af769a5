"""CodePipeline in the sandbox: executions that run their actions, and the reads moto 5.2.5 lacks.

moto records a pipeline execution as Succeeded the moment it starts and runs nothing. Here an execution
moves through the stages (cdpoc/sandbox/pipelines.py schedules them): a CodeCommit source action takes one
step, resolves the branch tip as of that instant and writes the tree as a zip into the artifact store,
as CodePipeline does; a CodeDeploy action creates a deployment of that zip (revisionType S3, bundleType
zip) and ends when the deployment does. Other action types fail, saying the sandbox does not run them.

Executions start the ways they start on AWS: CreatePipeline, StartPipelineExecution, a branch change
when the source action polls (PollForSourceChanges true, the default), and a branch change matched by an
enabled EventBridge rule on the default bus whose target is the pipeline (what cdpoc sets up).

Added operations: GetPipelineState, ListActionExecutions. Replaced: CreatePipeline, StartPipelineExecution,
GetPipelineExecution, ListPipelineExecutions. Everything is computed lazily as of the request's instant;
nothing in the responses says it was simulated (see cdpoc/sandbox/simulation.py).
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from moto.codepipeline.exceptions import PipelineExecutionNotFoundException
from moto.codepipeline.models import CodePipeline, CodePipelineBackend, codepipeline_backends
from moto.codepipeline.responses import CodePipelineResponse
from moto.core.exceptions import JsonRESTError
from moto.events.models import events_backends
from moto.s3.models import s3_backends

from cdpoc.sandbox import codecommit, codedeploy, service_roles
from cdpoc.sandbox.deployments import SUCCEEDED as DEPLOYMENT_SUCCEEDED
from cdpoc.sandbox.deployments import DeploymentPlan
from cdpoc.sandbox.gitstore import GIT_MODES, Commit, GitRepository
from cdpoc.sandbox.patching import add_operations, replace_operations
from cdpoc.sandbox.pipelines import (
    FAILED,
    SUCCEEDED,
    ActionRun,
    ExecutionRun,
    PipelineEngine,
    Revision,
)
from cdpoc.sandbox.simulation import SIMULATION

_ENGINE = "_cdpoc_engine"
PAGE_SIZE = 100
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
CODECOMMIT_EVENT = "CodeCommit Repository State Change"


# ---- state on moto's objects


def backend_of(account: str, region: str) -> CodePipelineBackend:
    return codepipeline_backends[account][region]


def engine_of(pipeline: CodePipeline) -> PipelineEngine:
    engine = getattr(pipeline, _ENGINE, None)
    if engine is None:
        engine = PipelineEngine(mode=str(pipeline.pipeline.get("executionMode") or "SUPERSEDED"))
        setattr(pipeline, _ENGINE, engine)
    return cast(PipelineEngine, engine)


def _pipeline(response: CodePipelineResponse, name: str | None) -> CodePipeline:
    backend = backend_of(response.current_account, response.region)
    backend.get_pipeline(name or "")  # raises PipelineNotFoundException like moto's own operations
    return backend.pipelines[name or ""]


def _body(response: CodePipelineResponse) -> dict[str, Any]:
    return json.loads(response.body or "{}")


def _iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat()


# ---- what actions do


def _provider(action: dict[str, Any]) -> tuple[str, str]:
    type_id = action.get("actionTypeId") or {}
    return str(type_id.get("category", "")), str(type_id.get("provider", ""))


def _console(region: str, path: str) -> str:
    return f"https://{region}.console.aws.amazon.com/{path}?region={region}"


class Runner:
    """Runs one pipeline's actions in one account and region (the ActionRunner of PipelineEngine)."""

    def __init__(self, account: str, region: str, pipeline: CodePipeline) -> None:
        self.account = account
        self.region = region
        self.pipeline = pipeline

    def start(self, execution: ExecutionRun, stage: str, action: dict[str, Any], at: float) -> ActionRun:
        run = ActionRun(
            stage=stage,
            name=action["name"],
            definition=action,
            execution_id=execution.execution_id,
            action_execution_id=str(uuid.uuid4()),
            start=at,
            input_artifacts=[self._artifact_detail(execution, a["name"]) for a in action.get("inputArtifacts") or []],
        )
        category, provider = _provider(action)
        if category == "Source" and provider == "CodeCommit":
            self._codecommit_source(execution, run, at)
        elif category == "Source" and provider == "S3":
            self._s3_source(execution, run, at)
        elif category == "Deploy" and provider == "CodeDeploy":
            self._codedeploy(execution, run, at)
        else:
            self._fail(
                run, at + SIMULATION.step_seconds, f"The cdpoc sandbox does not run {category}/{provider} actions."
            )
        return run

    def end_time(self, run: ActionRun) -> float:
        if run.end is not None:
            return run.end
        plan = self._deployment_plan(run)
        return plan.completed if plan is not None else run.start

    def finish(self, run: ActionRun, at: float) -> None:
        run.finished = True
        run.end = at
        if run.outcome is not None:
            return
        plan = self._deployment_plan(run)
        if plan is not None and plan.outcome == DEPLOYMENT_SUCCEEDED:
            run.outcome, run.summary = SUCCEEDED, "Deployment Succeeded"
            return
        message = (plan.error[1] if plan is not None and plan.error else None) or "The deployment failed."
        run.outcome = FAILED
        run.error = {"code": "JobFailed", "message": f"Deployment {run.deployment_id} failed. {message}".strip()}

    # ---- sources

    def _codecommit_source(self, execution: ExecutionRun, run: ActionRun, at: float) -> None:
        config = run.definition.get("configuration") or {}
        repository_name, branch = config.get("RepositoryName", ""), config.get("BranchName", "")
        done = at + SIMULATION.step_seconds
        repository = codecommit.find_repository(self.account, self.region, repository_name)
        if repository is None:
            self._fail(run, done, f"The repository {repository_name} does not exist.")
            return
        denied = service_roles.source_denial(
            self.account, self.region, self._role_arn(), repository_name, _session(at), self._arn()
        )
        if denied is not None:
            self._fail(run, done, denied)
            return
        git = codecommit.git_of(repository)
        commit_id = execution.source_overrides.get(run.name) or git.tip_at(branch, at)
        if commit_id is None or commit_id not in git.commits:
            self._fail(
                run,
                done,
                f"The action failed because no branch named {branch} was found in the selected "
                f"AWS CodeCommit repository {repository_name}. Make sure you are using the correct branch "
                "name, and then try again.",
            )
            return
        commit = git.commits[commit_id]
        stored = self._store_artifact(run, execution, zip_tree(git, commit), done)
        if not stored:
            return
        url = _console(self.region, f"codesuite/codecommit/repositories/{repository_name}/commit/{commit_id}")
        run.end, run.outcome = done, SUCCEEDED
        run.external_id, run.summary, run.external_url = commit_id, commit.message, url
        run.output_variables = {
            "AuthorDate": _git_date(commit.author.date),
            "BranchName": branch,
            "CommitId": commit_id,
            "CommitMessage": commit.message,
            "CommitterDate": _git_date(commit.committer.date),
            "RepositoryName": repository_name,
        }
        artifact = stored["name"]
        run.revision = Revision(run.name, artifact, commit_id, _git_epoch(commit.author.date), commit.message, url)
        execution.revisions.append(run.revision)

    def _s3_source(self, execution: ExecutionRun, run: ActionRun, at: float) -> None:
        config = run.definition.get("configuration") or {}
        bucket_name, key = config.get("S3Bucket", ""), config.get("S3ObjectKey", "")
        done = at + SIMULATION.step_seconds
        s3 = s3_backends[self.account]["aws"]
        try:
            bucket = s3.get_bucket(bucket_name)
            obj = s3.get_object(bucket_name, key, execution.source_overrides.get(run.name))
        except Exception:  # moto's MissingBucket / MissingKey
            bucket, obj = None, None
        if bucket is None or obj is None:
            self._fail(run, done, f"The object s3://{bucket_name}/{key} does not exist.")
            return
        if not bucket.is_versioned:
            self._fail(run, done, f"The bucket {bucket_name} must have versioning enabled to be a source.")
            return
        read = "s3:GetObjectVersion" if execution.source_overrides.get(run.name) else "s3:GetObject"
        denied = service_roles.artifact_denial(
            self.account, self._role_arn(), [(read, f"arn:aws:s3:::{bucket_name}/{key}")], _session(at), self._arn()
        )
        if denied is not None:
            self._fail(run, done, denied)
            return
        stored = self._store_artifact(run, execution, obj.value, done)
        if not stored:
            return
        version = str(obj.version_id)
        run.end, run.outcome = done, SUCCEEDED
        run.external_id, run.summary = version, f"Amazon S3 version id: {version}"
        run.output_variables = {"ETag": obj.etag.strip('"'), "VersionId": version}
        url = _console(self.region, f"s3/object/{bucket_name}")
        run.revision = Revision(run.name, stored["name"], version, at, run.summary, url)
        execution.revisions.append(run.revision)

    def _store_artifact(self, run: ActionRun, execution: ExecutionRun, content: bytes, done: float) -> dict[str, Any]:
        """Write the action's output artifact into the pipeline's artifact store, as CodePipeline does."""
        outputs = run.definition.get("outputArtifacts") or []
        if not outputs:
            return {"name": ""}
        name = outputs[0]["name"]
        bucket = _artifact_bucket(self.pipeline.pipeline, self.region)
        key = f"{self.pipeline.pipeline['name'][:20]}/{name[:10]}/{uuid.uuid4().hex[:7]}"
        s3 = s3_backends[self.account]["aws"]
        try:
            s3.get_bucket(bucket)
        except Exception:  # moto's MissingBucket
            self._fail(run, done, f"The artifact bucket {bucket} does not exist.")
            return {}
        denied = service_roles.artifact_denial(
            self.account,
            self._role_arn(),
            [("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}")],
            _session(run.start),
            self._arn(),
        )
        if denied is not None:
            self._fail(run, done, denied)
            return {}
        stored = s3.put_object(bucket, key, content)
        location = {"bucket": bucket, "key": key}
        execution.artifacts[name] = {**location, "eTag": stored.etag.strip('"')}
        run.output_artifacts = [{"name": name, "s3location": location}]
        return {"name": name}

    # ---- deploy

    def _codedeploy(self, execution: ExecutionRun, run: ActionRun, at: float) -> None:
        config = run.definition.get("configuration") or {}
        application, group = config.get("ApplicationName", ""), config.get("DeploymentGroupName", "")
        inputs = run.definition.get("inputArtifacts") or []
        artifact = execution.artifacts.get(inputs[0]["name"]) if inputs else None
        if artifact is None:
            self._fail(run, at, "The action has no input artifact to deploy.")
            return
        revision = {
            "revisionType": "S3",
            "s3Location": {
                "bucket": artifact["bucket"],
                "key": artifact["key"],
                "bundleType": "zip",
                "eTag": artifact["eTag"],
            },
        }
        denied = service_roles.deploy_action_denial(
            self.account,
            self.region,
            self._role_arn(),
            application,
            group,
            self._deployment_config(application, group),
            _session(at),
            self._arn(),
        )
        if denied is not None:
            self._fail(run, at + SIMULATION.step_seconds, denied)
            return
        try:
            deployment_id = codedeploy.create_deployment_at(self.account, self.region, application, group, revision, at)
        except JsonRESTError as error:
            self._fail(run, at, f"{error.error_type}: {error.message}")
            return
        run.deployment_id = run.external_id = deployment_id
        run.external_url = _console(self.region, f"codesuite/codedeploy/deployments/{deployment_id}")

    def _role_arn(self) -> str:
        return str(self.pipeline.pipeline.get("roleArn", ""))

    def _arn(self) -> str:
        """The pipeline's ARN: CodePipeline assumes its role on the pipeline's behalf (aws:SourceArn)."""
        return service_roles.pipeline_arn(self.region, self.account, str(self.pipeline.pipeline.get("name", "")))

    def _deployment_config(self, application: str, group: str) -> str:
        found = codedeploy.group_of(codedeploy.backend_of(self.account, self.region), application, group)
        name = found.deployment_config_name if found is not None else None
        return str(name or codedeploy.DEFAULT_CONFIG_NAME)

    def _deployment_plan(self, run: ActionRun) -> DeploymentPlan | None:
        if run.deployment_id is None:
            return None
        deployment = codedeploy.backend_of(self.account, self.region).deployments.get(run.deployment_id)
        sim = codedeploy.sim_of(deployment) if deployment is not None else None
        return sim.plan if sim is not None else None

    @staticmethod
    def _fail(run: ActionRun, at: float, message: str) -> None:
        run.end, run.outcome = at, FAILED
        run.error = {"code": "JobFailed", "message": message}

    def _artifact_detail(self, execution: ExecutionRun, name: str) -> dict[str, Any]:
        location = execution.artifacts.get(name)
        detail: dict[str, Any] = {"name": name}
        if location is not None:
            detail["s3location"] = {"bucket": location["bucket"], "key": location["key"]}
        return detail


def _session(at: float) -> str:
    """CodePipeline names its role session after the moment it assumed the role, in milliseconds."""
    return str(int(at * 1000))


def _artifact_bucket(structure: dict[str, Any], region: str) -> str:
    store = structure.get("artifactStore") or (structure.get("artifactStores") or {}).get(region) or {}
    return str(store.get("location", ""))


def _git_epoch(date: str) -> float:
    return float(date.split()[0])


def _git_date(date: str) -> str:
    return datetime.fromtimestamp(_git_epoch(date), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zip_tree(git: GitRepository, commit: Commit) -> bytes:
    """The commit's files as CodePipeline's CODE_ZIP artifact (sorted, fixed times, file modes kept)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(commit.files):
            entry = commit.files[path]
            info = zipfile.ZipInfo(path, ZIP_EPOCH)
            info.external_attr = int(GIT_MODES[entry.mode], 8) << 16
            archive.writestr(info, git.blobs[entry.blob_id])
    return buffer.getvalue()


# ---- starting executions and advancing them


def start_execution(
    account: str,
    region: str,
    pipeline: CodePipeline,
    trigger: dict[str, str],
    instant: float,
    execution_id: str | None = None,
    overrides: dict[str, str] | None = None,
) -> str:
    """Start an execution at `instant` (the state must already be advanced to it)."""
    backend = backend_of(account, region)
    name = pipeline.pipeline["name"]
    if execution_id is None:
        execution_id = backend.start_pipeline_execution(name, None)
    execution = ExecutionRun(
        execution_id=execution_id,
        start=instant,
        trigger=trigger,
        stages=json.loads(json.dumps(pipeline.pipeline["stages"])),
        version=int(pipeline.pipeline["version"]),
        source_overrides=overrides or {},
    )
    engine_of(pipeline).start(execution, Runner(account, region, pipeline))
    _sync_moto(pipeline)
    return execution_id


def advance(account: str, region: str, now: float) -> None:
    for pipeline in list(backend_of(account, region).pipelines.values()):
        engine_of(pipeline).advance(now, Runner(account, region, pipeline))
        _sync_moto(pipeline)


def _sync_moto(pipeline: CodePipeline) -> None:
    """Keep moto's own execution records in step, for any moto code path that reads them."""
    for execution_id, run in engine_of(pipeline).executions.items():
        record = pipeline.executions.get(execution_id)
        if record is not None:
            record.status = run.status
            record.status_summary = run.summary
            record.last_update_time = datetime.fromtimestamp(run.last_update, UTC).replace(tzinfo=None)


def on_reference_changed(change: codecommit.ReferenceChange) -> None:
    """A branch moved: start what AWS would start (polling source actions; matching EventBridge rules)."""
    SIMULATION.advance(change.account, change.region)
    pipelines = backend_of(change.account, change.region).pipelines
    # a polling source action notices a branch that moved or appeared; a deleted branch gives it nothing to fetch
    for pipeline in list(pipelines.values()) if change.commit_id is not None else []:
        for action in _polling_sources(pipeline, change):
            trigger = {"triggerType": "PollForSourceChanges", "triggerDetail": action["name"]}
            start_execution(change.account, change.region, pipeline, trigger, change.instant)
    event = codecommit_event(change)
    bus = events_backends[change.account][change.region].event_buses.get("default")
    for rule in list(bus.rules.values()) if bus is not None else []:
        if rule.state != "ENABLED" or not rule.event_pattern.get_pattern():
            continue
        if not rule.event_pattern.matches_event(cast(Any, event)):
            continue
        for target in rule.targets:
            targeted = _pipeline_by_arn(pipelines, str(target.get("Arn", "")))
            # EventBridge starts the pipeline with the target's role; when it may not, the invocation fails
            # (AWS reports that only as the rule's FailedInvocations metric) and no execution starts
            if targeted is not None and service_roles.events_may_start(
                change.account, target.get("RoleArn"), targeted._arn, rule.arn
            ):
                trigger = {"triggerType": "CloudWatchEvent", "triggerDetail": rule.arn}
                start_execution(change.account, change.region, targeted, trigger, change.instant)


def _polling_sources(pipeline: CodePipeline, change: codecommit.ReferenceChange) -> list[dict[str, Any]]:
    found = []
    for stage in pipeline.pipeline["stages"]:
        for action in stage["actions"]:
            config = action.get("configuration") or {}
            if (
                _provider(action) == ("Source", "CodeCommit")
                and config.get("RepositoryName") == change.repository_name
                and config.get("BranchName") == change.branch
                # CodeCommit source actions poll unless told not to
                and str(config.get("PollForSourceChanges", "true")).lower() != "false"
            ):
                found.append(action)
    return found


def _pipeline_by_arn(pipelines: dict[str, CodePipeline], arn: str) -> CodePipeline | None:
    return next((p for p in pipelines.values() if p._arn == arn), None)


def codecommit_event(change: codecommit.ReferenceChange) -> dict[str, Any]:
    """The event CodeCommit puts on the default bus when a branch is created, moves or is deleted (the
    CodeCommit User Guide's "Monitoring CodeCommit events": a deletion carries oldCommitId and no commitId,
    a move by a merge also the merge's commits and option)."""
    detail: dict[str, Any] = {
        "callerUserArn": f"arn:aws:iam::{change.account}:root",
        "event": change.event,
        "referenceFullName": f"refs/heads/{change.branch}",
        "referenceName": change.branch,
        "referenceType": "branch",
        "repositoryId": change.repository_id,
        "repositoryName": change.repository_name,
    }
    if change.commit_id is not None:
        detail["commitId"] = change.commit_id
    if change.old_commit_id is not None:
        detail["oldCommitId"] = change.old_commit_id
    detail.update(change.merge)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": CODECOMMIT_EVENT,
        "source": "aws.codecommit",
        "account": change.account,
        "time": datetime.fromtimestamp(change.instant, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": change.region,
        "resources": [change.repository_arn],
        "detail": detail,
    }


# ---- response shapes


def _execution_mode(pipeline: CodePipeline) -> str:
    return str(pipeline.pipeline.get("executionMode") or "SUPERSEDED")


def _summary(pipeline: CodePipeline, run: ExecutionRun) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "pipelineExecutionId": run.execution_id,
        "status": run.status,
        "startTime": run.start,
        "lastUpdateTime": run.last_update,
        "sourceRevisions": [
            {"actionName": r.action, "revisionId": r.revision_id, "revisionSummary": r.summary, "revisionUrl": r.url}
            for r in run.revisions
        ],
        "trigger": dict(run.trigger),
        "executionMode": _execution_mode(pipeline),
        "executionType": "STANDARD",
    }
    if run.summary:
        summary["statusSummary"] = run.summary
    return summary


def _execution(pipeline: CodePipeline, run: ExecutionRun, variables: list[dict[str, str]]) -> dict[str, Any]:
    execution: dict[str, Any] = {
        "pipelineName": pipeline.pipeline["name"],
        "pipelineVersion": run.version,
        "pipelineExecutionId": run.execution_id,
        "status": run.status,
        "artifactRevisions": [
            {
                "name": r.artifact,
                "revisionId": r.revision_id,
                "revisionChangeIdentifier": r.revision_id,
                "revisionSummary": r.summary,
                "created": r.created,
                "revisionUrl": r.url,
            }
            for r in run.revisions
        ],
        "variables": variables,
        "trigger": dict(run.trigger),
        "executionMode": _execution_mode(pipeline),
        "executionType": "STANDARD",
    }
    if run.summary:
        execution["statusSummary"] = run.summary
    return execution


def _latest_action_execution(action: ActionRun, role: str) -> dict[str, Any]:
    latest: dict[str, Any] = {
        "actionExecutionId": action.action_execution_id,
        "status": action.status,
        "lastStatusChange": action.last_update,
        "lastUpdatedBy": role,
    }
    for key, value in (
        ("summary", action.summary),
        ("externalExecutionId", action.external_id),
        ("externalExecutionUrl", action.external_url),
        ("errorDetails", action.error),
    ):
        if value:
            latest[key] = value
    return latest


def _action_state(pipeline: CodePipeline, region: str, stage: str, action: dict[str, Any]) -> dict[str, Any]:
    runs = [a for a in engine_of(pipeline).action_runs() if a.stage == stage and a.name == action["name"]]
    state: dict[str, Any] = {"actionName": action["name"]}
    url = _entity_url(region, action)
    if url:
        state["entityUrl"] = url
    if runs:
        latest = max(runs, key=lambda a: a.start)
        state["latestExecution"] = _latest_action_execution(latest, pipeline.pipeline.get("roleArn", ""))
    fetched = [a.revision for a in runs if a.revision is not None and a.status == SUCCEEDED]
    if fetched:
        newest = max(fetched, key=lambda r: r.created)
        state["currentRevision"] = {
            "revisionId": newest.revision_id,
            "revisionChangeId": newest.revision_id,
            "created": newest.created,
        }
        state["revisionUrl"] = newest.url
    return state


def _entity_url(region: str, action: dict[str, Any]) -> str | None:
    config = action.get("configuration") or {}
    provider = _provider(action)
    if provider == ("Source", "CodeCommit"):
        repository, branch = config.get("RepositoryName", ""), config.get("BranchName", "")
        return _console(region, f"codesuite/codecommit/repositories/{repository}/browse/refs/heads/{branch}")
    if provider == ("Deploy", "CodeDeploy"):
        return _console(region, f"codesuite/codedeploy/applications/{config.get('ApplicationName', '')}")
    return None


def _stage_state(pipeline: CodePipeline, region: str, index: int, stage: dict[str, Any]) -> dict[str, Any]:
    engine = engine_of(pipeline)
    state: dict[str, Any] = {
        "stageName": stage["name"],
        "inboundTransitionState": {"enabled": True},
        "actionStates": [_action_state(pipeline, region, stage["name"], a) for a in stage["actions"]],
    }
    runs = engine.stage_runs(stage["name"])
    if runs:
        latest = max(runs, key=lambda r: r.start)
        state["latestExecution"] = {
            "pipelineExecutionId": latest.execution_id,
            "status": latest.status,
            "type": "STANDARD",
        }
    inbound = [
        {"pipelineExecutionId": waiting, "status": "InProgress", "type": "STANDARD"}
        for waiting in engine.waiting.get(index, [])
    ]
    if inbound:
        state["inboundExecution"] = inbound[0]
        state["inboundExecutions"] = inbound
    return state


def _action_detail(pipeline: CodePipeline, region: str, run: ExecutionRun, action: ActionRun) -> dict[str, Any]:
    definition = action.definition
    role = pipeline.pipeline.get("roleArn", "")
    configuration = {k: str(v) for k, v in (definition.get("configuration") or {}).items()}
    detail: dict[str, Any] = {
        "pipelineExecutionId": run.execution_id,
        "actionExecutionId": action.action_execution_id,
        "pipelineVersion": run.version,
        "stageName": action.stage,
        "actionName": action.name,
        "startTime": action.start,
        "lastUpdateTime": action.last_update,
        "updatedBy": role,
        "status": action.status,
        "input": {
            "actionTypeId": definition["actionTypeId"],
            "configuration": configuration,
            "resolvedConfiguration": configuration,
            "region": definition.get("region") or region,
            "inputArtifacts": action.input_artifacts,
            **({"roleArn": definition["roleArn"]} if definition.get("roleArn") else {}),
            **({"namespace": definition["namespace"]} if definition.get("namespace") else {}),
        },
    }
    result = {
        k: v
        for k, v in (
            ("externalExecutionId", action.external_id),
            ("externalExecutionSummary", action.summary),
            ("externalExecutionUrl", action.external_url),
            ("errorDetails", action.error),
        )
        if v
    }
    output: dict[str, Any] = {"outputArtifacts": action.output_artifacts if action.finished else []}
    if result:
        output["executionResult"] = result
    if action.finished and action.output_variables:
        output["outputVariables"] = action.output_variables
    detail["output"] = output
    return detail


def _page(items: list[Any], token: str | None, size: int) -> tuple[list[Any], str | None]:
    start = 0
    if token:
        if not token.isdigit() or int(token) > len(items):
            raise JsonRESTError("InvalidNextTokenException", "The next token was specified in an invalid format.")
        start = int(token)
    return items[start : start + size], (str(start + size) if start + size < len(items) else None)


def _now(response: CodePipelineResponse) -> float:
    return SIMULATION.advance(response.current_account, response.region)


# ---- replaced operations


def create_pipeline(self: CodePipelineResponse, original: Callable[[CodePipelineResponse], str]) -> str:
    # AWS (and the service model) answer a name in use with PipelineNameInUseException; moto 5.2.5 says
    # InvalidStructureException, which AWS uses for a malformed declaration.
    name = _body(self).get("pipeline", {}).get("name", "")
    if name in backend_of(self.current_account, self.region).pipelines:
        raise JsonRESTError("PipelineNameInUseException", f"Pipeline name {name} is already in use.")
    now = _now(self)
    result = original(self)
    pipeline = backend_of(self.current_account, self.region).pipelines[json.loads(result)["pipeline"]["name"]]
    # AWS runs a new pipeline at once (the reason cdpoc creates it last)
    trigger = {"triggerType": "CreatePipeline", "triggerDetail": pipeline._arn}
    start_execution(self.current_account, self.region, pipeline, trigger, now)
    return result


def start_pipeline_execution(self: CodePipelineResponse, original: Callable[[CodePipelineResponse], str]) -> str:
    now = _now(self)
    result = original(self)
    body = _body(self)
    pipeline = backend_of(self.current_account, self.region).pipelines[body["name"]]
    overrides = {o["actionName"]: o["revisionValue"] for o in body.get("sourceRevisions") or []}
    trigger = {"triggerType": "StartPipelineExecution", "triggerDetail": f"arn:aws:iam::{self.current_account}:root"}
    start_execution(
        self.current_account, self.region, pipeline, trigger, now, json.loads(result)["pipelineExecutionId"], overrides
    )
    return result


def get_pipeline_execution(self: CodePipelineResponse, original: Callable[[CodePipelineResponse], str]) -> str:
    _now(self)
    body = _body(self)
    pipeline = _pipeline(self, body.get("pipelineName"))
    run = engine_of(pipeline).executions.get(body.get("pipelineExecutionId", ""))
    if run is None:
        return original(self)
    variables = json.loads(original(self))["pipelineExecution"].get("variables", [])
    return json.dumps({"pipelineExecution": _execution(pipeline, run, variables)})


def list_pipeline_executions(self: CodePipelineResponse, original: Callable[[CodePipelineResponse], str]) -> str:
    _now(self)
    body = _body(self)
    pipeline = _pipeline(self, body.get("pipelineName"))
    # newest first; executions started at the same instant keep the order they started in
    runs = [r for _, r in sorted(enumerate(engine_of(pipeline).executions.values()), key=lambda p: (p[1].start, p[0]))]
    runs.reverse()
    stage = ((body.get("filter") or {}).get("succeededInStage") or {}).get("stageName")
    if stage:
        runs = [r for r in runs if any(s.name == stage and s.status == SUCCEEDED for s in r.stage_runs)]
    page, token = _page([_summary(pipeline, r) for r in runs], body.get("nextToken"), body.get("maxResults") or 100)
    return json.dumps({"pipelineExecutionSummaries": page, **({"nextToken": token} if token else {})})


# ---- added operations


def get_pipeline_state(self: CodePipelineResponse) -> str:
    _now(self)
    pipeline = _pipeline(self, _body(self).get("name"))
    structure = pipeline.pipeline
    return json.dumps(
        {
            "pipelineName": structure["name"],
            "pipelineVersion": structure["version"],
            "stageStates": [_stage_state(pipeline, self.region, i, s) for i, s in enumerate(structure["stages"])],
            "created": pipeline.metadata["created"],
            "updated": pipeline.metadata["updated"],
        }
    )


def list_action_executions(self: CodePipelineResponse) -> str:
    _now(self)
    body = _body(self)
    pipeline = _pipeline(self, body.get("pipelineName"))
    engine = engine_of(pipeline)
    filters = body.get("filter") or {}
    wanted = filters.get("pipelineExecutionId") or (filters.get("latestInPipelineExecution") or {}).get(
        "pipelineExecutionId"
    )
    if wanted and wanted not in engine.executions:
        raise PipelineExecutionNotFoundException(
            f"Execution {wanted} of pipeline {pipeline.pipeline['name']} does not exist."
        )
    details = [
        _action_detail(pipeline, self.region, run, action)
        for run in engine.executions.values()
        if not wanted or run.execution_id == wanted
        for stage in run.stage_runs
        for action in stage.actions
    ]
    details = [d for _, d in sorted(enumerate(details), key=lambda p: (p[1]["startTime"], p[0]), reverse=True)]
    page, token = _page(details, body.get("nextToken"), body.get("maxResults") or PAGE_SIZE)
    return json.dumps({"actionExecutionDetails": page, **({"nextToken": token} if token else {})})


def install() -> None:
    replace_operations(
        CodePipelineResponse,
        create_pipeline,
        start_pipeline_execution,
        get_pipeline_execution,
        list_pipeline_executions,
    )
    add_operations(CodePipelineResponse, get_pipeline_state, list_action_executions)
