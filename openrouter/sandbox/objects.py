"""``POST /api/v1/objects/generations``: text to 3D, as OpenRouter's historical Shap-E runner did.

The runner took long and kept the connection alive by writing whitespace before the JSON body, so
the status is 200 before anything is known: the sandbox does the same. Words in the prompt pick
variants (see README): ``url``, ``bare``, ``ascii``, ``huge``, ``fail once``, ``flagged``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from openrouter.sandbox import faults
from openrouter.sandbox.catalog import DEFAULT_OBJECT_MODEL, model_by_id
from openrouter.sandbox.config import Sandbox, sandbox_of
from openrouter.sandbox.faults import Fault, Kind
from openrouter.sandbox.meshes import glb_bytes, mesh_for, ply_bytes, shape_for
from openrouter.sandbox.responses import (
    bearer_key,
    error_response,
    json_object,
    not_json_page,
    positive_int,
    unauthorized,
)
from openrouter.sandbox.streaming import ConnectionCut, WatchedStream

KEEPALIVE = b" "
KEEPALIVE_EVERY = 0.5
HUGE_BYTES = 22_500_000  # ~30 MB once base64-encoded
MAX_OUTPUTS = 4
MAX_STEPS = 256
BODY_CHUNK = 1 << 20  # a big body goes out in pieces, so other streams get their turn
MEDIA_TYPES = {"ply": "application/x-ply", "glb": "model/gltf-binary"}
_XSS_OUTPUT = {
    "uri": "data:text/html;base64,"
    + base64.b64encode(b"<script>window.__xss=1;alert(1)</script>").decode(),
    "url": "javascript:alert(1)",
}


@dataclass(frozen=True)
class Job:
    prompt: str
    steps: int
    outputs: int
    extension: str
    fault: Fault | None
    request_price: float

    def has(self, words: str) -> bool:
        """Whether the prompt holds these words as words ("url" is not in "curly")."""
        pattern = re.escape(words).replace(r"\ ", r"\s+")
        return re.search(rf"\b{pattern}\b", self.prompt, re.IGNORECASE) is not None


async def objects_generations(request: Request) -> Response:
    sandbox = sandbox_of(request)
    sandbox.state.counters.generation_requests += 1
    key = bearer_key(request)
    if key is None:
        return unauthorized(request)
    body = await json_object(request)
    if body is None:
        return error_response(400, "Invalid request: the body must be a JSON object")
    job = _job(body)
    if isinstance(job, Response):
        return job
    refusal = _refusal(sandbox, key, job)
    if refusal is not None:
        return refusal
    urls = None
    if job.has("url"):
        names = [f"{secrets.token_hex(8)}-{i}.{job.extension}" for i in range(job.outputs)]
        urls = {name: str(request.url_for("file", name=name)) for name in names}
    return WatchedStream(_body(sandbox, key, job, urls), media_type="application/json")


def _job(body: dict[str, Any]) -> Job | Response:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return error_response(400, "Invalid request: prompt is required")
    steps = body.get("num_inference_steps", 32)
    if not positive_int(steps) or steps > MAX_STEPS:
        return error_response(400, f"Invalid request: num_inference_steps must be 1..{MAX_STEPS}")
    outputs = body.get("num_outputs", 1)
    if not positive_int(outputs) or outputs > MAX_OUTPUTS:
        return error_response(400, f"Invalid request: num_outputs must be 1..{MAX_OUTPUTS}")
    extension = body.get("extension", "ply")
    if extension not in MEDIA_TYPES:
        return error_response(400, "Invalid request: extension must be 'ply' or 'glb'")
    model_id = body.get("model", DEFAULT_OBJECT_MODEL)
    if not isinstance(model_id, str):
        return error_response(400, "Invalid request: model must be a string")
    fault = faults.fault_for(model_id)
    model = model_by_id(model_id)
    if model is None:
        return error_response(400, f"{model_id} is not a valid model ID")
    # A fault model answers as its row in faults.py says; `slow` has no 3D behaviour.
    if (fault is None and not model.makes_objects) or (fault and fault.kind is Kind.SLOW):
        return error_response(400, f"{model_id} does not generate 3D objects")
    return Job(prompt, steps, outputs, str(extension), fault, float(model.request_price))


def _refusal(sandbox: Sandbox, key: str, job: Job) -> Response | None:
    """The answers that come before the 200: faults by model id, then by prompt keyword."""
    fault = job.fault
    if fault is not None and fault.kind is Kind.HTTP_ERROR:
        return error_response(
            fault.status, fault.message, metadata=fault.metadata, headers=fault.headers
        )
    if fault is not None and fault.kind is Kind.NO_3D:
        return error_response(404, "Not Found")
    if fault is not None and fault.kind is Kind.NOT_JSON:
        return not_json_page()
    if job.has("flagged"):
        return error_response(
            451,
            "Your chosen model requires moderation and your input was flagged",
            metadata={"reasons": ["violence"], "flagged_input": job.prompt[:100]},
        )
    if job.has("fail once") and (key, job.prompt) not in sandbox.state.failed_once:
        sandbox.state.failed_once.add((key, job.prompt))
        return error_response(502, "Provider returned error", metadata={"provider_name": "Sandbox"})
    if job.request_price > 0 and sandbox.state.key_remaining(key) <= 0:
        return error_response(402, faults.FAULTS["sandbox/error-402"].message)
    return None


async def _body(
    sandbox: Sandbox, key: str, job: Job, urls: dict[str, str] | None
) -> AsyncIterator[bytes]:
    kind = job.fault.kind if job.fault else None
    if kind is Kind.SLOW_CONNECT:
        await asyncio.sleep(faults.SLOW_CONNECT_SECONDS)
    # Meshes are built in a thread while the keep-alives go out: the loop never waits on them.
    needs_meshes = kind not in (Kind.STALL, Kind.MIDSTREAM_ERROR, Kind.XSS)
    build = asyncio.ensure_future(asyncio.to_thread(_build, job, urls)) if needs_meshes else None
    try:
        yield KEEPALIVE
        loop = asyncio.get_running_loop()
        delay = math.inf if kind is Kind.STALL else sandbox.settings.generation_delay
        deadline = loop.time() + delay
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(KEEPALIVE_EVERY, remaining))
            if deadline > loop.time():
                yield KEEPALIVE
        if kind is Kind.MIDSTREAM_ERROR:
            yield json.dumps({"error": faults.MIDSTREAM_ERROR}).encode()
            return
        if kind is Kind.XSS or build is None:
            yield json.dumps({"generations": [_XSS_OUTPUT] * job.outputs}).encode()
            return
        data, files = await build
    finally:
        if build is not None:
            build.cancel()
    if kind in (Kind.DROP, Kind.TRUNCATED):
        yield data[: min(len(data) // 2, 4096)]
        if kind is Kind.DROP:
            raise ConnectionCut
        return
    for name, (content, media_type) in files.items():
        sandbox.state.file_put(name, content, media_type)
    sandbox.state.key_spend(key, job.request_price)
    for start in range(0, len(data), BODY_CHUNK):
        yield data[start : start + BODY_CHUNK]


def _build(job: Job, urls: dict[str, str] | None) -> tuple[bytes, dict[str, tuple[bytes, str]]]:
    """The JSON body and the files to host. CPU work, run in a thread."""
    media_type = MEDIA_TYPES[job.extension]
    names = list(urls) if urls else [None] * job.outputs
    outputs: list[dict[str, str]] = []
    files: dict[str, tuple[bytes, str]] = {}
    for index, name in enumerate(names):
        mesh = mesh_for(job.prompt, index, job.steps)
        padding = HUGE_BYTES if job.has("huge") and index == 0 else 0
        if job.extension == "glb":
            content = glb_bytes(mesh, padding=padding, name=shape_for(job.prompt))
        else:
            comment = f"{shape_for(job.prompt)} for: {job.prompt}"
            content = ply_bytes(mesh, ascii=job.has("ascii"), padding=padding, comment=comment)
        if urls is not None and name is not None:
            files[name] = (content, media_type)
            outputs.append({"url": urls[name]})
            continue
        encoded = base64.b64encode(content).decode("ascii")
        outputs.append(
            {"uri": encoded if job.has("bare") else f"data:{media_type};base64,{encoded}"}
        )
    return json.dumps({"generations": outputs}).encode(), files
