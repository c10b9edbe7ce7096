"""The pages' scripts' pure functions, run in Chromium as the pages run them.

The browser loads the modules straight from ``static/`` (Playwright answers their requests from
the files), so these checks need no server.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from playwright.sync_api import Browser, Route

from tests.generations.test_durations import WORDS

STATIC = Path(__file__).resolve().parents[2] / "static"
ORIGIN = "http://scripts.test"


def _from_static(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN + "/")
    file = STATIC / path
    if path == "" or not file.is_file():
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>t</title>")
        return
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    route.fulfill(status=200, content_type=content_type, body=file.read_bytes())


def test_live_js_says_durations_as_the_server_does(browser: Browser) -> None:
    """live.js writes the durations of events and the ticking "running for …" itself."""
    page = browser.new_page()
    try:
        page.route(f"{ORIGIN}/**", _from_static)
        page.goto(f"{ORIGIN}/")
        said = page.evaluate(
            """async (seconds) => {
                const { formatDuration } = await import("/js/generations/live.js");
                return seconds.map(formatDuration);
            }""",
            [seconds for seconds, _ in WORDS],
        )
    finally:
        page.close()
    assert said == [words for _, words in WORDS]
