"""Helpers the tests import by name (conftest.py is not importable by name: tests/bundle has its own)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from cdpoc.aws.handler import Handler
from cdpoc.aws.run import Waits
from cdpoc.context import Context, Options
from cdpoc.model import Observed, Resource
from cdpoc.ui import Ui

FAST_WAITS = Waits(default=30.0, nat_gateway=30.0, poll_initial=0.01, poll_max=0.05)


def recording_ui() -> Ui:
    return Ui(
        console=Console(record=True, width=200, force_terminal=False), err=Console(record=True, width=200, stderr=True)
    )


class Existing(Handler):
    """Another area's resources in these tests: found as the test made them, never created or deleted."""

    kind = "existing"
    label = "existing"

    def __init__(self, found: Mapping[str, Observed]) -> None:
        self.found = dict(found)

    def find(self, run: Any, res: Resource) -> Observed | None:
        found = self.found.get(res.key)
        # What the test made for this stack carries the stack's tag, as the real resource would.
        return None if found is None else replace(found, attrs={**found.attrs, "stack": run.stack})

    def delete(self, run: Any, found: Observed) -> None:
        """Not ours to delete here."""


# Tests that share one moto session per module (the moto_session fixture) give every stack its own
# name: moto's start-up and reset cost seconds each, and stacks are told apart by their tags and names.
STACK_NUMBERS = itertools.count(1)


def numbered_context(directory: Path, prefix: str, settings: str = "") -> Context:
    """A Context for a stack named <prefix><n>, unique in the process, with extra YAML settings."""
    config = directory / "cdpoc.yaml"
    config.write_text(f"name: {prefix}{next(STACK_NUMBERS)}\n{settings}")
    return Context.build(Options(config=config), recording_ui(), waits=FAST_WAITS)


# --- the real CLI against a sandbox server: `base` is the CLI's leading options, --endpoint-url among them


def sandbox_client(base: tuple[str, ...], service: str) -> Any:
    """A boto3 client of the sandbox that `base` (cdpoc's leading CLI options) points at."""
    import boto3

    return boto3.client(service, region_name="us-east-1", endpoint_url=base[base.index("--endpoint-url") + 1])


def wait_until_no_deployment_is_active(base: tuple[str, ...], application: str, group: str) -> None:
    """Until the group has no active deployment (a failure's auto-rollback runs one of its own): the next
    push's Deploy would be refused while one is active (DeploymentLimitExceededException)."""
    import time

    codedeploy = sandbox_client(base, "codedeploy")
    for _ in range(600):
        active = codedeploy.list_deployments(
            applicationName=application,
            deploymentGroupName=group,
            includeOnlyStatuses=["Created", "Queued", "InProgress"],
        )["deployments"]
        if not active:
            return
        time.sleep(0.05)
    raise AssertionError(f"a deployment is still active: {active}")
