"""The client against the sandbox over real HTTP: PKCE, key info, models, errors, streams."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from django.test import override_settings

from openrouter import client
from openrouter.errors import OpenRouterError
from openrouter.pkce import make_verifier, s256_challenge
from openrouter.streaming import (
    Failed,
    Finished,
    Interrupted,
    Served,
    StreamEvent,
    TextDelta,
    Usage,
)
from openrouter.website import credits_url
from tests import services
from tests.openrouter.conftest import authorized_code

HELLO = {"messages": [{"role": "user", "content": "Tell me about lighthouses"}]}


async def collect(api_key: str, payload: dict[str, Any]) -> list[StreamEvent]:
    return [event async for event in client.stream_chat(api_key, payload)]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --- PKCE exchange ------------------------------------------------------------------------------


def test_an_s256_exchange_issues_a_key_that_the_api_accepts() -> None:
    verifier = make_verifier()
    issued = client.exchange_code(authorized_code(s256_challenge(verifier)), verifier)
    assert issued.key.startswith("sk-or-v1-")
    assert client.key_info(issued.key)["label"] == "tests"


def test_a_plain_exchange_works_too() -> None:
    verifier = make_verifier()
    code = authorized_code(verifier, method="plain")
    assert client.exchange_code(code, verifier, "plain").key.startswith("sk-or-v1-")


def test_the_exchange_refuses_a_wrong_verifier_a_reused_code_and_a_method_mismatch() -> None:
    verifier = make_verifier()
    code = authorized_code(s256_challenge(verifier))
    with pytest.raises(OpenRouterError) as wrong:
        client.exchange_code(code, make_verifier())
    assert wrong.value.status == 403
    assert not wrong.value.retryable

    code = authorized_code(s256_challenge(verifier))
    client.exchange_code(code, verifier)
    with pytest.raises(OpenRouterError) as reused:
        client.exchange_code(code, verifier)
    assert reused.value.status == 403

    code = authorized_code(s256_challenge(verifier))
    with pytest.raises(OpenRouterError) as mismatch:
        client.exchange_code(code, verifier, "plain")
    assert mismatch.value.status == 400


def test_a_request_without_a_valid_key_is_a_401_with_a_sentence() -> None:
    with pytest.raises(OpenRouterError) as error:
        client.key_info("sk-or-v1-" + "0" * 64)
    assert error.value.status == 401
    assert "Reconnect your OpenRouter account" in error.value.message


# --- requests -----------------------------------------------------------------------------------


def test_every_request_carries_attribution_and_the_key_only_as_bearer(api_key: str) -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(
        lambda request: seen.append(request) or httpx.Response(200, json={"data": {}})
    )
    original = client._sync_client
    client._sync_client = (__import__("os").getpid(), httpx.Client(transport=transport))
    try:
        with override_settings(SITE_URL="https://switchboard.example", SITE_NAME="Switchboard"):
            client.key_info(api_key)
    finally:
        client._sync_client = original
    (request,) = seen
    assert request.headers["HTTP-Referer"] == "https://switchboard.example"
    assert request.headers["X-Title"] == "Switchboard"
    assert request.headers["X-OpenRouter-Title"] == "Switchboard"
    assert request.headers["User-Agent"].startswith("Switchboard/")
    assert request.headers["Authorization"] == f"Bearer {api_key}"
    assert api_key not in str(request.url)


def test_one_pooled_client_per_process() -> None:
    assert client.sync_client() is client.sync_client()


def test_the_model_list_has_prices_as_strings() -> None:
    models = client.list_models()
    assert len(models) >= 15
    assert all(isinstance(m["pricing"]["prompt"], str) for m in models)
    assert any(m["id"].endswith(":free") for m in models)


def test_a_429_advises_a_paid_variant_only_for_a_free_model() -> None:
    limit = "Rate limit exceeded: free-models-per-min"
    free = OpenRouterError.from_status(429, limit, model="google/gemma-2-9b-it:free")
    paid = OpenRouterError.from_status(429, limit, retry_after=12, model="openai/gpt-4o")
    assert "paid variant" in free.message and "try again in a moment" in free.message
    assert "free" not in paid.message.lower() and "try again in 12 s" in paid.message
    # The account's default model, not named: OpenRouter's words tell which limit it hit.
    assert "paid variant" in OpenRouterError.from_status(429, limit).message
    assert "free" not in OpenRouterError.from_status(429, "Rate limit exceeded").message.lower()


def test_network_failures_and_timeouts_are_openrouter_errors() -> None:
    dead = f"http://127.0.0.1:{services.free_port()}"
    with override_settings(OPENROUTER_URL=dead), pytest.raises(OpenRouterError) as error:
        client.list_models()
    assert error.value.status is None
    assert error.value.retryable
    assert error.value.code == "network"
    assert "Could not reach OpenRouter" in error.value.message


# --- completions and streams --------------------------------------------------------------------


async def test_a_streamed_reply_reassembles_exactly_to_the_non_streamed_one(api_key: str) -> None:
    events = await collect(api_key, {**HELLO, "model": "openai/gpt-4o"})
    whole = await asyncio.to_thread(client.complete, api_key, {**HELLO, "model": "openai/gpt-4o"})
    assert text_of(events) == whole["choices"][0]["message"]["content"]
    assert len([e for e in events if isinstance(e, TextDelta)]) > 10
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.completion_tokens > 0
    assert usage.cost is not None and usage.cost > 0
    final = events[-1]
    assert isinstance(final, Finished)
    assert final.reason == "stop"
    assert final.model == "openai/gpt-4o"
    assert final.generation_id and final.generation_id.startswith("gen-")
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    served = [e for e in events[:first_text] if isinstance(e, Served)]  # known before any text
    assert served[-1] == Served("openai/gpt-4o", final.generation_id)
    assert not any(isinstance(e, Served) for e in events[first_text:])  # and not said again


async def test_without_a_model_the_account_default_serves_and_is_named(api_key: str) -> None:
    events = await collect(api_key, HELLO)
    final = events[-1]
    assert isinstance(final, Finished)
    assert final.model == "openai/gpt-4o-mini"


async def test_max_tokens_ends_with_reason_length(api_key: str) -> None:
    events = await collect(api_key, {**HELLO, "max_tokens": 5})
    assert isinstance(events[-1], Finished)
    assert events[-1].reason == "length"


@pytest.mark.parametrize(
    ("status", "retryable", "retry_after", "words"),
    [
        (400, False, None, "could not accept this request"),
        (401, False, None, "Reconnect your OpenRouter account"),
        (402, False, None, "credits are used up. Add credits on OpenRouter"),
        (403, False, None, "refused this request"),
        (408, True, None, "took too long"),
        (429, True, 7.0, "try again in 7 s"),
        (451, False, None, "flagged"),
        (500, True, None, "unexpected error (HTTP 500)"),
        (502, True, None, "down or sent an invalid response"),
        (503, True, 3.0, "No provider can serve this model right now. Try again in 3 s"),
    ],
)
async def test_each_error_status_before_the_stream_is_one_failed_event(
    api_key: str, status: int, retryable: bool, retry_after: float | None, words: str
) -> None:
    events = await collect(api_key, {**HELLO, "model": f"sandbox/error-{status}"})
    assert len(events) == 1
    (failed,) = events
    assert isinstance(failed, Failed)
    assert failed.error.status == status
    assert failed.error.retryable is retryable
    assert failed.error.retry_after == retry_after
    assert words in failed.error.message


def test_a_402_says_where_to_add_credits_without_an_address_that_breaks_mid_word() -> None:
    """Pages link the words to the credits page (tests/accounts/test_connect_links.py); the
    sentence itself is read in narrow cards, JSON and the admin, so it carries no URL."""
    message = OpenRouterError.from_status(402).message
    assert message == (
        "Your OpenRouter credits are used up. Add credits on OpenRouter, then try again."
    )


def test_the_credits_page_follows_the_upstream_and_opens(sandbox_url: str) -> None:
    link = f"{sandbox_url}/settings/credits"
    assert credits_url() == link
    assert httpx.get(link).status_code == 200  # the sandbox's stand-in page
    with override_settings(OPENROUTER_URL="https://openrouter.example"):
        assert credits_url() == "https://openrouter.example/settings/credits"


def test_non_streamed_errors_raise_the_same_family(api_key: str) -> None:
    with pytest.raises(OpenRouterError) as error:
        client.complete(api_key, {**HELLO, "model": "sandbox/error-402"})
    assert error.value.status == 402


async def test_a_mid_stream_error_chunk_fails_the_answer_after_the_partial_text(
    api_key: str,
) -> None:
    events = await collect(api_key, {**HELLO, "model": "sandbox/midstream-error"})
    assert text_of(events)  # the partial text arrived first
    final = events[-1]
    assert isinstance(final, Failed)
    assert final.error.status == 502
    assert not any(isinstance(e, Finished) for e in events)


@pytest.mark.parametrize("model", ["sandbox/drop", "sandbox/truncated"])
async def test_a_stream_that_ends_without_done_is_interrupted_never_complete(
    api_key: str, model: str
) -> None:
    events = await collect(api_key, {**HELLO, "model": model})
    assert text_of(events)
    assert isinstance(events[-1], Interrupted)
    assert not any(isinstance(e, Finished) for e in events)


async def test_a_stream_that_stalls_past_the_idle_limit_is_interrupted(api_key: str) -> None:
    events = await collect(api_key, {**HELLO, "model": "sandbox/stall"})  # idle limit: 3 s
    assert isinstance(events[-1], Interrupted)
    assert events[-1].reason == "stalled"


async def test_a_slow_connect_times_out_as_a_retryable_failure(api_key: str) -> None:
    events = await collect(api_key, {**HELLO, "model": "sandbox/slow-connect"})
    (failed,) = events
    assert isinstance(failed, Failed)
    assert failed.error.retryable
    assert "did not answer in time" in failed.error.message


async def test_a_body_that_is_not_an_event_stream_is_a_clear_failure(api_key: str) -> None:
    events = await collect(api_key, {**HELLO, "model": "sandbox/not-json"})
    (failed,) = events
    assert isinstance(failed, Failed)
    assert "could not read" in failed.error.message


async def test_closing_the_stream_early_closes_the_upstream(api_key: str, sandbox_url: str) -> None:
    async def state() -> dict[str, int]:
        response = await client.async_client().get(f"{sandbox_url}/_sandbox/state")
        return dict(json.loads(response.content))

    before = (await state())["cancelled_streams"]
    stream = client.stream_chat(api_key, {**HELLO, "model": "sandbox/slow"})
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(50):
        if (await state())["cancelled_streams"] > before:
            break
        await asyncio.sleep(0.05)
    assert (await state())["cancelled_streams"] == before + 1


def test_generation_stats_describe_a_finished_completion(api_key: str) -> None:
    whole = client.complete(api_key, HELLO)
    stats = client.generation_stats(api_key, whole["id"])
    assert stats["id"] == whole["id"]
    assert stats["tokens_completion"] == whole["usage"]["completion_tokens"]


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


def test_the_streams_proxy_is_the_one_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert client.environment_proxy("https://openrouter.ai") is None

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert client.environment_proxy("https://openrouter.ai") == "http://proxy.example:3128"
    assert client.environment_proxy("http://127.0.0.1:8001") is None  # no HTTP proxy named

    monkeypatch.setenv("NO_PROXY", "openrouter.ai")
    assert client.environment_proxy("https://openrouter.ai") is None
