"""The one place that speaks to OpenRouter.

One pooled ``httpx.Client`` per process (Celery workers, Django views) and one
``httpx.AsyncClient`` per event loop (Channels), made on first use, never one per request.
Streamed chat completions (``stream_chat``, the chat relay's hot path) are read with one pooled
``aiohttp.ClientSession`` per event loop instead: httpx costs ~142 µs of CPU per received chunk
(httpcore/h11/anyio machinery per read), aiohttp ~51 µs (docs/benchmarks.md); the SSE framing
is ``openrouter.streaming.SSEDecoder``, fed raw bytes. Every request carries the attribution
headers; a user's key goes only into ``Authorization``. Every failure comes out as
``OpenRouterError``; callers never see httpx or aiohttp exceptions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import http.cookiejar
import ipaddress
import json
import logging
import os
import select
import socket
import threading
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import aiohttp
import httpx
import orjson
from django.conf import settings

from openrouter.errors import OpenRouterError, error_from_body, size_in_words
from openrouter.streaming import Failed, StreamEvent, StreamParser, chunk_error

USER_AGENT = "Switchboard/0.1 (+https://github.com/switchboard)"

logger = logging.getLogger(__name__)


# --- requests ---------------------------------------------------------------------------------


def api_url(path: str) -> str:
    return f"{settings.OPENROUTER_URL}/api/v1/{path.lstrip('/')}"


def headers(api_key: str | None = None) -> dict[str, str]:
    result = {
        "HTTP-Referer": settings.SITE_URL,
        "X-Title": settings.SITE_NAME,
        "X-OpenRouter-Title": settings.SITE_NAME,
        "User-Agent": USER_AGENT,
    }
    if api_key:
        result["Authorization"] = f"Bearer {api_key}"
    return result


def timeouts(read: float | None = None) -> httpx.Timeout:
    return httpx.Timeout(
        connect=settings.OPENROUTER_CONNECT_TIMEOUT,
        read=read or settings.OPENROUTER_READ_TIMEOUT,
        write=30.0,
        pool=10.0,
    )


LIMITS = httpx.Limits(max_connections=2000, max_keepalive_connections=200, keepalive_expiry=30)


def no_cookies() -> http.cookiejar.CookieJar:
    """A jar that keeps nothing. Every client here is shared by all users' requests: a cookie
    the upstream sets (a CDN's bot-check cookie, say) must never ride along on the next user's
    request. (aiohttp: ``DummyCookieJar``.)"""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


_sync_client: tuple[int, httpx.Client] | None = None
_sync_lock = threading.Lock()
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def sync_client() -> httpx.Client:
    """The process's client; re-made after a fork (Celery's prefork pool)."""
    global _sync_client
    with _sync_lock:
        if _sync_client is None or _sync_client[0] != os.getpid():
            made = httpx.Client(timeout=timeouts(), limits=LIMITS, cookies=no_cookies())
            _sync_client = (os.getpid(), made)
        return _sync_client[1]


def async_client() -> httpx.AsyncClient:
    """The event loop's client (an AsyncClient's pool belongs to the loop that made it)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(timeout=timeouts(), limits=LIMITS, cookies=no_cookies())
        _async_clients[loop] = client
    return client


def _json(body: bytes) -> Any:
    # Long-running upstreams pad their body with whitespace keep-alives; json.loads skips them.
    try:
        return json.loads(body)
    except ValueError as exc:
        raise OpenRouterError.bad_response(f"not JSON: {body[:200]!r}") from exc


def error_from(response: httpx.Response, body: bytes | None = None) -> OpenRouterError:
    """The error an unsuccessful response stands for, from its status and its JSON body."""
    return error_from_body(
        response.status_code,
        response.content if body is None else body,
        retry_after=response.headers.get("retry-after"),
        reason=response.reason_phrase,
    )


def _checked(response: httpx.Response, body: bytes | None = None) -> Any:
    body = response.content if body is None else body
    if response.status_code != 200:
        raise error_from(response, body)
    return _json(body)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise OpenRouterError.timeout(type(exc).__name__) from exc
    except httpx.HTTPError as exc:
        raise OpenRouterError.network(type(exc).__name__) from exc


def request(
    method: str,
    path: str,
    *,
    api_key: str | None = None,
    read_timeout: float | None = None,
    **kw: Any,
) -> Any:
    with _translated():
        response = sync_client().request(
            method, api_url(path), headers=headers(api_key), timeout=timeouts(read_timeout), **kw
        )
    return _checked(response)


async def arequest(method: str, path: str, *, api_key: str | None = None, **kw: Any) -> Any:
    with _translated():
        response = await async_client().request(
            method, api_url(path), headers=headers(api_key), **kw
        )
    return _checked(response)


# --- operations -------------------------------------------------------------------------------


def authorize_url(
    callback_url: str, code_challenge: str, *, method: str = "S256", key_label: str = ""
) -> str:
    params = {
        "callback_url": callback_url,
        "code_challenge": code_challenge,
        "code_challenge_method": method,
    }
    if key_label:
        params["key_label"] = key_label
    return f"{settings.OPENROUTER_URL}/auth?{urlencode(params)}"


@dataclass(frozen=True)
class IssuedKey:
    key: str
    user_id: str | None


def exchange_code(code: str, code_verifier: str, method: str = "S256") -> IssuedKey:
    """Trade an authorization code (+ its verifier) for a permanent user API key."""
    body = {"code": code, "code_verifier": code_verifier, "code_challenge_method": method}
    data = request("POST", "auth/keys", json=body)
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise OpenRouterError.bad_response("no key in the exchange response")
    return IssuedKey(key=data["key"], user_id=data.get("user_id"))


def key_info(api_key: str, *, read_timeout: float | None = None) -> dict[str, Any]:
    """``/key``: label, limit, limit_remaining, usage, usage_daily/weekly/monthly, …"""
    data = request("GET", "key", api_key=api_key, read_timeout=read_timeout)
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise OpenRouterError.bad_response("/key answered with an unexpected shape")
    return dict(data["data"])


def list_models() -> list[dict[str, Any]]:
    data = request("GET", "models")
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise OpenRouterError.bad_response("/models answered with an unexpected shape")
    return [model for model in data["data"] if isinstance(model, dict) and "id" in model]


def complete(api_key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed chat completion; returns OpenRouter's response body."""
    return dict(
        request("POST", "chat/completions", api_key=api_key, json={**payload, "stream": False})
    )


def generation_stats(api_key: str, generation_id: str) -> dict[str, Any]:
    return dict(request("GET", "generation", api_key=api_key, params={"id": generation_id})["data"])


# The stream's own pool: aiohttp, not httpx (see the module docstring). One session per event
# loop, as for ``async_client()``; a loop that has closed takes its connections with it.
STREAM_CONNECTIONS = 2000
# An idle connection is reused only within this many seconds: less than the common servers'
# keep-alive (uvicorn, gunicorn, Node: 5 s), so we seldom send on one the server is closing
# (and when we do, ``_resend_after_stale_connection``).
STREAM_KEEPALIVE = 4.0
_stream_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


class _CheckedConnector(aiohttp.TCPConnector):
    """aiohttp's connector, but an idle pooled connection whose socket has become readable is
    not reused: the server closed it (or sent what an idle HTTP/1.1 connection never should),
    as httpcore and urllib3 check before reuse.

    aiohttp trusts its protocol's view, which learns of the server's close only once the event
    loop has read it: on a loop busy for a while (1,000 streams), a request went out on a
    connection the upstream had closed as idle, and failed (``ServerDisconnectedError``, the
    answer lost; docs/benchmarks.md). Checked before, rather than only resent after (as
    ``_resend_after_stale_connection`` does for what the check cannot see): a resend costs the
    answer a round trip.

    And the most recently used connection is taken first (aiohttp takes the oldest): the one
    least likely to be near the server's idle limit; the others age out (``keepalive_timeout``).
    """

    async def _get(self, key: Any, traces: list[Any]) -> Any:
        if _pool_refused.get():
            return None  # a new connection
        while True:
            idle = self._conns.get(key)  # aiohttp's pool: (protocol, released at), oldest first
            if idle:
                idle.rotate(1)  # the newest first: aiohttp's _get takes from the left
            connection = await super()._get(key, traces)
            if connection is None:
                return None
            if not _readable(connection.transport):
                _reused.set(True)
                return connection
            connection.close()


# The request under way in this task: whether the connector handed it a kept-alive connection,
# and whether it must not (a resend). Context variables: the connector is called from the task
# that makes the request, several awaits down, and shared by every task of the loop.
_reused: ContextVar[bool] = ContextVar("stream_connection_reused", default=False)
_pool_refused: ContextVar[bool] = ContextVar("stream_pool_refused", default=False)


async def _resend_after_stale_connection(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Send ``request`` again, once, on a new connection, if it went out on a kept-alive one and
    the connection was closed or reset before a response came (a client middleware).

    The readable check (``_CheckedConnector``) leaves a window: aiohttp writes the body from a
    task of its own, a loop cycle after the connection was checked, and on a loop busy for
    seconds the server's idle limit can run out in between (1,000 streams: 8 answers lost in
    one run, docs/benchmarks.md). Such a request was not served: a server closing a connection
    it kept idle does not read what arrives after (one that read it and then died without a
    word is the rare exception). Browsers and OkHttp resend then, POSTs too (Chromium whenever
    a reused connection fails before the response headers); aiohttp only idempotent requests.
    A new connection that fails is not resent, nor a request whose response had begun
    (``handler`` returns once the headers are read).
    """
    reused = _reused.set(False)
    try:
        return await handler(request)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionResetError) as exc:
        if not _reused.get():
            raise
        logger.info("%s on a kept-alive connection: sent again on a new one", type(exc).__name__)
    finally:
        _reused.reset(reused)
    await request.close()  # the first attempt's body writer, if it is still running
    refused = _pool_refused.set(True)
    try:
        return await handler(request)
    finally:
        _pool_refused.reset(refused)


def _readable(transport: asyncio.BaseTransport | None) -> bool:
    """Whether the socket under ``transport`` has something to read (EOF included) now."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return True  # no socket to check: not reusable either
    poll = select.poll()  # not select(): a busy process has descriptors past its 1,024
    poll.register(sock.fileno(), select.POLLIN)
    return bool(poll.poll(0))


def stream_session() -> aiohttp.ClientSession:
    """The event loop's session for streamed completions (kept-alive connections)."""
    loop = asyncio.get_running_loop()
    session = _stream_sessions.get(loop)
    if session is None or session.closed:
        for gone in [other for other in _stream_sessions if other.is_closed()]:
            del _stream_sessions[gone]
        session = aiohttp.ClientSession(
            connector=_CheckedConnector(
                limit=STREAM_CONNECTIONS, keepalive_timeout=STREAM_KEEPALIVE
            ),
            timeout=aiohttp.ClientTimeout(total=None),
            middlewares=(_resend_after_stale_connection,),
            cookie_jar=aiohttp.DummyCookieJar(),  # see no_cookies()
            proxy=environment_proxy(settings.OPENROUTER_URL),
            # The request (the whole conversation) is encoded on the way to the first token:
            # orjson takes a tenth of json's time for a long history.
            json_serialize_bytes=orjson.dumps,
        )
        _stream_sessions[loop] = session
    return session


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``…), as httpx
    reads it. Looked up once per session: aiohttp's ``trust_env`` would look it up, and read
    ``~/.netrc``, in two executor threads on every request (~2 ms before each answer's request
    left, measured in docs/benchmarks.md)."""
    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


async def close_clients() -> None:
    """Close this event loop's pooled connections (at shutdown, so none is left dangling)."""
    loop = asyncio.get_running_loop()
    session = _stream_sessions.pop(loop, None)
    if session is not None:
        await session.close()
    client = _async_clients.pop(loop, None)
    if client is not None:
        await client.aclose()


T = TypeVar("T")


class _IdleLimit:
    """The stream's idle limit: a wait for the response (its headers, an error body) or for the
    next piece of its body that lasts over ``seconds`` raises ``TimeoutError`` in the task that
    waits.

    Kept here rather than by aiohttp's ``sock_read``, which cancels and makes a timer on every
    read from the socket and again as its buffer drains (~2 % of the web process's CPU at 100
    streams, docs/benchmarks.md): one timer per stream here wakes when the limit could have
    passed and, if a read started since, sleeps again for the rest.
    """

    __slots__ = ("expired", "loop", "seconds", "since", "task", "timer")

    def __init__(self, seconds: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[Any] | None = None  # the one waiting now
        self.seconds = seconds
        self.since: float | None = None  # when the wait under way began
        self.expired = False
        self.timer = self.loop.call_later(seconds, self._check)

    def _check(self) -> None:
        since = self.since
        left = self.seconds if since is None else since + self.seconds - self.loop.time()
        if left > 0:
            self.timer = self.loop.call_later(left, self._check)
        elif self.task is not None:
            self.expired = True
            self.task.cancel()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        self.task = asyncio.current_task()
        self.since = self.loop.time()
        try:
            return await awaitable
        except asyncio.CancelledError:
            # The limit's cancellation becomes a TimeoutError, unless the task was cancelled
            # for another reason too (a stop): that one goes on.
            if self.expired and self.task is not None and self.task.uncancel() == 0:
                raise TimeoutError("no data within the stream's idle limit") from None
            raise
        finally:
            self.since = None

    def close(self) -> None:
        self.timer.cancel()


ENDED = "ended without [DONE]"  # a body that just stopped: partial, never complete


async def stream_chat(api_key: str, payload: dict[str, Any]) -> AsyncIterator[StreamEvent]:
    """A streamed chat completion as typed events (see ``openrouter.streaming``).

    Never raises for upstream trouble: errors before the stream are a ``Failed`` event too, so a
    caller has one path. Stopping iteration early (``aclose()``, task cancellation) closes the
    connection, which tells OpenRouter to stop generating; only a connection whose body was read
    to its end goes back to the pool.
    """
    limit = _IdleLimit(settings.OPENROUTER_STREAM_IDLE_TIMEOUT)
    timeout = aiohttp.ClientTimeout(total=None, connect=settings.OPENROUTER_CONNECT_TIMEOUT)
    try:
        try:
            response = await limit.wait(
                stream_session().post(
                    api_url("chat/completions"),
                    headers={**headers(api_key), "Accept": "text/event-stream"},
                    json={**payload, "stream": True},
                    timeout=timeout,
                )
            )
        except TimeoutError as exc:
            yield Failed(OpenRouterError.timeout(type(exc).__name__))
            return
        except (aiohttp.ClientError, OSError) as exc:
            yield Failed(OpenRouterError.network(type(exc).__name__))
            return
        try:
            if response.status != 200:
                yield Failed(await _stream_error(response, limit, payload.get("model") or ""))
                return
            if response.content_type != "text/event-stream":
                yield Failed(OpenRouterError.bad_response("not an event stream"))
                return
            parser = StreamParser(response.headers.get("x-generation-id"))
            for event in parser.opening():
                yield event
            content = response.content
            while not parser.ended:  # an interruption ends it too
                try:
                    piece = await limit.wait(content.readany())
                except TimeoutError:
                    yield parser.interrupted("stalled")
                except (aiohttp.ClientError, OSError) as exc:
                    yield parser.interrupted(f"connection lost ({type(exc).__name__})")
                else:
                    events = parser.feed(piece) if piece else [parser.interrupted(ENDED)]
                    for event in events:
                        yield event
        finally:
            if response.content.is_eof():
                response.release()  # read to the end: the connection may serve the next stream
            else:
                response.close()  # half-read: never back to the pool; the upstream sees a hang-up
    finally:
        limit.close()


async def _stream_error(
    response: aiohttp.ClientResponse, limit: _IdleLimit, model: str
) -> OpenRouterError:
    try:
        body = await limit.wait(response.read())
    except TimeoutError as exc:
        return OpenRouterError.timeout(type(exc).__name__)
    except (aiohttp.ClientError, OSError) as exc:
        return OpenRouterError.network(type(exc).__name__)
    return error_from_body(
        response.status,
        body,
        retry_after=response.headers.get("retry-after"),
        reason=response.reason or "",
        model=model,
    )


# --- 3D objects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaOutput:
    """One generated object: a base64 ``uri`` (maybe a data URI), a hosted ``url``, or both."""

    uri: str | None = None
    url: str | None = None


# A 404: no 3D generation for this model (or at all); the same request would fail again.
NO_3D = (
    "OpenRouter makes no 3D objects with this model, so nothing could be made. Pick a model "
    "that makes 3D objects."
)


def generate_object(
    api_key: str,
    payload: dict[str, Any],
    *,
    max_bytes: int = 256 * 1024 * 1024,
    check: Callable[[], None] | None = None,
) -> list[MediaOutput]:
    """``POST /objects/generations``; may take minutes. A 404 means the upstream has no 3D.

    The upstream pads a long wait with whitespace keep-alives, which reset a read timeout, so
    the whole call is also bounded by ``OPENROUTER_GENERATION_TIMEOUT`` in total. ``check`` is
    called about every ``CHECK_EVERY`` seconds while the answer comes in; whatever it raises
    ends the call (closing the connection) and goes to the caller: that is how a cancelled
    generation lets go of a long wait.
    """
    limit = settings.OPENROUTER_GENERATION_TIMEOUT
    with (
        _translated(),
        sync_client().stream(
            "POST",
            api_url("objects/generations"),
            headers=headers(api_key),
            json=payload,
            timeout=timeouts(limit),
        ) as response,
    ):
        deadline = time.monotonic() + limit
        body = _read_bounded(
            response, max_bytes=max_bytes, deadline=deadline, whole_answer=True, check=check
        )
    if response.status_code == 404:
        raise OpenRouterError(404, NO_3D)
    data = _checked(response, body)
    outputs = data.get("generations") if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        raise chunk_error(data["error"])  # an error reported after the 200 keep-alives
    if not isinstance(outputs, list) or not outputs:
        raise OpenRouterError.bad_response("no generations in the response")
    return [
        MediaOutput(uri=item.get("uri") or None, url=item.get("url") or None)
        for item in outputs
        if isinstance(item, dict) and (item.get("uri") or item.get("url"))
    ]


def too_large(max_bytes: int, *, whole_answer: bool = False) -> OpenRouterError:
    """The refusal of an output (or of a whole answer) over its size limit, naming the limit."""
    limit = size_in_words(max_bytes)
    if whole_answer:
        message = (
            f"OpenRouter's answer was larger than {limit}, the most we accept at once. "
            "Ask for fewer objects."
        )
    else:
        message = (
            f"A generated object was larger than {limit}, the most we keep for one object. "
            "Describe a simpler object, or pick another model."
        )
    return OpenRouterError(413, message)


CHECK_EVERY = 1.0  # seconds between two calls of a caller's ``check`` while an answer comes in


def _read_bounded(
    response: httpx.Response,
    *,
    max_bytes: int,
    deadline: float,
    whole_answer: bool = False,
    check: Callable[[], None] | None = None,
) -> bytes:
    chunks, size = [], 0
    checked = time.monotonic()
    for chunk in response.iter_bytes():
        if check is not None and time.monotonic() - checked >= CHECK_EVERY:
            check()
            checked = time.monotonic()
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes, whole_answer=whole_answer)
        if time.monotonic() > deadline:
            raise OpenRouterError.timeout("total deadline passed")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_uri(uri: str) -> bytes:
    """The bytes of a ``uri``: bare base64 or a ``data:…;base64,`` URI, whitespace tolerated."""
    body = uri.strip()
    if body.startswith("data:"):
        header, _, body = body.partition(",")
        if ";base64" not in header:
            raise OpenRouterError.bad_response("a data URI that is not base64")
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OpenRouterError.bad_response("an output that is not valid base64") from exc


# Refusals of an output's download link: the generation fails with one of these sentences (a 400:
# the same model would send such a link again).
NOT_HTTPS = (
    "The object's download link was not secure (not https), so we did not fetch it. "
    "Pick another model."
)
PRIVATE_ADDRESS = (
    "The object's download link pointed to a private address, which we never fetch. "
    "Pick another model."
)
NOT_WEB = (
    "The object's download link was not a web address (not http or https), so we did not "
    "fetch it. Pick another model."
)
TOO_MANY_REDIRECTS = (
    "The object's download link sent us on through too many other addresses, so we gave up "
    "fetching it. Pick another model."
)


def _public_ip(host: str) -> str | None:
    """The address to connect to for ``host``, if every address it resolves to is public."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return None
    addresses = [info[4][0] for info in infos]
    if not addresses or not all(ipaddress.ip_address(a).is_global for a in addresses):
        return None
    return str(addresses[0])


def _pinned(url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``url`` rewritten to the address that was checked, so that a second DNS answer (DNS
    rebinding) cannot send the connection elsewhere; the name stays in ``Host`` and in TLS
    (SNI and certificate check)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise OpenRouterError(400, NOT_HTTPS)
    host = parts.hostname or ""
    ip = _public_ip(host)
    if ip is None:
        raise OpenRouterError(400, PRIVATE_ADDRESS)
    literal = f"[{ip}]" if ":" in ip else ip
    port = f":{parts.port}" if parts.port else ""
    pinned = parts._replace(netloc=f"{literal}{port}").geturl()
    return pinned, {"Host": f"{host}{port}"}, {"sni_hostname": host}


def download(url: str, *, max_bytes: int, allow_private: bool = False) -> bytes:
    """Fetch a hosted output: size-capped, time-limited; outside development https to public
    addresses only, redirects included (each hop is checked and pinned to its address)."""
    for _hop in range(5):
        if allow_private:
            if urlsplit(url).scheme not in {"http", "https"}:
                raise OpenRouterError(400, NOT_WEB)
            target, extra, extensions = url, dict[str, str](), dict[str, Any]()
        else:
            target, extra, extensions = _pinned(url)
        with (
            _translated(),
            sync_client().stream(
                "GET",
                target,
                headers={"User-Agent": USER_AGENT, **extra},
                timeout=timeouts(60.0),
                extensions=extensions,
            ) as response,
        ):
            if response.is_redirect and "location" in response.headers:
                url = str(httpx.URL(url).join(response.headers["location"]))
                continue
            if response.status_code != 200:
                raise error_from(response, response.read())
            if int(response.headers.get("content-length") or 0) > max_bytes:
                raise too_large(max_bytes)
            return _read_bounded(response, max_bytes=max_bytes, deadline=time.monotonic() + 60)
    raise OpenRouterError(400, TOO_MANY_REDIRECTS)


def fetch_output(output: MediaOutput, *, max_bytes: int, allow_private: bool = False) -> bytes:
    """The bytes of one output, from its ``uri`` when present, else from its ``url``."""
    if output.uri:
        if len(output.uri) > max_bytes * 4 // 3 + 1024:
            raise too_large(max_bytes)
        return decode_uri(output.uri)
    assert output.url
    return download(output.url, max_bytes=max_bytes, allow_private=allow_private)
