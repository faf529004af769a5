"""Spec of the website's content: the bundle's files in the web bucket, and a config.json naming the API.

Nothing is force_new: an object is replaced by uploading it again, and removed by deleting it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cdpoc.spec import Ref, Spec


@dataclass(frozen=True)
class WebFile:
    """One of the bundle's files: its object key, content type and MD5 (what S3 reports as its ETag)."""

    key: str
    content_type: str
    md5: str


@dataclass(frozen=True)
class SiteContentSpec(Spec):
    """The web bucket holds exactly `files` plus config.json, whose apiUrl is the load balancer's address."""

    kind: ClassVar[str] = "site_content"
    bucket: Ref
    files: tuple[WebFile, ...]
    api: Ref  # the load balancer's dns_name
