"""Who is at the other end of a websocket: the user of the session cookie, read once.

Channels' ``AuthMiddlewareStack`` does the same, and also wraps ``send`` so that it can save the
session along with an HTTP response. A websocket never saves its session, yet that wrapper ran
on every frame sent: two lazy-object lookups per chat delta, about a tenth of the relay's CPU
per chunk (docs/benchmarks.md). Here the frames go straight to the server's ``send``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import get_user
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.http.cookie import parse_cookie


class SessionAuthMiddleware(BaseMiddleware):
    """Sets ``scope["cookies"]``, ``scope["session"]`` and ``scope["user"]`` (``AnonymousUser``
    without a valid session) at connect; ``send`` is passed on untouched."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        header = "; ".join(
            value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name.lower() == b"cookie"
        )
        cookies = parse_cookie(header)
        store = import_module(settings.SESSION_ENGINE).SessionStore
        scope = {**scope, "cookies": cookies}
        scope["session"] = store(cookies.get(settings.SESSION_COOKIE_NAME))
        scope["user"] = await get_user(scope)
        return await super().__call__(scope, receive, send)
