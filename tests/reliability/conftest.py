"""The real stack for the reliability tests, and the clients that drive it like people do.

``Stack`` is the whole product as `make run` starts it — uvicorn, Celery workers, a Redis of its
own, a sandbox upstream — on free ports, using the test database. Faults are real: processes are
SIGKILLed, Redis is killed and started again on the same port, PostgreSQL refuses connections.
``Person`` is a browser against a started web server: a session cookie, CSRF-checked forms, and
websocket tabs over real TCP. ``HostileUpstream`` is an upstream that answers what the sandbox
never would (malformed meshes, redirects, wrong-shaped JSON); it is a real HTTP(S) server.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import secrets
import socket
import ssl
import string
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.db import connection
from django.test import Client, override_settings
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from accounts.models import User
from accounts.services import api_key_store
from tests import services


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


# --- waiting ----------------------------------------------------------------------------------


def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Polls ``check`` until it returns something truthy; fails the test after ``timeout``.

    A bound on how long to wait for an outcome, never an assertion about speed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- the stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    """Web, workers, Redis and a sandbox on free ports, sharing the test database."""

    env: dict[str, str]
    redis_port: int
    redis: services.Service
    sandbox: services.Service
    sandbox_url: str
    web: services.Service | None = None
    url: str = ""
    workers: list[services.Service] = field(default_factory=list)
    every: list[services.Service] = field(default_factory=list)  # for log searches

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start_web(self, **extra: str) -> str:
        self.web, self.url = services.start_web({**self.env, **extra})
        self.every.append(self.web)
        return self.url

    def add_worker(self, name: str = "worker", **extra: str) -> services.Service:
        worker = services.start_worker({**self.env, **extra}, name=name)
        self.workers.append(worker)
        self.every.append(worker)
        return worker

    def kill_redis(self) -> None:
        """SIGKILL: everything Redis held (queued jobs, groups, cache) is gone, as in a crash."""
        self.redis.kill()

    def start_redis(self) -> None:
        """A fresh Redis on the same port, so every process finds it where it was."""
        self.redis, _ = services.start_redis(self.redis_port)
        self.every.append(self.redis)

    def logs(self, *, include: tuple[str, ...] = ("web", "worker")) -> str:
        return "\n".join(s.log() for s in self.every if s.name.startswith(include))

    def sandbox_key(self) -> str:
        """A key the stack's sandbox accepts, issued without the consent dance."""
        response = httpx.post(f"{self.sandbox_url}/_sandbox/keys", json={"label": "reliability"})
        return str(response.json()["key"])

    def connect(self, user: User) -> str:
        """Store a sandbox key for ``user`` the way the connect flow does; returns the key."""
        key = self.sandbox_key()
        api_key_store(user=user, plain_key=key, source="oauth", label="reliability")
        return key

    def stop(self) -> None:
        for service in reversed(self.every):
            service.stop()


def start_stack(
    *,
    token_delay: float = 0.01,
    generation_delay: float = 1.0,
    workers: int = 1,
    web: bool = True,
    **extra: str,
) -> Stack:
    redis_port = services.free_port()
    redis, redis_url = services.start_redis(redis_port)
    sandbox, sandbox_url = services.start_sandbox(
        token_delay=token_delay, generation_delay=generation_delay
    )
    env = {
        **services.test_database_env(),
        "OPENROUTER_URL": sandbox_url,
        "REDIS_URL": redis_url,
        **extra,
    }
    stack = Stack(env, redis_port, redis, sandbox, sandbox_url, every=[redis, sandbox])
    try:
        for number in range(workers):
            stack.add_worker(name=f"worker{number + 1}")
        if web:
            stack.start_web()
    except BaseException:
        stack.stop()
        raise
    return stack


@contextlib.contextmanager
def using_redis(url: str) -> Iterator[None]:
    """Run product code in this process against a stack's Redis (its cache and channel layer),
    e.g. the sweepers that Celery beat would run there."""
    from channels.layers import channel_layers

    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url, "socket_timeout": 30}]},
        }
    }
    cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "sb",
        }
    }
    with override_settings(CHANNEL_LAYERS=layers, CACHES=cache):
        channel_layers.backends.clear()
        try:
            yield
        finally:
            channel_layers.backends.clear()


# --- the database, briefly unavailable --------------------------------------------------------


@contextlib.contextmanager
def database_unavailable() -> Iterator[None]:
    """PostgreSQL refuses every new connection to the test database and drops the open ones,
    except this test's own (which the assertions need); restored on exit."""
    name = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (own,) = cursor.fetchone()
    admin_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> %s",
                [name, own],
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


# --- people -----------------------------------------------------------------------------------


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def quick_user(email: str | None = None, **fields: Any) -> User:
    """A user without a usable password: no hashing, for tests that make many."""
    email = email or f"r{secrets.token_hex(6)}@example.com"
    return User.objects.create_user(email=email, password=None, **fields)


class Tab:
    """A browser tab's websocket over real TCP: JSON frames in and out."""

    def __init__(self, base_url: str, sessionid: str | None, path: str = "/ws/chat/") -> None:
        headers = {"Origin": base_url}
        if sessionid:
            headers["Cookie"] = f"sessionid={sessionid}"
        self.socket: ClientConnection = ws_connect(
            base_url.replace("http://", "ws://") + path,
            additional_headers=headers,
            open_timeout=15,
            max_size=None,
            legacy=True,
        )

    def send(self, **frame: Any) -> None:
        self.socket.send(json.dumps(frame))

    def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        return dict(json.loads(self.socket.recv(timeout=timeout)))

    def until(
        self, stop: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            frame = self.receive(max(0.01, deadline - time.monotonic()))
            frames.append(frame)
            if stop(frame):
                return frames

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.socket.close()

    def drop(self) -> None:
        """The network goes away: the TCP connection ends without a closing handshake."""
        with contextlib.suppress(OSError):
            self.socket.socket.shutdown(socket.SHUT_RDWR)
        self.socket.socket.close()


@dataclass
class Shown:
    """What a tab shows of one answer: the snapshot it read, then each delta that was news."""

    text: str = ""
    seq: int = 0
    state: str = "streaming"
    done: dict[str, Any] | None = None

    def apply(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "snapshot" or frame["type"] == "started":
            message = frame["message"]
            if message["seq"] >= self.seq:
                self.text, self.seq, self.state = message["text"], message["seq"], message["state"]
        elif frame["type"] == "delta" and frame["seq"] > self.seq:
            self.text, self.seq = self.text + frame["text"], frame["seq"]
        elif frame["type"] == "done":
            self.state, self.done = frame["message"]["state"], frame


class Person:
    """A signed-in browser against a started web server."""

    def __init__(self, base_url: str, user: User | None = None) -> None:
        self.base_url = base_url
        self.sessionid = session_cookie(user) if user is not None else None
        self.csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        self.http = httpx.Client(base_url=base_url, timeout=30)
        # Set as the server would (host-only, path /), so that its own Set-Cookie replaces them.
        host = httpx.URL(base_url).host
        self.http.cookies.set("csrftoken", self.csrf, domain=host, path="/")
        if self.sessionid:
            self.http.cookies.set("sessionid", self.sessionid, domain=host, path="/")

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        """A form post as the page sends it: the CSRF token in the form, its secret in the
        cookie (which Django rotates at sign-in)."""
        token = self.http.cookies.get("csrftoken") or self.csrf
        return self.http.post(path, data={**(data or {}), "csrfmiddlewaretoken": token})

    def tab(self, path: str = "/ws/chat/") -> Tab:
        sessionid = self.http.cookies.get("sessionid") or self.sessionid
        return Tab(self.base_url, sessionid, path)

    def close(self) -> None:
        self.http.close()


# --- an upstream that misbehaves in ways the sandbox does not ---------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class HostileUpstream:
    """A real HTTP(S) server on 127.0.0.1 that answers each path with a configured reply and
    records every request it gets (to prove that a refused URL was never fetched)."""

    def __init__(self, *, tls_for: str | None = None) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[tuple[str, str]] = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                upstream.requests.append((self.command, path))
                reply = upstream.replies.get(path, Reply(404, b'{"error": {"code": 404}}'))
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.ca_file: str | None = None
        scheme = "http"
        if tls_for:
            cert, key = self._self_signed(tls_for)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.ca_file = cert
            scheme = "https"
        self.url = f"{scheme}://{tls_for or '127.0.0.1'}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, path: str, body: Any = b"", status: int = 200, **headers: str) -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.replies[path] = Reply(status, body, headers)

    def fetched(self, path: str) -> bool:
        return any(seen == path for _, seen in self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _self_signed(host: str) -> tuple[str, str]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        now = datetime.datetime.now(datetime.UTC)
        alt: list[x509.GeneralName] = [x509.DNSName(host)]
        with contextlib.suppress(ValueError):
            alt = [x509.IPAddress(ipaddress.ip_address(host))]
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        folder = Path(tempfile.mkdtemp(prefix="hostile-tls-"))
        cert_path, key_path = folder / "cert.pem", folder / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(cert_path), str(key_path)


@pytest.fixture
def hostile() -> Iterator[HostileUpstream]:
    upstream = HostileUpstream()
    yield upstream
    upstream.close()


# --- the product as deployed: DEBUG off -------------------------------------------------------


@dataclass
class Production:
    """A web process with ``DEBUG=0`` (HTTPS redirect off, as behind a TLS proxy on loopback).

    Its upstream answers ``/key`` with JSON of the wrong shape, so the account's credits page
    fails inside the code that holds the user's key: a real error page, with DEBUG off.
    """

    web: services.Service
    url: str
    upstream: HostileUpstream

    def get(self, path: str, sessionid: str | None = None) -> httpx.Response:
        # The session cookie is Secure: a browser sends it over https only, so it is set here
        # by hand for this plain-http loopback connection.
        headers = {"Cookie": f"sessionid={sessionid}"} if sessionid else {}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=30)


@pytest.fixture(scope="package")
def production(django_db_setup: None, django_db_blocker: Any) -> Iterator[Production]:
    upstream = HostileUpstream()
    upstream.reply("/api/v1/key", [])
    with django_db_blocker.unblock():
        env = {
            **services.test_database_env(),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "OPENROUTER_URL": upstream.url,
            "LOG_LEVEL": "DEBUG",
        }
        web, url = services.start_web(env)
    yield Production(web, url, upstream)
    web.stop()
    upstream.close()
