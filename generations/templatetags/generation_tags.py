"""``{{ generation.duration|took }}``: a time taken, the way static/js/generations/live.js
writes it too."""

from __future__ import annotations

from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def took(value: timedelta | None) -> str:
    if value is None:
        return ""
    seconds = value.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
