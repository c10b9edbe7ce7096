"""Celery tasks: thin wrappers around ``generations.services``.

Late acknowledgement, reject-on-worker-lost, prefetch 1 and the visibility timeout are set for
every task in config/settings.py; the claim in ``services.generation_claim`` is what makes a
redelivered message safe to run.
"""

from __future__ import annotations

import contextlib
import random

from celery import Task, shared_task
from django.db import close_old_connections, connection

from generations import services
from openrouter.errors import OpenRouterError

BACKOFF_BASE = 1.0  # seconds before the first automatic retry
BACKOFF_CAP = 60.0
# Retries for a database outage, on top of the upstream ones: with the backoff above they span
# several minutes, after which the sweeper has the last word.
DATABASE_RETRIES = 10


def retry_delay(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter; never sooner than the upstream's ``Retry-After``.

    The jitter (half to all of the step) keeps a fleet that failed together from retrying
    together.
    """
    step = min(BACKOFF_CAP, BACKOFF_BASE * 2**retries)
    delay = random.uniform(step / 2, step)  # noqa: S311  (jitter, not a secret)
    return max(delay, retry_after or 0.0)


@shared_task(bind=True, max_retries=services.MAX_RETRIES, acks_late=True)
def run_generation(self: Task, generation_id: int, claim_token: str | None = None) -> None:
    retries = self.request.retries
    try:
        look_again_in = services.generation_run(
            generation_id=generation_id,
            retries_left=retries < services.MAX_RETRIES,
            claim_token=claim_token,
        )
    except OpenRouterError as exc:
        raise self.retry(
            args=(generation_id,), kwargs={}, countdown=retry_delay(retries, exc.retry_after)
        ) from exc
    except services.DatabaseUnavailable as exc:
        # The connection is dead or refused: drop it so the retry opens a fresh one, and come
        # back with this attempt's claim to take it over at once.
        _drop_database_connection()
        raise self.retry(
            args=(generation_id,),
            kwargs={"claim_token": exc.claim_token},
            countdown=retry_delay(retries),
            max_retries=services.MAX_RETRIES + DATABASE_RETRIES,
        ) from exc
    if look_again_in is not None:
        # Another attempt holds a live claim; if it dies, this delivery takes over later.
        run_generation.apply_async((generation_id,), countdown=look_again_in)


def _drop_database_connection() -> None:
    close_old_connections()
    with contextlib.suppress(Exception):
        connection.close()


@shared_task
def sweep_generations() -> int:
    return services.generation_sweep()
