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

A write that fails raises, after the commit, to whoever made the change (a disconnect shows an
error, and trying again writes the tombstone: ``accounts.services.api_key_delete`` writes one
even when there was no key left to delete). An entry lives ``KEEP_FOR`` from its last write,
which bounds how long any entry could outlive a failed write; a missing one costs one database
read. With a cache other than Redis nothing is cached: every send reads the database.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import OpenRouterKey
from config.cache import shared_cache

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
    tombstone or a newer key)."""
    _write(user_id, token, only_if_missing=True)


def forget(user_id: int) -> None:
    """The user has no key: a tombstone, once the current transaction commits."""
    transaction.on_commit(lambda: _write(user_id, TOMBSTONE))


def _write(user_id: int, token: bytes, *, only_if_missing: bool = False) -> None:
    key = name(user_id)
    if key is not None:
        client = shared_cache()._cache.get_client(write=True)  # type: ignore[attr-defined]
        client.set(key, token, ex=KEEP_FOR, nx=only_if_missing)


@receiver(post_save, sender=OpenRouterKey)
def _saved(instance: OpenRouterKey, **kwargs: Any) -> None:
    token = bytes(instance.encrypted_key)
    transaction.on_commit(lambda: _write(instance.user_id, token))


@receiver(post_delete, sender=OpenRouterKey)
def _deleted(instance: OpenRouterKey, **kwargs: Any) -> None:
    forget(instance.user_id)
