"""The processing queue is bounded by the weight of what it holds (mentions), not by items."""

from __future__ import annotations

import asyncio

import pytest

from listener.queue import InProcessQueue


def _queue(max_weight: int) -> InProcessQueue[list[int]]:
    return InProcessQueue(max_weight, weigh=len)


async def test_put_waits_for_room_and_says_so() -> None:
    """A put that does not fit waits until a get makes room, and reports it waited."""
    queue = _queue(10)
    assert await queue.put([1] * 6) is False
    assert (queue.weight(), queue.full()) == (6, False)
    blocked = asyncio.ensure_future(queue.put([2] * 6))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert queue.weight() == 6
    assert await queue.get() == [1] * 6
    assert await asyncio.wait_for(blocked, 5) is True
    assert (queue.weight(), queue.qsize()) == (6, 1)


async def test_an_oversized_item_enters_an_empty_queue() -> None:
    """An item heavier than the bound is let in when nothing waits, so nothing waits forever;
    the queue is then full."""
    queue = _queue(10)
    assert await asyncio.wait_for(queue.put([0] * 25), 5) is False
    assert queue.full()
    assert await queue.get() == [0] * 25
    assert (queue.weight(), queue.full()) == (0, False)


async def test_join_waits_for_every_item_to_be_done() -> None:
    """join returns once every item taken has been acknowledged with task_done."""
    queue = _queue(10)
    await queue.put([1])
    await queue.put([2])
    joined = asyncio.ensure_future(queue.join())
    await queue.get()
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    await queue.get()
    queue.task_done()
    await asyncio.wait_for(joined, 5)
    with pytest.raises(ValueError, match="more times"):
        queue.task_done()
