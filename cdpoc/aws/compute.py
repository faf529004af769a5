"""EC2 instances, the launch template and the Auto Scaling group.

The AMI id is read from the public SSM parameter (compute.ami_parameter) whenever an instance or a
launch template version is created, and never compared afterwards: a newer Amazon Linux release
must not make a second `up` replace running instances. An instance runs the user data it was
launched with (at its first boot), so a difference there is a conflict; the launch template's makes a
new default version, used by instances launched from then on.

Each handler compares its spec (cdpoc.stack.specs.compute) with what AWS shows field by field, and
update() makes exactly the calls for the fields the plan listed. User data is rendered by the pure
cdpoc.userdata from the spec's script description.

An instance declared with a data volume (MongoDB's) gets it as a second EBS volume, deleted with the
instance; when `down --keep-data` kept a snapshot of it, the volume is created from that snapshot,
which is deleted once the instance runs with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cdpoc.aws.errors import DependencyViolation, aws_errors, call_or_none, caused_by, ignore_missing, unless_listed
from cdpoc.aws.handler import Handler, observed
from cdpoc.aws.iam import RUN_INSTANCES_PROPAGATION, retry_iam_propagation
from cdpoc.aws.ownership import NOT_MANAGED, by_component, owner_attrs, refuse_not_ours, with_owner
from cdpoc.aws.run import COMPONENT_TAG, STACK_TAG, AwsRun, paginate, tag_map
from cdpoc.aws.snapshots import delete_snapshot, describe_snapshot, kept_snapshots, wait_for_snapshot
from cdpoc.errors import AwsError
from cdpoc.model import ORPHAN_PREFIX, Change, Observed, Resource, extra_key
from cdpoc.spec import Ref, Spec, field_change, shown, spec_of
from cdpoc.stack.specs.compute import AutoScalingGroupSpec, DataVolume, InstanceSpec, LaunchTemplateSpec
from cdpoc.userdata import Script, pending, render, summary

NOT_FOUND = (
    "InvalidInstanceID.NotFound",
    "InvalidAssociationID.NotFound",
    "InvalidAllocationID.NotFound",
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateName.NotFoundException",
)


# --- field changes --------------------------------------------------------------------------------


def _desired(value: Any, deps: Mapping[str, Observed | None]) -> Any:
    """A spec value as AWS would show it: Refs resolved; a Ref whose resource does not exist yet stays a Ref."""
    if isinstance(value, Ref):
        return value.value(deps) or value
    if isinstance(value, tuple):
        return tuple(_desired(item, deps) for item in value)
    return value


def _applied(value: Any, deps: Mapping[str, Observed]) -> Any:
    """A change's value when update() applies it: a Ref the plan could not resolve (its resource was still
    to be created) resolves now, the executor having created it first."""
    return value.need(deps) if isinstance(value, Ref) else value


def _display(value: Any, deps: Mapping[str, Observed | None]) -> Any:
    """A desired value for the plan's text: an unresolved Ref reads "(key to be created)"."""
    if isinstance(value, Ref):
        return value.shown(deps)
    if isinstance(value, tuple):
        return tuple(_display(item, deps) for item in value)
    return value


def _change(kind: type[Spec], field: str, old: Any, new: Any, deps: Mapping[str, Observed | None]) -> Change:
    return field_change(kind, field, old, new, f"{field}: {shown(old)} → {shown(_display(new, deps))}")


def _script_change(
    kind: type[Spec], script: Script | None, old: str, deps: Mapping[str, Observed | None]
) -> Change | None:
    """user_data, when the script as rendered now differs from `old` (shown by size and digest: too long
    to print). While a resource the script reads from does not exist yet, the change names it."""
    if script is None:
        return field_change(kind, "user_data", old, None, f"user_data: {summary(old)} → (none)") if old else None
    waiting = pending(script, deps)
    if waiting:
        return field_change(
            kind,
            "user_data",
            old,
            waiting[0],
            f"user_data: {summary(old)} → {script.template} once {', '.join(ref.key for ref in waiting)} exist",
        )
    wanted = render(script, deps)
    if wanted == old:
        return None
    return field_change(
        kind,
        "user_data",
        old,
        wanted,
        f"user_data: {summary(old, script.template)} → {summary(wanted, script.template)}",
    )


# --- shared helpers -------------------------------------------------------------------------------


def _ec2(run: AwsRun) -> Any:
    return run.client("ec2")


def _autoscaling(run: AwsRun) -> Any:
    return run.client("autoscaling")


def resolve_ami(run: AwsRun, parameter: str) -> str:
    """The current AMI id the public SSM parameter names (read once per run)."""

    def read() -> str:
        with aws_errors(f"reading the AMI id from SSM parameter {parameter}"):
            return str(run.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"])

    return run.memo(f"ami:{parameter}", read)


def find_ami(run: AwsRun, parameter: str) -> str | None:
    """The AMI id the SSM parameter names, or None when the region has no such parameter (or the name is
    not one SSM accepts); read before anything is created, so a wrong compute.ami_parameter costs nothing."""
    reply = call_or_none(
        f"reading the AMI id from SSM parameter {parameter}",
        run.client("ssm").get_parameter,
        ("ParameterNotFound", "ParameterVersionNotFound", "ValidationException"),
        Name=parameter,
    )
    return str(reply["Parameter"]["Value"]) if reply else None


# --- instances ------------------------------------------------------------------------------------

LIVE_STATES = ("pending", "running", "stopping", "stopped")
GONE_STATES = ("shutting-down", "terminated")
# Set by Auto Scaling on the instances it launches: those belong to their group, not to this handler.
AUTOSCALING_GROUP_TAG = "aws:autoscaling:groupName"


def _instance_attrs(instance: Mapping[str, Any]) -> dict[str, Any]:
    metadata = instance.get("MetadataOptions", {})
    return {
        "name": tag_map(instance.get("Tags")).get("Name", ""),
        "state": instance["State"]["Name"],
        "instance_type": instance.get("InstanceType", ""),
        "subnet": instance.get("SubnetId", ""),
        "security_groups": tuple(sorted(g["GroupId"] for g in instance.get("SecurityGroups", []))),
        "private_ip": instance.get("PrivateIpAddress", ""),
        "public_ip": instance.get("PublicIpAddress", ""),
        "profile_arn": instance.get("IamInstanceProfile", {}).get("Arn", ""),
        "metadata_options": {
            "HttpTokens": metadata.get("HttpTokens", ""),
            "HttpEndpoint": metadata.get("HttpEndpoint", ""),
            "InstanceMetadataTags": metadata.get("InstanceMetadataTags", ""),
        },
        "key_name": instance.get("KeyName", ""),
        "image": instance.get("ImageId", ""),
        "volumes": {
            m["DeviceName"]: m.get("Ebs", {}).get("VolumeId", "") for m in instance.get("BlockDeviceMappings", [])
        },
    }


def _data_volume_mapping(volume: DataVolume, snapshot_id: str) -> dict[str, Any]:
    """The data volume in RunInstances' block device mappings: new and empty, or made from a kept snapshot."""
    ebs: dict[str, Any] = {"VolumeType": volume.type, "DeleteOnTermination": True}
    if snapshot_id:
        # Size and encryption come from the snapshot (AWS takes no encryption setting for a restore).
        ebs["SnapshotId"] = snapshot_id
    else:
        ebs.update(VolumeSize=volume.size_gib, Encrypted=True)
    return {"DeviceName": volume.device, "Ebs": ebs}


class InstanceHandler(Handler):
    kind = "instance"
    label = "instance"
    spec_type = InstanceSpec
    # Root volumes go with their instance (DeleteOnTermination); the tagging API lists them for a while after.
    arn_types = ("ec2:instance", "ec2:volume")

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        filters = [*run.stack_filter(), {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
        reservations = paginate(
            run, "describe_instances", "Reservations", what="listing the stack's instances", Filters=filters
        )
        instances = [i for r in reservations for i in r["Instances"]]
        # Oldest first: the one in use. A second one for the same component (a crash between launch and
        # lookup) is listed as an extra, so that `down` removes it.
        instances.sort(key=lambda i: (str(i.get("LaunchTime", "")), i["InstanceId"]))
        launched_by_groups = [i for i in instances if AUTOSCALING_GROUP_TAG in tag_map(i.get("Tags"))]
        result = {
            component: observed(
                component,
                self.kind,
                i["InstanceId"],
                **_instance_attrs(i),
                **owner_attrs(i),
            )
            for component, i in by_component(
                run, [i for i in instances if i not in launched_by_groups], "InstanceId"
            ).items()
        }
        result.update(self._orphans(run, launched_by_groups))
        return result

    def _orphans(self, run: AwsRun, launched_by_groups: list[dict[str, Any]]) -> dict[str, Observed]:
        """Instances an Auto Scaling group launched that outlived their group: nothing terminates them
        but us. Those of a live group are the group's business (and it replaces what we would delete)."""
        if not launched_by_groups:
            return {}
        groups = {g["AutoScalingGroupName"] for g in stack_auto_scaling_groups(run)}
        result = {}
        for instance in launched_by_groups:
            tags = tag_map(instance.get("Tags"))
            if tags.get(STACK_TAG) == run.stack and tags[AUTOSCALING_GROUP_TAG] not in groups:
                key = extra_key(f"{ORPHAN_PREFIX}{tags.get(COMPONENT_TAG, 'instance')}", instance["InstanceId"])
                result[key] = observed(
                    key, self.kind, instance["InstanceId"], **_instance_attrs(instance), **owner_attrs(instance)
                )
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        """Field by field; the AMI is not compared (see the module docstring), nor is a dependency that
        does not exist yet where its absence says nothing about the instance (its subnet). Nor are the user
        data and the data volume: both take effect at the first boot only, so a newer cdpoc's script (or a
        stack from before the data volume) is no reason to refuse `up` on a running host; new instances
        get the new script."""
        spec, attrs = spec_of(res, InstanceSpec), found.attrs
        changes = []
        if attrs["instance_type"] != spec.instance_type:
            changes.append(_change(InstanceSpec, "instance_type", attrs["instance_type"], spec.instance_type, deps))
        subnet_id = spec.subnet.value(deps)
        if subnet_id and attrs["subnet"] != subnet_id:
            changes.append(_change(InstanceSpec, "subnet", attrs["subnet"], subnet_id, deps))
        if attrs["key_name"] != spec.key_name:
            changes.append(_change(InstanceSpec, "key_name", attrs["key_name"], spec.key_name, deps))
        changes.extend(self._in_place_changes(spec, found, deps))
        return changes

    def _in_place_changes(
        self, spec: InstanceSpec, found: Observed, deps: Mapping[str, Observed | None]
    ) -> list[Change]:
        attrs = found.attrs
        changes = []
        if attrs["state"] != "running":
            # Not a field of the spec: an instance the stack declares runs (start it, or wait for it).
            changes.append(field_change(InstanceSpec, "state", attrs["state"], "running"))
        groups = _desired(spec.security_groups, deps)
        if any(isinstance(g, Ref) for g in groups) or tuple(sorted(groups)) != attrs["security_groups"]:
            changes.append(_change(InstanceSpec, "security_groups", attrs["security_groups"], groups, deps))
        wanted_metadata = spec.metadata_options.as_aws()
        if attrs["metadata_options"] != wanted_metadata:
            changes.append(_change(InstanceSpec, "metadata_options", attrs["metadata_options"], wanted_metadata, deps))
        profile = _desired(spec.profile, deps)
        if (profile or "") != attrs["profile_arn"]:
            changes.append(_change(InstanceSpec, "profile", attrs["profile_arn"], profile, deps))
        if spec.eip is not None:
            address = Ref(spec.eip.key, "public_ip").value(deps)
            if address is None or address != attrs["public_ip"]:
                changes.append(_change(InstanceSpec, "eip", attrs["public_ip"], address or spec.eip, deps))
        return changes

    def missing(self, run: AwsRun, res: Resource, found: Mapping[str, Observed | None]) -> list[Change]:
        spec = spec_of(res, InstanceSpec)
        kept = self._kept_data(run, res, spec)
        if kept is None or spec.data_volume is None:
            return []
        return [Change(f"data volume {spec.data_volume.device} from kept snapshot {describe_snapshot(kept)}")]

    def _kept_data(self, run: AwsRun, res: Resource, spec: InstanceSpec) -> dict[str, Any] | None:
        """The newest snapshot `down --keep-data` kept of this instance's data volume, if any."""
        if spec.data_volume is None:
            return None
        kept = kept_snapshots(run, res.key)
        return kept[0] if kept else None

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, InstanceSpec)
        subnet_id = spec.subnet.need(deps)
        kept = self._kept_data(run, res, spec)
        if kept is not None and kept.get("State") != "completed":
            wait_for_snapshot(run, kept["SnapshotId"])  # a `down --keep-data` interrupted while it waited
        restore = (kept["SnapshotId"],) if kept else ()
        params = self._launch_params(run, res, spec, deps, *restore)
        # AWS answers a reused token with the instance it launched before, even a terminated one (then
        # launch anew with another token), and refuses it when the parameters changed: the AMI and the
        # snapshot are in it.
        instance = run.create_with_token(
            res,
            (subnet_id, params["ImageId"], *restore),
            lambda token: self._launch(run, res, params, token),
            lambda i: i["InstanceId"] if i["State"]["Name"] in GONE_STATES else None,
        )
        # RunInstances' answer has no user data: it is what the launch gave.
        attrs = {**_instance_attrs(instance), "user_data": params.get("UserData", "")}
        found = observed(res, self.kind, instance["InstanceId"], **attrs)
        result = self.converge(run, res, found, deps)
        # The kept snapshot is no longer needed once the instance runs with the volume made from it.
        if restore and spec.data_volume and result.attrs["volumes"].get(spec.data_volume.device):
            delete_snapshot(run, restore[0])
        return result

    def _launch_params(
        self, run: AwsRun, res: Resource, spec: InstanceSpec, deps: Mapping[str, Observed], snapshot_id: str = ""
    ) -> dict[str, Any]:
        # Rendered first: a bad value fails before any AWS call.
        script = render(spec.user_data, deps) if spec.user_data else ""
        params: dict[str, Any] = {
            "ImageId": resolve_ami(run, spec.ami_parameter),
            "InstanceType": spec.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": spec.subnet.need(deps),
            "SecurityGroupIds": [ref.need(deps) for ref in spec.security_groups],
            "MetadataOptions": spec.metadata_options.as_aws(),
            "TagSpecifications": [run.ec2_tag_specs("instance", res)[0], run.ec2_tag_specs("volume", res)[0]],
        }
        if spec.key_name:
            params["KeyName"] = spec.key_name
        if spec.profile is not None:
            params["IamInstanceProfile"] = {"Arn": spec.profile.need(deps)}
        if script:
            # boto3 base64-encodes RunInstances user data itself.
            params["UserData"] = script
        if spec.data_volume:
            params["BlockDeviceMappings"] = [_data_volume_mapping(spec.data_volume, snapshot_id)]
        return params

    def _launch(self, run: AwsRun, res: Resource, params: Mapping[str, Any], token: str) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            with aws_errors(f"launching instance {res.name}"):
                return dict(_ec2(run).run_instances(**params, ClientToken=token)["Instances"][0])

        # A fresh instance profile is refused for a while ("Invalid IAM Instance Profile name"), and so is one whose
        # new role is not visible yet ("... has no associated IAM Roles"): RUN_INSTANCES_PROPAGATION.
        return retry_iam_propagation(run, f"launching instance {res.name}", call, RUN_INSTANCES_PROPAGATION)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        """The calls for the in-place fields among `changes` (the others are conflicts the plan refused)."""
        spec, ec2 = spec_of(res, InstanceSpec), _ec2(run)
        fields = {change.field for change in changes}
        if "state" in fields:
            self._ensure_running(run, found)
        if "security_groups" in fields:
            with aws_errors(f"setting the security groups of {found.id}"):
                ec2.modify_instance_attribute(
                    InstanceId=found.id, Groups=[ref.need(deps) for ref in spec.security_groups]
                )
        if "metadata_options" in fields:
            with aws_errors(f"requiring IMDSv2 on {found.id}"):
                ec2.modify_instance_metadata_options(InstanceId=found.id, **spec.metadata_options.as_aws())
        if "profile" in fields:
            self._set_profile(run, found, spec.profile.need(deps) if spec.profile else None)
        if "eip" in fields and spec.eip is not None:
            self._associate_address(run, found.id, spec.eip.need(deps))
        return self._observe(run, res.key, found.id)

    def _ensure_running(self, run: AwsRun, found: Observed) -> None:
        state = found.attrs["state"]
        if state == "running":
            return
        if state in ("stopping", "stopped"):
            run.wait_with("ec2", "instance_stopped", f"instance {found.id} to stop", InstanceIds=[found.id])
            with aws_errors(f"starting instance {found.id}"):
                _ec2(run).start_instances(InstanceIds=[found.id])
        run.wait_with("ec2", "instance_running", f"instance {found.id} to be running", InstanceIds=[found.id])

    def _set_profile(self, run: AwsRun, found: Observed, profile_arn: str | None) -> None:
        """Give the instance `profile_arn` (replacing the one it has), or take its profile away (None)."""
        ec2 = _ec2(run)

        def call() -> None:
            with aws_errors(f"giving {found.id} instance profile {profile_arn or '(none)'}"):
                current = ec2.describe_iam_instance_profile_associations(
                    Filters=[
                        {"Name": "instance-id", "Values": [found.id]},
                        {"Name": "state", "Values": ["associating", "associated"]},
                    ]
                )["IamInstanceProfileAssociations"]
                if profile_arn is None:
                    for association in current:
                        ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
                elif current:
                    ec2.replace_iam_instance_profile_association(
                        IamInstanceProfile={"Arn": profile_arn}, AssociationId=current[0]["AssociationId"]
                    )
                else:
                    ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": profile_arn}, InstanceId=found.id)

        retry_iam_propagation(run, f"giving {found.id} its instance profile", call)

    def _associate_address(self, run: AwsRun, instance_id: str, allocation_id: str) -> None:
        with aws_errors(f"associating Elastic IP {allocation_id} with {instance_id}"):
            _ec2(run).associate_address(AllocationId=allocation_id, InstanceId=instance_id, AllowReassociation=True)

        def associated() -> bool:
            with aws_errors(f"reading Elastic IP {allocation_id}"):
                addresses = _ec2(run).describe_addresses(AllocationIds=[allocation_id])["Addresses"]
            return any(a.get("InstanceId") == instance_id for a in addresses)

        run.wait_until(f"Elastic IP {allocation_id} to be associated with {instance_id}", associated)

    def _observe(self, run: AwsRun, key: str, instance_id: str) -> Observed:
        with aws_errors(f"reading instance {instance_id}"):
            reservations = _ec2(run).describe_instances(InstanceIds=[instance_id])["Reservations"]
        instance = reservations[0]["Instances"][0]
        return observed(key, self.kind, instance_id, **_instance_attrs(instance))

    def delete(self, run: AwsRun, found: Observed) -> None:
        ec2 = _ec2(run)
        # The Elastic IP handler releases the address; an address still associated cannot be released.
        with aws_errors(f"listing the Elastic IPs of {found.id}"):
            addresses = ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [found.id]}])["Addresses"]
        for address in addresses:
            if address.get("AssociationId"):
                ignore_missing(
                    f"disassociating Elastic IP {address.get('PublicIp', '')} from {found.id}",
                    ec2.disassociate_address,
                    NOT_FOUND,
                    AssociationId=address["AssociationId"],
                )
        if ignore_missing(
            f"terminating instance {found.id}", ec2.terminate_instances, NOT_FOUND, InstanceIds=[found.id]
        ):
            run.wait_with(
                "ec2",
                "instance_terminated",
                f"instance {found.id} to be terminated",
                passing_states=True,
                InstanceIds=[found.id],
            )

    def describe(self, found: Observed) -> str:
        address = found.attrs.get("public_ip") or found.attrs.get("private_ip", "")
        return f"{found.id} ({found.attrs.get('instance_type', '')}, {address})"


# --- launch template ------------------------------------------------------------------------------

TAGGED_AT_LAUNCH = ("instance", "volume")


def _comparable_template(data: Mapping[str, Any]) -> dict[str, Any]:
    """The launch template data cdpoc manages, by the spec's field names, in one form for both desired and
    AWS's (no AMI id: see the module docstring)."""
    tags = {
        spec["ResourceType"]: tuple(sorted((t["Key"], t["Value"]) for t in spec.get("Tags", [])))
        for spec in data.get("TagSpecifications", [])
        if spec.get("ResourceType") in TAGGED_AT_LAUNCH
    }
    metadata = data.get("MetadataOptions", {})
    encoded = data.get("UserData", "")
    return {
        "instance_type": data.get("InstanceType", ""),
        "profile": data.get("IamInstanceProfile", {}).get("Arn", ""),
        "security_groups": tuple(sorted(data.get("SecurityGroupIds", []))),
        "key_name": data.get("KeyName", ""),
        "metadata_options": {k: metadata.get(k, "") for k in ("HttpTokens", "HttpEndpoint", "InstanceMetadataTags")},
        "instance_tags": tags,
        "user_data": base64.b64decode(encoded).decode("utf-8", "replace") if encoded else "",
    }


class LaunchTemplateHandler(Handler):
    kind = "launch_template"
    label = "launch template"
    spec_type = LaunchTemplateSpec
    arn_types = ("ec2:launch-template",)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        templates = paginate(
            run,
            "describe_launch_templates",
            "LaunchTemplates",
            what="listing the stack's launch templates",
            Filters=run.stack_filter(),
        )
        return {
            component: with_owner(self._observe(run, component, t), t)
            for component, t in by_component(run, templates, "LaunchTemplateId").items()
        }

    def _observe(self, run: AwsRun, key: str, template: Mapping[str, Any]) -> Observed:
        template_id = template["LaunchTemplateId"]
        with aws_errors(f"reading the default version of launch template {template['LaunchTemplateName']}"):
            version = _ec2(run).describe_launch_template_versions(LaunchTemplateId=template_id, Versions=["$Default"])[
                "LaunchTemplateVersions"
            ][0]
        return observed(
            key,
            self.kind,
            template_id,
            name=template["LaunchTemplateName"],
            default_version=version["VersionNumber"],
            image=version["LaunchTemplateData"].get("ImageId", ""),
            data=_comparable_template(version["LaunchTemplateData"]),
        )

    def _launch_tags(self, run: AwsRun, spec: LaunchTemplateSpec) -> list[dict[str, str]]:
        return run.tags(spec.instance_tags.component, spec.instance_tags.name)

    def _data(self, run: AwsRun, spec: LaunchTemplateSpec, deps: Mapping[str, Observed]) -> dict[str, Any]:
        """The whole LaunchTemplateData of a version, with the AMI the parameter names now."""
        launch_tags = self._launch_tags(run, spec)
        data: dict[str, Any] = {
            "ImageId": resolve_ami(run, spec.ami_parameter),
            "InstanceType": spec.instance_type,
            "IamInstanceProfile": {"Arn": spec.profile.need(deps)},
            "SecurityGroupIds": [ref.need(deps) for ref in spec.security_groups],
            "MetadataOptions": spec.metadata_options.as_aws(),
            "TagSpecifications": [{"ResourceType": kind, "Tags": launch_tags} for kind in TAGGED_AT_LAUNCH],
            # Unlike RunInstances, launch templates take user data already base64-encoded.
            "UserData": base64.b64encode(render(spec.user_data, deps).encode("utf-8")).decode("ascii"),
        }
        if spec.key_name:
            data["KeyName"] = spec.key_name
        return data

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        """Each field whose value differs from the default version's; together they make one new version."""
        spec, have = spec_of(res, LaunchTemplateSpec), found.attrs["data"]
        tags = tuple(sorted((t["Key"], t["Value"]) for t in self._launch_tags(run, spec)))
        groups = _desired(spec.security_groups, deps)
        wanted: dict[str, Any] = {
            "instance_type": spec.instance_type,
            "profile": _desired(spec.profile, deps),
            "security_groups": groups if any(isinstance(g, Ref) for g in groups) else tuple(sorted(groups)),
            "key_name": spec.key_name,
            "metadata_options": spec.metadata_options.as_aws(),
            "instance_tags": {kind: tags for kind in TAGGED_AT_LAUNCH},
        }
        changes = [
            _change(LaunchTemplateSpec, field, have.get(field), value, deps)
            for field, value in wanted.items()
            if have.get(field) != value
        ]
        script = _script_change(LaunchTemplateSpec, spec.user_data, have.get("user_data", ""), deps)
        return [*changes, script] if script else changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, LaunchTemplateSpec)
        data = self._data(run, spec, deps)
        groups = tuple(ref.need(deps) for ref in spec.security_groups)

        def call(token: str) -> dict[str, Any]:
            with aws_errors(f"creating launch template {res.name}"):
                return dict(
                    _ec2(run).create_launch_template(
                        LaunchTemplateName=res.name,
                        VersionDescription=f"cdpoc {res.key}",
                        LaunchTemplateData=data,
                        TagSpecifications=run.ec2_tag_specs("launch-template", res),
                        ClientToken=token,
                    )["LaunchTemplate"]
                )

        def dead_id(template: dict[str, Any]) -> str | None:
            # A token replayed after the template was deleted: its id no longer answers.
            template_id = str(template["LaunchTemplateId"])
            return unless_listed(
                f"checking launch template {template_id}",
                _ec2(run).describe_launch_templates,
                "LaunchTemplates",
                "LaunchTemplateIds",
                template_id,
                NOT_FOUND,
            )

        try:
            template = run.create_with_token(
                res,
                groups,
                lambda token: retry_iam_propagation(run, f"creating launch template {res.name}", lambda: call(token)),
                dead_id,
            )
        except AwsError as exc:
            if not caused_by(exc, "InvalidLaunchTemplateName.AlreadyExistsException"):
                raise
            with aws_errors(f"looking up launch template {res.name}"):
                template = _ec2(run).describe_launch_templates(LaunchTemplateNames=[res.name])["LaunchTemplates"][0]
            refuse_not_ours(
                run, res, "launch template", tag_map(template.get("Tags")), component=False, untagged=NOT_MANAGED
            )
        found = self._observe(run, res.key, template)
        return self.converge(run, res, found, deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        """One new default version for all of `changes`: a version holds the whole launch data, so it is
        written whole (the fields the plan did not list are as they were, the AMI as the parameter says now)."""
        if not changes:
            return found
        data = self._data(run, spec_of(res, LaunchTemplateSpec), deps)
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
        with aws_errors(f"adding a version to launch template {res.name}"):
            version = _ec2(run).create_launch_template_version(
                LaunchTemplateId=found.id,
                VersionDescription=f"cdpoc {res.key}",
                LaunchTemplateData=data,
                ClientToken=run.client_token(res, found.id, digest),
            )["LaunchTemplateVersion"]["VersionNumber"]
            # The group launches "$Default": instances launched from now on get the new version.
            template = _ec2(run).modify_launch_template(LaunchTemplateId=found.id, DefaultVersion=str(version))[
                "LaunchTemplate"
            ]
        return self._observe(run, res.key, template)

    def delete(self, run: AwsRun, found: Observed) -> None:
        ignore_missing(
            f"deleting launch template {found.attrs.get('name', found.id)}",
            _ec2(run).delete_launch_template,
            NOT_FOUND,
            LaunchTemplateId=found.id,
        )

    def describe(self, found: Observed) -> str:
        return f"{found.attrs.get('name', found.id)} (default version {found.attrs.get('default_version', '?')})"


# --- Auto Scaling group ---------------------------------------------------------------------------

# The group has not finished scaling in or launching; a forced delete is retried by the sweeper.
BUSY = ("ScalingActivityInProgress", "ResourceContention")


def _resource_label(alb_arn: str, target_group_arn: str) -> str:
    """ALBRequestCountPerTarget's label: 'app/<alb>/<id>/targetgroup/<tg>/<id>' from the two ARNs."""
    return f"{alb_arn.split(':loadbalancer/', 1)[1]}/targetgroup/{target_group_arn.split(':targetgroup/', 1)[1]}"


def _health_check_type(wanted: str, current: str) -> str:
    """ELB health checks include EC2's: once the first good deployment has switched the group to ELB
    (cdpoc.rollout does), a declared "EC2" is satisfied and `up` must not switch it back."""
    return current if (wanted, current) == ("EC2", "ELB") else wanted


def _policy_attrs(policy: Mapping[str, Any]) -> dict[str, Any]:
    config = policy.get("TargetTrackingConfiguration", {})
    metric = config.get("PredefinedMetricSpecification", {})
    return {
        "type": policy.get("PolicyType", ""),
        "metric": metric.get("PredefinedMetricType", ""),
        "label": metric.get("ResourceLabel", ""),
        "target": float(config.get("TargetValue", 0.0)),
    }


def _policy_text(policy: Mapping[str, Any] | None) -> str:
    if not policy:
        return "(none)"
    return f"{policy['metric']} {policy['target']:g} on {policy['label'] or '?'}"


def _tag_text(tag: tuple[str, bool] | None) -> str | None:
    """A group tag as a plan shows it: its value, and whether instances get it at launch."""
    if tag is None:
        return None
    value, propagate = tag
    return f"{value} (propagated at launch)" if propagate else f"{value} (not propagated)"


def stack_auto_scaling_groups(run: AwsRun) -> list[dict[str, Any]]:
    """The Auto Scaling groups tagged with the stack (DescribeAutoScalingGroups filters by tag)."""
    return paginate(
        run,
        "describe_auto_scaling_groups",
        "AutoScalingGroups",
        service="autoscaling",
        what="listing the stack's Auto Scaling groups",
        Filters=run.stack_filter(),
    )


class AutoScalingGroupHandler(Handler):
    kind = "autoscaling_group"
    label = "Auto Scaling group"
    spec_type = AutoScalingGroupSpec
    arn_types = ("autoscaling:autoScalingGroup",)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        groups = stack_auto_scaling_groups(run)
        return {
            component: with_owner(self._observe(run, component, g), g)
            for component, g in by_component(run, groups, "AutoScalingGroupName").items()
        }

    def _describe_group(self, run: AwsRun, name: str) -> dict[str, Any] | None:
        with aws_errors(f"reading Auto Scaling group {name}"):
            groups = _autoscaling(run).describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        return dict(groups[0]) if groups else None

    def _observe(self, run: AwsRun, key: str, group: Mapping[str, Any]) -> Observed:
        name = group["AutoScalingGroupName"]
        policies = paginate(
            run,
            "describe_policies",
            "ScalingPolicies",
            service="autoscaling",
            what=f"reading the scaling policies of {name}",
            AutoScalingGroupName=name,
        )
        configs = paginate(
            run,
            "describe_notification_configurations",
            "NotificationConfigurations",
            service="autoscaling",
            what=f"reading the notifications of {name}",
            AutoScalingGroupNames=[name],
        )
        notifications: dict[str, list[str]] = {}
        for config in configs:
            notifications.setdefault(config["TopicARN"], []).append(config["NotificationType"])
        template = group.get("LaunchTemplate", {})
        return observed(
            key,
            self.kind,
            name,
            arn=group.get("AutoScalingGroupARN", ""),
            min_size=group["MinSize"],
            max_size=group["MaxSize"],
            desired_capacity=group["DesiredCapacity"],
            subnets=tuple(sorted(s for s in group.get("VPCZoneIdentifier", "").split(",") if s)),
            target_groups=tuple(sorted(group.get("TargetGroupARNs", []))),
            launch_template=(template.get("LaunchTemplateId", ""), template.get("Version", "")),
            health_check_type=group.get("HealthCheckType", ""),
            health_check_grace_period=group.get("HealthCheckGracePeriod"),
            tags={t["Key"]: (t["Value"], bool(t.get("PropagateAtLaunch"))) for t in group.get("Tags", [])},
            policies={p["PolicyName"]: _policy_attrs(p) for p in policies},
            notifications={topic: tuple(sorted(types)) for topic, types in notifications.items()},
            instances=tuple(
                (i["InstanceId"], i["LifecycleState"], i["HealthStatus"]) for i in group.get("Instances", [])
            ),
            status=group.get("Status", ""),
        )

    # The settings UpdateAutoScalingGroup changes: {spec field: its parameter}.
    SETTINGS = {
        "launch_template": "LaunchTemplate",
        "min_size": "MinSize",
        "max_size": "MaxSize",
        "subnets": "VPCZoneIdentifier",
        "health_check_type": "HealthCheckType",
        "health_check_grace_period": "HealthCheckGracePeriod",
    }

    def _settings(
        self, spec: AutoScalingGroupSpec, found: Observed | None, deps: Mapping[str, Observed | None]
    ) -> dict[str, Any]:
        """What the group's settings should be, in the form _observe gives (unresolved Refs stay Refs).
        Desired capacity is the scaling policy's to move between min and max: never compared."""
        subnets = _desired(spec.subnets, deps)
        return {
            "launch_template": (_desired(spec.launch_template, deps), "$Default"),
            "min_size": spec.min_size,
            "max_size": spec.max_size,
            "subnets": subnets if any(isinstance(s, Ref) for s in subnets) else tuple(sorted(subnets)),
            "health_check_type": _health_check_type(
                spec.health_check_type, found.attrs["health_check_type"] if found else ""
            ),
            "health_check_grace_period": spec.health_check_grace_period,
        }

    def _policy(self, spec: AutoScalingGroupSpec, deps: Mapping[str, Observed | None]) -> dict[str, Any]:
        alb, target_group = spec.scaling_policy.load_balancer.value(deps), spec.scaling_policy.target_group.value(deps)
        return {
            "type": "TargetTrackingScaling",
            "metric": "ALBRequestCountPerTarget",
            "label": _resource_label(alb, target_group) if alb and target_group else None,
            "target": float(spec.scaling_policy.target_requests_per_instance),
        }

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        spec, attrs = spec_of(res, AutoScalingGroupSpec), found.attrs
        changes = [
            _change(AutoScalingGroupSpec, field, attrs[field], value, deps)
            for field, value in self._settings(spec, found, deps).items()
            if attrs[field] != value
        ]
        # Target groups, both ways: the declared ones attached, any other detached.
        wanted_groups = [_desired(ref, deps) for ref in spec.target_groups]
        changes.extend(
            _change(AutoScalingGroupSpec, f"target_groups[{shown(_display(g, deps))}]", None, g, deps)
            for g in wanted_groups
            if g not in attrs["target_groups"]
        )
        changes.extend(
            _change(AutoScalingGroupSpec, f"target_groups[{arn}]", arn, None, deps)
            for arn in attrs["target_groups"]
            if arn not in wanted_groups
        )
        # The stack's tags, propagated to the instances; tags the group has besides are not the stack's to judge.
        for key, value in self._tags(run, res, spec).items():
            if attrs["tags"].get(key) != value:
                old = attrs["tags"].get(key)
                changes.append(_change(AutoScalingGroupSpec, f"tags[{key}]", _tag_text(old), _tag_text(value), deps))
        changes.extend(self._policy_changes(spec, attrs["policies"], deps))
        changes.extend(self._notification_changes(spec, attrs["notifications"], deps))
        if attrs["status"]:
            changes.append(Change(f"status is {attrs['status']!r}", in_place=False))
        return changes

    def _policy_changes(
        self, spec: AutoScalingGroupSpec, have: Mapping[str, Any], deps: Mapping[str, Observed | None]
    ) -> list[Change]:
        """The declared scaling policy as wanted, and no other policy on the group."""
        name, wanted = spec.scaling_policy.name, self._policy(spec, deps)
        changes = []
        if have.get(name) != wanted:
            old = _policy_text(have.get(name))
            new = _policy_text(wanted) if wanted["label"] else Ref(spec.scaling_policy.target_group.key)
            changes.append(
                field_change(
                    AutoScalingGroupSpec,
                    "scaling_policy",
                    have.get(name),
                    wanted,
                    f"scaling_policy: {old} → {shown(_display(new, deps))}",
                )
            )
        changes.extend(
            field_change(
                AutoScalingGroupSpec,
                f"scaling_policy[{other}]",
                policy,
                None,
                f"scaling_policy[{other}]: {_policy_text(policy)} → (none)",
            )
            for other, policy in have.items()
            if other != name
        )
        return changes

    def _notification_changes(
        self, spec: AutoScalingGroupSpec, have: Mapping[str, tuple[str, ...]], deps: Mapping[str, Observed | None]
    ) -> list[Change]:
        """One change per notification type: each declared type sent to the declared topic, and no other
        (a type the spec no longer wants, or any type sent to another topic)."""
        topic = _desired(spec.notifications.topic, deps)
        wanted = {(topic, kind) for kind in spec.notifications.types}
        present = {(arn, kind) for arn, kinds in have.items() for kind in kinds}
        changes = [
            _change(AutoScalingGroupSpec, f"notifications[{kind}]", None, arn, deps)
            for arn, kind in sorted(wanted - present, key=lambda item: item[1])
        ]
        changes.extend(
            _change(AutoScalingGroupSpec, f"notifications[{kind}]", arn, None, deps)
            for arn, kind in sorted(present - wanted)
        )
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, AutoScalingGroupSpec)
        params = {
            "AutoScalingGroupName": res.name,
            "LaunchTemplate": {"LaunchTemplateId": spec.launch_template.need(deps), "Version": "$Default"},
            "MinSize": spec.min_size,
            "MaxSize": spec.max_size,
            "DesiredCapacity": spec.desired_capacity,
            "VPCZoneIdentifier": ",".join(ref.need(deps) for ref in spec.subnets),
            "TargetGroupARNs": [ref.need(deps) for ref in spec.target_groups],
            "HealthCheckType": spec.health_check_type,
            "HealthCheckGracePeriod": spec.health_check_grace_period,
            "Tags": self._tag_list(res, self._tags(run, res, spec)),
        }

        def call() -> None:
            with aws_errors(f"creating Auto Scaling group {res.name}"):
                _autoscaling(run).create_auto_scaling_group(**params)

        try:
            # A fresh instance profile in the launch template is refused for a while ("Invalid IAM Instance Profile").
            retry_iam_propagation(run, f"creating Auto Scaling group {res.name}", call)
        except AwsError as exc:
            if not caused_by(exc, "AlreadyExists"):
                raise
        group = self._describe_group(run, res.name)
        if group is None:
            raise AwsError(f"Auto Scaling group {res.name} was created but cannot be read back")
        refuse_not_ours(
            run, res, "Auto Scaling group", tag_map(group.get("Tags")), component=False, untagged=NOT_MANAGED
        )
        found = self._observe(run, res.key, group)
        # The policy and notifications (and, for a group adopted after a lost answer, whatever differs).
        changes = [c for c in self.changes(run, res, found, deps) if c.in_place]
        return self.update(run, res, found, deps, changes)

    @staticmethod
    def _tags(run: AwsRun, res: Resource, spec: AutoScalingGroupSpec) -> dict[str, tuple[str, bool]]:
        """The stack's tags, each propagated at launch: {key: (value, propagate)}."""
        return {t["Key"]: (t["Value"], True) for t in run.tags(res.key, spec.instance_name)}

    @staticmethod
    def _tag_list(res: Resource, tags: Mapping[str, tuple[str, bool]]) -> list[dict[str, Any]]:
        return [
            {
                "ResourceId": res.name,
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": value,
                "PropagateAtLaunch": propagate,
            }
            for key, (value, propagate) in tags.items()
        ]

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        """The calls for `changes`, each field's own: one UpdateAutoScalingGroup with just the settings
        that changed, attach/detach per target group, the tags, the policy, the notifications."""
        spec, client = spec_of(res, AutoScalingGroupSpec), _autoscaling(run)
        fields = [change.field for change in changes]
        self._update_settings(run, res, spec, found, deps, [f for f in fields if f in self.SETTINGS])
        self._converge_target_groups(run, res, deps, [c for c in changes if c.field.startswith("target_groups[")])
        tags = self._tags(run, res, spec)
        changed_tags = {key: tags[key] for key in tags if f"tags[{key}]" in fields}
        if changed_tags:
            with aws_errors(f"tagging Auto Scaling group {res.name}"):
                client.create_or_update_tags(Tags=self._tag_list(res, changed_tags))
        if "scaling_policy" in fields:
            self._put_policy(run, res.name, spec.scaling_policy.name, self._policy(spec, deps))
        for change in changes:
            if change.field.startswith("scaling_policy["):
                other = change.field.removeprefix("scaling_policy[").removesuffix("]")
                with aws_errors(f"deleting scaling policy {other} of {res.name}"):
                    client.delete_policy(AutoScalingGroupName=res.name, PolicyName=other)
        self._converge_notifications(run, res, spec, deps, [c for c in changes if c.field.startswith("notifications[")])
        self._wait_for_fleet(run, res.name, spec.target_groups[0].need(deps))
        group = self._describe_group(run, res.name)
        if group is None:
            raise AwsError(f"Auto Scaling group {res.name} disappeared while it was being updated")
        return self._observe(run, res.key, group)

    def _update_settings(
        self,
        run: AwsRun,
        res: Resource,
        spec: AutoScalingGroupSpec,
        found: Observed,
        deps: Mapping[str, Observed],
        fields: Sequence[str],
    ) -> None:
        if not fields:
            return
        settings = self._settings(spec, found, deps)
        values = {
            "launch_template": {"LaunchTemplateId": spec.launch_template.need(deps), "Version": "$Default"},
            "subnets": ",".join(ref.need(deps) for ref in spec.subnets),
        }
        params = {self.SETTINGS[field]: values.get(field, settings[field]) for field in fields}
        with aws_errors(f"updating Auto Scaling group {res.name}"):
            _autoscaling(run).update_auto_scaling_group(AutoScalingGroupName=res.name, **params)

    def _converge_target_groups(
        self, run: AwsRun, res: Resource, deps: Mapping[str, Observed], changes: Sequence[Change]
    ) -> None:
        client = _autoscaling(run)
        missing = [_applied(c.new, deps) for c in changes if c.new is not None]
        extra = [str(c.old) for c in changes if c.new is None]
        if missing:
            with aws_errors(f"attaching {res.name} to its target group"):
                client.attach_load_balancer_target_groups(AutoScalingGroupName=res.name, TargetGroupARNs=missing)
        if extra:
            with aws_errors(f"detaching {res.name} from other target groups"):
                client.detach_load_balancer_target_groups(AutoScalingGroupName=res.name, TargetGroupARNs=extra)

    def _converge_notifications(
        self,
        run: AwsRun,
        res: Resource,
        spec: AutoScalingGroupSpec,
        deps: Mapping[str, Observed],
        changes: Sequence[Change],
    ) -> None:
        """A configuration is per topic and a put overwrites it: the declared topic gets exactly the
        declared types (adding the missing ones and dropping the extra ones at once); any other topic
        named by a change is removed."""
        client, topic = _autoscaling(run), spec.notifications.topic.need(deps)
        if any(_applied(c.new, deps) == topic or c.old == topic for c in changes):
            with aws_errors(f"sending the notifications of {res.name} to {topic}"):
                client.put_notification_configuration(
                    AutoScalingGroupName=res.name, TopicARN=topic, NotificationTypes=list(spec.notifications.types)
                )
        for other in sorted({str(c.old) for c in changes if c.old is not None and c.old != topic}):
            with aws_errors(f"stopping the notifications of {res.name} to {other}"):
                client.delete_notification_configuration(AutoScalingGroupName=res.name, TopicARN=other)

    def _put_policy(self, run: AwsRun, group: str, name: str, policy: Mapping[str, Any]) -> None:
        with aws_errors(f"putting scaling policy {name} on {group}"):
            _autoscaling(run).put_scaling_policy(
                AutoScalingGroupName=group,
                PolicyName=name,
                PolicyType=policy["type"],
                TargetTrackingConfiguration={
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": policy["metric"],
                        "ResourceLabel": policy["label"],
                    },
                    "TargetValue": policy["target"],
                },
            )

    def _wait_for_fleet(self, run: AwsRun, name: str, target_group: str) -> None:
        """Until the desired number of instances is InService, Healthy, and healthy in the target group."""

        def ready() -> bool:
            group = self._describe_group(run, name)
            if group is None:
                raise AwsError(f"Auto Scaling group {name} disappeared while waiting for its instances")
            in_service = {
                i["InstanceId"]
                for i in group.get("Instances", [])
                if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"
            }
            if len(in_service) < group["DesiredCapacity"]:
                return False
            with aws_errors(f"reading the target health of {name}'s instances"):
                health = run.client("elbv2").describe_target_health(TargetGroupArn=target_group)[
                    "TargetHealthDescriptions"
                ]
            healthy = {h["Target"]["Id"] for h in health if h["TargetHealth"]["State"] == "healthy"}
            return in_service <= healthy

        run.wait_until(
            f"the instances of Auto Scaling group {name} to be in service and healthy in the target group",
            ready,
            timeout=run.waits.fleet,
        )

    def delete(self, run: AwsRun, found: Observed) -> None:
        name, client = found.id, _autoscaling(run)
        if self._describe_group(run, name) is None:
            return
        # A hook left behind (CodeDeploy installs one) would hold terminating instances in a wait state.
        with aws_errors(f"listing the lifecycle hooks of {name}"):
            hooks = client.describe_lifecycle_hooks(AutoScalingGroupName=name)["LifecycleHooks"]
        for hook in hooks:
            with aws_errors(f"removing lifecycle hook {hook['LifecycleHookName']} from {name}"):
                client.delete_lifecycle_hook(AutoScalingGroupName=name, LifecycleHookName=hook["LifecycleHookName"])
        try:
            with aws_errors(f"deleting Auto Scaling group {name}"):
                client.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
        except AwsError as exc:
            if caused_by(exc, *BUSY):
                raise DependencyViolation(exc.message) from exc
            # "Not found" is a ValidationError like any other: ask whether the group is gone instead.
            if not (caused_by(exc, "ValidationError") and self._describe_group(run, name) is None):
                raise
        run.wait_until(
            f"Auto Scaling group {name} and its instances to be deleted",
            lambda: self._describe_group(run, name) is None,
            timeout=run.waits.fleet,
        )

    def describe(self, found: Observed) -> str:
        attrs = found.attrs
        in_service = sum(1 for _, state, _ in attrs.get("instances", ()) if state == "InService")
        return (
            f"{found.id} ({in_service} in service, desired {attrs.get('desired_capacity', '?')}, "
            f"{attrs.get('min_size', '?')}-{attrs.get('max_size', '?')})"
        )


HANDLERS: tuple[Handler, ...] = (InstanceHandler(), LaunchTemplateHandler(), AutoScalingGroupHandler())
