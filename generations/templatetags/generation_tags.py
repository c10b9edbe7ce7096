"""``{{ generation.duration|took }}``: a time taken, the way static/js/generations/live.js
writes it too (formatDuration; tests/generations/test_durations.py holds both to the same words)."""

from __future__ import annotations

from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def took(value: timedelta | None) -> str:
    """``under a second``, ``3 s``, ``1 min 20 s``, ``2 h 5 min``: whole units, as people say."""
    if value is None:
        return ""
    seconds = value.total_seconds()
    if seconds < 1:
        return "under a second"
    total = int(seconds + 0.5)  # half up, like Math.round
    if total < 60:
        return f"{total} s"
    minutes, rest = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
