"""This process's one cache backend for work done on Redis directly (``shared_cache``).

``caches["default"]`` is one backend instance per thread *and per async context*: used from the
database calls of each websocket it made a Redis connection pool, and so kept a connection, per
open socket (1,034 Redis connections at 1,000 chat sockets, docs/benchmarks.md). The send
counters (``chat.services``) and the key cache (``accounts.key_cache``) share this one instead.
Thread-safe: a redis-py pool.
"""

from __future__ import annotations

import functools
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.signals import setting_changed
from django.dispatch import receiver


@functools.cache
def shared_cache() -> BaseCache:
    return caches.create_connection("default")


@receiver(setting_changed)
def _new_backend_for_new_caches(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":  # tests that point the cache at another Redis
        shared_cache.cache_clear()
