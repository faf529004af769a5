"""Notifications and logs: the alerts SNS topic (with the operator's email subscription) and the log group."""

from __future__ import annotations

from cdpoc.model import Resource
from cdpoc.spec import declare as declare_spec
from cdpoc.stack.names import StackNames
from cdpoc.stack.parts import LOG_GROUP
from cdpoc.stack.specs.notify import LogGroupSpec, TopicSpec


def declare(names: StackNames) -> list[Resource]:
    topic = f"{names.name}-alerts"
    email = names.settings.operator.email
    return [
        declare_spec(
            "topic.alerts",
            topic,
            TopicSpec(arn=names.arn("sns", topic), email_subscriptions=(email,) if email else ()),
        ),
        declare_spec(LOG_GROUP.key, names.log_group, LogGroupSpec(retention_days=names.settings.logs.retention_days)),
    ]
