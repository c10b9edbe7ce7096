"""The account and sign-in pages in Chromium, under the site's Content-Security-Policy."""

from __future__ import annotations

import re

from allauth.account.models import EmailAddress
from playwright.sync_api import Dialog, Page, expect

from tests.e2e.conftest import PHONE, shoot, sign_in
from tests.factories import PASSWORD, connect_user, make_user


def blocked_by_csp(page: Page) -> list[str]:
    return [line for line in page.console_log if "Content Security Policy" in line]  # type: ignore[attr-defined]


def fits(page: Page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_removing_an_email_address_asks_about_that_address_with_no_inline_script(
    page: Page, stack: str
) -> None:
    user = make_user("ada@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/account/")
    page.click("text=Email addresses")
    expect(page.locator(".nav a[aria-current=page]")).to_have_text("Account")
    page.fill("input[type=email][name=email]", "ada@work.example")
    page.click("button[name=action_add]")
    second = page.locator("form.email-choice", has_text="ada@work.example")
    primary = page.locator("form.email-choice", has_text="ada@example.com")
    expect(second).to_contain_text("Unverified")
    expect(primary).to_contain_text("Primary")
    expect(primary.locator("button")).to_have_count(0)  # nothing it could do (allauth refused)
    assert page.locator("script:not([src])").count() == 0
    shoot(page, "account-email")

    asked: list[str] = []

    def answer(accept: bool) -> None:
        def reply(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", reply)

    answer(accept=False)
    second.locator("button[name=action_remove]").click()
    expect(second).to_be_visible()
    assert asked == ["Remove ada@work.example from your account?"]
    assert EmailAddress.objects.filter(email="ada@work.example").exists()

    answer(accept=True)
    second.locator("button[name=action_remove]").click()
    expect(page.locator(".message")).to_contain_text("ada@work.example")
    expect(second).to_have_count(0)
    assert len(asked) == 2
    assert not EmailAddress.objects.filter(email="ada@work.example").exists()
    page.click(".message .message-close")
    expect(page.locator(".message")).to_have_count(0)
    page.click("text=← Account")
    expect(page).to_have_url(f"{stack}/account/")
    assert not blocked_by_csp(page)


def test_after_sign_up_one_message_floats_over_the_chat_and_goes_by_itself(
    page: Page, stack: str
) -> None:
    page.clock.install()  # the message's own timer, run forward below instead of waited for
    page.goto(f"{stack}/accounts/signup/")
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("main button[type=submit]")
    message = page.locator(".messages .message")
    expect(message).to_have_text("Confirmation email sent to ada@example.com.")
    expect(message.locator("button.message-close")).to_have_attribute("aria-label", "Close")
    # Over the chat, not pushing it down: the chat starts where the top bar ends.
    bar = page.locator(".topbar").bounding_box()
    chat = page.locator(".chat-main").bounding_box()
    assert bar and chat and chat["y"] == bar["y"] + bar["height"]
    shoot(page, "after-sign-up")
    page.clock.run_for(10_000)
    expect(message).to_have_count(0)


def test_a_jump_to_a_card_of_the_account_page_shows_it_below_the_top_bar(
    page: Page, stack: str
) -> None:
    user = connect_user(make_user("grace@example.com"))
    sign_in(page, stack, user.email)
    page.set_viewport_size({"width": 1280, "height": 500})  # short enough to scroll to the card
    page.goto(f"{stack}/account/#paste-key")
    bar = page.locator(".topbar").bounding_box()
    card = page.locator("#paste-key").bounding_box()
    assert bar and card and card["y"] >= bar["y"] + bar["height"]
    key = page.locator("#paste-key input[name=key]").bounding_box()
    button = page.locator("#paste-key button[type=submit]").bounding_box()
    assert key and button and (button["y"], button["height"]) == (key["y"], key["height"])


def test_the_front_page_uses_the_width_of_a_desktop(page: Page, stack: str) -> None:
    page.goto(f"{stack}/")
    hero = page.locator(".hero").bounding_box()
    cards = page.locator(".features").bounding_box()
    header = page.locator(".topbar").bounding_box()
    assert hero and cards and header
    middle = header["width"] / 2
    assert abs(hero["x"] + hero["width"] / 2 - middle) < 1
    assert abs(cards["x"] + cards["width"] / 2 - middle) < 1
    last = page.locator(".features .card").last.bounding_box()
    assert last and abs(last["x"] + last["width"] - (cards["x"] + cards["width"])) < 1  # no gap
    shoot(page, "home")


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
