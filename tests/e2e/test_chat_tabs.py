"""The chat page in Chromium: a conversation open in two tabs, a send whose connection drops,
message search, the list and its menus."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from chat.models import Conversation, Message
from tests.chat.conftest import add_message, make_conversation
from tests.e2e.conftest import shoot, sign_in
from tests.factories import connect_user, make_user


def open_tides(page: Page, stack: str, email: str) -> tuple[str, Conversation]:
    """A new connected user's page open on a conversation of one question and its answer."""
    user = connect_user(make_user(email))
    conversation = make_conversation(user, title="Tides")
    add_message(conversation, Message.Role.USER, "Tell me about tides")
    add_message(conversation, Message.Role.ASSISTANT, "The moon pulls the sea.")
    sign_in(page, stack, user.email)
    url = f"{stack}/chat/{conversation.pk}/"
    page.goto(url)
    return url, conversation


def test_a_conversation_deleted_in_another_tab_says_so_there(page: Page, stack: str) -> None:
    url, _ = open_tides(page, stack, "tabs@example.com")
    expect(page.locator("#send-button")).to_be_enabled()  # its socket is open
    page.fill("#composer-text", "Half a thought about the moon")
    other = page.context.new_page()
    other.goto(url)
    other.on("dialog", lambda dialog: dialog.accept())  # "Delete … and all its messages?"
    other.locator(".chat-header .chat-settings summary").click()
    other.click(".settings-panel .delete-row button")
    expect(other).to_have_url(f"{stack}/chat/")
    notice = page.locator("#conversation-deleted")
    expect(notice).to_be_visible()
    expect(notice.locator("a")).to_have_attribute("href", "/chat/")
    expect(notice).to_contain_text("Start a new chat, with your unsent message")
    expect(page.locator("#composer-text")).to_be_disabled()
    expect(page.locator("#conversation-list [data-title='tides']")).to_have_count(0)
    expect(page.locator(".msg-actions")).to_have_count(0)
    # No Settings for what is gone; the list, now empty, says so as a fresh page would.
    expect(page.locator(".chat-settings")).to_have_count(0)
    expect(page.locator("#conversation-list")).to_have_text("No conversations yet.")
    shoot(page, "chat-deleted-elsewhere")
    other.close()
    # The new chat it links to starts with what was being typed.
    notice.locator("a").click()
    expect(page).to_have_url(f"{stack}/chat/")
    expect(page.locator("#composer-text")).to_have_value("Half a thought about the moon")


def test_a_draft_outlives_reloads_and_goes_once_sent(page: Page, stack: str) -> None:
    _, conversation = open_tides(page, stack, "drafts@example.com")
    box = page.locator("#composer-text")
    box.fill("Every word of this")
    # Settings → Save and the list's Rename both reload the page.
    page.locator(".chat-header .chat-settings summary").click()
    page.click(".settings-panel .save-row button")
    expect(page.locator(".message.success")).to_have_text("Conversation settings saved.")
    expect(box).to_have_value("Every word of this")
    row = page.locator(".conversation-item", has_text="Tides")
    row.locator("summary").click()
    row.locator("input[name=title]").fill("Tides and moons")
    row.locator(".rename-form button").click()
    expect(page.locator("#chat-title")).to_have_text("Tides and moons")
    expect(box).to_have_value("Every word of this")
    # A new chat has a draft of its own; each comes back when its page opens.
    page.click(".new-chat")
    expect(page).to_have_url(f"{stack}/chat/")
    expect(box).to_have_value("")
    box.fill("For a new chat")
    page.click("#conversation-list a:has-text('Tides and moons')")
    expect(box).to_have_value("Every word of this")

    # A send the server refuses gives the text back, and it is still kept.
    busy = add_message(conversation, Message.Role.ASSISTANT, "", state=Message.State.STREAMING)
    expect(page.locator("#send-button")).to_be_enabled()
    box.press("Enter")
    expect(page.locator("#composer-error")).to_contain_text("An answer is still coming")
    expect(box).to_have_value("Every word of this")
    busy.delete()
    page.reload()
    expect(box).to_have_value("Every word of this")

    # Sent, it goes; the new chat's stays until that one is sent too.
    expect(page.locator("#send-button")).to_be_enabled()
    box.press("Enter")
    answer = page.locator(".msg[data-role=assistant]").last
    expect(page.locator(".msg[data-role=user]").last).to_have_text("Every word of this")
    expect(answer).to_have_attribute("data-state", "complete", timeout=30_000)
    page.reload()
    expect(box).to_have_value("")
    page.click(".new-chat")
    expect(box).to_have_value("For a new chat")
    expect(page.locator("#send-button")).to_be_enabled()
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))  # started: the new conversation's own
    page.reload()
    expect(box).to_have_value("")
    page.click(".new-chat")
    expect(box).to_have_value("")


class DroppedAtSend:
    """The page's chat socket goes through this. At the next ``send`` frame the server's
    replies stop reaching the page, and the connection drops: before the frame reached the
    server (``deliver=False``), or once the server has stored its prompt (``send``). The
    page's next connection is let through."""

    def __init__(self, page: Page, *, deliver: bool) -> None:
        self.page, self.deliver, self.sent = page, deliver, False
        self.route: WebSocketRoute | None = None
        page.route_web_socket(re.compile(r"/ws/chat/"), self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        if self.sent:
            ws.connect_to_server()  # the reconnection: as it is
            return
        self.route = ws
        server = ws.connect_to_server()
        server.on_message(lambda message: None if self.sent else ws.send(message))

        def from_page(message: str | bytes) -> None:
            if self.sent or '"type":"send"' not in str(message).replace(" ", ""):
                server.send(message)
                return
            self.sent = True
            if self.deliver:
                server.send(message)
            else:
                ws.close(code=4000, reason="dropped")

        ws.on_message(from_page)

    def send(self, url: str, prompt: str) -> Locator:
        """Opens ``url`` and sends ``prompt`` from its box (returned), the connection dropping
        as said above."""
        self.page.goto(url)
        box = self.page.locator("#composer-text")
        expect(self.page.locator("#send-button")).to_be_enabled()
        box.fill(prompt)
        box.press("Enter")
        if self.deliver:
            self._dropped(prompt)
        return box

    def _dropped(self, prompt: str) -> None:
        """Once the server has ``prompt``, the page's connection drops."""
        for _ in range(500):  # 10 s
            if Message.objects.filter(role=Message.Role.USER, content=prompt).exists():
                break
            self.page.wait_for_timeout(20)
        else:
            raise AssertionError(f"the server never stored {prompt!r}")
        assert self.route is not None
        self.route.close(code=4000, reason="dropped")


@pytest.mark.parametrize("deliver", [True, False], ids=["reached-the-server", "lost"])
def test_a_prompt_whose_connection_drops_as_it_is_sent_shows_once_or_comes_back(
    page: Page, stack: str, deliver: bool
) -> None:
    user = connect_user(make_user(f"dropped-{str(deliver).lower()}@example.com"))
    conversation = make_conversation(user, title="Tides")
    add_message(conversation, Message.Role.USER, "Tell me about tides")
    add_message(conversation, Message.Role.ASSISTANT, "The moon pulls the sea.")
    sign_in(page, stack, user.email)
    box = DroppedAtSend(page, deliver=deliver).send(
        f"{stack}/chat/{conversation.pk}/", "And the sun?"
    )
    prompts = page.locator(".msg-user", has_text="And the sun?")
    if deliver:
        expect(prompts).to_have_count(1)  # from the snapshot once reconnected
        expect(page.locator(".msg-assistant")).to_have_count(2)  # its answer, streaming or done
        expect(page.locator("#composer-error")).to_be_hidden()
        expect(box).to_have_value("")
        page.reload()  # and no draft of it left to send twice
        expect(prompts).to_have_count(1)
        expect(box).to_have_value("")
    else:
        expect(page.locator("#composer-error")).to_have_text(
            "The connection dropped before your message was sent: "
            "it is back in the box to send again."
        )
        expect(box).to_have_value("And the sun?")
        expect(prompts).to_have_count(0)
        page.reload()
        expect(box).to_have_value("And the sun?")


def test_a_new_chats_first_prompt_whose_connection_drops_opens_its_conversation(
    page: Page, stack: str
) -> None:
    user = connect_user(make_user("dropped-new@example.com"))
    sign_in(page, stack, user.email)
    box = DroppedAtSend(page, deliver=True).send(
        f"{stack}/chat/", "Why is the sea salty? Asked on a boat"
    )
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    expect(page.locator(".msg-user", has_text="Why is the sea salty?")).to_have_count(1)
    expect(box).to_have_value("")
    page.goto(f"{stack}/chat/")  # the new chat's draft went with it
    expect(box).to_have_value("")


def test_the_view_follows_an_answer_to_its_end_and_the_keyboard_keeps_its_place(
    page: Page, stack: str
) -> None:
    held: list[str | bytes] = []
    holding = [True]
    to_page: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        """While ``holding``, an answer's end (``done``) is held back, so that it reaches the
        page after the answer's text was painted, as over a slower network."""
        server = ws.connect_to_server()
        to_page.append(ws)
        server.on_message(
            lambda m: held.append(m) if holding[0] and '"done"' in str(m) else ws.send(m)
        )

    page.route_web_socket(re.compile(r"/ws/chat/"), route)
    open_tides(page, stack, "follow@example.com")
    log, box = page.locator("#chat-log"), page.locator("#composer-text")
    expect(page.locator("#send-button")).to_be_enabled()
    for turn in range(3):  # enough text to scroll
        box.fill(f"Tell me more about tides, part {turn}")
        box.press("Enter")
        expect(page.locator("#stop-button")).to_be_visible()
        while not held:
            page.wait_for_timeout(50)
        page.wait_for_timeout(200)  # the text painted, nothing more to come but the end
        for frame in held:
            to_page[-1].send(frame)
        held.clear()
        expect(page.locator(".msg-assistant").last).to_have_attribute("data-state", "complete")
    holding[0] = False
    # Ended: the answer's actions are in view at the bottom, and nothing says "Latest".
    expect(
        page.locator(".msg-assistant").last.get_by_role("button", name="Regenerate")
    ).to_be_in_viewport()
    at_bottom = "(log) => log.scrollHeight - log.scrollTop - log.clientHeight < 2"
    assert log.evaluate(at_bottom)
    expect(page.locator("#jump-latest")).to_be_hidden()
    # Regenerate from the keyboard: the button goes with its answer, the focus to the prompt box.
    page.locator(".msg-assistant").last.get_by_role("button", name="Regenerate").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#stop-button")).to_be_visible()
    expect(box).to_be_focused()
    # Stop from the keyboard: the button hides once the answer ends; the focus goes to the box.
    page.locator("#stop-button").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant").last).to_have_attribute("data-state", "stopped")
    expect(box).to_be_focused()


def test_the_keyboards_first_stop_skips_to_the_message_box(page: Page, stack: str) -> None:
    open_tides(page, stack, "skip@example.com")
    # The page starts in the box; a keyboard user elsewhere starts again from the page's top.
    page.evaluate("document.body.tabIndex = -1; document.body.focus()")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the message box")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # seen once it has focus
    page.keyboard.press("Enter")
    expect(page.locator("#composer-text")).to_be_focused()  # past the header and the list
    page.goto(f"{stack}/generations/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()


def test_a_message_search_counts_its_results_and_opens_at_the_matching_message(
    page: Page, stack: str
) -> None:
    user = connect_user(make_user("search@example.com"))
    conversation = make_conversation(user, title="Rock pools")
    add_message(conversation, Message.Role.USER, "What lives in a rock pool?")
    add_message(conversation, Message.Role.ASSISTANT, "Crabs, anemones and the odd Barnacle.")
    for turn in range(12):  # enough to scroll the match out of sight
        add_message(conversation, Message.Role.USER, f"And then? ({turn})")
        add_message(conversation, Message.Role.ASSISTANT, "More about the sea.\n\n" * 4)
    make_conversation(user, title="Elsewhere")
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/chat/")

    page.fill("#conversation-search", "nothing like it")
    page.press("#conversation-search", "Enter")
    expect(page.locator("#search-summary")).to_have_text("No messages match “nothing like it”.")
    expect(page.locator("#conversation-list li")).to_have_count(0)

    page.fill("#conversation-search", "barnacle")
    page.press("#conversation-search", "Enter")
    expect(page.locator("#search-summary")).to_have_text("1 result for “barnacle”")
    shoot(page, "chat-search-results")
    page.click("#conversation-list .conversation-item a")
    expect(page).to_have_url(f"{stack}/chat/{conversation.pk}/?q=barnacle")
    match = page.locator(".msg", has_text="odd Barnacle")
    expect(match).to_have_class(re.compile(r"\bsearch-hit\b"))  # lit up…
    expect(match).to_be_in_viewport()
    expect(page.locator(".msg.search-hit")).to_have_count(1)
    # The words themselves are marked, wherever their case differs.
    marked = page.evaluate(
        "[...(CSS.highlights.get('search') ?? [])].map((range) => range.toString())"
    )
    assert marked == ["Barnacle"]
    shoot(page, "chat-search-hit")
    expect(match).not_to_have_class(re.compile(r"\bsearch-hit\b"))  # …briefly
    expect(match).to_be_in_viewport()  # and left in view, however the socket's news came


def colours(locator: Locator) -> dict[str, Any]:
    """The element's ink, outline, opacity, and the first background behind it, as RGB."""
    return locator.evaluate(
        """element => {
          const rgb = (value) => value.match(/[\\d.]+/g).map(Number);
          let behind = element, background;
          do {
            background = rgb(getComputedStyle(behind).backgroundColor);
            behind = behind.parentElement;
          } while (background.length === 4 && background[3] === 0 && behind);
          let opacity = 1;
          for (let node = element; node; node = node.parentElement) {
            opacity *= Number(getComputedStyle(node).opacity);
          }
          const style = getComputedStyle(element);
          return {ink: rgb(style.color), outline: rgb(style.outlineColor),
                  outlineStyle: style.outlineStyle, opacity, background};
        }"""
    )


def contrast(ink: list[float], background: list[float], opacity: float = 1) -> float:
    """WCAG's contrast ratio of ``ink`` (drawn at ``opacity``) on ``background``."""

    def luminance(colour: list[float]) -> float:
        def channel(value: float) -> float:
            value /= 255
            return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

        red, green, blue = (channel(value) for value in colour[:3])
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    shown = [i * opacity + b * (1 - opacity) for i, b in zip(ink[:3], background[:3], strict=True)]
    lighter, darker = sorted([luminance(shown), luminance(background)], reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_show_older_brings_the_next_conversations_under_the_typed_filter(
    page: Page, stack: str
) -> None:
    user = connect_user(make_user("older@example.com"))
    for i in range(60):
        make_conversation(user, title=f"{'Whales' if i % 2 else 'Plankton'} {i}")
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/chat/")
    rows = page.locator("#conversation-list .conversation-item")
    expect(rows).to_have_count(50)
    page.fill("#conversation-search", "plankton")  # the filter as typed holds for rows to come
    older = page.get_by_role("button", name="Show older conversations")
    older.click()
    expect(rows).to_have_count(60)
    expect(older).to_have_count(0)  # the end of the list
    shown = page.locator("#conversation-list .conversation-item:not([hidden]) .conversation-title")
    expect(shown).to_have_count(30)
    assert all(title.startswith("Plankton") for title in shown.all_inner_texts())
    # Focus went on to the first row brought, not lost with the button: the oldest of them.
    expect(page.locator(":focus")).to_have_text(re.compile(r"\bPlankton 8\b"))
    # Each row brought has its own working menu.
    page.locator(".conversation-item", has_text="Plankton 0").locator("summary").click()
    page.locator(".conversation-item", has_text="Plankton 0").locator("input[name=title]").fill(
        "Krill"
    )
    with page.expect_navigation():
        page.locator(".conversation-item", has_text="Plankton 0").get_by_role(
            "button", name="Rename"
        ).click()
    assert page.url == f"{stack}/chat/"  # still the new chat
    older.click()
    expect(page.locator(".conversation-item", has_text="Krill")).to_have_count(1)


def test_show_earlier_messages_puts_them_above_and_keeps_the_view_where_it_was(
    page: Page, stack: str
) -> None:
    user = connect_user(make_user("earlier@example.com"))
    conversation = make_conversation(user, title="Long one")
    add_message(conversation, Message.Role.USER, "The very first question")
    add_message(conversation, Message.Role.ASSISTANT, "An answer with **bold** words.")
    for turn in range(34):
        add_message(conversation, Message.Role.USER, f"Question {turn}")
        add_message(conversation, Message.Role.ASSISTANT, f"Answer {turn}")
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/chat/{conversation.pk}/")
    messages = page.locator("#chat-log .msg")
    expect(messages).to_have_count(50)
    earlier = page.get_by_role("button", name="Show earlier messages")
    earlier.scroll_into_view_if_needed()
    first = page.locator(f'[data-message-id="{messages.first.get_attribute("data-message-id")}"]')
    top = first.bounding_box()
    assert top is not None
    earlier.click()
    expect(messages).to_have_count(70)
    expect(earlier).to_have_count(0)  # the conversation's start
    moved = first.bounding_box()
    assert moved is not None and abs(moved["y"] - top["y"]) < 2  # what was in view stays put
    # Rendered as the page renders messages: Markdown, and the answers' actions.
    expect(messages.first).to_have_text("The very first question")
    expect(messages.nth(1).locator(".message-body strong")).to_have_text("bold")
    expect(page.locator(":focus")).to_have_text("The very first question")


def test_each_conversations_menu_button_is_visible_enough_and_shows_focus(
    page: Page, stack: str
) -> None:
    user = connect_user(make_user("menus@example.com"))
    make_conversation(user, title="Other")
    current = make_conversation(user, title="Current")
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/chat/{current.pk}/")
    for row in ("Current", "Other"):  # the open one's row is tinted
        summary = page.locator(".conversation-item", has_text=row).locator("summary")
        seen = colours(summary)
        # A glyph, so text's 4.5:1 (above the 3:1 asked of controls); dimmed to 0.8 it was 3.2.
        assert contrast(seen["ink"], seen["background"], seen["opacity"]) >= 4.5, row
    link = page.locator(".conversation-item", has_text="Other").locator("a")
    link.focus()
    page.keyboard.press("Tab")  # from the row's link to its ⋯, by keyboard
    summary = page.locator(".conversation-item", has_text="Other").locator("summary")
    expect(summary).to_be_focused()
    seen = colours(summary)
    assert seen["outlineStyle"] == "solid"
    assert contrast(seen["outline"], seen["background"]) >= 3


def test_a_model_search_that_finds_none_says_so_and_one_escape_closes_the_picker(
    page: Page, stack: str
) -> None:
    user = connect_user(make_user("picker@example.com"))
    conversation = make_conversation(user, title="Models")
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/chat/{conversation.pk}/")
    picker, status = page.locator("#model-picker"), page.locator("#picker-status")
    page.click("#model-button")
    expect(status).to_have_text(re.compile(r"^(\d+) of \1 models$"))
    page.fill("#picker-search", "no such model")
    expect(status).to_have_text("No model matches “no such model”.")
    shoot(page, "chat-picker-none")
    page.click("#picker-clear")  # the way back to every model
    expect(page.locator("#picker-search")).to_have_value("")
    expect(page.locator("#picker-search")).to_be_focused()
    expect(status).to_have_text(re.compile(r"^(\d+) of \1 models$"))
    expect(page.locator("#picker-clear")).to_be_hidden()
    page.check("#picker-free")
    page.select_option("#picker-context", "1000000")
    expect(status).to_have_text("No model matches these filters.")
    page.click("#picker-clear")
    expect(page.locator("#picker-free")).not_to_be_checked()
    expect(page.locator(".picker-option[data-model-id='']")).to_be_visible()  # the default too
    # With words in the search box, one Escape closes it, as anywhere else in the dialog…
    page.fill("#picker-search", "gpt")
    page.keyboard.press("Escape")
    expect(picker).not_to_have_attribute("open", "")
    # …and only it: the Settings it was opened from stay open.
    settings = page.locator(".chat-header .chat-settings")
    settings.locator("summary").click()
    settings.locator(".choose-model").click()
    page.fill("#picker-search", "claude")
    page.keyboard.press("Escape")
    expect(picker).not_to_have_attribute("open", "")
    expect(settings).to_have_attribute("open", "")


def test_the_whole_settings_form_is_in_sight_on_a_laptop_screen(page: Page, stack: str) -> None:
    """At 1280×800 every field, Save and Delete show without scrolling inside the pop-over."""
    user = connect_user(make_user("settings@example.com"))
    conversation = make_conversation(user, title="A long title " * 8)
    for turn in range(6):
        add_message(conversation, Message.Role.USER, f"Question {turn}")
        add_message(conversation, Message.Role.ASSISTANT, "An answer.\n\n" * 6)
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/chat/{conversation.pk}/")
    settings = page.locator(".chat-header .chat-settings")
    settings.locator("summary").click()
    shoot(page, "chat-settings")
    panel = settings.locator(".settings-panel")
    for control in [
        "input[name=title]",
        "input[name=model]",
        "textarea[name=system_prompt]",
        "input[name=temperature]",
        "input[name=max_tokens]",
        ".save-row button",
        ".delete-row button",
    ]:
        expect(panel.locator(control)).to_be_in_viewport(ratio=1)


def test_the_lists_rename_and_delete_keep_a_new_chat_open_once_it_has_begun(
    page: Page, stack: str
) -> None:
    """The list was rendered on /chat/; the first prompt made the page a conversation: Rename
    and Delete of another row come back to it, not to a new chat."""
    user = connect_user(make_user("list-menu@example.com"))
    other = make_conversation(user, title="Tides")
    sign_in(page, stack, user.email)
    page.goto(f"{stack}/chat/")
    expect(page.locator("#send-button")).to_be_enabled()
    page.fill("#composer-text", "Why is the sea salty?")
    page.press("#composer-text", "Enter")
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    here = page.url
    answer = page.locator(".msg-assistant")
    expect(answer).to_have_attribute("data-state", "complete", timeout=30_000)
    row = page.locator(f'.conversation-item[data-conversation-id="{other.pk}"]')
    row.locator("summary").click()
    row.locator("input[name=title]").fill("Tides and the moon")
    with page.expect_navigation():
        row.get_by_role("button", name="Rename").click()
    assert page.url == here
    expect(row.locator(".conversation-title")).to_have_text("Tides and the moon")
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete … and all its messages?"
    row.locator("summary").click()
    with page.expect_navigation():
        row.get_by_role("button", name="Delete").click()
    assert page.url == here
    expect(page.locator(".messages")).to_contain_text("Deleted “Tides and the moon”.")
    expect(row).to_have_count(0)
    expect(page.locator(".msg-user", has_text="Why is the sea salty?")).to_have_count(1)
