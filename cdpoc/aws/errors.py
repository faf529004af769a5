"""AWS errors by code: cdpoc's error types from botocore's, and the calls where an error is an answer
(NotFound on a delete, AlreadyExists on a retried attach)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.exceptions

from cdpoc.errors import AccessError, AwsError


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
