"""One place that builds the boto3 session and clients for a run: profile, region, endpoint, retries."""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.exceptions
import botocore.parsers
import botocore.session
from botocore.config import Config

from cdpoc import __version__
from cdpoc.errors import AccessError

# botocore's default retry mode is still "legacy"; standard mode retries throttling and transient
# errors with jittered backoff, and more attempts ride out bursts of throttling on large runs.
RETRY_CONFIG = {"mode": "standard", "max_attempts": 10}


# The first call of a run (STS: who are we) is made with a short connect timeout and one retry, so that an
# endpoint nothing listens on, or an unreachable network, fails in seconds rather than after ten attempts
# with backoff (about half a minute); the run's own clients keep the patient settings.
PROBE_READ_TIMEOUT = 20
PROBE_CONFIG = Config(
    connect_timeout=3, read_timeout=PROBE_READ_TIMEOUT, retries={"mode": "standard", "total_max_attempts": 2}
)
# The error codes that mean the credentials, not the endpoint, are at fault.
CREDENTIAL_CODES = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "AuthFailure",
}

# (service, operation, outcome, seconds) of one finished call, for --verbose.
CallObserver = Callable[[str, str, str, float], None]

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


def endpoint_problem(url: str) -> str | None:
    """Why `url` cannot be an AWS endpoint URL (botocore would fail with a traceback); None when it can."""
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018  # raises on a port that is not a number
    except ValueError as exc:
        return str(exc)
    if parsed.scheme not in ("http", "https"):
        return "it does not start with http:// or https://"
    if not parsed.hostname:
        return "it names no host"
    return None


def known_regions(session: boto3.Session) -> set[str]:
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


class ClientFactory:
    """Builds (once per service) thread-safe boto3 clients that all share retries and endpoint."""

    def __init__(
        self,
        region: str,
        profile: str | None = None,
        endpoint_url: str | None = None,
        on_call: CallObserver | None = None,
    ) -> None:
        try:
            self.session = boto3.Session(profile_name=profile or None, region_name=region)
        except botocore.exceptions.ProfileNotFound:
            raise unknown_profile(profile) from None
        share_model_loader(self.session)
        self.region = region
        self.profile = profile
        # None lets boto3 use AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> on its own.
        self.endpoint_url = endpoint_url or None
        for source, url in (
            ("--endpoint-url", self.endpoint_url),
            ("AWS_ENDPOINT_URL", os.environ.get("AWS_ENDPOINT_URL")),
        ):
            problem = endpoint_problem(url) if url else None
            if problem:
                raise AccessError(
                    f"{source} {url!r} is not an endpoint URL: {problem}",
                    "Give a URL such as http://127.0.0.1:5000 (the one `cdpoc sandbox` prints), or leave it out "
                    "for AWS.",
                )
        # STS's answer to the reachability probe made before the run's first client, handed to the run's
        # first "who are we" (cdpoc.aws.account.caller_identity).
        self.identity: dict[str, str] | None = None
        self._probe_lock = threading.Lock()
        self._probing = threading.local()
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        # Calls for cdpoc's own bookkeeping (the stack lock), kept apart: they do not touch the stack.
        self.bookkeeping_calls: list[tuple[str, str]] = []
        self._bookkeeping = threading.local()
        # Every API call is counted (service, operation): budgets and "no mutating call" are testable.
        self.session.events.register("before-call", self._count)
        self.session.events.register("before-call", self._reachable)
        if on_call is not None:
            self._observe(on_call)
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

    def _reachable(self, **_: Any) -> None:
        """Before the run's first AWS call (a botocore before-call handler): the quick probe. A command that
        makes no call makes no probe; an error raised here ends that first call."""
        if self.identity is not None or getattr(self._probing, "on", False):
            return
        with self._probe_lock:
            if self.identity is None:
                self._probing.on = True
                try:
                    self.identity = self._who_are_we()
                finally:
                    self._probing.on = False

    def _where(self) -> str:
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or f"AWS in {self.region}"

    def _who_are_we(self) -> dict[str, str]:
        """STS GetCallerIdentity, quickly: an endpoint that is down, or that is not AWS, is a clear error
        (exit 2) within seconds, not a half-minute of retries or a parser's traceback."""
        probe = self.session.client(
            "sts", region_name=self.region, endpoint_url=self.endpoint_url, config=self.config.merge(PROBE_CONFIG)
        )
        hint = "Check --endpoint-url / AWS_ENDPOINT_URL and that the endpoint is up (e.g. `cdpoc sandbox`)."
        try:
            reply = probe.get_caller_identity()
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError):
            raise AccessError(f"cannot reach {self._where()}", hint) from None
        except botocore.exceptions.ReadTimeoutError:
            raise AccessError(f"{self._where()} did not answer within {PROBE_READ_TIMEOUT}s", hint) from None
        except botocore.exceptions.HTTPClientError as exc:  # the connection dropped, a proxy refused...
            raise AccessError(f"cannot talk to {self._where()}: {exc}", hint) from None
        except botocore.parsers.ResponseParserError:
            raise AccessError(f"{self._where()} does not answer as an AWS endpoint does", hint) from None
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in CREDENTIAL_CODES:
                raise AccessError(
                    f"AWS refused the credentials ({code}): {exc.response.get('Error', {}).get('Message', '')}",
                    "Refresh or correct your credentials.",
                ) from None
            raise AccessError(
                f"{self._where()} does not answer as an AWS endpoint does ({code or exc})", hint
            ) from None
        return {key: str(reply.get(key, "")) for key in ("Account", "Arn", "UserId")}

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

    def _observe(self, on_call: CallObserver) -> None:
        """Tell on_call about every call once it has ended: service, operation, outcome (HTTP status and error
        code, or the exception), and its duration including botocore's retries (--verbose)."""

        def started(model: Any, context: dict[str, Any], **_: Any) -> None:
            # after-call-error is given no model: remember the call's names here
            context["cdpoc_call"] = (model.service_model.service_name, model.name, time.monotonic())

        def ended(context: dict[str, Any], **kwargs: Any) -> None:
            if "cdpoc_call" not in context:
                return
            service, operation, since = context["cdpoc_call"]
            seconds = time.monotonic() - since
            if "exception" in kwargs:
                outcome = type(kwargs["exception"]).__name__
            else:
                status = getattr(kwargs.get("http_response"), "status_code", "")
                code = (kwargs.get("parsed") or {}).get("Error", {}).get("Code", "")
                outcome = f"{status} {code}".strip()
            on_call(service, operation, outcome, seconds)

        self.session.events.register("before-call", started)
        self.session.events.register("after-call", ended)
        self.session.events.register("after-call-error", ended)

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
