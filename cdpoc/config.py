"""Settings for a run: config/default.yaml, then the user's file, then flags; validated and frozen.

Every problem is reported with the dotted setting name and the file (or flag) that set it, and
raises ConfigError (exit 2) before any AWS call is made.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdpoc.errors import ConfigError

USER_FILE_NAME = "cdpoc.yaml"
DEFAULT_SOURCE = "config/default.yaml"

# Longest name suffixes we append to the stack name, per service limit. See resource names in stack.py.
MAX_NAME_LENGTH = 20
STACK_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$")
# Prefixes AWS reserves in names cdpoc derives from the stack name, checked against "<name>-" (stack names
# are lowercase, so case-insensitive rules need only the lowercase form). Every derived name, and its rule:
# - SSM parameters "/<name>/mongodb/...": a parameter name can't be prefixed with "aws" or "ssm"
#   (case-insensitive, "/aws..." paths too) -- SSM API Reference, PutParameter, Name.
# - security groups "<name>-alb-sg": GroupName can't start with "sg-" -- EC2 API Reference, CreateSecurityGroup.
# - load balancer "<name>-alb": must not begin with "internal-" -- ELBv2 API Reference, CreateLoadBalancer.
# - buckets "<name>-<account>-<region>-<purpose>": must not start with "xn--" (unreachable: stack names have
#   no "--"), "sthree-" (which covers "sthree-configurator") or "amzn-s3-demo-"; the reserved suffixes
#   ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3", "-an") cannot end a derived name -- S3 User
#   Guide, "General purpose bucket naming rules".
# - log group "/cdpoc/<name>": AWS reserves "/aws/", which a name under /cdpoc/ never starts with.
# - IAM roles and profiles "<name>-..." under the path /cdpoc/<name>/, target group "<name>-app", launch
#   template and Auto Scaling group "<name>-app", SNS topic "<name>-alerts", CodeDeploy application
#   "<name>" and group "<name>-fleet", pipeline "<name>-pipeline", EventBridge rule "<name>-source-changes":
#   no reserved prefix is documented for these.
RESERVED_NAME_PREFIXES = {
    "aws": "SSM parameter names (/<name>/...) starting with 'aws'",
    "ssm": "SSM parameter names (/<name>/...) starting with 'ssm'",
    "sg-": "security group names starting with 'sg-'",
    "internal-": "load balancer names starting with 'internal-'",
    "sthree-": "bucket names starting with 'sthree-'",
    "amzn-s3-demo-": "bucket names starting with 'amzn-s3-demo-'",
}
BUCKET_PURPOSES = ("artifacts", "web", "uploads")
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
NO_REGION = (
    "no AWS region is set: pass --region, set `region:` in cdpoc.yaml, export AWS_REGION, "
    "or run `aws configure set region <region>` (e.g. us-east-1)"
)
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _network(value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.IPv4Network(value, strict=False)
            raise ValueError(f"{value!r} has host bits set; did you mean {fixed}?") from None
        raise ValueError(f"{value!r} is not an IPv4 CIDR block like 10.0.1.0/24") from None


def _check_block(value: str, smallest: int = 28, largest: int = 16) -> str:
    net = _network(value)
    if not largest <= net.prefixlen <= smallest:
        raise ValueError(f"{value} must be between /{largest} and /{smallest} (an AWS limit)")
    return value


class NetworkSettings(_Frozen):
    vpc_cidr: str
    public_subnets: tuple[str, ...]
    app_subnets: tuple[str, ...]
    data_subnets: tuple[str, ...]
    bastion_subnet: str
    nat_gateways: Literal[1, 2]

    @field_validator("vpc_cidr", "bastion_subnet")
    @classmethod
    def _block(cls, value: str) -> str:
        return _check_block(value)

    @field_validator("public_subnets", "app_subnets", "data_subnets")
    @classmethod
    def _two_blocks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) != 2:
            raise ValueError(f"needs exactly two CIDR blocks (one per availability zone), got {len(value)}")
        return tuple(_check_block(v) for v in value)

    @model_validator(mode="after")
    def _inside_and_apart(self) -> NetworkSettings:
        vpc = _network(self.vpc_cidr)
        named = [
            (f"network.{tier}_subnets[{i}]", c)
            for tier in ("public", "app", "data")
            for i, c in enumerate(getattr(self, f"{tier}_subnets"))
        ]
        named.append(("network.bastion_subnet", self.bastion_subnet))
        problems = []
        for label, cidr in named:
            if not _network(cidr).subnet_of(vpc):
                problems.append(f"{label} {cidr} is outside network.vpc_cidr {self.vpc_cidr}")
        for i, (label_a, a) in enumerate(named):
            for label_b, b in named[i + 1 :]:
                if _network(a).overlaps(_network(b)):
                    problems.append(f"{label_a} {a} overlaps {label_b} {b}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def subnets(self, tier: str) -> tuple[str, ...]:
        return tuple(getattr(self, f"{tier}_subnets"))


# SSH open to the whole internet is what bots scan for within minutes; a prefix this short or shorter takes an
# explicit operator.allow_ssh_from_anywhere.
WIDEST_SSH_PREFIX = 1


class OperatorSettings(_Frozen):
    email: str = ""
    ssh_cidr: str = ""
    allow_ssh_from_anywhere: bool = False
    key_name: str = ""

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if value and not EMAIL_RE.match(value):
            raise ValueError(f"{value!r} is not an email address like ops@example.com")
        return value

    @field_validator("ssh_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        if value:
            _network(value)
        return value

    @model_validator(mode="after")
    def _not_the_whole_internet(self) -> OperatorSettings:
        if self.ssh_cidr and _network(self.ssh_cidr).prefixlen < WIDEST_SSH_PREFIX and not self.allow_ssh_from_anywhere:
            raise ValueError(
                f"ssh_cidr {self.ssh_cidr} lets the whole internet try SSH on the bastion; give your own address "
                "(e.g. 203.0.113.7/32: `curl https://checkip.amazonaws.com`), or set "
                "operator.allow_ssh_from_anywhere: true if that is really meant"
            )
        return self


class ComputeSettings(_Frozen):
    instance_type: str
    bastion_instance_type: str
    mongodb_instance_type: str
    ami_parameter: str
    min_size: int = Field(ge=0)
    desired_capacity: int = Field(ge=0)
    max_size: int = Field(ge=1)
    target_requests_per_instance: int = Field(ge=1)

    @field_validator("instance_type", "bastion_instance_type", "mongodb_instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if not re.match(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$", value):
            raise ValueError(f"{value!r} is not an EC2 instance type like t3.micro")
        return value

    @model_validator(mode="after")
    def _capacity(self) -> ComputeSettings:
        if not self.min_size <= self.desired_capacity <= self.max_size:
            raise ValueError(
                f"capacity must satisfy min_size <= desired_capacity <= max_size, got "
                f"{self.min_size} / {self.desired_capacity} / {self.max_size}"
            )
        return self


class LoadBalancerSettings(_Frozen):
    health_check_path: str
    health_check_interval: int = Field(ge=5, le=300)
    healthy_threshold: int = Field(ge=2, le=10)
    unhealthy_threshold: int = Field(ge=2, le=10)
    deregistration_delay: int = Field(ge=0, le=3600)

    @field_validator("health_check_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or len(value) > 1024:
            raise ValueError(f"{value!r} must be a path starting with / (at most 1024 characters)")
        return value


class BucketSettings(_Frozen):
    artifacts: str = ""
    web: str = ""
    uploads: str = ""

    @field_validator("artifacts", "web", "uploads")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if value:
            problem = bucket_name_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _distinct(self) -> BucketSettings:
        # The stack would find its own first bucket where it wants the second, and share it: refuse. A
        # configured name equal to another's derived default needs the account: cdpoc.preflight checks that.
        named = [(f"buckets.{purpose}", getattr(self, purpose)) for purpose in BUCKET_PURPOSES]
        problems = [
            f"{label_a} and {label_b} are both {a!r}: each bucket needs its own name (or leave one empty)"
            for i, (label_a, a) in enumerate(named)
            for label_b, b in named[i + 1 :]
            if a and a == b
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PipelineSettings(_Frozen):
    source: Literal["codecommit", "s3"]
    repository: str
    branch: str
    s3_source_key: str
    deployment_config: str

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if value and (not re.match(r"^[\w.-]{1,100}$", value) or value.endswith(".git")):
            raise ValueError(f"{value!r} is not a CodeCommit repository name (letters, digits, . _ -; at most 100)")
        return value

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if (
            not value
            or len(value) > 256
            or re.search(r"[\s~^:?*\[\\]|\.\.|//|@\{", value)
            or value.endswith((".", "/", ".lock"))
        ):
            raise ValueError(f"{value!r} is not a valid git branch name")
        return value


class LogSettings(_Frozen):
    retention_days: int

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"{value} is not a retention CloudWatch Logs accepts: one of {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        return value


class Settings(_Frozen):
    name: str
    region: str
    availability_zones: tuple[str, ...] = ()
    bastion_availability_zone: str = ""
    network: NetworkSettings
    operator: OperatorSettings
    compute: ComputeSettings
    load_balancer: LoadBalancerSettings
    buckets: BucketSettings
    pipeline: PipelineSettings
    logs: LogSettings
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > MAX_NAME_LENGTH or not STACK_NAME_RE.match(value):
            raise ValueError(
                f"{value!r} cannot prefix every resource name: use 1-{MAX_NAME_LENGTH} lowercase letters, "
                "digits and single hyphens, starting with a letter and not ending with a hyphen"
            )
        for prefix, refused in RESERVED_NAME_PREFIXES.items():
            if f"{value}-".startswith(prefix):
                raise ValueError(f"{value!r} cannot prefix every resource name: AWS refuses {refused}")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not value:
            raise ValueError(NO_REGION)
        if not REGION_RE.match(value):
            raise ValueError(f"{value!r} is not a region name like us-east-1")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tag_value in value.items():
            if key.lower().startswith(("aws:", "cdpoc:")):
                raise ValueError(f"tag key {key!r} is reserved (aws: and cdpoc: prefixes)")
            if not 1 <= len(key) <= 128 or len(str(tag_value)) > 256:
                raise ValueError(f"tag {key!r}: keys are 1-128 characters, values at most 256")
        return value

    @model_validator(mode="after")
    def _zones(self) -> Settings:
        zones = self.availability_zones
        if zones and (len(zones) != 2 or len(set(zones)) != 2):
            raise ValueError(f"availability_zones needs exactly two different zones (or none), got {list(zones)}")
        for zone in (*zones, self.bastion_availability_zone):
            if zone and not re.match(rf"^{re.escape(self.region)}[a-z]$", zone):
                raise ValueError(f"zone {zone!r} is not a zone name of region {self.region} (like {self.region}a)")
        if zones and self.bastion_availability_zone and self.bastion_availability_zone not in zones:
            raise ValueError(f"bastion_availability_zone {self.bastion_availability_zone} is not one of {list(zones)}")
        return self


def bucket_name_problem(name: str) -> str:
    """Why `name` breaks S3's general-purpose bucket naming rules, or "" when it does not."""
    if not 3 <= len(name) <= 63:
        return f"bucket name {name!r} must be 3-63 characters long"
    if not re.match(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$", name):
        return (
            f"bucket name {name!r} may hold only lowercase letters, digits, dots and hyphens, "
            "and must begin and end with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        return f"bucket name {name!r} must not have two adjacent dots or a dot next to a hyphen"
    if re.match(r"^\d+\.\d+\.\d+\.\d+$", name):
        return f"bucket name {name!r} must not look like an IP address"
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if name.startswith(prefix):
            return f"bucket name {name!r} must not start with {prefix!r}"
    # "-an" ends only names in an account regional namespace; cdpoc creates its buckets in the global one.
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3", "-an"):
        if name.endswith(suffix):
            return f"bucket name {name!r} must not end with {suffix!r}"
    return ""


def _deep_merge(
    base: dict[str, Any], over: Mapping[str, Any], source: str, origin: dict[str, str], prefix: str = ""
) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(merged.get(key, {}), Mapping) and key != "tags":
            merged[key] = _deep_merge(dict(merged.get(key, {})), value, source, origin, f"{path}.")
        else:
            merged[key] = value
            origin[path] = source
    return merged


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"{source}: malformed YAML{where}: {problem}", "Fix the file's syntax and run again."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of settings, got {type(data).__name__}")
    return data


def default_config_text() -> str:
    return resources.files("cdpoc.defaults").joinpath("default.yaml").read_text(encoding="utf-8")


def _where(loc: tuple[int | str, ...], origin: Mapping[str, str]) -> tuple[str, str]:
    """The dotted setting name of a validation error and the source (file or flag) that set it."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int) and parts:
            parts[-1] = f"{parts[-1]}[{item}]"
        else:
            parts.append(str(item))
    dotted = ".".join(parts)
    plain = ".".join(p.split("[")[0] for p in parts)
    for end in range(len(parts), 0, -1):
        key = ".".join(p.split("[")[0] for p in parts[:end])
        if key in origin:
            return dotted, origin[key]
    # An error on a whole section (or the whole file): name the least default source that set part of it.
    under = [source for key, source in origin.items() if not plain or key.startswith(plain + ".")]
    chosen = [s for s in under if s != DEFAULT_SOURCE]
    return dotted, (chosen[-1] if chosen else DEFAULT_SOURCE)


class LoadedSettings(NamedTuple):
    settings: Settings
    source: str
    """The user file used, "" if none."""
    region_source: str
    """Where the region came from: --region, the user file, AWS_REGION, AWS_DEFAULT_REGION or a profile."""


def describe_region(region: str, source: str) -> str:
    """How every header names the region: "eu-west-1 (region from AWS_REGION)"."""
    return f"{region} (region from {source})" if source else region


def load_settings(
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
    ambient_region: Callable[[], tuple[str, str] | None] = lambda: None,
) -> LoadedSettings:
    """Merge default, user file and flag overrides into Settings.

    The region is --region, else the user file's, else what ambient_region() finds (AWS_REGION,
    AWS_DEFAULT_REGION, the profile's), as (region, where it came from); the defaults set none, so that
    a region the AWS tools are set up with is never overridden silently.
    """
    origin: dict[str, str] = {}
    data = _deep_merge({}, _read_yaml(default_config_text(), DEFAULT_SOURCE), DEFAULT_SOURCE, origin)
    user_source = ""
    if config_path is None:
        candidate = (cwd or Path.cwd()) / USER_FILE_NAME
        config_path = candidate if candidate.is_file() else None
    if config_path is not None:
        user_source = str(config_path)
        try:
            text = config_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"config file {config_path} does not exist", "Pass an existing file to --config."
            ) from None
        except OSError as exc:
            raise ConfigError(f"config file {config_path} cannot be read: {exc.strerror}") from None
        data = _deep_merge(data, _read_yaml(text, user_source), user_source, origin)
    for key, value in (overrides or {}).items():
        if value is not None:
            data = _deep_merge(data, {key: value}, f"--{key.replace('_', '-')}", origin)
    if not data.get("region"):
        found = ambient_region()
        data["region"], origin["region"] = found or ("", "")
    try:
        return LoadedSettings(Settings.model_validate(data), user_source, origin["region"])
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            dotted, source = _where(tuple(error["loc"]), origin)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown setting (see config/default.yaml for the settings there are)"
            lines.append(f"{source + ': ' if source else ''}{dotted or '(top level)'}: {message}")
        raise ConfigError(
            "invalid configuration:\n  " + "\n  ".join(lines),
            "Correct the settings named above; nothing was created.",
        ) from None
