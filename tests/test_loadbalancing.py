"""The ALB, target group and listener against moto, with the network and security groups made directly.

The load balancing declarations run through the real planner, executor and sweeper; the resources
they depend on (VPC, subnets, internet gateway, ALB security group) come from boto3 and stand in the
graph as already existing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from cdpoc_testing import Existing, numbered_context

from cdpoc.apply import apply_plan, refuse_conflicts
from cdpoc.aws.errors import DependencyViolation
from cdpoc.aws.handler import Handler
from cdpoc.aws.loadbalancing import HANDLERS as LB_HANDLERS
from cdpoc.context import Context
from cdpoc.cost import hourly_cost
from cdpoc.errors import ConflictError
from cdpoc.graph import Graph
from cdpoc.model import Action, Change, Observed, Resource
from cdpoc.planner import make_plan
from cdpoc.spec import Ref, declare, refs
from cdpoc.stack import loadbalancing
from cdpoc.stack.names import StackNames
from cdpoc.sweeper import find_everything, leftovers, sweep

REGION = "us-east-1"
DELAY = "attributes[deregistration_delay.timeout_seconds]"  # the plan's field for the deregistration delay
ZONES = ("us-east-1a", "us-east-1b")


@dataclass
class Stack:
    ctx: Context
    graph: Graph
    handlers: dict[str, Handler]
    existing: dict[str, Observed]
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    results: dict[str, Observed] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.ctx.settings.name

    def resource(self, key: str) -> Resource:
        return self.graph[key]

    def up(self) -> dict[str, Observed]:
        return apply_plan(self.ctx.run, make_plan(self.ctx.run, self.graph, self.handlers), self.handlers)

    def plan_actions(self) -> dict[str, Action]:
        plan = make_plan(self.ctx.run, self.graph, self.handlers)
        return {s.resource.key: s.action for s in plan.steps if s.resource.kind != Existing.kind}

    def plan_changes(self, key: str) -> tuple[Action, dict[str, Change]]:
        """What the plan says of one resource: its action and its changes by field."""
        plan = make_plan(self.ctx.run, self.graph, self.handlers)
        [step] = [s for s in plan.steps if s.resource.key == key]
        return step.action, {c.field: c for c in step.changes}

    def respec(self, key: str, **fields: Any) -> None:
        """Declare `key` again with some spec fields changed, keeping its ordering-only edges."""
        res = self.graph[key]
        assert res.spec is not None
        spec = dataclasses.replace(res.spec, **fields)  # type: ignore[type-var]
        referenced = {ref.key for ref in refs(res.spec)}
        again = declare(key, res.name, spec, after=tuple(k for k in res.depends_on if k not in referenced))
        self.graph = Graph.of([again if r.key == key else r for r in self.graph.order()])

    def down(self) -> dict[str, str]:
        run = self.ctx.run
        return sweep(run, self.graph, self.handlers, find_everything(run, self.graph, self.handlers))

    def record(self, service: str, operation: str) -> list[dict[str, Any]]:
        """Every request of `operation` made from now on, as botocore validated it."""
        calls = self.calls.setdefault(operation, [])
        client = self.ctx.run.client(service)
        event = f"provide-client-params.{client.meta.service_model.service_id.hyphenize()}.{operation}"
        client.meta.events.register(event, lambda params, **_: calls.append(dict(params)))
        return calls


def make_network(ec2: Any, n: str) -> dict[str, Observed]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    found = {"vpc": Observed("vpc", Existing.kind, vpc), "igw": Observed("igw", Existing.kind, igw)}
    for suffix, zone, cidr in (("a", ZONES[0], "10.0.0.0/24"), ("b", ZONES[1], "10.0.1.0/24")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        found[f"subnet.public.{suffix}"] = Observed(f"subnet.public.{suffix}", Existing.kind, subnet)
    group = ec2.create_security_group(GroupName=f"{n}-alb", Description="alb", VpcId=vpc)["GroupId"]
    found["sg.alb"] = Observed("sg.alb", Existing.kind, group)
    return found


def build_stack(ctx: Context) -> Stack:
    ec2 = boto3.client("ec2", region_name=REGION)
    existing = make_network(ec2, ctx.settings.name)
    names = StackNames(ctx.settings, ZONES, "123456789012")
    declared = loadbalancing.declare(names)
    stand_ins = [Resource(key, Existing.kind, key) for key in existing]
    handlers: dict[str, Handler] = {h.kind: h for h in LB_HANDLERS}
    handlers[Existing.kind] = Existing(existing)
    ctx.run.zones = ZONES
    return Stack(ctx, Graph.of([*stand_ins, *declared]), handlers, existing)


def new_context(directory: Path, settings: str = "") -> Context:
    return numbered_context(directory, "lb", settings)


@pytest.fixture
def stack(moto_session: None, tmp_path: Path) -> Stack:
    return build_stack(new_context(tmp_path))


@pytest.fixture(scope="class")
def deployed(moto_session: None, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """One stack brought up once, for the tests that only look at it."""
    stack = build_stack(new_context(tmp_path_factory.mktemp("lb")))
    for operation in ("CreateLoadBalancer", "CreateTargetGroup", "CreateListener"):
        stack.record("elbv2", operation)
    stack.results = stack.up()
    return stack


def elbv2() -> Any:
    return boto3.client("elbv2", region_name=REGION)


def tags_of(arn: str) -> dict[str, str]:
    [description] = elbv2().describe_tags(ResourceArns=[arn])["TagDescriptions"]
    return {t["Key"]: t["Value"] for t in description["Tags"]}


# ---------------------------------------------------------------- one deployment, looked at


class TestDeployed:
    def test_the_alb_target_group_and_listener_are_as_declared(self, deployed: Stack) -> None:
        n = deployed.name
        client, results, existing = elbv2(), deployed.results, deployed.existing

        [lb] = client.describe_load_balancers(Names=[f"{n}-alb"])["LoadBalancers"]
        assert (lb["Scheme"], lb["Type"], lb["State"]["Code"]) == ("internet-facing", "application", "active")
        public = {existing["subnet.public.a"].id, existing["subnet.public.b"].id}
        assert {z["SubnetId"] for z in lb["AvailabilityZones"]} == public
        assert lb["SecurityGroups"] == [existing["sg.alb"].id]
        assert results["alb"].id == lb["LoadBalancerArn"]
        assert results["alb"].attrs["dns_name"] == lb["DNSName"]

        [tg] = client.describe_target_groups(Names=[f"{n}-app"])["TargetGroups"]
        assert (tg["Protocol"], tg["Port"], tg["TargetType"], tg["VpcId"]) == (
            "HTTP",
            80,
            "instance",
            existing["vpc"].id,
        )
        check = (tg["HealthCheckPath"], tg["HealthCheckIntervalSeconds"], tg["HealthCheckTimeoutSeconds"])
        assert check == ("/health", 15, 5)
        assert (tg["HealthyThresholdCount"], tg["UnhealthyThresholdCount"], tg["Matcher"]) == (
            2,
            3,
            {"HttpCode": "200"},
        )
        attributes = client.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]
        assert {"Key": "deregistration_delay.timeout_seconds", "Value": "30"} in attributes

        [listener] = client.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)
        assert listener["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]

        for arn, key, name in (
            (lb["LoadBalancerArn"], "alb", f"{n}-alb"),
            (tg["TargetGroupArn"], "tg.app", f"{n}-app"),
            (listener["ListenerArn"], "listener.http", f"{n}-http"),
        ):
            assert tags_of(arn) == {"cdpoc:stack": f"{n}", "cdpoc:component": key, "Name": name}

    def test_tags_are_in_the_create_calls(self, deployed: Stack) -> None:
        n = deployed.name
        for operation in ("CreateLoadBalancer", "CreateTargetGroup", "CreateListener"):
            [params] = deployed.calls[operation]
            tags = {t["Key"]: t["Value"] for t in params["Tags"]}
            assert tags.keys() >= {"cdpoc:stack", "cdpoc:component", "Name"}, operation
            assert tags["cdpoc:stack"] == f"{n}", operation

    def test_second_up_makes_no_mutating_call_and_plan_is_clean(self, deployed: Stack) -> None:
        assert set(deployed.plan_actions().values()) == {Action.NONE}
        before = len(deployed.ctx.clients.mutating_calls())
        deployed.up()
        assert deployed.ctx.clients.mutating_calls()[before:] == []

    def test_create_answered_with_our_existing_alb_adopts_it(self, deployed: Stack) -> None:
        # AWS answers CreateLoadBalancer with the existing load balancer when the settings are identical
        # (moto creates a second one instead).
        first = deployed.results["alb"]
        [lb] = elbv2().describe_load_balancers(LoadBalancerArns=[first.id])["LoadBalancers"]
        client = deployed.ctx.run.client("elbv2")
        event = "before-call.elastic-load-balancing-v2.CreateLoadBalancer"
        answer = lambda **_: (SimpleNamespace(status_code=200, headers={}), {"LoadBalancers": [lb]})  # noqa: E731
        client.meta.events.register(event, answer)
        try:
            again = deployed.handlers["load_balancer"].create(
                deployed.ctx.run, deployed.resource("alb"), deployed.existing
            )
        finally:
            client.meta.events.unregister(event, answer)
        assert again.id == first.id

    def test_target_group_still_used_by_a_listener_is_retried_not_failed(self, deployed: Stack) -> None:
        with pytest.raises(DependencyViolation):
            deployed.handlers["target_group"].delete(deployed.ctx.run, deployed.results["tg.app"])

    def test_a_listener_on_another_load_balancer_is_a_conflict(self, deployed: Stack) -> None:
        # A listener never moves (ModifyListener has no LoadBalancerArn): as found on another balancer.
        found = deployed.results["listener.http"]
        elsewhere = dataclasses.replace(found, attrs={**found.attrs, "load_balancer": "arn:aws:other"})
        deps = {**deployed.existing, **deployed.results}
        [change] = deployed.handlers["listener"].changes(
            deployed.ctx.run, deployed.resource("listener.http"), elsewhere, deps
        )
        alb = deployed.results["alb"].id
        assert (change.field, change.text, change.in_place) == (
            "load_balancer",
            f"load_balancer: arn:aws:other → {alb}",
            False,
        )

    def test_alb_cost_counts_its_hour_and_two_public_addresses(self, deployed: Stack) -> None:
        assert hourly_cost([deployed.resource("alb")]) == pytest.approx(0.0325)


# ---------------------------------------------------------------- changes


def test_drift_is_repaired_in_place(stack: Stack) -> None:
    results = stack.up()
    tg_arn, listener_arn = results["tg.app"].id, results["listener.http"].id
    client = elbv2()
    client.modify_target_group(TargetGroupArn=tg_arn, HealthCheckPath="/", HealthCheckIntervalSeconds=30)
    client.modify_target_group_attributes(
        TargetGroupArn=tg_arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "300"}]
    )
    other = client.create_target_group(
        Name="elsewhere", Protocol="HTTP", Port=80, VpcId=stack.existing["vpc"].id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    client.modify_listener(ListenerArn=listener_arn, DefaultActions=[{"Type": "forward", "TargetGroupArn": other}])

    actions = stack.plan_actions()
    assert (actions["tg.app"], actions["listener.http"], actions["alb"]) == (Action.UPDATE, Action.UPDATE, Action.NONE)
    stack.up()

    [tg] = client.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"]
    assert (tg["HealthCheckPath"], tg["HealthCheckIntervalSeconds"]) == ("/health", 15)
    attributes = client.describe_target_group_attributes(TargetGroupArn=tg_arn)["Attributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "30"} in attributes
    [listener] = client.describe_listeners(ListenerArns=[listener_arn])["Listeners"]
    assert listener["DefaultActions"][0]["TargetGroupArn"] == tg_arn
    assert set(stack.plan_actions().values()) == {Action.NONE}


def test_short_health_check_interval_gets_a_shorter_timeout(moto_session: None, tmp_path: Path) -> None:
    # AWS refuses a health check timeout that is not shorter than the interval (moto does not check).
    stack = build_stack(new_context(tmp_path, "load_balancer:\n  health_check_interval: 5\n"))
    creates = stack.record("elbv2", "CreateTargetGroup")
    stack.up()
    assert (creates[0]["HealthCheckIntervalSeconds"], creates[0]["HealthCheckTimeoutSeconds"]) == (5, 4)


# ---------------------------------------------------------------- not ours


def test_same_named_resources_of_someone_else_are_refused(stack: Stack) -> None:
    n = stack.name
    client = elbv2()
    client.create_target_group(Name=f"{n}-app", Protocol="HTTP", Port=80, VpcId=stack.existing["vpc"].id)
    with pytest.raises(
        ConflictError, match=f"target group {n}-app already exists and belongs to nothing cdpoc manages"
    ):
        stack.handlers["target_group"].create(stack.ctx.run, stack.resource("tg.app"), stack.existing)

    # AWS answers a create with identical settings with the existing load balancer (moto makes a second
    # one): that answer must be checked for our tag too.
    foreign = client.create_load_balancer(
        Name=f"{n}-alb",
        Subnets=[stack.existing["subnet.public.a"].id, stack.existing["subnet.public.b"].id],
        SecurityGroups=[stack.existing["sg.alb"].id],
        Tags=[{"Key": "cdpoc:stack", "Value": "other"}],
    )["LoadBalancers"][0]
    stack.ctx.run.client("elbv2").meta.events.register(
        "before-call.elastic-load-balancing-v2.CreateLoadBalancer",
        lambda **_: (SimpleNamespace(status_code=200, headers={}), {"LoadBalancers": [foreign]}),
    )
    with pytest.raises(ConflictError, match=f"load balancer {n}-alb already exists and belongs to stack other"):
        stack.handlers["load_balancer"].create(stack.ctx.run, stack.resource("alb"), stack.existing)


def test_our_target_group_with_other_fixed_settings_is_a_conflict(stack: Stack) -> None:
    n = stack.name
    elbv2().create_target_group(
        Name=f"{n}-app",
        Protocol="HTTP",
        Port=8080,
        VpcId=stack.existing["vpc"].id,
        Tags=[{"Key": "cdpoc:stack", "Value": f"{n}"}, {"Key": "cdpoc:component", "Value": "tg.app"}],
    )
    plan = make_plan(stack.ctx.run, stack.graph, stack.handlers)
    [step] = [s for s in plan.steps if s.resource.key == "tg.app"]
    assert step.action is Action.CONFLICT
    [port] = [c for c in step.changes if c.field == "port"]
    assert (port.text, port.old, port.new, port.in_place) == ("port: 8080 → 80", 8080, 80, False)


# ---------------------------------------------------------------- down


def test_down_waits_for_the_alb_interfaces_and_a_second_delete_is_fine(stack: Stack) -> None:
    results = stack.up()
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet = stack.existing["subnet.public.a"].id
    # What AWS leaves behind for a while after DeleteLoadBalancer (moto creates no ALB interfaces).
    description = "ELB " + results["alb"].id.split(":loadbalancer/")[1]
    eni = ec2.create_network_interface(SubnetId=subnet, Description=description)["NetworkInterface"]
    unrelated = ec2.create_network_interface(SubnetId=subnet, Description="ELB app/other/1")["NetworkInterface"]
    pauses: list[float] = []

    def release_after_two_polls(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])

    stack.ctx.run.sleep = release_after_two_polls
    done = stack.down()

    assert {"alb", "tg.app", "listener.http"} <= set(done)
    assert len(pauses) == 2  # the ALB's delete polled until its interface was released
    n = stack.name
    assert [
        lb for lb in elbv2().describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == f"{n}-alb"
    ] == []
    assert [tg for tg in elbv2().describe_target_groups()["TargetGroups"] if tg["TargetGroupName"] == f"{n}-app"] == []
    in_subnet = [{"Name": "subnet-id", "Values": [subnet]}]
    remaining = [
        i["NetworkInterfaceId"] for i in ec2.describe_network_interfaces(Filters=in_subnet)["NetworkInterfaces"]
    ]
    assert remaining == [unrelated["NetworkInterfaceId"]]
    left = leftovers(stack.ctx.run, stack.graph, stack.handlers, lambda: [])
    assert [item for item in left if not item.startswith(Existing.label)] == []
    for key in ("listener.http", "tg.app", "alb"):
        stack.handlers[results[key].kind].delete(stack.ctx.run, results[key])  # NotFound is success


# ---------------------------------------------------------------- the plan's field changes, applied by up


def test_target_group_changes_show_both_values_and_up_applies_only_them(stack: Stack) -> None:
    tg_arn = stack.up()["tg.app"].id
    client = elbv2()
    client.modify_target_group(
        TargetGroupArn=tg_arn, HealthCheckPath="/", HealthCheckIntervalSeconds=30, Matcher={"HttpCode": "200-299"}
    )
    client.modify_target_group_attributes(
        TargetGroupArn=tg_arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "300"}]
    )

    action, changes = stack.plan_changes("tg.app")
    assert action is Action.UPDATE
    assert {name: c.text for name, c in changes.items()} == {
        "health_check.path": "health_check.path: / → /health",
        "health_check.interval": "health_check.interval: 30 → 15",
        "health_check.matcher": "health_check.matcher: 200-299 → 200",
        DELAY: f"{DELAY}: 300 → 30",
    }
    modified = stack.record("elbv2", "ModifyTargetGroup")
    attributes = stack.record("elbv2", "ModifyTargetGroupAttributes")
    stack.up()

    # Exactly what the plan listed: the settings that did not differ are not sent again.
    assert modified == [
        {
            "TargetGroupArn": tg_arn,
            "HealthCheckPath": "/health",
            "HealthCheckIntervalSeconds": 15,
            "Matcher": {"HttpCode": "200"},
        }
    ]
    assert attributes == [
        {"TargetGroupArn": tg_arn, "Attributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]}
    ]
    [tg] = client.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"]
    assert (tg["HealthCheckPath"], tg["HealthCheckIntervalSeconds"], tg["Matcher"]) == (
        "/health",
        15,
        {"HttpCode": "200"},
    )
    assert stack.plan_changes("tg.app") == (Action.NONE, {})


def test_a_changed_setting_in_the_config_is_planned_and_applied(stack: Stack) -> None:
    """Not drift: the declaration changes (a longer deregistration delay, another health check path)."""
    tg_arn = stack.up()["tg.app"].id
    res = stack.graph["tg.app"]
    assert res.spec is not None
    check = dataclasses.replace(res.spec.health_check, path="/ready")  # type: ignore[attr-defined]
    stack.respec("tg.app", health_check=check, attributes={"deregistration_delay.timeout_seconds": "120"})

    action, changes = stack.plan_changes("tg.app")
    assert action is Action.UPDATE
    assert [(c.field, c.old, c.new) for c in changes.values()] == [
        ("health_check.path", "/health", "/ready"),
        (DELAY, "30", "120"),
    ]
    stack.up()
    [tg] = elbv2().describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"]
    assert tg["HealthCheckPath"] == "/ready"
    attributes = elbv2().describe_target_group_attributes(TargetGroupArn=tg_arn)["Attributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "120"} in attributes
    assert stack.plan_changes("tg.app") == (Action.NONE, {})


def test_listener_port_and_default_actions_are_replaced_by_the_declared_ones(stack: Stack) -> None:
    results = stack.up()
    listener_arn, n = results["listener.http"].id, stack.name
    client = elbv2()
    # A stale default action (a fixed response) on another port: ModifyListener replaces the whole list.
    client.modify_listener(
        ListenerArn=listener_arn,
        Port=8080,
        DefaultActions=[
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503", "ContentType": "text/plain"}}
        ],
    )

    action, changes = stack.plan_changes("listener.http")
    assert action is Action.UPDATE
    assert {name: c.text for name, c in changes.items()} == {
        "port": "port: 8080 → 80",
        "default_actions": f"default_actions: [fixed-response] → [forward to {n}-app]",
    }
    modified = stack.record("elbv2", "ModifyListener")
    stack.up()

    assert modified == [
        {
            "ListenerArn": listener_arn,
            "Port": 80,
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": results["tg.app"].id}],
        }
    ]
    [listener] = client.describe_listeners(ListenerArns=[listener_arn])["Listeners"]
    assert listener["Port"] == 80
    assert listener["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": results["tg.app"].id}]
    assert stack.plan_changes("listener.http") == (Action.NONE, {})


def test_a_subnet_and_a_security_group_the_spec_does_not_list_are_removed(stack: Stack) -> None:
    results = stack.up()
    alb_arn, existing = results["alb"].id, stack.existing
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = existing["vpc"].id
    spare = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.9.0/24", AvailabilityZone=ZONES[1])["Subnet"]["SubnetId"]
    extra = ec2.create_security_group(GroupName=f"{stack.name}-extra", Description="extra", VpcId=vpc)["GroupId"]
    client = elbv2()
    client.set_subnets(LoadBalancerArn=alb_arn, Subnets=[existing["subnet.public.a"].id, spare])
    client.set_security_groups(LoadBalancerArn=alb_arn, SecurityGroups=[existing["sg.alb"].id, extra])

    public_b = existing["subnet.public.b"].id
    action, changes = stack.plan_changes("alb")
    assert action is Action.UPDATE
    assert {name: c.text for name, c in changes.items()} == {
        "subnets[subnet.public.b]": f"subnets[subnet.public.b]: (none) → {public_b}",
        f"subnets[{spare}]": f"subnets[{spare}]: {spare} → (none)",
        f"security_groups[{extra}]": f"security_groups[{extra}]: {extra} → (none)",
    }
    set_subnets = stack.record("elbv2", "SetSubnets")
    set_groups = stack.record("elbv2", "SetSecurityGroups")
    stack.up()

    assert [sorted(call["Subnets"]) for call in set_subnets] == [sorted([existing["subnet.public.a"].id, public_b])]
    assert [call["SecurityGroups"] for call in set_groups] == [[existing["sg.alb"].id]]
    [lb] = client.describe_load_balancers(LoadBalancerArns=[alb_arn])["LoadBalancers"]
    assert {z["SubnetId"] for z in lb["AvailabilityZones"]} == {existing["subnet.public.a"].id, public_b}
    assert lb["SecurityGroups"] == [existing["sg.alb"].id]
    assert stack.plan_changes("alb") == (Action.NONE, {})


def test_a_subnet_still_to_be_created_is_shown_by_its_key(stack: Stack) -> None:
    stack.up()
    # The config moves the ALB to a subnet that does not exist yet: the plan names it, never a guessed id.
    stack.graph = Graph.of([*stack.graph.order(), Resource("subnet.public.c", Existing.kind, "subnet.public.c")])
    stack.respec("alb", subnets=(Ref("subnet.public.a"), Ref("subnet.public.c")))
    action, changes = stack.plan_changes("alb")
    assert action is Action.UPDATE
    public_b = stack.existing["subnet.public.b"].id
    assert {name: c.text for name, c in changes.items()} == {
        "subnets[subnet.public.c]": "subnets[subnet.public.c]: (none) → (subnet.public.c to be created)",
        f"subnets[{public_b}]": f"subnets[{public_b}]: {public_b} → (none)",
    }


def test_load_balancer_attributes_and_address_type_are_set_as_declared(stack: Stack) -> None:
    alb_arn = stack.up()["alb"].id
    client = elbv2()
    # AWS's default idle timeout (moto lists no value until one is set), and drift of the address type.
    client.modify_load_balancer_attributes(
        LoadBalancerArn=alb_arn, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "60"}]
    )
    client.set_ip_address_type(LoadBalancerArn=alb_arn, IpAddressType="dualstack")
    stack.respec("alb", attributes={"idle_timeout.timeout_seconds": "120"})

    action, changes = stack.plan_changes("alb")
    assert action is Action.UPDATE
    assert {name: c.text for name, c in changes.items()} == {
        "ip_address_type": "ip_address_type: dualstack → ipv4",
        "attributes[idle_timeout.timeout_seconds]": "attributes[idle_timeout.timeout_seconds]: 60 → 120",
    }
    modified = stack.record("elbv2", "ModifyLoadBalancerAttributes")
    stack.up()

    assert modified == [
        {"LoadBalancerArn": alb_arn, "Attributes": [{"Key": "idle_timeout.timeout_seconds", "Value": "120"}]}
    ]
    [lb] = client.describe_load_balancers(LoadBalancerArns=[alb_arn])["LoadBalancers"]
    assert lb["IpAddressType"] == "ipv4"
    attributes = client.describe_load_balancer_attributes(LoadBalancerArn=alb_arn)["Attributes"]
    assert {"Key": "idle_timeout.timeout_seconds", "Value": "120"} in attributes
    assert stack.plan_changes("alb") == (Action.NONE, {})


# ---------------------------------------------------------------- what AWS cannot change in place


@pytest.mark.parametrize(
    ("setting", "field", "old", "new"),
    [({"Port": 8080}, "port", 8080, 80), ({"TargetType": "ip"}, "target_type", "ip", "instance")],
)
def test_target_group_fixed_settings_are_conflicts(
    stack: Stack, setting: dict[str, Any], field: str, old: Any, new: Any
) -> None:
    n = stack.name
    elbv2().create_target_group(
        **{"Name": f"{n}-app", "Protocol": "HTTP", "Port": 80, "VpcId": stack.existing["vpc"].id, **setting},
        Tags=[{"Key": "cdpoc:stack", "Value": f"{n}"}, {"Key": "cdpoc:component", "Value": "tg.app"}],
    )
    action, changes = stack.plan_changes("tg.app")
    assert action is Action.CONFLICT
    change = changes[field]
    assert (change.text, change.old, change.new, change.in_place) == (f"{field}: {old} → {new}", old, new, False)
    with pytest.raises(ConflictError, match=f"{field}: {old} → {new}"):
        refuse_conflicts(make_plan(stack.ctx.run, stack.graph, stack.handlers))
    # A create that meets it (the name is taken) refuses too, rather than adopting it.
    with pytest.raises(ConflictError, match=f"exists with other fixed settings: {field}: {old} → {new}"):
        stack.handlers["target_group"].create(stack.ctx.run, stack.resource("tg.app"), stack.existing)


def test_an_internal_load_balancer_of_ours_is_a_conflict_not_an_update(stack: Stack) -> None:
    n, existing = stack.name, stack.existing
    elbv2().create_load_balancer(
        Name=f"{n}-alb",
        Subnets=[existing["subnet.public.a"].id, existing["subnet.public.b"].id],
        SecurityGroups=[existing["sg.alb"].id],
        Scheme="internal",
        Tags=[{"Key": "cdpoc:stack", "Value": f"{n}"}, {"Key": "cdpoc:component", "Value": "alb"}],
    )
    action, changes = stack.plan_changes("alb")
    assert action is Action.CONFLICT
    scheme = changes["scheme"]
    assert (scheme.text, scheme.in_place) == ("scheme: internal → internet-facing", False)
    before = len(stack.ctx.clients.mutating_calls())
    with pytest.raises(ConflictError, match="scheme: internal → internet-facing"):
        refuse_conflicts(make_plan(stack.ctx.run, stack.graph, stack.handlers))
    assert stack.ctx.clients.mutating_calls()[before:] == []
