"""Staff pages in Chromium."""

from __future__ import annotations

from django.utils import timezone
from playwright.sync_api import Page, expect

from chat.models import Message
from generations.models import Generation
from tests.chat.conftest import add_message, make_conversation
from tests.factories import PASSWORD, connect_user, make_user
from tests.generations.conftest import make_generation


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


def test_every_list_and_a_generations_page_fit_a_1280_px_window(page: Page, stack: str) -> None:
    """With rows in each (long values included), no staff page scrolls sideways."""
    staff = make_user("staff@example.com", is_staff=True, is_superuser=True)
    user = connect_user(make_user("firstname.lastname.department@a-long-company-domain.example"))
    conversation = make_conversation(user, title="A conversation with a rather long title " * 3)
    add_message(conversation, Message.Role.USER, "Tell me about lighthouses " * 20)
    add_message(
        conversation,
        Message.Role.ASSISTANT,
        "Lighthouses guide ships. " * 40,
        model_served="anthropic/claude-3.5-sonnet-20240620",
        prompt_tokens=1234,
        completion_tokens=5678,
        cost="0.0123456",
    )
    generation = make_generation(user, state="failed", outputs=2)
    Generation.objects.filter(pk=generation.pk).update(
        error_code="invalid_output", prompt="A very detailed brass telescope on a tripod " * 5
    )
    page.goto(f"{stack}/admin/login/")
    page.fill("input[name=username]", staff.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    for path in [
        "accounts/user/",
        "accounts/openrouterkey/",
        "chat/conversation/",
        "chat/message/",
        "chat/chatusage/",
        "generations/generation/",
        f"generations/generation/{generation.pk}/change/",
    ]:
        page.goto(f"{stack}/admin/{path}")
        expect(page.locator("#content")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
        for box in page.locator(".results, .inline-group").all():
            assert box.evaluate("box => box.scrollWidth <= box.clientWidth"), path
        # The site's icon, not the browser's guess /favicon.ico (a 404 logged on every page).
        icon = page.locator('link[rel="icon"]').get_attribute("href")
        assert icon and page.request.get(f"{stack}{icon}").ok, path
    # Nothing went wrong on the way.
    errors = [line for line in page.console_log if line.startswith("[error]")]  # type: ignore[attr-defined]
    assert not errors, errors
