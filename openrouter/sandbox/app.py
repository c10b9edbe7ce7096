"""The sandbox's routes: the PKCE connect flow, the API under ``/api/v1``, hosted files, stand-ins
for the website's pages the app links to, and the test endpoints under ``/_sandbox``. Chat and 3D
live in ``chat.py`` and ``objects.py``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from openrouter.sandbox.auth import METHODS, ExchangeError, key_mint, key_user_id
from openrouter.sandbox.catalog import models_json
from openrouter.sandbox.chat import chat_completions
from openrouter.sandbox.config import Sandbox, Settings, sandbox_of
from openrouter.sandbox.objects import objects_generations
from openrouter.sandbox.pages import HEADERS, consent_page, credits_page, error_page, key_page
from openrouter.sandbox.responses import bearer_key, error_response, json_object, unauthorized
from openrouter.sandbox.state import DEFAULT_KEY_LABEL, KEY_LIMIT

_AUTH_FIELDS = ("callback_url", "code_challenge", "code_challenge_method", "key_label")
# The list never changes while the process runs: encode it once.
_MODELS_BODY = json.dumps({"data": models_json()}).encode()


# --- PKCE connect --------------------------------------------------------------------------------


def _auth_params(values: dict[str, str]) -> dict[str, str] | str:
    """The authorize parameters, or what is wrong with them."""
    params = {name: values[name] for name in _AUTH_FIELDS if values.get(name)}
    callback = urlsplit(params.get("callback_url", ""))
    if "callback_url" not in params:
        return "callback_url is required."
    if callback.scheme not in ("http", "https") or not callback.netloc:
        return "callback_url must be an absolute http(s) URL."
    if "code_challenge" in params:
        # RFC 7636 §4.3: without a method, the challenge is the verifier itself.
        params.setdefault("code_challenge_method", "plain")
        if params["code_challenge_method"] not in METHODS:
            return "code_challenge_method must be S256 or plain."
    else:
        params.pop("code_challenge_method", None)
    return params


def _html(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status, headers=HEADERS)


async def authorize(request: Request) -> Response:
    params = _auth_params(dict(request.query_params))
    if isinstance(params, str):
        return _html(error_page(params), 400)
    return _html(
        consent_page(
            callback_url=params["callback_url"], fields=params, key_label=params.get("key_label")
        )
    )


async def authorize_decision(request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    params = _auth_params(form)
    if isinstance(params, str):
        return _html(error_page(params), 400)
    if form.get("decision") == "authorize":
        code = sandbox_of(request).codes.issue(
            challenge=params.get("code_challenge"),
            method=params.get("code_challenge_method"),
            label=params.get("key_label"),
        )
        return RedirectResponse(_with_query(params["callback_url"], code=code), status_code=302)
    return RedirectResponse(
        _with_query(params["callback_url"], error="access_denied"), status_code=302
    )


def _with_query(url: str, **extra: str) -> str:
    """``url`` with ``extra`` appended to its query; what was already there stays as it was."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(extra)) if q)
    return urlunsplit(parts._replace(query=query))


async def exchange_code(request: Request) -> Response:
    body = await json_object(request)
    if body is None or not isinstance(body.get("code"), str):
        return error_response(400, "Invalid request: code is required")
    verifier, method = body.get("code_verifier"), body.get("code_challenge_method")
    if verifier is not None and not isinstance(verifier, str):
        return error_response(400, "Invalid request: code_verifier must be a string")
    if method is not None and method not in METHODS:
        return error_response(400, "Invalid request: code_challenge_method must be S256 or plain")
    sandbox = sandbox_of(request)
    try:
        grant = sandbox.codes.redeem(code=body["code"], verifier=verifier, method=method)
    except ExchangeError as error:
        return error_response(error.status, error.message)
    key = key_mint()
    sandbox.state.key_labels[key] = grant.label or DEFAULT_KEY_LABEL
    return JSONResponse({"key": key, "user_id": key_user_id(key)})


# --- API -----------------------------------------------------------------------------------------


async def key_info(request: Request) -> Response:
    key = bearer_key(request)
    if key is None:
        return unauthorized(request)
    return JSONResponse({"data": sandbox_of(request).state.key_info(key)})


async def models(request: Request) -> Response:
    return Response(_MODELS_BODY, media_type="application/json")


async def generation(request: Request) -> Response:
    if bearer_key(request) is None:
        return unauthorized(request)
    generation_id = request.query_params.get("id")
    if not generation_id:
        return error_response(400, "Invalid request: id is required")
    found = sandbox_of(request).state.generations.get(generation_id)
    if found is None:
        return error_response(404, f"Generation {generation_id} not found")
    return JSONResponse({"data": found.as_json()})


async def hosted_file(request: Request) -> Response:
    found = sandbox_of(request).state.files.get(request.path_params["name"])
    if found is None:
        return error_response(404, "Not Found")
    return Response(found.content, media_type=found.media_type)


# --- website pages the app links to -----------------------------------------------------------


async def credits(request: Request) -> Response:
    return _html(credits_page(key_limit=KEY_LIMIT))


async def key_settings(request: Request) -> Response:
    state = sandbox_of(request).state
    key = state.key_by_hash(request.path_params["key_hash"])
    return _html(key_page(state.key_info(key) if key else None))


# --- test endpoints ------------------------------------------------------------------------------


async def sandbox_state(request: Request) -> Response:
    return JSONResponse(vars(sandbox_of(request).state.counters))


async def sandbox_reset(request: Request) -> Response:
    sandbox_of(request).state.reset_counters()
    return JSONResponse(vars(sandbox_of(request).state.counters))


async def sandbox_key(request: Request) -> Response:
    """A key without the consent dance, for tests and scripts: ``{"label"?}`` → ``{"key"}``."""
    body = await json_object(request) or {}
    label = body.get("label")
    key = key_mint()
    sandbox_of(request).state.key_labels[key] = label if isinstance(label, str) else "Sandbox key"
    return JSONResponse({"key": key, "user_id": key_user_id(key)})


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], float] = time.monotonic
) -> Starlette:
    """The ASGI app. ``clock`` drives code expiry, so tests can move time forward."""
    app = Starlette(
        routes=[
            Route("/auth", authorize, methods=["GET"]),
            Route("/auth/decision", authorize_decision, methods=["POST"]),
            Route("/api/v1/auth/keys", exchange_code, methods=["POST"]),
            Route("/api/v1/key", key_info, methods=["GET"]),
            Route("/api/v1/auth/key", key_info, methods=["GET"]),
            Route("/api/v1/models", models, methods=["GET"]),
            Route("/api/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/api/v1/generation", generation, methods=["GET"]),
            Route("/api/v1/objects/generations", objects_generations, methods=["POST"]),
            Route("/files/{name}", hosted_file, methods=["GET"], name="file"),
            Route("/settings/credits", credits, methods=["GET"]),
            Route("/keys/{key_hash}", key_settings, methods=["GET"]),
            Route("/_sandbox/state", sandbox_state, methods=["GET"]),
            Route("/_sandbox/reset", sandbox_reset, methods=["POST"]),
            Route("/_sandbox/keys", sandbox_key, methods=["POST"]),
        ]
    )
    app.state.sandbox = Sandbox(settings or Settings(), clock=clock)
    return app
