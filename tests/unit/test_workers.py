"""SourceThreads: one poll at a time per source, a stuck one holding only its source."""

from __future__ import annotations

import asyncio
import threading

import pytest

from listener.workers import SourceThreads


async def test_the_next_poll_can_start_as_soon_as_the_last_one_is_awaited() -> None:
    """A poll counts as finished when its function returns, not when its thread has
    ended: back-to-back polls of one source never find it busy (checking the thread
    raced with its last instructions after handing the result over)."""
    threads = SourceThreads()
    for i in range(300):
        assert await threads.run("feed", lambda n=i: n * 2) == i * 2
        assert not threads.busy("feed")
    assert threads.running() == 0


async def test_a_stuck_poll_holds_its_source_only_until_it_returns() -> None:
    threads = SourceThreads()
    release = threading.Event()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(threads.run("stuck", release.wait), 0.05)
    assert threads.busy("stuck")
    assert threads.running() == 1
    with pytest.raises(RuntimeError, match="still running"):
        await threads.run("stuck", lambda: None)
    assert await threads.run("healthy", lambda: "ok") == "ok"  # another source is not held
    release.set()
    for _ in range(200):  # the abandoned thread returns on its own
        if not threads.busy("stuck"):
            break
        await asyncio.sleep(0.01)
    assert not threads.busy("stuck")
    assert await threads.run("stuck", lambda: "again") == "again"


async def test_a_failed_poll_raises_in_the_caller_and_frees_its_source() -> None:
    threads = SourceThreads()

    def broken() -> None:
        raise ValueError("bad feed")

    with pytest.raises(ValueError, match="bad feed"):
        await threads.run("feed", broken)
    assert not threads.busy("feed")
