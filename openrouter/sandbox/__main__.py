"""``python -m openrouter.sandbox --port 8001``: serve the sandbox with uvicorn.

Every option can also come from the environment (``SANDBOX_HOST``, ``SANDBOX_PORT``,
``SANDBOX_TOKEN_DELAY``, ``SANDBOX_GENERATION_DELAY``, ``SANDBOX_CODE_TTL``); the command line wins.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from openrouter.sandbox.app import create_app
from openrouter.sandbox.config import Settings
from openrouter.sandbox.streaming import quiet_cut_logs


def main(argv: list[str] | None = None) -> None:
    defaults = Settings.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m openrouter.sandbox",
        description="An offline stand-in for the OpenRouter API.",
    )
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8001")))
    parser.add_argument(
        "--token-delay",
        type=float,
        default=defaults.token_delay,
        help="seconds between streamed tokens (default %(default)s)",
    )
    parser.add_argument(
        "--generation-delay",
        type=float,
        default=defaults.generation_delay,
        help="seconds a 3D generation takes (default %(default)s)",
    )
    parser.add_argument(
        "--code-ttl",
        type=float,
        default=defaults.code_ttl,
        help="seconds an authorization code stays valid (default %(default)s)",
    )
    args = parser.parse_args(argv)
    settings = Settings(
        token_delay=args.token_delay,
        generation_delay=args.generation_delay,
        code_ttl=args.code_ttl,
    )
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
        # A thousand clients may connect at once: keep the listen queue deep enough.
        backlog=4096,
    )
    quiet_cut_logs()
    print(f"OpenRouter sandbox on http://{args.host}:{args.port}", flush=True)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
