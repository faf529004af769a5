"""Data shared by the bundle tests: seeded file types, bucket names, minimal valid files."""

from __future__ import annotations

from typing import Any

REGION = "us-east-1"
BOOKS_BUCKET = "test-books-bucket"
IMAGES_BUCKET = "test-images-bucket"
WEB_ORIGIN = "http://web.example.test"

FILE_TYPES = [
    {
        "type": "book",
        "text": "Books",
        "help": "Books must be in PDF format. Max file size is 1MB.",
        "extensions": ["pdf"],
        "mimetypes": ["application/pdf"],
        "bucket": BOOKS_BUCKET,
        "path": "books",
    },
    {
        "type": "image",
        "text": "Images",
        "help": "Images must be in JPG, JPEG, PNG, or GIF format. Max file size is 1MB.",
        "extensions": ["jpg", "jpeg", "png", "gif"],
        "mimetypes": ["image/jpeg", "image/png", "image/gif"],
        "bucket": IMAGES_BUCKET,
        "path": "files/images",
    },
]

PDF = b"%PDF-1.4\n% a tiny test document\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def bucket_keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
