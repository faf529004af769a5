"""Pure functions from values (plans, progress rows, reports) to rich renderables or plain lines.

Strings that come from AWS or the user go into Text objects, never into markup.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from cdpoc.executor import State
from cdpoc.model import ORPHAN_PREFIX, Action, Change, Observed, Plan, Step, duplicated_component, is_extra
from cdpoc.spec import Ref
from cdpoc.stack.parts import BASTION, DATABASE, LOAD_BALANCER, SITE_BUCKET, Part

EXTRA = "extra"
ACTION_STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.NONE: "dim",
    Action.CONFLICT: "bold red",
}
STATE_STYLE = {
    State.WAITING: "dim",
    State.RUNNING: "cyan",
    State.DONE: "green",
    State.UNCHANGED: "dim",
    State.FAILED: "bold red",
    State.SKIPPED: "yellow",
}


@dataclass
class ProgressRow:
    key: str
    label: str
    state: State = State.WAITING
    detail: str = ""
    started: float | None = None
    elapsed: float | None = None


def _step_details(step: Step, describe: Callable[[Observed], str]) -> str:
    """What the plan says about a step: its changes (or a create's notes), or what exists."""
    if step.changes:
        return "; ".join(c.text for c in step.changes)
    return describe(step.found) if step.found else ""


def plan_table(plan: Plan, describe: Callable[[Observed], str]) -> Table:
    table = Table(title="Plan", title_justify="left", expand=False)
    for column in ("action", "resource", "name", "details"):
        table.add_column(column)
    for step in plan.steps:
        table.add_row(
            Text(step.action.value, style=ACTION_STYLE[step.action]),
            Text(step.resource.key),
            Text(step.resource.name),
            Text(_step_details(step, describe)),
        )
    for found in plan.extras:
        table.add_row(
            Text(EXTRA, style="yellow"), Text(found.key), Text(found.id), Text(extra_details(found, describe))
        )
    return table


def plan_lines(plan: Plan, describe: Callable[[Observed], str]) -> list[str]:
    lines = []
    for step in plan.steps:
        details = _step_details(step, describe)
        lines.append(f"{step.action.value:8} {step.resource.key:22} {step.resource.name:28} {details}".rstrip())
    for found in plan.extras:
        lines.append(f"{EXTRA:8} {found.key:22} {found.id:28} {extra_details(found, describe)}".rstrip())
    return lines


def extra_details(found: Observed, describe: Callable[[Observed], str]) -> str:
    """What an extra resource of the stack is, and what removes it."""
    if is_extra(found.key) and not found.key.startswith(ORPHAN_PREFIX):
        why = f"a second {duplicated_component(found.key)}: `cdpoc up` removes it when nothing uses it"
    else:
        why = "not declared by the config: `cdpoc down` removes it with the stack"
    return f"{describe(found)}; {why}"


def plan_summary(plan: Plan) -> str:
    counts = plan.counts()
    extra = f" {len(plan.extras)} extra resource(s) of the stack are listed above." if plan.extras else ""
    if not plan.has_work and not plan.conflicts:
        return f"No changes: all {counts['exists']} resources exist as configured.{extra}"
    parts = [f"{counts[a.value]} to {a.value}" for a in (Action.CREATE, Action.UPDATE) if counts[a.value]]
    parts.append(f"{counts['exists']} unchanged")
    if counts["differs"]:
        parts.append(f"{counts['differs']} differ and cannot be changed in place")
    return "Plan: " + ", ".join(parts) + "." + extra


def stack_outputs(results: Mapping[str, Observed], key_name: str = "") -> list[tuple[str, str]]:
    """What a user needs once `up` is done: where the app, the site and the hosts are, how to SSH in."""

    def attr(part: Part, name: str) -> str:
        found = part.found_in(results)
        return str(found.attrs.get(name, "")) if found else ""

    outputs = []
    if dns := attr(LOAD_BALANCER, "dns_name"):
        outputs.append(("Application (ALB)", f"http://{dns}/"))
    if site := attr(SITE_BUCKET, "website_url"):
        outputs.append(("Website", site))
    bastion, mongodb = attr(BASTION, "public_ip"), attr(DATABASE, "private_ip")
    if bastion:
        outputs.append(("Bastion", bastion))
    if mongodb:
        outputs.append(("MongoDB (private)", f"{mongodb}:27017"))
    if bastion and mongodb:
        identity = f"-i ~/.ssh/{key_name}.pem " if key_name else ""
        outputs.append(("SSH to MongoDB", f"ssh {identity}-J ec2-user@{bastion} ec2-user@{mongodb}"))
    return outputs


def _elapsed(row: ProgressRow, now: float) -> str:
    if row.elapsed is not None:
        return f"{row.elapsed:5.1f}s"
    if row.started is not None:
        return f"{now - row.started:5.1f}s"
    return ""


# Lines a progress table needs besides its rows: the title, the header, three borders, the collapsed line.
TABLE_OVERHEAD = 6
# Which rows stay in view when the terminal is too short for all: failed, running, then the latest finished.
SHOWN_FIRST = {State.FAILED: 0, State.RUNNING: 1, State.DONE: 2, State.UNCHANGED: 2, State.SKIPPED: 2, State.WAITING: 3}


# The most of a step's detail a terminal-fitted table shows (the rest of the row must stay on one line).
FITTED_DETAIL = 60


def shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def progress_header(rows: list[ProgressRow], title: str, seconds: float) -> str:
    """The title with the counts of each state and the time so far: "up: s · 3 done, 2 running · 12s"."""
    counts = outcome_counts(rows)
    return f"{title} · {counts} · {seconds:.0f}s" if counts else f"{title} · {seconds:.0f}s"


def rows_in_view(rows: list[ProgressRow], height: int | None) -> tuple[list[ProgressRow], int]:
    """The rows that fit `height` lines (all when None), in their order, and how many finished ones are left
    out: failed and running rows always show, then the most recently finished, then waiting ones."""
    room = len(rows) if height is None else max(1, height - TABLE_OVERHEAD)
    if len(rows) <= room:
        return rows, 0
    # stable: within a rank the later row (the more recent change) wins a place
    ranked = sorted(range(len(rows)), key=lambda i: (SHOWN_FIRST[rows[i].state], -i))
    keep = set(ranked[:room])
    return [row for i, row in enumerate(rows) if i in keep], len(rows) - len(keep)


def progress_table(
    rows: Iterable[ProgressRow], now: float, title: str, height: int | None = None, seconds: float | None = None
) -> Table:
    """The live progress of up or down, fitted to `height` lines (the terminal's) when given."""
    everything = list(rows)
    shown, hidden = rows_in_view(everything, height)
    heading = progress_header(everything, title, seconds) if seconds is not None else title
    caption = f"… and {hidden} more finished or waiting (not shown: the terminal is too short)" if hidden else None
    table = Table(title=heading, title_justify="left", expand=False, caption=caption, caption_justify="left")
    widths = {
        "resource": max((len(r.key) for r in shown), default=8),
        "kind": max((len(r.label) for r in shown), default=4),
        "state": 9,
        "time": 7,
    }
    for column in ("resource", "kind", "state", "time", "details"):
        # fitted to the terminal, a row is one line: a long detail is cut, never the key or the state
        # (failures are reported in full once the run ends)
        table.add_column(column, no_wrap=height is not None, overflow="ellipsis", min_width=widths.get(column))
    for row in shown:
        table.add_row(
            Text(row.key),
            Text(row.label, style="dim"),
            Text(row.state.value, style=STATE_STYLE[row.state]),
            Text(_elapsed(row, now), justify="right"),
            Text(row.detail if height is None else shortened(row.detail, FITTED_DETAIL)),
        )
    return table


def progress_line(row: ProgressRow, now: float) -> str:
    """One line per state change, for output that is not a terminal."""
    return f"{row.state.value:9} {row.key:22} {_elapsed(row, now):>7}  {row.detail}".rstrip()


def outcome_counts(rows: Iterable[ProgressRow]) -> str:
    counts: dict[State, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return ", ".join(f"{n} {state.value}" for state, n in counts.items() if n)


# ---- machine-readable output

# The version of the JSON that `plan --json` prints and the JSON lines of `up`, `down` and `push-app --json`
# (README: "Machine-readable output"). Raised when a field changes meaning or goes away; new fields may be
# added without raising it.
JSON_SCHEMA = 1


def json_value(value: object) -> object:
    """A spec or observed value as JSON: a reference as {"ref": key, "attr": attr}, a nested spec as an object,
    tuples and sets as lists; anything else JSON cannot hold as its text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Ref):
        return {"ref": value.key, "attr": value.attr} if value.attr else {"ref": value.key}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_value(v) for v in value), key=str)
    return str(value)


def change_dict(change: Change) -> dict[str, object]:
    return {
        "field": change.field or None,
        "old": json_value(change.old),
        "new": json_value(change.new),
        "in_place": change.in_place,
        "not_ours": change.foreign,
        "text": change.text,
    }


def plan_document(plan: Plan, describe: Callable[[Observed], str], stack: str, region: str) -> dict[str, object]:
    """`plan --json`: every step with its action and field changes, the stack's undeclared resources, counts."""
    return {
        "schema": JSON_SCHEMA,
        "stack": stack,
        "region": region,
        "has_work": plan.has_work,
        "counts": {**plan.counts(), "extra": len(plan.extras)},
        "steps": [
            {
                "key": step.resource.key,
                "kind": step.resource.kind,
                "name": step.resource.name,
                "action": step.action.value,
                "id": step.found.id if step.found else None,
                "found": describe(step.found) if step.found else None,
                "changes": [change_dict(c) for c in step.changes],
            }
            for step in plan.steps
        ],
        "extras": [
            {"key": found.key, "kind": found.kind, "id": found.id, "details": extra_details(found, describe)}
            for found in plan.extras
        ],
    }
