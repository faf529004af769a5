"""IAM roles and instance profiles, policy comparison, and the retry for IAM's eventual consistency.

Roles and profiles live under the stack's IAM path (cdpoc.stack.names.iam_path), so one ListRoles /
ListInstanceProfiles with PathPrefix finds them all. Policies are compared parsed and normalized
(a single string equals a one-element list; order does not matter), so a second `up` changes nothing.
`retry_iam_propagation` is for other areas too: RunInstances, CreateAutoScalingGroup,
CreateDeploymentGroup and CreatePipeline refuse a fresh role or profile for a while.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import botocore.exceptions

from cdpoc.aws.base import (
    COMPONENT_TAG,
    NOT_MANAGED,
    STACK_TAG,
    AwsRun,
    DependencyViolation,
    Handler,
    aws_errors,
    call_or_none,
    caused_by,
    error_code,
    ignore_missing,
    observed,
    ownership,
    ownership_changes,
    paginate,
    refuse_not_ours,
    repeat_safe,
    tag_list,
    tag_map,
    wanted_tags,
)
from cdpoc.errors import AwsError, ConflictError, WaitTimeout
from cdpoc.model import Change, Observed, Resource
from cdpoc.stack.names import iam_path

T = TypeVar("T")

NOT_FOUND = ("NoSuchEntity",)

# (error code, lower-case text its message must contain) that mean "IAM has not propagated yet".
# Codes alone are not enough: InvalidParameterValue and ValidationError also mean real mistakes.
PROPAGATION_ERRORS: tuple[tuple[str, str], ...] = (
    ("InvalidParameterValue", "invalid iam instance profile"),  # RunInstances
    ("InvalidParameterValue", "iaminstanceprofile"),  # CreateLaunchTemplate / RunInstances
    ("ValidationError", "invalid iam instance profile"),  # CreateAutoScalingGroup
    ("InvalidRoleException", ""),  # CodeDeploy CreateDeploymentGroup: "cannot be assumed"
    ("InvalidStructureException", "not authorized"),  # CreatePipeline
    ("InvalidStructureException", "unable to assume"),  # CreatePipeline
)


# --- policy documents -------------------------------------------------------------------------


def _listed(value: Any) -> list[Any]:
    return sorted(value, key=json.dumps) if isinstance(value, list | tuple) else [value]


def _normalize_statement(statement: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in statement.items():
        if key in ("Action", "NotAction", "Resource", "NotResource"):
            result[key] = _listed(value)
        elif key in ("Principal", "NotPrincipal") and isinstance(value, Mapping):
            result[key] = {k: _listed(v) for k, v in value.items()}
        elif key == "Condition":
            result[key] = {op: {k: _listed(v) for k, v in keys.items()} for op, keys in value.items()}
        else:
            result[key] = value
    return result


def normalize_policy(policy: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    """A policy document in one canonical form, so that equal policies compare equal however written."""
    if policy is None or policy == "":
        return None
    document = json.loads(policy) if isinstance(policy, str) else policy
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    normalized = [_normalize_statement(s) for s in statements]
    return {
        "Version": document.get("Version", ""),
        "Statement": sorted(normalized, key=lambda s: json.dumps(s, sort_keys=True)),
    }


def same_policy(a: Mapping[str, Any] | str | None, b: Mapping[str, Any] | str | None) -> bool:
    return normalize_policy(a) == normalize_policy(b)


# --- eventual consistency -----------------------------------------------------------------------


def _client_error(exc: BaseException | None) -> botocore.exceptions.ClientError | None:
    """The ClientError behind `exc`, which may be wrapped by aws_errors (raise ... from)."""
    while exc is not None:
        if isinstance(exc, botocore.exceptions.ClientError):
            return exc
        exc = exc.__cause__
    return None


def is_propagation_error(exc: BaseException) -> bool:
    """True for exactly the errors AWS gives while a new role or instance profile is not usable yet."""
    error = _client_error(exc)
    if error is None:
        return False
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return any(code == wanted and text in message for wanted, text in PROPAGATION_ERRORS)


def retry_iam_propagation(run: AwsRun, what: str, call: Callable[[], T]) -> T:
    """Run `call`, retrying IAM propagation errors (by code and message) with jitter for run.waits.iam_propagation.

    Any other error is raised at once. Pauses go through run.pause, so Ctrl-C stops the wait.
    """
    limit = run.waits.iam_propagation
    deadline = time.monotonic() + limit
    delay = run.waits.poll_initial
    while True:
        run.check_cancelled()
        try:
            return call()
        except Exception as exc:
            if not is_propagation_error(exc):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = _client_error(exc)
                detail = f"{error_code(error)}: {error.response['Error'].get('Message', '')}" if error else str(exc)
                raise WaitTimeout(
                    f"{what}: IAM still refuses the new role or instance profile after {limit:.0f}s ({detail})",
                    "IAM changes usually propagate within two minutes; re-run the command to try again.",
                ) from exc
            run.pause(min(delay * random.uniform(0.5, 1.5), remaining))
            delay = min(delay * 2, run.waits.poll_max)


# --- helpers --------------------------------------------------------------------------------------


def _iam(run: AwsRun) -> Any:
    return run.client("iam")


def _detach_or_delete(what: str, call: Callable[..., Any], **params: Any) -> None:
    """ignore_missing, and a resource still in use (DeleteConflict) becomes DependencyViolation (retried)."""
    try:
        ignore_missing(what, call, NOT_FOUND, **params)
    except AwsError as exc:
        if caused_by(exc, "DeleteConflict"):
            raise DependencyViolation(exc.message) from exc
        raise


def _under_path(run: AwsRun, path: str, operation: str, key: str, name: str, what: str) -> dict[str, dict[str, Any]]:
    """{name: item} of one IAM listing, only the items exactly at `path` (not deeper); read once per run."""

    def listing() -> dict[str, dict[str, Any]]:
        items = paginate(run, operation, key, service="iam", what=f"listing {what} under {path}", PathPrefix=path)
        return {item[name]: item for item in items if item["Path"] == path}

    return run.memo(f"iam:{operation}:{path}", listing)


# --- ownership across regions ----------------------------------------------------------------------
# IAM is global while a stack lives in one region: the same stack name in two regions would share
# (and one `down` would delete) the other's roles. The region tag says which stack of that name owns
# an IAM resource; one made before the tag existed counts as this region's and gets the tag.
REGION_TAG = "cdpoc:region"


def _iam_tags(run: AwsRun, res: Resource) -> dict[str, str]:
    return {**wanted_tags(run, res), REGION_TAG: run.region}


def _missing_tags(run: AwsRun, res: Resource, have: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in _iam_tags(run, res).items() if have.get(k) != v}


def _other_region(run: AwsRun, tags: Mapping[str, str]) -> str:
    """The region of the stack the tags name, when it is not this run's ("" for this region or untagged)."""
    region = tags.get(REGION_TAG, run.region)
    return "" if region == run.region else region


def _ownership(run: AwsRun, tags: Mapping[str, str]) -> dict[str, Any]:
    """ownership(), where the same stack name in another region is another stack."""
    attrs = ownership(tags)
    elsewhere = _other_region(run, tags)
    if attrs["stack"] and elsewhere:
        attrs["stack"] = f"{attrs['stack']} in {elsewhere}"
    return attrs


def _ownership_changes(run: AwsRun, res: Resource, found: Observed, what: str) -> list[Change]:
    changes = ownership_changes(run, res, found, what)
    if not changes and _missing_tags(run, res, found.attrs.get("tags", {})):
        changes.append(Change("tags differ"))
    return changes


def _ours(run: AwsRun, tags: Mapping[str, str]) -> bool:
    return tags.get(STACK_TAG) == run.stack and not _other_region(run, tags)


def _refuse_unless_adoptable(run: AwsRun, res: Resource, what: str, tags: Mapping[str, str], path: str) -> None:
    """Take over an existing role or profile only when it is this stack's (in this region) and under the
    stack's path."""
    refuse_not_ours(run, res, what, tags, component=False, untagged=NOT_MANAGED)
    elsewhere = _other_region(run, tags)
    if elsewhere:
        raise ConflictError(
            f"{what} {res.name} belongs to stack {run.stack} in {elsewhere} (IAM names are global)",
            f"Give the stack in {run.region} another `name` in the config: two stacks of one name cannot "
            "share an account's IAM roles.",
        )
    if path != res.props["path"]:
        raise ConflictError(
            f"{what} {res.name} exists at path {path}, not under {res.props['path']}",
            f"Delete it (IAM cannot move a {what} to another path) and re-run `cdpoc up`.",
        )


# --- roles --------------------------------------------------------------------------------------


class RoleHandler(Handler):
    kind = "iam_role"
    label = "IAM role"
    arn_types = ("iam:role",)

    def _listed(self, run: AwsRun, path: str) -> dict[str, dict[str, Any]]:
        return _under_path(run, path, "list_roles", "Roles", "RoleName", "IAM roles")

    def _tags(self, run: AwsRun, role: Mapping[str, Any]) -> dict[str, str]:
        # ListRoles leaves tags out on AWS; ask only when the listing has none.
        if "Tags" in role:
            return tag_map(role["Tags"])
        with aws_errors(f"reading the tags of role {role['RoleName']}"):
            return tag_map(_iam(run).list_role_tags(RoleName=role["RoleName"])["Tags"])

    def _inspect(self, run: AwsRun, key: str, role: Mapping[str, Any]) -> Observed:
        name = role["RoleName"]
        iam = _iam(run)
        tags = self._tags(run, role)
        with aws_errors(f"reading the policies of role {name}"):
            managed = sorted(
                p["PolicyArn"]
                for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
                for p in page["AttachedPolicies"]
            )
            inline_names = [
                n
                for page in iam.get_paginator("list_role_policies").paginate(RoleName=name)
                for n in page["PolicyNames"]
            ]
            inline = {
                n: normalize_policy(iam.get_role_policy(RoleName=name, PolicyName=n)["PolicyDocument"])
                for n in inline_names
            }
        return observed(
            key,
            self.kind,
            name,
            arn=role["Arn"],
            path=role["Path"],
            trust=normalize_policy(role.get("AssumeRolePolicyDocument")),
            managed=tuple(managed),
            inline=inline,
            **_ownership(run, tags),
        )

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        result = {}
        for name, role in self._listed(run, iam_path(run.stack)).items():
            tags = self._tags(run, role)
            component = tags.get(COMPONENT_TAG)
            if _ours(run, tags) and component:
                result[component] = observed(component, self.kind, name, arn=role["Arn"], path=role["Path"])
        return result

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        role = self._listed(run, res.props["path"]).get(res.name)
        return self._inspect(run, res.key, role) if role else None

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = _ownership_changes(run, res, found, "role")
        if any(not c.in_place for c in changes):
            return changes
        if found.attrs["trust"] != normalize_policy(res.props["assume_role_policy"]):
            changes.append(Change("trust policy differs"))
        have_inline: Mapping[str, Any] = found.attrs["inline"]
        for name, policy in res.props["inline_policies"].items():
            if name not in have_inline:
                changes.append(Change(f"add inline policy {name}"))
            elif have_inline[name] != normalize_policy(policy):
                changes.append(Change(f"inline policy {name} differs"))
        changes.extend(
            Change(f"remove inline policy {n}") for n in have_inline if n not in res.props["inline_policies"]
        )
        wanted, have = set(res.props["managed_policies"]), set(found.attrs["managed"])
        changes.extend(Change(f"attach {arn}") for arn in sorted(wanted - have))
        changes.extend(Change(f"detach {arn}") for arn in sorted(have - wanted))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        iam = _iam(run)
        try:
            with aws_errors(f"creating IAM role {res.name}"):
                role = iam.create_role(
                    RoleName=res.name,
                    Path=res.props["path"],
                    AssumeRolePolicyDocument=json.dumps(res.props["assume_role_policy"]),
                    Description=res.props["description"],
                    Tags=tag_list(_iam_tags(run, res)),
                )["Role"]
        except Exception as exc:
            if not caused_by(exc, "EntityAlreadyExists"):
                raise
            return self._adopt(run, res, deps)
        run.wait_with("iam", "role_exists", f"IAM role {res.name} to exist", RoleName=res.name)
        found = observed(
            res,
            self.kind,
            res.name,
            arn=role["Arn"],
            path=role["Path"],
            trust=normalize_policy(res.props["assume_role_policy"]),
            managed=(),
            inline={},
            **_ownership(run, _iam_tags(run, res)),
        )
        return self.update(run, res, found, deps)

    def _adopt(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        """The role exists (a race, or it is outside our path): take it over only if it is ours."""
        with aws_errors(f"reading IAM role {res.name}"):
            role = _iam(run).get_role(RoleName=res.name)["Role"]
        _refuse_unless_adoptable(run, res, "role", self._tags(run, role), role["Path"])
        return self.update(run, res, self._inspect(run, res.key, role), deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        iam, name = _iam(run), found.id
        missing = _missing_tags(run, res, found.attrs.get("tags", {}))
        if missing:
            with aws_errors(f"tagging role {name}"):
                iam.tag_role(RoleName=name, Tags=tag_list(missing))
        if found.attrs["trust"] != normalize_policy(res.props["assume_role_policy"]):
            with aws_errors(f"updating the trust policy of role {name}"):
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(res.props["assume_role_policy"]))
        have_inline: Mapping[str, Any] = found.attrs["inline"]
        for policy_name, policy in res.props["inline_policies"].items():
            if have_inline.get(policy_name) != normalize_policy(policy):
                with aws_errors(f"writing inline policy {policy_name} of role {name}"):
                    iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
        for policy_name in have_inline:
            if policy_name not in res.props["inline_policies"]:
                _detach_or_delete(
                    f"deleting inline policy {policy_name} of role {name}",
                    iam.delete_role_policy,
                    RoleName=name,
                    PolicyName=policy_name,
                )
        wanted, have = set(res.props["managed_policies"]), set(found.attrs["managed"])
        for arn in sorted(wanted - have):
            with aws_errors(f"attaching {arn} to role {name}"):
                iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        for arn in sorted(have - wanted):
            _detach_or_delete(f"detaching {arn} from role {name}", iam.detach_role_policy, RoleName=name, PolicyArn=arn)
        return observed(
            res,
            self.kind,
            name,
            arn=found.attrs["arn"],
            path=found.attrs["path"],
            trust=normalize_policy(res.props["assume_role_policy"]),
            managed=tuple(sorted(wanted)),
            inline={n: normalize_policy(p) for n, p in res.props["inline_policies"].items()},
            **_ownership(run, {**found.attrs.get("tags", {}), **missing}),
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        """IAM refuses to delete a role still in a profile or holding policies: clear those first."""
        iam, name = _iam(run), found.id
        try:
            with aws_errors(f"reading what role {name} is attached to"):
                profiles = [
                    p["InstanceProfileName"]
                    for page in iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name)
                    for p in page["InstanceProfiles"]
                ]
                inline = [
                    n
                    for page in iam.get_paginator("list_role_policies").paginate(RoleName=name)
                    for n in page["PolicyNames"]
                ]
                managed = [
                    p["PolicyArn"]
                    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
                    for p in page["AttachedPolicies"]
                ]
        except Exception as exc:
            if caused_by(exc, *NOT_FOUND):
                return
            raise
        for profile in profiles:
            _detach_or_delete(
                f"removing role {name} from instance profile {profile}",
                iam.remove_role_from_instance_profile,
                InstanceProfileName=profile,
                RoleName=name,
            )
        for policy_name in inline:
            _detach_or_delete(
                f"deleting inline policy {policy_name} of role {name}",
                iam.delete_role_policy,
                RoleName=name,
                PolicyName=policy_name,
            )
        for arn in managed:
            _detach_or_delete(f"detaching {arn} from role {name}", iam.detach_role_policy, RoleName=name, PolicyArn=arn)
        _detach_or_delete(f"deleting IAM role {name}", iam.delete_role, RoleName=name)

    def describe(self, found: Observed) -> str:
        return str(found.attrs.get("arn") or found.id)


# --- instance profiles ----------------------------------------------------------------------------


class InstanceProfileHandler(Handler):
    kind = "instance_profile"
    label = "instance profile"
    arn_types = ("iam:instance-profile",)

    def _listed(self, run: AwsRun, path: str) -> dict[str, dict[str, Any]]:
        return _under_path(
            run, path, "list_instance_profiles", "InstanceProfiles", "InstanceProfileName", "instance profiles"
        )

    def _tags(self, run: AwsRun, profile: Mapping[str, Any]) -> dict[str, str]:
        # ListInstanceProfiles leaves tags out on AWS; GetInstanceProfile carries them.
        if "Tags" in profile:
            return tag_map(profile["Tags"])
        name = profile["InstanceProfileName"]
        with aws_errors(f"reading instance profile {name}"):
            return tag_map(_iam(run).get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Tags"))

    def _observe(self, run: AwsRun, key: str, profile: Mapping[str, Any]) -> Observed:
        tags = self._tags(run, profile)
        return observed(
            key,
            self.kind,
            profile["InstanceProfileName"],
            arn=profile["Arn"],
            path=profile["Path"],
            roles=tuple(r["RoleName"] for r in profile.get("Roles", [])),
            **_ownership(run, tags),
        )

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        result = {}
        for profile in self._listed(run, iam_path(run.stack)).values():
            found = self._observe(run, "", profile)
            component = found.attrs["component"]
            if found.attrs["stack"] == run.stack and component:
                result[component] = observed(component, self.kind, found.id, **found.attrs)
        return result

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        profile = self._listed(run, res.props["path"]).get(res.name)
        return self._observe(run, res.key, profile) if profile else None

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = _ownership_changes(run, res, found, "instance profile")
        if any(not c.in_place for c in changes):
            return changes
        role = deps.get(res.props["role"])
        wanted = role.id if role else f"{res.props['role']} (to be created)"
        if found.attrs["roles"] != (wanted,):
            have = ", ".join(found.attrs["roles"]) or "no role"
            changes.append(Change(f"holds {have}, should hold {wanted}"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        try:
            with aws_errors(f"creating instance profile {res.name}"):
                profile = _iam(run).create_instance_profile(
                    InstanceProfileName=res.name, Path=res.props["path"], Tags=tag_list(_iam_tags(run, res))
                )["InstanceProfile"]
        except Exception as exc:
            if not caused_by(exc, "EntityAlreadyExists"):
                raise
            with aws_errors(f"reading instance profile {res.name}"):
                profile = _iam(run).get_instance_profile(InstanceProfileName=res.name)["InstanceProfile"]
            _refuse_unless_adoptable(run, res, "instance profile", self._tags(run, profile), profile["Path"])
            return self.update(run, res, self._observe(run, res.key, profile), deps)
        run.wait_with(
            "iam", "instance_profile_exists", f"instance profile {res.name} to exist", InstanceProfileName=res.name
        )
        found = observed(
            res,
            self.kind,
            res.name,
            arn=profile["Arn"],
            path=profile["Path"],
            roles=(),
            **_ownership(run, _iam_tags(run, res)),
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
        iam, name = _iam(run), found.id
        role = deps[res.props["role"]].id
        missing = _missing_tags(run, res, found.attrs.get("tags", {}))
        if missing:
            with aws_errors(f"tagging instance profile {name}"):
                iam.tag_instance_profile(InstanceProfileName=name, Tags=tag_list(missing))
        # A profile holds at most one role: make room before adding ours.
        for other in found.attrs["roles"]:
            if other != role:
                _detach_or_delete(
                    f"removing role {other} from instance profile {name}",
                    iam.remove_role_from_instance_profile,
                    InstanceProfileName=name,
                    RoleName=other,
                )
        if role not in found.attrs["roles"]:
            # A profile holds one role: a retry after a lost answer is refused with LimitExceeded.
            repeat_safe(
                f"adding role {role} to instance profile {name}",
                iam.add_role_to_instance_profile,
                ("LimitExceeded",),
                lambda: role in self._roles_in(run, name),
                InstanceProfileName=name,
                RoleName=role,
            )
        return observed(
            res,
            self.kind,
            name,
            arn=found.attrs["arn"],
            path=found.attrs["path"],
            roles=(role,),
            **_ownership(run, {**found.attrs.get("tags", {}), **missing}),
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        iam, name = _iam(run), found.id
        try:
            with aws_errors(f"reading instance profile {name}"):
                roles = [
                    r["RoleName"]
                    for r in iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Roles", [])
                ]
        except Exception as exc:
            if caused_by(exc, *NOT_FOUND):
                return
            raise
        for role in roles:
            _detach_or_delete(
                f"removing role {role} from instance profile {name}",
                iam.remove_role_from_instance_profile,
                InstanceProfileName=name,
                RoleName=role,
            )
        _detach_or_delete(f"deleting instance profile {name}", iam.delete_instance_profile, InstanceProfileName=name)

    def _roles_in(self, run: AwsRun, name: str) -> list[str]:
        reply = call_or_none(
            f"reading instance profile {name}", _iam(run).get_instance_profile, NOT_FOUND, InstanceProfileName=name
        )
        return [r["RoleName"] for r in reply["InstanceProfile"].get("Roles", [])] if reply else []

    def describe(self, found: Observed) -> str:
        return str(found.attrs.get("arn") or found.id)


HANDLERS: tuple[Handler, ...] = (RoleHandler(), InstanceProfileHandler())
