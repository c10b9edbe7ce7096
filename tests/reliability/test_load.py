"""Fifty people chatting and generating at once, for a bounded half-minute, on the real stack
(one uvicorn process, two Celery workers, Redis, PostgreSQL, the sandbox). Afterwards: every
prompt has exactly one answer, in a final state, whose stored text is exactly the sandbox's
(nothing lost or repeated) and is what the person saw; no generation is stuck; no output is
stored twice; every refusal was a clear one.

The figures are printed (``-s`` shows them); nothing here asserts speed.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.core.files.storage import default_storage
from websockets.asyncio.client import ClientConnection, connect

from accounts.models import User
from chat.models import Message
from generations.models import Generation
from openrouter.sandbox.replies import reply_text
from tests.reliability.conftest import (
    Shown,
    Stack,
    eventually,
    quick_user,
    session_cookie,
    start_stack,
)

pytestmark = pytest.mark.django_db(transaction=True)

USERS = 50
SECONDS = 30.0
FINAL = {"complete", "stopped", "error", "interrupted"}
CLEAR_CODES = {"rate_limited", "busy"}  # what a person sending fast may be told
# Most people chat with their default model; some pick one that fails in each way it can.
MODELS = [""] * 12 + [
    "openai/gpt-4o",
    "sandbox/error-502",
    "sandbox/midstream-error",
    "sandbox/drop",
    "sandbox/truncated",
]
TOPICS = ["rivers", "a python function", "bread", "the long history of maps", "sorting", "bees"]


@pytest.fixture(scope="module")
def stack(django_db_setup: None, django_db_blocker: Any) -> Iterator[Stack]:
    with django_db_blocker.unblock():
        stack = start_stack(token_delay=0.01, generation_delay=0.3, workers=2)
    yield stack
    stack.stop()


@dataclass
class Tally:
    sends: int = 0
    answers: dict[int, Shown] = field(default_factory=dict)  # followed to their end
    refusals: Counter[str] = field(default_factory=Counter)
    stops: int = 0
    tabs_closed_mid_answer: int = 0
    generation_posts: Counter[int] = field(default_factory=Counter)
    unclear: list[Any] = field(default_factory=list)


class SimulatedPerson:
    def __init__(self, number: int, stack: Stack, sessionid: str, tally: Tally) -> None:
        self.rng = random.Random(number)
        self.stack, self.sessionid, self.tally = stack, sessionid, tally
        self.conversation: int | None = None
        self.csrf = secrets.token_hex(16)
        posts = 2 if number % 5 == 4 else 1  # one in five people generates twice
        self.generations_at = sorted(self.rng.uniform(0, SECONDS / 2) for _ in range(posts))

    async def open_tab(self) -> ClientConnection:
        return await connect(
            self.stack.url.replace("http://", "ws://") + "/ws/chat/",
            additional_headers={"Origin": self.stack.url, "Cookie": f"sessionid={self.sessionid}"},
            max_size=None,
            open_timeout=30,
        )

    async def receive(self, tab: ClientConnection) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(tab.recv(), timeout=30)))

    async def live(self, until: float) -> None:
        cookies = {"sessionid": self.sessionid, "csrftoken": self.csrf}
        async with httpx.AsyncClient(base_url=self.stack.url, cookies=cookies, timeout=60) as http:
            tab = await self.open_tab()
            started = time.monotonic()
            while time.monotonic() < until:
                if self.generations_at and time.monotonic() - started > self.generations_at[0]:
                    self.generations_at.pop(0)
                    await self.generate(http)
                tab = await self.chat(tab)
                await asyncio.sleep(self.rng.uniform(0.2, 1.0))  # reading, thinking, typing
            await tab.close()

    async def generate(self, http: httpx.AsyncClient) -> None:
        model = "sandbox/error-400" if self.rng.random() < 0.1 else "openai/shap-e"
        form = {
            "prompt": f"a {self.rng.choice(['chair', 'ball', 'donut', 'tree'])}",
            "model": model,
            "num_inference_steps": "8",
            "num_outputs": str(self.rng.randint(1, 3)),
            "extension": self.rng.choice(["ply", "glb"]),
            "csrfmiddlewaretoken": self.csrf,
        }
        response = await http.post("/generations/new/", data=form)
        self.tally.generation_posts[response.status_code] += 1
        if response.status_code == 429 and "generations" not in response.text:
            self.tally.unclear.append(("generation 429 without a sentence", response.text[:200]))

    async def chat(self, tab: ClientConnection) -> ClientConnection:
        prompt = f"Tell me about {self.rng.choice(TOPICS)} #{self.rng.randint(1, 9)}"
        frame: dict[str, Any] = {"type": "send", "conversation": self.conversation, "text": prompt}
        model = self.rng.choice(MODELS)
        if model is not None:
            frame["model"] = model
        await tab.send(json.dumps(frame))
        self.tally.sends += 1
        first = await self.receive(tab)
        while first["type"] not in {"started", "error"}:  # a late "done" of a stopped answer
            first = await self.receive(tab)
        if first["type"] == "error":
            self.tally.refusals[first["code"]] += 1
            if first["code"] not in CLEAR_CODES:
                self.tally.unclear.append(first)
            return tab
        assert first["type"] == "started", first
        self.conversation = first["conversation"]["id"]
        answer = first["message"]["id"]
        shown = Shown()
        shown.apply(first)
        behaviour = self.rng.random()
        while shown.done is None:
            frame = await self.receive(tab)
            if frame["type"] == "error":
                self.tally.unclear.append(frame)
                continue
            message = frame.get("message")
            if (message if isinstance(message, int) else (message or {}).get("id")) == answer:
                shown.apply(frame)
            if frame["type"] == "delta" and shown.seq > 40:
                if behaviour < 0.05:  # closes the tab mid-answer, opens a new one
                    self.tally.tabs_closed_mid_answer += 1
                    await tab.close()
                    return await self.open_tab()
                if behaviour < 0.10:
                    self.tally.stops += 1
                    behaviour = 1.0  # one stop is enough
                    await tab.send(json.dumps({"type": "stop", "message": answer}))
        self.tally.answers[answer] = shown
        return tab


async def crowd(stack: Stack, sessions: list[str], tally: Tally) -> None:
    until = time.monotonic() + SECONDS
    people = [SimulatedPerson(n, stack, s, tally) for n, s in enumerate(sessions)]
    await asyncio.gather(*(person.live(until) for person in people))


def test_fifty_people_chatting_and_generating_at_once_lose_and_repeat_nothing(
    stack: Stack,
) -> None:
    users: list[User] = []
    for _ in range(USERS):
        user = quick_user()
        stack.connect(user)
        users.append(user)
    sessions = [session_cookie(user) for user in users]
    tally = Tally()
    began = time.monotonic()
    asyncio.run(crowd(stack, sessions, tally))
    load_seconds = time.monotonic() - began

    # Let what is still running end: answers of closed tabs, queued generations.
    eventually(
        lambda: not Message.objects.filter(state="streaming").exists(),
        "every answer to end",
        timeout=60,
    )
    eventually(
        lambda: not Generation.objects.filter(state__in=["queued", "running"]).exists(),
        "every generation to end",
        timeout=90,
    )

    # Every prompt has exactly one answer after it, in a final state, with the exact text.
    messages = list(Message.objects.filter(conversation__user__in=users).order_by("id"))
    by_conversation: dict[int, list[Message]] = {}
    for message in messages:
        by_conversation.setdefault(message.conversation_id, []).append(message)
    states: Counter[str] = Counter()
    problems = []
    for thread in by_conversation.values():
        roles = [m.role for m in thread]
        if roles != ["user", "assistant"] * (len(thread) // 2) or len(thread) % 2:
            problems.append(("not prompt, answer, prompt, answer…", thread[0].conversation_id))
            continue
        for prompt, answer in zip(thread[::2], thread[1::2], strict=True):
            states[answer.state] += 1
            if answer.state not in FINAL:
                problems.append(("not final", answer.pk, answer.state))
                continue
            model = answer.model_served or answer.model_requested
            whole = reply_text(model=model, prompt=prompt.content) if model else None
            if answer.state == "complete" and answer.content != whole:
                problems.append(("complete but not the exact text", answer.pk, model))
            elif whole is not None and not whole.startswith(answer.content):
                problems.append(("partial text that is not a beginning", answer.pk, model))
            seen = tally.answers.get(answer.pk)
            if seen is not None and answer.state == "complete" and seen.text != answer.content:
                problems.append(("the person saw other text than was stored", answer.pk))
    assert not problems, problems[:20]
    assert not tally.unclear, tally.unclear[:10]
    assert sum(states.values()) == tally.sends - sum(tally.refusals.values())

    # No generation stuck; every output stored exactly once, files included.
    generations = list(Generation.objects.filter(user__in=users).prefetch_related("outputs"))
    generation_states = Counter(g.state for g in generations)
    for generation in generations:
        indexes = sorted(o.index for o in generation.outputs.all())
        folder = f"generations/{generation.user_id}/{generation.pk}"
        _, files = default_storage.listdir(folder) if default_storage.exists(folder) else ([], [])
        if generation.state == "succeeded":
            assert indexes == list(range(generation.num_outputs)), generation.pk
            assert len(files) == generation.num_outputs, (generation.pk, files)
        else:
            assert generation.state == "failed" and generation.error_message, generation.pk
            assert indexes == [] and files == [], generation.pk
    assert set(tally.generation_posts) <= {302, 429}, tally.generation_posts
    assert generation_states["succeeded"] > 0 and states["complete"] > 0
    logs = stack.logs()
    assert "Internal Server Error" not in logs  # no page or form answered with a 500

    print(
        f"\nload: {USERS} people for {load_seconds:.0f} s; {tally.sends} prompts sent, "
        f"{sum(tally.refusals.values())} refused {dict(tally.refusals)}; answers "
        f"{dict(states)}; {tally.stops} stopped and {tally.tabs_closed_mid_answer} tabs closed "
        f"mid-answer; generation posts {dict(tally.generation_posts)}, generations "
        f"{dict(generation_states)} with "
        f"{sum(g.outputs.count() for g in generations)} outputs; "
        f"{logs.count(' ERROR ')} ERROR lines in the logs"
    )
