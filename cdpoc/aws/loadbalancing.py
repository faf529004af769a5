"""Application Load Balancer, target group and listener (ELBv2 API).

ELBv2 cannot filter by tag, so a scan lists the region's load balancers (or target groups) and asks
for their tags in batches of 20, the most DescribeTags takes. A create with exactly the settings of
an existing resource of the same name returns that resource instead of failing, so every create
checks the stack tag of what it got back and refuses what is not ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from cdpoc.aws.errors import aws_errors, caused_by, ignore_missing
from cdpoc.aws.handler import Handler, observed, vpc_changes
from cdpoc.aws.ownership import NOT_MANAGED, by_component, refuse_not_ours, with_owner
from cdpoc.aws.run import AwsRun, paginate, tag_list, tag_map
from cdpoc.errors import AwsError
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import Ref, Spec, entry_field, entry_of, field_change, field_changes, shown, spec_of
from cdpoc.stack.specs.loadbalancing import ListenerAction, ListenerSpec, LoadBalancerSpec, TargetGroupSpec

NOT_FOUND = ("LoadBalancerNotFound", "TargetGroupNotFound", "ListenerNotFound")
TAGS_PER_CALL = 20

# Target group health check settings: (the HealthCheck field, the API's parameter and describe field).
# The matcher is the one that is not a plain value (Matcher={"HttpCode": ...}).
HEALTH_CHECK_FIELDS = (
    ("path", "HealthCheckPath"),
    ("interval", "HealthCheckIntervalSeconds"),
    ("timeout", "HealthCheckTimeoutSeconds"),
    ("healthy_threshold", "HealthyThresholdCount"),
    ("unhealthy_threshold", "UnhealthyThresholdCount"),
    ("protocol", "HealthCheckProtocol"),
)
HEALTH_CHECK = "health_check"
ATTRIBUTES = "attributes"


def _elbv2(run: AwsRun) -> Any:
    return run.client("elbv2")


def _listing(run: AwsRun, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
    return paginate(run, operation, key, service="elbv2", what=f"listing {key}", **params)


def _tags_by_arn(run: AwsRun, arns: list[str]) -> dict[str, dict[str, str]]:
    tags: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), TAGS_PER_CALL):
        with aws_errors("reading load balancing tags"):
            reply = _elbv2(run).describe_tags(ResourceArns=arns[start : start + TAGS_PER_CALL])
        tags.update({d["ResourceArn"]: tag_map(d.get("Tags")) for d in reply["TagDescriptions"]})
    return tags


def _ours_by_component(run: AwsRun, items: Iterable[dict[str, Any]], arn_field: str) -> dict[str, dict[str, Any]]:
    """The items tagged with the run's stack, keyed by their component tag, each with its Tags added."""
    items = list(items)
    tags = _tags_by_arn(run, [item[arn_field] for item in items])
    tagged = [{**item, "Tags": tag_list(tags.get(item[arn_field], {}))} for item in items]
    return by_component(run, tagged, arn_field)


def refuse_unless_ours(run: AwsRun, res: Resource, what: str, arn: str) -> None:
    """A same-named resource that is not tagged with this stack is someone else's: never take it over."""
    tags = _tags_by_arn(run, [arn]).get(arn, {})
    refuse_not_ours(run, res, what, tags, component=False, untagged=NOT_MANAGED)


def _arn_tail(arn: str, marker: str) -> str:
    """'arn:...:loadbalancer/app/name/id' with marker 'loadbalancer/' -> 'app/name/id'."""
    return arn.split(f":{marker}", 1)[1] if f":{marker}" in arn else ""


def _attribute_map(attributes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """ELBv2's [{"Key": k, "Value": v}] as {k: v}."""
    return {str(a["Key"]): str(a.get("Value", "")) for a in attributes}


def _attribute_changes(spec_type: type[Spec], have: Mapping[str, str], want: Mapping[str, str]) -> list[Change]:
    """One change per declared attribute whose value differs. ELBv2 has no call to remove an attribute
    (every key always has a value, AWS's default until set): the keys the spec does not declare are not
    cdpoc's, whatever their value."""
    return [
        field_change(spec_type, entry_field(ATTRIBUTES, key), have.get(key), value)
        for key, value in want.items()
        if have.get(key) != value
    ]


def _attributes_to_set(changes: Sequence[Change]) -> dict[str, str]:
    return {key: str(c.new) for c in changes if (key := entry_of(c, ATTRIBUTES)) is not None}


def _member_changes(
    spec_type: type[Spec],
    name: str,
    have: Sequence[str],
    want: Sequence[Ref],
    deps: Mapping[str, Observed | None],
) -> list[Change]:
    """A set of references diffed both ways: each wanted member that is not there (`name[its key]`,
    old None, new its Ref), then each member there that the spec no longer wants (`name[its id]`, old
    its id, new None)."""
    changes: list[Change] = []
    wanted: set[str] = set()
    for ref in want:
        value = ref.value(deps)
        if value is not None:
            wanted.add(value)
        if value is None or value not in have:
            field = entry_field(name, ref.key)
            changes.append(
                field_change(spec_type, field, None, ref, text=f"{field}: {shown(None)} → {ref.shown(deps)}")
            )
    changes.extend(
        field_change(spec_type, entry_field(name, value), value, None) for value in have if value not in wanted
    )
    return changes


def _members_after(
    name: str, have: Sequence[str], changes: Sequence[Change], deps: Mapping[str, Observed]
) -> list[str]:
    """The members `changes` leave: those there, less the ones removed, plus the ones added."""
    removed = {str(c.old) for c in changes if entry_of(c, name) is not None and c.old is not None}
    added = [c.new.need(deps) for c in changes if entry_of(c, name) is not None and isinstance(c.new, Ref)]
    return [*(member for member in have if member not in removed), *(a for a in added if a not in have)]


def _touches(changes: Sequence[Change], name: str) -> bool:
    return any(c.field == name or entry_of(c, name) is not None for c in changes)


# --- target group ---------------------------------------------------------------------------------


def _health_check(item: Mapping[str, Any]) -> dict[str, Any]:
    check = {name: item.get(api) for name, api in HEALTH_CHECK_FIELDS}
    check["matcher"] = item.get("Matcher", {}).get("HttpCode", "")
    return check


def _health_check_params(settings: Mapping[str, Any]) -> dict[str, Any]:
    """ModifyTargetGroup's (and CreateTargetGroup's) parameters for these HealthCheck fields."""
    api = dict(HEALTH_CHECK_FIELDS)
    params: dict[str, Any] = {api[name]: value for name, value in settings.items() if name != "matcher"}
    if "matcher" in settings:
        params["Matcher"] = {"HttpCode": settings["matcher"]}
    return params


class TargetGroupHandler(Handler):
    kind = "target_group"
    label = "target group"
    arn_types = ("elasticloadbalancing:targetgroup",)
    spec_type = TargetGroupSpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        groups = _ours_by_component(run, _listing(run, "describe_target_groups", "TargetGroups"), "TargetGroupArn")
        return {
            component: with_owner(self._observe(run, component, group), group) for component, group in groups.items()
        }

    def _observe(self, run: AwsRun, key: str, group: Mapping[str, Any]) -> Observed:
        arn = group["TargetGroupArn"]
        with aws_errors(f"reading the attributes of target group {group['TargetGroupName']}"):
            attributes = _elbv2(run).describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        return observed(
            key,
            self.kind,
            arn,
            name=group["TargetGroupName"],
            protocol=group.get("Protocol", ""),
            port=group.get("Port"),
            vpc=group.get("VpcId", ""),
            target_type=group.get("TargetType", ""),
            health_check=_health_check(group),
            attributes=_attribute_map(attributes),
            load_balancers=tuple(group.get("LoadBalancerArns", ())),
        )

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec, attrs = spec_of(res, TargetGroupSpec), found.attrs
        changes = field_changes(
            spec, attrs, {"protocol": spec.protocol, "port": spec.port, "target_type": spec.target_type}
        )
        changes.extend(vpc_changes(spec.vpc, found, deps))
        have = attrs[HEALTH_CHECK]
        changes.extend(
            field_change(spec, f"{HEALTH_CHECK}.{setting}", have.get(setting), value)
            for setting, value in asdict(spec.health_check).items()
            if have.get(setting) != value
        )
        changes.extend(_attribute_changes(TargetGroupSpec, attrs[ATTRIBUTES], spec.attributes))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, TargetGroupSpec)
        try:
            with aws_errors(f"creating target group {res.name}"):
                group = _elbv2(run).create_target_group(
                    Name=res.name,
                    Protocol=spec.protocol,
                    Port=spec.port,
                    VpcId=spec.vpc.need(deps),
                    TargetType=spec.target_type,
                    HealthCheckEnabled=True,
                    **_health_check_params(asdict(spec.health_check)),
                    Tags=run.tags(res.key, res.name),
                )["TargetGroups"][0]
        except AwsError as exc:
            # Same name, other settings. (Same settings: AWS returns the existing group instead.)
            if not caused_by(exc, "DuplicateTargetGroupName"):
                raise
            group = self._by_name(run, res.name)
        refuse_unless_ours(run, res, "target group", group["TargetGroupArn"])
        return self.adopt(run, res, self._observe(run, res.key, group), deps, "target group")

    def _by_name(self, run: AwsRun, name: str) -> dict[str, Any]:
        with aws_errors(f"looking up target group {name}"):
            return dict(_elbv2(run).describe_target_groups(Names=[name])["TargetGroups"][0])

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        prefix = f"{HEALTH_CHECK}."
        check = {c.field[len(prefix) :]: c.new for c in changes if c.field.startswith(prefix)}
        if check:
            # Only the settings that differ: ModifyTargetGroup leaves the others as they are.
            with aws_errors(f"changing the health check of target group {res.name}"):
                _elbv2(run).modify_target_group(TargetGroupArn=found.id, **_health_check_params(check))
        attributes = _attributes_to_set(changes)
        if attributes:
            with aws_errors(f"setting the attributes of target group {res.name}"):
                _elbv2(run).modify_target_group_attributes(
                    TargetGroupArn=found.id, Attributes=[{"Key": k, "Value": v} for k, v in attributes.items()]
                )
        return observed(
            res,
            self.kind,
            found.id,
            **{
                **found.attrs,
                HEALTH_CHECK: {**found.attrs[HEALTH_CHECK], **check},
                ATTRIBUTES: {**found.attrs[ATTRIBUTES], **attributes},
            },
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        # In use by a listener: ResourceInUse, which the sweeper retries until the listener is gone.
        ignore_missing(
            f"deleting target group {found.attrs.get('name', found.id)}",
            _elbv2(run).delete_target_group,
            NOT_FOUND,
            TargetGroupArn=found.id,
        )

    def describe(self, found: Observed) -> str:
        return f"{found.attrs.get('name', found.id)} ({found.attrs.get('protocol', '')}:{found.attrs.get('port', '')})"


# --- load balancer --------------------------------------------------------------------------------


class LoadBalancerHandler(Handler):
    kind = "load_balancer"
    label = "load balancer"
    arn_types = ("elasticloadbalancing:loadbalancer",)
    spec_type = LoadBalancerSpec

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        balancers = _ours_by_component(
            run, _listing(run, "describe_load_balancers", "LoadBalancers"), "LoadBalancerArn"
        )
        return {
            component: with_owner(self._observe(component, lb, self._attributes(run, lb["LoadBalancerArn"])), lb)
            for component, lb in balancers.items()
        }

    @staticmethod
    def _attributes(run: AwsRun, arn: str) -> dict[str, str]:
        with aws_errors(f"reading the attributes of load balancer {arn}"):
            return _attribute_map(_elbv2(run).describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"])

    def _observe(self, key: str, lb: Mapping[str, Any], attributes: Mapping[str, str]) -> Observed:
        return observed(
            key,
            self.kind,
            lb["LoadBalancerArn"],
            name=lb["LoadBalancerName"],
            dns_name=lb.get("DNSName", ""),
            zone_id=lb.get("CanonicalHostedZoneId", ""),
            scheme=lb.get("Scheme", ""),
            type=lb.get("Type", ""),
            ip_address_type=lb.get("IpAddressType", ""),
            vpc=lb.get("VpcId", ""),
            state=lb.get("State", {}).get("Code", ""),
            subnets=tuple(sorted(z["SubnetId"] for z in lb.get("AvailabilityZones", []))),
            security_groups=tuple(sorted(lb.get("SecurityGroups", []))),
            attributes=dict(attributes),
        )

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec, attrs = spec_of(res, LoadBalancerSpec), found.attrs
        changes = field_changes(
            spec, attrs, {"scheme": spec.scheme, "type": spec.type, "ip_address_type": spec.ip_address_type}
        )
        changes.extend(_member_changes(LoadBalancerSpec, "subnets", attrs["subnets"], spec.subnets, deps))
        changes.extend(
            _member_changes(LoadBalancerSpec, "security_groups", attrs["security_groups"], spec.security_groups, deps)
        )
        changes.extend(_attribute_changes(LoadBalancerSpec, attrs[ATTRIBUTES], spec.attributes))
        if attrs["state"] != "active":
            # Not a field: update waits for it, as it does after any change.
            changes.append(Change(f"state is {attrs['state']}: wait until active"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, LoadBalancerSpec)
        try:
            with aws_errors(f"creating load balancer {res.name}"):
                lb = _elbv2(run).create_load_balancer(
                    Name=res.name,
                    Subnets=[ref.need(deps) for ref in spec.subnets],
                    SecurityGroups=[ref.need(deps) for ref in spec.security_groups],
                    Scheme=spec.scheme,
                    Type=spec.type,
                    IpAddressType=spec.ip_address_type,
                    Tags=run.tags(res.key, res.name),
                )["LoadBalancers"][0]
        except AwsError as exc:
            # Same name, other settings. (Same settings: AWS returns the existing load balancer instead.)
            if not caused_by(exc, "DuplicateLoadBalancerName"):
                raise
            with aws_errors(f"looking up load balancer {res.name}"):
                lb = _elbv2(run).describe_load_balancers(Names=[res.name])["LoadBalancers"][0]
        refuse_unless_ours(run, res, "load balancer", lb["LoadBalancerArn"])
        found = self._observe(res.key, lb, self._attributes(run, lb["LoadBalancerArn"]))
        return self.adopt(run, res, found, deps, "load balancer")

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        # SetSubnets and SetSecurityGroups replace the whole set: what is there, less what the plan
        # removes, plus what it adds.
        if _touches(changes, "subnets"):
            subnets = _members_after("subnets", found.attrs["subnets"], changes, deps)
            with aws_errors(f"setting the subnets of load balancer {res.name}"):
                _elbv2(run).set_subnets(LoadBalancerArn=found.id, Subnets=subnets)
        if _touches(changes, "security_groups"):
            groups = _members_after("security_groups", found.attrs["security_groups"], changes, deps)
            with aws_errors(f"setting the security groups of load balancer {res.name}"):
                _elbv2(run).set_security_groups(LoadBalancerArn=found.id, SecurityGroups=groups)
        for change in changes:
            if change.field == "ip_address_type":
                with aws_errors(f"setting the IP address type of load balancer {res.name}"):
                    _elbv2(run).set_ip_address_type(LoadBalancerArn=found.id, IpAddressType=change.new)
        attributes = _attributes_to_set(changes)
        if attributes:
            with aws_errors(f"setting the attributes of load balancer {res.name}"):
                _elbv2(run).modify_load_balancer_attributes(
                    LoadBalancerArn=found.id, Attributes=[{"Key": k, "Value": v} for k, v in attributes.items()]
                )
        run.wait_with(
            "elbv2",
            "load_balancer_available",
            f"load balancer {res.name} to be active",
            timeout=run.waits.load_balancer,
            LoadBalancerArns=[found.id],
        )
        with aws_errors(f"reading load balancer {res.name}"):
            lb = _elbv2(run).describe_load_balancers(LoadBalancerArns=[found.id])["LoadBalancers"][0]
        return self._observe(res.key, lb, {**found.attrs[ATTRIBUTES], **attributes})

    def delete(self, run: AwsRun, found: Observed) -> None:
        name = found.attrs.get("name", found.id)
        # Deleting a load balancer deletes its listeners too. DeleteLoadBalancer succeeds for one
        # that is already gone.
        ignore_missing(
            f"deleting load balancer {name}", _elbv2(run).delete_load_balancer, NOT_FOUND, LoadBalancerArn=found.id
        )
        run.wait_with(
            "elbv2",
            "load_balancers_deleted",
            f"load balancer {name} to be deleted",
            timeout=run.waits.load_balancer,
            LoadBalancerArns=[found.id],
        )
        # Its network interfaces outlive it for a while; the subnets and security groups cannot be
        # deleted (nor the internet gateway detached) until they are released.
        run.wait_until(
            f"the network interfaces of load balancer {name} to be released",
            lambda: not self._network_interfaces(run, found),
            timeout=run.waits.load_balancer,
        )

    @staticmethod
    def _network_interfaces(run: AwsRun, found: Observed) -> list[str]:
        # ALB interfaces are described "ELB app/<name>/<id>": the ARN's tail after "loadbalancer/".
        filters = [{"Name": "description", "Values": [f"ELB {_arn_tail(found.id, 'loadbalancer/')}"]}]
        if found.attrs.get("vpc"):
            filters.append({"Name": "vpc-id", "Values": [found.attrs["vpc"]]})
        with aws_errors(f"listing the network interfaces of load balancer {found.attrs.get('name', found.id)}"):
            interfaces = run.client("ec2").describe_network_interfaces(Filters=filters)["NetworkInterfaces"]
        return [i["NetworkInterfaceId"] for i in interfaces]

    def describe(self, found: Observed) -> str:
        return f"{found.attrs.get('name', found.id)} ({found.attrs.get('dns_name', '')})"


# --- listener -------------------------------------------------------------------------------------


def _forward_target(action: Mapping[str, Any]) -> str:
    """The target group a forward action sends to; "" for another type or a weighted split over several."""
    if action.get("TargetGroupArn"):
        return str(action["TargetGroupArn"])
    groups = action.get("ForwardConfig", {}).get("TargetGroups", [])
    return str(groups[0]["TargetGroupArn"]) if len(groups) == 1 else ""


def _actions(listener: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A listener's default actions in their order, each as (type, target group ARN or "")."""
    actions = sorted(listener.get("DefaultActions", []), key=lambda a: a.get("Order", 0))
    return tuple((str(a.get("Type", "")), _forward_target(a)) for a in actions)


def _group_name(arn: str) -> str:
    """'arn:...:targetgroup/name/id' -> 'name' (the ARN itself when it is not one)."""
    tail = _arn_tail(arn, "targetgroup/")
    return tail.split("/", 1)[0] if tail else arn


def _actions_shown(actions: Iterable[tuple[str, str]]) -> str:
    return shown(tuple(f"{kind} to {_group_name(target)}" if target else kind for kind, target in actions))


class ListenerHandler(Handler):
    kind = "listener"
    label = "listener"
    arn_types = ("elasticloadbalancing:listener",)
    spec_type = ListenerSpec

    def __init__(self, balancers: LoadBalancerHandler) -> None:
        self.balancers = balancers

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        # Listeners live on load balancers: only the stack's load balancers can hold the stack's listeners.
        ours = run.memo(f"scan:{self.balancers.kind}", lambda: self.balancers.scan(run))
        listeners = [
            listener
            for lb in ours.values()
            for listener in _listing(run, "describe_listeners", "Listeners", LoadBalancerArn=lb.id)
        ]
        return {
            component: with_owner(self._observe(component, listener), listener)
            for component, listener in _ours_by_component(run, listeners, "ListenerArn").items()
        }

    def _observe(self, key: str, listener: Mapping[str, Any]) -> Observed:
        actions = _actions(listener)
        return observed(
            key,
            self.kind,
            listener["ListenerArn"],
            load_balancer=listener["LoadBalancerArn"],
            protocol=listener.get("Protocol", ""),
            port=listener.get("Port"),
            default_actions=actions,
            # The one target group it forwards to, for describe() and readers: "" when it does not.
            target_group=actions[0][1] if len(actions) == 1 and actions[0][0] == "forward" else "",
        )

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec, attrs = spec_of(res, ListenerSpec), found.attrs
        changes = []
        lb_arn = spec.load_balancer.value(deps)
        if lb_arn and attrs["load_balancer"] != lb_arn:
            changes.append(field_change(spec, "load_balancer", attrs["load_balancer"], lb_arn))
        changes.extend(field_changes(spec, attrs, {"protocol": spec.protocol, "port": spec.port}))
        wanted = tuple((a.type, a.target_group.value(deps)) for a in spec.default_actions)
        if wanted != attrs["default_actions"]:
            # The whole list: ModifyListener replaces every default action, so one no longer wanted goes too.
            shown_wanted = tuple((a.type, a.target_group.shown(deps)) for a in spec.default_actions)
            text = f"default_actions: {_actions_shown(attrs['default_actions'])} → {_actions_shown(shown_wanted)}"
            changes.append(
                field_change(spec, "default_actions", attrs["default_actions"], spec.default_actions, text=text)
            )
        return changes

    @staticmethod
    def _default_actions(actions: Iterable[ListenerAction], deps: Mapping[str, Observed]) -> list[dict[str, Any]]:
        return [{"Type": a.type, "TargetGroupArn": a.target_group.need(deps)} for a in actions]

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, ListenerSpec)
        lb_arn = spec.load_balancer.need(deps)
        try:
            with aws_errors(f"creating listener {res.name}"):
                listener = _elbv2(run).create_listener(
                    LoadBalancerArn=lb_arn,
                    Protocol=spec.protocol,
                    Port=spec.port,
                    DefaultActions=self._default_actions(spec.default_actions, deps),
                    Tags=run.tags(res.key, res.name),
                )["Listeners"][0]
        except AwsError as exc:
            # The port is taken by a listener with other settings; ours (tagged) is converged, others refused.
            if not caused_by(exc, "DuplicateListener"):
                raise
            listener = self._on_port(run, lb_arn, spec.port)
        refuse_unless_ours(run, res, "listener", listener["ListenerArn"])
        found = self._observe(res.key, listener)
        return self.converge(run, res, found, deps)

    def _on_port(self, run: AwsRun, lb_arn: str, port: int) -> dict[str, Any]:
        listeners = _listing(run, "describe_listeners", "Listeners", LoadBalancerArn=lb_arn)
        for listener in listeners:
            if listener.get("Port") == port:
                return listener
        raise AwsError(f"load balancer {lb_arn} reports a duplicate listener on port {port} but lists none there")

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        params: dict[str, Any] = {}
        for change in changes:
            if change.field == "protocol":
                params["Protocol"] = change.new
            elif change.field == "port":
                params["Port"] = change.new
            elif change.field == "default_actions":
                params["DefaultActions"] = self._default_actions(change.new, deps)
        if not params:
            return found
        # One call for all of it: ModifyListener leaves what it is not given as it is.
        with aws_errors(f"changing listener {res.name}"):
            listener = _elbv2(run).modify_listener(ListenerArn=found.id, **params)["Listeners"][0]
        return observed(res, self.kind, found.id, **{**found.attrs, **self._observe(res.key, listener).attrs})

    def delete(self, run: AwsRun, found: Observed) -> None:
        ignore_missing(f"deleting listener {found.id}", _elbv2(run).delete_listener, NOT_FOUND, ListenerArn=found.id)

    def describe(self, found: Observed) -> str:
        target = found.attrs.get("target_group", "")
        target_name = target.split("/")[-2] if target.count("/") >= 2 else target
        return f"{found.attrs.get('protocol', '')}:{found.attrs.get('port', '')} -> {target_name}"


_BALANCERS = LoadBalancerHandler()

HANDLERS: tuple[Handler, ...] = (TargetGroupHandler(), _BALANCERS, ListenerHandler(_BALANCERS))
