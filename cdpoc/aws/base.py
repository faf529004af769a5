"""What every AWS area module shares: the run's clients and tags, error codes, waits, the handler base."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import botocore.exceptions

from cdpoc.aws.clients import ClientFactory
from cdpoc.errors import AccessError, AwsError, Cancelled, ConflictError, WaitTimeout
from cdpoc.model import Change, Observed, Resource, extra_key, not_ours_change
from cdpoc.spec import Ref, Spec

STACK_TAG = "cdpoc:stack"
# How many deterministic token generations create_with_token tries before giving up.
TOKEN_GENERATIONS = 4
COMPONENT_TAG = "cdpoc:component"

T = TypeVar("T")


class DependencyViolation(AwsError):
    """AWS refused a delete because something still uses the resource; the sweeper retries it."""


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_error(exc: BaseException, *codes: str) -> bool:
    code = error_code(exc)
    return bool(code) and any(code == c or (c.endswith("*") and code.startswith(c[:-1])) for c in codes)


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn botocore failures into cdpoc errors that say what was being done."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        if code == "DependencyViolation" or code.endswith("InUse") or code == "ResourceInUse":
            raise DependencyViolation(f"{what}: {code}: {message}") from exc
        if code in {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}:
            raise AwsError(
                f"{what}: not allowed ({code}): {message}", "The credentials in use lack this permission."
            ) from exc
        if code in {
            "AuthFailure",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "ExpiredToken",
            "ExpiredTokenException",
            "SignatureDoesNotMatch",
        }:
            raise AccessError(
                f"{what}: AWS refused the credentials ({code}): {message}",
                "Refresh or correct your credentials.",
            ) from exc
        raise AwsError(f"{what}: {code}: {message}") from exc
    except botocore.exceptions.NoCredentialsError:
        raise AccessError(f"{what}: no AWS credentials found", "Configure credentials or pass --profile.") from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise AccessError(
            f"{what}: cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}",
            "Check --endpoint-url / AWS_ENDPOINT_URL and that the endpoint is up.",
        ) from None


def caused_by(exc: BaseException, *codes: str) -> bool:
    """True when `exc`, or the AWS error aws_errors raised it from, has one of these error codes."""
    return is_error(exc.__cause__ or exc, *codes)


def call_or_none(what: str, call: Callable[..., Any], missing: tuple[str, ...], **params: Any) -> Any | None:
    """The call's reply, or None when AWS answers with one of the `missing` codes (NotFound is an answer)."""
    try:
        with aws_errors(what):
            return call(**params)
    except AwsError as exc:
        if caused_by(exc, *missing):
            return None
        raise


def describe_one(
    what: str, describe: Callable[..., Any], listing: str, id_param: str, resource_id: str, not_found: tuple[str, ...]
) -> dict[str, Any] | None:
    """The one item describe(<id_param>=[id]) lists under `listing` (EC2 style); None when it is not there."""
    reply = call_or_none(what, describe, not_found, **{id_param: [resource_id]})
    items = reply[listing] if reply else []
    return dict(items[0]) if items else None


def unless_listed(
    what: str, describe: Callable[..., Any], listing: str, id_param: str, resource_id: str, not_found: tuple[str, ...]
) -> str | None:
    """For create_with_token's dead_id: the id when describe(<id_param>=[id]) no longer lists it."""
    reply = call_or_none(what, describe, not_found, **{id_param: [resource_id]})
    return None if reply and reply[listing] else resource_id


def ignore_missing(what: str, call: Callable[..., Any], not_found: tuple[str, ...], **params: Any) -> bool:
    """Run one call (a delete, a detach); a `not_found` answer counts as done, so an interrupted run can
    simply run again. Returns False when AWS said there was nothing there."""
    try:
        with aws_errors(what):
            call(**params)
    except AwsError as exc:
        if not caused_by(exc, *not_found):
            raise
        return False
    return True


def repeat_safe(
    what: str, call: Callable[..., Any], already: tuple[str, ...], done: Callable[[], bool], **params: Any
) -> bool:
    """Run a step that AWS refuses to run twice (attach, add a route or an ACL entry, add a role to a
    profile). When the first attempt took effect but its answer was lost, botocore's retry is refused
    with one of the `already` codes: the step counts as done once done() confirms that AWS now holds
    the wanted state. Returns False when it was found done that way."""
    try:
        with aws_errors(what):
            call(**params)
    except AwsError as exc:
        if caused_by(exc, *already) and done():
            return False
        raise
    return True


@dataclass
class Waits:
    """Time limits (seconds) for things that become ready, or go away, asynchronously."""

    default: float = 300.0
    nat_gateway: float = 900.0
    # How long a fresh IAM role or instance profile may be refused by other services (AWS says up to ~2 min).
    iam_propagation: float = 120.0
    # Auto Scaling instances InService and healthy in the target group (boot, user data, health checks),
    # or gone after a forced delete.
    fleet: float = 900.0
    # An ALB becoming active, or its network interfaces being released after deletion: often minutes.
    load_balancer: float = 900.0
    poll_initial: float = 2.0
    poll_max: float = 15.0


@dataclass
class AwsRun:
    """Everything an AWS module needs for one run: clients, the stack's identity and tags, waits."""

    clients: ClientFactory
    stack: str
    zones: tuple[str, ...] = ()
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)
    waits: Waits = field(default_factory=Waits)
    sleep: Callable[[float], None] | None = None
    _memo: dict[str, Any] = field(default_factory=dict)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, service: str) -> Any:
        return self.clients.client(service)

    @property
    def region(self) -> str:
        return self.clients.region

    def tags(self, component: str, name: str = "") -> list[dict[str, str]]:
        tags = {**self.extra_tags, STACK_TAG: self.stack, COMPONENT_TAG: component}
        if name:
            tags["Name"] = name
        return tag_list(tags)

    def ec2_tag_specs(self, resource_type: str, res: Resource) -> list[dict[str, Any]]:
        return [{"ResourceType": resource_type, "Tags": self.tags(res.key, res.name)}]

    def stack_filter(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{STACK_TAG}", "Values": [self.stack]}]

    def component_filter(self, res: Resource) -> list[dict[str, Any]]:
        """EC2 filters for the resources tagged as this stack's `res` (a filter finds, the tags prove)."""
        return [*self.stack_filter(), {"Name": f"tag:{COMPONENT_TAG}", "Values": [res.key]}]

    def client_token(self, res: Resource, *parts: str) -> str:
        """A deterministic idempotency token; parts (e.g. the parent's id) make it new after a teardown."""
        digest = hashlib.sha256("/".join((self.stack, res.key, *parts)).encode()).hexdigest()
        return f"cdpoc-{digest[:58]}"

    def create_with_token(
        self, res: Resource, parts: Sequence[str], create: Callable[[str], T], dead_id: Callable[[T], str | None]
    ) -> T:
        """create(token) with a deterministic token, so a retried or re-run create cannot duplicate.

        AWS answers a token it has seen with its first result for hours, also after that resource was
        deleted (a `down` stopped halfway leaves the parent whose id is in the token). dead_id says when
        the answer is such a deleted resource; then the create runs again with a token salted by its id.
        A token already used with other parameters (IdempotentParameterMismatch: the resource was made,
        then deleted by a `down` that stopped before its parent, and the settings or a dependency changed
        since) moves on to the next generation of tokens, each as deterministic as the first.
        """
        for generation in range(TOKEN_GENERATIONS):
            salt = (f"generation {generation}",) if generation else ()
            try:
                result = create(self.client_token(res, *parts, *salt))
            except AwsError as exc:
                if caused_by(exc, "IdempotentParameterMismatch"):
                    continue
                raise
            gone = dead_id(result)
            if gone:
                result = create(self.client_token(res, *parts, *salt, gone))
            return result
        raise AwsError(
            f"creating {res.key}: AWS refused {TOKEN_GENERATIONS} idempotency tokens as used with other parameters",
            "Run `cdpoc up` again in a few hours (AWS forgets tokens), or `cdpoc down` and `cdpoc up`.",
        )

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Cache one discovery call per run (e.g. all of the stack's subnets), shared by all handlers."""
        with self._memo_lock:
            if key in self._memo:
                return self._memo[key]
        value = compute()
        with self._memo_lock:
            self._memo.setdefault(key, value)
            return self._memo[key]

    def memoized(self, key: str) -> Any | None:
        """What memo(key, ...) computed in this run, without computing it; None if nothing did."""
        with self._memo_lock:
            return self._memo.get(key)

    def forget(self) -> None:
        with self._memo_lock:
            self._memo.clear()

    def pause(self, seconds: float) -> None:
        """Sleep, but wake and stop at once when the run is cancelled."""
        if self.sleep is not None:
            self.sleep(seconds)
            if self.cancel.is_set():
                raise Cancelled("interrupted")
            return
        if self.cancel.wait(seconds):
            raise Cancelled("interrupted")

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("interrupted")

    def wait_until(self, what: str, ready: Callable[[], bool], timeout: float | None = None) -> None:
        """Poll `ready` with jittered, growing pauses until it is true, or raise WaitTimeout naming `what`."""
        limit = self.waits.default if timeout is None else timeout
        deadline = time.monotonic() + limit
        delay = self.waits.poll_initial
        while True:
            self.check_cancelled()
            if ready():
                return
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"timed out after {limit:.0f}s waiting for {what}",
                    "Re-run the command to keep waiting; it resumes where it stopped.",
                )
            self.pause(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.8, 1.2))
            delay = min(delay * 1.5, self.waits.poll_max)

    def wait_with(
        self,
        service: str,
        waiter_name: str,
        what: str,
        timeout: float | None = None,
        passing_states: bool = False,
        **params: Any,
    ) -> None:
        """Use botocore's waiter one attempt at a time, so that our timeout and Ctrl-C apply to it.

        A NotFound answer means "not yet": EC2 is eventually consistent, and a resource created a moment
        ago may not be visible (botocore's vpc_available and subnet_available waiters would fail on it).
        passing_states: the waiter's failure states are steps on the way, not failures (instance_terminated
        calls `pending` and `stopping` failures; an instance being terminated passes through them).
        """
        waiter = self.client(service).get_waiter(waiter_name)

        def ready() -> bool:
            try:
                waiter.wait(**params, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
            except botocore.exceptions.WaiterError as exc:
                reason = str(exc.kwargs.get("reason", ""))
                code = str((exc.last_response or {}).get("Error", {}).get("Code", ""))
                if reason.startswith("Max attempts exceeded") or code.endswith(".NotFound"):
                    return False
                if passing_states and "terminal failure" in reason and not code:
                    return False
                raise AwsError(f"{what} failed: {reason}") from None
            return True

        self.wait_until(what, ready, timeout)


def tag_map(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or ()}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags the way most AWS APIs take them, [{"Key": ..., "Value": ...}]: tag_map's inverse."""
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def observed(res_or_key: Resource | str, kind: str, physical_id: str, **attrs: Any) -> Observed:
    key = res_or_key.key if isinstance(res_or_key, Resource) else res_or_key
    return Observed(key=key, kind=kind, id=physical_id, attrs=attrs)


def dep_id(deps: Mapping[str, Observed | None], key: str) -> str | None:
    """The id of dependency `key`; None while it does not exist."""
    found = deps.get(key)
    return found.id if found else None


def dep_attr(deps: Mapping[str, Observed | None], key: str, attr: str) -> str | None:
    """Attribute `attr` of dependency `key` as text; None while it does not exist or the attribute is empty."""
    found = deps.get(key)
    if found is None:
        return None
    return str(found.attrs.get(attr, "")) or None


def vpc_changes(vpc: Ref | str, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
    """A resource in another VPC than the stack's (`vpc`, the spec's reference to it) is a conflict: it
    cannot be moved. Nothing to say while the stack's VPC does not exist yet."""
    vpc_id = (vpc if isinstance(vpc, Ref) else Ref(vpc)).value(deps)
    if vpc_id and found.attrs["vpc"] != vpc_id:
        return [Change(f"it is in {found.attrs['vpc']}, not the stack's VPC {vpc_id}", in_place=False)]
    return []


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`, for the batch APIs (DeleteObjects, GetParameters, ...)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def paginate(
    run: AwsRun, operation: str, key: str, *, service: str = "ec2", what: str = "", **params: Any
) -> list[dict[str, Any]]:
    """Every item under `key` on every page of a listing (EC2's unless `service` names another client).

    `what` says what a failure was doing; by default "listing the stack's <key>".
    """
    items: list[dict[str, Any]] = []
    with aws_errors(what or f"listing the stack's {key}"):
        for page in run.client(service).get_paginator(operation).paginate(**params):
            items.extend(page[key])
    return items


def by_component(
    run: AwsRun,
    items: Iterable[dict[str, Any]],
    id_field: str,
    prefer: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The items whose own tags say cdpoc:stack=<this stack>, keyed by their cdpoc:component tag.

    A listing's tag filter is not proof of ownership (moto ignores it on NAT gateways, and a filter is
    only as good as the code that wrote it): every item's tags are checked again here. A second item of
    one component is never dropped: it is listed under extra_key(). `prefer` ranks the items of one
    component (highest first, e.g. the attached one); otherwise the listing order decides.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        tags = tag_map(item.get("Tags"))
        if tags.get(STACK_TAG) == run.stack and tags.get(COMPONENT_TAG):
            groups.setdefault(tags[COMPONENT_TAG], []).append(item)
    found: dict[str, dict[str, Any]] = {}
    for component, group in groups.items():
        ranked = sorted(group, key=prefer, reverse=True) if prefer else group
        found[component] = ranked[0]
        for extra in ranked[1:]:
            found[extra_key(component, str(extra[id_field]))] = extra
    return found


def delete_twins(
    run: AwsRun,
    res: Resource,
    kept_id: str,
    listed: Iterable[Mapping[str, Any]],
    id_field: str,
    delete: Callable[[str], None],
) -> list[str]:
    """After a create that takes no client token (CreateVpc, CreateInternetGateway, AllocateAddress):
    when its answer was lost, botocore's retry made a second resource, which nothing would ever use or
    report. Any resource other than `kept_id` whose own tags name this stack and `res.key` is such a
    twin (the plan found none before the create, and the stack lock keeps other runs out): delete it.
    Returns the twins' ids."""
    twins = [
        str(item[id_field])
        for item in listed
        if item[id_field] != kept_id
        and tag_map(item.get("Tags")).get(STACK_TAG) == run.stack
        and tag_map(item.get("Tags")).get(COMPONENT_TAG) == res.key
    ]
    for twin in twins:
        delete(twin)
    return twins


def owner_attrs(item: Mapping[str, Any]) -> dict[str, Any]:
    """ownership() of a listed item that carries its own Tags."""
    return ownership(tag_map(item.get("Tags")))


def with_owner(found: Observed, item: Mapping[str, Any]) -> Observed:
    """`found` with the stack and component tags of the listed item it was made from (its own "tags" attr,
    where it has one, stays as the handler shaped it)."""
    tags = tag_map(item.get("Tags"))
    return replace(
        found, attrs={**found.attrs, "stack": tags.get(STACK_TAG, ""), "component": tags.get(COMPONENT_TAG, "")}
    )


# --- ownership by tags --------------------------------------------------------------------------------

NOT_MANAGED = "nothing cdpoc manages"
# Who owns a resource without a cdpoc:stack tag, in messages.
UNTAGGED = f"{NOT_MANAGED} (no cdpoc:stack tag)"


def tagged_resources(run: AwsRun, resource_type: str) -> dict[str, tuple[str, dict[str, str]]]:
    """{component: (ARN, tags)} of the stack's resources of one type, from the Resource Groups Tagging API.

    The API may still list a resource for a while after it is deleted: callers check it exists.
    """

    def lookup() -> dict[str, tuple[str, dict[str, str]]]:
        found: dict[str, tuple[str, dict[str, str]]] = {}
        with aws_errors(f"listing the stack's {resource_type} resources by tag"):
            paginator = run.client("resourcegroupstaggingapi").get_paginator("get_resources")
            for page in paginator.paginate(
                ResourceTypeFilters=[resource_type], TagFilters=[{"Key": STACK_TAG, "Values": [run.stack]}]
            ):
                for mapping in page["ResourceTagMappingList"]:
                    tags = tag_map(mapping.get("Tags"))
                    if tags.get(COMPONENT_TAG):
                        found[tags[COMPONENT_TAG]] = (mapping["ResourceARN"], tags)
        return found

    return run.memo(f"tagged:{resource_type}", lookup)


def wanted_tags(run: AwsRun, res: Resource) -> dict[str, str]:
    """The tags the resource should carry: the stack's, its component and name, and the config's extra tags."""
    return tag_map(run.tags(res.key, res.name))


def missing_tags(run: AwsRun, res: Resource, have: Mapping[str, str]) -> dict[str, str]:
    """The wanted tags that the resource lacks or has with another value."""
    return {k: v for k, v in wanted_tags(run, res).items() if have.get(k) != v}


def ownership(tags: Mapping[str, str]) -> dict[str, Any]:
    """The attrs an Observed found by name carries, so that changes() can tell ours from someone else's."""
    return {"tags": dict(tags), "stack": tags.get(STACK_TAG, ""), "component": tags.get(COMPONENT_TAG, "")}


def ownership_changes(run: AwsRun, res: Resource, found: Observed, what: str) -> list[Change]:
    """Another stack's or an untagged resource is a conflict (never adopted); ours missing a tag is an update."""
    if found.owner != run.stack:
        return [not_ours_change(what, res.name, found.owner)]
    component = found.attrs.get("component", "")
    if component and component != res.key:
        return [Change(f"{what} {res.name} is this stack's {component}, not {res.key}", in_place=False)]
    return [Change("tags differ")] if missing_tags(run, res, found.attrs.get("tags", {})) else []


def not_ours(res: Resource, what: str, tags: Mapping[str, str], untagged: str = UNTAGGED) -> ConflictError:
    """The refusal to take over an existing resource whose tags name another owner (`untagged` when none)."""
    owner = f"stack {tags[STACK_TAG]}" if tags.get(STACK_TAG) else untagged
    return ConflictError(
        f"{what} {res.name} already exists and belongs to {owner}",
        f"Delete or rename that {what}, or choose another stack name; cdpoc will not take it over.",
    )


def refuse_not_ours(
    run: AwsRun, res: Resource, what: str, tags: Mapping[str, str], *, component: bool = True, untagged: str = UNTAGGED
) -> None:
    """Adopt an existing resource (a create that raced, or a re-run) only when its tags say it is ours:
    this stack's and, with `component`, not another component's. Raises not_ours otherwise."""
    if tags.get(STACK_TAG) == run.stack and (not component or tags.get(COMPONENT_TAG, res.key) == res.key):
        return
    raise not_ours(res, what, tags, untagged)


class Handler:
    """Find / create / update / delete one kind of resource. Subclasses fill in the AWS calls.

    `scan` lists every resource of the kind tagged with the stack (keyed by component), once per run;
    `find` picks the wanted one from it. Kinds that cannot be listed by tag override `find`.
    """

    kind = ""
    label = ""
    # Tagging-API resource types ("service:type") this handler's scan already covers, for the leftover scan.
    arn_types: tuple[str, ...] = ()
    # The spec type of the resources it manages (cdpoc.spec); the registry checks every declared one.
    spec_type: type[Spec] | None = None

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        return {}

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        return run.memo(f"scan:{self.kind}", lambda: self.scan(run)).get(res.key)

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        return []

    def missing(self, run: AwsRun, res: Resource, found: Mapping[str, Observed | None]) -> list[Change]:
        """What creating `res` would mean, when it does not exist: notes for the plan, or a Change with
        in_place=False when creating it anew would do harm (the plan calls that a conflict)."""
        return []

    def keep(self, run: AwsRun, found: Observed) -> None:
        """Mark the resource as data `down --keep-data` keeps (only kinds that hold data implement it)."""
        raise NotImplementedError(self.kind)

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        raise NotImplementedError(self.kind)

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        """Apply `changes`, the plan's step for this resource (what changes() said), and nothing else."""
        raise NotImplementedError(self.kind)

    def delete(self, run: AwsRun, found: Observed) -> None:
        raise NotImplementedError(self.kind)

    def describe(self, found: Observed) -> str:
        """How the resource is shown to the user, e.g. 'vpc-0abc (10.0.0.0/16)'."""
        return found.id
