"""The sandbox under test runs as its own process, exactly as `python -m openrouter.sandbox`.

Nothing here needs Django: these tests run with or without the project's pytest plugins.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "openrouter.sandbox", "--port", str(port)),
                *("--token-delay", "0.001", "--generation-delay", "0.3"),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"{url}/api/v1/models").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the sandbox did not start:\n{log.read().decode()}")
                time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def client(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        yield client


@pytest.fixture
def key(client: httpx.Client) -> str:
    """A fresh key from the test endpoint; the PKCE tests get theirs the real way."""
    key: str = client.post("/_sandbox/keys", json={"label": "Test key"}).json()["key"]
    return key


@pytest.fixture
def api(sandbox_url: str, key: str) -> Iterator[httpx.Client]:
    """A client that speaks to /api/v1 with a valid key."""
    with httpx.Client(
        base_url=f"{sandbox_url}/api/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as api:
        yield api
