"""Money on the Account page reads as people read it, from one filter."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client

from accounts import services
from accounts.models import User
from accounts.templatetags.money import money
from openrouter.website import credits_url


@pytest.mark.parametrize(
    ("amount", "reads"),
    [
        (4.2, "$4.20"),
        (Decimal("10"), "$10.00"),
        (1234.5, "$1,234.50"),
        (1234567.891, "$1,234,567.89"),
        (0.42, "$0.42"),
        (0.995, "$1.00"),
        (0, "$0.00"),
        (0.0031, "$0.0031"),  # below a cent: two significant digits, not "$0.00"
        (0.00314159, "$0.0031"),
        (0.005, "$0.005"),
        (0.0000123, "$0.000012"),
        (1e-9, "<$0.000001"),
        (-1.5, "-$1.50"),
        ("7.1", "$7.10"),
        (None, ""),
    ],
)
def test_an_amount_reads_as_dollars(amount: object, reads: str) -> None:
    assert money(amount) == reads


def test_the_account_page_shows_the_keys_figures_as_money(
    connected_client: Client, connected_user: User
) -> None:
    figures = {
        "limit": 1500,
        "limit_remaining": 1234.5,
        "usage_daily": 0.00314159,
        "usage_weekly": 0.4,
        "usage_monthly": 265.5,
    }
    cache.set(services._credits_cache_key(connected_user.pk), figures)
    page = connected_client.get("/account/").content.decode()
    for field, reads, label in [
        ("limit_remaining", "$1,234.50", "Left on this key"),
        ("limit", "$1,500.00", "Key limit"),
        ("usage_daily", "$0.0031", "Used today"),
        ("usage_weekly", "$0.40", "Used this week"),
        ("usage_monthly", "$265.50", "Used this month"),
    ]:
        assert f'<b data-field="{field}">{reads}</b><span>{label}</span>' in page
    assert f'<a class="button secondary" href="{credits_url()}"' in page


def test_a_key_without_a_limit_says_so(connected_client: Client, connected_user: User) -> None:
    figures = {"limit": None, "limit_remaining": None, "usage_daily": 0, "usage_weekly": 0}
    cache.set(services._credits_cache_key(connected_user.pk), {**figures, "usage_monthly": 0})
    page = connected_client.get("/account/").content.decode()
    assert '<b data-field="limit_remaining">No limit</b>' in page
    assert '<b data-field="limit">No limit</b>' in page
    assert '<b data-field="usage_daily">$0.00</b>' in page
