"""The relay: reads answers from OpenRouter and hands them to browser tabs, from this process.

Each answer is read by one asyncio task (a ``Relay``) owned by the process, not by the socket that
asked: closing every tab does not lose the answer, it finishes and is stored. Per process (per
event loop, in fact) one ``Hub`` keeps

* the registry of running relays (message id → relay), so a stop from any tab of this process
  reaches its relay at once;
* a channel of its own on the channel layer. Its name is the ``writer`` stored on every message
  it writes: a tab in another process sends ``relay.stop`` or ``relay.follow`` there (and the
  sweeper can tell a live writer's answers from those of a process that went away);
* one ticker task for all relays. Every ``FLUSH_INTERVAL`` it sends the text gathered since the
  last tick to the conversation's group, for relays that other tabs follow (a few deltas per
  channel-layer message, never one Redis round trip per token); every ``CHAT_SAVE_INTERVAL`` it
  appends new text to the database in one statement for all answers; every
  ``HEARTBEAT_INTERVAL`` it tells the database that its answers are still being written.

A relay starts reading before its answer exists: the consumer hands ``Relay.start`` the request
before the send's database hop (a new conversation's, with the key's ciphertext from the cache:
``services.message_send_request``, ``accounts.key_cache``) or from inside it, as soon as the send
has passed its checks (``services.message_send(on_request=…)``); the rows are written while the
request travels; ``attach`` then gives the relay its answer and its socket (or ``abandon`` drops
it, when the send failed after all). The model's first token comes a few hundred milliseconds
later, so it never waits for those writes; should it come first, the relay holds it until it is
attached.

The socket that asked gets every delta at once, straight from the relay: no Redis, no database,
no re-encoding of the text so far (the fast path). Group messages cost real CPU (a channels_redis
``group_send`` is four Redis round trips and a Lua script, and every tab in the group, the
asking one too, then receives and decodes it), so a relay sends deltas only once another tab
said it follows (``relay.follow``), and the start and the end only when the group holds
another tab (``Hub.tell_others``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import threading
import time
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from chat import groups, protocol, services
from chat.models import Message
from chat.services import Append, Checkpoint, Outcome, Spent, Started
from config.async_db import database_sync_to_async
from openrouter.client import stream_chat
from openrouter.streaming import Failed, Finished, Interrupted, Served, TextDelta, Usage

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05  # seconds between batched deltas to the other tabs
HEARTBEAT_INTERVAL = 10.0  # seconds between "still writing" beats (see services.STALE_AFTER)
GROUP_SENDS_AT_ONCE = 32  # concurrent group sends per process (each holds a Redis connection)


# How far a checkpoint reaches: parts and characters of the text, and who serves the answer.
Mark = tuple[int, int, Served]


class Listener(Protocol):
    """The socket that asked for an answer: it gets every delta directly."""

    channel_name: str

    async def answer_delta(self, message_id: int, text: str, seq: int) -> None: ...

    async def answer_done(self, frame: dict[str, Any]) -> None: ...


class Relay:
    """One answer being read from upstream and handed on.

    The text is kept as the list of deltas (``parts``), never re-joined per token; at each
    database checkpoint the parts before the earliest mark become one (``_compact``). Three marks
    into it: what the database holds (``db_*``); where group deltas start (``base_*``): a
    database checkpoint that moves up only after a group delta was sent *after* the newer
    checkpoint was committed, so a tab that read any checkpoint and then joined the group never
    misses text; and how far the group has been sent (``flushed_parts``).
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.message_id = 0
        self.model_requested = ""
        self.group = ""
        self.listener: Listener | None = None
        self.attached = asyncio.Event()
        self.written = asyncio.Event()  # the request has been written (``start``)
        # The other tabs were told the answer started (or could not be): its end may follow.
        self.announced: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.abandoned = False
        # ``start`` is called back from the database thread: the task must run in the event
        # loop's context, not in the thread's (asgiref marks that one as inside its executor).
        self.context = contextvars.copy_context()
        self.followed = False  # another tab follows: send it deltas through the group
        self.parts: list[str] = []
        self.length = 0
        self.db_parts = self.db_length = 0
        self.base_parts = self.base_length = 0
        self.rebase_to: tuple[int, int] | None = None
        self.flushed_parts = 0
        self.saved_at = self.started_at = time.monotonic()
        self.ttft_ms: int | None = None
        self.spent: Spent | None = None
        self.served = Served(None, None)  # the model and generation, once the stream names them
        self.served_saved = self.served  # what the database holds of them
        self.stop_requested = False
        self.finished = False
        self.lock = asyncio.Lock()  # one group send at a time, in order; none after the end
        self.task: asyncio.Task[None] | None = None

    # --- its life: start, attach (or abandon) -----------------------------------------------

    def start(
        self, api_key: str, payload: dict[str, Any], sent: threading.Event | None = None
    ) -> None:
        """Send the request upstream now, from this event loop (before the answer exists), and
        set ``written`` (and ``sent``, for a database thread waiting) once it has been written:
        the task's first step writes the headers and starts a task that writes the body
        (aiohttp, before Python 3.12's eager tasks), so a callback queued after that step
        queues the setting after the body's writing."""
        if self.task is None and not self.abandoned:
            self.task = asyncio.create_task(
                self.run(api_key, payload), name="chat-relay", context=self.context
            )

        def written() -> None:
            self.written.set()
            if sent is not None:
                sent.set()

        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, written)

    def attach(self, started: Started, listener: Listener | None) -> None:
        """The answer's rows are written: relay its text to ``listener`` and to the database."""
        if self.task is None:
            raise RuntimeError("a relay is attached before it was started")
        self.message_id = started.answer.pk
        self.model_requested = started.answer.model_requested
        self.group = protocol.conversation_group(started.conversation.pk)
        self.listener = listener
        self.task.set_name(f"chat-relay-{self.message_id}")
        self.hub.adopt(self)
        self.attached.set()

    def abandon(self) -> None:
        """The send failed after the request went out: close it, store nothing."""
        self.abandoned = True
        if self.task is not None and not self.attached.is_set():
            self.task.cancel()

    # --- reading upstream ---------------------------------------------------------------------

    async def run(self, api_key: str, payload: dict[str, Any]) -> None:
        outcome: Outcome | None = None
        try:
            events = stream_chat(api_key, payload)
            async with contextlib.aclosing(events):  # type: ignore[type-var]
                async for event in events:
                    if not self.attached.is_set():
                        await self.attached.wait()  # the rows take milliseconds; rarely waited
                    if isinstance(event, TextDelta):
                        await self._on_text(event.text)
                    elif isinstance(event, Usage):
                        self.spent = Spent(event.prompt_tokens, event.completion_tokens, event.cost)
                    elif isinstance(event, Served):
                        self.served = event
                    else:
                        outcome = outcome_of(event)
                        break
        except asyncio.CancelledError:
            # A stop, or this process shutting down: either way aclosing closed the upstream
            # connection. The task goes on to store the end, so the cancellation is consumed.
            if not self.attached.is_set():
                raise  # abandoned (or shut down) before the answer existed: nothing to store
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            outcome = stopped() if self.stop_requested else shut_down()
        except Exception:
            logger.exception("relay for message %s failed", self.message_id)
            outcome = relay_failed()
        try:
            if not self.attached.is_set():
                # It ended before its answer existed: stored once it does (``abandon`` cancels
                # this wait when the answer never will).
                await self.attached.wait()
            await self._finish(self._named(outcome or dropped("ended without a final event")))
        except Exception:
            logger.exception("could not store the end of message %s", self.message_id)
        finally:
            self.hub.forget(self)

    def _named(self, outcome: Outcome) -> Outcome:
        """``outcome`` with the model and generation the stream named, where its end did not
        say them (a stop, a failure on our side): what OpenRouter is asked the usage of."""
        return dataclasses.replace(
            outcome,
            model=outcome.model or self.served.model or "",
            generation_id=outcome.generation_id or self.served.generation_id or "",
        )

    async def _on_text(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)
        if self.ttft_ms is None:
            self.ttft_ms = round((time.monotonic() - self.started_at) * 1000)
        if self.listener is not None:
            try:
                await self.listener.answer_delta(self.message_id, text, self.length)
            except asyncio.CancelledError:
                raise
            except Exception:  # the socket went away mid-send: the answer goes on without it
                self.listener = None

    def stop(self) -> bool:
        if self.finished or self.task is None:
            return False
        self.stop_requested = True
        self.task.cancel()
        return True

    # --- saving and batching (called by the hub's ticker) -------------------------------------

    def has_unsaved_text(self) -> bool:
        return self.db_parts < len(self.parts)

    def checkpoint_piece(self) -> tuple[Append, Mark]:
        """The text the database lacks, with the model and generation if it lacks those too
        (an answer whose process dies then still gets its usage: ``services.usage_fill``), and
        the mark it reaches once appended."""
        served = self.served
        told = Served("", "") if served == self.served_saved else served
        text = "".join(self.parts[self.db_parts :])
        append = Append(self.message_id, text, told.model or "", told.generation_id or "")
        return append, (len(self.parts), self.length, served)

    def saved(self, mark: Mark) -> None:
        self.db_parts, self.db_length, self.served_saved = mark
        # After the next group delta, which is sent after this commit.
        self.rebase_to = (self.db_parts, self.db_length)
        if not self.lock.locked():  # no group delta under way with a position in ``parts``
            self._compact()

    def _compact(self) -> None:
        """Join the parts before the earliest mark into one string, so that an answer is held
        as a few strings, not one per token (each costs ~50 bytes besides its text: a
        2,000-token answer was ~100 KiB). Marks at 0 stay there; the others move down."""
        marks = [self.db_parts, self.base_parts, self.flushed_parts]
        if self.rebase_to is not None:
            marks.append(self.rebase_to[0])
        upto = min((mark for mark in marks if mark), default=0)
        if upto < 2:
            return
        self.parts[:upto] = ["".join(self.parts[:upto])]
        shift = upto - 1
        self.db_parts -= shift
        if self.base_parts:
            self.base_parts -= shift
        if self.flushed_parts:
            self.flushed_parts -= shift
        if self.rebase_to is not None:
            self.rebase_to = (self.rebase_to[0] - shift, self.rebase_to[1])

    def needs_flush(self) -> bool:
        return self.followed and (len(self.parts) > self.flushed_parts or bool(self.rebase_to))

    async def flush(self) -> None:
        async with self.lock:
            if not self.finished:
                await self._send_group_delta()

    async def _send_group_delta(self) -> None:
        """Send the group the text from the base on (lock held), then move the base up."""
        end = len(self.parts)
        if end > self.base_parts:
            await self.hub.group_send(
                self.group,
                {
                    "type": "chat.delta",
                    "message": self.message_id,
                    "start": self.base_length,
                    "text": "".join(self.parts[self.base_parts : end]),
                },
            )
        self.flushed_parts = end
        if self.rebase_to is not None:
            (self.base_parts, self.base_length), self.rebase_to = self.rebase_to, None

    # --- the end ------------------------------------------------------------------------------

    async def _finish(self, outcome: Outcome) -> None:
        async with self.lock:
            self.finished = True
            message = await database_sync_to_async(services.answer_finish)(
                message_id=self.message_id,
                writer=self.hub.channel,
                text="".join(self.parts),
                outcome=outcome,
                spent=self.spent,
                ttft_ms=self.ttft_ms,
            )
            if message is None:
                return  # deleted while it streamed: nobody is left to tell
            message.model_requested = self.model_requested  # not read back, but shown
            frame = protocol.done_frame(message)
            if self.listener is not None:
                with contextlib.suppress(Exception):
                    await self.listener.answer_done(frame)
            if self.followed:
                # Sent even without new text: a follower may hold an older checkpoint than
                # text flushed before it joined. (A tab whose text still falls short of the
                # final ``seq`` is sent the stored answer instead; see the consumer.)
                self.rebase_to = None
                await self._send_group_delta()
            asker = self.listener.channel_name if self.listener is not None else None
            await self.announced
            await self.hub.tell_others(
                self.group, {"type": "chat.done", "frame": frame}, besides=asker
            )


class Hub:
    """This process's relays, its channel for ``relay.*`` messages, and the ticker."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel = ""
        self.ready = asyncio.Event()
        self.relays: dict[int, Relay] = {}
        self.wake = asyncio.Event()
        self.beat_at = time.monotonic()
        self.sending = asyncio.Semaphore(GROUP_SENDS_AT_ONCE)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self._listen(), name="chat-hub-listen"),
            asyncio.create_task(self._tick_forever(), name="chat-hub-tick"),
        ]

    def adopt(self, relay: Relay) -> None:
        self.relays[relay.message_id] = relay
        self.wake.set()

    def stop(self, message_id: int) -> bool:
        """Stop an answer if this process writes it; ``False`` if it does not."""
        relay = self.relays.get(message_id)
        return relay is not None and relay.stop()

    def follow(self, message_id: int) -> bool:
        """Another tab follows this answer; ``False`` if this process does not write it."""
        relay = self.relays.get(message_id)
        if relay is None:
            return False
        relay.followed = True
        return True

    def detach(self, message_id: int, listener: Listener) -> None:
        relay = self.relays.get(message_id)
        if relay is not None and relay.listener is listener:
            relay.listener = None

    def forget(self, relay: Relay) -> None:
        if self.relays.get(relay.message_id) is relay:
            del self.relays[relay.message_id]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        async with self.sending:
            await self.layer.group_send(group, message)

    async def tell_others(
        self,
        group: str,
        message: dict[str, Any],
        *,
        besides: str | None,
        members: list[str] | None = None,
    ) -> None:
        """``group_send``, unless the group holds no channel but ``besides`` (the usual lone tab,
        which would only get its own event back through Redis, to drop it): one ``ZRANGE``
        instead, or none when the caller knows the ``members`` (``chat.groups.move``).
        Race-free for the callers: they have stored what they announce before asking, and a
        tab joins the group before it reads the database."""
        if members is None:
            members = await groups.members(self.layer, group)
        if groups.others_in(members, besides):
            await self.group_send(group, message)

    async def drain(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the running answers to end (tests, graceful shutdown)."""
        tasks = [relay.task for relay in self.relays.values() if relay.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)

    async def close(self) -> None:
        for relay in list(self.relays.values()):
            if relay.task is not None:
                relay.task.cancel()
        await self.drain(5)
        for task in self.tasks:
            task.cancel()
        await asyncio.wait(self.tasks, timeout=5)

    async def _listen(self) -> None:
        # The default prefix on purpose: channels_redis lets one coroutine at a time pop the
        # process's local channels, and only those sharing a prefix share that pop.
        self.channel = await self.layer.new_channel()
        self.ready.set()
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except Exception:
                # redis-py may turn a cancellation into its own TimeoutError: closing wins.
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
                logger.warning("the relay channel failed; listening again", exc_info=True)
                await asyncio.sleep(1)
                continue
            message_id = message.get("message")
            if not isinstance(message_id, int):
                continue
            if message.get("type") == "relay.stop":
                self.stop(message_id)
            elif message.get("type") == "relay.follow":
                self.follow(message_id)

    async def _tick_forever(self) -> None:
        while True:
            if not self.relays:
                self.wake.clear()
                await self.wake.wait()
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self._tick()
            except Exception:
                logger.exception("chat relay tick failed")

    async def _tick(self) -> None:
        now = time.monotonic()
        relays = [relay for relay in self.relays.values() if not relay.finished]
        # Saved a little early rather than late: the interval is a maximum gap.
        save_after = settings.CHAT_SAVE_INTERVAL - FLUSH_INTERVAL / 2
        due = [r for r in relays if r.has_unsaved_text() and now - r.saved_at >= save_after]
        beat = now - self.beat_at >= HEARTBEAT_INTERVAL
        if due or beat:
            await self._save(due, [r.message_id for r in relays] if beat else [], now)
            if beat:
                self.beat_at = now
        # Every flush ends before the tick does, failed or not: a flush still sending when the
        # next tick's checkpoint moves the marks could leave a hole in a following tab's text.
        flushed = await asyncio.gather(
            *(relay.flush() for relay in relays if relay.needs_flush()), return_exceptions=True
        )
        for error in flushed:
            if isinstance(error, Exception):
                logger.error("could not send a delta to the other tabs", exc_info=error)

    async def _save(self, due: list[Relay], alive: list[int], now: float) -> None:
        checkpoint, marks = Checkpoint(alive=alive), {}
        for relay in due:
            append, marks[relay] = relay.checkpoint_piece()
            checkpoint.appends.append(append)
        try:
            saved = await database_sync_to_async(services.answer_checkpoint)(
                writer=self.channel, checkpoint=checkpoint
            )
        except Exception:
            logger.exception("could not save the text of %d streaming answers", len(due))
            return
        for relay in due:
            relay.saved_at = now
            if relay.message_id in saved and not relay.finished:
                relay.saved(marks[relay])


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


async def hub() -> Hub:
    """This event loop's hub, started on first use."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
        found.start()
    await found.ready.wait()
    return found


def current_hub() -> Hub | None:
    """The running loop's hub if it was started (for tests and shutdown)."""
    return _hubs.get(asyncio.get_running_loop())


# --- how an answer ended, in the user's words -------------------------------------------------


def outcome_of(event: Finished | Failed | Interrupted) -> Outcome:
    served = {"model": event.model or "", "generation_id": event.generation_id or ""}
    if isinstance(event, Finished):
        return Outcome(Message.State.COMPLETE, finish_reason=event.reason or "", **served)
    if isinstance(event, Failed):
        error = event.error
        return Outcome(
            Message.State.ERROR, error_code=error.code, error_message=error.message, **served
        )
    return dropped(event.reason, **served)


def dropped(reason: str, **served: str) -> Outcome:
    if reason == "stalled":
        code, why = "stalled", "the model stopped sending"
    else:
        code, why = "dropped", "the connection to OpenRouter ended before the answer did"
    return Outcome(
        Message.State.INTERRUPTED,
        error_code=code,
        error_message=f"The answer was cut off: {why}. The text so far is kept; retry for a "
        "whole answer.",
        **served,
    )


def stopped() -> Outcome:
    return Outcome(Message.State.STOPPED)


def shut_down() -> Outcome:
    return Outcome(
        Message.State.INTERRUPTED,
        error_code="shutdown",
        error_message="The answer was cut off: the server restarted. The text so far is kept.",
    )


def relay_failed() -> Outcome:
    return Outcome(
        Message.State.ERROR,
        error_code="internal",
        error_message="Something went wrong on our side while relaying this answer. Try again.",
    )
