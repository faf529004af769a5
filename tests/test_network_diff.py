"""The network kinds' one diff, against moto through the real handlers: the plan shows each changed field
with both values, `up` makes exactly the calls for those changes, and the next plan is clean. A route table's
routes and subnets are diffed both ways: what the spec no longer lists is removed (issue 11)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cdpoc.apply import apply_plan
from cdpoc.aws.account import account_id, resolve_zones
from cdpoc.context import Context
from cdpoc.errors import ConflictError
from cdpoc.graph import Graph
from cdpoc.model import Action, Change, Observed, Plan, Resource
from cdpoc.planner import make_plan
from cdpoc.spec import Ref, declare
from cdpoc.stack import network
from cdpoc.stack.names import StackNames
from cdpoc.stack.specs.network import RouteTableSpec

pytestmark = pytest.mark.usefixtures("aws")

Edit = Callable[[Resource], Resource]


def network_graph(ctx: Context, edits: dict[str, Edit] | None = None) -> Graph:
    """The network core as cdpoc declares it, with `edits` standing for a changed declaration."""
    zones = resolve_zones(ctx.run, ctx.settings.availability_zones)
    ctx.run.zones = zones
    resources = network.declare(StackNames(ctx.settings, zones, account_id(ctx.run)))
    return Graph.of([(edits or {}).get(res.key, lambda same: same)(res) for res in resources])


def with_route_table(**changes: Any) -> Edit:
    """A route table declared with other routes or subnets."""

    def edit(res: Resource) -> Resource:
        assert isinstance(res.spec, RouteTableSpec)
        return declare(res.key, res.name, dataclasses.replace(res.spec, **changes))

    return edit


def up(ctx: Context, graph: Graph) -> dict[str, Observed]:
    return apply_plan(ctx.run, make_plan(ctx.run, graph, ctx.handlers), ctx.handlers)


def step_of(plan: Plan, key: str) -> tuple[Action, list[Change]]:
    [step] = [s for s in plan.steps if s.resource.key == key]
    return step.action, list(step.changes)


def only_work(plan: Plan) -> dict[str, list[str]]:
    """{key: change texts} of every step the plan would act on (or refuses)."""
    return {s.resource.key: [c.text for c in s.changes] for s in plan.steps if s.action is not Action.NONE}


def record_calls(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    """Every EC2 call cdpoc makes from now on, with its parameters."""
    calls: list[tuple[str, dict[str, Any]]] = []
    ctx.clients.client("ec2").meta.events.register(
        "provide-client-params.ec2.*", lambda params, model, **_: calls.append((model.name, dict(params)))
    )
    return calls


def mutating(calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(op, params) for op, params in calls if not op.startswith("Describe")]


def ec2() -> Any:
    return boto3.client("ec2", region_name="us-east-1")


def table_routes(table_id: str) -> dict[str, str]:
    [table] = ec2().describe_route_tables(RouteTableIds=[table_id])["RouteTables"]
    return {
        r["DestinationCidrBlock"]: r.get("GatewayId") or r.get("NatGatewayId") or ""
        for r in table["Routes"]
        if r.get("Origin") == "CreateRoute"
    }


def table_subnets(table_id: str) -> set[str]:
    [table] = ec2().describe_route_tables(RouteTableIds=[table_id])["RouteTables"]
    return {a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")}


@pytest.fixture
def ctx(make_context: Callable[..., Context]) -> Context:
    return make_context()


def test_a_route_the_spec_no_longer_lists_is_shown_with_its_target_removed_and_the_next_plan_is_clean(
    ctx: Context,
) -> None:
    extra = {"0.0.0.0/0": Ref("nat.a"), "10.9.0.0/16": Ref("nat.a")}
    results = up(ctx, network_graph(ctx, {"rt.private.a": with_route_table(routes=extra)}))
    table, nat = results["rt.private.a"].id, results["nat.a"].id
    assert table_routes(table) == {"0.0.0.0/0": nat, "10.9.0.0/16": nat}

    graph = network_graph(ctx)  # the declaration as it is now: one route
    plan = make_plan(ctx.run, graph, ctx.handlers)
    action, [change] = step_of(plan, "rt.private.a")
    assert action is Action.UPDATE
    assert (change.field, change.old, change.new, change.in_place) == ("routes[10.9.0.0/16]", nat, None, True)
    assert change.text == f"routes[10.9.0.0/16]: {nat} → (none)"
    assert only_work(plan) == {"rt.private.a": [change.text]}

    calls = record_calls(ctx)
    apply_plan(ctx.run, plan, ctx.handlers)
    assert mutating(calls) == [("DeleteRoute", {"RouteTableId": table, "DestinationCidrBlock": "10.9.0.0/16"})]
    assert table_routes(table) == {"0.0.0.0/0": nat}
    assert not make_plan(ctx.run, graph, ctx.handlers).has_work


def test_a_route_added_by_hand_is_removed_too(ctx: Context) -> None:
    """The spec is the whole truth about a table's routes, whoever added one."""
    graph = network_graph(ctx)
    results = up(ctx, graph)
    table, igw = results["rt.public"].id, results["igw"].id
    ec2().create_route(RouteTableId=table, DestinationCidrBlock="192.168.0.0/16", GatewayId=igw)
    plan = make_plan(ctx.run, graph, ctx.handlers)
    assert only_work(plan) == {"rt.public": [f"routes[192.168.0.0/16]: {igw} → (none)"]}
    apply_plan(ctx.run, plan, ctx.handlers)
    assert table_routes(table) == {"0.0.0.0/0": igw}
    assert not make_plan(ctx.run, graph, ctx.handlers).has_work


def test_a_gateway_endpoint_s_route_is_the_endpoint_s_and_left_alone(ctx: Context) -> None:
    """The S3 endpoint (stack/security.py) adds its prefix list's route to the tables it names: not a stale route."""
    graph = network_graph(ctx)
    results = up(ctx, graph)
    table = results["rt.private.a"].id
    endpoint = ec2().create_vpc_endpoint(
        VpcId=results["vpc"].id,
        ServiceName="com.amazonaws.us-east-1.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=[table],
    )["VpcEndpoint"]["VpcEndpointId"]
    [table_now] = ec2().describe_route_tables(RouteTableIds=[table])["RouteTables"]
    assert any(r.get("GatewayId") == endpoint for r in table_now["Routes"])
    assert not make_plan(ctx.run, graph, ctx.handlers).has_work


def test_one_nat_gateway_instead_of_two_moves_zone_b_s_route_to_zone_a_s(make_context: Callable[..., Context]) -> None:
    """The issue's case: with nat_gateways 2 → 1, rt.private.b's default route moves from nat.b to nat.a."""
    two = make_context(network={"nat_gateways": 2})
    results = up(two, network_graph(two))
    table, nat_a, nat_b = results["rt.private.b"].id, results["nat.a"].id, results["nat.b"].id
    assert table_routes(table) == {"0.0.0.0/0": nat_b}

    one = make_context()
    graph = network_graph(one)
    plan = make_plan(one.run, graph, one.handlers)
    action, [change] = step_of(plan, "rt.private.b")
    assert action is Action.UPDATE
    assert (change.field, change.old, change.new) == ("routes[0.0.0.0/0]", nat_b, Ref("nat.a"))
    assert only_work(plan) == {"rt.private.b": [f"routes[0.0.0.0/0]: {nat_b} → {nat_a}"]}

    calls = record_calls(one)
    apply_plan(one.run, plan, one.handlers)
    assert mutating(calls) == [
        ("ReplaceRoute", {"RouteTableId": table, "DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": nat_a})
    ]
    assert table_routes(table) == {"0.0.0.0/0": nat_a}
    after = make_plan(one.run, graph, one.handlers)
    assert not after.has_work and not after.conflicts
    # nat.b and its address are the stack's but no longer declared: listed as extras for `down`, not dropped.
    assert {found.key for found in after.extras} == {"nat.b", "eip.nat.b"}


def test_a_subnet_the_spec_no_longer_lists_is_moved_back_off_the_table(ctx: Context) -> None:
    results = up(ctx, network_graph(ctx))
    table, app, data = results["rt.private.a"].id, results["subnet.app.a"].id, results["subnet.data.a"].id
    association = results["rt.private.a"].attrs["associations"][data]

    graph = network_graph(ctx, {"rt.private.a": with_route_table(subnets=(Ref("subnet.app.a"),))})
    plan = make_plan(ctx.run, graph, ctx.handlers)
    action, [change] = step_of(plan, "rt.private.a")
    assert action is Action.UPDATE
    assert (change.field, change.old, change.new) == (f"subnets[{data}]", data, None)
    assert only_work(plan) == {"rt.private.a": [f"subnets[{data}]: {data} → (none)"]}

    calls = record_calls(ctx)
    apply_plan(ctx.run, plan, ctx.handlers)
    assert mutating(calls) == [("DisassociateRouteTable", {"AssociationId": association})]
    assert table_subnets(table) == {app}
    [main] = ec2().describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [results["vpc"].id]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"]
    assert not any(a.get("SubnetId") == data for a in main["Associations"])  # implicitly on the main table again
    assert not make_plan(ctx.run, graph, ctx.handlers).has_work


def test_a_subnet_moved_to_the_wrong_table_is_moved_back_by_both_tables_changes(ctx: Context) -> None:
    graph = network_graph(ctx)
    results = up(ctx, graph)
    wrong, right, subnet = results["rt.private.a"].id, results["rt.private.b"].id, results["subnet.app.b"].id
    ec2().replace_route_table_association(
        AssociationId=results["rt.private.b"].attrs["associations"][subnet], RouteTableId=wrong
    )
    plan = make_plan(ctx.run, graph, ctx.handlers)
    assert only_work(plan) == {
        "rt.private.a": [f"subnets[{subnet}]: {subnet} → (none)"],
        "rt.private.b": [f"subnets[{subnet}]: (none) → {subnet}"],
    }
    apply_plan(ctx.run, plan, ctx.handlers)
    assert subnet in table_subnets(right) and subnet not in table_subnets(wrong)
    assert not make_plan(ctx.run, graph, ctx.handlers).has_work


def test_a_subnet_let_go_by_another_table_while_this_one_moves_it_is_associated_all_the_same(ctx: Context) -> None:
    """The race of the test above, forced: rt.private.b looks up the subnet's association (on rt.private.a),
    then rt.private.a disassociates it before rt.private.b's ReplaceRouteTableAssociation arrives, which AWS
    refuses with InvalidAssociationID.NotFound. rt.private.b looks again and associates the subnet."""
    graph = network_graph(ctx)
    results = up(ctx, graph)
    wrong, right, subnet = results["rt.private.a"].id, results["rt.private.b"].id, results["subnet.app.b"].id
    moved = ec2().replace_route_table_association(
        AssociationId=results["rt.private.b"].attrs["associations"][subnet], RouteTableId=wrong
    )["NewAssociationId"]
    plan = make_plan(ctx.run, graph, ctx.handlers)
    [step] = [s for s in plan.steps if s.resource.key == "rt.private.b"]
    assert step.found is not None

    def let_go_first(**_: Any) -> None:
        ec2().disassociate_route_table(AssociationId=moved)  # rt.private.a's update, a moment earlier

    client = ctx.clients.client("ec2")
    client.meta.events.register_first("before-call.ec2.ReplaceRouteTableAssociation", let_go_first)
    calls = record_calls(ctx)
    done = ctx.handlers["route_table"].update(ctx.run, step.resource, step.found, results, step.changes)
    client.meta.events.unregister("before-call.ec2.ReplaceRouteTableAssociation", let_go_first)
    assert [op for op, _ in mutating(calls)] == ["ReplaceRouteTableAssociation", "AssociateRouteTable"]
    assert table_subnets(right) == {subnet, results["subnet.data.b"].id} and subnet not in table_subnets(wrong)
    assert done.attrs["associations"][subnet] in _associations(right)


def _associations(table_id: str) -> set[str]:
    [table] = ec2().describe_route_tables(RouteTableIds=[table_id])["RouteTables"]
    return {a["RouteTableAssociationId"] for a in table["Associations"]}


def test_a_vpc_dns_attribute_turned_off_shows_both_values_and_up_turns_it_on(ctx: Context) -> None:
    graph = network_graph(ctx)
    results = up(ctx, graph)
    vpc = results["vpc"].id
    ec2().modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": False})
    plan = make_plan(ctx.run, graph, ctx.handlers)
    action, [change] = step_of(plan, "vpc")
    assert action is Action.UPDATE
    assert (change.field, change.old, change.new, change.text) == (
        "enable_dns_hostnames",
        False,
        True,
        "enable_dns_hostnames: False → True",
    )
    calls = record_calls(ctx)
    apply_plan(ctx.run, plan, ctx.handlers)
    assert mutating(calls) == [("ModifyVpcAttribute", {"VpcId": vpc, "EnableDnsHostnames": {"Value": True}})]
    assert ec2().describe_vpc_attribute(VpcId=vpc, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    assert not make_plan(ctx.run, graph, ctx.handlers).has_work


def test_a_detached_internet_gateway_is_attached_again(ctx: Context) -> None:
    # The VPC and its gateway alone: with a NAT gateway's address mapped, AWS refuses the detach by hand.
    graph = Graph.of([res for res in network_graph(ctx).order() if res.key in ("vpc", "igw")])
    results = up(ctx, graph)
    vpc, igw = results["vpc"].id, results["igw"].id
    ec2().detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    plan = make_plan(ctx.run, graph, ctx.handlers)
    action, [change] = step_of(plan, "igw")
    assert action is Action.UPDATE
    assert (change.field, change.old, change.new, change.text) == ("vpc", None, Ref("vpc"), f"vpc: (none) → {vpc}")
    calls = record_calls(ctx)
    apply_plan(ctx.run, plan, ctx.handlers)
    assert mutating(calls) == [("AttachInternetGateway", {"InternetGatewayId": igw, "VpcId": vpc})]
    assert not make_plan(ctx.run, graph, ctx.handlers).has_work


def test_a_changed_vpc_cidr_is_a_conflict_with_both_values_and_nothing_changes(
    make_context: Callable[..., Context],
) -> None:
    first = make_context()
    up(first, network_graph(first))
    changed = make_context(
        network={
            "vpc_cidr": "10.1.0.0/16",
            "public_subnets": ["10.1.0.0/24", "10.1.1.0/24"],
            "app_subnets": ["10.1.10.0/24", "10.1.11.0/24"],
            "data_subnets": ["10.1.20.0/24", "10.1.21.0/24"],
            "bastion_subnet": "10.1.30.0/24",
        }
    )
    plan = make_plan(changed.run, network_graph(changed), changed.handlers)
    action, changes = step_of(plan, "vpc")
    assert action is Action.CONFLICT
    assert [(c.field, c.old, c.new, c.in_place, c.text) for c in changes] == [
        ("cidr", "10.0.0.0/16", "10.1.0.0/16", False, "cidr: 10.0.0.0/16 → 10.1.0.0/16")
    ]
    before = len(changed.clients.mutating_calls())
    with pytest.raises(ConflictError, match=r"vpc \(t1-vpc\): cidr: 10\.0\.0\.0/16 → 10\.1\.0\.0/16"):
        apply_plan(changed.run, plan, changed.handlers)
    assert changed.clients.mutating_calls()[before:] == []


def test_a_nat_gateway_declared_on_another_address_is_a_conflict(make_context: Callable[..., Context]) -> None:
    """A NAT gateway's primary address is fixed at creation (force_new): another one cannot be an update."""
    ctx = make_context(network={"nat_gateways": 2})
    results = up(ctx, network_graph(ctx))

    def on_zone_b_address(res: Resource) -> Resource:
        assert res.spec is not None
        return declare(res.key, res.name, dataclasses.replace(res.spec, eip=Ref("eip.nat.b")), after=("igw",))

    plan = make_plan(ctx.run, network_graph(ctx, {"nat.a": on_zone_b_address}), ctx.handlers)
    action, changes = step_of(plan, "nat.a")
    assert action is Action.CONFLICT
    old, new = results["eip.nat.a"].id, results["eip.nat.b"].id
    assert [(c.field, c.old, c.new, c.in_place, c.text) for c in changes] == [
        ("eip", old, Ref("eip.nat.b"), False, f"eip: {old} → {new}")
    ]


@pytest.mark.parametrize(
    ("operation", "declared"),
    [
        # A route the spec dropped, a route moved to another target, a subnet the spec dropped.
        ("ec2:DeleteRoute", {}),
        ("ec2:ReplaceRoute", {"rt.private.a": with_route_table(routes={"0.0.0.0/0": Ref("igw")})}),
        ("ec2:DisassociateRouteTable", {"rt.private.a": with_route_table(subnets=(Ref("subnet.app.a"),))}),
    ],
)
def test_a_lost_answer_while_removing_or_replacing_converges(
    make_context: Callable[..., Context], operation: str, declared: dict[str, Edit]
) -> None:
    """AWS ran the call and botocore, never hearing back, sent it again: the retry's NotFound (delete,
    disassociate) counts as done, a replace is the same again; the next plan is clean."""
    from faults import LostAnswer

    first = make_context()
    extra = {"0.0.0.0/0": Ref("nat.a"), "10.9.0.0/16": Ref("nat.a")}
    up(first, network_graph(first, {"rt.private.a": with_route_table(routes=extra)}))

    run = make_context()
    lost = LostAnswer(run.clients, operation)
    graph = network_graph(run, declared)
    up(run, graph)
    assert lost.lost == 1 and lost.lost_call == operation
    assert not make_plan(run.run, graph, run.handlers).has_work
