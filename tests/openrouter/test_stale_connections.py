"""A kept-alive upstream connection that the server closed while the event loop was busy is not
reused (``openrouter.client._CheckedConnector``): the answer would fail before it began."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from openrouter import client
from openrouter.streaming import Finished, TextDelta
from tests.openrouter.conftest import upstream_serving

BODY = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'


class ClosesIdleConnections(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 0.05  # an idle connection is closed after 50 ms, as servers do after a few seconds
    peers: list[int] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.peers.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[list[int]]:
    ClosesIdleConnections.peers = []
    with upstream_serving(ClosesIdleConnections):
        yield ClosesIdleConnections.peers


async def pooled_connection_after(seconds: float) -> Any:
    """One answer read to its end (its connection back in the pool), ``seconds`` in which the
    event loop runs nothing (as when it is saturated), then the connector asked for that
    connection again: what a request made at once would be sent on."""
    async for _event in client.stream_chat("sk-or-v1-x", {"messages": []}):
        pass
    connector = client.stream_session().connector
    assert connector is not None
    (key,) = list(connector._conns)  # type: ignore[attr-defined]
    time.sleep(seconds)  # noqa: ASYNC251  (on purpose: the loop must not read the close)
    return await connector._get(key, [])  # type: ignore[attr-defined]


def test_a_connection_the_server_closed_is_not_reused_before_the_loop_reads_the_close(
    upstream: list[int],
) -> None:
    async def run() -> tuple[Any, list[Any]]:
        found = await pooled_connection_after(0.3)  # the server closes after 50 ms idle
        events = [event async for event in client.stream_chat("sk-or-v1-x", {"messages": []})]
        await client.close_clients()
        return found, events

    found, events = asyncio.run(run())
    assert found is None  # aiohttp alone hands it out: the request fails, the answer is lost
    assert [type(event) for event in events] == [TextDelta, Finished]
    assert len(upstream) == 2 and upstream[0] != upstream[1]


def test_a_connection_still_open_is_reused(upstream: list[int]) -> None:
    async def run() -> Any:
        found = await pooled_connection_after(0.1)
        await client.close_clients()
        return found

    ClosesIdleConnections.timeout = 5
    try:
        found = asyncio.run(run())
    finally:
        ClosesIdleConnections.timeout = 0.05
    assert found is not None


def test_the_most_recently_used_connection_is_taken_first(upstream: list[int]) -> None:
    """The one least likely to be near the server's idle limit (aiohttp takes the oldest)."""

    async def answer() -> None:
        async for _event in client.stream_chat("sk-or-v1-x", {"messages": []}):
            pass

    async def run() -> tuple[Any, Any]:
        await asyncio.gather(answer(), answer())  # two connections, back in the pool in turn
        connector = client.stream_session().connector
        assert connector is not None
        ((key, idle),) = list(connector._conns.items())  # type: ignore[attr-defined]
        newest = idle[-1][0]
        found = await connector._get(key, [])  # type: ignore[attr-defined]
        await client.close_clients()
        return found.protocol, newest

    ClosesIdleConnections.timeout = 5
    try:
        taken, newest = asyncio.run(run())
    finally:
        ClosesIdleConnections.timeout = 0.05
    assert taken is newest
