"""Health and time in the sandbox: what each simulated instance answers, target health, and readiness delays.

moto 5.2.5 makes everything ready at once (NAT gateways `available`, load balancers `active` on the first
describe) and calls every registered target `healthy` forever, even a terminated one. Here, lazily from the
time elapsed (SIMULATION.clock, no background threads) and scaled by the timing profile
(cdpoc/sandbox/simulation.py):

- a NAT gateway is `pending`, then `available`; a load balancer `provisioning`, then `active`;
- an instance answers HTTP according to what runs on it: nothing while it boots; the stub server its user
  data starts (cdpoc's app user data, templates/app-instance.sh); the deployed app from the end of a
  successful CodeDeploy ApplicationStart (nothing between ApplicationStop and ApplicationStart, and nothing
  when the deployment's ValidateService failed: that is what the failure found). The app's /health answers
  200 only when the MongoDB instance it is configured for (SSM /<stack>/mongodb/host, as the bundle's
  AfterInstall hook reads it) has finished its user data, else 503, with the bodies the bundle's app gives.
  Where the instances' own role is refused (cdpoc/sandbox/instance_calls.py) this follows: an app that may not
  read its SSM password exits at start and nothing answers; a MongoDB whose user data may not read its
  passwords never becomes ready;
- target health follows the load balancer's health checks: `initial` (Elb.RegistrationInProgress until the
  first check, then Elb.InitialHealthChecking), `healthy` after HealthyThresholdCount passing checks in a
  row, `unhealthy` after UnhealthyThresholdCount failing ones (Target.ResponseCodeMismatch,
  Target.FailedHealthChecks), `draining` (Target.DeregistrationInProgress) for the deregistration delay
  after DeregisterTargets or the instance's termination, then gone; `unused` with Target.NotInUse (no load
  balancer uses the group) or Target.InvalidState (a stopped instance);
- the load balancers' DNS names answer through the sandbox acting as an HTTP forward proxy (with_load_balancers):
  `GET http://<dns>/health` is routed, as the ALB would, to a healthy target of the listener's target group
  (all of them when none is healthy: ALBs fail open), and the target's answer is returned.

Not modelled: security groups and NACLs on the health-check path (Target.Timeout is never given), listener
rules other than the default forward action, HTTPS listeners, instance pending -> running in EC2's own
state, the Auto Scaling group's ELB health check replacing unhealthy instances. (The launch lifecycle,
Pending:Wait -> InService or terminated, is cdpoc/sandbox/scaleout.py's.)
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import json
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdpoc.sandbox import instance_calls
from cdpoc.sandbox.simulation import SIMULATION

_LAUNCHED = "_cdpoc_launched"
_TERMINATED = "_cdpoc_terminated"
_CREATED = "_cdpoc_created"
_REGISTERED = "_cdpoc_registered"
_DRAINING = "_cdpoc_draining"
_STATE = "_cdpoc_state"
STUB_MARKER = b"cdpoc-stub.service"  # the unit cdpoc's app user data installs (templates/app-instance.sh)
STUB_BODY = {"status": "ok", "app": "cdpoc-stub", "detail": "no deployment yet"}
MAX_CHECKS_LOOKED_AT = 2000

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# ---- what an instance answers


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, or `refused` when nothing listens on the port."""

    status: int | None
    body: bytes = b""
    content_type: str = "application/json"

    @property
    def refused(self) -> bool:
        return self.status is None


REFUSED = Answer(None)


def _json(status: int, document: dict[str, Any]) -> Answer:
    return Answer(status, json.dumps(document).encode())


def launched_at(instance: Any) -> float:
    return float(getattr(instance, _LAUNCHED, 0.0))


def _user_data(instance: Any) -> bytes:
    raw = instance.user_data
    if isinstance(raw, list):
        raw = raw[0] if raw else ""
    if isinstance(raw, bytes):
        raw = raw.decode("latin-1")
    text = str(raw or "")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode("utf-8", "replace")


def _booted_at(instance: Any) -> float:
    return launched_at(instance) + SIMULATION.seconds("instance_boot")


@dataclass(frozen=True)
class Running:
    """What serves port 80 of an instance at one instant."""

    kind: str  # nothing | stub | app | broken-app
    deployment_id: str = ""
    revision: Mapping[str, Any] = field(default_factory=dict)  # the deployment's revision location


def running_on(account: str, region: str, instance: Any, now: float) -> Running:
    if instance.state != "running" or now < _booted_at(instance):
        return Running("nothing")
    current = Running("nothing")
    if STUB_MARKER in _user_data(instance) and now >= _booted_at(instance) + SIMULATION.seconds("stub_server"):
        current = Running("stub")
    for deployment_id, plan_target, revision, app_down in _deployments_on(account, region, instance.id):
        current = _after_deployment(current, plan_target, deployment_id, revision, now, app_down=app_down)
    return current


def _deployments_on(account: str, region: str, instance_id: str) -> list[tuple[str, Any, dict[str, Any], bool]]:
    """(deployment id, its plan for this instance, revision, whether the app exits at start) of every simulated
    deployment, oldest first."""
    from cdpoc.sandbox import codedeploy

    found = []
    backend = codedeploy.backend_of(account, region)
    for deployment in sorted(backend.deployments.values(), key=lambda d: codedeploy._epoch(d.create_time)):
        sim = codedeploy.sim_of(deployment)
        target = sim.plan.target(instance_id) if sim is not None else None
        if sim is not None and target is not None:
            found.append((deployment.deployment_id, target, deployment.revision or {}, instance_id in sim.app_down))
    return found


def _after_deployment(
    before: Running, target: Any, deployment_id: str, revision: dict[str, Any], now: float, *, app_down: bool = False
) -> Running:
    events = {event.name: event for event in target.events}
    current = before
    stop = events.get("ApplicationStop")
    if stop is not None and stop.outcome != "Skipped" and now >= stop.start and current.kind in ("app", "broken-app"):
        current = Running("nothing")  # the hook stops the app; the stub (if any) keeps answering
    start = events.get("ApplicationStart")
    if start is None or start.outcome == "Skipped" or now < start.end:
        return current
    if start.outcome != "Succeeded" or app_down:
        # the stub is disabled first; the app did not come up, or (its role may not read its SSM password) it
        # exits as soon as systemd starts it, again and again
        return Running("nothing")
    validate = events.get("ValidateService")
    if validate is not None and validate.outcome == "Failed":
        return Running("broken-app", deployment_id, revision)
    return Running("app", deployment_id, revision)


def _revision_label(account: str, revision: Mapping[str, Any], deployment_id: str) -> str:
    """What the bundle's AfterInstall writes as APP_REVISION: the REVISION file, then the deployment id."""
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    location = revision.get("s3Location") or {}
    try:
        obj = s3_backends[account][get_partition("us-east-1")].get_object(
            location.get("bucket", ""), location.get("key", ""), location.get("version")
        )
    except Exception:  # moto raises its own MissingBucket/MissingKey types
        obj = None
    name = _revision_file(obj.value) if obj is not None else ""
    return f"{name} {deployment_id}".strip()


def _revision_file(bundle: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
            if "REVISION" in archive.namelist():
                return archive.read("REVISION").decode("utf-8", "replace").splitlines()[0].strip()
    except (zipfile.BadZipFile, IndexError):
        pass
    return ""


def answer(account: str, region: str, instance: Any, path: str, now: float, *, with_body: bool = True) -> Answer:
    """What GET `path` on port 80 of `instance` answers at `now` (with_body=False: the status only)."""
    running = running_on(account, region, instance, now)
    route = path.split("?", 1)[0]
    if running.kind in ("nothing", "broken-app"):
        return REFUSED
    if running.kind == "stub":
        return _json(200, STUB_BODY) if route in ("/", "/health") else _json(404, {"status": "not found"})
    if route == "/health":
        ready = database_ready(account, region, instance, now)
        if not with_body:
            return Answer(200 if ready else 503)
        label = _revision_label(account, running.revision, running.deployment_id)
        if ready:
            return _json(200, {"status": "healthy", "data": "Database connection is healthy", "revision": label})
        return _json(503, {"status": "unhealthy", "data": "Database connection is not healthy", "revision": label})
    if route == "/":
        label = _revision_label(account, running.revision, running.deployment_id) if with_body else ""
        text = f"Hello from s3upload, revision {label}, on {instance.private_dns_name.split('.')[0]}\n"
        return Answer(200, text.encode(), "text/plain; charset=utf-8")
    return _json(404, {"detail": "Not Found"})


def database_ready(account: str, region: str, instance: Any, now: float) -> bool:
    """Whether the MongoDB the app is configured for answers: SSM /<stack>/mongodb/host names a running
    instance whose user data (install, seed, users) has finished."""
    from moto.ec2.models import ec2_backends
    from moto.ssm.models import ssm_backends

    tags = {t.get("key", t.get("Key")): t.get("value", t.get("Value")) for t in instance.get_tags()}
    stack = tags.get("cdpoc:stack")
    if not stack:
        return False
    parameter = ssm_backends[account][region].get_parameter(f"/{stack}/mongodb/host")
    host = parameter.value if parameter is not None else ""
    for candidate in ec2_backends[account][region].all_instances():
        if candidate.state != "running" or not candidate.nics:
            continue
        if host in (candidate.private_ip, candidate.private_dns_name):
            if now < _booted_at(candidate) + SIMULATION.seconds("mongodb"):
                return False
            # its user data reads the MongoDB passwords from SSM with the instance's role, or gives up for good
            return instance_calls.secrets_refused(account, region, candidate, _user_data(candidate)) is None
    return False


def settle_databases(account: str, region: str, now: float) -> None:
    """Take each MongoDB user data's SSM read as soon as the simulation passes the moment it happens, so that
    the role's policies count as they were then, not when someone first asks for the database."""
    from moto.ec2.models import ec2_backends

    if region not in ec2_backends[account]:
        return
    for instance in ec2_backends[account][region].all_instances():
        if instance_calls.SECRETS_VERDICT in instance.__dict__ or instance.state != "running":
            continue
        if now >= _booted_at(instance) + SIMULATION.seconds("mongodb"):
            instance_calls.secrets_refused(account, region, instance, _user_data(instance))


# ---- target health


@dataclass(frozen=True)
class Health:
    state: str
    reason: str | None = None
    description: str | None = None

    def to_json(self) -> dict[str, str]:
        health = {"State": self.state}
        if self.reason:
            health["Reason"] = self.reason
        if self.description:
            health["Description"] = self.description
        return health


REGISTRATION = Health("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
INITIAL_CHECKS = Health("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
HEALTHY = Health("healthy")
DRAINING = Health("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
NOT_REGISTERED = Health("unused", "Target.NotRegistered", "Target is not registered to the target group")
NOT_IN_USE = Health(
    "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
)
STOPPED = Health("unused", "Target.InvalidState", "Target is in the stopped state")
CHECKS_DISABLED = Health("unavailable", "Target.HealthCheckDisabled", "Health checks disabled")


def _failed(check: Answer) -> Health:
    if check.refused:
        return Health("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    return Health(
        "unhealthy", "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{check.status}]"
    )


def _registered(target_group: Any) -> dict[str, float]:
    return target_group.__dict__.setdefault(_REGISTERED, {})


def _draining(target_group: Any) -> dict[str, tuple[dict[str, Any], float]]:
    return target_group.__dict__.setdefault(_DRAINING, {})


def _matches(codes: str, status: int) -> bool:
    for part in codes.split(","):
        low, _, high = part.strip().partition("-")
        if low.isdigit() and int(low) <= status <= int(high or low):
            return True
    return False


def _passes(target_group: Any, check: Answer) -> bool:
    codes = str((getattr(target_group, "matcher", None) or {}).get("HttpCode") or "200")
    return check.status is not None and _matches(codes, check.status)


def _in_use_since(elbv2: Any, target_group: Any) -> float | None:
    """When the first load balancer forwarding to the group became active (checks start then), or None."""
    moments = []
    for arn in target_group.load_balancer_arns:
        balancer = elbv2.load_balancers.get(arn)
        if balancer is not None:
            moments.append(getattr(balancer, _CREATED, 0.0) + SIMULATION.seconds("load_balancer"))
    return min(moments) if moments else None


def target_health(account: str, region: str, target_group: Any, target_id: str, now: float) -> Health:
    """The health of a registered instance target at `now`, by replaying the load balancer's checks."""
    from moto.ec2.models import ec2_backends
    from moto.elbv2.models import elbv2_backends

    instance = _instance(ec2_backends[account][region], target_id)
    if instance is not None and instance.state == "stopped":
        return STOPPED
    in_use = _in_use_since(elbv2_backends[account][region], target_group)
    if in_use is None:
        return NOT_IN_USE
    if not target_group.health_check_enabled:
        return CHECKS_DISABLED
    interval = SIMULATION.timing.scaled(float(target_group.health_check_interval_seconds))
    first = max(_registered(target_group).get(target_id, 0.0), in_use) + interval
    if interval <= 0:
        return HEALTHY if _passes(target_group, _check(account, region, instance, target_group, now)) else REGISTRATION
    if now < first:
        return REGISTRATION
    count = int((now - first) // interval) + 1
    window = min(count, MAX_CHECKS_LOOKED_AT)
    healthy_needed = int(target_group.healthy_threshold_count)
    unhealthy_needed = int(target_group.unhealthy_threshold_count)
    # a window that does not start at registration starts in an unknown state, settled by its first full run
    state: Health | None = INITIAL_CHECKS if window == count else None
    passes = fails = 0
    last: Answer = REFUSED
    for index in range(count - window, count):
        last = _check(account, region, instance, target_group, first + index * interval)
        if _passes(target_group, last):
            passes, fails = passes + 1, 0
            if passes >= healthy_needed:
                state = HEALTHY
        else:
            passes, fails = 0, fails + 1
            if fails >= unhealthy_needed:
                state = _failed(last)
    if state is None:
        return HEALTHY if _passes(target_group, last) else _failed(last)
    return state


def _check(account: str, region: str, instance: Any, target_group: Any, at: float) -> Answer:
    """One health check: the status the instance answers on the group's path (no body is needed)."""
    if instance is None:
        return REFUSED
    return answer(account, region, instance, target_group.health_check_path or "/", at, with_body=False)


def _instance(ec2: Any, instance_id: str) -> Any:
    try:
        return ec2.get_instance_by_id(instance_id)
    except Exception:  # moto raises InvalidInstanceID.NotFound for some ids
        return None


def settle(account: str, region: str, target_group: Any, now: float) -> None:
    """Targets leave: a terminated instance drains from its termination, and a drained target is gone."""
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[account][region]
    draining = _draining(target_group)
    for target_id, target in list(target_group.targets.items()):
        instance = _instance(ec2, target_id)
        if instance is not None and instance.state in ("shutting-down", "terminated"):
            target_group.targets.pop(target_id)
            draining[target_id] = (target, float(instance.__dict__.get(_TERMINATED, now)))
    # moto moves the targets of instances TerminateInstances ended here (and keeps them "draining" forever)
    for target_id, target in list(target_group.terminated_targets.items()):
        target_group.terminated_targets.pop(target_id)
        instance = _instance(ec2, target_id)
        since = instance.__dict__.get(_TERMINATED, now) if instance is not None else now
        draining.setdefault(target_id, (target, float(since)))
    delay = SIMULATION.timing.scaled(float(target_group.attributes.get("deregistration_delay.timeout_seconds", 300)))
    for target_id, (target, since) in list(draining.items()):
        if now >= since + delay:
            draining.pop(target_id)
            _registered(target_group).pop(target_id, None)
            target_group.deregistered_targets[target_id] = target


def descriptions(
    account: str, region: str, target_group: Any, asked: list[dict[str, Any]], now: float
) -> list[dict[str, Any]]:
    """DescribeTargetHealth's TargetHealthDescriptions (botocore shape) for the asked targets, or all."""
    settle(account, region, target_group, now)
    draining = _draining(target_group)
    if not asked:
        asked = [*target_group.targets.values(), *(target for target, _ in draining.values())]
    found = []
    for wanted in asked:
        target_id = wanted["Id"]
        registered = target_group.targets.get(target_id)
        if registered is not None:
            health = target_health(account, region, target_group, target_id, now)
            port = registered.get("Port", target_group.port)
        elif target_id in draining:
            health, port = DRAINING, draining[target_id][0].get("Port", target_group.port)
        else:
            health, port = NOT_REGISTERED, wanted.get("Port", target_group.port)
        found.append(
            {
                "Target": {"Id": target_id, "Port": int(port)},
                "HealthCheckPort": str(target_group.health_check_port or "traffic-port"),
                "TargetHealth": health.to_json(),
            }
        )
    return found


# ---- moto patches


def describe_target_health(self: Any, original: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.elbv2.exceptions import TargetGroupNotFoundError

    target_group = self.elbv2_backend.target_groups.get(self._get_param("TargetGroupArn"))
    if target_group is None:
        raise TargetGroupNotFoundError()
    asked = list(self._get_param("Targets", []) or [])
    now = SIMULATION.advance(self.current_account, self.region)
    return ActionResult(
        {"TargetHealthDescriptions": descriptions(self.current_account, self.region, target_group, asked, now)}
    )


def _wrap_init(cls: type, attribute: str) -> None:
    original = vars(cls)["__init__"]
    if getattr(original, "cdpoc_stamped", False):
        return

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.__dict__[attribute] = SIMULATION.now()

    init.cdpoc_stamped = True  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[misc]


def _lazy_state(cls: type, waiting: str, ready: str, duration: str) -> None:
    """`state` reads `waiting` until the profile's `duration` has passed since creation, then `ready`."""
    if isinstance(vars(cls).get("state"), property):
        return

    def read(self: Any) -> str:
        stored = self.__dict__.get(_STATE, waiting)
        if stored in (waiting, ready):
            created = self.__dict__.get(_CREATED, 0.0)
            return ready if SIMULATION.now() >= created + SIMULATION.seconds(duration) else waiting
        return str(stored)

    def write(self: Any, value: str) -> None:
        self.__dict__[_STATE] = value

    cls.state = property(read, write)  # type: ignore[attr-defined]


def _stamp_registrations() -> None:
    from moto.elbv2.models import FakeTargetGroup

    register, deregister = vars(FakeTargetGroup)["register"], vars(FakeTargetGroup)["deregister"]
    if getattr(register, "cdpoc_stamped", False):
        return

    def stamped_register(self: Any, targets: list[dict[str, Any]]) -> None:
        already = set(self.targets)
        register(self, targets)
        for target in targets:
            if target["Id"] not in already:
                _registered(self)[target["Id"]] = SIMULATION.now()
                _draining(self).pop(target["Id"], None)

    def stamped_deregister(self: Any, targets: list[dict[str, Any]]) -> None:
        deregister(self, targets)
        for target in targets:
            moved = self.deregistered_targets.pop(target["Id"], None)
            if moved is not None:
                _draining(self)[target["Id"]] = (moved, SIMULATION.now())

    stamped_register.cdpoc_stamped = True  # type: ignore[attr-defined]
    FakeTargetGroup.register = stamped_register  # type: ignore[method-assign]
    FakeTargetGroup.deregister = stamped_deregister  # type: ignore[method-assign]


def _stamp_terminations() -> None:
    from moto.ec2.models.instances import Instance

    terminate = vars(Instance)["terminate"]
    if getattr(terminate, "cdpoc_stamped", False):
        return

    def stamped(self: Any) -> Any:
        self.__dict__.setdefault(_TERMINATED, SIMULATION.now())
        return terminate(self)

    stamped.cdpoc_stamped = True  # type: ignore[attr-defined]
    Instance.terminate = stamped  # type: ignore[method-assign]


def install() -> None:
    from moto.ec2.models.instances import Instance
    from moto.ec2.models.nat_gateways import NatGateway
    from moto.elbv2.models import FakeLoadBalancer
    from moto.elbv2.responses import ELBV2Response

    from cdpoc.sandbox.patching import replace_operations

    _wrap_init(Instance, _LAUNCHED)
    _wrap_init(NatGateway, _CREATED)
    _wrap_init(FakeLoadBalancer, _CREATED)
    _lazy_state(NatGateway, "pending", "available", "nat_gateway")
    _lazy_state(FakeLoadBalancer, "provisioning", "active", "load_balancer")
    _stamp_registrations()
    _stamp_terminations()
    replace_operations(ELBV2Response, describe_target_health)
    SIMULATION.add_advancer(settle_databases)


# ---- the load balancers' DNS names, served as an HTTP forward proxy

_round_robin = itertools.count()


def _balancer_named(host: str) -> tuple[str, str, Any] | None:
    from moto.elbv2.models import elbv2_backends

    for account, regions in list(elbv2_backends.items()):
        for region, backend in list(regions.items()):
            for balancer in list(backend.load_balancers.values()):
                if balancer.dns_name.lower() == host:
                    return account, region, balancer
    return None


def balancer_answer(host: str, port: int, path: str) -> Answer:
    """What http://<host>:<port><path> answers when host is a load balancer's DNS name (else None-like 502)."""
    named = _balancer_named(host)
    if named is None:
        return Answer(502, f"cdpoc sandbox: {host} is not a load balancer of the sandbox\n".encode(), "text/plain")
    account, region, balancer = named
    with SIMULATION.lock:
        now = SIMULATION.advance(account, region)
        if balancer.state != "active":
            # AWS publishes the DNS name once the load balancer is active
            return Answer(502, f"cdpoc sandbox: {host} does not resolve yet (provisioning)\n".encode(), "text/plain")
        listener = next((lst for lst in balancer.listeners.values() if int(lst.port) == port), None)
        if listener is None:
            return REFUSED
        return _forward(account, region, listener, path, now)


def _forward(account: str, region: str, listener: Any, path: str, now: float) -> Answer:
    from moto.ec2.models import ec2_backends
    from moto.elbv2.models import elbv2_backends

    elbv2 = elbv2_backends[account][region]
    actions = [a for a in listener.default_actions if a.type == "forward"]
    arns = [a.data.get("TargetGroupArn") for a in actions if a.data.get("TargetGroupArn")] + [
        tg.get("TargetGroupArn") for a in actions for tg in (a.data.get("ForwardConfig") or {}).get("TargetGroups", [])
    ]
    candidates: dict[str, list[tuple[Any, str]]] = {"healthy": [], "unhealthy": []}
    for arn in dict.fromkeys(a for a in arns if a):
        target_group = elbv2.target_groups.get(arn)
        if target_group is None:
            continue
        settle(account, region, target_group, now)
        for target_id in target_group.targets:
            state = target_health(account, region, target_group, target_id, now).state
            if state in candidates:
                candidates[state].append((target_group, target_id))
    # ALBs fail open: with no healthy target they route to all the unhealthy ones
    chosen = candidates["healthy"] or candidates["unhealthy"]
    if not chosen:
        return Answer(503, b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n", "text/html")
    _, target_id = chosen[next(_round_robin) % len(chosen)]
    instance = _instance(ec2_backends[account][region], target_id)
    reply = answer(account, region, instance, path, now) if instance is not None else REFUSED
    if reply.refused:
        return Answer(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", "text/html")
    return reply


REASONS = {200: "OK", 404: "Not Found", 502: "Bad Gateway", 503: "Service Unavailable"}


def with_load_balancers(app: WsgiApp) -> WsgiApp:
    """The sandbox as an HTTP forward proxy for its load balancers' DNS names (`GET http://<dns>/health`
    with HTTP_PROXY pointing at the sandbox); every other request goes to `app`."""

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host, _, port = str(environ.get("HTTP_HOST", "")).lower().partition(":")
        if host.endswith(".elb.amazonaws.com") and _balancer_named(host) is not None:
            path = environ.get("PATH_INFO", "/") + (
                f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else ""
            )
            reply = balancer_answer(host, int(port or 80), path)
            if reply.refused:
                reply = Answer(
                    502, f"cdpoc sandbox: connection refused by {host}:{port or 80}\n".encode(), "text/plain"
                )
            status = f"{reply.status} {REASONS.get(int(reply.status or 502), 'Error')}"
            start_response(status, [("Content-Type", reply.content_type), ("Content-Length", str(len(reply.body)))])
            return [reply.body]
        return app(environ, start_response)

    return dispatch
