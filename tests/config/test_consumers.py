"""``config.consumers.JsonConsumer``'s own dispatch loop keeps Channels' guarantees: handlers run
one at a time in arrival order, whether a message is a frame or comes from the channel layer,
and a failing handler or a StopConsumer on either side ends the consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from config.consumers import JsonConsumer

# Channels' websocket_disconnect sweeps the database thread's connections, as a real close does.
pytestmark = pytest.mark.django_db(transaction=True)


class Recorder(JsonConsumer):
    """Records when each handler starts and ends; ``slow`` frames take a while."""

    opened: list[Recorder] = []

    async def connect(self) -> None:
        self.log: list[str] = []
        self.opened.append(self)
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        self.log.append(f"frame {content['n']} start")
        if content.get("slow"):
            await asyncio.sleep(0.3)
        self.log.append(f"frame {content['n']} end")
        await self.send_json({"done": content["n"]})

    async def note(self, event: dict[str, Any]) -> None:
        self.log.append(f"message {event['n']}")
        await self.send_json({"noted": event["n"]})

    async def fail(self, event: dict[str, Any]) -> None:
        raise RuntimeError("a handler bug")

    async def stop(self, event: dict[str, Any]) -> None:
        raise StopConsumer


@pytest_asyncio.fixture
async def socket() -> AsyncIterator[tuple[WebsocketCommunicator, Recorder]]:
    Recorder.opened = []
    communicator = WebsocketCommunicator(Recorder.as_asgi(), "/")
    connected, _ = await communicator.connect()
    assert connected
    yield communicator, Recorder.opened[0]
    if not communicator.future.done():
        await communicator.disconnect()


def layer_tasks() -> list[asyncio.Task[Any]]:
    """The consumers' channel-layer tasks still running (not even asked to stop)."""
    return [
        task
        for task in asyncio.all_tasks()
        if "dispatch_from" in repr(task.get_coro()) and not task.cancelling()
    ]


async def test_frames_and_layer_messages_are_handled_one_at_a_time_in_order(
    socket: tuple[WebsocketCommunicator, Recorder],
) -> None:
    communicator, consumer = socket
    await communicator.send_json_to({"n": 1, "slow": True})
    await asyncio.sleep(0.05)  # frame 1 is being handled…
    await get_channel_layer().send(consumer.channel_name, {"type": "note", "n": 2})
    await communicator.send_json_to({"n": 3})
    replies = [await communicator.receive_json_from(timeout=5) for _ in range(3)]
    assert replies == [{"done": 1}, {"noted": 2}, {"done": 3}]
    assert consumer.log == [
        "frame 1 start",
        "frame 1 end",  # …and nothing else starts before it ends
        "message 2",
        "frame 3 start",
        "frame 3 end",
    ]
    await communicator.disconnect(timeout=1)  # at once, even with a receive blocked in Redis
    assert layer_tasks() == []


async def test_a_layer_message_handler_that_fails_ends_the_consumer_with_its_error(
    socket: tuple[WebsocketCommunicator, Recorder],
) -> None:
    communicator, consumer = socket
    await get_channel_layer().send(consumer.channel_name, {"type": "fail"})
    with pytest.raises(RuntimeError, match="a handler bug"):
        await communicator.wait(timeout=5)


async def test_a_layer_message_handler_that_stops_ends_the_consumer_cleanly(
    socket: tuple[WebsocketCommunicator, Recorder],
) -> None:
    communicator, consumer = socket
    await get_channel_layer().send(consumer.channel_name, {"type": "stop"})
    await communicator.wait(timeout=5)  # no error
    assert communicator.future.done()


async def test_a_frame_handler_that_fails_ends_the_consumer_and_its_layer_task(
    socket: tuple[WebsocketCommunicator, Recorder],
) -> None:
    communicator, _ = socket
    await communicator.send_to(text_data="not json at all {")  # decode_json: ValueError
    with pytest.raises(ValueError):
        await communicator.wait(timeout=5)
    assert layer_tasks() == []
