"""Sentences asking the user to (re)connect OpenRouter link to where they can, on HTML pages."""

import pytest
from django.test import Client

from accounts.services import NotConnected
from chat.models import Conversation
from generations.models import Generation
from openrouter.errors import OpenRouterError
from openrouter.website import credits_url
from tests.factories import make_user

pytestmark = pytest.mark.django_db

RECONNECT = '<a href="/account/#openrouter">Reconnect your OpenRouter account</a>.'
CONNECT = '<a href="/account/#openrouter">Connect your OpenRouter account</a> first.'


def test_a_refused_keys_sentence_links_to_the_account_page_on_a_3d_object_and_its_card(
    client: Client,
) -> None:
    user = make_user()
    client.force_login(user)
    refused = OpenRouterError.from_status(401)
    generation = Generation.objects.create(
        user=user, prompt="a cube", state="failed", error_code="401", error_message=refused.message
    )
    assert RECONNECT in client.get(generation.get_absolute_url()).content.decode()
    assert RECONNECT in client.get("/generations/").content.decode()


def test_a_3d_object_made_without_a_key_says_where_to_connect(client: Client) -> None:
    user = make_user()
    client.force_login(user)
    Generation.objects.create(
        user=user,
        prompt="a cube",
        state="failed",
        error_code="not_connected",
        error_message=NotConnected.message,
    )
    assert CONNECT in client.get("/generations/").content.decode()
    # The same sentence as a flash message, after asking for one without a key.
    page = client.post("/generations/new/", {"prompt": "a cone"}, follow=True)
    assert f'<p class="message error">{CONNECT}</p>' in page.content.decode()


def test_a_chat_answer_refused_for_its_key_links_to_the_account_page(client: Client) -> None:
    user = make_user()
    client.force_login(user)
    conversation = Conversation.objects.create(user=user, title="Hi")
    conversation.messages.create(role="user", content="Hello?")
    conversation.messages.create(
        role="assistant",
        state="error",
        error_code="401",
        error_message=OpenRouterError.from_status(401).message,
    )
    page = client.get(f"/chat/{conversation.pk}/").content.decode()
    assert (
        f'<p class="msg-error" role="alert">Your OpenRouter key was not accepted. {RECONNECT}'
        in page
    )
    assert RECONNECT in page


def failed_generation_page(client: Client, code: str, said: str) -> str:
    """The page of a new user's generation that failed with ``code`` and the sentence ``said``."""
    user = make_user()
    client.force_login(user)
    generation = Generation.objects.create(
        user=user, prompt="a cube", state="failed", error_code=code, error_message=said
    )
    return client.get(generation.get_absolute_url()).content.decode()


def test_the_rest_of_a_sentence_stays_escaped_text(client: Client) -> None:
    said = "<b>bad</b>. Connect your OpenRouter account first."
    page = failed_generation_page(client, "400", said)
    assert f"&lt;b&gt;bad&lt;/b&gt;. {CONNECT}" in page


def test_an_answer_and_a_3d_object_out_of_credits_link_to_the_credits_page(
    client: Client,
) -> None:
    user = make_user()
    client.force_login(user)
    sentence = OpenRouterError.from_status(402).message
    conversation = Conversation.objects.create(user=user, title="Hi")
    conversation.messages.create(role="user", content="Hello?")
    conversation.messages.create(
        role="assistant", state="error", error_code="402", error_message=sentence
    )
    generation = Generation.objects.create(
        user=user, prompt="a cube", state="failed", error_code="402", error_message=sentence
    )
    link = f'<a href="{credits_url()}" target="_blank" rel="noopener">Add credits on OpenRouter</a>'
    said = f"Your OpenRouter credits are used up. {link}, then try again."
    for path in [f"/chat/{conversation.pk}/", "/generations/", generation.get_absolute_url()]:
        assert said in client.get(path).content.decode(), path


def test_the_credits_link_comes_from_the_settings_never_from_the_text(client: Client) -> None:
    said = 'Add credits on OpenRouter <a href="https://evil.example">here</a>'
    page = failed_generation_page(client, "402", said)
    assert f'<a href="{credits_url()}" target="_blank" rel="noopener">' in page
    assert '<a href="https://evil.example">' not in page
    assert "&lt;a href=" in page
