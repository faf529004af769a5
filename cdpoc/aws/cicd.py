"""What the CI/CD handlers (source, deploy, pipeline) share: ownership by tags, calls where NotFound is an answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdpoc.aws.base import COMPONENT_TAG, STACK_TAG, AwsRun
from cdpoc.errors import ConflictError
from cdpoc.model import Change, Observed, Resource


def wanted_tags(run: AwsRun, res: Resource) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in run.tags(res.key, res.name)}


def missing_tags(run: AwsRun, res: Resource, have: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in wanted_tags(run, res).items() if have.get(k) != v}


def ownership(tags: Mapping[str, str]) -> dict[str, Any]:
    """The attrs every CI/CD Observed carries, so that changes() can tell ours from someone else's."""
    return {"tags": dict(tags), "stack": tags.get(STACK_TAG, ""), "component": tags.get(COMPONENT_TAG, "")}


def ownership_changes(run: AwsRun, res: Resource, found: Observed, what: str) -> list[Change]:
    stack = found.attrs.get("stack", "")
    if stack != run.stack:
        owner = f"stack {stack}" if stack else "nothing cdpoc manages (no cdpoc:stack tag)"
        return [Change(f"{what} {res.name} exists and belongs to {owner}: cdpoc will not take it over", in_place=False)]
    component = found.attrs.get("component", "")
    if component and component != res.key:
        return [Change(f"{what} {res.name} is this stack's {component}, not {res.key}", in_place=False)]
    return [Change("tags differ")] if missing_tags(run, res, found.attrs.get("tags", {})) else []


def refuse_not_ours(run: AwsRun, res: Resource, what: str, tags: Mapping[str, str]) -> None:
    """Adopting an existing resource (a create that raced, or a re-run) only when its tags say it is ours."""
    if tags.get(STACK_TAG) == run.stack and tags.get(COMPONENT_TAG, res.key) == res.key:
        return
    owner = f"stack {tags[STACK_TAG]}" if tags.get(STACK_TAG) else "nothing cdpoc manages (no cdpoc:stack tag)"
    raise ConflictError(
        f"{what} {res.name} already exists and belongs to {owner}",
        f"Delete or rename that {what}, or choose another stack name; cdpoc will not take it over.",
    )
