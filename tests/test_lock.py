"""The stack lock against moto in process: one mutating run per stack, released however the run ends,
stale locks taken over (old heartbeat, dead process on this machine), `cdpoc unlock`, and the lock
never taken by read-only commands nor touched by `down`'s sweep and leftover scan."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from cdpoc import lifecycle, rollout
from cdpoc.aws.account import tagged_arns
from cdpoc.cli import app
from cdpoc.context import Context
from cdpoc.errors import EXIT_LOCKED, AwsError, Cancelled, Locked
from cdpoc.lock import Holder, StackLock, pid_alive
from cdpoc.sweeper import find_everything, leftovers

pytestmark = pytest.mark.usefixtures("aws")

STACK = "t1"
LOCK = "/cdpoc-locks/t1"
NOW = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
WAIT = 30.0  # bound for barriers and joins: a deadlock fails the test instead of hanging it


def ssm() -> Any:
    return boto3.client("ssm", region_name="us-east-1")


def lock_record() -> dict[str, Any] | None:
    try:
        parameter = ssm().get_parameter(Name=LOCK)["Parameter"]
    except ssm().exceptions.ParameterNotFound:
        return None
    return {"holder": Holder.parse(parameter["Value"]), "version": parameter["Version"]}


def foreign(ctx: Context, **fields: Any) -> Holder:
    """Write a lock record as another run (by default on another machine, heartbeat just now) would."""
    stamp = NOW.isoformat(timespec="seconds")
    values: dict[str, Any] = {
        "who": "alice@ci-runner-7",
        "arn": "arn:aws:sts::123456789012:assumed-role/ci/alice",
        "host": "ci-runner-7",
        "boot": "another-boot",
        "pid": 4242,
        "command": "down",
        "run_id": "theirs",
        "since": stamp,
        "heartbeat": stamp,
        **fields,
    }
    holder = Holder(**values)
    ssm().put_parameter(
        Name=LOCK, Value=holder.to_json(), Type="String", Overwrite=False, Tags=[{"Key": "cdpoc:lock", "Value": STACK}]
    )
    return holder


def remove_lock() -> None:
    ssm().delete_parameter(Name=LOCK)


def a_lock(ctx: Context, **options: Any) -> StackLock:
    return StackLock(ctx.run, ctx.ui, "up", clock=lambda: NOW, **options)


def stderr(ctx: Context) -> str:
    return ctx.ui.err.export_text()


def stack_vpcs() -> list[dict[str, Any]]:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    return ec2.describe_vpcs(Filters=[{"Name": "tag:cdpoc:stack", "Values": [STACK]}])["Vpcs"]


@pytest.fixture
def ctx(make_context: Callable[..., Context]) -> Context:
    return make_context()


# ---------------------------------------------------------------- a held lock refuses


def test_a_held_lock_refuses_up_with_exit_4_naming_the_holder_and_nothing_is_created(ctx: Context) -> None:
    foreign(ctx)
    with pytest.raises(Locked) as refused:
        lifecycle.up(ctx)
    assert refused.value.exit_code == EXIT_LOCKED == 4
    message = refused.value.message
    for detail in ("stack t1 in us-east-1 is locked", "`cdpoc down`", "alice@ci-runner-7", "pid 4242 on ci-runner-7"):
        assert detail in message
    assert "arn:aws:sts::123456789012:assumed-role/ci/alice" in message
    assert f"since {NOW.isoformat(timespec='seconds')}" in message and "last heartbeat" in message
    assert "`cdpoc unlock`" in refused.value.hint and "15 min" in refused.value.hint
    assert ctx.clients.mutating_calls() == [] and stack_vpcs() == []
    held = lock_record()
    assert held is not None and held["holder"].run_id == "theirs" and held["version"] == 1


def test_two_concurrent_ups_build_one_stack_and_the_loser_is_told_who_holds_it(
    make_context: Callable[..., Context],
) -> None:
    first, second = make_context(), make_context()
    both_at_the_lock = threading.Barrier(2, timeout=WAIT)

    def meet_before_the_lock(context: Context) -> Callable[..., None]:
        """Both runs reach the lock's create together (once: the stack's own parameters follow)."""
        first_call = threading.Event()

        def meet(**_: Any) -> None:
            if not first_call.is_set():
                first_call.set()
                both_at_the_lock.wait()

        return meet

    outcomes: dict[int, BaseException | None] = {}

    def run(index: int, context: Context) -> None:
        context.clients.session.events.register("before-call.ssm.PutParameter", meet_before_the_lock(context))
        try:
            lifecycle.up(context)
            outcomes[index] = None
        except BaseException as exc:  # reported by the assertions below
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
    assert sorted(type(o).__name__ for o in outcomes.values()) == ["Locked", "NoneType"], outcomes
    loser = first if isinstance(outcomes[0], Locked) else second
    assert "is locked by another cdpoc run: `cdpoc up`" in str(outcomes[0] or outcomes[1])
    assert loser.clients.mutating_calls() == []  # the loser changed nothing of the stack
    assert [op for _, op in loser.clients.bookkeeping_calls if op != "GetCallerIdentity"] == [
        "PutParameter",
        "GetParameter",
    ]
    assert len(stack_vpcs()) == 1
    elbv2 = boto3.client("elbv2", region_name="us-east-1")
    assert [lb["LoadBalancerName"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]] == ["t1-alb"]
    groups = boto3.client("autoscaling", region_name="us-east-1").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert len(groups) == 1
    assert lock_record() is None  # the winner released it


# ---------------------------------------------------------------- released however the run ends


def test_the_lock_is_held_while_up_runs_and_released_when_it_succeeds(ctx: Context) -> None:
    seen: list[Any] = []
    original = ctx.graph

    def graph() -> Any:
        seen.append(lock_record())
        return original()

    ctx.graph = graph  # type: ignore[method-assign]
    lifecycle.up(ctx)
    held = seen[0]
    assert held is not None and held["holder"].command == "up" and held["holder"].pid > 0
    assert lock_record() is None
    tags = ssm().list_tags_for_resource  # the lock is gone, so check the tags on a fresh one
    with a_lock(ctx):
        assert tags(ResourceType="Parameter", ResourceId=LOCK)["TagList"] == [{"Key": "cdpoc:lock", "Value": "t1"}]


@pytest.mark.parametrize("failure", [AwsError("boom"), Cancelled("interrupted"), KeyboardInterrupt()])
def test_the_lock_is_released_on_error_and_on_ctrl_c(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    def fail(*_: Any, **__: Any) -> Any:
        assert lock_record() is not None
        raise failure

    monkeypatch.setattr(lifecycle, "make_plan", fail)
    with pytest.raises(type(failure)):
        lifecycle.up(ctx)
    assert lock_record() is None


def test_ctrl_c_in_the_graph_releases_the_lock(ctx: Context) -> None:
    ctx.run.cancel.set()  # what the first Ctrl-C does: nothing new starts, the run ends Cancelled
    with pytest.raises(Cancelled, match="interrupted"):
        lifecycle.up(ctx)
    assert lock_record() is None


# ---------------------------------------------------------------- stale locks


def test_a_lock_whose_heartbeat_expired_is_taken_over_with_a_message(ctx: Context) -> None:
    foreign(ctx, heartbeat=(NOW - timedelta(minutes=14)).isoformat())
    with pytest.raises(Locked):
        a_lock(ctx).acquire()
    remove_lock()
    foreign(ctx, heartbeat=(NOW - timedelta(minutes=16)).isoformat())
    with a_lock(ctx) as taken:
        held = lock_record()
        assert held is not None and taken.record is not None and held["holder"].run_id == taken.record.run_id
    warning = stderr(ctx)
    assert "taking over the lock of stack t1: it is stale (its last heartbeat is older than 15 min)" in warning
    assert "alice@ci-runner-7" in warning
    assert lock_record() is None


def dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(finished.stdout)
    assert not pid_alive(pid)
    return pid


def test_a_lock_of_a_dead_process_on_this_machine_is_taken_over_at_once(ctx: Context) -> None:
    here = a_lock(ctx)
    gone = dead_pid()
    foreign(ctx, host=here.host, boot=here.boot, pid=gone)  # heartbeat fresh: only the pid says it is stale
    with here:
        assert here.record is not None
    assert f"it is stale (its process {gone} on this machine ({here.host}) is no longer running)" in stderr(ctx)


def test_a_live_process_here_or_any_process_elsewhere_keeps_its_lock(ctx: Context) -> None:
    here = a_lock(ctx)
    foreign(ctx, host=here.host, boot=here.boot, pid=here.pid)  # alive: this very process
    with pytest.raises(Locked):
        here.acquire()
    remove_lock()
    foreign(ctx, host=here.host, boot="another-boot", pid=dead_pid())  # same name, another machine
    with pytest.raises(Locked):
        a_lock(ctx).acquire()


# ---------------------------------------------------------------- the heartbeat


def test_the_heartbeat_renews_our_record_and_never_overwrites_someone_elses(ctx: Context) -> None:
    now = [NOW]
    ours = StackLock(ctx.run, ctx.ui, "up", clock=lambda: now[0], heartbeat_every=3600)
    with ours:
        now[0] += timedelta(minutes=1)
        assert ours.beat()
        held = lock_record()
        assert held is not None and held["holder"].heartbeat == (NOW + timedelta(minutes=1)).isoformat()
        assert held["holder"].since == NOW.isoformat()

        remove_lock()  # someone ran `cdpoc unlock`, then another run took the lock
        theirs = foreign(ctx)
        assert not ours.beat()
        held = lock_record()
        assert held is not None and held["holder"] == theirs and held["version"] == 1
        assert ours.lost
    assert lock_record() is not None  # the release left their lock alone
    warnings = stderr(ctx)
    assert "this run no longer holds the lock of stack t1 (it is now held by `cdpoc down`" in warnings
    assert "was taken over while this run held it" in warnings


def test_the_heartbeat_thread_beats_until_released(ctx: Context) -> None:
    beats = threading.Semaphore(0)
    held = StackLock(ctx.run, ctx.ui, "up", heartbeat_every=0.01)
    original = held.beat

    def beat() -> bool:
        renewed = original()
        beats.release()
        return renewed

    held.beat = beat  # type: ignore[method-assign]
    with held:
        assert beats.acquire(timeout=WAIT) and beats.acquire(timeout=WAIT)
        record = lock_record()
        assert record is not None and record["version"] >= 2
    assert held._thread is not None
    held._thread.join(WAIT)
    assert not held._thread.is_alive() and lock_record() is None


# ---------------------------------------------------------------- the CLI: exit 4, unlock, read-only commands


@pytest.fixture
def cli(ctx: Context) -> Iterator[Callable[..., tuple[int, str]]]:
    def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["--name", STACK, *args], input=input)
        return result.exit_code, result.output

    yield invoke


def test_cli_up_on_a_locked_stack_exits_4_and_says_what_to_do(
    ctx: Context, cli: Callable[..., tuple[int, str]]
) -> None:
    foreign(ctx)
    code, out = cli("up")
    assert code == 4, out
    assert "error: stack t1 in us-east-1 is locked by another cdpoc run: `cdpoc down` run by alice@ci-runner-7" in out
    assert "hint: Wait for that run to end" in out and "Traceback" not in out
    assert stack_vpcs() == []


def test_unlock_asks_shows_the_holder_and_removes_the_lock(ctx: Context, cli: Callable[..., tuple[int, str]]) -> None:
    code, out = cli("unlock")
    assert code == 0 and "Stack t1 in us-east-1 is not locked" in out and "nothing to remove" in out

    foreign(ctx)
    code, out = cli("unlock", input="n\n")
    assert code == 1, out
    assert "is locked by `cdpoc down` run by alice@ci-runner-7" in out and "Remove this lock?" in out
    assert "unlock cancelled: the lock was left in place" in out
    assert lock_record() is not None

    code, out = cli("unlock", input="y\n")
    assert code == 0, out
    assert "Removed the lock /cdpoc-locks/t1, held by `cdpoc down` run by alice@ci-runner-7" in out
    assert lock_record() is None

    foreign(ctx)
    code, out = cli("unlock", "--yes")
    assert code == 0 and "Removed the lock" in out and "Remove this lock?" not in out
    assert lock_record() is None


def test_plan_and_status_run_on_a_locked_stack_without_touching_the_lock(
    ctx: Context, cli: Callable[..., tuple[int, str]]
) -> None:
    theirs = foreign(ctx)
    code, out = cli("plan")
    assert code == 0 and "Plan:" in out, out
    code, out = cli("status")
    assert code == 3 and "locked" not in out, out  # nothing exists yet: 3, not the lock's 4
    lifecycle.plan(ctx)
    assert ctx.clients.bookkeeping_calls == []
    assert lock_record() == {"holder": theirs, "version": 1}


# ---------------------------------------------------------------- down never sweeps nor counts the lock


def test_down_never_deletes_the_lock_nor_reports_it_as_a_leftover(ctx: Context) -> None:
    lifecycle.up(ctx)
    theirs = foreign(ctx)
    graph = ctx.graph()
    found = find_everything(ctx.run, graph, ctx.handlers)
    assert not [key for key, item in found.items() if item.found.id == LOCK]
    ctx.run.forget()
    assert LOCK not in "".join(tagged_arns(ctx.run))
    remove_lock()

    deleted = lifecycle.down(ctx, yes=True, confirm=lambda question: True)  # holds the lock all the way
    assert deleted and not [text for text in deleted.values() if "cdpoc-locks" in text]
    ctx.run.forget()
    assert leftovers(ctx.run, graph, ctx.handlers, lambda: tagged_arns(ctx.run)) == []
    foreign(ctx, **asdict(theirs))  # another run's lock stays out of the scan too
    ctx.run.forget()
    assert leftovers(ctx.run, graph, ctx.handlers, lambda: tagged_arns(ctx.run)) == []
    assert lock_record() == {"holder": theirs, "version": 1}


MUTATING = {
    "up": lambda ctx: lifecycle.up(ctx),
    "down": lambda ctx: lifecycle.down(ctx, yes=True, confirm=lambda question: True),
    "push-app": lambda ctx: rollout.push_app(ctx, Path("no-such-bundle"), None, wait=False, timeout=1.0),
    "push-app's push": lambda ctx: rollout.push_bundle(ctx, Path("no-such-bundle"), None),
}


@pytest.mark.parametrize("command", sorted(MUTATING))
def test_every_mutating_command_is_refused_while_another_run_holds_the_lock(ctx: Context, command: str) -> None:
    foreign(ctx)
    with pytest.raises(Locked, match="is locked by another cdpoc run"):
        MUTATING[command](ctx)  # before anything else: the bundle is not even looked at
    assert ctx.clients.mutating_calls() == []


def test_a_lost_answer_to_our_own_create_is_our_lock(ctx: Context) -> None:
    """The create took effect, its answer was lost and botocore's retry was refused (ParameterAlreadyExists):
    the record holds our own run id, so the lock is ours, not another run's."""
    from faults import LostAnswer

    fault = LostAnswer(ctx.clients, "ssm:PutParameter")
    with a_lock(ctx) as held:
        assert fault.lost == 1
        record = lock_record()
        assert record is not None and held.record is not None and record["holder"].run_id == held.record.run_id
    assert lock_record() is None
