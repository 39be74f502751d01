"""Where the daemon's blocking work runs, kept apart so one stage cannot starve another.

- **Polls** run in :class:`SourceThreads`: one daemon thread per poll and at most one per
  source. A poll that outlives its deadline cannot be killed; its thread is left to end on
  its own and no new poll of that source starts meanwhile, so a stalled source holds one
  thread, never a healthy source's, and never delays the process exit.
- **Store and processing** (ingest, evaluation, housekeeping) and the **HTTP API's store
  reads** each get a small bounded :class:`Pool` of their own (built in
  :class:`listener.app.Daemon`); delivery keeps the loop's default one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller gave up (deadline, shutdown)
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class SourceThreads:
    """Runs each source's blocking poll in a thread of its own, one at a time per source."""

    def __init__(self) -> None:
        self._polls: dict[str, threading.Event] = {}
        """Each source's last poll: set once its function has returned (its thread may
        still be handing the outcome over, which is not a poll running)."""

    def busy(self, source: str) -> bool:
        """True while the last poll of ``source`` is still running (stuck or not)."""
        finished = self._polls.get(source)
        return finished is not None and not finished.is_set()

    def running(self) -> int:
        """How many polls are running now (stuck ones included)."""
        return sum(not finished.is_set() for finished in self._polls.values())

    async def run(self, source: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a new daemon thread, with the caller's context variables.

        Cancelling the await (``asyncio.wait_for``) abandons the thread, which keeps
        :meth:`busy` true until ``fn`` returns. Raises RuntimeError when ``source`` is
        busy. The poll counts as finished when ``fn`` returns, before its thread hands the
        outcome to the loop and ends: a caller that awaited it may start the next poll at
        once (checking the thread itself raced with its last few instructions).
        """
        if self.busy(source):
            raise RuntimeError(f"a poll of {source!r} is still running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        context = contextvars.copy_context()
        finished = threading.Event()

        def work() -> None:
            try:
                outcome: tuple[bool, Any] = (True, context.run(fn, *args))
            except Exception as exc:
                outcome = (False, exc)
            finally:  # even on a BaseException, which ends the thread
                finished.set()
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle, future, *outcome)

        thread = threading.Thread(target=work, name=f"poll:{source}", daemon=True)
        self._polls[source] = finished
        thread.start()
        return await future


class Pool:
    """A small bounded thread pool for one kind of blocking work (store, API reads).

    ``await pool.run(fn, *args)`` runs ``fn`` in one of its threads, with the caller's
    context variables when ``copy_context`` (so log lines keep ``source`` and the like).
    """

    def __init__(self, name: str, workers: int = 2, *, copy_context: bool = True) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._copy_context = copy_context

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        if self._copy_context:
            context = contextvars.copy_context()
            return await loop.run_in_executor(
                self._executor, lambda: context.run(fn, *args, **kwargs)
            )
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def shutdown(self) -> None:
        """Take no more work; threads end once what they run returns (never waited for)."""
        self._executor.shutdown(wait=False)
