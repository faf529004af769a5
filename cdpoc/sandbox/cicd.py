"""The sandbox's CI/CD simulation: CodeCommit -> CodePipeline -> CodeDeploy as they behave on AWS.

This exists only in the sandbox. moto 5.2.5 stores CodeCommit repositories without their contents,
finishes pipeline executions the moment they start and leaves deployments `Created` forever; with these
additions a commit to a pipeline's branch starts an execution (when the source action polls, or when an
enabled EventBridge rule matching the branch targets the pipeline), the execution's Source action zips
the commit into the artifact bucket, its Deploy action creates a CodeDeploy deployment of that zip, and
the deployment's instances (the deployment group's Auto Scaling group) go through the lifecycle events
one step at a time until it ends Succeeded, or Failed at a chosen hook with a log tail.

Everything is computed lazily from the time elapsed (no background threads), so all reads agree at any
instant. The responses keep AWS's shapes exactly; nothing in them marks them as simulated.

Control, in process:  SIMULATION.fail_next_deployment("ValidateService", "curl: (7) connection refused"),
                      SIMULATION.step_seconds = 0.01, SIMULATION.clock = <callable returning epoch seconds>,
                      SIMULATION.reset().
Control, over HTTP (a running `cdpoc sandbox`, see with_control_path):
    POST /_cdpoc/fail-next-deployment  {"hook": "ValidateService", "message": "..."}
    POST /_cdpoc/step-seconds          {"seconds": 0.2}
    POST /_cdpoc/reset
    GET  /_cdpoc/simulation
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from cdpoc.sandbox import codecommit, codedeploy, codepipeline
from cdpoc.sandbox.simulation import ALL_EVENTS, SIMULATION, FailureRequest, Simulation

__all__ = ["SIMULATION", "FailureRequest", "Simulation", "ask_sandbox", "install", "with_control_path"]

CONTROL_PREFIX = "/_cdpoc/"
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def install() -> None:
    """Patch moto's CodeCommit, CodeDeploy and CodePipeline Response classes and wire them together."""
    codecommit.install()
    codedeploy.install()
    codepipeline.install()
    if codepipeline.on_reference_changed not in codecommit.REFERENCE_LISTENERS:
        codecommit.REFERENCE_LISTENERS.append(codepipeline.on_reference_changed)
    # pipelines first: their deploy actions create deployments that the CodeDeploy step then brings up to date
    SIMULATION.add_advancer(codepipeline.advance)
    SIMULATION.add_advancer(codedeploy.advance)


# ---- HTTP control path


def with_control_path(app: WsgiApp) -> WsgiApp:
    """moto's WSGI app plus /_cdpoc/* for controlling the simulation of a running sandbox."""

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return _control(environ, start_response)
        if path == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
            SIMULATION.forget_failures()  # queued failures belong to the state being thrown away
        return app(environ, start_response)

    return dispatch


def _control(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    method, action = environ.get("REQUEST_METHOD", "GET"), environ["PATH_INFO"][len(CONTROL_PREFIX) :]
    try:
        payload = _read_json(environ) if method == "POST" else {}
        if method == "POST" and action == "fail-next-deployment":
            SIMULATION.fail_next_deployment(str(payload.get("hook", "")), str(payload.get("message") or ""))
        elif method == "POST" and action == "step-seconds":
            seconds = float(payload.get("seconds", -1))
            if seconds < 0:
                raise ValueError("seconds must be a number >= 0")
            SIMULATION.step_seconds = seconds
        elif method == "POST" and action == "reset":
            SIMULATION.reset()
        elif not (method == "GET" and action == "simulation"):
            return _reply(start_response, "404 Not Found", {"error": f"no control {method} {CONTROL_PREFIX}{action}"})
    except (ValueError, TypeError) as exc:
        return _reply(start_response, "400 Bad Request", {"error": str(exc), "hooks": list(ALL_EVENTS)})
    return _reply(start_response, "200 OK", _state())


def _read_json(environ: dict[str, Any]) -> dict[str, Any]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    payload = json.loads(raw or b"{}")
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    return payload


def _state() -> dict[str, Any]:
    return {
        "stepSeconds": SIMULATION.step_seconds,
        "pendingFailures": [{"hook": f.hook, "message": f.message} for f in SIMULATION.pending_failures()],
    }


def _reply(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def ask_sandbox(endpoint: str, action: str, payload: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """Client side of the control path, e.g. ask_sandbox(url, "fail-next-deployment", {"hook": "ValidateService"})."""
    url = endpoint.rstrip("/") + CONTROL_PREFIX + action
    data = None if payload is None and action == "simulation" else json.dumps(payload or {}).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
