"""The real stack for browser tests: uvicorn, a Celery worker, Redis, PostgreSQL and a sandbox
that streams at a human pace, all on free ports; Debian's Chromium driven by Playwright.

Screenshots of every page visited with ``shoot`` land in ``tests/e2e/artifacts/`` (git-ignored)
at desktop and phone width; a failing test leaves a screenshot and the browser console there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from tests import services
from tests.factories import PASSWORD

# Playwright's sync API runs an event loop in this thread; the test code's ORM calls are still
# plain synchronous calls, so Django's async-safety guard is lifted for the browser tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).parent / "artifacts"
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
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash.setdefault(_failed, report.failed)  # type: ignore[arg-type]
    return report


_failed = pytest.StashKey[bool]()


@pytest.fixture(scope="package")
def stack(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """The whole product on free ports, using the test database; yields its base URL.

    It has a Redis of its own, so its worker never takes jobs queued by other tests.
    """
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # screenshots are of this run only
    redis, redis_url = services.start_redis()
    sandbox, sandbox_url = services.start_sandbox(token_delay=0.03, generation_delay=2.0)
    env = {**services.test_database_env(), "OPENROUTER_URL": sandbox_url, "REDIS_URL": redis_url}
    started = [redis, sandbox]
    try:
        worker = services.start_worker(env)
        started.append(worker)
        web, url = services.start_web(env)
        started.append(web)
        yield url
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    # Package scope: Playwright's sync API keeps an event loop running in this thread while it
    # is open, which would stop the async tests of later packages from running theirs.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def page(
    context: BrowserContext, request: pytest.FixtureRequest, transactional_db: None
) -> Generator[Page, None, None]:
    page = context.new_page()
    console: list[str] = []

    def remember(message: ConsoleMessage) -> None:
        console.append(f"[{message.type}] {message.text}")

    page.on("console", remember)
    page.on("pageerror", lambda error: console.append(f"[pageerror] {error}"))
    page.console_log = console  # type: ignore[attr-defined]
    yield page
    if request.node.stash.get(_failed, False):
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.name
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{name}.png"), full_page=True)
        (ARTIFACTS / f"FAILED-{name}.console.txt").write_text("\n".join(console))


def shoot(page: Page, name: str) -> None:
    """Screenshots of the current page at desktop and phone width."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size or DESKTOP
    page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(150)
    page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(size)


def sign_in(page: Page, base: str, email: str) -> None:
    """Signs in through the form, as a person would (a user made with tests.factories)."""
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    expect(page.locator(".nav-user")).to_have_text(email)
