"""OpenRouter's model list as the product uses it: the chat models for the picker and the check
of a chosen model, the 3D models for the 3D form. Fetched from ``/models`` and kept in the shared
cache for the whole site (it is the same for everyone); a request never waits on a slow upstream
but for the first list ever.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.cache import cache
from django.core.validators import RegexValidator

from openrouter import client
from openrouter.errors import OpenRouterError

logger = logging.getLogger(__name__)

CATALOGUE_KEY = "openrouter:models:v2"  # v2: entries say what they output
CATALOGUE_LOCK = "openrouter:models:refreshing"
CATALOGUE_FRESH_FOR = 600.0  # seconds before a background refresh
CATALOGUE_KEEP_FOR = 7 * 86400  # a stale list beats none when OpenRouter is down
CATALOGUE_COLD_WAIT = 2.0  # how long a request waits when there is no list at all yet

_refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="models-catalogue")


@dataclass(frozen=True)
class Catalogue:
    models: list[dict[str, Any]]
    fetched_at: float | None
    refreshing: bool


# What the product can use a model for: chat answers (text) or 3D objects.
CATALOGUE_OUTPUTS = ("text", "3d")


def models_catalogue(*, output: str = "text", wait: bool = True) -> Catalogue:
    """The models that make ``output`` (chat models for the picker, ``"3d"`` for the 3D form),
    from the cache; never blocks on a slow upstream.

    A stale list is served at once while one background thread (one per cluster, thanks to a
    cache lock) fetches a new one; with no list at all, the caller waits a short while for it,
    or with ``wait=False`` (a page that merely suggests models) goes on without it.
    """
    cached = cache.get(CATALOGUE_KEY)
    if cached is None:
        future = _refresh_in_background()
        if future is not None and wait:
            # Timed out or failed (the refresh logs why): the picker then asks again shortly.
            with contextlib.suppress(Exception):
                future.result(timeout=CATALOGUE_COLD_WAIT)
        cached = cache.get(CATALOGUE_KEY)
        if cached is None:
            return Catalogue(models=[], fetched_at=None, refreshing=True)
    elif time.time() - cached["fetched_at"] > CATALOGUE_FRESH_FOR:
        _refresh_in_background()
    models = [entry for entry in cached["models"] if output in entry["outputs"]]
    return Catalogue(models=models, fetched_at=cached["fetched_at"], refreshing=False)


# A chat model id as OpenRouter writes them: author/slug, a variant after a colon (…:free), a
# leading ~ (an alias) or @ (@preset/…); "" asks for the account's default. Checked where an id
# comes in (forms, the picker, the websocket), so nothing else is ever stored.
MODEL_ID_PATTERN = (
    r"^(?=.{0,200}\Z)(?:[~@]?[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-:]*)?\Z"
)
model_id_validator = RegexValidator(
    MODEL_ID_PATTERN, "A model id looks like openai/gpt-4o (blank: my OpenRouter default)."
)


def model_offered(model: str, *, output: str = "text") -> bool:
    """Whether OpenRouter lists ``model`` among the models that make ``output`` (chat models by
    default, ``"3d"`` for the 3D form); a variant such as ``…:nitro`` counts as its base model.
    ``True`` while the list is not at hand: a moment without it refuses nothing, and OpenRouter
    judges the id when it is used."""
    models = models_catalogue(output=output).models
    if not models:
        return True
    ids = {entry["id"] for entry in models}
    return model in ids or model.split(":", 1)[0] in ids


def models_catalogue_refresh() -> int:
    """Fetch ``/models`` and cache the chat and 3D models; returns how many. Raises
    ``OpenRouterError``."""
    try:
        models = [entry for raw in client.list_models() if (entry := picker_entry(raw))]
        models.sort(key=lambda entry: entry["name"].lower())
        cache.set(CATALOGUE_KEY, {"models": models, "fetched_at": time.time()}, CATALOGUE_KEEP_FOR)
        return len(models)
    finally:
        cache.delete(CATALOGUE_LOCK)


def _refresh_in_background() -> Any:
    if not cache.add(CATALOGUE_LOCK, 1, timeout=60):
        return None  # someone is already fetching it
    return _refresher.submit(_refresh_logged)


def _refresh_logged() -> None:
    try:
        models_catalogue_refresh()
    except OpenRouterError as error:
        logger.warning("could not refresh the model list: %s", error.detail or error.message)


def picker_entry(model: dict[str, Any]) -> dict[str, Any] | None:
    """One ``/models`` entry as the picker shows it (prices in USD per million tokens) with
    ``outputs``, what of ``CATALOGUE_OUTPUTS`` it makes; ``None`` for a model that makes none
    of them (say, images only) or an entry without an id."""
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        return None
    made = (model.get("architecture") or {}).get("output_modalities") or ["text"]
    outputs = [output for output in CATALOGUE_OUTPUTS if output in made]
    if not outputs:
        return None
    pricing = model.get("pricing") or {}
    prompt = _per_million(pricing.get("prompt"))
    completion = _per_million(pricing.get("completion"))
    return {
        "id": model["id"],
        "name": str(model.get("name") or model["id"]),
        "description": str(model.get("description") or "")[:300],
        "context_length": int(model.get("context_length") or 0),
        "prompt_per_m": prompt,
        "completion_per_m": completion,
        "free": prompt == "0" and completion == "0",
        "outputs": outputs,
    }


def _per_million(price: Any) -> str | None:
    """``"0.00000015"`` USD per token → ``"0.15"`` per million; ``None`` when unknown or
    variable (OpenRouter's router models say ``"-1"``)."""
    try:
        value = Decimal(str(price)) * 1_000_000
    except (InvalidOperation, ValueError):
        return None
    if value < 0:
        return None
    return format(value.normalize(), "f") if value else "0"
