"""The upstream clients are shared by every user's requests: a cookie the upstream sets must not
be sent back, on anyone's next request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from openrouter import client
from tests.openrouter.conftest import upstream_serving


class SetsCookies(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def _answer(self) -> None:
        self.seen.append(self.headers.get("Cookie"))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"data": {"label": "k"}}'
        self.send_response(200)
        self.send_header("Set-Cookie", "__cf_bm=someone; Path=/; HttpOnly")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[list[str | None]]:
    SetsCookies.seen = []
    # A host name: aiohttp's default jar never keeps cookies from an IP address anyway.
    with upstream_serving(SetsCookies, host="localhost"):
        yield SetsCookies.seen


def test_no_client_sends_back_a_cookie_the_upstream_set(upstream: list[str | None]) -> None:
    client.sync_client().get(client.api_url("key"))
    client.sync_client().get(client.api_url("key"))

    async def with_the_async_clients() -> None:
        for _ in range(2):
            await client.async_client().get(client.api_url("key"))
        for _ in range(2):
            async for _event in client.stream_chat("sk-or-v1-x", {"messages": []}):
                pass  # not an event stream: one Failed event
        await client.close_clients()

    asyncio.run(with_the_async_clients())
    assert len(upstream) == 6
    assert upstream == [None] * 6
