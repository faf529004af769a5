"""EC2 instances, the launch template and the Auto Scaling group, and the user data they boot with.

The AMI id is read from the public SSM parameter (compute.ami_parameter) whenever an instance or a
launch template version is created, and never compared afterwards: a newer Amazon Linux release
must not make a second `up` replace running instances. User data only runs at an instance's first
boot, so an instance's is not compared either; the launch template's is (a change makes a new
default version, used by instances launched from then on).

User data scripts are files in cdpoc/templates rendered with string.Template from the declaration's
props (and, for values only known once a dependency exists, its attributes). They carry names,
never secrets: the instances read those from SSM themselves.

An instance declared with a data volume (props["data_volume"]: MongoDB's) gets it as a second EBS
volume, deleted with the instance; when `down --keep-data` kept a snapshot of it, the volume is
created from that snapshot, which is deleted once the instance runs with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, cast
from urllib.parse import urlsplit

from cdpoc.aws.base import (
    COMPONENT_TAG,
    NOT_MANAGED,
    STACK_TAG,
    AwsRun,
    DependencyViolation,
    Handler,
    aws_errors,
    by_component,
    call_or_none,
    caused_by,
    dep_attr,
    dep_id,
    extra_key,
    ignore_missing,
    observed,
    owner_attrs,
    paginate,
    refuse_not_ours,
    tag_map,
    unless_listed,
    with_owner,
)
from cdpoc.aws.iam import retry_iam_propagation
from cdpoc.aws.snapshots import delete_snapshot, describe_snapshot, kept_snapshots, wait_for_snapshot
from cdpoc.errors import AwsError, ConfigError
from cdpoc.model import ORPHAN_PREFIX, Change, Observed, Resource

NOT_FOUND = (
    "InvalidInstanceID.NotFound",
    "InvalidAssociationID.NotFound",
    "InvalidAllocationID.NotFound",
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateName.NotFoundException",
)

# --- user data ------------------------------------------------------------------------------------

# RunInstances and launch templates take at most 16 KB of user data, counted before base64.
USER_DATA_LIMIT = 16 * 1024
# What a rendered value may hold: stack, bucket, parameter and log group names, an http origin. None
# of these characters can end the single-quoted shell string (or JSON string) a placeholder sits in.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:/@+=,-]+$")


class ScriptTemplate(string.Template):
    """`@@{name}` placeholders, because `$` belongs to the shell."""

    delimiter = "@@"


def template_text(name: str) -> str:
    return resources.files("cdpoc").joinpath("templates", name).read_text(encoding="utf-8")


def render_script(name: str, values: Mapping[str, str]) -> str:
    """The template `name` with every placeholder filled in; refuses unsafe values and oversized results."""
    for key, value in values.items():
        if not SAFE_VALUE.match(value):
            raise ConfigError(
                f"user data {name}: {key} {value!r} holds characters a boot script cannot take safely",
                "Use names of letters, digits, dots, hyphens and slashes.",
            )
    try:
        script = ScriptTemplate(template_text(name)).substitute(values)
    except KeyError as exc:
        raise ConfigError(f"user data {name}: no value for placeholder {exc.args[0]}") from None
    size = len(script.encode("utf-8"))
    if size > USER_DATA_LIMIT:
        raise ConfigError(f"user data {name} is {size} bytes; EC2 takes at most {USER_DATA_LIMIT}")
    return script


def _origin(url: str) -> str:
    """'http://b.s3-website-us-east-1.amazonaws.com/' -> 'http://b.s3-website-us-east-1.amazonaws.com'."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return f"{parts.scheme}://{parts.netloc}"


def user_data(spec: Mapping[str, Any], deps: Mapping[str, Observed | None]) -> str:
    """Render a declaration's user data spec: literal values plus attributes of its dependencies.

    spec: {"template": file name, "values": {placeholder: value}, "from_dependencies": {placeholder:
    {"resource": logical key, "attr": attribute, "as": "origin" to keep only scheme://host}}}.
    """
    values = dict(spec["values"])
    for placeholder, source in spec.get("from_dependencies", {}).items():
        value = dep_attr(deps, source["resource"], source["attr"])
        if not value:
            raise AwsError(f"{source['resource']} has no {source['attr']}: cannot render {spec['template']}")
        values[placeholder] = _origin(value) if source.get("as") == "origin" else value
    return render_script(spec["template"], values)


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


# IMDSv2 only, and instance tags readable from the metadata: the application reads its stack there.
METADATA_OPTIONS = {"HttpTokens": "required", "HttpEndpoint": "enabled", "InstanceMetadataTags": "enabled"}

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
        "http_tokens": metadata.get("HttpTokens", ""),
        "metadata_tags": metadata.get("InstanceMetadataTags", ""),
        "key_name": instance.get("KeyName", ""),
        "image": instance.get("ImageId", ""),
        "volumes": {
            m["DeviceName"]: m.get("Ebs", {}).get("VolumeId", "") for m in instance.get("BlockDeviceMappings", [])
        },
    }


def _data_volume_mapping(spec: Mapping[str, Any], snapshot_id: str) -> dict[str, Any]:
    """The data volume in RunInstances' block device mappings: new and empty, or made from a kept snapshot."""
    ebs: dict[str, Any] = {"VolumeType": spec["type"], "DeleteOnTermination": True}
    if snapshot_id:
        # Size and encryption come from the snapshot (AWS takes no encryption setting for a restore).
        ebs["SnapshotId"] = snapshot_id
    else:
        ebs.update(VolumeSize=spec["size_gib"], Encrypted=True)
    return {"DeviceName": spec["device"], "Ebs": ebs}


class InstanceHandler(Handler):
    kind = "instance"
    label = "instance"
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
            component: observed(component, self.kind, i["InstanceId"], **_instance_attrs(i), **owner_attrs(i))
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
        props, attrs = res.props, found.attrs
        changes = []
        if attrs["instance_type"] != props["instance_type"]:
            changes.append(
                Change(f"instance type is {attrs['instance_type']}, config wants {props['instance_type']}", False)
            )
        subnet_id = dep_id(deps, props["subnet"])
        if subnet_id and attrs["subnet"] != subnet_id:
            changes.append(Change(f"it is in subnet {attrs['subnet']}, not {subnet_id}", in_place=False))
        if attrs["key_name"] != (props["key_name"] or ""):
            changes.append(
                Change(f"key pair is {attrs['key_name'] or 'none'}, config wants {props['key_name'] or 'none'}", False)
            )
        changes.extend(self._in_place_changes(res, found, deps))
        return changes

    def missing(self, run: AwsRun, res: Resource, found: Mapping[str, Observed | None]) -> list[Change]:
        kept = self._kept_data(run, res)
        if kept is None:
            return []
        return [
            Change(f"data volume {res.props['data_volume']['device']} from kept snapshot {describe_snapshot(kept)}")
        ]

    def _kept_data(self, run: AwsRun, res: Resource) -> dict[str, Any] | None:
        """The newest snapshot `down --keep-data` kept of this instance's data volume, if any."""
        if not res.props.get("data_volume"):
            return None
        kept = kept_snapshots(run, res.key)
        return kept[0] if kept else None

    def _in_place_changes(self, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        props, attrs = res.props, found.attrs
        changes = []
        if attrs["state"] != "running":
            changes.append(Change(f"state is {attrs['state']}: start it (or wait) until running"))
        groups = tuple(dep_id(deps, key) for key in props["security_groups"])
        if None in groups or tuple(sorted(g for g in groups if g)) != attrs["security_groups"]:
            changes.append(Change(f"security groups -> {', '.join(props['security_groups'])}"))
        if (attrs["http_tokens"], attrs["metadata_tags"]) != ("required", "enabled"):
            changes.append(Change("require IMDSv2 tokens and show instance tags in the metadata"))
        if props.get("profile") and dep_attr(deps, props["profile"], "arn") != attrs["profile_arn"]:
            changes.append(Change(f"instance profile -> {props['profile']}"))
        if props.get("eip"):
            address = dep_attr(deps, props["eip"], "public_ip")
            if address is None or address != attrs["public_ip"]:
                changes.append(Change(f"associate Elastic IP {address or props['eip']}"))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        subnet_id = deps[res.props["subnet"]].id
        kept = self._kept_data(run, res)
        if kept is not None and kept.get("State") != "completed":
            wait_for_snapshot(run, kept["SnapshotId"])  # a `down --keep-data` interrupted while it waited
        restore = (kept["SnapshotId"],) if kept else ()
        params = self._launch_params(run, res, deps, *restore)
        # AWS answers a reused token with the instance it launched before, even a terminated one (then
        # launch anew with another token), and refuses it when the parameters changed: the AMI and the
        # snapshot are in it.
        instance = run.create_with_token(
            res,
            (subnet_id, params["ImageId"], *restore),
            lambda token: self._launch(run, res, params, token),
            lambda i: i["InstanceId"] if i["State"]["Name"] in GONE_STATES else None,
        )
        found = observed(res, self.kind, instance["InstanceId"], **_instance_attrs(instance))
        result = self.update(run, res, found, deps)
        # The kept snapshot is no longer needed once the instance runs with the volume made from it.
        if restore and result.attrs["volumes"].get(res.props["data_volume"]["device"]):
            delete_snapshot(run, restore[0])
        return result

    def _launch_params(
        self, run: AwsRun, res: Resource, deps: Mapping[str, Observed], snapshot_id: str = ""
    ) -> dict[str, Any]:
        props = res.props
        # Rendered first: a bad value fails before any AWS call.
        script = user_data(props["user_data"], deps) if props.get("user_data") else ""
        params: dict[str, Any] = {
            "ImageId": resolve_ami(run, props["ami_parameter"]),
            "InstanceType": props["instance_type"],
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": deps[props["subnet"]].id,
            "SecurityGroupIds": [deps[key].id for key in props["security_groups"]],
            "MetadataOptions": dict(METADATA_OPTIONS),
            "TagSpecifications": [run.ec2_tag_specs("instance", res)[0], run.ec2_tag_specs("volume", res)[0]],
        }
        if props["key_name"]:
            params["KeyName"] = props["key_name"]
        if props.get("profile"):
            params["IamInstanceProfile"] = {"Arn": deps[props["profile"]].attrs["arn"]}
        if script:
            # boto3 base64-encodes RunInstances user data itself.
            params["UserData"] = script
        if props.get("data_volume"):
            params["BlockDeviceMappings"] = [_data_volume_mapping(props["data_volume"], snapshot_id)]
        return params

    def _launch(self, run: AwsRun, res: Resource, params: Mapping[str, Any], token: str) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            with aws_errors(f"launching instance {res.name}"):
                return dict(_ec2(run).run_instances(**params, ClientToken=token)["Instances"][0])

        # A fresh instance profile is refused for a while ("Invalid IAM Instance Profile name").
        return retry_iam_propagation(run, f"launching instance {res.name}", call)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        props, attrs, ec2 = res.props, found.attrs, _ec2(run)
        self._ensure_running(run, found)
        groups = [deps[key].id for key in props["security_groups"]]
        if tuple(sorted(groups)) != attrs["security_groups"]:
            with aws_errors(f"setting the security groups of {found.id}"):
                ec2.modify_instance_attribute(InstanceId=found.id, Groups=groups)
        if (attrs["http_tokens"], attrs["metadata_tags"]) != ("required", "enabled"):
            with aws_errors(f"requiring IMDSv2 on {found.id}"):
                ec2.modify_instance_metadata_options(InstanceId=found.id, **METADATA_OPTIONS)
        if props.get("profile") and deps[props["profile"]].attrs["arn"] != attrs["profile_arn"]:
            self._set_profile(run, found, deps[props["profile"]].attrs["arn"])
        if props.get("eip") and deps[props["eip"]].attrs.get("public_ip") != attrs["public_ip"]:
            self._associate_address(run, found.id, deps[props["eip"]].id)
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

    def _set_profile(self, run: AwsRun, found: Observed, profile_arn: str) -> None:
        ec2 = _ec2(run)

        def call() -> None:
            with aws_errors(f"giving {found.id} instance profile {profile_arn}"):
                current = ec2.describe_iam_instance_profile_associations(
                    Filters=[
                        {"Name": "instance-id", "Values": [found.id]},
                        {"Name": "state", "Values": ["associating", "associated"]},
                    ]
                )["IamInstanceProfileAssociations"]
                if current:
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
        return observed(key, self.kind, instance_id, **_instance_attrs(reservations[0]["Instances"][0]))

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
    """The launch template data cdpoc manages, in one form for both desired and AWS's (no AMI id)."""
    tags = {
        spec["ResourceType"]: tuple(sorted((t["Key"], t["Value"]) for t in spec.get("Tags", [])))
        for spec in data.get("TagSpecifications", [])
        if spec.get("ResourceType") in TAGGED_AT_LAUNCH
    }
    metadata = data.get("MetadataOptions", {})
    encoded = data.get("UserData", "")
    return {
        "instance type": data.get("InstanceType", ""),
        "instance profile": data.get("IamInstanceProfile", {}).get("Arn", ""),
        "security groups": tuple(sorted(data.get("SecurityGroupIds", []))),
        "key pair": data.get("KeyName", ""),
        "metadata options": {k: metadata.get(k, "") for k in METADATA_OPTIONS},
        "launch tags": tags,
        "user data": base64.b64decode(encoded).decode("utf-8", "replace") if encoded else "",
    }


class LaunchTemplateHandler(Handler):
    kind = "launch_template"
    label = "launch template"
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

    def _data(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed], image_id: str) -> dict[str, Any]:
        props = res.props
        launch_tags = run.tags(props["instance_tags"]["component"], props["instance_tags"]["name"])
        data: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": props["instance_type"],
            "IamInstanceProfile": {"Arn": deps[props["profile"]].attrs["arn"]},
            "SecurityGroupIds": [deps[key].id for key in props["security_groups"]],
            "MetadataOptions": dict(METADATA_OPTIONS),
            "TagSpecifications": [{"ResourceType": kind, "Tags": launch_tags} for kind in TAGGED_AT_LAUNCH],
            # Unlike RunInstances, launch templates take user data already base64-encoded.
            "UserData": base64.b64encode(user_data(props["user_data"], deps).encode("utf-8")).decode("ascii"),
        }
        if props["key_name"]:
            data["KeyName"] = props["key_name"]
        return data

    def _differences(
        self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]
    ) -> list[str]:
        needed = (res.props["profile"], *res.props["security_groups"])
        missing = [key for key in needed if deps.get(key) is None]
        if missing:
            return [f"needs {', '.join(missing)} (to be created)"]
        present = cast(Mapping[str, Observed], deps)  # every dependency the data names exists (checked above)
        wanted = _comparable_template(self._data(run, res, present, image_id=""))
        return [field for field, value in wanted.items() if found.attrs["data"].get(field) != value]

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        differences = self._differences(run, res, found, deps)
        return [Change(f"new default version: {', '.join(differences)} differ")] if differences else []

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        data = self._data(run, res, deps, resolve_ami(run, res.props["ami_parameter"]))
        groups = tuple(deps[key].id for key in res.props["security_groups"])

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
        return self.update(run, res, self._observe(run, res.key, template), deps)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        if not self._differences(run, res, found, deps):
            return found
        data = self._data(run, res, deps, resolve_ami(run, res.props["ami_parameter"]))
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
        client = _autoscaling(run)
        with aws_errors(f"reading the scaling policies of {name}"):
            policies = client.describe_policies(AutoScalingGroupName=name)["ScalingPolicies"]
        with aws_errors(f"reading the notifications of {name}"):
            configs = client.describe_notification_configurations(AutoScalingGroupNames=[name])[
                "NotificationConfigurations"
            ]
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

    # What the group should be, in the form _observe gives; None where a dependency does not exist yet.
    def _wanted(
        self, run: AwsRun, res: Resource, deps: Mapping[str, Observed | None], found: Observed | None = None
    ) -> dict[str, Any]:
        props = res.props
        subnets = tuple(dep_id(deps, key) for key in props["subnets"])
        alb, target_group = dep_id(deps, props["load_balancer"]), dep_id(deps, props["target_group"])
        policy = props["scaling_policy"]
        return {
            "settings": {
                "min_size": props["min_size"],
                "max_size": props["max_size"],
                "subnets": None if None in subnets else tuple(sorted(s for s in subnets if s)),
                "launch_template": (dep_id(deps, props["launch_template"]), "$Default"),
                "health_check_type": _health_check_type(
                    props["health_check_type"], found.attrs["health_check_type"] if found else ""
                ),
                "health_check_grace_period": props["health_check_grace_period"],
            },
            "target_groups": (target_group,) if target_group else None,
            "tags": {t["Key"]: (t["Value"], True) for t in run.tags(res.key, props["instance_name"])},
            "policy": {
                "type": "TargetTrackingScaling",
                "metric": "ALBRequestCountPerTarget",
                "label": _resource_label(alb, target_group) if alb and target_group else None,
                "target": float(policy["target_requests_per_instance"]),
            },
            "notifications": (
                dep_id(deps, props["notifications"]["topic"]),
                tuple(sorted(props["notifications"]["types"])),
            ),
        }

    def _differences(
        self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]
    ) -> list[str]:
        wanted, attrs = self._wanted(run, res, deps, found), found.attrs
        # Desired capacity is the scaling policy's to move between min and max: never reset it.
        differences = [f"{field} -> {value}" for field, value in wanted["settings"].items() if attrs[field] != value]
        if wanted["target_groups"] != attrs["target_groups"]:
            differences.append(f"target group -> {res.props['target_group']}")
        differences.extend(f"tag {k}" for k, v in wanted["tags"].items() if attrs["tags"].get(k) != v)
        if attrs["policies"].get(res.props["scaling_policy"]["name"]) != wanted["policy"]:
            differences.append(f"scaling policy {res.props['scaling_policy']['name']}")
        topic, types = wanted["notifications"]
        if topic is None or attrs["notifications"].get(topic) != types:
            differences.append(f"notifications to {res.props['notifications']['topic']}")
        return differences

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        changes = [Change(difference) for difference in self._differences(run, res, found, deps)]
        if found.attrs["status"]:
            changes.append(Change(f"status is {found.attrs['status']!r}", in_place=False))
        return changes

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        props = res.props
        wanted = self._wanted(run, res, deps)
        params = {
            "AutoScalingGroupName": res.name,
            "LaunchTemplate": {"LaunchTemplateId": deps[props["launch_template"]].id, "Version": "$Default"},
            "MinSize": props["min_size"],
            "MaxSize": props["max_size"],
            "DesiredCapacity": props["desired_capacity"],
            "VPCZoneIdentifier": ",".join(deps[key].id for key in props["subnets"]),
            "TargetGroupARNs": list(wanted["target_groups"]),
            "HealthCheckType": props["health_check_type"],
            "HealthCheckGracePeriod": props["health_check_grace_period"],
            "Tags": self._tags(res, wanted["tags"]),
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
        return self.update(run, res, self._observe(run, res.key, group), deps)

    @staticmethod
    def _tags(res: Resource, tags: Mapping[str, tuple[str, bool]]) -> list[dict[str, Any]]:
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
        wanted, attrs, client = self._wanted(run, res, deps, found), found.attrs, _autoscaling(run)
        settings = wanted["settings"]
        if any(attrs[field] != value for field, value in settings.items()):
            with aws_errors(f"updating Auto Scaling group {res.name}"):
                client.update_auto_scaling_group(
                    AutoScalingGroupName=res.name,
                    LaunchTemplate={"LaunchTemplateId": settings["launch_template"][0], "Version": "$Default"},
                    MinSize=settings["min_size"],
                    MaxSize=settings["max_size"],
                    VPCZoneIdentifier=",".join(deps[key].id for key in res.props["subnets"]),
                    HealthCheckType=settings["health_check_type"],
                    HealthCheckGracePeriod=settings["health_check_grace_period"],
                )
        self._converge_target_groups(run, res, attrs["target_groups"], wanted["target_groups"])
        missing_tags = {k: v for k, v in wanted["tags"].items() if attrs["tags"].get(k) != v}
        if missing_tags:
            with aws_errors(f"tagging Auto Scaling group {res.name}"):
                client.create_or_update_tags(Tags=self._tags(res, missing_tags))
        policy_name = res.props["scaling_policy"]["name"]
        if attrs["policies"].get(policy_name) != wanted["policy"]:
            self._put_policy(run, res.name, policy_name, wanted["policy"])
        topic, types = wanted["notifications"]
        if attrs["notifications"].get(topic) != types:
            with aws_errors(f"sending the notifications of {res.name} to {topic}"):
                client.put_notification_configuration(
                    AutoScalingGroupName=res.name, TopicARN=topic, NotificationTypes=list(types)
                )
        self._wait_for_fleet(run, res.name, wanted["target_groups"][0])
        group = self._describe_group(run, res.name)
        if group is None:
            raise AwsError(f"Auto Scaling group {res.name} disappeared while it was being updated")
        return self._observe(run, res.key, group)

    def _converge_target_groups(
        self, run: AwsRun, res: Resource, have: tuple[str, ...], wanted: tuple[str, ...]
    ) -> None:
        client = _autoscaling(run)
        extra, missing = [arn for arn in have if arn not in wanted], [arn for arn in wanted if arn not in have]
        if missing:
            with aws_errors(f"attaching {res.name} to its target group"):
                client.attach_load_balancer_target_groups(AutoScalingGroupName=res.name, TargetGroupARNs=missing)
        if extra:
            with aws_errors(f"detaching {res.name} from other target groups"):
                client.detach_load_balancer_target_groups(AutoScalingGroupName=res.name, TargetGroupARNs=extra)

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
