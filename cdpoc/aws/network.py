"""VPC, subnets, internet gateway, Elastic IPs, NAT gateways and route tables (EC2 API)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cdpoc.aws.base import (
    AwsRun,
    DependencyViolation,
    Handler,
    aws_errors,
    by_component,
    caused_by,
    delete_twins,
    dep_id,
    describe_one,
    ignore_missing,
    observed,
    owner_attrs,
    paginate,
    repeat_safe,
    unless_listed,
    vpc_changes,
)
from cdpoc.errors import AccessError, AwsError
from cdpoc.model import Change, Observed, Resource

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
    """The subnets (logical keys) not yet associated with a route table or network ACL, as changes."""
    changes = []
    for key in subnets:
        subnet_id = dep_id(deps, key)
        if subnet_id is None or subnet_id not in associations:
            changes.append(Change(f"associate {subnet_id or key + ' (to be created)'}"))
    return changes


def _attached(gateway: Mapping[str, Any]) -> bool:
    return any(a.get("State") in ("attached", "available") for a in gateway.get("Attachments", []))


def _associated(address: Mapping[str, Any]) -> bool:
    return bool(address.get("AssociationId"))


def _not_deleting(gateway: Mapping[str, Any]) -> bool:
    return gateway.get("State") != "deleting"


class VpcHandler(Handler):
    kind = "vpc"
    label = "VPC"
    arn_types = ("ec2:vpc",)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        result = {}
        vpcs = paginate(run, "describe_vpcs", "Vpcs", Filters=run.stack_filter())
        for component, vpc in by_component(run, vpcs, "VpcId").items():
            attrs = {}
            for attribute, field in (
                ("enableDnsSupport", "EnableDnsSupport"),
                ("enableDnsHostnames", "EnableDnsHostnames"),
            ):
                with aws_errors(f"reading {attribute} of {vpc['VpcId']}"):
                    reply = _ec2(run).describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)
                attrs[attribute] = reply[field]["Value"]
            result[component] = observed(
                component, self.kind, vpc["VpcId"], cidr=vpc["CidrBlock"], **attrs, **owner_attrs(vpc)
            )
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = []
        if found.attrs["cidr"] != res.props["cidr"]:
            changes.append(Change(f"CIDR is {found.attrs['cidr']}, config wants {res.props['cidr']}", in_place=False))
        for attribute in ("enableDnsSupport", "enableDnsHostnames"):
            if not found.attrs.get(attribute):
                changes.append(Change(f"{attribute} is off"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        with aws_errors(f"creating VPC {res.name}"):
            vpc = _ec2(run).create_vpc(CidrBlock=res.props["cidr"], TagSpecifications=run.ec2_tag_specs("vpc", res))[
                "Vpc"
            ]
        run.wait_with("ec2", "vpc_available", f"VPC {vpc['VpcId']} to be available", VpcIds=[vpc["VpcId"]])
        delete_twins(
            run,
            res,
            vpc["VpcId"],
            paginate(run, "describe_vpcs", "Vpcs", Filters=run.component_filter(res)),
            "VpcId",
            lambda twin: self.delete(run, observed(res, self.kind, twin)),
        )
        found = observed(res, self.kind, vpc["VpcId"], cidr=vpc["CidrBlock"])
        return self.update(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        # One attribute per call (an API rule); support must be on before hostnames can be.
        for attribute in ("EnableDnsSupport", "EnableDnsHostnames"):
            if not found.attrs.get(attribute[0].lower() + attribute[1:]):
                with aws_errors(f"turning on {attribute} for {found.id}"):
                    _ec2(run).modify_vpc_attribute(VpcId=found.id, **{attribute: {"Value": True}})
        return observed(
            res, self.kind, found.id, cidr=found.attrs["cidr"], enableDnsSupport=True, enableDnsHostnames=True
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        ignore_missing(f"deleting VPC {found.id}", _ec2(run).delete_vpc, NOT_FOUND, VpcId=found.id)

    def describe(self, found: Observed) -> str:
        return f"{found.id} ({found.attrs.get('cidr', '')})"


class SubnetHandler(Handler):
    kind = "subnet"
    label = "subnet"
    arn_types = ("ec2:subnet",)

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
        changes = []
        if found.attrs["cidr"] != res.props["cidr"]:
            changes.append(Change(f"CIDR is {found.attrs['cidr']}, config wants {res.props['cidr']}", in_place=False))
        if found.attrs["zone"] != res.props["zone"]:
            changes.append(Change(f"zone is {found.attrs['zone']}, config wants {res.props['zone']}", in_place=False))
        changes.extend(vpc_changes(res.props["vpc"], found, deps))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        vpc_id = deps[res.props["vpc"]].id
        try:
            with aws_errors(f"creating subnet {res.name}"):
                subnet = _ec2(run).create_subnet(
                    VpcId=vpc_id,
                    CidrBlock=res.props["cidr"],
                    AvailabilityZone=res.props["zone"],
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
                        {"Name": "cidr-block", "Values": [res.props["cidr"]]},
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
        vpc_id = dep_id(deps, res.props["vpc"])
        if vpc_id not in found.attrs["vpcs"]:
            return [Change(f"not attached to {vpc_id or 'the stack VPC'}")]
        return []

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
        return self.update(run, res, observed(res, self.kind, gateway["InternetGatewayId"], vpcs=()), deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        vpc_id = deps[res.props["vpc"]].id
        for other in found.attrs["vpcs"]:
            if other != vpc_id:
                ignore_missing(
                    f"detaching {found.id} from {other}",
                    _ec2(run).detach_internet_gateway,
                    NOT_FOUND,
                    InternetGatewayId=found.id,
                    VpcId=other,
                )
        if vpc_id not in found.attrs["vpcs"]:
            repeat_safe(
                f"attaching {found.id} to {vpc_id}",
                _ec2(run).attach_internet_gateway,
                ("Resource.AlreadyAssociated",),
                lambda: vpc_id in self._attached_vpcs(run, found.id),
                InternetGatewayId=found.id,
                VpcId=vpc_id,
            )
        return observed(res, self.kind, found.id, vpcs=(vpc_id,))

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


class NatGatewayHandler(Handler):
    kind = "nat_gateway"
    label = "NAT gateway"
    arn_types = ("ec2:natgateway",)

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
        changes = []
        subnet_id = dep_id(deps, res.props["subnet"])
        if subnet_id and found.attrs["subnet"] != subnet_id:
            changes.append(Change(f"it is in subnet {found.attrs['subnet']}, not {subnet_id}", in_place=False))
        if found.attrs["state"] == "pending":
            changes.append(Change("still pending: wait until available"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        subnet_id = deps[res.props["subnet"]].id
        allocation_id = deps[res.props["eip"]].id
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
        return self.update(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        run.wait_with(
            "ec2",
            "nat_gateway_available",
            f"NAT gateway {found.id} to be available",
            timeout=run.waits.nat_gateway,
            NatGatewayIds=[found.id],
        )
        return observed(
            res,
            self.kind,
            found.id,
            subnet=found.attrs["subnet"],
            state="available",
            allocations=found.attrs["allocations"],
        )

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


class RouteTableHandler(Handler):
    kind = "route_table"
    label = "route table"
    arn_types = ("ec2:route-table",)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        tables = paginate(run, "describe_route_tables", "RouteTables", Filters=run.stack_filter())
        result = {}
        for component, table in by_component(run, tables, "RouteTableId").items():
            routes = {
                r["DestinationCidrBlock"]: r.get("GatewayId") or r.get("NatGatewayId") or ""
                for r in table.get("Routes", [])
                if r.get("DestinationCidrBlock") and r.get("Origin") == "CreateRoute"
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

    def _wanted(
        self, res: Resource, deps: Mapping[str, Observed | None]
    ) -> tuple[dict[str, str | None], dict[str, str | None]]:
        routes = {dest: dep_id(deps, target) for dest, target in res.props["routes"].items()}
        subnets = {key: dep_id(deps, key) for key in res.props["subnets"]}
        return routes, subnets

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = vpc_changes(res.props["vpc"], found, deps)
        routes, subnets = self._wanted(res, deps)
        for dest, target_id in routes.items():
            have = found.attrs["routes"].get(dest)
            if target_id is None or have != target_id:
                target = target_id or f"{res.props['routes'][dest]} (to be created)"
                changes.append(Change(f"route {dest} -> {target} (now {have or 'missing'})"))
        changes.extend(association_changes(subnets, deps, found.attrs["associations"]))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        vpc_id = deps[res.props["vpc"]].id

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
        return self.update(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        ec2 = _ec2(run)
        routes, subnets = self._wanted(res, deps)
        have_routes = dict(found.attrs["routes"])
        for dest, target_id in routes.items():
            assert target_id is not None  # the executor runs this only after every dependency exists
            if have_routes.get(dest) == target_id:
                continue
            target = {"NatGatewayId": target_id} if target_id.startswith("nat-") else {"GatewayId": target_id}
            repeat_safe(
                f"routing {dest} via {target_id} in {found.id}",
                ec2.replace_route if dest in have_routes else ec2.create_route,
                ("RouteAlreadyExists",),
                functools.partial(self._routes_to, run, found.id, dest, target_id),
                RouteTableId=found.id,
                DestinationCidrBlock=dest,
                **target,
            )
            have_routes[dest] = target_id
        associations = dict(found.attrs["associations"])
        for subnet_id in subnets.values():
            assert subnet_id is not None
            if subnet_id in associations:
                continue
            associations[subnet_id] = self._associate(run, found.id, subnet_id)
        return observed(res, self.kind, found.id, vpc=found.attrs["vpc"], routes=have_routes, associations=associations)

    def _associate(self, run: AwsRun, table_id: str, subnet_id: str) -> str:
        """Move the subnet onto this table (from the VPC's main table, or another); the association id."""
        ec2 = _ec2(run)
        try:
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
            if moved is None or not caused_by(exc, "Resource.AlreadyAssociated", "InvalidAssociationID.NotFound"):
                raise
            return moved

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
