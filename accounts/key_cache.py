"""The ciphertext of each user's OpenRouter key, kept in Redis for the chat send.

A chat send needs the user's key before its request can leave. Read from the database, that is a
hop to the database thread and back before the request, about 0.6 ms of the time a send adds to
the first token (docs/benchmarks.md); read from Redis, it comes with the send's counters in the
one round trip a send makes anyway (``chat.services.send_quota_start``), and a new
conversation's request leaves without waiting for the database at all.

Only the ciphertext is cached, the Fernet token the database holds; ``accounts.services.
api_key_from`` decrypts it just before use. The cache follows the table, once each change is
committed:

* a key saved (connected, pasted, rotated) is written over;
* a key deleted (disconnected, revoked by staff, its user deleted) becomes a tombstone, ``b""``:
  a send is refused at once, and a send that read the key from the database just before it was
  deleted cannot put it back, since readers fill the cache only where it holds nothing
  (``remember``: ``SET NX``) and a tombstone is something.

The cache is never the last word: a send that used an entry checks it against the table in its
database call, after its request left (``accounts.services.api_key_confirm``); should they
differ (a cache write that failed, two changes whose writes crossed), the request is cancelled,
the send refused and the entry corrected. So an entry that is wrong costs at most one request
that is cancelled as it starts, the same as a send racing a disconnect without any cache. An
entry lives ``KEEP_FOR`` from its last write; a missing one costs one database read. With a
cache other than Redis nothing is cached: every send reads the database.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache.backends.redis import RedisCache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from redis.exceptions import RedisError

from accounts.models import OpenRouterKey
from config.cache import shared_cache

logger = logging.getLogger(__name__)

KEEP_FOR = 3600  # seconds
TOMBSTONE = b""


def name(user_id: int) -> str | None:
    """The Redis key of a user's entry; ``None`` when the cache is not Redis."""
    backend = shared_cache()
    if not isinstance(backend, RedisCache):
        return None
    return backend.make_and_validate_key(f"openrouter-key:{user_id}")


def remember(user_id: int, token: bytes) -> None:
    """Fill a missing entry with the ciphertext just read from the database (never over a
    tombstone or a newer key). Best effort: a send goes on without it."""
    _write(user_id, token, only_if_missing=True)


def correct(user_id: int, token: bytes | None) -> None:
    """Write what the database holds (``None``: no key) over an entry found wrong."""
    _write(user_id, TOMBSTONE if token is None else token)


def forget(user_id: int, using: str | None = None) -> None:
    """The user has no key: a tombstone, once the current transaction commits."""
    transaction.on_commit(lambda: _write(user_id, TOMBSTONE), using=using, robust=True)


def _write(user_id: int, token: bytes, *, only_if_missing: bool = False) -> None:
    key = name(user_id)
    if key is None:
        return
    try:
        client = shared_cache()._cache.get_client(write=True)  # type: ignore[attr-defined]
        client.set(key, token, ex=KEEP_FOR, nx=only_if_missing)
    except RedisError:
        # Sends check what they used (see above): a failed write costs time, not correctness.
        logger.warning("could not write the cached key of user %s", user_id, exc_info=True)


@receiver(post_save, sender=OpenRouterKey)
def _saved(instance: OpenRouterKey, using: str, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and "encrypted_key" not in update_fields:
        return  # a label or a hint: the key is the same
    user_id, token = instance.user_id, bytes(instance.encrypted_key)
    transaction.on_commit(lambda: _write(user_id, token), using=using, robust=True)


@receiver(post_delete, sender=OpenRouterKey)
def _deleted(instance: OpenRouterKey, using: str, **kwargs: Any) -> None:
    forget(instance.user_id, using=using)
