"""A worker killed with SIGKILL in the middle of a generation: another worker finishes the job,
and every output is stored exactly once.

How redelivery is made fast enough for a test: the workers here run with
``GENERATION_TIME_LIMIT=8`` and ``CELERY_VISIBILITY_TIMEOUT=9``, keeping the production rule
that the visibility timeout exceeds the hard time limit (which is also the lease of a claim, see
generations/services.py). Redis hands the dead worker's unacknowledged message out again once
9 s have passed, and a worker starting after that restores it at start-up; the test starts the
second worker then. No test-only code path is involved: this is the production recovery with
shorter clocks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from generations.models import Generation
from tests import services
from tests.generations.conftest import wait_for_state

pytestmark = pytest.mark.django_db(transaction=True)

TIME_LIMIT = 8
VISIBILITY_TIMEOUT = 9


@pytest.fixture
def slow_sandbox() -> Iterator[str]:
    """A sandbox whose generations take 2 s: long enough to kill a worker in the middle."""
    service, url = services.start_sandbox(generation_delay=2.0)
    yield url
    service.stop()


@pytest.fixture
def worker_env(slow_sandbox: str) -> dict[str, str]:
    return {
        **services.test_database_env(),
        "OPENROUTER_URL": slow_sandbox,
        "GENERATION_TIME_LIMIT": str(TIME_LIMIT),
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    }


def test_a_job_whose_worker_was_killed_is_finished_by_another_worker_exactly_once(
    connected_client: Client, connected_user: User, worker_env: dict[str, str]
) -> None:
    doomed = services.start_worker(worker_env, name="doomed")
    rescuer = None
    try:
        form = {"prompt": "a wooden table", "num_outputs": 3, "num_inference_steps": 16}
        response = connected_client.post(
            reverse("generations:create"), {**form, "extension": "ply"}
        )
        assert response.status_code == 302
        generation = wait_for_state(Generation.objects.get(), "running", timeout=15)
        assert "run_generation[" in doomed.log()  # the doomed worker, and no other, took it
        doomed.kill()  # SIGKILL: no cleanup, no acknowledgement
        generation.refresh_from_db()
        assert generation.state == "running" and generation.outputs.count() == 0

        assert generation.claimed_at is not None
        redeliverable = generation.claimed_at + timedelta(seconds=VISIBILITY_TIMEOUT + 0.5)
        time.sleep(max(0.0, (redeliverable - timezone.now()).total_seconds()))
        rescuer = services.start_worker(worker_env, name="rescuer")

        generation = wait_for_state(generation, "succeeded", "failed", timeout=30)
        assert generation.state == "succeeded", generation.error_message
        assert generation.attempts == 2
        assert "took over from a dead attempt" in rescuer.log()
        assert list(generation.outputs.values_list("index", flat=True)) == [0, 1, 2]
        _, files = default_storage.listdir(f"generations/{connected_user.pk}/{generation.pk}")
        assert len(files) == 3
    finally:
        for worker in (doomed, rescuer):
            if worker is not None:
                worker.stop()
