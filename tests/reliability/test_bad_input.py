"""Hostile input on every form, query parameter and websocket message: a clear refusal, never a
500, and the socket stays usable.

Each target gets two passes: every value of ``HOSTILE`` in every field (deterministic, so a known
bad value is always tried), then Hypothesis for what nobody thought of (bounded: 25 examples).
Requests go through the real middleware stack, the real PostgreSQL and Redis; the chat socket is
the real ASGI application with the real channel layer, answering from the sandbox.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from chat import streams
from chat.models import Conversation
from config.asgi import application
from generations.models import Generation
from generations.services import user_group
from tests.factories import make_user

MB = 1_000_000
HOSTILE: list[Any] = [
    "",
    "   ",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "' OR '1'='1'; DROP TABLE chat_message; --",
    "1; SELECT pg_sleep(30)",
    "%(secret)s {0} ${jndi:ldap://x}",
    "\x00",
    "nul\x00in the middle",
    "\ud800",
    "lone \udfff surrogate",
    "\u202egnp.exe",
    "\u200b\u200d\ufeff",
    "Z̷̢͉̈́a̸l̵g̷o" * 50,
    "💥" * 5000,
    "ﷺ" * 1000,
    "../../../../etc/passwd",
    "A" * MB,
    "-1",
    "0",
    "-9223372036854775809",
    "99999999999999999999999999999999",
    "1e309",
    "NaN",
    "-Infinity",
    "１２",  # full-width digits
    "٣",  # an Arabic-Indic digit
    "0x10",
    "true",
    "null",
    "[]",
    "{}",
]
hostile_text = st.one_of(
    st.text(max_size=300),
    st.sampled_from(HOSTILE),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats().map(str),
)
BOUNDED = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def form_body(fields: dict[str, Any]) -> bytes:
    """``application/x-www-form-urlencoded`` as a browser could send it, lone surrogates
    included (as the invalid UTF-8 bytes they would arrive as); a list value repeats the field."""

    def encode(value: Any) -> str:
        return quote(str(value).encode("utf-8", "surrogatepass"), safe="")

    pairs = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append(f"{name}={encode(item)}")
    return "&".join(pairs).encode()


def post(client: Client, path: str, fields: dict[str, Any]) -> Any:
    return client.post(path, form_body(fields), content_type="application/x-www-form-urlencoded")


def get(client: Client, path: str, params: dict[str, Any]) -> Any:
    query = form_body(params).decode()
    return client.get(f"{path}?{query}")


def assert_refused_or_served(response: Any, allowed: set[int], what: object) -> None:
    assert response.status_code < 500, (response.status_code, what)
    assert response.status_code in allowed, (response.status_code, what)


def variants(base: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each field missing, repeated, and set to each hostile value in turn."""
    for name in base:
        yield {k: v for k, v in base.items() if k != name}
        yield {**base, name: [base[name], "second"]}
        for value in HOSTILE:
            yield {**base, name: value}


@pytest.fixture
def browser(connected_client: Client) -> Client:
    connected_client.raise_request_exception = False  # a 500 is an answer to assert on
    return connected_client


# --- forms ------------------------------------------------------------------------------------

GENERATION = {
    "prompt": "a chair",
    "model": "openai/shap-e",
    "num_inference_steps": "16",
    "num_outputs": "1",
    "extension": "ply",
}


def check_generations_are_sane(user: User) -> None:
    for generation in Generation.objects.filter(user=user):
        assert 1 <= generation.num_inference_steps <= 256
        assert 1 <= generation.num_outputs <= 4
        assert generation.extension in {"ply", "glb"}
        assert 0 < len(generation.prompt) <= 1000 and "\x00" not in generation.prompt


@pytest.mark.django_db
def test_the_generation_form_refuses_every_hostile_value_with_a_sentence(
    browser: Client, connected_user: User
) -> None:
    for fields in variants(GENERATION):
        Generation.objects.filter(user=connected_user).delete()  # stay under the per-user caps
        response = post(browser, "/generations/new/", fields)
        assert_refused_or_served(response, {302, 400}, fields)
        if response.status_code == 400:
            assert 'class="errorlist' in response.content.decode(), fields
    check_generations_are_sane(connected_user)


@pytest.mark.django_db
@BOUNDED
@given(fields=st.fixed_dictionaries({}, optional=dict.fromkeys(GENERATION, hostile_text)))
def test_the_generation_form_never_fails_on_generated_input(
    browser: Client, connected_user: User, fields: dict[str, str]
) -> None:
    Generation.objects.filter(user=connected_user).delete()
    assert_refused_or_served(post(browser, "/generations/new/", fields), {302, 400}, fields)
    check_generations_are_sane(connected_user)


@pytest.fixture
def conversation(connected_user: User) -> Conversation:
    return Conversation.objects.create(user=connected_user, title="Mine")


CHAT_FORMS = {
    "rename": ({"title": "New title"}, {302}),
    "settings": (
        {"title": "T", "model": "openai/gpt-4o", "system_prompt": "Be brief.", "temperature": "1"},
        {302, 400},
    ),
    "model": ({"model": "openai/gpt-4o"}, {200, 400}),
}


@pytest.mark.django_db
@pytest.mark.parametrize("action", list(CHAT_FORMS))
def test_the_chat_forms_refuse_every_hostile_value(
    browser: Client, conversation: Conversation, action: str
) -> None:
    base, allowed = CHAT_FORMS[action]
    for fields in variants({**base, "max_tokens": "100"} if action == "settings" else base):
        response = post(browser, f"/chat/{conversation.pk}/{action}/", fields)
        assert_refused_or_served(response, allowed | {400}, fields)
        conversation.refresh_from_db()
        assert conversation.title.strip() and len(conversation.title) <= 200
        assert "\x00" not in conversation.title + conversation.model + conversation.system_prompt
        assert conversation.temperature is None or 0 <= conversation.temperature <= 2
        assert conversation.max_tokens is None or 1 <= conversation.max_tokens <= 1_000_000


@pytest.mark.django_db
def test_the_account_forms_refuse_every_hostile_value(browser: Client) -> None:
    for fields in variants({"default_model": "openai/gpt-4o"}):
        assert_refused_or_served(post(browser, "/account/", fields), {302, 400}, fields)
    for fields in variants({"key": "sk-or-v1-" + "0" * 40}):
        # 429 after five tries a minute: the rate limit is part of the answer
        assert_refused_or_served(post(browser, "/account/key/", fields), {302, 429}, fields)


@pytest.mark.django_db
def test_sign_up_and_log_in_refuse_every_hostile_value(client: Client) -> None:
    client.raise_request_exception = False
    signup = {"email": "new@example.com", "password1": "x", "password2": "y"}
    for fields in variants(signup):
        assert_refused_or_served(post(client, "/accounts/signup/", fields), {200, 429}, fields)
    for fields in variants({"login": "nobody@example.com", "password": "wrong"}):
        assert_refused_or_served(post(client, "/accounts/login/", fields), {200, 429}, fields)
    assert not User.objects.exists()


QUERIES = [
    ("/chat/", "q", {200}),
    ("/generations/", "page", {200}),
    ("/accounts/login/", "next", {200, 302}),  # signed in: sent on, to this site only
    ("/connect/openrouter/", "next", {302, 429}),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "name", "allowed"), QUERIES)
def test_query_parameters_never_fail(
    browser: Client, path: str, name: str, allowed: set[int]
) -> None:
    for value in HOSTILE:
        response = get(browser, path, {name: value})
        assert_refused_or_served(response, allowed, (path, value))
        if response.status_code == 302 and path.startswith("/accounts/"):
            location = response["Location"]  # wherever "next" pointed: on this site
            parts = urlsplit(location)
            assert not parts.scheme and not parts.netloc, (value, location)
            assert not location.startswith(("//", "/\\")), (value, location)


@pytest.mark.django_db
@BOUNDED
@given(q=hostile_text, page=hostile_text)
def test_generated_query_parameters_never_fail(browser: Client, q: str, page: str) -> None:
    assert_refused_or_served(get(browser, "/chat/", {"q": q}), {200}, q)
    assert_refused_or_served(get(browser, "/generations/", {"page": page}), {200}, page)


@pytest.mark.django_db
def test_a_body_over_the_upload_limit_is_a_400_not_a_500(browser: Client) -> None:
    fields = {**GENERATION, "prompt": "A" * (3 * MB)}  # over DATA_UPLOAD_MAX_MEMORY_SIZE
    assert_refused_or_served(post(browser, "/generations/new/", fields), {400}, "3 MB")


# --- the chat websocket -----------------------------------------------------------------------

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
CODES = {
    "bad_json",
    "bad_request",
    "unknown_type",
    "too_long",
    "not_found",
    "not_allowed",
    "busy",
    "rate_limited",
    "not_connected",
}
JSON_VALUES: list[Any] = [
    *HOSTILE,
    None,
    True,
    False,
    -1,
    0,
    2**63,
    -(10**30),
    10**400,
    1.5,
    -0.0,
    math.inf,
    math.nan,
    [],
    [1, "two"],
    {},
    {"nested": {"deeper": ["x"] * 100}},
]
FRAMES: list[dict[str, Any]] = [
    {"type": "send", "conversation": None, "text": "hi", "model": "sandbox/error-400"},
    {"type": "send", "conversation": None, "text": "hi", "options": {"temperature": 1}},
    {"type": "subscribe", "conversation": 1, "since": 0},
    {"type": "stop", "message": 1},
    {"type": "regenerate", "message": 1},
    {"type": "retry", "message": 1},
    {"type": "ping", "ref": "r"},
]
RAW = [
    " ",
    "not json",
    "{",
    "[" * 50_000,  # nested past the JSON parser's recursion limit
    '{"type": "send", "text": "\\ud800"}',
    '"just a string"',
    "123",
    "null",
    '{"type": ' + '"x"' * 10 + "}",
    "\x00",
]


class Socket:
    """One chat tab on the ASGI application; every probe is followed by a ping, so each answer
    is read to the end and the socket is shown to still work."""

    def __init__(self, cookie: bytes) -> None:
        self.communicator = WebsocketCommunicator(
            application, "/ws/chat/", headers=[ORIGIN, (b"cookie", cookie)]
        )
        self.pings = 0

    async def probe(self, *, frame: Any = None, raw: str | None = None) -> list[dict[str, Any]]:
        if raw is None:
            raw = json.dumps(frame)
        await self.communicator.send_to(text_data=raw)
        self.pings += 1
        ref = f"probe-{self.pings}"
        await self.communicator.send_json_to({"type": "ping", "ref": ref})
        errors = []
        while True:
            try:
                answer = await self.communicator.receive_json_from(timeout=5)
            except Exception as exc:  # the consumer died, or stopped answering
                raise AssertionError(f"the socket is gone after {raw[:60]!r}: {exc!r}") from None
            if answer == {"type": "pong", "ref": ref}:
                return errors
            if answer["type"] == "error":
                errors.append(answer)


@pytest_asyncio.fixture
async def socket(connected_user: User) -> AsyncIterator[Socket]:
    def cookie() -> bytes:
        client = Client()
        client.force_login(connected_user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    tab = Socket(await sync_to_async(cookie)())
    connected, _ = await tab.communicator.connect()
    assert connected
    yield tab
    with contextlib.suppress(Exception):  # a socket a test proved dead cannot close cleanly
        await tab.communicator.disconnect()
    hub = streams.current_hub()
    if hub is not None:
        await hub.drain(15)  # no answer may write into the next test's database


def unclear(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The error frames that do not say what was wrong ("internal" is not a clear error)."""
    return [error for error in errors if error["code"] not in CODES or not error["message"]]


def assert_clear(errors: list[dict[str, Any]], what: object) -> None:
    assert not unclear(errors), (unclear(errors), what)


@pytest.mark.django_db(transaction=True)
async def test_every_hostile_value_in_every_frame_field_gets_a_clear_error(socket: Socket) -> None:
    failures = []
    for frame in FRAMES:
        for name in frame:
            await socket.probe(frame={k: v for k, v in frame.items() if k != name})
            for value in JSON_VALUES:
                hostile = {**frame, name: value}
                if bad := unclear(await socket.probe(frame=hostile)):
                    failures.append((repr(hostile)[:120], bad[0]["code"]))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("raw", RAW, ids=lambda raw: repr(raw[:20]))
async def test_frames_that_are_not_requests_get_a_clear_error(socket: Socket, raw: str) -> None:
    errors = await socket.probe(raw=raw)
    assert_clear(errors, raw)
    assert errors, raw


@pytest.mark.django_db(transaction=True)
async def test_a_ping_with_a_ref_nested_deep_is_answered_without_it(socket: Socket) -> None:
    deep = "[" * 300 + "]" * 300  # read by the JSON parser, deeper than its writer goes
    await socket.communicator.send_to(text_data='{"type": "ping", "ref": ' + deep + "}")
    assert await socket.communicator.receive_json_from(timeout=5) == {"type": "pong"}
    assert await socket.probe(frame={"type": "ping"}) == []


@pytest.mark.django_db(transaction=True)
async def test_half_an_emoji_is_refused_with_the_frames_ref(socket: Socket) -> None:
    """``JSON.stringify`` writes a lone surrogate as ``\\ud83d``: the send is refused as such,
    with its ``ref``, so the page can give the text back to the composer."""
    raw = '{"type": "send", "conversation": null, "text": "hi \\ud83d", "ref": "r1"}'
    errors = await socket.probe(raw=raw)
    assert [(error["code"], error.get("ref")) for error in errors] == [("bad_request", "r1")]


@pytest.mark.django_db(transaction=True)
async def test_a_binary_frame_gets_a_clear_error(socket: Socket) -> None:
    await socket.communicator.send_to(bytes_data=b"\x00\xff" * 1000)
    error = await socket.communicator.receive_json_from(timeout=5)
    assert error["code"] == "bad_request"
    assert_clear(await socket.probe(frame={"type": "ping"}), "after binary")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


@pytest.mark.django_db(transaction=True)
@BOUNDED
@given(
    kind=st.sampled_from(["send", "subscribe", "stop", "regenerate", "retry", "ping", "x"]),
    fields=st.dictionaries(
        st.sampled_from(["conversation", "text", "model", "options", "message", "since", "ref"]),
        json_values,
    ),
)
async def test_generated_frames_get_a_clear_error_and_leave_the_socket_usable(
    socket: Socket, kind: str, fields: dict[str, Any]
) -> None:
    frame = {"type": kind, **fields}
    assert_clear(await socket.probe(frame=frame), frame)


# --- the generations websocket ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("junk", [b"\x00\xff", "not json", "[" * 50_000, '{"type": "x"}'])
async def test_the_generations_socket_survives_junk_from_the_page(junk: bytes | str) -> None:
    user = await sync_to_async(make_user)()

    def cookie() -> bytes:
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    socket = WebsocketCommunicator(
        application,
        "/ws/generations/",
        headers=[ORIGIN, (b"cookie", await sync_to_async(cookie)())],
    )
    connected, _ = await socket.connect()
    assert connected
    assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"
    if isinstance(junk, bytes):
        await socket.send_to(bytes_data=junk)
    else:
        await socket.send_to(text_data=junk)
    # Still listening: an update for this user reaches the page.
    event = {"id": 1, "state": "running"}
    await get_channel_layer().group_send(
        user_group(user.pk), {"type": "generation.update", "generation": event}
    )
    try:
        update = await socket.receive_json_from(timeout=3)
    except Exception as exc:
        raise AssertionError(f"the socket is gone after {junk[:20]!r}: {exc!r}") from None
    assert update == {"type": "generation", "generation": event}
    await socket.disconnect()
