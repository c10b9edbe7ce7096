"""Support's admin: find generations, open their files, retry failed ones, cancel running ones."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from accounts.models import User
from generations.models import Generation
from tests.factories import make_user
from tests.generations.conftest import PLY, make_generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


def test_the_list_filters_by_state_and_searches_prompts_and_emails(
    staff: Client, user: User, other_user: User
) -> None:
    make_generation(user, prompt="a golden ring")
    make_generation(other_user, prompt="a green tree", state="failed", outputs=0)
    url = reverse("admin:generations_generation_changelist")
    failed = staff.get(url, {"state__exact": "failed"}).content.decode()
    assert "a green tree" in failed and "a golden ring" not in failed
    by_email = staff.get(url, {"q": user.email}).content.decode()
    assert "a golden ring" in by_email and "a green tree" not in by_email
    by_prompt = staff.get(url, {"q": "green"}).content.decode()
    assert "a green tree" in by_prompt and "a golden ring" not in by_prompt


def test_a_generation_page_links_each_output_to_a_staff_download(staff: Client, user: User) -> None:
    generation = make_generation(user, outputs=2)
    page = staff.get(reverse("admin:generations_generation_change", args=[generation.pk]))
    output = generation.outputs.get(index=1)
    link = reverse("admin:generations_output_download", args=[output.pk])
    assert link in page.content.decode()
    download = staff.get(link)
    assert b"".join(download.streaming_content) == PLY  # type: ignore[attr-defined]
    assert download["Content-Disposition"].startswith("attachment;")


def test_the_staff_download_is_not_open_to_ordinary_users(signed_in: Client, user: User) -> None:
    output = make_generation(user).outputs.get()
    response = signed_in.get(reverse("admin:generations_output_download", args=[output.pk]))
    assert response.status_code == 302  # to the admin login, even for the owner
    assert "/admin/login/" in response["Location"]


def test_the_retry_action_requeues_failed_generations_only(staff: Client, user: User) -> None:
    failed = make_generation(user, state="failed", outputs=0, error_code="502")
    done = make_generation(user)
    staff.post(
        reverse("admin:generations_generation_changelist"),
        {"action": "retry", "_selected_action": [failed.pk, done.pk]},
    )
    failed.refresh_from_db()
    done.refresh_from_db()
    assert (failed.state, failed.error_code) == ("queued", "")
    assert done.state == "succeeded"


def test_the_cancel_action_cancels_generations_in_flight_only(staff: Client, user: User) -> None:
    queued = make_generation(user, state="queued", outputs=0)
    running = make_generation(user, state="running", outputs=0)
    done = make_generation(user)
    response = staff.post(
        reverse("admin:generations_generation_changelist"),
        {"action": "cancel", "_selected_action": [queued.pk, running.pk, done.pk]},
        follow=True,
    )
    assert "Cancelled 2 generation(s)." in response.content.decode()
    states = dict(Generation.objects.values_list("pk", "state"))
    assert [states[g.pk] for g in (queued, running, done)] == ["cancelled"] * 2 + ["succeeded"]


def test_deleting_in_the_admin_removes_the_files_too(staff: Client, user: User) -> None:
    generation = make_generation(user)
    name = generation.outputs.get().file.name
    staff.post(
        reverse("admin:generations_generation_delete", args=[generation.pk]), {"post": "yes"}
    )

    assert not Generation.objects.filter(pk=generation.pk).exists()
    assert not default_storage.exists(name)


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled"])
def test_a_finished_generation_is_read_only_but_can_be_deleted(
    staff: Client, user: User, state: str
) -> None:
    generation = make_generation(user, state=state, prompt="a golden ring", error_code="502")
    url = reverse("admin:generations_generation_change", args=[generation.pk])
    page = staff.get(url).content.decode()
    assert "a golden ring" in page and "502" in page  # everything still shown
    assert 'name="prompt"' not in page and 'name="model"' not in page
    assert 'name="_save"' not in page
    assert reverse("admin:generations_generation_delete", args=[generation.pk]) in page
    response = staff.post(url, {"prompt": "something else", "model": "other/model"})
    assert response.status_code == 403
    generation.refresh_from_db()
    assert (generation.prompt, generation.model) == ("a golden ring", "openai/shap-e")


def test_a_generation_in_flight_can_still_be_corrected(staff: Client, user: User) -> None:
    generation = make_generation(user, state="queued", outputs=0)
    page = staff.get(reverse("admin:generations_generation_change", args=[generation.pk]))
    assert 'name="prompt"' in page.content.decode()
