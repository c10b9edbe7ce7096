"""OpenRouter's model list: fetched once, served from the cache, chat and 3D models apart (the
sandbox's /models over HTTP)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from django.conf import LazySettings
from django.core.cache import cache

from openrouter import catalogue


@pytest.fixture
def no_catalogue() -> Any:
    cache.delete_many([catalogue.CATALOGUE_KEY, catalogue.CATALOGUE_LOCK])
    yield
    cache.delete_many([catalogue.CATALOGUE_KEY, catalogue.CATALOGUE_LOCK])


def test_a_cold_catalogue_is_fetched_once_then_served_from_the_cache(no_catalogue: None) -> None:
    listed = catalogue.models_catalogue()
    ids = {model["id"] for model in listed.models}
    assert {"openai/gpt-4o-mini", "google/gemma-2-9b-it:free", "sandbox/slow"} <= ids
    assert "openai/shap-e" not in ids  # makes 3D objects, not chat answers
    mini = next(model for model in listed.models if model["id"] == "openai/gpt-4o-mini")
    assert (mini["prompt_per_m"], mini["completion_per_m"], mini["free"]) == ("0.15", "0.6", False)
    assert mini["context_length"] == 128000
    assert next(m for m in listed.models if m["id"] == "google/gemma-2-9b-it:free")["free"]
    cached = cache.get(catalogue.CATALOGUE_KEY)["models"]
    assert [model for model in cached if "text" in model["outputs"]] == listed.models


def test_a_stale_catalogue_is_served_at_once_and_refreshed_in_the_background(
    no_catalogue: None,
) -> None:
    old = {"models": [{"id": "old/model", "outputs": ["text"]}], "fetched_at": time.time() - 36000}
    cache.set(catalogue.CATALOGUE_KEY, old)
    assert catalogue.models_catalogue().models == old["models"]
    deadline = time.monotonic() + 10
    while cache.get(catalogue.CATALOGUE_KEY)["models"] == old["models"]:
        assert time.monotonic() < deadline, "the background refresh never came"
        time.sleep(0.05)
    assert len(cache.get(catalogue.CATALOGUE_KEY)["models"]) > 10


def test_with_the_upstream_down_a_cold_catalogue_says_it_is_still_coming(
    no_catalogue: None, settings: LazySettings
) -> None:
    settings.OPENROUTER_URL = "http://127.0.0.1:9"  # nothing listens there
    listed = catalogue.models_catalogue()
    assert (listed.models, listed.refreshing) == ([], True)


def test_a_page_that_only_suggests_models_does_not_wait_for_a_cold_list(
    no_catalogue: None, settings: LazySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 3D form renders at once without suggestions while the list is being fetched."""
    # A caller that waited would wait out the fetch (it gives up after the read timeout).
    monkeypatch.setattr(catalogue, "CATALOGUE_COLD_WAIT", 30.0)
    settings.OPENROUTER_READ_TIMEOUT = 3.0
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connects, never answers
        settings.OPENROUTER_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        listed = catalogue.models_catalogue(output="3d", wait=False)
        assert (listed.models, listed.refreshing) == ([], True)
        # Returned while the fetch still hangs: its lock is only let go when it ends.
        assert cache.get(catalogue.CATALOGUE_LOCK) is not None
    # The listener closed, the fetch fails at once and lets the lock go.
    deadline = time.monotonic() + 10
    while cache.get(catalogue.CATALOGUE_LOCK) is not None:
        assert time.monotonic() < deadline, "the background fetch never ended"
        time.sleep(0.05)


def test_the_catalogue_keeps_3d_models_apart_from_the_chat_models(no_catalogue: None) -> None:
    objects = {
        model["id"]: model["outputs"] for model in catalogue.models_catalogue(output="3d").models
    }
    assert objects["openai/shap-e"] == ["3d"] and "openai/gpt-4o-mini" not in objects
    chat = {model["id"] for model in catalogue.models_catalogue().models}
    assert "openai/gpt-4o-mini" in chat and "openai/shap-e" not in chat
    assert catalogue.model_offered("openai/gpt-4o-mini")
    assert not catalogue.model_offered("openai/shap-e")
    assert catalogue.model_offered("openai/shap-e", output="3d")
    assert not catalogue.model_offered("openai/gpt-4o-mini", output="3d")
    # The sandbox's fault models are offered where they misbehave: sandbox/no-3d makes no 3D.
    assert catalogue.model_offered("sandbox/error-500", output="3d")
    assert not catalogue.model_offered("sandbox/no-3d", output="3d")


def test_a_model_that_makes_neither_text_nor_3d_is_left_out() -> None:
    images = {"id": "a/painter", "architecture": {"output_modalities": ["image"]}}
    both = {"id": "a/both", "architecture": {"output_modalities": ["image", "text"]}}
    assert catalogue.picker_entry(images) is None
    assert catalogue.picker_entry(both)["outputs"] == ["text"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("pricing", "expected"),
    [
        ({"prompt": "0", "completion": "0"}, ("0", "0", True)),
        ({"prompt": "0.000003", "completion": "0.000015"}, ("3", "15", False)),
        ({"prompt": "-1", "completion": "-1"}, (None, None, False)),
        ({}, (None, None, False)),
    ],
)
def test_prices_are_shown_per_million_tokens(pricing: dict[str, str], expected: tuple) -> None:
    entry = catalogue.picker_entry({"id": "a/b", "name": "A B", "pricing": pricing})
    assert entry is not None
    assert (entry["prompt_per_m"], entry["completion_per_m"], entry["free"]) == expected
