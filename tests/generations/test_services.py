"""The claim, the exactly-once storage of outputs, the sweeper and the caps — without a worker."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from accounts.models import User
from accounts.services import NotConnected
from generations import meshes, services
from generations.models import GLB_TYPE, PLY_TYPE, REFUSALS_A_RETRY_CANNOT_CHANGE, Generation
from generations.tasks import retry_delay, sweep_generations
from openrouter import client
from openrouter.errors import OpenRouterError
from tests.generations.conftest import PLY, make_generation

pytestmark = pytest.mark.django_db

State = Generation.State


def queued(user: User, **fields: object) -> Generation:
    return Generation.objects.create(user=user, prompt="a chair", **fields)


def running(user: User, **fields: object) -> Generation:
    """A generation claimed by an attempt, which may store outputs under its ``claim_token``."""
    claimed = services.generation_claim(generation_id=queued(user, **fields).pk)
    assert claimed is not None
    return claimed


def test_a_queued_generation_is_claimed_once(user: User) -> None:
    generation = queued(user)
    claimed = services.generation_claim(generation_id=generation.pk)
    assert claimed is not None
    assert (claimed.state, claimed.attempts) == (State.RUNNING, 1)
    assert claimed.claim_token and claimed.started_at and claimed.claimed_at
    assert services.generation_claim(generation_id=generation.pk) is None


def test_a_delivery_that_finds_a_live_claim_looks_again_when_it_expires(user: User) -> None:
    generation = queued(user)
    assert services.generation_claim(generation_id=generation.pk)
    look_again_in = services.generation_run(generation_id=generation.pk, retries_left=True)
    assert look_again_in is not None
    assert 1 <= look_again_in <= settings.GENERATION_TIME_LIMIT + 1
    generation.refresh_from_db()
    assert generation.attempts == 1  # it did not run a second time


def test_a_claim_older_than_the_time_limit_is_taken_over(user: User) -> None:
    generation = queued(user)
    first = services.generation_claim(generation_id=generation.pk)
    assert first is not None
    later = timezone.now() + timedelta(seconds=settings.GENERATION_TIME_LIMIT + 1)
    second = services.generation_claim(generation_id=generation.pk, now=later)
    assert second is not None
    assert second.claim_token != first.claim_token
    assert second.attempts == 2
    # The dead attempt, were it alive after all, can no longer write.
    with pytest.raises(services.ClaimLost):
        services._save_claimed(first, first.claim_token, first.mark_succeeded(now=later))
    second.refresh_from_db()
    assert second.state == State.RUNNING


def test_a_job_that_keeps_killing_its_worker_is_failed_not_redelivered_forever(
    user: User,
) -> None:
    generation = queued(
        user,
        state=State.RUNNING,
        attempts=services.MAX_ATTEMPTS,
        claim_token="dead",
        claimed_at=timezone.now() - timedelta(hours=1),
    )
    assert services.generation_claim(generation_id=generation.pk) is None
    generation.refresh_from_db()
    assert (generation.state, generation.error_code) == (State.FAILED, "worker_lost")


def test_finished_generations_are_never_claimed_again(user: User) -> None:
    for state in (State.SUCCEEDED, State.FAILED):
        generation = queued(user, state=state)
        assert services.generation_run(generation_id=generation.pk, retries_left=True) is None
        generation.refresh_from_db()
        assert (generation.state, generation.attempts) == (state, 0)


def test_an_output_already_stored_by_a_dead_attempt_is_kept_not_stored_twice(user: User) -> None:
    generation = running(user)
    first = services.output_store(
        generation=generation, index=0, data=PLY, token=generation.claim_token
    )
    again = services.output_store(
        generation=generation, index=0, data=b"glTF other", token="b" * 32
    )
    assert again.pk == first.pk
    assert generation.outputs.count() == 1
    assert default_storage.open(first.file.name).read() == PLY
    _, files = default_storage.listdir(f"generations/{user.pk}/{generation.pk}")
    assert len(files) == 1


def test_prune_deletes_files_no_output_refers_to(user: User) -> None:
    generation = running(user)
    kept = services.output_store(
        generation=generation, index=0, data=PLY, token=generation.claim_token
    )
    # What a worker killed between writing a file and inserting its row leaves behind.
    folder = f"generations/{user.pk}/{generation.pk}"
    stray = default_storage.save(f"{folder}/output-2-dead.ply", ContentFile(PLY))
    assert services.outputs_prune(generation=generation) == [stray]
    assert not default_storage.exists(stray)
    assert default_storage.exists(kept.file.name)


def test_outputs_are_typed_by_their_bytes_not_by_what_was_asked(user: User) -> None:
    assert services.content_type_of(b"ply\nformat binary_little_endian 1.0\n") == PLY_TYPE
    assert services.content_type_of(b"glTF\x02\x00\x00\x00") == GLB_TYPE
    assert services.content_type_of(b"<script>alert(1)</script>") == "application/octet-stream"
    # Bytes that are not a well-formed model are refused, whatever was asked: nothing stored.
    generation = running(user, extension="ply")
    token = generation.claim_token
    with pytest.raises(meshes.InvalidMesh):
        services.output_store(generation=generation, index=0, data=b"<html>", token=token)
    assert generation.outputs.count() == 0
    assert services._folder_files(generation) == []
    stored = services.output_store(generation=generation, index=0, data=PLY, token=token)
    assert stored.viewable and stored.content_type == PLY_TYPE
    assert stored.file.name.endswith(".ply")


def test_the_sweeper_fails_only_generations_no_redelivery_can_save(user: User) -> None:
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    stale_after = timedelta(seconds=visibility) + services.SWEEP_GRACE
    now = timezone.now()
    stuck = queued(user, state=State.RUNNING, claim_token="x", claimed_at=now - stale_after * 2)
    # Past the time limit but a redelivery may still come: left alone.
    waiting = queued(
        user,
        state=State.RUNNING,
        claim_token="y",
        claimed_at=now - timedelta(seconds=settings.GENERATION_TIME_LIMIT + 5),
    )
    # Released for an automatic retry whose message was lost: swept too.
    lost_retry = queued(user, claim_token="z", claimed_at=now - stale_after * 2)
    # Queued and never claimed: waiting its turn behind other jobs, left alone.
    backlog = queued(user)
    assert sweep_generations() == 2
    for generation in (stuck, waiting, lost_retry, backlog):
        generation.refresh_from_db()
    assert (stuck.state, stuck.error_code) == (State.FAILED, "stalled")
    assert "stopped making progress" in stuck.error_message
    assert lost_retry.state == State.FAILED
    assert waiting.state == State.RUNNING
    assert backlog.state == State.QUEUED


def test_the_in_flight_cap_refuses_with_a_clear_message(user: User) -> None:
    for _ in range(settings.GENERATIONS_IN_FLIGHT_PER_USER):
        queued(user)
    with pytest.raises(services.GenerationLimitReached) as refused:
        services.generation_start(
            user=user,
            prompt="one more",
            model="openai/shap-e",
            num_inference_steps=32,
            num_outputs=1,
            extension="ply",
        )
    assert f"already have {settings.GENERATIONS_IN_FLIGHT_PER_USER}" in refused.value.message
    assert Generation.objects.filter(user=user).count() == settings.GENERATIONS_IN_FLIGHT_PER_USER


def test_finished_generations_do_not_count_against_the_cap(
    user: User, django_capture_on_commit_callbacks: object
) -> None:
    for _ in range(settings.GENERATIONS_IN_FLIGHT_PER_USER):
        make_generation(user)
    with django_capture_on_commit_callbacks() as callbacks:  # type: ignore[operator]
        generation = services.generation_start(
            user=user,
            prompt="a table",
            model="openai/shap-e",
            num_inference_steps=16,
            num_outputs=2,
            extension="glb",
        )
    assert generation.state == State.QUEUED
    assert len(callbacks) == 1  # the task is sent after commit, not before


def test_retry_starts_a_failed_generation_afresh_and_drops_its_partial_outputs(
    user: User, django_capture_on_commit_callbacks: object
) -> None:
    generation = make_generation(
        user, state=State.FAILED, error_code="413", attempts=2, claimed_at=timezone.now()
    )
    name = generation.outputs.get().file.name
    with django_capture_on_commit_callbacks(execute=False) as callbacks:  # type: ignore[operator]
        assert services.generation_retry(generation=generation)
    generation.refresh_from_db()
    assert (generation.state, generation.error_code, generation.attempts) == (State.QUEUED, "", 0)
    assert generation.outputs.count() == 0
    assert generation.claimed_at is None  # so the sweeper cannot mistake it for a lost retry
    assert len(callbacks) == 2  # delete the old files, dispatch the task
    callbacks[0]()
    assert not default_storage.exists(name)
    assert not services.generation_retry(generation=generation)  # only failed ones


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    first = [retry_delay(0) for _ in range(50)]
    fourth = [retry_delay(3) for _ in range(50)]
    assert all(0.5 <= d <= 1.0 for d in first)
    assert all(4.0 <= d <= 8.0 for d in fourth)
    assert len(set(fourth)) > 1  # jittered
    assert retry_delay(0, retry_after=7.0) == 7.0
    assert retry_delay(20) <= 60.0


def test_when_the_broker_refuses_the_task_the_generation_fails_instead_of_waiting_forever(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr("generations.tasks.run_generation.delay", refuse)
    generation = queued(user)
    services.generation_dispatch(generation=generation)
    generation.refresh_from_db()
    assert (generation.state, generation.error_code) == (State.FAILED, "queue")
    assert "could not be started just now" in generation.error_message


def test_the_hourly_cap_counts_finished_generations_too(user: User, settings: object) -> None:
    settings.GENERATIONS_PER_HOUR = 2  # type: ignore[attr-defined]
    make_generation(user)
    make_generation(user, state=State.FAILED, outputs=0)
    with pytest.raises(services.GenerationLimitReached) as refused:
        services.generation_start(
            user=user,
            prompt="a third",
            model="openai/shap-e",
            num_inference_steps=32,
            num_outputs=1,
            extension="ply",
        )
    assert "2 generations in the last hour" in refused.value.message


def test_a_generation_never_claimed_is_sent_again_then_failed_with_a_sentence(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its message may have died with Redis: the sweeper re-sends it, a bounded number of
    times, then fails it — it never stays queued forever, holding an in-flight place."""
    sent: list[int] = []
    monkeypatch.setattr("generations.tasks.run_generation.delay", sent.append)
    lost = queued(user)
    fresh_enough = queued(user)
    now = timezone.now()
    Generation.objects.filter(pk=lost.pk).update(queued_at=now - services.REDISPATCH_AFTER * 2)
    later = now
    for round_ in range(services.MAX_REDISPATCHES):
        assert services.generation_sweep(now=later) == 0  # re-sent, not failed
        assert sent == [lost.pk] * (round_ + 1)
        lost.refresh_from_db()
        assert (lost.state, lost.redispatches) == (State.QUEUED, round_ + 1)
        assert services.generation_sweep(now=later) == 0  # not again before the bound
        assert len(sent) == round_ + 1
        later += services.REDISPATCH_AFTER * 2
        Generation.objects.filter(pk=fresh_enough.pk).update(queued_at=later)
    services.generation_sweep(now=later)
    lost.refresh_from_db()
    assert (lost.state, lost.error_code) == (State.FAILED, "lost")
    assert lost.error_message.endswith(".")
    assert len(sent) == services.MAX_REDISPATCHES
    fresh_enough.refresh_from_db()
    assert (fresh_enough.state, fresh_enough.redispatches) == (State.QUEUED, 0)


def test_a_redispatched_generation_runs_once(user: User) -> None:
    """A duplicate delivery (the first message was only slow) finds the claim taken."""
    generation = queued(user)
    assert services.generation_claim(generation_id=generation.pk) is not None
    assert services.generation_claim(generation_id=generation.pk) is None


def test_after_a_database_outage_the_retry_takes_back_its_own_claim_at_once(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    generation = queued(user)

    def database_gone(generation: Generation, token: str) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "_produce", database_gone)
    with pytest.raises(services.DatabaseUnavailable) as outage:
        services.generation_run(generation_id=generation.pk, retries_left=True)
    generation.refresh_from_db()
    assert generation.state == State.RUNNING  # nothing could be written
    token = outage.value.claim_token
    assert token == generation.claim_token
    # Another delivery waits for the lease; the retry with the token takes it back now.
    assert services.generation_claim(generation_id=generation.pk) is None
    taken = services.generation_claim(generation_id=generation.pk, own_token=token)
    assert taken is not None and taken.claim_token != token
    assert services.generation_claim(generation_id=generation.pk, own_token=token) is None


def test_a_database_outage_makes_the_task_retry_with_its_claim(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.exceptions import Retry

    from generations import tasks

    def outage(**kwargs: object) -> None:
        raise services.DatabaseUnavailable("t" * 32)

    retried: dict[str, object] = {}

    def retry(**kwargs: object) -> Exception:
        retried.update(kwargs)
        return Retry()

    monkeypatch.setattr(services, "generation_run", outage)
    monkeypatch.setattr(tasks.run_generation, "retry", retry)
    with pytest.raises(Retry):
        tasks.run_generation.run(7)
    assert retried["args"] == (7,)
    assert retried["kwargs"] == {"claim_token": "t" * 32}


def test_an_invalid_output_fails_the_generation_and_discards_the_runs_outputs(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    generation = queued(user, num_outputs=2)
    outputs = iter([PLY, b"<!doctype html><script>alert(1)</script>"])
    monkeypatch.setattr(services, "api_key_for", lambda **kwargs: "sk-or-v1-test")
    two = [object(), object()]
    monkeypatch.setattr(services.openrouter, "generate_object", lambda *a, **kw: two)
    monkeypatch.setattr(services.openrouter, "fetch_output", lambda *a, **k: next(outputs))
    assert services.generation_run(generation_id=generation.pk, retries_left=True) is None
    generation.refresh_from_db()
    assert (generation.state, generation.error_code) == (State.FAILED, "invalid_output")
    assert "not a valid 3D object" in generation.error_message
    assert generation.outputs.count() == 0
    assert services._folder_files(generation) == []


# Words of our machinery and of the API, which a person who asked for a chair should not meet.
JARGON = re.compile(r"\b(upstream|worker|queued?|configured|job|claim|outputs?)\b", re.IGNORECASE)


def every_failure_sentence() -> list[str]:
    """Every sentence a failed generation can show, from our side and from OpenRouter's."""
    statuses = [400, 401, 402, 403, 404, 408, 429, 451, 500, 502, 503]
    return [
        *services.FAILURE_SENTENCES.values(),
        services.timeout_sentence(),
        meshes.InvalidMesh.MESSAGE,
        NotConnected.message,
        client.NO_3D,
        client.NOT_HTTPS,
        client.PRIVATE_ADDRESS,
        client.NOT_WEB,
        client.TOO_MANY_REDIRECTS,
        client.too_large(20 * 1024 * 1024).message,
        client.too_large(256 * 1024 * 1024, whole_answer=True).message,
        *(OpenRouterError.from_status(status).message for status in statuses),
        OpenRouterError.network().message,
        OpenRouterError.timeout().message,
        OpenRouterError.bad_response().message,
    ]


def test_failure_sentences_are_in_plain_words() -> None:
    for sentence in every_failure_sentence():
        assert not JARGON.search(sentence), sentence


def test_a_refusal_a_retry_cannot_change_does_not_say_to_try_again() -> None:
    """Its page offers no Retry, and says what a new request must change."""
    links = [client.NOT_HTTPS, client.PRIVATE_ADDRESS, client.NOT_WEB, client.TOO_MANY_REDIRECTS]
    refusals = [
        client.too_large(20 * 1024 * 1024),
        client.too_large(256 * 1024 * 1024, whole_answer=True),
        *(OpenRouterError(400, sentence) for sentence in links),
        *(OpenRouterError.from_status(status) for status in [400, 403, 404, 451]),
    ]
    for refusal in refusals:
        assert refusal.code in REFUSALS_A_RETRY_CANNOT_CHANGE, refusal.code
        assert "try again" not in refusal.message.lower(), refusal.message


def test_a_429_given_up_on_advises_a_paid_variant_only_for_a_free_model() -> None:
    limited = OpenRouterError.from_status(429, "Rate limit exceeded: free-models-per-min")
    free = services.upstream_failure_sentence(limited, model="sandbox/shap-e:free")
    paid = services.upstream_failure_sentence(limited, model="openai/shap-e")
    assert free.endswith("Free (:free) models have tight limits; a paid variant avoids them.")
    assert paid.endswith("Retry in a few minutes or pick another model.")


def test_the_time_limit_is_said_in_minutes(settings: Any) -> None:
    settings.GENERATION_TIME_LIMIT = 60
    assert "longer than 1 minute, the most allowed" in services.timeout_sentence()
    settings.GENERATION_TIME_LIMIT = 900
    assert "longer than 15 minutes, the most allowed" in services.timeout_sentence()


# --- cancelling -------------------------------------------------------------------------------


def test_a_cancelled_queued_generation_is_never_started(user: User) -> None:
    generation = queued(user)
    assert services.generation_cancel(generation=generation)
    generation.refresh_from_db()
    assert generation.state == State.CANCELLED and generation.finished_at is not None
    # Its task, delivered later, finds nothing to run.
    assert services.generation_run(generation_id=generation.pk, retries_left=True) is None
    generation.refresh_from_db()
    assert (generation.state, generation.attempts, generation.started_at) == (
        State.CANCELLED,
        0,
        None,
    )


def test_a_generation_waiting_for_an_automatic_retry_can_be_cancelled(user: User) -> None:
    generation = queued(user, claim_token="x", claimed_at=timezone.now(), attempts=1)
    assert services.generation_cancel(generation=generation)
    assert services.generation_claim(generation_id=generation.pk) is None


def test_a_cancelled_running_attempt_stores_nothing_more_and_its_outputs_go(
    user: User, django_capture_on_commit_callbacks: Any
) -> None:
    generation = running(user, num_outputs=2)
    token = generation.claim_token
    first = services.output_store(generation=generation, index=0, data=PLY, token=token)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.generation_cancel(generation=Generation.objects.get(pk=generation.pk))
    assert not default_storage.exists(first.file.name)
    assert generation.outputs.count() == 0
    # The attempt, still going, finds out at each of its checks and writes nothing.
    with pytest.raises(services.ClaimLost):
        services._check_claim(generation, token)
    with pytest.raises(services.ClaimLost):
        services.output_store(generation=generation, index=1, data=PLY, token=token)
    with pytest.raises(services.ClaimLost):
        services._save_claimed(generation, token, generation.mark_succeeded(now=timezone.now()))
    generation.refresh_from_db()
    assert generation.state == State.CANCELLED
    assert generation.outputs.count() == 0 and services._folder_files(generation) == []


def test_a_cancel_during_the_upstream_call_ends_the_attempt_quietly(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    generation = queued(user)
    monkeypatch.setattr(services, "api_key_for", lambda user: "sk-or-v1-test")

    def generate_object(api_key: str, payload: object, check: Any) -> list[object]:
        check()  # nothing yet: the call goes on
        services.generation_cancel(generation=Generation.objects.get(pk=generation.pk))
        check()  # raises: the call ends here
        raise AssertionError("the check let a cancelled attempt go on")

    monkeypatch.setattr(services.openrouter, "generate_object", generate_object)
    assert services.generation_run(generation_id=generation.pk, retries_left=True) is None
    generation.refresh_from_db()
    assert (generation.state, generation.error_code) == (State.CANCELLED, "")


@pytest.mark.parametrize("state", [State.SUCCEEDED, State.FAILED, State.CANCELLED])
def test_a_finished_generation_cannot_be_cancelled(user: User, state: str) -> None:
    generation = make_generation(user, state=state, error_message="kept")
    assert not services.generation_cancel(generation=generation)
    assert (generation.state, generation.error_message) == (state, "kept")  # as stored
    generation.refresh_from_db()
    assert generation.state == state
    assert generation.outputs.count() == 1


def test_a_cancelled_generation_can_run_again_and_frees_its_in_flight_place(
    user: User, settings: Any
) -> None:
    settings.GENERATIONS_IN_FLIGHT_PER_USER = 1
    generation = queued(user)
    with pytest.raises(services.GenerationLimitReached):
        services.generation_retry(generation=queued(user, state=State.FAILED))
    services.generation_cancel(generation=generation)
    assert services.generation_retry(generation=generation)
    generation.refresh_from_db()
    assert (generation.state, generation.finished_at) == (State.QUEUED, None)


def test_the_sweeper_leaves_cancelled_generations_alone(user: User) -> None:
    long_ago = timezone.now() - timedelta(days=1)
    generation = queued(user, claim_token="x", claimed_at=long_ago, queued_at=long_ago)
    services.generation_cancel(generation=generation)
    assert sweep_generations() == 0
    generation.refresh_from_db()
    assert (generation.state, generation.redispatches) == (State.CANCELLED, 0)
