"""The HTTP probe of `cdpoc status`: one GET of the app's health check path through the load balancer."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from cdpoc import __version__
from cdpoc.statusviews import HttpCheck

PROBE_TIMEOUT = 3.0

HttpProbe = Callable[[str], HttpCheck]


def probe_http(url: str, timeout: float = PROBE_TIMEOUT) -> HttpCheck:
    """GET url once with a short timeout; any failure is a result, never an exception.

    urllib's timeout does not cover the DNS lookup, which can hang for long on a broken resolver: the
    request runs in a daemon thread, and the answer not there in time is a timeout too.
    """
    result: list[HttpCheck] = []
    worker = threading.Thread(target=lambda: result.append(_get(url, timeout)), name="cdpoc-probe", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return result[0] if result else HttpCheck(url, error=f"unreachable: no answer within {timeout:g}s")


def _get(url: str, timeout: float) -> HttpCheck:
    request = urllib.request.Request(url, headers={"User-Agent": f"cdpoc/{__version__} status"})
    started = time.monotonic()
    try:
        # a new opener per probe: it reads HTTP_PROXY/NO_PROXY now (urlopen's is built once per process)
        with urllib.request.build_opener().open(request, timeout=timeout) as reply:
            status, error = reply.status, ""
    except urllib.error.HTTPError as exc:
        status, error = exc.code, _first_line(exc.read(300))
    except urllib.error.URLError as exc:
        return HttpCheck(url, error=f"unreachable: {exc.reason}")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return HttpCheck(url, error=f"unreachable: {exc or type(exc).__name__}")
    return HttpCheck(url, status=status, latency_ms=(time.monotonic() - started) * 1000, error=error)


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:160] if text else ""
