"""Operations moto lacks, added to its service Response classes (moto dispatches by snake_case name).

Each addition is shaped like the botocore service model; tests/test_sandbox*.py pin them. The list
grows as commands need operations moto 5.2.5 does not implement.

Responses are built like moto's own: an ActionResult (or EmptyResult) that moto serializes with the
operation's botocore output shape, and errors raised as moto ServiceExceptions whose code is the
model's error code. State lives on moto's backend objects, so moto's reset clears it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ADDITIONS: list[Callable[[], None]] = []
_installed = False


def install() -> None:
    """Apply every addition once per process (before any request is served)."""
    global _installed
    if _installed:
        return
    for add in ADDITIONS:
        add()
    _installed = True


# --- Auto Scaling: notification configurations ----------------------------------------------------

AUTOSCALING_NOTIFICATION_TYPES = (
    "autoscaling:EC2_INSTANCE_LAUNCH",
    "autoscaling:EC2_INSTANCE_LAUNCH_ERROR",
    "autoscaling:EC2_INSTANCE_TERMINATE",
    "autoscaling:EC2_INSTANCE_TERMINATE_ERROR",
    "autoscaling:TEST_NOTIFICATION",
)
# "If you exceed your maximum limit of SNS topics, which is 10 per Auto Scaling group, the call fails."
AUTOSCALING_TOPICS_PER_GROUP = 10
AUTOSCALING_MAX_RECORDS = 100
AUTOSCALING_DEFAULT_RECORDS = 50
AUTOSCALING_NOTIFICATION_OPERATIONS = (
    "put_notification_configuration",
    "describe_notification_configurations",
    "delete_notification_configuration",
)
# Where a group keeps its configurations: {topic ARN: notification types}. On the group object itself,
# so that deleting the group deletes them, as AWS does.
_NOTIFICATIONS_ATTR = "cdpoc_notification_configurations"


def _autoscaling_group(backend: Any, name: str) -> Any:
    from moto.autoscaling.exceptions import ValidationError

    group = backend.autoscaling_groups.get(name)
    if group is None:
        raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup '{name}' not found")
    return group


def _notifications_of(group: Any) -> dict[str, tuple[str, ...]]:
    configurations: dict[str, tuple[str, ...]] = group.__dict__.setdefault(_NOTIFICATIONS_ATTR, {})
    return configurations


def _put_notification_configuration(self: Any) -> Any:
    from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
    from moto.core.responses import EmptyResult

    class LimitExceeded(AutoscalingClientError):
        code = "LimitExceeded"

    group = _autoscaling_group(self.autoscaling_backend, self._get_param("AutoScalingGroupName"))
    topic = self._get_param("TopicARN")
    types = list(self._get_param("NotificationTypes", []))
    unknown = [t for t in types if t not in AUTOSCALING_NOTIFICATION_TYPES]
    if unknown or not types:
        raise ValidationError(f"Invalid notification types: {', '.join(unknown) or '(none given)'}")
    configurations = _notifications_of(group)
    if topic not in configurations and len(configurations) >= AUTOSCALING_TOPICS_PER_GROUP:
        raise LimitExceeded(f"Auto Scaling group {group.name} already notifies {AUTOSCALING_TOPICS_PER_GROUP} topics")
    # "This configuration overwrites any existing configuration" (for this group and topic).
    configurations[topic] = tuple(dict.fromkeys(types))
    return EmptyResult()


def _describe_notification_configurations(self: Any) -> Any:
    from moto.autoscaling.exceptions import AutoscalingClientError
    from moto.core.responses import ActionResult

    class InvalidNextToken(AutoscalingClientError):
        code = "InvalidNextToken"

    groups = self.autoscaling_backend.autoscaling_groups
    names = self._get_param("AutoScalingGroupNames", []) or list(groups)
    records = [
        {"AutoScalingGroupName": name, "TopicARN": topic, "NotificationType": notification_type}
        for name in names
        if name in groups
        for topic, types in sorted(_notifications_of(groups[name]).items())
        for notification_type in types
    ]
    token = self._get_param("NextToken")
    if token is not None and (not str(token).isdigit() or int(token) > len(records)):
        raise InvalidNextToken("The token is invalid.")
    start = int(token) if token else 0
    size = min(self._get_int_param("MaxRecords") or AUTOSCALING_DEFAULT_RECORDS, AUTOSCALING_MAX_RECORDS)
    page = records[start : start + size]
    next_token = str(start + size) if start + size < len(records) else None
    return ActionResult({"NotificationConfigurations": page, "NextToken": next_token})


def _delete_notification_configuration(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    group = _autoscaling_group(self.autoscaling_backend, self._get_param("AutoScalingGroupName"))
    _notifications_of(group).pop(self._get_param("TopicARN"), None)
    return EmptyResult()


_AUTOSCALING_NOTIFICATION_METHODS = dict(
    zip(
        AUTOSCALING_NOTIFICATION_OPERATIONS,
        (_put_notification_configuration, _describe_notification_configurations, _delete_notification_configuration),
        strict=True,
    )
)


def add_autoscaling_notifications() -> None:
    """Give moto's Auto Scaling the three operations; one moto implements itself is left to moto."""
    from moto.autoscaling.responses import AutoScalingResponse

    for operation, method in _AUTOSCALING_NOTIFICATION_METHODS.items():
        if not hasattr(AutoScalingResponse, operation):
            setattr(AutoScalingResponse, operation, method)


def autoscaling_notifications_added() -> list[str]:
    """The operations served by these additions rather than by moto (all three with moto 5.2.5)."""
    from moto.autoscaling.responses import AutoScalingResponse

    return [
        operation
        for operation, method in _AUTOSCALING_NOTIFICATION_METHODS.items()
        if getattr(AutoScalingResponse, operation, None) is method
    ]


ADDITIONS.append(add_autoscaling_notifications)


def add_cicd_simulation() -> None:
    """CodeCommit/CodeDeploy/CodePipeline operations and the commit -> pipeline -> deployment simulation."""
    from cdpoc.sandbox.cicd import install as install_cicd  # imports moto: only once its settings are in place

    install_cicd()


ADDITIONS.append(add_cicd_simulation)


def add_idempotent_creates() -> None:
    """Repeated creates (same ClientToken; ELBv2: same settings) answered with the first result, as on AWS."""
    from cdpoc.sandbox.idempotency import install as install_idempotency  # imports moto, like the CI/CD one

    install_idempotency()


ADDITIONS.append(add_idempotent_creates)
