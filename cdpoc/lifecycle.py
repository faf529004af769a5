"""The work behind `plan`, `up` and `down`: one function each, given a Context."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from cdpoc.apply import apply_plan, refuse_conflicts
from cdpoc.aws.account import tagged_arns
from cdpoc.context import Context, holding_lock
from cdpoc.cost import describe_cost, hourly_cost
from cdpoc.errors import EXIT_FAILED, EXIT_OK, CdpocError, Declined, LeftoversFound
from cdpoc.graph import Graph
from cdpoc.keep import describe_data, find_kept, keep, kept_report
from cdpoc.model import Observed, Plan, duplicated_component, is_extra, owner_text
from cdpoc.planner import make_plan
from cdpoc.preflight import check_before_creating
from cdpoc.render import plan_document, plan_lines, plan_summary, plan_table, stack_outputs
from cdpoc.stack.parts import BASTION
from cdpoc.sweeper import Doomed, is_kept, leftovers, spare_data, survey, sweep


def show_plan(ctx: Context, plan: Plan) -> None:
    if ctx.ui.interactive:
        ctx.ui.print(plan_table(plan, ctx.describe))
    else:
        for line in plan_lines(plan, ctx.describe):
            ctx.ui.say(line)
    ctx.ui.say(plan_summary(plan), style="bold")


def plan(ctx: Context) -> Plan:
    """Read-only: what `up` would create, change, or leave alone."""
    ctx.ui.say(f"Stack {ctx.settings.name} in {ctx.region_label}, config {ctx.config_source or 'defaults only'}")
    check_before_creating(ctx)
    result = make_plan(ctx.run, ctx.graph(), ctx.handlers)
    if ctx.ui.json_mode:
        document = plan_document(result, ctx.describe, ctx.settings.name, ctx.settings.region)
        ctx.ui.out(json.dumps(document, indent=2))
    else:
        show_plan(ctx, result)
    return result


# `plan --detailed-exitcode`, as Terraform's: nothing to do, or `up` has work (creates, updates, duplicates
# to remove). A plan `up` would refuse (a conflict) is a failure.
PLAN_NO_CHANGES = EXIT_OK
PLAN_HAS_CHANGES = 2


def detailed_exit_code(ctx: Context, plan: Plan) -> int:
    """What `plan --detailed-exitcode` exits with for this plan."""
    if plan.conflicts:
        return EXIT_FAILED
    graph = ctx.graph()
    duplicates = any(is_extra(f.key) and duplicated_component(f.key) in graph.resources for f in plan.extras)
    return PLAN_HAS_CHANGES if plan.has_work or duplicates else PLAN_NO_CHANGES


# How long a duplicate may be refused (DependencyViolation) before `up` reports it instead.
DUPLICATE_BUDGET = 60.0


@holding_lock("up")
def up(ctx: Context, parallelism: int = 8) -> dict[str, Observed]:
    """Create what is missing and fix what drifted; a no-op (no mutating call) when all is in place."""
    check_before_creating(ctx)
    graph = ctx.graph()
    ctx.ui.say(f"Stack {ctx.settings.name} in {ctx.region_label}, zones {', '.join(ctx.run.zones)}")
    current = make_plan(ctx.run, graph, ctx.handlers)
    refuse_conflicts(current)
    if not current.has_work:
        ctx.ui.say(plan_summary(current), style="bold")
        results = {s.resource.key: s.found for s in current.steps if s.found is not None}
    else:
        ctx.ui.say(plan_summary(current))
        started = time.monotonic()
        labels = {s.resource.key: ctx.handlers[s.resource.kind].label for s in current.steps}
        with ctx.ui.progress(f"up: {ctx.settings.name}", labels) as progress:
            results = apply_plan(ctx.run, current, ctx.handlers, parallelism=parallelism, on_event=progress)
        counts = current.counts()
        ctx.ui.say(
            f"Up to date in {time.monotonic() - started:.1f}s: {counts['create']} created, {counts['update']} updated, "
            f"{counts['exists']} unchanged.",
            style="bold green",
        )
    remove_duplicates(ctx, graph, current, parallelism)
    outputs = stack_outputs(results, ctx.settings.operator.key_name)
    for label, value in outputs:
        ctx.ui.say(f"{label + ':':20} {value}")
    if not ctx.settings.operator.key_name and BASTION.found_in(results) is not None:
        ctx.ui.say("No operator.key_name is set: SSH needs a key pair; SSM Session Manager reaches the app hosts.")
    hourly = hourly_cost(graph.resources.values())
    ctx.ui.say(f"Running cost: {describe_cost(hourly)}.")
    ctx.ui.report(
        stack=ctx.settings.name,
        region=ctx.settings.region,
        counts={key: count for key, count in current.counts().items() if key != "differs"},
        outputs=dict(outputs),
        cost_per_hour_usd=round(hourly, 4),
    )
    return results


def remove_duplicates(ctx: Context, graph: Graph, plan: Plan, parallelism: int) -> None:
    """Delete second resources of declared components the plan found (a lost answer whose twin was not yet
    listed when its create looked, a run stopped between a create and that look). One still in use is
    refused by AWS: it is reported, and the stack's own resource is never the one deleted."""
    twins = {
        found.key: Doomed(found, frozenset())
        for found in plan.extras
        if is_extra(found.key) and duplicated_component(found.key) in graph.resources
    }
    if not twins:
        return
    try:
        removed = sweep(ctx.run, graph, ctx.handlers, twins, parallelism=parallelism, budget=DUPLICATE_BUDGET)
    except CdpocError as exc:
        ctx.ui.warn(f"a duplicate resource is still in use and was left in place: {exc.message}")
        return
    ctx.ui.say(f"Removed {len(removed)} duplicate resource(s): " + "; ".join(removed.values()))


@holding_lock("down")
def down(
    ctx: Context, *, yes: bool, confirm: Callable[[str], bool], parallelism: int = 8, keep_data: bool = False
) -> dict[str, str]:
    """Delete every resource of the stack in dependency order, then scan for anything left.

    keep_data: keep the uploads bucket, the MongoDB passwords and a snapshot of the MongoDB data (cdpoc.keep).
    """
    graph = ctx.graph()
    found = survey(ctx.run, graph, ctx.handlers)
    for key, other in sorted(found.not_ours.items()):
        handler = ctx.handlers[other.kind]
        ctx.ui.say(
            f"Left alone: {handler.label} {handler.describe(other)} ({key}) belongs to {owner_text(other.owner)}, "
            "not to this stack."
        )
    doomed, spared = spare_data(graph, found.doomed, keep_data)
    deleted: dict[str, str] = {}
    if not doomed:
        ctx.ui.say(f"Nothing of stack {ctx.settings.name} exists in {ctx.region_label}.")
        if keep_data:
            keep(ctx, graph, doomed, spared)
    else:
        ctx.ui.say(f"Stack {ctx.settings.name} in {ctx.region_label}: {len(doomed)} resource(s) to delete:")
        for key, item in sorted(doomed.items()):
            handler = ctx.handlers[item.found.kind]
            ctx.ui.say(f"  {key:22} {handler.label}: {handler.describe(item.found)}")
        for line in describe_data(ctx, graph, doomed, spared, keep_data):
            ctx.ui.say(line)
        if not yes and not confirm(f"Delete these {len(doomed)} resources of stack {ctx.settings.name}?"):
            raise Declined("down cancelled: nothing was deleted.")
        if keep_data:
            keep(ctx, graph, doomed, spared)
        labels = {key: ctx.handlers[item.found.kind].label for key, item in doomed.items()}
        started = time.monotonic()
        with ctx.ui.progress(f"down: {ctx.settings.name}", labels) as progress:
            deleted = sweep(ctx.run, graph, ctx.handlers, doomed, parallelism=parallelism, on_event=progress)
        ctx.ui.say(f"Deleted {len(deleted)} resource(s) in {time.monotonic() - started:.1f}s.")
    left = leftovers(ctx.run, graph, ctx.handlers, lambda: tagged_arns(ctx.run), spare=is_kept)
    if left:
        ctx.ui.report(stack=ctx.settings.name, region=ctx.settings.region, deleted=len(deleted), leftovers=left)
        raise LeftoversFound(
            f"{len(left)} resource(s) tagged cdpoc:stack={ctx.settings.name} remain:\n  " + "\n  ".join(left),
            "Re-run `cdpoc down`; if they stay, delete them by hand (they may be used by something outside the stack).",
        )
    kept = find_kept(ctx, graph)
    ctx.ui.report(
        stack=ctx.settings.name, region=ctx.settings.region, deleted=len(deleted), leftovers=0, kept=len(kept)
    )
    but = f" but {len(kept)} kept item(s), tagged cdpoc:kept=true" if kept else ""
    ctx.ui.say(
        f"Leftover scan: nothing tagged cdpoc:stack={ctx.settings.name} remains{but}. Cost now {describe_cost(0.0)}.",
        style="bold green",
    )
    for line in kept_report(ctx, kept) if kept else ():
        ctx.ui.say(line)
    return deleted
