"""Ownership by tags read from each resource: which listed items are this stack's, and refusing the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from cdpoc.aws.errors import aws_errors
from cdpoc.aws.run import COMPONENT_TAG, STACK_TAG, AwsRun, tag_map
from cdpoc.errors import ConflictError
from cdpoc.model import Change, Observed, Resource, extra_key, not_ours_change
from cdpoc.spec import Spec, field_change


def by_component(
    run: AwsRun,
    items: Iterable[dict[str, Any]],
    id_field: str,
    prefer: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The items whose own tags say cdpoc:stack=<this stack>, keyed by their cdpoc:component tag.

    A listing's tag filter is not proof of ownership (moto ignores it on NAT gateways, and a filter is
    only as good as the code that wrote it): every item's tags are checked again here. A second item of
    one component is never dropped: it is listed under extra_key(). `prefer` ranks the items of one
    component (highest first, e.g. the attached one); otherwise the listing order decides.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        tags = tag_map(item.get("Tags"))
        if tags.get(STACK_TAG) == run.stack and tags.get(COMPONENT_TAG):
            groups.setdefault(tags[COMPONENT_TAG], []).append(item)
    found: dict[str, dict[str, Any]] = {}
    for component, group in groups.items():
        ranked = sorted(group, key=prefer, reverse=True) if prefer else group
        found[component] = ranked[0]
        for extra in ranked[1:]:
            found[extra_key(component, str(extra[id_field]))] = extra
    return found


def delete_twins(
    run: AwsRun,
    res: Resource,
    kept_id: str,
    listed: Iterable[Mapping[str, Any]],
    id_field: str,
    delete: Callable[[str], None],
) -> list[str]:
    """After a create that takes no client token (CreateVpc, CreateInternetGateway, AllocateAddress):
    when its answer was lost, botocore's retry made a second resource, which nothing would ever use or
    report. Any resource other than `kept_id` whose own tags name this stack and `res.key` is such a
    twin (the plan found none before the create, and the stack lock keeps other runs out): delete it.
    Returns the twins' ids."""
    twins = [
        str(item[id_field])
        for item in listed
        if item[id_field] != kept_id
        and tag_map(item.get("Tags")).get(STACK_TAG) == run.stack
        and tag_map(item.get("Tags")).get(COMPONENT_TAG) == res.key
    ]
    for twin in twins:
        delete(twin)
    return twins


def owner_attrs(item: Mapping[str, Any]) -> dict[str, Any]:
    """ownership() of a listed item that carries its own Tags."""
    return ownership(tag_map(item.get("Tags")))


def with_owner(found: Observed, item: Mapping[str, Any]) -> Observed:
    """`found` with the stack and component tags of the listed item it was made from (its own "tags" attr,
    where it has one, stays as the handler shaped it)."""
    tags = tag_map(item.get("Tags"))
    return replace(
        found, attrs={**found.attrs, "stack": tags.get(STACK_TAG, ""), "component": tags.get(COMPONENT_TAG, "")}
    )


NOT_MANAGED = "nothing cdpoc manages"


# Who owns a resource without a cdpoc:stack tag, in messages.
UNTAGGED = f"{NOT_MANAGED} (no cdpoc:stack tag)"


def tagged_resources(run: AwsRun, resource_type: str) -> dict[str, tuple[str, dict[str, str]]]:
    """{component: (ARN, tags)} of the stack's resources of one type, from the Resource Groups Tagging API.

    The API may still list a resource for a while after it is deleted: callers check it exists.
    """

    def lookup() -> dict[str, tuple[str, dict[str, str]]]:
        found: dict[str, tuple[str, dict[str, str]]] = {}
        with aws_errors(f"listing the stack's {resource_type} resources by tag"):
            paginator = run.client("resourcegroupstaggingapi").get_paginator("get_resources")
            for page in paginator.paginate(
                ResourceTypeFilters=[resource_type], TagFilters=[{"Key": STACK_TAG, "Values": [run.stack]}]
            ):
                for mapping in page["ResourceTagMappingList"]:
                    tags = tag_map(mapping.get("Tags"))
                    if tags.get(COMPONENT_TAG):
                        found[tags[COMPONENT_TAG]] = (mapping["ResourceARN"], tags)
        return found

    return run.memo(f"tagged:{resource_type}", lookup)


def wanted_tags(run: AwsRun, res: Resource) -> dict[str, str]:
    """The tags the resource should carry: the stack's, its component and name, and the config's extra tags."""
    return tag_map(run.tags(res.key, res.name))


def missing_tags(run: AwsRun, res: Resource, have: Mapping[str, str]) -> dict[str, str]:
    """The wanted tags that the resource lacks or has with another value."""
    return {k: v for k, v in wanted_tags(run, res).items() if have.get(k) != v}


def tags_change(spec: type[Spec], have: Mapping[str, str], missing: Mapping[str, str]) -> list[Change]:
    """The `tags` change for the wanted tags a resource lacks (or has with another value); [] for none."""
    if not missing:
        return []
    return [field_change(spec, "tags", {k: have.get(k) for k in missing}, dict(missing))]


def ownership(tags: Mapping[str, str]) -> dict[str, Any]:
    """The attrs an Observed found by name carries, so that changes() can tell ours from someone else's."""
    return {"tags": dict(tags), "stack": tags.get(STACK_TAG, ""), "component": tags.get(COMPONENT_TAG, "")}


def ownership_changes(run: AwsRun, res: Resource, found: Observed, what: str) -> list[Change]:
    """Another stack's or an untagged resource is a conflict (never adopted); ours missing a tag is an update."""
    if found.owner != run.stack:
        return [not_ours_change(what, res.name, found.owner)]
    component = found.attrs.get("component", "")
    if component and component != res.key:
        return [Change(f"{what} {res.name} is this stack's {component}, not {res.key}", in_place=False)]
    return [Change("tags differ")] if missing_tags(run, res, found.attrs.get("tags", {})) else []


def not_ours(res: Resource, what: str, tags: Mapping[str, str], untagged: str = UNTAGGED) -> ConflictError:
    """The refusal to take over an existing resource whose tags name another owner (`untagged` when none)."""
    owner = f"stack {tags[STACK_TAG]}" if tags.get(STACK_TAG) else untagged
    return ConflictError(
        f"{what} {res.name} already exists and belongs to {owner}",
        f"Delete or rename that {what}, or choose another stack name; cdpoc will not take it over.",
    )


def refuse_not_ours(
    run: AwsRun, res: Resource, what: str, tags: Mapping[str, str], *, component: bool = True, untagged: str = UNTAGGED
) -> None:
    """Adopt an existing resource (a create that raced, or a re-run) only when its tags say it is ours:
    this stack's and, with `component`, not another component's. Raises not_ours otherwise."""
    if tags.get(STACK_TAG) == run.stack and (not component or tags.get(COMPONENT_TAG, res.key) == res.key):
        return
    raise not_ours(res, what, tags, untagged)
