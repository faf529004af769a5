"""Settings: defaults, user file and flags merge; every bad input names the setting and its source."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cdpoc.config import MAX_NAME_LENGTH, bucket_name_problem, load_settings
from cdpoc.errors import ConfigError


def from_environment() -> tuple[str, str]:
    """What ambient_region finds in the test environment (conftest sets AWS_DEFAULT_REGION)."""
    return "us-east-1", "AWS_DEFAULT_REGION"


def write(tmp_path: Path, data: object, name: str = "cdpoc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def problem(tmp_path: Path, data: object, **overrides: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, data), overrides, ambient_region=from_environment)
    assert caught.value.exit_code == 2
    return caught.value.message


def test_defaults_are_valid_and_complete() -> None:
    settings, source, region_source = load_settings(None, {}, cwd=Path("/nonexistent"), ambient_region=from_environment)
    assert source == ""
    assert (settings.region, region_source) == ("us-east-1", "AWS_DEFAULT_REGION")
    assert settings.name == "cdpoc"
    assert settings.network.public_subnets == ("10.0.0.0/24", "10.0.1.0/24")
    assert settings.network.nat_gateways == 1
    assert (settings.compute.min_size, settings.compute.desired_capacity, settings.compute.max_size) == (2, 2, 4)
    assert settings.load_balancer.deregistration_delay == 30
    assert settings.pipeline.deployment_config == "CodeDeployDefault.OneAtATime"


def test_every_default_setting_is_documented_with_a_comment() -> None:
    """Each setting, or the run of related settings it belongs to, has a comment right above it."""
    lines = (Path(__file__).parent.parent / "config" / "default.yaml").read_text().splitlines()

    def is_setting(line: str) -> bool:
        return bool(line.strip()) and not line.lstrip().startswith("#") and ":" in line

    for index, line in enumerate(lines):
        if not is_setting(line) or line.rstrip().endswith(":"):
            continue
        above = index - 1
        while above >= 0 and is_setting(lines[above]) and not lines[above].rstrip().endswith(":"):
            above -= 1
        assert above >= 0 and lines[above].lstrip().startswith("#"), f"undocumented setting: {line.strip()}"


def test_user_file_merges_over_defaults_key_by_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "shop", "network": {"nat_gateways": 2}, "tags": {"team": "web"}})
    settings, source, _ = load_settings(path, {}, ambient_region=from_environment)
    assert source == str(path)
    assert settings.name == "shop"
    assert settings.network.nat_gateways == 2
    assert settings.network.vpc_cidr == "10.0.0.0/16"  # untouched sibling keeps its default
    assert settings.tags == {"team": "web"}


def test_cdpoc_yaml_in_the_working_directory_is_used(tmp_path: Path) -> None:
    write(tmp_path, {"name": "fromcwd"})
    settings, source, _ = load_settings(None, {}, cwd=tmp_path, ambient_region=from_environment)
    assert settings.name == "fromcwd"
    assert source.endswith("cdpoc.yaml")


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "shop", "region": "eu-west-1"})
    settings, _, region_source = load_settings(path, {"name": "other", "region": None})
    assert settings.name == "other"
    assert (settings.region, region_source) == ("eu-west-1", str(path))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", {})


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    message = problem(tmp_path, "name: a\nnetwork: [unclosed\n")
    assert "cdpoc.yaml" in message and "malformed YAML" in message and "line" in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "must be a mapping" in problem(tmp_path, "- a\n- b\n")


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    message = problem(tmp_path, {"network": {"vpc_cdir": "10.0.0.0/16"}, "colour": "blue"})
    assert "network.vpc_cdir: unknown setting" in message
    assert "colour: unknown setting" in message
    assert str(tmp_path / "cdpoc.yaml") in message


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ({"vpc_cidr": "10.0.0.0/33"}, "network.vpc_cidr: '10.0.0.0/33' is not an IPv4 CIDR block"),
        ({"vpc_cidr": "10.0.0.1/16"}, "has host bits set; did you mean 10.0.0.0/16"),
        ({"vpc_cidr": "10.0.0.0/8"}, "must be between /16 and /28"),
        ({"bastion_subnet": "192.168.0.0/24"}, "network.bastion_subnet 192.168.0.0/24 is outside network.vpc_cidr"),
        ({"app_subnets": ["10.0.0.0/24", "10.0.11.0/24"]}, "overlaps network.app_subnets[0] 10.0.0.0/24"),
        ({"data_subnets": ["10.0.20.0/24"]}, "network.data_subnets: needs exactly two CIDR blocks"),
        ({"public_subnets": ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]}, "needs exactly two CIDR blocks"),
        ({"nat_gateways": 3}, "network.nat_gateways"),
    ],
)
def test_bad_network(tmp_path: Path, network: dict[str, object], expected: str) -> None:
    message = problem(tmp_path, {"network": network})
    assert expected in message
    assert "cdpoc.yaml" in message


@pytest.mark.parametrize(
    ("compute", "expected"),
    [
        ({"min_size": 3, "desired_capacity": 2}, "min_size <= desired_capacity <= max_size, got 3 / 2 / 4"),
        ({"desired_capacity": 5}, "got 2 / 5 / 4"),
        ({"instance_type": "big"}, "is not an EC2 instance type"),
    ],
)
def test_bad_compute(tmp_path: Path, compute: dict[str, object], expected: str) -> None:
    assert expected in problem(tmp_path, {"compute": compute})


@pytest.mark.parametrize(
    "bucket",
    [
        "Upper-Case",
        "ab",
        "a" * 64,
        "-leading",
        "two..dots",
        "192.168.1.1",
        "xn--punycode",
        "name-s3alias",
        "under_score",
    ],
)
def test_bad_bucket_names(tmp_path: Path, bucket: str) -> None:
    message = problem(tmp_path, {"buckets": {"web": bucket}})
    assert "buckets.web" in message and "bucket name" in message


def test_good_bucket_names() -> None:
    for name in ("my-bucket", "www.example.com", "abc", "a" * 63):
        assert bucket_name_problem(name) == ""


@pytest.mark.parametrize("email", ["ops", "ops@", "ops@example", "two@@example.com", "a b@example.com"])
def test_bad_email(tmp_path: Path, email: str) -> None:
    assert "operator.email" in problem(tmp_path, {"operator": {"email": email}})


def test_bad_ssh_cidr(tmp_path: Path) -> None:
    assert "operator.ssh_cidr" in problem(tmp_path, {"operator": {"ssh_cidr": "my laptop"}})


def test_ssh_from_the_whole_internet_takes_an_explicit_setting(tmp_path: Path) -> None:
    message = problem(tmp_path, {"operator": {"ssh_cidr": "0.0.0.0/0"}})
    assert "whole internet" in message and "allow_ssh_from_anywhere: true" in message
    allowed = {"operator": {"ssh_cidr": "0.0.0.0/0", "allow_ssh_from_anywhere": True}}
    settings, _, _ = load_settings(write(tmp_path, allowed), {}, ambient_region=from_environment)
    assert settings.operator.ssh_cidr == "0.0.0.0/0"
    narrow, _, _ = load_settings(
        write(tmp_path, {"operator": {"ssh_cidr": "203.0.113.7/32"}}), {}, ambient_region=from_environment
    )
    assert not narrow.operator.allow_ssh_from_anywhere


@pytest.mark.parametrize(
    "name",
    ["", "Shop", "shop-", "-shop", "sh--op", "9shop", "s" * (MAX_NAME_LENGTH + 1), "a_b", "sg", "sg-web", "internal"],
)
def test_stack_name_that_cannot_prefix_every_resource(tmp_path: Path, name: str) -> None:
    assert "cannot prefix every resource name" in problem(tmp_path, {"name": name})


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("aws", "SSM parameter names (/<name>/...) starting with 'aws'"),
        ("awsdemo", "SSM parameter names (/<name>/...) starting with 'aws'"),
        ("ssm", "SSM parameter names (/<name>/...) starting with 'ssm'"),
        ("ssmith", "SSM parameter names (/<name>/...) starting with 'ssm'"),
        ("sthree", "bucket names starting with 'sthree-'"),
        ("amzn-s3-demo", "bucket names starting with 'amzn-s3-demo-'"),
    ],
)
def test_stack_name_aws_reserves_names_the_rule(tmp_path: Path, name: str, refused: str) -> None:
    message = problem(tmp_path, {"name": name})
    assert f"name: {name!r} cannot prefix every resource name: AWS refuses {refused}" in message


@pytest.mark.parametrize("name", ["aw", "as", "sms", "sgx", "internals", "xn"])
def test_names_near_the_reserved_prefixes_are_fine(tmp_path: Path, name: str) -> None:
    assert load_settings(write(tmp_path, {"name": name}), {}, ambient_region=from_environment).settings.name == name


def test_two_buckets_with_one_name_are_refused(tmp_path: Path) -> None:
    message = problem(tmp_path, {"buckets": {"web": "shop-site", "uploads": "shop-site", "artifacts": "shop-site"}})
    assert "buckets: buckets.artifacts and buckets.web are both 'shop-site'" in message
    assert "buckets.web and buckets.uploads are both 'shop-site'" in message
    assert "each bucket needs its own name" in message
    assert str(tmp_path / "cdpoc.yaml") in message


def test_a_bucket_name_reserved_for_the_account_regional_namespace_is_refused(tmp_path: Path) -> None:
    assert "must not end with '-an'" in problem(tmp_path, {"buckets": {"web": "shop-123456789012-us-east-1-an"}})


def test_bad_name_from_a_flag_names_the_flag(tmp_path: Path) -> None:
    message = problem(tmp_path, {}, name="Bad Name")
    assert "--name: name:" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"availability_zones": ["us-east-1a"]}, "exactly two different zones"),
        ({"availability_zones": ["us-east-1a", "us-east-1a"]}, "exactly two different zones"),
        ({"availability_zones": ["us-east-1a", "us-east-1b", "us-east-1c"]}, "exactly two different zones"),
        ({"availability_zones": ["eu-west-1a", "eu-west-1b"]}, "is not a zone name of region us-east-1"),
        (
            {"availability_zones": ["us-east-1a", "us-east-1b"], "bastion_availability_zone": "us-east-1c"},
            "is not one of",
        ),
        ({"region": "mars"}, "is not a region name"),
        ({"tags": {"cdpoc:stack": "x"}}, "is reserved"),
        ({"logs": {"retention_days": 10}}, "is not a retention CloudWatch Logs accepts"),
        ({"pipeline": {"source": "github"}}, "pipeline.source"),
        ({"pipeline": {"branch": "bad..branch"}}, "not a valid git branch name"),
        ({"load_balancer": {"health_check_path": "health"}}, "must be a path starting with /"),
    ],
)
def test_other_bad_settings(tmp_path: Path, data: dict[str, object], expected: str) -> None:
    message = problem(tmp_path, data)
    assert expected in message
    assert str(tmp_path / "cdpoc.yaml") in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    message = problem(tmp_path, {"name": "BAD", "operator": {"email": "nope"}, "colour": 1})
    assert "name:" in message and "operator.email" in message and "colour" in message


# --- the region: --region, else the user file, else AWS's own settings; never a silent default ---------


def test_the_defaults_set_no_region() -> None:
    assert yaml.safe_load((Path(__file__).parent.parent / "config" / "default.yaml").read_text())["region"] == ""


def test_region_flag_wins_over_the_file_and_aws_settings(tmp_path: Path) -> None:
    asked: list[bool] = []

    def ambient() -> tuple[str, str]:
        asked.append(True)
        return "us-east-1", "AWS_REGION"

    path = write(tmp_path, {"region": "eu-west-1"})
    loaded = load_settings(path, {"region": "ap-south-1"}, ambient_region=ambient)
    assert (loaded.settings.region, loaded.region_source) == ("ap-south-1", "--region")
    loaded = load_settings(path, {"region": None}, ambient_region=ambient)
    assert (loaded.settings.region, loaded.region_source) == ("eu-west-1", str(path))
    assert asked == []  # AWS's settings are read only when neither the flag nor the file names a region


def test_region_from_aws_settings_when_the_file_sets_none(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "shop", "region": ""})
    loaded = load_settings(path, {}, ambient_region=lambda: ("eu-central-1", "AWS_REGION"))
    assert (loaded.settings.region, loaded.region_source) == ("eu-central-1", "AWS_REGION")


def test_a_bad_region_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, {}), {}, ambient_region=lambda: ("mars", "AWS_REGION"))
    assert "AWS_REGION: region: 'mars' is not a region name" in caught.value.message


def test_no_region_anywhere_says_how_to_set_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, {"operator": {"email": "nope"}}), {}, ambient_region=lambda: None)
    message = caught.value.message
    assert caught.value.exit_code == 2
    assert "region: no AWS region is set" in message
    for way in ("--region", "`region:` in cdpoc.yaml", "AWS_REGION", "aws configure set region"):
        assert way in message
    assert "operator.email" in message  # reported together with every other problem
