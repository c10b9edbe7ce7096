"""chat.groups: a tab's group moves in one Redis round trip, with the same effect as Channels'
``group_discard`` + ``group_add`` (real Redis channel layer)."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer

from chat import groups

pytestmark = pytest.mark.asyncio


async def test_a_move_leaves_one_group_joins_the_other_and_names_who_is_there() -> None:
    layer = get_channel_layer()
    tab, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("chat.test.b", other)

    assert await groups.move(layer, tab, leave=None, join="chat.test.a") == [tab]
    members = await groups.move(layer, tab, leave="chat.test.a", join="chat.test.b")
    assert sorted(members or []) == sorted([tab, other])
    assert await groups.members(layer, "chat.test.a") == []
    assert groups.others_in(members, besides=tab)
    # Joined as group_add joins: with the layer's expiry, and reached by group_send.
    connection = layer.connection(layer.consistent_hash("chat.test.b"))
    assert 0 < await connection.ttl(layer._group_key("chat.test.b")) <= layer.group_expiry
    await layer.group_send("chat.test.b", {"type": "chat.hello"})
    assert (await asyncio.wait_for(layer.receive(tab), 5))["type"] == "chat.hello"

    assert await groups.move(layer, tab, leave="chat.test.b", join=None) is None
    assert await groups.members(layer, "chat.test.b") == [other]
    assert not groups.others_in([tab], besides=tab)


async def test_with_another_layer_it_uses_channels_calls_and_cannot_tell_who_is_there() -> None:
    layer = InMemoryChannelLayer()
    tab = await layer.new_channel()
    assert await groups.move(layer, tab, leave=None, join="chat.test.a") is None
    assert await groups.members(layer, "chat.test.a") is None
    assert groups.others_in(None, besides=tab)  # unknown: tell the group
    await layer.group_send("chat.test.a", {"type": "chat.hello"})
    assert (await asyncio.wait_for(layer.receive(tab), 5))["type"] == "chat.hello"
