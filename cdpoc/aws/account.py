"""Facts about the account and region a run needs before planning: identity, zones, tagged leftovers."""

from __future__ import annotations

from cdpoc.aws.base import STACK_TAG, AwsRun, aws_errors
from cdpoc.errors import ConfigError


def caller_identity(run: AwsRun) -> dict[str, str]:
    """STS's answer to "who are we" (Account, Arn, UserId), asked once per run."""

    def lookup() -> dict[str, str]:
        with aws_errors("asking STS who we are"):
            reply = run.client("sts").get_caller_identity()
        return {key: str(reply.get(key, "")) for key in ("Account", "Arn", "UserId")}

    return run.memo("identity", lookup)


def account_id(run: AwsRun) -> str:
    return caller_identity(run)["Account"]


def resolve_zones(run: AwsRun, wanted: tuple[str, ...], instance_types: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The configured zones, checked against the region; or the region's first two that offer every
    instance type the stack runs (zone names map to different physical zones per account, and not
    every zone has every type: a launch there fails with "Unsupported")."""
    ec2 = run.client("ec2")
    with aws_errors(f"listing availability zones of {run.region}"):
        zones = ec2.describe_availability_zones(
            Filters=[
                {"Name": "state", "Values": ["available"]},
                {"Name": "zone-type", "Values": ["availability-zone"]},
            ]
        )["AvailabilityZones"]
    available = sorted(z["ZoneName"] for z in zones)
    lacking = _zones_lacking(run, available, instance_types) if instance_types else {}
    if wanted:
        unknown = [z for z in wanted if z not in available]
        if unknown:
            raise ConfigError(
                f"availability_zones: {', '.join(unknown)} not available in {run.region}",
                f"Use two of: {', '.join(available)} (or leave the setting empty).",
            )
        unsuited = [f"{zone} lacks {', '.join(lacking[zone])}" for zone in wanted if lacking.get(zone)]
        if unsuited:
            raise ConfigError(f"availability_zones: {'; '.join(unsuited)}", "Choose other zones or instance types.")
        return wanted
    suited = [zone for zone in available if not lacking.get(zone)]
    if len(suited) < 2:
        raise ConfigError(
            f"region {run.region} has fewer than two available zones offering {', '.join(instance_types) or 'EC2'}: "
            f"{', '.join(suited) or 'none'}",
            "Choose other instance types (compute.*) or another region.",
        )
    return tuple(suited[:2])


def _zones_lacking(run: AwsRun, zones: list[str], instance_types: tuple[str, ...]) -> dict[str, list[str]]:
    """zone -> the configured instance types it does not offer."""
    offered: dict[str, set[str]] = {zone: set() for zone in zones}
    with aws_errors(f"listing which zones of {run.region} offer {', '.join(instance_types)}"):
        pages = (
            run.client("ec2")
            .get_paginator("describe_instance_type_offerings")
            .paginate(
                LocationType="availability-zone",
                Filters=[{"Name": "instance-type", "Values": sorted(set(instance_types))}],
            )
        )
        for page in pages:
            for offering in page["InstanceTypeOfferings"]:
                offered.setdefault(offering["Location"], set()).add(offering["InstanceType"])
    return {zone: sorted(set(instance_types) - offered[zone]) for zone in zones}


def tagged_arns(run: AwsRun) -> list[str]:
    """ARNs the Resource Groups Tagging API still lists with the stack's tag (it also lists some deleted ones)."""
    arns: list[str] = []
    with aws_errors("scanning for resources tagged with the stack"):
        paginator = run.client("resourcegroupstaggingapi").get_paginator("get_resources")
        for page in paginator.paginate(TagFilters=[{"Key": STACK_TAG, "Values": [run.stack]}]):
            arns.extend(m["ResourceARN"] for m in page["ResourceTagMappingList"])
    return arns


# Services whose ARNs name the resource with no type in front: arn:aws:s3:::bucket, arn:aws:sns:r:a:topic,
# arn:aws:codecommit:r:a:repository, arn:aws:codepipeline:r:a:pipeline.
UNTYPED_ARNS = {"s3": "bucket", "sns": "topic", "codecommit": "repository", "codepipeline": "pipeline"}


def arn_type(arn: str) -> str:
    """'arn:aws:ec2:us-east-1:123:subnet/subnet-1' -> 'ec2:subnet'; '...:log-group:/cdpoc/x' -> 'logs:log-group'."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return ""
    service, resource = parts[2], parts[5]
    if service in UNTYPED_ARNS and "/" not in resource:
        return f"{service}:{UNTYPED_ARNS[service]}"
    # The type ends at the first separator, whichever it is ("log-group:/name", "targetgroup/name/id").
    kind = resource.split("/", 1)[0] if "/" in resource else resource.split(":", 1)[0]
    if ":" in kind:
        kind = kind.split(":", 1)[0]
    return f"{service}:{kind}"
