"""Who is at the other end of a websocket: the user of the session cookie, read once.

Channels' ``AuthMiddlewareStack`` does the same, and also wraps ``send`` so that it can save the
session along with an HTTP response. A websocket never saves its session, yet that wrapper ran
on every frame sent: two lazy-object lookups per chat delta, about a tenth of the relay's CPU
per chunk (docs/benchmarks.md). Here the frames go straight to the server's ``send``.

The session is read in a database thread of its own: in the one every consumer shares, opening
a socket waited behind all the chat sends queued there, and under load (1,000 streams on one
process) sockets took more than ten seconds to open.

Only the user stays in the scope: a socket never saves its session, and its scope lives as long
as the socket (the session, its cookies and a second copy of the scope were ~2 KiB per open
socket; docs/benchmarks.md).
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie

from config.async_db import database_sync_to_async


class SessionAuthMiddleware:
    """Sets ``scope["user"]`` (``AnonymousUser`` without a valid session) at connect; ``send``
    is passed on untouched."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        # Nothing but the user is kept: this frame lives as long as the socket.
        user = await database_sync_to_async(user_of, thread="sessions")(scope.get("headers", []))
        return await self.inner({**scope, "user": user}, receive, send)


def user_of(headers: list[tuple[bytes, bytes]]) -> AbstractBaseUser | AnonymousUser:
    """The user of the session cookie among ``headers``, as Django's ``auth.get_user`` finds
    it for a request (backend, session hash); ``AnonymousUser`` when there is none."""
    cookies = parse_cookie(
        "; ".join(value.decode("latin-1") for name, value in headers if name.lower() == b"cookie")
    )
    session = import_module(settings.SESSION_ENGINE).SessionStore(
        cookies.get(settings.SESSION_COOKIE_NAME)
    )
    return auth.get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
