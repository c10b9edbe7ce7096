"""Starts the suite's real services before Django reads its settings, and stops them at the end.

Loaded with ``-p tests.plugin`` (pytest.ini) so that it runs before pytest-django configures
Django: settings come from the environment, and the environment is set here.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

from tests import services

_started: list[services.Service] = []
_dirs: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    var = Path(tempfile.mkdtemp(prefix="switchboard-test-"))
    _dirs.append(var)
    atexit.register(_stop_all)  # also when start-up itself fails half-way
    redis, redis_url = services.start_redis()
    _started.append(redis)
    postgres, database_url, pg_dir = services.start_postgres()
    _started.append(postgres)
    _dirs.append(pg_dir)
    sandbox, sandbox_url = services.start_sandbox()
    _started.append(sandbox)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        VAR_DIR=str(var),
        MEDIA_ROOT=str(var / "media"),
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        OPENROUTER_URL=sandbox_url,
        SECRET_KEY="test-secret-key-not-for-production-0123456789abcdefghijklmnop",
        FIELD_ENCRYPTION_KEYS="0F1TQ5Fhq0nA0d3H4jcK7mRV3JYmS9AuS9cKc4xN-4U=",
        GENERATION_TIME_LIMIT="30",
        CELERY_VISIBILITY_TIMEOUT="40",
        OPENROUTER_STREAM_IDLE_TIMEOUT="3",
        CHAT_SILENCE_HINT="1",  # said before the idle limit ends a stalled answer
        CHAT_STOP_GRACE="0.5",  # a stop made for a writer that went away
        LOG_LEVEL="INFO",
    )
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    _stop_all()


def _stop_all() -> None:
    while _started:
        _started.pop().stop()
    for path in _dirs:
        shutil.rmtree(path, ignore_errors=True)
