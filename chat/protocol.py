"""The chat websocket protocol, both ways, in one place.

A browser tab opens ``/ws/chat/`` (signed in: a socket without a session is closed with 4401)
and exchanges JSON text frames, each an object with a ``type``.

Client → server
===============

==============  ===========================================  =====================================
type            fields                                       effect
==============  ===========================================  =====================================
``subscribe``   ``conversation`` int, ``since`` int?         Follow one conversation (one at a
                                                             time): a ``snapshot`` of each message
                                                             with id ≥ ``since`` and of each
                                                             streaming one, then ``subscribed``;
                                                             live frames follow.
``send``        ``conversation`` int | null, ``text`` str,   Store the prompt, start its answer;
                ``model`` str? ("" = my OpenRouter           ``null`` starts a new conversation.
                default), ``options`` {system_prompt,        ``model`` becomes the conversation's
                temperature, max_tokens}? (new only)         model.
``stop``        ``message`` int                              Stop a streaming answer (any tab).
``regenerate``  ``message`` int                              Answer the last prompt again; the new
                                                             answer replaces ``message``.
``retry``       ``message`` int                              The same, for an answer that ended in
                                                             ``error`` or ``interrupted``.
``edit``        ``message`` int, ``text`` str                The last prompt (``message``) now
                                                             reads ``text``: it is answered again,
                                                             the new answer replacing the old.
``ping``        —                                            Answered with ``pong``.
==============  ===========================================  =====================================

Every client frame may carry ``ref`` (a string or an integer); an ``error`` caused by that frame
echoes it, so a tab knows which action failed.

Server → client
===============

==============  ===========================================  =====================================
type            fields                                       meaning
==============  ===========================================  =====================================
``subscribed``  ``conversation``                             Snapshots sent; live frames follow.
``snapshot``    ``message`` (a message view, see below)      The message as it is now: replaces
                                                             what the tab shows for it.
``started``     ``conversation`` {id, title, model},         A prompt was stored and its answer
                ``user`` view, ``message`` view,             begins (to every tab following the
                ``replaces`` int | null                      conversation); ``replaces`` is the
                                                             answer it replaces, if any.
``delta``       ``message`` int, ``text`` str, ``seq`` int   More text: append it. ``seq`` is the
                                                             answer's length after it.
``done``        ``message`` (a view without ``text``)        The final state, usage, model served;
                                                             again once the usage of an answer
                                                             cut short is known.
``deleted``     ``conversation`` int                         The conversation was deleted (in
                                                             another tab, say).
``error``       ``code`` str, ``message`` str, ``ref``?,     A request failed; the socket stays
                ``retry_after`` int?                         open and usable.
``pong``        ``ref``?                                     Answer to ``ping``.
==============  ===========================================  =====================================

A message view is ``{id, role, state, text, seq, model, usage, ttft_ms, finish_reason, error}``:
``state`` one of complete / streaming / stopped / error / interrupted; ``model`` the model that
served it (or, for one that failed before any did, the one asked for); ``usage``
``{prompt_tokens, completion_tokens, cost}`` (cost: a decimal string, USD) or null; ``ttft_ms``
the time to first token; ``error`` ``{code, message}`` or null.

Lengths and ``seq`` count characters (Unicode code points) of the answer so far. A tab keeps
the ``seq`` of each message and ignores a ``delta`` whose ``seq`` is not beyond it, so a
snapshot and the live deltas merge without duplicated text after a reconnect.

Error codes: ``bad_json``, ``bad_request``, ``unknown_type``, ``too_long``, ``not_found`` (no
such conversation or message *of yours*), ``not_allowed``, ``busy`` (an answer is streaming in
that conversation), ``rate_limited`` (with ``retry_after`` seconds), ``not_connected`` (no
OpenRouter key), ``key_changed`` (the key was replaced as the message was sent: send it again),
``internal``.

Inside the server (channel layer)
=================================

* Group ``chat.conversation.<id>``, every socket following the conversation:
  ``chat.started {frame, writer}``, ``chat.done {frame}``, ``chat.usage {frame}`` (a ``done``
  frame with the usage of an answer cut short, found later), and ``chat.delta {message, start,
  text}`` — deltas batched every few tens of milliseconds, ``text`` being the answer from
  character ``start`` (a checkpoint saved in the database) on. Each socket trims what its tab
  already has, so a tab that read a checkpoint and then joined never misses text sent before.
  A tab whose text falls short of ``done``'s ``seq`` is sent the stored answer.
* A relay's own channel (the message's ``writer``): ``relay.stop {message}`` (a stop from a tab
  in another process) and ``relay.follow {message}`` (another tab follows the answer: until
  then the relay spares the group its deltas).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from chat.forms import ConversationOptionsForm
from chat.models import Conversation, Message
from openrouter.catalogue import MODEL_ID_PATTERN, model_id_validator

MODEL_ID = re.compile(MODEL_ID_PATTERN)
OPTION_FIELDS = ("system_prompt", "temperature", "max_tokens")
MAX_OPTION_CHARS = 20_000


def conversation_group(conversation_id: int) -> str:
    return f"chat.conversation.{conversation_id}"


def relay_stop_message(message_id: int) -> dict[str, Any]:
    """Sent to a message's ``writer`` channel: stop that answer (see ``chat.streams``)."""
    return {"type": "relay.stop", "message": message_id}


def relay_follow_message(message_id: int) -> dict[str, Any]:
    """Sent to a message's ``writer`` channel: another tab follows it, send group deltas."""
    return {"type": "relay.follow", "message": message_id}


class ChatError(Exception):
    """A request refused, in words for the user: an ``error`` frame, and the socket stays open.

    Services raise it too (``busy``, ``rate_limited``, ``not_found``…), so every refusal reaches
    the tab the same way.
    """

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


# --- client → server --------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscribe:
    conversation: int
    since: int | None = None


@dataclass(frozen=True)
class Send:
    conversation: int | None
    text: str
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stop:
    message: int


@dataclass(frozen=True)
class Regenerate:
    message: int


@dataclass(frozen=True)
class Retry:
    message: int


@dataclass(frozen=True)
class Edit:
    message: int
    text: str


@dataclass(frozen=True)
class Ping:
    pass


Request = Subscribe | Send | Stop | Regenerate | Retry | Edit | Ping


def parse(frame: Any) -> Request:
    """The request a decoded client frame stands for; ``ChatError`` when it is not one."""
    if not isinstance(frame, dict):
        raise ChatError("bad_request", "A frame must be a JSON object with a type.")
    kind = frame.get("type")
    if kind == "subscribe":
        since = frame.get("since")
        return Subscribe(
            _id(frame, "conversation"), None if since is None else _id(frame, "since", minimum=0)
        )
    if kind == "send":
        return _send(frame)
    if kind == "stop":
        return Stop(_id(frame, "message"))
    if kind == "regenerate":
        return Regenerate(_id(frame, "message"))
    if kind == "retry":
        return Retry(_id(frame, "message"))
    if kind == "edit":
        return Edit(_id(frame, "message"), _text(frame))
    if kind == "ping":
        return Ping()
    raise ChatError("unknown_type", f"Unknown frame type {str(kind)[:40]!r}.")


def _id(frame: dict[str, Any], name: str, *, minimum: int = 1) -> int:
    value = frame.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ChatError("bad_request", f"{name!r} must be an id (a positive integer).")
    return value


def _send(frame: dict[str, Any]) -> Send:
    conversation = None if frame.get("conversation") is None else _id(frame, "conversation")
    text = _text(frame)
    model = frame.get("model")
    if model is not None and (not isinstance(model, str) or not MODEL_ID.fullmatch(model)):
        raise ChatError("bad_request", str(model_id_validator.message))
    return Send(conversation, text, model, _options(frame.get("options")))


def _text(frame: dict[str, Any]) -> str:
    """A prompt's text: not blank, storable, within the limit."""
    text = frame.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ChatError("bad_request", "A message cannot be empty.")
    if not _storable(text):
        raise ChatError("bad_request", "That message contains characters that cannot be stored.")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatError(
            "too_long",
            f"That message is {len(text):,} characters long; the limit is "
            f"{settings.CHAT_MAX_MESSAGE_CHARS:,}.",
        )
    return text


def _storable(text: str) -> bool:
    """Text the database can keep: no NUL, and valid Unicode (no lone surrogates)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _options(options: Any) -> dict[str, Any]:
    """A new conversation's options, checked by the same form as the settings page."""
    if not options:
        return {}
    if not isinstance(options, dict) or len(str(options)) > MAX_OPTION_CHARS:
        raise ChatError("bad_request", "'options' must be a small object.")
    if not all(_storable(v) for v in options.values() if isinstance(v, str)):
        raise ChatError("bad_request", "The options contain characters that cannot be stored.")
    form = ConversationOptionsForm(
        data={name: "" if options.get(name) is None else options[name] for name in OPTION_FIELDS}
    )
    if not form.is_valid():  # every field's error at once, not one per try
        said = [
            f"{field.replace('_', ' ').capitalize()}: {errors[0]}"
            for field, errors in form.errors.items()
        ]
        raise ChatError("bad_request", " ".join(said))
    return {name: form.cleaned_data[name] for name in OPTION_FIELDS}


def max_frame_chars() -> int:
    """Longer frames are refused before decoding: the longest prompt, escaped, plus room."""
    return settings.CHAT_MAX_MESSAGE_CHARS * 6 + MAX_OPTION_CHARS + 4096


# --- server → client --------------------------------------------------------------------------


def message_view(message: Message, *, text: bool = True) -> dict[str, Any]:
    usage = None
    if message.prompt_tokens is not None or message.completion_tokens is not None:
        usage = {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
            "cost": None if message.cost is None else format(message.cost.normalize(), "f"),
        }
    view: dict[str, Any] = {
        "id": message.pk,
        "role": message.role,
        "state": message.state,
        "seq": len(message.content),
        "model": message.model_shown,
        "usage": usage,
        "ttft_ms": message.time_to_first_token_ms,
        "finish_reason": message.finish_reason,
        "error": (
            {"code": message.error_code, "message": message.error_message}
            if message.error_code or message.error_message
            else None
        ),
    }
    if text:
        view["text"] = message.content
    return view


def conversation_view(conversation: Conversation) -> dict[str, Any]:
    return {"id": conversation.pk, "title": conversation.title, "model": conversation.model}


def snapshot_frame(message: Message) -> dict[str, Any]:
    return {"type": "snapshot", "message": message_view(message)}


def started_frame(
    conversation: Conversation, prompt: Message, answer: Message, replaces: int | None
) -> dict[str, Any]:
    return {
        "type": "started",
        "conversation": conversation_view(conversation),
        "user": message_view(prompt),
        "message": message_view(answer),
        "replaces": replaces,
    }


def delta_frame(message_id: int, text: str, seq: int) -> dict[str, Any]:
    return {"type": "delta", "message": message_id, "text": text, "seq": seq}


def done_frame(message: Message) -> dict[str, Any]:
    return {"type": "done", "message": message_view(message, text=False)}


def deleted_frame(conversation_id: int) -> dict[str, Any]:
    return {"type": "deleted", "conversation": conversation_id}


def error_frame(error: ChatError, ref: Any = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message}
    if error.retry_after is not None:
        frame["retry_after"] = error.retry_after
    return _with_ref(frame, ref)


def pong_frame(ref: Any = None) -> dict[str, Any]:
    return _with_ref({"type": "pong"}, ref)


MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's: a larger ``ref`` would not come back the same


def _with_ref(frame: dict[str, Any], ref: Any) -> dict[str, Any]:
    """``ref`` echoed only when it is what the protocol says, a string (valid Unicode) or an
    integer a page can hold: anything else a client sends there (an object nested 500 deep,
    half an emoji, 2**70) is not sent back."""
    if isinstance(ref, bool):
        return frame
    if (isinstance(ref, str) and _storable(ref)) or (
        isinstance(ref, int) and abs(ref) <= MAX_SAFE_INTEGER
    ):
        frame["ref"] = ref
    return frame
