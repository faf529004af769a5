"""The stack's user data at `down`: what goes with the stack, and what `down --keep-data` keeps instead.

Before `down` asks, it says what data goes: the objects in the uploads bucket, the MongoDB data volume,
the repository's history, and data an earlier `down --keep-data` kept. With --keep-data it first
snapshots the MongoDB data volume (and waits until the snapshot is complete), then tags the uploads
bucket and the MongoDB passwords as kept (cdpoc:kept=true, beside their cdpoc:stack tag); only then
does the sweep delete the rest. Afterwards it lists what was kept and what that costs a month. The
next `up` takes all of it back (aws/storage.py, aws/compute.py); a plain `down` deletes it.
"""

from __future__ import annotations

from collections.abc import Mapping

from cdpoc.aws.snapshots import data_volume, delete_snapshot, kept_snapshots, snapshot_volume
from cdpoc.aws.source import CODECOMMIT, branch_history
from cdpoc.aws.storage import bucket_usage, human_bytes
from cdpoc.context import Context
from cdpoc.cost import describe_monthly, monthly_storage_cost, storage_prices
from cdpoc.errors import ConfigError
from cdpoc.graph import Graph
from cdpoc.model import Observed
from cdpoc.spec import keeps_data
from cdpoc.stack.specs.compute import InstanceSpec
from cdpoc.sweeper import Doomed, is_kept

KEEP_HINT = "`cdpoc down --keep-data` keeps the uploads, a snapshot of the MongoDB data and its passwords instead."


def _data_volume_device(graph: Graph, key: str, found: Observed) -> str | None:
    res = graph.resources.get(key)
    if found.kind != "instance" or res is None or not isinstance(res.spec, InstanceSpec) or not res.spec.data_volume:
        return None
    return res.spec.data_volume.device


def _what_it_holds(ctx: Context, graph: Graph, key: str, item: Doomed, keep_data: bool) -> str | None:
    """One line on the data a resource holds; None for resources that hold none."""
    run, found = ctx.run, item.found
    res = graph.resources.get(key)
    earlier = " (kept by an earlier `down --keep-data`)" if is_kept(item) else ""
    if found.kind == "bucket" and res is not None and keeps_data(res):
        usage = bucket_usage(run, found.id)
        return f"{key}: bucket {found.id}, {usage.describe() if usage else 'already gone'}{earlier}"
    device = _data_volume_device(graph, key, found)
    if device is not None:
        volume = data_volume(run, found.id, device)
        if volume is None:
            if keep_data:
                raise ConfigError(
                    f"{key} ({found.id}) has no data volume at {device}: it was launched by an older cdpoc and "
                    "keeps its data on its root volume, which --keep-data cannot keep. Nothing was deleted.",
                    "Back the data up yourself (e.g. mongodump through the bastion), then run `cdpoc down`.",
                )
            return f"{key}: its data on the root volume of {found.id} (no separate data volume)"
        return f"{key}: MongoDB data volume {volume['VolumeId']}, {volume.get('Size', '?')} GiB"
    if found.kind == "pipeline_source" and found.attrs.get("provider") == CODECOMMIT:
        history = branch_history(run, found.id, str(found.attrs.get("branch", "")))
        return f"{key}: repository {found.id}, {history.describe() if history else 'no commits yet'}"
    if earlier:
        return f"{key}: {ctx.handlers[found.kind].label} {ctx.handlers[found.kind].describe(found)}{earlier}"
    return None


def describe_data(
    ctx: Context, graph: Graph, doomed: Mapping[str, Doomed], spared: Mapping[str, Doomed], keep_data: bool
) -> list[str]:
    """What `down` says about data before it asks; raises ConfigError when --keep-data cannot keep it."""
    going = [line for key in sorted(doomed) if (line := _what_it_holds(ctx, graph, key, doomed[key], keep_data))]
    lines = ["Data deleted with the stack:", *(f"  {line}" for line in going)] if going else []
    if keep_data:
        snapshotted = [key for key, item in doomed.items() if _data_volume_device(graph, key, item.found)]
        kept = [f"  {key}: a snapshot of its data volume" for key in sorted(snapshotted)]
        kept += [f"  {_kept_line(ctx, graph, key, spared[key])}" for key in sorted(spared)]
        lines += ["Kept (--keep-data):", *kept] if kept else []
    elif any(is_kept(item) for item in doomed.values()):
        lines.append("Data kept by an earlier `cdpoc down --keep-data` is deleted too.")
    elif going:
        lines.append(KEEP_HINT)
    return lines


def _kept_line(ctx: Context, graph: Graph, key: str, item: Doomed) -> str:
    holds = _what_it_holds(ctx, graph, key, item, keep_data=True)
    handler = ctx.handlers[item.found.kind]
    return holds or f"{key}: {handler.label} {handler.describe(item.found)}"


def keep(ctx: Context, graph: Graph, doomed: Mapping[str, Doomed], spared: Mapping[str, Doomed]) -> None:
    """Snapshot the data volumes of instances about to go, then mark the spared data as kept."""
    run = ctx.run
    for key in sorted(doomed):
        found = doomed[key].found
        device = _data_volume_device(graph, key, found)
        if device is None:
            continue
        volume = data_volume(run, found.id, device)
        if volume is None:  # describe_data refused this before the question; the instance changed since
            raise ConfigError(f"{key} ({found.id}) has no data volume at {device} any more; nothing was deleted")
        # MongoDB keeps running: its journal is on the same volume, so a point-in-time snapshot restores
        # like a restart after a power cut (WiredTiger replays the journal), without fsyncLock.
        ctx.ui.say(f"Snapshotting {key}'s data volume {volume['VolumeId']} (waits until the snapshot is complete)...")
        snapshot = snapshot_volume(run, volume, key, f"{graph[key].name}-data")
        run.forget()
        for older in kept_snapshots(run, key):
            if older["SnapshotId"] != snapshot["SnapshotId"]:  # the new snapshot supersedes it
                delete_snapshot(run, older["SnapshotId"])
    for item in spared.values():
        if item.found.kind != "snapshot":  # snapshots are kept from their creation
            ctx.handlers[item.found.kind].keep(run, item.found)


def find_kept(ctx: Context, graph: Graph) -> dict[str, Observed]:
    """The stack's kept data as it is now: declared data marked kept, and kept snapshots."""
    run = ctx.run
    run.forget()
    kept: dict[str, Observed] = {}
    for res in graph.resources.values():
        if keeps_data(res):
            found = ctx.handlers[res.kind].find(run, res)
            if found is not None and found.attrs.get("kept"):
                kept[res.key] = found
    snapshots = ctx.handlers["snapshot"].scan(run)
    kept.update({key: found for key, found in snapshots.items() if found.attrs.get("kept")})
    return kept


def kept_report(ctx: Context, kept: Mapping[str, Observed]) -> list[str]:
    """What is kept, and what keeping it costs a month."""
    lines, stored = [], []
    for key in sorted(kept):
        found = kept[key]
        handler = ctx.handlers[found.kind]
        size = 0
        if found.kind == "bucket":
            usage = bucket_usage(ctx.run, found.id)
            size = usage.bytes if usage else 0
            lines.append(f"  {key}: bucket {found.id}, {usage.describe() if usage else 'gone'}")
        elif found.kind == "snapshot":
            size = int(found.attrs.get("bytes", 0))
            written = "written" if found.attrs.get("bytes_known") else "at most (billed: the blocks written)"
            lines.append(f"  {key}: {handler.label} {handler.describe(found)}, {human_bytes(size)} {written}")
        else:
            lines.append(f"  {key}: {handler.label} {handler.describe(found)}")
        stored.append((found.kind, size))
    estimate = all(found.attrs.get("bytes_known", True) for found in kept.values())
    cost = describe_monthly(monthly_storage_cost(stored))
    lines.append(
        f"Keeping it costs {cost if estimate else 'at most ' + cost} ({storage_prices()}). "
        "`cdpoc up` takes it back; `cdpoc down` deletes it."
    )
    return lines
