"""Small Redis commands from many tasks, sent together: one pipeline, one round trip, per batch.

Every answer costs the event loop a few small Redis commands: its send's count (with the user's
cached key), its tab's move to the conversation's group, "is any other tab there?" at its end.
Sent one by one, each takes a connection of a pool for its round trip, and on a loop busy with
a thousand sockets a connection is held until the loop gets round to its reply (a loop cycle):
the pools grew to hundreds of connections (~1,000 at 1,000 streams, a few KiB of objects each
besides their sockets) and a send could wait out a bounded pool (docs/benchmarks.md, 2026-12-06).

A ``Batcher`` sends the commands queued while its previous batch was on the wire as the next
batch: one pipeline (``transaction=False``: no ``MULTI``, commands of different callers are not
atomic together; a caller's own commands run in order, back to back) on one connection at a
time, whatever the number of callers. With nothing on the wire a caller sends its commands at
once, from its own task; a busy loop sends fewer, larger pipelines. Each caller gets its own
commands' results, or the first error among them, or the error that failed the whole batch (a
lost connection is retried by the client's ``retry`` first, as redis-py retries any command).
A caller cancelled before its batch leaves sends nothing; after, its commands still run.
As with any redis-py command, a connection lost after Redis ran a batch and retried on a new
one runs it twice: for the send counters, an over-count of one minute's sends, never an
under-count.

``batcher(client)`` is the client's batcher (one per client, so per connection pool): the
channel layer's clients (``layer.connection(shard)``, one per event loop) and the send counters'
(``chat.services``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError

# Adds a caller's commands to the batch's pipeline (their results come back in that order).
Commands = Callable[[Pipeline], object]


Waiter = tuple[Commands, "asyncio.Future[list[Any]]"]


class Batcher:
    def __init__(self, client: Redis) -> None:
        # Weakly: ``batcher()`` keys its batchers by client, and a value holding its key would
        # keep both forever.
        self._client = weakref.ref(client)
        self._queued: list[Waiter] = []
        self._busy = False  # a batch is on the wire

    async def execute(self, commands: Commands) -> list[Any]:
        """Run the commands ``commands`` adds to a pipeline in the next batch; their results.

        With nothing on the wire the caller sends its own commands at once, from its own task
        (no hop through another); whatever is queued meanwhile goes next, sent by a task."""
        if self._busy:
            future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            self._queued.append((commands, future))
            return await future
        self._busy = True
        try:
            pipe = self._pipeline()
            commands(pipe)
            return _results_or_first_error(await pipe.execute(raise_on_error=False))
        finally:
            self._send_queued()

    def _send_queued(self) -> None:
        """Send what is queued, in a task; or, with nothing queued, be idle."""
        if not self._queued:
            self._busy = False
            return
        batch, self._queued = self._queued, []
        sending = asyncio.create_task(self._send(batch), name="redis-batch")
        # A callback, not a ``finally`` in ``_send``: it runs even for a task cancelled before
        # its first step (the loop closing), which would otherwise leave the batcher busy for
        # ever and its callers waiting.
        sending.add_done_callback(lambda task: self._sent(task, batch))

    def _sent(self, task: asyncio.Task[None], batch: list[Waiter]) -> None:
        if not task.cancelled():
            self._send_queued()
            return
        # The loop is closing: tell every caller left (an error of their own, not a
        # cancellation: their tasks were not cancelled), and send nothing more.
        waiting, self._queued, self._busy = batch + self._queued, [], False
        for _, future in waiting:
            if not future.done():
                future.set_exception(RedisConnectionError("the Redis batch was cancelled"))

    def _pipeline(self) -> Pipeline:
        client = self._client()
        if client is None:  # closed and collected while commands were queued
            raise RedisConnectionError("the Redis client was closed")
        return client.pipeline(transaction=False)

    async def _send(self, batch: list[Waiter]) -> None:
        spans: list[tuple[asyncio.Future[list[Any]], int, int]] = []
        try:
            pipe = self._pipeline()
            for commands, future in batch:
                if future.done():
                    continue  # its caller was cancelled before the batch left: nothing to send
                start = len(pipe.command_stack)
                try:
                    commands(pipe)
                except Exception as error:  # a caller's bug is its own, not the batch's
                    del pipe.command_stack[start:]
                    future.set_exception(error)
                    continue
                spans.append((future, start, len(pipe.command_stack)))
            results = await pipe.execute(raise_on_error=False) if spans else []
        except Exception as error:
            for future, _, _ in spans:
                if not future.done():
                    future.set_exception(_own_copy(error))
            return
        for future, start, end in spans:
            if not future.done():
                try:
                    future.set_result(_results_or_first_error(results[start:end]))
                except Exception as error:
                    future.set_exception(error)


def _results_or_first_error(results: list[Any]) -> list[Any]:
    """A caller's results, or the first error among them raised."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def _own_copy(error: Exception) -> Exception:
    """An error that failed a whole batch, once per caller: an exception raised in several
    tasks would have its traceback rewritten by each (and keep all their frames alive)."""
    try:
        copy = type(error)(*error.args)
    except Exception:
        return error
    copy.__cause__ = error
    return copy


_batchers: weakref.WeakKeyDictionary[Redis, Batcher] = weakref.WeakKeyDictionary()


def batcher(client: Redis) -> Batcher:
    """``client``'s batcher, made on first use. A client belongs to one event loop (its
    connections do), and so does its batcher."""
    found = _batchers.get(client)
    if found is None:
        found = _batchers[client] = Batcher(client)
    return found
