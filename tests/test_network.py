"""The network core against moto: what `up` creates, that it is idempotent, resumable, and `down` clears it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cdpoc.apply import apply_plan
from cdpoc.aws.account import account_id, tagged_arns
from cdpoc.context import Context
from cdpoc.errors import Cancelled, ConflictError
from cdpoc.graph import Graph
from cdpoc.model import Action, Observed, Resource
from cdpoc.planner import make_plan
from cdpoc.spec import Ref
from cdpoc.stack import network
from cdpoc.stack.names import StackNames
from cdpoc.sweeper import find_everything, leftovers, sweep

pytestmark = pytest.mark.usefixtures("aws")


def network_graph(ctx: Context) -> Graph:
    from cdpoc.aws.account import resolve_zones

    zones = resolve_zones(ctx.run, ctx.settings.availability_zones)
    ctx.run.zones = zones
    return Graph.of(network.declare(StackNames(ctx.settings, zones, account_id(ctx.run))))


def up(ctx: Context, graph: Graph, **kwargs: Any) -> dict[str, Any]:
    return apply_plan(ctx.run, make_plan(ctx.run, graph, ctx.handlers), ctx.handlers, **kwargs)


def down(ctx: Context, graph: Graph) -> dict[str, str]:
    return sweep(ctx.run, graph, ctx.handlers, find_everything(ctx.run, graph, ctx.handlers))


def tagged(items: list[dict[str, Any]], stack: str = "t1") -> list[dict[str, Any]]:
    return [i for i in items if {"Key": "cdpoc:stack", "Value": stack} in i.get("Tags", [])]


def tags_of(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


@pytest.fixture
def ctx(make_context: Callable[..., Context]) -> Context:
    return make_context(tags={"team": "platform"})


def test_up_creates_exactly_the_network_core(ctx: Context) -> None:
    graph = network_graph(ctx)
    results = up(ctx, graph)
    ec2 = boto3.client("ec2", region_name="us-east-1")

    [vpc] = tagged(ec2.describe_vpcs()["Vpcs"])
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    for attribute, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
        assert ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)[key]["Value"] is True

    subnets = {tags_of(s)["cdpoc:component"]: s for s in tagged(ec2.describe_subnets()["Subnets"])}
    expected = {
        "subnet.public.a": ("10.0.0.0/24", "us-east-1a"),
        "subnet.public.b": ("10.0.1.0/24", "us-east-1b"),
        "subnet.app.a": ("10.0.10.0/24", "us-east-1a"),
        "subnet.app.b": ("10.0.11.0/24", "us-east-1b"),
        "subnet.data.a": ("10.0.20.0/24", "us-east-1a"),
        "subnet.data.b": ("10.0.21.0/24", "us-east-1b"),
        "subnet.bastion": ("10.0.30.0/24", "us-east-1a"),
    }
    assert {k: (s["CidrBlock"], s["AvailabilityZone"]) for k, s in subnets.items()} == expected
    assert all(s["VpcId"] == vpc["VpcId"] for s in subnets.values())
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets.values())  # public IPv4 costs money

    [igw] = tagged(ec2.describe_internet_gateways()["InternetGateways"])
    assert [a["VpcId"] for a in igw["Attachments"]] == [vpc["VpcId"]]

    [nat] = tagged(ec2.describe_nat_gateways()["NatGateways"])
    [eip] = tagged(ec2.describe_addresses()["Addresses"])
    assert nat["SubnetId"] == subnets["subnet.public.a"]["SubnetId"]
    assert nat["NatGatewayAddresses"][0]["AllocationId"] == eip["AllocationId"]

    tables = {tags_of(t)["cdpoc:component"]: t for t in tagged(ec2.describe_route_tables()["RouteTables"])}
    assert set(tables) == {"rt.public", "rt.private.a", "rt.private.b"}

    def default_route(table: dict[str, Any]) -> str:
        [route] = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        return str(route.get("GatewayId") or route.get("NatGatewayId"))

    def associated(table: dict[str, Any]) -> set[str]:
        return {a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")}

    def ids(*keys: str) -> set[str]:
        return {subnets[k]["SubnetId"] for k in keys}

    assert default_route(tables["rt.public"]) == igw["InternetGatewayId"]
    assert default_route(tables["rt.private.a"]) == nat["NatGatewayId"]
    assert default_route(tables["rt.private.b"]) == nat["NatGatewayId"]  # one shared NAT by default
    assert associated(tables["rt.public"]) == ids("subnet.public.a", "subnet.public.b", "subnet.bastion")
    assert associated(tables["rt.private.a"]) == ids("subnet.app.a", "subnet.data.a")
    assert associated(tables["rt.private.b"]) == ids("subnet.app.b", "subnet.data.b")

    everything = [vpc, igw, nat, eip, *subnets.values(), *tables.values()]
    for item in everything:
        tags = tags_of(item)
        assert tags["cdpoc:stack"] == "t1" and tags["team"] == "platform" and tags["Name"].startswith("t1-")
    assert set(results) == set(graph.resources)


def test_tags_are_set_in_the_create_calls(ctx: Context) -> None:
    """No untagged orphan can exist: each create call itself carries the tags (no CreateTags after)."""
    graph = network_graph(ctx)
    seen: dict[str, dict[str, Any]] = {}

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen[model.name] = params

    ctx.clients.client("ec2").meta.events.register("provide-client-params.ec2.*", record)
    up(ctx, graph)
    for operation in (
        "CreateVpc",
        "CreateSubnet",
        "CreateInternetGateway",
        "AllocateAddress",
        "CreateNatGateway",
        "CreateRouteTable",
    ):
        specs = seen[operation]["TagSpecifications"]
        assert {"Key": "cdpoc:stack", "Value": "t1"} in specs[0]["Tags"], operation
    assert "CreateTags" not in seen
    assert seen["CreateNatGateway"]["ClientToken"].startswith("cdpoc-")
    assert seen["CreateRouteTable"]["ClientToken"].startswith("cdpoc-")


def test_nat_client_token_changes_when_the_subnet_is_new(ctx: Context) -> None:
    """AWS remembers idempotency tokens: a rebuilt stack must not get the deleted gateway back."""
    res = Resource("nat.a", "nat_gateway", "t1-nat-a")
    assert ctx.run.client_token(res, "subnet-1") == ctx.run.client_token(res, "subnet-1")
    assert ctx.run.client_token(res, "subnet-1") != ctx.run.client_token(res, "subnet-2")
    assert len(ctx.run.client_token(res, "subnet-1")) <= 64


def test_second_up_makes_no_mutating_call_and_plan_is_clean(ctx: Context) -> None:
    graph = network_graph(ctx)
    up(ctx, graph)
    before = len(ctx.clients.mutating_calls())
    plan = make_plan(ctx.run, graph, ctx.handlers)
    assert not plan.has_work and all(s.action is Action.NONE for s in plan.steps)
    up(ctx, graph)
    assert ctx.clients.mutating_calls()[before:] == []


def test_discovery_lists_each_kind_once(ctx: Context) -> None:
    graph = network_graph(ctx)
    up(ctx, graph)
    calls_before = len(ctx.clients.calls)
    make_plan(ctx.run, graph, ctx.handlers)
    operations = [op for _, op in ctx.clients.calls[calls_before:]]
    assert operations.count("DescribeSubnets") == 1
    assert operations.count("DescribeRouteTables") == 1
    assert len(operations) <= 10  # six kinds plus the VPC's two DNS attributes


def test_two_nat_gateways_give_each_zone_its_own(make_context: Callable[..., Context]) -> None:
    ctx = make_context(network={"nat_gateways": 2})
    graph = network_graph(ctx)
    results = up(ctx, graph)
    assert results["rt.private.a"].attrs["routes"]["0.0.0.0/0"] == results["nat.a"].id
    assert results["rt.private.b"].attrs["routes"]["0.0.0.0/0"] == results["nat.b"].id
    assert results["nat.b"].attrs["subnet"] == results["subnet.public.b"].id


def test_interrupted_up_resumes_without_duplicates(ctx: Context) -> None:
    graph = network_graph(ctx)
    handlers = dict(ctx.handlers)
    created: list[str] = []
    real_subnet = handlers["subnet"]

    class InterruptAfterThreeSubnets(type(real_subnet)):  # type: ignore[misc]
        def create(self, run: Any, res: Resource, deps: Any) -> Any:
            found = super().create(run, res, deps)
            created.append(res.key)
            if len(created) == 3:
                run.cancel.set()  # as Ctrl-C does
            return found

    handlers["subnet"] = InterruptAfterThreeSubnets()
    with pytest.raises(Cancelled, match="interrupted"):
        apply_plan(ctx.run, make_plan(ctx.run, graph, handlers), handlers, parallelism=1)
    ctx.run.cancel.clear()

    partial = make_plan(ctx.run, graph, ctx.handlers)
    assert partial.has_work and any(s.action is Action.NONE for s in partial.steps)
    up(ctx, graph)

    ec2 = boto3.client("ec2", region_name="us-east-1")
    assert len(tagged(ec2.describe_vpcs()["Vpcs"])) == 1
    assert len(tagged(ec2.describe_subnets()["Subnets"])) == 7
    assert len(tagged(ec2.describe_internet_gateways()["InternetGateways"])) == 1
    assert len(tagged(ec2.describe_addresses()["Addresses"])) == 1
    assert len([n for n in tagged(ec2.describe_nat_gateways()["NatGateways"]) if n["State"] != "deleted"]) == 1
    assert len(tagged(ec2.describe_route_tables()["RouteTables"])) == 3
    assert not make_plan(ctx.run, graph, ctx.handlers).has_work


def test_a_route_table_left_without_routes_is_repaired(ctx: Context) -> None:
    """An interruption between CreateRouteTable and CreateRoute leaves a table that `up` must finish."""
    graph = network_graph(ctx)
    results = up(ctx, graph)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    table = results["rt.private.b"]
    ec2.delete_route(RouteTableId=table.id, DestinationCidrBlock="0.0.0.0/0")
    ec2.disassociate_route_table(AssociationId=table.attrs["associations"][results["subnet.app.b"].id])
    plan = make_plan(ctx.run, graph, ctx.handlers)
    [step] = [s for s in plan.steps if s.action is not Action.NONE]
    assert step.resource.key == "rt.private.b" and step.action is Action.UPDATE
    nat, subnet = results["nat.a"].id, results["subnet.app.b"].id
    assert [(c.field, c.old, c.new) for c in step.changes] == [
        ("routes[0.0.0.0/0]", None, Ref("nat.a")),
        (f"subnets[{subnet}]", None, Ref("subnet.app.b")),
    ]
    assert [c.text for c in step.changes] == [
        f"routes[0.0.0.0/0]: (none) → {nat}",
        f"subnets[{subnet}]: (none) → {subnet}",
    ]
    up(ctx, graph)
    assert not make_plan(ctx.run, graph, ctx.handlers).has_work


def test_changed_subnet_cidr_is_a_conflict_and_nothing_changes(make_context: Callable[..., Context]) -> None:
    ctx = make_context()
    up(ctx, network_graph(ctx))
    changed = make_context(network={"app_subnets": ["10.0.12.0/24", "10.0.11.0/24"]})
    graph = network_graph(changed)
    plan = make_plan(changed.run, graph, changed.handlers)
    [conflict] = plan.conflicts
    assert conflict.resource.key == "subnet.app.a"
    before = len(changed.clients.mutating_calls())
    with pytest.raises(ConflictError, match=r"cidr: 10\.0\.10\.0/24 → 10\.0\.12\.0/24"):
        apply_plan(changed.run, plan, changed.handlers)
    assert changed.clients.mutating_calls()[before:] == []


def test_down_deletes_in_reverse_dependency_order_and_leaves_nothing(ctx: Context) -> None:
    """moto does not enforce most of AWS's delete order, so the order of the calls is checked itself."""
    graph = network_graph(ctx)
    results = up(ctx, graph)
    calls: list[tuple[str, dict[str, Any]]] = []
    ctx.clients.client("ec2").meta.events.register(
        "provide-client-params.ec2.*", lambda params, model, **_: calls.append((model.name, dict(params)))
    )
    deleted = down(ctx, graph)
    assert set(deleted) == set(graph.resources)

    def when(operation: str, **params: str) -> int:
        [index] = [i for i, (op, p) in enumerate(calls) if op == operation and params.items() <= p.items()]
        return index

    subnet_tables = {
        s: t for t in ("rt.public", "rt.private.a", "rt.private.b") for s in results[t].attrs["associations"]
    }
    for key in [k for k in graph.resources if k.startswith("subnet.")]:
        subnet_id = results[key].id
        association = results[subnet_tables[subnet_id]].attrs["associations"][subnet_id]
        assert when("DisassociateRouteTable", AssociationId=association) < when("DeleteSubnet", SubnetId=subnet_id)
        assert when("DeleteSubnet", SubnetId=subnet_id) < when("DeleteVpc")
    nat, eip, igw = results["nat.a"].id, results["eip.nat.a"].id, results["igw"].id
    assert when("DeleteRouteTable", RouteTableId=results["rt.private.a"].id) < when(
        "DeleteNatGateway", NatGatewayId=nat
    )
    assert when("DeleteNatGateway", NatGatewayId=nat) < when("ReleaseAddress", AllocationId=eip)
    assert when("DeleteNatGateway", NatGatewayId=nat) < when("DeleteSubnet", SubnetId=results["subnet.public.a"].id)
    assert when("ReleaseAddress", AllocationId=eip) < when("DetachInternetGateway", InternetGatewayId=igw)
    assert when("DeleteRouteTable", RouteTableId=results["rt.public"].id) < when("DetachInternetGateway")
    assert when("DeleteInternetGateway", InternetGatewayId=igw) < when("DeleteVpc")

    assert leftovers(ctx.run, graph, ctx.handlers, lambda: tagged_arns(ctx.run)) == []
    ec2 = boto3.client("ec2", region_name="us-east-1")
    assert tagged(ec2.describe_vpcs()["Vpcs"]) == []
    assert tagged(ec2.describe_addresses()["Addresses"]) == []


def test_down_twice_is_fine_and_not_found_counts_as_deleted(ctx: Context) -> None:
    graph = network_graph(ctx)
    up(ctx, graph)
    doomed = find_everything(ctx.run, graph, ctx.handlers)
    sweep(ctx.run, graph, ctx.handlers, doomed)
    # Deleting the same (now gone) resources again, as a re-run after an interruption would: no error.
    sweep(ctx.run, graph, ctx.handlers, doomed)
    assert down(ctx, graph) == {}


def test_down_removes_resources_the_config_no_longer_declares(make_context: Callable[..., Context]) -> None:
    two = make_context(network={"nat_gateways": 2})
    up(two, network_graph(two))
    one = make_context()
    graph = network_graph(one)
    doomed = find_everything(one.run, graph, one.handlers)
    assert {"nat.b", "eip.nat.b"} <= set(doomed)
    sweep(one.run, graph, one.handlers, doomed)
    assert leftovers(one.run, graph, one.handlers, lambda: tagged_arns(one.run)) == []


def test_leftover_scan_finds_what_remains_and_ignores_other_stacks(ctx: Context) -> None:
    graph = network_graph(ctx)
    up(ctx, graph)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ec2.create_vpc(
        CidrBlock="10.9.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "cdpoc:stack", "Value": "other"}]}],
    )
    left = leftovers(ctx.run, graph, ctx.handlers, lambda: tagged_arns(ctx.run))
    assert len(left) == len(graph.resources)
    assert not any("10.9.0.0/16" in item for item in left)


def test_zones_are_chosen_among_those_offering_every_instance_type(ctx: Context) -> None:
    from cdpoc.aws.account import resolve_zones
    from cdpoc.errors import ConfigError

    offered = resolve_zones(ctx.run, (), ("t3.micro", "t3.small"))
    assert len(offered) == 2
    ec2 = boto3.client("ec2", region_name="us-east-1")
    offers = ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["t3.micro"]}]
    )
    assert set(offered) <= {o["Location"] for o in offers["InstanceTypeOfferings"]}
    with pytest.raises(ConfigError, match=r"fewer than two available zones offering no-such\.type"):
        resolve_zones(ctx.run, (), ("no-such.type",))
    with pytest.raises(ConfigError, match=r"us-east-1a lacks no-such\.type"):
        resolve_zones(ctx.run, ("us-east-1a", "us-east-1b"), ("no-such.type",))


def test_releasing_an_address_its_nat_gateway_still_holds_is_retried_not_a_credentials_error(ctx: Context) -> None:
    """AWS answers ReleaseAddress with AuthFailure while a deleted NAT gateway still holds the address."""
    from botocore.stub import Stubber

    from cdpoc.aws.errors import DependencyViolation
    from cdpoc.aws.network import ElasticIpHandler

    stub = Stubber(ctx.clients.client("ec2"))
    stub.add_client_error(
        "release_address", "AuthFailure", "You do not have permission to access the specified resource."
    )
    stub.add_client_error("release_address", "InvalidIPAddress.InUse", "Address is in use.")
    stub.add_client_error("release_address", "InvalidAllocationID.NotFound", "gone")
    found = Observed("eip.nat.a", "elastic_ip", "eipalloc-1", {"public_ip": "203.0.113.1"})
    with stub:
        for _ in range(2):
            with pytest.raises(DependencyViolation):
                ElasticIpHandler().delete(ctx.run, found)
        ElasticIpHandler().delete(ctx.run, found)  # NotFound: already released
    stub.assert_no_pending_responses()


def test_a_replayed_client_token_that_returns_a_deleted_resource_creates_anew(ctx: Context) -> None:
    """After a `down` stopped halfway the parent survives, so the token repeats: AWS would hand back the
    deleted route table. cdpoc notices and creates again with a token salted by the dead id."""
    graph = network_graph(ctx)
    results = up(ctx, graph)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    dead = results["rt.private.b"]
    replay = {"RouteTable": {"RouteTableId": dead.id, "VpcId": results["vpc"].id, "Routes": [], "Associations": []}}
    for association in dead.attrs["associations"].values():
        ec2.disassociate_route_table(AssociationId=association)
    ec2.delete_route_table(RouteTableId=dead.id)
    client = ctx.clients.client("ec2")
    real = client.create_route_table
    tokens: list[str] = []

    def create_route_table(**params: Any) -> Any:
        tokens.append(params["ClientToken"])
        return replay if len(tokens) == 1 else real(**params)  # the first answer is AWS's replay

    client.create_route_table = create_route_table
    up(ctx, graph)
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    tables = [
        t for t in tagged(ec2.describe_route_tables()["RouteTables"]) if tags_of(t)["cdpoc:component"] == "rt.private.b"
    ]
    assert len(tables) == 1 and tables[0]["RouteTableId"] != dead.id
