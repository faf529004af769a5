"""Waiting with botocore's waiters, one attempt at a time: what counts as "not yet" and what as failure."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from cdpoc.aws.clients import ClientFactory
from cdpoc.aws.run import AwsRun, Waits
from cdpoc.errors import AwsError

VPC = {"VpcId": "vpc-1", "State": "available", "CidrBlock": "10.0.0.0/16"}


def run_with_stub(service: str) -> tuple[AwsRun, Stubber]:
    clients = ClientFactory("us-east-1", endpoint_url="http://127.0.0.1:9")
    stubber = Stubber(clients.client(service))
    stubber.activate()
    return AwsRun(clients=clients, stack="w", waits=Waits(poll_initial=0.001, poll_max=0.001)), stubber


def test_not_found_right_after_create_means_not_yet() -> None:
    """EC2 is eventually consistent: a VPC created a moment ago may not be visible yet."""
    run, stub = run_with_stub("ec2")
    stub.add_client_error("describe_vpcs", "InvalidVpcID.NotFound", "The vpc ID 'vpc-1' does not exist")
    stub.add_response("describe_vpcs", {"Vpcs": [VPC]})
    run.wait_with("ec2", "vpc_available", "the VPC", timeout=5, VpcIds=["vpc-1"])
    stub.assert_no_pending_responses()


def test_other_errors_fail_at_once() -> None:
    run, stub = run_with_stub("ec2")
    stub.add_client_error("describe_vpcs", "UnauthorizedOperation", "no")
    with pytest.raises(AwsError, match="the VPC failed"):
        run.wait_with("ec2", "vpc_available", "the VPC", timeout=5, VpcIds=["vpc-1"])


def instances(state: str) -> dict[str, object]:
    return {"Reservations": [{"Instances": [{"InstanceId": "i-1", "State": {"Name": state, "Code": 0}}]}]}


def test_an_instance_passing_through_pending_while_terminating_is_waited_for() -> None:
    run, stub = run_with_stub("ec2")
    for state in ("pending", "shutting-down", "terminated"):
        stub.add_response("describe_instances", instances(state))
    run.wait_with("ec2", "instance_terminated", "i-1 to go", timeout=5, passing_states=True, InstanceIds=["i-1"])
    stub.assert_no_pending_responses()


def test_without_passing_states_a_failure_state_fails() -> None:
    run, stub = run_with_stub("ec2")
    stub.add_response("describe_instances", instances("pending"))
    with pytest.raises(AwsError, match="terminal failure"):
        run.wait_with("ec2", "instance_terminated", "i-1 to go", timeout=5, InstanceIds=["i-1"])
