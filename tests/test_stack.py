"""The whole stack against moto: down's order follows the dependency graph, and the leftover scan sees
every kind of resource (including those the tagging API does not return)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from cdpoc import lifecycle
from cdpoc.aws.account import tagged_arns
from cdpoc.context import Context
from cdpoc.model import Observed
from cdpoc.sweeper import leftovers

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def ctx(make_context: Callable[..., Context]) -> Context:
    return make_context(name="whole", pipeline={"repository": "whole-repo"}, operator={"email": "ops@example.com"})


def test_down_deletes_nothing_before_what_depends_on_it(ctx: Context) -> None:
    lifecycle.up(ctx)
    graph = ctx.graph()
    order: list[tuple[str, str]] = []  # ("start" | "end", key)
    lock = threading.Lock()

    class Recording:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def delete(self, run: Any, found: Observed) -> None:
            with lock:
                order.append(("start", found.key))
            self.inner.delete(run, found)
            with lock:
                order.append(("end", found.key))

    ctx.handlers = {kind: Recording(handler) for kind, handler in ctx.handlers.items()}  # type: ignore[misc]
    # Each profile lets go of its role before it is deleted; the app hosts' and MongoDB's go in parallel,
    # so this is checked per profile, not across the kind.
    profile_calls: list[tuple[str, str]] = []
    for operation in ("RemoveRoleFromInstanceProfile", "DeleteInstanceProfile"):
        ctx.run.client("iam").meta.events.register(
            f"provide-client-params.iam.{operation}",
            lambda params, operation=operation, **_: profile_calls.append((operation, params["InstanceProfileName"])),
        )
    start = len(ctx.clients.calls)
    deleted = lifecycle.down(ctx, yes=True, confirm=lambda question: False)
    assert set(deleted) == set(graph.resources)

    position = {(event, key): index for index, (event, key) in enumerate(order)}
    for key in graph.resources:
        for needed in graph.ancestors(key):
            # `key` uses `needed`: it must be gone before the deletion of `needed` starts.
            assert position[("end", key)] < position[("start", needed)], f"{needed} deleted before {key} was gone"

    calls = [op for _, op in ctx.clients.calls[start:]]

    def last(operation: str) -> int:
        return max(i for i, op in enumerate(calls) if op == operation)

    def first(operation: str) -> int:
        return min(i for i, op in enumerate(calls) if op == operation)

    # The AWS calls behind some of those edges, where one call each side stands for the whole kind.
    for before, after in [
        ("RemoveTargets", "DeleteRule"),
        ("DeleteRule", "DeletePipeline"),
        ("DeletePipeline", "DeleteDeploymentGroup"),
        ("DeleteDeploymentGroup", "DeleteApplication"),
        ("DeleteDeploymentGroup", "DeleteAutoScalingGroup"),
        ("DeleteAutoScalingGroup", "DeleteLaunchTemplate"),
        ("DeleteAutoScalingGroup", "DeleteTargetGroup"),
        ("DeleteListener", "DeleteTargetGroup"),
        ("DeleteNatGateway", "DetachInternetGateway"),
        ("DeleteSubnet", "DeleteVpc"),
    ]:
        assert last(before) < first(after), f"{before} must come before {after}"
    profiles = {name for _, name in profile_calls}
    assert len(profiles) == 2
    for name in profiles:
        removed = max(i for i, call in enumerate(profile_calls) if call == ("RemoveRoleFromInstanceProfile", name))
        assert removed < profile_calls.index(("DeleteInstanceProfile", name)), name

    assert leftovers(ctx.run, graph, ctx.handlers, lambda: tagged_arns(ctx.run)) == []


def test_leftover_scan_sees_every_resource_of_the_stack(ctx: Context) -> None:
    """With everything still up, the scan must name every declared resource: ASG, launch template,
    EIPs, instances, IAM and parameters included, which the tagging API does not (all) return."""
    lifecycle.up(ctx)
    graph = ctx.graph()
    found = leftovers(ctx.run, graph, ctx.handlers, lambda: tagged_arns(ctx.run))
    missing = [key for key in graph.resources if not any(line.endswith(f"({key})") for line in found)]
    assert missing == []
    kinds = {graph[key].kind for key in graph.resources}
    assert {"autoscaling_group", "launch_template", "elastic_ip", "instance", "iam_role", "ssm_parameter"} <= kinds
    lifecycle.down(ctx, yes=True, confirm=lambda question: False)
