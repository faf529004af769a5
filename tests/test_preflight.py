"""A config mistake exits 2 with nothing created: the preflight checks that `plan` and `up` run first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from cdpoc_testing import numbered_context
from typer.testing import CliRunner

from cdpoc import lifecycle
from cdpoc.cli import app
from cdpoc.config import RESERVED_NAME_PREFIXES
from cdpoc.context import Context
from cdpoc.errors import ConfigError
from cdpoc.sandbox.server import Sandbox

MOTO_ACCOUNT = "123456789012"
ARM_AMI = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"

BAD_INPUTS = {
    "missing AMI parameter": (
        {"compute": {"ami_parameter": "/no/such/ami"}},
        "compute.ami_parameter: no SSM parameter /no/such/ami in us-east-1",
    ),
    "parameter that is no AMI": (
        {"compute": {"ami_parameter": "/t1/not-an-ami"}},
        "compute.ami_parameter: /t1/not-an-ami names ami-00000000, which is not an AMI in us-east-1",
    ),
    "unknown instance type": (
        {"compute": {"mongodb_instance_type": "t3.mega"}},
        "compute.mongodb_instance_type: t3.mega is not an instance type us-east-1 offers",
    ),
    "instance type of another architecture": (
        {"compute": {"bastion_instance_type": "t4g.micro"}},
        "compute.bastion_instance_type: t4g.micro runs arm64, but the AMI ami-",
    ),
    "AMI of another architecture": (
        {"compute": {"ami_parameter": ARM_AMI}},
        "compute.instance_type: t3.micro runs x86_64, but the AMI ami-",
    ),
    "zone the region does not have": (
        {"availability_zones": ["us-east-1a", "us-east-1q"]},
        "availability_zones: us-east-1q not available in us-east-1",
    ),
    "missing key pair": (
        {"operator": {"key_name": "my-laptop"}},
        "operator.key_name: no EC2 key pair named 'my-laptop' in us-east-1",
    ),
    "unknown deployment configuration": (
        {"pipeline": {"deployment_config": "Custom.TenPercent"}},
        "pipeline.deployment_config: CodeDeploy has no deployment configuration 'Custom.TenPercent'",
    ),
    "bucket named like another's default": (
        {"buckets": {"uploads": f"t1-{MOTO_ACCOUNT}-us-east-1-web"}},
        f"buckets.uploads: 't1-{MOTO_ACCOUNT}-us-east-1-web' is also the default name of buckets.web",
    ),
}


@pytest.fixture
def not_an_ami(aws: None) -> None:
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/t1/not-an-ami", Value="ami-00000000", Type="String"
    )


def nothing_exists() -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    assert ec2.describe_vpcs(Filters=[{"Name": "tag:cdpoc:stack", "Values": ["t1"]}])["Vpcs"] == []
    tagging = boto3.client("resourcegroupstaggingapi", region_name="us-east-1")
    assert tagging.get_resources(TagFilters=[{"Key": "cdpoc:stack", "Values": ["t1"]}])["ResourceTagMappingList"] == []
    assert boto3.client("iam").list_roles(PathPrefix="/cdpoc/t1/")["Roles"] == []


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_up_and_plan_refuse_with_the_setting_and_create_nothing(
    case: str, not_an_ami: None, make_context: Callable[..., Context]
) -> None:
    settings, expected = BAD_INPUTS[case]
    for run in (lambda ctx: lifecycle.up(ctx), lambda ctx: lifecycle.plan(ctx)):
        ctx = make_context(**settings)
        with pytest.raises(ConfigError) as caught:
            run(ctx)
        assert caught.value.exit_code == 2
        assert f"the settings do not fit account {MOTO_ACCOUNT} in us-east-1:" in caught.value.message
        assert expected in caught.value.message
        assert "(" in caught.value.message.split(expected, 1)[1]  # each problem says what to do
        assert caught.value.hint == "Correct the settings named above; nothing was created."
        assert ctx.clients.mutating_calls() == []
    nothing_exists()


def test_every_problem_is_reported_at_once(not_an_ami: None, make_context: Callable[..., Context]) -> None:
    ctx = make_context(
        compute={"ami_parameter": "/no/such/ami", "instance_type": "t3.mega"},
        operator={"key_name": "my-laptop"},
        pipeline={"deployment_config": "Custom.TenPercent"},
        buckets={"artifacts": f"t1-{MOTO_ACCOUNT}-us-east-1-web"},
    )
    with pytest.raises(ConfigError) as caught:
        lifecycle.up(ctx)
    lines = caught.value.message.splitlines()[1:]
    assert [line.split(":", 1)[0].strip() for line in lines] == [
        "compute.instance_type",
        "compute.ami_parameter",
        "operator.key_name",
        "pipeline.deployment_config",
        "buckets.artifacts",
    ]
    assert f"buckets.artifacts: 't1-{MOTO_ACCOUNT}-us-east-1-web' is also the default name of buckets.web" in lines[4]
    nothing_exists()


def test_settings_that_fit_pass_and_the_key_pair_is_used(aws: None, make_context: Callable[..., Context]) -> None:
    boto3.client("ec2", region_name="us-east-1").create_key_pair(KeyName="my-laptop")
    ctx = make_context(operator={"key_name": "my-laptop"}, compute={"ami_parameter": ARM_AMI, **ARM_TYPES})
    plan = lifecycle.plan(ctx)
    assert plan.has_work and ctx.clients.mutating_calls() == []
    reads = {operation for _, operation in ctx.clients.calls}
    assert {"GetParameter", "DescribeImages", "DescribeKeyPairs", "GetDeploymentConfig"} <= reads


ARM_TYPES = {"instance_type": "t4g.micro", "bastion_instance_type": "t4g.micro", "mongodb_instance_type": "t4g.small"}


def test_every_name_derived_from_the_stack_name_starts_with_it(moto_session: None, tmp_path: Path) -> None:
    """RESERVED_NAME_PREFIXES is checked against "<name>-": that covers a derived name only if it starts so."""
    ctx = numbered_context(tmp_path, "derived")
    name = ctx.settings.name
    for res in ctx.graph().resources.values():
        if res.kind == "pipeline_source":  # pipeline.repository, a setting of its own
            continue
        assert res.name == name or res.name.startswith((f"{name}-", f"/{name}/", f"/cdpoc/{name}")), res.name
    assert {"aws", "ssm", "sg-", "internal-", "sthree-", "amzn-s3-demo-"} <= set(RESERVED_NAME_PREFIXES)


# --- the CLI against the sandbox: exit 2, the message, and no resource of the stack ---------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with Sandbox() as sandbox:
        yield sandbox.endpoint


def cdpoc_up(endpoint: str, tmp_path: Path, settings: dict[str, Any]) -> tuple[int, str]:
    config = tmp_path / "cdpoc.yaml"
    config.write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(app, ["--config", str(config), "--endpoint-url", endpoint, "up"])
    return result.exit_code, result.output


def stack_resources(endpoint: str, stack: str) -> list[str]:
    tagging = boto3.client("resourcegroupstaggingapi", region_name="us-east-1", endpoint_url=endpoint)
    found = tagging.get_resources(TagFilters=[{"Key": "cdpoc:stack", "Values": [stack]}])["ResourceTagMappingList"]
    roles = boto3.client("iam", endpoint_url=endpoint).list_roles(PathPrefix=f"/cdpoc/{stack}/")["Roles"]
    return [m["ResourceARN"] for m in found] + [r["Arn"] for r in roles]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"name": "awsdemo"}, "name: 'awsdemo' cannot prefix every resource name: AWS refuses SSM parameter names"),
        (
            {"name": "twins", "buckets": {"web": "twins-shared-bucket", "uploads": "twins-shared-bucket"}},
            "buckets.web and buckets.uploads are both 'twins-shared-bucket'",
        ),
        ({"name": "noami", "compute": {"ami_parameter": "/no/such/ami"}}, "compute.ami_parameter: no SSM parameter"),
        ({"name": "nokey", "operator": {"key_name": "gone"}}, "operator.key_name: no EC2 key pair named 'gone'"),
    ],
)
def test_cli_up_exits_2_and_creates_nothing(
    endpoint: str, tmp_path: Path, settings: dict[str, Any], expected: str
) -> None:
    code, out = cdpoc_up(endpoint, tmp_path, settings)
    assert code == 2, out
    assert expected in out and "nothing was created" in out
    assert "Traceback" not in out and "credentials" not in out
    assert stack_resources(endpoint, settings["name"]) == []
