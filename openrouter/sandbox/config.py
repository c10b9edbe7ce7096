"""The sandbox's settings and the one object every endpoint reaches through ``sandbox_of``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from openrouter.sandbox.auth import CODE_TTL_SECONDS, CodeStore
from openrouter.sandbox.state import SandboxState


@dataclass(frozen=True)
class Settings:
    token_delay: float = 0.02  # seconds between streamed tokens
    generation_delay: float = 3.0  # seconds a 3D generation takes
    code_ttl: float = CODE_TTL_SECONDS  # lifetime of an authorization code

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            token_delay=float(os.environ.get("SANDBOX_TOKEN_DELAY", cls.token_delay)),
            generation_delay=float(
                os.environ.get("SANDBOX_GENERATION_DELAY", cls.generation_delay)
            ),
            code_ttl=float(os.environ.get("SANDBOX_CODE_TTL", cls.code_ttl)),
        )


@dataclass
class Sandbox:
    settings: Settings
    clock: Callable[[], float] = time.monotonic
    state: SandboxState = field(default_factory=SandboxState)
    codes: CodeStore = field(init=False)

    def __post_init__(self) -> None:
        self.codes = CodeStore(ttl=self.settings.code_ttl, clock=self.clock)


def sandbox_of(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox
