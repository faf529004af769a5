"""Convergence from what a real account does to a run: a lost answer at every kind of mutating call of
`up`, and a hard stop (SIGKILL) at every kind of call of `up` and of `down`.

Each trial is a stack of its own in one moto session. After the fault, the next `up` must end with
exactly one of each resource (no extra, no drift: a clean plan), and the next `down` with nothing left.
The full sweep over every call (not just the first of each kind) is benchmarks/convergence.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cdpoc_testing import FAST_WAITS, numbered_context, recording_ui
from faults import KillAfter, Killed, LostAnswer, Recorder

from cdpoc import lifecycle
from cdpoc.aws.account import tagged_arns
from cdpoc.context import Context, Options
from cdpoc.lock import unlock
from cdpoc.model import is_extra
from cdpoc.planner import make_plan
from cdpoc.sweeper import leftovers

pytestmark = pytest.mark.usefixtures("moto_session")

# The stack lock's own calls (create and release) are the same operations as the stack's parameters'.
LOCK_CALLS = {"ssm:PutParameter", "ssm:DeleteParameter"}

# Every kind of mutating call a first `up` of the default stack makes (test_the_lists_are_complete
# keeps these in step with the code).
UP_OPERATIONS = (
    "autoscaling:CreateAutoScalingGroup",
    "autoscaling:PutNotificationConfiguration",
    "autoscaling:PutScalingPolicy",
    "codecommit:CreateRepository",
    "codedeploy:CreateApplication",
    "codedeploy:CreateDeploymentGroup",
    "codepipeline:CreatePipeline",
    "ec2:AllocateAddress",
    "ec2:AssociateAddress",
    "ec2:AssociateRouteTable",
    "ec2:AttachInternetGateway",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateInternetGateway",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateNatGateway",
    "ec2:CreateNetworkAcl",
    "ec2:CreateNetworkAclEntry",
    "ec2:CreateRoute",
    "ec2:CreateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:CreateSubnet",
    "ec2:CreateVpc",
    "ec2:CreateVpcEndpoint",
    "ec2:ModifyVpcAttribute",
    "ec2:ReplaceNetworkAclAssociation",
    "ec2:RunInstances",
    "elbv2:CreateListener",
    "elbv2:CreateLoadBalancer",
    "elbv2:CreateTargetGroup",
    "elbv2:ModifyTargetGroupAttributes",
    "events:PutRule",
    "events:PutTargets",
    "iam:AddRoleToInstanceProfile",
    "iam:AttachRolePolicy",
    "iam:CreateInstanceProfile",
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "logs:CreateLogGroup",
    "logs:PutRetentionPolicy",
    "s3:CreateBucket",
    "s3:PutBucketCors",
    "s3:PutBucketEncryption",
    "s3:PutBucketPolicy",
    "s3:PutBucketVersioning",
    "s3:PutBucketWebsite",
    "s3:PutObject",
    "s3:PutPublicAccessBlock",
    "sns:CreateTopic",
    "ssm:PutParameter",
)


# Every kind of mutating call a `down` of the default stack makes.
DOWN_OPERATIONS = (
    "autoscaling:DeleteAutoScalingGroup",
    "codecommit:DeleteRepository",
    "codedeploy:DeleteApplication",
    "codedeploy:DeleteDeploymentGroup",
    "codepipeline:DeletePipeline",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteLaunchTemplate",
    "ec2:DeleteNatGateway",
    "ec2:DeleteNetworkAcl",
    "ec2:DeleteRouteTable",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSubnet",
    "ec2:DeleteVpc",
    "ec2:DeleteVpcEndpoints",
    "ec2:DetachInternetGateway",
    "ec2:DisassociateAddress",
    "ec2:DisassociateRouteTable",
    "ec2:ReleaseAddress",
    "ec2:ReplaceNetworkAclAssociation",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:TerminateInstances",
    "elbv2:DeleteListener",
    "elbv2:DeleteLoadBalancer",
    "elbv2:DeleteTargetGroup",
    "events:DeleteRule",
    "events:RemoveTargets",
    "iam:DeleteInstanceProfile",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:RemoveRoleFromInstanceProfile",
    "logs:DeleteLogGroup",
    "s3:DeleteBucket",
    "s3:DeleteObjects",
    "sns:DeleteTopic",
    "ssm:DeleteParameter",
)


# Each trial is one to three whole ups and downs: CI tries a spread sample of the kinds plus every kind that
# once failed; CDPOC_CONVERGENCE=all tries every kind, and benchmarks/convergence.py every call.
EVERY_KIND = os.environ.get("CDPOC_CONVERGENCE") == "all"
# Lost answers on creates without a client token (a second resource), and an association id that was gone.
ONCE_FAILED_LOST = (
    "ec2:AllocateAddress",
    "ec2:CreateInternetGateway",
    "ec2:CreateVpc",
    "ec2:ReplaceNetworkAclAssociation",
)
# down stopped while the NAT gateway held its address; before the VPC endpoint went (its client token).
ONCE_FAILED_DOWN = ("ec2:DeleteInternetGateway", "ec2:DeleteNatGateway")


def sample(operations: tuple[str, ...], stride: int, once_failed: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every `stride`-th kind and the kinds that once failed, in the list's order; every kind with EVERY_KIND."""
    if EVERY_KIND:
        return operations
    chosen = set(operations[::stride]) | set(once_failed)
    return tuple(op for op in operations if op in chosen)


KILL_UP = sample(UP_OPERATIONS, 7)
KILL_DOWN = sample(DOWN_OPERATIONS, 7, ONCE_FAILED_DOWN)
LOST = sample(UP_OPERATIONS, 6, ONCE_FAILED_LOST)


def killed(ctx: Context) -> None:
    """What a SIGKILL leaves: the lock of the dead run, which the next run on that machine takes over
    (its pid is gone); here the process lives on, so the lock is removed as `cdpoc unlock --yes` would."""
    unlock(ctx.run, ctx.ui, yes=True, confirm=lambda question: True)


def again(first: Context) -> Context:
    """A new run of the same stack: new clients, nothing remembered from the first."""
    return Context.build(Options(config=first_config(first)), recording_ui(), waits=FAST_WAITS)


def first_config(ctx: Context) -> Path:
    return Path(ctx.config_source)


def assert_exactly_one_of_each(ctx: Context) -> None:
    """A clean plan (nothing to create, change or refuse) and no second resource of any component."""
    plan = make_plan(ctx.run, ctx.graph(), ctx.handlers)
    pending = [
        (s.resource.key, s.action.value, [c.text for c in s.changes]) for s in plan.steps if s.action.value != "exists"
    ]
    assert pending == [], pending
    extras = [
        key
        for handler in ctx.handlers.values()
        for key in ctx.run.memo(f"scan:{handler.kind}", lambda h=handler: h.scan(ctx.run))
        if is_extra(key)
    ]
    assert extras == [], extras


def assert_nothing_left(ctx: Context) -> None:
    left = leftovers(ctx.run, ctx.graph(), ctx.handlers, lambda: tagged_arns(ctx.run))
    assert left == [], left


def converges_after_a_kill(first: Context) -> None:
    """After a hard stop: the next `up` leaves one of each resource, the next `down` nothing."""
    killed(again(first))
    lifecycle.up(again(first))
    assert_exactly_one_of_each(again(first))
    down(again(first))
    assert_nothing_left(again(first))


def down(ctx: Context) -> None:
    lifecycle.down(ctx, yes=True, confirm=lambda question: True)


def test_the_samples_name_only_calls_that_are_made() -> None:
    assert set(ONCE_FAILED_LOST) <= set(LOST) <= set(UP_OPERATIONS)
    assert set(ONCE_FAILED_DOWN) <= set(KILL_DOWN) <= set(DOWN_OPERATIONS)


def test_the_lists_are_complete(tmp_path: Path) -> None:
    ctx = numbered_context(tmp_path, "census")
    recorder = Recorder(ctx.clients)
    lifecycle.up(ctx)
    assert set(recorder.operations) - LOCK_CALLS == set(UP_OPERATIONS) - LOCK_CALLS
    finish = again(ctx)
    recorder = Recorder(finish.clients)
    down(finish)
    assert set(recorder.operations) - LOCK_CALLS == set(DOWN_OPERATIONS) - LOCK_CALLS


@pytest.mark.parametrize("operation", KILL_DOWN)
def test_a_hard_stop_after_the_first_call_of_each_kind_of_down_converges(tmp_path: Path, operation: str) -> None:
    """`down` killed there, then `up` (one of each, a clean plan), then `down` (nothing left)."""
    first = numbered_context(tmp_path, "killdown")
    lifecycle.up(first)
    stopping = again(first)
    kill = KillAfter(stopping.clients, operation=operation)
    with pytest.raises((Killed, Exception)):
        down(stopping)
    assert kill.killed, f"down made no {operation}"
    converges_after_a_kill(first)


@pytest.mark.parametrize("operation", LOST)
def test_a_lost_answer_at_the_first_call_of_each_kind_converges(tmp_path: Path, operation: str) -> None:
    ctx = numbered_context(tmp_path, "lost")
    fault = LostAnswer(ctx.clients, operation)
    lifecycle.up(ctx)
    assert fault.lost == 1, f"{operation} was never answered twice"
    assert_exactly_one_of_each(again(ctx))
    finish = again(ctx)
    down(finish)
    assert_nothing_left(again(ctx))


@pytest.mark.parametrize("operation", KILL_UP)
def test_a_hard_stop_after_the_first_call_of_each_kind_of_up_converges(tmp_path: Path, operation: str) -> None:
    first = numbered_context(tmp_path, "killup")
    kill = KillAfter(first.clients, operation=operation)
    with pytest.raises((Killed, Exception)):
        lifecycle.up(first)
    assert kill.killed, f"up made no {operation}"
    converges_after_a_kill(first)
