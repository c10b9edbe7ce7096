"""``{{ amount|money }}``: US dollars as people read them, wherever the site shows money (the
Account page, answers' costs, the admin); static/js/money.js writes money the same way in pages."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()

CENT = Decimal("0.01")
SMALLEST = Decimal("0.000001")


@register.filter
def money(value: Decimal | float | int | str | None) -> str:
    """``$4.20`` and ``$1,234.50`` from a cent up; below a cent two significant digits
    (``$0.0031``), so a small spend does not read as nothing; ``$0.00`` for none."""
    if value is None or value == "":
        return ""
    amount = Decimal(str(value))
    sign = "-" if amount < 0 else ""
    size = abs(amount)
    if size == 0 or size >= CENT:
        return f"{sign}${size.quantize(CENT, ROUND_HALF_UP):,}"
    if size < SMALLEST:
        return f"{sign}<$0.000001"
    digits = 1 - size.adjusted()  # two significant digits after the point
    text = f"{size.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP):f}".rstrip("0")
    return f"{sign}${text}"
