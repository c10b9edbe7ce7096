from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis
from django.test import Client

from accounts.models import User
from config.async_db import close_kept_connections
from config.consumers import consumers_unwound
from openrouter import client as openrouter_client
from tests.factories import connect_user, make_user


@pytest.fixture
def sandbox_url() -> str:
    return os.environ["OPENROUTER_URL"]


@pytest.fixture
def ratelimit_clock_still(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-ratelimit counts in fixed windows (``rate="10/m"``: per minute, at an offset per
    key): a test's burst that crossed a window's end would start a fresh count and not be
    refused. Its clock stands still instead (only django-ratelimit's)."""
    import time
    from types import SimpleNamespace

    import django_ratelimit.core

    now = time.time()
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: now))


@pytest.fixture
def user(db: None) -> User:
    return make_user()


@pytest.fixture
def other_user(db: None) -> User:
    return make_user()


@pytest.fixture
def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def connected_user(user: User) -> User:
    """A user who connected OpenRouter (the sandbox) through the real PKCE flow."""
    return connect_user(user)


@pytest.fixture
def connected_client(client: Client, connected_user: User) -> Client:
    client.force_login(connected_user)
    return client


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Every test starts with no rate-limit counts (all tests share one client IP)."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match="*rl:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _let_ended_consumers_unwind() -> AsyncIterator[None]:
    """Ended sockets' channel-layer tasks finish cancelling before the loop closes."""
    yield
    await consumers_unwound(seconds=6)


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _close_upstream_clients() -> AsyncIterator[None]:
    """The session loop's pooled upstream connections are closed when the run ends."""
    yield
    await openrouter_client.close_clients()


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _close_kept_database_connections(django_db_setup: None) -> AsyncIterator[None]:
    """Consumers and relays keep their thread's connection (``config.async_db``): it is closed
    before the test database is dropped (this fixture comes after ``django_db_setup``, so it is
    torn down before it)."""
    yield
    await close_kept_connections()
