from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from openrouter import client
from openrouter.pkce import make_verifier, s256_challenge
from tests.factories import consent

CALLBACK = "http://127.0.0.1:9/callback?state=abc"


def authorized_code(challenge: str, method: str = "S256") -> str:
    """A code from the sandbox's consent page, as the browser would bring it back."""
    url = client.authorize_url(CALLBACK, challenge, method=method, key_label="tests")
    back = parse_qs(urlsplit(consent(url)).query)
    assert back["state"] == ["abc"]  # our own query string survives the round trip
    return back["code"][0]


@pytest.fixture(scope="session")
def api_key() -> str:
    verifier = make_verifier()
    return client.exchange_code(authorized_code(s256_challenge(verifier)), verifier).key
