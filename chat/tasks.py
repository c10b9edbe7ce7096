"""Periodic chat work for Celery beat (``CELERY_BEAT_SCHEDULE`` in config/settings.py)."""

from __future__ import annotations

from celery import shared_task

from chat import services


@shared_task(ignore_result=True)
def sweep_streams() -> int:
    """Answers left ``streaming`` by a process that went away become ``interrupted``."""
    return len(services.streams_sweep())
