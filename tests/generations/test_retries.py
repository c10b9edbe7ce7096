"""The retry policy of ``run_generation``, run eagerly in-process against the sandbox.

Eager runs retry at once (Celery ignores the countdown), so the whole policy — which errors
retry, how many times, with which ``Retry-After`` — is checked in a second instead of the
minute of real backoff a worker would wait.
"""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import User
from generations import services, tasks
from generations.models import Generation
from tests.services import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each backoff asked for, with the generation's state at that moment."""
    calls: list[dict[str, Any]] = []

    def spy(retries: int, retry_after: float | None = None) -> float:
        generation = Generation.objects.get()
        calls.append(
            {"retries": retries, "retry_after": retry_after, "state": generation.state}
            | {"progress": generation.progress}
        )
        return 0.0

    monkeypatch.setattr(tasks, "retry_delay", spy)
    return calls


def run(user: User, model: str) -> Generation:
    generation = Generation.objects.create(user=user, prompt="a cube", model=model)
    tasks.run_generation.apply(args=[generation.pk])
    generation.refresh_from_db()
    return generation


@pytest.mark.parametrize(
    ("model", "code", "retry_after"),
    [
        ("sandbox/error-408", "408", None),
        ("sandbox/error-429", "429", 7.0),
        ("sandbox/error-502", "502", None),
        ("sandbox/error-503", "503", 3.0),
    ],
)
def test_a_transient_error_is_retried_up_to_the_limit_then_fails(
    connected_user: User, delays: list[dict[str, Any]], model: str, code: str, retry_after: float
) -> None:
    generation = run(connected_user, model)
    assert (generation.state, generation.error_code) == ("failed", code)
    assert generation.attempts == services.MAX_RETRIES + 1
    assert [call["retries"] for call in delays] == list(range(services.MAX_RETRIES))
    assert {call["retry_after"] for call in delays} == {retry_after}
    # Between attempts it waits in the queue, saying why, but not to try again oneself.
    assert {call["state"] for call in delays} == {"queued"}
    assert delays[0]["progress"].endswith(". Trying again shortly…")
    assert "again in" not in delays[0]["progress"].lower()
    # Given up: what failed and what to do, with no countdown left over from the last attempt.
    assert (
        ", so the generation was stopped. Retry in a few minutes or pick another model."
        in generation.error_message
    )
    assert " s." not in generation.error_message and "again in" not in generation.error_message


def test_a_network_failure_is_retried_too(
    connected_user: User, delays: list[dict[str, Any]], settings: Any
) -> None:
    settings.OPENROUTER_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    generation = run(connected_user, "openai/shap-e")
    assert (generation.state, generation.error_code) == ("failed", "network")
    assert generation.error_message.startswith("OpenRouter could not be reached, so the")
    assert len(delays) == services.MAX_RETRIES


def test_a_retry_after_too_long_to_wait_for_fails_without_a_countdown(
    connected_user: User, delays: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "MAX_RETRY_AFTER", 5.0)  # the sandbox's 429 says 7 s
    generation = run(connected_user, "sandbox/error-429")
    assert (generation.state, generation.error_code, generation.attempts) == ("failed", "429", 1)
    assert generation.error_message == (
        "OpenRouter is rate-limiting these requests, so the generation was stopped. "
        "Retry in a few minutes or pick another model."  # not a free model: no free limit
    )
    assert delays == []


def test_a_permanent_error_is_not_retried(
    connected_user: User, delays: list[dict[str, Any]]
) -> None:
    generation = run(connected_user, "sandbox/error-402")
    assert (generation.state, generation.error_code, generation.attempts) == ("failed", "402", 1)
    assert delays == []


def test_a_user_without_a_key_gets_a_sentence_not_a_crash(user: User) -> None:
    generation = run(user, "openai/shap-e")
    assert (generation.state, generation.error_code) == ("failed", "not_connected")
    assert generation.error_message == "Connect your OpenRouter account first."
