"""How the sandbox schedules pipeline executions through stages (pure: a scripted runner, no moto)."""

from __future__ import annotations

from typing import Any

from cdpoc.sandbox.pipelines import FAILED, SUCCEEDED, ActionRun, ExecutionRun, PipelineEngine


class ScriptedRunner:
    """Every action takes `durations[name]` seconds (default 1) and fails when its name is in `failing`."""

    def __init__(self, durations: dict[str, float] | None = None, failing: frozenset[str] = frozenset()) -> None:
        self.durations = durations or {}
        self.failing = failing
        self.started: list[tuple[str, str, float]] = []

    def start(self, execution: ExecutionRun, stage: str, action: dict[str, Any], at: float) -> ActionRun:
        self.started.append((execution.execution_id, action["name"], at))
        run = ActionRun(
            stage, action["name"], action, execution.execution_id, f"{execution.execution_id}/{action['name']}", at
        )
        run.end = at + self.durations.get(action["name"], 1.0)
        return run

    def end_time(self, run: ActionRun) -> float:
        assert run.end is not None
        return run.end

    def finish(self, run: ActionRun, at: float) -> None:
        run.finished, run.end = True, at
        run.outcome = FAILED if run.name in self.failing else SUCCEEDED


STAGES = [
    {"name": "Source", "actions": [{"name": "Source"}]},
    {
        "name": "Build",
        "actions": [{"name": "Lint", "runOrder": 1}, {"name": "Test", "runOrder": 1}, {"name": "Pack", "runOrder": 2}],
    },
    {"name": "Deploy", "actions": [{"name": "Deploy"}]},
]


def run(engine: PipelineEngine, runner: ScriptedRunner, execution_id: str, at: float) -> ExecutionRun:
    execution = ExecutionRun(execution_id, at, {"triggerType": "StartPipelineExecution"}, STAGES, 1)
    engine.advance(at, runner)
    engine.start(execution, runner)
    return execution


def test_run_orders_within_a_stage_and_stages_in_sequence() -> None:
    runner = ScriptedRunner({"Test": 3.0})
    engine = PipelineEngine()
    execution = run(engine, runner, "e1", 0.0)
    engine.advance(100.0, runner)
    assert execution.status == SUCCEEDED and execution.last_update == 6.0
    # Lint and Test start together; Pack waits for the slower of them; Deploy follows the Build stage
    assert runner.started == [
        ("e1", "Source", 0.0),
        ("e1", "Lint", 1.0),
        ("e1", "Test", 1.0),
        ("e1", "Pack", 4.0),
        ("e1", "Deploy", 5.0),
    ]


def test_a_failed_action_fails_the_stage_and_the_execution() -> None:
    runner = ScriptedRunner(failing=frozenset({"Test"}))
    engine = PipelineEngine()
    execution = run(engine, runner, "e1", 0.0)
    engine.advance(100.0, runner)
    assert execution.status == FAILED
    assert [(s.name, s.status) for s in execution.stage_runs] == [("Source", SUCCEEDED), ("Build", FAILED)]


def test_superseded_queued_and_parallel_modes() -> None:
    def outcome(mode: str) -> dict[str, str]:
        runner = ScriptedRunner({"Deploy": 10.0})
        engine = PipelineEngine(mode=mode)
        executions = [run(engine, runner, name, at) for name, at in (("e1", 0.0), ("e2", 5.0), ("e3", 6.0))]
        engine.advance(7.5, runner)
        assert engine.executions["e1"].status == "InProgress"
        engine.advance(100.0, runner)
        return {e.execution_id: e.status for e in executions}

    # e2 and e3 both finish Build while e1 deploys: the newer one replaces the waiting one
    assert outcome("SUPERSEDED") == {"e1": SUCCEEDED, "e2": "Superseded", "e3": SUCCEEDED}
    assert outcome("QUEUED") == {"e1": SUCCEEDED, "e2": SUCCEEDED, "e3": SUCCEEDED}
    assert outcome("PARALLEL") == {"e1": SUCCEEDED, "e2": SUCCEEDED, "e3": SUCCEEDED}
