"""The static website: the bundle's web page, uploaded to the web bucket with a config.json naming the API.

The page reads the API address from config.json at run time, so the same files serve every stack.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cdpoc.model import Resource
from cdpoc.spec import Ref
from cdpoc.spec import declare as declare_resource
from cdpoc.stack.names import StackNames
from cdpoc.stack.parts import LOAD_BALANCER, SITE_BUCKET
from cdpoc.stack.specs.site import SiteContentSpec, WebFile

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
CONFIG_KEY = "config.json"


def web_dir() -> Path:
    """bundle/web: inside an installed package (cdpoc/bundled, see pyproject.toml), or beside it in a checkout."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "bundled" / "web"
    return installed if installed.is_dir() else package.parent / "bundle" / "web"


def web_files() -> tuple[WebFile, ...]:
    """The page's files: key, content type, MD5."""
    files = []
    for entry in sorted(web_dir().iterdir(), key=lambda e: e.name):
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if not entry.is_file() or suffix not in CONTENT_TYPES or entry.name == CONFIG_KEY:
            continue
        files.append(
            WebFile(
                entry.name, CONTENT_TYPES[suffix], hashlib.md5(entry.read_bytes(), usedforsecurity=False).hexdigest()
            )
        )
    return tuple(files)


def web_file_bytes(key: str) -> bytes:
    return (web_dir() / key).read_bytes()


def config_json(alb_dns_name: str) -> bytes:
    return json.dumps({"apiUrl": f"http://{alb_dns_name}"}, indent=2).encode() + b"\n"


def declare(names: StackNames) -> list[Resource]:
    return [
        declare_resource(
            "site.web",
            names.bucket("web"),
            SiteContentSpec(Ref(SITE_BUCKET.key), web_files(), Ref(LOAD_BALANCER.key, "dns_name")),
        )
    ]
