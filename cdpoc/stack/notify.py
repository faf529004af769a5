"""Notifications and logs: the alerts SNS topic (with the operator's email subscription) and the log group."""

from __future__ import annotations

from cdpoc.model import Resource
from cdpoc.stack.names import StackNames
from cdpoc.stack.parts import LOG_GROUP


def declare(names: StackNames) -> list[Resource]:
    topic = f"{names.name}-alerts"
    return [
        Resource(
            "topic.alerts",
            "sns_topic",
            topic,
            {"arn": names.arn("sns", topic), "email": names.settings.operator.email},
        ),
        Resource(
            LOG_GROUP.key, LOG_GROUP.kind, names.log_group, {"retention_days": names.settings.logs.retention_days}
        ),
    ]
