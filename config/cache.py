"""The cache backend (``RedisCache``, the one ``CACHES`` names) and this process's one instance of
it for work done on Redis directly (``shared_cache``).

``caches["default"]`` is one backend instance per thread *and per async context*: under ASGI, one
per request and one per websocket. Django's ``RedisCache`` gives each instance a connection pool
of its own, so every request that touched the cache opened a TCP connection to Redis (and every
chat socket would keep one: 1,034 Redis connections at 1,000 sockets, docs/benchmarks.md). Django's
fix is not released (django/django#18459); ``RedisCache`` below keeps one client, so one pool,
per process for each configuration.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends import redis
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import cached_property

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class RedisCache(redis.RedisCache):
    """Django's Redis cache, its instances sharing one client (one connection pool) per process
    and configuration. redis-py's pool is thread-safe and starts afresh in a forked child."""

    @cached_property
    def _cache(self) -> Any:
        make, servers, options = self._class, self._servers, self._options  # type: ignore[attr-defined]
        key = repr((make, servers, sorted(options.items())))
        with _clients_lock:
            if key not in _clients:
                _clients[key] = make(servers, **options)
            return _clients[key]


@functools.cache
def shared_cache() -> BaseCache:
    """This process's one backend instance: code on a hot path (a chat send's counters,
    ``accounts.key_cache``) skips finding the context's own in ``caches``."""
    return caches.create_connection("default")


@receiver(setting_changed)
def _new_backend_for_new_caches(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":  # tests that point the cache at another Redis
        shared_cache.cache_clear()
