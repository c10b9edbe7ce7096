"""The OpenRouter connect flow against the sandbox over HTTP, and every way it can be refused."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.contrib.messages import get_messages
from django.test import Client, override_settings

from accounts import connect as connect_module
from accounts.models import OpenRouterKey, User
from accounts.services import api_key_for
from openrouter.pkce import s256_challenge
from tests import services
from tests.factories import consent, follow_connect

pytestmark = pytest.mark.django_db


def flash(response: object) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]  # type: ignore[attr-defined]


@pytest.fixture
def me(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def start(client: Client, next_url: str = "") -> str:
    response = client.get("/connect/openrouter/", {"next": next_url} if next_url else {})
    assert response.status_code == 302
    return response["Location"]


def test_connecting_stores_a_working_key_and_returns_where_the_user_started(
    me: Client, user: User, sandbox_url: str
) -> None:
    authorize = urlsplit(start(me, "/chat/"))
    params = parse_qs(authorize.query)
    assert f"{authorize.scheme}://{authorize.netloc}" == sandbox_url
    assert authorize.path == "/auth"
    assert params["code_challenge_method"] == ["S256"]
    assert params["key_label"] == [f"Switchboard — {user.email}"]
    callback = urlsplit(params["callback_url"][0])
    assert callback.path == "/connect/openrouter/callback/"
    state = parse_qs(callback.query)["state"][0]
    pending = me.session[connect_module.SESSION_KEY][state]
    # The challenge is derived from a verifier that only the session knows.
    assert params["code_challenge"] == [s256_challenge(pending["verifier"])]
    assert pending["verifier"] not in authorize.query

    back = urlsplit(consent(authorize.geturl()))
    response = me.get(f"{back.path}?{back.query}", follow=True)
    assert response.redirect_chain[-1][0] == "/chat/"
    assert "Your OpenRouter account is connected." in flash(response)
    key = OpenRouterKey.objects.get(user=user)
    assert key.source == "oauth"
    assert key.label == f"Switchboard — {user.email}"
    assert api_key_for(user=user).startswith("sk-or-v1-")
    assert key.hint.startswith("sk-or-v1-…")
    credits = me.get("/account/credits.json")
    assert credits.status_code == 200
    assert credits.json()["label"] == f"Switchboard — {user.email}"
    assert credits.json()["limit_remaining"] is not None


def test_the_account_page_shows_the_connection(me: Client, user: User) -> None:
    assert "Not connected" in me.get("/account/").content.decode()
    follow_connect(me)
    page = me.get("/account/").content.decode()
    key = OpenRouterKey.objects.get(user=user)
    assert "Connected" in page
    assert key.hint in page


def test_the_manage_key_link_follows_the_upstream_and_opens(me: Client, sandbox_url: str) -> None:
    follow_connect(me)
    key_hash = OpenRouterKey.objects.get().key_hash
    link = f"{sandbox_url}/keys/{key_hash}"
    assert f'href="{link}"' in me.get("/account/").content.decode()
    assert httpx.get(link).status_code == 200  # the sandbox's stand-in page
    with override_settings(OPENROUTER_URL="https://openrouter.example"):
        page = me.get("/account/").content.decode()
    assert f'href="https://openrouter.example/keys/{key_hash}"' in page


def test_an_open_redirect_through_next_is_refused(me: Client) -> None:
    response = follow_connect(me, next_url="https://evil.example/steal")
    assert response.redirect_chain[-1][0] == "/account/"  # type: ignore[attr-defined]


def test_cancel_stores_nothing_and_says_so(me: Client, user: User) -> None:
    response = follow_connect(me, decision="cancel")
    assert "Connecting OpenRouter was cancelled; nothing was stored." in flash(response)
    assert not OpenRouterKey.objects.filter(user=user).exists()


@pytest.mark.parametrize("state", ["", "forged-state-value"])
def test_a_missing_or_wrong_state_is_refused(me: Client, user: User, state: str) -> None:
    authorize = start(me)
    back = urlsplit(consent(authorize))
    code = parse_qs(back.query)["code"][0]
    response = me.get(back.path, {"state": state, "code": code}, follow=True)
    assert any("not valid here" in m for m in flash(response))
    assert not OpenRouterKey.objects.filter(user=user).exists()


def test_a_replayed_callback_is_refused(me: Client, user: User) -> None:
    back = urlsplit(consent(start(me)))
    first = me.get(f"{back.path}?{back.query}", follow=True)
    assert "Your OpenRouter account is connected." in flash(first)
    OpenRouterKey.objects.all().delete()
    second = me.get(f"{back.path}?{back.query}", follow=True)
    assert any("not valid here" in m for m in flash(second))
    assert not OpenRouterKey.objects.exists()


def test_a_state_from_another_session_is_refused(me: Client, other_user: User) -> None:
    back = urlsplit(consent(start(me)))
    intruder = Client()
    intruder.force_login(other_user)
    response = intruder.get(f"{back.path}?{back.query}", follow=True)
    assert any("not valid here" in m for m in flash(response))
    assert not OpenRouterKey.objects.exists()


def test_an_expired_state_is_refused(me: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    back = urlsplit(consent(start(me)))
    later = time.time() + connect_module.STATE_LIFETIME + 1
    monkeypatch.setattr(connect_module.time, "time", lambda: later)
    response = me.get(f"{back.path}?{back.query}", follow=True)
    assert any("longer than 10 minutes" in m for m in flash(response))
    assert not OpenRouterKey.objects.exists()


def test_an_upstream_refusal_of_the_code_stores_nothing(me: Client) -> None:
    back = urlsplit(consent(start(me)))
    state = parse_qs(back.query)["state"][0]
    session = me.session
    session[connect_module.SESSION_KEY][state]["verifier"] = "x" * 64  # not the one challenged
    session.save()
    response = me.get(f"{back.path}?{back.query}", follow=True)
    assert any("did not accept the authorization" in m for m in flash(response))
    assert not OpenRouterKey.objects.exists()


def test_an_upstream_outage_during_the_exchange_stores_nothing(me: Client) -> None:
    back = urlsplit(consent(start(me)))
    with override_settings(OPENROUTER_URL=f"http://127.0.0.1:{services.free_port()}"):
        response = me.get(f"{back.path}?{back.query}", follow=True)
    assert any("Could not reach OpenRouter" in m for m in flash(response))
    assert not OpenRouterKey.objects.exists()


def test_reconnecting_replaces_the_key_and_disconnecting_deletes_it(me: Client, user: User) -> None:
    follow_connect(me)
    first = api_key_for(user=user)
    follow_connect(me)
    assert OpenRouterKey.objects.filter(user=user).count() == 1
    assert api_key_for(user=user) != first
    response = me.post("/account/disconnect/", follow=True)
    assert any("disconnected" in m for m in flash(response))
    assert not OpenRouterKey.objects.filter(user=user).exists()


def test_connect_needs_a_signed_in_user(client: Client) -> None:
    response = client.get("/connect/openrouter/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_default_model_openrouter_does_not_list_is_refused(me: Client, user: User) -> None:
    """Every new chat would fail with it (the sandbox lists its models like OpenRouter)."""
    response = me.post("/account/", {"default_model": "openai/gpt-5-ultra"})
    assert response.status_code == 400  # refused, as every form of ours says it
    assert "OpenRouter has no chat model “openai/gpt-5-ultra”" in response.content.decode()
    response = me.post("/account/", {"default_model": "../../etc"})
    assert response.status_code == 400
    assert "A model id looks like openai/gpt-4o" in response.content.decode()
    user.refresh_from_db()
    assert user.default_model == ""

    response = me.post("/account/", {"default_model": "openai/gpt-4o:nitro"})
    assert response.status_code == 302 and flash(response) == ["Preferences saved."]
    user.refresh_from_db()
    assert user.default_model == "openai/gpt-4o:nitro"
