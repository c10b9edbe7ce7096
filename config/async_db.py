"""Database calls from async code (websocket consumers, the chat relay), on a kept connection.

Channels' ``database_sync_to_async`` runs a call in asgiref's one thread-sensitive thread and
calls ``close_old_connections()`` before and after it. With ``CONN_MAX_AGE = 0``, as Django asks
for under ASGI (every HTTP request runs in a thread of its own, so a kept connection would be
one per request thread), that opens and closes a connection on every call. Websocket consumers
and relays, though, make all their calls on that same long-lived thread, so there one connection
can serve them all. This module's ``database_sync_to_async`` does exactly what Channels' does,
except that the thread's connection is kept between calls; a connection is still dropped after
an error that left it unusable, or with a transaction left open (both as Django would), and it
is health-checked before its first use after each call, so that a database restart costs no
request an error.

Why it matters, measured on this project's SQLite (docs/benchmarks.md): a chat send costs
1.9 ms of CPU on a kept connection and 6.0 ms with a connection per call (connecting registers
Django's SQL functions and runs the pragmas; closing the last connection to a WAL database makes
SQLite checkpoint the log); a relay makes several calls per answer. With PostgreSQL every
connection is a TCP handshake and an authentication (use ``OPTIONS: {"pool": True}`` there too).

Channels also sweeps old connections before every message a consumer handles; this project's
consumers (``config.consumers.JsonConsumer``) skip that sweep, since their calls go through
``database_sync_to_async`` here, which sees to the connection around each one.

A call that must not wait behind that thread's queue (reading the session of a socket being
opened, while the sends of a thousand open ones are queued there) names a database thread of its
own: ``database_sync_to_async(func, thread="…")``, one thread and one kept connection per name.

``close_kept_connections()`` closes those threads' connections (at shutdown, and in the tests
before the test database is dropped).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync
from django.db import connections

# Database threads besides asgiref's thread-sensitive one, by name (``database_sync_to_async``).
_threads: dict[str, ThreadPoolExecutor] = {}


class KeptConnectionSyncToAsync(SyncToAsync):
    """``SyncToAsync`` in the thread-sensitive thread (or in ``executor``'s one thread),
    keeping its database connections."""

    def __init__(self, func: Any, executor: ThreadPoolExecutor | None = None) -> None:
        super().__init__(func, thread_sensitive=executor is None, executor=executor)

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        keep_usable_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            keep_usable_connections()


def database_sync_to_async(func: Any, *, thread: str | None = None) -> KeptConnectionSyncToAsync:
    """``func`` made awaitable: run in the thread-sensitive thread, or in the database thread
    named ``thread`` (started on first use), on that thread's kept connection."""
    if thread is None:
        return KeptConnectionSyncToAsync(func)
    if thread not in _threads:
        _threads[thread] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"db-{thread}")
    return KeptConnectionSyncToAsync(func, executor=_threads[thread])


def keep_usable_connections() -> None:
    """``close_old_connections()`` without the age limit: this thread's usable connections are
    kept (and marked as such, so that Channels' own calls on this thread keep them too)."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            # ``close_at`` is when Django drops a connection for its age: never, on this thread.
            connection.close_at = None
            # A kept connection may have died since (a database restart): its next use on this
            # thread, whoever makes it, checks it first (``CONN_HEALTH_CHECKS`` for this one
            # connection: a ``SELECT 1`` with PostgreSQL, nothing with SQLite) and reconnects.
            # (The attribute is missing from django-stubs.)
            connection.health_check_enabled = True  # type: ignore[attr-defined]
            connection.close_if_unusable_or_obsolete()  # after an error, or a transaction left


async def close_kept_connections() -> None:
    await SyncToAsync(connections.close_all, thread_sensitive=True)()
    for executor in _threads.values():
        await SyncToAsync(connections.close_all, thread_sensitive=False, executor=executor)()
