"""`cdpoc status`: one snapshot of the stack, its endpoints, fleet, pipeline and latest deployment.

The modules behind it, each importing only those before it (no cycle):

    statusviews     the snapshot's parts: frozen dataclasses, no I/O, no rendering
    statushealth    the health rules: why the stack is not healthy, as sentences (pure)
    statussnapshot  StatusSnapshot (the parts at one moment, its issues) and the exit code
    statusprobe     the HTTP probe of the app's health check path
    statusshapes    botocore replies -> parts (pure)
    statuscollect   the reads: the inventory (read-only plan), then one call per view (LIVE_CALLS at most)
    statusrender    a snapshot as a screen, plain lines, JSON, and what changed between two
    statuswatch     --watch: refresh in a Ui.live view, a line per change off a terminal, back off when throttled
    status          this command: one snapshot, or the watcher

The snapshot is pure data collected with a bounded number of AWS calls (see cdpoc.statuscollect);
`--watch` re-reads the inventory at most once a minute, and backs off (doubles its interval) when AWS
throttles.

Exit codes: 0 everything that exists is healthy and settled; 3 something is missing (including an
empty account), unhealthy, failed or still converging (a deployment in progress, a target draining);
1 an error. `--watch` runs until Ctrl-C and then exits 0 (that is how it is meant to end).

`cdpoc status --json` prints one object (with --watch: one compact object per line, whenever something
changed). Stable keys, schema 1:

    schema            1
    taken_at          ISO 8601 UTC time of the snapshot
    healthy           true when nothing is missing, failing or still converging (exit code 0, else 3)
    issues            [str]: why it is not healthy, one sentence each
    notes             [str]: remarks that are not problems (drift `cdpoc up` would fix)
    stack             {name, region, region_source, account, created_at, age_seconds, cost_per_hour,
                       counts: {exists, create, update, differs},
                       resources: [{key, kind, name, action, id, detail}]}
                      action is what `up` would do: exists | create | update | differs
    endpoints         {app: {url, health: {url, status, latency_ms, error, ok}} | null,
                       website: {url} | null, bastion: {address} | null, mongodb: {address} | null}
                      app.health is one GET of the health check path through the load balancer
    fleet             null | {name, min, desired, max, health_check_type,
                       instances: [{id, zone, state, lifecycle, ec2_health, target_state, target_reason,
                                    target_description, private_ip, launched_at, revision,
                                    pending_revision, pending_status}]}
                      lifecycle "" = not in the group (e.g. a terminated instance still draining);
                      target_state "" = not registered in the target group;
                      revision = what the newest deployment that succeeded on it installed ("" = none);
                      pending_* = a newer deployment to it that has not succeeded (in progress or failed)
    pipeline          null | {name, source: {revision, message, time},
                       stages: [{name, status, execution_id, changed_at, summary}]}
    deployment        null | {id, status, config, creator, created_at, completed_at, revision, message,
                       overview: {Pending, InProgress, Succeeded, Failed, Skipped, Ready},
                       error: {code, message} | null, rollback_of,
                       targets: [{instance, status, updated_at,
                                  events: [{name, status, started_at, ended_at, duration_seconds,
                                            error_code, script, message, log_tail}]}],
                       rolls_back: <the same object, for the failed deployment> | null}
                      the newest deployment of the group; a rollback carries the deployment it undoes
    activities        [{id, status, description, cause, started_at, ended_at}], newest first

Revisions are commit ids where the pipeline says which commit a deployment installed (also for a
rollback or an Auto Scaling deployment of the same bundle), else "s3:<bundle file>", a GitHub commit
or "sha256:<12 hex>". Times are ISO 8601 UTC strings or null. New keys may be added; existing ones
keep their meaning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cdpoc.errors import EXIT_OK
from cdpoc.statuscollect import collect
from cdpoc.statusprobe import HttpProbe, probe_http
from cdpoc.statusrender import snapshot_dict, status_lines, status_renderable
from cdpoc.statussnapshot import StatusSnapshot, exit_code
from cdpoc.statuswatch import Watcher

if TYPE_CHECKING:
    from cdpoc.context import Context


def show(
    ctx: Context,
    *,
    watch: bool = False,
    interval: float = 5.0,
    probe: HttpProbe = probe_http,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """`cdpoc status`: print one snapshot (exit 0 healthy, 3 not), or refresh until Ctrl-C (exit 0)."""
    if not watch:
        snapshot = collect(ctx, probe=probe)
        print_snapshot(ctx, snapshot)
        return exit_code(snapshot)
    Watcher(ctx, interval, probe, sleep).run()
    return EXIT_OK


def print_snapshot(ctx: Context, snapshot: StatusSnapshot) -> None:
    if ctx.ui.json_mode:
        ctx.ui.out(json.dumps(snapshot_dict(snapshot), indent=2))
    elif ctx.ui.interactive:
        ctx.ui.print(status_renderable(snapshot))
    else:
        for line in status_lines(snapshot):
            ctx.ui.say(line)
