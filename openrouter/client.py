"""The one place that speaks to OpenRouter.

One pooled ``httpx.Client`` per process (Celery workers, Django views) and one
``httpx.AsyncClient`` per event loop (Channels), made on first use, never one per request. Every
request carries the attribution headers; a user's key goes only into ``Authorization``. Every
failure comes out as ``OpenRouterError``; callers never see httpx exceptions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import json
import os
import socket
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from django.conf import settings

from openrouter.errors import OpenRouterError
from openrouter.streaming import Failed, StreamEvent, chunk_error, parse_stream

USER_AGENT = "Switchboard/0.1 (+https://github.com/switchboard)"


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
            _sync_client = (os.getpid(), httpx.Client(timeout=timeouts(), limits=LIMITS))
        return _sync_client[1]


def async_client() -> httpx.AsyncClient:
    """The event loop's client (an AsyncClient's pool belongs to the loop that made it)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(timeout=timeouts(), limits=LIMITS)
        _async_clients[loop] = client
    return client


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _json(body: bytes) -> Any:
    # Long-running upstreams pad their body with whitespace keep-alives; json.loads skips them.
    try:
        return json.loads(body)
    except ValueError as exc:
        raise OpenRouterError.bad_response(f"not JSON: {body[:200]!r}") from exc


def error_from(response: httpx.Response, body: bytes | None = None) -> OpenRouterError:
    """The error an unsuccessful response stands for, from its status and its JSON body."""
    detail = ""
    metadata: dict[str, Any] = {}
    try:
        parsed = json.loads(response.content if body is None else body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            detail = chunk_error(parsed["error"]).detail
            metadata = parsed["error"].get("metadata") or {}
    except ValueError:
        detail = response.reason_phrase
    return OpenRouterError.from_status(
        response.status_code, detail, retry_after=_retry_after(response), metadata=metadata
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
    return dict(data.get("data") or {})


def list_models() -> list[dict[str, Any]]:
    return list(request("GET", "models").get("data") or [])


def complete(api_key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed chat completion; returns OpenRouter's response body."""
    return dict(
        request("POST", "chat/completions", api_key=api_key, json={**payload, "stream": False})
    )


def generation_stats(api_key: str, generation_id: str) -> dict[str, Any]:
    return dict(request("GET", "generation", api_key=api_key, params={"id": generation_id})["data"])


async def stream_chat(api_key: str, payload: dict[str, Any]) -> AsyncIterator[StreamEvent]:
    """A streamed chat completion as typed events (see ``openrouter.streaming``).

    Never raises for upstream trouble: errors before the stream are a ``Failed`` event too, so a
    caller has one path. Stopping iteration early (``aclose()``, task cancellation) closes the
    connection, which tells OpenRouter to stop generating.
    """
    stream_timeout = timeouts(settings.OPENROUTER_STREAM_IDLE_TIMEOUT)
    try:
        async with async_client().stream(
            "POST",
            api_url("chat/completions"),
            headers={**headers(api_key), "Accept": "text/event-stream"},
            json={**payload, "stream": True},
            timeout=stream_timeout,
        ) as response:
            if response.status_code != 200:
                await response.aread()
                yield Failed(error_from(response))
                return
            async for event in parse_stream(response):
                yield event
    except httpx.TimeoutException as exc:
        yield Failed(OpenRouterError.timeout(type(exc).__name__))
    except httpx.HTTPError as exc:
        yield Failed(OpenRouterError.network(type(exc).__name__))


# --- 3D objects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaOutput:
    """One generated object: a base64 ``uri`` (maybe a data URI), a hosted ``url``, or both."""

    uri: str | None = None
    url: str | None = None


def generate_object(
    api_key: str, payload: dict[str, Any], *, max_bytes: int = 256 * 1024 * 1024
) -> list[MediaOutput]:
    """``POST /objects/generations``; may take minutes. A 404 means the upstream has no 3D.

    The upstream pads a long wait with whitespace keep-alives, which reset a read timeout, so
    the whole call is also bounded by ``OPENROUTER_GENERATION_TIMEOUT`` in total.
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
        body = _read_bounded(response, max_bytes=max_bytes, deadline=time.monotonic() + limit)
    if response.status_code == 404:
        raise OpenRouterError(
            404, "The configured OpenRouter upstream does not offer 3D generation."
        )
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


TOO_LARGE = "A generated file was larger than the allowed size."


def _read_bounded(response: httpx.Response, *, max_bytes: int, deadline: float) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise OpenRouterError(413, TOO_LARGE)
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


def _public_address(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_global for info in infos)


def download(url: str, *, max_bytes: int, allow_private: bool = False) -> bytes:
    """Fetch a hosted output: size-capped, time-limited; outside development https to public
    addresses only, redirects included (each hop is checked)."""
    for _hop in range(5):
        parts = urlsplit(url)
        if not allow_private:
            if parts.scheme != "https":
                raise OpenRouterError(400, "Refused to download an output that is not https.")
            if not parts.hostname or not _public_address(parts.hostname):
                raise OpenRouterError(400, "Refused to download an output from a private address.")
        elif parts.scheme not in {"http", "https"}:
            raise OpenRouterError(400, "Refused to download an output that is not http(s).")
        with (
            _translated(),
            sync_client().stream(
                "GET", url, headers={"User-Agent": USER_AGENT}, timeout=timeouts(60.0)
            ) as response,
        ):
            if response.is_redirect and "location" in response.headers:
                url = str(response.url.join(response.headers["location"]))
                continue
            if response.status_code != 200:
                raise error_from(response, response.read())
            if int(response.headers.get("content-length") or 0) > max_bytes:
                raise OpenRouterError(413, TOO_LARGE)
            return _read_bounded(response, max_bytes=max_bytes, deadline=time.monotonic() + 60)
    raise OpenRouterError(400, "Too many redirects while downloading an output.")


def fetch_output(output: MediaOutput, *, max_bytes: int, allow_private: bool = False) -> bytes:
    """The bytes of one output, from its ``uri`` when present, else from its ``url``."""
    if output.uri:
        if len(output.uri) > max_bytes * 4 // 3 + 1024:
            raise OpenRouterError(413, TOO_LARGE)
        return decode_uri(output.uri)
    assert output.url
    return download(output.url, max_bytes=max_bytes, allow_private=allow_private)
