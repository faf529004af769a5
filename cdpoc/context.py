"""Builds, once per command, everything a run needs: settings, AWS clients, the run state, the console."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

from cdpoc.aws import registry
from cdpoc.aws.account import account_id, resolve_zones
from cdpoc.aws.clients import ClientFactory, ambient_region
from cdpoc.aws.handler import Handler
from cdpoc.aws.registry import HANDLERS
from cdpoc.aws.run import AwsRun, Waits
from cdpoc.config import Settings, describe_region, load_settings
from cdpoc.graph import Graph
from cdpoc.lock import StackLock
from cdpoc.model import Observed
from cdpoc.options import Options
from cdpoc.stack import build
from cdpoc.stack.names import ConfiguredNames
from cdpoc.ui import Ui


@dataclass
class Context:
    settings: Settings
    config_source: str
    region_source: str
    clients: ClientFactory
    run: AwsRun
    ui: Ui
    handlers: dict[str, Handler] = field(default_factory=lambda: dict(HANDLERS))
    _graph: Graph | None = None
    _lock_depth: int = 0

    @classmethod
    def build(cls, options: Options, ui: Ui, waits: Waits | None = None) -> Context:
        def region_from_aws_config() -> tuple[str, str] | None:
            return ambient_region(options.profile) or options.fallback_region

        settings, source, region_source = load_settings(
            options.config, {"name": options.name, "region": options.region}, ambient_region=region_from_aws_config
        )
        clients = ClientFactory(
            settings.region, options.profile, options.endpoint_url, on_call=ui.aws_call if ui.verbose else None
        )
        clients.check()
        run = AwsRun(
            clients=clients,
            stack=settings.name,
            extra_tags=settings.tags,
            cancel=threading.Event(),
            waits=waits or Waits(),
        )
        return cls(
            settings=settings, config_source=source, region_source=region_source, clients=clients, run=run, ui=ui
        )

    @property
    def region_label(self) -> str:
        """The region and where it came from, for every header: "eu-west-1 (region from AWS_REGION)"."""
        return describe_region(self.settings.region, self.region_source)

    @property
    def names(self) -> ConfiguredNames:
        """The names the settings alone decide (the pipeline, the log group...): known without an AWS call.
        Names that need the zones or the account come with the graph (cdpoc.stack.build)."""
        return ConfiguredNames(self.settings)

    def describe(self, found: Observed) -> str:
        """How a found resource is shown to the user, by its kind's handler."""
        return self.handlers[found.kind].describe(found)

    def graph(self) -> Graph:
        """The stack's resource graph; resolving the zones is the one AWS call it needs."""
        if self._graph is None:
            compute = self.settings.compute
            types = (compute.instance_type, compute.bastion_instance_type, compute.mongodb_instance_type)
            zones = resolve_zones(self.run, self.settings.availability_zones, types)
            self.run.zones = zones
            graph = build(self.settings, zones, account_id(self.run))
            registry.check(graph, self.handlers)
            self._graph = graph
        return self._graph

    @contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """Hold the stack lock (cdpoc/lock.py) for a mutating command; Locked (exit 4) when another run has it.

        Re-entrant: push-app takes it once for its push and its follow-up, which also take it on their own.
        """
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with StackLock(self.run, self.ui, command):
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0


P = ParamSpec("P")
R = TypeVar("R")
Work = Callable[Concatenate["Context", P], R]


def holding_lock(command: str) -> Callable[[Work[P, R]], Work[P, R]]:
    """Run the decorated work (its first argument a Context) holding the stack lock, as `cdpoc <command>`."""

    def decorate(work: Work[P, R]) -> Work[P, R]:
        @functools.wraps(work)
        def locked_work(ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with ctx.locked(command):
                return work(ctx, *args, **kwargs)

        return locked_work

    return decorate
