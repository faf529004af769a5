"""Shared fixtures: fake credentials and moto settings before anything imports boto3 or moto."""

from __future__ import annotations

import os

# moto reads these at import time; tests must never reach a real account or endpoint.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
        "MOTO_ENABLE_AMI_VALIDATION": "true",
    }
)
for _variable in (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
):
    os.environ.pop(_variable, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402
from moto import mock_aws  # noqa: E402
from rich.console import Console  # noqa: E402

from cdpoc.aws.base import Waits  # noqa: E402
from cdpoc.context import Context, Options  # noqa: E402
from cdpoc.sandbox.additions import install as install_sandbox_additions  # noqa: E402
from cdpoc.ui import Ui  # noqa: E402

install_sandbox_additions()

FAST_WAITS = Waits(default=30.0, nat_gateway=30.0, poll_initial=0.01, poll_max=0.05)


@pytest.fixture
def aws() -> Iterator[None]:
    """moto in-process, started before any client exists."""
    with mock_aws():
        yield


def recording_ui() -> Ui:
    return Ui(
        console=Console(record=True, width=200, force_terminal=False), err=Console(record=True, width=200, stderr=True)
    )


@pytest.fixture
def make_context(tmp_path: Path) -> Callable[..., Context]:
    """Context.build with a user config written from keyword settings, a recording console and fast waits."""

    def build(**settings: Any) -> Context:
        config = tmp_path / "cdpoc.yaml"
        config.write_text(yaml.safe_dump({"name": "t1", **settings}))
        return Context.build(Options(config=config), recording_ui(), waits=FAST_WAITS)

    return build
