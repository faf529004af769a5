"""Network security (EC2 API): the S3 gateway VPC endpoint, network ACLs and security groups.

The network_acl and security_group handlers are generic: a resource's props carry its rules (declared
in cdpoc/stack/security.py) and the handlers converge AWS to exactly those rules, adding what is missing,
replacing what differs and removing what is extra.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cdpoc.aws.base import (
    STACK_TAG,
    AwsRun,
    Handler,
    aws_errors,
    by_component,
    call_or_none,
    caused_by,
    dep_id,
    describe_one,
    observed,
    owner_attrs,
    paginate,
    repeat_safe,
    tag_map,
    unless_listed,
    vpc_changes,
)
from cdpoc.aws.network import association_changes
from cdpoc.errors import AwsError, ConflictError
from cdpoc.model import Change, Observed, Resource

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


class VpcEndpointHandler(Handler):
    kind = "vpc_endpoint"
    label = "VPC endpoint"
    arn_types = ("ec2:vpc-endpoint",)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        endpoints = paginate(run, "describe_vpc_endpoints", "VpcEndpoints", Filters=run.stack_filter())
        # AWS keeps listing deleted endpoints for a while.
        live = [e for e in endpoints if str(e.get("State", "")).lower() not in GONE_ENDPOINT_STATES]
        return {
            component: observed(component, self.kind, e["VpcEndpointId"], **_endpoint_attrs(e), **owner_attrs(e))
            for component, e in by_component(run, live, "VpcEndpointId").items()
        }

    def _route_tables(self, res: Resource, deps: Mapping[str, Observed | None]) -> dict[str, str | None]:
        return {key: dep_id(deps, key) for key in res.props["route_tables"]}

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = vpc_changes(res.props["vpc"], found, deps)
        if found.attrs["service"] != res.props["service"]:
            changes.append(Change(f"it serves {found.attrs['service']}, not {res.props['service']}", in_place=False))
        if found.attrs["type"].lower() != "gateway":
            changes.append(Change(f"it is a {found.attrs['type']} endpoint, not a gateway", in_place=False))
        wanted = self._route_tables(res, deps)
        for key, table_id in wanted.items():
            if table_id is None or table_id not in found.attrs["route_tables"]:
                changes.append(Change(f"add route table {table_id or key + ' (to be created)'}"))
        for table_id in sorted(set(found.attrs["route_tables"]) - set(wanted.values())):
            changes.append(Change(f"remove route table {table_id}"))
        if found.attrs["state"] != "available":
            changes.append(Change(f"it is {found.attrs['state']}: wait until available"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        vpc_id = deps[res.props["vpc"]].id
        tables = sorted(deps[key].id for key in res.props["route_tables"])

        def create(token: str) -> dict[str, Any]:
            with aws_errors(f"creating S3 gateway endpoint {res.name}"):
                reply: dict[str, Any] = _ec2(run).create_vpc_endpoint(
                    VpcEndpointType="Gateway",
                    VpcId=vpc_id,
                    ServiceName=res.props["service"],
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
        wanted = {deps[key].id for key in res.props["route_tables"]}
        have = set(found.attrs["route_tables"])
        edits: dict[str, list[str]] = {}
        if wanted - have:
            edits["AddRouteTableIds"] = sorted(wanted - have)
        if have - wanted:
            edits["RemoveRouteTableIds"] = sorted(have - wanted)
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


def _entry_key(entry: Mapping[str, Any]) -> tuple[str, str, str, int | None, int | None]:
    """What an entry allows or denies, comparable between a declaration and what AWS reports."""
    ports = entry.get("ports")
    return (
        str(entry["protocol"]),
        str(entry["action"]),
        str(entry["cidr"]),
        ports[0] if ports else None,
        ports[1] if ports else None,
    )


def _entry_from_aws(entry: Mapping[str, Any]) -> dict[str, Any]:
    port_range = entry.get("PortRange")
    return {
        "number": int(entry["RuleNumber"]),
        "protocol": str(entry["Protocol"]),
        "action": str(entry["RuleAction"]),
        "cidr": entry.get("CidrBlock") or entry.get("Ipv6CidrBlock", ""),
        "ports": (port_range["From"], port_range["To"]) if port_range else None,
    }


def _entry_params(entry: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "RuleNumber": entry["number"],
        "Protocol": entry["protocol"],
        "RuleAction": entry["action"],
        "CidrBlock": entry["cidr"],
    }
    if entry.get("ports"):
        params["PortRange"] = {"From": entry["ports"][0], "To": entry["ports"][1]}
    return params


def _show_entry(entry: Mapping[str, Any]) -> str:
    protocol = {"6": "tcp", "17": "udp", "1": "icmp", "-1": "all"}.get(entry["protocol"], entry["protocol"])
    ports = entry.get("ports")
    port_text = "" if not ports else f" {ports[0]}" if ports[0] == ports[1] else f" {ports[0]}-{ports[1]}"
    return f"#{entry['number']} {entry['action']} {protocol}{port_text} {entry['cidr']}"


def _acl_attrs(acl: Mapping[str, Any]) -> dict[str, Any]:
    entries: dict[str, dict[int, dict[str, Any]]] = {direction: {} for direction in DIRECTIONS}
    for raw in acl.get("Entries", []):
        if int(raw["RuleNumber"]) > HIGHEST_RULE_NUMBER:
            continue
        entry = _entry_from_aws(raw)
        entries["egress" if raw.get("Egress") else "ingress"][entry["number"]] = entry
    associations = {a["SubnetId"]: a["NetworkAclAssociationId"] for a in acl.get("Associations", []) if "SubnetId" in a}
    return {"vpc": acl["VpcId"], **entries, "associations": associations}


class NetworkAclHandler(Handler):
    kind = "network_acl"
    label = "network ACL"
    arn_types = ("ec2:network-acl",)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        acls = paginate(run, "describe_network_acls", "NetworkAcls", Filters=run.stack_filter())
        return {
            component: observed(component, self.kind, acl["NetworkAclId"], **_acl_attrs(acl), **owner_attrs(acl))
            for component, acl in by_component(run, acls, "NetworkAclId").items()
        }

    def _entry_changes(self, res: Resource, found: Observed) -> list[Change]:
        changes = []
        for direction in DIRECTIONS:
            wanted = {e["number"]: e for e in res.props[direction]}
            have = found.attrs[direction]
            for number, entry in wanted.items():
                if number not in have:
                    changes.append(Change(f"add {direction} {_show_entry(entry)}"))
                elif _entry_key(have[number]) != _entry_key(entry):
                    changes.append(Change(f"{direction} {_show_entry(have[number])} -> {_show_entry(entry)}"))
            for number in sorted(set(have) - set(wanted)):
                changes.append(Change(f"remove {direction} {_show_entry(have[number])}"))
        return changes

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = vpc_changes(res.props["vpc"], found, deps)
        changes.extend(self._entry_changes(res, found))
        changes.extend(association_changes(res.props["subnets"], deps, found.attrs["associations"]))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        vpc_id = deps[res.props["vpc"]].id

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
        return self.update(run, res, observed(res, self.kind, acl["NetworkAclId"], **_acl_attrs(acl)), deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        entries = {direction: self._converge_entries(run, res, found, direction) for direction in DIRECTIONS}
        associations = self._associate(run, found, [deps[key].id for key in res.props["subnets"]])
        return observed(res, self.kind, found.id, vpc=found.attrs["vpc"], **entries, associations=associations)

    def _converge_entries(self, run: AwsRun, res: Resource, found: Observed, direction: str) -> dict[int, Any]:
        ec2 = _ec2(run)
        egress = direction == "egress"
        wanted = {e["number"]: dict(e) for e in res.props[direction]}
        have = found.attrs[direction]
        for number, entry in wanted.items():
            if number in have and _entry_key(have[number]) == _entry_key(entry):
                continue
            repeat_safe(
                f"setting {direction} {_show_entry(entry)} in {found.id}",
                ec2.replace_network_acl_entry if number in have else ec2.create_network_acl_entry,
                ("NetworkAclEntryAlreadyExists",),
                functools.partial(self._has_entry, run, found.id, direction, entry),
                NetworkAclId=found.id,
                Egress=egress,
                **_entry_params(entry),
            )
        # Extras go last, so that a rule that moved to a new number is never missing in between.
        for number in sorted(set(have) - set(wanted)):
            call_or_none(
                f"removing {direction} {_show_entry(have[number])} from {found.id}",
                ec2.delete_network_acl_entry,
                NOT_FOUND,
                NetworkAclId=found.id,
                RuleNumber=number,
                Egress=egress,
            )
        return wanted

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
            if subnet_id not in previous:
                raise AwsError(f"subnet {subnet_id} has no network ACL association to replace")
            try:
                with aws_errors(f"associating {subnet_id} with {found.id}"):
                    reply = ec2.replace_network_acl_association(
                        AssociationId=previous[subnet_id], NetworkAclId=found.id
                    )
                associations[subnet_id] = reply["NewAssociationId"]
            except AwsError as exc:
                # A retry after a lost answer names the association the first attempt already replaced.
                moved = self._association(run, found.id, subnet_id)
                if not (caused_by(exc, "InvalidAssociationID.NotFound") and moved):
                    raise
                associations[subnet_id] = moved
        return associations

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

    def _has_entry(self, run: AwsRun, acl_id: str, direction: str, entry: Mapping[str, Any]) -> bool:
        acl = self._acl(run, acl_id)
        have = _acl_attrs(acl)[direction].get(entry["number"]) if acl else None
        return have is not None and _entry_key(have) == _entry_key(entry)

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


def _wanted_rule(rule: Mapping[str, Any], deps: Mapping[str, Observed | None]) -> Rule | None:
    """A declared rule with its source group resolved to an id; None while that group does not exist."""
    ports = rule.get("ports")
    from_port, to_port = (ports[0], ports[1]) if ports else (None, None)
    if "group" in rule:
        group_id = dep_id(deps, rule["group"])
        return _rule(rule["protocol"], from_port, to_port, "group", group_id) if group_id else None
    return _rule(rule["protocol"], from_port, to_port, "cidr", rule["cidr"])


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


def _group_attrs(group: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "vpc": group.get("VpcId", ""),
        "name": group["GroupName"],
        "ingress": _rules_from_aws(group.get("IpPermissions", [])),
        "egress": _rules_from_aws(group.get("IpPermissionsEgress", [])),
    }


class SecurityGroupHandler(Handler):
    kind = "security_group"
    label = "security group"
    arn_types = ("ec2:security-group",)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        groups = paginate(run, "describe_security_groups", "SecurityGroups", Filters=run.stack_filter())
        return {
            component: observed(component, self.kind, g["GroupId"], **_group_attrs(g), **owner_attrs(g))
            for component, g in by_component(run, groups, "GroupId").items()
        }

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = vpc_changes(res.props["vpc"], found, deps)
        if found.attrs["name"] != res.name:
            changes.append(Change(f"it is named {found.attrs['name']}, not {res.name}", in_place=False))
        for direction in DIRECTIONS:
            have = set(found.attrs[direction])
            wanted = set()
            for rule in res.props[direction]:
                resolved = _wanted_rule(rule, deps)
                if resolved is None:
                    changes.append(Change(f"allow {direction} from {rule['group']} (to be created)"))
                else:
                    wanted.add(resolved)
            changes.extend(Change(f"allow {direction} {_show_rule(r)}") for r in sorted(wanted - have, key=str))
            changes.extend(Change(f"revoke {direction} {_show_rule(r)}") for r in sorted(have - wanted, key=str))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        vpc_id = deps[res.props["vpc"]].id
        # CreateSecurityGroup takes no ClientToken: the planner looked the group up by tag first, and a
        # same-named group found here is adopted only when its tags say it is ours.
        try:
            with aws_errors(f"creating security group {res.name}"):
                group_id = _ec2(run).create_security_group(
                    GroupName=res.name,
                    Description=res.props["description"],
                    VpcId=vpc_id,
                    TagSpecifications=run.ec2_tag_specs("security-group", res),
                )["GroupId"]
        except AwsError as exc:
            if not caused_by(exc, "InvalidGroup.Duplicate"):
                raise
            group_id = self._adopt(run, res, vpc_id)
        run.wait_with("ec2", "security_group_exists", f"security group {group_id} to exist", GroupIds=[group_id])
        return self.update(run, res, self._read(run, res.key, group_id), deps)

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
        rules = {direction: self._converge(run, res, found, deps, direction) for direction in DIRECTIONS}
        return observed(res, self.kind, found.id, vpc=found.attrs["vpc"], name=found.attrs["name"], **rules)

    def _converge(
        self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed], direction: str
    ) -> tuple[Rule, ...]:
        ec2 = _ec2(run)
        authorize, revoke = (
            (ec2.authorize_security_group_ingress, ec2.revoke_security_group_ingress)
            if direction == "ingress"
            else (ec2.authorize_security_group_egress, ec2.revoke_security_group_egress)
        )
        wanted: dict[Rule, str] = {}
        for rule in res.props[direction]:
            resolved = _wanted_rule(rule, deps)
            assert resolved is not None  # the executor runs this only after every dependency exists
            wanted[resolved] = rule.get("description", "")
        have = set(found.attrs[direction])
        missing = [r for r in wanted if r not in have]
        if missing:
            try:
                with aws_errors(f"allowing {direction} traffic into {found.id}"):
                    authorize(GroupId=found.id, IpPermissions=[_permission(r, wanted[r]) for r in missing])
            except AwsError as exc:
                # Another run (or an interrupted one) added it already: the rule is there, as wanted.
                if not caused_by(exc, "InvalidPermission.Duplicate"):
                    raise
                self._authorize_one_by_one(found.id, authorize, [_permission(r, wanted[r]) for r in missing])
        extra = have - set(wanted)
        if extra:
            self._revoke(run, found.id, direction, revoke, lambda rule: rule in extra)
        return tuple(sorted(wanted, key=str))

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
