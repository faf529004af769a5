"""Keeps web pages out of the sandbox: only the developer's own tools may call it.

The sandbox listens on 127.0.0.1 only, but any page open in the developer's browser can still send it
requests: moto answers every Origin with CORS headers (its whole state, generated passwords included, would
be readable by the page), moto signs nothing (a cross-site `<img src="http://127.0.0.1:…/?Action=…">` is an
API call), a `text/plain` POST reaches the control path without a CORS preflight, and a DNS-rebinding page
talks to it under its own host name. So every request must:

- name the sandbox by a loopback host (`127.0.0.1`, `localhost`, `[::1]`), or an AWS host name (the sandbox
  is the HTTP proxy for its load balancers and AWS endpoints: only clients configured with it as their proxy
  send those, and there the page's origin is the simulated internet, not the developer's machine);
- for a loopback host: carry no Origin but a loopback one, and no `Sec-Fetch-Site` but `same-origin` or
  `none` (browsers send them; boto3, curl and urllib do not);
- for the control path: be a JSON POST (`Content-Type: application/json`), which a page cannot send
  cross-origin without a preflight that the sandbox never grants.

Answers to loopback-host requests carry no `Access-Control-*` header at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
# Host names a client configured with the sandbox as its HTTP proxy sends (load balancers' DNS names,
# S3 website endpoints): the requests a browser test or `cdpoc status` makes to the simulated stack.
PROXIED_SUFFIXES = (".amazonaws.com",)
BROWSER_SITES_ALLOWED = frozenset({"same-origin", "none"})


def _host_name(host_header: str) -> str:
    """'127.0.0.1:5000' -> '127.0.0.1'; '[::1]:5000' -> '[::1]'; lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def refusal(environ: dict[str, Any], control_prefix: str) -> str | None:
    """Why this request may not reach the sandbox, or None when it may."""
    host = _host_name(str(environ.get("HTTP_HOST", "")))
    if host.endswith(PROXIED_SUFFIXES):
        return None
    if host not in LOOPBACK_HOSTS:
        return f"host {host or '(none)'!r} is not this machine's loopback address (a DNS-rebinding page?)"
    origin = str(environ.get("HTTP_ORIGIN", ""))
    if origin and _host_name(urlsplit(origin).netloc) not in LOOPBACK_HOSTS:
        return f"requests from web pages ({origin}) are not served"
    site = str(environ.get("HTTP_SEC_FETCH_SITE", "")).lower()
    if site and site not in BROWSER_SITES_ALLOWED:
        return f"requests from other sites (Sec-Fetch-Site: {site}) are not served"
    if str(environ.get("PATH_INFO", "")).startswith(control_prefix) and environ.get("REQUEST_METHOD") == "POST":
        content_type = str(environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            return f"control requests must be JSON (Content-Type: application/json), not {content_type or 'none'!r}"
    return None


def _without_cors(start_response: Callable[..., Any]) -> Callable[..., Any]:
    def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
        kept = [(name, value) for name, value in headers if not name.lower().startswith("access-control-")]
        return start_response(status, kept, *rest)

    return start


def with_guard(app: WsgiApp, control_prefix: str) -> WsgiApp:
    """`app` behind the checks above: a refused request gets 403 and a JSON reason, and reaches nothing."""

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        reason = refusal(environ, control_prefix)
        if reason is not None:
            body = json.dumps({"error": f"cdpoc sandbox: {reason}"}).encode()
            start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if _host_name(str(environ.get("HTTP_HOST", ""))) in LOOPBACK_HOSTS:
            return app(environ, _without_cors(start_response))
        return app(environ, start_response)

    return dispatch
