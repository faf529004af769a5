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

from cdpoc.aws.errors import (
    DependencyViolation,
    aws_errors,
    call_or_none,
    caused_by,
    error_code,
    ignore_missing,
    repeat_safe,
)
from cdpoc.aws.handler import Handler, observed
from cdpoc.aws.ownership import NOT_MANAGED, ownership, ownership_changes, refuse_not_ours, tags_change, wanted_tags
from cdpoc.aws.run import COMPONENT_TAG, STACK_TAG, AwsRun, paginate, tag_list, tag_map
from cdpoc.errors import AwsError, ConflictError, WaitTimeout
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import Ref, Spec, entry_of, field_change, shown, spec_of
from cdpoc.stack.names import iam_path
from cdpoc.stack.specs.iam import InstanceProfileSpec, RoleSpec

T = TypeVar("T")

NOT_FOUND = ("NoSuchEntity",)
# What a managed policy attachment is shown as in a plan ("managed_policies[arn]: (none) → attached").
ATTACHED = "attached"

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
# RunInstances, as terraform-provider-aws retries it (internal/service/ec2/ec2_instance.go, resourceInstanceCreate,
# for iamPropagationTimeout): InvalidParameterValue "Invalid IAM Instance Profile" (the profile is not visible
# yet) and " has no associated IAM Roles" (its role is not, though AddRoleToInstanceProfile returned). Any
# other InvalidParameterValue (an instance type, a subnet) is a real mistake.
RUN_INSTANCES_PROPAGATION: tuple[tuple[str, str], ...] = (
    ("InvalidParameterValue", "invalid iam instance profile"),
    ("InvalidParameterValue", "has no associated iam roles"),
)
# CreateDeploymentGroup, as terraform-provider-aws retries it (internal/service/deploy/deployment_group.go,
# resourceDeploymentGroupCreate, 5 minutes): InvalidRoleException by its code, and InvalidTriggerConfigException
# whose message names the "Topic ARN" (CodeDeploy cannot publish to the trigger's SNS topic with the new role yet).
CREATE_DEPLOYMENT_GROUP_PROPAGATION: tuple[tuple[str, str], ...] = (
    ("InvalidRoleException", ""),
    ("InvalidTriggerConfigException", "topic arn"),
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


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def policy_change(spec: type[Spec], field: str, have: Mapping[str, Any] | None, want: str | None) -> Change:
    """The change of one policy document: `have` as observed (normalized), `want` the spec's JSON text
    (None: the policy should not exist). Where both exist the text shows only the statements that differ
    (a whole document would bury them), each side as normalized JSON."""
    wanted = normalize_policy(want)
    if have is not None and wanted is not None:
        gone = [st for st in have["Statement"] if st not in wanted["Statement"]]
        added = [st for st in wanted["Statement"] if st not in have["Statement"]]
        if gone or added:
            text = f"{field}: statements {_compact(gone)} → {_compact(added)}"
        else:
            text = f"{field}: Version {have['Version'] or '(none)'} → {wanted['Version'] or '(none)'}"
    else:
        text = f"{field}: {_compact(have) if have else '(none)'} → {_compact(wanted) if wanted else '(none)'}"
    return field_change(spec, field, have, want, text=text)


# --- eventual consistency -----------------------------------------------------------------------


def _client_error(exc: BaseException | None) -> botocore.exceptions.ClientError | None:
    """The ClientError behind `exc`, which may be wrapped by aws_errors (raise ... from)."""
    while exc is not None:
        if isinstance(exc, botocore.exceptions.ClientError):
            return exc
        exc = exc.__cause__
    return None


def is_propagation_error(exc: BaseException, errors: Sequence[tuple[str, str]] = PROPAGATION_ERRORS) -> bool:
    """True for exactly the errors AWS gives while a new role or instance profile is not usable yet: `errors`,
    (code, lower-case message fragment) pairs, the call's own where it has them."""
    error = _client_error(exc)
    if error is None:
        return False
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return any(code == wanted and text in message for wanted, text in errors)


def retry_iam_propagation(
    run: AwsRun, what: str, call: Callable[[], T], errors: Sequence[tuple[str, str]] = PROPAGATION_ERRORS
) -> T:
    """Run `call`, retrying IAM propagation errors (`errors`: by code and message) with jitter for
    run.waits.iam_propagation.

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
            if not is_propagation_error(exc, errors):
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


def _ownership_changes(
    run: AwsRun, spec: type[Spec], res: Resource, found: Observed, what: str
) -> tuple[list[Change], list[Change]]:
    """(conflicts, tag changes): a role or profile that is not ours is refused; ours missing a tag
    (the region tag included) gets a `tags` change."""
    conflicts = [c for c in ownership_changes(run, res, found, what) if not c.in_place]
    if conflicts:
        return conflicts, []
    have = found.attrs.get("tags", {})
    return [], tags_change(spec, have, _missing_tags(run, res, have))


def _ours(run: AwsRun, tags: Mapping[str, str]) -> bool:
    return tags.get(STACK_TAG) == run.stack and not _other_region(run, tags)


def _refuse_unless_adoptable(
    run: AwsRun, res: Resource, what: str, tags: Mapping[str, str], path: str, wanted_path: str
) -> None:
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
    if path != wanted_path:
        raise ConflictError(
            f"{what} {res.name} exists at path {path}, not under {wanted_path}",
            f"Delete it (IAM cannot move a {what} to another path) and re-run `cdpoc up`.",
        )


# --- roles --------------------------------------------------------------------------------------


class RoleHandler(Handler):
    kind = "iam_role"
    label = "IAM role"
    arn_types = ("iam:role",)
    spec_type = RoleSpec

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
            description=role.get("Description", ""),
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
        role = self._listed(run, spec_of(res, RoleSpec).path).get(res.name)
        return self._inspect(run, res.key, role) if role else None

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, RoleSpec)
        conflicts, changes = _ownership_changes(run, RoleSpec, res, found, "role")
        if conflicts:
            return conflicts
        if found.attrs["path"] != spec.path:
            changes.append(field_change(RoleSpec, "path", found.attrs["path"], spec.path))
        if found.attrs["description"] != spec.description:
            changes.append(field_change(RoleSpec, "description", found.attrs["description"], spec.description))
        if found.attrs["trust"] != normalize_policy(spec.assume_role_policy):
            changes.append(policy_change(RoleSpec, "assume_role_policy", found.attrs["trust"], spec.assume_role_policy))
        have_inline: Mapping[str, Any] = found.attrs["inline"]
        for name in sorted({*have_inline, *spec.inline_policies}):
            wanted = spec.inline_policies.get(name)
            if have_inline.get(name) != normalize_policy(wanted):
                changes.append(policy_change(RoleSpec, f"inline_policies[{name}]", have_inline.get(name), wanted))
        wanted_managed, have_managed = set(spec.managed_policies), set(found.attrs["managed"])
        changes.extend(
            field_change(RoleSpec, f"managed_policies[{arn}]", None, ATTACHED)
            for arn in sorted(wanted_managed - have_managed)
        )
        changes.extend(
            field_change(RoleSpec, f"managed_policies[{arn}]", ATTACHED, None)
            for arn in sorted(have_managed - wanted_managed)
        )
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, RoleSpec)
        iam = _iam(run)
        try:
            with aws_errors(f"creating IAM role {res.name}"):
                role = iam.create_role(
                    RoleName=res.name,
                    Path=spec.path,
                    AssumeRolePolicyDocument=spec.assume_role_policy,
                    Description=spec.description,
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
            description=spec.description,
            trust=normalize_policy(spec.assume_role_policy),
            managed=(),
            inline={},
            **_ownership(run, _iam_tags(run, res)),
        )
        return self.converge(run, res, found, deps)

    def _adopt(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        """The role exists (a race, or it is outside our path): take it over only if it is ours."""
        with aws_errors(f"reading IAM role {res.name}"):
            role = _iam(run).get_role(RoleName=res.name)["Role"]
        _refuse_unless_adoptable(run, res, "role", self._tags(run, role), role["Path"], spec_of(res, RoleSpec).path)
        return self.adopt(run, res, self._inspect(run, res.key, role), deps, "IAM role")

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        iam, name = _iam(run), found.id
        tags = dict(found.attrs.get("tags", {}))
        description = found.attrs["description"]
        trust = found.attrs["trust"]
        inline = dict(found.attrs["inline"])
        managed = set(found.attrs["managed"])
        for change in changes:
            policy_name = entry_of(change, "inline_policies")
            arn = entry_of(change, "managed_policies")
            if change.field == "tags":
                with aws_errors(f"tagging role {name}"):
                    iam.tag_role(RoleName=name, Tags=tag_list(change.new))
                tags.update(change.new)
            elif change.field == "description":
                with aws_errors(f"updating the description of role {name}"):
                    iam.update_role(RoleName=name, Description=change.new)
                description = change.new
            elif change.field == "assume_role_policy":
                with aws_errors(f"updating the trust policy of role {name}"):
                    iam.update_assume_role_policy(RoleName=name, PolicyDocument=change.new)
                trust = normalize_policy(change.new)
            elif policy_name is not None and change.new is not None:
                with aws_errors(f"writing inline policy {policy_name} of role {name}"):
                    iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=change.new)
                inline[policy_name] = normalize_policy(change.new)
            elif policy_name is not None:
                _detach_or_delete(
                    f"deleting inline policy {policy_name} of role {name}",
                    iam.delete_role_policy,
                    RoleName=name,
                    PolicyName=policy_name,
                )
                inline.pop(policy_name, None)
            elif arn is not None and change.new is not None:
                with aws_errors(f"attaching {arn} to role {name}"):
                    iam.attach_role_policy(RoleName=name, PolicyArn=arn)
                managed.add(arn)
            elif arn is not None:
                _detach_or_delete(
                    f"detaching {arn} from role {name}", iam.detach_role_policy, RoleName=name, PolicyArn=arn
                )
                managed.discard(arn)
        return observed(
            res,
            self.kind,
            name,
            arn=found.attrs["arn"],
            path=found.attrs["path"],
            description=description,
            trust=trust,
            managed=tuple(sorted(managed)),
            inline=inline,
            **_ownership(run, tags),
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
    spec_type = InstanceProfileSpec

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
        profile = self._listed(run, spec_of(res, InstanceProfileSpec).path).get(res.name)
        return self._observe(run, res.key, profile) if profile else None

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, InstanceProfileSpec)
        conflicts, changes = _ownership_changes(run, InstanceProfileSpec, res, found, "instance profile")
        if conflicts:
            return conflicts
        if found.attrs["path"] != spec.path:
            changes.append(field_change(InstanceProfileSpec, "path", found.attrs["path"], spec.path))
        role = spec.role.value(deps)
        if found.attrs["roles"] != (role,):
            have = ", ".join(found.attrs["roles"]) or None
            text = f"role: {shown(have)} → {spec.role.shown(deps)}"
            changes.append(field_change(InstanceProfileSpec, "role", have, role or spec.role, text=text))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, InstanceProfileSpec)
        try:
            with aws_errors(f"creating instance profile {res.name}"):
                profile = _iam(run).create_instance_profile(
                    InstanceProfileName=res.name, Path=spec.path, Tags=tag_list(_iam_tags(run, res))
                )["InstanceProfile"]
        except Exception as exc:
            if not caused_by(exc, "EntityAlreadyExists"):
                raise
            with aws_errors(f"reading instance profile {res.name}"):
                profile = _iam(run).get_instance_profile(InstanceProfileName=res.name)["InstanceProfile"]
            _refuse_unless_adoptable(run, res, "instance profile", self._tags(run, profile), profile["Path"], spec.path)
            return self.adopt(run, res, self._observe(run, res.key, profile), deps, "instance profile")
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
        return self.converge(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        iam, name = _iam(run), found.id
        tags = dict(found.attrs.get("tags", {}))
        roles = tuple(found.attrs["roles"])
        for change in changes:
            if change.field == "tags":
                with aws_errors(f"tagging instance profile {name}"):
                    iam.tag_instance_profile(InstanceProfileName=name, Tags=tag_list(change.new))
                tags.update(change.new)
            elif change.field == "role":
                role = change.new.need(deps) if isinstance(change.new, Ref) else str(change.new)
                self._hold_only(run, name, roles, role)
                roles = (role,)
        return observed(
            res,
            self.kind,
            name,
            arn=found.attrs["arn"],
            path=found.attrs["path"],
            roles=roles,
            **_ownership(run, tags),
        )

    def _hold_only(self, run: AwsRun, name: str, roles: Sequence[str], role: str) -> None:
        """Make the profile hold `role` and nothing else."""
        iam = _iam(run)
        # A profile holds at most one role: make room before adding ours.
        for other in roles:
            if other != role:
                _detach_or_delete(
                    f"removing role {other} from instance profile {name}",
                    iam.remove_role_from_instance_profile,
                    InstanceProfileName=name,
                    RoleName=other,
                )
        if role not in roles:
            # A profile holds one role: a retry after a lost answer is refused with LimitExceeded.
            repeat_safe(
                f"adding role {role} to instance profile {name}",
                iam.add_role_to_instance_profile,
                ("LimitExceeded",),
                lambda: role in self._roles_in(run, name),
                InstanceProfileName=name,
                RoleName=role,
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
