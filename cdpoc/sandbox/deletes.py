"""Deletes AWS refuses while something still depends on the resource, refused the same way in the sandbox.

moto 5.2.5 enforces little of AWS's delete order (MOTO-NOTES "Deletion order"), so a `down` in the wrong
order passed every test and failed on a real account. Each refusal below is documented by AWS (EC2 and
Auto Scaling API references) and raised with AWS's error code; a refused delete changes nothing.

- DeleteVpc: DependencyViolation while security groups other than the default, an attached internet
  gateway, VPC endpoints not deleted, subnets or route tables other than the main one remain
  (moto 5.2.5 refuses only the last two).
- DeleteSubnet: DependencyViolation while instances (not terminated), network interfaces, NAT gateways
  not `deleted` or load balancers are in it (moto 5.2.5 deletes it).
- DetachInternetGateway: DependencyViolation while the VPC has mapped public addresses: associated
  Elastic IPs, interfaces with a public IPv4 address, internet-facing load balancers (moto: detaches).
- ReleaseAddress: InvalidIPAddress.InUse while associated (moto 5.2.5 disassociates and releases).
- DeleteSecurityGroup: DependencyViolation while on an interface, an instance (not terminated) or a load
  balancer, or referenced by another group's rule (moto 5.2.5 deletes it).
- DeleteAutoScalingGroup: ResourceInUse while it has instances and ForceDelete is not set (moto 5.2.5
  terminates them and deletes the group, as if forced).

And DeleteNatGateway, which moto 5.2.5 finishes at once (state `deleted`, its Elastic IP still associated
and its network interface kept forever), now leaves the gateway `deleting` for the timing profile's
`nat_gateway_delete` (SIMULATION's clock), holding its address and interface; then it is `deleted`, the
address disassociated (not released: "Deleting a public NAT gateway disassociates its Elastic IP address,
but does not release the address from your account") and the interface gone. An unknown id is
NatGatewayNotFound (moto: a 500).

DescribeNatGateways honours `tag:<key>` and `tag-key` filters (moto 5.2.5 ignores them and returns every
gateway): values of one filter are ORed, filters ANDed, `*` and `?` are wildcards in values. The other
Describe* calls cdpoc makes with tag filters (VPCs, subnets, internet gateways, addresses, route tables,
VPC endpoints, network ACLs, security groups, instances, launch templates, snapshots, Auto Scaling
groups, SSM parameters) are honoured by moto 5.2.5 itself (measured; tests/test_sandbox_deletes.py).

Not modelled (AWS behaviour the sandbox still lacks): DeleteLaunchTemplate in use by a group (AWS
documents no refusal: it deletes the template and the group fails to launch later), ScalingActivityInProgress
(sandbox groups have no activity in progress), a force-deleted group lingering "Delete in progress" while
its instances terminate, a deleted load balancer's network interfaces lingering for minutes, network ACLs
other than the default blocking DeleteVpc, egress-only gateways, peering, transit and VPN attachments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from cdpoc.sandbox.simulation import SIMULATION

# How long a NAT gateway stays `deleting` in the sandbox (on AWS typically about a minute).

_DELETING_SINCE_ATTR = "cdpoc_deleting_since"  # on a moto NatGateway: when DeleteNatGateway was called
GONE_NAT_STATES = ("deleted", "failed")
TERMINATED_INSTANCE_STATES = ("terminated",)


# --- what holds what, read from moto's models -----------------------------------------------------------


def _terminated(instance: Any) -> bool:
    return instance is not None and instance._state.name in TERMINATED_INSTANCE_STATES


def _live_instances(backend: Any) -> list[Any]:
    return [i for i in backend.all_instances() if not _terminated(i)]


def _live_interfaces(backend: Any) -> list[Any]:
    """Network interfaces that exist, except those of terminated instances (AWS has deleted or detached them)."""
    return [eni for eni in list(backend.enis.values()) if not _terminated(eni.instance)]


def _nat_gateways(backend: Any) -> list[Any]:
    """NAT gateways that still exist (pending, available or deleting)."""
    return [g for g in backend.nat_gateways.values() if g.state not in GONE_NAT_STATES]


def _load_balancers(backend: Any) -> list[Any]:
    from moto.elbv2.models import elbv2_backends

    elbv2 = elbv2_backends[backend.account_id][backend.region_name]
    return list(elbv2.load_balancers.values())


def _subnet_ids_of(load_balancer: Any) -> set[str]:
    return {getattr(s, "id", s) for s in load_balancer.subnets}


def _vpc_of_subnet(backend: Any, subnet: Any) -> str:
    return str(subnet.vpc_id) if subnet is not None else ""


def _security_groups(backend: Any) -> list[Any]:
    return [g for groups in backend.groups.values() for g in groups.values()]


def _groups_referencing(backend: Any, group_id: str) -> list[str]:
    """Ids of the other groups with a rule whose source or destination is group_id."""
    referencing = []
    for group in _security_groups(backend):
        if group.id == group_id:
            continue  # a group referring to itself does not keep itself alive
        for rule in [*group.ingress_rules, *group.egress_rules]:
            if (rule.source_group or {}).get("GroupId") == group_id:
                referencing.append(group.id)
                break
    return referencing


def _group_ids(groups: Iterable[Any]) -> set[str]:
    return {getattr(g, "id", g) for g in groups}


def _mapped_public_addresses(backend: Any, vpc_id: str) -> list[str]:
    """Public IPv4 addresses mapped in the VPC: associated Elastic IPs, interfaces (instances, NAT gateways)
    with a public address, internet-facing load balancers."""
    mapped = []
    for eni in _live_interfaces(backend):
        if eni.public_ip and _vpc_of_subnet(backend, eni.subnet) == vpc_id:
            mapped.append(f"{eni.public_ip} ({eni.id})")
    for address in backend.addresses:
        holder = address.eni or (address.instance.nics[0] if address.instance else None)
        if holder is not None and not _terminated(holder.instance) and _vpc_of_subnet(backend, holder.subnet) == vpc_id:
            mapped.append(f"{address.public_ip} ({address.allocation_id})")
    for lb in _load_balancers(backend):
        if lb.vpc_id == vpc_id and lb.scheme == "internet-facing":
            mapped.append(f"load balancer {lb.name}")
    return sorted(set(mapped))


def _dependency_violation(message: str) -> Exception:
    from moto.ec2.exceptions import DependencyViolationError

    return DependencyViolationError(message)


# --- NAT gateways: deleting, then deleted -----------------------------------------------------------------


def nat_deleting_seconds() -> float:
    """How long a NAT gateway stays `deleting` under the current timing profile."""
    return SIMULATION.seconds("nat_gateway_delete")


def _finish_nat_deletions(backend: Any, now: float) -> None:
    """Gateways whose deletion has taken its time become `deleted` and let go of their address and interface."""
    for gateway in list(backend.nat_gateways.values()):
        since = gateway.__dict__.get(_DELETING_SINCE_ATTR)
        if gateway.state != "deleting" or since is None or now < since + nat_deleting_seconds():
            continue
        for address in list(backend.addresses):
            if address.eni is not None and address.eni is gateway._eni and address.association_id:
                backend.disassociate_address(association_id=address.association_id)
        if gateway._eni.id in backend.enis:
            gateway._eni.delete()
        gateway.state = "deleted"


def settle_deletions() -> None:
    """Before every EC2 request, deletions whose time has come complete (nothing runs in the background)."""
    from moto.ec2.responses import EC2Response

    original = EC2Response.call_action
    if getattr(original, "cdpoc_settles", False):
        return

    def call_action(self: Any) -> Any:
        with SIMULATION.lock:
            _finish_nat_deletions(self.ec2_backend, SIMULATION.now())
        return original(self)

    call_action.cdpoc_settles = True  # type: ignore[attr-defined]
    EC2Response.call_action = call_action  # type: ignore[method-assign]


def delete_nat_gateway(self: Any, original: Any) -> Any:
    """AWS: the gateway is `deleting` (holding its Elastic IP and interface) before it is `deleted`; deleting it
    again changes nothing. moto 5.2.5: `deleted` at once, the address never disassociated; unknown id -> 500."""
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError

    gateway_id = self._get_param("NatGatewayId")
    gateway = self.ec2_backend.nat_gateways.get(gateway_id)
    if gateway is None:
        raise EC2ClientError("NatGatewayNotFound", f"The Nat Gateway {gateway_id} was not found")
    if gateway.state not in ("deleting", *GONE_NAT_STATES):
        gateway.state = "deleting"
        gateway.__dict__[_DELETING_SINCE_ATTR] = SIMULATION.now()
    return ActionResult({"NatGatewayId": gateway.id})


def _wildcard(value: str) -> re.Pattern[str]:
    """An EC2 filter value: * any run of characters, ? one character, a backslash escapes the next one."""
    pattern = []
    escaped = False
    for char in value:
        if escaped:
            pattern.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            pattern.append(".*")
        elif char == "?":
            pattern.append(".")
        else:
            pattern.append(re.escape(char))
    return re.compile("".join(pattern) + r"\Z", re.DOTALL)


def matches_tag_filters(tags: Mapping[str, str], filters: Mapping[str, Iterable[str]]) -> bool:
    """AWS Filter semantics for `tag:<key>` and `tag-key`: any value of a filter, every filter."""
    for name, values in filters.items():
        patterns = [_wildcard(v) for v in values]
        if name == "tag-key":
            candidates: list[str] = list(tags)
        elif name.startswith("tag:"):
            key = name[len("tag:") :]
            candidates = [tags[key]] if key in tags else []
        else:
            continue
        if not any(p.match(c) for p in patterns for c in candidates):
            return False
    return True


def _tags_of(resource: Any) -> dict[str, str]:
    return {t["key"]: t["value"] for t in resource.get_tags()}


def describe_nat_gateways(self: Any, original: Any) -> Any:
    """AWS applies tag filters; moto 5.2.5 ignores them (returns every gateway in the account)."""
    from moto.core.responses import ActionResult

    filters = self._filters_from_querystring() or {}
    gateways = self.ec2_backend.describe_nat_gateways(filters, self._get_param("NatGatewayIds", []))
    tag_filters = {name: values for name, values in filters.items() if name == "tag-key" or name.startswith("tag:")}
    found = [g for g in gateways if matches_tag_filters(_tags_of(g), tag_filters)]
    return ActionResult({"NatGateways": found})


# --- VPC, subnet, internet gateway, address, security group ---------------------------------------------


def delete_vpc(self: Any, original: Any) -> Any:
    """AWS: "You must detach or delete all gateways and resources that are associated with the VPC before you
    can delete it" (security groups except the default, route tables except the main one, ...). moto 5.2.5
    refuses subnets and extra route tables only: a VPC with security groups, an attached internet gateway or
    VPC endpoints was deleted."""
    backend = self.ec2_backend
    vpc_id = self._get_param("VpcId")
    if vpc_id in backend.vpcs:
        held = [
            *(g.id for g in backend.groups.get(vpc_id, {}).values() if g.name != "default"),
            *(igw.id for igw in backend.internet_gateways.values() if igw.vpc is not None and igw.vpc.id == vpc_id),
            *(e.id for e in backend.vpc_end_points.values() if e.vpc_id == vpc_id and e.state != "deleted"),
            *(s.id for s in backend.describe_subnets(filters={"vpc-id": [vpc_id]})),
        ]
        if held:
            raise _dependency_violation(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
    return original(self)


def delete_subnet(self: Any, original: Any) -> Any:
    """AWS: "You must terminate all running instances in the subnet before you can delete the subnet"; network
    interfaces (a NAT gateway's until it is `deleted`, a load balancer's) hold it too. moto 5.2.5 deletes it."""
    backend = self.ec2_backend
    subnet_id = self._get_param("SubnetId")
    held = [
        *(i.id for i in _live_instances(backend) if i.subnet_id == subnet_id),
        *(eni.id for eni in _live_interfaces(backend) if eni.subnet is not None and eni.subnet.id == subnet_id),
        *(g.id for g in _nat_gateways(backend) if g.subnet_id == subnet_id),
        *(lb.name for lb in _load_balancers(backend) if subnet_id in _subnet_ids_of(lb)),
    ]
    if held:
        raise _dependency_violation(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
    return original(self)


def detach_internet_gateway(self: Any, original: Any) -> Any:
    """AWS: "The VPC must not contain any running instances with Elastic IP addresses or public IPv4
    addresses"; an internet-facing load balancer's addresses count too. moto 5.2.5 detaches."""
    backend = self.ec2_backend
    gateway_id, vpc_id = self._get_param("InternetGatewayId"), self._get_param("VpcId")
    gateway = backend.internet_gateways.get(gateway_id)
    attached_here = gateway is not None and gateway.vpc is not None and gateway.vpc.id == vpc_id
    if attached_here and _mapped_public_addresses(backend, vpc_id):
        raise _dependency_violation(
            f"Network {vpc_id} has some mapped public address(es). "
            "Please unmap those public address(es) before detaching the gateway."
        )
    return original(self)


def release_address(self: Any, original: Any) -> Any:
    """AWS (nondefault VPC): "You must use DisassociateAddress to disassociate the Elastic IP address before you
    can release it. Otherwise, Amazon EC2 returns an error (InvalidIPAddress.InUse)." A NAT gateway's address
    stays associated until the gateway is `deleted`. moto 5.2.5 disassociates and releases."""
    from moto.ec2.exceptions import EC2ClientError

    backend = self.ec2_backend
    allocation_id, public_ip = self._get_param("AllocationId"), self._get_param("PublicIp")
    for address in backend.addresses:
        named = (allocation_id and address.allocation_id == allocation_id) or (
            public_ip and address.public_ip == public_ip
        )
        if named and address.association_id:
            raise EC2ClientError(
                "InvalidIPAddress.InUse", f"Address {address.allocation_id or address.public_ip} is in use."
            )
    return original(self)


def delete_security_group(self: Any, original: Any) -> Any:
    """AWS: "If you attempt to delete a security group that is associated with an instance or network interface,
    is referenced by another security group in the same VPC, or has a VPC association, the operation fails with
    DependencyViolation." A load balancer's interfaces carry its groups. moto 5.2.5 deletes it."""
    backend = self.ec2_backend
    group_id = self._get_param("GroupId")
    if group_id is None:
        found = backend.get_security_group_by_name_or_id(self._get_param("GroupName"))
        group_id = found.id if found is not None else None
    if group_id is not None:
        held = [
            *_groups_referencing(backend, group_id),
            *(eni.id for eni in _live_interfaces(backend) if group_id in _group_ids(eni.group_set)),
            *(i.id for i in _live_instances(backend) if group_id in _group_ids(i.security_groups)),
            *(lb.name for lb in _load_balancers(backend) if group_id in _group_ids(lb.security_groups)),
        ]
        if held:
            raise _dependency_violation(f"resource {group_id} has a dependent object")
    return original(self)


# --- Auto Scaling ---------------------------------------------------------------------------------------


def delete_auto_scaling_group(self: Any, original: Any) -> Any:
    """AWS: "If the group has instances or scaling activities in progress, you must specify the option to force
    the deletion in order for it to succeed" (ResourceInUse). moto 5.2.5 always deletes, as if forced."""
    from moto.autoscaling.exceptions import AutoscalingClientError

    class ResourceInUse(AutoscalingClientError):
        code = "ResourceInUse"

    group = self.autoscaling_backend.autoscaling_groups.get(self._get_param("AutoScalingGroupName"))
    forced = str(self._get_param("ForceDelete", False)).lower() == "true"
    if group is not None and not forced and group.instance_states:
        raise ResourceInUse(
            "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance "
            "request(s) still in the group."
        )
    return original(self)


# --- installing --------------------------------------------------------------------------------------------

EC2_OPERATIONS = {
    "VPCs": (delete_vpc,),
    "Subnets": (delete_subnet,),
    "InternetGateways": (detach_internet_gateway,),
    "ElasticIPAddresses": (release_address,),
    "SecurityGroups": (delete_security_group,),
    "NatGateways": (delete_nat_gateway, describe_nat_gateways),
}


def install() -> None:
    import moto.ec2.responses as ec2_responses
    from moto.autoscaling.responses import AutoScalingResponse

    from cdpoc.sandbox.patching import replace_operations

    for class_name, operations in EC2_OPERATIONS.items():
        replace_operations(getattr(ec2_responses, class_name), *operations)
    replace_operations(AutoScalingResponse, delete_auto_scaling_group)
    settle_deletions()
