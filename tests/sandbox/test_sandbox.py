"""The sandbox against its documentation, over real HTTP with plain httpx (never the project's
client), plus the official OpenAI SDK to prove the protocol is the real one."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from openrouter.sandbox.app import create_app
from openrouter.sandbox.config import Settings
from openrouter.sandbox.faults import FAULTS

RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
HELLO = [{"role": "user", "content": "How do I sort a list in Python?"}]


@dataclass
class Stream:
    comments: list[str] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    cut: bool = False
    headers: httpx.Headers = field(default_factory=httpx.Headers)

    @property
    def text(self) -> str:
        return "".join(
            c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c["choices"]
        )


def read_stream(api: httpx.Client, body: dict[str, Any], *, stop_after: int = 0) -> Stream:
    """Reads an SSE reply line by line; ``stop_after`` hangs up after that many data chunks."""
    stream = Stream()
    with api.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        stream.headers = response.headers
        try:
            for line in response.iter_lines():
                if line.startswith(":"):
                    stream.comments.append(line)
                elif line == "data: [DONE]":
                    stream.done = True
                elif line.startswith("data: "):
                    stream.chunks.append(json.loads(line[6:]))
                    if stop_after and len(stream.chunks) >= stop_after:
                        break
        except httpx.RemoteProtocolError:
            stream.cut = True
    return stream


def wait_for_state(client: httpx.Client, name: str, value: int) -> None:
    deadline = time.monotonic() + 5
    while client.get("/_sandbox/state").json()[name] < value:
        assert time.monotonic() < deadline, f"{name} never reached {value}"
        time.sleep(0.02)


# --- PKCE connect --------------------------------------------------------------------------------


def authorize(client: httpx.Client, decision: str = "authorize", **params: str) -> str:
    """Walks the consent page like a browser would and returns the redirect target."""
    page = client.get("/auth", params=params)
    assert page.status_code == 200
    found = re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
    fields = {name: html.unescape(value) for name, value in found}
    response = client.post("/auth/decision", data={**fields, "decision": decision})
    assert response.status_code == 302
    return response.headers["location"]


def code_from(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


def test_it_exchanges_the_rfc_7636_appendix_b_verifier_for_a_working_key(
    client: httpx.Client,
) -> None:
    location = authorize(
        client,
        callback_url="http://app.test/connect/complete",
        code_challenge=RFC_CHALLENGE,
        code_challenge_method="S256",
        key_label="Switchboard",
    )
    response = client.post(
        "/api/v1/auth/keys",
        json={
            "code": code_from(location),
            "code_verifier": RFC_VERIFIER,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 200
    key = response.json()["key"]
    assert re.fullmatch(r"sk-or-v1-[0-9a-f]{64}", key)
    assert response.json()["user_id"].startswith("user_")
    info = client.get("/api/v1/key", headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert info["label"] == "Switchboard"
    assert info["is_provisioning_key"] is False


def test_the_challenge_is_unpadded_base64url_of_sha256() -> None:
    digest = hashlib.sha256(RFC_VERIFIER.encode("ascii")).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == RFC_CHALLENGE


def test_the_consent_page_names_the_app_and_runs_no_script(client: httpx.Client) -> None:
    page = client.get(
        "/auth",
        params={"callback_url": "https://app.example/cb?x=1", "key_label": "<b>Mine</b>"},
    )
    assert "app.example" in page.text
    assert "&lt;b&gt;Mine&lt;/b&gt;" in page.text
    assert "<script" not in page.text
    assert ">Authorize" in page.text and ">Cancel" in page.text
    assert "script-src" not in page.headers["content-security-policy"]


def test_it_accepts_the_plain_method(client: httpx.Client) -> None:
    location = authorize(
        client,
        callback_url="http://app.test/cb",
        code_challenge="a-plain-verifier-" + "x" * 30,
        code_challenge_method="plain",
    )
    response = client.post(
        "/api/v1/auth/keys",
        json={
            "code": code_from(location),
            "code_verifier": "a-plain-verifier-" + "x" * 30,
            "code_challenge_method": "plain",
        },
    )
    assert response.status_code == 200


def test_it_rejects_a_method_that_differs_from_the_authorized_one(client: httpx.Client) -> None:
    location = authorize(
        client,
        callback_url="http://app.test/cb",
        code_challenge=RFC_CHALLENGE,
        code_challenge_method="S256",
    )
    response = client.post(
        "/api/v1/auth/keys",
        json={
            "code": code_from(location),
            "code_verifier": RFC_CHALLENGE,
            "code_challenge_method": "plain",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


def test_it_rejects_a_wrong_verifier(client: httpx.Client) -> None:
    location = authorize(
        client, callback_url="http://app.test/cb", code_challenge=RFC_CHALLENGE
    )  # no method given: RFC 7636 says plain
    wrong = client.post(
        "/api/v1/auth/keys",
        json={"code": code_from(location), "code_verifier": RFC_VERIFIER},
    )
    assert wrong.status_code == 403
    assert wrong.json() == {"error": {"code": 403, "message": "Invalid code_verifier"}}


def test_it_rejects_a_reused_code(client: httpx.Client) -> None:
    location = authorize(
        client,
        callback_url="http://app.test/cb",
        code_challenge=RFC_CHALLENGE,
        code_challenge_method="S256",
    )
    exchange = {
        "code": code_from(location),
        "code_verifier": RFC_VERIFIER,
        "code_challenge_method": "S256",
    }
    assert client.post("/api/v1/auth/keys", json=exchange).status_code == 200
    assert client.post("/api/v1/auth/keys", json=exchange).status_code == 403


def test_it_rejects_unknown_codes_and_malformed_bodies(client: httpx.Client) -> None:
    assert client.post("/api/v1/auth/keys", json={"code": "nope"}).status_code == 403
    assert client.post("/api/v1/auth/keys", content=b"{not json").status_code == 400
    assert client.post("/api/v1/auth/keys", json={"code": 5}).status_code == 400
    assert client.post("/api/v1/auth/keys", json=["code"]).status_code == 400


def test_it_rejects_an_expired_code() -> None:
    now = [1000.0]
    app = create_app(Settings(), clock=lambda: now[0])

    async def scenario() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            codes = []
            for _ in range(2):
                redirect = await client.post(
                    "/auth/decision",
                    data={
                        "callback_url": "http://app.test/cb",
                        "code_challenge": RFC_CHALLENGE,
                        "code_challenge_method": "S256",
                        "decision": "authorize",
                    },
                )
                codes.append(code_from(redirect.headers["location"]))
            exchange = {"code_verifier": RFC_VERIFIER, "code_challenge_method": "S256"}
            now[0] += 599
            fresh = await client.post("/api/v1/auth/keys", json={**exchange, "code": codes[0]})
            now[0] += 2
            stale = await client.post("/api/v1/auth/keys", json={**exchange, "code": codes[1]})
            return fresh.status_code, stale.status_code

    assert asyncio.run(scenario()) == (200, 403)


def test_it_keeps_the_callback_query_string(client: httpx.Client) -> None:
    location = authorize(client, callback_url="http://app.test/cb?state=abc&next=%2Fchat")
    parts = urlsplit(location)
    assert (parts.netloc, parts.path) == ("app.test", "/cb")
    assert parts.query.startswith("state=abc&next=%2Fchat&code=")


def test_cancel_returns_access_denied(client: httpx.Client) -> None:
    location = authorize(client, "cancel", callback_url="http://app.test/cb?state=abc")
    assert location == "http://app.test/cb?state=abc&error=access_denied"


def test_a_missing_callback_url_is_a_400_page(client: httpx.Client) -> None:
    response = client.get("/auth")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")


def test_without_a_challenge_no_verifier_is_needed(client: httpx.Client) -> None:
    location = authorize(client, callback_url="http://app.test/cb")
    response = client.post("/api/v1/auth/keys", json={"code": code_from(location)})
    assert response.status_code == 200


# --- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/chat/completions"),
        ("GET", "/key"),
        ("GET", "/auth/key"),
        ("GET", "/generation?id=gen-1"),
        ("POST", "/objects/generations"),
    ],
)
def test_the_api_wants_a_valid_key(sandbox_url: str, method: str, path: str) -> None:
    forged = "sk-or-v1-" + "0" * 64
    for headers in ({}, {"Authorization": f"Bearer {forged}"}):
        response = httpx.request(
            method, f"{sandbox_url}/api/v1{path}", headers=headers, json={"prompt": "x"}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == 401


def test_a_key_survives_a_restart() -> None:
    async def key_status(key: str | None = None) -> tuple[str, int]:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            if key is None:
                key = (await client.post("/_sandbox/keys", json={"label": "Mine"})).json()["key"]
            response = await client.get("/api/v1/key", headers={"Authorization": f"Bearer {key}"})
            return key, response.status_code

    key, status = asyncio.run(key_status())
    assert (status, asyncio.run(key_status(key))[1]) == (200, 200)


def test_the_model_list_is_public(client: httpx.Client) -> None:
    assert client.get("/api/v1/models").status_code == 200


def test_key_info_counts_what_the_key_spends(api: httpx.Client) -> None:
    before = api.get("/key").json()["data"]
    assert before["label"] == "Test key"
    assert (before["limit"], before["usage"], before["limit_remaining"]) == (10.0, 0, 10.0)
    reply = api.post("/chat/completions", json={"model": "openai/gpt-4o", "messages": HELLO})
    cost = reply.json()["usage"]["cost"]
    after = api.get("/auth/key").json()["data"]
    assert cost > 0
    assert after["usage"] == pytest.approx(cost)
    assert after["limit_remaining"] == pytest.approx(10.0 - cost)


# --- website pages the app links to -------------------------------------------------------------


def test_the_credits_page_says_it_is_the_sandbox_and_sells_nothing(client: httpx.Client) -> None:
    page = client.get("/settings/credits")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "OpenRouter sandbox" in page.text and "$10.00" in page.text
    assert "<script" not in page.text


def test_a_key_page_shows_what_the_key_has_left(client: httpx.Client, api: httpx.Client) -> None:
    api.post("/chat/completions", json={"model": "openai/gpt-4o", "messages": HELLO})
    info = api.get("/key").json()["data"]
    key = api.headers["Authorization"].removeprefix("Bearer ")
    page = client.get(f"/keys/{hashlib.sha256(key.encode()).hexdigest()}")
    assert page.status_code == 200
    assert "Test key" in page.text
    assert f"${info['limit_remaining']:.4f}" in page.text
    assert info["limit_remaining"] < 10


def test_a_key_page_it_does_not_know_says_so(client: httpx.Client) -> None:
    page = client.get(f"/keys/{'0' * 64}")
    assert page.status_code == 200
    assert "knows no key by this address" in page.text


# --- models --------------------------------------------------------------------------------------


def test_models_have_openrouter_shape(client: httpx.Client) -> None:
    models = {m["id"]: m for m in client.get("/api/v1/models").json()["data"]}
    assert len(models) >= 20
    for model in models.values():
        assert {
            "id",
            "canonical_slug",
            "name",
            "created",
            "description",
            "context_length",
            "architecture",
            "pricing",
            "top_provider",
            "supported_parameters",
        } <= set(model)
        assert all(isinstance(model["pricing"][k], str) for k in ("prompt", "completion"))
        assert {"input_modalities", "output_modalities", "tokenizer"} <= set(model["architecture"])
    assert models["openai/gpt-4o"]["pricing"]["prompt"] == "0.0000025"
    assert models["mistralai/mistral-7b-instruct:free"]["pricing"]["completion"] == "0"
    assert models["openai/shap-e"]["architecture"]["output_modalities"] == ["3d"]
    assert models["sandbox/error-402"]["name"] == "Sandbox: error 402"
    assert set(FAULTS) <= set(models)


# --- chat ----------------------------------------------------------------------------------------


def test_a_streamed_reply_is_the_whole_reply_in_pieces(api: httpx.Client) -> None:
    body = {"model": "openai/gpt-4o", "messages": HELLO}
    stream = read_stream(api, body)
    whole = api.post("/chat/completions", json=body)

    assert stream.comments[0] == ": OPENROUTER PROCESSING"
    assert stream.done
    assert stream.chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["id"] == stream.headers["x-generation-id"] for c in stream.chunks)
    assert len(stream.chunks) > 20  # a token per chunk
    final = stream.chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    usage = final["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == len(stream.chunks) - 2
    expected_cost = usage["prompt_tokens"] * 0.0000025 + usage["completion_tokens"] * 0.00001
    assert usage["cost"] == pytest.approx(expected_cost)

    assert whole.status_code == 200
    message = whole.json()["choices"][0]["message"]
    assert message == {"role": "assistant", "content": stream.text, "refusal": None}
    assert whole.json()["usage"]["cost"] == usage["cost"]
    assert "```python" in stream.text and stream.text.startswith("## ")


def test_an_omitted_model_is_the_account_default(api: httpx.Client) -> None:
    reply = api.post("/chat/completions", json={"messages": HELLO}).json()
    assert reply["model"] == "openai/gpt-4o-mini"


def test_the_first_available_of_models_answers(api: httpx.Client) -> None:
    first = api.post(
        "/chat/completions", json={"models": ["anthropic/claude-3.5-sonnet"], "messages": HELLO}
    )
    assert first.json()["model"] == "anthropic/claude-3.5-sonnet"
    fallback = api.post(
        "/chat/completions",
        json={"models": ["sandbox/error-503", "no/such-model", "openai/gpt-4o"], "messages": HELLO},
    )
    assert fallback.json()["model"] == "openai/gpt-4o"


def test_an_unknown_model_is_a_400(api: httpx.Client) -> None:
    response = api.post("/chat/completions", json={"model": "no/such", "messages": HELLO})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "no/such is not a valid model ID"


def test_max_tokens_cuts_the_reply(api: httpx.Client) -> None:
    stream = read_stream(api, {"messages": HELLO, "max_tokens": 5})
    assert stream.chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert stream.chunks[-1]["usage"]["completion_tokens"] == 5
    assert len(stream.text.split()) == 5


def test_a_long_prompt_gets_a_long_reply(api: httpx.Client) -> None:
    reply = api.post(
        "/chat/completions", json={"messages": [{"role": "user", "content": "a long answer"}]}
    )
    assert 550 <= reply.json()["usage"]["completion_tokens"] <= 700


def test_replies_are_deterministic_and_follow_the_prompt(api: httpx.Client) -> None:
    def text(content: str, model: str = "openai/gpt-4o") -> str:
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        reply: str = api.post("/chat/completions", json=body).json()["choices"][0]["message"][
            "content"
        ]
        return reply

    rome = text("Tell me about the history of Rome")
    assert rome == text("Tell me about the history of Rome")
    assert "Rome" in rome and "```" not in rome and "\n- " in rome


def test_a_generation_can_be_looked_up(api: httpx.Client) -> None:
    stream = read_stream(api, {"model": "openai/gpt-4o", "messages": HELLO})
    generation_id = stream.headers["x-generation-id"]
    data = api.get("/generation", params={"id": generation_id}).json()["data"]
    usage = stream.chunks[-1]["usage"]
    assert data["id"] == generation_id
    assert data["model"] == "openai/gpt-4o"
    assert (data["tokens_prompt"], data["tokens_completion"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert data["total_cost"] == pytest.approx(usage["cost"])
    assert (data["streamed"], data["cancelled"]) == (True, False)
    assert isinstance(data["latency"], int)
    missing = api.get("/generation", params={"id": "gen-nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 402, 403, 408, 429, 451, 500, 502, 503])
def test_error_models_fail_before_the_stream(api: httpx.Client, status: int) -> None:
    body = {"model": f"sandbox/error-{status}", "messages": HELLO, "stream": True}
    response = api.post("/chat/completions", json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == status and error["message"]
    if status == 403:
        assert error["metadata"]["reasons"]
    assert response.headers.get("retry-after") == {429: "7", 503: "3"}.get(status)


def test_a_midstream_error_arrives_as_a_chunk_and_ends_the_stream(api: httpx.Client) -> None:
    stream = read_stream(api, {"model": "sandbox/midstream-error", "messages": HELLO})
    last = stream.chunks[-1]
    assert last["error"]["code"] == 502
    assert last["error"]["message"] == "Provider returned error"
    assert last["error"]["metadata"]["error_type"] == "provider_unavailable"
    assert last["choices"][0]["finish_reason"] == "error"
    assert len(stream.chunks) == 12  # role, 10 tokens, error
    assert not stream.done and not stream.cut


def test_a_midstream_error_without_streaming_is_in_the_200_body(api: httpx.Client) -> None:
    response = api.post(
        "/chat/completions", json={"model": "sandbox/midstream-error", "messages": HELLO}
    )
    assert response.status_code == 200
    assert response.json()["error"]["code"] == 502
    assert response.json()["choices"][0]["finish_reason"] == "error"


def test_a_dropped_stream_is_cut_without_done(api: httpx.Client) -> None:
    stream = read_stream(api, {"model": "sandbox/drop", "messages": HELLO})
    assert stream.cut and not stream.done
    assert len(stream.chunks) == 11


def test_a_truncated_stream_ends_cleanly_without_done(api: httpx.Client) -> None:
    stream = read_stream(api, {"model": "sandbox/truncated", "messages": HELLO})
    assert not stream.cut and not stream.done
    assert len(stream.chunks) == 11


def test_a_stalled_stream_goes_silent_and_its_cancellation_is_counted(
    client: httpx.Client, key: str, sandbox_url: str
) -> None:
    cancelled = client.get("/_sandbox/state").json()["cancelled_streams"]
    body = {"model": "sandbox/stall", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    timeout = httpx.Timeout(5, read=0.5)
    lines: list[str] = []
    url = f"{sandbox_url}/api/v1/chat/completions"
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream("POST", url, json=body, headers=headers, timeout=timeout) as response,
    ):
        lines.extend(line for line in response.iter_lines() if line.startswith("data: "))
    assert len(lines) == 5  # role and four tokens, then nothing
    wait_for_state(client, "cancelled_streams", cancelled + 1)


def test_a_client_hanging_up_is_counted_as_a_cancellation(
    client: httpx.Client, api: httpx.Client
) -> None:
    before = client.get("/_sandbox/state").json()
    read_stream(api, {"messages": [{"role": "user", "content": "long"}]}, stop_after=3)
    wait_for_state(client, "cancelled_streams", before["cancelled_streams"] + 1)
    generation = client.get("/_sandbox/state").json()
    assert generation["active_streams"] == before["active_streams"]


def test_a_slow_model_takes_a_quarter_second_per_token(api: httpx.Client) -> None:
    arrivals = []
    with api.stream(
        "POST",
        "/chat/completions",
        json={"model": "sandbox/slow", "messages": HELLO, "stream": True},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
            if len(arrivals) == 4:
                break
    assert arrivals[3] - arrivals[2] >= 0.2


def test_a_slow_connect_sends_no_headers_for_a_long_time(sandbox_url: str, key: str) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{sandbox_url}/api/v1/chat/completions",
            json={"model": "sandbox/slow-connect", "messages": HELLO, "stream": True},
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(5, read=1),
        )
    assert time.monotonic() - started >= 0.9


def test_not_json_answers_an_html_page(api: httpx.Client) -> None:
    response = api.post(
        "/chat/completions", json={"model": "sandbox/not-json", "messages": HELLO, "stream": True}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<html>")


def test_the_xss_model_streams_hostile_markup(api: httpx.Client) -> None:
    stream = read_stream(api, {"model": "sandbox/xss", "messages": HELLO})
    assert stream.done
    assert "<script>window.__xss=1;alert(1)</script>" in stream.text
    assert '<img src=x onerror="window.__xss=1">' in stream.text
    assert "[click](javascript:alert(1))" in stream.text


def test_the_state_counters_reset(client: httpx.Client) -> None:
    reset = client.post("/_sandbox/reset").json()
    assert reset["completed_streams"] == reset["chat_requests"] == 0
    assert set(reset) == {
        "active_streams",
        "completed_streams",
        "cancelled_streams",
        "generation_requests",
        "chat_requests",
    }


def test_it_serves_many_streams_at_once(sandbox_url: str, key: str) -> None:
    async def one(client: httpx.AsyncClient) -> bool:
        body = {"messages": HELLO, "stream": True}
        async with client.stream("POST", "/chat/completions", json=body) as response:
            return (await response.aread()).endswith(b"data: [DONE]\n\n")

    async def many() -> list[bool]:
        async with httpx.AsyncClient(
            base_url=f"{sandbox_url}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            limits=httpx.Limits(max_connections=None),
            timeout=20,
        ) as client:
            return await asyncio.gather(*(one(client) for _ in range(200)))

    assert all(asyncio.run(many()))


# --- 3D objects ----------------------------------------------------------------------------------


def generate(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/objects/generations", json=body, timeout=60)


def parse_ply(data: bytes) -> tuple[dict[str, int], str]:
    header, _, _ = data.partition(b"end_header\n")
    lines = header.decode("ascii").splitlines()
    assert lines[0] == "ply"
    counts = {
        line.split()[1]: int(line.split()[2]) for line in lines if line.startswith("element ")
    }
    return counts, lines[1]


def test_a_generation_is_padded_with_whitespace_and_holds_a_ply(api: httpx.Client) -> None:
    response = generate(api, prompt="a chair shaped like an avocado")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content[:1].isspace()
    (output,) = json.loads(response.content)["generations"]
    prefix, _, encoded = output["uri"].partition(",")
    assert prefix == "data:application/x-ply;base64"
    data = base64.b64decode(encoded)
    counts, format_line = parse_ply(data)
    assert format_line == "format binary_little_endian 1.0"
    vertices, faces = counts["vertex"], counts["face"]
    assert faces > 0
    body = data.partition(b"end_header\n")[2]
    assert len(body) == vertices * (6 * 4 + 3) + faces * (1 + 3 * 4)
    first_face = body[vertices * 27 : vertices * 27 + 13]
    count, *indices = struct.unpack("<B3i", first_face)
    assert count == 3 and all(0 <= i < vertices for i in indices)


def test_the_outputs_differ_from_each_other(api: httpx.Client) -> None:
    outputs = generate(api, prompt="a red ball", num_outputs=3).json()["generations"]
    assert len({o["uri"] for o in outputs}) == 3


def test_an_ascii_ply_is_available(api: httpx.Client) -> None:
    (output,) = generate(api, prompt="an ascii donut").json()["generations"]
    data = base64.b64decode(output["uri"].partition(",")[2])
    counts, format_line = parse_ply(data)
    assert format_line == "format ascii 1.0"
    rows = data.partition(b"end_header\n")[2].decode().splitlines()
    assert len(rows) == counts["vertex"] + counts["face"]


def test_a_glb_is_valid_gltf_2(api: httpx.Client) -> None:
    (output,) = generate(api, prompt="a pine tree", extension="glb").json()["generations"]
    prefix, _, encoded = output["uri"].partition(",")
    assert prefix == "data:model/gltf-binary;base64"
    data = base64.b64decode(encoded)
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_length % 4 == 0
    document = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack_from("<I4s", data, 20 + json_length)
    assert bin_type == b"BIN\0" and bin_length % 4 == 0
    assert 28 + json_length + bin_length == len(data)
    assert document["asset"]["version"] == "2.0"
    assert document["buffers"][0]["byteLength"] == bin_length
    primitive = document["meshes"][0]["primitives"][0]
    position = document["accessors"][primitive["attributes"]["POSITION"]]
    assert {"NORMAL"} <= set(primitive["attributes"]) and "indices" in primitive
    binary = data[28 + json_length :]
    view = document["bufferViews"][position["bufferView"]]
    floats = struct.unpack_from(f"<{3 * position['count']}f", binary, view["byteOffset"])
    for axis in range(3):
        assert position["min"][axis] == min(floats[axis::3])
        assert position["max"][axis] == max(floats[axis::3])
    indices = document["accessors"][primitive["indices"]]
    index_view = document["bufferViews"][indices["bufferView"]]
    assert index_view["byteOffset"] + index_view["byteLength"] <= bin_length
    assert (
        max(struct.unpack_from(f"<{indices['count']}I", binary, index_view["byteOffset"]))
        < (position["count"])
    )


def test_the_url_variant_is_hosted_by_the_sandbox(api: httpx.Client, sandbox_url: str) -> None:
    (output,) = generate(api, prompt="a url table").json()["generations"]
    assert set(output) == {"url"}
    assert output["url"].startswith(f"{sandbox_url}/files/")
    download = httpx.get(output["url"])
    assert download.status_code == 200
    assert download.content.startswith(b"ply\n")


def test_the_bare_variant_has_no_data_prefix(api: httpx.Client) -> None:
    (output,) = generate(api, prompt="a bare cube").json()["generations"]
    assert base64.b64decode(output["uri"]).startswith(b"ply\n")


def test_fail_once_fails_then_succeeds(api: httpx.Client) -> None:
    prompt = f"fail once {time.monotonic()}"
    first = generate(api, prompt=prompt)
    assert first.status_code == 502 and first.json()["error"]["code"] == 502
    assert generate(api, prompt=prompt).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"prompt": "a flagged statue"}, 451),
        ({"prompt": "a cube", "model": "sandbox/no-3d"}, 404),
        ({"prompt": "a cube", "model": "sandbox/error-503"}, 503),
        ({"prompt": "a cube", "model": "openai/gpt-4o"}, 400),
        ({"prompt": ""}, 400),
        ({"prompt": "a cube", "num_outputs": 5}, 400),
        ({"prompt": "a cube", "extension": "obj"}, 400),
    ],
)
def test_refused_generations_answer_an_error_status(
    api: httpx.Client, body: dict[str, Any], status: int
) -> None:
    response = generate(api, **body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == status


def test_no_3d_says_not_found_like_an_upstream_without_the_endpoint(api: httpx.Client) -> None:
    response = generate(api, prompt="a cube", model="sandbox/no-3d")
    assert response.json() == {"error": {"code": 404, "message": "Not Found"}}


def test_a_huge_output_is_about_30_mb(api: httpx.Client) -> None:
    response = generate(api, prompt="a huge ball")
    (output,) = json.loads(response.content)["generations"]
    assert 29_000_000 < len(output["uri"]) < 32_000_000


def test_a_generation_with_a_midstream_error_has_a_200_error_body(api: httpx.Client) -> None:
    response = generate(api, prompt="a cube", model="sandbox/midstream-error")
    assert response.status_code == 200 and response.content[:1].isspace()
    assert json.loads(response.content)["error"]["code"] == 502


# --- the official SDK ----------------------------------------------------------------------------


def test_the_openai_sdk_speaks_to_the_sandbox(sandbox_url: str, key: str) -> None:
    sdk = openai.OpenAI(base_url=f"{sandbox_url}/api/v1", api_key=key, max_retries=0)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Write Python code"}]
    whole = sdk.chat.completions.create(model="openai/gpt-4o", messages=messages)
    pieces = sdk.chat.completions.create(model="openai/gpt-4o", messages=messages, stream=True)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in pieces if chunk.choices)
    assert whole.model == "openai/gpt-4o"
    assert whole.choices[0].finish_reason == "stop"
    assert whole.choices[0].message.content == streamed
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="sandbox/error-429", messages=messages)
