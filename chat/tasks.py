"""Periodic chat work for Celery beat (``CELERY_BEAT_SCHEDULE`` in config/settings.py)."""

from __future__ import annotations

from celery import shared_task

from chat import services


@shared_task(ignore_result=True)
def sweep_streams() -> int:
    """Answers left ``streaming`` by a process that went away become ``interrupted``."""
    return len(services.streams_sweep())


@shared_task(ignore_result=True)
def fill_missing_usage() -> int:
    """Answers stopped or cut off before their stream said what they cost get their tokens and
    cost from OpenRouter (``services.usage_fill``)."""
    return services.usage_fill()
