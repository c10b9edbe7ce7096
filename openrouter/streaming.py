"""Reading a streamed chat completion: SSE in, typed events out.

The SSE framing (comments, ``\\r\\n``, multi-line ``data:``, bytes split anywhere, UTF-8 split
across reads) is httpx-sse's job; this module turns OpenRouter's chunks into events and decides
how a stream ended. A stream ends in exactly one terminal event:

* ``Finished`` — ``data: [DONE]`` arrived: the answer is complete (``reason`` says why it stopped);
* ``Failed`` — an error status before the stream, or an ``error`` chunk inside it;
* ``Interrupted`` — the connection dropped or went silent past the idle limit without
  ``[DONE]``: whatever arrived is partial, never complete.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

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


StreamEvent = TextDelta | Usage | Finished | Failed | Interrupted
TERMINAL = (Finished, Failed, Interrupted)


def _usage(data: dict[str, Any]) -> Usage:
    cost = data.get("cost")
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        total_tokens=int(data.get("total_tokens") or 0),
        cost=float(cost) if cost is not None else None,
    )


def chunk_error(error: dict[str, Any]) -> OpenRouterError:
    """The error object of a mid-stream chunk (or of an error body) as our error."""
    code = error.get("code")
    status = code if isinstance(code, int) else 502
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    return OpenRouterError.from_status(status, str(error.get("message") or ""), metadata=metadata)


async def parse_stream(response: httpx.Response) -> AsyncIterator[StreamEvent]:
    """Events from an open 200 streaming response, ending in one terminal event.

    Network failures and idle timeouts while reading become ``Interrupted``; the caller's
    ``finally`` closes the response (which tells OpenRouter to stop generating).
    """
    model: str | None = None
    generation_id: str | None = response.headers.get("x-generation-id")
    finish_reason: str | None = None
    try:
        async for sse in EventSource(response).aiter_sse():
            if sse.data == "[DONE]":
                yield Finished(finish_reason, model, generation_id)
                return
            if not sse.data:
                continue
            try:
                chunk = json.loads(sse.data)
            except ValueError:
                continue  # a malformed chunk is skipped, not fatal (defensive parsing)
            if not isinstance(chunk, dict):
                continue
            model = chunk.get("model") or model
            generation_id = chunk.get("id") or generation_id
            if isinstance(chunk.get("error"), dict):
                yield Failed(chunk_error(chunk["error"]), model, generation_id)
                return
            for choice in chunk.get("choices") or []:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") or choice.get("message") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                if text:
                    yield TextDelta(text)
                finish_reason = choice.get("finish_reason") or finish_reason
            if isinstance(chunk.get("usage"), dict):
                yield _usage(chunk["usage"])
    except SSEError:
        yield Failed(OpenRouterError.bad_response("not an event stream"), model, generation_id)
        return
    except httpx.TimeoutException:
        yield Interrupted("stalled", model, generation_id)
        return
    except httpx.HTTPError as exc:
        yield Interrupted(f"connection lost ({type(exc).__name__})", model, generation_id)
        return
    yield Interrupted("ended without [DONE]", model, generation_id)
