"""The base of this project's websocket consumers (``chat.consumers``, ``generations.consumers``).

Channels' ``AsyncJsonWebsocketConsumer`` with two differences, both for the chat relay's hot path
(every streamed token is one frame; docs/benchmarks.md):

* messages are dispatched without Channels' connection sweep. Channels 4.2+ runs
  ``close_old_connections()`` in the database thread before *every* message a consumer handles: a
  thread hop per frame received and per group message, queued behind every database call waiting
  there (at 1,000 streams, sockets took over ten seconds to open). These consumers make their
  database calls through ``config.async_db.database_sync_to_async``, which sees to the connection
  around each call, so the sweep would only wait;
* frames are encoded and decoded with orjson (about 2 µs less per frame each way than the
  standard library's ``json``; compact output, the same JSON). A frame orjson refuses and
  ``json`` reads (a lone surrogate: half an emoji, as ``JSON.stringify`` writes it) is read by
  ``json``, so that the request is refused by its own validation, with its ``ref``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer


class JsonConsumer(AsyncJsonWebsocketConsumer):
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
