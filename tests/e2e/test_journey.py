"""A new user's whole journey, in Chromium, clicking."""

from __future__ import annotations

from playwright.sync_api import Page, expect

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
