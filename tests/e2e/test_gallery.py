"""The 3D gallery in Chromium: how each state of a card looks."""

from __future__ import annotations

from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD, connect_user, make_user
from tests.generations.conftest import make_generation


def test_a_cancelled_card_is_drawn_quiet_like_a_failed_one(page: Page, stack: str) -> None:
    user = connect_user(make_user("gallery@example.com"))
    for state in ("failed", "cancelled", "running"):
        make_generation(user, state=state, outputs=0, prompt=state, started_at=timezone.now())
    page.goto(f"{stack}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{stack}/generations/")
    expect(page.locator(".generation-card")).to_have_count(3)

    def icon(state: str) -> str:
        card = page.locator(f'.generation-card[data-state="{state}"] .thumb-icon')
        return card.evaluate(
            "icon => `${getComputedStyle(icon).filter} ${getComputedStyle(icon).opacity}`"
        )

    assert icon("cancelled") == icon("failed") != icon("running")
