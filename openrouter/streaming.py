"""Reading a streamed chat completion: SSE in, typed events out.

``SSEDecoder`` is the SSE framing, after the WHATWG spec (§9.2.6): lines end in ``\\n``,
``\\r\\n`` or ``\\r``; comments, multi-line ``data:``, ``event:``/``id:``/``retry:``; bytes may
be split anywhere, inside a UTF-8 character too (each line is decoded whole); an event without
its closing blank line is never dispatched. ``StreamParser`` turns OpenRouter's chunks into events
and decides how a stream ended. A stream ends in exactly one terminal event:

* ``Finished`` — ``data: [DONE]`` arrived: the answer is complete (``reason`` says why it stopped);
* ``Failed`` — an error status before the stream, or an ``error`` chunk inside it;
* ``Interrupted`` — the connection dropped or went silent past the idle limit without
  ``[DONE]``: whatever arrived is partial, never complete.

The transport (``openrouter.client.stream_chat``) feeds raw bytes and reports a dropped
connection, an idle limit or a body that just stopped (``StreamParser.interrupted``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from openrouter.errors import OpenRouterError


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float | None


@dataclass(frozen=True, slots=True)
class Served:
    """Who answers: the model and the generation id, as soon as the stream names them (before
    its first text; again if they change), so that a stream cut short still knows which
    generation to ask the usage of."""

    model: str | None
    generation_id: str | None


@dataclass(frozen=True, slots=True)
class Finished:
    reason: str | None
    model: str | None
    generation_id: str | None


@dataclass(frozen=True, slots=True)
class Failed:
    error: OpenRouterError
    model: str | None = None
    generation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Interrupted:
    reason: str
    model: str | None = None
    generation_id: str | None = None


StreamEvent = TextDelta | Usage | Served | Finished | Failed | Interrupted
TERMINAL = (Finished, Failed, Interrupted)


def _usage(data: dict[str, Any]) -> Usage:
    cost = data.get("cost")
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        total_tokens=int(data.get("total_tokens") or 0),
        cost=float(cost) if cost is not None else None,
    )


def chunk_error(error: dict[str, Any], model: str = "") -> OpenRouterError:
    """The error object of a mid-stream chunk (or of an error body) as our error; ``model`` as
    for ``OpenRouterError.from_status``."""
    code = error.get("code")
    status = code if isinstance(code, int) else 502
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    message = str(error.get("message") or "")
    return OpenRouterError.from_status(status, message, metadata=metadata, model=model)


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """Bytes in (split anywhere), dispatched events out, as the SSE spec says (§9.2.6)."""

    __slots__ = ("_data", "_event", "_first", "_last_id", "_partial", "_retry", "_skip_lf")

    def __init__(self) -> None:
        self._partial = b""  # an unfinished line
        self._skip_lf = False  # the last byte seen was a CR: a following LF ends no line
        self._first = True  # a byte-order mark may open the stream
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 0x0A:  # the LF of a CRLF split across reads
                chunk = chunk[1:]
        buffer = self._partial + chunk if self._partial else chunk
        if b"\r" in buffer:
            self._skip_lf = buffer[-1:] == b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._partial = lines.pop()
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if self._first:
            self._first = False
            if line.startswith(_BOM):
                line = line[3:]
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" opens a comment
            return None
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event or "message", self._last_id, self._retry)


def _lenient_loads(data: str) -> Any:
    """What orjson refuses and ``json`` reads (NaN; a lone surrogate, i.e. half an emoji), with
    every string value of an object made valid Unicode (U+FFFD for the broken half), as orjson's
    strings always are: the text must be storable and sendable as it is."""
    return json.loads(
        data,
        object_pairs_hook=lambda pairs: {
            key: _well_formed(value) if isinstance(value, str) else value for key, value in pairs
        },
    )


def _well_formed(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


class StreamParser:
    """An open 200 event stream's body, fed as its bytes arrive (split anywhere): OpenRouter's
    chunks in, typed events out, ending in one terminal event.

    ``generation_id`` is the ``x-generation-id`` header, if any: ``opening()`` says it at once.
    After a terminal event (``ended``) nothing more is read; the transport reports how a body
    that stopped early ended (``interrupted``) and closes the connection (which tells OpenRouter
    to stop generating). Plain calls, not an async generator of its own: each layer of those
    costs the relay's task a frame to resume and suspend on every chunk (docs/benchmarks.md).
    """

    __slots__ = ("_decoder", "_finish_reason", "_served", "ended", "generation_id", "model")

    def __init__(self, generation_id: str | None = None) -> None:
        self._decoder = SSEDecoder()
        self.model: str | None = None
        self.generation_id = generation_id
        self._finish_reason: str | None = None
        # Said once the stream names them (the header's id at once), and again if a chunk
        # changes them: a relay cut short asks OpenRouter about that generation
        # (chat.services.usage_fill).
        self._served: tuple[str | None, str | None] = (None, generation_id)
        self.ended = False

    def opening(self) -> list[StreamEvent]:
        """What is known before the body: the generation the header names."""
        return [Served(None, self.generation_id)] if self.generation_id else []

    def feed(self, piece: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self.ended:
            return events
        for sse in self._decoder.feed(piece):
            data = sse.data
            if data == "[DONE]":
                events.append(Finished(self._finish_reason, self.model, self.generation_id))
                self.ended = True
                return events
            if not data:
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                try:
                    chunk = _lenient_loads(data)
                except ValueError:
                    continue  # a malformed chunk is skipped, not fatal (defensive parsing)
            if not isinstance(chunk, dict):
                continue
            self.model = chunk.get("model") or self.model
            self.generation_id = chunk.get("id") or self.generation_id
            if (self.model, self.generation_id) != self._served:
                self._served = (self.model, self.generation_id)
                events.append(Served(self.model, self.generation_id))
            if isinstance(chunk.get("error"), dict):
                failed = chunk_error(chunk["error"], self.model or "")
                events.append(Failed(failed, self.model, self.generation_id))
                self.ended = True
                return events
            for choice in chunk.get("choices") or []:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") or choice.get("message") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                if text:
                    events.append(TextDelta(text))
                self._finish_reason = choice.get("finish_reason") or self._finish_reason
            if isinstance(chunk.get("usage"), dict):
                events.append(_usage(chunk["usage"]))
        return events

    def interrupted(self, reason: str) -> Interrupted:
        """The end of a body that stopped before a terminal event: partial, never complete."""
        self.ended = True
        return Interrupted(reason, self.model, self.generation_id)
