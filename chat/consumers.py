"""The chat websocket: one consumer per browser tab. The protocol is in ``chat.protocol``.

Thin on purpose: frames are parsed by ``chat.protocol``, requests carried out by
``chat.services``, answers read and relayed by ``chat.streams``. What this class owns is the
per-tab bookkeeping that merges database snapshots with live deltas (``Tracked``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from accounts.models import User
from accounts.services import (
    KeyChanged,
    NotConnected,
    api_key_confirm,
    api_key_for,
    api_key_from,
)
from chat import groups, protocol, services, streams
from chat.protocol import ChatError
from chat.services import Started
from config.async_db import database_sync_to_async
from config.consumers import JsonConsumer

logger = logging.getLogger(__name__)

# How long a send's database call waits for its request to be written before writing its rows
# anyway: ~0.1 ms on a loop with time to spare; on a saturated one the wait would only idle the
# database thread that every socket shares.
REQUEST_SENT_WAIT = 0.001
# How long a send waits for its quota to be counted (Redis retries a lost connection meanwhile).
QUOTA_WAIT = 10.0
# Stops waiting to see whether another process ends the answer (``_stop_if_orphaned``).
_orphan_checks: set[asyncio.Task[None]] = set()


@contextlib.contextmanager
def key_refusals() -> Iterator[None]:
    """``accounts.services``' refusals about the user's key, as the tab reads them."""
    try:
        yield
    except NotConnected:
        raise ChatError("not_connected", NotConnected.message) from None
    except KeyChanged:
        raise ChatError("key_changed", KeyChanged.message) from None


@dataclass
class Tracked:
    """What this tab has of a message: ``length`` characters; ``direct`` when the relay sends
    it every delta itself (this tab asked for it); ``final`` once it was told the end."""

    length: int = 0
    direct: bool = False
    final: bool = False


class ChatConsumer(JsonConsumer):
    user: User
    conversation_id: int | None
    tracked: dict[int, Tracked]

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.user, self.conversation_id, self.tracked = user, None, {}
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "tracked"):
            return  # refused in connect()
        await self._follow(None)
        hub = streams.current_hub()
        if hub is not None:
            for message_id, tracked in self.tracked.items():
                if tracked.direct and not tracked.final:
                    hub.detach(message_id, self)  # the answer goes on; only this tab leaves

    # --- from the tab -------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self._refuse(ChatError("bad_request", "Frames must be JSON text."))
        elif len(text_data) > protocol.max_frame_chars():
            await self._refuse(ChatError("too_long", "That frame is too large."))
        else:
            try:
                content = await self.decode_json(text_data)
            except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
                await self._refuse(ChatError("bad_json", "That frame is not valid JSON."))
                return
            await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        ref = content.get("ref") if isinstance(content, dict) else None
        try:
            request = protocol.parse(content)
            await self._handle(request, ref)
        except ChatError as error:
            await self._refuse(error, ref)
        except Exception:
            logger.exception("chat request failed")
            await self._refuse(ChatError("internal", "Something went wrong. Try again."), ref)

    async def _handle(self, request: protocol.Request, ref: Any) -> None:
        match request:
            case protocol.Subscribe(conversation, since):
                await self._subscribe(conversation, since)
            case protocol.Send():
                send: dict[str, Any] = {
                    "conversation_id": request.conversation,
                    "text": request.text,
                    "model": request.model,
                    "options": request.options,
                }
                early = services.message_send_request(user=self.user, **send)
                await self._answer(services.message_send, early_request=early, **send)
            case protocol.Regenerate(message):
                await self._answer(services.message_answer_again, message_id=message)
            case protocol.Retry(message):
                await self._answer(
                    services.message_answer_again, message_id=message, failed_only=True
                )
            case protocol.Edit(message, text):
                await self._answer(services.message_edit, message_id=message, text=text)
            case protocol.Stop(message):
                await self._stop(message)
            case protocol.Ping():
                await self.send_json(protocol.pong_frame(ref))

    async def _subscribe(self, conversation_id: int, since: int | None) -> None:
        conversation = await database_sync_to_async(services.conversation_for)(
            user=self.user, conversation_id=conversation_id
        )
        # Join first, read second: whatever is sent after the read reaches this tab.
        await self._follow(conversation.pk)
        messages = await database_sync_to_async(services.messages_to_snapshot)(
            conversation=conversation, since=since
        )
        for message in messages:
            tracked = self.tracked.setdefault(message.pk, Tracked())
            if not tracked.direct:
                tracked.length, tracked.final = len(message.content), not message.is_streaming
                if message.is_streaming:
                    await self._follow_answer(message.pk, message.writer)
            await self.send_json(protocol.snapshot_frame(message))
        await self.send_json({"type": "subscribed", "conversation": conversation.pk})

    async def _answer(
        self,
        action: Callable[..., Started],
        *,
        early_request: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A send, retry or regenerate: ``action`` in one database hop, with the user's key,
        while the send is counted against its quotas (``services.send_quota_start``, which also
        brings the key's ciphertext from ``accounts.key_cache``).

        The request goes upstream before the rows are written, and the relay reads while they
        are: ``early_request`` (a new conversation's, known without the database) as soon as
        the send is counted, when the key was in the cache; any other from inside the hop, once
        ``action`` has passed its checks (``on_request``).
        """
        hub = await streams.hub()
        relay = streams.Relay(hub)
        loop = asyncio.get_running_loop()
        quota: Future[bytes | None]
        early_key = None
        try:
            if early_request is None:
                quota = services.send_quota_start(user_id=self.user.pk, client_ip=self.client_ip)
            else:
                # Bounded by its pool (a connection waited for up to 20 s) and redis-py's
                # timeouts; not by QUOTA_WAIT: at 1,000 streams opening at once the loop is
                # saturated for seconds, and a send served late beats one refused (22 of 1,000
                # refused with it, docs/benchmarks.md).
                cached = await services.asend_quota_take(
                    user_id=self.user.pk, client_ip=self.client_ip
                )
                quota = Future()  # counted: the database call takes it as done
                quota.set_result(cached)
                with key_refusals():
                    key = None if cached is None else api_key_from(cached)
                if key is not None:
                    early_key = cached
                    relay.start(key, early_request)
                    # Written before the database hop starts: its queries would hold the GIL
                    # between them while the request waited (~0.5 ms, docs/benchmarks.md).
                    await relay.written.wait()

            def answer() -> Started:  # in the database thread
                if early_key is not None:  # sent already, with the key from the cache
                    with key_refusals():  # which may have been stale (see accounts.key_cache)
                        api_key_confirm(user=self.user, used=early_key)
                    return action(user=self.user, quota=quota, writer=hub.channel, **kwargs)
                cached = quota.result(QUOTA_WAIT)  # not in the send's transaction
                with key_refusals():
                    key = None if cached is None else api_key_from(cached)
                    if key is None:  # not cached (or no longer readable): the database
                        key = api_key_for(user=self.user, remember=True)

                def on_request(payload: dict[str, Any]) -> None:
                    # The rows are written once the request is: written meanwhile, they held
                    # the GIL between their queries and the request waited for it (~0.5 ms at
                    # 10 streams, docs/benchmarks.md).
                    sent = threading.Event()
                    loop.call_soon_threadsafe(relay.start, key, payload, sent)
                    sent.wait(REQUEST_SENT_WAIT)

                return action(
                    user=self.user, quota=quota, writer=hub.channel, on_request=on_request, **kwargs
                )

            started = await database_sync_to_async(answer)()
        except BaseException:
            relay.abandon()  # and the request, if it went out
            raise
        self.tracked[started.prompt.pk] = Tracked(len(started.prompt.content), final=True)
        self.tracked[started.answer.pk] = Tracked(direct=True)
        frame = protocol.started_frame(
            started.conversation, started.prompt, started.answer, started.replaces
        )
        try:
            try:
                await self.send_json(frame)
            finally:
                # Even if this tab just went away: the answer is under way and must be stored.
                relay.attach(started, listener=self)
            # The other tabs hear of the answer before its first delta can reach them: group
            # deltas go out only once a tab follows (chat.streams), which it does on hearing
            # ``chat.started``; and before its end: the relay tells them that only once
            # ``announced`` (an answer failing at once, a 402 say, would otherwise end in those
            # tabs before it started there, and then never end).
            members = await self._follow(started.conversation.pk)
            await hub.tell_others(
                protocol.conversation_group(started.conversation.pk),
                {"type": "chat.started", "frame": frame, "writer": hub.channel},
                besides=self.channel_name,
                members=members,
            )
        finally:
            relay.announced.set_result(None)

    async def _stop(self, message_id: int) -> None:
        message = await database_sync_to_async(services.message_for)(
            user=self.user, message_id=message_id
        )
        if not message.is_streaming:
            await self.send_json(protocol.done_frame(message))  # it had ended: say how
            return
        hub = await streams.hub()
        if not hub.stop(message.pk) and message.writer:
            # Written by another process: its hub listens on the writer channel.
            await self.channel_layer.send(message.writer, protocol.relay_stop_message(message.pk))
            check = asyncio.create_task(self._stop_if_orphaned(message.pk, message.writer))
            _orphan_checks.add(check)  # kept until done, even if this tab closes meanwhile
            check.add_done_callback(_orphan_checks.discard)

    async def _stop_if_orphaned(self, message_id: int, writer: str) -> None:
        """A writer that went away (its process killed) never ends an answer it was asked to
        stop: after ``CHAT_STOP_GRACE`` the answer is stopped here, and the conversation's tabs
        told, rather than left streaming until the sweep (a minute and more)."""
        await asyncio.sleep(settings.CHAT_STOP_GRACE)
        message = await database_sync_to_async(services.answer_stop_orphaned)(
            message_id=message_id, writer=writer
        )
        if message is not None:
            await self.channel_layer.group_send(
                protocol.conversation_group(message.conversation_id),
                {"type": "chat.done", "frame": protocol.done_frame(message)},
            )

    async def _follow_answer(self, message_id: int, writer: str) -> None:
        """Ask the relay writing an answer to send this tab its deltas through the group."""
        hub = streams.current_hub()
        if hub is not None and hub.follow(message_id):
            return
        if writer:
            await self.channel_layer.send(writer, protocol.relay_follow_message(message_id))

    @property
    def client_ip(self) -> str:
        """The peer's address, for per-address send limits (uvicorn applies proxy headers)."""
        client = self.scope.get("client")
        return str(client[0]) if client else ""

    async def _follow(self, conversation_id: int | None) -> list[str] | None:
        """Make this tab's group the conversation's (``None``: none); the channels in the group
        joined, when it moved and the layer can tell."""
        if conversation_id == self.conversation_id:
            return None
        # What this tab had of the conversation it leaves is of no more use, but for its own
        # answers still coming (``disconnect`` detaches them): a tab open for days stays small.
        self.tracked = {pk: t for pk, t in self.tracked.items() if t.direct and not t.final}
        members = await groups.move(
            self.channel_layer,
            self.channel_name,
            leave=self._group(self.conversation_id),
            join=self._group(conversation_id),
        )
        self.conversation_id = conversation_id
        return members

    @staticmethod
    def _group(conversation_id: int | None) -> str | None:
        return None if conversation_id is None else protocol.conversation_group(conversation_id)

    async def _refuse(self, error: ChatError, ref: Any = None) -> None:
        await self.send_json(protocol.error_frame(error, ref))

    # --- from this process's relay (the fast path) --------------------------------------------

    async def answer_delta(self, message_id: int, text: str, seq: int) -> None:
        await self.send_json(protocol.delta_frame(message_id, text, seq))

    async def answer_done(self, frame: dict[str, Any]) -> None:
        tracked = self.tracked.get(frame["message"]["id"])
        if tracked is not None:
            tracked.final = True
        await self.send_json(frame)

    # --- from the conversation's group --------------------------------------------------------

    async def chat_started(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        message_id = frame["message"]["id"]
        if message_id in self.tracked or frame["conversation"]["id"] != self.conversation_id:
            return  # this tab asked for it, or has moved on to another conversation
        self.tracked[frame["user"]["id"]] = Tracked(len(frame["user"]["text"]), final=True)
        self.tracked[message_id] = Tracked()
        await self.send_json(frame)
        await self._follow_answer(message_id, event.get("writer", ""))

    async def chat_delta(self, event: dict[str, Any]) -> None:
        message_id, start, text = event["message"], event["start"], event["text"]
        tracked = self.tracked.get(message_id)
        if tracked is None or tracked.direct or tracked.final:
            return
        end = start + len(text)
        if end <= tracked.length:
            return  # nothing this tab lacks
        if start > tracked.length:
            # Not expected (see chat.streams); text with a hole in it would be worse than
            # waiting: the stored answer is sent at the end instead (chat_done).
            logger.warning("delta for message %s skips text; dropped", message_id)
            return
        piece = text[tracked.length - start :]
        tracked.length = end
        await self.send_json(protocol.delta_frame(message_id, piece, end))

    async def chat_done(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        message_id = frame["message"]["id"]
        tracked = self.tracked.get(message_id)
        if tracked is not None:
            if tracked.direct or tracked.final:
                return
            tracked.final = True
            if tracked.length != frame["message"]["seq"]:
                # This tab lacks some of the text (it joined as the answer ended, say): an
                # answer must never look complete when it is not, so send the stored one.
                await self._resend(message_id)
        await self.send_json(frame)

    async def chat_deleted(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    async def chat_usage(self, event: dict[str, Any]) -> None:
        """An answer cut short, its usage now known (``services.usage_fill``): ``done`` again."""
        await self.send_json(event["frame"])

    async def _resend(self, message_id: int) -> None:
        with contextlib.suppress(ChatError):
            message = await database_sync_to_async(services.message_for)(
                user=self.user, message_id=message_id
            )
            await self.send_json(protocol.snapshot_frame(message))
