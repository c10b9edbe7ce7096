"""What a tab may ask over the websocket, and what it is refused: ownership, bad input, rate
limits, busy conversations, regenerate and retry, stops from another process, the sweeper."""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import timedelta
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import LazySettings
from django.db import OperationalError
from django.utils import timezone

from accounts import crypto, key_cache
from accounts.models import OpenRouterKey, User
from accounts.services import api_key_delete, api_key_store
from chat import protocol, services, streams
from chat.models import Conversation, Message
from chat.tasks import sweep_streams
from config.async_db import database_sync_to_async as kept_connection_sync_to_async
from openrouter.sandbox.catalog import DEFAULT_CHAT_MODEL
from openrouter.sandbox.replies import reply_text
from tests.chat.conftest import (
    Answer,
    Tab,
    add_message,
    eventually,
    make_conversation,
    sandbox_state,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def someone_elses_conversation(other: User) -> tuple[Conversation, Message]:
    conversation = make_conversation(other, title="Private")
    add_message(conversation, Message.Role.USER, "secret question")
    answer = add_message(conversation, Message.Role.ASSISTANT, "secret answer")
    return conversation, answer


async def test_a_tab_can_open_only_its_own_conversations_and_messages(
    tabs: Any, cookie: bytes, other_user: User
) -> None:
    conversation, answer = await someone_elses_conversation(other_user)
    tab: Tab = await tabs(cookie)
    refusals = [
        {"type": "subscribe", "conversation": conversation.pk},
        {"type": "send", "conversation": conversation.pk, "text": "let me in"},
        {"type": "stop", "message": answer.pk},
        {"type": "regenerate", "message": answer.pk},
        {"type": "retry", "message": answer.pk},
        {"type": "edit", "message": answer.pk - 1, "text": "let me in"},
        {"type": "subscribe", "conversation": 10**9},
    ]
    for frame in refusals:
        await tab.send(**frame, ref="r1")
        error = await tab.expect("error")
        assert (error["code"], error["ref"]) == ("not_found", "r1"), frame
        assert "secret" not in str(error)
    await tab.send(type="ping", ref=7)
    assert await tab.expect("pong") == {"type": "pong", "ref": 7}
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 2


async def test_a_frame_that_needs_no_database_is_answered_while_the_database_thread_is_busy(
    tabs: Any, cookie: bytes
) -> None:
    """No connection sweep in that thread before each frame (config.async_db): under load it
    queued every frame behind every send."""
    tab: Tab = await tabs(cookie)
    release = threading.Event()
    busy = asyncio.ensure_future(kept_connection_sync_to_async(release.wait)(30))
    try:
        await tab.send(type="ping", ref=1)
        assert await tab.expect("pong", seconds=10) == {"type": "pong", "ref": 1}
        assert not busy.done()
    finally:
        release.set()
        await busy


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json at all", "bad_json"),
        ("[1, 2]", "bad_request"),
        ('{"no": "type"}', "unknown_type"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "subscribe"}', "bad_request"),
        ('{"type": "subscribe", "conversation": "1"}', "bad_request"),
        ('{"type": "stop", "message": true}', "bad_request"),
        ('{"type": "send", "conversation": null, "text": "   "}', "bad_request"),
        ('{"type": "edit", "message": 1, "text": ""}', "bad_request"),
        ('{"type": "edit", "text": "hi"}', "bad_request"),
        ('{"type": "send", "conversation": null, "text": 5}', "bad_request"),
        ('{"type": "send", "conversation": null, "text": "hi", "model": "a b"}', "bad_request"),
        (
            '{"type": "send", "conversation": null, "text": "hi", "options": {"temperature": 9}}',
            "bad_request",
        ),
    ],
)
async def test_bad_input_gets_an_error_frame_and_the_socket_stays_usable(
    tabs: Any, cookie: bytes, raw: str, code: str
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.socket.send_to(text_data=raw)
    error = await tab.expect("error")
    assert error["code"] == code
    assert error["message"]
    await tab.send(type="ping")
    await tab.expect("pong")
    assert await sync_to_async(Conversation.objects.count)() == 0


async def test_oversized_text_and_binary_frames_are_refused(
    tabs: Any, cookie: bytes, settings: LazySettings
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="x" * (settings.CHAT_MAX_MESSAGE_CHARS + 1))
    assert (await tab.expect("error"))["code"] == "too_long"
    await tab.socket.send_to(text_data="x" * (protocol.max_frame_chars() + 1))
    assert (await tab.expect("error"))["code"] == "too_long"
    await tab.socket.send_to(bytes_data=b"\x00\x01")
    assert (await tab.expect("error"))["code"] == "bad_request"
    await tab.send(type="send", conversation=None, text="x" * settings.CHAT_MAX_MESSAGE_CHARS)
    assert (await tab.answer()).state == "complete"  # the limit itself is allowed


async def test_without_a_key_a_send_says_to_connect(tabs: Any, user: User) -> None:
    tab: Tab = await tabs(await sync_to_async(session_cookie)(user))
    await tab.send(type="send", conversation=None, text="hello")
    error = await tab.expect("error")
    assert error["code"] == "not_connected"
    assert "Connect your OpenRouter account" in error["message"]


def record_request_and_database(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The order in which sends ask upstream and start their database call."""
    order: list[str] = []
    stream_chat, message_send = streams.stream_chat, services.message_send

    def recorded_stream_chat(api_key: str, payload: dict[str, Any]) -> Any:
        order.append("request")
        return stream_chat(api_key, payload)

    def recorded_message_send(**kwargs: Any) -> Any:
        order.append("database")
        return message_send(**kwargs)

    monkeypatch.setattr(streams, "stream_chat", recorded_stream_chat)
    monkeypatch.setattr(services, "message_send", recorded_message_send)
    return order


def forget_cached_key(user: User) -> None:
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(key_cache.name(user.pk) or "")


async def test_a_new_conversations_request_leaves_before_the_database_is_asked(
    tabs: Any, cookie: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = record_request_and_database(monkeypatch)
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello")
    first = await tab.answer()
    assert first.state == "complete" and first.text == reply_text(
        model=DEFAULT_CHAT_MODEL, prompt="hello"
    )
    assert order == ["request", "database"]  # the key came from the cache, with the count
    # A follow-up needs the conversation's history from the database first.
    order.clear()
    conversation = first.started["conversation"]["id"]  # type: ignore[index]
    await tab.send(type="send", conversation=conversation, text="and then?")
    assert (await tab.answer()).state == "complete"
    assert order == ["database", "request"]


async def test_a_key_missing_from_the_cache_is_read_from_the_database_and_cached(
    tabs: Any, cookie: bytes, connected_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sync_to_async(forget_cached_key)(connected_user)
    order = record_request_and_database(monkeypatch)
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello")
    assert (await tab.answer()).state == "complete"
    assert order == ["database", "request"]
    order.clear()
    await tab.send(type="send", conversation=None, text="hello again")
    assert (await tab.answer()).state == "complete"
    assert order == ["request", "database"]  # cached by the first send


async def test_a_tab_left_open_cannot_send_once_the_account_is_disconnected(
    tabs: Any, cookie: bytes, connected_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello")
    first = await tab.answer()
    await sync_to_async(api_key_delete)(user=connected_user)  # in another tab, say
    order = record_request_and_database(monkeypatch)
    conversation = first.started["conversation"]["id"]  # type: ignore[index]
    for where in (None, conversation):
        await tab.send(type="send", conversation=where, text="one more")
        assert (await tab.expect("error"))["code"] == "not_connected"
    assert "request" not in order  # the old key never left
    assert await sync_to_async(Message.objects.count)() == 2


async def test_disconnecting_stops_every_answer_still_streaming_on_the_key(
    tabs: Any, cookie: bytes, connected_user: User
) -> None:
    """Each ends as a Stop ends it, its text so far kept, and the sandbox sees it cancelled."""
    before = await sandbox_state()
    answers = []
    for _ in range(2):  # two tabs, two conversations
        tab: Tab = await tabs(cookie)
        await tab.send(type="send", conversation=None, text="hello", model="sandbox/slow")
        answers.append((tab, await tab.follow(Answer(), lambda frame: frame["type"] == "delta")))

    await sync_to_async(api_key_delete)(user=connected_user)  # the Account page's Disconnect
    for tab, answer in answers:
        assert (await tab.answer(into=answer)).state == "stopped"
        stored = await sync_to_async(Message.objects.get)(pk=answer.message_id)
        assert stored.state == Message.State.STOPPED
        assert stored.content == answer.text != ""
    await sandbox_streams_when(
        lambda state: state["cancelled_streams"] == before["cancelled_streams"] + 2
    )


async def test_reconnecting_with_another_key_lets_an_answer_under_way_finish(
    tabs: Any, cookie: bytes, connected_user: User
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello", model="sandbox/slow")
    answer = await tab.follow(Answer(), lambda frame: frame["type"] == "delta")
    await sync_to_async(api_key_store)(
        user=connected_user, plain_key="sk-or-v1-" + "ef" * 32, source="oauth"
    )
    assert (await tab.answer(into=answer)).state == "complete"
    assert answer.text == reply_text(model="sandbox/slow", prompt="hello")


def cached_entry(user: User) -> bytes | None:
    value = redis.Redis.from_url(os.environ["REDIS_URL"]).get(key_cache.name(user.pk) or "")
    return None if value is None else bytes(value)


async def sandbox_streams_when(check: Any) -> dict[str, int]:
    async def state() -> dict[str, int] | None:
        found = await sandbox_state()
        return found if check(found) else None

    return dict(await eventually(state, "the sandbox's streams to settle"))


@pytest.mark.parametrize("change", ["deleted", "replaced"])
async def test_a_stale_cached_key_is_caught_before_anything_is_stored_and_corrected(
    tabs: Any, cookie: bytes, connected_user: User, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """As if the cache write of a disconnect or a reconnect had failed: the table changed, the
    cache did not. The request that went out with the old key is cancelled as it starts."""
    stale = await sync_to_async(cached_entry)(connected_user)
    assert stale  # cached when the key was stored
    keys = OpenRouterKey.objects.filter(user=connected_user)
    if change == "deleted":
        await sync_to_async(keys._raw_delete)(keys.db)  # no signal: the cache keeps the key
    else:
        await keys.aupdate(encrypted_key=crypto.encrypt("sk-or-v1-" + "0" * 64))  # no signal
    assert await sync_to_async(cached_entry)(connected_user) == stale
    before = await sandbox_state()
    order = record_request_and_database(monkeypatch)
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello")
    error = await tab.expect("error")
    assert error["code"] == ("not_connected" if change == "deleted" else "key_changed")
    assert order == ["request"]  # sent with the cached key; refused before any row
    assert await sync_to_async(Conversation.objects.count)() == 0  # nothing stored
    await sandbox_streams_when(
        lambda state: (
            state["active_streams"] == before["active_streams"]
            and state["cancelled_streams"] + state["completed_streams"]
            > before["cancelled_streams"] + before["completed_streams"]
        )
    )  # the request that left was closed
    corrected = await sync_to_async(cached_entry)(connected_user)
    if change == "deleted":
        assert corrected == key_cache.TOMBSTONE
    else:
        assert corrected == bytes((await keys.aget()).encrypted_key)


async def test_a_request_sent_early_is_cancelled_when_the_database_call_fails(
    tabs: Any, cookie: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def database_down(**kwargs: Any) -> Any:
        raise OperationalError("the database went away")

    before = await sandbox_state()
    monkeypatch.setattr(services, "message_send", database_down)
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello", model="sandbox/slow")
    assert (await tab.expect("error"))["code"] == "internal"
    after = await sandbox_streams_when(
        lambda state: (
            state["chat_requests"] > before["chat_requests"]
            and state["active_streams"] == before["active_streams"]
        )
    )
    assert after["completed_streams"] == before["completed_streams"]  # cut, not read to its end
    assert await sync_to_async(Conversation.objects.count)() == 0
    hub = streams.current_hub()
    assert hub is None or not hub.relays


async def test_sends_are_rate_limited_per_user_with_a_clear_error(
    tabs: Any, cookie: bytes, settings: LazySettings
) -> None:
    settings.CHAT_SENDS_PER_MINUTE = 2
    tab: Tab = await tabs(cookie)
    for _ in range(2):
        await tab.send(type="send", conversation=None, text="hi", model="sandbox/error-400")
        await tab.answer()
    before = await sandbox_state()
    await tab.send(type="send", conversation=None, text="hi", ref="third")
    error = await tab.expect("error")
    assert error["code"] == "rate_limited" and error["ref"] == "third"
    assert 1 <= error["retry_after"] <= 60
    assert "Try again in" in error["message"]
    assert await sync_to_async(Conversation.objects.count)() == 2
    assert (await sandbox_state())["chat_requests"] == before["chat_requests"]  # nothing left


async def test_a_conversation_answers_one_prompt_at_a_time(tabs: Any, cookie: bytes) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello", model="sandbox/slow")
    answer = await tab.follow(Answer(), lambda frame: frame["type"] == "started")
    conversation = answer.started["conversation"]["id"]  # type: ignore[index]
    await tab.send(type="send", conversation=conversation, text="and another", ref="second")
    error = await tab.until(lambda frame: frame["type"] == "error")
    assert error[-1]["code"] == "busy" and error[-1]["ref"] == "second"
    await tab.send(type="stop", message=answer.message_id)
    assert (await tab.answer(into=answer)).state == "stopped"


async def test_retry_after_an_error_replaces_the_failed_answer(tabs: Any, cookie: bytes) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello", model="sandbox/error-502")
    failed = await tab.answer()
    assert failed.state == "error"
    conversation = failed.started["conversation"]["id"]  # type: ignore[index]
    await sync_to_async(Conversation.objects.filter(pk=conversation).update)(model="")

    await tab.send(type="regenerate", message=failed.message_id + 1000)
    assert (await tab.expect("error"))["code"] == "not_found"
    await tab.send(type="retry", message=failed.message_id)
    retried = await tab.answer()

    assert retried.started["replaces"] == failed.message_id  # type: ignore[index]
    assert retried.started["user"]["text"] == "hello"  # type: ignore[index]
    assert retried.state == "complete"
    assert retried.text == reply_text(model=DEFAULT_CHAT_MODEL, prompt="hello")
    messages = await sync_to_async(list)(
        Message.objects.filter(conversation_id=conversation).values_list("role", "state")
    )
    assert messages == [("user", "complete"), ("assistant", "complete")]

    await tab.send(type="retry", message=retried.message_id)  # it did not fail
    assert (await tab.expect("error"))["code"] == "not_allowed"
    await tab.send(type="regenerate", message=retried.message_id)
    again = await tab.answer()
    assert again.started["replaces"] == retried.message_id  # type: ignore[index]
    assert again.text == retried.text  # the sandbox is deterministic


async def test_editing_the_last_prompt_answers_it_again_as_it_now_reads(
    tabs: Any, cookie: bytes
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello")
    first = await tab.answer()
    conversation = first.started["conversation"]["id"]  # type: ignore[index]
    await tab.send(type="send", conversation=conversation, text="and then?")
    second = await tab.answer()
    first_prompt = first.message_id - 1  # a prompt and its answer are inserted together

    await tab.send(type="edit", message=first_prompt, text="not the last one")
    assert (await tab.expect("error"))["code"] == "not_allowed"
    await tab.send(type="edit", message=second.message_id, text="an answer is no prompt")
    assert (await tab.expect("error"))["code"] == "not_allowed"

    await tab.send(type="edit", message=second.message_id - 1, text=" \n ", ref="blank")
    blank = await tab.expect("error")
    assert (blank["code"], blank["message"], blank["ref"]) == (
        "bad_request",
        "A message cannot be empty.",
        "blank",
    )
    await tab.send(type="edit", message=second.message_id - 1, text="tell me about tides")
    edited = await tab.answer()
    assert edited.started["replaces"] == second.message_id  # type: ignore[index]
    assert edited.started["user"] == {  # type: ignore[index]
        **edited.started["user"],  # type: ignore[index]
        "id": second.message_id - 1,
        "text": "tell me about tides",
    }
    assert edited.state == "complete"
    assert edited.text == reply_text(model=DEFAULT_CHAT_MODEL, prompt="tell me about tides")
    stored = await sync_to_async(list)(
        Message.objects.filter(conversation_id=conversation).values_list("role", "content")
    )
    assert stored == [
        ("user", "hello"),
        ("assistant", first.text),
        ("user", "tell me about tides"),
        ("assistant", edited.text),
    ]


async def test_tabs_showing_a_conversation_are_told_when_it_is_deleted(
    tabs: Any, cookie: bytes
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello")
    conversation_id = (await tab.answer()).started["conversation"]["id"]  # type: ignore[index]
    other: Tab = await tabs(cookie)
    await other.send(type="subscribe", conversation=conversation_id)
    await other.expect("subscribed")
    conversation = await sync_to_async(Conversation.objects.get)(pk=conversation_id)
    await sync_to_async(services.conversation_delete)(conversation=conversation)  # the page's
    for each in (tab, other):
        assert await each.expect("deleted") == {"type": "deleted", "conversation": conversation_id}


async def test_a_stop_reaches_an_answer_through_its_writer_channel(
    tabs: Any, cookie: bytes
) -> None:
    """What a tab in another process does: it sends ``relay.stop`` to the message's writer."""
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hello", model="sandbox/slow")
    answer = await tab.follow(Answer(), lambda frame: frame["type"] == "delta")
    message = await sync_to_async(Message.objects.get)(pk=answer.message_id)
    assert message.writer == (await streams.hub()).channel

    await get_channel_layer().send(message.writer, protocol.relay_stop_message(message.pk))
    assert (await tab.answer(into=answer)).state == "stopped"


async def test_the_sweeper_interrupts_answers_whose_writer_went_away(
    tabs: Any, cookie: bytes, connected_user: User
) -> None:
    conversation, lost, alive = await sync_to_async(_lost_and_alive_answers)(connected_user)
    tab: Tab = await tabs(cookie)
    await tab.send(type="subscribe", conversation=conversation.pk)
    frames = await tab.until(lambda frame: frame["type"] == "subscribed")
    assert [f["message"]["text"] for f in frames if f["type"] == "snapshot"] == [
        "half an ans",
        "still going",
    ]

    assert await sync_to_async(sweep_streams)() == 1
    done = await tab.expect("done")
    assert done["message"]["id"] == lost.pk
    assert done["message"]["state"] == "interrupted"
    lost = await sync_to_async(Message.objects.get)(pk=lost.pk)
    assert (lost.state, lost.content, lost.error_code) == (
        "interrupted",
        "half an ans",
        "writer_lost",
    )
    assert (await sync_to_async(Message.objects.get)(pk=alive.pk)).state == "streaming"
    await sync_to_async(Message.objects.filter(pk=alive.pk).delete)()


async def test_a_stop_ends_an_answer_whose_writer_went_away_without_waiting_for_the_sweep(
    tabs: Any, cookie: bytes, connected_user: User
) -> None:
    """Its process was killed a moment ago: nothing listens on its writer channel any more, and
    its heartbeat is recent (the sweep would wait a minute). The stop is made after
    ``CHAT_STOP_GRACE`` by the process that was asked."""
    conversation, lost, alive = await sync_to_async(_lost_and_alive_answers)(connected_user)
    await sync_to_async(Message.objects.filter(pk=lost.pk).update)(heartbeat_at=timezone.now())
    tab: Tab = await tabs(cookie)
    await tab.send(type="subscribe", conversation=conversation.pk)
    await tab.until(lambda frame: frame["type"] == "subscribed")

    await tab.send(type="stop", message=lost.pk)
    done = await tab.expect("done")
    assert done["message"]["id"] == lost.pk
    assert done["message"]["state"] == "stopped"
    lost = await sync_to_async(Message.objects.get)(pk=lost.pk)
    assert (lost.state, lost.content, lost.writer) == ("stopped", "half an ans", "")
    assert (await sync_to_async(Message.objects.get)(pk=alive.pk)).state == "streaming"
    await sync_to_async(Message.objects.filter(pk=alive.pk).delete)()


def _lost_and_alive_answers(user: User) -> tuple[Conversation, Message, Message]:
    conversation = make_conversation(user)
    add_message(conversation, Message.Role.USER, "question")
    streaming = {"role": Message.Role.ASSISTANT, "state": Message.State.STREAMING}
    lost = add_message(
        conversation,
        content="half an ans",
        writer="specific.gone!1",
        heartbeat_at=timezone.now() - timedelta(minutes=5),
        **streaming,
    )
    alive = add_message(
        conversation,
        content="still going",
        writer="specific.here!2",
        heartbeat_at=timezone.now(),
        **streaming,
    )
    return conversation, lost, alive


def test_a_new_conversations_options_are_refused_with_every_reason_at_once() -> None:
    frame = {"type": "send", "conversation": None, "text": "hi"}
    with pytest.raises(protocol.ChatError) as refused:
        protocol.parse({**frame, "options": {"temperature": 5, "max_tokens": -3}})
    assert refused.value.code == "bad_request"
    assert "Temperature: " in refused.value.message and "Max tokens: " in refused.value.message


@pytest.mark.parametrize(
    "model", ["../../etc", "openai/../../x", "/gpt-4o", "gpt-4o", "a b", "openai/gpt-4o\n", 7]
)
async def test_a_malformed_model_id_is_refused_in_the_forms_words_and_nothing_is_stored(
    tabs: Any, cookie: bytes, model: Any
) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hi", model=model, ref="send")
    assert await tab.expect("error") == {
        "type": "error",
        "code": "bad_request",
        "message": "A model id looks like openai/gpt-4o (blank: my OpenRouter default).",
        "ref": "send",
    }
    assert await sync_to_async(Conversation.objects.count)() == 0


@pytest.mark.parametrize(
    "model",
    [
        "",
        "openai/gpt-4o",
        "meta-llama/llama-3.1-8b-instruct:free",
        "~openai/gpt-latest",
        "@preset/mine",
    ],
)
def test_the_model_ids_openrouter_writes_are_taken(model: str) -> None:
    request = protocol.parse({"type": "send", "conversation": None, "text": "hi", "model": model})
    assert request == protocol.Send(None, "hi", model)


async def test_a_new_conversation_keeps_its_model_and_options(tabs: Any, cookie: bytes) -> None:
    tab: Tab = await tabs(cookie)
    options = {"system_prompt": "Be brief.", "temperature": 0.3, "max_tokens": 12}
    await tab.send(
        type="send", conversation=None, text="hello there", model="openai/gpt-4o", options=options
    )
    answer = await tab.answer()

    conversation = await sync_to_async(Conversation.objects.get)(
        pk=answer.started["conversation"]["id"]  # type: ignore[index]
    )
    assert (conversation.model, conversation.system_prompt) == ("openai/gpt-4o", "Be brief.")
    assert (conversation.temperature, conversation.max_tokens) == (0.3, 12)
    whole = reply_text(model="openai/gpt-4o", prompt="hello there", temperature=0.3)
    assert whole.startswith(answer.text) and answer.text != whole  # cut at max_tokens…
    assert answer.state == "complete"  # …which is a complete answer, and says so
    assert answer.done["message"]["finish_reason"] == "length"  # type: ignore[index]
    assert answer.done["message"]["model"] == "openai/gpt-4o"  # type: ignore[index]


async def test_a_model_reply_with_html_is_stored_as_text(tabs: Any, cookie: bytes) -> None:
    tab: Tab = await tabs(cookie)
    await tab.send(type="send", conversation=None, text="hi", model="sandbox/xss")
    answer = await tab.answer()
    assert "<script>window.__xss=1;alert(1)</script>" in answer.text
    message = await sync_to_async(Message.objects.get)(pk=answer.message_id)
    assert message.content == answer.text


async def test_sockets_that_send_share_the_cache_connection_instead_of_one_each(
    tabs: Any, cookie: bytes
) -> None:
    """Each socket's database calls run in a context of their own, and Django's ``caches`` are
    per context: the send counters must not open a Redis connection per socket."""
    server = redis.Redis.from_url(os.environ["REDIS_URL"])

    def connections_counting_sends() -> int:
        return len(server.client_list())

    first: Tab = await tabs(cookie)
    await first.send(type="send", conversation=None, text="hello")
    assert (await first.answer()).state == "complete"
    before = await sync_to_async(connections_counting_sends)()
    for _ in range(6):
        tab: Tab = await tabs(cookie)
        await tab.send(type="send", conversation=None, text="hello")
        assert (await tab.answer()).state == "complete"
    # Not one more per socket (the channel layer's pool may add one or two under concurrency).
    assert await sync_to_async(connections_counting_sends)() <= before + 2
    server.close()
