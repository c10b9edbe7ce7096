"""A new user's whole journey, in Chromium, clicking."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect

from chat.models import Message
from generations.models import Generation
from openrouter.errors import OpenRouterError
from tests.e2e.conftest import ARTIFACTS, DESKTOP, PHONE, shoot, sign_in
from tests.factories import PASSWORD, make_user
from tests.generations.conftest import make_generation


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
    # The live updates ran to their end (a script error after the state changed goes unseen).
    assert not [line for line in page.console_log if line.startswith("[pageerror]")]  # type: ignore[attr-defined]
    expect(page.locator("[data-viewer]")).to_have_attribute("data-ready", "true", timeout=20_000)
    page.wait_for_timeout(300)
    assert canvas_colours(page, "[data-viewer] canvas") > 20
    shoot(page, "generation-detail")

    generation = Generation.objects.get(prompt="a red donut")
    stored = generation.outputs.get(index=0)
    with page.expect_download() as download:
        page.locator(".downloads a").first.click()
    assert Path(download.value.path()).read_bytes() == stored.file.read()
    checksum = page.locator(".downloads .checksum").first
    expect(checksum.locator("code.sha")).to_be_hidden()  # folded away until asked for
    checksum.locator("summary").click()
    expect(checksum.locator("code.sha")).to_have_text(stored.sha256)
    shoot(page, "generation-checksum")

    page.goto(f"{base}/generations/")
    expect(page.locator(f"[data-generation-id='{generation.pk}']")).to_have_attribute(
        "data-state", "succeeded"
    )
    shoot(page, "generations-gallery")

    # A job's state as the live socket brings it (its snapshot on connect; a refusal made up on
    # the finished job, undone after): its words become a link to the credits page there too.
    refusal = {"state": "failed", "error_code": "402"}
    refusal["error_message"] = OpenRouterError.from_status(402).message
    Generation.objects.filter(pk=generation.pk).update(**refusal)
    page.reload()
    link = page.locator(f"[data-generation-id='{generation.pk}'] [data-role='error'] a")
    expect(link).to_have_text("Add credits on OpenRouter")
    expect(link).to_have_attribute("target", "_blank")
    credits_page = page.locator("body").get_attribute("data-credits-url") or ""
    assert credits_page.endswith("/settings/credits")  # the web process's, not from the text
    assert link.get_attribute("href") == credits_page
    assert not [line for line in page.console_log if line.startswith("[pageerror]")]  # type: ignore[attr-defined]
    Generation.objects.filter(pk=generation.pk).update(
        state="succeeded", error_code="", error_message=""
    )


def pick_model(page: Page, model_id: str) -> None:
    page.click("#model-button")
    page.fill("#picker-search", model_id)
    page.click(f".picker-option[data-model-id='{model_id}']")
    expect(page.locator("#model-label")).to_have_text(model_id)


def send(page: Page, text: str) -> Locator:
    """Send a message; returns the new answer's element."""
    answers = page.locator(".msg[data-role=assistant]")
    before = answers.count()
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")
    expect(answers).to_have_count(before + 1)
    return answers.nth(before)


def chat_streams_progressively_with_markdown(page: Page, base: str) -> None:
    page.goto(f"{base}/chat/")
    shoot(page, "chat-new")
    pick_model(page, "openai/gpt-4o")
    answer = send(page, "Show me python code that greets the world")
    expect(answer).to_have_attribute("data-state", "streaming")
    body = answer.locator(".message-body")
    expect(body).not_to_be_empty()
    partial = len(body.inner_text())
    expect(answer).to_have_attribute("data-state", "complete", timeout=30_000)
    assert 0 < partial < len(body.inner_text())  # an intermediate state was seen, not only the end
    expect(body.locator("pre code")).to_be_visible()  # a highlighted code block
    expect(body.locator(".copy-code").first).to_be_visible()
    assert body.locator("ul, ol, strong, h1, h2, h3").count() > 0  # markdown, not raw text
    expect(answer.locator(".meta-model")).to_have_text("openai/gpt-4o")
    expect(answer.locator(".msg-meta")).to_contain_text("tokens")
    shoot(page, "chat-answer")


def a_new_conversation_has_its_menu_and_settings_at_once(page: Page) -> None:
    """Made live by the first send: its sidebar row gets the server's menu, the header its
    Settings, without a reload; both pop-overs close on Escape and on a click outside."""
    row = page.locator("#conversation-list .conversation-item.active")
    expect(row.locator(".conversation-menu > summary")).to_be_attached()
    expect(row.locator("time")).to_be_attached()
    settings = page.locator(".chat-header .chat-settings")
    settings.locator("summary").click()
    expect(settings.locator("textarea[name=system_prompt]")).to_be_visible()
    # Its model field opens the model picker from a button beside it; the choice fills the
    # field and Settings stay open, Escape closing the picker first.
    field = settings.locator("input[name=model]")
    choose = settings.locator(".choose-model")
    assert_beside(field, choose)
    choose.click()
    page.fill("#picker-search", "claude-3-haiku")
    page.press("#picker-search", "Enter")  # takes the first match (the only one here)
    expect(field).to_have_value("anthropic/claude-3-haiku")
    expect(settings).to_have_attribute("open", "")
    # Opened again, it starts afresh: no search or filter left, every model, the field's
    # model marked; the last one, chosen, is scrolled into view when it opens next.
    choose.click()
    page.fill("#picker-search", "llama")
    page.check("#picker-free")
    page.keyboard.press("Escape")
    expect(page.locator("#model-picker")).not_to_have_attribute("open", "")
    choose.click()
    expect(page.locator("#picker-search")).to_have_value("")
    expect(page.locator("#picker-free")).not_to_be_checked()
    expect(page.locator("#picker-status")).to_have_text(re.compile(r"^(\d+) of \1 models$"))
    expect(page.locator(".picker-option[aria-selected=true]")).to_have_attribute(
        "data-model-id", "anthropic/claude-3-haiku"
    )
    options = page.locator(".picker-option")
    last = options.last.get_attribute("data-model-id")
    options.last.click()
    choose.click()
    expect(page.locator(f".picker-option[data-model-id='{last}']")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator(f".picker-option[data-model-id='{last}']")).to_be_in_viewport()
    # Prices per million tokens, as people write prices.
    for model, price in {
        "openai/gpt-4o": "$2.50/M in · $10/M out",
        "openai/gpt-4o-mini": "$0.15/M in · $0.60/M out",
        "google/gemini-flash-1.5": "$0.075/M in · $0.30/M out",
        "google/gemma-2-9b-it:free": "Free",
    }.items():
        expect(page.locator(f".picker-option[data-model-id='{model}']")).to_contain_text(price)
    page.keyboard.press("Escape")
    expect(page.locator("#model-picker")).not_to_have_attribute("open", "")
    expect(settings).to_have_attribute("open", "")
    shoot(page, "chat-settings-model")
    page.keyboard.press("Escape")
    expect(settings).not_to_have_attribute("open", "")
    menu = row.locator(".conversation-menu")
    menu.locator("summary").click()
    expect(menu.locator("input[name=title]")).to_be_visible()
    page.click("#chat-log")
    expect(menu).not_to_have_attribute("open", "")


def assert_beside(field: Locator, button: Locator) -> None:
    """``button`` on ``field``'s row, to its right."""
    near, far = field.bounding_box(), button.bounding_box()
    assert near and far
    assert far["x"] >= near["x"] + near["width"]
    assert abs((far["y"] + far["height"] / 2) - (near["y"] + near["height"] / 2)) < 4


def the_default_model_is_chosen_with_the_picker(page: Page) -> None:
    """The Account page's default model has the chat's Choose…, beside the field."""
    field = page.locator("#id_default_model")
    choose = page.locator("#preferences .choose-model")
    assert_beside(field, choose)
    choose.click()
    page.fill("#picker-search", "gpt-4o-mini")
    page.click(".picker-option[data-model-id='openai/gpt-4o-mini']")
    expect(field).to_have_value("openai/gpt-4o-mini")
    shoot(page, "account-default-model")
    page.click("#preferences button[type=submit]")
    expect(page.locator(".message.success")).to_have_text("Preferences saved.")
    expect(page.locator("#id_default_model")).to_have_value("openai/gpt-4o-mini")


def a_long_message_is_counted_near_its_limit(page: Page) -> None:
    count = page.locator("#composer-count")
    expect(count).to_be_hidden()
    limit = int(page.locator("#composer-text").get_attribute("maxlength") or 0)
    page.fill("#composer-text", "a" * (limit - 100))
    expect(count).to_have_text(f"{limit - 100:,} / {limit:,} characters")
    page.fill("#composer-text", "")
    expect(count).to_be_hidden()


def the_phone_drawer_opens_and_closes_every_way(page: Page) -> None:
    page.set_viewport_size(PHONE)
    app, toggle = page.locator("#chat-app"), page.locator(".sidebar-toggle")
    for close in ("Escape", "✕", "backdrop"):
        toggle.click()
        expect(app).to_have_class(re.compile(r"\bsidebar-open\b"))
        expect(page.locator("#conversation-search")).to_be_in_viewport()
        if close == "Escape":
            page.keyboard.press("Escape")
        elif close == "✕":
            page.click(".sidebar-close")
        else:
            page.mouse.click(PHONE["width"] - 20, PHONE["height"] // 2)  # beside the drawer
        expect(app).not_to_have_class(re.compile(r"\bsidebar-open\b"))
        expect(toggle).to_have_attribute("aria-expanded", "false")
    page.set_viewport_size(DESKTOP)


def stop_keeps_the_partial_answer(page: Page) -> None:
    answer = send(page, "Tell me a long story about a lighthouse")
    expect(answer.locator(".message-body")).not_to_be_empty()
    page.click("#stop-button")
    expect(answer).to_have_attribute("data-state", "stopped")
    shown = answer.locator(".message-body").inner_text()
    stored = Message.objects.get(pk=answer.get_attribute("data-message-id"))
    assert stored.state == "stopped"
    assert stored.content and len(stored.content) < 2000
    assert shown.split()[0] in stored.content


def an_error_model_shows_its_sentence(page: Page) -> None:
    pick_model(page, "sandbox/error-402")
    answer = send(page, "Hello?")
    expect(answer).to_have_attribute("data-state", "error")
    expect(answer.locator(".msg-error")).to_contain_text("credits are used up")
    shoot(page, "chat-error")
    # A refused key, live: its sentence's "Reconnect your OpenRouter account" links to where.
    pick_model(page, "sandbox/error-401")
    answer = send(page, "Hello again?")
    link = answer.locator(".msg-error a")
    expect(link).to_have_text("Reconnect your OpenRouter account")
    assert (link.get_attribute("href") or "").endswith("/account/#openrouter")


def the_last_prompt_can_be_edited(page: Page) -> None:
    """Edit on the last prompt: changed in place, sent with Enter, its answer replaced."""
    with page.expect_response(lambda r: r.request.method == "POST" and "/model/" in r.url):
        pick_model(page, "openai/gpt-4o")  # stored as the conversation's model
    prompt = page.locator(".msg[data-role=user]").last
    failed_id = page.locator(".msg[data-role=assistant]").last.get_attribute("data-message-id")
    expect(page.locator(".msg[data-role=user] [data-action=edit]")).to_have_count(1)
    prompt.locator("[data-action=edit]").click()
    editor = prompt.locator(".msg-editor textarea")
    expect(editor).to_have_value("Hello again?")  # the last prompt, as sent
    # Emptied, it is not sent: said so, the editor kept open; Cancel brings the prompt back.
    editor.fill("  ")
    editor.press("Enter")
    expect(page.locator("#composer-error")).to_have_text("A message cannot be empty.")
    expect(editor).to_be_visible()
    prompt.locator("[data-action=edit-cancel]").click()
    expect(prompt.locator(".message-body")).to_have_text("Hello again?")
    prompt.locator("[data-action=edit]").click()
    editor.fill("Hello, edited")
    shoot(page, "chat-editing")
    editor.press("Enter")
    expect(prompt.locator(".msg-editor")).to_have_count(0)
    expect(prompt.locator(".message-body")).to_have_text("Hello, edited")
    expect(page.locator(f".msg[data-message-id='{failed_id}']")).to_have_count(0)  # replaced
    answer = page.locator(".msg[data-role=assistant]").last
    expect(answer).to_have_attribute("data-state", "complete", timeout=30_000)
    expect(answer.locator(".meta-model")).to_have_text("openai/gpt-4o")
    # Another tab on the conversation picks another model and sends: this tab's model button
    # follows (its next edit or regenerate asks that model).
    other = page.context.new_page()
    other.goto(page.url)
    with other.expect_response(lambda r: r.request.method == "POST" and "/model/" in r.url):
        pick_model(other, "openai/gpt-4o-mini")
    theirs = send(other, "From another tab")
    expect(theirs).to_have_attribute("data-state", "complete", timeout=30_000)
    expect(page.locator("#model-label")).to_have_text("openai/gpt-4o-mini")
    other.close()


def a_silent_answer_says_so_until_it_ends(page: Page) -> None:
    """sandbox/stall sends a word, then nothing: the page says so (after CHAT_SILENCE_HINT, 1 s
    in the tests) until the server's idle limit (3 s here) ends the answer as interrupted."""
    pick_model(page, "sandbox/stall")
    answer = send(page, "Hello?")
    hint = answer.locator(".silence-hint")
    expect(hint).to_contain_text("No text from the model for")
    expect(answer).to_have_attribute("data-state", "interrupted", timeout=15_000)
    expect(hint).to_have_count(0)


def a_reload_mid_answer_continues(page: Page) -> None:
    pick_model(page, "openai/gpt-4o")
    answer = send(page, "Tell me a long story about the sea")
    expect(answer.locator(".message-body")).not_to_be_empty()
    message_id = answer.get_attribute("data-message-id")
    page.reload()
    again = page.locator(f".msg[data-message-id='{message_id}']")
    expect(again).to_have_attribute("data-state", "streaming")
    expect(again).to_have_attribute("data-state", "complete", timeout=40_000)
    stored = Message.objects.get(pk=message_id)
    assert stored.state == "complete"
    shown = " ".join(again.locator(".message-body").inner_text().split())
    assert stored.content.split()[-1].strip(".!?*_`") in shown  # the end arrived after reload


def html_in_a_reply_does_not_run(page: Page) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    pick_model(page, "sandbox/xss")
    answer = send(page, "Say something")
    expect(answer).to_have_attribute("data-state", "complete", timeout=30_000)
    body = answer.locator(".message-body")
    assert "<script>" in body.inner_text()  # shown as text
    assert body.locator("script, img, iframe").count() == 0
    assert page.evaluate("window.__xss") is None
    assert not dialogs
    for link in body.locator("a").all():
        assert not (link.get_attribute("href") or "").startswith("javascript:")


def test_a_new_users_whole_journey(page: Page, browser: Browser, stack: str) -> None:
    sign_up(page, stack, "journey@example.com")
    waiting = page.context.new_page()  # a chat tab opened before the key is connected
    waiting.goto(f"{stack}/chat/")
    expect(waiting.locator("#composer-text")).to_be_disabled()
    connect_openrouter(page, stack)
    # Back to that tab (headless Chromium keeps every page visible: the event is the signal).
    waiting.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(waiting.locator("#composer-text")).to_be_enabled()
    waiting.close()
    page.goto(f"{stack}/account/")
    expect(page.locator("#credits")).to_have_attribute("data-loaded", "1")
    expect(page.locator("[data-field=limit_remaining]")).to_have_text("$10.00")
    shoot(page, "account-connected")
    the_default_model_is_chosen_with_the_picker(page)

    chat_streams_progressively_with_markdown(page, stack)
    a_new_conversation_has_its_menu_and_settings_at_once(page)
    a_long_message_is_counted_near_its_limit(page)
    the_phone_drawer_opens_and_closes_every_way(page)
    stop_keeps_the_partial_answer(page)
    an_error_model_shows_its_sentence(page)
    the_last_prompt_can_be_edited(page)
    a_silent_answer_says_so_until_it_ends(page)
    a_reload_mid_answer_continues(page)
    html_in_a_reply_does_not_run(page)
    shoot(page, "chat-conversation")
    generate_and_view(page, stack)

    # A second person, in a browser of their own, cannot reach any of it by URL.
    conversation = Message.objects.filter(conversation__user__email="journey@example.com")
    conversation_id = conversation.first().conversation_id  # type: ignore[union-attr]
    generation = Generation.objects.get(user__email="journey@example.com")
    output = generation.outputs.get(index=0)
    intruder = browser.new_context(viewport=DESKTOP)
    other = intruder.new_page()
    sign_up(other, stack, "intruder@example.com")
    for path in [
        f"/chat/{conversation_id}/",
        generation.get_absolute_url(),
        output.get_absolute_url(),
        f"{output.get_absolute_url()}?inline=1",
    ]:
        response = other.goto(f"{stack}{path}")
        assert response is not None and response.status == 404, path
    intruder.close()

    page.click("nav >> text=Sign out")
    expect(page.locator("nav")).to_contain_text("Sign in")
    expect(page.locator(".message.success")).to_have_text("You have signed out.")
    response = page.goto(f"{stack}/chat/{conversation_id}/")
    assert "/accounts/login/" in page.url


def test_the_viewer_hint_names_the_gestures_of_the_device_in_hand(
    browser: Browser, stack: str, transactional_db: None
) -> None:
    user = make_user("gestures@example.com")
    generation = make_generation(user, prompt="a cube to turn")
    devices = {
        "mouse": ({"viewport": DESKTOP}, "right-drag to move"),
        "touch": ({"viewport": PHONE, "has_touch": True, "is_mobile": True}, "two fingers"),
    }
    for device, (options, words) in devices.items():
        context = browser.new_context(**options)  # type: ignore[arg-type]
        page = context.new_page()
        sign_in(page, stack, user.email)
        page.goto(f"{stack}{generation.get_absolute_url()}")
        hint = page.locator(".viewer-hint")
        expect(hint).to_contain_text(words, use_inner_text=True)  # what is shown, not the DOM
        assert ("right-drag" in hint.inner_text()) is (device == "mouse")
        assert ("finger" in hint.inner_text()) is (device == "touch")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"viewer-hint-{device}.png"))
        context.close()


def test_cancel_on_a_jobs_page_shows_at_once_on_its_gallery_card(
    browser: Browser, stack: str, transactional_db: None
) -> None:
    user = make_user("cancel@example.com")
    generation = make_generation(
        user,
        state="running",
        outputs=0,
        prompt="a slow teapot",
        progress="Waiting for OpenRouter to make the object…",
    )
    context = browser.new_context(viewport=DESKTOP)
    gallery = context.new_page()
    errors: list[str] = []
    gallery.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(gallery, stack, user.email)
    gallery.goto(f"{stack}/generations/")
    card = gallery.locator(f"[data-generation-id='{generation.pk}']")
    expect(gallery.locator("[data-role=live]")).to_have_text("Updates live")
    expect(card.locator("[data-role=cancel] button")).to_be_visible()
    shoot(gallery, "generations-running-card")
    job = context.new_page()
    job.goto(f"{stack}{generation.get_absolute_url()}")
    shoot(job, "generation-running")
    job.click("[data-role=cancel] button:has-text('Cancel')")
    expect(job.locator(".viewer-card")).to_contain_text("stopped before it finished")
    expect(job.locator(".badge")).to_have_text("Cancelled")
    shoot(job, "generation-cancelled")
    # The other tab hears of it over its socket, without a reload.
    expect(card).to_have_attribute("data-state", "cancelled")
    expect(card.locator("[data-role=state]")).to_have_text("Cancelled")
    expect(card.locator("[data-role=cancel]")).to_be_hidden()
    expect(card.locator("[data-role=progress]")).to_be_hidden()
    shoot(gallery, "generations-cancelled-card")
    context.close()
    assert not errors  # the live update ran to its end
