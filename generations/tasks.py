"""Celery tasks: thin wrappers around ``generations.services``.

Late acknowledgement, reject-on-worker-lost, prefetch 1 and the visibility timeout are set for
every task in config/settings.py; the claim in ``services.generation_claim`` is what makes a
redelivered message safe to run.
"""

from __future__ import annotations

import random

from celery import Task, shared_task

from generations import services
from openrouter.errors import OpenRouterError

BACKOFF_BASE = 1.0  # seconds before the first automatic retry
BACKOFF_CAP = 60.0


def retry_delay(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter; never sooner than the upstream's ``Retry-After``.

    The jitter (half to all of the step) keeps a fleet that failed together from retrying
    together.
    """
    step = min(BACKOFF_CAP, BACKOFF_BASE * 2**retries)
    delay = random.uniform(step / 2, step)  # noqa: S311  (jitter, not a secret)
    return max(delay, retry_after or 0.0)


@shared_task(bind=True, max_retries=services.MAX_RETRIES, acks_late=True)
def run_generation(self: Task, generation_id: int) -> None:
    retries = self.request.retries
    try:
        look_again_in = services.generation_run(
            generation_id=generation_id, retries_left=retries < services.MAX_RETRIES
        )
    except OpenRouterError as exc:
        raise self.retry(countdown=retry_delay(retries, exc.retry_after)) from exc
    if look_again_in is not None:
        # Another attempt holds a live claim; if it dies, this delivery takes over later.
        run_generation.apply_async((generation_id,), countdown=look_again_in)


@shared_task
def sweep_generations() -> int:
    return services.generation_sweep()
