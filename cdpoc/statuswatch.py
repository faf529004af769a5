"""`cdpoc status --watch`: a snapshot every interval, redrawn in place on a terminal (a Ui.live view),
else the first snapshot and then a line per change; JSON: one compact object per change.

What exists (the inventory) is re-read at most once every INVENTORY_MAX_AGE seconds; the live views
each refresh. When AWS throttles, the interval doubles (up to MAX_INTERVAL) and the last snapshot stays.
Ctrl-C ends it: that is how it is meant to end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cdpoc import statuscollect
from cdpoc.aws.observe import Throttled
from cdpoc.statuscollect import Inventory
from cdpoc.statusprobe import HttpProbe
from cdpoc.statusrender import changes, facts, paths, snapshot_dict, status_lines, status_renderable, watch_footer
from cdpoc.statussnapshot import StatusSnapshot
from cdpoc.ui import LiveView

if TYPE_CHECKING:
    from cdpoc.context import Context

# --watch re-reads the inventory (the plan: every kind listed) at most this often; the live views each refresh.
INVENTORY_MAX_AGE = 60.0
# Throttling doubles the refresh interval, up to this.
MAX_INTERVAL = 300.0


class Watcher:
    """--watch: refresh in place on a terminal; elsewhere print the first snapshot, then a line per change."""

    def __init__(self, ctx: Context, interval: float, probe: HttpProbe, sleep: Callable[[float], None]) -> None:
        self.ctx = ctx
        self.base_interval = max(interval, 0.0)
        self.interval = self.base_interval
        self.probe = probe
        self.sleep = sleep
        self.inventory: Inventory | None = None
        self.inventory_read_at = 0.0
        self.previous: StatusSnapshot | None = None

    def run(self) -> None:
        try:
            with self.ctx.ui.live() as view:
                while True:
                    self.refresh(view)
                    self.sleep(self.interval)
        except KeyboardInterrupt:
            return

    def refresh(self, view: LiveView) -> None:
        note = ""
        try:
            snapshot = self._collect()
            self.interval = self.base_interval
        except Throttled:
            self.interval = min(max(self.interval, 1.0) * 2, MAX_INTERVAL)
            note = f"AWS is throttling requests: next refresh in {self.interval:.0f}s"
            if self.previous is None:
                self.ctx.ui.warn(note)
                return
            snapshot = self.previous
        self._show(view, snapshot, note)

    def _collect(self) -> StatusSnapshot:
        if self.inventory is None or time.monotonic() - self.inventory_read_at >= INVENTORY_MAX_AGE:
            self.inventory = statuscollect.take_inventory(self.ctx)
            self.inventory_read_at = time.monotonic()
        return statuscollect.collect(self.ctx, self.inventory, self.probe)

    def _show(self, view: LiveView, snapshot: StatusSnapshot, note: str) -> None:
        ui = self.ctx.ui
        previous, self.previous = self.previous, snapshot
        changed = changes(facts(previous), facts(snapshot)) if previous is not None else []
        if ui.json_mode:
            if previous is None or (changed and snapshot is not previous):
                ui.out(json.dumps(snapshot_dict(snapshot), separators=(",", ":")))
        elif view.active:
            footer = watch_footer(snapshot.taken_at, self.interval, note)
            view.update(status_renderable(snapshot, changed=paths(changed), footer=footer))
        elif previous is None:
            for line in status_lines(snapshot):
                ui.say(line)
        else:
            stamp = snapshot.taken_at.strftime("%H:%M:%S")
            for path, old, new in changed:
                ui.say(f"{stamp} {path}: {old or '(none)'} -> {new or '(none)'}")
        if note and not view.active:
            ui.warn(note)
