"""Websockets: refused without a session and from a foreign Origin."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import User
from config.asgi import application
from config.async_db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[bool, object]:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    await communicator.disconnect()
    return connected, code


@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/generations/"])
async def test_a_socket_without_a_session_is_refused(path: str) -> None:
    connected, code = await connect(path, [(b"origin", b"http://127.0.0.1:8000")])
    assert not connected
    assert code == 4401


@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/generations/"])
async def test_a_socket_from_a_foreign_origin_is_refused_even_when_signed_in(
    path: str, user: User
) -> None:
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session_cookie)(user)
    ok, _ = await connect(path, [(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)])
    assert ok
    foreign, _ = await connect(path, [(b"origin", b"https://evil.example"), (b"cookie", cookie)])
    assert not foreign


@pytest.mark.parametrize("path", ["/ws/chat/", "/ws/generations/"])
async def test_a_socket_is_signed_in_by_its_session_cookie_among_others_until_signed_out(
    path: str, user: User
) -> None:
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session_cookie)(user)
    origin = (b"origin", b"http://127.0.0.1:8000")
    ok, _ = await connect(path, [origin, (b"cookie", b"theme=dark; " + cookie + b"; lang=en")])
    assert ok
    ok, _ = await connect(path, [origin, (b"cookie", b"theme=dark"), (b"cookie", cookie)])
    assert ok

    def change_password() -> None:  # signs out every session (its auth hash no longer matches)
        user.set_password("a new password, long enough")
        user.save()

    await sync_to_async(change_password)()
    ok, code = await connect(path, [origin, (b"cookie", cookie)])
    assert not ok and code == 4401


async def test_a_socket_opens_while_the_database_thread_of_the_open_ones_is_busy(
    user: User,
) -> None:
    """Its session is read in a thread of its own (accounts.websocket): under load, the shared
    one holds the queued calls of every open socket."""
    cookie = await sync_to_async(session_cookie)(user)
    release = threading.Event()
    busy = asyncio.ensure_future(database_sync_to_async(release.wait)(30))
    try:
        ok, _ = await connect(
            "/ws/chat/", [(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)]
        )
        assert ok and not busy.done()
    finally:
        release.set()
        await busy
