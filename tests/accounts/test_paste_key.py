"""The paste-a-key path: checked against /key before it is stored."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts.models import OpenRouterKey, User
from accounts.services import api_key_for
from tests.factories import connect_user, make_user

pytestmark = pytest.mark.django_db


def messages_of(response: object) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]  # type: ignore[attr-defined]


def a_real_key() -> str:
    return api_key_for(user=connect_user(make_user()))


def test_a_working_key_is_checked_and_stored(signed_in: Client, user: User) -> None:
    key = a_real_key()
    response = signed_in.post("/account/key/", {"key": f"  {key}\n"}, follow=True)
    assert "Your OpenRouter key is checked and stored." in messages_of(response)
    stored = OpenRouterKey.objects.get(user=user)
    assert stored.source == "pasted"
    assert api_key_for(user=user) == key
    assert key not in response.content.decode()


@pytest.mark.parametrize(
    ("key", "sentence"),
    [
        ("sk-or-v1-" + "0" * 64, "OpenRouter did not accept this key"),
        ("hello", "does not look like an OpenRouter key"),
        ("sk-or-v1-has space" + "a" * 20, "does not look like an OpenRouter key"),
        ("sk-or-v1-deadbeef", "Copy the whole key"),  # the right start, cut short
        ("", "Paste a key first."),
    ],
)
def test_a_bad_key_is_refused_with_a_message(
    signed_in: Client, user: User, key: str, sentence: str
) -> None:
    response = signed_in.post("/account/key/", {"key": key}, follow=True)
    assert any(sentence in m for m in messages_of(response))
    assert not OpenRouterKey.objects.filter(user=user).exists()
