"""``GET /healthz``: does every service the product needs answer?"""

import asyncio
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis() -> None:
    key = f"healthz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("Redis did not return what was written")
    cache.delete(key)


async def _roundtrip() -> None:
    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "healthz"})
    await asyncio.wait_for(layer.receive(channel), timeout=2)


def _channel_layer() -> None:
    async_to_sync(_roundtrip)()


CHECKS = {"database": _database, "redis": _redis, "channel_layer": _channel_layer}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not healthy"; say which and why
            results[name] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in results.values())
    return JsonResponse({"ok": healthy, **results}, status=200 if healthy else 503)
