"""The pages' scripts' pure functions, run in Chromium as the pages run them.

The browser loads the modules straight from ``static/`` (Playwright answers their requests from
the files), so these checks need no server.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from playwright.sync_api import Browser, Route

from accounts.templatetags.money import money
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


def _run(browser: Browser, script: str, argument: object) -> object:
    """``script`` (an async function of ``argument``) evaluated in a page of the static origin."""
    page = browser.new_page()
    try:
        page.route(f"{ORIGIN}/**", _from_static)
        page.goto(f"{ORIGIN}/")
        return page.evaluate(script, argument)
    finally:
        page.close()


def test_live_js_says_durations_as_the_server_does(browser: Browser) -> None:
    """live.js writes the durations of events and the ticking "running for …" itself."""
    said = _run(
        browser,
        """async (seconds) => {
            const { formatDuration } = await import("/js/generations/live.js");
            return seconds.map(formatDuration);
        }""",
        [seconds for seconds, _ in WORDS],
    )
    assert said == [words for _, words in WORDS]


def test_money_js_writes_dollars_as_the_server_does(browser: Browser) -> None:
    """money.js writes the costs of live answers and the Account page's fetched figures."""
    amounts = [4.2, 1234.5, 1234567.891, 0.42, 0.995, 0, 0.0031, 0.00314159, 0.005, 0.0000123]
    amounts += [1e-9, -1.5, 0.0123, 0.000004, 265.5]
    said = _run(
        browser,
        """async (amounts) => {
            const { money } = await import("/js/money.js");
            return amounts.map(money);
        }""",
        amounts,
    )
    assert said == [money(amount) for amount in amounts]
