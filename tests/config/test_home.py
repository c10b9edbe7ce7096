"""The front page: what Switchboard is for a visitor, the chat for someone signed in."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_visitor_reads_what_it_is_and_how_to_start(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Every OpenRouter model" in page
    assert 'href="/accounts/signup/"' in page and 'href="/accounts/login/"' in page


def test_someone_signed_in_goes_straight_to_the_chat(signed_in: Client) -> None:
    response = signed_in.get("/")
    assert response.status_code == 302 and response["Location"] == "/chat/"
