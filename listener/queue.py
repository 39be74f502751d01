"""How stages hand work to each other.

The pipeline only uses this small interface, so a distributed bus (Redis streams,
NATS, Kafka) can replace the in-process implementation without touching a stage.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class WorkQueue(Protocol[T]):
    """A FIFO of work items bounded by their total weight (mentions, for the daemon).

    ``put`` waits while the item does not fit (backpressure) and says whether it had to;
    ``full`` says whether a ``put`` would wait now; ``task_done`` acknowledges an item
    taken with ``get`` once it is fully handled; ``join`` waits until every item put so
    far has been acknowledged; ``weight`` is the total weight waiting."""

    async def put(self, item: T) -> bool: ...

    async def get(self) -> T: ...

    def task_done(self) -> None: ...

    async def join(self) -> None: ...

    def qsize(self) -> int: ...

    def weight(self) -> int: ...

    def full(self) -> bool: ...


class InProcessQueue(Generic[T]):
    """The default: an in-memory FIFO holding at most ``max_weight`` (by ``weigh``).

    An item heavier than the bound on its own is let in when the queue is empty, so
    nothing waits forever; callers keep items small (the daemon splits big polls).
    """

    def __init__(self, max_weight: int = 1000, weigh: Callable[[T], int] | None = None) -> None:
        self.max_weight = max_weight
        self._weigh: Callable[[T], int] = weigh or (lambda _item: 1)
        self._items: deque[tuple[T, int]] = deque()
        self._weight = 0
        self._unfinished = 0
        self._changed = asyncio.Condition()
        self._finished = asyncio.Event()
        self._finished.set()

    async def put(self, item: T) -> bool:
        size = max(0, self._weigh(item))
        waited = False
        async with self._changed:
            while self._weight > 0 and self._weight + size > self.max_weight:
                waited = True
                await self._changed.wait()
            self._items.append((item, size))
            self._weight += size
            self._unfinished += 1
            self._finished.clear()
            self._changed.notify_all()
        return waited

    async def get(self) -> T:
        async with self._changed:
            while not self._items:
                await self._changed.wait()
            item, size = self._items.popleft()
            self._weight -= size
            self._changed.notify_all()
        return item

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called more times than items were taken")
        self._unfinished -= 1
        if self._unfinished == 0:
            self._finished.set()

    async def join(self) -> None:
        await self._finished.wait()

    def qsize(self) -> int:
        return len(self._items)

    def weight(self) -> int:
        return self._weight

    def full(self) -> bool:
        return self._weight >= self.max_weight
