"""The cache in the web process as ``make run`` starts it: Django makes a cache backend per async
context, so one per request under ASGI; they must share the process's Redis connections, not
open one each (``config.cache.RedisCache``)."""

from __future__ import annotations

import httpx
import pytest
import redis

from tests import services

pytestmark = pytest.mark.django_db


def test_requests_that_use_the_cache_share_the_web_process_redis_connections() -> None:
    server, url = services.start_redis()
    web, base = services.start_web({**services.test_database_env(), "REDIS_URL": url})
    try:
        stats = redis.Redis.from_url(url)
        with httpx.Client(base_url=base) as client:
            assert client.get("/healthz").status_code == 200  # it writes and reads the cache
            before = int(stats.info("stats")["total_connections_received"])
            for _ in range(20):
                assert client.get("/healthz").status_code == 200
        opened = int(stats.info("stats")["total_connections_received"]) - before
        assert opened <= 2, f"{opened} Redis connections for 20 requests"  # was one each
    finally:
        web.stop()
        server.stop()
