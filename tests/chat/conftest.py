"""Fixtures for chat: browser tabs as ``WebsocketCommunicator``s on the real ASGI application
(real Redis channel layer, real PostgreSQL, the sandbox upstream over HTTP)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import User
from chat import streams
from chat.models import Conversation, Message
from config.asgi import application

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def cookie(connected_user: User) -> bytes:
    """The session of a signed-in user whose OpenRouter (sandbox) key is stored."""
    return session_cookie(connected_user)


@pytest.fixture
def other_cookie(other_user: User) -> bytes:
    return session_cookie(other_user)


def make_conversation(user: User, **fields: Any) -> Conversation:
    fields.setdefault("title", "A conversation")
    return Conversation.objects.create(user=user, **fields)


def add_message(conversation: Conversation, role: str, content: str, **fields: Any) -> Message:
    return conversation.messages.create(role=role, content=content, **fields)


@dataclass
class Answer:
    """Everything one tab saw of one answer."""

    started: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = None
    deltas: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """What the tab shows: the snapshot's text, then each delta that was news to it."""
        text = self.snapshot["message"]["text"] if self.snapshot else ""
        seq = self.snapshot["message"]["seq"] if self.snapshot else 0
        for delta in self.deltas:
            if delta["seq"] > seq:
                text, seq = text + delta["text"], delta["seq"]
        return text

    @property
    def message_id(self) -> int:
        source = self.started or self.snapshot
        assert source is not None
        return int(source["message"]["id"])

    @property
    def state(self) -> str:
        assert self.done is not None
        return str(self.done["message"]["state"])


class Tab:
    """A browser tab: one websocket, frames in and out as dicts."""

    def __init__(self, cookie: bytes) -> None:
        self.socket = WebsocketCommunicator(
            application, "/ws/chat/", headers=[ORIGIN, (b"cookie", cookie)]
        )
        self.open = False

    async def connect(self) -> Tab:
        connected, _ = await self.socket.connect()
        assert connected
        self.open = True
        return self

    async def send(self, **frame: Any) -> None:
        await self.socket.send_json_to(frame)

    async def receive(self, seconds: float = 5.0) -> dict[str, Any]:
        return dict(await self.socket.receive_json_from(timeout=seconds))

    async def expect(self, kind: str, seconds: float = 5.0) -> dict[str, Any]:
        frame = await self.receive(seconds)
        assert frame["type"] == kind, frame
        return frame

    async def until(
        self, stop: Callable[[dict[str, Any]], bool], seconds: float = 20.0
    ) -> list[dict[str, Any]]:
        """Frames received until (and including) the first one ``stop`` accepts."""
        frames = []
        deadline = time.monotonic() + seconds
        while True:
            frame = await self.receive(max(0.01, deadline - time.monotonic()))
            frames.append(frame)
            if stop(frame):
                return frames

    async def follow(
        self,
        answer: Answer,
        until: Callable[[dict[str, Any]], bool],
        seconds: float = 20.0,
    ) -> Answer:
        """Records one answer's frames into ``answer`` until a frame ``until`` accepts."""
        for frame in await self.until(lambda f: until(f) or f["type"] == "error", seconds):
            if frame["type"] == "started":
                answer.started = frame
            elif frame["type"] == "snapshot" and frame["message"]["role"] == "assistant":
                answer.snapshot = frame
            elif frame["type"] == "delta":
                answer.deltas.append(frame)
            elif frame["type"] == "done":
                answer.done = frame
            elif frame["type"] == "error":
                raise AssertionError(f"error frame: {frame}")
        return answer

    async def answer(self, seconds: float = 20.0, into: Answer | None = None) -> Answer:
        """Follows one answer to its ``done`` frame (after ``send`` or ``subscribe``)."""
        return await self.follow(into or Answer(), lambda f: f["type"] == "done", seconds)

    async def close(self) -> None:
        if self.open:
            self.open = False
            await self.socket.disconnect(timeout=5)


@pytest_asyncio.fixture
async def tabs() -> AsyncIterator[Callable[[bytes], Any]]:
    """Opens tabs for a test; closes them after it, then waits for answers still running, so no
    relay writes into the next test's database."""
    opened: list[Tab] = []

    async def open_tab(cookie: bytes) -> Tab:
        tab = await Tab(cookie).connect()
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        await tab.close()
    hub = streams.current_hub()
    if hub is not None:
        await hub.drain(15)


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def _close_hub_at_the_end() -> AsyncIterator[None]:
    yield
    hub = streams.current_hub()
    if hub is not None:
        await hub.close()


async def sandbox_state() -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{os.environ['OPENROUTER_URL']}/_sandbox/state")
        return dict(response.json())


async def eventually(check: Callable[[], Any], what: str, seconds: float = 10.0) -> Any:
    """Polls an async ``check`` until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
