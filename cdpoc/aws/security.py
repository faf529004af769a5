"""Network security (EC2 API): the S3 gateway VPC endpoint, network ACLs and security groups.

The network_acl and security_group handlers are generic: a resource's spec carries its rules (declared
in cdpoc/stack/security.py). changes() diffs the spec against AWS entry by entry and rule by rule, both
ways (what is missing, what differs, what is extra), and update() applies exactly those changes: the
plan that `cdpoc plan` prints is what `up` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cdpoc.aws.errors import aws_errors, call_or_none, caused_by, describe_one, repeat_safe, unless_listed
from cdpoc.aws.handler import Handler, observed, vpc_changes
from cdpoc.aws.ownership import by_component, owner_attrs
from cdpoc.aws.run import STACK_TAG, AwsRun, paginate, tag_map
from cdpoc.errors import AwsError, ConflictError
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import Ref, field_change, field_changes, spec_of
from cdpoc.stack.specs.security import NaclEntry, NetworkAclSpec, SecurityGroupSpec, SgRule, VpcEndpointSpec

NOT_FOUND = (
    "InvalidNetworkAclID.NotFound",
    "InvalidNetworkAclEntry.NotFound",
    "InvalidAssociationID.NotFound",
    "InvalidGroup.NotFound",
    "InvalidSecurityGroupID.NotFound",
    "InvalidPermission.NotFound",
    "InvalidSecurityGroupRuleId.NotFound",
    "InvalidVpcEndpointId.NotFound",
    "InvalidVpcEndpoint.NotFound",
)

# AWS gives every network ACL a final deny-all rule (number 32767) that cannot be changed or removed.
HIGHEST_RULE_NUMBER = 32766


def _ec2(run: AwsRun) -> Any:
    return run.client("ec2")


# -- S3 gateway endpoint ------------------------------------------------------------------------------

GONE_ENDPOINT_STATES = ("deleted", "rejected", "failed", "expired")


def _endpoint_attrs(endpoint: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "vpc": endpoint["VpcId"],
        "service": endpoint["ServiceName"],
        "type": str(endpoint.get("VpcEndpointType", "")),
        "route_tables": tuple(sorted(endpoint.get("RouteTableIds", []))),
        "state": str(endpoint.get("State", "")).lower(),
    }


def _route_table_item(name: str) -> str:
    return f"route_tables[{name}]"


class VpcEndpointHandler(Handler):
    kind = "vpc_endpoint"
    label = "VPC endpoint"
    arn_types = ("ec2:vpc-endpoint",)
    spec_type = VpcEndpointSpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        endpoints = paginate(run, "describe_vpc_endpoints", "VpcEndpoints", Filters=run.stack_filter())
        # AWS keeps listing deleted endpoints for a while.
        live = [e for e in endpoints if str(e.get("State", "")).lower() not in GONE_ENDPOINT_STATES]
        return {
            component: observed(component, self.kind, e["VpcEndpointId"], **_endpoint_attrs(e), **owner_attrs(e))
            for component, e in by_component(run, live, "VpcEndpointId").items()
        }

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, VpcEndpointSpec)
        changes = vpc_changes(spec.vpc, found, deps)
        # EC2 spells the type "Gateway" in some replies and "gateway" in others.
        have_type = found.attrs["type"]
        if have_type.lower() == spec.endpoint_type.lower():
            have_type = spec.endpoint_type
        changes.extend(
            field_changes(
                spec,
                {"service": found.attrs["service"], "endpoint_type": have_type},
                {"service": spec.service, "endpoint_type": spec.endpoint_type},
            )
        )
        changes.extend(self._route_table_changes(spec, found, deps))
        if found.attrs["state"] != "available":
            changes.append(Change(f"it is {found.attrs['state']}: wait until available"))
        return changes

    def _route_table_changes(
        self, spec: VpcEndpointSpec, found: Observed, deps: Mapping[str, Observed | None]
    ) -> list[Change]:
        """A route table to add (new: its Ref) or to remove (old: its id), each its own change."""
        have = set(found.attrs["route_tables"])
        changes = []
        for table in spec.route_tables:
            table_id = table.value(deps)
            if table_id is None or table_id not in have:
                item = _route_table_item(table.key)
                changes.append(field_change(spec, item, None, table, f"{item}: (none) → {table.shown(deps)}"))
        wanted = {table.value(deps) for table in spec.route_tables}
        changes.extend(
            field_change(spec, _route_table_item(table_id), table_id, None) for table_id in sorted(have - wanted)
        )
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, VpcEndpointSpec)
        vpc_id = spec.vpc.need(deps)
        tables = sorted(table.need(deps) for table in spec.route_tables)

        def create(token: str) -> dict[str, Any]:
            with aws_errors(f"creating S3 gateway endpoint {res.name}"):
                reply: dict[str, Any] = _ec2(run).create_vpc_endpoint(
                    VpcEndpointType=spec.endpoint_type,
                    VpcId=vpc_id,
                    ServiceName=spec.service,
                    RouteTableIds=tables,
                    ClientToken=token,
                    TagSpecifications=run.ec2_tag_specs("vpc-endpoint", res),
                )["VpcEndpoint"]
            return reply

        endpoint = run.create_with_token(
            res,
            (vpc_id,),
            create,
            lambda e: e["VpcEndpointId"] if str(e.get("State", "")).lower() in GONE_ENDPOINT_STATES else None,
        )
        return self._wait_available(run, res, endpoint["VpcEndpointId"])

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        """The plan's route tables, added and removed in one call; then wait until it is available."""
        tables = [c for c in changes if c.field.startswith("route_tables[")]
        edits: dict[str, list[str]] = {}
        if added := sorted(c.new.need(deps) for c in tables if isinstance(c.new, Ref)):
            edits["AddRouteTableIds"] = added
        if removed := sorted(str(c.old) for c in tables if c.new is None):
            edits["RemoveRouteTableIds"] = removed
        if edits:
            with aws_errors(f"setting the route tables of {found.id}"):
                _ec2(run).modify_vpc_endpoint(VpcEndpointId=found.id, **edits)
        return self._wait_available(run, res, found.id)

    def _wait_available(self, run: AwsRun, res: Resource, endpoint_id: str) -> Observed:
        latest: dict[str, Any] = {}

        def available() -> bool:
            endpoint = self._describe(run, endpoint_id)
            if endpoint is None or str(endpoint.get("State", "")).lower() in GONE_ENDPOINT_STATES:
                state = endpoint.get("State") if endpoint else "gone"
                raise AwsError(f"VPC endpoint {endpoint_id} is {state} instead of becoming available")
            latest.update(endpoint)
            return str(endpoint.get("State", "")).lower() == "available"

        run.wait_until(f"VPC endpoint {endpoint_id} to be available", available)
        return observed(res, self.kind, endpoint_id, **_endpoint_attrs(latest))

    def _describe(self, run: AwsRun, endpoint_id: str) -> dict[str, Any] | None:
        return describe_one(
            f"reading VPC endpoint {endpoint_id}",
            _ec2(run).describe_vpc_endpoints,
            "VpcEndpoints",
            "VpcEndpointIds",
            endpoint_id,
            NOT_FOUND,
        )

    def _gone(self, run: AwsRun, endpoint_id: str) -> bool:
        endpoint = self._describe(run, endpoint_id)
        return endpoint is None or str(endpoint.get("State", "")).lower() in GONE_ENDPOINT_STATES

    def delete(self, run: AwsRun, found: Observed) -> None:
        if self._gone(run, found.id):
            return
        with aws_errors(f"deleting VPC endpoint {found.id}"):
            reply = _ec2(run).delete_vpc_endpoints(VpcEndpointIds=[found.id])
        # A bulk API: failures come back in the reply, not as an error.
        for failure in reply.get("Unsuccessful", []):
            error = failure.get("Error", {})
            if error.get("Code") not in NOT_FOUND:
                raise AwsError(f"deleting VPC endpoint {found.id}: {error.get('Code')}: {error.get('Message', '')}")
        # Its routes leave the route tables only once it is deleted, and the route tables go next.
        run.wait_until(f"VPC endpoint {found.id} to be deleted", lambda: self._gone(run, found.id))

    def describe(self, found: Observed) -> str:
        return f"{found.id} ({found.attrs.get('service', '')})"


# -- Network ACLs -----------------------------------------------------------------------------------

DIRECTIONS = ("ingress", "egress")


def _entry_from_aws(entry: Mapping[str, Any]) -> NaclEntry:
    port_range = entry.get("PortRange")
    return NaclEntry(
        int(entry["RuleNumber"]),
        str(entry["Protocol"]),
        str(entry["RuleAction"]),
        entry.get("CidrBlock") or entry.get("Ipv6CidrBlock", ""),
        (port_range["From"], port_range["To"]) if port_range else None,
    )


def _entry_params(entry: NaclEntry) -> dict[str, Any]:
    params: dict[str, Any] = {
        "RuleNumber": entry.number,
        "Protocol": entry.protocol,
        "RuleAction": entry.action,
        "CidrBlock": entry.cidr,
    }
    if entry.ports:
        params["PortRange"] = {"From": entry.ports[0], "To": entry.ports[1]}
    return params


def _acl_attrs(acl: Mapping[str, Any]) -> dict[str, Any]:
    entries: dict[str, dict[int, NaclEntry]] = {direction: {} for direction in DIRECTIONS}
    for raw in acl.get("Entries", []):
        if int(raw["RuleNumber"]) > HIGHEST_RULE_NUMBER:
            continue
        entry = _entry_from_aws(raw)
        entries["egress" if raw.get("Egress") else "ingress"][entry.number] = entry
    associations = {a["SubnetId"]: a["NetworkAclAssociationId"] for a in acl.get("Associations", []) if "SubnetId" in a}
    return {"vpc": acl["VpcId"], **entries, "associations": associations}


def _entry_item(direction: str, number: int) -> str:
    return f"{direction}[{number}]"


def _entry_of(change: Change) -> tuple[str, int] | None:
    """(direction, rule number) of a change to one entry; None for a change to another field."""
    name, _, rest = change.field.partition("[")
    return (name, int(rest.rstrip("]"))) if name in DIRECTIONS and rest else None


def _subnet_item(name: str) -> str:
    return f"subnets[{name}]"


class NetworkAclHandler(Handler):
    kind = "network_acl"
    label = "network ACL"
    arn_types = ("ec2:network-acl",)
    spec_type = NetworkAclSpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        acls = paginate(run, "describe_network_acls", "NetworkAcls", Filters=run.stack_filter())
        return {
            component: observed(component, self.kind, acl["NetworkAclId"], **_acl_attrs(acl), **owner_attrs(acl))
            for component, acl in by_component(run, acls, "NetworkAclId").items()
        }

    def _entry_changes(self, spec: NetworkAclSpec, found: Observed) -> list[Change]:
        """Per rule number: old is the entry AWS has (None: add it), new the declared one (None: remove it)."""
        changes = []
        for direction in DIRECTIONS:
            wanted: dict[int, NaclEntry] = {e.number: e for e in getattr(spec, direction)}
            have: Mapping[int, NaclEntry] = found.attrs[direction]
            for number, entry in wanted.items():
                if have.get(number) != entry:
                    changes.append(field_change(spec, _entry_item(direction, number), have.get(number), entry))
            changes.extend(
                field_change(spec, _entry_item(direction, number), have[number], None)
                for number in sorted(set(have) - set(wanted))
            )
        return changes

    def _subnet_changes(
        self, spec: NetworkAclSpec, found: Observed, deps: Mapping[str, Observed | None]
    ) -> list[Change]:
        """A subnet to move onto this ACL (new: its Ref), or one to hand back to the VPC's default ACL (old:
        its id): every subnet always has exactly one ACL, so "removing" one means giving it the default."""
        have: Mapping[str, str] = found.attrs["associations"]
        changes = []
        for subnet in spec.subnets:
            subnet_id = subnet.value(deps)
            if subnet_id is None or subnet_id not in have:
                item = _subnet_item(subnet.key)
                changes.append(field_change(spec, item, None, subnet, f"{item}: (none) → {subnet.shown(deps)}"))
        wanted = {subnet.value(deps) for subnet in spec.subnets}
        changes.extend(
            field_change(spec, _subnet_item(subnet_id), subnet_id, None) for subnet_id in sorted(set(have) - wanted)
        )
        return changes

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, NetworkAclSpec)
        changes = vpc_changes(spec.vpc, found, deps)
        changes.extend(self._entry_changes(spec, found))
        changes.extend(self._subnet_changes(spec, found, deps))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        vpc_id = spec_of(res, NetworkAclSpec).vpc.need(deps)

        def create(token: str) -> dict[str, Any]:
            with aws_errors(f"creating network ACL {res.name}"):
                reply: dict[str, Any] = _ec2(run).create_network_acl(
                    VpcId=vpc_id, ClientToken=token, TagSpecifications=run.ec2_tag_specs("network-acl", res)
                )["NetworkAcl"]
            return reply

        def dead_id(acl: dict[str, Any]) -> str | None:
            acl_id = str(acl["NetworkAclId"])
            # moto answers a missing ACL with a route-table NotFound code: either means gone.
            gone = ("InvalidNetworkAclID.NotFound", "InvalidRouteTableID.NotFound")
            return unless_listed(
                f"checking network ACL {acl_id}",
                _ec2(run).describe_network_acls,
                "NetworkAcls",
                "NetworkAclIds",
                acl_id,
                gone,
            )

        acl = run.create_with_token(res, (vpc_id,), create, dead_id)
        # A retried create returns the ACL the token made, possibly with entries already in it.
        fresh = observed(res, self.kind, acl["NetworkAclId"], **_acl_attrs(acl))
        return self.converge(run, res, fresh, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        """The plan's entries (added, replaced at their number, removed) and subnet associations."""
        entries = {direction: dict(found.attrs[direction]) for direction in DIRECTIONS}
        doomed = []
        for change in changes:
            entry = _entry_of(change)
            if entry is None:
                continue
            direction, number = entry
            if change.new is None:
                doomed.append((direction, number, change.old))
                continue
            self._set_entry(run, found.id, direction, change.old is not None, change.new)
            entries[direction][number] = change.new
        # Extras go last, so that a rule that moved to a new number is never missing in between.
        for direction, number, old in doomed:
            call_or_none(
                f"removing {_entry_item(direction, number)} ({old}) from {found.id}",
                _ec2(run).delete_network_acl_entry,
                NOT_FOUND,
                NetworkAclId=found.id,
                RuleNumber=number,
                Egress=direction == "egress",
            )
            entries[direction].pop(number, None)

        subnets = [c for c in changes if c.field.startswith("subnets[")]
        associations = self._associate(run, found, [c.new.need(deps) for c in subnets if isinstance(c.new, Ref)])
        released = [str(c.old) for c in subnets if c.new is None]
        if released:
            self._release(run, found, released)
            associations = {s: a for s, a in associations.items() if s not in released}
        return observed(res, self.kind, found.id, vpc=found.attrs["vpc"], **entries, associations=associations)

    def _set_entry(self, run: AwsRun, acl_id: str, direction: str, exists: bool, entry: NaclEntry) -> None:
        """Create the entry, or replace the one AWS has at its number (ReplaceNetworkAclEntry)."""
        ec2 = _ec2(run)
        repeat_safe(
            f"setting {_entry_item(direction, entry.number)} ({entry}) in {acl_id}",
            ec2.replace_network_acl_entry if exists else ec2.create_network_acl_entry,
            ("NetworkAclEntryAlreadyExists",),
            functools.partial(self._has_entry, run, acl_id, direction, entry),
            NetworkAclId=acl_id,
            Egress=direction == "egress",
            **_entry_params(entry),
        )

    def _associate(self, run: AwsRun, found: Observed, subnet_ids: list[str]) -> dict[str, str]:
        """Move the subnets onto this ACL; every subnet always has exactly one (at first the VPC's default)."""
        associations = dict(found.attrs["associations"])
        missing = [s for s in subnet_ids if s not in associations]
        if not missing:
            return associations
        ec2 = _ec2(run)
        with aws_errors(f"finding the network ACLs of {', '.join(missing)}"):
            current = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": missing}])[
                "NetworkAcls"
            ]
        previous = {a["SubnetId"]: a["NetworkAclAssociationId"] for acl in current for a in acl.get("Associations", [])}
        for subnet_id in missing:
            associations[subnet_id] = self._take(run, found.id, subnet_id, previous.get(subnet_id))
        return associations

    def _take(self, run: AwsRun, acl_id: str, subnet_id: str, association: str | None) -> str:
        """Replace the subnet's association (with whichever ACL it has) by one with this ACL.

        An association that is gone by then means the subnet moved: either a lost answer's first attempt
        moved it here already, or the ACL it leaves released it to the VPC's default in the same `up`
        (the two steps run in parallel); then take it from where it is now, once."""
        retried = False
        while True:
            if association is None:
                raise AwsError(f"subnet {subnet_id} has no network ACL association to replace")
            try:
                with aws_errors(f"associating {subnet_id} with {acl_id}"):
                    reply = _ec2(run).replace_network_acl_association(AssociationId=association, NetworkAclId=acl_id)
                return str(reply["NewAssociationId"])
            except AwsError as exc:
                if not caused_by(exc, "InvalidAssociationID.NotFound"):
                    raise
                moved = self._association(run, acl_id, subnet_id)
                if moved:
                    return moved
                if retried:
                    raise
                retried = True
                association = self._current_association(run, subnet_id)

    def _current_association(self, run: AwsRun, subnet_id: str) -> str | None:
        """The id of the subnet's association with whichever ACL it has now."""
        with aws_errors(f"finding the network ACL of {subnet_id}"):
            acls = _ec2(run).describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])[
                "NetworkAcls"
            ]
        for acl in acls:
            for association in acl.get("Associations", []):
                if association.get("SubnetId") == subnet_id:
                    return str(association["NetworkAclAssociationId"])
        return None

    def _release(self, run: AwsRun, found: Observed, subnet_ids: list[str]) -> None:
        """Hand subnets this ACL should not have back to the VPC's default ACL. An association that is gone
        already (the subnet moved on, or a lost answer's retry) needs nothing."""
        default = self._default_acl(run, found.attrs["vpc"])
        for subnet_id in subnet_ids:
            association = self._association(run, found.id, subnet_id)
            if association is None:
                continue
            call_or_none(
                f"moving {subnet_id} from {found.id} back to the default network ACL {default}",
                _ec2(run).replace_network_acl_association,
                NOT_FOUND,
                AssociationId=association,
                NetworkAclId=default,
            )

    def _default_acl(self, run: AwsRun, vpc_id: str) -> str:
        acls = paginate(
            run,
            "describe_network_acls",
            "NetworkAcls",
            what=f"finding the default network ACL of {vpc_id}",
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default", "Values": ["true"]}],
        )
        if not acls:
            raise AwsError(f"VPC {vpc_id} has no default network ACL to give subnets back to")
        return str(acls[0]["NetworkAclId"])

    def _acl(self, run: AwsRun, acl_id: str) -> dict[str, Any]:
        acl = describe_one(
            f"reading network ACL {acl_id}",
            _ec2(run).describe_network_acls,
            "NetworkAcls",
            "NetworkAclIds",
            acl_id,
            NOT_FOUND,
        )
        return acl or {}

    def _has_entry(self, run: AwsRun, acl_id: str, direction: str, entry: NaclEntry) -> bool:
        acl = self._acl(run, acl_id)
        return bool(acl) and _acl_attrs(acl)[direction].get(entry.number) == entry

    def _association(self, run: AwsRun, acl_id: str, subnet_id: str) -> str | None:
        """The id of the association of `subnet_id` with this ACL, if it has one now."""
        for association in self._acl(run, acl_id).get("Associations", []):
            if association.get("SubnetId") == subnet_id:
                return str(association["NetworkAclAssociationId"])
        return None

    def delete(self, run: AwsRun, found: Observed) -> None:
        ec2 = _ec2(run)
        # AWS refuses to delete an ACL that subnets use: hand them back to the VPC's default ACL first.
        # One listing of the VPC's ACLs gives both the current associations and the default ACL.
        acls = paginate(
            run, "describe_network_acls", "NetworkAcls", Filters=[{"Name": "vpc-id", "Values": [found.attrs["vpc"]]}]
        )
        ours = [acl for acl in acls if acl["NetworkAclId"] == found.id]
        if not ours:
            return
        default = next((acl["NetworkAclId"] for acl in acls if acl.get("IsDefault")), None)
        for association in ours[0].get("Associations", []):
            if default is None:
                raise AwsError(f"VPC {found.attrs['vpc']} has no default network ACL to give {found.id}'s subnets")
            call_or_none(
                f"moving {association['SubnetId']} back to the default network ACL",
                ec2.replace_network_acl_association,
                NOT_FOUND,
                AssociationId=association["NetworkAclAssociationId"],
                NetworkAclId=default,
            )
        call_or_none(f"deleting network ACL {found.id}", ec2.delete_network_acl, NOT_FOUND, NetworkAclId=found.id)

    def describe(self, found: Observed) -> str:
        rules = sum(len(found.attrs.get(d, {})) for d in DIRECTIONS)
        return f"{found.id} ({rules} rules, {len(found.attrs.get('associations', {}))} subnets)"


# -- Security groups --------------------------------------------------------------------------------

# A rule as (protocol, from port, to port, source kind, source), source kind one of the keys below.
Rule = tuple[str, int | None, int | None, str, str]

SOURCE_FIELDS = {
    "cidr": ("IpRanges", "CidrIp"),
    "ipv6": ("Ipv6Ranges", "CidrIpv6"),
    "prefix": ("PrefixListIds", "PrefixListId"),
    "group": ("UserIdGroupPairs", "GroupId"),
}


def _rule(protocol: str, from_port: int | None, to_port: int | None, kind: str, source: str) -> Rule:
    protocol = protocol.lower()
    # "All traffic" has no ports (DescribeSecurityGroupRules says -1 to -1, DescribeSecurityGroups nothing).
    if protocol == "-1":
        return (protocol, None, None, kind, source)
    return (protocol, from_port, to_port, kind, source)


def _rules_from_aws(permissions: Iterable[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """DescribeSecurityGroups' IpPermissions, flattened to one Rule per source."""
    rules: set[Rule] = set()
    for permission in permissions:
        for kind, (list_key, field) in SOURCE_FIELDS.items():
            for item in permission.get(list_key, []):
                rules.add(
                    _rule(
                        str(permission["IpProtocol"]),
                        permission.get("FromPort"),
                        permission.get("ToPort"),
                        kind,
                        item[field],
                    )
                )
    return tuple(sorted(rules, key=str))


def _rule_of_record(record: Mapping[str, Any]) -> Rule | None:
    """One DescribeSecurityGroupRules record as a Rule."""
    sources = (
        ("cidr", record.get("CidrIpv4")),
        ("ipv6", record.get("CidrIpv6")),
        ("prefix", record.get("PrefixListId")),
        ("group", record.get("ReferencedGroupInfo", {}).get("GroupId")),
    )
    for kind, source in sources:
        if source:
            return _rule(str(record["IpProtocol"]), record.get("FromPort"), record.get("ToPort"), kind, source)
    return None


def _resolved(rule: SgRule, deps: Mapping[str, Observed | None]) -> Rule | None:
    """A declared rule with its source group resolved to an id; None while that group does not exist."""
    from_port, to_port = rule.ports if rule.ports else (None, None)
    if rule.group is not None:
        group_id = rule.group.value(deps)
        return _rule(rule.protocol, from_port, to_port, "group", group_id) if group_id else None
    return _rule(rule.protocol, from_port, to_port, "cidr", rule.cidr)


def _permission(rule: Rule, description: str = "") -> dict[str, Any]:
    protocol, from_port, to_port, kind, source = rule
    permission: dict[str, Any] = {"IpProtocol": protocol}
    if from_port is not None:
        permission["FromPort"] = from_port
        permission["ToPort"] = to_port
    list_key, field = SOURCE_FIELDS[kind]
    item = {field: source, **({"Description": description} if description else {})}
    permission[list_key] = [item]
    return permission


def _show_rule(rule: Rule) -> str:
    protocol, from_port, to_port, _, source = rule
    if protocol == "-1":
        return f"all traffic, {source}"
    ports = str(from_port) if from_port == to_port else f"{from_port}-{to_port}"
    return f"{protocol} {ports}, {source}"


def _show_declared(rule: SgRule, deps: Mapping[str, Observed | None]) -> str:
    """A declared rule as the plan shows it: its source group's id, or that the group is still to be made."""
    resolved = _resolved(rule, deps)
    if resolved is not None:
        return _show_rule(resolved)
    from_port, to_port = rule.ports if rule.ports else (None, None)
    source = rule.group.shown(deps) if rule.group else rule.cidr
    return _show_rule(_rule(rule.protocol, from_port, to_port, "group", source))


def _rule_item(direction: str, shown_rule: str) -> str:
    return f"{direction}[{shown_rule}]"


def _rules_of(changes: Sequence[Change], direction: str) -> list[Change]:
    return [c for c in changes if c.field.startswith(direction + "[")]


def _group_attrs(group: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "vpc": group.get("VpcId", ""),
        "name": group["GroupName"],
        "description": group.get("Description", ""),
        "ingress": _rules_from_aws(group.get("IpPermissions", [])),
        "egress": _rules_from_aws(group.get("IpPermissionsEgress", [])),
    }


class SecurityGroupHandler(Handler):
    kind = "security_group"
    label = "security group"
    arn_types = ("ec2:security-group",)
    spec_type = SecurityGroupSpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        groups = paginate(run, "describe_security_groups", "SecurityGroups", Filters=run.stack_filter())
        return {
            component: observed(component, self.kind, g["GroupId"], **_group_attrs(g), **owner_attrs(g))
            for component, g in by_component(run, groups, "GroupId").items()
        }

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, SecurityGroupSpec)
        changes = vpc_changes(spec.vpc, found, deps)
        if found.attrs["name"] != res.name:
            changes.append(Change(f"it is named {found.attrs['name']}, not {res.name}", in_place=False))
        changes.extend(
            field_changes(spec, {"description": found.attrs["description"]}, {"description": spec.description})
        )
        for direction in DIRECTIONS:
            changes.extend(self._rule_changes(spec, found, deps, direction))
        return changes

    def _rule_changes(
        self, spec: SecurityGroupSpec, found: Observed, deps: Mapping[str, Observed | None], direction: str
    ) -> list[Change]:
        """A rule to authorize (old None, new the declared SgRule) or to revoke (old the Rule AWS has, new
        None). A rule is its protocol, ports and source: a description alone is not compared."""
        have = set(found.attrs[direction])
        changes = []
        for rule in getattr(spec, direction):
            resolved = _resolved(rule, deps)
            if resolved is None or resolved not in have:
                shown_rule = _show_declared(rule, deps)
                item = _rule_item(direction, shown_rule)
                described = f"{shown_rule} ({rule.description})" if rule.description else shown_rule
                changes.append(field_change(spec, item, None, rule, f"{item}: (none) → {described}"))
        wanted = {_resolved(rule, deps) for rule in getattr(spec, direction)}
        for extra in sorted(have - wanted, key=str):
            item = _rule_item(direction, _show_rule(extra))
            changes.append(field_change(spec, item, extra, None, f"{item}: {_show_rule(extra)} → (none)"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, SecurityGroupSpec)
        vpc_id = spec.vpc.need(deps)
        # CreateSecurityGroup takes no ClientToken: the planner looked the group up by tag first, and a
        # same-named group found here is adopted only when its tags say it is ours.
        try:
            with aws_errors(f"creating security group {res.name}"):
                group_id = _ec2(run).create_security_group(
                    GroupName=res.name,
                    Description=spec.description,
                    VpcId=vpc_id,
                    TagSpecifications=run.ec2_tag_specs("security-group", res),
                )["GroupId"]
        except AwsError as exc:
            if not caused_by(exc, "InvalidGroup.Duplicate"):
                raise
            group_id = self._adopt(run, res, vpc_id)
        run.wait_with("ec2", "security_group_exists", f"security group {group_id} to exist", GroupIds=[group_id])
        fresh = self._read(run, res.key, group_id)
        return self.converge(run, res, fresh, deps)

    def _adopt(self, run: AwsRun, res: Resource, vpc_id: str) -> str:
        with aws_errors(f"looking up security group {res.name}"):
            groups = _ec2(run).describe_security_groups(
                Filters=[{"Name": "group-name", "Values": [res.name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
            )["SecurityGroups"]
        if not groups:
            raise AwsError(f"security group {res.name} is reported as existing but cannot be found in {vpc_id}")
        group = groups[0]
        owner = tag_map(group.get("Tags")).get(STACK_TAG)
        if owner != run.stack:
            raise ConflictError(
                f"security group {res.name} ({group['GroupId']}) already exists in {vpc_id} and is not part of "
                f"stack {run.stack} (tag {STACK_TAG}={owner or 'missing'})",
                "Delete or rename that group, or choose another stack name.",
            )
        with aws_errors(f"tagging security group {group['GroupId']}"):
            _ec2(run).create_tags(Resources=[group["GroupId"]], Tags=run.tags(res.key, res.name))
        return str(group["GroupId"])

    def _read(self, run: AwsRun, key: str, group_id: str) -> Observed:
        with aws_errors(f"reading security group {group_id}"):
            group = _ec2(run).describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        return observed(key, self.kind, group_id, **_group_attrs(group))

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        """Authorize the rules the plan adds and revoke those it removes, per direction."""
        rules = {
            direction: self._apply_rules(run, found, deps, direction, _rules_of(changes, direction))
            for direction in DIRECTIONS
        }
        return observed(
            res,
            self.kind,
            found.id,
            vpc=found.attrs["vpc"],
            name=found.attrs["name"],
            description=found.attrs["description"],
            **rules,
        )

    def _apply_rules(
        self, run: AwsRun, found: Observed, deps: Mapping[str, Observed], direction: str, changes: list[Change]
    ) -> tuple[Rule, ...]:
        ec2 = _ec2(run)
        authorize, revoke = (
            (ec2.authorize_security_group_ingress, ec2.revoke_security_group_ingress)
            if direction == "ingress"
            else (ec2.authorize_security_group_egress, ec2.revoke_security_group_egress)
        )
        added: dict[Rule, str] = {}
        for change in changes:
            if isinstance(change.new, SgRule):
                # The plan may have been made before the source group existed: it does now.
                resolved = _resolved(change.new, deps)
                if resolved is None:
                    raise KeyError(f"{change.field}: its source group {change.new.group} is not available yet")
                added[resolved] = change.new.description
        if added:
            permissions = [_permission(rule, description) for rule, description in added.items()]
            try:
                with aws_errors(f"allowing {direction} traffic into {found.id}"):
                    authorize(GroupId=found.id, IpPermissions=permissions)
            except AwsError as exc:
                # Another run (or an interrupted one) added one already: the rule is there, as wanted.
                if not caused_by(exc, "InvalidPermission.Duplicate"):
                    raise
                self._authorize_one_by_one(found.id, authorize, permissions)
        removed = {change.old for change in changes if change.new is None}
        if removed:
            self._revoke(run, found.id, direction, revoke, lambda rule: rule in removed)
        return tuple(sorted((set(found.attrs[direction]) | set(added)) - removed, key=str))

    def _revoke(self, run: AwsRun, group_id: str, direction: str, revoke: Any, doomed: Callable[[Rule], bool]) -> None:
        """Revoke rules by their ids: exact on AWS whatever the rules' descriptions say."""
        records = paginate(
            run,
            "describe_security_group_rules",
            "SecurityGroupRules",
            what=f"reading the rules of {group_id}",
            Filters=[{"Name": "group-id", "Values": [group_id]}],
        )
        egress = direction == "egress"
        rule_ids = []
        for record in records:
            rule = _rule_of_record(record)
            if bool(record.get("IsEgress")) is egress and rule is not None and doomed(rule):
                rule_ids.append(record["SecurityGroupRuleId"])
        if rule_ids:
            call_or_none(
                f"revoking {direction} rules {', '.join(rule_ids)} of {group_id}",
                revoke,
                NOT_FOUND,
                GroupId=group_id,
                SecurityGroupRuleIds=rule_ids,
            )

    def _authorize_one_by_one(self, group_id: str, authorize: Any, permissions: list[dict[str, Any]]) -> None:
        """A batch is refused whole when one rule exists; add the others one at a time."""
        for permission in permissions:
            try:
                with aws_errors(f"allowing traffic into {group_id}"):
                    authorize(GroupId=group_id, IpPermissions=[permission])
            except AwsError as exc:
                if not caused_by(exc, "InvalidPermission.Duplicate"):
                    raise

    def delete(self, run: AwsRun, found: Observed) -> None:
        ec2 = _ec2(run)
        reply = call_or_none(
            f"reading security group {found.id}", ec2.describe_security_groups, NOT_FOUND, GroupIds=[found.id]
        )
        if not reply or not reply["SecurityGroups"]:
            return
        group = reply["SecurityGroups"][0]
        # Groups of the stack reference each other; dropping this group's references first lets the groups
        # it names be deleted even when both go at the same time. Whoever still references (or uses) this
        # one makes AWS answer DependencyViolation, which the sweeper retries.
        for direction, permissions, revoke in (
            ("ingress", group.get("IpPermissions", []), ec2.revoke_security_group_ingress),
            ("egress", group.get("IpPermissionsEgress", []), ec2.revoke_security_group_egress),
        ):
            if any(rule[3] == "group" for rule in _rules_from_aws(permissions)):
                self._revoke(run, found.id, direction, revoke, lambda rule: rule[3] == "group")
        call_or_none(f"deleting security group {found.id}", ec2.delete_security_group, NOT_FOUND, GroupId=found.id)

    def describe(self, found: Observed) -> str:
        return f"{found.id} ({found.attrs.get('name', '')})"


HANDLERS: tuple[Handler, ...] = (
    VpcEndpointHandler(),
    NetworkAclHandler(),
    SecurityGroupHandler(),
)
