"""How numbers under an answer read (static/js/chat/render.js formats live answers the same)."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def usd(value: Decimal | float | None) -> str:
    """``$0.000123`` for tiny costs, ``$1.2346`` above a cent, ``$0`` for free."""
    if value is None:
        return ""
    amount = Decimal(str(value))
    if amount == 0:
        return "$0"
    digits = 6 if abs(amount) < Decimal("0.01") else 4
    text = f"{amount:.{digits}f}".rstrip("0").rstrip(".")
    return "<$0.000001" if text == "0" else f"${text}"


@register.filter
def thousands(value: int | None) -> str:
    return "" if value is None else f"{value:,}"
