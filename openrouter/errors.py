"""The one error family for everything that goes wrong upstream, in words a user can act on."""

from __future__ import annotations

import json
from typing import Any

# Statuses worth trying again later: the request itself was fine.
RETRYABLE = {408, 429, 500, 502, 503, 504}


class OpenRouterError(Exception):
    """A failed call to OpenRouter.

    ``status`` is the upstream HTTP status or error code (``None`` for a network failure or a
    timeout), ``message`` a sentence for the user, ``detail`` what OpenRouter itself said,
    ``retryable`` whether the same request may succeed later, ``retry_after`` seconds to wait
    when OpenRouter said so.
    """

    def __init__(
        self,
        status: int | None,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail

    def __repr__(self) -> str:
        return f"OpenRouterError(status={self.status!r}, message={self.message!r})"

    @property
    def code(self) -> str:
        """A short label for storage and logs: the status, or the kind of network failure."""
        return str(self.status) if self.status is not None else "network"

    @classmethod
    def from_status(
        cls,
        status: int,
        detail: str = "",
        *,
        retry_after: float | None = None,
        metadata: dict[str, Any] | None = None,
        model: str = "",
    ) -> OpenRouterError:
        """``model``: the one asked for or serving ("" when not known), for a 429's advice."""
        return cls(
            status,
            _sentence(status, detail, retry_after, metadata or {}, model),
            retryable=status in RETRYABLE,
            retry_after=retry_after,
            detail=detail,
        )

    @classmethod
    def network(cls, detail: str = "") -> OpenRouterError:
        return cls(
            None,
            "Could not reach OpenRouter. Check the connection and try again.",
            retryable=True,
            detail=detail,
        )

    @classmethod
    def timeout(cls, detail: str = "") -> OpenRouterError:
        return cls(
            408, "OpenRouter did not answer in time. Try again.", retryable=True, detail=detail
        )

    @classmethod
    def bad_response(cls, detail: str = "") -> OpenRouterError:
        return cls(
            502,
            "OpenRouter sent a response we could not read. Try again or pick another model.",
            retryable=True,
            detail=detail,
        )


def size_in_words(size: int) -> str:
    """A byte count as people read it, in the binary units the settings are written in:
    ``20 MB``, ``1.5 MB``, ``512 KB``."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{round(size / scale, 1):g} {unit}"
    return f"{size} bytes"


def error_from_body(
    status: int,
    body: bytes,
    *,
    retry_after: str | None = None,
    reason: str = "",
    model: str = "",
) -> OpenRouterError:
    """The error an unsuccessful response stands for, from its status, its JSON body (OpenRouter's
    ``{"error": {"message", "metadata"}}``) and its ``Retry-After`` header, whatever the client."""
    detail = ""
    metadata: dict[str, Any] = {}
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            detail = str(parsed["error"].get("message") or "")
            found = parsed["error"].get("metadata")
            metadata = found if isinstance(found, dict) else {}
    except ValueError:
        detail = reason
    return OpenRouterError.from_status(
        status, detail, retry_after=_seconds(retry_after), metadata=metadata, model=model
    )


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def free_models_hint(*, model: str, detail: str = "") -> str:
    """Advice for a 429 of a free (``:free``) model or, when the model is not known (the
    account's default), of a 429 that names the free models' limit ("Rate limit exceeded:
    free-models-per-min"); empty otherwise: a paid model has no such limit to avoid."""
    if not model.endswith(":free") and (model or "free" not in detail.lower()):
        return ""
    return " Free (:free) models have tight limits; a paid variant avoids them."


def _later(retry_after: float | None) -> str:
    return f"in {retry_after:g} s" if retry_after else "in a moment"


def _sentence(
    status: int, detail: str, retry_after: float | None, metadata: dict[str, Any], model: str
) -> str:
    if status == 400:
        said = f": {detail}" if detail else ""
        return f"OpenRouter could not accept this request{said}."
    if status == 401:
        return "Your OpenRouter key was not accepted. Reconnect your OpenRouter account."
    if status == 402:
        # No address in the sentence (it broke mid-word on narrow cards): on pages, the words
        # "Add credits on OpenRouter" become a link to the credits page (accounts' connect_link).
        return "Your OpenRouter credits are used up. Add credits on OpenRouter, then try again."
    if status == 403:
        reasons = metadata.get("reasons")
        why = f" ({', '.join(map(str, reasons))})" if isinstance(reasons, list) and reasons else ""
        return (
            f"OpenRouter refused this request{why}: the key is disabled, its credit limit "
            "is reached, or moderation blocked the input."
        )
    if status == 404:
        return "OpenRouter could not find this model (404). Check the model id or pick another one."
    if status == 408:
        return "The model took too long to answer. Try again."
    if status == 429:
        return (
            f"OpenRouter is rate-limiting these requests — try again {_later(retry_after)}."
            f"{free_models_hint(model=model, detail=detail)}"
        )
    if status == 451:
        return "The model's moderation flagged this input, so it was not sent."
    if status == 502:
        return "The model is down or sent an invalid response. Try again or pick another model."
    if status == 503:
        return (
            f"No provider can serve this model right now. Try again {_later(retry_after)} "
            "or pick another model."
        )
    return f"OpenRouter answered with an unexpected error (HTTP {status}). Try again later."
