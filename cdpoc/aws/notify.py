"""The alerts SNS topic with its email subscription, and the CloudWatch Logs log group.

The topic's ARN is deterministic (the spec's arn), so it is found without listing every topic. The email
subscription is part of the topic, not a resource of its own: SNS cannot tag it, and a pending one
(SubscriptionArn "PendingConfirmation") cannot be removed, only left to expire or go with the topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cdpoc.aws.errors import aws_errors, caused_by, ignore_missing
from cdpoc.aws.handler import Handler, observed
from cdpoc.aws.ownership import (
    missing_tags,
    not_ours,
    ownership,
    ownership_changes,
    tagged_resources,
    tags_change,
    wanted_tags,
)
from cdpoc.aws.run import AwsRun, tag_list, tag_map
from cdpoc.errors import AwsError
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import entry_of, field_change, spec_of
from cdpoc.stack.specs.notify import LogGroupSpec, TopicSpec

PENDING = "PendingConfirmation"
# What a plan shows for an email subscription: "email_subscriptions[a@b]: (none) → subscribed".
SUBSCRIBED = "subscribed"
TOPIC_MISSING = ("NotFound", "NotFoundException")
LOG_GROUP_MISSING = ("ResourceNotFoundException",)


# --- SNS --------------------------------------------------------------------------------------------


def _sns(run: AwsRun) -> Any:
    return run.client("sns")


class TopicHandler(Handler):
    kind = "sns_topic"
    label = "SNS topic"
    arn_types = ("sns:topic",)
    spec_type = TopicSpec

    def _exists(self, run: AwsRun, arn: str) -> bool:
        return ignore_missing(f"looking up topic {arn}", _sns(run).get_topic_attributes, TOPIC_MISSING, TopicArn=arn)

    def _subscriptions(self, run: AwsRun, arn: str) -> tuple[tuple[str, str], ...]:
        """(email address, subscription ARN or "PendingConfirmation") of the topic's email subscriptions."""
        with aws_errors(f"listing the subscriptions of {arn}"):
            pages = _sns(run).get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
            return tuple(
                sorted(
                    (s["Endpoint"], s["SubscriptionArn"])
                    for page in pages
                    for s in page["Subscriptions"]
                    if s.get("Protocol") == "email"
                )
            )

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        arn = spec_of(res, TopicSpec).arn
        if not self._exists(run, arn):
            return None
        with aws_errors(f"reading the tags of {arn}"):
            tags = tag_map(_sns(run).list_tags_for_resource(ResourceArn=arn)["Tags"])
        return observed(
            res,
            self.kind,
            arn,
            name=res.name,
            **ownership(tags),
            subscriptions=self._subscriptions(run, arn),
        )

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        return {
            component: observed(component, self.kind, arn, name=arn.rsplit(":", 1)[-1])
            for component, (arn, _tags) in tagged_resources(run, "sns").items()
            if self._exists(run, arn)
        }

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        conflicts = [c for c in ownership_changes(run, res, found, "topic") if not c.in_place]
        if conflicts:
            return conflicts
        have_tags = found.attrs.get("tags", {})
        changes = tags_change(TopicSpec, have_tags, missing_tags(run, res, have_tags))
        wanted = spec_of(res, TopicSpec).email_subscriptions
        subscribed = {endpoint for endpoint, _ in found.attrs["subscriptions"]}
        changes.extend(
            field_change(TopicSpec, f"email_subscriptions[{email}]", None, SUBSCRIBED)
            for email in wanted
            if email not in subscribed
        )
        # Only confirmed subscriptions can be removed; a pending one stays until it expires or the topic goes.
        changes.extend(
            field_change(TopicSpec, f"email_subscriptions[{email}]", SUBSCRIBED, None)
            for email, arn in found.attrs["subscriptions"]
            if email not in wanted and arn != PENDING
        )
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        # CreateTopic returns the existing topic of that name (an error if its tags differ); find ran first,
        # so getting here means there was none.
        with aws_errors(f"creating topic {res.name}"):
            arn = _sns(run).create_topic(Name=res.name, Tags=run.tags(res.key, res.name))["TopicArn"]
        found = observed(
            res,
            self.kind,
            arn,
            name=res.name,
            **ownership(wanted_tags(run, res)),
            subscriptions=(),
        )
        return self.converge(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        sns, arn = _sns(run), found.id
        tags = dict(found.attrs.get("tags", {}))
        subscriptions = dict(found.attrs["subscriptions"])
        for change in changes:
            email = entry_of(change, "email_subscriptions")
            if change.field == "tags":
                with aws_errors(f"tagging topic {arn}"):
                    sns.tag_resource(ResourceArn=arn, Tags=tag_list(change.new))
                tags.update(change.new)
            elif email is not None and change.new is None:
                ignore_missing(
                    f"unsubscribing {email} from {arn}",
                    sns.unsubscribe,
                    TOPIC_MISSING,
                    SubscriptionArn=subscriptions.pop(email),
                )
            elif email is not None:
                with aws_errors(f"subscribing {email} to {arn}"):
                    reply = sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email, ReturnSubscriptionArn=True)
                subscriptions[email] = reply.get("SubscriptionArn") or PENDING
        return observed(
            res,
            self.kind,
            arn,
            name=res.name,
            **ownership(tags),
            subscriptions=tuple(sorted(subscriptions.items())),
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        # Deleting a topic removes its subscriptions, pending ones included; deleting a missing topic succeeds.
        ignore_missing(f"deleting topic {found.id}", _sns(run).delete_topic, TOPIC_MISSING, TopicArn=found.id)

    def describe(self, found: Observed) -> str:
        name = found.attrs.get("name") or found.id
        subscriptions = found.attrs.get("subscriptions", ())
        if not subscriptions:
            return str(name)
        emails = ", ".join(
            f"{endpoint}{' (pending confirmation)' if arn == PENDING else ''}" for endpoint, arn in subscriptions
        )
        return f"{name} -> {emails}"


# --- CloudWatch Logs ----------------------------------------------------------------------------------


def _logs(run: AwsRun) -> Any:
    return run.client("logs")


def _group_arn(group: Mapping[str, Any]) -> str:
    # "arn" ends with ":*" (the streams); the tagging calls want the group's own ARN.
    return str(group.get("logGroupArn") or str(group["arn"]).removesuffix(":*"))


class LogGroupHandler(Handler):
    kind = "log_group"
    label = "log group"
    arn_types = ("logs:log-group",)
    spec_type = LogGroupSpec

    def _group(self, run: AwsRun, name: str) -> dict[str, Any] | None:
        with aws_errors(f"looking up log group {name}"):
            pages = _logs(run).get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
            for page in pages:
                for group in page["logGroups"]:
                    if group["logGroupName"] == name:
                        return dict(group)
        return None

    def _tags(self, run: AwsRun, arn: str) -> dict[str, str]:
        with aws_errors(f"reading the tags of {arn}"):
            return dict(_logs(run).list_tags_for_resource(resourceArn=arn).get("tags", {}))

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        group = self._group(run, res.name)
        if group is None:
            return None
        tags = self._tags(run, _group_arn(group))
        return observed(
            res,
            self.kind,
            res.name,
            arn=_group_arn(group),
            retention_days=group.get("retentionInDays"),
            **ownership(tags),
        )

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        result = {}
        for component, (arn, _tags) in tagged_resources(run, "logs:log-group").items():
            name = arn.split(":log-group:", 1)[-1].removesuffix(":*")
            if self._group(run, name) is not None:
                result[component] = observed(component, self.kind, name, arn=arn)
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        conflicts = [c for c in ownership_changes(run, res, found, "log group") if not c.in_place]
        if conflicts:
            return conflicts
        have_tags = found.attrs.get("tags", {})
        # Without its ARN (a group created a moment ago that the listing does not show yet) it cannot be tagged.
        changes = tags_change(LogGroupSpec, have_tags, missing_tags(run, res, have_tags)) if found.attrs["arn"] else []
        wanted = spec_of(res, LogGroupSpec).retention_days
        if found.attrs["retention_days"] != wanted:
            text = f"retention_days: {found.attrs['retention_days'] or 'never expire'} → {wanted}"
            changes.append(
                field_change(LogGroupSpec, "retention_days", found.attrs["retention_days"], wanted, text=text)
            )
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        tags = wanted_tags(run, res)
        try:
            with aws_errors(f"creating log group {res.name}"):
                _logs(run).create_log_group(logGroupName=res.name, tags=tags)
        except AwsError as exc:
            if not caused_by(exc, "ResourceAlreadyExistsException"):
                raise
            found = self.find(run, res)
            if found is None:
                raise AwsError(
                    f"log group {res.name} was reported to exist but cannot be found", "Re-run `cdpoc up`."
                ) from exc
            if found.attrs["stack"] != run.stack:
                raise not_ours(res, "log group", found.attrs["tags"]) from exc
            return self.adopt(run, res, found, deps, "log group")
        group = self._group(run, res.name) or {}
        found = observed(
            res,
            self.kind,
            res.name,
            arn=_group_arn(group) if group else "",
            retention_days=None,
            **ownership(tags),
        )
        return self.converge(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        tags = dict(found.attrs.get("tags", {}))
        retention = found.attrs["retention_days"]
        for change in changes:
            if change.field == "tags":
                with aws_errors(f"tagging log group {res.name}"):
                    _logs(run).tag_resource(resourceArn=found.attrs["arn"], tags=dict(change.new))
                tags.update(change.new)
            elif change.field == "retention_days":
                with aws_errors(f"setting the retention of log group {res.name}"):
                    _logs(run).put_retention_policy(logGroupName=res.name, retentionInDays=change.new)
                retention = change.new
        return observed(
            res,
            self.kind,
            res.name,
            arn=found.attrs["arn"],
            retention_days=retention,
            **ownership(tags),
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        ignore_missing(
            f"deleting log group {found.id}", _logs(run).delete_log_group, LOG_GROUP_MISSING, logGroupName=found.id
        )

    def describe(self, found: Observed) -> str:
        days = found.attrs.get("retention_days")
        return f"{found.id} ({days} days)" if days else found.id


HANDLERS: tuple[Handler, ...] = (TopicHandler(), LogGroupHandler())
