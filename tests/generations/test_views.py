"""Pages: the form and its messages, the gallery, the detail page, downloads, ownership, delete."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from generations import forms, services
from generations.models import Generation
from openrouter import catalogue
from openrouter.catalogue import Catalogue
from openrouter.errors import OpenRouterError
from tests.generations.conftest import PLY, make_generation

pytestmark = pytest.mark.django_db

VALID = {
    "prompt": "a chair shaped like an avocado",
    "model": "openai/shap-e",
    "num_inference_steps": "32",
    "num_outputs": "2",
    "extension": "glb",
}


def create(client: Client, **changes: str) -> Any:
    return client.post(reverse("generations:create"), {**VALID, **changes})


def test_a_valid_form_queues_a_generation_and_opens_its_page(connected_client: Client) -> None:
    response = create(connected_client)
    generation = Generation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == generation.get_absolute_url()
    assert (generation.state, generation.num_outputs, generation.extension) == ("queued", 2, "glb")
    page = connected_client.get(response["Location"]).content.decode()
    assert "Waiting to start" in page and "a chair shaped like an avocado" in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": "   "}, "Describe the object you want."),
        ({"prompt": "x" * 1001}, "Keep the description under 1000 characters (it has 1001)."),
        ({"num_inference_steps": "0"}, "Use at least 1 inference step."),
        ({"num_inference_steps": "257"}, "Use at most 256 inference steps."),
        ({"num_inference_steps": "many"}, "Inference steps must be a whole number."),
        ({"num_outputs": "0"}, "Make at least 1 object."),
        ({"num_outputs": "5"}, "Make at most 4 objects at a time."),
        ({"extension": "obj"}, "Pick PLY or GLB as the format."),
        ({"model": "openai/shap-e; drop"}, "Enter a model id like openai/shap-e"),
        ({"model": "../../etc"}, "Enter a model id like openai/shap-e"),
    ],
)
def test_invalid_input_is_refused_with_a_clear_message(
    connected_client: Client, changes: dict[str, str], message: str
) -> None:
    response = create(connected_client, **changes)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Generation.objects.exists()


def test_reloading_a_form_sent_back_with_errors_opens_the_gallery(
    connected_client: Client,
) -> None:
    assert create(connected_client, prompt="").status_code == 400  # shown at /generations/new/
    response = connected_client.get(reverse("generations:create"))
    assert response.status_code == 302 and response["Location"] == reverse("generations:index")


def test_a_blank_model_means_the_default(connected_client: Client) -> None:
    create(connected_client, model="")
    assert Generation.objects.get().model == "openai/shap-e"


def test_the_form_suggests_the_3d_models_and_no_chat_model(connected_client: Client) -> None:
    page = connected_client.get(reverse("generations:index")).content.decode()
    assert 'list="models-3d"' in page and '<datalist id="models-3d">' in page
    suggested = page.split('<datalist id="models-3d">')[1].split("</datalist>")[0]
    assert '<option value="openai/shap-e" label="OpenAI: Shap-E">' in suggested
    assert "openai/gpt-4o-mini" not in suggested
    # Blank, so that every suggestion shows; the default is what blank means.
    model = page.split('name="model"')[1].split(">")[0]
    assert 'placeholder="openai/shap-e"' in model and "value=" not in model
    assert "blank means openai/shap-e" in page


def test_when_openrouter_no_longer_lists_our_default_a_listed_3d_model_is_the_default(
    connected_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = {"id": "acme/mesh-1", "name": "Acme: Mesh 1", "outputs": ["3d"]}
    listed = Catalogue(models=[other], fetched_at=1.0, refreshing=False)
    monkeypatch.setattr(forms, "models_catalogue", lambda **_: listed)
    monkeypatch.setattr(catalogue, "models_catalogue", lambda **_: listed)
    page = connected_client.get(reverse("generations:index")).content.decode()
    assert 'placeholder="acme/mesh-1"' in page and "blank means acme/mesh-1" in page
    create(connected_client, model="")
    assert Generation.objects.get().model == "acme/mesh-1"


@pytest.mark.parametrize("model", ["nonsense/model", "openai/gpt-4o-mini"])
def test_a_model_openrouter_does_not_list_for_3d_is_refused_by_name(
    connected_client: Client, model: str
) -> None:
    response = create(connected_client, model=model)
    assert response.status_code == 400
    page = response.content.decode()
    assert (
        f"OpenRouter has no 3D model “{model}”. Pick one from the field&#x27;s suggestions." in page
    )
    assert not Generation.objects.exists()


def test_any_model_id_is_taken_while_openrouter_s_list_is_not_at_hand(
    connected_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    unavailable = Catalogue(models=[], fetched_at=None, refreshing=True)
    monkeypatch.setattr(catalogue, "models_catalogue", lambda **_: unavailable)
    assert create(connected_client, model="acme/new-mesh").status_code == 302
    assert Generation.objects.get().model == "acme/new-mesh"  # OpenRouter judges it when run


def test_the_form_states_the_size_limit_of_an_object(
    connected_client: Client, settings: Any
) -> None:
    page = connected_client.get(reverse("generations:index")).content.decode()
    assert "Objects up to 20 MB each." in page
    settings.GENERATION_MAX_OUTPUT_BYTES = 5 * 1024 * 1024 // 2
    page = connected_client.get(reverse("generations:index")).content.decode()
    assert "Objects up to 2.5 MB each." in page


def test_past_the_in_flight_cap_the_form_says_why(connected_client: Client, settings: Any) -> None:
    settings.GENERATIONS_IN_FLIGHT_PER_USER = 1
    create(connected_client)
    response = create(connected_client, prompt="a second one")
    assert response.status_code == 429
    assert "You already have 1 generations in progress" in response.content.decode()
    assert Generation.objects.count() == 1


def test_without_a_key_the_page_offers_to_connect_and_create_refuses(signed_in: Client) -> None:
    page = signed_in.get(reverse("generations:index")).content.decode()
    assert "Connect your OpenRouter account" in page
    assert 'action="/generations/new/"' not in page
    response = create(signed_in)
    assert response.status_code == 302
    assert not Generation.objects.exists()


def test_the_gallery_shows_states_and_costs_the_same_queries_for_many_cards(
    signed_in: Client, user: User, other_user: User
) -> None:
    make_generation(user, prompt="a red donut", outputs=2)
    make_generation(other_user, prompt="someone else's secret")
    with CaptureQueriesContext(connection) as few:
        page = signed_in.get(reverse("generations:index")).content.decode()
    assert "a red donut" in page and "someone else" not in page
    assert 'class="badge succeeded"' in page
    for state in ("queued", "running", "failed", "succeeded"):
        make_generation(user, state=state, outputs=3, prompt=f"a {state} one")
    with CaptureQueriesContext(connection) as many:
        page = signed_in.get(reverse("generations:index")).content.decode()
    assert 'class="badge running"' in page and 'class="badge failed"' in page
    assert "waiting to start" in page and "worker" not in page  # words of the machinery
    assert len(many) == len(few)


def test_the_detail_page_has_the_viewer_downloads_and_parameters(
    signed_in: Client, user: User
) -> None:
    generation = make_generation(user, outputs=2, prompt="a pine tree", num_inference_steps=64)
    page = signed_in.get(generation.get_absolute_url()).content.decode()
    first = reverse("generations:output", args=[generation.pk, 0])
    assert f'data-src="{first}?inline=1" data-type="ply"' in page
    assert f'href="{first}" download' in page
    assert reverse("generations:output", args=[generation.pk, 1]) in page
    assert "64" in page and "openai/shap-e" in page and "a pine tree" in page
    # The checksum, whole and explained, folded away until asked for.
    sha = generation.outputs.get(index=0).sha256
    assert f'<code class="sha">{sha}</code>' in page
    assert "<summary>SHA-256 checksum</summary>" in page
    assert "To check that the download is complete and unchanged" in page
    assert "<script>" not in page.split("</head>")[1]  # no inline scripts: CSP script-src 'self'


@pytest.mark.parametrize(
    ("code", "sentence", "advice"),
    [
        ("502", "OpenRouter's provider is down or sent an invalid response.", None),
        # The same request would be refused again: a new one, changed where it can help.
        (
            "451",
            "The model's moderation flagged this input, so it was not sent.",
            "start a new one with a different description",
        ),
        (
            "400",
            "OpenRouter could not accept this request: openai/gpt-4o-mini does not generate 3D "
            "objects.",
            "start a new one with another model or other settings",
        ),
        (
            "404",
            "OpenRouter makes no 3D objects with this model, so nothing could be made.",
            "start a new one with a model that makes 3D objects",
        ),
        (
            "413",
            "A generated object was larger than 20 MB, the most we keep for one object. "
            "Describe a simpler object, or pick another model.",
            "start a new one with fewer or simpler objects, or another model",
        ),
    ],
)
def test_a_failed_generation_says_what_failed_and_what_can_help(
    signed_in: Client, user: User, code: str, sentence: str, advice: str | None
) -> None:
    generation = make_generation(
        user, state="failed", outputs=0, error_code=code, error_message=sentence
    )
    page = signed_in.get(generation.get_absolute_url()).content.decode()
    assert "<h2>Generation failed</h2>" in page
    assert sentence.replace("'", "&#x27;") in page
    assert f"Error code: <code>{code}</code>" in page and "Upstream" not in page
    assert (reverse("generations:retry", args=[generation.pk]) in page) is (advice is None)
    new_one = f'<a href="{reverse("generations:index")}">{advice}</a>'
    assert (new_one in page) is (advice is not None)
    if code in {"400", "404"}:  # a description is not what was refused
        assert "describe" not in page.split('class="failure"')[1].split("</div>")[0]


def test_a_failed_card_says_what_failed_and_offers_a_retry_with_no_countdown(
    signed_in: Client, user: User
) -> None:
    given_up = OpenRouterError.from_status(429, "Rate limit exceeded", retry_after=7)
    generation = make_generation(
        user,
        state="failed",
        outputs=0,
        error_code="429",
        error_message=services.upstream_failure_sentence(given_up, model="openai/shap-e"),
    )
    refused = make_generation(
        user, state="failed", outputs=0, error_code="451", error_message="Flagged."
    )
    gallery = signed_in.get(reverse("generations:index")).content.decode()
    assert "OpenRouter is rate-limiting these requests, so the generation was stopped." in gallery
    assert "Retry in a few minutes or pick another model." in gallery
    assert "again in 7 s" not in gallery
    assert f'action="{reverse("generations:retry", args=[generation.pk])}"' in gallery
    assert reverse("generations:retry", args=[refused.pk]) not in gallery  # would fail again
    response = signed_in.post(
        reverse("generations:retry", args=[generation.pk]), {"from": "gallery"}
    )
    assert response["Location"] == reverse("generations:index")
    generation.refresh_from_db()
    assert generation.state == "queued"


def test_the_owner_downloads_an_attachment_or_the_viewer_copy(
    signed_in: Client, user: User
) -> None:
    generation = make_generation(user)
    url = reverse("generations:output", args=[generation.pk, 0])
    download = signed_in.get(url)
    assert b"".join(download.streaming_content) == PLY  # type: ignore[attr-defined]
    assert download["Content-Type"] == "application/x-ply"
    assert download["Content-Disposition"].startswith("attachment;")
    assert f"generation-{generation.pk}-1.ply" in download["Content-Disposition"]
    inline = signed_in.get(url, {"inline": "1"})
    assert inline["Content-Disposition"].startswith("inline;")


def test_a_file_that_is_not_a_model_is_never_served_inline(signed_in: Client, user: User) -> None:
    generation = make_generation(
        user, data=b"<script>alert(1)</script>", content_type="application/octet-stream"
    )
    response = signed_in.get(
        reverse("generations:output", args=[generation.pk, 0]), {"inline": "1"}
    )
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


def owned_urls(generation: Generation) -> list[tuple[str, str]]:
    pk = generation.pk
    return [
        ("get", reverse("generations:detail", args=[pk])),
        ("get", reverse("generations:output", args=[pk, 0])),
        ("get", reverse("generations:output", args=[pk, 0]) + "?inline=1"),
        ("post", reverse("generations:retry", args=[pk])),
        ("post", reverse("generations:cancel", args=[pk])),
        ("post", reverse("generations:delete", args=[pk])),
    ]


@pytest.mark.parametrize("who", ["another user", "signed out"])
def test_nobody_but_the_owner_can_see_download_retry_or_delete(
    client: Client, user: User, other_user: User, who: str
) -> None:
    generation = make_generation(user, state="failed")
    if who == "another user":
        client.force_login(other_user)
    for method, url in owned_urls(generation):
        response = getattr(client, method)(url)
        if who == "another user":
            assert response.status_code == 404, (method, url)
        else:  # asked to sign in, as for any address under /generations/, existing or not
            assert response.status_code == 302, (method, url)
            assert response["Location"].startswith(f"{reverse(settings.LOGIN_URL)}?next="), url
    generation.refresh_from_db()
    assert generation.state == "failed"
    assert default_storage.exists(generation.outputs.get().file.name)


def test_media_files_are_not_served_by_url(signed_in: Client, user: User) -> None:
    generation = make_generation(user)
    name = generation.outputs.get().file.name
    assert signed_in.get(f"/media/{name}").status_code == 404
    assert signed_in.get(f"/media-not-served/{name}").status_code == 404


def test_delete_removes_the_generation_and_every_file_in_its_folder(
    signed_in: Client, user: User
) -> None:
    generation = make_generation(user, outputs=2)
    names = [output.file.name for output in generation.outputs.all()]
    stray = default_storage.save(
        f"generations/{user.pk}/{generation.pk}/leftover.ply", ContentFile(PLY)
    )
    response = signed_in.post(reverse("generations:delete", args=[generation.pk]))
    assert response.status_code == 302
    assert not Generation.objects.filter(pk=generation.pk).exists()
    assert not any(default_storage.exists(name) for name in [*names, stray])


def test_retry_from_the_page_queues_the_failed_generation_again(
    signed_in: Client, user: User
) -> None:
    generation = make_generation(user, state="failed", outputs=0, error_code="502")
    response = signed_in.post(reverse("generations:retry", args=[generation.pk]), follow=True)
    generation.refresh_from_db()
    assert generation.state == "queued" and generation.error_code == ""
    assert "Trying again." in response.content.decode()


def test_a_retry_asked_of_a_refusal_a_retry_cannot_change_is_not_run(
    signed_in: Client, user: User
) -> None:
    generation = make_generation(user, state="failed", outputs=0, error_code="451")
    response = signed_in.post(reverse("generations:retry", args=[generation.pk]), follow=True)
    generation.refresh_from_db()
    assert generation.state == "failed" and generation.error_code == "451"
    assert (
        "The same request would be refused again: start a new one with a different description."
        in response.content.decode()
    )


@pytest.mark.parametrize("where", ["page", "gallery"])
def test_the_owner_cancels_a_running_generation_from_its_page_or_its_card(
    signed_in: Client, user: User, where: str
) -> None:
    generation = make_generation(user, state="running", outputs=0, started_at=timezone.now())
    page = signed_in.get(generation.get_absolute_url()).content.decode()
    gallery = signed_in.get(reverse("generations:index")).content.decode()
    url = reverse("generations:cancel", args=[generation.pk])
    assert f'action="{url}"' in page and f'action="{url}"' in gallery
    fields = {"from": "gallery"} if where == "gallery" else {}
    response = signed_in.post(url, fields)
    assert response["Location"] == (
        reverse("generations:index") if where == "gallery" else generation.get_absolute_url()
    )
    generation.refresh_from_db()
    assert generation.state == "cancelled"
    page = signed_in.get(generation.get_absolute_url()).content.decode()
    # Said once each: the state (its badge), what happened (the message), what it means.
    assert page.count("Cancelled") == 1 and 'class="badge cancelled"' in page
    assert page.count("Generation cancelled.") == 1 and page.count("nothing was kept") == 1
    assert "Time taken" not in page  # it never finished
    assert f'action="{url}"' not in page
    assert reverse("generations:retry", args=[generation.pk]) in page  # "Run again"
    assert f'action="{url}"' not in signed_in.get(reverse("generations:index")).content.decode()


def test_another_users_running_generation_cannot_be_cancelled(
    client: Client, user: User, other_user: User
) -> None:
    generation = make_generation(user, state="running", outputs=0)
    client.force_login(other_user)
    response = client.post(reverse("generations:cancel", args=[generation.pk]))
    assert response.status_code == 404
    generation.refresh_from_db()
    assert generation.state == "running"


def test_cancelling_a_finished_generation_says_there_was_nothing_to_cancel(
    signed_in: Client, user: User
) -> None:
    generation = make_generation(user)
    url = reverse("generations:cancel", args=[generation.pk])
    assert signed_in.get(url).status_code == 405
    response = signed_in.post(url, follow=True)
    assert "It had already finished, so there was nothing to cancel." in response.content.decode()
    generation.refresh_from_db()
    assert generation.state == "succeeded" and generation.outputs.count() == 1
