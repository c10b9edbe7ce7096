"""chat.services and the model's state methods, without a websocket."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import LazySettings
from django.utils import timezone

from accounts.models import User
from chat import services
from chat.models import Conversation, Message
from chat.protocol import ChatError
from chat.services import Append, Checkpoint, Outcome, Spent
from config.cache import shared_cache
from tests.chat.conftest import add_message, make_conversation

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("How do I sort a list?", "How do I sort a list?"),
        ("  first line\nsecond line", "first line"),
        ("word " * 30, "word word word word word word word word word word word word…"),
        ("\n\n", "New conversation"),
    ],
)
def test_a_title_comes_from_the_first_prompt(text: str, title: str) -> None:
    assert services.conversation_title_from(text) == title


def test_history_goes_upstream_with_the_system_prompt_and_without_empty_answers(
    user: User,
) -> None:
    conversation = make_conversation(user, system_prompt="Be brief.")
    add_message(conversation, Message.Role.USER, "one")
    add_message(conversation, Message.Role.ASSISTANT, "", state=Message.State.ERROR)
    add_message(conversation, Message.Role.USER, "two")
    add_message(conversation, Message.Role.ASSISTANT, "partial", state=Message.State.STOPPED)
    add_message(conversation, Message.Role.USER, "three")
    answer = add_message(conversation, Message.Role.ASSISTANT, "", state=Message.State.STREAMING)

    assert services.messages_for_upstream(conversation=conversation, before=answer) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "partial"},
        {"role": "user", "content": "three"},
    ]


def test_my_openrouter_default_sends_no_model_at_all(user: User) -> None:
    conversation = make_conversation(user, model="")
    messages = [{"role": "user", "content": "hi"}]
    payload = services.completion_request(conversation=conversation, messages=messages)
    assert "model" not in payload and "temperature" not in payload and "max_tokens" not in payload
    assert payload["messages"] == messages

    conversation.model, conversation.temperature, conversation.max_tokens = "x/y", 0.0, 50
    payload = services.completion_request(conversation=conversation, messages=messages)
    assert (payload["model"], payload["temperature"], payload["max_tokens"]) == ("x/y", 0.0, 50)


def test_the_request_is_handed_over_after_the_checks_and_before_any_row_is_written(
    user: User,
) -> None:
    conversation = make_conversation(user, system_prompt="Be brief.", model="x/y")
    add_message(conversation, Message.Role.USER, "one")
    add_message(conversation, Message.Role.ASSISTANT, "first answer")
    seen: list[tuple[dict[str, Any], int]] = []

    def on_request(payload: dict[str, Any]) -> None:
        seen.append((payload, Message.objects.filter(conversation=conversation).count()))

    started = services.message_send(
        user=user, conversation_id=conversation.pk, text="two", writer="w", on_request=on_request
    )
    [(payload, rows_then)] = seen
    assert rows_then == 2 and payload == started.payload and payload["model"] == "x/y"
    assert payload["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "two"},
    ]
    # The prompt and its answer stored in that order, the answer streaming, both dated.
    stored = list(conversation.messages.values_list("pk", "role", "content", "state"))
    assert stored[-2:] == [
        (started.prompt.pk, "user", "two", "complete"),
        (started.answer.pk, "assistant", "", "streaming"),
    ]
    assert started.prompt.created_at and started.answer.updated_at

    seen.clear()
    Message.objects.filter(pk=started.answer.pk).update(state=Message.State.ERROR, content="x")
    again = services.message_answer_again(
        user=user, message_id=started.answer.pk, writer="w", failed_only=True, on_request=on_request
    )
    [(payload, rows_then)] = seen
    assert rows_then == 4  # the failed answer is still there when the request leaves…
    assert payload["messages"][-1] == {"role": "user", "content": "two"}  # …but not in it
    assert payload == again.payload and again.replaces == started.answer.pk

    seen.clear()
    with pytest.raises(ChatError):  # refused: nothing handed over
        services.message_send(
            user=user, conversation_id=conversation.pk, text="3", writer="w", on_request=on_request
        )
    assert seen == []


def test_a_new_conversation_takes_the_users_default_model(user: User) -> None:
    user.default_model = "anthropic/claude-3-haiku"
    started = services.message_send(user=user, conversation_id=None, text="hi", writer="w")
    assert started.conversation.model == "anthropic/claude-3-haiku"
    assert started.payload["model"] == "anthropic/claude-3-haiku"
    chosen = services.message_send(user=user, conversation_id=None, text="hi", writer="w", model="")
    assert chosen.conversation.model == ""  # "my OpenRouter default", picked on purpose


def test_someone_elses_conversation_and_messages_are_not_found(
    user: User, other_user: User
) -> None:
    conversation = make_conversation(other_user)
    message = add_message(conversation, Message.Role.USER, "mine")
    with pytest.raises(ChatError) as refused:
        services.conversation_for(user=user, conversation_id=conversation.pk)
    assert refused.value.code == "not_found"
    with pytest.raises(ChatError):
        services.message_for(user=user, message_id=message.pk)
    with pytest.raises(ChatError):
        services.message_send(user=user, conversation_id=conversation.pk, text="x", writer="w")
    assert conversation.messages.count() == 1


def test_the_send_quota_counts_per_user_per_minute(
    user: User, other_user: User, settings: LazySettings
) -> None:
    settings.CHAT_SENDS_PER_MINUTE = 3
    for _ in range(3):
        services.send_quota_take(user_id=user.pk)
    with pytest.raises(ChatError) as refused:
        services.send_quota_take(user_id=user.pk)
    assert refused.value.code == "rate_limited" and 1 <= (refused.value.retry_after or 0) <= 60
    services.send_quota_take(user_id=other_user.pk)  # someone else is not affected


@pytest.mark.django_db(transaction=True)
async def test_a_send_over_its_quota_counted_in_the_background_sends_and_stores_nothing(
    user: User, settings: LazySettings
) -> None:
    settings.CHAT_SENDS_PER_MINUTE = 0
    requested: list[dict[str, Any]] = []
    with pytest.raises(ChatError) as refused:
        # As the consumer does: counted on the event loop while the send runs in a thread.
        await sync_to_async(services.message_send)(
            user=user,
            conversation_id=None,
            text="one more",
            writer="w",
            quota=services.send_quota_start(user_id=user.pk, client_ip="192.0.2.1"),
            on_request=requested.append,
        )
    assert refused.value.code == "rate_limited"
    assert requested == []
    assert not await Conversation.objects.filter(user=user).aexists()


async def test_a_burst_of_sends_is_counted_without_running_out_of_redis_connections(
    user: User, settings: LazySettings
) -> None:
    settings.CHAT_SENDS_PER_MINUTE = settings.CHAT_SENDS_PER_MINUTE_PER_IP = 10_000
    counted = [
        services.send_quota_start(user_id=user.pk, client_ip="192.0.2.2") for _ in range(300)
    ]
    await asyncio.gather(*(asyncio.wrap_future(future) for future in counted))
    assert all(future.exception() is None for future in counted)
    # Each counted once, in counters that expire (after their one-minute window).
    redis = shared_cache()._cache.get_client(write=True)  # type: ignore[attr-defined]
    for pattern in (f"*chat:sends:{user.pk}:*", "*chat:sends-ip:192.0.2.2:*"):
        keys = redis.keys(pattern)  # two if a minute began during the burst
        assert sum(int(redis.get(key)) for key in keys) == 300
        assert all(60 < redis.ttl(key) <= 90 for key in keys)


def streaming_answer(user: User, content: str = "", **fields: Any) -> Message:
    conversation = make_conversation(user)
    add_message(conversation, Message.Role.USER, "question")
    fields.setdefault("writer", "specific.me!1")
    fields.setdefault("heartbeat_at", timezone.now())
    return add_message(
        conversation, Message.Role.ASSISTANT, content, state=Message.State.STREAMING, **fields
    )


def test_checkpoints_append_text_only_for_the_writers_streaming_answers(user: User) -> None:
    mine = streaming_answer(user, "Hello")
    theirs = streaming_answer(user, "Hi", writer="specific.other!2")
    saved = services.answer_checkpoint(
        writer="specific.me!1",
        checkpoint=Checkpoint(appends=[Append(mine.pk, ", world"), Append(theirs.pk, "!")]),
    )
    assert saved == {mine.pk}
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.content, theirs.content) == ("Hello, world", "Hi")
    # Who serves it, once the stream says; "" leaves what is stored.
    for append in (Append(mine.pk, "!", "a/b", "gen-1"), Append(mine.pk, "?")):
        services.answer_checkpoint(writer="specific.me!1", checkpoint=Checkpoint([append]))
    mine.refresh_from_db()
    assert (mine.content, mine.model_served, mine.generation_id) == (
        "Hello, world!?",
        "a/b",
        "gen-1",
    )


def test_the_writer_stores_the_end_even_after_the_sweeper_gave_up_on_it(user: User) -> None:
    answer = streaming_answer(user, "Hel", heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.streams_sweep(stale_after=60) == [answer]
    answer.refresh_from_db()
    assert answer.state == Message.State.INTERRUPTED and answer.content == "Hel"

    finished = services.answer_finish(
        message_id=answer.pk,
        writer="specific.me!1",
        text="Hello",
        outcome=Outcome(Message.State.COMPLETE, model="a/b", finish_reason="stop"),
        spent=Spent(10, 2, 0.0000123),
        ttft_ms=120,
    )
    assert finished is not None
    answer.refresh_from_db()
    assert (answer.state, answer.content, answer.model_served) == ("complete", "Hello", "a/b")
    assert (answer.error_code, answer.error_message) == ("", "")  # the sweeper's note is gone
    assert answer.cost == Decimal("0.0000123000")
    assert (answer.prompt_tokens, answer.completion_tokens, answer.total_tokens) == (10, 2, 12)
    wrong_writer = services.answer_finish(
        message_id=answer.pk,
        writer="specific.imposter!9",
        text="",
        outcome=Outcome(Message.State.STOPPED),
        spent=None,
        ttft_ms=None,
    )
    assert wrong_writer is None


def test_a_stop_its_writer_did_not_make_is_made_without_it_and_kept(user: User) -> None:
    answer = streaming_answer(user, "Hel", writer="specific.gone!1")
    stopped = services.answer_stop_orphaned(message_id=answer.pk, writer="specific.gone!1")
    assert stopped is not None
    assert (stopped.state, stopped.content, stopped.writer) == ("stopped", "Hel", "")
    late = services.answer_finish(  # a writer that was only slow: the user's stop stands
        message_id=answer.pk,
        writer="specific.gone!1",
        text="Hello",
        outcome=Outcome(Message.State.COMPLETE),
        spent=None,
        ttft_ms=None,
    )
    assert late is None
    assert Message.objects.get(pk=answer.pk).state == Message.State.STOPPED

    ended = streaming_answer(user, "done", writer="specific.slow!2")
    Message.objects.filter(pk=ended.pk).update(state=Message.State.COMPLETE)
    assert services.answer_stop_orphaned(message_id=ended.pk, writer="specific.slow!2") is None
    assert Message.objects.get(pk=ended.pk).state == Message.State.COMPLETE


def test_the_sweeper_leaves_live_and_finished_answers_alone(user: User) -> None:
    live = streaming_answer(user, "going")
    finished = streaming_answer(user, "done", heartbeat_at=timezone.now() - timedelta(hours=1))
    Message.objects.filter(pk=finished.pk).update(state=Message.State.COMPLETE)
    assert services.streams_sweep(stale_after=60) == []
    assert Message.objects.get(pk=live.pk).state == Message.State.STREAMING


def test_deleting_a_conversation_stops_its_streaming_answer_where_it_runs(user: User) -> None:
    layer = get_channel_layer()
    writer = async_to_sync(layer.new_channel)()
    answer = streaming_answer(user, "so far", writer=writer)
    services.conversation_delete(conversation=answer.conversation)
    assert not Conversation.objects.filter(pk=answer.conversation_id).exists()
    assert async_to_sync(layer.receive)(writer) == {"type": "relay.stop", "message": answer.pk}


def test_state_methods_set_the_final_state_and_the_error() -> None:
    message = Message(role=Message.Role.ASSISTANT, state=Message.State.STREAMING)
    message.mark_failed("402", "Out of credits.")
    assert (message.state, message.error_code, message.is_failed) == ("error", "402", True)
    message = Message(role=Message.Role.ASSISTANT, state=Message.State.STREAMING)
    message.mark_complete(finish_reason="length")
    assert (message.state, message.finish_reason, message.is_failed) == (
        "complete",
        "length",
        False,
    )


def test_usage_is_looked_up_for_answers_that_ended_without_it_for_a_while_only(
    connected_user: User,
) -> None:
    conversation = make_conversation(connected_user)
    now = timezone.now()

    def ended(state: str, ago: timedelta, **fields: Any) -> Message:
        message = add_message(conversation, Message.Role.ASSISTANT, "Once", state=state)
        Message.objects.filter(pk=message.pk).update(updated_at=now - ago, **fields)
        return message

    stopped = ended("stopped", timedelta(seconds=5), generation_id="gen-a")
    failed = ended("error", timedelta(minutes=3), generation_id="gen-b")
    ended("stopped", timedelta(seconds=5), generation_id="gen-c", completion_tokens=3)  # had it
    ended("stopped", timedelta(seconds=5))  # never reached OpenRouter: nothing to ask
    ended("streaming", timedelta(seconds=5), generation_id="gen-d")  # not ended
    ended("stopped", timedelta(seconds=1), generation_id="gen-e")  # too soon
    ended("stopped", timedelta(minutes=11), generation_id="gen-f")  # given up
    assert list(services.usage_missing(now=now)) == [failed, stopped]


def test_usage_unknown_to_openrouter_is_left_for_the_next_run(connected_user: User) -> None:
    conversation = make_conversation(connected_user)
    message = add_message(conversation, Message.Role.ASSISTANT, "Once", state="stopped")
    later = timezone.now() + timedelta(seconds=5)
    Message.objects.filter(pk=message.pk).update(generation_id="gen-not-recorded-yet")
    assert services.usage_fill(now=later) == 0  # the sandbox answers 404
    message.refresh_from_db()
    assert message.completion_tokens is None
    assert list(services.usage_missing(now=later)) == [message]  # asked again next time


def test_a_generation_record_gives_the_providers_counts_else_openrouters() -> None:
    record = {
        "generation_time": 812,
        "tokens_prompt": 10,
        "tokens_completion": 20,
        "native_tokens_prompt": None,  # unknown to the provider
        "native_tokens_completion": 21,
        "total_cost": 0.00042,
    }
    assert services._billed(record) == Spent(10, 21, 0.00042)
    assert services._billed({**record, "generation_time": None}) is None  # not final yet
    assert services._billed({"generation_time": 5, "total_cost": 0.1}) is None  # no counts
