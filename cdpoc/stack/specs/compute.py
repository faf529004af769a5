"""The compute kinds' specs: an EC2 instance, the app's launch template and its Auto Scaling group.

force_new lists what AWS cannot change on a running resource: an instance keeps the AMI, subnet, key
pair, user data and block devices it was launched with (its type changes only while it is stopped,
which for MongoDB is an outage cdpoc will not decide on its own). A launch template has none: any
difference becomes a new default version. A group changes everything through UpdateAutoScalingGroup,
the attach/detach calls, tags, PutScalingPolicy and the notification calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cdpoc.spec import Ref, Spec
from cdpoc.userdata import Script


@dataclass(frozen=True)
class MetadataOptions:
    """IMDSv2 only (a token for every metadata read), and instance tags readable from the metadata:
    the application reads its stack name there."""

    http_tokens: str = "required"
    http_endpoint: str = "enabled"
    instance_metadata_tags: str = "enabled"

    def as_aws(self) -> dict[str, str]:
        return {
            "HttpTokens": self.http_tokens,
            "HttpEndpoint": self.http_endpoint,
            "InstanceMetadataTags": self.instance_metadata_tags,
        }


@dataclass(frozen=True)
class DataVolume:
    """A second EBS volume for an instance's data, deleted with it unless `down --keep-data` snapshots it."""

    device: str
    size_gib: int
    type: str


@dataclass(frozen=True)
class InstanceSpec(Spec):
    kind: ClassVar[str] = "instance"
    force_new: ClassVar[frozenset[str]] = frozenset(
        {"instance_type", "ami_parameter", "subnet", "key_name", "user_data", "data_volume"}
    )

    instance_type: str
    # The public SSM parameter naming the AMI, read when the instance is launched.
    ami_parameter: str
    subnet: Ref
    security_groups: tuple[Ref, ...]
    key_name: str = ""
    profile: Ref | None = None  # the instance profile's "arn"
    eip: Ref | None = None  # an Elastic IP (its allocation id) associated with the instance
    user_data: Script | None = None
    data_volume: DataVolume | None = None
    metadata_options: MetadataOptions = MetadataOptions()


@dataclass(frozen=True)
class LaunchTags:
    """The component and Name tags instances (and their volumes) launched from the template carry."""

    component: str
    name: str


@dataclass(frozen=True)
class LaunchTemplateSpec(Spec):
    kind: ClassVar[str] = "launch_template"
    # Every field goes into a new default version (CreateLaunchTemplateVersion + ModifyLaunchTemplate).
    force_new: ClassVar[frozenset[str]] = frozenset()

    instance_type: str
    # Read when a version is created; the AMI id is never compared (a newer Amazon Linux release must
    # not make every `up` add a version).
    ami_parameter: str
    profile: Ref  # the instance profile's "arn"
    security_groups: tuple[Ref, ...]
    instance_tags: LaunchTags
    user_data: Script
    key_name: str = ""
    metadata_options: MetadataOptions = MetadataOptions()


@dataclass(frozen=True)
class ScalingPolicy:
    """Target tracking on the requests each instance behind the load balancer's target group gets."""

    name: str
    target_requests_per_instance: int
    load_balancer: Ref
    target_group: Ref


@dataclass(frozen=True)
class Notifications:
    topic: Ref
    types: tuple[str, ...]


@dataclass(frozen=True)
class AutoScalingGroupSpec(Spec):
    kind: ClassVar[str] = "autoscaling_group"
    force_new: ClassVar[frozenset[str]] = frozenset()

    launch_template: Ref
    subnets: tuple[Ref, ...]
    min_size: int
    # Set when the group is created; from then on the scaling policy's to move: never compared.
    desired_capacity: int
    max_size: int
    # Used for the cost estimate; the launch template is what sets it.
    instance_type: str
    target_groups: tuple[Ref, ...]
    health_check_type: str
    health_check_grace_period: int
    # The Name tag the group propagates to its instances.
    instance_name: str
    scaling_policy: ScalingPolicy
    notifications: Notifications
