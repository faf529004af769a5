"""Settings of the s3upload API, read from the process environment.

On an instance the environment comes from ``/etc/s3upload.env`` (systemd ``EnvironmentFile``),
which the AfterInstall hook writes from instance metadata and SSM. That file names the SSM
parameter holding the MongoDB password but never contains the password itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_LOG_FILE = "/var/log/s3upload/app.log"


class SettingsError(Exception):
    """The environment is missing or has a malformed setting."""


@dataclass(frozen=True)
class Settings:
    """Everything the API needs to know about where it runs."""

    region: str
    mongodb_host: str
    mongodb_db: str = "s3upload"
    mongodb_user: str = "s3upload"
    # Name of an SSM SecureString parameter; empty means connect without authentication
    # (useful only against a local development MongoDB).
    mongodb_password_param: str = ""
    revision: str = "unknown"
    host: str = "0.0.0.0"
    port: int = 80
    log_file: str = DEFAULT_LOG_FILE
    # Presigned download links are short-lived: the list is re-fetched whenever the page loads.
    presign_seconds: int = 900

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); raise SettingsError if incomplete."""
        env = os.environ if env is None else env
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
        host = env.get("MONGODB_HOST", "")
        missing = [name for name, value in (("AWS_REGION", region), ("MONGODB_HOST", host)) if not value]
        if missing:
            raise SettingsError(f"missing required environment variable(s): {', '.join(missing)}")
        return cls(
            region=region,
            mongodb_host=host,
            mongodb_db=env.get("MONGODB_DB") or cls.mongodb_db,
            mongodb_user=env.get("MONGODB_USER") or cls.mongodb_user,
            mongodb_password_param=env.get("MONGODB_PASSWORD_PARAM", ""),
            revision=env.get("APP_REVISION") or cls.revision,
            host=env.get("APP_HOST") or cls.host,
            port=_int_setting(env, "APP_PORT", cls.port),
            log_file=env.get("LOG_FILE", cls.log_file),
        )


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
