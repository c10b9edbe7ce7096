import pytest
from django.test import Client, override_settings

from tests import services


@pytest.mark.django_db
def test_healthz_is_green_when_every_service_answers(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": "ok", "redis": "ok", "channel_layer": "ok"}


@pytest.mark.django_db
def test_healthz_is_red_when_redis_is_stopped(client: Client) -> None:
    redis, url = services.start_redis()
    layers = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}
    }
    cache = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}
    with override_settings(CACHES=cache, CHANNEL_LAYERS=layers):
        from channels.layers import channel_layers

        channel_layers.backends.clear()
        try:
            assert client.get("/healthz").status_code == 200
            redis.stop()
            response = client.get("/healthz")
            assert response.status_code == 503
            body = response.json()
            assert body["ok"] is False
            assert body["database"] == "ok"
            assert body["redis"].startswith("error")
            assert body["channel_layer"].startswith("error")
        finally:
            channel_layers.backends.clear()
            redis.stop()
