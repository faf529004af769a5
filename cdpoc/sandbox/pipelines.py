"""How executions move through a pipeline's stages, as CodePipeline schedules them (no AWS calls here).

Stages run in order; within a stage, actions run by runOrder, those with the same runOrder together.
In SUPERSEDED mode (V1 pipelines' only mode, and V2's default) a stage holds one execution at a time; an
execution that finished a stage waits at the next one's entrance, and a newer execution arriving there
supersedes it. QUEUED lets waiting executions in one by one, PARALLEL never holds them. What an action
does, and when it ends, is the ActionRunner's business (cdpoc/sandbox/codepipeline.py): a CodeDeploy
action ends when its deployment does, which StopDeployment can move, so end times are asked for, not kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

IN_PROGRESS, SUCCEEDED, FAILED, SUPERSEDED = "InProgress", "Succeeded", "Failed", "Superseded"


@dataclass(frozen=True)
class Revision:
    """What a source action fetched (a commit, or an S3 object version)."""

    action: str
    artifact: str
    revision_id: str
    created: float
    summary: str
    url: str


@dataclass
class ActionRun:
    stage: str
    name: str
    definition: dict[str, Any]
    execution_id: str
    action_execution_id: str
    start: float
    end: float | None = None  # None: the runner knows (a deployment decides)
    outcome: str | None = None  # Succeeded | Failed once finished
    finished: bool = False
    external_id: str | None = None
    external_url: str | None = None
    summary: str | None = None
    error: dict[str, str] | None = None
    input_artifacts: list[dict[str, Any]] = field(default_factory=list)
    output_artifacts: list[dict[str, Any]] = field(default_factory=list)
    output_variables: dict[str, str] = field(default_factory=dict)
    revision: Revision | None = None
    deployment_id: str | None = None

    @property
    def status(self) -> str:
        return self.outcome if self.finished and self.outcome else IN_PROGRESS

    @property
    def last_update(self) -> float:
        return self.end if self.finished and self.end is not None else self.start


@dataclass
class StageRun:
    index: int
    name: str
    execution_id: str
    start: float
    groups: list[list[dict[str, Any]]]
    group: int = 0
    end: float | None = None
    status: str = IN_PROGRESS
    actions: list[ActionRun] = field(default_factory=list)

    def current_actions(self) -> list[ActionRun]:
        names = {a["name"] for a in self.groups[self.group]}
        return [a for a in self.actions if a.name in names]


@dataclass
class ExecutionRun:
    execution_id: str
    start: float
    trigger: dict[str, str]
    stages: list[dict[str, Any]]  # the pipeline's structure when the execution started
    version: int
    status: str = IN_PROGRESS
    last_update: float = 0.0
    summary: str | None = None
    stage_runs: list[StageRun] = field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"bucket", "key", ...}
    source_overrides: dict[str, str] = field(default_factory=dict)  # action name -> revision value
    revisions: list[Revision] = field(default_factory=list)


class ActionRunner(Protocol):
    def start(self, execution: ExecutionRun, stage: str, action: dict[str, Any], at: float) -> ActionRun: ...

    def end_time(self, run: ActionRun) -> float: ...

    def finish(self, run: ActionRun, at: float) -> None: ...


def action_groups(stage: dict[str, Any]) -> list[list[dict[str, Any]]]:
    orders = sorted({int(a.get("runOrder", 1)) for a in stage["actions"]})
    return [[a for a in stage["actions"] if int(a.get("runOrder", 1)) == order] for order in orders]


@dataclass
class PipelineEngine:
    mode: str = "SUPERSEDED"  # SUPERSEDED | QUEUED | PARALLEL
    executions: dict[str, ExecutionRun] = field(default_factory=dict)
    holders: dict[int, str] = field(default_factory=dict)  # stage index -> execution inside it
    waiting: dict[int, list[str]] = field(default_factory=dict)  # stage index -> executions at its entrance

    def start(self, execution: ExecutionRun, runner: ActionRunner) -> None:
        execution.last_update = execution.start
        self.executions[execution.execution_id] = execution
        self._try_enter(0, execution, execution.start, runner)

    def advance(self, now: float, runner: ActionRunner) -> None:
        """Apply, in time order, every stage step that completes by `now`."""
        while True:
            due = self._next_completion(runner)
            if due is None or due[0] > now:
                return
            self._complete_group(due[1], due[0], runner)

    def stage_runs(self, stage: str) -> list[StageRun]:
        return [r for e in self.executions.values() for r in e.stage_runs if r.name == stage]

    def action_runs(self) -> list[ActionRun]:
        return [a for e in self.executions.values() for r in e.stage_runs for a in r.actions]

    # ---- internals

    def _next_completion(self, runner: ActionRunner) -> tuple[float, StageRun] | None:
        best: tuple[float, StageRun] | None = None
        for execution in self.executions.values():
            for run in execution.stage_runs:
                if run.status != IN_PROGRESS:
                    continue
                due = max(runner.end_time(a) for a in run.current_actions())
                if best is None or due < best[0]:
                    best = (due, run)
        return best

    def _complete_group(self, run: StageRun, at: float, runner: ActionRunner) -> None:
        execution = self.executions[run.execution_id]
        for action in run.current_actions():
            if not action.finished:
                runner.finish(action, runner.end_time(action))
        execution.last_update = at
        failed = [a for a in run.current_actions() if a.outcome != SUCCEEDED]
        if failed:
            self._close_stage(run, FAILED, at, runner)
            execution.status = FAILED
            execution.summary = (failed[0].error or {}).get("message")
            return
        if run.group + 1 < len(run.groups):
            run.group += 1
            self._start_group(run, execution, at, runner)
            return
        self._close_stage(run, SUCCEEDED, at, runner)
        if run.index + 1 < len(execution.stages):
            self._try_enter(run.index + 1, execution, at, runner)
        else:
            execution.status = SUCCEEDED

    def _close_stage(self, run: StageRun, status: str, at: float, runner: ActionRunner) -> None:
        run.status, run.end = status, at
        if self.holders.get(run.index) == run.execution_id:
            del self.holders[run.index]
            queue = self.waiting.get(run.index) or []
            if queue:
                self._enter(run.index, self.executions[queue.pop(0)], at, runner)

    def _try_enter(self, index: int, execution: ExecutionRun, at: float, runner: ActionRunner) -> None:
        if self.mode == "PARALLEL" or index not in self.holders:
            self._enter(index, execution, at, runner)
            return
        queue = self.waiting.setdefault(index, [])
        if self.mode == "SUPERSEDED":
            for older in queue:
                self.executions[older].status = SUPERSEDED
                self.executions[older].last_update = at
            queue.clear()
        queue.append(execution.execution_id)

    def _enter(self, index: int, execution: ExecutionRun, at: float, runner: ActionRunner) -> None:
        if self.mode != "PARALLEL":
            self.holders[index] = execution.execution_id
        stage = execution.stages[index]
        run = StageRun(index, stage["name"], execution.execution_id, at, action_groups(stage))
        execution.stage_runs.append(run)
        execution.last_update = at
        self._start_group(run, execution, at, runner)

    def _start_group(self, run: StageRun, execution: ExecutionRun, at: float, runner: ActionRunner) -> None:
        for action in run.groups[run.group]:
            run.actions.append(runner.start(execution, run.name, action, at))
