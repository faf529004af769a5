"""What the global flags say, before anything is loaded for a run: a value the CLI builds on every command,
kept apart from cdpoc.context so that `cdpoc --help` and `--version` import neither boto3 nor the stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Options:
    """What the global flags say; None means "not given"."""

    config: Path | None = None
    name: str | None = None
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    # (region, where it came from) when nothing else names one; only the demo sets it. None = refuse.
    fallback_region: tuple[str, str] | None = None
