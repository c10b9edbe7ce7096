"""The OpenRouter connect flow (OAuth PKCE, S256), server-side.

``connect_start`` keeps a fresh verifier in the session under a random ``state`` and returns the
authorize URL; ``connect_complete`` checks the state (constant-time, single use, 10 minutes),
exchanges the code and stores the key. The verifier never leaves the server.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.views.decorators.debug import sensitive_variables

from accounts.models import OpenRouterKey, User
from accounts.services import api_key_store
from openrouter import client
from openrouter.errors import OpenRouterError
from openrouter.pkce import make_verifier, s256_challenge

SESSION_KEY = "openrouter_connect"
STATE_LIFETIME = 600  # seconds, as long as OpenRouter's codes live
MAX_PENDING = 5  # a few tabs may start a flow at once; older ones are dropped


class ConnectError(Exception):
    """The flow ended without a key; ``message`` says why, for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Pending:
    verifier: str
    next_url: str


def key_label(user: User) -> str:
    return f"{settings.SITE_NAME} — {user.email}"


def connect_start(*, session: SessionBase, user: User, callback_url: str, next_url: str) -> str:
    """Remember a new flow in the session; return the URL of OpenRouter's consent page."""
    state = secrets.token_urlsafe(32)
    verifier = make_verifier()
    pending: dict[str, Any] = dict(session.get(SESSION_KEY) or {})
    pending[state] = {"verifier": verifier, "created": time.time(), "next": next_url}
    newest = sorted(pending.items(), key=lambda item: item[1]["created"])[-MAX_PENDING:]
    session[SESSION_KEY] = dict(newest)
    callback = f"{callback_url}?{urlencode({'state': state})}"
    return client.authorize_url(callback, s256_challenge(verifier), key_label=key_label(user))


def connect_take_state(*, session: SessionBase, state: str) -> Pending:
    """The flow this ``state`` belongs to, removed from the session so it cannot be replayed."""
    pending: dict[str, Any] = dict(session.get(SESSION_KEY) or {})
    match = None
    for candidate in list(pending):
        # compare_digest on every entry: no timing hint about which states exist
        if hmac.compare_digest(candidate.encode(), state.encode()):
            match = candidate
    if not state or match is None:
        raise ConnectError(
            "That connection link is not valid here (it was already used, or started in "
            "another browser). Please connect again."
        )
    entry = pending.pop(match)
    session[SESSION_KEY] = pending
    if time.time() - entry["created"] > STATE_LIFETIME:
        raise ConnectError("The connection took longer than 10 minutes. Please connect again.")
    return Pending(verifier=entry["verifier"], next_url=entry["next"])


@sensitive_variables("issued")
def connect_complete(*, user: User, pending: Pending, code: str) -> OpenRouterKey:
    """Exchange the code for a key and store it (replacing any earlier key)."""
    try:
        issued = client.exchange_code(code, pending.verifier, "S256")
    except OpenRouterError as exc:
        if exc.status in {400, 403}:
            raise ConnectError(
                "OpenRouter did not accept the authorization (it expired or was already "
                "used). Please connect again."
            ) from exc
        raise ConnectError(f"Could not finish connecting: {exc.message}") from exc
    return api_key_store(
        user=user,
        plain_key=issued.key,
        source=OpenRouterKey.Source.OAUTH,
        label=key_label(user),
        openrouter_user_id=issued.user_id or "",
    )
