"""Read-only checks of the settings against the account and region, before `plan` shows or `up` creates anything.

Config validation (cdpoc/config.py) refuses what the settings alone show to be wrong; these need AWS to
answer: does compute.ami_parameter name an AMI here, does the region offer the instance types (in two
zones, for that AMI's architecture), does operator.key_name exist, does CodeDeploy know the deployment
configuration, are the three bucket names (with the account in the derived ones) distinct. Every
problem is reported at once, with the setting to change, as a ConfigError (exit 2): a mistake found
here costs nothing, where found by `up` it cost up to 55 resources made before the failing one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdpoc.aws.account import (
    Problem,
    account_id,
    choose_zones,
    image_architecture,
    instance_architectures,
    key_pair_exists,
    offered_instance_types,
)
from cdpoc.aws.compute import find_ami
from cdpoc.aws.deploy import deployment_config_exists
from cdpoc.config import BUCKET_PURPOSES
from cdpoc.errors import ConfigError
from cdpoc.stack.names import StackNames

if TYPE_CHECKING:
    from cdpoc.context import Context

INSTANCE_TYPE_SETTINGS = ("instance_type", "bastion_instance_type", "mongodb_instance_type")


def check_before_creating(ctx: Context) -> None:
    """Raise ConfigError naming every setting that does not fit the account and region; make no change."""
    problems = [*_compute_problems(ctx), *_operator_problems(ctx), *_pipeline_problems(ctx), *_bucket_problems(ctx)]
    if problems:
        raise ConfigError(
            f"the settings do not fit account {account_id(ctx.run)} in {ctx.run.region}:\n  "
            + "\n  ".join(problem.line() for problem in problems),
            "Correct the settings named above; nothing was created.",
        )


def _compute_problems(ctx: Context) -> list[Problem]:
    compute, run = ctx.settings.compute, ctx.run
    wanted = {f"compute.{setting}": str(getattr(compute, setting)) for setting in INSTANCE_TYPE_SETTINGS}
    offered = offered_instance_types(run, tuple(wanted.values()))
    problems = [
        Problem(
            f"{setting}: {instance_type} is not an instance type {run.region} offers",
            "Check the spelling (e.g. t3.micro) or choose a type this region has.",
        )
        for setting, instance_type in wanted.items()
        if instance_type not in offered
    ]
    usable = tuple(sorted({t for t in wanted.values() if t in offered}))
    if usable:
        _, zone_problem = choose_zones(run, ctx.settings.availability_zones, usable)
        problems.extend([zone_problem] if zone_problem else [])
    ami = find_ami(run, compute.ami_parameter)
    architecture = image_architecture(run, ami) if ami else None
    if ami is None:
        problems.append(
            Problem(
                f"compute.ami_parameter: no SSM parameter {compute.ami_parameter} in {run.region}",
                "Use a public AMI parameter such as "
                "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64.",
            )
        )
    elif architecture is None:
        problems.append(
            Problem(
                f"compute.ami_parameter: {compute.ami_parameter} names {ami}, which is not an AMI in {run.region}",
                "Point it at a parameter whose value is an AMI id of this region.",
            )
        )
    elif usable:
        runs = instance_architectures(run, usable)
        problems.extend(
            Problem(
                f"{setting}: {instance_type} runs {'/'.join(runs[instance_type])}, but the AMI {ami} from "
                f"compute.ami_parameter is {architecture}",
                f"Choose an {architecture} instance type, or an AMI parameter for {runs[instance_type][0]}.",
            )
            for setting, instance_type in wanted.items()
            if instance_type in runs and architecture not in runs[instance_type]
        )
    return problems


def _operator_problems(ctx: Context) -> list[Problem]:
    key_name = ctx.settings.operator.key_name
    if not key_name or key_pair_exists(ctx.run, key_name):
        return []
    return [
        Problem(
            f"operator.key_name: no EC2 key pair named {key_name!r} in {ctx.run.region}",
            f"Create or import it there (`aws ec2 create-key-pair --key-name {key_name} --region {ctx.run.region}`),"
            " or leave operator.key_name empty (Session Manager still reaches the app hosts).",
        )
    ]


def _pipeline_problems(ctx: Context) -> list[Problem]:
    name = ctx.settings.pipeline.deployment_config
    if deployment_config_exists(ctx.run, name):
        return []
    return [
        Problem(
            f"pipeline.deployment_config: CodeDeploy has no deployment configuration {name!r} in {ctx.run.region}",
            "Use CodeDeployDefault.OneAtATime, CodeDeployDefault.HalfAtATime or CodeDeployDefault.AllAtOnce, "
            "or create it first.",
        )
    ]


def _bucket_problems(ctx: Context) -> list[Problem]:
    """Config validation refuses two configured names that are equal; a configured name can also equal
    another bucket's derived default, which holds the account id."""
    names = StackNames(ctx.settings, (), account_id(ctx.run))
    configured = {purpose: str(getattr(ctx.settings.buckets, purpose)) for purpose in BUCKET_PURPOSES}
    problems = []
    for i, first in enumerate(BUCKET_PURPOSES):
        for second in BUCKET_PURPOSES[i + 1 :]:
            if names.bucket(first) != names.bucket(second):
                continue
            mine, other = (first, second) if configured[first] else (second, first)
            problems.append(
                Problem(
                    f"buckets.{mine}: {configured[mine]!r} is also the default name of buckets.{other}",
                    "Give each bucket its own name.",
                )
            )
    return problems
