"""Specs of the notification and log kinds: the SNS topic and the CloudWatch Logs log group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cdpoc.spec import Spec


@dataclass(frozen=True)
class TopicSpec(Spec):
    """An SNS topic, found by its deterministic ARN, with the email addresses subscribed to it (the whole
    set: a confirmed subscription of an address no longer listed is removed; a pending one cannot be)."""

    kind: ClassVar[str] = "sns_topic"
    arn: str
    email_subscriptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogGroupSpec(Spec):
    """A log group and how many days its events are kept (PutRetentionPolicy changes it in place)."""

    kind: ClassVar[str] = "log_group"
    retention_days: int
