"""The composition root: config + settings → components → a running daemon.

Startup and SIGHUP reload go through the same :meth:`Daemon.apply` path. The
daemon owns scheduling (APScheduler), backoff, isolation, metrics and logging;
collectors, the processor and sinks stay small.

APScheduler only *starts* work: each job spawns a task the daemon owns (one at a time
per job), so shutdown waits for in-flight polls instead of cancelling them. Blocking
work runs apart (:mod:`listener.workers`): polls in per-source threads with a deadline,
store and processing in one small pool, the HTTP API's store reads in another.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import random
import signal
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from listener import incidents
from listener.api_models import (
    AckRequest,
    SilenceRequest,
    check_incident_status,
    check_silence_scope,
    parse_body,
)
from listener.clock import Clock, SystemClock
from listener.collectors.base import Collector, Cursor, PollResult
from listener.components import build_collectors, build_sinks
from listener.config.duration import format_duration
from listener.config.lint import config_warnings
from listener.config.load import load_config_text, read_config_text
from listener.config.schema import Config, SourceConfig
from listener.config.secrets import config_secrets
from listener.errors import (
    CollectorError,
    ConfigError,
    ConfigProblem,
    ListenerError,
    PollTimeout,
    RateLimited,
    RequestError,
)
from listener.httpapi import HttpApi, Request, Response, parse_listen
from listener.log import REDACTOR, WRITE_ERRORS
from listener.metrics import STAGES, Metrics
from listener.model import Mention
from listener.processor import IngestResult, Processor
from listener.queue import InProcessQueue, WorkQueue
from listener.rules.source_health import SOURCE_HEALTH, SourceStatus
from listener.settings import Settings
from listener.sinks.base import Sink, SinkContext
from listener.sinks.delivery import Deliverer
from listener.store import EVIDENCE_BEFORE, Store, StoreSinkState
from listener.workers import SourceThreads

log = structlog.get_logger("listener")

T = TypeVar("T")

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


def load_with_warnings(path: str) -> tuple[Config, list[ConfigProblem]]:
    """Read the rules file once, then load it and lint it from that same text (blocking:
    a reload runs it in a worker thread, never on the event loop)."""
    text = read_config_text(path)
    config = load_config_text(text, path)
    return config, config_warnings(config, path, text)


def backoff_delay(failures: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: ``initial × 2^(failures-1)`` capped, then 50–100 %."""
    base: float = min(maximum, initial * 2.0 ** max(0, failures - 1))
    return base * (0.5 + rng.random() / 2)


class Daemon:
    """``listener run``. Call :meth:`run`; it returns the process exit code."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.metrics = Metrics()
        self.rng = random.Random()
        self.config: Config | None = None
        self.store: Store | None = None
        self.processor: Processor | None = None
        self.collectors: dict[str, Collector] = {}
        self.source_configs: dict[str, SourceConfig] = {}
        self.health: dict[str, SourceHealth] = {}
        self.sinks: dict[str, Sink] = {}
        self.deliverer: Deliverer | None = None
        self._delivery_stop = asyncio.Event()
        self._delivery_task: asyncio.Task[None] | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.api = HttpApi(self.metrics.registry)
        self.stop_event = asyncio.Event()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.batches: WorkQueue[Batch] = InProcessQueue(
            settings.queue_max_mentions, weigh=lambda batch: len(batch.mentions)
        )
        self.metrics.queue_mentions.set_function(lambda: self.batches.weight())
        self.cursors: dict[str, Cursor | None] = {}
        self._processing: asyncio.Task[None] | None = None
        self.bound: tuple[str, int] | None = None
        self.threads = SourceThreads()
        self._store_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="store")
        self._api_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="api")
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._poll_seq = 0
        self._ingested: dict[int, IngestResult] = {}
        self._failed_polls: set[int] = set()
        self._reloading = asyncio.Lock()
        self._reloads = 0

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        unsubscribe = WRITE_ERRORS.subscribe(self.metrics.log_write_errors.inc)
        try:
            return await self._run()
        finally:
            unsubscribe()
            self._store_pool.shutdown(wait=False)
            self._api_pool.shutdown(wait=False)

    async def _run(self) -> int:
        # ConfigError → CLI prints, exit 2
        config, warnings = load_with_warnings(self.settings.config)
        REDACTOR.update([*config_secrets(config), self.settings.api_token])
        self.store = Store.open(self.settings.state)
        self.processor = Processor(config, self.store, self.metrics)
        loop = asyncio.get_running_loop()
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        self._routes()
        host, port = parse_listen(self.settings.listen)
        try:
            self.bound = await self.api.start(host, port)
        except OSError as exc:
            self.store.close()
            raise ListenerError(
                f"cannot listen on {self.settings.listen}: {exc.strerror}"
            ) from None
        try:
            await self.apply(config, warnings)
        except ConfigError:
            await self.api.stop()
            self.store.close()
            raise
        self.scheduler.add_job(
            self._spawn_job,
            IntervalTrigger(seconds=self.settings.evaluate_every.total_seconds()),
            args=["evaluate", self._evaluate],
            id="evaluate",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.add_job(
            self._spawn_job,
            IntervalTrigger(hours=1),
            args=["housekeeping", self._housekeeping],
            id="housekeeping",
            max_instances=1,
            coalesce=True,
            next_run_time=self.clock.now(),
        )
        self._processing = asyncio.create_task(self._process(), context=contextvars.Context())
        self.scheduler.start()
        for sig, handler in (
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
            (signal.SIGHUP, self.request_reload),
        ):
            loop.add_signal_handler(sig, handler)
        log.info(
            "started",
            listen=f"{self.bound[0]}:{self.bound[1]}",
            state=self.settings.state,
            config=self.settings.config,
            sources=sorted(self.collectors),
            sinks=sorted(self.sinks),
            rules=[r.name for r in config.rules],
        )
        await self.stop_event.wait()
        await self.shutdown()
        return 0

    def request_stop(self) -> None:
        if not self.stop_event.is_set():
            self.stop_event.set()  # first: nothing after this may keep the daemon running
            log.info("stopping")

    def request_reload(self) -> None:
        self._reloads += 1  # each SIGHUP reloads (one after another): the last file wins
        self._spawn(f"reload:{self._reloads}", self.reload)

    # ------------------------------------------------------------------ tasks

    def _spawn(self, key: str, job: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Start ``job()`` as a task the daemon owns, in a fresh context (nothing bound by
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
        self._spawn(key, lambda: job(*args))

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

    async def _in_store(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store or processing call in the store's own threads."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(
            self._store_pool, lambda: context.run(fn, *args, **kwargs)
        )

    async def _in_api(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store read for the HTTP API in its own threads: polls and processing
        never make a request wait for a free thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._api_pool, lambda: fn(*args, **kwargs))

    async def shutdown(self) -> None:
        """Stop polling, let in-flight polls and evaluations finish and process what they
        brought, flush the outbox: all within ``LISTENER_SHUTDOWN_TIMEOUT``."""
        deadline = time.monotonic() + self.settings.shutdown_timeout.total_seconds()
        if self.scheduler is not None and self.scheduler.running:
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
        await self._stop_delivery()
        if self.deliverer is not None:
            await self.deliverer.flush(max(0.5, deadline - time.monotonic()))
        await self._close_sinks(self.sinks)
        for collector in self.collectors.values():
            with contextlib.suppress(Exception):
                collector.close()
        await self.api.stop()
        if self.store is not None:
            pending = self.store.outbox_pending()
            self.store.close()
            log.info("stopped", outbox_pending=sum(pending.values()))

    # ------------------------------------------------------------------ config

    async def apply(self, config: Config, warnings: Sequence[ConfigProblem] = ()) -> None:
        """Build and start everything a config describes (startup and reload)."""
        assert self.store is not None
        assert self.processor is not None
        assert self.scheduler is not None
        old_sinks = self.sinks
        collectors = build_collectors(config, self.settings.config)
        try:
            store = self.store
            sinks = build_sinks(
                config,
                self.settings.config,
                lambda name: SinkContext(StoreSinkState(store, name), self.clock),
            )
        except ConfigError:
            for collector in collectors.values():
                with contextlib.suppress(Exception):
                    collector.close()
            raise
        await self._stop_delivery()
        await self._close_sinks(old_sinks)
        for job in self.scheduler.get_jobs():
            if job.id.startswith("poll:"):
                job.remove()
        for collector in self.collectors.values():
            with contextlib.suppress(Exception):
                collector.close()
        if self.config is not None:
            self.processor.reconfigure(config)
        self.config = config
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
                args=[f"poll:{name}", self._poll, name],
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
            every = getattr(sink, "resend_every", None)
            if every is not None and hasattr(sink, "refresh"):
                self.scheduler.add_job(
                    self._spawn_job,
                    IntervalTrigger(seconds=every.total_seconds()),
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
        self.metrics.config_last_reload.set(time.time())
        self.metrics.config_reload_ok.set(1)
        for warning in warnings:
            log.warning("config_warning", warning=str(warning))

    async def reload(self) -> None:
        """SIGHUP: load rules.yaml again; keep the running config when the new one is invalid.

        The file is parsed in a worker thread: polling and the HTTP API go on meanwhile."""
        async with self._reloading:
            try:
                await self._reload()
            except Exception as exc:  # a reload never takes the daemon down
                self._reload_rejected([], error=exc)

    async def _reload(self) -> None:
        try:
            config, warnings = await asyncio.to_thread(load_with_warnings, self.settings.config)
        except ConfigError as exc:
            self._reload_rejected(exc.problems)
            log.error("reload_kept_old_config", problems=len(exc.problems))
            return
        except Exception as exc:  # anything else reading or parsing it: rejected, not a crash
            self._reload_rejected([], error=exc)
            log.error("reload_kept_old_config", problems=0)
            return
        old = config_secrets(self.config) if self.config is not None else []
        # both sets while the new config is applied: either may still be running after
        REDACTOR.update([*old, *config_secrets(config), self.settings.api_token])
        try:
            await self.apply(config, warnings)
        except ConfigError as exc:  # a source or sink could not be built: keep the old config
            self._reload_rejected(exc.problems)
            return
        except Exception as exc:  # building a component failed: keep running what we can
            self._reload_rejected([], error=exc)
            return
        REDACTOR.update([*config_secrets(config), self.settings.api_token])
        self.metrics.config_reloads.labels(outcome="ok").inc()
        log.info(
            "reloaded",
            sources=sorted(self.collectors),
            sinks=sorted(self.sinks),
            rules=[r.name for r in config.rules],
        )

    def _reload_rejected(
        self, problems: Sequence[ConfigProblem], error: Exception | None = None
    ) -> None:
        self.metrics.config_reload_ok.set(0)  # before the counter: a scrape sees both agree
        self.metrics.config_reloads.labels(outcome="error").inc()
        self.metrics.error("config", "invalid" if error is None else type(error).__name__)
        for problem in problems:
            log.error("reload_rejected", problem=str(problem))
        if error is not None:
            log.error("reload_failed", error_type=type(error).__name__, error=str(error))

    async def _stop_delivery(self) -> None:
        self._delivery_stop.set()
        if self._delivery_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._delivery_task, 5)
            self._delivery_task = None

    @staticmethod
    async def _close_sinks(sinks: dict[str, Sink]) -> None:
        for sink in sinks.values():
            with contextlib.suppress(Exception):
                await sink.aclose()

    # ------------------------------------------------------------------ jobs

    def _busy(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def _done(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def _poll(self, name: str) -> None:
        """Poll one source and hand what it brought to the processing stage. Errors stop here.

        Runs as the source's own task (fresh context), so ``source`` bound here reaches
        every line it and its collector log, and nothing else."""
        if self.stop_event.is_set() or name not in self.collectors:
            return
        collector, cfg, health = self.collectors[name], self.source_configs[name], self.health[name]
        assert self.store is not None
        now = self.clock.now()
        if health.backoff_until is not None and now < health.backoff_until:
            return
        if self.batches.full():  # processing is behind: fetch nothing more for now
            self.metrics.queue_backpressure.labels(source=name, action="skipped").inc()
            return
        self._busy()
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
                self.cursors[name] = await self._in_store(self.store.load_cursor, name)
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
        except Exception as exc:  # a bug in a collector or the store must not stop the daemon
            self._source_failed(name, cfg, health, exc, now)
        else:
            self.cursors[name] = result.cursor
            self.metrics.polls.labels(source=name, outcome="ok").inc()
            health.last_poll_at = health.last_success_at = now
            health.consecutive_failures, health.backoff_until = 0, None
            if result.quota_remaining is not None:
                self.metrics.source_quota.labels(source=name).set(result.quota_remaining)
            health.status, health.last_error = "ok", None
            for err in result.errors:
                health.status = "degraded"
                health.last_error = str(err)
                self.metrics.error("collect", err.error_type)
                log.warning("source_partial_failure", error_type=err.error_type, error=str(err))
            self.metrics.source_up.labels(source=name).set(1)
            self.metrics.source_backoff.labels(source=name).set(0)
            self.metrics.source_last_success.labels(source=name).set(now.timestamp())
            await self._hand_over(name, result, now)
        finally:
            self.metrics.poll_duration.labels(source=name).observe(time.monotonic() - started)
            self._done()

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

    async def _process(self) -> None:
        """The processing stage: take polled batches off the queue; store, count, evaluate."""
        assert self.processor is not None
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
        assert self.processor is not None
        assert self.store is not None
        name = batch.source
        if batch.poll in self._failed_polls:  # an earlier slice failed: the poll is redone
            if batch.last:
                self._failed_polls.discard(batch.poll)
            return
        try:
            ingest = await self._in_store(
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
            self.cursors[name] = await self._in_store(self.store.load_cursor, name)
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
            await self._evaluate()

    def _source_failed(
        self, name: str, cfg: SourceConfig, health: SourceHealth, exc: Exception, now: datetime
    ) -> None:
        error_type = exc.error_type if isinstance(exc, ListenerError) else type(exc).__name__
        stage = "collect" if isinstance(exc, CollectorError) else "store"
        health.consecutive_failures += 1
        initial, maximum = cfg.retry.initial.total_seconds(), cfg.retry.max.total_seconds()
        delay = backoff_delay(health.consecutive_failures, initial, maximum, self.rng)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        health.status, health.last_poll_at, health.last_error = "error", now, str(exc)
        health.backoff_until = now + timedelta(seconds=delay)
        self.metrics.polls.labels(source=name, outcome="error").inc()
        self.metrics.error(stage, error_type)
        self.metrics.source_up.labels(source=name).set(0)
        self.metrics.source_backoff.labels(source=name).set(delay)
        log.warning(
            "poll_failed",
            error_type=error_type,
            error=str(exc),
            failures=health.consecutive_failures,
            retry_in=round(delay, 1),
        )
        if self.scheduler is not None and self.scheduler.running:
            job = self.scheduler.get_job(f"poll:{name}")
            if job is not None and delay < cfg.interval.total_seconds():
                # in an empty context: the scheduler's timer must not inherit ``source``
                contextvars.Context().run(job.modify, next_run_time=health.backoff_until)

    async def _refresh_sink(self, name: str) -> None:
        """Keep firing alerts alive in sinks that expire them (Alertmanager's endsAt)."""
        sink = self.sinks.get(name)
        if sink is None:
            return
        try:
            await sink.refresh()  # type: ignore[attr-defined]
        except Exception as exc:  # logged and counted; the next refresh tries again
            error_type = exc.error_type if isinstance(exc, ListenerError) else "unexpected"
            self.metrics.error("deliver", error_type)
            log.warning(
                "sink_refresh_failed",
                sink=name,
                error_type=error_type,
                error=str(exc) if isinstance(exc, ListenerError) else type(exc).__name__,
            )

    async def _evaluate(self) -> None:
        if self.processor is None:
            return
        self._busy()
        try:
            statuses = {
                name: SourceStatus(
                    h.since,
                    h.last_success_at,
                    h.last_new_at,
                    h.last_error if h.consecutive_failures else None,
                    h.consecutive_failures,
                )
                for name, h in self.health.items()
            }
            alerts = await self._in_store(self.processor.evaluate, self.clock.now(), statuses)
        except Exception as exc:
            self.metrics.error("evaluate", getattr(exc, "error_type", type(exc).__name__))
            log.error("evaluate_failed", error_type=type(exc).__name__, error=str(exc))
            return
        finally:
            self._done()
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

    async def _housekeeping(self) -> None:
        """Hourly: forget old mentions (an incident's evidence stays) and old delivered
        alert documents, ``VACUUM`` the state file when due, and export its size."""
        if self.store is None:
            return
        store, now = self.store, self.clock.now()
        # a new incident's report looks back EVIDENCE_BEFORE: retention never cuts into it
        retention = max(self.settings.mention_retention, EVIDENCE_BEFORE)
        self._busy()
        try:
            removed = await self._in_store(store.prune_mentions, now - retention)
            outbox = await self._in_store(store.prune_outbox, now - retention)
        except ListenerError as exc:
            self.metrics.error("store", exc.error_type)
            log.error("prune_failed", error_type=exc.error_type, error=str(exc))
        else:
            self.metrics.mentions_pruned.inc(removed)
            self.metrics.outbox_pruned.inc(outbox)
            if removed or outbox:
                log.info("pruned_mentions", removed=removed, outbox=outbox)
            if not self.stop_event.is_set():
                await self._vacuum_if_due(store, now)
        finally:
            self._done()
        self.metrics.store_size.set(await self._in_store(store.size_bytes))

    async def _vacuum_if_due(self, store: Store, now: datetime) -> None:
        """``VACUUM`` once ``LISTENER_VACUUM_EVERY`` has passed since the last one (or
        there never was one), in a worker thread; the store's lock keeps writers out."""
        every = self.settings.vacuum_every
        if every <= timedelta(0):
            return
        try:
            last = await self._in_store(store.last_vacuum)
            if last is not None:
                self.metrics.store_last_vacuum.set(last.timestamp())
                if now - last < every:
                    return
            before = await self._in_store(store.size_bytes)
            started = time.monotonic()
            await self._in_store(store.vacuum, now)
        except ListenerError as exc:
            self.metrics.error("store", exc.error_type)
            log.error("vacuum_failed", error_type=exc.error_type, error=str(exc))
            return
        self.metrics.store_last_vacuum.set(now.timestamp())
        log.info(
            "vacuumed",
            seconds=round(time.monotonic() - started, 2),
            bytes_before=before,
            bytes_after=await self._in_store(store.size_bytes),
        )

    # ------------------------------------------------------------------ HTTP

    def _routes(self) -> None:
        self.api.route("GET", "/healthz", self._healthz)
        self.api.route("GET", "/readyz", self._readyz)
        self.api.route("GET", "/incidents", self._incidents)
        self.api.route("GET", "/incidents/", self._incident, prefix=True)
        self.api.route("POST", "/incidents/", self._ack, prefix=True)
        self.api.route("GET", "/silences", self._silences)
        self.api.route("POST", "/silences", self._add_silence)
        self.api.route("DELETE", "/silences/", self._expire_silence, prefix=True)

    def _authorised(self, request: Request) -> Response | None:
        """None when the request carries the API token; else the error response."""
        token = self.settings.api_token
        if not token:
            return Response.json(
                {"error": "write endpoints are disabled: set LISTENER_API_TOKEN"}, 403
            )
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response.json(
                {"error": "missing or wrong bearer token"}, 401, {"WWW-Authenticate": "Bearer"}
            )
        return None

    async def _store_call(self, fn: Any, *args: Any, **kwargs: Any) -> Response | Any:
        try:
            return await self._in_api(fn, *args, **kwargs)
        except RequestError as exc:
            return Response.error(exc)
        except ListenerError as exc:
            return Response.json({"error": str(exc)}, 400)

    async def _incidents(self, request: Request) -> Response:
        assert self.store is not None
        status = dict(parse_qsl(request.query)).get("status") or None
        check_incident_status(status)
        rows = await self._in_api(incidents.listing, self.store, status)
        return Response.json(rows)

    async def _incident(self, request: Request) -> Response:
        assert self.store is not None
        result = await self._store_call(
            incidents.detail, self.store, request.path.removeprefix("/incidents/")
        )
        return result if isinstance(result, Response) else Response.json(result)

    async def _ack(self, request: Request) -> Response:
        assert self.store is not None
        incident_id, _, action = request.path.removeprefix("/incidents/").partition("/")
        if action != "ack":
            return Response.json({"error": "not found: POST /incidents/ID/ack"}, 404)
        if (denied := self._authorised(request)) is not None:
            return denied
        ack = parse_body(request.body, AckRequest)
        result = await self._store_call(
            incidents.acknowledge, self.store, incident_id, ack.by, self.clock.now(), ack.note
        )
        if isinstance(result, Response):
            return result
        log.info("acknowledged", incident_id=incident_id, by=ack.by)
        asyncio.get_running_loop().create_task(self._evaluate())  # announce it now
        return Response.json({"acknowledged": incident_id})

    async def _silences(self, request: Request) -> Response:
        assert self.store is not None
        now = self.clock.now()
        found = await self._in_api(self.store.silences)
        return Response.json([incidents.silence_dict(s, now) for s in found])

    async def _add_silence(self, request: Request) -> Response:
        assert self.store is not None
        if (denied := self._authorised(request)) is not None:
            return denied
        wanted = parse_body(request.body, SilenceRequest)
        if self.config is None:
            return Response.json({"error": "not ready: the config is not loaded yet"}, 503)
        check_silence_scope(self.config, wanted.brand, wanted.rule, wanted.level)
        result = await self._store_call(
            incidents.add_silence,
            self.store,
            now=self.clock.now(),
            duration=wanted.duration,
            by=wanted.by,
            comment=wanted.comment,
            brand=wanted.brand,
            rule=wanted.rule,
            level=wanted.level,
        )
        if isinstance(result, Response):
            return result
        log.info(
            "silenced",
            silence_id=result.id,
            brand=result.brand,
            rule=result.rule,
            level=result.level,
            until=result.ends_at.isoformat(),
        )
        return Response.json(
            incidents.silence_dict(result, self.clock.now()),
            201,
            {"Location": f"/silences/{result.id}"},
        )

    async def _expire_silence(self, request: Request) -> Response:
        assert self.store is not None
        if (denied := self._authorised(request)) is not None:
            return denied
        silence_id = request.path.removeprefix("/silences/")
        done = await self._in_api(self.store.expire_silence, silence_id, self.clock.now())
        if not done:
            return Response.json({"error": f"no active silence {silence_id[:200]!r}"}, 404)
        return Response.json({"expired": silence_id})

    async def _healthz(self, request: Request) -> Response:
        """Alive: the event loop answers and the processing stage still runs (a dead one
        would leave polls waiting on a full queue for ever: restart rather)."""
        if self._processing is not None and self._processing.done():
            return Response(503, b"processing stage stopped\n")
        return Response(200, b"ok\n")

    async def _readyz(self, request: Request) -> Response:
        ready = self.config is not None and self.store is not None and not self.stop_event.is_set()
        body = {
            "ready": ready,
            "config": {"loaded": self.config is not None, "file": self.settings.config},
            "store": {"open": self.store is not None, "path": self.settings.state},
            "sources": {name: h.as_dict() for name, h in sorted(self.health.items())},
            "degraded": any(h.status in ("error", "degraded") for h in self.health.values()),
        }
        return Response.json(body, 200 if ready else 503)
