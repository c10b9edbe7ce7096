"""How counts under an answer read (static/js/chat/render.js formats live answers the same;
money is ``accounts.templatetags.money``)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def thousands(value: int | None) -> str:
    return "" if value is None else f"{value:,}"
