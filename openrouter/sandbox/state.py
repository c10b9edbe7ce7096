"""Everything the sandbox remembers, in memory: gone at restart, like a fresh upstream account.

Keys themselves need no memory (see ``auth.py``); only their labels and spending live here.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

KEY_LIMIT = 10.0  # every sandbox key has a $10 credit limit
DEFAULT_KEY_LABEL = "Sandbox key"
# Hosted 3D outputs (`/files/…`) are kept within these bounds; the oldest go first.
MAX_FILES = 200
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_GENERATIONS = 20_000  # generation records kept for `/api/v1/generation`


@dataclass
class Counters:
    active_streams: int = 0
    completed_streams: int = 0
    cancelled_streams: int = 0
    generation_requests: int = 0
    chat_requests: int = 0


@dataclass
class Generation:
    """One chat completion, as ``GET /api/v1/generation`` reports it."""

    id: str
    model: str
    streamed: bool
    tokens_prompt: int
    created: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    tokens_completion: int = 0
    total_cost: float = 0.0
    cancelled: bool = False
    finish_reason: str | None = None
    first_token_ms: int | None = None
    generation_ms: int | None = None

    def mark_first_token(self) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = round((time.monotonic() - self.started) * 1000)

    def mark_done(self, *, finish_reason: str | None, cancelled: bool = False) -> None:
        self.finish_reason = finish_reason
        self.cancelled = cancelled
        self.generation_ms = round((time.monotonic() - self.started) * 1000)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "provider_name": "Sandbox",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "streamed": self.streamed,
            "cancelled": self.cancelled,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.finish_reason,
            "tokens_prompt": self.tokens_prompt,
            "tokens_completion": self.tokens_completion,
            "native_tokens_prompt": self.tokens_prompt,
            "native_tokens_completion": self.tokens_completion,
            "native_tokens_reasoning": 0,
            "total_cost": self.total_cost,
            "usage": self.total_cost,
            "cache_discount": None,
            "is_byok": False,
            "latency": self.first_token_ms,
            "moderation_latency": None,
            "generation_time": self.generation_ms,
            "origin": "",
            "app_id": None,
        }


@dataclass
class HostedFile:
    content: bytes
    media_type: str


class SandboxState:
    def __init__(self) -> None:
        self.counters = Counters()
        self.generations: OrderedDict[str, Generation] = OrderedDict()
        self.key_labels: dict[str, str] = {}
        self.key_usage: dict[str, float] = {}
        self.files: OrderedDict[str, HostedFile] = OrderedDict()
        self.file_bytes = 0
        self.failed_once: set[tuple[str, str]] = set()

    def reset_counters(self) -> None:
        self.counters = Counters()

    def key_label(self, key: str) -> str:
        return self.key_labels.get(key, DEFAULT_KEY_LABEL)

    def key_by_hash(self, key_hash: str) -> str | None:
        """The key whose sha256 hex is ``key_hash``, among those seen since launch (the address
        of a key's page on the website names it so)."""
        for key in self.key_labels.keys() | self.key_usage.keys():
            if hashlib.sha256(key.encode()).hexdigest() == key_hash:
                return key
        return None

    def key_spend(self, key: str, cost: float) -> None:
        self.key_usage[key] = self.key_usage.get(key, 0.0) + cost

    def key_remaining(self, key: str) -> float:
        return round(KEY_LIMIT - self.key_usage.get(key, 0.0), 10)

    def key_info(self, key: str) -> dict[str, Any]:
        usage = round(self.key_usage.get(key, 0.0), 10)
        return {
            "label": self.key_label(key),
            "limit": KEY_LIMIT,
            "limit_remaining": self.key_remaining(key),
            "limit_reset": None,
            "include_byok_in_limit": False,
            "usage": usage,
            # The sandbox's memory starts at launch, so every period's usage is the same.
            "usage_daily": usage,
            "usage_weekly": usage,
            "usage_monthly": usage,
            "byok_usage": 0,
            "is_free_tier": False,
            "is_provisioning_key": False,
            "rate_limit": {"requests": -1, "interval": "10s"},
        }

    def generation_put(self, generation: Generation) -> None:
        self.generations[generation.id] = generation
        while len(self.generations) > MAX_GENERATIONS:
            self.generations.popitem(last=False)

    def file_put(self, name: str, content: bytes, media_type: str) -> None:
        self.files[name] = HostedFile(content, media_type)
        self.file_bytes += len(content)
        while len(self.files) > 1 and (
            len(self.files) > MAX_FILES or self.file_bytes > MAX_FILE_BYTES
        ):
            _, dropped = self.files.popitem(last=False)
            self.file_bytes -= len(dropped.content)
