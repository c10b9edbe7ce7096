"""Fixtures for generations: stored generations made directly, and a real Celery worker."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.files.base import ContentFile

from accounts.models import User
from generations.models import PLY_TYPE, Generation, GenerationOutput
from tests import services

PLY = b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n"


def make_generation(
    user: User,
    *,
    state: str = Generation.State.SUCCEEDED,
    outputs: int = 1,
    data: bytes = PLY,
    content_type: str = PLY_TYPE,
    **fields: Any,
) -> Generation:
    """A generation with its output files already in storage, as a finished run leaves it."""
    generation = Generation.objects.create(user=user, state=state, num_outputs=outputs, **fields)
    for index in range(outputs):
        output = GenerationOutput(
            generation=generation,
            index=index,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type=content_type,
        )
        output.file.save(f"output-{index + 1}.ply", ContentFile(data), save=True)
    return generation


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_for_state(generation: Generation, *states: str, timeout: float = 20.0) -> Generation:
    wait_until(
        lambda: Generation.objects.filter(pk=generation.pk, state__in=states).exists(),
        f"generation {generation.pk} to be {' or '.join(states)}",
        timeout,
    )
    generation.refresh_from_db()
    return generation


@pytest.fixture(scope="module")
def worker(django_db_setup: None, django_db_blocker: Any) -> Iterator[services.Service]:
    """A real Celery worker on the suite's Redis, using the test database and the sandbox.

    Module-scoped: it starts once for the tests that need it and is gone before the next module
    (the crash tests start their own workers and must be the only ones consuming).
    """
    worker = services.start_worker(services.test_database_env(), name="generations-worker")
    yield worker
    worker.stop()
