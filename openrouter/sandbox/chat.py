"""``POST /api/v1/chat/completions``: OpenAI-compatible replies, streamed or whole, and the faults.

Everything about a request is decided up front (``Plan``): which model answers, the exact
tokens, how it ends. The body generators then only pace and format, so a streamed and a whole
reply to the same request carry the same text.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from openrouter.sandbox import faults
from openrouter.sandbox.catalog import DEFAULT_CHAT_MODEL, Model, model_by_id
from openrouter.sandbox.config import Sandbox, sandbox_of
from openrouter.sandbox.faults import Fault, Kind
from openrouter.sandbox.replies import message_text, prompt_tokens, reply_text, tokenize
from openrouter.sandbox.responses import (
    bearer_key,
    error_response,
    json_object,
    not_json_page,
    positive_int,
    unauthorized,
)
from openrouter.sandbox.state import Generation
from openrouter.sandbox.streaming import ConnectionCut, Outcome, WatchedStream

PROCESSING = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
# With a tiny token delay and a thousand streams, waking up once per token would cost more than
# it shows; tokens that fall due while asleep go out together in one write instead.
MIN_SLEEP = 0.004
# With no delay at all, a stream still yields to the others every this many tokens.
BATCH_WITHOUT_DELAY = 64
_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass
class Plan:
    key: str
    model: Model
    fault: Fault | None
    tokens: list[str]
    finish_reason: str
    token_delay: float
    generation: Generation

    @property
    def kind(self) -> Kind | None:
        return self.fault.kind if self.fault else None


async def chat_completions(request: Request) -> Response:
    sandbox = sandbox_of(request)
    sandbox.state.counters.chat_requests += 1
    key = bearer_key(request)
    if key is None:
        return unauthorized(request)
    body = await json_object(request)
    if body is None:
        return error_response(400, "Invalid request: the body must be a JSON object")
    plan = _plan(sandbox, key, body)
    if isinstance(plan, Response):
        return plan
    if plan.kind is Kind.NOT_JSON:
        return not_json_page()
    sandbox.state.generation_put(plan.generation)
    headers = {"X-Generation-Id": plan.generation.id}
    if body.get("stream") is True:
        sandbox.state.counters.active_streams += 1
        headers |= {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return WatchedStream(
            _events(plan),
            media_type="text/event-stream",
            headers=headers,
            on_finish=_finisher(sandbox, plan, streamed=True),
        )
    return WatchedStream(
        _whole(plan),
        media_type="application/json",
        headers=headers,
        on_finish=_finisher(sandbox, plan, streamed=False),
    )


def _plan(sandbox: Sandbox, key: str, body: dict[str, Any]) -> Plan | Response:
    messages = body.get("messages")
    if messages is None and isinstance(body.get("prompt"), str):
        messages = [{"role": "user", "content": body["prompt"]}]
    if not isinstance(messages, list) or not messages:
        return error_response(400, "Invalid request: messages must be a non-empty array")
    if not all(isinstance(m, dict) for m in messages):
        return error_response(400, "Invalid request: each message must be an object")
    resolved = _resolve_model(body)
    if isinstance(resolved, Response):
        return resolved
    model, fault = resolved
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None and not positive_int(max_tokens):
        return error_response(400, "Invalid request: max_tokens must be a positive integer")
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        return error_response(400, "Invalid request: temperature must be between 0 and 2")
    if not model.is_free and sandbox.state.key_remaining(key) <= 0:
        return error_response(402, faults.FAULTS["sandbox/error-402"].message)

    text = reply_text(model=model.id, prompt=_last_user_text(messages), temperature=temperature)
    if fault is not None and fault.kind is Kind.XSS:
        heading, _, rest = text.partition("\n\n")
        text = f"{heading}\n\n{faults.XSS_PAYLOAD}\n\n{rest}"
    tokens, finish_reason = tokenize(text), "stop"
    if max_tokens is not None and len(tokens) > max_tokens:
        tokens, finish_reason = tokens[:max_tokens], "length"
    if fault is not None and fault.kind in (Kind.MIDSTREAM_ERROR, Kind.DROP, Kind.TRUNCATED):
        tokens, finish_reason = tokens[: faults.TOKENS_BEFORE_FAULT], "error"
    if fault is not None and fault.kind is Kind.STALL:
        tokens = tokens[: faults.TOKENS_BEFORE_STALL]
    slow = fault is not None and fault.kind is Kind.SLOW
    generation = Generation(
        id=f"gen-{int(time.time())}-{''.join(secrets.choice(_ALPHANUMERIC) for _ in range(20))}",
        model=model.id,
        streamed=body.get("stream") is True,
        tokens_prompt=prompt_tokens(messages),
    )
    return Plan(
        key=key,
        model=model,
        fault=fault,
        tokens=tokens,
        finish_reason=finish_reason,
        token_delay=faults.SLOW_TOKEN_DELAY if slow else sandbox.settings.token_delay,
        generation=generation,
    )


def _resolve_model(body: dict[str, Any]) -> tuple[Model, Fault | None] | Response:
    """The model that answers: ``model``, then each of ``models`` in turn, as upstream falls back.

    An unknown id or a model failing before the stream (``sandbox/error-…``) passes to the next
    candidate; when none is left, the last failure is the answer.
    """
    model, models = body.get("model"), body.get("models")
    if model is not None and not isinstance(model, str):
        return error_response(400, "Invalid request: model must be a string")
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) for m in models)
    ):
        return error_response(400, "Invalid request: models must be an array of strings")
    candidates = ([model] if model else []) + (models or []) or [DEFAULT_CHAT_MODEL]
    failure: Response | None = None
    for candidate in candidates:
        found = model_by_id(candidate)
        fault = faults.fault_for(candidate)
        if found is None:
            failure = error_response(400, f"{candidate} is not a valid model ID")
        elif fault is not None and fault.kind is Kind.HTTP_ERROR:
            failure = error_response(
                fault.status, fault.message, metadata=fault.metadata, headers=fault.headers
            )
        else:
            return found, fault
    assert failure is not None  # there is always at least one candidate
    return failure


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return message_text(messages[-1].get("content"))


def _finisher(sandbox: Sandbox, plan: Plan, *, streamed: bool) -> Callable[[Outcome], None]:
    """Books the end of a request, however it ended: counters, the generation record, spending."""

    def finish(outcome: Outcome) -> None:
        generation, counters = plan.generation, sandbox.state.counters
        if streamed:
            counters.active_streams -= 1
            if outcome is Outcome.CANCELLED:
                counters.cancelled_streams += 1
            else:
                counters.completed_streams += 1
        if generation.generation_ms is None:  # ended early: cancelled, cut or truncated
            generation.mark_done(finish_reason=None, cancelled=outcome is Outcome.CANCELLED)
        # Closing the connection stops billing: only the tokens produced are paid for.
        generation.total_cost = plan.model.cost(
            generation.tokens_prompt, generation.tokens_completion
        )
        sandbox.state.key_spend(plan.key, generation.total_cost)

    return finish


def _usage(plan: Plan) -> dict[str, Any]:
    generation = plan.generation
    cost = plan.model.cost(generation.tokens_prompt, generation.tokens_completion)
    return {
        "prompt_tokens": generation.tokens_prompt,
        "completion_tokens": generation.tokens_completion,
        "total_tokens": generation.tokens_prompt + generation.tokens_completion,
        "cost": cost,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _envelope(plan: Plan, obj: str) -> dict[str, Any]:
    return {
        "id": plan.generation.id,
        "provider": "Sandbox",
        "model": plan.model.id,
        "object": obj,
        "created": int(plan.generation.created),
    }


def _chunk(plan: Plan, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    choice = {
        "index": 0,
        "delta": delta,
        "finish_reason": finish_reason,
        "native_finish_reason": finish_reason,
        "logprobs": None,
    }
    return _envelope(plan, "chat.completion.chunk") | {"choices": [choice]}


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def _paced(tokens: list[str], delay: float) -> AsyncIterator[list[str]]:
    """Yields the tokens in batches: token ``i`` falls due ``i * delay`` after the start."""
    loop = asyncio.get_running_loop()
    start, sent = loop.time(), 0
    while sent < len(tokens):
        if delay > 0:
            due = min(len(tokens), int((loop.time() - start) / delay) + 1)
        else:
            due = min(len(tokens), sent + BATCH_WITHOUT_DELAY)
        yield tokens[sent:due]
        sent = due
        if sent < len(tokens):
            wait = start + sent * delay - loop.time() if delay > 0 else 0.0
            await asyncio.sleep(max(wait, MIN_SLEEP) if delay > 0 else 0)


async def _events(plan: Plan) -> AsyncIterator[bytes]:
    """The SSE body: comments, a role chunk, one chunk per token, then the ending."""
    generation = plan.generation
    if plan.kind is Kind.SLOW_CONNECT:
        await asyncio.sleep(faults.SLOW_CONNECT_SECONDS)
    yield PROCESSING
    # Upstream keeps the connection warm while the provider starts; the comment repeats.
    await asyncio.sleep(min(0.25, plan.token_delay * 10))
    yield PROCESSING + _event(_chunk(plan, {"role": "assistant", "content": ""}, None))

    # Every token chunk is the same JSON but for the token: format it once.
    head = json.dumps(_chunk(plan, {"content": "\0"}, None), separators=(",", ":"))
    before, _, after = head.partition('"\\u0000"')
    prefix, suffix = b"data: " + before.encode(), after.encode() + b"\n\n"
    async for batch in _paced(plan.tokens, plan.token_delay):
        generation.mark_first_token()
        generation.tokens_completion += len(batch)
        yield b"".join(prefix + json.dumps(token).encode() + suffix for token in batch)

    if plan.kind is Kind.MIDSTREAM_ERROR:
        generation.mark_done(finish_reason="error")
        chunk = _chunk(plan, {"content": ""}, "error") | {"error": faults.MIDSTREAM_ERROR}
        yield _event(chunk)
        return
    if plan.kind is Kind.DROP:
        raise ConnectionCut
    if plan.kind is Kind.TRUNCATED:
        return
    if plan.kind is Kind.STALL:
        await asyncio.sleep(faults.STALL_SECONDS)
        return
    generation.mark_done(finish_reason=plan.finish_reason)
    final = _chunk(plan, {"content": ""}, plan.finish_reason) | {"usage": _usage(plan)}
    yield _event(final) + DONE


async def _whole(plan: Plan) -> AsyncIterator[bytes]:
    """The non-streamed body, sent once the model would have finished writing it."""
    generation = plan.generation
    if plan.kind is Kind.SLOW_CONNECT:
        await asyncio.sleep(faults.SLOW_CONNECT_SECONDS)
    if plan.kind is Kind.STALL:
        await asyncio.sleep(faults.STALL_SECONDS)
        return
    await asyncio.sleep(len(plan.tokens) * plan.token_delay)
    generation.mark_first_token()
    generation.tokens_completion = len(plan.tokens)
    message = {"role": "assistant", "content": "".join(plan.tokens), "refusal": None}
    choice = {
        "index": 0,
        "logprobs": None,
        "finish_reason": plan.finish_reason,
        "native_finish_reason": plan.finish_reason,
        "message": message,
    }
    payload = _envelope(plan, "chat.completion") | {"choices": [choice], "usage": _usage(plan)}
    if plan.kind is Kind.MIDSTREAM_ERROR:
        # The status went out as 200 before the provider failed: the error is in the body.
        payload["error"] = faults.MIDSTREAM_ERROR
        generation.mark_done(finish_reason="error")
    data = json.dumps(payload).encode()
    if plan.kind in (Kind.DROP, Kind.TRUNCATED):
        yield data[: len(data) // 2]
        if plan.kind is Kind.DROP:
            raise ConnectionCut
        return
    generation.mark_done(finish_reason=generation.finish_reason or plan.finish_reason)
    yield data
