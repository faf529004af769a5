"""The web page (bundle/web) in headless Chromium against the API running on 127.0.0.1.

The page is served by a local static server with a config.json, as `cdpoc up` serves it from the
web bucket; the API runs in uvicorn in this process on moto S3 and mongomock, with the page's
origin in the ``origins`` collection, so the browser's real CORS checks apply.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bundle_testdata import BOOKS_BUCKET, PDF, bucket_keys
from playwright.sync_api import expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WEB = Path(__file__).resolve().parents[2] / "bundle" / "web"
BANNER = "Problem accessing back-end"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)"
    ),
]


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def closed_port() -> int:
    """A port nothing listens on, for an API that is down."""
    with free_socket() as sock:
        return int(sock.getsockname()[1])


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The page served from a copy of bundle/web; write_config() sets its apiUrl."""
    root = tmp_path / "web"
    shutil.copytree(WEB, root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]

    def write_config(api_url: str) -> None:
        (root / "config.json").write_text(json.dumps({"apiUrl": api_url}))

    yield {
        "url": f"http://127.0.0.1:{port}/",
        "origin": f"http://127.0.0.1:{port}",
        "port": port,
        "write_config": write_config,
    }
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(site: dict[str, Any], settings: Any, db: Any, s3: Any) -> Iterator[str]:
    """The API on 127.0.0.1 (uvicorn in a thread), allowing the page's origin; yields its URL."""
    import uvicorn
    from s3upload.api import create_app
    from s3upload.services import Services

    db["origins"].insert_one({"origin": site["origin"]})
    app = create_app(settings, Services(db=db, s3=s3), hostname="browser-test")
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    site["write_config"](url + "/")  # a trailing slash, as an operator might write it
    yield url
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']")


def test_upload_list_and_delete_through_the_page(page: Any, site: dict[str, Any], api: str, s3: Any) -> None:
    open_page(page, site["url"])
    assert page.locator("#backend-error").is_hidden()
    assert page.locator("#filetype option").all_text_contents() == ["Books", "Images"]
    assert "PDF" in page.locator("#filetype-help").text_content()
    assert page.locator("#files-empty").is_visible()

    page.select_option("#filetype", "book")
    page.set_input_files("#file", {"name": "guide.pdf", "mimeType": "application/pdf", "buffer": PDF})
    page.click("#upload-button")

    expect(page.locator("#upload-status")).to_have_text("Uploaded guide.pdf")
    row = page.locator("#files tbody tr")
    expect(row).to_have_count(1)
    assert row.locator("a").text_content() == "guide.pdf"
    assert "X-Amz-Signature=" in row.locator("a").get_attribute("href")
    (key,) = bucket_keys(s3, BOOKS_BUCKET)
    assert key.endswith("/guide.pdf")

    row.locator("button.delete").click()
    expect(page.locator("#upload-status")).to_have_text("Deleted guide.pdf")
    expect(page.locator("#files tbody tr")).to_have_count(0)
    expect(page.locator("#files-empty")).to_be_visible()
    assert bucket_keys(s3, BOOKS_BUCKET) == []


def test_page_shows_the_api_reason_for_a_refused_upload(page: Any, site: dict[str, Any], api: str) -> None:
    open_page(page, site["url"])

    page.select_option("#filetype", "image")
    page.set_input_files("#file", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
    page.click("#upload-button")

    expect(page.locator("#upload-status.error")).to_contain_text(
        "Upload failed: Images: files with .txt are not accepted"
    )
    assert page.locator("#backend-error").is_hidden()


def test_page_says_problem_accessing_back_end_when_the_api_is_down(page: Any, site: dict[str, Any]) -> None:
    site["write_config"](f"http://127.0.0.1:{closed_port()}")

    open_page(page, site["url"])

    expect(page.locator("#backend-error")).to_be_visible()
    expect(page.locator("#backend-error")).to_have_text(BANNER)


def test_page_says_problem_accessing_back_end_when_cors_refuses_its_origin(
    page: Any, site: dict[str, Any], api: str
) -> None:
    # Same server, but "localhost" is a different origin from the "127.0.0.1" in the origins list.
    open_page(page, f"http://localhost:{site['port']}/")

    expect(page.locator("#backend-error")).to_be_visible()
    expect(page.locator("#backend-error")).to_have_text(BANNER)
