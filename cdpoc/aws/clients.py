"""One place that builds the boto3 session and clients for a run: profile, region, endpoint, retries."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
from botocore.config import Config

from cdpoc import __version__
from cdpoc.errors import AccessError

# botocore's default retry mode is still "legacy"; standard mode retries throttling and transient
# errors with jittered backoff, and more attempts ride out bursts of throttling on large runs.
RETRY_CONFIG = {"mode": "standard", "max_attempts": 10}


READ_PREFIXES = ("Describe", "Get", "List", "BatchGet", "Search", "Lookup", "Head", "Select")


def is_mutating(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


# botocore's service models, loaded once per process: each session otherwise parses them again (EC2's
# alone is megabytes of JSON), and a run that builds several contexts (the lock, status --watch, tests)
# paid that each time. Keyed by the search path, so a different AWS_DATA_PATH gets its own loader.
_SHARED_LOADERS: dict[tuple[str, ...], Any] = {}
_SHARED_LOADERS_LOCK = threading.Lock()


def share_model_loader(session: boto3.Session) -> None:
    """Make `session` read its service models through the process's loader for the same search path."""
    core = session._session  # boto3 exposes no public accessor for its botocore session
    own = core.get_component("data_loader")
    with _SHARED_LOADERS_LOCK:
        shared = _SHARED_LOADERS.setdefault(tuple(own.search_paths), own)
    if shared is not own:
        core.register_component("data_loader", shared)


# The AWS CLI v2 and the SDKs read AWS_REGION before AWS_DEFAULT_REGION; botocore reads only the latter.
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def unknown_profile(profile: str | None) -> AccessError:
    return AccessError(
        f"AWS profile {profile!r} is not configured",
        "List your profiles with `aws configure list-profiles`, or drop --profile.",
    )


def ambient_region(profile: str | None) -> tuple[str, str] | None:
    """The region the AWS CLI would use when none is given, and where it came from: AWS_REGION, then
    AWS_DEFAULT_REGION, then the profile's `region` in the AWS config file. None when none of them sets one."""
    for variable in REGION_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value, variable
    session = botocore.session.Session(profile=profile or None)
    try:
        region = str(session.get_scoped_config().get("region") or "").strip()
    except botocore.exceptions.ProfileNotFound:
        raise unknown_profile(profile) from None
    if not region:
        return None
    return region, f"profile {session.profile or 'default'} in {session.get_config_variable('config_file')}"


def known_regions(session: boto3.Session) -> set[str]:
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


class ClientFactory:
    """Builds (once per service) thread-safe boto3 clients that all share retries and endpoint."""

    def __init__(self, region: str, profile: str | None = None, endpoint_url: str | None = None) -> None:
        try:
            self.session = boto3.Session(profile_name=profile or None, region_name=region)
        except botocore.exceptions.ProfileNotFound:
            raise unknown_profile(profile) from None
        share_model_loader(self.session)
        self.region = region
        self.profile = profile
        # None lets boto3 use AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> on its own.
        self.endpoint_url = endpoint_url or None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        # Calls for cdpoc's own bookkeeping (the stack lock), kept apart: they do not touch the stack.
        self.bookkeeping_calls: list[tuple[str, str]] = []
        self._bookkeeping = threading.local()
        # Every API call is counted (service, operation): budgets and "no mutating call" are testable.
        self.session.events.register("before-call", self._count)
        self.config = Config(
            retries=dict(RETRY_CONFIG),  # type: ignore[arg-type]  # botocore rewrites the dict it is given
            user_agent_extra=f"cdpoc/{__version__}",
            max_pool_connections=32,
        )

    def check(self) -> None:
        """Fail early, with a clear message, when the region is unknown or there are no credentials."""
        if not self.endpoint_url and self.region not in known_regions(self.session):
            raise AccessError(
                f"region {self.region!r} is not an AWS region this botocore knows",
                "Check the spelling (e.g. us-east-1) or upgrade boto3 if the region is new.",
            )
        try:
            credentials = self.session.get_credentials()
        except botocore.exceptions.BotoCoreError as exc:
            raise AccessError(f"AWS credentials cannot be loaded: {exc}") from None
        if credentials is None:
            raise AccessError(
                "no AWS credentials found",
                "Run `aws configure` or `aws sso login`, pass --profile, or set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY. For the local sandbox any values work (see `cdpoc sandbox`).",
            )

    @contextmanager
    def bookkeeping(self) -> Iterator[None]:
        """Calls this thread makes inside are counted in bookkeeping_calls, not calls (e.g. the stack lock),
        so that "a second `up` makes no mutating call" stays a statement about the stack."""
        outer = getattr(self._bookkeeping, "on", False)
        self._bookkeeping.on = True
        try:
            yield
        finally:
            self._bookkeeping.on = outer

    def _count(self, model: Any, **_: Any) -> None:
        call = (model.service_model.service_name, model.name)
        with self._lock:
            (self.bookkeeping_calls if getattr(self._bookkeeping, "on", False) else self.calls).append(call)

    def mutating_calls(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(s, op) for s, op in self.calls if is_mutating(op)]

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(  # type: ignore[call-overload]
                    service, region_name=self.region, endpoint_url=self.endpoint_url, config=self.config
                )
            return self._clients[service]
