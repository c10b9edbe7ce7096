from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import override_settings

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


@contextmanager
def upstream_serving(
    handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1"
) -> Iterator[None]:
    """``handler`` answering as OpenRouter, from a thread, on a free port of ``host``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with override_settings(OPENROUTER_URL=f"http://{host}:{server.server_address[1]}"):
            yield
    finally:
        server.shutdown()
        server.server_close()
