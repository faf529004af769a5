"""Start and stop moto's server on 127.0.0.1 with the settings cdpoc needs (managed policies, AMI checks)."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from cdpoc.errors import EXIT_USAGE, CdpocError
from cdpoc.ui import Ui

if TYPE_CHECKING:
    from cdpoc.sandbox.simulation import Timing

# moto reads these when its modules are imported, so they are set before the first import.
MOTO_SETTINGS = {
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    "MOTO_ENABLE_AMI_VALIDATION": "true",
}
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


class SandboxError(CdpocError):
    pass


class SandboxUnavailable(SandboxError):
    """The sandbox cannot start for a reason the user fixes (a busy port, a missing extra): usage, exit 2."""

    exit_code = EXIT_USAGE


# What the `sandbox` extra (moto[server]) brings that the sandbox imports.
SANDBOX_MODULES = ("moto", "flask", "flask_cors")


def require_sandbox_extra(command: str) -> None:
    """A clear error instead of a ModuleNotFoundError when cdpoc was installed without its `sandbox` extra."""
    missing = [module for module in SANDBOX_MODULES if importlib.util.find_spec(module) is None]
    if missing:
        raise SandboxUnavailable(
            f"`cdpoc {command}` needs the sandbox extra, which is not installed (missing: {', '.join(missing)})",
            "Install it with: pip install 'cdpoc[sandbox]' (in the same environment as cdpoc).",
        )


def prepare_moto() -> None:
    os.environ.update(MOTO_SETTINGS)
    from cdpoc.sandbox import additions

    additions.install()


class Sandbox:
    """moto's WSGI app served from a background thread; binding errors surface in start()."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        prepare_moto()
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                """Requests are not logged: the sandbox shares the terminal with cdpoc's own output."""

        self._check_port()
        from cdpoc.sandbox.cicd import CONTROL_PREFIX, with_control_path
        from cdpoc.sandbox.guard import with_guard
        from cdpoc.sandbox.health import with_load_balancers

        # /_cdpoc/* controls the CI/CD simulation (e.g. fail the next deployment); requests for a load
        # balancer's DNS name (the sandbox as HTTP proxy) get what the load balancer would answer; the rest
        # is moto's; web pages in the developer's browser reach none of it (cdpoc.sandbox.guard)
        app = with_guard(
            with_load_balancers(with_control_path(DomainDispatcherApplication(create_backend_app))), CONTROL_PREFIX
        )
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=QuietHandler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="cdpoc-sandbox", daemon=True)
        self._thread.start()
        return self.endpoint

    def _check_port(self) -> None:
        """werkzeug prints and exits the process on a busy port; we want our own error instead."""
        if self.port == 0:
            return
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise SandboxUnavailable(
                    f"cannot listen on {self.host}:{self.port}: {exc.strerror}",
                    "Pass another --port (0 picks a free one).",
                ) from None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def proxy_settings(endpoint: str) -> dict[str, str]:
    """What makes HTTP clients (urllib, so cdpoc status; curl) reach the sandbox's load balancers' DNS
    names: the sandbox as their HTTP proxy, and the sandbox itself reached directly."""
    return {"HTTP_PROXY": endpoint, "NO_PROXY": "127.0.0.1,localhost"}


def use_timing(text: str) -> Timing:
    """Take a timing profile by name or factor (`fast`, `realistic`, `0.1`); a bad one is a clear error."""
    from cdpoc.sandbox.simulation import SIMULATION
    from cdpoc.sandbox.simulation import Timing as TimingProfile

    try:
        timing = TimingProfile.parse(text)
    except ValueError as exc:
        raise SandboxError(str(exc), "Use --timing fast, --timing realistic or a factor such as 0.1.") from None
    SIMULATION.use_timing(timing)
    return timing


def serve_forever(port: int, ui: Ui, timing: str = "fast") -> None:
    """`cdpoc sandbox`: serve until Ctrl-C or SIGTERM, telling the user how to point cdpoc at it."""
    profile = use_timing(timing)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    with Sandbox(port) as sandbox:
        ui.say(
            f"cdpoc sandbox listening on {sandbox.endpoint} (moto with cdpoc's additions; state is in memory)",
            style="bold",
        )
        ui.say("Point cdpoc (or the AWS CLI) at it in another shell:")
        ui.say(f"  export AWS_ENDPOINT_URL={sandbox.endpoint}")
        for key, value in FAKE_CREDENTIALS.items():
            ui.say(f"  export {key}={value}")
        ui.say("  export AWS_REGION=us-east-1   # the sandbox serves any region; cdpoc needs one named")
        for key, value in proxy_settings(sandbox.endpoint).items():
            ui.say(f"  export {key}={value}   # the load balancers' DNS names answer through the sandbox")
        ui.say("  cdpoc up        # or: cdpoc --endpoint-url " + sandbox.endpoint + " up")
        ui.say(f"Timing: {profile.name} (AWS's durations x {profile.factor:g}). Ctrl-C or SIGTERM stops it.")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    ui.say("sandbox stopped")
