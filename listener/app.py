"""The composition root: config + settings → components → a running daemon.

Startup and SIGHUP reload go through the same :meth:`Daemon.apply` path. The
daemon owns scheduling (APScheduler), backoff, isolation, metrics and logging;
collectors, the processor and sinks stay small.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
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
from listener.config.lint import config_warnings
from listener.config.load import load_config
from listener.config.schema import Config, SourceConfig
from listener.config.secrets import config_secrets
from listener.errors import (
    CollectorError,
    ConfigError,
    ConfigProblem,
    ListenerError,
    RateLimited,
    RequestError,
)
from listener.httpapi import HttpApi, Request, Response, parse_listen
from listener.log import REDACTOR
from listener.metrics import Metrics
from listener.processor import Processor
from listener.queue import InProcessQueue, WorkQueue
from listener.rules.source_health import SourceStatus
from listener.settings import Settings
from listener.sinks.base import Sink, SinkContext
from listener.sinks.delivery import Deliverer
from listener.store import EVIDENCE_BEFORE, Store, StoreSinkState

log = structlog.get_logger("listener")


@dataclass(frozen=True, slots=True)
class Batch:
    """What one poll of one source handed to the processing stage."""

    source: str
    result: PollResult
    at: datetime


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
        self.batches: WorkQueue[Batch] = InProcessQueue(maxsize=100)
        self.cursors: dict[str, Cursor | None] = {}
        self._processing: asyncio.Task[None] | None = None
        self.bound: tuple[str, int] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        config = load_config(self.settings.config)  # ConfigError → CLI prints, exit 2
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
            await self.apply(config)
        except ConfigError:
            await self.api.stop()
            self.store.close()
            raise
        self.scheduler.add_job(
            self._evaluate,
            IntervalTrigger(seconds=self.settings.evaluate_every.total_seconds()),
            id="evaluate",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.add_job(
            self._housekeeping,
            IntervalTrigger(hours=1),
            id="housekeeping",
            max_instances=1,
            coalesce=True,
            next_run_time=self.clock.now(),
        )
        self._processing = asyncio.create_task(self._process())
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
            log.info("stopping")
            self.stop_event.set()

    def request_reload(self) -> None:
        asyncio.get_running_loop().create_task(self.reload())

    async def shutdown(self) -> None:
        """Stop polling, finish in-flight work, flush the outbox within the bound."""
        deadline = time.monotonic() + self.settings.shutdown_timeout.total_seconds()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):  # finish processing what was polled
            await asyncio.wait_for(self.batches.join(), max(0.1, deadline - time.monotonic()))
        if self._processing is not None:
            self._processing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._processing
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

    async def apply(self, config: Config) -> None:
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
                self._poll,
                IntervalTrigger(
                    seconds=cfg.interval.total_seconds(), jitter=cfg.jitter.total_seconds() or None
                ),
                args=[name],
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
                    self._refresh_sink,
                    IntervalTrigger(seconds=every.total_seconds()),
                    args=[name],
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
        for warning in config_warnings(config, self.settings.config):
            log.warning("config_warning", warning=str(warning))

    async def reload(self) -> None:
        """SIGHUP: load rules.yaml again; keep the running config when the new one is invalid."""
        try:
            config = load_config(self.settings.config)
        except ConfigError as exc:
            self._reload_rejected(exc.problems)
            log.error("reload_kept_old_config", problems=len(exc.problems))
            return
        old = config_secrets(self.config) if self.config is not None else []
        # both sets while the new config is applied: either may still be running after
        REDACTOR.update([*old, *config_secrets(config), self.settings.api_token])
        try:
            await self.apply(config)
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
        """Poll one source and hand what it brought to the processing stage. Errors stop here."""
        if self.stop_event.is_set() or name not in self.collectors:
            return
        collector, cfg, health = self.collectors[name], self.source_configs[name], self.health[name]
        assert self.store is not None
        now = self.clock.now()
        if health.backoff_until is not None and now < health.backoff_until:
            return
        self._busy()
        bound = structlog.contextvars.bound_contextvars(source=name)
        bound.__enter__()
        started = time.monotonic()
        try:
            if name not in self.cursors:
                self.cursors[name] = await asyncio.to_thread(self.store.load_cursor, name)
            result = await asyncio.to_thread(collector.poll, self.cursors[name], now)
        except CollectorError as exc:
            self._source_failed(name, cfg, health, exc, now)
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
            await self.batches.put(Batch(name, result, now))
        finally:
            self.metrics.poll_duration.labels(source=name).observe(time.monotonic() - started)
            bound.__exit__(None, None, None)
            self._done()

    async def _process(self) -> None:
        """The processing stage: take polled batches off the queue; store, count, evaluate."""
        assert self.processor is not None
        while True:
            batch = await self.batches.get()
            try:
                await self._ingest(batch)
            finally:
                self.batches.task_done()

    async def _ingest(self, batch: Batch) -> None:
        assert self.processor is not None
        assert self.store is not None
        name, result = batch.source, batch.result
        try:
            ingest = await asyncio.to_thread(
                self.processor.ingest,
                name,
                result.mentions,
                batch.at,
                cursor=result.cursor,
                backfill=result.backfill,
            )
        except Exception as exc:  # nothing was stored: poll again from the stored cursor
            error_type = exc.error_type if isinstance(exc, ListenerError) else type(exc).__name__
            self.metrics.error("store", error_type)
            log.error("ingest_failed", source=name, error_type=error_type, error=str(exc))
            self.cursors[name] = await asyncio.to_thread(self.store.load_cursor, name)
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
                backfill=result.backfill,
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
                job.modify(next_run_time=health.backoff_until)

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
            alerts = await asyncio.to_thread(self.processor.evaluate, self.clock.now(), statuses)
        except Exception as exc:
            self.metrics.error("evaluate", getattr(exc, "error_type", type(exc).__name__))
            log.error("evaluate_failed", error_type=type(exc).__name__, error=str(exc))
            return
        finally:
            self._done()
        for alert in alerts:
            log.info(
                "incident_event",
                incident_id=alert.incident_id,
                kind=alert.kind,
                rule=alert.rule,
                brand=alert.brand,
                level=alert.level,
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
            removed = await asyncio.to_thread(store.prune_mentions, now - retention)
            outbox = await asyncio.to_thread(store.prune_outbox, now - retention)
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
        self.metrics.store_size.set(await asyncio.to_thread(store.size_bytes))

    async def _vacuum_if_due(self, store: Store, now: datetime) -> None:
        """``VACUUM`` once ``LISTENER_VACUUM_EVERY`` has passed since the last one (or
        there never was one), in a worker thread; the store's lock keeps writers out."""
        every = self.settings.vacuum_every
        if every <= timedelta(0):
            return
        try:
            last = await asyncio.to_thread(store.last_vacuum)
            if last is not None:
                self.metrics.store_last_vacuum.set(last.timestamp())
                if now - last < every:
                    return
            before = await asyncio.to_thread(store.size_bytes)
            started = time.monotonic()
            await asyncio.to_thread(store.vacuum, now)
        except ListenerError as exc:
            self.metrics.error("store", exc.error_type)
            log.error("vacuum_failed", error_type=exc.error_type, error=str(exc))
            return
        self.metrics.store_last_vacuum.set(now.timestamp())
        log.info(
            "vacuumed",
            seconds=round(time.monotonic() - started, 2),
            bytes_before=before,
            bytes_after=await asyncio.to_thread(store.size_bytes),
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
            return await asyncio.to_thread(fn, *args, **kwargs)
        except RequestError as exc:
            return Response.error(exc)
        except ListenerError as exc:
            return Response.json({"error": str(exc)}, 400)

    async def _incidents(self, request: Request) -> Response:
        assert self.store is not None
        status = dict(parse_qsl(request.query)).get("status") or None
        check_incident_status(status)
        rows = await asyncio.to_thread(incidents.listing, self.store, status)
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
        found = await asyncio.to_thread(self.store.silences)
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
        done = await asyncio.to_thread(self.store.expire_silence, silence_id, self.clock.now())
        if not done:
            return Response.json({"error": f"no active silence {silence_id[:200]!r}"}, 404)
        return Response.json({"expired": silence_id})

    async def _healthz(self, request: Request) -> Response:
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
