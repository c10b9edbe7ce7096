"""Generations run by a real Celery worker against the sandbox over HTTP, with real Redis."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.services import api_key_for
from generations.consumers import GenerationsConsumer
from generations.models import Generation
from openrouter import catalogue
from openrouter.catalogue import Catalogue
from tests import services
from tests.generations.conftest import wait_for_state, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

FINISHED = ("succeeded", "failed")


def start(client: Client, **fields: Any) -> Generation:
    form = {"model": "openai/shap-e", "num_inference_steps": 16, "num_outputs": 1}
    response = client.post(reverse("generations:create"), {"extension": "ply", **form, **fields})
    assert response.status_code == 302, response.content.decode()[:2000]
    return Generation.objects.latest("pk")


def what_the_sandbox_sends(user: User, generation: Generation) -> list[bytes]:
    """The same request sent straight to the sandbox, decoded here without our client."""
    payload = {
        "prompt": generation.prompt,
        "model": generation.model,
        "num_inference_steps": generation.num_inference_steps,
        "num_outputs": generation.num_outputs,
        "extension": generation.extension,
    }
    response = httpx.post(
        f"{os.environ['OPENROUTER_URL']}/api/v1/objects/generations",
        json=payload,
        headers={"Authorization": f"Bearer {api_key_for(user=user)}"},
        timeout=30,
    )
    files = []
    for item in json.loads(response.content)["generations"]:
        if "uri" in item:
            files.append(base64.b64decode(item["uri"].split(",")[-1]))
        else:
            files.append(httpx.get(item["url"]).content)
    return files


@pytest.mark.parametrize(
    ("prompt", "extension", "outputs"),
    [
        ("a wooden chair", "ply", 3),  # data URIs
        ("a bare red donut", "glb", 2),  # bare base64
        ("a url pine tree", "ply", 2),  # hosted urls, downloaded
    ],
)
def test_every_output_is_stored_byte_equal_to_what_the_sandbox_sent(
    connected_client: Client, connected_user: User, prompt: str, extension: str, outputs: int
) -> None:
    generation = start(connected_client, prompt=prompt, extension=extension, num_outputs=outputs)
    generation = wait_for_state(generation, *FINISHED)
    assert generation.state == "succeeded", generation.error_message
    assert generation.attempts == 1
    assert generation.duration is not None
    expected = what_the_sandbox_sends(connected_user, generation)
    stored = list(generation.outputs.order_by("index"))
    assert [output.index for output in stored] == list(range(outputs))
    for output, sent in zip(stored, expected, strict=True):
        with default_storage.open(output.file.name) as handle:
            assert handle.read() == sent
        assert output.size == len(sent)
        assert (
            output.content_type
            == {"ply": "application/x-ply", "glb": "model/gltf-binary"}[extension]
        )
        assert output.file.name.startswith(f"generations/{connected_user.pk}/{generation.pk}/")
        download = connected_client.get(output.get_absolute_url())
        assert b"".join(download.streaming_content) == sent  # type: ignore[attr-defined]
    _, files = default_storage.listdir(f"generations/{connected_user.pk}/{generation.pk}")
    assert len(files) == outputs  # nothing stored twice, nothing left over


def test_a_transient_502_is_retried_and_then_succeeds(connected_client: Client) -> None:
    generation = start(connected_client, prompt="fail once: a blue ball")
    generation = wait_for_state(generation, *FINISHED)
    assert generation.state == "succeeded", generation.error_message
    assert generation.attempts == 2
    assert generation.outputs.count() == 1


@pytest.mark.parametrize(
    ("model", "prompt", "code", "sentence"),
    [
        ("sandbox/error-400", "a cube", "400", "could not accept this request"),
        ("sandbox/error-401", "a cube", "401", "key was not accepted"),
        ("sandbox/error-402", "a cube", "402", "credits are used up"),
        ("sandbox/error-403", "a cube", "403", "refused this request (violence)"),
        ("sandbox/error-451", "a cube", "451", "moderation flagged this input"),
        ("openai/shap-e", "a flagged cube", "451", "moderation flagged this input"),
        ("openai/shap-e", "a huge cube", "413", "larger than 20 MB, the most we keep"),
    ],
)
def test_a_permanent_error_fails_at_once_with_its_code_and_sentence(
    connected_client: Client, model: str, prompt: str, code: str, sentence: str
) -> None:
    generation = start(connected_client, model=model, prompt=prompt)
    generation = wait_for_state(generation, *FINISHED)
    assert (generation.state, generation.error_code, generation.attempts) == ("failed", code, 1)
    assert sentence in generation.error_message
    assert generation.outputs.count() == 0
    page = connected_client.get(generation.get_absolute_url()).content.decode()
    assert sentence in page.replace("&#x27;", "'")
    # Retry where it can help (after reconnecting, adding credits), not where the same request
    # would be refused again (too large: the same description makes as large an object).
    offered = reverse("generations:retry", args=[generation.pk]) in page
    assert offered is (code in {"401", "402"})


def test_an_upstream_without_3d_is_told_in_plain_words(
    connected_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With OpenRouter's list at hand the form refuses this model; without it, the worker finds out.
    unavailable = Catalogue(models=[], fetched_at=None, refreshing=True)
    monkeypatch.setattr(catalogue, "models_catalogue", lambda **_: unavailable)
    generation = wait_for_state(
        start(connected_client, model="sandbox/no-3d", prompt="x"), "failed"
    )
    assert (generation.error_code, generation.attempts) == ("404", 1)
    assert generation.error_message == (
        "OpenRouter makes no 3D objects with this model, so nothing could be made. Pick a "
        "model that makes 3D objects."
    )
    # The same request would fail again, and the page says so: no "try again later" here.
    page = connected_client.get(generation.get_absolute_url()).content.decode()
    assert reverse("generations:retry", args=[generation.pk]) not in page
    assert "start a new one with a model that makes 3D objects" in page


def test_cancel_stops_a_running_generation_and_a_queued_one_never_starts(
    connected_client: Client, worker: services.Service
) -> None:
    # OpenRouter keeps this one waiting (keep-alives, never an answer): the one worker is busy.
    stalled = wait_for_state(start(connected_client, model="sandbox/stall", prompt="x"), "running")
    behind = start(connected_client, prompt="a cube behind it")
    for generation in (behind, stalled):
        response = connected_client.post(reverse("generations:cancel", args=[generation.pk]))
        assert response.status_code == 302
    # The running attempt sees it at its next check and lets go of OpenRouter; the worker then
    # takes the queued one's message, finds it cancelled, and runs the next generation.
    wait_until(
        lambda: f"generation {stalled.pk}: cancelled, attempt stopped" in worker.log(),
        "the worker to stop the cancelled attempt",
    )
    after = wait_for_state(start(connected_client, prompt="a cube after"), *FINISHED)
    assert after.state == "succeeded", after.error_message
    stalled.refresh_from_db()
    behind.refresh_from_db()
    assert (stalled.state, stalled.attempts, stalled.error_code) == ("cancelled", 1, "")
    assert (behind.state, behind.attempts, behind.started_at) == ("cancelled", 0, None)
    assert not stalled.outputs.exists() and not behind.outputs.exists()


async def test_the_owner_sees_live_events_until_the_object_is_ready(
    connected_client: Client, connected_user: User, other_user: User
) -> None:
    mine = WebsocketCommunicator(GenerationsConsumer.as_asgi(), "/ws/generations/")
    mine.scope["user"] = connected_user
    theirs = WebsocketCommunicator(GenerationsConsumer.as_asgi(), "/ws/generations/")
    theirs.scope["user"] = other_user
    assert (await mine.connect())[0] and (await theirs.connect())[0]
    assert (await mine.receive_json_from())["type"] == "snapshot"
    assert (await theirs.receive_json_from())["type"] == "snapshot"

    generation = await sync_to_async(start)(connected_client, prompt="a green tree", num_outputs=2)
    events = []
    while not events or events[-1]["state"] not in FINISHED:
        message = await mine.receive_json_from(timeout=20)
        assert message["type"] == "generation"
        events.append(message["generation"])
    assert {event["id"] for event in events} == {generation.pk}
    assert "running" in [event["state"] for event in events]
    assert any(event["progress"].startswith("Storing object 2 of 2") for event in events)
    done = events[-1]
    assert done["state"] == "succeeded" and done["duration"] > 0
    assert [output["number"] for output in done["outputs"]] == [1, 2]
    assert await theirs.receive_nothing(timeout=0.5)  # nothing leaks to another user
    await mine.disconnect()
    await theirs.disconnect()
