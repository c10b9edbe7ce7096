"""The chat pages: list and search, ownership, rename / settings / delete, the connect prompt,
the picker's JSON, and model output that is never rendered as HTML by the server."""

from __future__ import annotations

import contextvars
import html
import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import localize
from django.utils.http import urlencode
from django.utils.timezone import localtime

from accounts.models import User
from chat import services
from chat.models import Conversation, Message
from openrouter import catalogue
from openrouter.errors import OpenRouterError
from openrouter.sandbox.faults import XSS_PAYLOAD
from tests.chat.conftest import add_message, make_conversation
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def titles(html: str) -> list[str]:
    return re.findall(r'<span class="conversation-title">([^<]*)</span>', html)


def test_the_list_shows_my_conversations_most_recent_first(
    signed_in: Client, user: User, other_user: User
) -> None:
    older = make_conversation(user, title="Older")
    make_conversation(user, title="Newer")
    make_conversation(other_user, title="Not mine")
    Conversation.objects.filter(pk=older.pk).update(updated_at=timezone.now() - timedelta(days=1))

    page = signed_in.get("/chat/").content.decode()
    assert titles(page) == ["Newer", "Older"]
    assert "What can I help with?" in page  # the prompt box starts a new conversation


def test_the_list_searches_titles_and_messages(
    signed_in: Client, user: User, other_user: User
) -> None:
    for title in ["Sorting lists", "Cooking pasta", "List comprehension"]:
        make_conversation(user, title=title)
    pasta = Conversation.objects.get(title="Cooking pasta")
    add_message(pasta, Message.Role.ASSISTANT, "Boil it, then toss with a LIST of sauces.")
    theirs = make_conversation(other_user, title="Their lists")
    add_message(theirs, Message.Role.USER, "my list")
    page = signed_in.get("/chat/", {"q": "list"}).content.decode()
    assert sorted(titles(page)) == ["Cooking pasta", "List comprehension", "Sorting lists"]
    assert "3 results for “list”" in page
    page = signed_in.get("/chat/", {"q": "sauces"}).content.decode()
    assert titles(page) == ["Cooking pasta"]
    assert "1 result for “sauces”" in page
    page = signed_in.get("/chat/", {"q": "zz"}).content.decode()
    assert titles(page) == []
    assert "No messages match “zz”." in page
    assert "No conversations yet." not in page
    assert "result" not in signed_in.get("/chat/").content.decode()  # no search, no count


def active_title(html: str) -> str | None:
    found = re.search(
        r'class="conversation-item active".*?conversation-title">([^<]*)<', html, re.S
    )
    return found.group(1) if found else None


def more_url(html: str, button: str) -> str:
    """Where a "Show older" (``data-older``) or "Show earlier" (``data-earlier``) button fetches
    the next rows ("" when it is not there)."""
    found = re.search(rf'data-{button} data-url="([^"]*)"', html)
    return found.group(1).replace("&amp;", "&") if found else ""


def older_url(html: str) -> str:
    return more_url(html, "older")


def earlier_url(html: str) -> str:
    return more_url(html, "earlier")


def test_the_list_shows_fifty_and_the_rest_older_page_by_page_none_twice(
    signed_in: Client, user: User, other_user: User
) -> None:
    conversations = [make_conversation(user, title=f"Chat {i}") for i in range(120)]
    make_conversation(other_user, title="Not mine")
    # Ties in the order (one timestamp for many rows) are broken by the id, newest first.
    same_time = timezone.now() - timedelta(hours=1)
    Conversation.objects.filter(pk__in=[c.pk for c in conversations[30:90]]).update(
        updated_at=same_time
    )
    expected = [
        c.title
        for c in sorted(
            Conversation.objects.filter(user=user), key=lambda c: (c.updated_at, c.pk), reverse=True
        )
    ]

    page = signed_in.get("/chat/").content.decode()
    assert titles(page) == expected[:50]
    assert "Show older conversations" in page
    seen = titles(page)
    url = older_url(page)
    # A listed conversation that moves to the top meanwhile (a message sent in it) shifts
    # nothing for the pages still to come: an offset would now list "Chat 90" twice.
    Conversation.objects.filter(pk=conversations[110].pk).update(updated_at=timezone.now())
    while url:
        response = signed_in.get(url)
        assert response.status_code == 200
        rows = response.content.decode()
        assert "No conversations yet." not in rows
        seen += titles(rows)
        url = older_url(rows)
    assert seen == expected  # every one, in order, once; the last page has no button
    assert "Not mine" not in seen


def test_a_search_counts_every_match_and_shows_more_results_within_the_search(
    signed_in: Client, user: User
) -> None:
    for i in range(60):
        make_conversation(user, title=f"Barnacles {i}")
    for i in range(10):
        make_conversation(user, title=f"Other {i}")
    page = signed_in.get("/chat/", {"q": "barnacle"}).content.decode()
    assert "60 results for “barnacle”" in page
    assert len(titles(page)) == 50
    assert "Show more results" in page
    rows = signed_in.get(older_url(page)).content.decode()
    assert len(titles(rows)) == 10
    assert all(title.startswith("Barnacles") for title in titles(rows))
    assert 'href="/chat/' in rows and "?q=barnacle" in rows  # the rows open at the match
    assert older_url(rows) == ""


def test_a_conversation_opened_further_down_keeps_its_place_in_the_list(
    signed_in: Client, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(120):
        make_conversation(user, title=f"Chat {i}")
    newest_first = [f"Chat {i}" for i in reversed(range(120))]
    opened = Conversation.objects.get(title=newest_first[79])
    page = signed_in.get(f"/chat/{opened.pk}/").content.decode()
    assert titles(page) == newest_first[:80]  # down to the open one (opened from Show older)
    assert active_title(page) == newest_first[79]
    assert titles(signed_in.get(older_url(page)).content.decode()) == newest_first[80:]
    # Too far down: the first fifty, and the open one is marked when "Show older" reaches it.
    monkeypatch.setattr(services, "CONVERSATIONS_DOWN_TO", 60)
    page = signed_in.get(f"/chat/{opened.pk}/").content.decode()
    assert titles(page) == newest_first[:50]
    assert active_title(page) is None
    rows = signed_in.get(older_url(page)).content.decode()
    assert titles(rows) == newest_first[50:100]
    assert active_title(rows) == newest_first[79]


def test_the_list_refuses_a_made_up_place_in_it(signed_in: Client, user: User) -> None:
    make_conversation(user, title="Only")
    for before in ["nonsense", "1-2-3", "99999999999999999999999-1"]:
        response = signed_in.get("/chat/list/", {"before": before})
        assert response.status_code == 400
        assert response.content.decode() == "That place in the list does not exist."
    assert Client().get("/chat/list/").status_code == 302  # signed out: to the sign-in page


def message_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-message-id="(\d+)"', html)]


def test_a_long_conversation_opens_at_its_end_and_shows_earlier_messages_page_by_page(
    signed_in: Client, user: User, other_user: User
) -> None:
    conversation = make_conversation(user)
    ids = [add_message(conversation, Message.Role.USER, f"Message {i}").pk for i in range(120)]
    page = signed_in.get(f"/chat/{conversation.pk}/").content.decode()
    assert message_ids(page) == ids[-50:]
    assert "Show earlier messages" in page
    seen, url = message_ids(page), earlier_url(page)
    while url:
        response = signed_in.get(url)
        assert response.status_code == 200
        earlier = message_ids(response.content.decode())
        seen = earlier + seen
        url = earlier_url(response.content.decode())
    assert seen == ids  # every message once, in order; the first page has no button
    # Another user's conversation is not found; a request without a place is refused.
    other = Client()
    other.force_login(other_user)
    assert other.get(f"/chat/{conversation.pk}/messages/", {"before": ids[-1]}).status_code == 404
    response = signed_in.get(f"/chat/{conversation.pk}/messages/", {"before": "x"})
    assert response.status_code == 400
    assert response.content.decode() == "That place in the conversation does not exist."
    # A short conversation has no button.
    short = make_conversation(user)
    add_message(short, Message.Role.USER, "Hello")
    assert earlier_url(signed_in.get(f"/chat/{short.pk}/").content.decode()) == ""


def test_a_conversation_opened_from_a_search_shows_from_its_first_match(
    signed_in: Client, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = make_conversation(user)
    ids = [add_message(conversation, Message.Role.USER, f"Message {i}").pk for i in range(120)]
    Message.objects.filter(pk__in=[ids[30], ids[70]]).update(content="About a BARNACLE")
    page = signed_in.get(f"/chat/{conversation.pk}/", {"q": "barnacle"}).content.decode()
    assert message_ids(page) == ids[30:]
    assert message_ids(signed_in.get(earlier_url(page)).content.decode()) == ids[:30]
    # Too far back: the latest fifty, as without a search.
    monkeypatch.setattr(services, "MESSAGES_DOWN_TO", 60)
    page = signed_in.get(f"/chat/{conversation.pk}/", {"q": "barnacle"}).content.decode()
    assert message_ids(page) == ids[-50:]


@pytest.mark.parametrize("pk", [7, 12345])
def test_each_row_links_where_the_urls_say_even_with_thousands_separators(
    signed_in: Client, user: User, pk: int, settings: Any
) -> None:
    """The rows build their links from the list's URL and the id (templates/chat/_sidebar.html):
    they must stay what ``reverse`` gives, and an id is never written as "12,345"."""
    settings.USE_THOUSAND_SEPARATOR = True
    Conversation.objects.create(pk=pk, user=user, title="Linked")
    page = signed_in.get(f"/chat/{pk}/").content.decode()
    row = page[page.index(f'data-conversation-id="{pk}"') :].split("</li>", 1)[0]
    assert f'href="{reverse("chat:conversation", args=[pk])}"' in row
    assert f'action="{reverse("chat:rename", args=[pk])}"' in row
    assert f'action="{reverse("chat:delete", args=[pk])}"' in row
    assert f'id="rename-{pk}"' in row
    assert signed_in.post(reverse("chat:rename", args=[pk]), {"title": "Moved"}).status_code == 302
    assert Conversation.objects.get(pk=pk).title == "Moved"


def test_pages_stay_in_the_sites_language_whatever_the_browser_asks(
    signed_in: Client, user: User
) -> None:
    """The site is in one language: not Django's LocaleMiddleware (see config.middleware)."""
    conversation = make_conversation(user, title="Old one")
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=timezone.now() - timedelta(days=3)
    )
    page = signed_in.get("/chat/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "3\xa0days ago" in page  # naturaltime, in English
    assert translation.get_language() == settings.LANGUAGE_CODE  # restored after the request


def test_a_request_runs_with_the_language_activated_not_looked_up_each_time() -> None:
    """``config.middleware.site_language``: with no language active, every ``get_language()``
    raised and caught an AttributeError inside asgiref's Local (thousands per page)."""
    from django.utils.translation import trans_real

    from config.middleware import site_language

    seen: list[str | None] = []

    def view(request: Any) -> Any:
        active = getattr(trans_real._active, "value", None)
        seen.append(active.language() if active is not None else None)
        return "response"

    def request() -> None:  # in a context of its own, as a request has: no language active
        assert getattr(trans_real._active, "value", None) is None
        assert site_language(view)(object()) == "response"

    contextvars.Context().run(request)
    with translation.override("fr"):  # a language active before the request is kept after it
        assert site_language(view)(object()) == "response"
        assert translation.get_language() == "fr"
    assert seen == [settings.LANGUAGE_CODE, settings.LANGUAGE_CODE]


def test_someone_elses_conversation_is_a_404_for_every_page_and_action(
    signed_in: Client, other_user: User
) -> None:
    theirs = make_conversation(other_user, title="Private")
    add_message(theirs, Message.Role.USER, "secret")
    assert signed_in.get(f"/chat/{theirs.pk}/").status_code == 404
    for action, data in [
        ("rename", {"title": "Mine now"}),
        ("settings", {"title": "Mine now"}),
        ("model", {"model": "a/b"}),
        ("delete", {}),
    ]:
        assert signed_in.post(f"/chat/{theirs.pk}/{action}/", data).status_code == 404, action
    theirs.refresh_from_db()
    assert theirs.title == "Private" and theirs.model == ""


def test_pages_need_a_session(client: Client, user: User) -> None:
    conversation = make_conversation(user)
    for path in ["/chat/", f"/chat/{conversation.pk}/", "/chat/models.json"]:
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_conversation_page_marks_each_message_for_the_script(
    signed_in: Client, user: User
) -> None:
    conversation = make_conversation(user, title="Seas")
    add_message(conversation, Message.Role.USER, "Tell me about seas")
    answer = add_message(
        conversation,
        Message.Role.ASSISTANT,
        "Seas are big.",
        model_served="openai/gpt-4o-mini",
        prompt_tokens=12,
        completion_tokens=4,
        cost="0.0000042",
        time_to_first_token_ms=321,
    )
    page = signed_in.get(f"/chat/{conversation.pk}/").content.decode()
    assert f'data-message-id="{answer.pk}" data-role="assistant" data-state="complete"' in page
    assert '<div class="message-body">Seas are big.</div>' in page
    for fact in ["openai/gpt-4o-mini", "12 → 4 tokens", "$0.000004", "first token 321 ms"]:
        assert fact in page


def test_model_output_is_shown_as_text_never_as_html(signed_in: Client, user: User) -> None:
    conversation = make_conversation(user, title="<b>bold title</b>")
    add_message(conversation, Message.Role.USER, "<img src=x onerror=alert(1)>")
    add_message(conversation, Message.Role.ASSISTANT, XSS_PAYLOAD)
    page = signed_in.get(f"/chat/{conversation.pk}/").content.decode()
    assert "<script>window.__xss" not in page
    assert "<img src=x" not in page and "<b>bold title</b>" not in page
    assert "&lt;script&gt;window.__xss=1;alert(1)&lt;/script&gt;" in page
    assert all(src.endswith(".js") for src in re.findall(r'<script[^>]*src="([^"]+)"', page))
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)  # no inline script at all


def test_without_a_key_the_page_offers_the_one_click_connect(signed_in: Client) -> None:
    page = signed_in.get("/chat/").content.decode()
    assert "Connect your OpenRouter account" in page
    assert 'href="/connect/openrouter/?next=/chat/"' in page
    assert 'data-connected="0"' in page


def test_with_a_key_there_is_no_connect_prompt(connected_client: Client) -> None:
    page = connected_client.get("/chat/").content.decode()
    assert "Connect your OpenRouter account" not in page
    assert 'data-connected="1"' in page


def test_rename_and_settings_are_saved(signed_in: Client, user: User) -> None:
    conversation = make_conversation(user, title="Old")
    response = signed_in.post(f"/chat/{conversation.pk}/rename/", {"title": "  New title "})
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "New title"

    response = signed_in.post(
        f"/chat/{conversation.pk}/settings/",
        {
            "title": "Tuned",
            "model": "openai/gpt-4o",
            "system_prompt": "Answer in French.",
            "temperature": "0.7",
            "max_tokens": "500",
        },
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert (conversation.title, conversation.model, conversation.system_prompt) == (
        "Tuned",
        "openai/gpt-4o",
        "Answer in French.",
    )
    assert (conversation.temperature, conversation.max_tokens) == (0.7, 500)


def test_settings_out_of_range_are_refused_with_the_reason(signed_in: Client, user: User) -> None:
    conversation = make_conversation(user, title="Keep")
    response = signed_in.post(
        f"/chat/{conversation.pk}/settings/",
        {"title": "Keep", "model": "bad model id", "temperature": "3", "max_tokens": "0"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "A model id looks like" in page and "less than or equal to 2" in page
    conversation.refresh_from_db()
    assert conversation.temperature is None and conversation.model == ""


def test_a_model_openrouter_does_not_list_is_refused_and_a_variant_of_one_it_does_is_kept(
    signed_in: Client, user: User
) -> None:
    conversation = make_conversation(user, title="Keep")
    fields = {"title": "Keep", "model": "nonexistent/model-xyz"}
    response = signed_in.post(f"/chat/{conversation.pk}/settings/", fields)
    assert response.status_code == 400
    page = response.content.decode()
    assert "OpenRouter has no chat model “nonexistent/model-xyz”" in page
    settings_tag = re.search(r"<details[^>]*chat-settings[^>]*>", page)
    assert settings_tag is not None and " open" in settings_tag[0]  # the reason in sight
    conversation.refresh_from_db()
    assert conversation.model == ""

    response = signed_in.post(
        f"/chat/{conversation.pk}/settings/", {**fields, "model": "openai/gpt-4o:nitro"}
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.model == "openai/gpt-4o:nitro"


def test_without_the_model_list_at_hand_any_well_formed_model_is_kept(
    signed_in: Client, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    unavailable = catalogue.Catalogue(models=[], fetched_at=None, refreshing=True)
    monkeypatch.setattr(catalogue, "models_catalogue", lambda **_: unavailable)
    conversation = make_conversation(user)
    response = signed_in.post(
        f"/chat/{conversation.pk}/settings/", {"title": "T", "model": "new/model-of-today"}
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.model == "new/model-of-today"


def test_a_model_dropped_since_does_not_block_the_other_settings(
    signed_in: Client, user: User
) -> None:
    conversation = make_conversation(user, model="retired/model-of-last-year")
    response = signed_in.post(
        f"/chat/{conversation.pk}/settings/",
        {"title": "Renamed", "model": "retired/model-of-last-year"},
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert (conversation.title, conversation.model) == ("Renamed", "retired/model-of-last-year")


def test_settings_say_what_a_blank_model_asks_for(signed_in: Client, user: User) -> None:
    """Not the Account page's default (that one starts new chats): a blank conversation model
    sends no model, and OpenRouter answers with the account's own default."""
    user.default_model = "openai/gpt-4o-mini"
    user.save()
    conversation = make_conversation(user, model="")
    payload = services.completion_request(conversation=conversation, messages=[])
    assert "model" not in payload
    page = signed_in.get(f"/chat/{conversation.pk}/").content.decode()
    assert (
        "Blank: your OpenRouter account&#x27;s default model, as set on openrouter.ai. "
        "The Account page&#x27;s default model is for new chats only."
    ) in page
    assert "picks the account" not in page


def test_reloading_settings_sent_back_with_errors_opens_the_conversation(
    signed_in: Client, user: User
) -> None:
    conversation = make_conversation(user)
    response = signed_in.get(f"/chat/{conversation.pk}/settings/")
    assert response.status_code == 302
    assert response["Location"] == f"/chat/{conversation.pk}/"
    other = make_conversation(make_user("someone@example.com"))
    assert signed_in.get(f"/chat/{other.pk}/settings/").status_code == 404


def test_the_picker_remembers_the_model_per_conversation(signed_in: Client, user: User) -> None:
    conversation = make_conversation(user, model="openai/gpt-4o")
    response = signed_in.post(f"/chat/{conversation.pk}/model/", {"model": ""})
    assert response.json() == {"model": "", "label": "My OpenRouter default"}
    conversation.refresh_from_db()
    assert conversation.model == ""
    for bad in ("<script>", "../../etc"):
        assert signed_in.post(f"/chat/{conversation.pk}/model/", {"model": bad}).status_code == 400
    conversation.refresh_from_db()
    assert conversation.model == ""


def test_delete_removes_the_conversation_and_its_messages(signed_in: Client, user: User) -> None:
    conversation = make_conversation(user)
    add_message(conversation, Message.Role.USER, "bye")
    response = signed_in.post(f"/chat/{conversation.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/chat/"
    assert not Conversation.objects.exists() and not Message.objects.exists()
    assert signed_in.get(f"/chat/{conversation.pk}/").status_code == 404


def sent_back(page: str, action: str) -> str:
    """The ``next`` that the page's form posting to ``action`` sends, as a browser sends it."""
    form = page[page.index(f'action="{action}"') :].split("</form>", 1)[0]
    found = re.search(r'name="next" value="([^"]*)"', form)
    assert found, form
    return html.unescape(found[1])


@pytest.mark.parametrize("search", ["", "moon & sea"])
def test_the_lists_rename_and_delete_leave_me_on_the_page_i_am_on(
    signed_in: Client, user: User, search: str
) -> None:
    """Renaming or deleting another conversation from the list keeps the open one (or the new
    chat) open, with the search; the rows "Show older" brings send the same."""
    a = make_conversation(user, title="A moon & sea")
    b = make_conversation(user, title="B moon & sea")
    query = {"q": search} if search else {}
    for page_url, opened in [(f"/chat/{a.pk}/", {"open": a.pk}), ("/chat/", {})]:
        page = signed_in.get(page_url, query)
        here = page_url + (f"?{urlencode(query)}" if search else "")
        fragment = signed_in.get("/chat/list/", {**query, **opened})  # Show older's rows
        for rows in (page.content.decode(), fragment.content.decode()):
            back = sent_back(rows, f"/chat/{b.pk}/rename/")
            renamed = signed_in.post(
                f"/chat/{b.pk}/rename/", {"title": "B moon & sea!", "next": back}
            )
            assert renamed["Location"] == here
            assert sent_back(rows, f"/chat/{b.pk}/delete/") == back
    assert Conversation.objects.get(pk=b.pk).title == "B moon & sea!"
    page = signed_in.get(f"/chat/{a.pk}/", query).content.decode()
    deleted = signed_in.post(
        f"/chat/{b.pk}/delete/", {"next": sent_back(page, f"/chat/{b.pk}/delete/")}
    )
    assert deleted["Location"] == f"/chat/{a.pk}/" + (f"?{urlencode(query)}" if search else "")
    assert not Conversation.objects.filter(pk=b.pk).exists()
    shown = signed_in.get(deleted["Location"]).content.decode()
    assert "Deleted “B moon &amp; sea!”." in shown and 'aria-current="page"' in shown


@pytest.mark.parametrize("form", ["list", "settings"])
def test_deleting_the_open_conversation_opens_a_new_chat_in_the_same_search(
    signed_in: Client, user: User, form: str
) -> None:
    a = make_conversation(user, title="Tides")
    page = signed_in.get(f"/chat/{a.pk}/", {"q": "tide"}).content.decode()
    if form == "settings":  # the Settings panel's Delete is the second form posting there
        page = page[page.index('class="chat-settings"') :]
    deleted = signed_in.post(
        f"/chat/{a.pk}/delete/", {"next": sent_back(page, f"/chat/{a.pk}/delete/")}
    )
    assert deleted["Location"] == "/chat/?q=tide"
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/chat/", "//evil.example/", "http://testserver@evil.example/"]
)
def test_a_next_to_another_site_is_ignored(signed_in: Client, user: User, next_url: str) -> None:
    a, b = make_conversation(user, title="A"), make_conversation(user, title="B")
    renamed = signed_in.post(f"/chat/{b.pk}/rename/", {"title": "B2", "next": next_url})
    assert renamed["Location"] == f"/chat/{b.pk}/"
    deleted = signed_in.post(f"/chat/{a.pk}/delete/", {"next": next_url})
    assert deleted["Location"] == "/chat/"


def test_the_picker_gets_the_models_with_prices_per_million(signed_in: Client) -> None:
    cache.delete(catalogue.CATALOGUE_KEY)
    data = json.loads(signed_in.get("/chat/models.json").content)
    assert data["refreshing"] is False and data["fetched_at"]
    by_id = {model["id"]: model for model in data["models"]}
    assert by_id["anthropic/claude-3.5-sonnet"]["completion_per_m"] == "15"
    assert by_id["mistralai/mistral-7b-instruct:free"]["free"] is True
    assert "openai/shap-e" not in by_id


def test_support_reads_chats_and_usage_in_the_admin(client: Client, user: User) -> None:
    staff = make_user(is_staff=True, is_superuser=True)
    conversation = make_conversation(user, title="Help me")
    add_message(conversation, Message.Role.USER, "question")
    answer = add_message(
        conversation,
        Message.Role.ASSISTANT,
        "answer text",
        prompt_tokens=100,
        completion_tokens=20,
        cost="0.25",
    )
    add_message(conversation, Message.Role.ASSISTANT, "second", cost="0.5", completion_tokens=5)
    client.force_login(staff)

    for path in [
        "/admin/chat/conversation/",
        f"/admin/chat/conversation/{conversation.pk}/change/",
        "/admin/chat/message/?state__exact=complete",
        f"/admin/chat/message/?q={user.email}",
    ]:
        assert client.get(path).status_code == 200, path
    detail = client.get(f"/admin/chat/message/{answer.pk}/change/").content.decode()
    assert "answer text" in detail and 'name="content"' not in detail  # read, not edit
    assert client.get("/admin/chat/message/add/").status_code == 403

    usage = client.get("/admin/chat/chatusage/").content.decode()
    assert user.email in usage and "$0.75" in usage and "100 → 25" in usage


def test_the_admin_usage_page_counts_answers_answered_again_edited_or_deleted(
    client: Client, user: User, other_user: User
) -> None:
    def answered(answer_id: int, prompt: int, completion: int, cost: str) -> None:
        Message.objects.filter(pk=answer_id).update(
            state=Message.State.COMPLETE,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=Decimal(cost),
        )

    kept = make_conversation(user)
    prompt = add_message(kept, Message.Role.USER, "question")
    first = add_message(kept, Message.Role.ASSISTANT, "a")
    answered(first.pk, 100, 20, "0.25")
    again = services.message_answer_again(user=user, message_id=first.pk, writer="w").answer
    answered(again.pk, 10, 5, "0.05")
    edited = services.message_edit(user=user, message_id=prompt.pk, text="better", writer="w")
    answered(edited.answer.pk, 1, 1, "0.01")
    gone = make_conversation(user)
    add_message(gone, Message.Role.USER, "question")
    add_message(gone, Message.Role.ASSISTANT, "b", prompt_tokens=200, completion_tokens=30, cost=1)
    services.conversation_delete(conversation=gone)
    theirs = make_conversation(other_user)
    add_message(theirs, Message.Role.ASSISTANT, "c", prompt_tokens=7, completion_tokens=7, cost=3)
    services.conversation_delete(conversation=theirs)
    client.force_login(make_user(is_staff=True, is_superuser=True))

    page = client.get("/admin/chat/chatusage/").content.decode()
    [row] = re.findall(rf"<tr>(?:(?!</tr>).)*{re.escape(user.email)}.*?</tr>", page, re.S)
    cells = re.findall(r'<td class="field-(\w+)">([^<]*)</td>', row)
    assert cells == [
        ("conversations", "1"),
        ("answers", "4"),
        ("tokens", "311 → 56"),
        ("total_cost", "$1.31"),
        ("last_answer", localize(localtime(edited.answer.created_at))),
    ]
    for column in range(1, 7):
        assert client.get("/admin/chat/chatusage/", {"o": column}).status_code == 200


def test_staff_delete_conversations_as_users_do(client: Client, user: User) -> None:
    conversations = [make_conversation(user, title=f"Spam {i}") for i in range(2)]
    for conversation in conversations:
        add_message(conversation, Message.Role.USER, "question")
        add_message(conversation, Message.Role.ASSISTANT, "a", completion_tokens=5, cost=2)
    client.force_login(make_user(is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/chat/conversation/",
        {
            "action": "delete_selected",
            "_selected_action": [conversations[0].pk],
            "index": 0,
            "post": "yes",
        },
    )
    assert response.status_code == 302
    response = client.post(
        f"/admin/chat/conversation/{conversations[1].pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Conversation.objects.filter(user=user).exists()
    page = client.get("/admin/chat/chatusage/").content.decode()
    assert '<td class="field-total_cost">$4.00</td>' in page  # what the answers cost, kept


def test_the_admin_usage_page_of_a_user_shows_the_last_answers_date_as_the_list_does(
    client: Client, user: User
) -> None:
    answer = add_message(make_conversation(user), Message.Role.ASSISTANT, "a")
    client.force_login(make_user(is_staff=True, is_superuser=True))
    page = client.get(f"/admin/chat/chatusage/{user.pk}/change/").content.decode()
    assert localize(localtime(answer.created_at)) in page
    assert str(answer.created_at) not in page


def test_the_admin_message_list_cuts_long_text_short_and_sorts_by_every_column(
    client: Client,
) -> None:
    email = f"{'someone.with.a.long.name' * 2}@example.com"
    conversation = make_conversation(make_user(email=email), title="Tell me " * 25)
    add_message(conversation, Message.Role.USER, "question")
    add_message(
        conversation,
        Message.Role.ASSISTANT,
        "answer",
        state=Message.State.ERROR,
        error_code="402",
        model_served="openai/gpt-4o",
        completion_tokens=1234,
        cost="0.25",
    )
    client.force_login(make_user(is_staff=True, is_superuser=True))

    page = client.get("/admin/chat/message/").content.decode()
    assert f">{conversation.title[:59]}…</a>" in page
    assert f">{email[:23]}…</span>" in page
    assert "assistant, error 402" in page and "openai/gpt-4o" in page
    assert "$0.25" in page and "1,234 tokens" in page
    for column in range(1, 6):
        assert client.get("/admin/chat/message/", {"o": column}).status_code == 200


def test_an_address_in_an_answers_error_is_a_link(signed_in: Client, user: User) -> None:
    """A 402's "Add credits on OpenRouter" can be followed, not only read."""
    conversation = make_conversation(user)
    add_message(conversation, Message.Role.USER, "hi")
    sentence = OpenRouterError.from_status(402).message
    add_message(
        conversation,
        Message.Role.ASSISTANT,
        "",
        state=Message.State.ERROR,
        error_code="402",
        error_message=sentence,
        model_requested="openai/gpt-4o",  # no model served it: the one asked for is named
    )
    page = signed_in.get(f"/chat/{conversation.pk}/").content.decode()
    url = f"{settings.OPENROUTER_URL}/settings/credits"
    assert f'<a href="{url}"' in page
    assert '<span class="meta-model" title="The model of this answer">openai/gpt-4o</span>' in page


@pytest.mark.django_db
def test_form_labels_are_words_without_a_colon(
    connected_client: Client, connected_user: User
) -> None:
    """As on the sign-in pages: "Temperature", not "Temperature:" (Django's label_tag adds one)."""
    conversation = make_conversation(connected_user)
    for path in ["/chat/", f"/chat/{conversation.pk}/", "/generations/"]:
        page = connected_client.get(path).content.decode()
        labels = re.findall(r"<label[^>]*>([^<]*)</label>", page)
        assert labels, path
        assert not [label for label in labels if label.strip().endswith(":")], path
