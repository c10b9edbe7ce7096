"""A kept-alive upstream connection that the server closed while the event loop was busy is not
reused (``openrouter.client._CheckedConnector``), and a request sent on one that closes before
answering is sent again on a new connection (``_resend_after_stale_connection``): the answer
would fail before it began."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from openrouter import client
from openrouter.streaming import Failed, Finished, TextDelta
from tests.openrouter.conftest import upstream_serving

BODY = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'


class AnswersOnKeptAliveConnections(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def read_request(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        pass


class ClosesIdleConnections(AnswersOnKeptAliveConnections):
    timeout = 0.05  # an idle connection is closed after 50 ms, as servers do after a few seconds
    peers: list[int] = []

    def do_POST(self) -> None:
        self.read_request()
        self.peers.append(self.client_address[1])
        self.answer()


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


class ClosesWithoutAnswering(AnswersOnKeptAliveConnections):
    """Answers the first request of a connection; closes without a word at the ``drop_from``-th
    (a server closing a kept-alive connection as the request arrives, the race the readable
    check cannot see)."""

    drop_from = 2
    seen: list[tuple[int, int, bytes, bool]] = []  # (client port, nth on it, body, answered)

    def do_POST(self) -> None:
        body = self.read_request()
        self.nth = getattr(self, "nth", 0) + 1
        answered = self.nth < self.drop_from
        self.seen.append((self.client_address[1], self.nth, body, answered))
        if answered:
            self.answer()
        else:
            self.close_connection = True


@pytest.fixture
def closing() -> Iterator[list[tuple[int, int, bytes, bool]]]:
    ClosesWithoutAnswering.seen = []
    ClosesWithoutAnswering.drop_from = 2
    with upstream_serving(ClosesWithoutAnswering):
        yield ClosesWithoutAnswering.seen


async def answer(text: str = "hello") -> list[type]:
    payload = {"messages": [{"role": "user", "content": text}]}
    return [type(event) async for event in client.stream_chat("sk-or-v1-x", payload)]


def test_a_request_whose_kept_alive_connection_closes_is_sent_again_on_a_new_one(
    closing: list[tuple[int, int, bytes, bool]],
) -> None:
    async def run() -> tuple[list[type], list[type]]:
        first = await answer("first")
        second = await answer("second")  # on the first's connection, which closes
        await client.close_clients()
        return first, second

    first, second = asyncio.run(run())
    assert first == second == [TextDelta, Finished]  # without the resend: Failed (network)
    (port, _, _, _), (reused, nth, dropped, _), (fresh, again, resent, answered) = closing
    assert reused == port and nth == 2  # the second went out on the kept-alive connection
    assert fresh != port and again == 1 and answered  # and again, once, on a new one
    assert resent == dropped and b"second" in resent


def test_a_new_connection_that_closes_is_not_sent_again(
    closing: list[tuple[int, int, bytes, bool]],
) -> None:
    """Nothing says a server that closes a connection it had not kept alive did not take the
    request: a POST is not sent twice then."""
    ClosesWithoutAnswering.drop_from = 1

    async def run() -> list[Any]:
        events = [event async for event in client.stream_chat("sk-or-v1-x", {"messages": []})]
        await client.close_clients()
        return events

    (event,) = asyncio.run(run())
    assert isinstance(event, Failed) and event.error.code == "network"
    assert len(closing) == 1


def test_the_resend_takes_a_new_connection_not_another_kept_alive_one(
    closing: list[tuple[int, int, bytes, bool]],
) -> None:
    async def run() -> list[type]:
        await asyncio.gather(answer(), answer())  # two connections kept alive, both closing next
        third = await answer()
        await client.close_clients()
        return third

    assert asyncio.run(run()) == [TextDelta, Finished]
    ports = [port for port, _, _, _ in closing]
    assert len(closing) == 4 and len(set(ports)) == 3  # a pooled one, dropped; then a new one
