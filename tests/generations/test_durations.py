"""Times taken, in the words a person reads (the page's script says the same:
tests/e2e/test_page_scripts.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from generations.templatetags.generation_tags import took
from tests.generations.conftest import make_generation

WORDS = [
    (0.0, "under a second"),
    (0.04, "under a second"),
    (0.99, "under a second"),
    (1.0, "1 s"),
    (2.6, "3 s"),
    (59.4, "59 s"),
    (59.6, "1 min"),
    (80.0, "1 min 20 s"),
    (3600.0, "1 h"),
    (3725.0, "1 h 2 min"),
]


@pytest.mark.parametrize(("seconds", "words"), WORDS)
def test_a_duration_reads_in_whole_units(seconds: float, words: str) -> None:
    assert took(timedelta(seconds=seconds)) == words


@pytest.mark.django_db
def test_a_job_done_at_once_says_it_took_under_a_second(signed_in: Client, user: User) -> None:
    now = timezone.now()
    generation = make_generation(user, started_at=now, finished_at=now)
    card = signed_in.get("/generations/").content.decode()
    assert "took under a second" in card
    page = signed_in.get(generation.get_absolute_url()).content.decode()
    assert "<dt>Time taken</dt><dd>under a second</dd>" in page
    assert "0.0 s" not in card + page
