"""Graph, planner, executor and sweeper against in-memory fakes: no AWS at all."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from cdpoc.apply import ApplyFailed, apply_plan
from cdpoc.aws.errors import DependencyViolation
from cdpoc.aws.handler import Handler
from cdpoc.errors import Cancelled, ConflictError, WaitTimeout
from cdpoc.executor import Event, NoChange, State, run_graph
from cdpoc.graph import Graph, GraphError, topological
from cdpoc.model import Action, Change, Observed, Resource
from cdpoc.planner import make_plan
from cdpoc.render import plan_lines
from cdpoc.spec import Ref, Spec, declare, field_changes
from cdpoc.sweeper import deletion_needs, find_everything, survey, sweep

WAIT = 10.0  # generous bound for barriers: a deadlock fails the test instead of hanging it


# ---------------------------------------------------------------- graph


def test_topological_order_puts_dependencies_first() -> None:
    order = topological({"c": {"b"}, "b": {"a"}, "a": set(), "d": {"a"}})
    assert order.index("a") < order.index("b") < order.index("c")
    assert order.index("a") < order.index("d")


def test_cycle_is_an_error_naming_the_nodes() -> None:
    with pytest.raises(GraphError, match="cycle among: a, b"):
        Graph.of([Resource("a", "k", "a", depends_on=("b",)), Resource("b", "k", "b", depends_on=("a",))])


def test_duplicate_and_undeclared_dependencies_are_errors() -> None:
    with pytest.raises(GraphError, match="declared twice"):
        Graph.of([Resource("a", "k", "a"), Resource("a", "k", "a")])
    with pytest.raises(GraphError, match="undeclared ghost"):
        Graph.of([Resource("a", "k", "a", depends_on=("ghost",))])


def test_ancestors_are_transitive() -> None:
    graph = Graph.of(
        [
            Resource("a", "k", "a"),
            Resource("b", "k", "b", depends_on=("a",)),
            Resource("c", "k", "c", depends_on=("b",)),
        ]
    )
    assert graph.ancestors("c") == {"a", "b"}


# ---------------------------------------------------------------- executor


def test_independent_steps_overlap() -> None:
    """Both steps must be inside work at once to pass the barrier; run one at a time, it times out."""
    barrier = threading.Barrier(2, timeout=WAIT)

    def work(node: str) -> str:
        barrier.wait()
        return node

    outcome = run_graph({"a": set(), "b": set()}, work, parallelism=2)
    assert outcome.ok and set(outcome.done) == {"a", "b"}

    serial = run_graph(
        {"a": set(), "b": set()}, lambda node: str(threading.Barrier(2, timeout=0.2).wait()), parallelism=1
    )
    assert set(serial.failed) == {"a", "b"}  # nothing overlaps with parallelism 1


def test_a_dependent_starts_as_soon_as_its_own_needs_are_done() -> None:
    """slow waits for 'dependent' to run: that only happens if 'dependent' does not wait for slow."""
    dependent_ran = threading.Event()

    def work(node: str) -> str:
        if node == "slow":
            assert dependent_ran.wait(WAIT), "dependent was held back by an unrelated step"
        if node == "dependent":
            dependent_ran.set()
        return node

    outcome = run_graph({"slow": set(), "fast": set(), "dependent": {"fast"}}, work, parallelism=3)
    assert outcome.ok


def test_dependencies_finish_before_dependents_start() -> None:
    finished: list[str] = []
    lock = threading.Lock()

    def work(node: str) -> str:
        with lock:
            if node == "c":
                assert {"a", "b"} <= set(finished)
            finished.append(node)
        return node

    assert run_graph({"a": set(), "b": set(), "c": {"a", "b"}}, work, parallelism=4).ok


def test_parallelism_bounds_concurrency() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Barrier(2, timeout=WAIT)

    def work(node: str) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        if node in ("n0", "n1"):
            gate.wait()  # proves two do run at once
        with lock:
            active -= 1
        return node

    outcome = run_graph({f"n{i}": set() for i in range(6)}, work, parallelism=2)
    assert outcome.ok and peak == 2


def test_failure_skips_dependents_and_finishes_the_rest() -> None:
    events: list[Event] = []

    def work(node: str) -> str:
        if node == "bad":
            raise RuntimeError("boom")
        return node

    outcome = run_graph(
        {"bad": set(), "child": {"bad"}, "grandchild": {"child"}, "other": set()}, work, on_event=events.append
    )
    assert set(outcome.failed) == {"bad"}
    assert set(outcome.skipped) == {"child", "grandchild"}
    assert "other" in outcome.done
    assert any(e.key == "bad" and e.state is State.FAILED and e.detail == "RuntimeError: boom" for e in events)


def test_no_change_is_reported_as_unchanged() -> None:
    events: list[Event] = []

    def work(node: str) -> str:
        raise NoChange("already there")

    outcome = run_graph({"a": set()}, work, on_event=events.append)
    assert outcome.ok
    assert [e.state for e in events] == [State.WAITING, State.RUNNING, State.UNCHANGED]


def test_ctrl_c_stops_scheduling_and_lets_running_work_finish() -> None:
    cancel = threading.Event()
    started: list[str] = []

    def work(node: str) -> str:
        started.append(node)
        if node == "first":
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: KeyboardInterrupt in the main thread
            assert cancel.wait(WAIT), "the main thread did not react to Ctrl-C"
        return node

    outcome = run_graph({"first": set(), "second": {"first"}, "third": {"second"}}, work, cancel=cancel)
    assert outcome.cancelled and cancel.is_set(), outcome
    assert outcome.done == {"first": "first"}, outcome  # in-flight work finished, nothing new started
    assert started == ["first"]
    assert set(outcome.skipped) == {"second", "third"}


# ---------------------------------------------------------------- planner / apply / sweeper with a fake cloud


FAKE_STACK = "fake"


def owned(item: Mapping[str, Any]) -> dict[str, Any]:
    """A fake item's attrs; its "stack" tag is the run's unless the test gave it another."""
    return {"stack": FAKE_STACK, **item}


@dataclass(frozen=True)
class Thing(Spec):
    """A fake kind: its size changes in place, its zone does not (AWS would have to replace it)."""

    kind: ClassVar[str] = "thing"
    force_new: ClassVar[frozenset[str]] = frozenset({"zone"})
    size: int
    zone: str
    needs: tuple[Ref, ...] = ()

    def fields(self) -> dict[str, Any]:
        return {"size": self.size, "zone": self.zone}


def thing(res: Resource) -> Thing:
    assert isinstance(res.spec, Thing)
    return res.spec


class FakeCloud:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        # The changes each update() was given, by key.
        self.applied: dict[str, tuple[Change, ...]] = {}
        self.lock = threading.Lock()
        self.busy: dict[str, int] = {}


class FakeHandler(Handler):
    kind = "thing"
    label = "thing"
    spec_type = Thing

    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def find(self, run: Any, res: Resource) -> Observed | None:
        item = self.cloud.items.get(res.key)
        return Observed(res.key, self.kind, f"id-{res.key}", owned(item)) if item else None

    def scan(self, run: Any) -> dict[str, Observed]:
        # Like the real scans: only what is tagged with the run's stack.
        return {
            k: Observed(k, self.kind, f"id-{k}", owned(v))
            for k, v in self.cloud.items.items()
            if owned(v)["stack"] == run.stack
        }

    def changes(self, run: Any, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        return field_changes(Thing, found.attrs, thing(res).fields())

    def create(self, run: Any, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        with self.cloud.lock:
            self.cloud.calls.append(("create", res.key))
            self.cloud.items[res.key] = thing(res).fields()
        return Observed(res.key, self.kind, f"id-{res.key}", thing(res).fields())

    def update(
        self,
        run: Any,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        with self.cloud.lock:
            self.cloud.calls.append(("update", res.key))
            self.cloud.applied[res.key] = tuple(changes)
            self.cloud.items[res.key].update({c.field: c.new for c in changes})
        return Observed(res.key, self.kind, found.id, owned(self.cloud.items[res.key]))

    def delete(self, run: Any, found: Observed) -> None:
        with self.cloud.lock:
            if self.cloud.busy.get(found.key, 0) > 0:
                self.cloud.busy[found.key] -= 1
                raise DependencyViolation(f"{found.key} in use")
            self.cloud.calls.append(("delete", found.key))
            self.cloud.items.pop(found.key, None)


class FakeRun:
    stack = FAKE_STACK

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.waits = type("W", (), {"poll_initial": 0.0, "poll_max": 0.0})()

    def forget(self) -> None:
        pass

    def memo(self, key: str, compute: Any) -> Any:
        return compute()

    def memoized(self, key: str) -> Any:
        return None

    def pause(self, seconds: float) -> None:
        if self.cancel.is_set():
            raise Cancelled("interrupted")


def fake_graph() -> Graph:
    return Graph.of(
        [
            declare("net", "net", Thing(1, "a")),
            declare("left", "left", Thing(2, "a", (Ref("net"),))),
            declare("right", "right", Thing(3, "a", (Ref("net"),))),
            declare("top", "top", Thing(4, "a", (Ref("left"), Ref("right")))),
        ]
    )


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud()


def test_plan_classifies_create_update_exists_conflict(cloud: FakeCloud) -> None:
    cloud.items = {"net": {"size": 1, "zone": "a"}, "left": {"size": 9, "zone": "a"}, "right": {"size": 3, "zone": "b"}}
    plan = make_plan(FakeRun(), fake_graph(), {"thing": FakeHandler(cloud)})
    actions = {s.resource.key: s.action for s in plan.steps}
    assert actions == {"net": Action.NONE, "left": Action.UPDATE, "right": Action.CONFLICT, "top": Action.CREATE}
    assert cloud.calls == []  # planning is read-only


def test_a_missing_resource_the_handler_objects_to_is_a_conflict_and_its_notes_are_shown(cloud: FakeCloud) -> None:
    """Handler.missing: a not-in-place Change makes the create a conflict; an in-place one is a note."""

    class Guarded(FakeHandler):
        def missing(self, run: Any, res: Resource, found: Mapping[str, Observed | None]) -> list[Change]:
            if res.key == "left" and found["net"] is not None:
                return [Change("net was set up with what left held", in_place=False)]
            return [Change("from a kept copy")] if res.key == "top" else []

    cloud.items = {"net": {"size": 1, "zone": "a"}}
    handlers = {"thing": Guarded(cloud)}
    plan = make_plan(FakeRun(), fake_graph(), handlers)
    actions = {s.resource.key: s.action for s in plan.steps}
    assert actions == {"net": Action.NONE, "left": Action.CONFLICT, "right": Action.CREATE, "top": Action.CREATE}
    lines = plan_lines(plan, lambda found: found.id)
    assert any(line.startswith("differs  left") and "net was set up with what left held" in line for line in lines)
    assert any(line.startswith("create   top") and line.endswith("from a kept copy") for line in lines)
    with pytest.raises(ConflictError, match=r"left \(left\): net was set up with what left held"):
        apply_plan(FakeRun(), plan, handlers)
    assert cloud.calls == []


def test_apply_creates_in_dependency_order_then_is_a_no_op(cloud: FakeCloud) -> None:
    handlers = {"thing": FakeHandler(cloud)}
    apply_plan(FakeRun(), make_plan(FakeRun(), fake_graph(), handlers), handlers)
    created = [key for op, key in cloud.calls if op == "create"]
    assert created[0] == "net" and created[-1] == "top"
    cloud.calls.clear()
    again = make_plan(FakeRun(), fake_graph(), handlers)
    assert not again.has_work
    apply_plan(FakeRun(), again, handlers)
    assert cloud.calls == []


def test_apply_refuses_conflicts_before_touching_anything(cloud: FakeCloud) -> None:
    cloud.items = {"net": {"size": 1, "zone": "b"}}
    handlers = {"thing": FakeHandler(cloud)}
    with pytest.raises(ConflictError, match=r"net \(net\): zone: b → a"):
        apply_plan(FakeRun(), make_plan(FakeRun(), fake_graph(), handlers), handlers)
    assert cloud.calls == []


def test_apply_failure_reports_every_failed_step_and_keeps_the_rest(cloud: FakeCloud) -> None:
    class Failing(FakeHandler):
        def create(self, run: Any, res: Resource, deps: Mapping[str, Observed]) -> Observed:
            if res.key == "left":
                raise DependencyViolation("left cannot be made")
            return super().create(run, res, deps)

    handlers = {"thing": Failing(cloud)}
    with pytest.raises(ApplyFailed, match=r"1 step\(s\) failed; 1 step\(s\) skipped") as caught:
        apply_plan(FakeRun(), make_plan(FakeRun(), fake_graph(), handlers), handlers)
    assert "left: left cannot be made" in caught.value.message
    assert set(cloud.items) == {"net", "right"}


def test_sweep_deletes_dependents_first_and_retries_dependency_violations(cloud: FakeCloud) -> None:
    handlers = {"thing": FakeHandler(cloud)}
    graph = fake_graph()
    apply_plan(FakeRun(), make_plan(FakeRun(), graph, handlers), handlers)
    cloud.items["stray"] = {"size": 0, "zone": "a"}  # tagged with the stack but no longer declared
    cloud.busy["net"] = 2
    cloud.calls.clear()
    doomed = find_everything(FakeRun(), graph, handlers)
    deleted = sweep(FakeRun(), graph, handlers, doomed)
    order = [key for op, key in cloud.calls if op == "delete"]
    assert set(deleted) == {"net", "left", "right", "top", "stray"}
    assert order.index("top") < order.index("left") < order.index("net")
    assert order.index("right") < order.index("net")
    assert cloud.items == {}


def test_sweep_gives_up_on_a_dependency_violation_after_its_budget(cloud: FakeCloud) -> None:
    handlers = {"thing": FakeHandler(cloud)}
    cloud.items = {"net": {"size": 1, "zone": "a"}}
    cloud.busy["net"] = 10**6
    graph = fake_graph()
    with pytest.raises(ApplyFailed, match=r"still refused after 0s"):
        sweep(FakeRun(), graph, handlers, find_everything(FakeRun(), graph, handlers), budget=0.0)


def test_deletion_needs_for_resources_outside_the_graph_follow_their_kind() -> None:
    graph = Graph.of([Resource("vpc", "vpc", "v"), Resource("subnet.a", "subnet", "s", depends_on=("vpc",))])
    from cdpoc.sweeper import Doomed

    doomed = {
        "vpc": Doomed(Observed("vpc", "vpc", "v"), frozenset()),
        "subnet.a": Doomed(Observed("subnet.a", "subnet", "s1"), frozenset({"vpc"})),
        "subnet.old": Doomed(Observed("subnet.old", "subnet", "s2"), frozenset()),
    }
    needs = deletion_needs(graph, doomed)
    assert needs["vpc"] == {"subnet.a", "subnet.old"}
    assert needs["subnet.old"] == set()


def test_wait_until_times_out_with_what_it_waited_for() -> None:
    from cdpoc.aws.run import AwsRun, Waits

    run = AwsRun(clients=None, stack="s", waits=Waits(poll_initial=0.001, poll_max=0.001))  # type: ignore[arg-type]
    with pytest.raises(WaitTimeout, match="waiting for the moon"):
        run.wait_until("the moon", lambda: False, timeout=0.01)
    run.cancel.set()
    with pytest.raises(Cancelled):
        run.wait_until("the moon", lambda: False, timeout=10)


def test_a_resource_tagged_for_another_stack_is_a_conflict_and_down_leaves_it(cloud: FakeCloud) -> None:
    """Ownership is read from the resource: a declared name held by another stack (or untagged) is never
    adopted by `up` nor deleted by `down`, and the refusal names the owner and never suggests `down`."""
    handlers = {"thing": FakeHandler(cloud)}
    graph = fake_graph()
    cloud.items = {"net": {"size": 1, "zone": "a", "stack": "other"}, "left": {"size": 2, "zone": "a", "stack": ""}}
    plan = make_plan(FakeRun(), graph, handlers)
    texts = {s.resource.key: [c.text for c in s.changes] for s in plan.conflicts}
    assert texts == {
        "net": ["thing net exists and belongs to stack other: cdpoc will not take it over"],
        "left": [
            "thing left exists and belongs to nothing cdpoc manages (no cdpoc:stack tag): cdpoc will not take it over"
        ],
    }
    with pytest.raises(ConflictError) as refused:
        apply_plan(FakeRun(), plan, handlers)
    assert "cdpoc down" not in refused.value.hint and "never changes or deletes them" in refused.value.hint

    cloud.items["right"] = {"size": 3, "zone": "a"}  # this stack's own
    found = survey(FakeRun(), graph, handlers)
    assert set(found.not_ours) == {"net", "left"}
    assert set(found.doomed) == {"right"}
    sweep(FakeRun(), graph, handlers, found.doomed)
    assert set(cloud.items) == {"net", "left"}
    assert [op for op, key in cloud.calls if key in ("net", "left")] == []


def test_up_applies_exactly_the_changes_the_plan_shows(cloud: FakeCloud) -> None:
    """One diff: the plan's field changes (old → new) are what update() is given, nothing recomputed."""
    cloud.items = {k: {"size": n, "zone": "a"} for k, n in (("net", 1), ("left", 9), ("right", 3), ("top", 4))}
    handlers = {"thing": FakeHandler(cloud)}
    plan = make_plan(FakeRun(), fake_graph(), handlers)
    (step,) = plan.by_action(Action.UPDATE)
    assert [(c.field, c.old, c.new) for c in step.changes] == [("size", 9, 2)]
    assert any(line.startswith("update   left") and line.endswith("size: 9 → 2") for line in plan_lines(plan, str))
    apply_plan(FakeRun(), plan, handlers)
    assert cloud.applied == {"left": step.changes}
    assert cloud.items["left"] == {"size": 2, "zone": "a"}


def test_discovery_looks_up_the_kinds_at_once() -> None:
    """A no-op plan is mostly reads: each kind's lookup runs beside the others'. Two kinds whose lookups can
    only finish together (a barrier) would deadlock one after another."""
    meeting = threading.Barrier(2, timeout=WAIT)

    class Meeting(FakeHandler):
        def find(self, run: Any, res: Resource) -> Observed | None:
            meeting.wait()
            return None

    cloud = FakeCloud()
    first, second = Meeting(cloud), Meeting(cloud)
    second.kind = "other"
    graph = Graph.of([declare("a", "a", Thing(1, "a")), Resource("b", "other", "b")])
    plan = make_plan(FakeRun(), graph, {"thing": first, "other": second})
    assert [s.action for s in plan.steps] == [Action.CREATE, Action.CREATE]


def test_a_memoised_listing_is_computed_once_however_many_threads_ask() -> None:
    from cdpoc.aws.run import AwsRun

    run = AwsRun(clients=None, stack="s")  # type: ignore[arg-type]
    computed = []
    start = threading.Barrier(8, timeout=WAIT)

    def listing() -> str:
        computed.append(1)
        time.sleep(0.05)  # long enough for the other askers to arrive while it runs
        return "subnets"

    def ask() -> str:
        start.wait()
        return run.memo("scan:subnet", listing)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: ask(), range(8)))
    assert answers == ["subnets"] * 8 and len(computed) == 1
