"""Kept data: EBS snapshots of the MongoDB data volume that `down --keep-data` leaves, and the kept marker.

Data that `down --keep-data` keeps (the uploads bucket, the MongoDB passwords, a snapshot of the MongoDB
data volume) keeps its `cdpoc:stack` tag and gains `cdpoc:kept=true`, so that the leftover scan can tell
it from a leftover and a later `up` can find it and take it back. A snapshot is used or deleted only
when the tags read from it say it is this stack's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdpoc.aws.errors import aws_errors, ignore_missing
from cdpoc.aws.handler import Handler, observed
from cdpoc.aws.ownership import owner_attrs
from cdpoc.aws.run import COMPONENT_TAG, STACK_TAG, AwsRun, paginate, tag_list, tag_map
from cdpoc.errors import ConflictError
from cdpoc.model import Observed

KEPT_TAG = "cdpoc:kept"
KEPT_VALUE = "true"
SNAPSHOT_MISSING = ("InvalidSnapshot.NotFound",)
# A first snapshot copies every block the volume ever wrote: minutes for a few GiB, longer for more.
SNAPSHOT_TIMEOUT = 3600.0
GIB = 1024**3


def is_kept(tags: Mapping[str, str]) -> bool:
    return tags.get(KEPT_TAG) == KEPT_VALUE


def _ec2(run: AwsRun) -> Any:
    return run.client("ec2")


def _ours(run: AwsRun, tags: Mapping[str, str], component: str | None = None) -> bool:
    return tags.get(STACK_TAG) == run.stack and (component is None or tags.get(COMPONENT_TAG) == component)


def stack_snapshots(run: AwsRun) -> list[dict[str, Any]]:
    """This account's snapshots whose tags (read back, not only filtered on) name the stack.

    Read once per run (the plan reads it; `up` launches from what the plan showed): call run.forget()
    after making or deleting one.
    """

    def read() -> list[dict[str, Any]]:
        snapshots = paginate(
            run,
            "describe_snapshots",
            "Snapshots",
            what="listing the stack's EBS snapshots",
            OwnerIds=["self"],
            Filters=run.stack_filter(),
        )
        return [s for s in snapshots if _ours(run, tag_map(s.get("Tags")))]

    return run.memo("snapshots", read)


def kept_snapshots(run: AwsRun, component: str) -> list[dict[str, Any]]:
    """The kept snapshots of one component's data, newest first."""
    kept = [
        s
        for s in stack_snapshots(run)
        if _ours(run, tag_map(s.get("Tags")), component) and is_kept(tag_map(s.get("Tags")))
    ]
    return sorted(kept, key=lambda s: (str(s.get("StartTime", "")), s["SnapshotId"]), reverse=True)


def snapshot_bytes(snapshot: Mapping[str, Any]) -> tuple[int, bool]:
    """What a snapshot bills for at most, and whether that is known: the blocks written to its volume
    (FullSnapshotSizeInBytes), else the whole volume's size as the upper bound."""
    written = snapshot.get("FullSnapshotSizeInBytes")
    if written:
        return int(written), True
    return int(snapshot.get("VolumeSize", 0)) * GIB, False


def describe_snapshot(snapshot: Mapping[str, Any]) -> str:
    started = snapshot.get("StartTime")
    when = f", taken {started:%Y-%m-%d %H:%M} UTC" if hasattr(started, "strftime") else ""
    return f"{snapshot['SnapshotId']} ({snapshot.get('VolumeSize', '?')} GiB volume{when})"


def data_volume(run: AwsRun, instance_id: str, device: str) -> dict[str, Any] | None:
    """The volume attached to the instance at `device`, with its tags; None when there is none."""
    volumes = paginate(
        run,
        "describe_volumes",
        "Volumes",
        what=f"reading the volume of {instance_id} at {device}",
        Filters=[
            {"Name": "attachment.instance-id", "Values": [instance_id]},
            {"Name": "attachment.device", "Values": [device]},
        ],
    )
    return dict(volumes[0]) if volumes else None


def snapshot_volume(run: AwsRun, volume: Mapping[str, Any], component: str, name: str) -> dict[str, Any]:
    """Snapshot a volume of this stack's `component` as kept data, and wait until it is complete."""
    volume_id = volume["VolumeId"]
    if not _ours(run, tag_map(volume.get("Tags")), component):
        raise ConflictError(
            f"volume {volume_id} is not tagged {STACK_TAG}={run.stack}, {COMPONENT_TAG}={component}: "
            "cdpoc will not snapshot it as this stack's data",
            "Run `cdpoc down` without --keep-data, or snapshot the volume yourself first.",
        )
    tags = tag_list({**tag_map(run.tags(component, name)), KEPT_TAG: KEPT_VALUE})
    with aws_errors(f"snapshotting volume {volume_id}"):
        snapshot = _ec2(run).create_snapshot(
            VolumeId=volume_id,
            Description=f"cdpoc stack {run.stack}: data of {component}, kept by down --keep-data",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}],
        )
    snapshot_id = snapshot["SnapshotId"]
    run.wait_with(
        "ec2",
        "snapshot_completed",
        f"snapshot {snapshot_id} of volume {volume_id} to complete",
        timeout=SNAPSHOT_TIMEOUT,
        SnapshotIds=[snapshot_id],
    )
    with aws_errors(f"reading snapshot {snapshot_id}"):
        return dict(_ec2(run).describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0])


def wait_for_snapshot(run: AwsRun, snapshot_id: str) -> None:
    run.wait_with(
        "ec2",
        "snapshot_completed",
        f"snapshot {snapshot_id} to complete",
        timeout=SNAPSHOT_TIMEOUT,
        SnapshotIds=[snapshot_id],
    )


def delete_snapshot(run: AwsRun, snapshot_id: str) -> None:
    ignore_missing(
        f"deleting snapshot {snapshot_id}", _ec2(run).delete_snapshot, SNAPSHOT_MISSING, SnapshotId=snapshot_id
    )


class SnapshotHandler(Handler):
    """The stack's snapshots (only `down --keep-data` makes any): found for `down` and the leftover scan."""

    kind = "snapshot"
    label = "EBS snapshot"
    arn_types = ("ec2:snapshot",)
    # No stack declares a snapshot: they are found (scan) and deleted, never planned from a spec.
    spec_type = None

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        result = {}
        for snapshot in stack_snapshots(run):
            tags = tag_map(snapshot.get("Tags"))
            component = tags.get(COMPONENT_TAG, "")
            # Keyed apart from the component itself (the instance whose data it holds).
            key = f"{component}#{snapshot['SnapshotId']}"
            result[key] = observed(
                key,
                self.kind,
                snapshot["SnapshotId"],
                **owner_attrs(snapshot),
                kept=is_kept(tags),
                state=snapshot.get("State", ""),
                volume_size=snapshot.get("VolumeSize", 0),
                bytes=snapshot_bytes(snapshot)[0],
                bytes_known=snapshot_bytes(snapshot)[1],
                text=describe_snapshot(snapshot),
            )
        return result

    def delete(self, run: AwsRun, found: Observed) -> None:
        delete_snapshot(run, found.id)

    def describe(self, found: Observed) -> str:
        text = str(found.attrs.get("text", found.id))
        component = found.attrs.get("component")
        return f"{text}, data of {component}" if component else text


HANDLERS: tuple[Handler, ...] = (SnapshotHandler(),)
