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
from cdpoc_testing import FAST_WAITS, recording_ui  # noqa: E402
from moto import mock_aws  # noqa: E402

from cdpoc.context import Context, Options  # noqa: E402
from cdpoc.sandbox.additions import install as install_sandbox_additions  # noqa: E402

install_sandbox_additions()


def _only_the_managed_policies_cdpoc_names() -> None:
    """moto builds all 1,582 AWS-managed policies for every IAM backend of every test (seconds each).

    The tests keep only those cdpoc's code (or a test, e.g. one attaching what an earlier version attached)
    names, taken from moto's own data: a name cdpoc gets wrong is still missing and still fails
    AttachRolePolicy with NoSuchEntity, as on AWS.
    """
    import json
    import re

    import moto.iam.models

    roots = (Path(__file__).parent.parent / "cdpoc", Path(__file__).parent)
    source = "\n".join(path.read_text() for root in roots for path in root.rglob("*.py"))
    named = {match.rsplit("/", 1)[-1] for match in re.findall(r"policy/(?:service-role/)?[A-Za-z0-9_-]+", source)}
    everything = json.loads(moto.iam.models.aws_managed_policies_data)
    moto.iam.models.aws_managed_policies_data = json.dumps({k: v for k, v in everything.items() if k in named})


_only_the_managed_policies_cdpoc_names()


@pytest.fixture(scope="module")
def moto_session() -> Iterator[None]:
    """moto for a whole test module, for tests that keep their stacks apart by name (numbered_context)."""
    with mock_aws():
        yield


@pytest.fixture
def aws() -> Iterator[None]:
    """moto in-process, started before any client exists."""
    with mock_aws():
        yield


@pytest.fixture
def make_context(tmp_path: Path) -> Callable[..., Context]:
    """Context.build with a user config written from keyword settings, a recording console and fast waits."""

    def build(**settings: Any) -> Context:
        config = tmp_path / "cdpoc.yaml"
        config.write_text(yaml.safe_dump({"name": "t1", **settings}))
        return Context.build(Options(config=config), recording_ui(), waits=FAST_WAITS)

    return build
