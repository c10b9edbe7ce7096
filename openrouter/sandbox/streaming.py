"""A streamed response that notices when the client goes away, and can cut the connection.

Starlette's StreamingResponse stops listening for disconnects under ASGI spec 2.4 (uvicorn's), and
uvicorn then silently drops writes to a closed socket: a stalled or slow stream would never learn
that its client left. Here the body is produced in one task while another waits for
``http.disconnect``; whichever finishes first decides. Headers are sent with the first chunk, so
a generator that sleeps before its first ``yield`` delays the headers too (``slow-connect``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from enum import Enum

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class Outcome(Enum):
    COMPLETED = "completed"  # the body ended as the sandbox meant it to, faults included
    CANCELLED = "cancelled"  # the client disconnected first
    CUT = "cut"  # the sandbox cut the connection on purpose (``sandbox/drop``)


class ConnectionCut(Exception):
    """Raised by a body generator to close the connection in the middle of the body.

    uvicorn answers an exception raised after the headers went out by closing the transport,
    which is exactly a dropped connection as a client sees it. ``quiet_cut_logs`` keeps that
    deliberate exception out of the server log.
    """


class WatchedStream(Response):
    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        status_code: int = 200,
        media_type: str,
        headers: dict[str, str] | None = None,
        on_finish: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.body_iterator = body
        self.status_code = status_code
        self.media_type = media_type
        self.background = None
        self.on_finish = on_finish
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        outcome = Outcome.COMPLETED
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if producer.done():
                try:
                    producer.result()
                except ConnectionCut:
                    outcome = Outcome.CUT
                    raise
            else:
                outcome = Outcome.CANCELLED
        finally:
            for task in (producer, watcher):
                task.cancel()
            await asyncio.gather(producer, watcher, return_exceptions=True)
            if self.on_finish is not None:
                self.on_finish(outcome)

    async def _produce(self, send: Send) -> None:
        started = False
        try:
            async for chunk in self.body_iterator:
                if not started:
                    await self._start(send)
                    started = True
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            # Runs the generator's own cleanup now, in this task, whatever ended it.
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        if not started:
            await self._start(send)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _start(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _HideCuts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionCut))


def quiet_cut_logs() -> None:
    """Hides uvicorn's "Exception in ASGI application" report for deliberate cuts."""
    logging.getLogger("uvicorn.error").addFilter(_HideCuts())
