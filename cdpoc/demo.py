"""`cdpoc demo`: the whole lifecycle against an in-process sandbox, checking that each step did its job."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace

from cdpoc import lifecycle
from cdpoc.context import Context, Options
from cdpoc.errors import CdpocError
from cdpoc.planner import make_plan
from cdpoc.sandbox.server import FAKE_CREDENTIALS, Sandbox
from cdpoc.ui import Ui

DEMO_STACK = "cdpoc-demo"


class DemoFailed(CdpocError):
    pass


def run_demo(ui: Ui, options: Options) -> None:
    # The demo must never reach a real account: fake credentials, no profile, the sandbox endpoint only.
    os.environ.update(FAKE_CREDENTIALS)
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(variable, None)
    with Sandbox() as sandbox:
        ui.say(f"cdpoc demo: sandbox at {sandbox.endpoint} (nothing here touches AWS)", style="bold")
        demo_options = replace(options, name=options.name or DEMO_STACK, profile=None, endpoint_url=sandbox.endpoint)
        results: list[tuple[str, bool, str, float]] = []

        def step(title: str, action: Callable[[Context], str]) -> None:
            ui.say("")
            ui.say(f"== {title}", style="bold cyan")
            ctx = Context.build(demo_options, ui)
            started = time.monotonic()
            try:
                verdict = action(ctx)
                ok = True
            except CdpocError as exc:
                ui.error(exc)
                ok, verdict = False, exc.message.splitlines()[0]
            results.append((title, ok, verdict, time.monotonic() - started))

        def first_up(ctx: Context) -> str:
            created = lifecycle.up(ctx)
            return f"{len(created)} resources in place, {len(ctx.clients.mutating_calls())} mutating calls"

        def second_up(ctx: Context) -> str:
            lifecycle.up(ctx)
            mutating = ctx.clients.mutating_calls()
            if mutating:
                raise DemoFailed(f"second up made {len(mutating)} mutating call(s): {mutating[:5]}")
            return "no changes, 0 mutating calls"

        def clean_plan(ctx: Context) -> str:
            if make_plan(ctx.run, ctx.graph(), ctx.handlers).has_work:
                raise DemoFailed("plan after up still has work")
            lifecycle.plan(ctx)
            return "nothing to do"

        def teardown(ctx: Context) -> str:
            deleted = lifecycle.down(ctx, yes=True, confirm=lambda question: True)
            return f"{len(deleted)} deleted, leftover scan empty"

        step("up: build the stack", first_up)
        step("up again: must change nothing", second_up)
        step("plan: must show nothing to do", clean_plan)
        step("down: delete everything and scan for leftovers", teardown)

    ui.say("")
    ui.say("Demo summary", style="bold")
    for title, ok, verdict, seconds in results:
        ui.say(
            f"  {'ok  ' if ok else 'FAIL'} {title:48} {seconds:6.1f}s  {verdict}",
            style="green" if ok else "bold red",
        )
    failed = [title for title, ok, _, _ in results if not ok]
    if failed:
        raise DemoFailed(f"{len(failed)} demo step(s) failed: {', '.join(failed)}")
    ui.say("Demo finished: every step did what it should.", style="bold green")
