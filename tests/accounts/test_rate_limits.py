import pytest
from django.test import Client

from accounts.models import User
from tests.factories import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ratelimit_clock_still")]


def test_starting_the_connect_flow_too_often_is_refused_with_a_sentence(signed_in: Client) -> None:
    statuses = [signed_in.get("/connect/openrouter/").status_code for _ in range(11)]
    assert statuses[:10] == [302] * 10
    assert statuses[10] == 429
    response = signed_in.get("/connect/openrouter/")
    assert "Too many requests" in response.content.decode()


def test_pasting_keys_too_often_is_refused(signed_in: Client) -> None:
    statuses = [signed_in.post("/account/key/", {"key": "x"}).status_code for _ in range(6)]
    assert statuses[:5] == [302] * 5
    assert statuses[5] == 429


def test_repeated_failed_logins_lock_the_account_for_a_while(client: Client, user: User) -> None:
    for _ in range(5):
        client.post("/accounts/login/", {"login": user.email, "password": "wrong"})
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
