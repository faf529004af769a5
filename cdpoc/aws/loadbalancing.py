"""Application Load Balancer, target group and listener (ELBv2 API).

ELBv2 cannot filter by tag, so a scan lists the region's load balancers (or target groups) and asks
for their tags in batches of 20, the most DescribeTags takes. A create with exactly the settings of
an existing resource of the same name returns that resource instead of failing, so every create
checks the stack tag of what it got back and refuses what is not ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cdpoc.aws.base import (
    NOT_MANAGED,
    AwsRun,
    Handler,
    aws_errors,
    by_component,
    caused_by,
    dep_id,
    ignore_missing,
    observed,
    paginate,
    refuse_not_ours,
    tag_list,
    tag_map,
    vpc_changes,
    with_owner,
)
from cdpoc.errors import AwsError, ConflictError
from cdpoc.model import Change, Observed, Resource

NOT_FOUND = ("LoadBalancerNotFound", "TargetGroupNotFound", "ListenerNotFound")
TAGS_PER_CALL = 20
DEREGISTRATION_DELAY = "deregistration_delay.timeout_seconds"

# Target group health check settings: (our prop, the API's parameter and describe field).
HEALTH_CHECK_FIELDS = (
    ("path", "HealthCheckPath"),
    ("interval", "HealthCheckIntervalSeconds"),
    ("timeout", "HealthCheckTimeoutSeconds"),
    ("healthy_threshold", "HealthyThresholdCount"),
    ("unhealthy_threshold", "UnhealthyThresholdCount"),
)


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


# --- target group ---------------------------------------------------------------------------------


def _health_check(item: Mapping[str, Any]) -> dict[str, Any]:
    check = {prop: item.get(field) for prop, field in HEALTH_CHECK_FIELDS}
    check["matcher"] = item.get("Matcher", {}).get("HttpCode", "")
    return check


class TargetGroupHandler(Handler):
    kind = "target_group"
    label = "target group"
    arn_types = ("elasticloadbalancing:targetgroup",)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        groups = _ours_by_component(run, _listing(run, "describe_target_groups", "TargetGroups"), "TargetGroupArn")
        return {
            component: with_owner(self._observe(run, component, group), group) for component, group in groups.items()
        }

    def _observe(self, run: AwsRun, key: str, group: Mapping[str, Any]) -> Observed:
        arn = group["TargetGroupArn"]
        with aws_errors(f"reading the attributes of target group {group['TargetGroupName']}"):
            attributes = _elbv2(run).describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        delay = next((a["Value"] for a in attributes if a["Key"] == DEREGISTRATION_DELAY), "")
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
            deregistration_delay=int(delay) if delay.isdigit() else None,
            load_balancers=tuple(group.get("LoadBalancerArns", ())),
        )

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        props, attrs = res.props, found.attrs
        changes = [
            Change(f"{what} is {attrs[what]}, config wants {props[what]} (fixed at creation)", in_place=False)
            for what in ("protocol", "port", "target_type")
            if attrs[what] != props[what]
        ]
        changes.extend(vpc_changes(res.props["vpc"], found, deps))
        wanted = props["health_check"]
        changes.extend(
            Change(f"health check {setting} {attrs['health_check'].get(setting)} -> {value}")
            for setting, value in wanted.items()
            if attrs["health_check"].get(setting) != value
        )
        if attrs["deregistration_delay"] != props["deregistration_delay"]:
            changes.append(
                Change(f"deregistration delay {attrs['deregistration_delay']}s -> {props['deregistration_delay']}s")
            )
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        props, check = res.props, res.props["health_check"]
        try:
            with aws_errors(f"creating target group {res.name}"):
                group = _elbv2(run).create_target_group(
                    Name=res.name,
                    Protocol=props["protocol"],
                    Port=props["port"],
                    VpcId=deps[props["vpc"]].id,
                    TargetType=props["target_type"],
                    **self._health_check_params(check),
                    Tags=run.tags(res.key, res.name),
                )["TargetGroups"][0]
        except AwsError as exc:
            # Same name, other settings. (Same settings: AWS returns the existing group instead.)
            if not caused_by(exc, "DuplicateTargetGroupName"):
                raise
            group = self._by_name(run, res.name)
        refuse_unless_ours(run, res, "target group", group["TargetGroupArn"])
        found = self._observe(run, res.key, group)
        conflicts = [c.text for c in self.changes(run, res, found, deps) if not c.in_place]
        if conflicts:
            raise ConflictError(
                f"target group {res.name} exists with other fixed settings: {'; '.join(conflicts)}",
                "Run `cdpoc down` and `cdpoc up` to rebuild it.",
            )
        return self.update(run, res, found, deps)

    def _by_name(self, run: AwsRun, name: str) -> dict[str, Any]:
        with aws_errors(f"looking up target group {name}"):
            return dict(_elbv2(run).describe_target_groups(Names=[name])["TargetGroups"][0])

    @staticmethod
    def _health_check_params(check: Mapping[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {field: check[prop] for prop, field in HEALTH_CHECK_FIELDS}
        params.update(HealthCheckProtocol="HTTP", HealthCheckEnabled=True, Matcher={"HttpCode": check["matcher"]})
        return params

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        props = res.props
        check = dict(found.attrs["health_check"])
        if check != props["health_check"]:
            with aws_errors(f"changing the health check of target group {res.name}"):
                _elbv2(run).modify_target_group(
                    TargetGroupArn=found.id, **self._health_check_params(props["health_check"])
                )
            check = dict(props["health_check"])
        if found.attrs["deregistration_delay"] != props["deregistration_delay"]:
            with aws_errors(f"setting the deregistration delay of target group {res.name}"):
                _elbv2(run).modify_target_group_attributes(
                    TargetGroupArn=found.id,
                    Attributes=[{"Key": DEREGISTRATION_DELAY, "Value": str(props["deregistration_delay"])}],
                )
        return observed(
            res,
            self.kind,
            found.id,
            **{**found.attrs, "health_check": check, "deregistration_delay": props["deregistration_delay"]},
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

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        balancers = _ours_by_component(
            run, _listing(run, "describe_load_balancers", "LoadBalancers"), "LoadBalancerArn"
        )
        return {component: with_owner(self._observe(component, lb), lb) for component, lb in balancers.items()}

    def _observe(self, key: str, lb: Mapping[str, Any]) -> Observed:
        return observed(
            key,
            self.kind,
            lb["LoadBalancerArn"],
            name=lb["LoadBalancerName"],
            dns_name=lb.get("DNSName", ""),
            zone_id=lb.get("CanonicalHostedZoneId", ""),
            scheme=lb.get("Scheme", ""),
            type=lb.get("Type", ""),
            vpc=lb.get("VpcId", ""),
            state=lb.get("State", {}).get("Code", ""),
            subnets=tuple(sorted(z["SubnetId"] for z in lb.get("AvailabilityZones", []))),
            security_groups=tuple(sorted(lb.get("SecurityGroups", []))),
        )

    @staticmethod
    def _wanted(res: Resource, deps: Mapping[str, Observed | None], prop: str) -> tuple[str | None, ...]:
        return tuple(dep_id(deps, key) for key in res.props[prop])

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        attrs = found.attrs
        changes = []
        if attrs["scheme"] != res.props["scheme"]:
            changes.append(Change(f"scheme is {attrs['scheme']}, config wants {res.props['scheme']}", in_place=False))
        if attrs["type"] != "application":
            changes.append(Change(f"it is a {attrs['type']} load balancer, not an application one", in_place=False))
        for prop, label in (("subnets", "subnets"), ("security_groups", "security groups")):
            wanted = self._wanted(res, deps, prop)
            if None in wanted or tuple(sorted(w for w in wanted if w)) != attrs[prop]:
                changes.append(Change(f"{label} {', '.join(attrs[prop])} -> {', '.join(res.props[prop])}"))
        if attrs["state"] != "active":
            changes.append(Change(f"state is {attrs['state']}: wait until active"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        try:
            with aws_errors(f"creating load balancer {res.name}"):
                lb = _elbv2(run).create_load_balancer(
                    Name=res.name,
                    Subnets=[deps[key].id for key in res.props["subnets"]],
                    SecurityGroups=[deps[key].id for key in res.props["security_groups"]],
                    Scheme=res.props["scheme"],
                    Type="application",
                    IpAddressType="ipv4",
                    Tags=run.tags(res.key, res.name),
                )["LoadBalancers"][0]
        except AwsError as exc:
            # Same name, other settings. (Same settings: AWS returns the existing load balancer instead.)
            if not caused_by(exc, "DuplicateLoadBalancerName"):
                raise
            with aws_errors(f"looking up load balancer {res.name}"):
                lb = _elbv2(run).describe_load_balancers(Names=[res.name])["LoadBalancers"][0]
        refuse_unless_ours(run, res, "load balancer", lb["LoadBalancerArn"])
        return self.update(run, res, self._observe(res.key, lb), deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        subnets = [deps[key].id for key in res.props["subnets"]]
        groups = [deps[key].id for key in res.props["security_groups"]]
        if tuple(sorted(subnets)) != found.attrs["subnets"]:
            with aws_errors(f"setting the subnets of load balancer {res.name}"):
                _elbv2(run).set_subnets(LoadBalancerArn=found.id, Subnets=subnets)
        if tuple(sorted(groups)) != found.attrs["security_groups"]:
            with aws_errors(f"setting the security groups of load balancer {res.name}"):
                _elbv2(run).set_security_groups(LoadBalancerArn=found.id, SecurityGroups=groups)
        run.wait_with(
            "elbv2",
            "load_balancer_available",
            f"load balancer {res.name} to be active",
            timeout=run.waits.load_balancer,
            LoadBalancerArns=[found.id],
        )
        with aws_errors(f"reading load balancer {res.name}"):
            lb = _elbv2(run).describe_load_balancers(LoadBalancerArns=[found.id])["LoadBalancers"][0]
        return self._observe(res.key, lb)

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


def _forward_target(listener: Mapping[str, Any]) -> str:
    for action in listener.get("DefaultActions", []):
        if action.get("Type") == "forward":
            if action.get("TargetGroupArn"):
                return str(action["TargetGroupArn"])
            groups = action.get("ForwardConfig", {}).get("TargetGroups", [])
            if len(groups) == 1:
                return str(groups[0]["TargetGroupArn"])
    return ""


class ListenerHandler(Handler):
    kind = "listener"
    label = "listener"
    arn_types = ("elasticloadbalancing:listener",)

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
        return observed(
            key,
            self.kind,
            listener["ListenerArn"],
            load_balancer=listener["LoadBalancerArn"],
            protocol=listener.get("Protocol", ""),
            port=listener.get("Port"),
            target_group=_forward_target(listener),
        )

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        attrs, props = found.attrs, res.props
        changes = []
        lb_arn = dep_id(deps, props["load_balancer"])
        if lb_arn and attrs["load_balancer"] != lb_arn:
            changes.append(Change("it belongs to another load balancer", in_place=False))
        if (attrs["protocol"], attrs["port"]) != (props["protocol"], props["port"]):
            changes.append(Change(f"{attrs['protocol']}:{attrs['port']} -> {props['protocol']}:{props['port']}"))
        tg_arn = dep_id(deps, props["target_group"])
        if tg_arn is None or attrs["target_group"] != tg_arn:
            changes.append(Change(f"forward to {props['target_group']} (now {attrs['target_group'] or 'nothing'})"))
        return changes

    def _params(self, res: Resource, deps: Mapping[str, Observed]) -> dict[str, Any]:
        return {
            "Protocol": res.props["protocol"],
            "Port": res.props["port"],
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": deps[res.props["target_group"]].id}],
        }

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        lb_arn = deps[res.props["load_balancer"]].id
        try:
            with aws_errors(f"creating listener {res.name}"):
                listener = _elbv2(run).create_listener(
                    LoadBalancerArn=lb_arn, **self._params(res, deps), Tags=run.tags(res.key, res.name)
                )["Listeners"][0]
        except AwsError as exc:
            # The port is taken by a listener with other settings; ours (tagged) is converged, others refused.
            if not caused_by(exc, "DuplicateListener"):
                raise
            listener = self._on_port(run, lb_arn, res.props["port"])
        refuse_unless_ours(run, res, "listener", listener["ListenerArn"])
        return self.update(run, res, self._observe(res.key, listener), deps)

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
        wanted = self._params(res, deps)
        have = (found.attrs["protocol"], found.attrs["port"], found.attrs["target_group"])
        if have != (wanted["Protocol"], wanted["Port"], wanted["DefaultActions"][0]["TargetGroupArn"]):
            with aws_errors(f"changing listener {res.name}"):
                _elbv2(run).modify_listener(ListenerArn=found.id, **wanted)
        return observed(
            res,
            self.kind,
            found.id,
            load_balancer=found.attrs["load_balancer"],
            protocol=wanted["Protocol"],
            port=wanted["Port"],
            target_group=wanted["DefaultActions"][0]["TargetGroupArn"],
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        ignore_missing(f"deleting listener {found.id}", _elbv2(run).delete_listener, NOT_FOUND, ListenerArn=found.id)

    def describe(self, found: Observed) -> str:
        target = found.attrs.get("target_group", "")
        target_name = target.split("/")[-2] if target.count("/") >= 2 else target
        return f"{found.attrs.get('protocol', '')}:{found.attrs.get('port', '')} -> {target_name}"


_BALANCERS = LoadBalancerHandler()

HANDLERS: tuple[Handler, ...] = (TargetGroupHandler(), _BALANCERS, ListenerHandler(_BALANCERS))
