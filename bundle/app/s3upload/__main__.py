"""Entry point of the systemd service: ``python -m s3upload``.

Logs go to stderr (journald) and to ``LOG_FILE`` (``/var/log/s3upload/app.log``, which the
CloudWatch agent ships). systemd creates that directory for the service user (LogsDirectory=).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys

import uvicorn

from .api import create_app
from .services import connect
from .settings import Settings, SettingsError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_file: str) -> None:
    """Send every logger, uvicorn's included, to stderr and to ``log_file`` when it can be opened."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    problem = None
    if log_file:
        try:
            # Watched: reopens the file after logrotate moves it.
            handlers.append(logging.handlers.WatchedFileHandler(log_file))
        except OSError as exc:
            problem = exc
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    if problem is not None:
        logging.getLogger(__name__).warning("not logging to %s: %s", log_file, problem)


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"s3upload: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_file)
    log = logging.getLogger("s3upload")
    log.info("starting revision %s on %s:%d", settings.revision, settings.host, settings.port)
    app = create_app(settings, connect(settings))
    # log_config=None keeps uvicorn from replacing the handlers above. Only the ALB can reach the
    # port (security group), so its X-Forwarded-For is trusted for the access log.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips="*",
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
