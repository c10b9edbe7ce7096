"""Chat work in the background: the sweeper (Celery beat, ``CELERY_BEAT_SCHEDULE`` in
config/settings.py) and the usage of answers cut short."""

from __future__ import annotations

from celery import Task, shared_task

from chat import services


@shared_task(ignore_result=True)
def sweep_streams() -> int:
    """Answers left ``streaming`` by a process that went away become ``interrupted``."""
    return len(services.streams_sweep())


# Seconds between looks at OpenRouter's record of a generation cut short: 2, 4, … 64 after the
# first (``services.USAGE_FILL_AFTER``), two minutes in all.
USAGE_FILL_RETRIES = 6


@shared_task(bind=True, ignore_result=True, max_retries=USAGE_FILL_RETRIES)
def answer_usage_fill(self: Task, message_id: int) -> None:
    """Tokens and cost of an answer stopped or cut off before its stream said them."""
    done = services.answer_usage_fill(message_id=message_id)
    if not done and self.request.retries < USAGE_FILL_RETRIES:
        raise self.retry(countdown=2 ** (self.request.retries + 1))
