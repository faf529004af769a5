"""Compute: the bastion (with its Elastic IP), the MongoDB instance, the app launch template and Auto Scaling group.

Every instance runs Amazon Linux 2023 (the AMI is read from the public SSM parameter when it is
launched) with IMDSv2 required and instance tags in the metadata, which the deployed application
reads its stack name from. The user data scripts are described by the specs below (cdpoc.userdata
renders them): names only, never a secret.
"""

from __future__ import annotations

import re
from typing import Any

from cdpoc.errors import ConfigError
from cdpoc.model import Resource
from cdpoc.spec import Ref
from cdpoc.spec import declare as spec_resource
from cdpoc.stack.iam import APP_PROFILE, MONGODB_PROFILE
from cdpoc.stack.names import StackNames
from cdpoc.stack.parts import (
    BASTION,
    BASTION_ADDRESS,
    DATABASE,
    FLEET,
    LOAD_BALANCER,
    LOG_GROUP,
    SITE_BUCKET,
    TARGET_GROUP,
)
from cdpoc.stack.specs.compute import (
    AutoScalingGroupSpec,
    DataVolume,
    InstanceSpec,
    LaunchTags,
    LaunchTemplateSpec,
    Notifications,
    ScalingPolicy,
)
from cdpoc.stack.specs.network import ElasticIpSpec
from cdpoc.userdata import AppInstanceScript, MongoDbScript, Origin

APP_SUBNETS = ("subnet.app.a", "subnet.app.b")

# Tag keys the instance metadata service can show (instance tags in IMDS are enabled): no spaces or
# slashes, and not ".", ".." or "_index". AWS refuses to launch an instance with any other key.
IMDS_TAG_KEY = re.compile(r"^[A-Za-z0-9+\-=._:@]{1,128}$")
IMDS_RESERVED_KEYS = {".", "..", "_index"}

ASG_NOTIFICATIONS = (
    "autoscaling:EC2_INSTANCE_LAUNCH",
    "autoscaling:EC2_INSTANCE_LAUNCH_ERROR",
    "autoscaling:EC2_INSTANCE_TERMINATE",
    "autoscaling:EC2_INSTANCE_TERMINATE_ERROR",
)

# Until the first deployment succeeds there is no application to check (AWS-NOTES: CodeDeploy with an
# Auto Scaling group). After it, cdpoc.rollout switches the group to ELB health checks, and `up` keeps
# them (they include EC2's); declaring "ELB" here would switch at the next `up` instead.
INITIAL_HEALTH_CHECK_TYPE = "EC2"
HEALTH_CHECK_GRACE_SECONDS = 300

# MongoDB's data lives on a volume of its own, mounted at its dbPath by the user data, so that
# `down --keep-data` can snapshot exactly the data and `up` can launch MongoDB with it again. /dev/sdf:
# the first name AWS suggests for data volumes; Amazon Linux links the NVMe device to it.
MONGODB_DATA_VOLUME = DataVolume(device="/dev/sdf", size_gib=10, type="gp3")


def check_imds_tag_keys(names: StackNames) -> None:
    bad = [k for k in names.settings.tags if not IMDS_TAG_KEY.match(k) or k in IMDS_RESERVED_KEYS]
    if bad:
        raise ConfigError(
            f"tags: {', '.join(repr(k) for k in bad)} cannot be an instance tag key while instance tags are in "
            "the instance metadata (letters, digits and + - = . _ : @ only; not '.', '..' or '_index')",
            "Rename those tags; the application reads its stack name from the instance metadata tags.",
        )


def _instance(names: StackNames, instance_type: str, subnet: str, security_group: str, **more: Any) -> InstanceSpec:
    return InstanceSpec(
        instance_type=instance_type,
        ami_parameter=names.settings.compute.ami_parameter,
        subnet=Ref(subnet),
        security_groups=(Ref(security_group),),
        key_name=names.settings.operator.key_name or "",
        **more,
    )


def bastion(names: StackNames) -> list[Resource]:
    compute = names.settings.compute
    spec = _instance(names, compute.bastion_instance_type, "subnet.bastion", "sg.bastion", eip=Ref(BASTION_ADDRESS.key))
    return [
        # Associating it needs the internet gateway attached; releasing it must come before the detach.
        spec_resource(BASTION_ADDRESS.key, f"{names.name}-bastion", ElasticIpSpec(), after=("igw",)),
        # The bastion is only reachable once its subnet routes to the internet gateway and its network
        # ACL lets SSH in; in `down`, it goes before them.
        spec_resource(BASTION.key, f"{names.name}-bastion", spec, after=("rt.public", "nacl.bastion")),
    ]


def mongodb(names: StackNames) -> Resource:
    compute = names.settings.compute
    spec = _instance(
        names,
        compute.mongodb_instance_type,
        "subnet.data.a",
        "sg.data",
        # Its own profile: an app host's role may not read the MongoDB admin password.
        profile=Ref(MONGODB_PROFILE, "arn"),
        user_data=MongoDbScript(
            stack=names.name,
            admin_password_parameter=Ref("param.mongodb.admin-password"),
            app_password_parameter=Ref("param.mongodb.app-password"),
            uploads_bucket=names.bucket("uploads"),
            data_device=MONGODB_DATA_VOLUME.device,
            web_origin=Origin(Ref(SITE_BUCKET.key, "website_url")),
        ),
        data_volume=MONGODB_DATA_VOLUME,
    )
    # The user data installs from the internet at boot: the route through the NAT gateway, the tier's
    # network ACL and the S3 endpoint should be in place first (it reads both passwords from SSM, whose
    # parameters its spec references).
    return spec_resource(
        DATABASE.key, f"{names.name}-mongodb", spec, after=("rt.private.a", "nacl.data", "endpoint.s3")
    )


def app_fleet(names: StackNames) -> list[Resource]:
    compute = names.settings.compute
    instance_name = f"{names.name}-app"
    template = spec_resource(
        "launch_template.app",
        f"{names.name}-app",
        LaunchTemplateSpec(
            instance_type=compute.instance_type,
            ami_parameter=compute.ami_parameter,
            profile=Ref(APP_PROFILE, "arn"),
            security_groups=(Ref("sg.app"),),
            key_name=names.settings.operator.key_name or "",
            # Instances and their volumes carry the group's component; the group's own tags (propagated
            # at launch) take precedence over these where keys overlap.
            instance_tags=LaunchTags(component=FLEET.key, name=instance_name),
            user_data=AppInstanceScript(stack=names.name, log_group=Ref(LOG_GROUP.key)),
        ),
    )
    group = spec_resource(
        FLEET.key,
        f"{names.name}-app",
        AutoScalingGroupSpec(
            launch_template=Ref("launch_template.app"),
            subnets=tuple(Ref(key) for key in APP_SUBNETS),
            min_size=compute.min_size,
            desired_capacity=compute.desired_capacity,
            max_size=compute.max_size,
            instance_type=compute.instance_type,
            target_groups=(Ref(TARGET_GROUP.key),),
            health_check_type=INITIAL_HEALTH_CHECK_TYPE,
            health_check_grace_period=HEALTH_CHECK_GRACE_SECONDS,
            instance_name=instance_name,
            scaling_policy=ScalingPolicy(
                name=f"{names.name}-requests-per-instance",
                target_requests_per_instance=compute.target_requests_per_instance,
                load_balancer=Ref(LOAD_BALANCER.key),
                target_group=Ref(TARGET_GROUP.key),
            ),
            notifications=Notifications(topic=Ref("topic.alerts"), types=ASG_NOTIFICATIONS),
        ),
        after=(
            # The listener joins the ALB and the target group, which the ALBRequestCountPerTarget metric needs.
            "listener.http",
            # The instances install their agents at boot: through the NAT gateway's routes, the tier's
            # network ACL and the S3 endpoint (the CodeDeploy agent's bucket).
            "rt.private.a",
            "rt.private.b",
            "nacl.app",
            "endpoint.s3",
        ),
    )
    return [template, group]


def declare(names: StackNames) -> list[Resource]:
    check_imds_tag_keys(names)
    return [*bastion(names), mongodb(names), *app_fleet(names)]
