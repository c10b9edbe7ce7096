"""A conversation open in two tabs, in Chromium."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from chat.models import Message
from tests.chat.conftest import add_message, make_conversation
from tests.e2e.conftest import shoot
from tests.factories import PASSWORD, connect_user, make_user


def test_a_conversation_deleted_in_another_tab_says_so_there(page: Page, stack: str) -> None:
    user = connect_user(make_user("tabs@example.com"))
    conversation = make_conversation(user, title="Tides")
    add_message(conversation, Message.Role.USER, "Tell me about tides")
    add_message(conversation, Message.Role.ASSISTANT, "The moon pulls the sea.")
    page.goto(f"{stack}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    url = f"{stack}/chat/{conversation.pk}/"
    page.goto(url)
    expect(page.locator("#send-button")).to_be_enabled()  # its socket is open
    other = page.context.new_page()
    other.goto(url)
    other.on("dialog", lambda dialog: dialog.accept())  # "Delete … and all its messages?"
    other.locator(".chat-header .chat-settings summary").click()
    other.click(".settings-panel .delete-row button")
    expect(other).to_have_url(f"{stack}/chat/")
    notice = page.locator("#conversation-deleted")
    expect(notice).to_be_visible()
    expect(notice.locator("a")).to_have_attribute("href", "/chat/")
    expect(page.locator("#composer-text")).to_be_disabled()
    expect(page.locator("#conversation-list [data-title='tides']")).to_have_count(0)
    expect(page.locator(".msg-actions")).to_have_count(0)
    shoot(page, "chat-deleted-elsewhere")
    other.close()
