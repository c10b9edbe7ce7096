"""The fault models: model ids that make the sandbox misbehave the way the real upstream can.

This table is the documentation. Pick a fault by sending its id as ``model`` (or first in
``models``) to ``/api/v1/chat/completions`` or ``/api/v1/objects/generations``. Every fault model
is also listed by ``/api/v1/models`` (named "Sandbox: …") so it can be chosen in a UI.

======================= ========================================= ================================
model id                chat completions                          objects/generations
======================= ========================================= ================================
sandbox/error-400       400 JSON error body, before any stream    same
sandbox/error-401       401 (invalid credentials)                 same
sandbox/error-402       402 (out of credits)                      same
sandbox/error-403       403 moderation, ``metadata.reasons``      same
sandbox/error-408       408 (request timed out)                   same
sandbox/error-429       429 with ``Retry-After: 7``               same
sandbox/error-451       451 (input flagged)                       same
sandbox/error-500       500, a status the docs do not list        same
sandbox/error-502       502 (provider down)                       same
sandbox/error-503       503 (no provider), ``Retry-After: 3``     same
sandbox/midstream-error role chunk + 10 tokens, then a data       keep-alives, then a 200 body
                        chunk with a top-level ``error`` {code    ``{"error": {...}}`` and no
                        502, metadata.error_type                  generations
                        "provider_unavailable"} and
                        ``choices[0].finish_reason="error"``;
                        no [DONE]. Not streamed: 200 with the
                        partial message, that ``error`` and
                        finish_reason "error".
sandbox/drop            10 tokens, then the TCP connection is     keep-alives, part of the JSON,
                        closed mid-body (incomplete chunked       then the connection is closed
                        read); no [DONE]. Not streamed: half a
                        JSON body, then closed.
sandbox/truncated       10 tokens, then the body ends cleanly     keep-alives, part of the JSON,
                        without [DONE]. Not streamed: half a      then a clean end
                        JSON body, clean end.
sandbox/stall           role chunk + 4 tokens, then silence for   keep-alives forever (until the
                        an hour (until the client gives up).      client gives up)
                        Not streamed: no headers, ever.
sandbox/slow            a normal reply at 0.25 s per token        400: not a 3D model
sandbox/slow-connect    30 s before the response headers          30 s before the headers
sandbox/not-json        200 ``text/html`` page (not SSE, not      same
                        JSON)
sandbox/xss             a normal reply whose text carries a       outputs whose ``uri`` is a
                        ``<script>``, an ``<img onerror>`` and    text/html data URI and ``url``
                        a ``javascript:`` markdown link           a ``javascript:`` URL
sandbox/no-3d           a normal chat model                       404 ``{"error": {"code": 404,
                                                                  "message": "Not Found"}}``
======================= ========================================= ================================

Errors carry OpenRouter's body ``{"error": {"code": <status>, "message": …, "metadata"?}}``.
A pre-stream error fault followed by another model in ``models`` falls back to it, as the
upstream does: ``models: ["sandbox/error-503", "openai/gpt-4o"]`` is answered by gpt-4o.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Kind(Enum):
    HTTP_ERROR = "http_error"
    MIDSTREAM_ERROR = "midstream_error"
    DROP = "drop"
    TRUNCATED = "truncated"
    STALL = "stall"
    SLOW = "slow"
    SLOW_CONNECT = "slow_connect"
    NOT_JSON = "not_json"
    XSS = "xss"
    NO_3D = "no_3d"


@dataclass(frozen=True)
class Fault:
    model_id: str
    kind: Kind
    description: str
    status: int = 200
    message: str = ""
    metadata: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"Sandbox: {self.model_id.removeprefix('sandbox/').replace('-', ' ')}"

    def error_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.metadata is not None:
            error["metadata"] = self.metadata
        return {"error": error}


# What a stream says when it fails after the first token (OpenRouter's shape, see the facts doc).
MIDSTREAM_ERROR: dict[str, Any] = {
    "code": 502,
    "message": "Provider returned error",
    "metadata": {"error_type": "provider_unavailable", "provider_name": "Sandbox"},
}

# Tokens sent before a mid-stream fault strikes, and before a stall.
TOKENS_BEFORE_FAULT = 10
TOKENS_BEFORE_STALL = 4
SLOW_TOKEN_DELAY = 0.25
SLOW_CONNECT_SECONDS = 30.0
STALL_SECONDS = 3600.0

XSS_PAYLOAD = (
    "Here is some content to render safely: <script>window.__xss=1;alert(1)</script> "
    'and an image <img src=x onerror="window.__xss=1"> and a link [click](javascript:alert(1)).'
)


def _http_error(
    status: int,
    message: str,
    description: str,
    metadata: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Fault:
    return Fault(
        model_id=f"sandbox/error-{status}",
        kind=Kind.HTTP_ERROR,
        description=description,
        status=status,
        message=message,
        metadata=metadata,
        headers=headers or {},
    )


FAULTS: dict[str, Fault] = {
    fault.model_id: fault
    for fault in (
        _http_error(400, "Invalid request: the provider rejected the parameters", "Bad request."),
        _http_error(401, "No auth credentials found", "Invalid credentials."),
        _http_error(
            402,
            "Insufficient credits. Add more at https://openrouter.ai/settings/credits",
            "Out of credits.",
        ),
        _http_error(
            403,
            "Your input was flagged by the moderation guardrail",
            "Moderation refused the input; metadata.reasons says why.",
            metadata={"reasons": ["violence"], "flagged_input": "…", "provider_name": "Sandbox"},
        ),
        _http_error(408, "Request timed out", "The upstream gave up waiting."),
        _http_error(
            429,
            "Rate limit exceeded: free-models-per-min",
            "Rate limited; Retry-After: 7.",
            headers={"Retry-After": "7"},
        ),
        _http_error(
            451,
            "Your chosen model requires moderation and your input was flagged",
            "Input flagged by the model's moderation.",
            metadata={"reasons": ["self-harm"], "provider_name": "Sandbox"},
        ),
        _http_error(500, "Internal Server Error", "A status the documentation does not list."),
        _http_error(
            502,
            "Provider returned error",
            "The chosen model is down.",
            metadata={"provider_name": "Sandbox", "raw": "upstream connect error"},
        ),
        _http_error(
            503,
            "No available providers meet your routing requirements",
            "No provider available; Retry-After: 3.",
            headers={"Retry-After": "3"},
        ),
        Fault(
            "sandbox/midstream-error",
            Kind.MIDSTREAM_ERROR,
            "About 10 tokens, then an error chunk with finish_reason 'error' and no [DONE].",
        ),
        Fault(
            "sandbox/drop",
            Kind.DROP,
            "About 10 tokens, then the connection is cut without [DONE].",
        ),
        Fault(
            "sandbox/truncated",
            Kind.TRUNCATED,
            "About 10 tokens, then the body ends cleanly without [DONE].",
        ),
        Fault("sandbox/stall", Kind.STALL, "A few tokens, then silence until the client gives up."),
        Fault("sandbox/slow", Kind.SLOW, "A normal reply at 0.25 s per token."),
        Fault("sandbox/slow-connect", Kind.SLOW_CONNECT, "Waits 30 s before sending headers."),
        Fault("sandbox/not-json", Kind.NOT_JSON, "Answers 200 with an HTML page."),
        Fault(
            "sandbox/xss",
            Kind.XSS,
            "A normal reply carrying script tags, an onerror image and a javascript: link.",
        ),
        Fault("sandbox/no-3d", Kind.NO_3D, "A chat model; 3D generation answers 404."),
    )
}


def fault_for(model_id: str) -> Fault | None:
    return FAULTS.get(model_id)
