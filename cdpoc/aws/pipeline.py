"""CodePipeline (Source -> Deploy) and the EventBridge rule that starts it, and the reads that follow a run.

The pipeline's Source action is CodeCommit (PollForSourceChanges false: the EventBridge rule on the
branch starts it) or, with the S3 source, the zip in the artifact bucket. An S3 source gets no rule:
S3 reaches EventBridge only through a CloudTrail trail with data events or the bucket's own EventBridge
switch (another billed resource, or a bucket setting the storage area owns), so `push-app` starts the
pipeline itself after it uploads a changed zip.

Pipelines are V2 (billed per action-minute, with a monthly free allowance, instead of $1 a month each).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cdpoc.aws.base import (
    STACK_TAG,
    AwsRun,
    Handler,
    aws_errors,
    call_or_none,
    caused_by,
    missing_tags,
    observed,
    ownership,
    ownership_changes,
    refuse_not_ours,
    tag_list,
    tag_map,
    wanted_tags,
)
from cdpoc.aws.iam import retry_iam_propagation
from cdpoc.aws.source import (
    CODECOMMIT,
    S3,
    get_pipeline,
    pipeline_arn,
    pipeline_tags,
    read_pipeline,
    recorded_source,
    source_action,
)
from cdpoc.errors import AwsError
from cdpoc.model import Change, Observed, Resource

PIPELINE_TYPE = "V2"
EXECUTION_MODE = "SUPERSEDED"
SOURCE_ARTIFACT = "SourceOutput"
RULE_MISSING = ("ResourceNotFoundException",)
TARGET_ID = "pipeline"


def _codepipeline(run: AwsRun) -> Any:
    return run.client("codepipeline")


def _events(run: AwsRun) -> Any:
    return run.client("events")


def _action(category: str, provider: str, configuration: Mapping[str, str], **artifacts: Any) -> dict[str, Any]:
    return {
        "name": category,
        "actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"},
        "runOrder": 1,
        "configuration": dict(configuration),
        **artifacts,
    }


def source_configuration(source: Observed) -> tuple[str, dict[str, str]]:
    """(provider, configuration) of the Source action for what the source handler found or made."""
    if source.attrs["provider"] == S3:
        return S3, {
            "S3Bucket": source.attrs["bucket"],
            "S3ObjectKey": source.attrs["key"],
            "PollForSourceChanges": "false",
        }
    return CODECOMMIT, {
        "RepositoryName": source.id,
        "BranchName": source.attrs["branch"],
        "PollForSourceChanges": "false",
        "OutputArtifactFormat": "CODE_ZIP",
    }


def _comparable(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    """What cdpoc sets, in one form for a request and a GetPipeline reply (which adds defaults and empty lists)."""
    return {
        "roleArn": pipeline.get("roleArn", ""),
        "artifactStore": {k: pipeline.get("artifactStore", {}).get(k) for k in ("type", "location")},
        "pipelineType": pipeline.get("pipelineType", "V1"),
        "executionMode": pipeline.get("executionMode", "SUPERSEDED"),
        "stages": [
            {
                "name": stage["name"],
                "actions": [
                    {
                        "name": action["name"],
                        "actionTypeId": dict(action["actionTypeId"]),
                        "runOrder": action.get("runOrder", 1),
                        "configuration": dict(action.get("configuration", {})),
                        "inputArtifacts": [a["name"] for a in action.get("inputArtifacts", [])],
                        "outputArtifacts": [a["name"] for a in action.get("outputArtifacts", [])],
                    }
                    for action in stage.get("actions", [])
                ],
            }
            for stage in pipeline.get("stages", [])
        ],
    }


def _same(wanted: Mapping[str, Any], have: Mapping[str, Any]) -> bool:
    """Equal, except that AWS may add configuration keys of its own: only the keys cdpoc sets must match."""
    if {k: v for k, v in wanted.items() if k != "stages"} != {k: v for k, v in have.items() if k != "stages"}:
        return False
    if [s["name"] for s in wanted["stages"]] != [s["name"] for s in have["stages"]]:
        return False
    for want_stage, have_stage in zip(wanted["stages"], have["stages"], strict=True):
        if len(want_stage["actions"]) != len(have_stage["actions"]):
            return False
        for want, got in zip(want_stage["actions"], have_stage["actions"], strict=True):
            config = got["configuration"]
            if {k: v for k, v in want.items() if k != "configuration"} != {
                k: v for k, v in got.items() if k != "configuration"
            } or any(config.get(k) != v for k, v in want["configuration"].items()):
                return False
    return True


def _provider(pipeline: Mapping[str, Any]) -> str:
    recorded = source_action(pipeline)
    return recorded.provider if recorded else ""


class PipelineHandler(Handler):
    kind = "pipeline"
    label = "CodePipeline pipeline"
    arn_types = ("codepipeline:pipeline",)

    def declaration(self, res: Resource, deps: Mapping[str, Observed | None]) -> dict[str, Any] | None:
        """The pipeline as CreatePipeline / UpdatePipeline take it; None while a dependency is still missing."""
        props = res.props
        role, bucket = deps.get(props["role"]), deps.get(props["artifact_bucket"])
        source, application = deps.get(props["source"]), deps.get(props["application"])
        group = deps.get(props["deployment_group"])
        if role is None or bucket is None or source is None or application is None or group is None:
            return None
        provider, configuration = source_configuration(source)
        output = {"outputArtifacts": [{"name": SOURCE_ARTIFACT}]}
        deploy = {"ApplicationName": application.id, "DeploymentGroupName": group.id}
        return {
            "name": res.name,
            "roleArn": role.attrs["arn"],
            "artifactStore": {"type": "S3", "location": bucket.id},
            "pipelineType": PIPELINE_TYPE,
            "executionMode": EXECUTION_MODE,
            "stages": [
                {"name": "Source", "actions": [_action("Source", provider, configuration, **output)]},
                {
                    "name": "Deploy",
                    "actions": [_action("Deploy", "CodeDeploy", deploy, inputArtifacts=[{"name": SOURCE_ARTIFACT}])],
                },
            ],
        }

    def _tags(self, run: AwsRun, arn: str) -> dict[str, str]:
        return pipeline_tags(run, arn)

    def _observe(self, run: AwsRun, key: str, reply: Mapping[str, Any]) -> Observed:
        pipeline = reply["pipeline"]
        arn = reply.get("metadata", {}).get("pipelineArn") or pipeline_arn(run, pipeline["name"])
        return observed(
            key,
            self.kind,
            pipeline["name"],
            arn=arn,
            declaration=_comparable(pipeline),
            source_provider=_provider(pipeline),
            **ownership(self._tags(run, arn)),
        )

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        reply = read_pipeline(run, res.name)
        return None if reply is None else self._observe(run, res.key, reply)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        names: list[str] = []
        with aws_errors("listing pipelines"):
            for page in _codepipeline(run).get_paginator("list_pipelines").paginate():
                names.extend(p["name"] for p in page.get("pipelines", []))
        result = {}
        for name in names:
            arn = pipeline_arn(run, name)
            attrs = ownership(self._tags(run, arn))
            if attrs["stack"] == run.stack and attrs["component"]:
                result[attrs["component"]] = observed(attrs["component"], self.kind, name, arn=arn, **attrs)
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = ownership_changes(run, res, found, "pipeline")
        if any(not c.in_place for c in changes):
            return changes
        wanted = self.declaration(res, deps)
        if wanted is None:
            changes.append(Change("stages (a dependency is to be created)"))
        elif not _same(_comparable(wanted), found.attrs["declaration"]):
            changes.append(Change(f"declaration differs (source: {found.attrs['source_provider'] or 'none'})"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        declaration = self.declaration(res, deps)
        assert declaration is not None  # created only after every dependency exists

        def call() -> dict[str, Any]:
            with aws_errors(f"creating pipeline {res.name}"):
                return dict(
                    _codepipeline(run).create_pipeline(
                        pipeline=declaration,
                        tags=[{"key": k, "value": v} for k, v in wanted_tags(run, res).items()],
                    )
                )

        try:
            # A fresh service role makes CreatePipeline fail with InvalidStructureException "not authorized".
            retry_iam_propagation(run, f"creating pipeline {res.name}", call)
        except AwsError as exc:
            if not caused_by(exc, "PipelineNameInUseException"):
                raise
            reply = get_pipeline(run, res.name)
            if reply is None:
                raise
            found = self._observe(run, res.key, reply)
            refuse_not_ours(run, res, "pipeline", found.attrs["tags"])
            return self.update(run, res, found, deps)
        return observed(
            res,
            self.kind,
            res.name,
            arn=pipeline_arn(run, res.name),
            declaration=_comparable(declaration),
            source_provider=_provider(declaration),
            **ownership(wanted_tags(run, res)),
        )

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        missing = missing_tags(run, res, found.attrs.get("tags", {}))
        if missing:
            with aws_errors(f"tagging pipeline {found.id}"):
                _codepipeline(run).tag_resource(
                    resourceArn=found.attrs["arn"], tags=[{"key": k, "value": v} for k, v in missing.items()]
                )
        declaration = self.declaration(res, deps)
        assert declaration is not None
        if not _same(_comparable(declaration), found.attrs["declaration"]):

            def call() -> None:
                with aws_errors(f"updating pipeline {found.id}"):
                    _codepipeline(run).update_pipeline(pipeline=declaration)

            retry_iam_propagation(run, f"updating pipeline {found.id}", call)
        return observed(
            res,
            self.kind,
            found.id,
            **{
                **found.attrs,
                "declaration": _comparable(declaration),
                "source_provider": _provider(declaration),
                **ownership({**found.attrs["tags"], **missing}),
            },
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        # DeletePipeline of a pipeline that is not there succeeds.
        with aws_errors(f"deleting pipeline {found.id}"):
            _codepipeline(run).delete_pipeline(name=found.id)

    def describe(self, found: Observed) -> str:
        provider = found.attrs.get("source_provider")
        return f"{found.id}" + (f" ({provider} -> CodeDeploy)" if provider else "")


# --- the EventBridge rule -------------------------------------------------------------------------------


def branch_event_pattern(repository_arn: str, branch: str) -> dict[str, Any]:
    """A push (new or moved branch) to the one branch of the one repository."""
    return {
        "source": ["aws.codecommit"],
        "detail-type": ["CodeCommit Repository State Change"],
        "resources": [repository_arn],
        "detail": {
            "event": ["referenceCreated", "referenceUpdated"],
            "referenceType": ["branch"],
            "referenceName": [branch],
        },
    }


def _canonical(pattern: str | Mapping[str, Any] | None) -> str:
    """A pattern in one form (parsed, sorted keys), so that equal patterns compare equal however written."""
    if not pattern:
        return ""
    return json.dumps(json.loads(pattern) if isinstance(pattern, str) else pattern, sort_keys=True)


class RuleHandler(Handler):
    """The EventBridge rule and its one target (the pipeline, through the events role).

    With the S3 source no rule is wanted: found.id is "" for "nothing to have", and an existing rule
    (from an earlier CodeCommit source) is removed.
    """

    kind = "event_rule"
    label = "EventBridge rule"
    arn_types = ("events:rule",)

    def _targets(self, run: AwsRun, name: str) -> tuple[tuple[str, str, str], ...]:
        targets: list[tuple[str, str, str]] = []
        params: dict[str, Any] = {"Rule": name}
        while True:
            reply = call_or_none(
                f"listing the targets of rule {name}", _events(run).list_targets_by_rule, RULE_MISSING, **params
            )
            if reply is None:
                break
            targets.extend((t["Id"], t["Arn"], t.get("RoleArn", "")) for t in reply.get("Targets", []))
            if not reply.get("NextToken"):
                break
            params["NextToken"] = reply["NextToken"]
        return tuple(sorted(targets))

    def _observe(self, run: AwsRun, key: str, rule: Mapping[str, Any]) -> Observed:
        with aws_errors(f"reading the tags of rule {rule['Name']}"):
            tags = _events(run).list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"]
        return observed(
            key,
            self.kind,
            rule["Name"],
            arn=rule["Arn"],
            pattern=_canonical(rule.get("EventPattern")),
            state=rule.get("State", ""),
            targets=self._targets(run, rule["Name"]),
            **ownership(tag_map(tags)),
        )

    def _not_needed(self, res: Resource, owner: str) -> Observed:
        """No rule, as the S3 source that `owner`'s pipeline records wants."""
        return observed(res, self.kind, "", not_needed=True, stack=owner)

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        rule = call_or_none(f"reading rule {res.name}", _events(run).describe_rule, RULE_MISSING, Name=res.name)
        if rule is not None:
            return self._observe(run, res.key, rule)
        recorded, owner = recorded_source(run, res.props["pipeline_name"])
        return self._not_needed(res, owner) if recorded is not None and recorded.provider == S3 else None

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        rules: list[dict[str, Any]] = []
        with aws_errors("listing EventBridge rules"):
            for page in _events(run).get_paginator("list_rules").paginate(NamePrefix=f"{run.stack}-"):
                rules.extend(page.get("Rules", []))
        result = {}
        for rule in rules:
            with aws_errors(f"reading the tags of rule {rule['Name']}"):
                tags = tag_map(_events(run).list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"])
            attrs = ownership(tags)
            if tags.get(STACK_TAG) == run.stack and attrs["component"]:
                result[attrs["component"]] = observed(
                    attrs["component"], self.kind, rule["Name"], arn=rule["Arn"], **attrs
                )
        return result

    def wanted(self, res: Resource, deps: Mapping[str, Observed | None]) -> dict[str, Any] | None:
        """{pattern, target} for a CodeCommit source; {} when no rule is wanted (S3); None while unknown."""
        source, pipeline, role = (
            deps.get(res.props["source"]),
            deps.get(res.props["pipeline"]),
            deps.get(res.props["role"]),
        )
        if source is not None and source.attrs.get("provider") == S3:
            return {}
        if source is None or pipeline is None or role is None:
            return None
        return {
            "pattern": branch_event_pattern(source.attrs["arn"], source.attrs["branch"]),
            "target": {"Id": TARGET_ID, "Arn": pipeline.attrs["arn"], "RoleArn": role.attrs["arn"]},
        }

    def _differences(self, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[str]:
        wanted = self.wanted(res, deps)
        if wanted is None:
            return ["event pattern and target (a dependency is to be created)"]
        if not wanted:
            return [] if found.attrs.get("not_needed") else ["remove it: the S3 source is started by push-app"]
        if found.attrs.get("not_needed"):
            return ["create it: the source is CodeCommit now"]
        differences = []
        if found.attrs["pattern"] != _canonical(wanted["pattern"]):
            differences.append("event pattern")
        if found.attrs["state"] != "ENABLED":
            differences.append(f"state {found.attrs['state']} -> ENABLED")
        target = wanted["target"]
        if found.attrs["targets"] != ((target["Id"], target["Arn"], target["RoleArn"]),):
            differences.append("target")
        return differences

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        if not found.attrs.get("not_needed"):
            changes = ownership_changes(run, res, found, "EventBridge rule")
            if any(not c.in_place for c in changes):
                return changes
        else:
            changes = []
        return changes + [Change(text) for text in self._differences(res, found, deps)]

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        wanted = self.wanted(res, deps)
        assert wanted is not None
        if not wanted:
            return self._not_needed(res, run.stack)
        # PutRule creates or updates; a rule of that name that is not ours must not be overwritten.
        existing = call_or_none(f"reading rule {res.name}", _events(run).describe_rule, RULE_MISSING, Name=res.name)
        if existing is not None:
            found = self._observe(run, res.key, existing)
            refuse_not_ours(run, res, "EventBridge rule", found.attrs["tags"])
            return self.update(run, res, found, deps)
        return self._put(run, res, wanted, tags=wanted_tags(run, res), targets=())

    def _put(
        self,
        run: AwsRun,
        res: Resource,
        wanted: Mapping[str, Any],
        tags: Mapping[str, str],
        targets: tuple[tuple[str, str, str], ...],
    ) -> Observed:
        events = _events(run)
        params: dict[str, Any] = {
            "Name": res.name,
            "EventPattern": json.dumps(wanted["pattern"]),
            "State": "ENABLED",
            "Description": res.props["description"],
        }
        with aws_errors(f"putting rule {res.name}"):
            arn = events.put_rule(**params, Tags=tag_list(tags))["RuleArn"]
        target = wanted["target"]
        stale = [t[0] for t in targets if t[0] != target["Id"]]
        if stale:
            with aws_errors(f"removing other targets from rule {res.name}"):
                events.remove_targets(Rule=res.name, Ids=stale)
        with aws_errors(f"pointing rule {res.name} at the pipeline"):
            reply = events.put_targets(Rule=res.name, Targets=[dict(target)])
        if reply.get("FailedEntryCount"):
            failures = "; ".join(
                f"{e.get('ErrorCode')}: {e.get('ErrorMessage')}" for e in reply.get("FailedEntries", [])
            )
            raise AwsError(f"EventBridge refused the pipeline as the target of rule {res.name}: {failures}")
        return observed(
            res,
            self.kind,
            res.name,
            arn=arn,
            pattern=_canonical(wanted["pattern"]),
            state="ENABLED",
            targets=((target["Id"], target["Arn"], target["RoleArn"]),),
            **ownership(dict(tags)),
        )

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        wanted = self.wanted(res, deps)
        assert wanted is not None
        if not wanted:
            if not found.attrs.get("not_needed"):
                self.delete(run, found)
            return self._not_needed(res, run.stack)
        if found.attrs.get("not_needed"):
            return self.create(run, res, deps)
        missing = missing_tags(run, res, found.attrs.get("tags", {}))
        if missing:
            with aws_errors(f"tagging rule {found.id}"):
                _events(run).tag_resource(ResourceARN=found.attrs["arn"], Tags=tag_list(missing))
        tags = {**found.attrs.get("tags", {}), **missing}
        if not self._differences(res, found, deps):
            return observed(res, self.kind, found.id, **{**found.attrs, **ownership(tags)})
        return self._put(run, res, wanted, tags=tags, targets=found.attrs["targets"])

    def delete(self, run: AwsRun, found: Observed) -> None:
        if not found.id:
            return
        events = _events(run)
        # DeleteRule refuses a rule that still has targets: remove them first.
        ids = [t[0] for t in self._targets(run, found.id)]
        if ids:
            call_or_none(
                f"removing the targets of rule {found.id}", events.remove_targets, RULE_MISSING, Rule=found.id, Ids=ids
            )
        call_or_none(f"deleting rule {found.id}", events.delete_rule, RULE_MISSING, Name=found.id)

    def describe(self, found: Observed) -> str:
        if found.attrs.get("not_needed"):
            return "none (the S3 source is started by push-app)"
        return found.id


# --- following a run (push-app --wait, status) ---------------------------------------------------------


def find_execution(run: AwsRun, pipeline: str, revision: str, newer_than: str | None = None) -> dict[str, Any] | None:
    """The most recent execution whose source revision is `revision` (a commit id or an S3 version id).

    With `newer_than` (the newest execution id before the push; "" when there was none), else the most recent
    execution started since then that failed before its source action fetched anything (no source revision:
    e.g. the pipeline role may not read the branch), which is the pushed change's run as far as AWS tells.
    """
    with aws_errors(f"listing the executions of {pipeline}"):
        summaries = _codepipeline(run).list_pipeline_executions(pipelineName=pipeline, maxResults=25)[
            "pipelineExecutionSummaries"
        ]
    for summary in summaries:
        if any(r.get("revisionId") == revision for r in summary.get("sourceRevisions", [])):
            return dict(summary)
    if newer_than is None:
        return None
    for summary in summaries:  # newest first
        if summary["pipelineExecutionId"] == newer_than:
            return None
        if not summary.get("sourceRevisions") and summary.get("status") == "Failed":
            return dict(summary)
    return None


def newest_execution_id(run: AwsRun, pipeline: str) -> str | None:
    """The id of the pipeline's most recent execution ("" when it has none; None when there is no pipeline)."""
    reply = call_or_none(
        f"listing the executions of {pipeline}",
        _codepipeline(run).list_pipeline_executions,
        ("PipelineNotFoundException",),
        pipelineName=pipeline,
        maxResults=1,
    )
    if reply is None:
        return None
    summaries = reply.get("pipelineExecutionSummaries") or []
    return str(summaries[0]["pipelineExecutionId"]) if summaries else ""


def get_execution(run: AwsRun, pipeline: str, execution_id: str) -> dict[str, Any]:
    with aws_errors(f"reading execution {execution_id} of {pipeline}"):
        return dict(
            _codepipeline(run).get_pipeline_execution(pipelineName=pipeline, pipelineExecutionId=execution_id)[
                "pipelineExecution"
            ]
        )


def action_executions(run: AwsRun, pipeline: str, execution_id: str) -> list[dict[str, Any]]:
    """Every action of one execution: its stage, status, error, and the external (CodeDeploy) id."""
    details: list[dict[str, Any]] = []
    params: dict[str, Any] = {"pipelineName": pipeline, "filter": {"pipelineExecutionId": execution_id}}
    with aws_errors(f"reading the actions of execution {execution_id}"):
        while True:
            reply = _codepipeline(run).list_action_executions(**params)
            details.extend(reply.get("actionExecutionDetails", []))
            if not reply.get("nextToken"):
                return details
            params["nextToken"] = reply["nextToken"]


def start_execution(run: AwsRun, pipeline: str, token: str) -> str:
    """Start a run (the S3 source); `token` makes a retried start the same run."""
    with aws_errors(f"starting pipeline {pipeline}"):
        return str(
            _codepipeline(run).start_pipeline_execution(name=pipeline, clientRequestToken=token)["pipelineExecutionId"]
        )


HANDLERS: tuple[Handler, ...] = (PipelineHandler(), RuleHandler())
