"""How stages hand work to each other.

The pipeline only uses this small interface, so a distributed bus (Redis streams,
NATS, Kafka) can replace the in-process implementation without touching a stage.
"""

from __future__ import annotations

import asyncio
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class WorkQueue(Protocol[T]):
    """A bounded FIFO of work items. ``put`` waits when full (backpressure);
    ``task_done`` acknowledges an item taken with ``get`` once it is fully handled;
    ``join`` waits until every item put so far has been acknowledged."""

    async def put(self, item: T) -> None: ...

    async def get(self) -> T: ...

    def task_done(self) -> None: ...

    async def join(self) -> None: ...

    def qsize(self) -> int: ...


class InProcessQueue(Generic[T]):
    """The default: an ``asyncio.Queue`` with a bound."""

    def __init__(self, maxsize: int = 1000) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)

    async def put(self, item: T) -> None:
        await self._queue.put(item)

    async def get(self) -> T:
        return await self._queue.get()

    def task_done(self) -> None:
        self._queue.task_done()

    async def join(self) -> None:
        await self._queue.join()

    def qsize(self) -> int:
        return self._queue.qsize()
