"""The account and sign-in pages in Chromium, under the site's Content-Security-Policy."""

from __future__ import annotations

import re

from allauth.account.models import EmailAddress
from playwright.sync_api import Dialog, Page, expect

from tests.e2e.conftest import PHONE, shoot
from tests.factories import PASSWORD, connect_user, make_user


def sign_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".nav-user")).to_have_text(email)


def blocked_by_csp(page: Page) -> list[str]:
    return [line for line in page.console_log if "Content Security Policy" in line]  # type: ignore[attr-defined]


def fits(page: Page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_removing_an_email_address_asks_first_with_no_inline_script(page: Page, stack: str) -> None:
    user = make_user("ada@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/account/")
    page.click("text=Email addresses")
    page.fill("input[type=email][name=email]", "ada@work.example")
    page.click("button[name=action_add]")
    second = page.locator("label.email-choice", has_text="ada@work.example")
    expect(second).to_contain_text("Unverified")
    expect(page.locator("label.email-choice", has_text="ada@example.com")).to_contain_text(
        "Primary"
    )
    assert page.locator("script:not([src])").count() == 0
    shoot(page, "account-email")

    asked: list[str] = []

    def answer(accept: bool) -> None:
        def reply(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", reply)

    second.click()
    answer(accept=False)
    page.click("button[name=action_remove]")
    expect(second).to_be_visible()
    assert asked == ["Remove the chosen address from your account?"]
    assert EmailAddress.objects.filter(email="ada@work.example").exists()

    answer(accept=True)
    page.click("button[name=action_remove]")
    expect(page.locator(".message")).to_contain_text("ada@work.example")
    expect(second).to_have_count(0)
    assert len(asked) == 2
    assert not EmailAddress.objects.filter(email="ada@work.example").exists()
    # Making the other one primary asks nothing (only Remove carries the question).
    page.click("button[name=action_primary]")
    expect(page.locator(".message")).to_be_visible()
    assert len(asked) == 2
    assert not blocked_by_csp(page)


def test_the_credit_figures_read_the_same_fetched_or_rendered(page: Page, stack: str) -> None:
    user = connect_user(make_user("grace@example.com"))
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/account/")  # not cached yet: account.js fetches and writes them
    figures = page.locator("#credits .stat b")
    expect(page.locator("#credits")).to_have_attribute("data-loaded", "1")
    fetched = figures.all_inner_texts()
    page.reload()  # cached now: the server writes them with the money filter
    assert figures.all_inner_texts() == fetched
    assert fetched[:2] == ["$10.00", "$10.00"]  # the sandbox key's limit, nothing spent
    assert all(re.fullmatch(r"\$\d[\d,]*\.\d\d", figure) for figure in fetched)
    assert page.locator("#credits .stat span").all_inner_texts() == [
        "Left on this key",
        "Key limit",
        "Used today",
        "Used this week",
        "Used this month",
    ]
    shoot(page, "account-connected")
    for path in ["/account/", "/accounts/email/", "/accounts/password/change/"]:
        page.goto(f"{stack}{path}")
        page.set_viewport_size(PHONE)
        assert fits(page, PHONE["width"]), path
        page.set_viewport_size({"width": 1280, "height": 800})
        assert fits(page, 1280), path
    assert not blocked_by_csp(page)
