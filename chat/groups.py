"""A tab's conversation group: moved to, and asked about, in one Redis round trip each.

Channels' own calls cost a round trip apiece (``group_discard`` one, ``group_add`` two), and a
chat send needs a move to the new conversation's group and then "is any other tab there?"
(``chat.streams.Hub.tell_others``): four round trips per answer, ~1 ms of the event loop's CPU
at 100 streams (docs/benchmarks.md). With channels_redis (pinned; it keeps a group as a sorted
set of channel names with an expiry, ``_group_key``) a move is one pipeline and a question one
command, each sent in the next batch of the layer's connection (``config.redis_batch``: with
many tabs at once, one round trip for all). With any other layer, Channels' calls, and
"others" is unknown (``None``: tell the group anyway).
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio.client import Pipeline

from config import redis_batch


def _shard(layer: Any, group: str) -> int | None:
    """The Redis shard holding ``group``, when the layer is channels_redis."""
    return layer.consistent_hash(group) if hasattr(layer, "_group_key") else None


async def move(layer: Any, channel: str, leave: str | None, join: str | None) -> list[str] | None:
    """Take ``channel`` out of group ``leave`` and into ``join`` (either may be ``None``); the
    channels in ``join`` afterwards (``None`` when the layer cannot tell)."""
    shard = _shard(layer, join) if join else None
    if shard is None or (leave and _shard(layer, leave) != shard):
        # Not channels_redis, or the groups live on different shards: Channels' calls.
        if leave:
            await layer.group_discard(leave, channel)
        if join:
            await layer.group_add(join, channel)
        return None
    key = layer._group_key(join)

    def commands(pipe: Pipeline) -> None:
        if leave:
            pipe.zrem(layer._group_key(leave), channel)
        pipe.zadd(key, {channel: time.time()})
        pipe.expire(key, layer.group_expiry)
        pipe.zrange(key, 0, -1)

    *_, members = await redis_batch.batcher(layer.connection(shard)).execute(commands)
    return [member.decode() for member in members]


async def members(layer: Any, group: str) -> list[str] | None:
    """The channels in ``group`` (``None`` when the layer cannot tell)."""
    shard = _shard(layer, group)
    if shard is None:
        return None
    key = layer._group_key(group)
    (found,) = await redis_batch.batcher(layer.connection(shard)).execute(
        lambda pipe: pipe.zrange(key, 0, -1)
    )
    return [member.decode() for member in found]


def others_in(members: list[str] | None, besides: str | None) -> bool:
    """Whether ``members`` holds a channel other than ``besides`` (unknown members: yes)."""
    return members is None or any(member != besides for member in members)
