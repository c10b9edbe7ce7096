"""What happens to a user's OpenRouter key: stored encrypted, used, revoked.

``api_key_for`` (and ``api_key_from``, for the chat send's cached copy of its ciphertext) are the
only functions that return a plain key, and only to code that is about to send it to OpenRouter.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from asgiref.sync import sync_to_async
from cryptography.fernet import InvalidToken
from django.core.cache import cache
from django.db import connections, router, transaction
from django.views.decorators.debug import sensitive_variables

from accounts import crypto, key_cache
from accounts.models import OpenRouterKey, User
from openrouter import client
from openrouter.errors import OpenRouterError


class NotConnected(Exception):
    """The user has no OpenRouter key stored."""

    message = "Connect your OpenRouter account first."


def key_hint(plain: str) -> str:
    """``sk-or-v1-…9f3a``: enough to recognise a key, far too little to use it."""
    prefix = "sk-or-v1-" if plain.startswith("sk-or-v1-") else plain[:3]
    return f"{prefix}…{plain[-4:]}"


@sensitive_variables("plain_key")
def api_key_store(
    *, user: User, plain_key: str, source: str, label: str = "", openrouter_user_id: str = ""
) -> OpenRouterKey:
    """Store (or replace) the user's key, encrypted."""
    with transaction.atomic():
        record, _ = OpenRouterKey.objects.update_or_create(
            user=user,
            defaults={
                "encrypted_key": crypto.encrypt(plain_key),
                "hint": key_hint(plain_key),
                "key_hash": hashlib.sha256(plain_key.encode()).hexdigest(),
                "label": label,
                "source": source,
                "openrouter_user_id": openrouter_user_id or "",
            },
        )
    credits_forget(user=user)
    return record


def api_key_delete(*, user: User) -> bool:
    deleted, _ = OpenRouterKey.objects.filter(user=user).delete()
    key_cache.forget(user.pk)  # also when there was nothing left to delete (see key_cache)
    credits_forget(user=user)
    return deleted > 0


@sensitive_variables()
def api_key_for(*, user: User | int, remember: bool = False) -> str:
    """The user's plain key, for a request to OpenRouter. Raises ``NotConnected``.

    One indexed lookup in plain SQL: it runs before a chat answer's request leaves when the key
    is not in the cache, and building the same query with the ORM costs seven times the lookup
    itself (280 against 40 µs, docs/benchmarks.md). ``remember``: fill the cache's entry for
    the next send (``accounts.key_cache``)."""
    user_id = user if isinstance(user, int) else user.pk
    token = _stored_token(user_id)
    if token is None:
        raise NotConnected
    if remember:
        key_cache.remember(user_id, token)
    return crypto.decrypt(token)


def _stored_token(user_id: int) -> bytes | None:
    alias = router.db_for_read(OpenRouterKey)
    with connections[alias].cursor() as cursor:
        cursor.execute(_key_query(alias), [user_id])
        row = cursor.fetchone()
    return None if row is None else bytes(row[0])


@sensitive_variables()
def api_key_from(cached: bytes) -> str | None:
    """The user's plain key from their entry in ``accounts.key_cache`` (an entry there, not a
    miss). Raises ``NotConnected`` for the entry of a user without a key; ``None`` for an entry
    that no longer decrypts (made under an encryption key since dropped): read the database."""
    if cached == key_cache.TOMBSTONE:
        raise NotConnected
    try:
        return crypto.decrypt(cached)
    except InvalidToken:
        return None


class KeyChanged(Exception):
    """The key a request went out with had just been replaced."""

    message = "Your OpenRouter connection changed just now. Send your message again."


def api_key_confirm(*, user: User, used: bytes) -> None:
    """Check, in a send's database call, that the cached ciphertext its request went out with
    (``used``) is still the user's key: if not, correct the cache (``accounts.key_cache``) and
    raise ``NotConnected`` (there is no key any more) or ``KeyChanged``."""
    stored = _stored_token(user.pk)
    if stored == used:
        return
    key_cache.correct(user.pk, stored)
    if stored is None:
        raise NotConnected
    raise KeyChanged


@functools.cache
def _key_query(alias: str) -> str:
    # Table and column names from the model's own metadata; the user id is a query parameter.
    quote, meta = connections[alias].ops.quote_name, OpenRouterKey._meta
    names = [meta.db_table, meta.get_field("encrypted_key").column, meta.get_field("user").column]
    table, key, user = (quote(str(name)) for name in names)
    return f"SELECT {key} FROM {table} WHERE {user} = %s"  # noqa: S608


aapi_key_for = sync_to_async(api_key_for)


def api_key_rotate_all() -> int:
    """Re-encrypt every stored key under the first FIELD_ENCRYPTION_KEYS key."""
    count = 0
    for record in OpenRouterKey.objects.only("pk", "user_id", "encrypted_key").iterator():
        record.encrypted_key = crypto.rotate(record.encrypted_key)
        record.save(update_fields=["encrypted_key"])  # and in the cache (accounts.key_cache)
        count += 1
    return count


class KeyRejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@sensitive_variables("plain_key")
def api_key_paste(*, user: User, plain_key: str) -> OpenRouterKey:
    """Store a key the user pasted, after OpenRouter confirmed it works (``/key``)."""
    plain_key = plain_key.strip()
    if not plain_key.startswith("sk-or-") or not 20 <= len(plain_key) <= 200 or " " in plain_key:
        raise KeyRejected(
            "That does not look like an OpenRouter key: they start with sk-or- and run to "
            "dozens of characters, with no spaces. Copy the whole key."
        )
    try:
        info = client.key_info(plain_key)
    except OpenRouterError as exc:
        if exc.status in {401, 403}:
            raise KeyRejected(
                "OpenRouter did not accept this key. Check it and try again."
            ) from exc
        raise KeyRejected(f"Could not check the key: {exc.message}") from exc
    record = api_key_store(
        user=user,
        plain_key=plain_key,
        source=OpenRouterKey.Source.PASTED,
        label=str(info.get("label") or ""),
    )
    cache.set(_credits_cache_key(user.pk), info, CREDITS_CACHE_SECONDS)
    return record


CREDITS_CACHE_SECONDS = 60


def _credits_cache_key(user_id: int) -> str:
    return f"openrouter:credits:{user_id}"


def credits_cached(*, user: User) -> dict[str, Any] | None:
    """The last ``/key`` figures for this user, if fetched within the last minute."""
    return cache.get(_credits_cache_key(user.pk))


def credits_fetch(*, user: User) -> dict[str, Any]:
    """``/key`` figures (label, limit, limit_remaining, usage_*), cached briefly per user.

    A short read timeout: the account page asks for these in the background and must never
    wait long on a slow OpenRouter. The cache holds the figures only, never the key.
    """
    info = credits_cached(user=user)
    if info is None:
        info = client.key_info(api_key_for(user=user), read_timeout=5.0)
        cache.set(_credits_cache_key(user.pk), info, CREDITS_CACHE_SECONDS)
    return info


def credits_forget(*, user: User) -> None:
    cache.delete(_credits_cache_key(user.pk))
