"""Fixtures for the tests of bundle/: the s3upload API on moto S3/SSM and mongomock.

moto is started before any boto3 client exists, with fake credentials in the environment, so no
test can reach real AWS.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mongomock
import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundle"
APP_DIR = BUNDLE / "app"
# The application is not an installed package: it is imported from the bundle, as on an instance
# (where the service runs `python -m s3upload` in /opt/s3upload/app).
# This directory too, for bundle_testdata, whatever pytest's import mode.
for path in (APP_DIR, Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bundle_testdata import (  # noqa: E402
    BOOKS_BUCKET,
    FILE_TYPES,
    IMAGES_BUCKET,
    REGION,
    WEB_ORIGIN,
)

# Import the application now without writing __pycache__ into bundle/: push-app commits that
# directory as the revision, and byte code has no place in it.
_write_bytecode = sys.dont_write_bytecode
sys.dont_write_bytecode = True
try:
    for _module in ("settings", "services", "uploads", "cors", "api", "__main__"):
        importlib.import_module(f"s3upload.{_module}")
finally:
    sys.dont_write_bytecode = _write_bytecode


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and no shared config, so nothing can fall through to a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        # The API never touches IAM; loading its managed policies costs seconds per test.
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "false",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    """moto for every AWS service, with the two upload buckets created."""
    from moto import mock_aws

    with mock_aws():
        import boto3

        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (BOOKS_BUCKET, IMAGES_BUCKET):
            s3.create_bucket(Bucket=bucket)
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    """An S3 client configured as the application configures its own."""
    import boto3
    from s3upload.services import BOTO_CONFIG

    return boto3.client("s3", region_name=REGION, config=BOTO_CONFIG)


@pytest.fixture
def db() -> Any:
    """A mongomock database seeded like the MongoDB instance's user data does."""
    database: Any = mongomock.MongoClient()["s3upload"]
    database["fileTypes"].insert_many([dict(ft) for ft in FILE_TYPES])
    database["origins"].insert_one({"origin": WEB_ORIGIN})
    database.create_collection("files")
    return database


@pytest.fixture
def settings() -> Any:
    from s3upload.settings import Settings

    return Settings(region=REGION, mongodb_host="mongo.invalid", revision="rev-test-42")


@pytest.fixture
def client(settings: Any, db: Any, s3: Any) -> Iterator[Any]:
    """An HTTP client for the API wired to mongomock and moto."""
    from fastapi.testclient import TestClient
    from s3upload.api import create_app
    from s3upload.services import Services

    app = create_app(settings, Services(db=db, s3=s3), hostname="test-host")
    with TestClient(app) as test_client:
        yield test_client
