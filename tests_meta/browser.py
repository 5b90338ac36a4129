"""Helpers for the report's browser tests: Debian's chromium through Playwright, and a reports
folder served on loopback, with Jenkins' default Content-Security-Policy when asked."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Jenkins' default for archived HTML (hudson.model.DirectoryBrowserSupport.CSP).
JENKINS_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"
VIEWPORT = {"width": 1366, "height": 768}
REPO = Path(__file__).resolve().parents[1]


def screenshots_dir() -> Path:
    folder = Path(os.environ.get("OPSCHECK_SCREENSHOTS") or REPO / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def chromium() -> Iterator[Any]:
    """One headless Debian chromium (never a downloaded browser)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"no {CHROMIUM}: run `make setup` (scripts/setup-system.sh installs chromium)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class _Handler(SimpleHTTPRequestHandler):
    csp = False

    def end_headers(self) -> None:
        if self.csp:
            self.send_header("Content-Security-Policy", JENKINS_CSP)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(root: Path, csp: bool = False) -> Iterator[str]:
    """``root`` over HTTP on 127.0.0.1: the base URL (``http://127.0.0.1:PORT/``)."""
    handler = type("Handler", (_Handler,), {"csp": csp})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
