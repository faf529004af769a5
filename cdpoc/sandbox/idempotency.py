"""Idempotent creates in the sandbox, as AWS documents them and cdpoc relies on them.

When a create's answer is lost (a connection reset), botocore sends the same request again, and cdpoc
re-runs creates with a deterministic ClientToken (cdpoc.aws.run.AwsRun.create_with_token). AWS answers
such a repeat with its first result; moto 5.2.5 does not. Measured against moto 5.2.5, calling each
create twice with the same arguments:

- RunInstances, CreateRouteTable, CreateNetworkAcl, CreateVpcEndpoint, CreateLaunchTemplateVersion
  ignore ClientToken: the repeat makes a second resource, and the same token with other parameters makes
  a third instead of failing with IdempotentParameterMismatch.
- RunInstances' answer always says "pending", so a replay would hide that the instance was terminated
  (AWS: the state now, which create_with_token reads).
- CreateNatGateway ignores it too: the repeat fails (Resource.AlreadyAssociated, the Elastic IP is taken),
  and the same token in another subnet with another address makes a second gateway.
- CreateLaunchTemplate ignores it: the repeat fails with InvalidLaunchTemplateName.AlreadyExistsException.
- ELBv2 CreateLoadBalancer makes a second load balancer of the same name, with the same settings or not
  (AWS: the existing one, or DuplicateLoadBalancerName).
- CreateTargetGroup refuses a repeat with identical settings (DuplicateTargetGroupName; AWS returns the
  existing group).
- CreateListener makes a second listener on a port already in use, with the same settings or not
  (AWS: the existing listener, or DuplicateListener).

What AWS does, modelled here:
- EC2 (docs "Ensuring idempotency in Amazon EC2 API requests"): a repeat with the same token and the same
  parameters returns the first result, whose resource may since have changed state or been deleted
  ("the only information that might vary in the response is the state"; a token is valid for at least
  24 hours after the instance's termination). The same token with other parameters fails with
  IdempotentParameterMismatch. Tokens are per account, region and operation; a request that failed
  does not use its token up. The token window is not modelled: the sandbox remembers a token until
  moto's reset.
- ELBv2 CreateLoadBalancer / CreateTargetGroup / CreateListener are idempotent: "If you attempt to
  create multiple ... with the same settings, each call succeeds" and returns the existing resource.
  A name (a listener: a port on the load balancer) in use with other settings fails with
  DuplicateLoadBalancerName / DuplicateTargetGroupName / DuplicateListener. Tags count as settings
  (AWS: "already exists and it is configured with different tags"). The settings compared are those
  the resource was created with (an omitted optional parameter differs from its default given
  explicitly); changes made after creation (SetSubnets, ModifyTargetGroup, ...) are not seen.

Records live on moto's backend and model objects, so moto's reset clears them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdpoc.sandbox.patching import replace_operations

# EC2 operations cdpoc calls with a ClientToken, by moto's Response mixin that defines each.
EC2_TOKEN_OPERATIONS = {
    "InstanceResponse": ("run_instances",),
    "NatGateways": ("create_nat_gateway",),
    "RouteTables": ("create_route_table",),
    "NetworkACLs": ("create_network_acl",),
    "VPCs": ("create_vpc_endpoint",),
    "LaunchTemplates": ("create_launch_template", "create_launch_template_version"),
}
ELBV2_OPERATIONS = ("create_load_balancer", "create_target_group", "create_listener")

_TOKENS_ATTR = "cdpoc_client_tokens"  # on an EC2 backend: {(operation, token): _Answered}
_SETTINGS_ATTR = "cdpoc_created_with"  # on an ELBv2 model object: its creating request, canonical
# Parameters that do not make a request different: the token itself, and DryRun (which never creates).
_NOT_COMPARED = frozenset({"ClientToken", "DryRun"})
# moto renders RunInstances' answer as "pending" whatever the instance's state; a replay shows the state now.
_FIXED_FIRST_ANSWER = {"run_instances": "RunInstances.Reservation.Instances.Instance.State"}
_LB_DEFAULTS = {"Scheme": "internet-facing", "Type": "application", "IpAddressType": "ipv4"}


@dataclass(frozen=True)
class _Answered:
    request: str  # the canonical parameters of the request that used the token first
    result: Any  # moto's ActionResult: it holds the live model objects, so a replay shows their state now


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _idempotent_parameter_mismatch() -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(
        "IdempotentParameterMismatch",
        "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
    )


def _answer_once(operation: str, response: Any, original: Callable[[Any], Any]) -> Any:
    token = response._get_param("ClientToken")
    if not token or response._get_param("DryRun"):
        return original(response)
    answered: dict[tuple[str, str], _Answered] = response.ec2_backend.__dict__.setdefault(_TOKENS_ATTR, {})
    request = _canonical({k: v for k, v in response.params.items() if k not in _NOT_COMPARED})
    earlier = answered.get((operation, token))
    if earlier is not None:
        if earlier.request != request:
            raise _idempotent_parameter_mismatch()
        _show_current_state(response, operation)
        return earlier.result
    result = original(response)  # raises when the request fails: then the token is not used up
    answered[(operation, token)] = _Answered(request, result)
    return result


def _show_current_state(response: Any, operation: str) -> None:
    fixed = _FIXED_FIRST_ANSWER.get(operation)
    if fixed:
        # On this request's own Response object only: moto makes one per request.
        transformers = dict(response.RESPONSE_KEY_PATH_TO_TRANSFORMER)
        transformers.pop(fixed, None)
        response.RESPONSE_KEY_PATH_TO_TRANSFORMER = transformers


def _token_operation(operation: str) -> Callable[[Any, Any], Any]:
    def replay_by_token(self: Any, original: Callable[[Any], Any]) -> Any:
        return _answer_once(operation, self, original)

    replay_by_token.__name__ = replay_by_token.__qualname__ = operation
    return replay_by_token


# ---- ELBv2


def _tag_map(tags: Any) -> dict[str, str]:
    return {str(tag["Key"]): str(tag.get("Value", "")) for tag in tags or []}


def _current_tags(backend: Any, arn: str) -> dict[str, str]:
    return _tag_map(backend.tagging_service.list_tags_for_resource(arn).get("Tags"))


def _settings(params: Mapping[str, Any], *, leave_out: tuple[str, ...] = ()) -> str:
    return _canonical({k: v for k, v in params.items() if k not in {"Tags", *leave_out}})


def _load_balancer_settings(params: Mapping[str, Any]) -> str:
    settings = {**_LB_DEFAULTS, **{k: v for k, v in params.items() if k not in ("Name", "Tags")}}
    # A mapping that names only its subnet says what a plain subnet id says; neither list is ordered.
    mappings = list(settings.pop("SubnetMappings", None) or [])
    plain = [m["SubnetId"] for m in mappings if set(m) == {"SubnetId"}]
    subnets = [*(settings.pop("Subnets", None) or []), *plain]
    settings["Subnets"] = sorted(subnets)
    settings["SubnetMappings"] = sorted((m for m in mappings if set(m) != {"SubnetId"}), key=_canonical)
    settings["SecurityGroups"] = sorted(settings.get("SecurityGroups") or [])
    return _canonical(settings)


def _same_as_existing(backend: Any, existing: Any, arn: str, settings: str, tags: Any) -> bool:
    return getattr(existing, _SETTINGS_ATTR, None) == settings and _current_tags(backend, arn) == _tag_map(tags)


def create_load_balancer(self: Any, original: Callable[[Any], Any]) -> Any:
    from moto.core.responses import ActionResult
    from moto.elbv2.exceptions import DuplicateLoadBalancerName

    backend, params = self.elbv2_backend, self.params
    settings = _load_balancer_settings(params)
    existing = next((lb for lb in backend.load_balancers.values() if lb.name == params.get("Name")), None)
    if existing is None:
        result = original(self)
        setattr(result.result["LoadBalancers"][0], _SETTINGS_ATTR, settings)
        return result
    if not _same_as_existing(backend, existing, existing.arn, settings, params.get("Tags")):
        raise DuplicateLoadBalancerName()
    return ActionResult({"LoadBalancers": [existing]})


def create_target_group(self: Any, original: Callable[[Any], Any]) -> Any:
    from moto.core.responses import ActionResult
    from moto.elbv2.exceptions import DuplicateTargetGroupName

    backend, params = self.elbv2_backend, self.params
    settings = _settings(params)
    existing = next((tg for tg in backend.target_groups.values() if tg.name == params.get("Name")), None)
    if existing is None:
        result = original(self)
        setattr(result.result["TargetGroups"][0], _SETTINGS_ATTR, settings)
        return result
    if not _same_as_existing(backend, existing, existing.arn, settings, params.get("Tags")):
        raise DuplicateTargetGroupName()
    return ActionResult({"TargetGroups": [existing]})


def create_listener(self: Any, original: Callable[[Any], Any]) -> Any:
    from moto.core.responses import ActionResult
    from moto.elbv2.exceptions import DuplicateListenerError

    backend, params = self.elbv2_backend, self.params
    balancer = backend.load_balancers.get(params.get("LoadBalancerArn"))
    on_port = [
        listener
        for listener in (balancer.listeners.values() if balancer is not None else ())
        if str(listener.port) == str(params.get("Port"))
    ]
    settings = _settings(params)
    if not on_port:
        result = original(self)  # moto answers an unknown load balancer with LoadBalancerNotFound
        setattr(result.result["Listeners"][0], _SETTINGS_ATTR, settings)
        return result
    existing = on_port[0]
    if not _same_as_existing(backend, existing, existing.arn, settings, params.get("Tags")):
        raise DuplicateListenerError()
    return ActionResult({"Listeners": [existing]})


def install() -> None:
    """Replace moto's creates above with versions that answer a repeated request as AWS does."""
    from moto.ec2.responses.instances import InstanceResponse
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.responses.nat_gateways import NatGateways
    from moto.ec2.responses.network_acls import NetworkACLs
    from moto.ec2.responses.route_tables import RouteTables
    from moto.ec2.responses.vpcs import VPCs
    from moto.elbv2.responses import ELBV2Response

    mixins: dict[str, type] = {
        "InstanceResponse": InstanceResponse,
        "NatGateways": NatGateways,
        "RouteTables": RouteTables,
        "NetworkACLs": NetworkACLs,
        "VPCs": VPCs,
        "LaunchTemplates": LaunchTemplates,
    }
    for mixin, operations in EC2_TOKEN_OPERATIONS.items():
        replace_operations(mixins[mixin], *(_token_operation(operation) for operation in operations))
    replace_operations(ELBV2Response, create_load_balancer, create_target_group, create_listener)
