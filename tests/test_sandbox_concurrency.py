"""The sandbox answers concurrent requests the way AWS does: correctly. moto's backends have no locks, so
requests to one service take turns; requests to different services still run side by side."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from moto.ec2.models.vpcs import VPCBackend
from moto.iam.models import IAMBackend

pytestmark = pytest.mark.usefixtures("aws")

REGION = "us-east-1"
WAIT = 30.0


def test_two_requests_to_one_service_never_run_inside_moto_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    inside, most, guard = [0], [0], threading.Lock()
    create_role = IAMBackend.create_role

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            threading.Event().wait(0.05)  # long enough for the other thread to arrive
            return create_role(self, *args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(IAMBackend, "create_role", counting)
    iam = boto3.client("iam", region_name=REGION)
    document = '{"Version": "2012-10-17", "Statement": []}'
    threads = [
        threading.Thread(target=iam.create_role, kwargs={"RoleName": f"r{n}", "AssumeRolePolicyDocument": document})
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert most[0] == 1
    assert len(iam.list_roles()["Roles"]) == 4


def test_a_slow_call_to_one_service_does_not_hold_up_another(monkeypatch: pytest.MonkeyPatch) -> None:
    hanging, release = threading.Event(), threading.Event()
    create_vpc = VPCBackend.create_vpc

    def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        hanging.set()
        release.wait(WAIT)
        return create_vpc(self, *args, **kwargs)

    monkeypatch.setattr(VPCBackend, "create_vpc", slow)
    ec2, ssm = boto3.client("ec2", region_name=REGION), boto3.client("ssm", region_name=REGION)
    thread = threading.Thread(target=ec2.create_vpc, kwargs={"CidrBlock": "10.0.0.0/16"})
    thread.start()
    try:
        assert hanging.wait(WAIT)
        ssm.put_parameter(Name="/free", Value="x", Type="String")  # answered while CreateVpc still hangs
        assert not release.is_set()
    finally:
        release.set()
        thread.join(WAIT)
