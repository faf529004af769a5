"""The region the AWS way: --region, the user file, AWS_REGION, AWS_DEFAULT_REGION, the profile; no silent default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import pytest
from cdpoc_testing import recording_ui
from typer.testing import CliRunner

from cdpoc.aws.clients import ambient_region
from cdpoc.cli import app
from cdpoc.context import Context, Options
from cdpoc.demo import DEMO_REGION
from cdpoc.errors import AccessError
from cdpoc.sandbox.server import Sandbox


@pytest.fixture
def aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS config file with a default and a named profile; no region in the environment."""
    path = tmp_path / "aws-config"
    path.write_text(
        "[default]\nregion = eu-north-1\n\n"
        # a named profile takes its credentials from the files, not the environment
        "[profile work]\nregion = ap-south-1\naws_access_key_id = testing\naws_secret_access_key = testing\n\n"
        "[profile bare]\noutput = json\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    return path


def test_aws_region_comes_before_aws_default_region_before_the_profile(
    aws_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ambient_region(None) == ("eu-north-1", f"profile default in {aws_config}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    assert ambient_region(None) == ("eu-west-3", "AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-south-2")
    assert ambient_region(None) == ("eu-south-2", "AWS_REGION")


def test_the_profile_given_or_in_aws_profile_is_the_one_read(aws_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ambient_region("work") == ("ap-south-1", f"profile work in {aws_config}")
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert ambient_region(None) == ("ap-south-1", f"profile work in {aws_config}")
    assert ambient_region("bare") is None


def test_an_unknown_profile_is_an_access_error(aws_config: Path) -> None:
    with pytest.raises(AccessError, match="AWS profile 'nope' is not configured"):
        ambient_region("nope")


# --- end to end: the CLI against the sandbox -----------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with Sandbox() as sandbox:
        yield sandbox.endpoint


def cdpoc(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("flags", "env", "header"),
    [
        (("--region", "eu-west-1"), {"AWS_REGION": "ap-south-1"}, "eu-west-1 (region from --region)"),
        ((), {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}, "eu-west-1 (region from AWS_REGION)"),
        ((), {"AWS_DEFAULT_REGION": "eu-west-2"}, "eu-west-2 (region from AWS_DEFAULT_REGION)"),
    ],
)
def test_plan_header_names_the_region_and_where_it_came_from(
    endpoint: str, flags: tuple[str, ...], env: dict[str, str | None], header: str
) -> None:
    code, out = cdpoc(*flags, "--endpoint-url", endpoint, "--name", "where", "plan", env={"AWS_REGION": None, **env})
    assert code == 0, out
    assert f"Stack where in {header}" in out


def test_plan_uses_the_profiles_region(endpoint: str, aws_config: Path) -> None:
    code, out = cdpoc("--endpoint-url", endpoint, "--name", "prof", "--profile", "work", "plan")
    assert code == 0, out
    assert f"Stack prof in ap-south-1 (region from profile work in {aws_config})" in out


def test_the_user_files_region_beats_the_environment(endpoint: str, tmp_path: Path) -> None:
    config = tmp_path / "cdpoc.yaml"
    config.write_text("name: filed\nregion: eu-west-1\n")
    code, out = cdpoc("--config", str(config), "--endpoint-url", endpoint, "plan", env={"AWS_REGION": "ap-south-1"})
    assert code == 0, out
    assert f"Stack filed in eu-west-1 (region from {config})" in out


def test_no_region_anywhere_exits_2_before_any_aws_call(
    endpoint: str, aws_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_config.write_text("[default]\noutput = json\n")
    calls: list[str] = []
    real = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation: str, params: Any) -> Any:
        calls.append(operation)
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    for command in ("plan", "up", "status"):
        code, out = cdpoc("--endpoint-url", endpoint, "--name", "noregion", command)
        assert code == 2, out
        assert "no AWS region is set" in out
        assert "--region" in out and "AWS_REGION" in out and "aws configure set region" in out
        assert "Traceback" not in out
    assert calls == []


def test_up_and_down_headers_name_the_region_source(endpoint: str) -> None:
    env: dict[str, str | None] = {"AWS_REGION": "eu-west-1"}
    base = ("--endpoint-url", endpoint, "--name", "hdr")
    code, out = cdpoc(*base, "up", env=env)
    assert code == 0, out
    assert "Stack hdr in eu-west-1 (region from AWS_REGION), zones eu-west-1a, eu-west-1b" in out
    code, out = cdpoc(*base, "status", env=env)
    assert "Stack hdr · eu-west-1 (region from AWS_REGION) · account" in out
    code, out = cdpoc(*base, "down", "--yes", env=env)
    assert code == 0, out
    assert "Stack hdr in eu-west-1 (region from AWS_REGION): " in out
    code, out = cdpoc(*base, "down", "--yes", env=env)
    assert "Nothing of stack hdr exists in eu-west-1 (region from AWS_REGION)." in out


def test_the_demo_falls_back_to_its_own_region_only_when_none_is_set(aws_config: Path, endpoint: str) -> None:
    aws_config.write_text("[default]\noutput = json\n")
    options = Options(name="demo", endpoint_url=endpoint, fallback_region=DEMO_REGION)
    ctx = Context.build(options, recording_ui())
    assert ctx.region_label == "us-east-1 (region from the demo's default)"
    options = Options(name="demo", region="eu-west-1", endpoint_url=endpoint, fallback_region=DEMO_REGION)
    ctx = Context.build(options, recording_ui())
    assert ctx.region_label == "eu-west-1 (region from --region)"
