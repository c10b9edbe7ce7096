"""Answers streamed over the websocket: real Redis channel layer, real database, the sandbox
upstream over HTTP. Nothing here asserts timing."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.utils import timezone

from accounts.models import User
from accounts.services import api_key_for
from chat import protocol, services, streams, tasks
from chat.consumers import ChatConsumer, Tracked
from chat.models import Conversation, Message
from openrouter import client
from openrouter.sandbox.catalog import DEFAULT_CHAT_MODEL
from openrouter.sandbox.replies import reply_text
from tests.chat.conftest import (
    Answer,
    Tab,
    add_message,
    eventually,
    make_conversation,
    sandbox_state,
)

pytestmark = pytest.mark.django_db(transaction=True)


def is_delta(frame: dict[str, Any]) -> bool:
    return frame["type"] == "delta"


@database_sync_to_async
def stored(message_id: int) -> Message:
    return Message.objects.get(pk=message_id)


async def test_a_streamed_reply_arrives_whole_and_in_order_and_equals_the_stored_text(
    tabs: Any, cookie: bytes
) -> None:
    tab: Tab = await tabs(cookie)
    prompt = "Explain how to write a long python function"
    await tab.send(type="send", conversation=None, text=prompt)
    answer = await tab.answer()

    assert answer.started is not None
    assert answer.started["user"]["text"] == prompt
    assert answer.started["message"]["state"] == "streaming"
    seqs = [delta["seq"] for delta in answer.deltas]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert "".join(delta["text"] for delta in answer.deltas) == answer.text
    expected = reply_text(model=DEFAULT_CHAT_MODEL, prompt=prompt)
    assert answer.text == expected
    assert answer.state == "complete"
    message = await stored(answer.message_id)
    assert message.content == expected
    assert message.state == Message.State.COMPLETE
    done = answer.done["message"]  # type: ignore[index]
    assert done["seq"] == len(expected)
    # No model chosen: none was sent, and the answer says which one OpenRouter picked.
    assert done["model"] == DEFAULT_CHAT_MODEL == message.model_served
    assert done["usage"]["completion_tokens"] > 0 and float(done["usage"]["cost"]) > 0
    assert message.completion_tokens == done["usage"]["completion_tokens"]
    assert done["ttft_ms"] is not None and message.time_to_first_token_ms is not None


async def test_two_tabs_see_the_same_stream_the_second_in_batches(tabs: Any, cookie: bytes) -> None:
    first: Tab = await tabs(cookie)
    await first.send(type="send", conversation=None, text="hello")
    greeting = await first.answer()
    conversation = greeting.started["conversation"]["id"]  # type: ignore[index]

    second: Tab = await tabs(cookie)
    await second.send(type="subscribe", conversation=conversation)
    await second.expect("subscribed")
    prompt = "Tell me a long story about the sea"
    await first.send(type="send", conversation=conversation, text=prompt)
    asked, followed = await first.answer(), await second.answer()

    assert followed.started == asked.started  # the prompt and the new answer, in both tabs
    expected = reply_text(model=DEFAULT_CHAT_MODEL, prompt=prompt)
    assert asked.text == followed.text == expected
    assert (await stored(asked.message_id)).content == expected
    assert followed.done == asked.done
    # The tab that asked gets every delta straight from the relay; the other follows through the
    # channel layer, several deltas to a message.
    assert len(followed.deltas) < len(asked.deltas)


async def test_stop_ends_the_answer_keeps_its_text_and_closes_the_upstream(
    tabs: Any, cookie: bytes
) -> None:
    before = await sandbox_state()
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello", model="sandbox/slow")
    answer = await tab.follow(Answer(), is_delta)
    await tab.send(type="stop", message=answer.message_id)
    await tab.answer(into=answer)

    assert answer.state == "stopped"
    message = await stored(answer.message_id)
    assert message.state == Message.State.STOPPED
    assert message.content == answer.text != ""
    assert reply_text(model="sandbox/slow", prompt="hello").startswith(message.content)
    after = await eventually(
        lambda: _sandbox_when(lambda s: s["cancelled_streams"] > before["cancelled_streams"]),
        "the sandbox to see the stream cancelled",
    )
    assert after["active_streams"] == before["active_streams"]


async def test_a_stopped_answer_gets_its_tokens_and_cost_from_openrouter_afterwards(
    tabs: Any, cookie: bytes, connected_user: User
) -> None:
    """A stop cuts the stream before its usage chunk: the relay keeps the model and the
    generation id the stream named, and the periodic task asks OpenRouter what it billed."""
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello", model="sandbox/slow")
    answer = await tab.follow(Answer(), is_delta)
    await tab.send(type="stop", message=answer.message_id)
    await tab.answer(into=answer)
    message = await stored(answer.message_id)
    assert message.state == Message.State.STOPPED
    assert message.model_served == "sandbox/slow" and message.generation_id.startswith("gen-")
    assert message.completion_tokens is None  # the stream never said

    async def filled() -> Message | None:
        await database_sync_to_async(tasks.fill_missing_usage)()  # as beat runs it
        return await _stored_when(answer.message_id, lambda m: m.completion_tokens is not None)

    done = await eventually(filled, "the stopped answer's usage", seconds=30)
    again = await tab.expect("done")  # the tab shows the figures at once, no reload
    assert again["message"]["id"] == answer.message_id
    assert again["message"]["usage"]["completion_tokens"] == done.completion_tokens
    key = await database_sync_to_async(api_key_for)(user=connected_user)
    billed = await asyncio.to_thread(client.generation_stats, key, message.generation_id)
    assert billed["cancelled"] and billed["tokens_completion"] > 0
    assert (done.prompt_tokens, done.completion_tokens) == (
        billed["tokens_prompt"],
        billed["tokens_completion"],
    )
    assert done.cost is not None  # sandbox/slow is free: 0, as billed
    assert done.cost == Decimal(str(billed["total_cost"])).quantize(Decimal("1e-10"))
    assert done.content == message.content and done.state == Message.State.STOPPED


async def test_an_answer_whose_writer_went_away_still_gets_its_model_tokens_and_cost(
    tabs: Any, cookie: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model and generation are saved with the text while the answer streams: an answer
    whose process dies (here: its end is never stored) is swept with them, and its usage is
    then asked of OpenRouter like a stopped answer's."""
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello", model="sandbox/slow")
    answer = await tab.follow(Answer(), is_delta)
    saved = await eventually(
        lambda: _stored_when(answer.message_id, lambda m: m.content and m.generation_id),
        "a checkpoint of the streaming answer",
    )
    assert saved.state == Message.State.STREAMING
    assert saved.model_served == "sandbox/slow" and saved.generation_id.startswith("gen-")

    def never_stored(**kwargs: Any) -> None:  # as if the process died before its end
        return None

    monkeypatch.setattr(services, "answer_finish", never_stored)
    await tab.send(type="stop", message=answer.message_id)  # closes the upstream
    await eventually(lambda: _sandbox_when(lambda s: s["active_streams"] == 0), "the hang-up")
    (swept,) = await database_sync_to_async(services.streams_sweep)(stale_after=0)
    assert swept.pk == answer.message_id and swept.state == Message.State.INTERRUPTED

    async def filled() -> Message | None:
        await database_sync_to_async(tasks.fill_missing_usage)()  # as beat runs it
        return await _stored_when(answer.message_id, lambda m: m.completion_tokens is not None)

    done = await eventually(filled, "the swept answer's usage", seconds=30)
    assert done.model_served == "sandbox/slow" and done.completion_tokens
    assert done.cost is not None and done.state == Message.State.INTERRUPTED


async def _sandbox_when(check: Any) -> dict[str, int] | None:
    state = await sandbox_state()
    return state if check(state) else None


@pytest.mark.parametrize("status", [400, 401, 402, 403, 408, 429, 451, 500, 502, 503])
async def test_each_upstream_error_status_ends_the_answer_in_error_with_a_sentence(
    tabs: Any, cookie: bytes, status: int
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hi", model=f"sandbox/error-{status}")
    answer = await tab.answer()

    assert answer.state == "error"
    assert answer.deltas == []
    error = answer.done["message"]["error"]  # type: ignore[index]
    assert error["code"] == str(status)
    message = await stored(answer.message_id)
    assert (message.state, message.error_code) == (Message.State.ERROR, str(status))
    assert message.error_message == error["message"] != ""
    assert message.content == ""
    # No model served it: the one asked for is named under it.
    assert answer.done["message"]["model"] == f"sandbox/error-{status}"  # type: ignore[index]
    words = {401: "Reconnect", 402: "credits", 429: "again in 7 s", 503: "again in 3 s"}
    assert words.get(status, "") in message.error_message
    # The sandbox's 429 names the free models' limit, but this model is not a free one.
    assert "(:free)" not in message.error_message


async def test_a_mid_stream_error_chunk_ends_in_error_with_the_partial_text_kept(
    tabs: Any, cookie: bytes
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hi", model="sandbox/midstream-error")
    answer = await tab.answer()

    assert answer.state == "error"
    message = await stored(answer.message_id)
    assert message.state == Message.State.ERROR and message.error_code == "502"
    assert message.content == answer.text != ""
    whole = reply_text(model="sandbox/midstream-error", prompt="hi")
    assert whole.startswith(message.content) and message.content != whole


@pytest.mark.parametrize("model", ["sandbox/drop", "sandbox/truncated", "sandbox/stall"])
async def test_a_dropped_truncated_or_stalled_stream_is_interrupted_never_complete(
    tabs: Any, cookie: bytes, model: str
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hi", model=model)
    answer = await tab.answer(seconds=30)

    assert answer.state == "interrupted"
    message = await stored(answer.message_id)
    assert message.state == Message.State.INTERRUPTED
    assert message.error_code == ("stalled" if model == "sandbox/stall" else "dropped")
    assert "cut off" in message.error_message
    whole = reply_text(model=model, prompt="hi")
    assert message.content == answer.text != ""
    assert whole.startswith(message.content) and message.content != whole


async def test_a_reconnecting_tab_gets_the_text_so_far_then_the_live_rest(
    tabs: Any, cookie: bytes
) -> None:
    first: Tab = await tabs(cookie)
    await first.send(type="send", conversation=None, text="hello", model="sandbox/slow")
    seen = await first.follow(Answer(), lambda frame: is_delta(frame) and frame["seq"] > 20)
    await first.close()  # the network blinks mid-answer

    again: Tab = await tabs(cookie)
    conversation = seen.started["conversation"]["id"]  # type: ignore[index]
    await again.send(type="subscribe", conversation=conversation, since=0)
    frames = await again.until(lambda frame: frame["type"] == "subscribed")
    snapshots = {f["message"]["role"]: f for f in frames if f["type"] == "snapshot"}
    assert snapshots["user"]["message"]["text"] == "hello"
    answer = Answer(snapshot=snapshots["assistant"])
    assert answer.snapshot["message"]["state"] == "streaming"  # type: ignore[index]
    await again.follow(answer, lambda frame: is_delta(frame) and frame["seq"] > len(seen.text))
    await again.send(type="stop", message=answer.message_id)  # live again; enough now
    await again.answer(into=answer)

    message = await stored(answer.message_id)
    assert answer.state == "stopped"
    assert answer.text == message.content  # snapshot + deltas: nothing lost, nothing twice
    assert message.content.startswith(seen.text)
    assert reply_text(model="sandbox/slow", prompt="hello").startswith(message.content)


async def test_closing_every_tab_does_not_lose_the_answer(tabs: Any, cookie: bytes) -> None:
    tab: Tab = await tabs(cookie)
    prompt = "Write a long essay on rivers"
    await tab.send(type="send", conversation=None, text=prompt)
    started = await tab.expect("started")
    await tab.close()

    message_id = started["message"]["id"]
    finished = await eventually(
        lambda: _stored_when(message_id, lambda m: m.state != Message.State.STREAMING),
        "the answer to finish with no tab open",
    )
    assert finished.state == Message.State.COMPLETE
    assert finished.content == reply_text(model=DEFAULT_CHAT_MODEL, prompt=prompt)

    back: Tab = await tabs(cookie)  # on return, the whole answer is there
    await back.send(type="subscribe", conversation=started["conversation"]["id"], since=0)
    frames = await back.until(lambda frame: frame["type"] == "subscribed")
    assert frames[-2]["message"] | {"text": None} == {
        **frames[-2]["message"],
        "text": None,
        "state": "complete",
    }
    assert frames[-2]["message"]["text"] == finished.content


async def _stored_when(message_id: int, check: Any) -> Message | None:
    message = await stored(message_id)
    return message if check(message) else None


async def test_a_lone_tab_costs_the_channel_layer_no_deltas(
    tabs: Any, cookie: bytes, connected_user: Any
) -> None:
    """Deltas reach the asking tab directly; the group hears of the start and the end only,
    until another tab follows."""
    conversation = await database_sync_to_async(make_conversation)(connected_user)
    layer = get_channel_layer()
    spy = await layer.new_channel()
    await layer.group_add(protocol.conversation_group(conversation.pk), spy)
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=conversation.pk, text="Tell me a long story")
    answer = await tab.answer()
    assert len(answer.deltas) > 500

    heard = []
    while not heard or heard[-1]["type"] != "chat.done":
        heard.append(await asyncio.wait_for(layer.receive(spy), 5))
    assert [message["type"] for message in heard] == ["chat.started", "chat.done"]


async def test_a_lone_tab_costs_the_channel_layer_no_group_message_at_all(
    tabs: Any, cookie: bytes, connected_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nobody else in the conversation, not even the start and the end go through Redis;
    a second tab that joins mid-answer still sees it through to the end."""
    conversation = await database_sync_to_async(make_conversation)(connected_user)
    group = protocol.conversation_group(conversation.pk)
    layer = get_channel_layer()
    sent_to: list[str] = []
    group_send = layer.group_send

    async def counted(name: str, message: dict[str, Any]) -> None:
        sent_to.append(name)
        await group_send(name, message)

    monkeypatch.setattr(layer, "group_send", counted)
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=conversation.pk, text="hello")
    assert (await tab.answer()).state == "complete"
    assert group not in sent_to

    await tab.send(type="send", conversation=conversation.pk, text="hi", model="sandbox/slow")
    answer = await tab.follow(Answer(), is_delta)
    second: Tab = await tabs(cookie)
    await second.send(type="subscribe", conversation=conversation.pk)
    seen = await second.answer(into=Answer())
    assert seen.state == (await tab.answer(into=answer)).state == "complete"
    assert seen.text == answer.text
    assert sent_to.count(group) >= 1  # now there was someone to tell


async def test_a_tab_that_missed_text_is_sent_the_stored_answer_at_the_end(
    tabs: Any, cookie: bytes, connected_user: Any
) -> None:
    message = await database_sync_to_async(_streaming_answer)(connected_user, "Half")
    tab: Tab = await tabs(cookie)
    await tab.send(type="subscribe", conversation=message.conversation_id)
    snapshot = await tab.expect("snapshot")
    assert snapshot["message"]["text"] == "Half"
    await tab.expect("subscribed")

    # The answer ends (its writer elsewhere) without this tab ever getting the rest.
    await database_sync_to_async(Message.objects.filter(pk=message.pk).update)(
        content="Half and the rest", state=Message.State.COMPLETE
    )
    message = await stored(message.pk)
    await get_channel_layer().group_send(
        protocol.conversation_group(message.conversation_id),
        {"type": "chat.done", "frame": protocol.done_frame(message)},
    )
    resent = await tab.expect("snapshot")
    assert resent["message"]["text"] == "Half and the rest"
    assert resent["message"]["state"] == "complete"
    assert (await tab.expect("done"))["message"]["seq"] == len("Half and the rest")


def _streaming_answer(user: Any, content: str) -> Message:
    conversation = make_conversation(user)
    add_message(conversation, Message.Role.USER, "question")
    return add_message(
        conversation,
        Message.Role.ASSISTANT,
        content,
        state=Message.State.STREAMING,
        writer="specific.elsewhere!1",
        heartbeat_at=timezone.now(),
    )


async def test_a_send_that_fails_after_its_request_left_closes_it_and_stores_nothing(
    tabs: Any, cookie: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rows_cannot_be_written(**kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "_answer_start", rows_cannot_be_written)
    before = await sandbox_state()
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello", model="sandbox/slow")

    assert (await tab.expect("error"))["code"] == "internal"
    after = await eventually(
        lambda: _sandbox_when(lambda s: s["cancelled_streams"] > before["cancelled_streams"]),
        "the sandbox to see the request that had left closed",
    )
    assert after["chat_requests"] == before["chat_requests"] + 1  # it had left, early
    assert after["active_streams"] == before["active_streams"]
    assert await database_sync_to_async(Message.objects.count)() == 0
    assert await database_sync_to_async(Conversation.objects.count)() == 0


async def test_other_tabs_hear_of_an_answer_before_its_end_however_fast_it_fails(
    tabs: Any, cookie: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer that fails at once (a 402) ends while the asking tab is still telling the other
    tabs it started; they must hear "started" first, or they would show an answer that never
    ends. Telling them is made slow here, so that the end would overtake it."""
    first: Tab = await tabs(cookie)
    await first.send(type="send", conversation=None, text="hello")
    conversation = (await first.answer()).started["conversation"]["id"]  # type: ignore[index]
    second: Tab = await tabs(cookie)
    await second.send(type="subscribe", conversation=conversation)
    await second.until(lambda frame: frame["type"] == "subscribed")

    tell_others = streams.Hub.tell_others

    async def slowly(hub: streams.Hub, group: str, message: dict[str, Any], **kwargs: Any) -> None:
        if message["type"] == "chat.started":
            await asyncio.sleep(0.5)
        await tell_others(hub, group, message, **kwargs)

    monkeypatch.setattr(streams.Hub, "tell_others", slowly)
    await first.send(
        type="send", conversation=conversation, text="again", model="sandbox/error-402"
    )
    asked = await first.answer()
    frames = await second.until(lambda frame: frame["type"] == "done")

    assert [frame["type"] for frame in frames] == ["started", "done"]
    assert frames[0]["message"]["id"] == frames[1]["message"]["id"] == asked.message_id
    assert frames[1]["message"]["state"] == asked.state == "error"


async def test_an_upstream_failure_before_the_answer_exists_is_still_stored(
    tabs: Any, cookie: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request leaves before the rows are written; should it fail at once, the end waits
    for the answer to exist and is stored there."""

    async def fails_at_once(api_key: str, payload: dict[str, Any]) -> Any:
        raise ValueError("a bug, or aiohttp refusing a header")
        yield  # an async generator, as stream_chat is

    monkeypatch.setattr(streams, "stream_chat", fails_at_once)
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello")
    answer = await tab.answer()
    assert answer.state == "error"
    message = await stored(answer.message_id)
    assert (message.state, message.error_code) == (Message.State.ERROR, "internal")


async def test_an_answer_whose_tab_vanished_as_it_started_is_still_relayed_and_stored(
    tabs: Any, cookie: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_json = ChatConsumer.send_json

    async def started_frame_cannot_be_sent(
        self: ChatConsumer, content: Any, close: bool = False
    ) -> None:
        if content.get("type") == "started":
            raise RuntimeError("the tab went away")
        await send_json(self, content, close)

    monkeypatch.setattr(ChatConsumer, "send_json", started_frame_cannot_be_sent)
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello")
    assert (await tab.expect("error"))["code"] == "internal"

    async def complete() -> Message | None:
        found = await database_sync_to_async(
            lambda: Message.objects.filter(role=Message.Role.ASSISTANT).first()
        )()
        return found if found is not None and found.state == Message.State.COMPLETE else None

    message = await eventually(complete, "the answer to be stored complete")
    assert message.content == reply_text(model=DEFAULT_CHAT_MODEL, prompt="hello")
    hub = streams.current_hub()
    assert hub is not None

    async def relay_ended() -> bool:
        return message.pk not in hub.relays

    await eventually(relay_ended, "the relay to end (and not wait on the vanished tab)", 5)


async def test_a_tab_forgets_what_it_tracked_of_a_conversation_it_leaves() -> None:
    consumer = ChatConsumer()
    consumer.channel_layer, consumer.channel_name = InMemoryChannelLayer(), "tab"
    consumer.conversation_id = 1
    consumer.tracked = {
        10: Tracked(5, final=True),  # a message of conversation 1 it was sent whole
        11: Tracked(3),  # another tab's answer, still coming
        12: Tracked(direct=True, final=True),  # its own answer, ended
        13: Tracked(2, direct=True),  # its own answer, still coming: detached on disconnect
    }
    await consumer._follow(2)
    assert consumer.tracked == {13: Tracked(2, direct=True)}


async def test_a_long_answer_is_held_as_a_few_strings_and_no_reader_loses_text() -> None:
    """At each checkpoint the relay joins the text before its earliest mark into one string
    (``Relay._compact``); what the database, the group and a tab that joins midway get stays
    whole."""
    layer = get_channel_layer()
    relay = streams.Relay(streams.Hub())
    relay.message_id, relay.group = 1, "chat.test.compact"
    follower = await layer.new_channel()
    await layer.group_add(relay.group, follower)
    tokens = [f"token {i}, " for i in range(600)]
    stored, joined_at = "", 250
    for i, token in enumerate(tokens, start=1):
        await relay._on_text(token)
        if i % 40 == 0:  # a checkpoint
            append, mark = relay.checkpoint_piece()
            stored += append.text
            relay.saved(mark)
        if i == joined_at:
            relay.followed = True  # a tab read the stored text, joined the group, said "follow"
            seen = stored
        if i > joined_at and i % 7 == 0 and relay.needs_flush():
            await relay.flush()
        assert "".join(relay.parts) == "".join(tokens[:i])
    await relay.flush()
    append, mark = relay.checkpoint_piece()
    stored += append.text
    relay.saved(mark)

    text = "".join(tokens)
    assert stored == text
    assert len(relay.parts) < 50  # 600 deltas, held as at most one string per checkpoint
    while True:  # the follower applies group deltas as ChatConsumer.chat_delta does
        try:
            delta = await asyncio.wait_for(layer.receive(follower), 1)
        except TimeoutError:
            break
        start, piece = delta["start"], delta["text"]
        assert start <= len(seen), "a delta skipped text"
        seen += piece[len(seen) - start :]
    assert seen == text


async def test_a_tick_ends_after_all_its_flushes_even_when_one_fails() -> None:
    """The next tick's checkpoint must not move a relay's marks while its delta is still being
    sent (``Relay.saved`` during ``_send_group_delta``): a tick waits for every flush."""
    hub = streams.Hub()
    failing, slow = streams.Relay(hub), streams.Relay(hub)
    ended: list[str] = []

    async def fails() -> None:
        raise ConnectionError("Redis went away")

    async def takes_a_while() -> None:
        await asyncio.sleep(0.2)
        ended.append("slow")

    for number, (relay, flush) in enumerate([(failing, fails), (slow, takes_a_while)], start=1):
        relay.message_id, relay.followed = number, True
        await relay._on_text("some text")
        relay.flush = flush  # type: ignore[method-assign]
        hub.relays[number] = relay
    hub.beat_at = time.monotonic()  # no heartbeat due: the tick only flushes

    await hub._tick()
    assert ended == ["slow"]
