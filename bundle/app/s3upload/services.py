"""The outside world the API talks to: MongoDB, S3 and (once, at start) SSM Parameter Store.

Credentials for AWS come from the instance profile through boto3's default chain; the MongoDB
password is fetched from an SSM SecureString at start so it never sits in a file on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from pymongo import MongoClient

from .settings import Settings

log = logging.getLogger(__name__)

# Fail fast: the ALB health check times out after a few seconds, and a request that waits
# pymongo's default 30 s for a server is worse than a clear 503.
MONGO_TIMEOUT_MS = 3000

BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, signature_version="s3v4")


@dataclass(frozen=True)
class Services:
    """Handles the routes use. ``db`` is a pymongo Database (or a mongomock one in tests)."""

    db: Any
    s3: Any


def read_password(ssm: Any, parameter_name: str) -> str:
    """Return the decrypted value of the SecureString ``parameter_name``."""
    response = ssm.get_parameter(Name=parameter_name, WithDecryption=True)
    return str(response["Parameter"]["Value"])


def mongo_client(
    settings: Settings,
    password: str | None,
    factory: Callable[..., Any] = MongoClient,
) -> Any:
    """Create a MongoDB client for ``settings``, authenticating as the app user when given a password."""
    options: dict[str, Any] = {
        "host": settings.mongodb_host,
        "appname": "s3upload",
        "tz_aware": True,
        "serverSelectionTimeoutMS": MONGO_TIMEOUT_MS,
        "connectTimeoutMS": MONGO_TIMEOUT_MS,
    }
    if password is not None:
        # The user is created in the application database itself, so authenticate there.
        options.update(username=settings.mongodb_user, password=password, authSource=settings.mongodb_db)
    return factory(**options)


def connect(settings: Settings, session: Any = None) -> Services:
    """Build the production services: SSM password, MongoDB client, S3 client.

    Raises whatever boto3 raises when the password cannot be read: without it the API cannot do
    anything useful, and systemd restarts the process until the parameter is readable.
    """
    session = session or boto3.session.Session(region_name=settings.region)
    password = None
    if settings.mongodb_password_param:
        ssm = session.client("ssm", config=BOTO_CONFIG)
        password = read_password(ssm, settings.mongodb_password_param)
        log.info("read the MongoDB password from SSM parameter %s", settings.mongodb_password_param)
    else:
        log.warning("MONGODB_PASSWORD_PARAM is not set: connecting to MongoDB without authentication")
    client = mongo_client(settings, password)
    s3 = session.client("s3", config=BOTO_CONFIG)
    return Services(db=client[settings.mongodb_db], s3=s3)
