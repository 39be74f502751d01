"""Scheduling and supervision: what keeps the daemon's work moving, and nothing else.

:class:`Pipeline` is handed built components (store, processor, collectors, sinks) and
runs them; it builds nothing and reads no file (that is :mod:`listener.app`). It owns:

- **scheduling** (APScheduler): a poll job per source (interval + jitter, first poll at
  once), the evaluation tick, sink refreshes, and whatever hourly job it is given
  (:mod:`listener.housekeeping`). APScheduler only *starts* work: each job spawns a task
  the pipeline owns (one at a time per job key), so shutdown waits for in-flight polls
  instead of cancelling them;
- **supervision**: a task that raises is a bug; it is counted and logged, never fatal;
- **polls and backoff**: each poll runs in its source's own thread with a deadline
  (:class:`~listener.workers.SourceThreads`); a failure backs off exponentially with
  jitter (``Retry-After`` honoured) and is recorded in :class:`SourceHealth` (/readyz,
  source-health incidents);
- **the processing loop**: polls hand :class:`Batch` slices to a bounded
  :class:`~listener.queue.WorkQueue`; one task takes them off, ingests them through the
  processor (in the store's pool) and evaluates after any batch with matched mentions;
- **delivery**: one :class:`~listener.sinks.delivery.Deliverer` task per installed config,
  and one :class:`~listener.digests.Digests` task sending the scheduled digests;
- **shutdown** within a deadline: stop scheduling, let in-flight work end, process what was
  polled, flush the outbox, close sinks and collectors.

Contract: :meth:`Pipeline.install` swaps in a config's collectors and sinks (startup and
reload alike); :meth:`Pipeline.start` starts the clockwork once; :meth:`Pipeline.shutdown`
ends it. Errors of one source, sink or batch stop at this boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from listener.clock import Clock
from listener.collectors.base import Collector, Cursor, PollResult
from listener.config.duration import format_duration
from listener.config.schema import Config, SourceConfig
from listener.digests import Digests
from listener.errors import BusError, CollectorError, ListenerError, PollTimeout, RateLimited
from listener.metrics import STAGES, Metrics
from listener.model import Mention
from listener.processor import IngestResult, Processor
from listener.queue import InProcessQueue, WorkQueue
from listener.rules.source_health import SOURCE_HEALTH, SourceStatus
from listener.settings import Settings
from listener.sinks.base import Refreshable, Sink
from listener.sinks.delivery import Deliverer
from listener.store import Store
from listener.workers import Pool, SourceThreads

log = structlog.get_logger("listener")

Job = Callable[[], Coroutine[Any, Any, None]]

INGEST_CHUNK = 1000
"""Mentions per processing step: a big poll is handed over (and stored) in slices this
size, so the queue stays bounded and no step holds the store for long."""


@dataclass(frozen=True, slots=True)
class Batch:
    """A slice of what one poll of one source handed to the processing stage. The poll's
    cursor rides with its last slice only, so it is stored once every slice is."""

    source: str
    mentions: list[Mention]
    cursor: Cursor | None
    backfill: bool
    at: datetime
    poll: int
    """A sequence number of the poll the slice comes from."""
    last: bool = True


@dataclass
class SourceHealth:
    """What /readyz says about one source."""

    since: datetime
    status: str = "pending"  # pending | ok | degraded | error
    last_poll_at: datetime | None = None
    last_new_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    backoff_until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "last_poll_at": self.last_poll_at.isoformat() if self.last_poll_at else None,
            "last_success_at": self.last_success_at.isoformat() if self.last_success_at else None,
            "last_new_mention_at": self.last_new_at.isoformat() if self.last_new_at else None,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "backoff_until": self.backoff_until.isoformat() if self.backoff_until else None,
        }

    def as_status(self) -> SourceStatus:
        """What the source-health check reads of it."""
        return SourceStatus(
            self.since,
            self.last_success_at,
            self.last_new_at,
            self.last_error if self.consecutive_failures else None,
            self.consecutive_failures,
        )

    def resume(self, status: SourceStatus) -> None:
        """Go on from what an earlier poller of the source knew (a collector that takes a
        source over in distributed mode): when watching began, the last success, the last
        new mention, the failures in a row. Not polled here yet."""
        self.since = min(self.since, status.since)
        self.last_success_at, self.last_new_at = status.last_success_at, status.last_new_at
        self.consecutive_failures, self.last_error = status.failures, status.last_error

    def succeeded(self, name: str, result: PollResult, now: datetime, metrics: Metrics) -> None:
        """Record a poll that returned (partial failures make the source ``degraded``)."""
        self.last_poll_at = self.last_success_at = now
        self.consecutive_failures, self.backoff_until = 0, None
        self.status, self.last_error = "ok", None
        if result.quota_remaining is not None:
            metrics.source_quota.labels(source=name).set(result.quota_remaining)
        for err in result.errors:
            self.status, self.last_error = "degraded", str(err)
            metrics.error("collect", err.error_type)
            log.warning("source_partial_failure", error_type=err.error_type, error=str(err))
        metrics.polls.labels(source=name, outcome="ok").inc()
        metrics.source_up.labels(source=name).set(1)
        metrics.source_backoff.labels(source=name).set(0)
        metrics.source_last_success.labels(source=name).set(now.timestamp())

    def failed(
        self,
        name: str,
        cfg: SourceConfig,
        exc: Exception,
        now: datetime,
        metrics: Metrics,
        rng: random.Random,
    ) -> float:
        """Record a failed poll (the source, the bus or the store); logged once and counted.
        Returns the seconds to wait before the next: exponential backoff with jitter, at
        least what a 429's Retry-After asked for."""
        error_type = exc.error_type if isinstance(exc, ListenerError) else type(exc).__name__
        stage = "collect" if isinstance(exc, CollectorError) else "store"
        if isinstance(exc, BusError):
            stage = "bus"
        self.consecutive_failures += 1
        initial, maximum = cfg.retry.initial.total_seconds(), cfg.retry.max.total_seconds()
        delay = backoff_delay(self.consecutive_failures, initial, maximum, rng)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        self.status, self.last_poll_at, self.last_error = "error", now, str(exc)
        self.backoff_until = now + timedelta(seconds=delay)
        metrics.polls.labels(source=name, outcome="error").inc()
        metrics.error(stage, error_type)
        metrics.source_up.labels(source=name).set(0)
        metrics.source_backoff.labels(source=name).set(delay)
        log.warning(
            "poll_failed",
            error_type=error_type,
            error=str(exc),
            failures=self.consecutive_failures,
            retry_in=round(delay, 1),
        )
        return delay


def backoff_delay(failures: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: ``initial × 2^(failures-1)`` capped, then 50–100 %."""
    base: float = min(maximum, initial * 2.0 ** max(0, failures - 1))
    return base * (0.5 + rng.random() / 2)


class Pipeline:
    """Runs the daemon's work: polls, processing, evaluation, delivery (module docstring).

    Build it inside the running event loop. ``stop_event`` is the daemon's: once set,
    nothing new is spawned or polled. ``store_pool`` runs the blocking store and processing
    calls (a private one when not given).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        processor: Processor,
        metrics: Metrics,
        clock: Clock,
        *,
        stop_event: asyncio.Event | None = None,
        store_pool: Pool | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.processor = processor
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.stop_event = stop_event or asyncio.Event()
        self.store_pool = store_pool or Pool("store")
        self.collectors: dict[str, Collector] = {}
        self.source_configs: dict[str, SourceConfig] = {}
        self.health: dict[str, SourceHealth] = {}
        self.sinks: dict[str, Sink] = {}
        self.deliverer: Deliverer | None = None
        self._delivery_stop = asyncio.Event()
        self._delivery_task: asyncio.Task[None] | None = None
        self.digests: Digests | None = None
        self._digest_task: asyncio.Task[None] | None = None
        self.scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone="UTC")
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.batches: WorkQueue[Batch] = InProcessQueue(
            settings.queue_max_mentions, weigh=lambda batch: len(batch.mentions)
        )
        self.metrics.queue_mentions.set_function(lambda: self.batches.weight())
        self.cursors: dict[str, Cursor | None] = {}
        self._processing: asyncio.Task[None] | None = None
        self.threads = SourceThreads()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._poll_seq = 0
        self._ingested: dict[int, IngestResult] = {}
        self._failed_polls: set[int] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self, housekeeping: Job) -> None:
        """Schedule the evaluation tick and the hourly ``housekeeping`` (first run now),
        start the processing loop and the scheduler (with the installed poll jobs)."""
        self.scheduler.add_job(
            self._spawn_job,
            IntervalTrigger(seconds=self.settings.evaluate_every.total_seconds()),
            args=["evaluate", self.evaluate],
            id="evaluate",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.add_job(
            self._spawn_job,
            IntervalTrigger(hours=1),
            args=["housekeeping", housekeeping],
            id="housekeeping",
            max_instances=1,
            coalesce=True,
            next_run_time=self.clock.now(),
        )
        self._processing = asyncio.create_task(self.process(), context=contextvars.Context())
        self.scheduler.start()

    def processing_alive(self) -> bool:
        """False once the processing loop has ended (polls could only pile up then)."""
        return self._processing is None or not self._processing.done()

    def stopping(self) -> bool:
        return self.stop_event.is_set()

    async def install(
        self,
        config: Config,
        collectors: dict[str, Collector],
        sinks: dict[str, Sink],
        *,
        replacing: bool,
    ) -> None:
        """Retire the running collectors and sinks and run these (startup and reload).

        Delivery stops and old sinks close first; poll jobs are replaced; the processor
        takes the new config when ``replacing`` one; health, cursors and metric series of
        sources and sinks that are gone are dropped; a new delivery task starts."""
        old_sinks = self.sinks
        await self.stop_delivery()
        await self._close_sinks(old_sinks)
        for job in self.scheduler.get_jobs():
            if job.id.startswith("poll:"):
                job.remove()
        for collector in self.collectors.values():
            with contextlib.suppress(Exception):
                collector.close()
        if replacing:
            self.processor.reconfigure(config)
        for gone in set(self.collectors) - set(collectors):  # no stale series after a reload
            for gauge in (
                self.metrics.source_up,
                self.metrics.source_last_success,
                self.metrics.source_backoff,
                self.metrics.source_quota,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(gone)
            self.health.pop(gone, None)
            self.cursors.pop(gone, None)
        for gone in set(self.sinks) - set(sinks):  # back by the next pass if items still wait
            for gauge in (self.metrics.outbox_pending, self.metrics.outbox_oldest_age):
                with contextlib.suppress(KeyError):
                    gauge.remove(gone)
        self.collectors, self.source_configs, self.sinks = collectors, dict(config.sources), sinks
        now = self.clock.now()
        self.health = {name: self.health.get(name) or SourceHealth(now) for name in collectors}
        for name, cfg in config.sources.items():
            self.scheduler.add_job(
                self._spawn_job,
                IntervalTrigger(
                    seconds=cfg.interval.total_seconds(), jitter=cfg.jitter.total_seconds() or None
                ),
                args=[f"poll:{name}", self.poll, name],
                id=f"poll:{name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                next_run_time=self.clock.now(),
            )
        for job in self.scheduler.get_jobs():
            if job.id.startswith("refresh:"):
                job.remove()
        for name, sink in sinks.items():
            if isinstance(sink, Refreshable) and sink.resend_every is not None:
                self.scheduler.add_job(
                    self._spawn_job,
                    IntervalTrigger(seconds=sink.resend_every.total_seconds()),
                    args=[f"refresh:{name}", self._refresh_sink, name],
                    id=f"refresh:{name}",
                    max_instances=1,
                    coalesce=True,
                )
        self.deliverer = Deliverer(
            self.store,
            sinks,
            {n: c.delivery for n, c in config.sinks.items()},
            self.metrics,
            self.clock,
        )
        self._delivery_stop = asyncio.Event()
        self._delivery_task = asyncio.create_task(self.deliverer.run(self._delivery_stop))
        self.digests = Digests(self.store, sinks, config, self.metrics, self.clock)
        self._digest_task = asyncio.create_task(self.digests.serve(self._delivery_stop))

    async def shutdown(self, deadline: float) -> None:
        """Stop polling, let in-flight polls and evaluations finish and process what they
        brought, flush the outbox, close sinks and collectors: all before ``deadline``
        (a :func:`time.monotonic` instant)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)  # its jobs only spawn tasks: none in flight
        in_flight = [t for t in self._tasks.values() if not t.done()]
        if in_flight:
            await asyncio.wait(in_flight, timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):  # finish processing what was polled
            await asyncio.wait_for(self.batches.join(), max(0.1, deadline - time.monotonic()))
        left = [t for t in self._tasks.values() if not t.done()]
        if left:  # past the bound: give up on them, quietly
            log.warning("shutdown_abandoned", tasks=sorted(t.get_name() for t in left))
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        if self._processing is not None:
            self._processing.cancel()
            await asyncio.gather(self._processing, return_exceptions=True)
        await self.stop_delivery()
        if self.deliverer is not None:
            await self.deliverer.flush(max(0.5, deadline - time.monotonic()))
        await self._close_sinks(self.sinks)
        for collector in self.collectors.values():
            with contextlib.suppress(Exception):
                collector.close()

    async def stop_delivery(self) -> None:
        self._delivery_stop.set()
        for task in (self._delivery_task, self._digest_task):
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 5)
        self._delivery_task = self._digest_task = None

    @staticmethod
    async def _close_sinks(sinks: dict[str, Sink]) -> None:
        for sink in sinks.values():
            with contextlib.suppress(Exception):
                await sink.aclose()

    # ------------------------------------------------------------------ supervision

    def spawn(self, key: str, job: Job) -> bool:
        """Start ``job()`` as a task the pipeline owns, in a fresh context (nothing bound by
        whoever asked leaks into its log lines), unless ``key``'s last run still goes."""
        running = self._tasks.get(key)
        if running is not None and not running.done():
            return False
        if self.stop_event.is_set():
            return False
        task = asyncio.get_running_loop().create_task(
            job(), name=key, context=contextvars.Context()
        )
        self._tasks[key] = task
        task.add_done_callback(self._task_ended)
        return True

    async def _spawn_job(
        self, key: str, job: Callable[..., Coroutine[Any, Any, None]], *args: Any
    ) -> None:
        """What APScheduler runs: start the work and return at once (never cancelled)."""
        self.spawn(key, lambda: job(*args))

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if self._tasks.get(task.get_name()) is task:
            del self._tasks[task.get_name()]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # every job handles its own errors: this is a bug
            kind = task.get_name().partition(":")[0]
            stage = {"poll": "collect", "refresh": "deliver", "reload": "config"}.get(kind, kind)
            self.metrics.error(stage if stage in STAGES else "store", type(exc).__name__)
            log.error("task_failed", task=task.get_name(), error_type=type(exc).__name__)

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Mark work in flight: shutdown waits (within its bound) until none is."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    # ------------------------------------------------------------------ polls

    async def poll(self, name: str) -> None:
        """Poll one source and hand what it brought to the processing stage. Errors stop here.

        Runs as the source's own task (fresh context), so ``source`` bound here reaches
        every line it and its collector log, and nothing else."""
        if self.stop_event.is_set() or name not in self.collectors:
            return
        collector, cfg, health = self.collectors[name], self.source_configs[name], self.health[name]
        now = self.clock.now()
        if health.backoff_until is not None and now < health.backoff_until:
            return
        if self.batches.full():  # processing is behind: fetch nothing more for now
            self.metrics.queue_backpressure.labels(source=name, action="skipped").inc()
            return
        with self.working():
            structlog.contextvars.bind_contextvars(source=name)
            started = time.monotonic()
            deadline = self.settings.poll_timeout
            try:
                if self.threads.busy(name):
                    raise PollTimeout(
                        f"an earlier poll is still running past {format_duration(deadline)}; "
                        "no new poll starts until it ends"
                    )
                if name not in self.cursors:
                    self.cursors[name] = await self.store_pool.run(self.store.cursors.load, name)
                try:
                    result = await asyncio.wait_for(
                        self.threads.run(name, collector.poll, self.cursors[name], now),
                        deadline.total_seconds(),
                    )
                except TimeoutError:
                    raise PollTimeout(
                        f"the poll did not finish within {format_duration(deadline)} "
                        "(LISTENER_POLL_TIMEOUT)"
                    ) from None
            except Exception as exc:  # a bug in a collector or the store must not stop us
                self._source_failed(name, cfg, health, exc, now)
            else:
                self.cursors[name] = result.cursor
                health.succeeded(name, result, now, self.metrics)
                await self._hand_over(name, result, now)
            finally:
                self.metrics.poll_duration.labels(source=name).observe(time.monotonic() - started)

    async def _hand_over(self, name: str, result: PollResult, now: datetime) -> None:
        """Queue a poll's mentions in slices of :data:`INGEST_CHUNK`, waiting for room."""
        self._poll_seq += 1
        mentions = result.mentions
        slices = [mentions[i : i + INGEST_CHUNK] for i in range(0, len(mentions), INGEST_CHUNK)]
        slices = slices or [[]]  # an empty poll still stores its cursor
        waited = False
        for i, part in enumerate(slices):
            last = i == len(slices) - 1
            cursor = result.cursor if last else None
            batch = Batch(name, part, cursor, result.backfill, now, self._poll_seq, last)
            waited = await self.batches.put(batch) or waited
        if waited:
            self.metrics.queue_backpressure.labels(source=name, action="waited").inc()

    def _source_failed(
        self, name: str, cfg: SourceConfig, health: SourceHealth, exc: Exception, now: datetime
    ) -> None:
        delay = health.failed(name, cfg, exc, now, self.metrics, self.rng)
        if self.scheduler.running:
            job = self.scheduler.get_job(f"poll:{name}")
            if job is not None and delay < cfg.interval.total_seconds():
                # in an empty context: the scheduler's timer must not inherit ``source``
                contextvars.Context().run(job.modify, next_run_time=health.backoff_until)

    # ------------------------------------------------------------------ processing

    async def process(self) -> None:
        """The processing loop: take polled batches off the queue; store, count, evaluate."""
        while True:
            batch = await self.batches.get()
            try:
                await self._ingest(batch)
            except Exception as exc:  # the stage must outlive any one batch
                self.metrics.error("store", type(exc).__name__)
                log.error(
                    "processing_failed",
                    source=batch.source,
                    error_type=type(exc).__name__,
                    error=str(exc),
                )
            finally:
                self.batches.task_done()

    async def _ingest(self, batch: Batch) -> None:
        name = batch.source
        if batch.poll in self._failed_polls:  # an earlier slice failed: the poll is redone
            if batch.last:
                self._failed_polls.discard(batch.poll)
            return
        try:
            ingest = await self.store_pool.run(
                self.processor.ingest,
                name,
                batch.mentions,
                batch.at,
                cursor=batch.cursor,
                backfill=batch.backfill,
            )
        except Exception as exc:  # nothing more is stored: poll again from the stored cursor
            error_type = exc.error_type if isinstance(exc, ListenerError) else type(exc).__name__
            self.metrics.error("store", error_type)
            log.error("ingest_failed", source=name, error_type=error_type, error=str(exc))
            self._ingested.pop(batch.poll, None)
            if not batch.last:
                self._failed_polls.add(batch.poll)
            self.cursors[name] = await self.store_pool.run(self.store.cursors.load, name)
            return
        before = self._ingested.pop(batch.poll, None)
        if before is not None:
            ingest = IngestResult(
                before.received + ingest.received,
                before.new + ingest.new,
                before.matched + ingest.matched,
                before.negative + ingest.negative,
                before.stale + ingest.stale,
            )
        if not batch.last:
            self._ingested[batch.poll] = ingest
            return
        if ingest.new and name in self.health:
            self.health[name].last_new_at = batch.at
            log.info(
                "polled",
                source=name,
                received=ingest.received,
                new=ingest.new,
                matched=ingest.matched,
                negative=ingest.negative,
                stale=ingest.stale,
                backfill=batch.backfill,
            )
        if ingest.matched:
            await self.evaluate()

    async def evaluate(self) -> None:
        """Run the rules now (tick, after a batch with matches, after an ack) and wake
        delivery when they raised events. Errors are counted and logged here."""
        try:
            with self.working():
                statuses = {name: h.as_status() for name, h in self.health.items()}
                alerts = await self.store_pool.run(
                    self.processor.evaluate, self.clock.now(), statuses
                )
        except Exception as exc:
            error_type = exc.error_type if isinstance(exc, ListenerError) else type(exc).__name__
            self.metrics.error("evaluate", error_type)
            log.error("evaluate_failed", error_type=type(exc).__name__, error=str(exc))
            return
        for alert in alerts:
            # ``severity``, not ``level``: that key is the log line's own level
            extra = {"source": alert.brand} if alert.rule == SOURCE_HEALTH else {}
            log.info(
                "incident_event",
                incident_id=alert.incident_id,
                kind=alert.kind,
                rule=alert.rule,
                brand=alert.brand,
                severity=alert.level,
                **extra,
            )
        if alerts and self.deliverer is not None:
            self.deliverer.wake()

    async def _refresh_sink(self, name: str) -> None:
        """Keep firing alerts alive in sinks that expire them (Alertmanager's endsAt)."""
        sink = self.sinks.get(name)
        if not isinstance(sink, Refreshable):
            return
        try:
            await sink.refresh()
        except Exception as exc:  # logged and counted; the next refresh tries again
            error_type = exc.error_type if isinstance(exc, ListenerError) else "unexpected"
            self.metrics.error("deliver", error_type)
            log.warning(
                "sink_refresh_failed",
                sink=name,
                error_type=error_type,
                error=str(exc) if isinstance(exc, ListenerError) else type(exc).__name__,
            )
