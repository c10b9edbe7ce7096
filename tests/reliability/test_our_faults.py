"""Faults on our side, on the real stack: Redis killed and restarted, the web process SIGKILLed,
a browser that vanishes, PostgreSQL refusing connections. Each test says what the user sees and
checks that nothing is lost or stored twice. (A worker SIGKILLed mid-generation is proven in
tests/generations/test_worker_crash.py.) The same stack also takes the two upstream faults that
tests/chat/test_streaming.py does not send through a socket: a slow connect and an HTML body.

The sandbox is deterministic: ``reply_text`` is exactly what a whole answer must be, so a lost or
repeated piece of text cannot go unnoticed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.files.storage import default_storage
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from chat.models import Message
from chat.services import streams_sweep
from generations.models import Generation
from openrouter.sandbox.catalog import DEFAULT_CHAT_MODEL
from openrouter.sandbox.replies import reply_text
from tests import services
from tests.reliability.conftest import (
    Person,
    Shown,
    Stack,
    Tab,
    database_unavailable,
    eventually,
    quick_user,
    start_stack,
    using_redis,
)

pytestmark = pytest.mark.django_db(transaction=True)

FINAL = {"complete", "stopped", "error", "interrupted"}
LONG = "Tell me a long story about harbours"  # ~650 tokens: several seconds at 10 ms a token


@pytest.fixture(scope="module")
def stack(django_db_setup: None, django_db_blocker: Any) -> Iterator[Stack]:
    with django_db_blocker.unblock():
        stack = start_stack(token_delay=0.01, generation_delay=1.5)
    yield stack
    stack.stop()


@pytest.fixture
def person(stack: Stack) -> Iterator[Person]:
    user = quick_user()
    stack.connect(user)
    person = Person(stack.url, user)
    yield person
    person.close()


def message_id_of(frame: dict[str, Any]) -> int | None:
    message = frame.get("message")
    return message if isinstance(message, int) else (message or {}).get("id")


def reopen(person: Person, conversation: int, since: int, timeout: float = 30.0) -> Tab:
    """What the page does when its socket closes: reconnect (with backoff) and subscribe from
    the answer on, getting the text so far, then the live rest."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            tab = person.tab()
            tab.send(type="subscribe", conversation=conversation, since=since)
            return tab
        except (OSError, InvalidHandshake, ConnectionClosed):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def follow(
    person: Person, tab: Tab, shown: Shown, conversation: int, answer: int, timeout: float = 60
) -> Tab:
    """Reads ``answer`` to its end as the page would, reconnecting whenever the socket closes."""
    deadline = time.monotonic() + timeout
    while shown.done is None and shown.state not in FINAL:
        if time.monotonic() > deadline:
            raise AssertionError(f"answer {answer} never ended; the tab shows {shown}")
        try:
            frame = tab.receive(max(0.1, deadline - time.monotonic()))
        except (ConnectionClosed, OSError):
            tab = reopen(person, conversation, answer)
            continue
        except TimeoutError:
            continue
        assert frame["type"] != "error", frame
        if message_id_of(frame) == answer:
            shown.apply(frame)
    return tab


def start_answer(tab: Tab, text: str, **frame: Any) -> tuple[Shown, int, int]:
    """Send a prompt; read until the answer is well under way. Returns (shown, conv, answer)."""
    tab.send(type="send", text=text, **{"conversation": None, **frame})
    shown = Shown()
    frames = tab.until(lambda f: f["type"] == "delta" and f["seq"] > 150)
    started = next(f for f in frames if f["type"] == "started")
    answer = started["message"]["id"]
    for f in frames:
        if message_id_of(f) == answer:
            shown.apply(f)
    return shown, started["conversation"]["id"], answer


def ask(person: Person, conversation: int | None, text: str) -> Message:
    """A whole prompt-and-answer round trip in a fresh tab; returns the stored answer."""
    tab = person.tab()
    try:
        tab.send(type="send", conversation=conversation, text=text)
        started = tab.until(lambda f: f["type"] in {"started", "error"})[-1]
        assert started["type"] == "started", started
        answer = started["message"]["id"]
        tab.until(lambda f: f["type"] == "done" and message_id_of(f) == answer)
        return Message.objects.get(pk=answer)
    finally:
        tab.close()


def post_generation(person: Person, prompt: str, outputs: int = 2) -> Generation:
    form = {"prompt": prompt, "model": "openai/shap-e", "num_inference_steps": 8}
    response = person.post(
        "/generations/new/", {**form, "num_outputs": outputs, "extension": "ply"}
    )
    assert response.status_code == 302, response.text[:500]
    return Generation.objects.get(pk=int(response.headers["location"].rstrip("/").split("/")[-1]))


def final(generation: Generation, timeout: float = 20) -> Generation:
    def check() -> Generation | None:
        generation.refresh_from_db()
        return generation if not generation.in_flight else None

    try:
        return eventually(check, f"generation {generation.pk} to end", timeout)
    except AssertionError:
        raise AssertionError(
            f"generation {generation.pk} is still {generation.state!r} "
            f"(attempts {generation.attempts}, progress {generation.progress!r})"
        ) from None


def stored_exactly_once(generation: Generation) -> None:
    indexes = list(generation.outputs.values_list("index", flat=True))
    assert indexes == list(range(generation.num_outputs))
    _, files = default_storage.listdir(f"generations/{generation.user_id}/{generation.pk}")
    assert len(files) == generation.num_outputs, files


def sweep_generations_later(stack: Stack, hours: int = 2) -> str:
    """Run the generations sweeper inside the stack (its Redis is the broker a re-dispatch would
    use), as beat would run it ``hours`` from now: the only way to compress its clock."""
    code = (
        "from datetime import timedelta; from django.utils import timezone; "
        "from generations.services import generation_sweep; "
        f"print(generation_sweep(now=timezone.now() + timedelta(hours={hours})))"
    )
    result = subprocess.run(
        [services.PYTHON, "manage.py", "shell", "-c", code],
        cwd=services.ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- Redis ------------------------------------------------------------------------------------


def test_redis_killed_and_restarted_mid_stream_the_answer_is_whole_and_the_app_recovers(
    stack: Stack, person: Person
) -> None:
    tab = person.tab()
    shown, conversation, answer = start_answer(tab, LONG)

    stack.kill_redis()
    stack.start_redis()
    tab = follow(person, tab, shown, conversation, answer)

    expected = reply_text(model=DEFAULT_CHAT_MODEL, prompt=LONG)
    message = Message.objects.get(pk=answer)
    assert (message.state, message.content) == ("complete", expected)
    assert shown.text == expected  # what the user read: all of it, nothing twice
    tab.close()
    # Recovered without a restart: the same web process answers the next prompt.
    again = ask(person, conversation, "hello again")
    assert (again.state, again.content) == (
        "complete",
        reply_text(model=DEFAULT_CHAT_MODEL, prompt="hello again"),
    )
    assert stack.web is not None and stack.web.alive()


def test_redis_killed_and_restarted_mid_generation_no_generation_is_lost_or_stuck(
    stack: Stack, person: Person
) -> None:
    running = post_generation(person, "a wooden chair")
    eventually(
        lambda: Generation.objects.filter(pk=running.pk, state="running").exists(),
        "the first generation to run",
    )
    waiting = post_generation(person, "a stone table")  # queued behind it: its message is in Redis

    stack.kill_redis()
    stack.start_redis()

    running = final(running)
    assert running.state == "succeeded", running.error_message
    stored_exactly_once(running)
    # The queued job's message died with Redis. Beat's sweeper must not leave it queued forever
    # (it holds one of the user's few in-flight places): re-run, or failed with a sentence.
    sweep_generations_later(stack)
    waiting = final(waiting)
    if waiting.state == "succeeded":
        stored_exactly_once(waiting)
    else:
        assert waiting.error_message and waiting.outputs.count() == 0
    # And the worker took up its broker again without a restart.
    after = final(post_generation(person, "a glass ball", outputs=1))
    assert after.state == "succeeded", after.error_message
    stored_exactly_once(after)
    assert all(worker.alive() for worker in stack.workers)


@pytest.mark.parametrize("model", ["sandbox/slow-connect", "sandbox/not-json"])
def test_an_upstream_that_never_answers_or_answers_html_ends_the_answer_with_a_sentence(
    stack: Stack, person: Person, model: str
) -> None:
    """The two upstream faults tests/chat/test_streaming.py does not send through a socket."""
    tab = person.tab()
    tab.send(type="send", conversation=None, text="hello", model=model)
    started = tab.until(lambda f: f["type"] in {"started", "error"})[-1]
    assert started["type"] == "started", started
    answer = started["message"]["id"]
    done = tab.until(lambda f: f["type"] == "done" and message_id_of(f) == answer)[-1]
    tab.close()
    message = Message.objects.get(pk=answer)
    assert done["message"]["state"] == message.state == "error"
    assert message.error_message and message.error_message == done["message"]["error"]["message"]
    assert message.content == ""


# --- the web process --------------------------------------------------------------------------


def test_the_web_process_killed_mid_stream_leaves_an_interrupted_answer_with_its_text(
    stack: Stack, person: Person
) -> None:
    tab = person.tab()
    shown, conversation, answer = start_answer(tab, LONG)
    eventually(
        lambda: Message.objects.filter(pk=answer, content__gt="").exists(),
        "a checkpoint of the streaming answer",
    )
    assert stack.web is not None
    stack.web.kill()  # SIGKILL: no shutdown handler runs
    with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
        while True:  # what had reached the tab before its server died
            frame = tab.receive(5)
            if message_id_of(frame) == answer:
                shown.apply(frame)
    seen = shown.text

    # The next process serves the user: the page reconnects to it and sees the text so far.
    person.base_url = stack.start_web()
    person.http.base_url = httpx.URL(person.base_url)
    tab = reopen(person, conversation, answer)
    frames = tab.until(lambda f: f["type"] == "subscribed")
    snapshot = next(f for f in frames if message_id_of(f) == answer)
    assert snapshot["message"]["state"] == "streaming"

    # Beat's sweeper (every 30 s) finds the writer silent and ends the answer, text kept.
    with using_redis(stack.redis_url):
        eventually(
            lambda: answer in {m.pk for m in streams_sweep(stale_after=2)},
            "the sweeper to interrupt the orphaned answer",
        )
    done = tab.until(lambda f: f["type"] == "done" and message_id_of(f) == answer)[-1]
    assert done["message"]["state"] == "interrupted"
    message = Message.objects.get(pk=answer)
    expected = reply_text(model=DEFAULT_CHAT_MODEL, prompt=LONG)
    assert (message.state, message.error_code) == ("interrupted", "writer_lost")
    # The text so far is kept: a true beginning of the answer, all the user had read but the
    # last unsaved moment (CHAT_SAVE_INTERVAL), and what the next process shows.
    assert message.content and expected.startswith(message.content)
    assert expected.startswith(seen)
    assert snapshot["message"]["text"] == message.content

    # Retry on the new process gives the whole answer in place of the cut one.
    tab.send(type="retry", message=answer)
    started = tab.until(lambda f: f["type"] in {"started", "error"})[-1]
    assert started["type"] == "started" and started["replaces"] == answer, started
    retried_id = started["message"]["id"]
    done = tab.until(lambda f: f["type"] == "done" and message_id_of(f) == retried_id)[-1]
    assert done["message"]["state"] == "complete"
    retried = Message.objects.get(pk=retried_id)
    assert retried.content == expected
    assert not Message.objects.filter(pk=answer).exists()
    assert Message.objects.filter(conversation_id=conversation, role="assistant").count() == 1
    tab.close()


def test_a_browser_that_vanishes_mid_stream_loses_nothing(stack: Stack, person: Person) -> None:
    tab = person.tab()
    shown, conversation, answer = start_answer(tab, LONG)
    tab.drop()  # no closing handshake: the laptop lid shuts

    message = eventually(
        lambda: Message.objects.filter(pk=answer).exclude(state="streaming").first(),
        "the answer to end with no tab open",
        timeout=30,
    )
    expected = reply_text(model=DEFAULT_CHAT_MODEL, prompt=LONG)
    assert (message.state, message.content) == ("complete", expected)
    assert message.content.startswith(shown.text)
    back = reopen(person, conversation, answer)
    frames = back.until(lambda f: f["type"] == "subscribed")
    snapshot = next(f for f in frames if message_id_of(f) == answer)
    assert (snapshot["message"]["state"], snapshot["message"]["text"]) == ("complete", expected)
    back.close()


# --- the database -----------------------------------------------------------------------------


def test_the_database_briefly_unavailable_mid_stream_and_mid_generation(
    stack: Stack, person: Person
) -> None:
    generation = post_generation(person, "a small house")
    eventually(
        lambda: Generation.objects.filter(pk=generation.pk, state="running").exists(),
        "the generation to run",
    )
    tab = person.tab()
    shown, conversation, answer = start_answer(tab, LONG)

    with database_unavailable():
        # What the user sees meanwhile: an error page, and /healthz names the database.
        assert person.get("/chat/").status_code == 500
        health = httpx.get(f"{stack.url}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["database"].startswith("error")
        time.sleep(2.5)  # outlasts the generation's upstream call (1.5 s): its writes fail

    # The stream went on in memory; its end is stored whole once the database is back.
    tab = follow(person, tab, shown, conversation, answer)
    expected = reply_text(model=DEFAULT_CHAT_MODEL, prompt=LONG)
    message = Message.objects.get(pk=answer)
    assert (message.state, message.content) == ("complete", expected)
    assert shown.text == expected
    tab.close()
    # Recovered without a restart.
    assert person.get("/chat/").status_code == 200
    assert ask(person, conversation, "still there?").state == "complete"
    # The generation whose writes failed must not stay "running" until the hour-scale sweeper.
    generation = final(generation)
    if generation.state == "succeeded":
        stored_exactly_once(generation)
    else:
        assert generation.error_message and generation.outputs.count() == 0
