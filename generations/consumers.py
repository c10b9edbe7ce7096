"""Live status of a user's generations: the worker's events, relayed to every open page."""

from __future__ import annotations

from typing import Any

from config.async_db import database_sync_to_async
from config.consumers import JsonConsumer
from generations.services import generation_snapshot, user_group


class GenerationsConsumer(JsonConsumer):
    """Joins the user's group; each ``generation.update`` goes to the page as JSON.

    On connect the page first gets a snapshot of recent generations, so a tab that reconnects
    after a network blip catches up on what it missed. The socket only listens: pages change
    generations through ordinary POSTs.
    """

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=4401)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = await database_sync_to_async(generation_snapshot)(user_id=user.pk)
        await self.send_json({"type": "snapshot", "generations": snapshot})

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Nothing to receive: every frame — text, binary, not JSON, nested past the parser's
        limit — is ignored unread, so junk from the page cannot close the socket."""

    async def generation_update(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "generation", "generation": event["generation"]})
