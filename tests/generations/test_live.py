"""The websocket of the generations pages: who hears what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from accounts.models import User
from generations import services
from generations.consumers import GenerationsConsumer
from generations.models import Generation
from tests.generations.conftest import make_generation

pytestmark = pytest.mark.django_db(transaction=True)


async def connected(user: User) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(GenerationsConsumer.as_asgi(), "/ws/generations/")
    communicator.scope["user"] = user
    ok, _ = await communicator.connect()
    assert ok
    return communicator


async def test_a_socket_starts_with_a_snapshot_of_the_users_recent_generations(
    user: User, other_user: User
) -> None:
    running = await sync_to_async(make_generation)(user, state="running", outputs=0)
    done = await sync_to_async(make_generation)(user, finished_at=timezone.now(), outputs=2)
    old = await sync_to_async(make_generation)(user, finished_at=timezone.now() - timedelta(days=2))
    theirs = await sync_to_async(make_generation)(other_user, state="running", outputs=0)
    socket = await connected(user)
    snapshot = await socket.receive_json_from()
    assert snapshot["type"] == "snapshot"
    by_id = {event["id"]: event for event in snapshot["generations"]}
    assert set(by_id) == {running.pk, done.pk}
    assert old.pk not in by_id and theirs.pk not in by_id
    assert [output["url"] for output in by_id[done.pk]["outputs"]] == [
        f"/generations/{done.pk}/outputs/0/",
        f"/generations/{done.pk}/outputs/1/",
    ]
    await socket.disconnect()


async def test_an_event_reaches_the_owner_and_nobody_else(user: User, other_user: User) -> None:
    mine, theirs = await connected(user), await connected(other_user)
    await mine.receive_json_from()
    await theirs.receive_json_from()
    generation = await sync_to_async(Generation.objects.create)(
        user=user, prompt="a cube", state="failed", error_code="451", error_message="Flagged."
    )
    await sync_to_async(services.generation_notify)(generation=generation)
    event = await mine.receive_json_from()
    assert event["type"] == "generation"
    assert event["generation"] | {"url": ""} == event["generation"] | {
        "id": generation.pk,
        "state": "failed",
        "error_code": "451",
        "error_message": "Flagged.",
        "url": "",
    }
    assert await theirs.receive_nothing(timeout=0.3)
    await mine.disconnect()
    await theirs.disconnect()


async def test_a_message_from_the_page_is_ignored_not_an_error(user: User) -> None:
    socket = await connected(user)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "anything"})
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()
