"""OpenRouter-shaped errors, and the request parsing every API endpoint shares."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from openrouter.sandbox.auth import key_is_valid


def error_response(
    status: int,
    message: str,
    *,
    metadata: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """``{"error": {"code", "message", "metadata"?}}`` with the same HTTP status, as upstream."""
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def unauthorized(request: Request) -> JSONResponse:
    if "authorization" in request.headers:
        return error_response(401, "User not found.")
    return error_response(401, "No auth credentials found")


def bearer_key(request: Request) -> str | None:
    """The caller's API key when it is a valid sandbox key, else None."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key_is_valid(key):
        return None
    return key


async def json_object(request: Request) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is missing or malformed."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def not_json_page() -> HTMLResponse:
    """What a misconfigured proxy or a captive portal answers: 200 and HTML."""
    return HTMLResponse(
        "<html><head><title>Welcome</title></head>"
        "<body><h1>It works!</h1><p>This is not the API you are looking for.</p></body></html>"
    )


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
