"""The stack's data: `down` says what goes, `down --keep-data` keeps it and `up` takes it back; a missing
generated password is never made anew while the database it was given to (or its kept data) exists.

The whole stack runs against moto in-process; `cdpoc` commands go through the real CLI (CliRunner).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from cdpoc_testing import FAST_WAITS, recording_ui
from typer.testing import CliRunner

from cdpoc import lifecycle
from cdpoc.aws.account import tagged_arns
from cdpoc.aws.run import AwsRun
from cdpoc.aws.snapshots import KEPT_TAG, kept_snapshots, snapshot_volume
from cdpoc.aws.source import branch_history
from cdpoc.cli import app
from cdpoc.context import Context, Options
from cdpoc.cost import monthly_storage_cost
from cdpoc.errors import ConflictError
from cdpoc.sweeper import leftovers

REGION = "us-east-1"
ACCOUNT = "123456789012"
APP_PASSWORD = "/{stack}/mongodb/app-password"
ADMIN_PASSWORD = "/{stack}/mongodb/admin-password"


@pytest.fixture
def stack(aws: None, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A stack name with its own repository, for `cdpoc --config ...` runs (with short polls); moto is per test."""
    monkeypatch.setattr("cdpoc.context.Waits", lambda: FAST_WAITS)
    name = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-12:].lstrip("0123456789") or "kd"
    config = tmp_path / "cdpoc.yaml"
    config.write_text(yaml.safe_dump({"name": name, "pipeline": {"repository": f"{name}-repo"}}))
    yield name


def cdpoc(tmp_path: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(tmp_path / "cdpoc.yaml"), *args], input=input)
    return result.exit_code, result.output


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def uploads(stack: str) -> str:
    return f"{stack}-{ACCOUNT}-{REGION}-uploads"


def put_objects(stack: str, sizes: list[int]) -> None:
    for index, size in enumerate(sizes):
        client("s3").put_object(Bucket=uploads(stack), Key=f"files/images/{index}.png", Body=b"x" * size)


def parameter_tags(name: str) -> dict[str, str]:
    tags = client("ssm").list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    return {t["Key"]: t["Value"] for t in tags}


def password(name: str) -> str:
    return str(client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])


def mongodb_instance(stack: str) -> dict[str, Any]:
    reservations = client("ec2").describe_instances(
        Filters=[
            {"Name": "tag:cdpoc:stack", "Values": [stack]},
            {"Name": "tag:cdpoc:component", "Values": ["instance.mongodb"]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"]
    [instance] = [i for r in reservations for i in r["Instances"]]
    return dict(instance)


def data_volume_of(instance_id: str) -> dict[str, Any]:
    [volume] = client("ec2").describe_volumes(
        Filters=[
            {"Name": "attachment.instance-id", "Values": [instance_id]},
            {"Name": "attachment.device", "Values": ["/dev/sdf"]},
        ]
    )["Volumes"]
    return dict(volume)


def stack_snapshots(stack: str) -> list[dict[str, Any]]:
    return list(
        client("ec2").describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:cdpoc:stack", "Values": [stack]}])[
            "Snapshots"
        ]
    )


def context(tmp_path: Path) -> Context:
    """The Context a `cdpoc --config ...` run builds, with a recording console and fast waits."""
    return Context.build(Options(config=tmp_path / "cdpoc.yaml"), recording_ui(), waits=FAST_WAITS)


def record_run_instances(ctx: Context) -> list[dict[str, Any]]:
    """Every RunInstances request of the run from now on, as botocore validated it."""
    calls: list[dict[str, Any]] = []
    ctx.run.client("ec2").meta.events.register(
        "provide-client-params.ec2.RunInstances", lambda params, **_: calls.append(dict(params))
    )
    return calls


# ---------------------------------------------------------------- part A: secrets are never regenerated


def test_a_password_deleted_while_mongodb_runs_is_a_conflict_until_down_and_up(stack: str, tmp_path: Path) -> None:
    code, out = cdpoc(tmp_path, "up")
    assert code == 0, out
    app_password = APP_PASSWORD.format(stack=stack)
    first = password(app_password)
    assert len(first) == 43 and len(password(ADMIN_PASSWORD.format(stack=stack))) == 43  # the first up made them
    instance_id = mongodb_instance(stack)["InstanceId"]
    client("ssm").delete_parameter(Name=app_password)

    code, out = cdpoc(tmp_path, "plan")
    assert code == 0, out
    [row] = [line for line in out.splitlines() if "param.mongodb.app-password" in line]
    assert row.startswith("differs")
    assert f"parameter {app_password} is missing, but instance.mongodb ({instance_id}) was set up" in row
    assert "aws ssm put-parameter" in row and "`cdpoc down`" in row

    code, out = cdpoc(tmp_path, "up")
    assert code == 2, out
    assert "a new password would lock its users out" in out and "Nothing was changed" in out
    assert not client("ssm").get_parameters(Names=[app_password])["Parameters"]

    # Without the password, the way out is a new database: `down` (plain) then `up`.
    code, out = cdpoc(tmp_path, "down", "--yes")
    assert code == 0, out
    code, out = cdpoc(tmp_path, "up")
    assert code == 0, out
    assert len(password(app_password)) == 43 and password(app_password) != first


def restore_as_printed(message: str, value: str) -> dict[str, Any]:
    """Run the printed `aws ssm put-parameter ...` command (the AWS CLI's shorthand, with boto3)."""
    command = re.search(r"(aws ssm put-parameter .*?) \(then `cdpoc up`\)", message)
    assert command, message
    words = shlex.split(command.group(1).replace('"$PASSWORD"', shlex.quote(value)))
    assert words[:3] == ["aws", "ssm", "put-parameter"]
    options: dict[str, list[str]] = {}
    for word in words[3:]:
        if word.startswith("--"):
            current = options.setdefault(word[2:], [])
        else:
            current.append(word)
    tags = [dict(part.split("=", 1) for part in tag.split(",", 1)) for tag in options["tags"]]
    request = {
        "Name": options["name"][0],
        "Type": options["type"][0],
        "Value": options["value"][0],
        "Tags": tags,
    }
    boto3.client("ssm", region_name=options["region"][0]).put_parameter(**request)
    return request


def test_putting_the_password_back_as_printed_lets_up_go_on(stack: str, tmp_path: Path) -> None:
    assert cdpoc(tmp_path, "up")[0] == 0
    app_password = APP_PASSWORD.format(stack=stack)
    old = password(app_password)
    client("ssm").delete_parameter(Name=app_password)
    code, out = cdpoc(tmp_path, "up")
    assert code == 2

    request = restore_as_printed(" ".join(out.split()), old)
    assert request["Type"] == "SecureString"
    code, out = cdpoc(tmp_path, "up")
    assert code == 0, out
    assert "No changes" in out  # found as this stack's parameter, with every tag it should have
    assert password(app_password) == old


# ---------------------------------------------------------------- part B: data at `down`


def commit(repository: str, count: int) -> str:
    codecommit = client("codecommit")
    parent: str | None = None
    for index in range(count):
        request: dict[str, Any] = {
            "repositoryName": repository,
            "branchName": "main",
            "putFiles": [{"filePath": f"file{index}.txt", "fileContent": f"{index}\n".encode()}],
        }
        if parent:
            request["parentCommitId"] = parent
        parent = str(codecommit.create_commit(**request)["commitId"])
    assert parent
    return parent


def test_down_says_what_data_goes_before_it_asks(stack: str, tmp_path: Path) -> None:
    assert cdpoc(tmp_path, "up")[0] == 0
    put_objects(stack, [1000, 2000, 3000, 500, 24])
    tip = commit(f"{stack}-repo", 3)
    volume = data_volume_of(mongodb_instance(stack)["InstanceId"])

    code, out = cdpoc(tmp_path, "down", input="n\n")
    assert code == 1 and "nothing was deleted" in out
    before_question = out[: out.index("Delete these")]
    assert f"bucket.uploads: bucket {uploads(stack)}, 5 object(s), 6.4 KiB" in before_question
    assert f"instance.mongodb: MongoDB data volume {volume['VolumeId']}, 10 GiB" in before_question
    assert f"source: repository {stack}-repo, 3 commit(s), tip {tip[:10]} of " in before_question
    assert "`cdpoc down --keep-data` keeps" in before_question
    assert client("s3").list_objects_v2(Bucket=uploads(stack))["KeyCount"] == 5

    code, out = cdpoc(tmp_path, "down", "--keep-data", input="n\n")
    assert code == 1 and "nothing was deleted" in out
    kept = out[out.index("Kept (--keep-data):") : out.index("Delete these")]
    assert "instance.mongodb: a snapshot of its data volume" in kept
    assert f"bucket.uploads: bucket {uploads(stack)}, 5 object(s), 6.4 KiB" in kept
    assert "param.mongodb.app-password" in kept and "param.mongodb.admin-password" in kept
    assert stack_snapshots(stack) == []  # answered no: nothing kept either
    assert KEPT_TAG not in {t["Key"] for t in client("s3").get_bucket_tagging(Bucket=uploads(stack))["TagSet"]}


def test_the_history_count_stops_at_its_limit(ctx_run: AwsRun) -> None:
    client("codecommit").create_repository(repositoryName="history")
    tip = commit("history", 3)
    full = branch_history(ctx_run, "history", "main")
    assert full is not None and (full.commits, full.complete, full.tip) == (3, True, tip)
    bounded = branch_history(ctx_run, "history", "main", limit=2)
    assert bounded is not None and bounded.describe().startswith("2+ commit(s)")
    client("codecommit").create_repository(repositoryName="empty")
    assert branch_history(ctx_run, "empty", "main") is None


@pytest.fixture
def ctx_run(aws: None, make_context: Callable[..., Context]) -> AwsRun:
    return make_context().run


def test_keep_data_keeps_the_data_and_up_takes_it_back(stack: str, tmp_path: Path) -> None:
    assert cdpoc(tmp_path, "up")[0] == 0
    put_objects(stack, [100] * 7)
    passwords = {name: password(name.format(stack=stack)) for name in (APP_PASSWORD, ADMIN_PASSWORD)}
    old_volume = data_volume_of(mongodb_instance(stack)["InstanceId"])

    code, out = cdpoc(tmp_path, "down", "--keep-data", "--yes")
    assert code == 0, out
    # The bucket and its objects, the passwords and a snapshot of the data volume, all marked kept.
    bucket_tags = {t["Key"]: t["Value"] for t in client("s3").get_bucket_tagging(Bucket=uploads(stack))["TagSet"]}
    assert bucket_tags["cdpoc:stack"] == stack and bucket_tags[KEPT_TAG] == "true"
    assert client("s3").list_objects_v2(Bucket=uploads(stack))["KeyCount"] == 7
    for name in passwords:
        assert parameter_tags(name.format(stack=stack))[KEPT_TAG] == "true"
    [snapshot] = stack_snapshots(stack)
    assert snapshot["VolumeId"] == old_volume["VolumeId"]
    snapshot_tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
    assert snapshot_tags == {
        "cdpoc:stack": stack,
        "cdpoc:component": "instance.mongodb",
        "Name": f"{stack}-mongodb-data",
        KEPT_TAG: "true",
    }
    # The leftover scan passes and names them as kept, with what they cost.
    assert f"Leftover scan: nothing tagged cdpoc:stack={stack} remains but 4 kept item(s)" in out
    assert f"bucket.uploads: bucket {uploads(stack)}, 7 object(s), 700 bytes" in out
    assert f"EBS snapshot {snapshot['SnapshotId']}" in out
    assert re.search(r"Keeping it costs (at most )?about \$0\.50/month", out), out
    assert "EBS snapshots $0.05/GB-month" in out and "S3 Standard $0.023/GB-month" in out
    assert (
        client("ec2").describe_instances(
            Filters=[
                {"Name": "tag:cdpoc:stack", "Values": [stack]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )["Reservations"]
        == []
    )

    code, out = cdpoc(tmp_path, "plan")
    assert re.search(
        rf"create\s+instance\.mongodb\s+\S+\s+data volume /dev/sdf from kept snapshot {snapshot['SnapshotId']}", out
    )
    assert re.search(r"update\s+bucket\.uploads\s+\S+\s+kept by `cdpoc down --keep-data`: taken back", out)

    ctx = context(tmp_path)
    run_instances = record_run_instances(ctx)
    lifecycle.up(ctx)
    [mongodb_launch] = [c for c in run_instances if "BlockDeviceMappings" in c]
    assert mongodb_launch["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/sdf",
            "Ebs": {"VolumeType": "gp3", "DeleteOnTermination": True, "SnapshotId": snapshot["SnapshotId"]},
        }
    ]
    assert data_volume_of(mongodb_instance(stack)["InstanceId"])["SnapshotId"] == snapshot["SnapshotId"]
    assert stack_snapshots(stack) == []  # deleted once the instance runs with its data
    assert KEPT_TAG not in {t["Key"] for t in client("s3").get_bucket_tagging(Bucket=uploads(stack))["TagSet"]}
    assert client("s3").list_objects_v2(Bucket=uploads(stack))["KeyCount"] == 7
    for name, value in passwords.items():
        assert password(name.format(stack=stack)) == value
        assert KEPT_TAG not in parameter_tags(name.format(stack=stack))
    code, out = cdpoc(tmp_path, "plan")
    assert "No changes" in out


def test_a_plain_down_deletes_kept_data_too(stack: str, tmp_path: Path, make_context: Callable[..., Context]) -> None:
    assert cdpoc(tmp_path, "up")[0] == 0
    put_objects(stack, [10, 20])
    assert cdpoc(tmp_path, "down", "--keep-data", "--yes")[0] == 0
    [snapshot] = stack_snapshots(stack)

    code, out = cdpoc(tmp_path, "down", input="n\n")
    assert code == 1  # answered no: cancelled
    assert "Data kept by an earlier `cdpoc down --keep-data` is deleted too." in out
    assert f"bucket.uploads: bucket {uploads(stack)}, 2 object(s), 30 bytes (kept by an earlier" in out
    assert snapshot["SnapshotId"] in out

    code, out = cdpoc(tmp_path, "down", "--yes")
    assert code == 0, out
    assert f"Leftover scan: nothing tagged cdpoc:stack={stack} remains. Cost now" in out
    assert stack_snapshots(stack) == []
    assert uploads(stack) not in {b["Name"] for b in client("s3").list_buckets()["Buckets"]}
    assert not [p for p in client("ssm").describe_parameters()["Parameters"] if p["Name"].startswith(f"/{stack}/")]
    ctx = make_context(name=stack, pipeline={"repository": f"{stack}-repo"})
    assert leftovers(ctx.run, ctx.graph(), ctx.handlers, lambda: tagged_arns(ctx.run)) == []


def test_a_password_missing_beside_kept_data_is_a_conflict(stack: str, tmp_path: Path) -> None:
    assert cdpoc(tmp_path, "up")[0] == 0
    assert cdpoc(tmp_path, "down", "--keep-data", "--yes")[0] == 0
    [snapshot] = stack_snapshots(stack)
    admin_password = ADMIN_PASSWORD.format(stack=stack)
    client("ssm").delete_parameter(Name=admin_password)

    code, out = cdpoc(tmp_path, "up")
    assert code == 2
    flat = " ".join(out.split())
    assert f"the data of instance.mongodb kept in snapshot {snapshot['SnapshotId']}" in flat
    assert not client("ssm").get_parameters(Names=[admin_password])["Parameters"]
    assert client("ec2").describe_vpcs(Filters=[{"Name": "tag:cdpoc:stack", "Values": [stack]}])["Vpcs"] == []

    assert cdpoc(tmp_path, "down", "--yes")[0] == 0  # the documented way out: the kept data goes
    code, out = cdpoc(tmp_path, "up")
    assert code == 0, out
    assert len(password(admin_password)) == 43


def test_keep_data_refuses_a_mongodb_without_a_data_volume(stack: str, tmp_path: Path) -> None:
    """An instance launched before MongoDB had a volume of its own: its data cannot be kept."""
    assert cdpoc(tmp_path, "up")[0] == 0
    instance_id = mongodb_instance(stack)["InstanceId"]
    client("ec2").detach_volume(VolumeId=data_volume_of(instance_id)["VolumeId"], InstanceId=instance_id)
    code, out = cdpoc(tmp_path, "down", "--keep-data", "--yes")
    assert code == 2
    assert f"instance.mongodb ({instance_id}) has no data volume at /dev/sdf" in " ".join(out.split())
    assert mongodb_instance(stack)["InstanceId"] == instance_id
    assert stack_snapshots(stack) == []
    assert cdpoc(tmp_path, "down", "--yes")[0] == 0


# ---------------------------------------------------------------- ownership and prices


def test_only_volumes_and_snapshots_tagged_as_ours_are_used(ctx_run: AwsRun) -> None:
    ec2 = client("ec2")
    foreign = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=1,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [
                    {"Key": "cdpoc:stack", "Value": "other"},
                    {"Key": "cdpoc:component", "Value": "instance.mongodb"},
                ],
            }
        ],
    )
    volume = ec2.describe_volumes(VolumeIds=[foreign["VolumeId"]])["Volumes"][0]
    with pytest.raises(ConflictError, match="will not snapshot it"):
        snapshot_volume(ctx_run, volume, "instance.mongodb", "t1-mongodb-data")
    assert (
        ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [foreign["VolumeId"]]}])[
            "Snapshots"
        ]
        == []
    )
    # Kept snapshots of another stack, or without the kept marker, are not this stack's kept data.
    for tags in (
        {"cdpoc:stack": "other", "cdpoc:component": "instance.mongodb", KEPT_TAG: "true"},
        {"cdpoc:stack": "t1", "cdpoc:component": "instance.mongodb"},
    ):
        ec2.create_snapshot(
            VolumeId=foreign["VolumeId"],
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )
    assert kept_snapshots(ctx_run, "instance.mongodb") == []


def test_monthly_cost_of_kept_data() -> None:
    gib = 1024**3
    assert monthly_storage_cost(
        [("bucket", 10 * gib), ("snapshot", 10 * gib), ("ssm_parameter", 4096)]
    ) == pytest.approx(0.23 + 0.50)
