"""Health and time in the sandbox (cdpoc/sandbox/health.py), pinned against moto 5.2.5, and the README's chain.

moto makes NAT gateways available and load balancers active at once and calls every registered target
healthy forever (a terminated one too); the sandbox takes AWS-like times and answers health checks from what
runs on each instance. The README chain `up && plan && push-app --wait && status && down --yes` runs through
the real CLI with the sandbox as HTTP proxy for the load balancer's DNS name.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from sandbox_world import ACCOUNT, FakeClock, without_managed_policies
from typer.testing import CliRunner

from cdpoc import rollout
from cdpoc.aws.clients import ClientFactory
from cdpoc.aws.run import AwsRun, Waits
from cdpoc.cli import app
from cdpoc.errors import WaitTimeout
from cdpoc.sandbox import health
from cdpoc.sandbox.server import Sandbox
from cdpoc.sandbox.simulation import FAST, REALISTIC, SIMULATION, Timing

__all__ = ["without_managed_policies"]  # a fixture, shared with the other sandbox tests

ROOT = Path(__file__).parent.parent
REGION = "us-east-1"


# ---- timing profiles


def test_profiles_scale_aws_durations() -> None:
    assert Timing.parse("realistic") == REALISTIC and REALISTIC.seconds("load_balancer") == 150.0
    assert Timing.parse("fast") == FAST and FAST.seconds("load_balancer") < 1.0
    assert Timing.parse("0.1").seconds("nat_gateway") == pytest.approx(9.0)
    for bad in ("slow", "-1", "nan", "1000"):
        with pytest.raises(ValueError):
            Timing.parse(bad)


# ---- a world with a fake clock


@pytest.fixture
def clock(without_managed_policies: None, aws: None) -> Iterator[FakeClock]:
    """moto plus the sandbox's additions on a fake clock, with AWS's own durations."""
    fake = FakeClock()
    SIMULATION.reset()
    SIMULATION.clock = fake
    SIMULATION.use_timing(REALISTIC)
    yield fake
    SIMULATION.reset()


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def network() -> tuple[str, list[str]]:
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate("ab")
    ]
    return vpc, subnets


STUB_USER_DATA = "#!/bin/bash\nreadonly STUB_SERVICE=cdpoc-stub.service\n"


def launch(subnet: str, user_data: str = STUB_USER_DATA, tags: dict[str, str] | None = None) -> str:
    tag_spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}]
    return str(
        client("ec2").run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            UserData=user_data,
            **({"TagSpecifications": tag_spec} if tags else {}),
        )["Instances"][0]["InstanceId"]
    )


def balancer(vpc: str, subnets: list[str], *, listener: bool = True) -> tuple[str, str, str]:
    """(load balancer ARN, DNS name, target group ARN): interval 15 s, healthy 2, unhealthy 3, delay 30 s."""
    elbv2 = client("elbv2")
    lb = elbv2.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]
    tg = elbv2.create_target_group(
        Name="app",
        Protocol="HTTP",
        Port=80,
        VpcId=vpc,
        HealthCheckPath="/health",
        HealthCheckIntervalSeconds=15,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=3,
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]
    )
    if listener:
        elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
        )
    return lb["LoadBalancerArn"], lb["DNSName"], tg


def health_of(tg: str) -> dict[str, dict[str, str]]:
    described = client("elbv2").describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"] for d in described}


def test_nat_gateway_and_load_balancer_become_ready_after_aws_like_delays(clock: FakeClock) -> None:
    vpc, subnets = network()
    ec2 = client("ec2")
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    arn, _, _ = balancer(vpc, subnets)

    def states() -> tuple[str, str]:
        gateway = ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"]
        lb = client("elbv2").describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
        return gateway, lb["State"]["Code"]

    assert states() == ("pending", "provisioning")  # moto: ("available", "active") at once
    clock.advance(REALISTIC.seconds("nat_gateway"))
    assert states() == ("available", "provisioning")
    clock.advance(REALISTIC.seconds("load_balancer") - REALISTIC.seconds("nat_gateway"))
    assert states() == ("available", "active")


def test_a_target_is_initial_then_healthy_after_threshold_times_interval(clock: FakeClock) -> None:
    vpc, subnets = network()
    _, _, tg = balancer(vpc, subnets)
    clock.advance(REALISTIC.seconds("load_balancer"))  # health checks start once the ALB is active
    instance = launch(subnets[0])
    client("elbv2").register_targets(TargetGroupArn=tg, Targets=[{"Id": instance}])
    assert health_of(tg)[instance] == {
        "State": "initial",
        "Reason": "Elb.RegistrationInProgress",
        "Description": "Target registration is in progress",
    }
    # the stub answers once the instance booted and its user data started it (at 45 s); checks every 15 s
    clock.advance(30)  # checks at 15 and 30 s failed: fewer than the unhealthy threshold (3)
    assert health_of(tg)[instance] == {
        "State": "initial",
        "Reason": "Elb.InitialHealthChecking",
        "Description": "Initial health checks in progress",
    }
    clock.advance(14)
    assert health_of(tg)[instance]["State"] == "initial"
    clock.advance(1)  # the check at 45 s passes: one of the two needed
    assert health_of(tg)[instance]["State"] == "initial"
    clock.advance(15)  # 60 s: HealthyThresholdCount x HealthCheckIntervalSeconds after the stub came up
    assert health_of(tg)[instance] == {"State": "healthy"}


def test_a_target_nothing_answers_on_turns_unhealthy_after_the_threshold(clock: FakeClock) -> None:
    vpc, subnets = network()
    _, _, tg = balancer(vpc, subnets)
    clock.advance(REALISTIC.seconds("load_balancer"))
    instance = launch(subnets[0], user_data="#!/bin/bash\ntrue\n")  # no stub server
    client("elbv2").register_targets(TargetGroupArn=tg, Targets=[{"Id": instance}])
    clock.advance(44)
    assert health_of(tg)[instance]["State"] == "initial"
    clock.advance(1)  # the third failed check in a row
    assert health_of(tg)[instance] == {
        "State": "unhealthy",
        "Reason": "Target.FailedHealthChecks",
        "Description": "Health checks failed",
    }
    clock.advance(3600)
    assert health_of(tg)[instance]["State"] == "unhealthy"


def test_a_target_group_no_load_balancer_uses_is_unused(clock: FakeClock) -> None:
    vpc, subnets = network()
    _, _, tg = balancer(vpc, subnets, listener=False)
    instance = launch(subnets[0])
    client("elbv2").register_targets(TargetGroupArn=tg, Targets=[{"Id": instance}])
    clock.advance(3600)
    assert health_of(tg)[instance] == {
        "State": "unused",
        "Reason": "Target.NotInUse",
        "Description": "Target group is not configured to receive traffic from the load balancer",
    }


def test_deregistered_and_terminated_targets_drain_then_leave(clock: FakeClock) -> None:
    vpc, subnets = network()
    _, _, tg = balancer(vpc, subnets)
    first, second = launch(subnets[0]), launch(subnets[1])
    client("elbv2").register_targets(TargetGroupArn=tg, Targets=[{"Id": first}, {"Id": second}])
    clock.advance(3600)
    assert {i: h["State"] for i, h in health_of(tg).items()} == {first: "healthy", second: "healthy"}
    client("elbv2").deregister_targets(TargetGroupArn=tg, Targets=[{"Id": first}])
    client("ec2").terminate_instances(InstanceIds=[second])
    draining = {"State": "draining", "Reason": "Target.DeregistrationInProgress"}
    assert {i: {k: h[k] for k in ("State", "Reason")} for i, h in health_of(tg).items()} == {
        first: draining,
        second: draining,  # moto: a terminated target stays healthy
    }
    clock.advance(30)  # the group's deregistration delay
    assert health_of(tg) == {}


def test_the_app_answers_from_the_fleet_state_and_the_database(clock: FakeClock) -> None:
    """What an instance answers follows what runs on it: the stub, then the deployed app, whose /health
    depends on the MongoDB instance named by SSM /<stack>/mongodb/host being ready."""
    from moto.ec2.models import ec2_backends

    _, subnets = network()
    mongodb = launch(subnets[0], user_data="#!/bin/bash\necho mongod\n")
    app_instance = launch(subnets[1], tags={"cdpoc:stack": "demo"})
    backend = ec2_backends[ACCOUNT][REGION]
    db, web = backend.get_instance_by_id(mongodb), backend.get_instance_by_id(app_instance)
    client("ssm").put_parameter(Name="/demo/mongodb/host", Value=db.private_ip, Type="String")
    assert health.answer(ACCOUNT, REGION, web, "/health", clock()).refused  # still booting
    clock.advance(REALISTIC.seconds("instance_boot") + REALISTIC.seconds("stub_server"))
    stub = health.answer(ACCOUNT, REGION, web, "/health", clock())
    assert stub.status == 200 and json.loads(stub.body)["app"] == "cdpoc-stub"
    assert health.running_on(ACCOUNT, REGION, web, clock()).kind == "stub"
    assert not health.database_ready(ACCOUNT, REGION, web, clock())
    clock.advance(REALISTIC.seconds("mongodb"))
    assert health.database_ready(ACCOUNT, REGION, web, clock())
    client("ssm").put_parameter(Name="/demo/mongodb/host", Value="10.0.9.9", Type="String", Overwrite=True)
    assert not health.database_ready(ACCOUNT, REGION, web, clock())  # no MongoDB there


# ---- cdpoc's waits against the profiles (real clock)


@pytest.fixture
def real_clock(without_managed_policies: None, aws: None) -> Iterator[None]:
    SIMULATION.reset()
    yield
    SIMULATION.reset()


def load_balancer_wait(
    timeout: float, on_describe: Callable[[], None] = lambda: None
) -> tuple[list[str], Exception | None]:
    """cdpoc's wait for a new load balancer to be active; the DescribeLoadBalancers calls it made."""
    clients = ClientFactory(REGION)
    run = AwsRun(clients=clients, stack="w", waits=Waits(poll_initial=0.05, poll_max=0.05))
    _, subnets = network()
    arn = client("elbv2").create_load_balancer(Name="waited", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    calls: list[str] = []

    def described(**_: Any) -> None:
        calls.append("x")
        on_describe()

    clients.client("elbv2").meta.events.register("before-call.*.DescribeLoadBalancers", described)
    try:
        run.wait_with(
            "elbv2", "load_balancer_available", "load balancer waited to be active", timeout, LoadBalancerArns=[arn]
        )
    except WaitTimeout as exc:
        return calls, exc
    return calls, None


def test_cdpoc_waits_poll_until_the_fast_load_balancer_is_active(clock: FakeClock) -> None:
    SIMULATION.use_timing(FAST)
    # each look moves the simulated clock 0.4 of the provisioning time (the machine's clock is too noisy to count on)
    look = FAST.seconds("load_balancer") * 0.4
    calls, failure = load_balancer_wait(timeout=30, on_describe=lambda: clock.advance(look))
    assert failure is None and len(calls) == 3  # provisioning at 0.4 and 0.8, active at 1.2; moto: at the first


def test_cdpoc_waits_time_out_with_a_message_on_realistic_timing(real_clock: None) -> None:
    SIMULATION.use_timing(REALISTIC)
    calls, failure = load_balancer_wait(timeout=0.3)
    assert calls and failure is not None
    assert "timed out after 0s waiting for load balancer waited to be active" in str(failure)
    assert failure.hint and "Re-run" in failure.hint


# ---- the README chain through the real CLI


@pytest.fixture(scope="module")
def proxied_sandbox() -> Iterator[str]:
    SIMULATION.use_timing(FAST)
    with Sandbox() as sandbox:
        yield sandbox.endpoint
    SIMULATION.reset()


def cdpoc(endpoint: str, *args: str) -> tuple[int, str]:
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_PROFILE": None,
        "HTTP_PROXY": endpoint,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    result = CliRunner().invoke(app, ["--name", "chain", *args], env=env)
    return result.exit_code, result.output


def test_the_readme_chain_passes_against_the_sandbox(proxied_sandbox: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """cdpoc up && cdpoc plan && cdpoc push-app --wait && cdpoc status && cdpoc down --yes"""
    monkeypatch.chdir(ROOT)  # push-app's default bundle is ./bundle
    monkeypatch.setattr(rollout, "POLL_SECONDS", 0.2)
    for command in (("up",), ("plan",), ("push-app", "--wait", "--timeout", "300")):
        code, out = cdpoc(proxied_sandbox, *command)
        assert code == 0, f"{command}: {out}"
    code, out = cdpoc(proxied_sandbox, "status")
    assert code == 0, out
    assert "GET /health: 200" in out
    # the answer is the deployed app's, naming the revision CodeDeploy put on the instances
    dns = boto3.client("elbv2", region_name=REGION, endpoint_url=proxied_sandbox).describe_load_balancers(
        Names=["chain-alb"]
    )["LoadBalancers"][0]["DNSName"]
    deployment = boto3.client("codedeploy", region_name=REGION, endpoint_url=proxied_sandbox).list_deployments(
        applicationName="chain", deploymentGroupName="chain-fleet"
    )["deployments"][0]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxied_sandbox}))
    with opener.open(f"http://{dns}/health", timeout=10) as reply:
        assert json.loads(reply.read()) == {
            "status": "healthy",
            "data": "Database connection is healthy",
            "revision": deployment,  # the repository's bundle has no REVISION file
        }
    code, out = cdpoc(proxied_sandbox, "down", "--yes")
    assert code == 0, out
    assert "Leftover scan: nothing tagged cdpoc:stack=chain remains" in out


def test_the_load_balancer_dns_name_answers_through_the_sandbox_as_proxy(proxied_sandbox: str) -> None:
    """Not a constant: the answer names the deployed revision, or the stub before any deployment."""
    elbv2 = boto3.client("elbv2", region_name=REGION, endpoint_url=proxied_sandbox)
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=proxied_sandbox)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    lb = elbv2.create_load_balancer(Name="proxied", Subnets=[subnet])["LoadBalancers"][0]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxied_sandbox}))
    url = f"http://{lb['DNSName']}/health"
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(url, timeout=10)  # no listener on port 80 yet, or still provisioning
    assert refused.value.code == 502
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.URLError):
        direct.open(url, timeout=10)  # without the proxy the name resolves nowhere, as it should
