"""`cdpoc demo`: the whole lifecycle against an in-process sandbox, checking that each step did its job.

up, up again (no mutating call), plan (nothing to do), status, push-app --wait, push-app again
(nothing to push), a changed revision followed with status during and after, a deployment the
sandbox is told to fail (the failing hook and its log must be reported), then down and the leftover
scan. The sandbox simulates the rollout (see cdpoc/sandbox/simulation.py); nothing reaches AWS.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from cdpoc import lifecycle, rollout, status
from cdpoc.bundle import PushResult
from cdpoc.context import Context, Options
from cdpoc.errors import Cancelled, CdpocError
from cdpoc.planner import make_plan
from cdpoc.sandbox.server import FAKE_CREDENTIALS, Sandbox, proxy_settings
from cdpoc.stack.site import web_dir
from cdpoc.statuscollect import collect
from cdpoc.statusprobe import probe_http
from cdpoc.statussnapshot import StatusSnapshot
from cdpoc.ui import Ui

DEMO_STACK = "cdpoc-demo"
# The sandbox serves any region; this one is used only when neither flags, config nor AWS settings name one.
DEMO_REGION = ("us-east-1", "the demo's default")
# Seconds each simulated lifecycle event takes: long enough to watch, short enough for a demo.
STEP_SECONDS = 0.15
ROLLOUT_TIMEOUT = 300.0
FAILING_HOOK = "ValidateService"


class DemoFailed(CdpocError):
    pass


def revised_bundle(source: Path, into: Path, revision: str) -> Path:
    """A copy of the bundle with a REVISION file: a real change for push-app to commit."""
    bundle = into / revision
    shutil.copytree(source, bundle, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (bundle / "REVISION").write_text(f"{revision}\n")
    return bundle


class Demo:
    def __init__(self, ui: Ui, options: Options) -> None:
        self.ui = ui
        self.options = options
        self.results: list[tuple[str, bool, str, float]] = []
        self.bundle = web_dir().parent

    def step(self, title: str, action: Callable[[Context], str]) -> None:
        self.ui.say("")
        self.ui.say(f"== {title}", style="bold cyan")
        ctx = Context.build(self.options, self.ui)
        started = time.monotonic()
        try:
            verdict, ok = action(ctx), True
        except Cancelled:
            raise  # Ctrl-C ends the demo (exit 130), not just this step
        except CdpocError as exc:
            self.ui.error(exc)
            verdict, ok = exc.message.splitlines()[0], False
        self.results.append((title, ok, verdict, time.monotonic() - started))

    # --- the steps -------------------------------------------------------------------------------

    def first_up(self, ctx: Context) -> str:
        created = lifecycle.up(ctx)
        return f"{len(created)} resources in place, {len(ctx.clients.mutating_calls())} mutating calls"

    def second_up(self, ctx: Context) -> str:
        lifecycle.up(ctx)
        mutating = ctx.clients.mutating_calls()
        if mutating:
            raise DemoFailed(f"second up made {len(mutating)} mutating call(s): {mutating[:5]}")
        return "no changes, 0 mutating calls"

    def clean_plan(self, ctx: Context) -> str:
        lifecycle.plan(ctx)
        if make_plan(ctx.run, ctx.graph(), ctx.handlers).has_work:
            raise DemoFailed("plan after up still has work")
        return "nothing to do"

    def show_status(self, ctx: Context) -> StatusSnapshot:
        snapshot = collect(ctx, probe=probe_http)  # through the sandbox as proxy
        status.print_snapshot(ctx, snapshot)
        return snapshot

    def status_before(self, ctx: Context) -> str:
        snapshot = self.show_status(ctx)
        if snapshot.fleet is None or len(snapshot.fleet.instances) != ctx.settings.compute.desired_capacity:
            raise DemoFailed("status does not show the fleet")
        return f"{len(snapshot.fleet.instances)} instances, no deployment yet"

    def push_and_wait(self, ctx: Context) -> str:
        result = rollout.push_app(ctx, self.bundle, "cdpoc demo: first revision", wait=True, timeout=ROLLOUT_TIMEOUT)
        return f"commit {result.revision[:12]} deployed to every instance"

    def push_unchanged(self, ctx: Context) -> str:
        result = rollout.push_app(ctx, self.bundle, None, wait=False, timeout=ROLLOUT_TIMEOUT)
        if result.changed:
            raise DemoFailed(f"an unchanged bundle made commit(s) {result.commits}")
        return "nothing to push, 0 commits"

    def status_during_and_after(self, ctx: Context, bundle: Path) -> str:
        result: PushResult = rollout.push_bundle(ctx, bundle, "cdpoc demo: second revision")
        self.ui.say("-- status while it rolls out:", style="bold")
        during = self.show_status(ctx)
        rollout.follow_push(ctx, result, ROLLOUT_TIMEOUT)
        self.ui.say("-- status after:", style="bold")
        after = self.show_status(ctx)
        if after.deployment is None or after.deployment.status != "Succeeded":
            raise DemoFailed("status after the rollout does not show a successful deployment")
        seen = during.deployment.status if during.deployment else (during.pipeline and "pipeline running")
        return f"during: {seen or 'starting'}; after: {after.deployment.id} Succeeded"

    def failing_push(self, ctx: Context, bundle: Path) -> str:
        from cdpoc.sandbox.cicd import SIMULATION

        SIMULATION.fail_next_deployment(FAILING_HOOK, "curl: (7) Failed to connect to 127.0.0.1 port 80")
        self.ui.say(f"(the sandbox is told to fail the next deployment at {FAILING_HOOK})")
        try:
            rollout.push_app(ctx, bundle, "cdpoc demo: a revision that fails", wait=True, timeout=ROLLOUT_TIMEOUT)
        except rollout.DeploymentFailed as exc:
            if FAILING_HOOK not in exc.message:
                raise DemoFailed(f"the failure report does not name {FAILING_HOOK}: {exc.message}") from exc
            self.ui.say("push-app reported (exit 1 for a user):", style="bold")
            self.ui.error(exc)
            self.show_status(ctx)
            return f"failed at {FAILING_HOOK} as asked, with the script and its log"
        raise DemoFailed("the deployment the sandbox was told to fail succeeded")

    def teardown(self, ctx: Context) -> str:
        deleted = lifecycle.down(ctx, yes=True, confirm=lambda question: True)
        return f"{len(deleted)} deleted, leftover scan empty"

    # ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        with tempfile.TemporaryDirectory(prefix="cdpoc-demo-") as scratch:
            second = revised_bundle(self.bundle, Path(scratch), "demo-2")
            third = revised_bundle(self.bundle, Path(scratch), "demo-3")
            self.step("up: build the stack", self.first_up)
            self.step("up again: must change nothing", self.second_up)
            self.step("plan: must show nothing to do", self.clean_plan)
            self.step("status: the fleet before any deployment", self.status_before)
            self.step("push-app --wait: deploy the bundle", self.push_and_wait)
            self.step("push-app again: nothing to push", self.push_unchanged)
            self.step("a new revision: status during and after", lambda ctx: self.status_during_and_after(ctx, second))
            self.step("a failing revision: hook and log reported", lambda ctx: self.failing_push(ctx, third))
            self.step("down: delete everything and scan for leftovers", self.teardown)

    def summary(self) -> None:
        self.ui.say("")
        self.ui.say("Demo summary", style="bold")
        for title, ok, verdict, seconds in self.results:
            line = f"  {'ok  ' if ok else 'FAIL'} {title:48} {seconds:6.1f}s  {verdict}"
            self.ui.say(line, style="green" if ok else "bold red")
        failed = [title for title, ok, _, _ in self.results if not ok]
        if failed:
            raise DemoFailed(f"{len(failed)} demo step(s) failed: {', '.join(failed)}")
        total = sum(seconds for *_, seconds in self.results)
        self.ui.say(f"Demo finished in {total:.0f}s: every step did what it should.", style="bold green")
        self.ui.say("")
        self.ui.say("What to try next:", style="bold")
        for line in NEXT_STEPS:
            self.ui.say(f"  {line}")


# What the demo's last lines suggest: the same lifecycle step by step, then a real account.
NEXT_STEPS = (
    "cdpoc sandbox                      a local AWS endpoint that stays up; it prints the settings to use",
    "cdpoc up --endpoint-url <its URL>  then push-app --wait, status --watch, logs and down, one at a time",
    "cdpoc plan --profile <yours>       on a real account: what `up` would create, read-only",
    "cdpoc up --profile <yours>         build it there; `cdpoc down` removes everything and proves it",
)


@contextlib.contextmanager
def proxied_through(endpoint: str) -> Iterator[None]:
    """HTTP_PROXY/NO_PROXY set to reach the sandbox's load balancers (status's probe), then put back."""
    settings = proxy_settings(endpoint)
    before = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(ui: Ui, options: Options) -> None:
    # The demo must never reach a real account: fake credentials, no profile, the sandbox endpoint only.
    os.environ.update(FAKE_CREDENTIALS)
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(variable, None)
    with Sandbox() as sandbox, proxied_through(sandbox.endpoint):
        from cdpoc.sandbox.cicd import SIMULATION
        from cdpoc.sandbox.simulation import FAST

        SIMULATION.use_timing(FAST)  # NAT gateway, ALB, boots and health checks in a fraction of AWS's time
        SIMULATION.step_seconds = STEP_SECONDS
        ui.say(f"cdpoc demo: sandbox at {sandbox.endpoint} (nothing here touches AWS)", style="bold")
        demo_options = replace(
            options,
            name=options.name or DEMO_STACK,
            profile=None,
            endpoint_url=sandbox.endpoint,
            fallback_region=DEMO_REGION,
        )
        demo = Demo(ui, demo_options)
        try:
            demo.run()
        finally:
            SIMULATION.reset()
    demo.summary()
