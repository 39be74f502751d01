"""Housekeeping: keep the state file bounded. The pipeline runs :meth:`Housekeeping.run`
hourly (first at startup).

Each run:

1. forgets mentions older than ``LISTENER_MENTION_RETENTION`` (never less than
   :data:`~listener.store.EVIDENCE_BEFORE`, so a new incident's report always has its
   evidence; an incident's evidence is kept by the store) and delivered outbox rows as old;
2. ``VACUUM``\\ s the file once ``LISTENER_VACUUM_EVERY`` has passed since the last one
   (``0`` disables; skipped while the daemon stops);
3. exports the file's size (``listener_store_size_bytes``).

Store errors are counted (``stage="store"``) and logged here; nothing is raised. All store
calls run in the given pool, never on the event loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

import structlog

from listener.clock import Clock
from listener.errors import ListenerError
from listener.metrics import Metrics
from listener.store import EVIDENCE_BEFORE, Store
from listener.workers import Pool

log = structlog.get_logger("listener")


class Housekeeping:
    """Retention prune, outbox prune, ``VACUUM`` and the store size (module docstring).

    ``working`` marks the run as work in flight (the pipeline's, so shutdown waits for a
    prune); ``stopping`` says the daemon is stopping (no ``VACUUM`` then).
    """

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        clock: Clock,
        *,
        retention: timedelta,
        vacuum_every: timedelta,
        pool: Pool | None = None,
        working: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.retention = retention
        self.vacuum_every = vacuum_every
        self.pool = pool or Pool("store")
        self._working = working
        self._stopping = stopping

    async def run(self) -> None:
        """Hourly: forget old mentions (an incident's evidence stays) and old delivered
        alert documents, ``VACUUM`` the state file when due, and export its size."""
        store, now = self.store, self.clock.now()
        # a new incident's report looks back EVIDENCE_BEFORE: retention never cuts into it
        retention = max(self.retention, EVIDENCE_BEFORE)
        with self._working():
            try:
                removed = await self.pool.run(store.mentions.prune, now - retention)
                outbox = await self.pool.run(store.outbox.prune, now - retention)
            except ListenerError as exc:
                self.metrics.error("store", exc.error_type)
                log.error("prune_failed", error_type=exc.error_type, error=str(exc))
            else:
                self.metrics.mentions_pruned.inc(removed)
                self.metrics.outbox_pruned.inc(outbox)
                if removed or outbox:
                    log.info("pruned_mentions", removed=removed, outbox=outbox)
                if not self._stopping():
                    await self._vacuum_if_due(now)
        self.metrics.store_size.set(await self.pool.run(store.size_bytes))

    async def _vacuum_if_due(self, now: datetime) -> None:
        """``VACUUM`` once ``vacuum_every`` has passed since the last one (or there never
        was one), in a worker thread; the store's lock keeps writers out."""
        store, every = self.store, self.vacuum_every
        if every <= timedelta(0):
            return
        try:
            last = await self.pool.run(store.last_vacuum)
            if last is not None:
                self.metrics.store_last_vacuum.set(last.timestamp())
                if now - last < every:
                    return
            before = await self.pool.run(store.size_bytes)
            started = time.monotonic()
            await self.pool.run(store.vacuum, now)
        except ListenerError as exc:
            self.metrics.error("store", exc.error_type)
            log.error("vacuum_failed", error_type=exc.error_type, error=str(exc))
            return
        self.metrics.store_last_vacuum.set(now.timestamp())
        log.info(
            "vacuumed",
            seconds=round(time.monotonic() - started, 2),
            bytes_before=before,
            bytes_after=await self.pool.run(store.size_bytes),
        )
