"""Behaviour of the s3upload API (bundle/app) on moto S3 and mongomock: every route, CORS, and
every way an upload can be refused without storing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from bundle_testdata import BOOKS_BUCKET, IMAGES_BUCKET, PDF, PNG, REGION, WEB_ORIGIN, bucket_keys
from pymongo import MongoClient
from pymongo.errors import PyMongoError

MiB = 1024 * 1024


def upload(client: Any, file_type: str, name: str, content: bytes, mime: str) -> Any:
    return client.post("/upload", data={"type": file_type}, files={"file": (name, content, mime)})


def assert_nothing_stored(db: Any, s3: Any) -> None:
    assert db["files"].count_documents({}) == 0
    assert bucket_keys(s3, BOOKS_BUCKET) == []
    assert bucket_keys(s3, IMAGES_BUCKET) == []


@pytest.fixture
def unreachable_db() -> Any:
    """A real pymongo database on a port nobody listens on: every operation fails fast."""
    client: Any = MongoClient("127.0.0.1", 1, serverSelectionTimeoutMS=100, connectTimeoutMS=100)
    yield client["s3upload"]
    client.close()


def make_client(settings: Any, db: Any, s3: Any) -> Any:
    from fastapi.testclient import TestClient
    from s3upload.api import create_app
    from s3upload.services import Services

    return TestClient(create_app(settings, Services(db=db, s3=s3), hostname="test-host"))


# --- simple routes -------------------------------------------------------------------------------


def test_hello_names_the_revision_and_host(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "rev-test-42" in response.text
    assert "test-host" in response.text


def test_health_is_200_json_when_mongodb_answers(client: Any) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    assert response.json()["revision"] == "rev-test-42"


def test_health_is_503_json_when_mongodb_does_not_answer(settings: Any, unreachable_db: Any, s3: Any) -> None:
    # Also proves the service starts while MongoDB is down (the CORS origins cannot be read).
    with make_client(settings, unreachable_db, s3) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == "unhealthy"


def test_filetypes_come_from_the_collection_without_bucket_names(client: Any) -> None:
    response = client.get("/filetypes")
    assert response.status_code == 200
    types = {ft["type"]: ft for ft in response.json()}
    assert set(types) == {"book", "image"}
    assert types["image"]["extensions"] == ["jpg", "jpeg", "png", "gif"]
    assert types["book"]["maxBytes"] == MiB
    assert all("bucket" not in ft and "path" not in ft for ft in types.values())


def test_unknown_route_is_a_json_404(client: Any) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert "error" in response.json()


# --- uploads -------------------------------------------------------------------------------------


def test_upload_stores_object_under_type_path_and_a_record(client: Any, db: Any, s3: Any) -> None:
    response = upload(client, "book", "Moby Dick.pdf", PDF, "application/pdf")

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Moby Dick.pdf"
    assert body["type"] == "book"
    assert body["size"] == len(PDF)
    keys = bucket_keys(s3, BOOKS_BUCKET)
    assert keys == [f"books/{body['id']}/Moby_Dick.pdf"]
    stored = s3.get_object(Bucket=BOOKS_BUCKET, Key=keys[0])
    assert stored["Body"].read() == PDF
    assert stored["ContentType"] == "application/pdf"
    record = db["files"].find_one()
    assert str(record["_id"]) == body["id"]
    assert record["bucket"] == BOOKS_BUCKET
    assert record["key"] == keys[0]


def test_upload_of_an_image_goes_to_the_image_bucket(client: Any, s3: Any) -> None:
    response = upload(client, "image", "cat.PNG", PNG, "image/png")
    assert response.status_code == 201
    assert bucket_keys(s3, IMAGES_BUCKET)[0].startswith("files/images/")
    assert bucket_keys(s3, BOOKS_BUCKET) == []


def test_upload_key_cannot_escape_the_type_path(client: Any, s3: Any) -> None:
    response = upload(client, "book", "../../etc/passwd.pdf", PDF, "application/pdf")
    assert response.status_code == 201
    (key,) = bucket_keys(s3, BOOKS_BUCKET)
    assert key == f"books/{response.json()['id']}/passwd.pdf"


BAD_UPLOADS: dict[str, tuple[dict[str, Any], int, str]] = {
    "wrong extension": (
        {"data": {"type": "book"}, "files": {"file": ("notes.txt", PDF, "application/pdf")}},
        415,
        ".txt",
    ),
    "no extension": (
        {"data": {"type": "book"}, "files": {"file": ("README", PDF, "application/pdf")}},
        415,
        "no extension",
    ),
    "wrong MIME type": (
        {"data": {"type": "book"}, "files": {"file": ("book.pdf", PDF, "text/plain")}},
        415,
        "MIME type text/plain",
    ),
    "content is not what the MIME type says": (
        {"data": {"type": "image"}, "files": {"file": ("cat.png", PDF, "image/png")}},
        415,
        "not image/png",
    ),
    "one byte over 1 MB": (
        {
            "data": {"type": "book"},
            "files": {"file": ("big.pdf", PDF + b"x" * (MiB - len(PDF) + 1), "application/pdf")},
        },
        413,
        "limit is 1048576 bytes",
    ),
    "far over 1 MB": (
        {"data": {"type": "book"}, "files": {"file": ("huge.pdf", PDF + b"x" * (3 * MiB), "application/pdf")}},
        413,
        "larger than",
    ),
    "empty file": (
        {"data": {"type": "book"}, "files": {"file": ("empty.pdf", b"", "application/pdf")}},
        400,
        "empty",
    ),
    "missing type": (
        {"files": {"file": ("book.pdf", PDF, "application/pdf")}},
        400,
        "'type'",
    ),
    "missing file": (
        {"data": {"type": "book"}, "files": {"other": ("book.pdf", PDF, "application/pdf")}},
        400,
        "'file'",
    ),
    "file sent as text": (
        {"data": {"type": "book", "file": "book.pdf"}, "files": {"other": ("x.pdf", PDF, "application/pdf")}},
        400,
        "'file'",
    ),
    "unknown type": (
        {"data": {"type": "video"}, "files": {"file": ("clip.pdf", PDF, "application/pdf")}},
        400,
        "unknown file type 'video'",
    ),
    "two files": (
        {
            "data": {"type": "book"},
            "files": [("file", ("a.pdf", PDF, "application/pdf")), ("file", ("b.pdf", PDF, "application/pdf"))],
        },
        400,
        "Too many files",
    ),
    "not multipart": (
        {"json": {"type": "book", "file": "x"}},
        415,
        "multipart/form-data",
    ),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_is_refused_with_json_and_stores_nothing(client: Any, db: Any, s3: Any, case: str) -> None:
    request, status, fragment = BAD_UPLOADS[case]

    response = client.post("/upload", **request)

    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert_nothing_stored(db, s3)


def test_chunked_upload_without_length_is_cut_off_at_the_limit(client: Any, db: Any, s3: Any) -> None:
    boundary = "cdpoc-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nbook\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()

    def body() -> Any:
        yield head + PDF
        for _ in range(4):
            yield b"x" * MiB
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/upload", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )

    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    assert_nothing_stored(db, s3)


def test_size_limit_is_per_file_type(client: Any, db: Any, s3: Any) -> None:
    db["fileTypes"].insert_one(
        {
            "type": "note",
            "text": "Notes",
            "extensions": ["pdf"],
            "mimetypes": ["application/pdf"],
            "bucket": BOOKS_BUCKET,
            "path": "notes",
            "maxBytes": len(PDF) - 1,
        }
    )
    assert upload(client, "note", "n.pdf", PDF, "application/pdf").status_code == 413
    assert upload(client, "book", "n.pdf", PDF, "application/pdf").status_code == 201


def test_upload_to_a_missing_bucket_is_a_json_502_and_leaves_no_record(client: Any, db: Any) -> None:
    db["fileTypes"].update_one({"type": "book"}, {"$set": {"bucket": "no-such-bucket-here"}})
    response = upload(client, "book", "b.pdf", PDF, "application/pdf")
    assert response.status_code == 502
    assert "S3" in response.json()["error"]
    assert db["files"].count_documents({}) == 0


def test_object_is_removed_again_when_the_record_cannot_be_written(
    client: Any, db: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mongomock.collection import Collection

    def refuse(*_: Any, **__: Any) -> None:
        raise PyMongoError("primary stepped down")

    monkeypatch.setattr(Collection, "insert_one", refuse)
    response = upload(client, "book", "b.pdf", PDF, "application/pdf")
    assert response.status_code == 503
    assert response.json() == {"error": "the database is not available"}
    assert bucket_keys(s3, BOOKS_BUCKET) == []


def test_upload_while_mongodb_is_down_is_a_json_503(settings: Any, unreachable_db: Any, s3: Any) -> None:
    with make_client(settings, unreachable_db, s3) as client:
        response = upload(client, "book", "b.pdf", PDF, "application/pdf")
    assert response.status_code == 503
    assert bucket_keys(s3, BOOKS_BUCKET) == []


# --- listing and deleting ------------------------------------------------------------------------


def test_files_lists_newest_first_with_working_presigned_urls(client: Any) -> None:
    first = upload(client, "book", "first.pdf", PDF, "application/pdf").json()
    second = upload(client, "image", "second.png", PNG, "image/png").json()

    response = client.get("/files")

    assert response.status_code == 200
    files = response.json()
    assert [f["id"] for f in files] == [second["id"], first["id"]]
    url = files[1]["url"]
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=900" in url
    # moto answers presigned URLs fetched with requests, so this checks the link really works.
    download = requests.get(url, timeout=10)
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-disposition"] == 'attachment; filename="first.pdf"'


def test_files_is_empty_list_at_first(client: Any) -> None:
    assert client.get("/files").json() == []


def test_delete_removes_object_and_record(client: Any, db: Any, s3: Any) -> None:
    file_id = upload(client, "book", "b.pdf", PDF, "application/pdf").json()["id"]

    response = client.delete(f"/files/{file_id}")

    assert response.status_code == 200
    assert response.json() == {"deleted": file_id}
    assert_nothing_stored(db, s3)
    assert client.get("/files").json() == []


@pytest.mark.parametrize("file_id", ["0123456789abcdef01234567", "not-an-object-id"])
def test_delete_of_unknown_file_is_a_json_404(client: Any, file_id: str) -> None:
    response = client.delete(f"/files/{file_id}")
    assert response.status_code == 404
    assert file_id in response.json()["error"]


def test_delete_twice_is_404_the_second_time(client: Any) -> None:
    file_id = upload(client, "book", "b.pdf", PDF, "application/pdf").json()["id"]
    assert client.delete(f"/files/{file_id}").status_code == 200
    assert client.delete(f"/files/{file_id}").status_code == 404


# --- CORS ----------------------------------------------------------------------------------------


def test_preflight_from_a_listed_origin_allows_the_methods_with_credentials(client: Any) -> None:
    response = client.options(
        "/files/abc",
        headers={"Origin": WEB_ORIGIN, "Access-Control-Request-Method": "DELETE"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == WEB_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "PUT", "POST", "DELETE"}


def test_preflight_from_another_origin_is_refused(client: Any) -> None:
    response = client.options(
        "/files", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_error_answers_carry_cors_headers_so_the_page_can_read_them(client: Any) -> None:
    response = client.post(
        "/upload",
        data={"type": "video"},
        files={"file": ("x.pdf", PDF, "application/pdf")},
        headers={"Origin": WEB_ORIGIN},
    )
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == WEB_ORIGIN


def test_origins_are_read_again_when_mongodb_was_down_at_start() -> None:
    from s3upload.cors import OriginRegistry

    class FlakyOrigins:
        def __init__(self) -> None:
            self.up = False

        def find(self, *_: Any) -> list[dict[str, str]]:
            if not self.up:
                raise PyMongoError("no server")
            return [{"origin": WEB_ORIGIN + "/"}]

    now = [0.0]
    collection = FlakyOrigins()
    registry = OriginRegistry(collection, retry_seconds=30, clock=lambda: now[0])
    assert registry.load() is False
    collection.up = True
    assert registry.allows(WEB_ORIGIN) is False  # too soon to retry
    now[0] = 31.0
    assert registry.allows(WEB_ORIGIN) is True
    assert registry.allows("http://other.example") is False


# --- settings, services, packaging ---------------------------------------------------------------


def test_settings_come_from_the_environment_written_by_after_install() -> None:
    from s3upload.settings import Settings

    settings = Settings.from_env(
        {
            "AWS_REGION": "eu-west-1",
            "MONGODB_HOST": "10.0.5.10",
            "MONGODB_PASSWORD_PARAM": "/demo/mongodb/app-password",
            "APP_REVISION": "abc123 d-XYZ",
            "APP_PORT": "8080",
        }
    )
    assert (settings.region, settings.mongodb_host, settings.port) == ("eu-west-1", "10.0.5.10", 8080)
    assert (settings.mongodb_db, settings.mongodb_user) == ("s3upload", "s3upload")
    assert settings.mongodb_password_param == "/demo/mongodb/app-password"
    assert settings.revision == "abc123 d-XYZ"


def test_settings_name_every_missing_variable() -> None:
    from s3upload.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="AWS_REGION, MONGODB_HOST"):
        Settings.from_env({})
    with pytest.raises(SettingsError, match="APP_PORT"):
        Settings.from_env({"AWS_REGION": "x", "MONGODB_HOST": "y", "APP_PORT": "eighty"})


def test_connect_reads_the_password_from_ssm_and_authenticates_with_it(aws: None) -> None:
    import boto3
    from s3upload.services import connect
    from s3upload.settings import Settings

    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/demo/mongodb/app-password", Value="s3cr3t-from-ssm", Type="SecureString"
    )
    settings = Settings(region=REGION, mongodb_host="10.0.5.10", mongodb_password_param="/demo/mongodb/app-password")

    services = connect(settings)
    try:
        credentials = services.db.client.options.pool_options._credentials
        assert (credentials.username, credentials.password) == ("s3upload", "s3cr3t-from-ssm")
        assert credentials.source == "s3upload"
        assert services.db.name == "s3upload"
    finally:
        services.db.client.close()


def test_requirements_pin_exactly_the_versions_the_tests_run() -> None:
    from importlib.metadata import version

    pins = {}
    app_dir = Path(__file__).resolve().parents[2] / "bundle" / "app"
    for line in (app_dir / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, pinned = line.partition("==")
            assert sep, f"not pinned: {line}"
            pins[name] = pinned
    assert {"fastapi", "uvicorn", "python-multipart", "pymongo", "boto3"} <= set(pins)
    mismatched = {name: (pinned, version(name)) for name, pinned in pins.items() if version(name) != pinned}
    assert mismatched == {}


def test_logging_reaches_the_log_file(tmp_path: Any) -> None:
    import logging

    from s3upload.__main__ import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    log_file = tmp_path / "app.log"
    try:
        configure_logging(str(log_file))
        logging.getLogger("uvicorn.access").info("GET /health 200")
    finally:
        for handler in root.handlers[:]:
            if handler not in saved[0]:
                handler.close()
                root.removeHandler(handler)
        root.setLevel(saved[1])
    assert "GET /health 200" in log_file.read_text()


def test_main_refuses_to_start_without_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from s3upload.__main__ import main

    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("MONGODB_HOST", raising=False)
    assert main() == 2
