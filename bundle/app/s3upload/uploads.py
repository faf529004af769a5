"""Rules an upload must satisfy, as pure functions over a file type document and the file.

A file type is a document in the ``fileTypes`` collection, for example::

    {"type": "image", "text": "Images", "help": "JPG, PNG or GIF, at most 1 MB.",
     "extensions": ["jpg", "jpeg", "png", "gif"], "mimetypes": ["image/jpeg", "image/png", "image/gif"],
     "bucket": "<uploads bucket>", "path": "files/images", "maxBytes": 1048576}

``maxBytes`` is optional and defaults to 1 MiB, the limit of the original design.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_BYTES = 1024 * 1024

# Leading bytes of the formats the seeded file types accept. The declared MIME type comes from the
# client, so for these types we also check that the content really is what it claims to be; types
# not listed here are trusted on their declared MIME type alone.
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}


class UploadRejected(Exception):
    """An upload that breaks a rule; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class FileType:
    """The parts of a ``fileTypes`` document the API uses."""

    type: str
    text: str
    help: str
    extensions: tuple[str, ...]
    mimetypes: tuple[str, ...]
    bucket: str
    path: str
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> FileType:
        return cls(
            type=str(doc["type"]),
            text=str(doc.get("text", doc["type"])),
            help=str(doc.get("help", "")),
            extensions=tuple(str(e).lower().lstrip(".") for e in doc.get("extensions", [])),
            mimetypes=tuple(str(m).lower() for m in doc.get("mimetypes", [])),
            bucket=str(doc["bucket"]),
            path=str(doc.get("path", "")).strip("/"),
            max_bytes=int(doc.get("maxBytes", DEFAULT_MAX_BYTES)),
        )

    def public(self) -> dict[str, Any]:
        """What clients may see: no bucket names or key prefixes."""
        return {
            "type": self.type,
            "text": self.text,
            "help": self.help,
            "extensions": list(self.extensions),
            "mimetypes": list(self.mimetypes),
            "maxBytes": self.max_bytes,
        }


def extension_of(filename: str) -> str:
    """Lower-case extension without the dot; empty when there is none."""
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def safe_filename(filename: str) -> str:
    """A version of the client's file name that is safe inside an S3 key and a header."""
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned[:128] or "file"


def check_upload(file_type: FileType, filename: str, content_type: str, content: bytes) -> None:
    """Raise UploadRejected unless the file fits ``file_type``; the checks run cheapest first."""
    ext = extension_of(filename)
    if ext not in file_type.extensions:
        allowed = ", ".join(file_type.extensions)
        shown = f".{ext}" if ext else "no extension"
        raise UploadRejected(415, f"{file_type.text}: files with {shown} are not accepted (allowed: {allowed})")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime not in file_type.mimetypes:
        allowed = ", ".join(file_type.mimetypes)
        raise UploadRejected(
            415, f"{file_type.text}: MIME type {mime or '(none)'!s} is not accepted (allowed: {allowed})"
        )
    if not content:
        raise UploadRejected(400, "the file is empty")
    if len(content) > file_type.max_bytes:
        raise UploadRejected(
            413,
            f"{file_type.text}: the file is {len(content)} bytes, the limit is {file_type.max_bytes} bytes",
        )
    signatures = SIGNATURES.get(mime)
    if signatures and not content.startswith(signatures):
        raise UploadRejected(415, f"the file's content is not {mime}")
