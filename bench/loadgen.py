"""The load generator: one process, uvloop, N concurrent streaming clients, timestamps per chunk.

Run by ``bench.chat_relay`` as a child process (``python -m bench.loadgen SPEC.json``) so that its
CPU is its own and the orchestrator's sampling never shares its event loop or its GIL. It imports
no Django and no HTTP library: both clients below are asyncio ``Protocol`` objects that take the
timestamp in ``data_received``, before any parsing, so the client adds as little as it can to what
it measures and costs as little CPU as it can.

* ``sse``: HTTP/1.1 POST on a kept-alive connection, chunked transfer decoding, SSE framing,
  ``json.loads`` of each event (the direct upstream and LiteLLM's proxy).
* ``get``: the same connection for plain GETs (pages): the latency is the whole response.
* ``ws``: websockets' sans-I/O ``ClientProtocol`` (permessage-deflate offered, as browsers do),
  a ``send`` message per stream, then ``delta`` frames up to ``done`` (Switchboard).

Every client runs streams back to back from the moment it starts (starts are spread over
``ramp`` seconds so that phases are uniform, as with real users) until the measurement window
closes. TTFT counts from the request leaving the client on an already open connection to the
first non-empty content chunk; a gap is the time between two content chunks of one stream.
Only streams sent inside the window count for TTFT, only chunks arriving inside it for gaps and
throughput. Markers on stdout (``primed``, ``warm``, ``end``, ``drained``) let the orchestrator
read the servers' CPU and memory at the window's edges. The results go to ``spec["result"]``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast

perf = time.perf_counter


@dataclass
class Window:
    warm: float = float("inf")  # perf_counter() at which measurement starts
    end: float = float("inf")

    def inside(self, t: float) -> bool:
        return self.warm <= t < self.end


@dataclass
class Totals:
    """Everything recorded; lists of floats are cheap enough at tens of thousands per second."""

    window: Window = field(default_factory=Window)
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    chunks_in_window: int = 0
    chars_in_window: int = 0
    streams_started: int = 0
    streams_ok: int = 0
    streams_in_window: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1


class Stream:
    """One request/answer as the client sees it."""

    __slots__ = ("chars", "chunks", "done", "ended", "error", "first", "last", "sent", "totals")

    def __init__(self, totals: Totals, sent: float) -> None:
        self.totals = totals
        self.sent = sent
        self.first = 0.0
        self.last = 0.0
        self.chunks = 0
        self.chars = 0
        self.error: str | None = None
        self.ended = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def chunk(self, now: float, chars: int) -> None:
        totals = self.totals
        window = totals.window
        if self.chunks == 0:
            self.first = now
            if window.warm <= self.sent < window.end:
                totals.ttft.append(now - self.sent)
        elif window.warm <= now < window.end:
            totals.gaps.append(now - self.last)
        if window.warm <= now < window.end:
            totals.chunks_in_window += 1
            totals.chars_in_window += chars
        self.last = now
        self.chunks += 1
        self.chars += chars

    def finish(self, error: str | None = None) -> None:
        if not self.done.done():
            self.ended = perf()
            self.error = error
            self.done.set_result(None)


# --- SSE over HTTP/1.1 ---------------------------------------------------------------------------


class SSEConnection(asyncio.Protocol):
    """A kept-alive HTTP/1.1 connection carrying one streamed response at a time."""

    def __init__(self, sse: bool = True) -> None:
        self.sse_mode = sse  # False: a plain response (a page), read whole and not parsed
        self.transport: asyncio.Transport | None = None
        self.stream: Stream | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reset()

    def _reset(self) -> None:
        self.head = True
        self.buf = bytearray()
        self.sse = bytearray()
        self.chunked = False
        self.remaining = -1  # content-length body (error answers)
        self.status = 0
        self.finished_stream = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            self.stream.finish("connection closed mid-stream")
        if not self.closed.done():
            self.closed.set_result(None)

    def request(self, stream: Stream, payload: bytes) -> None:
        self._reset()
        self.stream = stream
        assert self.transport is not None
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        now = perf()
        self.buf += data
        if self.head:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            del self.buf[: end + 4]
            self.head = False
            self.status = int(head[9:12])
            self.chunked = b"transfer-encoding: chunked" in head
            if not self.chunked:
                at = head.find(b"content-length:")
                self.remaining = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else -1
        if self.chunked:
            self._dechunk(now)
        else:
            self.sse += self.buf
            self.buf.clear()
            if self.remaining >= 0 and len(self.sse) >= self.remaining:
                self._end(now)
            return
        if self.status == 200 and self.sse_mode:
            self._events(now)

    def _dechunk(self, now: float) -> None:
        buf = self.buf
        while True:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(buf[:line_end]).split(b";", 1)[0], 16)
            if size == 0:
                if len(buf) < line_end + 4:
                    return
                del buf[: line_end + 4]
                if self.status == 200 and self.sse_mode:
                    self._events(now)
                self._end(now)
                return
            if len(buf) < line_end + 2 + size + 2:
                return
            self.sse += buf[line_end + 2 : line_end + 2 + size]
            del buf[: line_end + 2 + size + 2]

    def _events(self, now: float) -> None:
        sse = self.sse
        if b"\r" in sse:
            sse[:] = sse.replace(b"\r\n", b"\n")
        stream = self.stream
        while stream is not None:
            at = sse.find(b"\n\n")
            if at < 0:
                return
            event = bytes(sse[:at])
            del sse[: at + 2]
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue  # comments (": OPENROUTER PROCESSING"), event names, ids
                data = line[5:].strip()
                if data == b"[DONE]":
                    self.finished_stream = True
                    continue
                try:
                    chunk = json.loads(data)
                except ValueError:
                    stream.finish("malformed chunk")
                    continue
                if chunk.get("error"):
                    stream.finish("error chunk")
                    continue
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        stream.chunk(now, len(text))

    def _end(self, now: float) -> None:
        stream, self.stream = self.stream, None
        if stream is None:
            return
        if self.status != 200:
            stream.finish(f"HTTP {self.status}")
        elif not self.sse_mode:
            stream.chars = len(self.sse)
            stream.finish(None)
        elif not self.finished_stream:
            stream.finish("ended without [DONE]")
        else:
            stream.finish(None)


# --- websockets (sans-I/O) -----------------------------------------------------------------------


class WSConnection(asyncio.Protocol):
    """A browser-like websocket: handshake with a session cookie, then one stream at a time."""

    def __init__(self, uri: str, origin: str, cookie: str, deflate: bool, protocol: WSChat) -> None:
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        from websockets.typing import Origin
        from websockets.uri import parse_uri

        extensions = [ClientPerMessageDeflateFactory()] if deflate else None
        self.ws = ClientProtocol(
            parse_uri(uri), origin=Origin(origin), extensions=extensions, max_size=2**22
        )
        self.cookie = cookie
        self.chat = protocol
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.stream: Stream | None = None
        self.fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        request = self.ws.connect()
        request.headers["Cookie"] = self.cookie
        self.ws.send_request(request)
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            elif self.ws.close_expected():
                self.transport.write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("websocket closed before it opened"))
        if self.stream is not None:
            self.stream.finish("websocket closed mid-stream")
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = perf()
        from websockets.frames import Opcode
        from websockets.http11 import Response

        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if self.ws.handshake_exc is not None:
                    self.opened.set_exception(ConnectionError(f"handshake: {event.status_code}"))
                elif not self.opened.done():
                    self.opened.set_result(None)
                continue
            if event.opcode is Opcode.TEXT or (event.opcode is Opcode.CONT and self.fragments):
                self.fragments.append(event.data)
                if event.fin:
                    message = b"".join(self.fragments)
                    self.fragments.clear()
                    self._message(now, message)
        self._flush()

    def _message(self, now: float, message: bytes) -> None:
        stream = self.stream
        if stream is None:
            return
        outcome = self.chat.receive(json.loads(message))
        if isinstance(outcome, int):
            if outcome:
                stream.chunk(now, outcome)
        elif outcome is not None:
            self.stream = None
            stream.finish(outcome or None)

    def request(self, stream: Stream, payload: str) -> None:
        self.stream = stream
        self.ws.send_text(payload.encode())
        self._flush()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.ws.send_close(1000)
                self._flush()
            except Exception:  # noqa: S110  (closing anyway)
                pass
            self.transport.close()


class WSChat:
    """Switchboard's chat protocol as seen by the bench: what to send, how to read frames.

    ``receive`` returns the number of characters for a content frame (0 for other frames that do
    not end the stream), ``""`` for a successful end, or an error reason.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.send = json.dumps(spec["ws_message"])
        self.delta_type = spec.get("ws_delta_type", "delta")
        self.delta_field = spec.get("ws_delta_field", "text")
        self.done_types = set(spec.get("ws_done_types", ["done"]))
        self.error_types = set(spec.get("ws_error_types", ["error"]))

    def receive(self, frame: dict[str, Any]) -> int | str | None:
        kind = frame.get("type")
        if kind == self.delta_type:
            return len(frame.get(self.delta_field) or "")
        if kind in self.done_types:
            message = frame.get("message")
            state = message.get("state") if isinstance(message, dict) else frame.get("state")
            if state in (None, "complete"):
                return ""
            error = message.get("error") if isinstance(message, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            return f"ended {state}" + (f" ({code})" if code else "")
        if kind in self.error_types:
            return f"error frame: {str(frame.get('code') or frame.get('message'))[:40]}"
        return 0


# --- driving -------------------------------------------------------------------------------------


def mark(name: str) -> None:
    sys.stdout.write(f"{name} {time.time():.6f}\n")
    sys.stdout.flush()


async def run_sse_client(
    spec: dict[str, Any], totals: Totals, start_at: float, stop: float, count: int = 0
) -> None:
    """Streams back to back until ``stop`` (or ``count`` streams when given)."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - perf()))
    payload = spec["http_request"].encode("latin-1")
    plain = spec["mode"] == "get"
    connection: SSEConnection | None = None
    while perf() < stop and (not count or totals.streams_started < count):
        if connection is None or connection.closed.done():
            try:
                _, connection = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: SSEConnection(sse=not plain), spec["host"], spec["port"]
                    ),
                    10,
                )
            except (OSError, TimeoutError):
                totals.error("connect failed")
                await asyncio.sleep(0.5)
                continue
        stream = Stream(totals, perf())
        totals.streams_started += 1
        connection.request(stream, payload)
        await finish(stream, totals, spec)
        if plain and stream.error is None and totals.window.inside(stream.sent):
            totals.ttft.append(stream.ended - stream.sent)  # a page: its whole response time
        if stream.error is not None and connection.transport is not None:
            connection.transport.close()
            connection = None
    if connection is not None and connection.transport is not None:
        connection.transport.close()


async def run_ws_client(
    spec: dict[str, Any], cookie: str, totals: Totals, start_at: float, stop: float, count: int = 0
) -> None:
    loop = asyncio.get_running_loop()
    chat = WSChat(spec)
    await asyncio.sleep(max(0.0, start_at - perf()))
    connection: WSConnection | None = None

    def factory() -> WSConnection:
        return WSConnection(spec["ws_uri"], spec["origin"], cookie, spec.get("deflate", True), chat)

    try:
        while perf() < stop and (not count or totals.streams_started < count):
            if connection is None or connection.closed.done():
                try:
                    _, connection = await asyncio.wait_for(
                        loop.create_connection(factory, spec["host"], spec["port"]), 10
                    )
                    await asyncio.wait_for(connection.opened, 10)
                except (OSError, TimeoutError, ConnectionError) as exc:
                    totals.error(f"ws connect failed: {exc}"[:60])
                    connection = None
                    await asyncio.sleep(0.5)
                    continue
            stream = Stream(totals, perf())
            totals.streams_started += 1
            connection.request(stream, chat.send)
            await finish(stream, totals, spec)
    finally:
        if connection is not None:
            connection.close()


async def finish(stream: Stream, totals: Totals, spec: dict[str, Any]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(stream.done), spec["stream_timeout"])
    except TimeoutError:
        stream.finish("timeout")
    expected = spec.get("expected_chars")
    if stream.error is None and expected and stream.chars != expected:
        stream.error = f"incomplete text ({stream.chars}/{expected} chars)"
    if stream.error is None:
        totals.streams_ok += 1
        if totals.window.inside(stream.sent):
            totals.streams_in_window += 1
    else:
        totals.error(stream.error)


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    totals = Totals()
    n = spec["streams"]
    cookies: list[str] = spec.get("cookies") or []

    def client(i: int, start_at: float, stop: float) -> Any:
        if spec["mode"] in ("sse", "get"):
            return run_sse_client(spec, totals, start_at, stop)
        return run_ws_client(spec, cookies[i], totals, start_at, stop)

    # Priming: one stream end to end before anything is measured (imports, pools, caches).
    prime = Totals()
    if spec["mode"] in ("sse", "get"):
        await run_sse_client(spec, prime, perf(), perf() + 60, count=1)
    else:
        cookie = spec.get("prime_cookie") or cookies[0]
        await run_ws_client(spec, cookie, prime, perf(), perf() + 60, count=1)
    mark("primed")
    await asyncio.sleep(spec.get("settle", 0.5))

    gc.collect()
    gc.freeze()  # keeps the collector's pauses out of the client's own timestamps
    t0 = perf()
    ramp, warmup, duration = spec["ramp"], spec["warmup"], spec["duration"]
    totals.window.warm = t0 + ramp + warmup
    totals.window.end = totals.window.warm + duration
    tasks = [
        asyncio.ensure_future(client(i, t0 + ramp * i / n, totals.window.end)) for i in range(n)
    ]
    await asyncio.sleep(max(0.0, totals.window.warm - perf()))
    mark("warm")
    cpu_warm = time.process_time()
    await asyncio.sleep(max(0.0, totals.window.end - perf()))
    mark("end")
    cpu_end = time.process_time()
    peak_streams = n
    _, pending = await asyncio.wait(tasks, timeout=spec["grace"])
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
        totals.error("still streaming at the hard deadline")
    mark("drained")
    return {
        "streams": peak_streams,
        "window_s": duration,
        "ttft_s": totals.ttft,
        "gaps_s": totals.gaps,
        "chunks_in_window": totals.chunks_in_window,
        "chars_in_window": totals.chars_in_window,
        "streams_started": totals.streams_started,
        "streams_ok": totals.streams_ok,
        "streams_in_window": totals.streams_in_window,
        "errors": totals.errors,
        "prime_errors": prime.errors,
        "loadgen_cpu_s": cpu_end - cpu_warm,
        "loadgen_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def run(spec_path: str) -> None:
    import uvloop

    with open(spec_path) as handle:
        spec = json.load(handle)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = uvloop.run(main(spec))
    with open(spec["result"], "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    run(sys.argv[1])
