"""The HTTP API: routes, upload handling and the JSON error format.

Every error answer is ``{"error": "<what went wrong>"}`` with a 4xx status for a bad request and a
5xx status when MongoDB or S3 fails. An upload that is rejected stores nothing; an upload whose
database record cannot be written has its S3 object removed again.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from bson import ObjectId
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pymongo.errors import PyMongoError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from .cors import DatabaseCORSMiddleware, OriginRegistry
from .services import Services
from .settings import Settings
from .uploads import FileType, UploadRejected, check_upload, safe_filename

log = logging.getLogger(__name__)

# Room for the multipart boundaries, part headers and the "type" field around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(settings: Settings, services: Services, hostname: str | None = None) -> FastAPI:
    """Build the API for ``settings`` on top of ``services``; reads the CORS origins now."""
    hostname = hostname or socket.gethostname()
    db = services.db
    registry = OriginRegistry(db["origins"])
    registry.load()

    app = FastAPI(title="s3upload", version=settings.revision, docs_url=None, redoc_url=None)
    app.add_middleware(DatabaseCORSMiddleware, registry=registry)
    _install_error_handlers(app)

    def file_types() -> dict[str, FileType]:
        return {ft.type: ft for ft in map(FileType.from_document, db["fileTypes"].find({}, {"_id": 0}))}

    @app.get("/", response_class=PlainTextResponse)
    def hello() -> str:
        return f"Hello from s3upload, revision {settings.revision}, on {hostname}\n"

    @app.get("/health")
    def health() -> JSONResponse:
        try:
            db.command("ping")
        except PyMongoError as exc:
            log.warning("health check: MongoDB did not answer: %s", exc)
            body = {"status": "unhealthy", "data": "Database connection is not healthy"}
            return JSONResponse({**body, "revision": settings.revision}, status_code=503)
        body = {"status": "healthy", "data": "Database connection is healthy"}
        return JSONResponse({**body, "revision": settings.revision})

    @app.get("/filetypes")
    def list_file_types() -> list[dict[str, Any]]:
        return [ft.public() for ft in file_types().values()]

    @app.post("/upload", status_code=201)
    async def upload(request: Request) -> JSONResponse:
        types = await run_in_threadpool(file_types)
        limit = max((ft.max_bytes for ft in types.values()), default=0) + MULTIPART_OVERHEAD
        form = await _parse_upload_form(request, limit)
        try:
            file_type, upload_file, content = await _validated_upload(form, types)
        finally:
            await form.close()
        record = await run_in_threadpool(
            _store, services, file_type, upload_file.filename or "", upload_file.content_type or "", content
        )
        log.info(
            "stored %s (%d bytes) as s3://%s/%s",
            record["name"],
            record["size"],
            file_type.bucket,
            record["key"],
        )
        return JSONResponse(_public_record(record), status_code=201)

    @app.get("/files")
    def list_files() -> list[dict[str, Any]]:
        records = db["files"].find().sort("uploadedAt", -1).limit(1000)
        return [_public_record(r, url=_download_url(services.s3, r, settings.presign_seconds)) for r in records]

    @app.delete("/files/{file_id}")
    def delete_file(file_id: str) -> JSONResponse:
        record = db["files"].find_one({"_id": ObjectId(file_id)}) if ObjectId.is_valid(file_id) else None
        if record is None:
            return error(404, f"no file with id {file_id!r}")
        # Object first: if S3 fails the record still points at an object that exists, and a retry
        # of the delete is safe because deleting a missing S3 key succeeds.
        services.s3.delete_object(Bucket=record["bucket"], Key=record["key"])
        db["files"].delete_one({"_id": record["_id"]})
        log.info("deleted %s (s3://%s/%s)", file_id, record["bucket"], record["key"])
        return JSONResponse({"deleted": file_id})

    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Answer every error as ``{"error": ...}`` so clients have one format to read."""

    @app.exception_handler(UploadRejected)
    async def rejected(_: Request, exc: UploadRejected) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return error(422, f"invalid request: {problems}")

    # These are registered by class (not as 500 handlers) so they run inside the CORS middleware
    # and the browser can read the message.
    @app.exception_handler(PyMongoError)
    async def database_down(_: Request, exc: PyMongoError) -> JSONResponse:
        log.error("MongoDB request failed: %s", exc)
        return error(503, "the database is not available")

    @app.exception_handler(ClientError)
    @app.exception_handler(BotoCoreError)
    async def storage_failed(_: Request, exc: Exception) -> JSONResponse:
        log.error("S3 request failed: %s", exc)
        return error(502, "the file store (S3) request failed")


async def _bounded(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    """Pass the request body through, refusing it once it exceeds ``limit`` bytes.

    This is what stops a client that sends no Content-Length (chunked) from filling the disk.
    """
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise UploadRejected(413, f"the request is larger than {limit} bytes")
        yield chunk


async def _parse_upload_form(request: Request, limit: int) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UploadRejected(415, "send multipart/form-data with the fields 'type' and 'file'")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadRejected(413, f"the request is larger than {limit} bytes")
    parser = MultiPartParser(request.headers, _bounded(request.stream(), limit), max_files=1, max_fields=4)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise UploadRejected(400, f"malformed multipart body: {exc.message}") from None


async def _validated_upload(form: FormData, types: dict[str, FileType]) -> tuple[FileType, UploadFile, bytes]:
    type_name = form.get("type")
    upload_file = form.get("file")
    if not isinstance(type_name, str) or not type_name.strip():
        raise UploadRejected(400, "missing form field 'type'")
    if not isinstance(upload_file, UploadFile) or not upload_file.filename:
        raise UploadRejected(400, "missing form field 'file' (a file)")
    file_type = types.get(type_name.strip())
    if file_type is None:
        known = ", ".join(sorted(types)) or "none are configured"
        raise UploadRejected(400, f"unknown file type {type_name!r} (known: {known})")
    content = await upload_file.read()
    check_upload(file_type, upload_file.filename, upload_file.content_type or "", content)
    return file_type, upload_file, content


def _store(services: Services, file_type: FileType, filename: str, content_type: str, content: bytes) -> dict[str, Any]:
    file_id = ObjectId()
    name = safe_filename(filename)
    key = "/".join(part for part in (file_type.path, str(file_id), name) if part)
    mime = content_type.split(";", 1)[0].strip().lower()
    services.s3.put_object(Bucket=file_type.bucket, Key=key, Body=content, ContentType=mime)
    record = {
        "_id": file_id,
        "type": file_type.type,
        "name": filename,
        "bucket": file_type.bucket,
        "key": key,
        "size": len(content),
        "contentType": mime,
        "uploadedAt": datetime.now(UTC),
    }
    try:
        services.db["files"].insert_one(record)
    except PyMongoError:
        # Without a record nobody could list or delete the object: take it away again.
        services.s3.delete_object(Bucket=file_type.bucket, Key=key)
        raise
    return record


def _download_url(s3: Any, record: dict[str, Any], expires: int) -> str:
    disposition = f'attachment; filename="{safe_filename(str(record.get("name", "file")))}"'
    params = {"Bucket": record["bucket"], "Key": record["key"], "ResponseContentDisposition": disposition}
    return str(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires))


def _public_record(record: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    uploaded = record.get("uploadedAt")
    public: dict[str, Any] = {
        "id": str(record["_id"]),
        "type": record.get("type"),
        "name": record.get("name"),
        "size": record.get("size"),
        "contentType": record.get("contentType"),
        "uploadedAt": uploaded.isoformat() if isinstance(uploaded, datetime) else uploaded,
    }
    if url is not None:
        public["url"] = url
    return public
