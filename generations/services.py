"""What happens to a 3D generation: started, run by a worker, retried, swept, deleted.

How a job runs exactly once, even when workers die
---------------------------------------------------
Celery runs ``run_generation`` with late acknowledgement: a message is acknowledged only when the
task returns, so a worker killed mid-task (``kill -9``, the OOM killer) leaves its message to be
delivered again — by Redis once the visibility timeout has passed, or at once when the pool saw
its child die (``task_reject_on_worker_lost``). Such a redelivery finds the row ``running``.

Every attempt therefore *claims* the row with a compare-and-swap UPDATE on ``(state,
claim_token)`` that writes a fresh token. A row is claimable when it is ``queued``, or when it is
``running`` under a claim older than ``GENERATION_TIME_LIMIT``: Celery's prefork pool (as
deployed) kills any attempt at that hard limit, so such a claim belongs to a dead attempt and may
be taken over. A delivery that finds
a younger claim does not run; it looks again once that claim has expired (a duplicate delivery
while the holder lives is possible only if the visibility timeout were set below the time limit,
and the holder of a live claim that died is taken over a little later). We chose a lease equal to
the time limit over a heartbeat thread: nothing runs beside the task, and the settings already
guarantee that Redis redelivers only after the lease has expired.

Every later write of an attempt is conditional on its token, so an attempt that lost its claim
(taken over, swept, deleted) stops at its next write and changes nothing. Outputs are unique per
``(generation, index)``; an attempt keeps the outputs a dead one already stored and stores only
the missing ones, each file under a name of its own, and at the end deletes any file in the
generation's folder that no output row refers to (a file written just before a ``kill -9``). So a
generation ends with each output stored exactly once.

The sweeper fails a row still ``running`` (or waiting for an automatic retry) when not even a
redelivery can come any more: its claim is older than the visibility timeout (when Redis
redelivers) plus a grace period for kombu's periodic restore scan. A row queued and never
claimed for ``REDISPATCH_AFTER`` may have lost its message (a Redis restart without persistence
loses every queued one): the sweeper sends its task again — harmless if the first message was
only waiting in a long queue, since the claim lets one delivery run — and fails it with a
sentence after ``MAX_REDISPATCHES`` sends that no worker took up.

Cancelling (``generation_cancel``) sets the state to ``cancelled`` whatever the claim. A queued
generation's task then finds nothing to claim, so it never starts (its message is not revoked:
Celery's revoke lists live in each worker's memory and are lost on restart; the state is what
counts). A running attempt checks its claim while OpenRouter's answer streams in (about once a
second) and before it stores anything, so it lets go of the upstream connection and stops without
storing more; no worker is ever signalled.

When the database goes away mid-attempt (a failover, a restart, dropped connections) nothing can
be written, not even the failure: the attempt raises ``DatabaseUnavailable`` carrying its claim
token, and the task retries later with that token, so the next delivery takes back its own claim
at once instead of waiting for the lease to expire.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from celery.exceptions import SoftTimeLimitExceeded
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.services import NotConnected, api_key_for
from generations import meshes
from generations.models import (
    EXTENSIONS,
    GLB_TYPE,
    PLY_TYPE,
    Generation,
    GenerationOutput,
    generation_folder,
)
from openrouter import client as openrouter
from openrouter.errors import OpenRouterError, free_models_hint

log = logging.getLogger(__name__)

State = Generation.State

# Automatic retries of transient upstream errors (408, 429, 502, 503, network), per run.
MAX_RETRIES = 5
# Claims per run, takeovers of dead attempts included: a job that kills its worker every time
# (say, out of memory) is failed instead of being redelivered forever.
MAX_ATTEMPTS = MAX_RETRIES + 3
# A Retry-After longer than this is not waited for: the generation fails with the upstream's
# sentence instead of holding a delayed message longer than Redis's visibility timeout allows.
MAX_RETRY_AFTER = 300.0
# Time for kombu's periodic scan to restore an unacknowledged message after the visibility
# timeout (by default it scans about every 100 s).
SWEEP_GRACE = timedelta(seconds=300)
# A generation queued this long without any worker claiming it is sent again by the sweeper
# (which runs every minute); after this many such sends it is failed.
REDISPATCH_AFTER = timedelta(minutes=5)
MAX_REDISPATCHES = 3
# The database errors that mean "not reachable right now", not "this query is wrong".
DATABASE_DOWN = (OperationalError, InterfaceError)
SNAPSHOT_SIZE = 100  # generations sent to a page when its socket (re)connects

# What a user reads when a generation fails on our side, by its error code: what happened and
# what to do, in plain words (not "worker", "queue" or "upstream", which name our machinery).
FAILURE_SENTENCES = {
    "queue": "Your request could not be started just now. Try again in a moment.",
    "worker_lost": (
        "The generation was interrupted on our side too many times, so it was stopped. Try again."
    ),
    "internal": "Something went wrong on our side. Try again.",
    "stalled": "The generation stopped making progress on our side and was given up. Try again.",
    "lost": "The generation never started: the request was lost on our side. Try again.",
}


# What went wrong, by the code of an upstream error worth retrying: said while a retry waits and,
# with what to do, once retries are given up. Not OpenRouter's own sentence, whose "try again in
# 7 s" would stay on a failed generation long after those seconds.
TRANSIENT_TROUBLE = {
    "408": "The model took too long to answer",
    "429": "OpenRouter is rate-limiting these requests",
    "502": "The model is down or sent an invalid response",
    "503": "No provider can serve this model right now",
    "network": "OpenRouter could not be reached",
}


def _trouble(exc: OpenRouterError) -> str:
    return TRANSIENT_TROUBLE.get(exc.code, f"OpenRouter answered with an error (HTTP {exc.code})")


def upstream_failure_sentence(exc: OpenRouterError, *, model: str) -> str:
    """What a user reads when an upstream error ends the generation (of ``model``): OpenRouter's
    sentence for a refusal, ours for a transient error given up on (what failed, what to do, no
    countdown)."""
    if not exc.retryable:
        return exc.message
    hint = free_models_hint(model=model) if exc.code == "429" else ""
    return (
        f"{_trouble(exc)}, so the generation was stopped. "
        f"Retry in a few minutes or pick another model.{hint}"
    )


def timeout_sentence() -> str:
    minutes = max(1, settings.GENERATION_TIME_LIMIT // 60)
    limit = "1 minute" if minutes == 1 else f"{minutes} minutes"
    return (
        f"The generation took longer than {limit}, the most allowed, so it was "
        "stopped. Try again, perhaps with fewer inference steps or objects."
    )


class GenerationLimitReached(Exception):
    """The user may not start another generation now; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClaimLost(Exception):
    """This attempt no longer holds the generation: another attempt, the sweeper or a delete
    changed it. The attempt stops without writing anything more."""


class DatabaseUnavailable(Exception):
    """The database could not be reached during an attempt, so nothing about it could be
    written. ``claim_token`` is the attempt's claim (``None`` if it had none yet): the retried
    delivery passes it back to take the claim over at once."""

    def __init__(self, claim_token: str | None) -> None:
        super().__init__("database unavailable")
        self.claim_token = claim_token


# --- starting ---------------------------------------------------------------------------------


def generation_start(
    *,
    user: User,
    prompt: str,
    model: str,
    num_inference_steps: int,
    num_outputs: int,
    extension: str,
) -> Generation:
    """Create a queued generation and dispatch its task once the row is committed.

    Raises ``GenerationLimitReached`` past the per-user caps.
    """
    with transaction.atomic():
        _lock_user(user)
        _check_limits(user)
        generation = Generation.objects.create(
            user=user,
            prompt=prompt,
            model=model,
            num_inference_steps=num_inference_steps,
            num_outputs=num_outputs,
            extension=extension,
        )
        transaction.on_commit(lambda: generation_dispatch(generation=generation))
    return generation


RERUNNABLE = (State.FAILED, State.CANCELLED)
IN_FLIGHT = (State.QUEUED, State.RUNNING)


def generation_retry(*, generation: Generation) -> bool:
    """Run a failed or cancelled generation again from scratch. False when it is neither (any
    more).

    Raises ``GenerationLimitReached`` past the per-user in-flight cap.
    """
    with transaction.atomic():
        _lock_user(generation.user)
        _check_limits(generation.user, count_hourly=False)
        fields = generation.mark_queued(now=timezone.now())
        if not _set_if_state(generation, RERUNNABLE, fields):
            return False
        stale = list(generation.outputs.all())
        generation.outputs.all().delete()
        transaction.on_commit(lambda: _files_delete(stale))
        transaction.on_commit(lambda: generation_dispatch(generation=generation))
    generation_notify(generation=generation)
    return True


def generation_cancel(*, generation: Generation) -> bool:
    """Cancel a queued or running generation, deleting anything it stored; ``False`` (and the
    generation as it is now) when it had already finished. See the module docstring for how a
    running attempt stops."""
    with transaction.atomic():
        if not _set_if_state(generation, IN_FLIGHT, generation.mark_cancelled(now=timezone.now())):
            generation.refresh_from_db()
            return False
        stale = list(generation.outputs.all())
        generation.outputs.all().delete()
        transaction.on_commit(lambda: _files_delete(stale))
    generation_notify(generation=generation)
    log.info("generation %s cancelled", generation.pk)
    return True


def generation_dispatch(*, generation: Generation) -> None:
    """Send the task. If the broker cannot take it, the generation fails now rather than stay
    queued forever."""
    from generations.tasks import run_generation  # tasks import this module

    try:
        run_generation.delay(generation.pk)
    except Exception:
        log.exception("could not queue generation %s", generation.pk)
        fields = generation.mark_failed("queue", FAILURE_SENTENCES["queue"], now=timezone.now())
        generation.save(update_fields=fields)
        generation_notify(generation=generation)


def _lock_user(user: User) -> None:
    # Serialises one user's starts, so two quick submits cannot both slip under the cap.
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()


def _check_limits(user: User, *, count_hourly: bool = True) -> None:
    cap = settings.GENERATIONS_IN_FLIGHT_PER_USER
    in_flight = Generation.objects.filter(user=user, state__in=IN_FLIGHT)
    if in_flight.count() >= cap:
        raise GenerationLimitReached(
            f"You already have {cap} generations in progress. "
            "Wait for one to finish, then try again."
        )
    per_hour = settings.GENERATIONS_PER_HOUR
    recent = Generation.objects.filter(
        user=user, created_at__gte=timezone.now() - timedelta(hours=1)
    )
    if count_hourly and recent.count() >= per_hour:
        raise GenerationLimitReached(
            f"You have started {per_hour} generations in the last hour, the most allowed. "
            "Try again later."
        )


# --- running (in a worker) --------------------------------------------------------------------


def generation_run(
    *, generation_id: int, retries_left: bool, claim_token: str | None = None
) -> float | None:
    """One attempt at a generation: claim it, ask OpenRouter, store the outputs, finish.

    Returns ``None`` when there is nothing more to do for this delivery (finished, failed, gone,
    or already done), or the number of seconds after which to look again because another
    attempt holds a live claim. A transient upstream error with ``retries_left`` puts the
    generation back in the queue and is re-raised for the task to retry later; a database
    outage raises ``DatabaseUnavailable`` for the task to retry with ``claim_token`` (this
    attempt's claim, which the retry takes back); any other failure ends the generation
    ``failed`` with the upstream code and a sentence.
    """
    try:
        generation = generation_claim(generation_id=generation_id, own_token=claim_token)
        if generation is None:
            return _live_claim_remaining(generation_id)
    except DATABASE_DOWN as exc:
        raise DatabaseUnavailable(claim_token) from exc
    token = generation.claim_token
    try:
        _attempt(generation, token, retries_left)
    except DATABASE_DOWN as exc:
        log.warning("generation %s: database unavailable, will retry", generation_id)
        raise DatabaseUnavailable(token) from exc
    return None


def _attempt(generation: Generation, token: str, retries_left: bool) -> None:
    generation_id = generation.pk
    generation_notify(generation=generation)
    try:
        _produce(generation, token)
    except DATABASE_DOWN:
        raise  # nothing can be written now, not even a failure: the task retries
    except meshes.InvalidMesh as exc:
        log.warning("generation %s: invalid output refused: %s", generation_id, exc.reason)
        if _finish_failed(generation, token, "invalid_output", meshes.InvalidMesh.MESSAGE):
            _outputs_discard(generation)
    except ClaimLost:
        if Generation.objects.filter(pk=generation_id, state=State.CANCELLED).exists():
            log.info("generation %s: cancelled, attempt stopped", generation_id)
        else:
            log.info("generation %s: claim lost, attempt stopped", generation_id)
    except NotConnected as exc:
        _finish_failed(generation, token, "not_connected", exc.message)
    except OpenRouterError as exc:
        if exc.retryable and retries_left and (exc.retry_after or 0) <= MAX_RETRY_AFTER:
            _release(generation, token, exc)
            raise
        sentence = upstream_failure_sentence(exc, model=generation.model)
        _finish_failed(generation, token, exc.code, sentence)
    except SoftTimeLimitExceeded:
        _finish_failed(generation, token, "timeout", timeout_sentence())
    except Exception:
        log.exception("generation %s failed unexpectedly", generation_id)
        _finish_failed(generation, token, "internal", FAILURE_SENTENCES["internal"])


def generation_claim(
    *, generation_id: int, now: datetime | None = None, own_token: str | None = None
) -> Generation | None:
    """Take the generation for this attempt (see the module docstring), or ``None``.

    ``own_token`` is the claim of an earlier attempt of this same task that stopped for a
    database outage: while the row still carries it, it is taken back without waiting for the
    lease to expire.
    """
    now = now or timezone.now()
    generation = Generation.objects.filter(pk=generation_id).first()
    if generation is None or not _claimable(generation, now, own_token):
        return None
    previous = {"state": generation.state, "claim_token": generation.claim_token}
    if generation.state == State.RUNNING and generation.attempts >= MAX_ATTEMPTS:
        _give_up(generation, previous, now)
        return None
    if not _compare_and_set(generation, previous, generation.mark_running(token=_token(), now=now)):
        return None  # another attempt got there first
    if previous["state"] == State.RUNNING:
        log.warning("generation %s: took over from a dead attempt", generation_id)
    return generation


def _token() -> str:
    return uuid.uuid4().hex


def _claimable(generation: Generation, now: datetime, own_token: str | None = None) -> bool:
    if generation.state == State.QUEUED:
        return True
    if generation.state != State.RUNNING:
        return False
    if own_token and generation.claim_token == own_token:
        return True
    return generation.claim_expired(now, _lease())


def _lease() -> timedelta:
    return timedelta(seconds=settings.GENERATION_TIME_LIMIT)


def _live_claim_remaining(generation_id: int) -> float | None:
    generation = Generation.objects.filter(pk=generation_id, state=State.RUNNING).first()
    if generation is None or generation.claimed_at is None:
        return None
    expires = generation.claimed_at + _lease()
    return max(1.0, (expires - timezone.now()).total_seconds() + 1.0)


def _give_up(generation: Generation, previous: dict[str, str], now: datetime) -> None:
    fields = generation.mark_failed("worker_lost", FAILURE_SENTENCES["worker_lost"], now=now)
    if _compare_and_set(generation, previous, fields):
        generation_notify(generation=generation)


def _produce(generation: Generation, token: str) -> None:
    api_key = api_key_for(user=generation.user_id)
    payload = generation_payload(generation=generation)
    outputs = openrouter.generate_object(
        api_key, payload, check=lambda: _check_claim(generation, token)
    )
    outputs = outputs[: generation.num_outputs]
    if not outputs:
        raise OpenRouterError.bad_response("no usable output in the response")
    for index, output in enumerate(outputs):
        _progress(generation, token, f"Storing object {index + 1} of {len(outputs)}…")
        data = openrouter.fetch_output(
            output,
            max_bytes=settings.GENERATION_MAX_OUTPUT_BYTES,
            allow_private=settings.GENERATION_ALLOW_PRIVATE_URLS,
        )
        output_store(generation=generation, index=index, data=data, token=token)
    outputs_prune(generation=generation)
    _save_claimed(generation, token, generation.mark_succeeded(now=timezone.now()))
    generation_notify(generation=generation)
    log.info("generation %s succeeded with %d outputs", generation.pk, len(outputs))


def generation_payload(*, generation: Generation) -> dict[str, Any]:
    return {
        "prompt": generation.prompt,
        "model": generation.model,
        "num_inference_steps": generation.num_inference_steps,
        "num_outputs": generation.num_outputs,
        "extension": generation.extension,
    }


def _check_claim(generation: Generation, token: str) -> None:
    """Raise ``ClaimLost`` if this attempt no longer holds the generation (it was cancelled,
    deleted or taken over). A database that cannot answer right now stops nothing: the attempt
    goes on and its next write tells."""
    try:
        held = Generation.objects.filter(
            pk=generation.pk, claim_token=token, state=State.RUNNING
        ).exists()
    except DATABASE_DOWN:
        return
    if not held:
        raise ClaimLost


def _set_if_state(generation: Generation, states: Iterable[str], fields: list[str]) -> bool:
    """Write ``fields`` only if the row is in one of ``states``."""
    values = {name: getattr(generation, name) for name in fields}
    return Generation.objects.filter(pk=generation.pk, state__in=states).update(**values) == 1


def _compare_and_set(generation: Generation, expected: dict[str, Any], fields: list[str]) -> bool:
    """Write ``fields`` only if the row still has the ``expected`` values — the one way a
    generation changes state, so two writers can never both win."""
    values = {name: getattr(generation, name) for name in fields}
    return Generation.objects.filter(pk=generation.pk, **expected).update(**values) == 1


def _save_claimed(generation: Generation, token: str, fields: list[str]) -> None:
    """Save ``fields`` only while this attempt still holds its claim; else ``ClaimLost``."""
    if not _compare_and_set(generation, {"claim_token": token, "state": State.RUNNING}, fields):
        raise ClaimLost


def _progress(generation: Generation, token: str, text: str) -> None:
    generation.progress = text
    _save_claimed(generation, token, ["progress"])
    generation_notify(generation=generation)


def _release(generation: Generation, token: str, exc: OpenRouterError) -> None:
    text = f"{_trouble(exc)}. Trying again shortly…"
    try:
        _save_claimed(generation, token, generation.mark_waiting(progress=text))
    except ClaimLost:
        return
    generation_notify(generation=generation)
    log.info("generation %s: transient error %s, will retry", generation.pk, exc.code)


def _finish_failed(generation: Generation, token: str, code: str, message: str) -> bool:
    """Fail the generation while this attempt holds it; False if it no longer does."""
    try:
        _save_claimed(generation, token, generation.mark_failed(code, message, now=timezone.now()))
    except ClaimLost:
        return False
    generation_notify(generation=generation)
    log.info("generation %s failed: %s", generation.pk, code)
    return True


# --- outputs ----------------------------------------------------------------------------------


def content_type_of(data: bytes) -> str:
    """What the bytes are, from their magic number — not from what the upstream claimed."""
    if data[:4] == b"glTF":
        return GLB_TYPE
    if data[:3] == b"ply" and data[3:4] in (b"\n", b"\r"):
        return PLY_TYPE
    return "application/octet-stream"


def output_store(
    *, generation: Generation, index: int, data: bytes, token: str
) -> GenerationOutput:
    """Store output ``index`` once. If an earlier attempt already stored it, that one is kept.

    Raises ``meshes.InvalidMesh`` (storing nothing) unless ``data`` is a well-formed PLY or GLB.
    """
    existing = generation.outputs.filter(index=index).first()
    if existing is not None:
        return existing
    content_type = meshes.mesh_type(data)
    output = GenerationOutput(
        generation=generation,
        index=index,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
    )
    name = f"output-{index + 1}-{token[:8]}.{EXTENSIONS[content_type]}"
    output.file.save(name, ContentFile(data), save=False)
    try:
        with transaction.atomic():
            # Under the row's lock, so a cancel or a delete either comes first (and nothing is
            # stored) or comes after and finds this output to delete.
            if not _claim_locked(generation, token):
                raise ClaimLost
            output.save()
    except ClaimLost:
        output.file.delete(save=False)
        raise
    except IntegrityError:
        # A concurrent attempt stored this index first, or the generation was deleted.
        output.file.delete(save=False)
        existing = generation.outputs.filter(index=index).first()
        if existing is None:
            raise ClaimLost from None
        return existing
    return output


def _claim_locked(generation: Generation, token: str) -> bool:
    held = Generation.objects.select_for_update().filter(
        pk=generation.pk, claim_token=token, state=State.RUNNING
    )
    return held.values_list("pk").first() is not None


def _outputs_discard(generation: Generation) -> None:
    """Delete what a failed run stored (earlier valid outputs of the same run), so a refused
    output leaves nothing behind."""
    stale = list(generation.outputs.all())
    generation.outputs.all().delete()
    _files_delete(stale)
    outputs_prune(generation=generation)


def outputs_prune(*, generation: Generation) -> list[str]:
    """Delete files in the generation's folder that no output refers to; returns their names."""
    kept = set(generation.outputs.values_list("file", flat=True))
    orphans = [name for name in _folder_files(generation) if name not in kept]
    for name in orphans:
        default_storage.delete(name)
    return orphans


def _folder_files(generation: Generation) -> list[str]:
    folder = generation_folder(generation)
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    return [f"{folder}/{name}" for name in files]


def _files_delete(outputs: list[GenerationOutput]) -> None:
    for output in outputs:
        output.file.delete(save=False)


# --- deleting ---------------------------------------------------------------------------------


def generation_delete(*, generation: Generation) -> None:
    """Delete the generation, its outputs and every file in its folder (stray ones included).

    A worker still running it loses its claim and stops at its next write.
    """
    files = _folder_files(generation)
    generation.delete()
    for name in files:
        default_storage.delete(name)


# --- sweeping ---------------------------------------------------------------------------------


def generation_sweep(*, now: datetime | None = None) -> int:
    """Fail generations that no worker will finish any more; returns how many.

    That is a generation still ``running``, or waiting for an automatic retry, whose last claim
    is older than the visibility timeout plus a grace period. See the module docstring for why
    not the time limit alone: failing earlier would beat Redis's redelivery of a killed job.
    A generation queued but never claimed for ``REDISPATCH_AFTER`` is sent again (see
    ``generations_redispatch``); those are not counted.
    """
    now = now or timezone.now()
    generations_redispatch(now=now)
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    limit = timedelta(seconds=max(visibility, settings.GENERATION_TIME_LIMIT)) + SWEEP_GRACE
    stuck = Generation.objects.filter(
        state__in=[State.QUEUED, State.RUNNING], claimed_at__lt=now - limit
    )
    message = FAILURE_SENTENCES["stalled"]
    swept = 0
    for generation in stuck:
        seen = {"state": generation.state, "claim_token": generation.claim_token}
        if _compare_and_set(generation, seen, generation.mark_failed("stalled", message, now=now)):
            generation_notify(generation=generation)
            swept += 1
    if swept:
        log.warning("swept %d stalled generations", swept)
    return swept


def generations_redispatch(*, now: datetime | None = None) -> int:
    """Send again the task of each generation queued and never claimed for ``REDISPATCH_AFTER``
    (its message may have died with Redis); fail it with a sentence once it was sent
    ``MAX_REDISPATCHES`` times in vain. Returns how many were sent again.

    A duplicate delivery is harmless: the claim lets only one of them run.
    """
    now = now or timezone.now()
    forgotten = Generation.objects.filter(
        state=State.QUEUED, claimed_at__isnull=True, queued_at__lt=now - REDISPATCH_AFTER
    )
    message = FAILURE_SENTENCES["lost"]
    sent = 0
    for generation in forgotten:
        seen = {"state": State.QUEUED, "claimed_at": None, "queued_at": generation.queued_at}
        if generation.redispatches >= MAX_REDISPATCHES:
            if _compare_and_set(generation, seen, generation.mark_failed("lost", message, now=now)):
                generation_notify(generation=generation)
            continue
        if _compare_and_set(generation, seen, generation.mark_redispatched(now=now)):
            generation_dispatch(generation=generation)
            sent += 1
    if sent:
        log.warning("re-sent %d generations no worker had claimed", sent)
    return sent


# --- telling the browser ----------------------------------------------------------------------


def user_group(user_id: int) -> str:
    return f"generations.user.{user_id}"


def generation_event(*, generation: Generation) -> dict[str, Any]:
    """What the page is told about a generation: never the key, never a file path."""
    duration = generation.duration
    return {
        "id": generation.pk,
        "state": generation.state,
        "state_label": generation.get_state_display(),
        "progress": generation.progress,
        "error_code": generation.error_code,
        "error_message": generation.error_message,
        "retry_can_help": generation.retry_can_help,
        "attempts": generation.attempts,
        "started_at": generation.started_at.isoformat() if generation.started_at else None,
        "duration": duration.total_seconds() if duration is not None else None,
        "url": generation.get_absolute_url(),
        "outputs": [
            {
                "number": output.number,
                "url": output.get_absolute_url(),
                "extension": output.extension,
                "size": output.size,
                "viewable": output.viewable,
            }
            for output in (generation.outputs.all() if generation.state == State.SUCCEEDED else [])
        ],
    }


def generation_snapshot(*, user_id: int) -> list[dict[str, Any]]:
    """The events a page that just (re)connected may have missed: the user's generations in
    flight or finished within the hour."""
    hour_ago = timezone.now() - timedelta(hours=1)
    recent = Generation.objects.filter(
        Q(state__in=[State.QUEUED, State.RUNNING]) | Q(finished_at__gte=hour_ago), user_id=user_id
    ).prefetch_related("outputs")[:SNAPSHOT_SIZE]
    return [generation_event(generation=generation) for generation in recent]


def generation_notify(*, generation: Generation) -> None:
    """Push the generation's state to every open page of its owner. Best effort: the state is
    in the database either way, and a page that missed an event gets it on reload."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "generation.update", "generation": generation_event(generation=generation)}
    try:
        async_to_sync(layer.group_send)(user_group(generation.user_id), message)
    except Exception:
        log.warning("could not notify about generation %s", generation.pk, exc_info=True)
