"""VPC, subnets, internet gateway, Elastic IPs, NAT gateways and route tables (EC2 API)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cdpoc.aws.errors import (
    DependencyViolation,
    aws_errors,
    caused_by,
    describe_one,
    ignore_missing,
    repeat_safe,
    unless_listed,
)
from cdpoc.aws.handler import Handler, dep_id, observed, vpc_changes
from cdpoc.aws.ownership import by_component, delete_twins, owner_attrs
from cdpoc.aws.run import AwsRun, paginate
from cdpoc.errors import AccessError, AwsError
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import Ref, entry_of, field_change, field_changes, ref_change, spec_of
from cdpoc.stack.specs.network import (
    ElasticIpSpec,
    InternetGatewaySpec,
    NatGatewaySpec,
    RouteTableSpec,
    SubnetSpec,
    VpcSpec,
)

NOT_FOUND = (
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidAllocationID.NotFound",
    "InvalidAddressID.NotFound",
    "NatGatewayNotFound",
    "InvalidNatGatewayID.NotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidAssociationID.NotFound",
    "Gateway.NotAttached",
)


def _ec2(run: AwsRun) -> Any:
    return run.client("ec2")


def association_changes(
    subnets: Iterable[str], deps: Mapping[str, Observed | None], associations: Mapping[str, str]
) -> list[Change]:
    """The subnets (logical keys) not yet associated with a network ACL, as changes (cdpoc.aws.security's,
    until its spec migration: route tables diff their subnets both ways, RouteTableHandler._subnet_changes)."""
    changes = []
    for key in subnets:
        subnet_id = dep_id(deps, key)
        if subnet_id is None or subnet_id not in associations:
            changes.append(Change(f"associate {subnet_id or key + ' (to be created)'}"))
    return changes


def _route_destination(route: Mapping[str, Any]) -> str:
    """A listed route's destination (CIDR, IPv6 CIDR or prefix list); "" for none."""
    return next((str(route[d]) for d in ROUTE_DESTINATIONS if route.get(d)), "")


def _endpoint_route(route: Mapping[str, Any]) -> bool:
    """A gateway endpoint's route (its prefix list → vpce-...): the endpoint's, not the table's. AWS adds and
    removes it with the endpoint's route tables (Create/ModifyVpcEndpoint), which the endpoint's spec declares."""
    return str(route.get("GatewayId", "")).startswith("vpce-")


def _attached(gateway: Mapping[str, Any]) -> bool:
    return any(a.get("State") in ("attached", "available") for a in gateway.get("Attachments", []))


def _associated(address: Mapping[str, Any]) -> bool:
    return bool(address.get("AssociationId"))


def _not_deleting(gateway: Mapping[str, Any]) -> bool:
    return gateway.get("State") != "deleting"


# The VPC's DNS attributes: the spec's field, DescribeVpcAttribute's attribute and reply key (ModifyVpcAttribute's
# parameter has the reply key's name).
DNS_ATTRIBUTES = (
    ("enable_dns_support", "enableDnsSupport", "EnableDnsSupport"),
    ("enable_dns_hostnames", "enableDnsHostnames", "EnableDnsHostnames"),
)


def _dns_order(change: Change) -> int:
    """AWS takes one DNS attribute per call, and hostnames only while support is on: support goes on
    first, and off last."""
    if change.field == "enable_dns_support":
        return 0 if change.new else 2
    return 1


class VpcHandler(Handler):
    kind = "vpc"
    label = "VPC"
    arn_types = ("ec2:vpc",)
    spec_type = VpcSpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        result = {}
        vpcs = paginate(run, "describe_vpcs", "Vpcs", Filters=run.stack_filter())
        for component, vpc in by_component(run, vpcs, "VpcId").items():
            attrs = {}
            for field, attribute, reply_key in DNS_ATTRIBUTES:
                with aws_errors(f"reading {attribute} of {vpc['VpcId']}"):
                    reply = _ec2(run).describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)
                attrs[field] = reply[reply_key]["Value"]
            result[component] = observed(
                component, self.kind, vpc["VpcId"], cidr=vpc["CidrBlock"], **attrs, **owner_attrs(vpc)
            )
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, VpcSpec)
        want = {"cidr": spec.cidr, **{field: getattr(spec, field) for field, _, _ in DNS_ATTRIBUTES}}
        return field_changes(spec, found.attrs, want)

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, VpcSpec)
        with aws_errors(f"creating VPC {res.name}"):
            vpc = _ec2(run).create_vpc(CidrBlock=spec.cidr, TagSpecifications=run.ec2_tag_specs("vpc", res))["Vpc"]
        run.wait_with("ec2", "vpc_available", f"VPC {vpc['VpcId']} to be available", VpcIds=[vpc["VpcId"]])
        delete_twins(
            run,
            res,
            vpc["VpcId"],
            paginate(run, "describe_vpcs", "Vpcs", Filters=run.component_filter(res)),
            "VpcId",
            lambda twin: self.delete(run, observed(res, self.kind, twin)),
        )
        # Its DNS attributes are not read: each is set as the spec says (2 calls, whatever AWS's defaults).
        found = observed(res, self.kind, vpc["VpcId"], cidr=vpc["CidrBlock"])
        return self.converge(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        attrs = dict(found.attrs)
        parameters = {field: reply_key for field, _, reply_key in DNS_ATTRIBUTES}
        for change in sorted((c for c in changes if c.field in parameters), key=_dns_order):
            parameter = parameters[change.field]
            with aws_errors(f"setting {parameter} of {found.id} to {change.new}"):
                _ec2(run).modify_vpc_attribute(VpcId=found.id, **{parameter: {"Value": bool(change.new)}})
            attrs[change.field] = bool(change.new)
        return observed(res, self.kind, found.id, **attrs)

    def delete(self, run: AwsRun, found: Observed) -> None:
        ignore_missing(f"deleting VPC {found.id}", _ec2(run).delete_vpc, NOT_FOUND, VpcId=found.id)

    def describe(self, found: Observed) -> str:
        return f"{found.id} ({found.attrs.get('cidr', '')})"


class SubnetHandler(Handler):
    kind = "subnet"
    label = "subnet"
    arn_types = ("ec2:subnet",)
    spec_type = SubnetSpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        subnets = paginate(run, "describe_subnets", "Subnets", Filters=run.stack_filter())
        return {
            component: observed(
                component,
                self.kind,
                s["SubnetId"],
                cidr=s["CidrBlock"],
                zone=s["AvailabilityZone"],
                vpc=s["VpcId"],
                **owner_attrs(s),
            )
            for component, s in by_component(run, subnets, "SubnetId").items()
        }

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        # Nothing of a subnet changes in place: every difference is a conflict.
        spec = spec_of(res, SubnetSpec)
        changes = field_changes(spec, found.attrs, {"cidr": spec.cidr, "zone": spec.zone})
        changes.extend(vpc_changes(spec.vpc, found, deps))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, SubnetSpec)
        vpc_id = spec.vpc.need(deps)
        try:
            with aws_errors(f"creating subnet {res.name}"):
                subnet = _ec2(run).create_subnet(
                    VpcId=vpc_id,
                    CidrBlock=spec.cidr,
                    AvailabilityZone=spec.zone,
                    TagSpecifications=run.ec2_tag_specs("subnet", res),
                )["Subnet"]
        except AwsError as exc:
            # A retry after a lost answer collides with the subnet the first attempt made: take that one,
            # if its own tags say it is this stack's res.key (anyone else's block is a real conflict).
            if not caused_by(exc, "InvalidSubnet.Conflict"):
                raise
            ours = by_component(
                run,
                paginate(
                    run,
                    "describe_subnets",
                    "Subnets",
                    Filters=[
                        *run.component_filter(res),
                        {"Name": "vpc-id", "Values": [vpc_id]},
                        {"Name": "cidr-block", "Values": [spec.cidr]},
                    ],
                ),
                "SubnetId",
            )
            if res.key not in ours:
                raise
            subnet = ours[res.key]
        run.wait_with(
            "ec2",
            "subnet_available",
            f"subnet {subnet['SubnetId']} to be available",
            SubnetIds=[subnet["SubnetId"]],
        )
        return observed(
            res,
            self.kind,
            subnet["SubnetId"],
            cidr=subnet["CidrBlock"],
            zone=subnet["AvailabilityZone"],
            vpc=subnet["VpcId"],
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        ignore_missing(f"deleting subnet {found.id}", _ec2(run).delete_subnet, NOT_FOUND, SubnetId=found.id)

    def describe(self, found: Observed) -> str:
        return f"{found.id} ({found.attrs.get('cidr', '')}, {found.attrs.get('zone', '')})"


class InternetGatewayHandler(Handler):
    kind = "internet_gateway"
    label = "internet gateway"
    arn_types = ("ec2:internet-gateway",)
    spec_type = InternetGatewaySpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        gateways = paginate(run, "describe_internet_gateways", "InternetGateways", Filters=run.stack_filter())
        return {
            component: observed(
                component,
                self.kind,
                g["InternetGatewayId"],
                vpcs=tuple(
                    a["VpcId"]
                    for a in g.get("Attachments", [])
                    if a.get("State") in ("attached", "available", "attaching")
                ),
                **owner_attrs(g),
            )
            for component, g in by_component(run, gateways, "InternetGatewayId", prefer=_attached).items()
        }

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, InternetGatewaySpec)
        attached = tuple(found.attrs["vpcs"])
        if attached == (spec.vpc.value(deps),):
            return []
        # A gateway holds one VPC at most; `old` is it, or None when it is attached nowhere.
        return [ref_change(spec, "vpc", attached[0] if len(attached) == 1 else (attached or None), spec.vpc, deps)]

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        with aws_errors(f"creating internet gateway {res.name}"):
            gateway = _ec2(run).create_internet_gateway(TagSpecifications=run.ec2_tag_specs("internet-gateway", res))[
                "InternetGateway"
            ]
        delete_twins(
            run,
            res,
            gateway["InternetGatewayId"],
            paginate(run, "describe_internet_gateways", "InternetGateways", Filters=run.component_filter(res)),
            "InternetGatewayId",
            lambda twin: self.delete(run, observed(res, self.kind, twin, vpcs=())),
        )
        found = observed(res, self.kind, gateway["InternetGatewayId"], vpcs=())
        return self.converge(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        attached = tuple(found.attrs["vpcs"])
        for change in changes:
            if change.field == "vpc":
                attached = self._move(run, found.id, attached, change.new.need(deps))
        return observed(res, self.kind, found.id, **{**found.attrs, "vpcs": attached})

    def _move(self, run: AwsRun, gateway_id: str, attached: tuple[str, ...], vpc_id: str) -> tuple[str, ...]:
        """Detach the gateway from any other VPC, then attach it to `vpc_id`; the VPCs it is now attached to."""
        for other in attached:
            if other != vpc_id:
                ignore_missing(
                    f"detaching {gateway_id} from {other}",
                    _ec2(run).detach_internet_gateway,
                    NOT_FOUND,
                    InternetGatewayId=gateway_id,
                    VpcId=other,
                )
        if vpc_id not in attached:
            repeat_safe(
                f"attaching {gateway_id} to {vpc_id}",
                _ec2(run).attach_internet_gateway,
                ("Resource.AlreadyAssociated",),
                lambda: vpc_id in self._attached_vpcs(run, gateway_id),
                InternetGatewayId=gateway_id,
                VpcId=vpc_id,
            )
        return (vpc_id,)

    def _attached_vpcs(self, run: AwsRun, gateway_id: str) -> tuple[str, ...]:
        gateway = describe_one(
            f"reading internet gateway {gateway_id}",
            _ec2(run).describe_internet_gateways,
            "InternetGateways",
            "InternetGatewayIds",
            gateway_id,
            NOT_FOUND,
        )
        attachments = gateway.get("Attachments", []) if gateway else []
        return tuple(a["VpcId"] for a in attachments if a.get("State") != "detached")

    def delete(self, run: AwsRun, found: Observed) -> None:
        # Detaching fails with DependencyViolation while public addresses are still mapped in the
        # VPC (NAT, ALB); the sweeper retries it within its budget.
        for vpc_id in found.attrs.get("vpcs", ()):
            ignore_missing(
                f"detaching {found.id} from {vpc_id}",
                _ec2(run).detach_internet_gateway,
                NOT_FOUND,
                InternetGatewayId=found.id,
                VpcId=vpc_id,
            )
        ignore_missing(
            f"deleting internet gateway {found.id}",
            _ec2(run).delete_internet_gateway,
            NOT_FOUND,
            InternetGatewayId=found.id,
        )


class ElasticIpHandler(Handler):
    kind = "elastic_ip"
    label = "Elastic IP"
    spec_type = ElasticIpSpec
    arn_types = ("ec2:elastic-ip",)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        with aws_errors("listing the stack's Elastic IPs"):
            addresses = _ec2(run).describe_addresses(Filters=run.stack_filter())["Addresses"]
        return {
            component: observed(
                component,
                self.kind,
                a["AllocationId"],
                public_ip=a.get("PublicIp", ""),
                association=a.get("AssociationId", ""),
                **owner_attrs(a),
            )
            for component, a in by_component(run, addresses, "AllocationId", prefer=_associated).items()
        }

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        with aws_errors(f"allocating Elastic IP {res.name}"):
            address = _ec2(run).allocate_address(Domain="vpc", TagSpecifications=run.ec2_tag_specs("elastic-ip", res))
        with aws_errors(f"looking for a second Elastic IP {res.name}"):
            listed = _ec2(run).describe_addresses(Filters=run.component_filter(res))["Addresses"]
        delete_twins(
            run,
            res,
            address["AllocationId"],
            listed,
            "AllocationId",
            lambda twin: self.delete(run, observed(res, self.kind, twin)),
        )
        return observed(res, self.kind, address["AllocationId"], public_ip=address.get("PublicIp", ""), association="")

    def delete(self, run: AwsRun, found: Observed) -> None:
        # The owner (NAT gateway, instance) is deleted first by the graph order, but AWS lets go of the
        # address a little later: until then release fails, with InvalidIPAddress.InUse or, for a NAT
        # gateway's address, a bare AuthFailure. Both mean "retry", not "bad credentials".
        what = f"releasing Elastic IP {found.attrs.get('public_ip') or found.id}"
        try:
            ignore_missing(what, _ec2(run).release_address, NOT_FOUND, AllocationId=found.id)
        except AccessError as exc:
            if caused_by(exc, "AuthFailure"):
                raise DependencyViolation(f"{what}: AuthFailure while AWS still holds it for its last owner") from exc
            raise

    def describe(self, found: Observed) -> str:
        return f"{found.id} ({found.attrs.get('public_ip', '')})"


# A deleting gateway is still listed (and `down` waits for it); deleted and failed ones are history.
LISTED_NAT_STATES = ("pending", "available", "deleting")
GONE_NAT_STATES = ("deleting", "deleted", "failed")
# The plan's note for a gateway that exists but is not available yet: `up` waits for it.
STILL_PENDING = Change("still pending: wait until available")


class NatGatewayHandler(Handler):
    kind = "nat_gateway"
    label = "NAT gateway"
    arn_types = ("ec2:natgateway",)
    spec_type = NatGatewaySpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        # DescribeNatGateways keeps listing deleted (and failed) gateways for a while: ignore those.
        gateways = paginate(
            run,
            "describe_nat_gateways",
            "NatGateways",
            Filter=[*run.stack_filter(), {"Name": "state", "Values": list(LISTED_NAT_STATES)}],
        )
        return {
            component: observed(
                component,
                self.kind,
                g["NatGatewayId"],
                subnet=g["SubnetId"],
                state=g["State"],
                allocations=tuple(a.get("AllocationId", "") for a in g.get("NatGatewayAddresses", [])),
                **owner_attrs(g),
            )
            for component, g in by_component(run, gateways, "NatGatewayId", prefer=_not_deleting).items()
        }

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        # Its subnet and primary address are fixed (force_new): compared once the ones wanted exist.
        spec = spec_of(res, NatGatewaySpec)
        changes = []
        subnet_id = spec.subnet.value(deps)
        if subnet_id and found.attrs["subnet"] != subnet_id:
            changes.append(ref_change(spec, "subnet", found.attrs["subnet"], spec.subnet, deps))
        allocation_id = spec.eip.value(deps)
        allocations = tuple(found.attrs["allocations"])
        if allocation_id and allocation_id not in allocations:
            changes.append(ref_change(spec, "eip", allocations[0] if allocations else None, spec.eip, deps))
        if found.attrs["state"] == "pending":
            changes.append(STILL_PENDING)
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, NatGatewaySpec)
        subnet_id = spec.subnet.need(deps)
        allocation_id = spec.eip.need(deps)
        self._wait_for_predecessors(run, res)

        def create(token: str) -> dict[str, Any]:
            with aws_errors(f"creating NAT gateway {res.name}"):
                reply: dict[str, Any] = _ec2(run).create_nat_gateway(
                    SubnetId=subnet_id,
                    AllocationId=allocation_id,
                    ConnectivityType="public",
                    ClientToken=token,
                    TagSpecifications=run.ec2_tag_specs("natgateway", res),
                )["NatGateway"]
            return reply

        gateway = run.create_with_token(
            res,
            (subnet_id, allocation_id),
            create,
            lambda g: g["NatGatewayId"] if g.get("State") in GONE_NAT_STATES else None,
        )
        found = observed(
            res,
            self.kind,
            gateway["NatGatewayId"],
            subnet=subnet_id,
            state="pending",
            allocations=(allocation_id,),
        )
        return self.converge(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        # Finishing its start is the one thing a NAT gateway does in place (its fields are force_new).
        if STILL_PENDING not in changes:
            return found
        run.wait_with(
            "ec2",
            "nat_gateway_available",
            f"NAT gateway {found.id} to be available",
            timeout=run.waits.nat_gateway,
            NatGatewayIds=[found.id],
        )
        return observed(res, self.kind, found.id, **{**found.attrs, "state": "available"})

    def _wait_for_predecessors(self, run: AwsRun, res: Resource) -> None:
        """A gateway of this component still deleting (a `down` stopped after DeleteNatGateway) holds its
        Elastic IP until it is gone: a new gateway on that address is refused (Resource.AlreadyAssociated)."""
        deleting = by_component(
            run,
            paginate(
                run,
                "describe_nat_gateways",
                "NatGateways",
                Filter=[*run.component_filter(res), {"Name": "state", "Values": ["deleting"]}],
            ),
            "NatGatewayId",
        )
        for gateway in deleting.values():
            if gateway.get("State") == "deleting":
                run.wait_with(
                    "ec2",
                    "nat_gateway_deleted",
                    f"NAT gateway {gateway['NatGatewayId']} (being deleted) to let go of its Elastic IP",
                    timeout=run.waits.nat_gateway,
                    NatGatewayIds=[gateway["NatGatewayId"]],
                )

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        """A gateway on its way out does not count for `up` (a new one is made); `down` still waits for it."""
        found = super().find(run, res)
        return None if found is not None and found.attrs["state"] == "deleting" else found

    def delete(self, run: AwsRun, found: Observed) -> None:
        if found.attrs.get("state") != "deleting":
            ignore_missing(
                f"deleting NAT gateway {found.id}", _ec2(run).delete_nat_gateway, NOT_FOUND, NatGatewayId=found.id
            )
        # Its EIP and network interface are only released once it is `deleted`.
        run.wait_with(
            "ec2",
            "nat_gateway_deleted",
            f"NAT gateway {found.id} to be deleted",
            timeout=run.waits.nat_gateway,
            NatGatewayIds=[found.id],
        )


# Where a route goes, as DescribeRouteTables shows it: the first of these a route has is its target.
ROUTE_TARGETS = (
    "GatewayId",
    "NatGatewayId",
    "TransitGatewayId",
    "VpcPeeringConnectionId",
    "InstanceId",
    "NetworkInterfaceId",
    "EgressOnlyInternetGatewayId",
    "LocalGatewayId",
    "CarrierGatewayId",
    "CoreNetworkArn",
)
# A route's destination: an IPv4 CIDR, an IPv6 CIDR or a prefix list (Create/Replace/DeleteRoute's parameters).
ROUTE_DESTINATIONS = ("DestinationCidrBlock", "DestinationIpv6CidrBlock", "DestinationPrefixListId")


def _destination(dest: str) -> dict[str, str]:
    """The parameter naming a route's destination in Create/Replace/DeleteRoute."""
    if dest.startswith("pl-"):
        return {"DestinationPrefixListId": dest}
    if ":" in dest:
        return {"DestinationIpv6CidrBlock": dest}
    return {"DestinationCidrBlock": dest}


def _target(target_id: str) -> dict[str, str]:
    """The parameter naming a route's target: a NAT gateway, or a gateway (internet, virtual private)."""
    return {"NatGatewayId": target_id} if target_id.startswith("nat-") else {"GatewayId": target_id}


# How often a subnet's move onto a table looks again for the association it moves from (see _associate).
ASSOCIATE_ATTEMPTS = 3


class RouteTableHandler(Handler):
    """A route table, its routes and its subnets, each diffed both ways: what the spec lists is added or
    replaced, and a route (one cdpoc or anyone made with CreateRoute) or an association the spec no longer
    lists is removed. The local route, routes a gateway propagates and a gateway endpoint's routes belong to
    AWS or to the endpoint, and are left alone."""

    kind = "route_table"
    label = "route table"
    arn_types = ("ec2:route-table",)
    spec_type = RouteTableSpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        tables = paginate(run, "describe_route_tables", "RouteTables", Filters=run.stack_filter())
        result = {}
        for component, table in by_component(run, tables, "RouteTableId").items():
            routes = {
                _route_destination(r): next((str(r[t]) for t in ROUTE_TARGETS if r.get(t)), "")
                for r in table.get("Routes", [])
                if _route_destination(r) and r.get("Origin") == "CreateRoute" and not _endpoint_route(r)
            }
            associations = {
                a["SubnetId"]: a["RouteTableAssociationId"] for a in table.get("Associations", []) if a.get("SubnetId")
            }
            result[component] = observed(
                component,
                self.kind,
                table["RouteTableId"],
                vpc=table["VpcId"],
                routes=routes,
                associations=associations,
                **owner_attrs(table),
            )
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, RouteTableSpec)
        changes = vpc_changes(spec.vpc, found, deps)
        changes.extend(self._route_changes(spec, found.attrs["routes"], deps))
        changes.extend(self._subnet_changes(spec, found.attrs["associations"], deps))
        return changes

    @staticmethod
    def _route_changes(
        spec: RouteTableSpec, have: Mapping[str, str], deps: Mapping[str, Observed | None]
    ) -> list[Change]:
        """routes[<destination>]: the target it has (or none) → the one wanted (or none)."""
        changes = [
            ref_change(spec, f"routes[{dest}]", have.get(dest), target, deps)
            for dest, target in spec.routes.items()
            if target.value(deps) is None or have.get(dest) != target.value(deps)
        ]
        changes.extend(
            field_change(spec, f"routes[{dest}]", target_id, None)
            for dest, target_id in have.items()
            if dest not in spec.routes
        )
        return changes

    @staticmethod
    def _subnet_changes(
        spec: RouteTableSpec, associated: Mapping[str, str], deps: Mapping[str, Observed | None]
    ) -> list[Change]:
        """subnets[<subnet>]: (none) → the subnet for one to associate, the subnet → (none) for one to let go."""
        wanted = {subnet.value(deps) for subnet in spec.subnets}
        changes = [
            ref_change(spec, f"subnets[{subnet.value(deps) or subnet.key}]", None, subnet, deps)
            for subnet in spec.subnets
            if subnet.value(deps) not in associated
        ]
        changes.extend(
            field_change(spec, f"subnets[{subnet_id}]", subnet_id, None)
            for subnet_id in associated
            if subnet_id not in wanted
        )
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        vpc_id = spec_of(res, RouteTableSpec).vpc.need(deps)

        def create(token: str) -> dict[str, Any]:
            with aws_errors(f"creating route table {res.name}"):
                reply: dict[str, Any] = _ec2(run).create_route_table(
                    VpcId=vpc_id, ClientToken=token, TagSpecifications=run.ec2_tag_specs("route-table", res)
                )["RouteTable"]
            return reply

        def dead_id(table: dict[str, Any]) -> str | None:
            table_id = str(table["RouteTableId"])
            return unless_listed(
                f"checking route table {table_id}",
                _ec2(run).describe_route_tables,
                "RouteTables",
                "RouteTableIds",
                table_id,
                NOT_FOUND,
            )

        table = run.create_with_token(res, (vpc_id,), create, dead_id)
        found = observed(res, self.kind, table["RouteTableId"], vpc=vpc_id, routes={}, associations={})
        return self.converge(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        routes = dict(found.attrs["routes"])
        associations = dict(found.attrs["associations"])
        for change in changes:
            dest = entry_of(change.field, "routes")
            if dest is not None:
                target_id = change.new.need(deps) if isinstance(change.new, Ref) else None
                self._route(run, found.id, dest, change.old, target_id)
                if target_id is None:
                    routes.pop(dest, None)
                else:
                    routes[dest] = target_id
            elif entry_of(change.field, "subnets") is not None:
                if isinstance(change.new, Ref):
                    subnet_id = change.new.need(deps)
                    associations[subnet_id] = self._associate(run, found.id, subnet_id)
                else:
                    self._disassociate(run, found.id, change.old, associations.pop(change.old))
        return observed(res, self.kind, found.id, **{**found.attrs, "routes": routes, "associations": associations})

    def _route(self, run: AwsRun, table_id: str, dest: str, old: str | None, target_id: str | None) -> None:
        """Add, replace or delete the route to `dest` (`old`: the target the plan saw, None for none)."""
        ec2 = _ec2(run)
        if target_id is None:
            # A retry after a lost answer finds it gone: that is done.
            ignore_missing(
                f"deleting the route to {dest} (via {old}) from {table_id}",
                ec2.delete_route,
                ("InvalidRoute.NotFound",),
                RouteTableId=table_id,
                **_destination(dest),
            )
            return
        repeat_safe(
            f"routing {dest} via {target_id} in {table_id}",
            ec2.create_route if old is None else ec2.replace_route,
            ("RouteAlreadyExists",),
            functools.partial(self._routes_to, run, table_id, dest, target_id),
            RouteTableId=table_id,
            **_destination(dest),
            **_target(target_id),
        )

    def _disassociate(self, run: AwsRun, table_id: str, subnet_id: str, association_id: str) -> None:
        """Move the subnet back off the table (to the VPC's main table). Already gone counts as done: a
        retry after a lost answer, or another of the stack's tables took the subnet over first."""
        ignore_missing(
            f"disassociating {subnet_id} from {table_id}",
            _ec2(run).disassociate_route_table,
            NOT_FOUND,
            AssociationId=association_id,
        )

    def _associate(self, run: AwsRun, table_id: str, subnet_id: str) -> str:
        """Move the subnet onto this table (from the VPC's main table, or another); the association id."""
        for attempt in range(ASSOCIATE_ATTEMPTS):
            try:
                return self._associate_once(run, table_id, subnet_id)
            except AwsError as exc:
                # A retry after a lost answer finds the subnet already moved (or its old association gone).
                moved = next(
                    (
                        str(a["RouteTableAssociationId"])
                        for a in self._table(run, table_id).get("Associations", [])
                        if a.get("SubnetId") == subnet_id
                    ),
                    None,
                )
                if moved is not None and caused_by(exc, "Resource.AlreadyAssociated", "InvalidAssociationID.NotFound"):
                    return moved
                # The old association went away between the look and the move: another of the stack's tables
                # let the subnet go in the same `up` (its spec no longer lists it). Look again.
                if (
                    moved is None
                    and caused_by(exc, "InvalidAssociationID.NotFound")
                    and attempt + 1 < ASSOCIATE_ATTEMPTS
                ):
                    continue
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _associate_once(self, run: AwsRun, table_id: str, subnet_id: str) -> str:
        ec2 = _ec2(run)
        with aws_errors(f"associating {subnet_id} with {table_id}"):
            current = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])[
                "RouteTables"
            ]
            previous = [
                a["RouteTableAssociationId"]
                for t in current
                for a in t.get("Associations", [])
                if a.get("SubnetId") == subnet_id
            ]
            if previous:
                reply = ec2.replace_route_table_association(AssociationId=previous[0], RouteTableId=table_id)
                return str(reply["NewAssociationId"])
            return str(ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)["AssociationId"])

    def _table(self, run: AwsRun, table_id: str) -> dict[str, Any]:
        table = describe_one(
            f"reading route table {table_id}",
            _ec2(run).describe_route_tables,
            "RouteTables",
            "RouteTableIds",
            table_id,
            NOT_FOUND,
        )
        return table or {}

    def _routes_to(self, run: AwsRun, table_id: str, dest: str, target_id: str) -> bool:
        """Whether the table now routes `dest` to `target_id` (an earlier attempt may have added it)."""
        return any(
            r.get("DestinationCidrBlock") == dest and target_id in (r.get("GatewayId"), r.get("NatGatewayId"))
            for r in self._table(run, table_id).get("Routes", [])
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        ec2 = _ec2(run)
        for subnet_id, association_id in found.attrs.get("associations", {}).items():
            ignore_missing(
                f"disassociating {subnet_id} from {found.id}",
                ec2.disassociate_route_table,
                NOT_FOUND,
                AssociationId=association_id,
            )
        ignore_missing(f"deleting route table {found.id}", ec2.delete_route_table, NOT_FOUND, RouteTableId=found.id)


HANDLERS: tuple[Handler, ...] = (
    VpcHandler(),
    SubnetHandler(),
    InternetGatewayHandler(),
    ElasticIpHandler(),
    NatGatewayHandler(),
    RouteTableHandler(),
)
