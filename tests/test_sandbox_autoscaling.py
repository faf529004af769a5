"""The sandbox's Auto Scaling notification configurations, through boto3 (botocore validates both ways).

moto 5.2.5 has no Put/Describe/DeleteNotificationConfiguration(s); cdpoc/sandbox/additions.py adds
them. These tests pin their behaviour in-process and in server mode, and fail when moto starts
implementing them itself (then ours should go).
"""

from __future__ import annotations

import itertools
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from cdpoc.sandbox.additions import AUTOSCALING_NOTIFICATION_OPERATIONS, autoscaling_notifications_added
from cdpoc.sandbox.server import Sandbox

REGION = "us-east-1"
LAUNCH, LAUNCH_ERROR, TERMINATE, TERMINATE_ERROR = (
    f"autoscaling:EC2_INSTANCE_{event}" for event in ("LAUNCH", "LAUNCH_ERROR", "TERMINATE", "TERMINATE_ERROR")
)
GROUP_NUMBERS = itertools.count(1)


def topic(name: str) -> str:
    return f"arn:aws:sns:{REGION}:123456789012:{name}"


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def make_group(autoscaling: Any, ec2: Any, name: str = "") -> str:
    name = name or f"group-{next(GROUP_NUMBERS)}"
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{name}-{next(GROUP_NUMBERS)}",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=0,
        MaxSize=1,
        AvailabilityZones=[f"{REGION}a"],
    )
    return name


@pytest.fixture(scope="class")
def moto_session() -> Iterator[None]:
    # One in-process session for the class: moto's start-up costs seconds; each test uses its own groups.
    with mock_aws():
        yield


@pytest.fixture
def autoscaling(moto_session: None) -> Any:
    return boto3.client("autoscaling", region_name=REGION)


@pytest.fixture
def group(autoscaling: Any) -> str:
    return make_group(autoscaling, boto3.client("ec2", region_name=REGION))


def configurations(autoscaling: Any, *groups: str) -> list[tuple[str, str, str]]:
    reply = autoscaling.describe_notification_configurations(AutoScalingGroupNames=list(groups))
    return [
        (c["AutoScalingGroupName"], c["TopicARN"], c["NotificationType"]) for c in reply["NotificationConfigurations"]
    ]


def test_moto_still_lacks_the_operations_so_ours_serve_them() -> None:
    added = autoscaling_notifications_added()
    assert added == list(AUTOSCALING_NOTIFICATION_OPERATIONS), (
        f"moto now implements {sorted(set(AUTOSCALING_NOTIFICATION_OPERATIONS) - set(added))} itself: "
        "drop cdpoc's addition in cdpoc/sandbox/additions.py and re-check cdpoc against moto's version"
    )


class TestInProcess:
    def test_put_describe_delete_round_trip(self, autoscaling: Any, group: str) -> None:
        alerts = topic("alerts")
        autoscaling.put_notification_configuration(
            AutoScalingGroupName=group,
            TopicARN=alerts,
            NotificationTypes=[LAUNCH, LAUNCH_ERROR, TERMINATE, TERMINATE_ERROR],
        )
        reply = autoscaling.describe_notification_configurations(AutoScalingGroupNames=[group])
        assert reply["NotificationConfigurations"] == [
            {"AutoScalingGroupName": group, "TopicARN": alerts, "NotificationType": kind}
            for kind in (LAUNCH, LAUNCH_ERROR, TERMINATE, TERMINATE_ERROR)
        ]
        assert "NextToken" not in reply
        autoscaling.delete_notification_configuration(AutoScalingGroupName=group, TopicARN=alerts)
        assert configurations(autoscaling, group) == []

    def test_put_replaces_the_types_of_that_topic_only(self, autoscaling: Any, group: str) -> None:
        autoscaling.put_notification_configuration(
            AutoScalingGroupName=group, TopicARN=topic("a"), NotificationTypes=[LAUNCH, TERMINATE]
        )
        autoscaling.put_notification_configuration(
            AutoScalingGroupName=group, TopicARN=topic("b"), NotificationTypes=[LAUNCH]
        )
        autoscaling.put_notification_configuration(
            AutoScalingGroupName=group, TopicARN=topic("a"), NotificationTypes=[TERMINATE_ERROR]
        )
        assert configurations(autoscaling, group) == [
            (group, topic("a"), TERMINATE_ERROR),
            (group, topic("b"), LAUNCH),
        ]

    def test_describe_filters_by_group_and_pages(self, autoscaling: Any) -> None:
        ec2 = boto3.client("ec2", region_name=REGION)
        first, second = make_group(autoscaling, ec2), make_group(autoscaling, ec2)
        for name in (first, second):
            autoscaling.put_notification_configuration(
                AutoScalingGroupName=name, TopicARN=topic("t"), NotificationTypes=[LAUNCH, TERMINATE]
            )
        assert {g for g, _, _ in configurations(autoscaling, first)} == {first}
        everything = autoscaling.describe_notification_configurations()["NotificationConfigurations"]
        assert {c["AutoScalingGroupName"] for c in everything} >= {first, second}

        pages = list(
            autoscaling.get_paginator("describe_notification_configurations").paginate(
                AutoScalingGroupNames=[first, second], PaginationConfig={"PageSize": 3}
            )
        )
        assert [len(p["NotificationConfigurations"]) for p in pages] == [3, 1]
        with pytest.raises(ClientError) as bad_token:
            autoscaling.describe_notification_configurations(NextToken="not-a-token")
        assert code(bad_token) == "InvalidNextToken"

    def test_invalid_requests_are_refused_as_aws_does(self, autoscaling: Any, group: str) -> None:
        with pytest.raises(ClientError) as unknown_group:
            autoscaling.put_notification_configuration(
                AutoScalingGroupName="no-such-group", TopicARN=topic("t"), NotificationTypes=[LAUNCH]
            )
        assert code(unknown_group) == "ValidationError"
        with pytest.raises(ClientError) as unknown_type:
            autoscaling.put_notification_configuration(
                AutoScalingGroupName=group, TopicARN=topic("t"), NotificationTypes=["autoscaling:EC2_INSTANCE_REBOOT"]
            )
        assert code(unknown_type) == "ValidationError"
        for number in range(10):
            autoscaling.put_notification_configuration(
                AutoScalingGroupName=group, TopicARN=topic(f"t{number}"), NotificationTypes=[LAUNCH]
            )
        with pytest.raises(ClientError) as eleventh:
            autoscaling.put_notification_configuration(
                AutoScalingGroupName=group, TopicARN=topic("t10"), NotificationTypes=[LAUNCH]
            )
        assert code(eleventh) == "LimitExceeded"

    def test_deleting_the_group_deletes_its_configurations(self, autoscaling: Any, group: str) -> None:
        autoscaling.put_notification_configuration(
            AutoScalingGroupName=group, TopicARN=topic("t"), NotificationTypes=[LAUNCH]
        )
        autoscaling.delete_auto_scaling_group(AutoScalingGroupName=group, ForceDelete=True)
        assert configurations(autoscaling, group) == []
        make_group(autoscaling, boto3.client("ec2", region_name=REGION), group)
        assert configurations(autoscaling, group) == []


def test_server_mode_serves_them_and_moto_reset_clears_them() -> None:
    # In server mode a missing operation is an HTTP 500 that botocore retries; ours must answer.
    with Sandbox() as sandbox:
        clients = {
            service: boto3.client(
                service,
                region_name=REGION,
                endpoint_url=sandbox.endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            for service in ("autoscaling", "ec2")
        }
        autoscaling = clients["autoscaling"]
        group = make_group(autoscaling, clients["ec2"], "served")
        autoscaling.put_notification_configuration(
            AutoScalingGroupName=group, TopicARN=topic("t"), NotificationTypes=[LAUNCH, TERMINATE]
        )
        assert configurations(autoscaling, group) == [(group, topic("t"), LAUNCH), (group, topic("t"), TERMINATE)]

        urllib.request.urlopen(urllib.request.Request(f"{sandbox.endpoint}/moto-api/reset", method="POST")).close()
        make_group(autoscaling, clients["ec2"], group)
        assert configurations(autoscaling, group) == []


def test_a_group_name_in_use_is_refused_and_the_group_keeps_its_instances() -> None:
    """AWS answers CreateAutoScalingGroup for a name in use with AlreadyExists (moto 5.2.5 replaced the
    group, orphaning its instances: a retried create after a lost answer must not do that)."""
    with mock_aws():
        autoscaling, ec2 = boto3.client("autoscaling", region_name=REGION), boto3.client("ec2", region_name=REGION)
        name = make_group(autoscaling, ec2)
        autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=1)
        before = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        with pytest.raises(ClientError) as refused:
            make_group(autoscaling, ec2, name)
        assert code(refused) == "AlreadyExists"
        after = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        assert [i["InstanceId"] for i in after["Instances"]] == [i["InstanceId"] for i in before["Instances"]]
        assert len(after["Instances"]) == 1
