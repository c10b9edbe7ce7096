"""config.redis_batch: many callers' commands go to Redis in one pipeline; each caller gets its
own results or its own error (real Redis)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from config import redis_batch
from tests.services import free_port

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def client() -> AsyncIterator[Redis]:
    client = Redis.from_url(os.environ["REDIS_URL"])
    yield client
    await client.aclose()


@pytest.fixture
def pipelines(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of commands in each pipeline sent, in order."""
    sent: list[int] = []
    execute = Pipeline.execute

    async def counted(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        sent.append(len(self.command_stack))
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)
    return sent


def keys(count: int) -> list[str]:
    prefix = f"test:batch:{uuid.uuid4().hex}"
    return [f"{prefix}:{i}" for i in range(count)]


async def test_callers_at_once_share_a_round_trip_and_each_gets_its_own_results(
    client: Redis, pipelines: list[int]
) -> None:
    names = keys(50)
    await client.set(names[7], 41)
    batcher = redis_batch.batcher(client)

    def incr_twice(name: str) -> Any:
        return lambda pipe: (pipe.incr(name), pipe.incr(name))

    results = await asyncio.gather(*(batcher.execute(incr_twice(name)) for name in names))

    assert results[7] == [42, 43]
    assert all(results[i] == [1, 2] for i in range(50) if i != 7)
    # The first caller found nothing on the wire and sent its own at once; the 49 others
    # queued meanwhile went together, in one pipeline.
    assert pipelines == [2, 98]
    assert redis_batch.batcher(client) is batcher


async def test_commands_queued_while_a_batch_is_on_the_wire_go_in_the_next(
    client: Redis, pipelines: list[int]
) -> None:
    name, *_ = keys(1)
    batcher = redis_batch.batcher(client)
    first = asyncio.ensure_future(batcher.execute(lambda pipe: pipe.incr(name)))
    await asyncio.sleep(0)  # the first caller's command is on the wire
    later = [batcher.execute(lambda pipe: pipe.incr(name)) for _ in range(10)]
    assert sorted(await asyncio.gather(first, *later)) == [[n] for n in range(1, 12)]
    assert pipelines == [1, 10]


async def test_a_failing_command_fails_its_caller_only(client: Redis) -> None:
    ok, broken = keys(2)
    await client.set(broken, "not a number")
    batcher = redis_batch.batcher(client)

    def bad_caller(pipe: Pipeline) -> None:
        raise ValueError("a bug in the caller")

    results = await asyncio.gather(
        batcher.execute(lambda pipe: pipe.incr(ok)),
        batcher.execute(lambda pipe: (pipe.incr(ok), pipe.incr(broken))),
        batcher.execute(bad_caller),
        batcher.execute(lambda pipe: pipe.incr(ok)),
        return_exceptions=True,
    )

    assert results[0] == [1]
    assert isinstance(results[1], ResponseError)
    assert isinstance(results[2], ValueError)
    assert results[3] == [3]  # the failing caller's first command ran, in order
    assert await client.get(broken) == b"not a number"


async def test_a_caller_cancelled_before_its_batch_leaves_sends_nothing(
    client: Redis, pipelines: list[int]
) -> None:
    kept, dropped = keys(2)
    batcher = redis_batch.batcher(client)
    sent = asyncio.ensure_future(batcher.execute(lambda pipe: pipe.incr(kept)))
    cancelled = asyncio.ensure_future(batcher.execute(lambda pipe: pipe.incr(dropped)))
    await asyncio.sleep(0)  # the first on the wire, the second queued behind it
    cancelled.cancel()

    assert await sent == [1]
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    # Through the same batcher, so after whatever it had queued: nothing was.
    assert await batcher.execute(lambda pipe: pipe.exists(dropped)) == [0]
    assert pipelines == [1, 1]


async def test_a_caller_cancelled_on_the_wire_leaves_the_others_their_answers(
    client: Redis,
) -> None:
    name, *_ = keys(1)
    batcher = redis_batch.batcher(client)
    leader = asyncio.ensure_future(batcher.execute(lambda pipe: pipe.incr(name)))
    await asyncio.sleep(0)  # on the wire
    queued = asyncio.ensure_future(batcher.execute(lambda pipe: pipe.incr(name)))
    await asyncio.sleep(0)
    leader.cancel()

    with pytest.raises(asyncio.CancelledError):
        await leader
    assert (await queued)[0] in (1, 2)  # whether the leader's command ran is Redis's to say
    assert await batcher.execute(lambda pipe: pipe.ping()) == [True]


async def test_a_batch_cancelled_with_its_loop_fails_its_callers_not_cancels_them(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop closing cancels every task, the batch's sender too, maybe before its first
    step: its callers hear an error of their own (they were not cancelled), and the batcher
    is not left busy for ever."""
    name, *_ = keys(1)
    batcher = redis_batch.batcher(client)
    leader = asyncio.ensure_future(batcher.execute(lambda pipe: pipe.incr(name)))
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(batcher.execute(lambda pipe: pipe.incr(name)))
    await asyncio.sleep(0)
    create_task = asyncio.create_task

    def cancelled_at_once(coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = create_task(coro, **kwargs)
        task.cancel()  # before its first step, as a closing loop would
        return task

    with monkeypatch.context() as patch:
        patch.setattr(asyncio, "create_task", cancelled_at_once)
        assert await leader == [1]  # on its way out it hands the queue to a sender
        with pytest.raises(RedisConnectionError, match="cancelled"):
            await queued
    assert not queued.cancelled()
    assert await batcher.execute(lambda pipe: pipe.get(name)) == [b"1"]  # usable, nothing sent


async def test_a_batch_that_cannot_reach_redis_fails_every_caller_and_the_next_one_goes() -> None:
    unreachable = Redis(port=free_port(), socket_connect_timeout=1, retry=None)
    batcher = redis_batch.batcher(unreachable)
    results = await asyncio.gather(
        *(batcher.execute(lambda pipe: pipe.ping()) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, RedisConnectionError) for result in results)
    with pytest.raises(RedisConnectionError):  # not stuck: a later caller is sent, and told
        await batcher.execute(lambda pipe: pipe.ping())
    await unreachable.aclose()
