"""The stream's idle limit (``openrouter.client._IdleLimit``): one wait too long is a timeout;
a stream that is slow overall, or not read for a while, is not; a stop stays a stop.

The limit's end to end effects (a stalled body, headers that never come) are in test_client.py.
"""

from __future__ import annotations

import asyncio

import pytest

from openrouter.client import _IdleLimit, _stream_error


async def test_a_wait_longer_than_the_limit_is_a_timeout() -> None:
    limit = _IdleLimit(0.05)
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(TimeoutError):
            await limit.wait(asyncio.sleep(5))
    finally:
        limit.close()
    assert asyncio.get_running_loop().time() - started < 1
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_the_limit_is_per_wait_not_for_the_whole_stream() -> None:
    """Six waits of 0.04 s, then 0.2 s not reading at all, under a 0.1 s limit: no timeout (the
    timer that wakes while no read waits, or a read began since, sleeps again)."""
    limit = _IdleLimit(0.1)
    try:
        for _ in range(6):
            assert await limit.wait(asyncio.sleep(0.04, "piece")) == "piece"
        await asyncio.sleep(0.2)  # busy elsewhere: the socket, the database
        assert await limit.wait(asyncio.sleep(0.04, "piece")) == "piece"
    finally:
        limit.close()
    assert not limit.expired


async def test_a_stop_that_meets_the_limit_stays_a_stop() -> None:
    limits: list[_IdleLimit] = []

    async def read() -> None:
        limits.append(_IdleLimit(10))
        await limits[0].wait(asyncio.sleep(30))

    task = asyncio.create_task(read())
    await asyncio.sleep(0.01)
    limit = limits[0]
    limit.since = asyncio.get_running_loop().time() - 11  # the limit passes…
    limit._check()
    task.cancel()  # …as the answer is stopped
    with pytest.raises(asyncio.CancelledError):
        await task
    limit.close()


async def test_the_limit_cancels_only_its_own_task() -> None:
    other = asyncio.create_task(asyncio.sleep(0.3, "untouched"))
    limit = _IdleLimit(0.05)
    try:
        with pytest.raises(TimeoutError):
            await limit.wait(asyncio.sleep(5))
    finally:
        limit.close()
    assert await other == "untouched"


async def test_the_limit_interrupts_the_task_that_waits_not_the_one_that_made_it() -> None:
    limit = _IdleLimit(0.05)
    try:
        assert await limit.wait(asyncio.sleep(0, "first")) == "first"
        reader = asyncio.create_task(limit.wait(asyncio.sleep(5)))  # a later read elsewhere
        done, _ = await asyncio.wait({reader}, timeout=2)  # this task is not cancelled
        assert reader in done
        with pytest.raises(TimeoutError):
            reader.result()
    finally:
        limit.close()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_an_error_body_that_never_comes_is_a_timeout() -> None:
    class Stalled:  # an error status whose body stalls after the headers
        status, reason, headers = 503, "Service Unavailable", {}

        async def read(self) -> bytes:
            await asyncio.sleep(5)
            return b""

    limit = _IdleLimit(0.05)
    try:
        error = await _stream_error(Stalled(), limit, "")  # type: ignore[arg-type]
    finally:
        limit.close()
    assert error.retryable and "did not answer in time" in error.message
