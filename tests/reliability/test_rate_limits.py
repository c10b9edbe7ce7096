"""Rate limits per IP address, across accounts: one address cannot multiply its allowance by
opening more accounts. Each refusal says so in words.

Per-user limits are proven elsewhere: connect and key checks in tests/accounts/test_rate_limits.py
(with failed log-ins per account), chat sends in tests/chat/test_socket_requests.py, generation
caps in tests/generations/test_services.py and test_views.py.

The per-IP limits on chat sends and generation starts do not exist yet; the tests below name the
settings they expect (``CHAT_SENDS_PER_MINUTE_PER_IP``, ``GENERATIONS_PER_HOUR_PER_IP``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import LazySettings
from django.test import Client

from accounts.models import User
from accounts.services import api_key_store
from chat import streams
from config.asgi import application
from tests.reliability.conftest import quick_user

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_sign_ups_from_one_address_are_limited_with_a_sentence(client: Client) -> None:
    def sign_up(n: int) -> Any:
        form = {"email": f"new{n}@example.com", "password1": "a", "password2": "b"}
        return client.post("/accounts/signup/", form)

    statuses = [sign_up(n).status_code for n in range(20)]
    assert statuses == [200] * 20  # each form refused for its mismatched passwords
    refused = sign_up(21)
    assert refused.status_code == 429
    assert "Too many requests" in refused.content.decode()


@pytest.mark.django_db
def test_log_ins_from_one_address_are_limited_across_accounts(client: Client) -> None:
    """Failed log-ins: 10 a minute per address, whatever the account (each account also has
    its own 5); then any log-in: 30 a minute per address."""

    def log_in(n: int) -> Any:
        return client.post("/accounts/login/", {"login": f"x{n}@example.com", "password": "p"})

    pages = [log_in(n) for n in range(31)]
    locked = ["Too many failed login attempts" in p.content.decode() for p in pages[:30]]
    assert locked == [False] * 10 + [True] * 20
    assert [p.status_code for p in pages[:30]] == [200] * 30
    assert pages[30].status_code == 429
    assert "Too many requests" in pages[30].content.decode()


@pytest.mark.django_db
def test_connect_from_one_address_is_limited_across_accounts() -> None:
    clients = [signed_in(quick_user()) for _ in range(4)]
    for client in clients[:3]:  # each stays within its own 10 a minute
        assert [client.get("/connect/openrouter/").status_code for _ in range(10)] == [302] * 10
    refused = clients[3].get("/connect/openrouter/")
    assert refused.status_code == 429
    assert "Too many requests" in refused.content.decode()


@pytest.mark.django_db
def test_generation_starts_from_one_address_are_limited_across_accounts(
    settings: LazySettings,
) -> None:
    settings.GENERATIONS_PER_HOUR_PER_IP = 3
    form = {"prompt": "a cup", "num_inference_steps": 8, "num_outputs": 1, "extension": "ply"}
    statuses = []
    for _ in range(2):  # two accounts, each far under its own caps
        user = quick_user()
        api_key_store(user=user, plain_key="sk-or-v1-" + "12" * 32, source="pasted")
        client = signed_in(user)
        statuses += [client.post("/generations/new/", form).status_code for _ in range(2)]
    assert statuses[:3] == [302] * 3
    assert statuses[3] == 429


@pytest_asyncio.fixture
async def sockets() -> AsyncIterator[Any]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(user: User) -> WebsocketCommunicator:
        cookie = f"sessionid={(await sync_to_async(signed_in)(user)).cookies['sessionid'].value}"
        socket = WebsocketCommunicator(
            application, "/ws/chat/", headers=[ORIGIN, (b"cookie", cookie.encode())]
        )
        socket.scope["client"] = ("203.0.113.9", 50000)  # every tab from one address
        connected, _ = await socket.connect()
        assert connected
        opened.append(socket)
        return socket

    yield open_socket
    for socket in opened:
        await socket.disconnect()
    hub = streams.current_hub()
    if hub is not None:
        await hub.drain(15)


@pytest.mark.django_db(transaction=True)
async def test_chat_sends_from_one_address_are_limited_across_accounts(
    sockets: Any, settings: LazySettings
) -> None:
    settings.CHAT_SENDS_PER_MINUTE_PER_IP = 3
    answers = []
    for _ in range(2):  # two accounts, each far under its own 30 a minute
        user = await sync_to_async(quick_user)()
        await sync_to_async(api_key_store)(user=user, plain_key="sk-or-v1-" + "34" * 32, source="x")
        socket = await sockets(user)
        for _ in range(2):
            await socket.send_json_to(
                {"type": "send", "conversation": None, "text": "hi", "model": "sandbox/error-400"}
            )
            first = await socket.receive_json_from(timeout=10)
            answers.append(first)
            frame = first
            while frame["type"] not in {"done", "error"}:  # the (quickly failing) answer ends
                frame = await socket.receive_json_from(timeout=10)
    assert [frame["type"] for frame in answers[:3]] == ["started"] * 3
    assert answers[3]["type"] == "error" and answers[3]["code"] == "rate_limited", answers[3]
    assert "Try again in" in answers[3]["message"]
