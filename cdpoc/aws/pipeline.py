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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cdpoc.aws.errors import aws_errors, call_or_none, caused_by
from cdpoc.aws.handler import Handler, observed
from cdpoc.aws.iam import retry_iam_propagation
from cdpoc.aws.ownership import missing_tags, ownership, ownership_changes, refuse_not_ours, wanted_tags
from cdpoc.aws.run import STACK_TAG, AwsRun, tag_list, tag_map
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
from cdpoc.spec import Ref, field_change, field_changes, spec_of
from cdpoc.stack.specs.cicd import EventRuleSpec, PipelineAction, PipelineSpec

RULE_MISSING = ("ResourceNotFoundException",)


def _codepipeline(run: AwsRun) -> Any:
    return run.client("codepipeline")


def _events(run: AwsRun) -> Any:
    return run.client("events")


def source_configuration(source: Observed, artifact_bucket: str) -> tuple[str, dict[str, str]]:
    """(provider, configuration) of the Source action for what the source handler found or made. The S3
    source's zip is in the artifact bucket: named from the pipeline's own reference to it, so that a bucket
    renamed in the config shows in the plan (the source found by its record still names the old one)."""
    if source.attrs["provider"] == S3:
        return S3, {
            "S3Bucket": artifact_bucket,
            "S3ObjectKey": source.attrs["key"],
            "PollForSourceChanges": "false",
        }
    return CODECOMMIT, {
        "RepositoryName": source.id,
        "BranchName": source.attrs["branch"],
        "PollForSourceChanges": "false",
        "OutputArtifactFormat": "CODE_ZIP",
    }


# --- the pipeline's structure, compared field by field ---------------------------------------------------


def _action_view(action: Mapping[str, Any]) -> dict[str, Any]:
    """One action of a declaration (request or GetPipeline reply) in one form, by PipelineAction field."""
    type_id = action.get("actionTypeId", {})
    return {
        "category": type_id.get("category", ""),
        "owner": type_id.get("owner", ""),
        "provider": type_id.get("provider", ""),
        "version": type_id.get("version", ""),
        "run_order": action.get("runOrder", 1),
        "configuration": dict(action.get("configuration", {})),
        "input_artifacts": tuple(a["name"] for a in action.get("inputArtifacts", [])),
        "output_artifacts": tuple(a["name"] for a in action.get("outputArtifacts", [])),
    }


def _view(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    """A declaration in one form, by PipelineSpec field: GetPipeline adds defaults and empty lists."""
    return {
        "role": pipeline.get("roleArn", ""),
        "artifact_bucket": pipeline.get("artifactStore", {}).get("location", ""),
        "pipeline_type": pipeline.get("pipelineType", "V1"),
        "execution_mode": pipeline.get("executionMode", "SUPERSEDED"),
        "stages": tuple(
            (stage["name"], tuple((action["name"], _action_view(action)) for action in stage.get("actions", [])))
            for stage in pipeline.get("stages", [])
        ),
    }


def _entries_changes(spec: PipelineSpec, field: str, have: Sequence[Any], want: Sequence[Any]) -> list[Change]:
    """Named entries (stages, or a stage's actions) that are new, gone, or in another order."""
    have_names, want_names = [name for name, _ in have], [name for name, _ in want]
    changes = [field_change(spec, f"{field}[{name}]", None, name) for name in want_names if name not in have_names]
    changes += [field_change(spec, f"{field}[{name}]", name, None) for name in have_names if name not in want_names]
    common_have = [name for name in have_names if name in want_names]
    common_want = [name for name in want_names if name in have_names]
    if not changes and common_have != common_want:
        changes.append(field_change(spec, field, tuple(have_names), tuple(want_names)))
    return changes


def _action_changes(spec: PipelineSpec, path: str, have: Mapping[str, Any], want: Mapping[str, Any]) -> list[Change]:
    changes = []
    for name, value in want.items():
        if name == "configuration":
            # AWS may add configuration keys of its own: only the keys cdpoc sets must match.
            config = have.get("configuration", {})
            changes += [
                field_change(spec, f"{path}.configuration[{key}]", config.get(key), wanted)
                for key, wanted in value.items()
                if config.get(key) != wanted
            ]
        elif have.get(name) != value:
            changes.append(field_change(spec, f"{path}.{name}", have.get(name), value))
    return changes


def pipeline_changes(spec: PipelineSpec, have: Mapping[str, Any], want: Mapping[str, Any]) -> list[Change]:
    """What differs between two _view()s, by field path (`stages[Deploy].actions[Deploy].configuration[...]`),
    each with both values."""
    changes = [
        field_change(spec, name, have.get(name), value)
        for name, value in want.items()
        if name != "stages" and have.get(name) != value
    ]
    have_stages = dict(have.get("stages", ()))
    changes += _entries_changes(spec, "stages", have.get("stages", ()), want["stages"])
    for stage, actions in want["stages"]:
        if stage not in have_stages:
            continue
        path = f"stages[{stage}].actions"
        changes += _entries_changes(spec, path, have_stages[stage], actions)
        have_actions = dict(have_stages[stage])
        for action, wanted in actions:
            if action in have_actions:
                changes += _action_changes(spec, f"{path}[{action}]", have_actions[action], wanted)
    return changes


def _provider(pipeline: Mapping[str, Any]) -> str:
    recorded = source_action(pipeline)
    return recorded.provider if recorded else ""


def _declared_action(
    action: PipelineAction, deps: Mapping[str, Observed | None], resolve: Callable[[Ref], str], artifact_bucket: str
) -> dict[str, Any]:
    """One action as CreatePipeline takes it; `resolve` turns a Ref into its value (need or shown)."""
    configuration: dict[str, str]
    if action.source is not None:
        source = deps.get(action.source.key)
        if source is None:  # only while planning: the source is to be created
            provider, configuration = resolve(action.source), {}
        else:
            provider, configuration = source_configuration(source, artifact_bucket)
    else:
        provider = action.provider
        configuration = {k: resolve(v) if isinstance(v, Ref) else v for k, v in action.configuration.items()}
    declared: dict[str, Any] = {
        "name": action.name,
        "actionTypeId": {
            "category": action.category,
            "owner": action.owner,
            "provider": provider,
            "version": action.version,
        },
        "runOrder": action.run_order,
        "configuration": configuration,
    }
    if action.output_artifacts:
        declared["outputArtifacts"] = [{"name": name} for name in action.output_artifacts]
    if action.input_artifacts:
        declared["inputArtifacts"] = [{"name": name} for name in action.input_artifacts]
    return declared


def declaration(res: Resource, deps: Mapping[str, Observed | None], resolve: Callable[[Ref], str]) -> dict[str, Any]:
    """The pipeline as CreatePipeline takes it; `resolve` turns a Ref into its value (need, or shown to plan)."""
    spec = spec_of(res, PipelineSpec)
    bucket = resolve(spec.artifact_bucket)
    return {
        "name": res.name,
        "roleArn": resolve(spec.role),
        "artifactStore": {"type": "S3", "location": bucket},
        "pipelineType": spec.pipeline_type,
        "executionMode": spec.execution_mode,
        "stages": [
            {"name": stage.name, "actions": [_declared_action(a, deps, resolve, bucket) for a in stage.actions]}
            for stage in spec.stages
        ],
    }


class PipelineHandler(Handler):
    """The pipeline. UpdatePipeline takes the whole declaration: any field that differs sends it all."""

    kind = "pipeline"
    label = "CodePipeline pipeline"
    arn_types = ("codepipeline:pipeline",)
    spec_type = PipelineSpec

    def declaration(self, res: Resource, deps: Mapping[str, Observed]) -> dict[str, Any]:
        """The pipeline as CreatePipeline / UpdatePipeline take it (every dependency exists)."""
        return declaration(res, deps, lambda ref: ref.need(deps))

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
            declaration=_view(pipeline),
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
        wanted = _view(declaration(res, deps, lambda ref: ref.shown(deps)))
        return changes + pipeline_changes(spec_of(res, PipelineSpec), found.attrs["declaration"], wanted)

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        declared = self.declaration(res, deps)

        def call() -> dict[str, Any]:
            with aws_errors(f"creating pipeline {res.name}"):
                return dict(
                    _codepipeline(run).create_pipeline(
                        pipeline=declared,
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
            return self.converge(run, res, found, deps)
        return observed(
            res,
            self.kind,
            res.name,
            arn=pipeline_arn(run, res.name),
            declaration=_view(declared),
            source_provider=_provider(declared),
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
        attrs = {**found.attrs, **ownership({**found.attrs["tags"], **missing})}
        if any(c.field for c in changes):
            declared = self.declaration(res, deps)

            def call() -> None:
                with aws_errors(f"updating pipeline {found.id}"):
                    _codepipeline(run).update_pipeline(pipeline=declared)

            retry_iam_propagation(run, f"updating pipeline {found.id}", call)
            attrs.update(declaration=_view(declared), source_provider=_provider(declared))
        return observed(res, self.kind, found.id, **attrs)

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


def _target_text(target: tuple[str, str, str] | None) -> str | None:
    return None if target is None else f"{target[1]} as {target[2] or '(no role)'}"


class RuleHandler(Handler):
    """The EventBridge rule and its targets (the pipeline, through the events role).

    Pattern, state and description are put with PutRule; a target that differs is put again (PutTargets)
    and one the spec no longer has is removed (RemoveTargets). With the S3 source no rule is wanted:
    found.id is "" for "nothing to have", and an existing rule (from an earlier CodeCommit source) is removed.
    """

    kind = "event_rule"
    label = "EventBridge rule"
    arn_types = ("events:rule",)
    spec_type = EventRuleSpec

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
            description=rule.get("Description", ""),
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
        recorded, owner = recorded_source(run, spec_of(res, EventRuleSpec).pipeline_name)
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

    def _wanted(self, res: Resource, deps: Mapping[str, Observed | None]) -> bool:
        """Whether the rule is wanted: not with an S3 source (push-app starts that pipeline itself)."""
        source = deps.get(spec_of(res, EventRuleSpec).source.key)
        return source is None or source.attrs.get("provider") != S3

    def _settings(
        self, res: Resource, deps: Mapping[str, Observed | None], resolve: Callable[[Ref], str]
    ) -> dict[str, Any]:
        """The rule's fields in the form _observe reads them; `resolve` turns a Ref into its value."""
        spec = spec_of(res, EventRuleSpec)
        pattern = branch_event_pattern(resolve(spec.pattern.repository), spec.pattern.branch)
        return {
            "pattern": _canonical(pattern),
            "state": spec.state,
            "description": spec.description,
            "targets": tuple(sorted((t.id, resolve(t.arn), resolve(t.role)) for t in spec.targets)),
        }

    def _field_changes(self, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, EventRuleSpec)
        want = self._settings(res, deps, lambda ref: ref.shown(deps))
        have = {name: found.attrs.get(name) for name in want}
        changes = field_changes(spec, have, {k: v for k, v in want.items() if k != "targets"})
        have_targets = {t[0]: t for t in have["targets"] or ()}
        want_targets = {t[0]: t for t in want["targets"]}
        for target_id in [*want_targets, *(i for i in have_targets if i not in want_targets)]:
            old, new = have_targets.get(target_id), want_targets.get(target_id)
            if old != new:
                changes.append(field_change(spec, f"targets[{target_id}]", _target_text(old), _target_text(new)))
        return changes

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        if not self._wanted(res, deps):
            return [] if found.attrs.get("not_needed") else [Change("remove it: the S3 source is started by push-app")]
        if found.attrs.get("not_needed"):
            return [Change("create it: the source is CodeCommit now")]
        changes = ownership_changes(run, res, found, "EventBridge rule")
        if any(not c.in_place for c in changes):
            return changes
        return changes + self._field_changes(res, found, deps)

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        if not self._wanted(res, deps):
            return self._not_needed(res, run.stack)
        # PutRule creates or updates; a rule of that name that is not ours must not be overwritten.
        existing = call_or_none(f"reading rule {res.name}", _events(run).describe_rule, RULE_MISSING, Name=res.name)
        if existing is not None:
            found = self._observe(run, res.key, existing)
            refuse_not_ours(run, res, "EventBridge rule", found.attrs["tags"])
            return self.converge(run, res, found, deps)
        wanted = self._settings(res, deps, lambda ref: ref.need(deps))
        arn = self._put_rule(run, res, wanted, tags=wanted_tags(run, res))
        self._put_targets(run, res, wanted["targets"])
        return observed(res, self.kind, res.name, arn=arn, **wanted, **ownership(wanted_tags(run, res)))

    def _put_rule(self, run: AwsRun, res: Resource, wanted: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """PutRule with the whole rule (it replaces pattern, state and description together)."""
        with aws_errors(f"putting rule {res.name}"):
            return str(
                _events(run).put_rule(
                    Name=res.name,
                    EventPattern=wanted["pattern"],
                    State=wanted["state"],
                    Description=wanted["description"],
                    Tags=tag_list(tags),
                )["RuleArn"]
            )

    def _put_targets(self, run: AwsRun, res: Resource, targets: Sequence[tuple[str, str, str]]) -> None:
        with aws_errors(f"pointing rule {res.name} at the pipeline"):
            reply = _events(run).put_targets(
                Rule=res.name,
                Targets=[{"Id": i, "Arn": arn, **({"RoleArn": role} if role else {})} for i, arn, role in targets],
            )
        # PutTargets answers 200 and lists refused targets in FailedEntries (FailedEntryCount): a refused
        # target is no success. terraform-provider-aws does the same and retries none of them
        # (internal/service/events/target.go, putTargetsError): EventBridge assumes the target's role only
        # when it invokes the target, so a new role's propagation shows as FailedInvocations, not here.
        failed = reply.get("FailedEntries") or []
        if reply.get("FailedEntryCount") or failed:
            failures = "; ".join(
                f"target {e.get('TargetId')}: {e.get('ErrorCode')}: {e.get('ErrorMessage')}" for e in failed
            )
            raise AwsError(
                f"EventBridge refused the pipeline as the target of rule {res.name}: {failures or 'no reason given'}",
                "Run `cdpoc up` again; the rule exists and up will point it at the pipeline.",
            )

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        if not self._wanted(res, deps):
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
        attrs = {**found.attrs, **ownership(tags)}
        fields = {c.field.split("[", 1)[0] for c in changes if c.field}
        wanted = self._settings(res, deps, lambda ref: ref.need(deps))
        if fields & {"pattern", "state", "description"}:
            attrs["arn"] = self._put_rule(run, res, wanted, tags)
            attrs.update(pattern=wanted["pattern"], state=wanted["state"], description=wanted["description"])
        if "targets" in fields:
            self._retarget(run, res, changes, wanted["targets"])
            attrs["targets"] = wanted["targets"]
        return observed(res, self.kind, found.id, **attrs)

    def _retarget(
        self, run: AwsRun, res: Resource, changes: Sequence[Change], wanted: Sequence[tuple[str, str, str]]
    ) -> None:
        """Remove the targets the changes say are no longer declared; put those that are new or differ."""
        ids = [c.field[len("targets[") : -1] for c in changes if c.field.startswith("targets[")]
        stale = [i for i in ids if i not in {t[0] for t in wanted}]
        if stale:
            call_or_none(
                f"removing stale targets from rule {res.name}",
                _events(run).remove_targets,
                RULE_MISSING,
                Rule=res.name,
                Ids=stale,
            )
        put = [t for t in wanted if t[0] in ids]
        if put:
            self._put_targets(run, res, put)

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
