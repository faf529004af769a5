"""Facts about the account and region a run needs before planning: identity, zones, tagged leftovers."""

from __future__ import annotations

from dataclasses import dataclass

from cdpoc.aws.errors import aws_errors, call_or_none
from cdpoc.aws.run import STACK_TAG, AwsRun
from cdpoc.errors import ConfigError


def caller_identity(run: AwsRun) -> dict[str, str]:
    """STS's answer to "who are we" (Account, Arn, UserId), asked once per run."""

    def lookup() -> dict[str, str]:
        if run.clients.identity is not None:  # the run's reachability probe asked already
            return run.clients.identity
        with aws_errors("asking STS who we are"):
            reply = run.client("sts").get_caller_identity()
        return {key: str(reply.get(key, "")) for key in ("Account", "Arn", "UserId")}

    return run.memo("identity", lookup)


def account_id(run: AwsRun) -> str:
    return caller_identity(run)["Account"]


@dataclass(frozen=True)
class Problem:
    """A setting that does not fit the account or region, and what to do about it."""

    message: str
    hint: str

    def line(self) -> str:
        return f"{self.message} ({self.hint})"


def resolve_zones(run: AwsRun, wanted: tuple[str, ...], instance_types: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The configured zones, checked against the region; or the region's first two that offer every
    instance type the stack runs (zone names map to different physical zones per account, and not
    every zone has every type: a launch there fails with "Unsupported")."""
    zones, problem = choose_zones(run, wanted, instance_types)
    if problem:
        raise ConfigError(problem.message, problem.hint)
    return zones


def choose_zones(
    run: AwsRun, wanted: tuple[str, ...], instance_types: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], Problem | None]:
    """resolve_zones without raising: the zones, or why there are none to use. Reads are memoized, so
    the preflight check and the graph share them."""
    available = run.memo("zones:available", lambda: _available_zones(run))
    types = tuple(sorted(set(instance_types)))
    lacking = (
        run.memo(f"zones:lacking:{','.join(types)}", lambda: _zones_lacking(run, available, types)) if types else {}
    )
    if wanted:
        unknown = [z for z in wanted if z not in available]
        if unknown:
            return (), Problem(
                f"availability_zones: {', '.join(unknown)} not available in {run.region}",
                f"Use two of: {', '.join(available)} (or leave the setting empty).",
            )
        unsuited = [f"{zone} lacks {', '.join(lacking[zone])}" for zone in wanted if lacking.get(zone)]
        if unsuited:
            return (), Problem(f"availability_zones: {'; '.join(unsuited)}", "Choose other zones or instance types.")
        return wanted, None
    suited = [zone for zone in available if not lacking.get(zone)]
    if len(suited) < 2:
        return (), Problem(
            f"region {run.region} has fewer than two available zones offering {', '.join(types) or 'EC2'}: "
            f"{', '.join(suited) or 'none'}",
            "Choose other instance types (compute.*) or another region.",
        )
    return tuple(suited[:2]), None


def _available_zones(run: AwsRun) -> list[str]:
    with aws_errors(f"listing availability zones of {run.region}"):
        zones = run.client("ec2").describe_availability_zones(
            Filters=[
                {"Name": "state", "Values": ["available"]},
                {"Name": "zone-type", "Values": ["availability-zone"]},
            ]
        )["AvailabilityZones"]
    return sorted(z["ZoneName"] for z in zones)


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


def offered_instance_types(run: AwsRun, instance_types: tuple[str, ...]) -> set[str]:
    """Which of these instance types the region offers (a name EC2 does not know is offered nowhere)."""
    offered: set[str] = set()
    with aws_errors(f"listing which of {', '.join(instance_types)} {run.region} offers"):
        pages = (
            run.client("ec2")
            .get_paginator("describe_instance_type_offerings")
            .paginate(LocationType="region", Filters=[{"Name": "instance-type", "Values": sorted(set(instance_types))}])
        )
        for page in pages:
            offered.update(offering["InstanceType"] for offering in page["InstanceTypeOfferings"])
    return offered


def instance_architectures(run: AwsRun, instance_types: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """instance type -> the CPU architectures it runs (x86_64, arm64, ...), for types the region offers."""
    with aws_errors(f"describing instance types {', '.join(instance_types)}"):
        reply = run.client("ec2").describe_instance_types(InstanceTypes=sorted(set(instance_types)))
    return {t["InstanceType"]: tuple(t["ProcessorInfo"]["SupportedArchitectures"]) for t in reply["InstanceTypes"]}


def image_architecture(run: AwsRun, image_id: str) -> str | None:
    """The AMI's architecture, or None when the region has no such image (or the id is malformed)."""
    reply = call_or_none(
        f"describing image {image_id}",
        run.client("ec2").describe_images,
        ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"),
        ImageIds=[image_id],
    )
    images = reply["Images"] if reply else []
    return str(images[0].get("Architecture", "")) if images else None


def key_pair_exists(run: AwsRun, name: str) -> bool:
    reply = call_or_none(
        f"looking up EC2 key pair {name}",
        run.client("ec2").describe_key_pairs,
        ("InvalidKeyPair.NotFound",),
        KeyNames=[name],
    )
    return bool(reply and reply["KeyPairs"])


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
