"""What every benchmark shares: percentiles, process CPU/RSS sampling, tables, JSON results,
the machine's description and the Switchboard deployment (web, Redis, database) they run against.

Services are started with ``tests.services`` (the suite's own starters): each one a process group
of its own that ``stop()`` ends, on a free port, so a bench runs beside ``make run`` or the suite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.services import (
    ROOT,
    WEB_ENV,
    Service,
    free_port,
    port_open,
    procfile_command,
    start_postgres,
    start_redis,
    wait_for,
)

RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent


# --- numbers -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max / mean of seconds, in milliseconds."""
    if not values:
        return {"n": 0, "p50": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50) * 1000,
        "p99": percentile(ordered, 99) * 1000,
        "max": ordered[-1] * 1000,
        "mean": sum(ordered) / len(ordered) * 1000,
    }


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table whose text is also valid Markdown."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]

    def line(items: Sequence[str]) -> str:
        padded = (item.rjust(w) for item, w in zip(items, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    out = [f"\n{title}\n", line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


# --- processes -----------------------------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int, system_only: bool = False) -> float:
    """user + system CPU (or system alone) of a process and its live descendants."""
    total = 0.0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = proc.cpu_times()
            total += times.system if system_only else times.user + times.system
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total


@dataclass
class Sampler:
    """Peak RSS of named process trees, sampled in a thread every ``interval`` seconds."""

    pids: dict[str, int]
    interval: float = 0.1
    peak: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            self.peak[name] = max(self.peak.get(name, 0), rss_bytes(pid))

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def cpu_system(self) -> dict[str, float]:
        """Kernel time alone: on loopback TCP, each send and receive costs tens of µs here."""
        return {name: cpu_seconds(pid, system_only=True) for name, pid in self.pids.items()}

    def rss(self) -> dict[str, int]:
        return {name: rss_bytes(pid) for name, pid in self.pids.items()}


def py_spy(pid: int, path: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Sample ``pid`` (and its children) for ``seconds`` into collapsed stacks at ``path``."""
    binary = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    args = [binary, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
    args += ["--rate", "250", "--format", "raw", "--subprocesses", "--output", str(path)]
    if os.environ.get("BENCH_PY_SPY_NATIVE"):
        args.append("--native")  # C frames too (uvloop, json, zlib, syscalls); slower
    if os.environ.get("BENCH_PY_SPY_GIL"):
        args.append("--gil")  # only the thread holding the GIL: Python's CPU, not waits
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- the machine and the results -----------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit + ("+dirty" if dirty else ""),
        "argv": sys.argv,
    }


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """``bench/results/<name>.json`` (the latest run) and a dated copy beside it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = json.dumps(payload, indent=2, default=str)
    (RESULTS / f"{name}-{stamp}.json").write_text(text)
    latest = RESULTS / f"{name}.json"
    latest.write_text(text)
    return latest


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --- Switchboard as deployed ---------------------------------------------------------------------

TEST_SECRET = "bench-secret-key-not-for-production-0123456789abcdefghijklmnopqrstuv"  # noqa: S105
TEST_FERNET = "0F1TQ5Fhq0nA0d3H4jcK7mRV3JYmS9AuS9cKc4xN-4U="


class Deployment:
    """Redis, a database (SQLite file or a throwaway PostgreSQL cluster) and Django's settings
    for them, in a temporary ``VAR_DIR``. Web servers and workers are started on demand.

    ``DEBUG=0`` as in production (so static files are collected first); the per-user send and
    generation caps are lifted because one bench user sends far more than a person would.
    """

    def __init__(
        self,
        database: str = "sqlite",
        openrouter_url: str = "",
        debug: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.var = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
        self.services: list[Service] = []
        redis, self.redis_url = start_redis()
        self.services.append(redis)
        self.pg_dir: Path | None = None
        if database == "postgres":
            postgres, url, self.pg_dir = start_postgres()
            self.services.append(postgres)
            _create_database(url)
            self.database_url = url
        else:
            self.database_url = f"sqlite:///{self.var / 'db.sqlite3'}"
        self.database = database
        self.env = {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "1" if debug else "0",
            "SECURE_SSL_REDIRECT": "0",
            "VAR_DIR": str(self.var),
            "MEDIA_ROOT": str(self.var / "media"),
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "OPENROUTER_URL": openrouter_url,
            "SECRET_KEY": TEST_SECRET,
            "FIELD_ENCRYPTION_KEYS": TEST_FERNET,
            "SITE_URL": "http://127.0.0.1:8000",
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",  # testserver: the test client
            # Every bench client is one user or one address: no quota may refuse them.
            "CHAT_SENDS_PER_MINUTE": "1000000",
            "CHAT_SENDS_PER_MINUTE_PER_IP": "1000000",
            "GENERATIONS_IN_FLIGHT_PER_USER": "1000000",
            "GENERATIONS_PER_HOUR": "1000000",
            "GENERATIONS_PER_HOUR_PER_IP": "1000000",
            "GENERATION_ALLOW_PRIVATE_URLS": "1",
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }

    def setup_django(self) -> None:
        """Configure Django in this process for this deployment, migrate, collect static."""
        os.environ.update(self.env)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        call_command("collectstatic", verbosity=0, interactive=False)

    def start_web(self, name: str = "web", extra: Sequence[str] = ()) -> tuple[Service, int]:
        """The Procfile's web process; ``extra`` arguments come last (and so win, for uvicorn)."""
        port = free_port()
        args = [*procfile_command("web", WEB_PORT=str(port)), *extra]
        # SITE_URL is the origin websockets must come from: this server's own.
        env = {**WEB_ENV, **self.env, "SITE_URL": f"http://127.0.0.1:{port}"}
        service = Service(name, args, env=env, log_dir=self.var)
        self.services.append(service)
        try:
            wait_for(lambda: port_open(port), "the web server", timeout=60)
        except RuntimeError:
            raise RuntimeError(f"web did not start:\n{service.log()[-3000:]}") from None
        return service, port

    def stop(self, service: Service) -> None:
        service.stop()
        keep_log(service)
        with contextlib.suppress(ValueError):
            self.services.remove(service)

    def close(self) -> None:
        while self.services:
            service = self.services.pop()
            service.stop()
            keep_log(service)
        shutil.rmtree(self.var, ignore_errors=True)
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)


def keep_log(service: Service) -> None:
    """With ``BENCH_KEEP_LOGS=DIR``, a stopped service's log is copied there (for diagnosis)."""
    folder = os.environ.get("BENCH_KEEP_LOGS")
    if folder and service.log_path.exists():
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(service.log_path, Path(folder) / service.log_path.name)


def _create_database(url: str) -> None:
    import psycopg

    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE switchboard")


def session_cookies(users: Sequence[Any]) -> list[str]:
    """A signed-in session per user, made as django.contrib.auth.login would make it."""
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore

    cookies = []
    backend = settings.AUTHENTICATION_BACKENDS[0]
    for user in users:
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = backend
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    return cookies


def bench_users(count: int, *, prefix: str, plain_key: str | None = None) -> list[Any]:
    """``count`` users, each with an OpenRouter key stored the product's way (encrypted).

    One password hash is computed and shared: hashing a thousand passwords would take minutes
    and measure nothing.
    """
    from django.contrib.auth.hashers import make_password

    from accounts.models import User
    from accounts.services import api_key_store
    from openrouter.sandbox.auth import key_mint

    password = make_password("bench password, never used to log in")
    existing = {u.email: u for u in User.objects.filter(email__startswith=f"{prefix}-")}
    new = [
        User(email=f"{prefix}-{i}@bench.invalid", password=password)
        for i in range(count)
        if f"{prefix}-{i}@bench.invalid" not in existing
    ]
    User.objects.bulk_create(new, batch_size=500)
    users = list(User.objects.filter(email__startswith=f"{prefix}-").order_by("pk"))[:count]
    for user in users:
        if not hasattr(user, "openrouter_key"):
            api_key_store(user=user, plain_key=plain_key or key_mint(), source="pasted")
    return users


@contextlib.contextmanager
def deployment(
    database: str = "sqlite",
    openrouter_url: str = "",
    debug: bool = False,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    deploy = Deployment(
        database=database, openrouter_url=openrouter_url, debug=debug, extra_env=extra_env
    )
    try:
        deploy.setup_django()
        yield deploy
    finally:
        deploy.close()


def elapsed(start: float) -> str:
    return f"{time.monotonic() - start:.0f} s"
