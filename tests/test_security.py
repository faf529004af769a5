"""The security area: S3 gateway endpoint, per-tier network ACLs and security groups, against moto.

The tests build the network and security areas only (other areas are not needed and may be in flux),
and drive them through the real planner, executor and sweeper.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from cdpoc.apply import apply_plan
from cdpoc.aws import network as network_handlers
from cdpoc.aws import security as security_handlers
from cdpoc.aws.account import resolve_zones
from cdpoc.aws.errors import DependencyViolation
from cdpoc.aws.handler import Handler
from cdpoc.aws.run import COMPONENT_TAG, STACK_TAG, tag_map
from cdpoc.context import Context
from cdpoc.errors import AwsError, ConflictError
from cdpoc.graph import Graph
from cdpoc.model import Action, Observed, Plan, Resource, Step
from cdpoc.planner import make_plan
from cdpoc.spec import Ref, declare, spec_of
from cdpoc.stack import network, security
from cdpoc.stack.names import StackNames
from cdpoc.stack.specs.security import NaclEntry, NetworkAclSpec, SecurityGroupSpec, SgRule, VpcEndpointSpec
from cdpoc.sweeper import find_everything, sweep

OPERATOR = "203.0.113.7/32"
ACCOUNT = "123456789012"
HANDLERS: dict[str, Handler] = {h.kind: h for module in (network_handlers, security_handlers) for h in module.HANDLERS}
TIER_SUBNETS = {
    "nacl.public": ("subnet.public.a", "subnet.public.b"),
    "nacl.app": ("subnet.app.a", "subnet.app.b"),
    "nacl.data": ("subnet.data.a", "subnet.data.b"),
    "nacl.bastion": ("subnet.bastion",),
}


# -- helpers -----------------------------------------------------------------------------------------


def stack_names(ctx: Context) -> StackNames:
    zones = resolve_zones(ctx.run, ctx.settings.availability_zones)
    ctx.run.zones = zones
    # Neither area names anything after the account, so no STS call is needed.
    return StackNames(ctx.settings, zones, ACCOUNT)


def graph_of(ctx: Context) -> Graph:
    names = stack_names(ctx)
    return Graph.of([*network.declare(names), *security.declare(names)])


def plan(ctx: Context) -> Plan:
    return make_plan(ctx.run, graph_of(ctx), HANDLERS)


def up(ctx: Context) -> dict[str, Observed]:
    return apply_plan(ctx.run, plan(ctx), HANDLERS)


def ec2(ctx: Context) -> Any:
    return ctx.run.client("ec2")


def record(ctx: Context, *operations: str) -> list[tuple[str, dict[str, Any]]]:
    """Every request of the given EC2 operations, as sent (after botocore's validation), in order."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for operation in operations:
        ec2(ctx).meta.events.register(
            f"provide-client-params.ec2.{operation}",
            lambda params, op=operation, **_: calls.append((op, dict(params))),
        )
    return calls


def aws_entries(acl: Mapping[str, Any], egress: bool) -> set[tuple[Any, ...]]:
    return {
        (
            e["RuleNumber"],
            e["Protocol"],
            e["RuleAction"],
            e["CidrBlock"],
            (e["PortRange"]["From"], e["PortRange"]["To"]) if "PortRange" in e else None,
        )
        for e in acl["Entries"]
        if e["Egress"] is egress and e["RuleNumber"] < 32767
    }


def acl_spec(res: Resource) -> NetworkAclSpec:
    return spec_of(res, NetworkAclSpec)


def declared_entries(rules: Any) -> set[tuple[Any, ...]]:
    return {(r.number, r.protocol, r.action, r.cidr, r.ports) for r in rules}


def aws_group(ctx: Context, group_id: str) -> dict[str, Any]:
    return ec2(ctx).describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def ingress_of(group: Mapping[str, Any]) -> set[tuple[Any, ...]]:
    return {
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), source.get("CidrIp") or source.get("GroupId"))
        for p in group["IpPermissions"]
        for source in [*p.get("IpRanges", []), *p.get("UserIdGroupPairs", [])]
    }


def actions(result: Plan) -> dict[str, Action]:
    return {s.resource.key: s.action for s in result.steps}


def step(result: Plan, key: str) -> Step:
    return next(s for s in result.steps if s.resource.key == key)


def texts(result: Plan, key: str) -> list[str]:
    return [c.text for c in step(result, key).changes]


@pytest.fixture
def ctx(aws: None, make_context: Callable[..., Context]) -> Context:
    return make_context(operator={"ssh_cidr": OPERATOR})


# -- the declared rules --------------------------------------------------------------------------------

INTERNET, PUBLIC_A, PUBLIC_B = "198.51.100.20", "10.0.0.10", "10.0.1.10"
APP_A, APP_B, DATA_A, DATA_B, BASTION = "10.0.10.10", "10.0.11.10", "10.0.20.10", "10.0.21.10", "10.0.30.10"
OPERATOR_IP = "203.0.113.7"
REPLY = 40000  # a Linux ephemeral port

# (direction, peer address, port, allowed?) per tier, with the default network settings.
FLOWS: dict[str, list[tuple[str, str, int, bool]]] = {
    "nacl.public": [
        ("ingress", INTERNET, 80, True),  # clients to the ALB
        ("ingress", INTERNET, 443, False),
        ("ingress", INTERNET, 22, False),
        ("ingress", APP_A, 443, True),  # to the NAT
        ("ingress", DATA_B, 80, True),  # to the NAT
        ("ingress", INTERNET, REPLY, True),  # replies to the NAT
        ("egress", APP_B, 80, True),  # ALB to the app
        ("egress", INTERNET, 443, True),  # NAT forwarding
        ("egress", INTERNET, REPLY, True),  # ALB replies to clients
        ("egress", INTERNET, 22, False),
    ],
    "nacl.app": [
        ("ingress", PUBLIC_A, 80, True),
        ("ingress", PUBLIC_B, 80, True),
        ("ingress", INTERNET, 80, False),
        ("ingress", DATA_A, 80, False),
        ("ingress", BASTION, 22, True),
        ("ingress", PUBLIC_A, 22, False),
        ("ingress", INTERNET, 22, False),
        ("ingress", INTERNET, REPLY, True),
        ("egress", INTERNET, 443, True),
        ("egress", INTERNET, 80, True),
        ("egress", DATA_A, 27017, True),
        ("egress", DATA_B, 27017, True),
        ("egress", INTERNET, 27017, False),
        ("egress", INTERNET, 22, False),
        ("egress", PUBLIC_B, REPLY, True),
        ("egress", BASTION, REPLY, True),
        ("egress", INTERNET, REPLY, False),
    ],
    "nacl.data": [
        ("ingress", APP_A, 27017, True),
        ("ingress", APP_B, 27017, True),
        ("ingress", PUBLIC_A, 27017, False),
        ("ingress", INTERNET, 27017, False),  # inside the ephemeral range: denied explicitly
        ("ingress", BASTION, 27017, False),
        ("ingress", BASTION, 22, True),
        ("ingress", APP_A, 22, False),
        ("ingress", INTERNET, REPLY, True),
        ("egress", INTERNET, 443, True),
        ("egress", INTERNET, 80, True),
        ("egress", APP_B, REPLY, True),
        ("egress", BASTION, REPLY, True),
        ("egress", INTERNET, REPLY, False),
        ("egress", PUBLIC_A, REPLY, False),
        ("egress", INTERNET, 22, False),
    ],
    "nacl.bastion": [
        ("ingress", OPERATOR_IP, 22, True),
        ("ingress", INTERNET, 22, False),
        ("ingress", APP_A, 22, False),
        ("ingress", INTERNET, REPLY, True),
        ("egress", APP_A, 22, True),
        ("egress", DATA_B, 22, True),
        ("egress", INTERNET, 22, False),
        ("egress", INTERNET, 443, True),
        ("egress", OPERATOR_IP, REPLY, True),
        ("egress", INTERNET, REPLY, False),
    ],
}


def verdict(rules: Any, address: str, port: int) -> bool:
    """How AWS evaluates a NACL for one TCP packet: the lowest-numbered matching rule wins, else deny."""
    for rule in sorted(rules, key=lambda r: r.number):
        low, high = rule.ports or (0, 65535)
        if (
            rule.protocol in (security.TCP, "-1")
            and low <= port <= high
            and ipaddress.ip_address(address) in ipaddress.ip_network(rule.cidr)
        ):
            return bool(rule.action == "allow")
    return False


@pytest.mark.parametrize("key", sorted(FLOWS))
def test_each_tier_allows_only_the_traffic_it_needs(make_context: Callable[..., Context], key: str) -> None:
    settings = make_context(operator={"ssh_cidr": OPERATOR}).settings
    acl = {r.key: r for r in security.declare(StackNames(settings, ("us-east-1a", "us-east-1b"), ACCOUNT))}[key]
    wrong = [
        (direction, address, port, allowed)
        for direction, address, port, allowed in FLOWS[key]
        if verdict(getattr(acl_spec(acl), direction), address, port) is not allowed
    ]
    assert not wrong, f"{key}: expected verdicts not met for {wrong}"


def test_no_acl_allows_everything_and_rule_numbers_are_valid(make_context: Callable[..., Context]) -> None:
    settings = make_context(operator={"ssh_cidr": OPERATOR}).settings
    acls = [
        r
        for r in security.declare(StackNames(settings, ("us-east-1a", "us-east-1b"), ACCOUNT))
        if r.kind == "network_acl"
    ]
    assert sorted(r.key for r in acls) == sorted(TIER_SUBNETS)
    for acl in acls:
        assert tuple(ref.key for ref in acl_spec(acl).subnets) == TIER_SUBNETS[acl.key]
        for direction in ("ingress", "egress"):
            rules = getattr(acl_spec(acl), direction)
            numbers = [r.number for r in rules]
            assert len(numbers) == len(set(numbers)) and all(1 <= n <= 32766 for n in numbers)
            for rule in rules:
                assert rule.protocol != "-1", f"{acl.key} {direction} allows every protocol: {rule}"
                assert rule.ports != (0, 65535)


def test_security_groups_reference_each_other_as_the_issue_says(make_context: Callable[..., Context]) -> None:
    settings = make_context(operator={"ssh_cidr": OPERATOR}).settings
    groups = {r.key: r for r in security.declare(StackNames(settings, ("us-east-1a", "us-east-1b"), ACCOUNT))}

    def sources(key: str) -> set[tuple[Any, str]]:
        spec = spec_of(groups[key], SecurityGroupSpec)
        return {(r.ports, r.group.key if r.group else r.cidr) for r in spec.ingress}

    assert sources("sg.alb") == {((80, 80), "0.0.0.0/0")}
    assert sources("sg.app") == {((80, 80), "sg.alb"), ((22, 22), "sg.bastion")}
    assert sources("sg.bastion") == {((22, 22), OPERATOR)}
    assert sources("sg.data") == {((27017, 27017), "sg.app"), ((22, 22), "sg.bastion")}
    assert set(groups["sg.app"].depends_on) == {"vpc", "sg.alb", "sg.bastion"}
    assert set(groups["sg.data"].depends_on) == {"vpc", "sg.app", "sg.bastion"}
    assert spec_of(groups["endpoint.s3"], VpcEndpointSpec).service == "com.amazonaws.us-east-1.s3"


# -- up ------------------------------------------------------------------------------------------------


def test_up_builds_acls_groups_and_endpoint_exactly_as_declared(ctx: Context) -> None:
    graph = graph_of(ctx)
    calls = record(ctx, "CreateNetworkAcl", "CreateSecurityGroup", "CreateVpcEndpoint")
    done = up(ctx)

    acls = ec2(ctx).describe_network_acls(Filters=ctx.run.stack_filter())["NetworkAcls"]
    assert len(acls) == 4
    for acl in acls:
        tags = tag_map(acl["Tags"])
        key = tags[COMPONENT_TAG]
        assert tags[STACK_TAG] == "t1" and tags["Name"] == graph[key].name
        assert aws_entries(acl, egress=False) == declared_entries(acl_spec(graph[key]).ingress)
        assert aws_entries(acl, egress=True) == declared_entries(acl_spec(graph[key]).egress)
        assert not [e for e in acl["Entries"] if e["Protocol"] == "-1" and e["RuleAction"] == "allow"]
        assert {a["SubnetId"] for a in acl["Associations"]} == {done[s].id for s in TIER_SUBNETS[key]}

    for key in ("sg.alb", "sg.app", "sg.bastion", "sg.data"):
        group = aws_group(ctx, done[key].id)
        assert group["GroupName"] == graph[key].name and group["VpcId"] == done["vpc"].id
        assert tag_map(group["Tags"])[COMPONENT_TAG] == key
        # Egress stays the default allow-all: security groups are stateful, the NACLs restrict.
        assert [(p["IpProtocol"], p["IpRanges"]) for p in group["IpPermissionsEgress"]] == [
            ("-1", [{"CidrIp": "0.0.0.0/0"}])
        ]
    assert ingress_of(aws_group(ctx, done["sg.alb"].id)) == {("tcp", 80, 80, "0.0.0.0/0")}
    assert ingress_of(aws_group(ctx, done["sg.app"].id)) == {
        ("tcp", 80, 80, done["sg.alb"].id),
        ("tcp", 22, 22, done["sg.bastion"].id),
    }
    assert ingress_of(aws_group(ctx, done["sg.bastion"].id)) == {("tcp", 22, 22, OPERATOR)}
    assert ingress_of(aws_group(ctx, done["sg.data"].id)) == {
        ("tcp", 27017, 27017, done["sg.app"].id),
        ("tcp", 22, 22, done["sg.bastion"].id),
    }

    endpoint = ec2(ctx).describe_vpc_endpoints(VpcEndpointIds=[done["endpoint.s3"].id])["VpcEndpoints"][0]
    assert endpoint["VpcEndpointType"] == "Gateway" and endpoint["ServiceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["VpcId"] == done["vpc"].id
    assert set(endpoint["RouteTableIds"]) == {done["rt.private.a"].id, done["rt.private.b"].id}
    assert tag_map(endpoint["Tags"])[COMPONENT_TAG] == "endpoint.s3"

    # Tags are part of every create call, so nothing is ever left untagged.
    by_operation: dict[str, list[dict[str, Any]]] = {}
    for operation, params in calls:
        by_operation.setdefault(operation, []).append(params)
    resource_types = {
        "CreateNetworkAcl": "network-acl",
        "CreateSecurityGroup": "security-group",
        "CreateVpcEndpoint": "vpc-endpoint",
    }
    assert {op: len(requests) for op, requests in by_operation.items()} == {
        "CreateNetworkAcl": 4,
        "CreateSecurityGroup": 4,
        "CreateVpcEndpoint": 1,
    }
    for operation, requests in by_operation.items():
        for params in requests:
            (spec,) = params["TagSpecifications"]
            tags = tag_map(spec["Tags"])
            assert spec["ResourceType"] == resource_types[operation]
            assert tags[STACK_TAG] == "t1" and tags[COMPONENT_TAG] and tags["Name"]
    # moto ignores ClientToken; AWS hands back the first resource for a repeated token, so a create retried
    # after a lost reply makes no second ACL or endpoint.
    tokens = {
        tag_map(p["TagSpecifications"][0]["Tags"])[COMPONENT_TAG]: p["ClientToken"]
        for p in [*by_operation["CreateNetworkAcl"], *by_operation["CreateVpcEndpoint"]]
    }
    expected_keys = [*TIER_SUBNETS, "endpoint.s3"]
    assert tokens == {key: ctx.run.client_token(graph[key], done["vpc"].id) for key in expected_keys}


def test_second_up_changes_nothing(ctx: Context) -> None:
    done = up(ctx)
    # AWS puts a fixed deny-all rule 32767 in both directions of every ACL (moto does not): not a difference.
    for acl in TIER_SUBNETS:
        for egress in (False, True):
            ec2(ctx).create_network_acl_entry(
                NetworkAclId=done[acl].id,
                RuleNumber=32767,
                Protocol="-1",
                RuleAction="deny",
                Egress=egress,
                CidrBlock="0.0.0.0/0",
            )
    before = len(ctx.clients.mutating_calls())
    again = plan(ctx)
    assert set(actions(again).values()) == {Action.NONE}
    apply_plan(ctx.run, again, HANDLERS)
    assert ctx.clients.mutating_calls()[before:] == []


def test_ssh_cidr_empty_means_no_ssh_into_the_bastion(aws: None, make_context: Callable[..., Context]) -> None:
    ctx = make_context()
    done = up(ctx)
    acl = ec2(ctx).describe_network_acls(NetworkAclIds=[done["nacl.bastion"].id])["NetworkAcls"][0]
    ingress_ports = {e["PortRange"]["From"] for e in acl["Entries"] if not e["Egress"] and "PortRange" in e}
    assert 22 not in ingress_ports
    assert aws_group(ctx, done["sg.bastion"].id)["IpPermissions"] == []
    # SSH onward from the bastion (e.g. over Session Manager) still reaches the private tiers.
    assert ("tcp", 22, 22, done["sg.bastion"].id) in ingress_of(aws_group(ctx, done["sg.app"].id))


# -- updates ---------------------------------------------------------------------------------------------


def test_changed_operator_cidr_replaces_the_rules_in_place(aws: None, make_context: Callable[..., Context]) -> None:
    up(make_context(operator={"ssh_cidr": OPERATOR}))
    ctx = make_context(operator={"ssh_cidr": "198.51.100.0/24"})
    changed = plan(ctx)
    assert {k for k, a in actions(changed).items() if a is not Action.NONE} == {"nacl.bastion", "sg.bastion"}
    # Each entry at its rule number, with the value AWS has and the one declared.
    assert texts(changed, "nacl.bastion") == [
        f"ingress[100]: allow tcp 22 {OPERATOR} → allow tcp 22 198.51.100.0/24",
        f"egress[130]: allow tcp 1024-65535 {OPERATOR} → allow tcp 1024-65535 198.51.100.0/24",
    ]
    [ssh] = [c for c in step(changed, "nacl.bastion").changes if c.field == "ingress[100]"]
    assert ssh.old == NaclEntry(100, "6", "allow", OPERATOR, (22, 22))
    assert ssh.new == NaclEntry(100, "6", "allow", "198.51.100.0/24", (22, 22))
    assert texts(changed, "sg.bastion") == [
        "ingress[tcp 22, 198.51.100.0/24]: (none) → tcp 22, 198.51.100.0/24 (SSH from the operator)",
        f"ingress[tcp 22, {OPERATOR}]: tcp 22, {OPERATOR} → (none)",
    ]
    calls = record(
        ctx,
        "ReplaceNetworkAclEntry",
        "CreateNetworkAclEntry",
        "DeleteNetworkAclEntry",
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
    )
    done = apply_plan(ctx.run, changed, HANDLERS)

    replaced = sorted(
        (p["RuleNumber"], p["Egress"], p["CidrBlock"]) for op, p in calls if op == "ReplaceNetworkAclEntry"
    )
    assert replaced == [(100, False, "198.51.100.0/24"), (130, True, "198.51.100.0/24")]
    assert not [op for op, _ in calls if op in ("CreateNetworkAclEntry", "DeleteNetworkAclEntry")]
    assert ingress_of(aws_group(ctx, done["sg.bastion"].id)) == {("tcp", 22, 22, "198.51.100.0/24")}
    assert set(actions(plan(ctx)).values()) == {Action.NONE}


def test_drift_is_repaired_in_place(ctx: Context) -> None:
    done = up(ctx)
    client = ec2(ctx)
    app_acl = done["nacl.app"].id
    # ACL entries: one missing, one changed (to allow-all), one extra.
    client.delete_network_acl_entry(NetworkAclId=app_acl, RuleNumber=110, Egress=False)
    client.replace_network_acl_entry(
        NetworkAclId=app_acl, RuleNumber=120, Protocol="-1", RuleAction="allow", Egress=False, CidrBlock="0.0.0.0/0"
    )
    client.create_network_acl_entry(
        NetworkAclId=app_acl,
        RuleNumber=500,
        Protocol="6",
        RuleAction="allow",
        Egress=True,
        CidrBlock="0.0.0.0/0",
        PortRange={"From": 22, "To": 22},
    )
    # A subnet put back on the VPC's default ACL by hand.
    default_acl = client.describe_network_acls(
        Filters=[{"Name": "vpc-id", "Values": [done["vpc"].id]}, {"Name": "default", "Values": ["true"]}]
    )["NetworkAcls"][0]["NetworkAclId"]
    association = done["nacl.data"].attrs["associations"][done["subnet.data.b"].id]
    client.replace_network_acl_association(AssociationId=association, NetworkAclId=default_acl)
    # Security groups: a rule revoked, a rule added.
    bastion_ssh = [
        r["SecurityGroupRuleId"]
        for r in client.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [done["sg.data"].id]}])[
            "SecurityGroupRules"
        ]
        if r.get("FromPort") == 22 and not r["IsEgress"]
    ]
    client.revoke_security_group_ingress(GroupId=done["sg.data"].id, SecurityGroupRuleIds=bastion_ssh)
    client.authorize_security_group_ingress(
        GroupId=done["sg.alb"].id,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    # The endpoint: one private route table gone, a stray one added.
    stray = client.create_route_table(VpcId=done["vpc"].id)["RouteTable"]["RouteTableId"]
    client.modify_vpc_endpoint(
        VpcEndpointId=done["endpoint.s3"].id, AddRouteTableIds=[stray], RemoveRouteTableIds=[done["rt.private.b"].id]
    )

    drifted = plan(ctx)
    assert {k for k, a in actions(drifted).items() if a is not Action.NONE} == {
        "nacl.app",
        "nacl.data",
        "sg.data",
        "sg.alb",
        "endpoint.s3",
    }
    assert all(c.in_place for s in drifted.steps for c in s.changes)
    # What the plan prints: each entry, rule, association and route table with both values.
    bastion_net = ctx.settings.network.bastion_subnet
    assert texts(drifted, "nacl.app") == [
        f"ingress[110]: (none) → allow tcp 22 {bastion_net}",
        "ingress[120]: allow all 0.0.0.0/0 → allow tcp 1024-65535 0.0.0.0/0",
        "egress[500]: allow tcp 22 0.0.0.0/0 → (none)",
    ]
    assert texts(drifted, "nacl.data") == [f"subnets[subnet.data.b]: (none) → {done['subnet.data.b'].id}"]
    bastion_sg = done["sg.bastion"].id
    assert texts(drifted, "sg.data") == [
        f"ingress[tcp 22, {bastion_sg}]: (none) → tcp 22, {bastion_sg} (SSH from the bastion)"
    ]
    assert texts(drifted, "sg.alb") == ["ingress[tcp 443, 0.0.0.0/0]: tcp 443, 0.0.0.0/0 → (none)"]
    assert texts(drifted, "endpoint.s3") == [
        f"route_tables[rt.private.b]: (none) → {done['rt.private.b'].id}",
        f"route_tables[{stray}]: {stray} → (none)",
    ]
    calls = record(
        ctx,
        "ReplaceNetworkAclEntry",
        "CreateNetworkAclEntry",
        "DeleteNetworkAclEntry",
        "ReplaceNetworkAclAssociation",
        "ModifyVpcEndpoint",
        "CreateVpcEndpoint",
        "CreateNetworkAcl",
        "CreateSecurityGroup",
    )
    done = apply_plan(ctx.run, drifted, HANDLERS)

    def sent(operation: str) -> list[dict[str, Any]]:
        return [params for op, params in calls if op == operation]

    assert [(p["RuleNumber"], p["Egress"]) for p in sent("ReplaceNetworkAclEntry")] == [(120, False)]
    assert [(p["RuleNumber"], p["Egress"]) for p in sent("CreateNetworkAclEntry")] == [(110, False)]
    assert [(p["RuleNumber"], p["Egress"]) for p in sent("DeleteNetworkAclEntry")] == [(500, True)]
    assert [p["NetworkAclId"] for p in sent("ReplaceNetworkAclAssociation")] == [done["nacl.data"].id]
    assert sent("ModifyVpcEndpoint") == [
        {
            "VpcEndpointId": done["endpoint.s3"].id,
            "AddRouteTableIds": [done["rt.private.b"].id],
            "RemoveRouteTableIds": [stray],
        }
    ]
    assert not sent("CreateVpcEndpoint") + sent("CreateNetworkAcl") + sent("CreateSecurityGroup")

    graph = graph_of(ctx)
    acl = client.describe_network_acls(NetworkAclIds=[app_acl])["NetworkAcls"][0]
    assert aws_entries(acl, egress=False) == declared_entries(acl_spec(graph["nacl.app"]).ingress)
    assert aws_entries(acl, egress=True) == declared_entries(acl_spec(graph["nacl.app"]).egress)
    data_acl = client.describe_network_acls(NetworkAclIds=[done["nacl.data"].id])["NetworkAcls"][0]
    assert {a["SubnetId"] for a in data_acl["Associations"]} == {done["subnet.data.a"].id, done["subnet.data.b"].id}
    assert ("tcp", 22, 22, done["sg.bastion"].id) in ingress_of(aws_group(ctx, done["sg.data"].id))
    assert ingress_of(aws_group(ctx, done["sg.alb"].id)) == {("tcp", 80, 80, "0.0.0.0/0")}
    endpoint = client.describe_vpc_endpoints(VpcEndpointIds=[done["endpoint.s3"].id])["VpcEndpoints"][0]
    assert set(endpoint["RouteTableIds"]) == {done["rt.private.a"].id, done["rt.private.b"].id}
    assert set(actions(plan(ctx)).values()) == {Action.NONE}


# -- what the declarations no longer want ------------------------------------------------------------------


def with_spec(graph: Graph, key: str, **fields: Any) -> Graph:
    """The graph with one resource's spec changed (as a later version of the declarations would)."""
    res = graph[key]
    assert res.spec is not None
    changed = declare(res.key, res.name, replace(res.spec, **fields))
    return Graph.of([changed if r.key == key else r for r in graph.order()])


def test_entries_and_rules_nobody_declares_any_more_are_removed(
    aws: None, make_context: Callable[..., Context]
) -> None:
    """The operator's SSH CIDR is dropped: its ACL entries and its group rule go, and nothing else moves."""
    up(make_context(operator={"ssh_cidr": OPERATOR}))
    ctx = make_context()
    stale = plan(ctx)
    assert {k for k, a in actions(stale).items() if a is not Action.NONE} == {"nacl.bastion", "sg.bastion"}
    assert texts(stale, "nacl.bastion") == [
        f"ingress[100]: allow tcp 22 {OPERATOR} → (none)",
        f"egress[130]: allow tcp 1024-65535 {OPERATOR} → (none)",
    ]
    [ssh] = step(stale, "nacl.bastion").changes[:1]
    assert (ssh.field, ssh.old, ssh.new, ssh.in_place) == (
        "ingress[100]",
        NaclEntry(100, "6", "allow", OPERATOR, (22, 22)),
        None,
        True,
    )
    assert texts(stale, "sg.bastion") == [f"ingress[tcp 22, {OPERATOR}]: tcp 22, {OPERATOR} → (none)"]
    calls = record(
        ctx,
        "ReplaceNetworkAclEntry",
        "CreateNetworkAclEntry",
        "DeleteNetworkAclEntry",
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
    )
    done = apply_plan(ctx.run, stale, HANDLERS)

    assert sorted((op, p.get("RuleNumber"), p.get("Egress")) for op, p in calls) == [
        ("DeleteNetworkAclEntry", 100, False),
        ("DeleteNetworkAclEntry", 130, True),
        ("RevokeSecurityGroupIngress", None, None),
    ]
    acl = ec2(ctx).describe_network_acls(NetworkAclIds=[done["nacl.bastion"].id])["NetworkAcls"][0]
    declared = acl_spec(graph_of(ctx)["nacl.bastion"])
    assert aws_entries(acl, egress=False) == declared_entries(declared.ingress)
    assert aws_entries(acl, egress=True) == declared_entries(declared.egress)
    assert aws_group(ctx, done["sg.bastion"].id)["IpPermissions"] == []
    assert set(actions(plan(ctx)).values()) == {Action.NONE}


def test_route_tables_and_subnets_nobody_declares_any_more_are_released(ctx: Context) -> None:
    """The endpoint no longer serves one private route table, the app ACL no longer takes one subnet: the
    plan shows both with their ids, `up` removes the route table and hands the subnet back to the VPC's
    default ACL (every subnet has exactly one), and the next plan is clean."""
    done = up(ctx)
    table_b, subnet_b = done["rt.private.b"].id, done["subnet.app.b"].id
    graph = with_spec(graph_of(ctx), "endpoint.s3", route_tables=(Ref("rt.private.a"),))
    graph = with_spec(graph, "nacl.app", subnets=(Ref("subnet.app.a"),))
    stale = make_plan(ctx.run, graph, HANDLERS)
    assert {k for k, a in actions(stale).items() if a is not Action.NONE} == {"endpoint.s3", "nacl.app"}
    assert texts(stale, "endpoint.s3") == [f"route_tables[{table_b}]: {table_b} → (none)"]
    assert texts(stale, "nacl.app") == [f"subnets[{subnet_b}]: {subnet_b} → (none)"]
    calls = record(ctx, "ModifyVpcEndpoint", "ReplaceNetworkAclAssociation")
    apply_plan(ctx.run, stale, HANDLERS)

    client = ec2(ctx)
    default_acl = client.describe_network_acls(
        Filters=[{"Name": "vpc-id", "Values": [done["vpc"].id]}, {"Name": "default", "Values": ["true"]}]
    )["NetworkAcls"][0]
    made = dict(calls)  # the two steps run in parallel: either may call first
    assert sorted(made) == ["ModifyVpcEndpoint", "ReplaceNetworkAclAssociation"] and len(calls) == 2
    assert made["ModifyVpcEndpoint"] == {"VpcEndpointId": done["endpoint.s3"].id, "RemoveRouteTableIds": [table_b]}
    assert made["ReplaceNetworkAclAssociation"]["NetworkAclId"] == default_acl["NetworkAclId"]
    endpoint = client.describe_vpc_endpoints(VpcEndpointIds=[done["endpoint.s3"].id])["VpcEndpoints"][0]
    assert endpoint["RouteTableIds"] == [done["rt.private.a"].id]
    app_acl = client.describe_network_acls(NetworkAclIds=[done["nacl.app"].id])["NetworkAcls"][0]
    assert [a["SubnetId"] for a in app_acl["Associations"]] == [done["subnet.app.a"].id]
    assert subnet_b in {a["SubnetId"] for a in default_acl["Associations"]}
    assert set(actions(make_plan(ctx.run, graph, HANDLERS)).values()) == {Action.NONE}


def test_a_subnet_moved_to_another_acl_ends_on_it_whichever_acl_goes_first(ctx: Context) -> None:
    """One plan releases the subnet from one ACL and gives it to another; the two steps run in either
    order (no edge between them), and both orders end with the subnet on the new ACL only."""
    done = up(ctx)
    subnet_b = done["subnet.app.b"].id
    graph = with_spec(graph_of(ctx), "nacl.app", subnets=(Ref("subnet.app.a"),))
    graph = with_spec(graph, "nacl.data", subnets=(Ref("subnet.data.a"), Ref("subnet.data.b"), Ref("subnet.app.b")))
    moved = make_plan(ctx.run, graph, HANDLERS)
    assert texts(moved, "nacl.app") == [f"subnets[{subnet_b}]: {subnet_b} → (none)"]
    assert texts(moved, "nacl.data") == [f"subnets[subnet.app.b]: (none) → {subnet_b}"]
    handler = HANDLERS["network_acl"]
    app, data = step(moved, "nacl.app"), step(moved, "nacl.data")
    # The data ACL first: the app ACL then finds the subnet gone and leaves it alone.
    assert data.found is not None and app.found is not None
    handler.update(ctx.run, data.resource, data.found, done, data.changes)
    handler.update(ctx.run, app.resource, app.found, done, app.changes)
    client = ec2(ctx)

    def acl_of(subnet_id: str) -> str:
        [acl] = client.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])[
            "NetworkAcls"
        ]
        return str(acl["NetworkAclId"])

    assert acl_of(subnet_b) == done["nacl.data"].id
    assert set(actions(make_plan(ctx.run, graph, HANDLERS)).values()) == {Action.NONE}

    # Back, the other way round: the ACL that lets it go runs first (to the default), then the app ACL takes it.
    back = make_plan(ctx.run, graph_of(ctx), HANDLERS)
    app, data = step(back, "nacl.app"), step(back, "nacl.data")
    assert data.found is not None and app.found is not None
    assert texts(back, "nacl.data") == [f"subnets[{subnet_b}]: {subnet_b} → (none)"]
    handler.update(ctx.run, data.resource, data.found, done, data.changes)
    handler.update(ctx.run, app.resource, app.found, done, app.changes)
    assert acl_of(subnet_b) == done["nacl.app"].id
    assert set(actions(plan(ctx)).values()) == {Action.NONE}


def test_a_subnet_released_while_another_acl_takes_it_still_ends_on_that_acl(ctx: Context) -> None:
    """The interleaving the parallel executor allows: the taking ACL reads the subnet's association, the
    releasing ACL then hands it to the default ACL, and the taker's ReplaceNetworkAclAssociation names an
    association that is gone (InvalidAssociationID.NotFound). It takes the subnet from the default ACL."""
    done = up(ctx)
    subnet_b = done["subnet.app.b"].id
    graph = with_spec(graph_of(ctx), "nacl.app", subnets=(Ref("subnet.app.a"),))
    graph = with_spec(graph, "nacl.data", subnets=(Ref("subnet.data.a"), Ref("subnet.data.b"), Ref("subnet.app.b")))
    moved = make_plan(ctx.run, graph, HANDLERS)
    client = ec2(ctx)
    default_acl = client.describe_network_acls(
        Filters=[{"Name": "vpc-id", "Values": [done["vpc"].id]}, {"Name": "default", "Values": ["true"]}]
    )["NetworkAcls"][0]["NetworkAclId"]
    other = boto3.client("ec2", region_name="us-east-1")  # the releasing step's own client
    released: list[str] = []

    def release_first(params: dict[str, Any], **_: Any) -> None:
        if not released and params["NetworkAclId"] == done["nacl.data"].id:
            released.append(params["AssociationId"])
            other.replace_network_acl_association(AssociationId=params["AssociationId"], NetworkAclId=default_acl)

    client.meta.events.register("provide-client-params.ec2.ReplaceNetworkAclAssociation", release_first)
    data = step(moved, "nacl.data")
    assert data.found is not None
    taken = HANDLERS["network_acl"].update(ctx.run, data.resource, data.found, done, data.changes)

    assert released, "the interleaving did not happen"
    [acl] = client.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet_b]}])[
        "NetworkAcls"
    ]
    assert acl["NetworkAclId"] == done["nacl.data"].id
    assert taken.attrs["associations"][subnet_b] != released[0]
    # The releasing step then finds the subnet gone from its ACL and leaves it where it is.
    app = step(moved, "nacl.app")
    assert app.found is not None
    HANDLERS["network_acl"].update(ctx.run, app.resource, app.found, done, app.changes)
    assert set(actions(make_plan(ctx.run, graph, HANDLERS)).values()) == {Action.NONE}


def test_a_rule_from_a_group_still_to_be_made_is_planned_by_key_and_authorized_with_its_new_id(
    ctx: Context,
) -> None:
    """The load balancer's group was deleted by hand (after the rule naming it, as AWS requires): the plan
    names the source by its key, and `up` authorizes it with the id of the group it has just made."""
    done = up(ctx)
    client = ec2(ctx)
    app_rules = client.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [done["sg.app"].id]}])
    from_alb = [
        r["SecurityGroupRuleId"]
        for r in app_rules["SecurityGroupRules"]
        if r.get("ReferencedGroupInfo", {}).get("GroupId") == done["sg.alb"].id
    ]
    client.revoke_security_group_ingress(GroupId=done["sg.app"].id, SecurityGroupRuleIds=from_alb)
    client.delete_security_group(GroupId=done["sg.alb"].id)

    again = plan(ctx)
    assert actions(again)["sg.alb"] is Action.CREATE and actions(again)["sg.app"] is Action.UPDATE
    item = "ingress[tcp 80, (sg.alb to be created)]"
    assert texts(again, "sg.app") == [f"{item}: (none) → tcp 80, (sg.alb to be created) (HTTP from the load balancer)"]
    [change] = step(again, "sg.app").changes
    assert change.new == SgRule("tcp", (80, 80), "HTTP from the load balancer", group=Ref("sg.alb"))
    remade = apply_plan(ctx.run, again, HANDLERS)

    assert remade["sg.alb"].id != done["sg.alb"].id
    assert ("tcp", 80, 80, remade["sg.alb"].id) in ingress_of(aws_group(ctx, done["sg.app"].id))
    assert set(actions(plan(ctx)).values()) == {Action.NONE}


def test_what_aws_cannot_change_in_place_is_a_conflict(ctx: Context) -> None:
    """A group's description and an endpoint's service have no Modify call: the plan refuses them."""
    done = up(ctx)
    graph = with_spec(graph_of(ctx), "sg.app", description="cdpoc t1: something else")
    graph = with_spec(graph, "endpoint.s3", service="com.amazonaws.us-east-1.dynamodb")
    refused = make_plan(ctx.run, graph, HANDLERS)
    assert {k for k, a in actions(refused).items() if a is not Action.NONE} == {"sg.app", "endpoint.s3"}
    assert actions(refused)["sg.app"] is Action.CONFLICT and actions(refused)["endpoint.s3"] is Action.CONFLICT
    [description] = step(refused, "sg.app").changes
    assert (description.field, description.in_place) == ("description", False)
    assert description.text == "description: cdpoc t1: application instances → cdpoc t1: something else"
    assert texts(refused, "endpoint.s3") == ["service: com.amazonaws.us-east-1.s3 → com.amazonaws.us-east-1.dynamodb"]
    before = len(ctx.clients.mutating_calls())
    with pytest.raises(ConflictError, match="description: cdpoc t1: application instances"):
        apply_plan(ctx.run, refused, HANDLERS)
    assert ctx.clients.mutating_calls()[before:] == []
    assert aws_group(ctx, done["sg.app"].id)["Description"] == "cdpoc t1: application instances"


# -- adoption ------------------------------------------------------------------------------------------------


def test_same_named_group_of_someone_else_is_refused_ours_is_adopted(ctx: Context) -> None:
    client = ec2(ctx)
    vpc = Observed("vpc", "vpc", client.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"])
    graph = graph_of(ctx)
    handler = HANDLERS["security_group"]
    foreign = graph["sg.alb"]
    client.create_security_group(GroupName=foreign.name, Description="someone else's", VpcId=vpc.id)
    with pytest.raises(ConflictError, match="not part of stack t1"):
        handler.create(ctx.run, foreign, {"vpc": vpc})

    # Same name, tagged with our stack but without its component (e.g. tagged by hand): ours, adopted.
    mine = graph["sg.bastion"]
    group_id = client.create_security_group(
        GroupName=mine.name,
        Description="ours",
        VpcId=vpc.id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": STACK_TAG, "Value": "t1"}]}],
    )["GroupId"]
    adopted = handler.create(ctx.run, mine, {"vpc": vpc})
    assert adopted.id == group_id
    group = aws_group(ctx, group_id)
    assert tag_map(group["Tags"])[COMPONENT_TAG] == "sg.bastion"
    assert ingress_of(group) == {("tcp", 22, 22, OPERATOR)}


# -- down ----------------------------------------------------------------------------------------------------


def test_down_deletes_in_order_and_a_second_delete_is_fine(ctx: Context) -> None:
    up(ctx)
    graph = graph_of(ctx)
    doomed = find_everything(ctx.run, graph, HANDLERS)
    assert {"endpoint.s3", *TIER_SUBNETS, "sg.alb", "sg.app", "sg.bastion", "sg.data"} <= set(doomed)
    calls = record(
        ctx,
        "ReplaceNetworkAclAssociation",
        "DeleteNetworkAcl",
        "DeleteVpcEndpoints",
        "DeleteRouteTable",
        "RevokeSecurityGroupIngress",
        "DeleteSecurityGroup",
        "DeleteSubnet",
        "DeleteVpc",
    )
    # moto refuses to delete an ACL that still has subnets, so this also proves they were moved off first.
    sweep(ctx.run, graph, HANDLERS, doomed, parallelism=1)

    order = [op for op, _ in calls]
    private_tables = {doomed["rt.private.a"].found.id, doomed["rt.private.b"].found.id}
    first_private_table = min(
        i for i, (op, p) in enumerate(calls) if op == "DeleteRouteTable" and p["RouteTableId"] in private_tables
    )
    assert order.index("DeleteVpcEndpoints") < first_private_table
    assert order.count("ReplaceNetworkAclAssociation") == 7 and order.count("DeleteNetworkAcl") == 4
    assert max(i for i, op in enumerate(order) if op == "DeleteNetworkAcl") < order.index("DeleteSubnet")
    assert max(i for i, op in enumerate(order) if op == "DeleteSecurityGroup") < order.index("DeleteVpc")
    revoked = [p["GroupId"] for op, p in calls if op == "RevokeSecurityGroupIngress"]
    assert sorted(revoked) == sorted([doomed["sg.app"].found.id, doomed["sg.data"].found.id])

    def position(operation: str, group_id: str) -> int:
        return next(i for i, (op, p) in enumerate(calls) if op == operation and p["GroupId"] == group_id)

    for group_id in revoked:
        assert position("RevokeSecurityGroupIngress", group_id) < position("DeleteSecurityGroup", group_id)

    assert find_everything(ctx.run, graph, HANDLERS) == {}
    for item in doomed.values():
        if item.found.kind in ("vpc_endpoint", "network_acl", "security_group"):
            HANDLERS[item.found.kind].delete(ctx.run, item.found)


def test_group_still_referenced_reports_dependency_violation(ctx: Context) -> None:
    """AWS refuses to delete a group another group's rules (or an ENI) still use; moto does not."""
    client = ec2(ctx)
    found = Observed("sg.app", "security_group", "sg-0123456789abcdef0", {"vpc": "vpc-1"})
    with Stubber(client) as stub:
        stub.add_response(
            "describe_security_groups",
            {
                "SecurityGroups": [
                    {
                        "GroupId": found.id,
                        "GroupName": "t1-app-sg",
                        "VpcId": "vpc-1",
                        "IpPermissions": [
                            {
                                "IpProtocol": "tcp",
                                "FromPort": 80,
                                "ToPort": 80,
                                "UserIdGroupPairs": [{"GroupId": "sg-0aaaaaaaaaaaaaaaa"}],
                            }
                        ],
                        "IpPermissionsEgress": [],
                    }
                ]
            },
            {"GroupIds": [found.id]},
        )
        stub.add_response(
            "describe_security_group_rules",
            {
                "SecurityGroupRules": [
                    {
                        "SecurityGroupRuleId": "sgr-0123456789abcdef0",
                        "GroupId": found.id,
                        "IsEgress": False,
                        "IpProtocol": "tcp",
                        "FromPort": 80,
                        "ToPort": 80,
                        "ReferencedGroupInfo": {"GroupId": "sg-0aaaaaaaaaaaaaaaa"},
                        "Description": "HTTP from the load balancer",
                    }
                ]
            },
            {"Filters": [{"Name": "group-id", "Values": [found.id]}]},
        )
        stub.add_response(
            "revoke_security_group_ingress",
            {"Return": True},
            {"GroupId": found.id, "SecurityGroupRuleIds": ["sgr-0123456789abcdef0"]},
        )
        stub.add_client_error(
            "delete_security_group", "DependencyViolation", "resource sg-0123456789abcdef0 has a dependent object"
        )
        with pytest.raises(DependencyViolation):
            HANDLERS["security_group"].delete(ctx.run, found)
        stub.assert_no_pending_responses()


def test_endpoint_delete_reads_failures_from_the_bulk_reply(ctx: Context) -> None:
    """DeleteVpcEndpoints reports per-endpoint failures in the reply: NotFound is success, others fail."""
    client = ec2(ctx)
    found = Observed("endpoint.s3", "vpc_endpoint", "vpce-0123456789abcdef0", {})
    live = {"VpcEndpoints": [{"VpcEndpointId": found.id, "State": "available"}]}

    def failing(code: str) -> dict[str, Any]:
        return {"Unsuccessful": [{"Error": {"Code": code, "Message": "m"}, "ResourceId": found.id}]}

    with Stubber(client) as stub:
        stub.add_response("describe_vpc_endpoints", live)
        stub.add_response("delete_vpc_endpoints", failing("InvalidVpcEndpoint.NotFound"))
        stub.add_client_error("describe_vpc_endpoints", "InvalidVpcEndpointId.NotFound")
        HANDLERS["vpc_endpoint"].delete(ctx.run, found)

        stub.add_response("describe_vpc_endpoints", live)
        stub.add_response("delete_vpc_endpoints", failing("OperationNotPermitted"))
        with pytest.raises(AwsError, match="OperationNotPermitted"):
            HANDLERS["vpc_endpoint"].delete(ctx.run, found)
        stub.assert_no_pending_responses()


def test_an_endpoint_remade_after_a_stopped_down_with_new_route_tables_is_created(ctx: Context) -> None:
    """A `down` stopped after deleting the endpoint and the route tables, before the VPC: the next `up`
    makes new route tables, so the endpoint's request differs from the one its token was first used
    with. AWS refuses that token (IdempotentParameterMismatch); cdpoc moves to the next token."""
    done = up(ctx)
    graph = graph_of(ctx)
    handler = HANDLERS["vpc_endpoint"]
    handler.delete(ctx.run, done["endpoint.s3"])
    client = ec2(ctx)
    vpc = done["vpc"].id
    private = ("rt.private.a", "rt.private.b")
    new_tables = {key: client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"] for key in private}
    deps = {**done, **{key: replace(done[key], id=new_tables[key]) for key in private}}

    remade = handler.create(ctx.run, graph["endpoint.s3"], deps)

    assert remade.id != done["endpoint.s3"].id
    endpoint = client.describe_vpc_endpoints(VpcEndpointIds=[remade.id])["VpcEndpoints"][0]
    assert set(endpoint["RouteTableIds"]) == {new_tables["rt.private.a"], new_tables["rt.private.b"]}
