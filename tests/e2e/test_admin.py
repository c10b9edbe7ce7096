"""Staff pages in Chromium."""

from __future__ import annotations

from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD, make_user


def test_the_users_list_fits_a_1280_px_window(page: Page, stack: str) -> None:
    make_user("staff@example.com", is_staff=True, is_superuser=True)
    for number in range(3):
        make_user(
            f"firstname.lastname.department{number}@a-long-company-domain.example",
            last_login=timezone.now(),
        )
    page.goto(f"{stack}/admin/login/")
    page.fill("input[name=username]", "staff@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{stack}/admin/accounts/user/")
    expect(page.locator("#result_list tbody tr")).to_have_count(4)
    assert page.viewport_size and page.viewport_size["width"] == 1280
    results = page.locator(".results")  # the admin scrolls this box sideways when too wide
    assert results.evaluate("box => box.scrollWidth <= box.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert [header.strip().lower() for header in headers[1:]] == [
        "email address",
        "openrouter",
        "staff",
        "active",
        "joined",
        "last sign-in",
    ]
