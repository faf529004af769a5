"""Auto Scaling with CodeDeploy in the sandbox: launch lifecycle hooks, launch deployments, and where and how
an Auto Scaling group launches its instances.

moto 5.2.5 keeps lifecycle hooks only to describe them: a new instance is `InService` at once whatever hooks
its group has, every instance goes into the first subnet of VPCZoneIdentifier, and the launch template's
MetadataOptions are not applied (HttpTokens stays optional). Here, as on AWS:

- an instance launched into a group with an `autoscaling:EC2_INSTANCE_LAUNCHING` hook waits in `Pending:Wait`
  (counted in the group's capacity, not registered with its target groups) until every hook is completed;
  CONTINUE puts it `InService` and registers it with the group's target groups, ABANDON terminates it (the
  group then launches a replacement);
- CodeDeploy completes the hook it installed for a deployment group (cdpoc/sandbox/codedeploy.py): at launch
  it creates a deployment of the group's last successful revision to that instance alone, created by
  `autoscaling`, whose events start once the instance has booted; the hook is completed when the deployment
  ends, CONTINUE if it succeeded, else ABANDON. With no successful revision yet there is no deployment and
  the instance goes on at once;
- CodeDeploy completes its hook with CompleteLifecycleAction, authorized with the deployment group's service
  role (cdpoc/sandbox/service_roles.py): refused, the launch deployment still succeeds but the action stays
  open, and the instance waits in Pending:Wait until the hook's heartbeat timeout, then takes the hook's
  default result (ABANDON: terminated, and a replacement launched, which runs into the same);
- any other launch hook times out after its HeartbeatTimeout (scaled by the timing profile) with its
  DefaultResult (the CompleteLifecycleAction API is not offered); deleting a hook abandons the launches it holds;
- each instance goes into the subnet of the zone that has the fewest of the group's instances (ties: the
  order of VPCZoneIdentifier), so a group spreads evenly over its zones;
- the instance takes the MetadataOptions of the group's launch template version.

State is advanced lazily from SIMULATION.clock like the rest of the simulation (no background threads): the
completion of a hook takes effect, back-dated to the moment it happened, at the next request that advances
the simulation (every Auto Scaling request, CodeDeploy reads, DescribeTargetHealth).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cdpoc.sandbox import codedeploy, service_roles
from cdpoc.sandbox.simulation import SIMULATION

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
PENDING_WAIT = "Pending:Wait"
IN_SERVICE = "InService"
CONTINUE, ABANDON = "CONTINUE", "ABANDON"
_ACTIONS = "_cdpoc_launch_actions"
_INSTALLED = "cdpoc_scaleout"
# moto's own functions that install() replaces, kept for the tests that pin moto's behaviour
MOTO: dict[str, Callable[..., Any]] = {}


@dataclass
class LaunchAction:
    """One launch hook's lifecycle action on one instance."""

    hook: str
    default_result: str
    timeout_at: float
    deployment_id: str | None = None  # CodeDeploy's launch deployment, when CodeDeploy owns the hook
    result: str | None = None
    completed_at: float = 0.0
    owner: Any = None  # the CodeDeploy deployment group that installed the hook, if any
    group_arn: str = ""  # the Auto Scaling group's ARN (what CompleteLifecycleAction is authorized on)

    def settle(self, account: str, region: str, now: float) -> None:
        """Complete the action if its deployment ended, or its heartbeat timed out, by `now`."""
        if self.result is not None:
            return
        if self.deployment_id is not None:
            outcome = codedeploy.launch_outcome(account, region, self.deployment_id)
            if outcome is None:  # the deployment is gone with its application: CodeDeploy never answers
                self.deployment_id = None
            elif outcome[1] <= now:
                self.deployment_id = None
                self.complete_as_codedeploy(
                    account, region, CONTINUE if outcome[0] == "Succeeded" else ABANDON, outcome[1]
                )
                return
            else:
                return
        if now >= self.timeout_at:
            self.result, self.completed_at = self.default_result, self.timeout_at

    def complete_as_codedeploy(self, account: str, region: str, result: str, at: float) -> None:
        """CodeDeploy calls CompleteLifecycleAction with the deployment group's service role; refused, the action
        stays open until its heartbeat times out and takes the hook's default result (ABANDON for CodeDeploy's)."""
        if service_roles.lifecycle_completion_denied(account, region, self.owner, self.group_arn):
            # the sandbox lets CodeDeploy's own hook wait for its deployment however long (heartbeats are not
            # modelled), so the timeout counts from no earlier than the refusal
            self.timeout_at = max(self.timeout_at, at)
            return
        self.result, self.completed_at = result, at


def actions_of(state: Any) -> list[LaunchAction]:
    """The lifecycle actions holding an Auto Scaling instance (moto's InstanceState) in Pending:Wait."""
    actions: list[LaunchAction] = state.__dict__.get(_ACTIONS, [])
    return actions


# ---- launching


def _backend_ids(group: Any) -> tuple[str, str]:
    backend = group.autoscaling_backend
    return backend.account_id, backend.region_name


def _zone_counts(group: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in group.instance_states:
        if state.instance.state not in ("shutting-down", "terminated"):
            zone = state.instance.placement.zone
            counts[zone] = counts.get(zone, 0) + 1
    return counts


def _next_placement(group: Any) -> tuple[str | None, str | None]:
    """(subnet, zone) for the next instance: the zone with the fewest of the group's instances."""
    counts = _zone_counts(group)
    if group.vpc_zone_identifier:
        ec2 = group.autoscaling_backend.ec2_backend
        subnets = [s for s in group.vpc_zone_identifier.split(",") if s]
        zones = [ec2.get_subnet(s).availability_zone for s in subnets]
        best = min(range(len(subnets)), key=lambda i: (counts.get(zones[i], 0), i))
        return subnets[best], zones[best]
    zones = list(group.availability_zones)
    if not zones:
        return None, None
    return None, min(zones, key=lambda z: (counts.get(z, 0), zones.index(z)))


@contextmanager
def _only(group: Any, subnet: str | None, zone: str | None) -> Iterator[None]:
    """moto launches into the first subnet (or a random zone): give it just the one chosen."""
    subnets, zones = group.vpc_zone_identifier, group.availability_zones
    try:
        if subnet is not None:
            group.vpc_zone_identifier = subnet
        elif zone is not None:
            group.availability_zones = [zone]
        yield
    finally:
        group.vpc_zone_identifier, group.availability_zones = subnets, zones


def _apply_metadata_options(group: Any, instance: Any) -> None:
    from moto.ec2.models.instances import MetadataOptions

    template = group.ec2_launch_template
    if template is None:
        return
    options = template.get_version(group.launch_template_version).data.get("MetadataOptions")
    if options:
        instance.metadata_options = MetadataOptions(options)


def _launch_hooks(group: Any) -> list[Any]:
    hooks = group.autoscaling_backend.lifecycle_hooks.values()
    return [h for h in hooks if h.auto_scaling_group_name == group.name and h.lifecycle_transition == LAUNCHING]


def _hold(group: Any, state: Any, now: float) -> None:
    """Put a just-launched instance in Pending:Wait for the group's launch hooks; CodeDeploy's get a deployment."""
    hooks = _launch_hooks(group)
    if not hooks:
        return
    account, region = _backend_ids(group)
    agent_ready_at = now + SIMULATION.seconds("instance_boot")
    actions = []
    for hook in hooks:
        action = LaunchAction(hook.name, hook.default_result, now + SIMULATION.timing.scaled(hook.heartbeat_timeout))
        owner = codedeploy.launch_hook_owner(account, region, group.name, hook.name)
        if owner is not None:
            action.owner, action.group_arn = owner, group.arn
            action.deployment_id = codedeploy.create_launch_deployment(
                account, region, owner, state.instance.id, now, agent_ready_at
            )
            if action.deployment_id is None:  # nothing has succeeded yet: CodeDeploy continues at once
                action.complete_as_codedeploy(account, region, CONTINUE, now)
        actions.append(action)
    state.__dict__[_ACTIONS] = actions
    if all(a.result == CONTINUE for a in actions):
        return  # InService now, as moto made it
    state.lifecycle_state = PENDING_WAIT


def replace_autoscaling_group_instances(
    self: Any, count_needed: int, propagated_tags: dict[str, str], *, original: Callable[..., None]
) -> None:
    """moto's launch, one instance at a time into the emptiest zone, then hooks and metadata options."""
    with SIMULATION.lock:
        now = SIMULATION.now()
        for _ in range(count_needed):
            before = {id(s) for s in self.instance_states}
            with _only(self, *_next_placement(self)):
                original(self, 1, dict(propagated_tags))
            for state in [s for s in self.instance_states if id(s) not in before]:
                _apply_metadata_options(self, state.instance)
                _hold(self, state, now)


def active_instances(self: Any) -> list[Any]:
    """What counts towards the desired capacity: instances in service and those still launching."""
    return [s for s in self.instance_states if s.lifecycle_state in (IN_SERVICE, PENDING_WAIT)]


def update_attached_target_groups(self: Any, group_name: str, *, original: Callable[..., None]) -> None:
    """Register the group's instances except those a launch hook still holds (AWS registers them after it)."""
    group = self.autoscaling_groups[group_name]
    every = group.instance_states  # restored as it was: its order decides which instances a scale-in removes
    group.instance_states = [s for s in every if s.lifecycle_state != PENDING_WAIT]
    try:
        original(self, group_name)
    finally:
        group.instance_states = every


# ---- completing lifecycle actions


def delete_lifecycle_hook(self: Any, as_name: str, name: str, *, original: Callable[..., None]) -> None:
    """AWS: "If there are any outstanding lifecycle actions, they are completed first (ABANDON for launching
    instances ...)" - also when CodeDeploy removes its hook with the deployment group."""
    group = self.autoscaling_groups.get(as_name)
    for state in group.instance_states if group is not None else []:
        for action in actions_of(state):
            if action.hook == name and action.result is None:
                action.result, action.completed_at = ABANDON, SIMULATION.now()
    original(self, as_name, name)


def advance(account: str, region: str, now: float) -> None:
    """Complete the lifecycle actions that ended by `now`: CONTINUE -> InService, ABANDON -> terminated."""
    from moto.autoscaling.models import autoscaling_backends

    if region not in autoscaling_backends[account]:
        return
    backend = autoscaling_backends[account][region]
    for group in list(backend.autoscaling_groups.values()):
        for state in list(group.instance_states):
            actions = actions_of(state)
            if state.lifecycle_state != PENDING_WAIT or not actions:
                continue
            for action in actions:
                action.settle(account, region, now)
            if any(a.result is None for a in actions):
                continue
            at = max(a.completed_at for a in actions)
            if any(a.result == ABANDON for a in actions):
                _abandon(backend, group, state, at)
            else:
                _proceed(account, region, backend, group, state, at)


def _proceed(account: str, region: str, backend: Any, group: Any, state: Any, at: float) -> None:
    from moto.elbv2.models import elbv2_backends

    from cdpoc.sandbox import health

    state.lifecycle_state = IN_SERVICE
    target_groups = [elbv2_backends[account][region].target_groups.get(arn) for arn in group.target_group_arns]
    before = {tg.arn for tg in target_groups if tg is not None and state.instance.id in tg.targets}
    backend.update_attached_target_groups(group.name)
    for target_group in target_groups:
        if target_group is not None and target_group.arn not in before and state.instance.id in target_group.targets:
            # registered when the hook completed, not when the sandbox noticed: health checks start then
            health._registered(target_group)[state.instance.id] = at


def _abandon(backend: Any, group: Any, state: Any, at: float) -> None:
    from cdpoc.sandbox import health

    group.instance_states = [s for s in group.instance_states if s is not state]
    state.instance.__dict__.setdefault(health._TERMINATED, at)  # draining and health read this moment
    backend.ec2_backend.terminate_instances([state.instance.id])
    group.set_desired_capacity(group.desired_capacity)  # the group launches a replacement


# ---- patches


def _advance_first(original: Callable[..., Any]) -> Callable[..., Any]:
    def call_action(self: Any) -> Any:
        # under the simulation's lock: other services' requests complete hooks (and launch) as they advance
        with SIMULATION.lock:
            SIMULATION.advance(self.current_account, self.region)
            return original(self)

    call_action.cdpoc_scaleout = True  # type: ignore[attr-defined]
    return call_action


def _wrapping(original: Callable[..., Any], wrapper: Callable[..., Any]) -> Callable[..., Any]:
    def patched(*args: Any) -> Any:
        return wrapper(*args, original=original)

    return patched


def install() -> None:
    from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
    from moto.autoscaling.responses import AutoScalingResponse

    if getattr(vars(AutoScalingResponse)["call_action"], _INSTALLED, False):
        return
    MOTO.update(
        replace_autoscaling_group_instances=vars(FakeAutoScalingGroup)["replace_autoscaling_group_instances"],
        active_instances=vars(FakeAutoScalingGroup)["active_instances"],
        update_attached_target_groups=vars(AutoScalingBackend)["update_attached_target_groups"],
    )
    FakeAutoScalingGroup.replace_autoscaling_group_instances = _wrapping(  # type: ignore[method-assign]
        MOTO["replace_autoscaling_group_instances"], replace_autoscaling_group_instances
    )
    FakeAutoScalingGroup.active_instances = active_instances  # type: ignore[method-assign]
    AutoScalingBackend.update_attached_target_groups = _wrapping(  # type: ignore[method-assign]
        MOTO["update_attached_target_groups"], update_attached_target_groups
    )
    AutoScalingBackend.delete_lifecycle_hook = _wrapping(  # type: ignore[method-assign]
        vars(AutoScalingBackend)["delete_lifecycle_hook"], delete_lifecycle_hook
    )
    # every Auto Scaling request sees the hooks completed by now (describes, and launches counting capacity)
    AutoScalingResponse.call_action = _advance_first(vars(AutoScalingResponse)["call_action"])  # type: ignore[method-assign]
    SIMULATION.add_advancer(advance)
