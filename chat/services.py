"""What happens to conversations and messages. Views, the consumer, the relay and tasks call these.

Every function is synchronous (the consumer and the relay call them through
``database_sync_to_async``); a refusal the user should read is a ``ChatError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import chain
from typing import Any, NamedTuple, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from django.core.signals import setting_changed
from django.db import connection, transaction
from django.db.models import Count, F, Model, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError

from accounts import key_cache
from accounts.models import OpenRouterKey, User
from accounts.services import NotConnected, api_key_for
from chat import protocol
from chat.models import Conversation, Message, RemovedAnswers
from chat.protocol import ChatError
from config import redis_batch
from config.cache import shared_cache
from openrouter import client as openrouter
from openrouter.errors import OpenRouterError

logger = logging.getLogger(__name__)

TITLE_CHARS = 60
# A streaming message whose writer has not said it is alive for this long lost its writer. Relays
# beat every few seconds (chat.streams.HEARTBEAT_INTERVAL), so this is many missed beats.
STALE_AFTER = settings.CHAT_STALE_AFTER


# --- conversations ----------------------------------------------------------------------------


def conversations_for(*, user: User, query: str = "") -> QuerySet[Conversation]:
    """The user's conversations, most recently active first; with a ``query``, those whose
    title or any of whose messages holds it (case aside). A scan of the user's messages, no
    index: a person's own history, searched on demand (the list's live filter, as one types,
    reads titles only)."""
    conversations = Conversation.objects.filter(user=user)
    if query.strip():
        words = query.strip()
        mentioned = Message.objects.filter(conversation__user=user, content__icontains=words)
        conversations = conversations.filter(
            Q(title__icontains=words) | Q(pk__in=mentioned.values("conversation_id"))
        )
    return conversations


CONVERSATIONS_PER_PAGE = 50
CONVERSATIONS_DOWN_TO = 200  # how far down a page lists to reach the open conversation
_ORDER = ("-updated_at", "-pk")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ConversationPage(NamedTuple):
    conversations: list[Conversation]
    older: str  # where the next page starts (``conversations_page(before=…)``); "" at the end


def conversations_page(
    *,
    user: User,
    query: str = "",
    before: str = "",
    through: Conversation | None = None,
    size: int = CONVERSATIONS_PER_PAGE,
) -> ConversationPage:
    """One page of ``conversations_for``, most recent first, from ``before`` on (a cursor this
    function gave), and down to the open conversation (``through``) if that is further down, not
    past ``CONVERSATIONS_DOWN_TO``: one opened from "Show older" keeps its place in the list.

    Rendering is what a long list costs (every row has its menu and forms), so a page lists 50
    and the list's "Show older" asks for more (docs/benchmarks.md, "Pages"). A cursor is the
    last row's place in the order (its ``updated_at`` and id), not an offset: a conversation
    that moves to the top meanwhile shifts nothing. One that is not a cursor is a
    ``ChatError("bad_request")``."""
    conversations = conversations_for(user=user, query=query).order_by(*_ORDER)
    if before:
        try:
            micros, pk = (int(part) for part in before.split("-"))
            updated_at = _EPOCH + timedelta(microseconds=micros)
        except (ValueError, OverflowError):
            raise ChatError("bad_request", "That place in the list does not exist.") from None
        conversations = conversations.filter(
            Q(updated_at__lt=updated_at) | Q(updated_at=updated_at, pk__lt=pk)
        )
    rows, more = _rows_down_to(
        conversations,
        size=size,
        limit=CONVERSATIONS_DOWN_TO,
        target=through.pk if through else None,
    )
    if not more:
        return ConversationPage(rows, "")
    micros = (rows[-1].updated_at - _EPOCH) // timedelta(microseconds=1)
    return ConversationPage(rows, f"{micros}-{rows[-1].pk}")


_Row = TypeVar("_Row", bound=Model)


def _rows_down_to(
    rows: QuerySet[_Row], *, size: int, limit: int, target: int | None
) -> tuple[list[_Row], bool]:
    """The first ``size`` of ``rows``, or as many as it takes to reach the one whose id is
    ``target`` if that is among the first ``limit``; and whether any follow them."""
    shown = list(rows[: size + 1])
    if target is not None and len(shown) > size and target not in [r.pk for r in shown[:size]]:
        further = list(rows[: limit + 1])
        ids = [r.pk for r in further[:limit]]
        if target in ids:
            size = ids.index(target) + 1
            shown = further[: size + 1]
    return shown[:size], len(shown) > size


def conversation_for(*, user: User, conversation_id: int) -> Conversation:
    """One of the user's conversations; ``ChatError("not_found")`` for anyone else's."""
    try:
        return Conversation.objects.get(pk=conversation_id, user=user)
    except Conversation.DoesNotExist:
        raise ChatError("not_found", "That conversation does not exist.") from None


def conversation_title_from(text: str) -> str:
    """A title from the first prompt: its first line, cut at a word near ``TITLE_CHARS``."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) <= TITLE_CHARS:
        return line or "New conversation"
    cut = line[:TITLE_CHARS].rsplit(" ", 1)[0] or line[:TITLE_CHARS]
    return cut.rstrip(",.;:") + "…"


def conversation_new(
    *,
    user: User,
    title: str,
    model: str,
    system_prompt: str = "",
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> Conversation:
    """A conversation, not saved yet."""
    return Conversation(
        user=user,
        title=title[:200],
        model=model,
        system_prompt=system_prompt,
        temperature=temperature,
        max_tokens=max_tokens,
    )


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    conversation.title = title.strip()[:200] or conversation.title
    conversation.save(update_fields=["title"])  # not "updated_at": the list orders by activity
    return conversation


def conversation_set_model(*, conversation: Conversation, model: str) -> Conversation:
    """Remember the model picked for a conversation ("" = my OpenRouter default)."""
    conversation.model = model
    conversation.save(update_fields=["model"])  # not "updated_at": the list orders by activity
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete a conversation; answers still streaming in it are stopped wherever they run, and
    the tabs showing it are told (``deleted``), so that none goes on as if it were there."""
    streaming = list(
        conversation.messages.filter(state=Message.State.STREAMING).values_list("pk", "writer")
    )
    conversation_id = conversation.pk
    with transaction.atomic():
        _removed_answers_count(user_id=conversation.user_id, answers=conversation.messages.all())
        conversation.delete()
    for message_id, writer in streaming:
        relay_stop_request(writer=writer, message_id=message_id)
    async_to_sync(get_channel_layer().group_send)(
        protocol.conversation_group(conversation_id),
        {"type": "chat.deleted", "frame": protocol.deleted_frame(conversation_id)},
    )


def answers_stop_for_user(*, user_id: int) -> None:
    """Stop every answer of the user's still streaming, wherever it runs: each writer is asked
    as a tab's Stop asks it, and the tabs are told ``done`` (``stopped``, the text kept)."""
    streaming = Message.objects.filter(
        conversation__user_id=user_id, state=Message.State.STREAMING
    ).values_list("pk", "writer")
    for message_id, writer in streaming:
        relay_stop_request(writer=writer, message_id=message_id)


@receiver(post_delete, sender=OpenRouterKey)
def _key_deleted(instance: OpenRouterKey, using: str, **kwargs: Any) -> None:
    """A key deleted (disconnected, revoked by staff) is no longer the user's to spend: the
    answers streaming on it stop once the deletion commits. A key replaced (``api_key_store``,
    a reconnect) stops nothing: the old one was still the user's, and an answer under way is
    not worth losing to a reconnect."""
    user_id = instance.user_id
    transaction.on_commit(lambda: answers_stop_for_user(user_id=user_id), using=using, robust=True)


# --- sending and answering --------------------------------------------------------------------


# Called with the chat completion request as soon as a send has passed every check, before its
# rows are written (see ``message_send``).
OnRequest = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Started:
    """A prompt stored and its answer created in state ``streaming``, ready for the relay."""

    conversation: Conversation
    prompt: Message
    answer: Message
    payload: dict[str, Any]  # the chat completion request, without the key
    replaces: int | None = None


@transaction.atomic
def message_send(
    *,
    user: User,
    conversation_id: int | None,
    text: str,
    writer: str,
    model: str | None = None,
    options: dict[str, Any] | None = None,
    client_ip: str = "",
    quota: Future[bytes | None] | None = None,
    on_request: OnRequest | None = None,
) -> Started:
    """Store a prompt and start its answer; ``conversation_id=None`` starts a new conversation.

    ``model`` (when given) becomes the conversation's model; a new conversation otherwise takes
    the user's default. ``options`` (system prompt, temperature, max tokens) set up a new one.
    Raises ``ChatError`` for someone else's conversation, a conversation already answering,
    or a user over the send rate limit.

    ``on_request`` is called with the chat completion request once every check has passed and
    before any row is written, so that the caller can send it upstream while they are: the
    answer's first token then waits for one model round trip, not for the writes too (the relay
    holds the text until it is told the answer's id). Should this function raise after the
    call, the caller abandons that request.

    ``quota``: the send already being counted against its quotas (``send_quota_start``), to be
    waited for; by default it is counted here.
    """
    _quota_taken(quota, user_id=user.pk, client_ip=client_ip)
    if conversation_id is None:
        conversation = _conversation_to_start(user=user, text=text, model=model, options=options)
    else:
        conversation = _locked_conversation(user=user, conversation_id=conversation_id)
        _refuse_if_busy(conversation)
        if model is not None:
            conversation.model = model
    payload = _request_ready(conversation, _messages_with(conversation, text), on_request)
    if conversation.pk is None:
        conversation.save()
    else:
        conversation.save(update_fields=["model", "updated_at"])  # moves it to the top
    prompt = Message(conversation=conversation, role=Message.Role.USER, content=text)
    return _answer_start(conversation=conversation, prompt=prompt, writer=writer, payload=payload)


def message_send_request(
    *,
    user: User,
    conversation_id: int | None,
    text: str,
    model: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The request ``message_send`` makes, when it needs nothing from the database: a new
    conversation's (``None`` for any other). The consumer sends it upstream as soon as the send
    is counted, without waiting for the database, and then has ``message_send`` write the rows
    (with no ``on_request``)."""
    if conversation_id is not None:
        return None
    conversation = _conversation_to_start(user=user, text=text, model=model, options=options)
    return completion_request(
        conversation=conversation, messages=_messages_with(conversation, text)
    )


def _conversation_to_start(
    *, user: User, text: str, model: str | None, options: dict[str, Any] | None
) -> Conversation:
    return conversation_new(
        user=user,
        title=conversation_title_from(text),
        model=user.default_model if model is None else model,
        **(options or {}),
    )


def _messages_with(
    conversation: Conversation, text: str, *, before: Message | None = None
) -> list[dict[str, str]]:
    """The conversation as the request carries it (up to ``before``), and the prompt ``text``
    after it."""
    history = messages_for_upstream(conversation=conversation, before=before)
    return [*history, {"role": Message.Role.USER, "content": text}]


def message_edit(*, user: User, message_id: int, text: str, **answer: Any) -> Started:
    """The last prompt (``message_id``) edited to read ``text``, and answered again: its answer
    is replaced (``message_answer_again``; ``answer`` its other arguments)."""
    prompt = _message_of(user=user, message_id=message_id)
    after = Message.objects.filter(conversation_id=prompt.conversation_id, pk__gt=prompt.pk)
    answers = list(after.order_by("pk")[:2])
    if prompt.role != Message.Role.USER or len(answers) != 1:
        raise ChatError("not_allowed", "Only the last message you sent can be edited.")
    return message_answer_again(user=user, message_id=answers[0].pk, text=text, **answer)


@transaction.atomic
def message_answer_again(
    *,
    user: User,
    message_id: int,
    writer: str,
    failed_only: bool = False,
    text: str | None = None,
    client_ip: str = "",
    quota: Future[bytes | None] | None = None,
    on_request: OnRequest | None = None,
) -> Started:
    """Answer the last prompt again; the new answer replaces ``message_id`` (the last answer).
    ``failed_only``: a retry, allowed only for an answer that ended in error or was interrupted.
    ``text``: the prompt, edited (``message_edit``). ``quota`` and ``on_request`` as for
    ``message_send``."""
    _quota_taken(quota, user_id=user.pk, client_ip=client_ip)
    old = _message_of(user=user, message_id=message_id)
    conversation = _locked_conversation(user=user, conversation_id=old.conversation_id)
    _refuse_if_busy(conversation)
    if old.role != Message.Role.ASSISTANT or conversation.messages.last() != old:
        raise ChatError("not_allowed", "Only the last answer can be answered again.")
    if failed_only and not old.is_failed:
        raise ChatError("not_allowed", "Only an answer that failed can be retried.")
    prompt = conversation.messages.filter(pk__lt=old.pk, role=Message.Role.USER).last()
    if prompt is None:
        raise ChatError("not_allowed", "There is no prompt to answer.")
    if text is None:
        history = messages_for_upstream(conversation=conversation, before=old)
    else:
        history = _messages_with(conversation, text, before=prompt)
    payload = _request_ready(conversation, history, on_request)
    if text is not None:
        prompt.content = text
        prompt.save(update_fields=["content", "updated_at"])
    replaces = old.pk  # delete() forgets it
    _removed_answers_count(user_id=user.pk, answers=Message.objects.filter(pk=old.pk))
    old.delete()
    conversation.save(update_fields=["updated_at"])  # moves it to the top of the list
    return _answer_start(
        conversation=conversation, prompt=prompt, writer=writer, payload=payload, replaces=replaces
    )


def _removed_answers_count(*, user_id: int, answers: QuerySet[Message]) -> None:
    """Add the answers among ``answers``, about to be deleted, to the user's ``RemovedAnswers``.

    An answer's tokens and cost count only if they are known by then: an answer still streaming,
    or stopped and waiting for ``usage_fill``, is counted without them."""
    spent = answers.filter(role=Message.Role.ASSISTANT).aggregate(
        answers=Count("pk"),
        prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
        completion_tokens=Coalesce(Sum("completion_tokens"), 0),
        cost=Coalesce(Sum("cost"), Decimal(0)),
    )
    if not spent["answers"]:
        return
    _, created = RemovedAnswers.objects.get_or_create(user_id=user_id, defaults=spent)
    if not created:
        RemovedAnswers.objects.filter(user_id=user_id).update(
            **{name: F(name) + value for name, value in spent.items()}
        )


def _request_ready(
    conversation: Conversation, messages: list[dict[str, str]], on_request: OnRequest | None
) -> dict[str, Any]:
    """The request for the next answer, handed to ``on_request`` before any row is written."""
    payload = completion_request(conversation=conversation, messages=messages)
    if on_request is not None:
        on_request(payload)
    return payload


def _answer_start(
    *,
    conversation: Conversation,
    prompt: Message,
    writer: str,
    payload: dict[str, Any],
    replaces: int | None = None,
) -> Started:
    """The answer's row, in state ``streaming``; a ``prompt`` not saved yet is inserted with it,
    in one statement (one INSERT less per send: ~0.3 ms of the database thread, which every
    socket shares)."""
    answer = Message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        state=Message.State.STREAMING,
        model_requested=conversation.model,
        writer=writer,
        heartbeat_at=timezone.now(),
    )
    Message.objects.bulk_create([answer] if prompt.pk else [prompt, answer])
    return Started(
        conversation=conversation, prompt=prompt, answer=answer, payload=payload, replaces=replaces
    )


def _locked_conversation(*, user: User, conversation_id: int) -> Conversation:
    # Locked so that two tabs sending at once cannot both start an answer.
    found = Conversation.objects.select_for_update().filter(pk=conversation_id, user=user).first()
    if found is None:
        raise ChatError("not_found", "That conversation does not exist.")
    return found


def _refuse_if_busy(conversation: Conversation) -> None:
    if conversation.messages.filter(state=Message.State.STREAMING).exists():
        raise ChatError("busy", "An answer is still coming in this conversation: wait or stop it.")


def _message_of(*, user: User, message_id: int) -> Message:
    found = Message.objects.filter(pk=message_id, conversation__user=user).first()
    if found is None:
        raise ChatError("not_found", "That message does not exist.")
    return found


def message_for(*, user: User, message_id: int) -> Message:
    """One of the user's messages; ``ChatError("not_found")`` for anyone else's."""
    return _message_of(user=user, message_id=message_id)


MESSAGES_SHOWN = 50
MESSAGES_DOWN_TO = 500  # how far back a page shows to reach a search's first match


class MessagePage(NamedTuple):
    messages: list[Message]  # oldest first
    earlier: int | None  # "Show earlier" asks for the messages before this id; None at the start


def messages_page(
    *,
    conversation: Conversation,
    before: int | None = None,
    words: str = "",
    size: int = MESSAGES_SHOWN,
) -> MessagePage:
    """The conversation's latest messages, or those just ``before`` a message; a page opened
    from a search (``words``) shows from the first message holding them, if that is within
    ``MESSAGES_DOWN_TO`` of the end. Each message shown is rendered twice, by the template and
    then by the page's Markdown, so a long conversation opens at its end and "Show earlier"
    brings the rest (docs/benchmarks.md, "Pages")."""
    messages = conversation.messages.all()
    if before is not None:
        messages = messages.filter(pk__lt=before)
    first_match = None
    if words.strip():
        matches = messages.filter(content__icontains=words.strip()).order_by("pk")
        first_match = matches.values_list("pk", flat=True).first()
    rows, more = _rows_down_to(
        messages.order_by("-pk"), size=size, limit=MESSAGES_DOWN_TO, target=first_match
    )
    return MessagePage(rows[::-1], rows[-1].pk if more else None)


def messages_to_snapshot(*, conversation: Conversation, since: int | None) -> list[Message]:
    """What a tab (re)joining a conversation is sent: every message from ``since`` on, and
    every answer still streaming, with its text so far."""
    wanted = Q(state=Message.State.STREAMING)
    if since is not None:
        wanted |= Q(pk__gte=since)
    return list(conversation.messages.filter(wanted))


def messages_for_upstream(
    *, conversation: Conversation, before: Message | None = None
) -> list[dict[str, str]]:
    """The conversation as OpenAI-style messages: the system prompt, then the history.

    Only what comes before ``before`` (the answer being asked for) counts. Empty messages (an
    answer that failed before its first word) are left out; partial answers stay, since the user
    saw them and may refer to them. A conversation not saved yet has no history.
    """
    result = []
    if conversation.system_prompt.strip():
        result.append({"role": "system", "content": conversation.system_prompt})
    if conversation.pk is None:
        return result
    history = conversation.messages.all()
    if before is not None:
        history = history.filter(pk__lt=before.pk)
    for role, content in history.values_list("role", "content"):
        if content:
            result.append({"role": role, "content": content})
    return result


def completion_request(
    *, conversation: Conversation, messages: list[dict[str, str]]
) -> dict[str, Any]:
    """The chat completion request for the conversation's next answer. A blank model sends no
    ``model`` at all, so OpenRouter answers with the account's default; the answer then says
    which model served."""
    payload: dict[str, Any] = {"messages": messages, "usage": {"include": True}}
    if conversation.model:
        payload["model"] = conversation.model
    if conversation.temperature is not None:
        payload["temperature"] = conversation.temperature
    if conversation.max_tokens is not None:
        payload["max_tokens"] = conversation.max_tokens
    return payload


def send_quota_take(*, user_id: int, client_ip: str = "") -> None:
    """Count one send against ``CHAT_SENDS_PER_MINUTE`` for the user and
    ``CHAT_SENDS_PER_MINUTE_PER_IP`` for the address (fixed one-minute windows in the cache), so
    that many accounts from one place cannot multiply the allowance."""
    now, limits = _send_limits(user_id, client_ip)
    counts, _ = _count_up([key for key, _ in limits], expire=90)
    _refuse_over(limits, counts, now)


def send_quota_start(*, user_id: int, client_ip: str = "") -> Future[bytes | None]:
    """``send_quota_take`` on the running event loop, in the background; ``.result()`` waits for
    it (and raises its ``ChatError``), and is the user's entry in ``accounts.key_cache``, read in
    the same Redis round trip: the ciphertext of their key, ``b""`` if they have none, ``None``
    when it is not cached.

    The consumer starts it before anything else for a send that needs the database before its
    request (a follow-up, a retry): their database call waits for it before anything is sent
    or written, so that the Redis round trip overlaps the thread hop instead of adding to it,
    and the database thread, which every socket of the process shares, does not wait on Redis
    (docs/benchmarks.md). A new conversation's send awaits ``asend_quota_take`` instead, and
    its request leaves as soon as that is done. A send is counted even when it is then refused
    for another reason (no key, a busy conversation)."""
    return asyncio.run_coroutine_threadsafe(
        asend_quota_take(user_id=user_id, client_ip=client_ip), asyncio.get_running_loop()
    )


async def asend_quota_take(*, user_id: int, client_ip: str = "") -> bytes | None:
    """``send_quota_take`` awaited on the event loop; its value as ``send_quota_start``'s."""
    now, limits = _send_limits(user_id, client_ip)
    keys = [key for key, _ in limits]
    counts, cached_key = await _acount_up(keys, expire=90, read=key_cache.name(user_id))
    _refuse_over(limits, counts, now)
    return cached_key


def _send_limits(user_id: int, client_ip: str) -> tuple[float, list[tuple[str, int]]]:
    now = time.time()
    window = int(now // 60)
    limits = [(f"chat:sends:{user_id}:{window}", settings.CHAT_SENDS_PER_MINUTE)]
    if client_ip:
        limits.append(
            (f"chat:sends-ip:{client_ip}:{window}", settings.CHAT_SENDS_PER_MINUTE_PER_IP)
        )
    return now, limits


def _refuse_over(limits: list[tuple[str, int]], counts: list[int], now: float) -> None:
    for (_, limit), count in zip(limits, counts, strict=True):
        if count > limit:
            wait = max(1, 60 - int(now % 60))
            raise ChatError(
                "rate_limited",
                f"That is {limit} messages this minute, the most allowed. Try again in {wait} s.",
                retry_after=wait,
            )


def _quota_taken(quota: Future[bytes | None] | None, *, user_id: int, client_ip: str) -> None:
    if quota is None:
        send_quota_take(user_id=user_id, client_ip=client_ip)
    else:
        quota.result()


def _count_up(
    keys: list[str], *, expire: int, read: str | None = None
) -> tuple[list[int], bytes | None]:
    """Add one to counters in the cache that live ``expire`` s; their new values, and the
    value of the Redis key ``read`` (a full key, in the same round trip; ``None`` if missing).

    On Redis one command inside the send (``COUNT_UP``: ``INCR`` + ``EXPIRE`` per key, and a
    ``GET`` of ``read``). The keys
    are per window, so refreshing the expiry on each count only delays the cleanup (and, unlike
    ``EXPIRE … NX``, works before Redis 7). Other backends: ``add`` + ``incr`` per key, and
    nothing read (``read`` is only ever a Redis key).
    """
    backend = shared_cache()
    if isinstance(backend, RedisCache):
        # One client for all: Django's Redis cache has one write server (the first URL).
        client = backend._cache.get_client(write=True)
        script = client.register_script(COUNT_UP)
        return _counted(script(keys=[read or "", *_full_keys(backend, keys)], args=[expire]))
    return [_count_up_one(backend, key, expire) for key in keys], None


async def _acount_up(
    keys: list[str], *, expire: int, read: str | None = None
) -> tuple[list[int], bytes | None]:
    """``_count_up`` on the running event loop, in the next batch of its Redis commands
    (``config.redis_batch``)."""
    backend = shared_cache()
    if not isinstance(backend, RedisCache):
        return await sync_to_async(_count_up, thread_sensitive=False)(keys, expire=expire)
    full_keys = [read or "", *_full_keys(backend, keys)]
    (result,) = await redis_batch.batcher(_async_counter(backend)).execute(
        lambda pipe: pipe.eval(COUNT_UP, len(full_keys), *full_keys, expire)
    )
    return _counted(result)


# One command, not a pipeline of two per key: redis-py spends ~0.1 ms of CPU per command here
# (a send's count on the event loop: 270 -> 155 us, docs/benchmarks.md). KEYS[1] is read (the
# user's cached key; "" reads nothing); the others are counted. Sent with EVAL, not EVALSHA:
# Redis keeps the compiled script either way, and a pipeline of EVALSHA has redis-py check
# the script exists first (another round trip per batch).
COUNT_UP = """
local result = {false}
if KEYS[1] ~= '' then
  result[1] = redis.call('GET', KEYS[1])
end
for i = 2, #KEYS do
  result[i] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return result
"""


def _counted(result: list[Any]) -> tuple[list[int], bytes | None]:
    return [int(count) for count in result[1:]], result[0]


def _full_keys(backend: RedisCache, keys: list[str]) -> list[str]:
    return [backend.make_and_validate_key(key) for key in keys]


# The event loops' clients for ``COUNT_UP`` (``_acount_up``): Django's cache has no async client.
_async_counters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncRedis] = (
    weakref.WeakKeyDictionary()
)


def _async_counter(backend: RedisCache) -> AsyncRedis:
    loop = asyncio.get_running_loop()
    counter = _async_counters.get(loop)
    if counter is None:
        # The server Django's cache writes to: the first of its URLs (missing from the stubs).
        # A connection that Redis closed (a restart) is retried on a new one, as the cache's are.
        counter = _async_counters[loop] = AsyncRedis.from_url(
            backend._cache._servers[0],  # type: ignore[attr-defined]
            retry=settings.REDIS_ASYNC_RETRY,
            retry_on_error=[RedisConnectionError],
        )
    return counter


@receiver(setting_changed)
def _new_counters_for_new_caches(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":  # tests that point the cache at another Redis
        _async_counters.clear()


def _count_up_one(backend: Any, key: str, timeout: int) -> int:
    backend.add(key, 0, timeout=timeout)
    try:
        return int(backend.incr(key))
    except ValueError:  # the window just expired between add and incr
        backend.set(key, 1, timeout=timeout)
        return 1


# --- the relay's writes (chat.streams) --------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How an answer ended, as the relay saw it."""

    state: str
    error_code: str = ""
    error_message: str = ""
    model: str = ""
    generation_id: str = ""
    finish_reason: str = ""


@dataclass(frozen=True)
class Spent:
    prompt_tokens: int
    completion_tokens: int
    cost: float | None = None


class Append(NamedTuple):
    """An answer's text to append, and who serves it where the database does not know yet
    ("": nothing new): stored while it streams, so that an answer whose process dies names its
    generation, and its usage can be asked for (``usage_fill``)."""

    message_id: int
    text: str
    model: str = ""
    generation_id: str = ""


@dataclass
class Checkpoint:
    """One tick of a relay process's saves: text to append per answer, answers still alive."""

    appends: list[Append] = field(default_factory=list)
    alive: list[int] = field(default_factory=list)


APPENDS_PER_STATEMENT = 500
_TABLE = Message._meta.db_table


def answer_checkpoint(*, writer: str, checkpoint: Checkpoint) -> set[int]:
    """Append each answer's new text (and beat its heartbeat), all in one transaction.

    Appending, not rewriting, keeps a long answer's saves cheap; one statement for every answer
    keeps a tick cheap with hundreds streaming. Returns the ids whose text was appended: an
    answer deleted meanwhile, or no longer streaming, is left alone.
    """
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    saved: set[int] = set()
    with transaction.atomic():
        for start in range(0, len(checkpoint.appends), APPENDS_PER_STATEMENT):
            batch = checkpoint.appends[start : start + APPENDS_PER_STATEMENT]
            saved |= _append(writer=writer, appends=batch, now=now)
        if checkpoint.alive:
            _streaming_by(writer, checkpoint.alive).update(heartbeat_at=timezone.now())
    return saved


def _append(*, writer: str, appends: Sequence[Append], now: Any) -> set[int]:
    # Plain SQL that PostgreSQL and SQLite (3.35+) both read: the ORM has no bulk "append".
    text = "CAST(%s AS TEXT)"
    rows = ", ".join([f"(CAST(%s AS BIGINT), {text}, {text}, {text})"] * len(appends))
    sql = (
        f"WITH piece(id, text, model, generation) AS (VALUES {rows}) "  # noqa: S608 (no user text)
        f"UPDATE {_TABLE} SET content = {_TABLE}.content || piece.text, heartbeat_at = %s, "
        f"model_served = CASE WHEN piece.model = '' THEN {_TABLE}.model_served "
        "ELSE piece.model END, "
        f"generation_id = CASE WHEN piece.generation = '' THEN {_TABLE}.generation_id "
        "ELSE piece.generation END "
        f"FROM piece WHERE {_TABLE}.id = piece.id AND {_TABLE}.writer = %s "
        f"AND {_TABLE}.state = %s RETURNING {_TABLE}.id"
    )
    params = [*chain.from_iterable(appends), now, writer, Message.State.STREAMING.value]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _streaming_by(writer: str, ids: Sequence[int]) -> QuerySet[Message]:
    return Message.objects.filter(pk__in=ids, writer=writer, state=Message.State.STREAMING)


# What the end of an answer writes (``answer_finish``).
_END_FIELDS = (
    "content",
    "state",
    "finish_reason",
    "error_code",
    "error_message",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "model_served",
    "generation_id",
    "time_to_first_token_ms",
    "updated_at",
)


def answer_finish(
    *,
    message_id: int,
    writer: str,
    text: str,
    outcome: Outcome,
    spent: Spent | None,
    ttft_ms: int | None,
) -> Message | None:
    """Store an answer's whole text and final state; ``None`` if the message is gone.

    One ``UPDATE``, nothing read first (a relay ends an answer every few milliseconds under
    load): the message returned holds what was written, which is all ``protocol.done_frame``
    shows, not the rest of the row.
    """
    message = Message(pk=message_id, role=Message.Role.ASSISTANT, content=text, writer=writer)
    if outcome.state == Message.State.COMPLETE:
        message.mark_complete(finish_reason=outcome.finish_reason)
    elif outcome.state == Message.State.STOPPED:
        message.mark_stopped()
    elif outcome.state == Message.State.ERROR:
        message.mark_failed(outcome.error_code, outcome.error_message)
    else:
        message.mark_interrupted(outcome.error_code, outcome.error_message)
    if spent is not None:
        message.record_usage(
            prompt_tokens=spent.prompt_tokens,
            completion_tokens=spent.completion_tokens,
            cost=_decimal(spent.cost),
        )
    message.model_served = outcome.model
    message.generation_id = outcome.generation_id
    message.time_to_first_token_ms = ttft_ms
    message.updated_at = timezone.now()
    written = Message.objects.filter(pk=message_id, writer=writer).update(
        **{name: getattr(message, name) for name in _END_FIELDS}
    )
    return message if written else None


# --- the usage of answers cut short -----------------------------------------------------------

# A stopped or dropped stream never sends its usage chunk; OpenRouter still records what the
# generation was billed (GET /generation), a moment after it ends (a stopped one: once the
# provider noticed). A periodic task (``chat.tasks.fill_missing_usage``) looks for such answers
# in the database, which is the queue: nothing is published from the relay's shared database
# thread, and nothing is lost while the broker or the workers are down.
USAGE_LOOK_AFTER = timedelta(seconds=2)  # not before: OpenRouter has no final record yet
USAGE_LOOK_FOR = timedelta(minutes=10)  # then it is given up (and looked up no more)
USAGE_PER_RUN = 50  # requests to OpenRouter per run at most


def usage_missing(*, now: Any = None) -> QuerySet[Message]:
    """Answers that ended without their usage (stopped, dropped, failed mid-stream), recently
    enough to look it up: what ``usage_fill`` works through, oldest first."""
    now = now or timezone.now()
    return (
        Message.objects.filter(
            completion_tokens__isnull=True,
            updated_at__gt=now - USAGE_LOOK_FOR,
            updated_at__lte=now - USAGE_LOOK_AFTER,
        )
        .exclude(generation_id="")
        .exclude(state=Message.State.STREAMING)
        .order_by("updated_at")
    )


def usage_fill(*, now: Any = None) -> int:
    """Ask OpenRouter what each answer in ``usage_missing`` was billed and store its tokens and
    cost; the number filled. An answer OpenRouter has no final record of yet is asked about
    again at the next run; one whose user's key is gone, or that OpenRouter will not describe,
    ages out of the window."""
    found = usage_missing(now=now).values_list("pk", "generation_id", "conversation__user_id")
    keys: dict[int, str | None] = {}
    filled: list[int] = []
    for message_id, generation_id, user_id in found[:USAGE_PER_RUN]:
        if user_id not in keys:
            try:
                keys[user_id] = api_key_for(user=user_id)
            except NotConnected:
                keys[user_id] = None
        key = keys[user_id]
        if key is None:
            continue
        try:
            record = openrouter.generation_stats(key, generation_id)
        except OpenRouterError as error:
            if error.status != 404:  # 404: not recorded yet
                logger.info("no usage for message %s yet: %s", message_id, error.message)
            continue
        spent = _billed(record)
        if spent is not None and Message.objects.filter(
            pk=message_id, completion_tokens__isnull=True
        ).update(
            prompt_tokens=spent.prompt_tokens,
            completion_tokens=spent.completion_tokens,
            cost=_decimal(spent.cost),
        ):
            filled.append(message_id)
    # The tabs showing those answers show their figures now (a ``done`` frame again).
    layer = get_channel_layer()
    for message in Message.objects.filter(pk__in=filled):
        async_to_sync(layer.group_send)(
            protocol.conversation_group(message.conversation_id),
            {"type": "chat.usage", "frame": protocol.done_frame(message)},
        )
    return len(filled)


def _billed(record: dict[str, Any]) -> Spent | None:
    """A ``GET /generation`` record as tokens and cost, once final (``None`` before)."""
    if record.get("generation_time") is None:
        return None  # still being generated, as far as OpenRouter knows

    def count(*names: str) -> int | None:  # the provider's own count, else OpenRouter's
        return next((record[name] for name in names if isinstance(record.get(name), int)), None)

    prompt = count("native_tokens_prompt", "tokens_prompt")
    completion = count("native_tokens_completion", "tokens_completion")
    if prompt is None or completion is None:
        return None
    cost = record.get("total_cost")
    return Spent(prompt, completion, cost if isinstance(cost, int | float) else None)


def _decimal(value: float | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("1e-10"))
    except InvalidOperation:
        return None


def relay_stop_request(*, writer: str, message_id: int) -> None:
    """Ask the process writing an answer to stop it (from synchronous code: views, tasks)."""
    if writer:
        async_to_sync(get_channel_layer().send)(writer, protocol.relay_stop_message(message_id))


def answer_stop_orphaned(*, message_id: int, writer: str) -> Message | None:
    """Stop an answer still streaming from ``writer`` after it was asked to stop: a writer that
    is alive ends it within moments, one that went away (killed, crashed) never will. Its text
    is what was saved (every ``CHAT_SAVE_INTERVAL``). ``None`` if it has ended meanwhile.

    The writer is cleared, so a writer that was only slow cannot overwrite the stop later
    (``answer_finish`` updates only its own answers).
    """
    ended = Message.objects.filter(pk=message_id, writer=writer, state=Message.State.STREAMING)
    if not ended.update(state=Message.State.STOPPED, writer="", updated_at=timezone.now()):
        return None
    logger.info("stopped answer %s: its writer %s did not", message_id, writer)
    return Message.objects.select_related("conversation").get(pk=message_id)


def streams_sweep(*, stale_after: float = STALE_AFTER) -> list[Message]:
    """Streaming answers whose writer went silent become ``interrupted``, their text kept.

    Tabs following those conversations are told. Returns the messages swept.
    """
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff)
    swept = []
    for message in Message.objects.filter(stale, state=Message.State.STREAMING):
        message.mark_interrupted(
            "writer_lost",
            "The answer was cut off: the server writing it went away. The text so far is kept.",
        )
        # Conditional, so an answer that finished meanwhile keeps its real final state.
        claimed = Message.objects.filter(stale, pk=message.pk, state=Message.State.STREAMING)
        if claimed.update(
            state=message.state,
            error_code=message.error_code,
            error_message=message.error_message,
            updated_at=timezone.now(),
        ):
            swept.append(message)
    layer = get_channel_layer()
    for message in swept:
        async_to_sync(layer.group_send)(
            protocol.conversation_group(message.conversation_id),
            {"type": "chat.done", "frame": protocol.done_frame(message)},
        )
    if swept:
        logger.info("swept %d streaming answers whose writer went away", len(swept))
    return swept
