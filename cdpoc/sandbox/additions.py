"""Operations moto lacks, added to its service Response classes (moto dispatches by snake_case name).

Each addition is shaped like the botocore service model; tests/test_sandbox*.py pin them. The list
grows as commands need operations moto 5.2.5 does not implement.

Responses are built like moto's own: an ActionResult (or EmptyResult) that moto serializes with the
operation's botocore output shape, and errors raised as moto ServiceExceptions whose code is the
model's error code. State lives on moto's backend objects, so moto's reset clears it.
"""

from __future__ import annotations

import threading
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


# --- Auto Scaling: a group name is taken -------------------------------------------------------------


def create_auto_scaling_group(self: Any, original: Any) -> Any:
    """AWS refuses a name in use (AlreadyExists); moto 5.2.5 replaces the group and orphans its instances."""
    from moto.autoscaling.exceptions import AutoscalingClientError

    class AlreadyExists(AutoscalingClientError):
        code = "AlreadyExists"

    name = self._get_param("AutoScalingGroupName")
    if name in self.autoscaling_backend.autoscaling_groups:
        raise AlreadyExists(f"AutoScalingGroup by this name already exists - A group with the name {name} exists")
    return original(self)


def refuse_taken_group_names() -> None:
    from moto.autoscaling.responses import AutoScalingResponse

    from cdpoc.sandbox.patching import replace_operations

    replace_operations(AutoScalingResponse, create_auto_scaling_group)


ADDITIONS.append(refuse_taken_group_names)


# --- one request at a time ----------------------------------------------------------------------------


def _service_of(authorization: str) -> str:
    """The service a signed request is for: "Credential=<key>/<date>/<region>/<service>/aws4_request"."""
    scope = authorization.partition("Credential=")[2].split(",", 1)[0].split("/")
    return scope[3] if len(scope) > 3 else ""


_SERVICE_LOCKS: dict[str, threading.RLock] = {}
_SERVICE_LOCKS_GUARD = threading.Lock()


def _service_lock(service: str) -> threading.RLock:
    with _SERVICE_LOCKS_GUARD:
        return _SERVICE_LOCKS.setdefault(service, threading.RLock())


def serialize_requests() -> None:
    """moto's backends are plain dicts with no locking: two requests to one service at once (cdpoc's
    executor runs eight) can fail with "dictionary changed size during iteration", a 500 no AWS service
    gives. Requests to one service, in-process (the botocore stubber) or served (the WSGI app), take
    turns; different services still run side by side, as on AWS (a slow EC2 call does not hold up SSM)."""
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    stub_original = vars(BotocoreStubber)["process_request"]
    served_original = vars(DomainDispatcherApplication)["__call__"]

    def in_process(self: Any, request: Any) -> Any:
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode("latin-1")
        with _service_lock(_service_of(authorization)):
            return stub_original(self, request)

    def served(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        with _service_lock(_service_of(environ.get("HTTP_AUTHORIZATION", ""))):
            return served_original(self, environ, start_response)

    wrappers: tuple[tuple[type, str, Any], ...] = (
        (BotocoreStubber, "process_request", in_process),
        (DomainDispatcherApplication, "__call__", served),
    )
    for owner, name, wrapper in wrappers:
        if not getattr(vars(owner)[name], "cdpoc_serialized", False):
            wrapper.cdpoc_serialized = True
            setattr(owner, name, wrapper)


ADDITIONS.append(serialize_requests)


def add_idempotent_creates() -> None:
    """Repeated creates (same ClientToken; ELBv2: same settings) answered with the first result, as on AWS."""
    from cdpoc.sandbox.idempotency import install as install_idempotency  # imports moto, like the CI/CD one

    install_idempotency()


ADDITIONS.append(add_idempotent_creates)


# --- S3: tags given to CreateBucket -------------------------------------------------------------------


def _create_bucket_tags(body: bytes | str | None) -> dict[str, str]:
    """CreateBucketConfiguration.Tags of a CreateBucket body, as {key: value}."""
    import xmltodict

    if not body:
        return {}
    configuration = xmltodict.parse(body).get("CreateBucketConfiguration") or {}
    tags = (configuration.get("Tags") or {}).get("Tag") or []
    return {t["Key"]: t.get("Value") or "" for t in (tags if isinstance(tags, list) else [tags])}


def tag_buckets_at_creation() -> None:
    """AWS tags a new bucket with CreateBucketConfiguration.Tags, in the create itself (so a bucket is never
    untagged, even when the run stops right after creating it); moto 5.2.5 ignores them. A CreateBucket that
    answers for a bucket that already existed (us-east-1 repeats) leaves its tags alone, as AWS does."""
    from moto.s3.responses import S3Response

    original = vars(S3Response)["_bucket_response_put"]
    if getattr(original, "cdpoc_tags", False):
        return

    def bucket_response_put(self: Any, request: Any, bucket_name: str, querystring: dict[str, Any]) -> Any:
        creating = not querystring and bucket_name not in self.backend.buckets
        result = original(self, request, bucket_name, querystring)
        tags = _create_bucket_tags(self.body) if creating else {}
        if tags and bucket_name in self.backend.buckets:
            self.backend.put_bucket_tagging(bucket_name, tags)
        return result

    bucket_response_put.cdpoc_tags = True  # type: ignore[attr-defined]
    S3Response._bucket_response_put = bucket_response_put  # type: ignore[method-assign]


ADDITIONS.append(tag_buckets_at_creation)


# --- EC2: replacing a network ACL association that is gone ---------------------------------------------


def replace_network_acl_association(self: Any, original: Any) -> Any:
    """AWS answers an association id that no longer exists (a retry after a lost answer names the one the
    first attempt replaced) with InvalidAssociationID.NotFound, and an unknown ACL with
    InvalidNetworkAclID.NotFound, changing nothing; moto 5.2.5 fails with a StopIteration (a 500) on the
    first, and on the second has already detached the subnet from its old ACL."""
    from moto.ec2.exceptions import InvalidAssociationIdError

    association_id = self._get_param("AssociationId")
    acls = self.ec2_backend.network_acls.values()
    if not any(association_id in acl._associations for acl in acls):
        raise InvalidAssociationIdError(association_id)
    self.ec2_backend.get_network_acl(self._get_param("NetworkAclId"))  # raises InvalidNetworkAclID.NotFound
    return original(self)


def refuse_unknown_network_acl_associations() -> None:
    from moto.ec2.responses.network_acls import NetworkACLs

    from cdpoc.sandbox.patching import replace_operations

    replace_operations(NetworkACLs, replace_network_acl_association)


ADDITIONS.append(refuse_unknown_network_acl_associations)


# --- delete order: the deletes AWS refuses while something depends on the resource ---------------------


def refuse_deletes_aws_refuses() -> None:
    """DependencyViolation and friends where moto deletes anyway; NAT gateways `deleting` before `deleted`;
    tag filters on DescribeNatGateways (cdpoc/sandbox/deletes.py)."""
    from cdpoc.sandbox.deletes import install as install_deletes  # imports moto, like the CI/CD one

    install_deletes()


ADDITIONS.append(refuse_deletes_aws_refuses)


# --- health and time: readiness delays, target health, what instances answer ----------------------------


def add_health_and_time() -> None:
    """NAT gateways and load balancers ready after AWS-like delays, target health from simulated health
    checks, terminated targets draining away (cdpoc/sandbox/health.py)."""
    from cdpoc.sandbox.health import install as install_health  # imports moto, like the CI/CD one

    install_health()


ADDITIONS.append(add_health_and_time)


# --- IAM evaluation: the simulated services act with the roles they were given ---------------------------
# No Response class is patched for this: the CI/CD simulation installed above (add_cicd_simulation) asks
# cdpoc/sandbox/service_roles.py, at the moment each simulated service acts, whether the role it acts with
# allows it (cdpoc/sandbox/iam_evaluation.py: AWS's evaluation logic over the role's inline and managed
# policies in moto's IAM backend). CodePipeline's source and deploy actions (pipeline roleArn), CodeDeploy
# (the deployment group's service role), the agent on each instance (its instance profile's role) and
# EventBridge starting a pipeline (the target's RoleArn). Tests: tests/test_sandbox_iam.py.


# --- Auto Scaling with CodeDeploy: launch hooks hold new instances, launch deployments, placement ---------


def add_scale_out() -> None:
    """New instances wait in Pending:Wait for their group's launch hooks; CodeDeploy's hook gets a deployment of
    the last successful revision (creator autoscaling) and completes with its outcome; instances spread over
    the group's zones and take the launch template's MetadataOptions (cdpoc/sandbox/scaleout.py)."""
    from cdpoc.sandbox.scaleout import install as install_scale_out  # imports moto, like the CI/CD one

    install_scale_out()


ADDITIONS.append(add_scale_out)


# --- EC2: an instance's profile is the one its association holds -----------------------------------------


def replace_iam_instance_profile_association(self: Any, original: Any) -> Any:
    """After ReplaceIamInstanceProfileAssociation, AWS's DescribeInstances shows the new profile on the instance
    (IamInstanceProfile: the profile's Arn and Id); moto 5.2.5 replaces the association but the instance keeps
    showing the profile it was launched with, so a second `plan` would see the old one and replace it again."""
    answer = original(self)
    association_id = self._get_param("AssociationId")
    for instance_id, association in self.ec2_backend.iam_instance_profile_associations.items():
        if association.association_id == association_id:
            profile = association.iam_instance_profile
            self.ec2_backend.modify_instance_attribute(
                instance_id, "iam_instance_profile", {"Arn": profile.arn, "Id": profile.id}
            )
    return answer


def instance_profile_follows_its_association() -> None:
    from moto.ec2.responses.iam_instance_profiles import IamInstanceProfiles

    from cdpoc.sandbox.patching import replace_operations

    replace_operations(IamInstanceProfiles, replace_iam_instance_profile_association)


ADDITIONS.append(instance_profile_follows_its_association)


# --- S3: bucket policies with conditions ----------------------------------------------------------------


# What a request to the sandbox's endpoint stands for: an AWS SDK call, which reaches S3 over HTTPS (the
# sandbox itself speaks plain HTTP only because it is a local stand-in).
S3_REQUEST_CONTEXT = {"aws:SecureTransport": "true"}


def bucket_permission(self: Any, action: str, resource: str) -> Any:
    """A bucket policy's verdict on an action, as AWS evaluates it: a statement applies only when its Condition
    holds (moto 5.2.5 ignores Condition, so a TLS-only Deny refused every request). Only statements for any
    principal (`*`) are considered: moto asks without saying who calls."""
    from moto.iam.access_control import PermissionResult

    from cdpoc.sandbox.iam_evaluation import Policy, Request, statement_applies

    if self.policy is None:
        return PermissionResult.NEUTRAL
    request = Request(action, resource, S3_REQUEST_CONTEXT)
    verdict = PermissionResult.NEUTRAL
    for _, statement in Policy.parse("bucket policy", self.policy.decode()).statements():
        if statement.get("Principal") not in ("*", {"AWS": "*"}) or not statement_applies(statement, request):
            continue
        if statement.get("Effect") == "Deny":
            return PermissionResult.DENIED
        verdict = PermissionResult.PERMITTED
    return verdict


def evaluate_bucket_policy_conditions() -> None:
    from moto.s3.models import FakeBucket

    FakeBucket.get_permission = bucket_permission  # type: ignore[method-assign]


ADDITIONS.append(evaluate_bucket_policy_conditions)
