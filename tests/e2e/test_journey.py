"""A new user's whole journey, in Chromium, clicking."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect

from generations.models import Generation
from tests.e2e.conftest import shoot
from tests.factories import PASSWORD


def sign_up(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/signup/")
    shoot(page, "signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator(".nav-user")).to_have_text(email)


def connect_openrouter(page: Page, base: str) -> None:
    page.goto(f"{base}/account/")
    shoot(page, "account-not-connected")
    page.click("text=Connect OpenRouter")
    expect(page.locator("button", has_text="Authorize")).to_be_visible()
    shoot(page, "sandbox-consent")
    page.click("button:has-text('Authorize')")
    expect(page.locator(".message.success")).to_contain_text("connected")


def test_sign_up_connect_and_see_credits(page: Page, stack: str) -> None:
    sign_up(page, stack, "journey@example.com")
    connect_openrouter(page, stack)
    page.goto(f"{stack}/account/")
    expect(page.locator("#credits")).to_have_attribute("data-loaded", "1")
    expect(page.locator("[data-field=limit_remaining]")).to_have_text("$10.00")
    shoot(page, "account-connected")
    page.click("nav >> text=Sign out")
    expect(page.locator("nav")).to_contain_text("Sign in")


def canvas_colours(page: Page, selector: str) -> int:
    """How many distinct colours the element shows: 1 or 2 for a blank canvas."""
    png = page.locator(selector).screenshot()
    image = Image.open(io.BytesIO(png)).convert("RGB").resize((64, 64))
    return len(set(image.get_flattened_data()))


def generate_and_view(page: Page, base: str) -> None:
    page.goto(f"{base}/generations/")
    shoot(page, "generations-empty")
    page.fill("textarea[name=prompt]", "a red donut")
    page.select_option("select[name=extension]", "ply")
    page.click("form button[type=submit]:has-text('Generate')")
    detail = page.locator(".generation-detail")
    # The state changes live, without a reload: we see it running, then succeeded.
    expect(detail).to_have_attribute("data-state", "running", timeout=15_000)
    url_while_running = page.url
    expect(detail).to_have_attribute("data-state", "succeeded", timeout=30_000)
    assert page.url == url_while_running
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true", timeout=20_000)
    page.wait_for_timeout(300)
    assert canvas_colours(page, "[data-viewer] canvas") > 20
    shoot(page, "generation-detail")

    generation = Generation.objects.get(prompt="a red donut")
    stored = generation.outputs.get(index=0)
    with page.expect_download() as download:
        page.locator(".downloads a").first.click()
    assert Path(download.value.path()).read_bytes() == stored.file.read()

    page.goto(f"{base}/generations/")
    expect(page.locator(f"[data-generation-id='{generation.pk}']")).to_have_attribute(
        "data-state", "succeeded"
    )
    shoot(page, "generations-gallery")


def test_generate_a_3d_object_watch_it_live_view_and_download_it(page: Page, stack: str) -> None:
    sign_up(page, stack, "maker@example.com")
    connect_openrouter(page, stack)
    generate_and_view(page, stack)
