"""The base of this project's websocket consumers (``chat.consumers``, ``generations.consumers``).

Channels' ``AsyncJsonWebsocketConsumer`` with three differences, all for the chat relay's hot path
(every streamed token is one frame; docs/benchmarks.md):

* messages are dispatched without Channels' connection sweep. Channels 4.2+ runs
  ``close_old_connections()`` in the database thread before *every* message a consumer handles: a
  thread hop per frame received and per group message, queued behind every database call waiting
  there (at 1,000 streams, sockets took over ten seconds to open). These consumers make their
  database calls through ``config.async_db.database_sync_to_async``, which sees to the connection
  around each call, so the sweep would only wait;
* the socket's frames are awaited by its own task and its channel-layer messages by a second
  one, instead of Channels' ``await_many_dispatch`` (``asyncio.wait`` on two tasks and a new
  task per message: two more loop turns between a frame's arrival and its handler; a send's
  first token ~0.1 ms sooner at 10 streams, docs/benchmarks.md). A lock keeps the handlers
  one at a time, in arrival order, as Channels does; a handler failing in either ends the
  consumer, as in Channels;
* frames are encoded and decoded with orjson (about 2 µs less per frame each way than the
  standard library's ``json``; compact output, the same JSON). A frame orjson refuses and
  ``json`` reads (a lone surrogate: half an emoji, as ``JSON.stringify`` writes it) is read by
  ``json``, so that the request is refused by its own validation, with its ``ref``; and
  ``send_json`` hands its frame to the server itself, not through Channels' three ``send``
  layers (each streamed token is one frame).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

# The channel-layer tasks of consumers that ended, still unwinding (see ``__call__``): held so
# that none is collected half-cancelled; ``consumers_unwound`` waits for them (tests' end).
_unwinding: set[asyncio.Task[None]] = set()


async def consumers_unwound(seconds: float) -> None:
    if _unwinding:
        await asyncio.wait(list(_unwinding), timeout=seconds)


class JsonConsumer(AsyncJsonWebsocketConsumer):
    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        """Channels' ``AsyncConsumer.__call__``, with its frames and its channel-layer
        messages each awaited by a task of their own (see the module's docstring)."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is None:
            await super().__call__(scope, receive, send)
            return
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        one_at_a_time = asyncio.Lock()

        async def dispatch_from(source: Callable[[], Awaitable[dict[str, Any]]]) -> None:
            while True:
                message = await source()
                async with one_at_a_time:
                    await self.dispatch(message)

        frames = asyncio.current_task()
        assert frames is not None
        messages = asyncio.create_task(dispatch_from(self.channel_receive))
        # A failed handler (or a StopConsumer) there ends this task too, which says why.
        messages.add_done_callback(lambda task: task.cancelled() or frames.cancel())
        try:
            await dispatch_from(receive)
        except asyncio.CancelledError:
            if not messages.done() or messages.cancelled():
                raise  # cancelled from outside
            frames.uncancel()  # the cancellation was only the messenger
            if not isinstance(messages.exception(), StopConsumer):
                raise messages.exception() from None  # type: ignore[misc]
        except StopConsumer:
            pass
        finally:
            # Not waited for: a channels_redis receive blocked in Redis (BZPOPMIN) may finish
            # its command before it ends, up to its 5 s block; nothing is left to dispatch.
            messages.cancel()
            if not messages.done():
                _unwinding.add(messages)
                messages.add_done_callback(_unwinding.discard)

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        """The frame's JSON; ``ValueError`` (or ``RecursionError``) when it is not JSON."""
        try:
            return orjson.loads(text_data)
        except orjson.JSONDecodeError:
            return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return orjson.dumps(content).decode()

    async def send_json(self, content: Any, close: bool = False) -> None:
        text = await self.encode_json(content)
        await self.base_send({"type": "websocket.send", "text": text})
        if close:
            await self.close(close)
