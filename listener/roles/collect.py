"""``listener run --role collector``: the sources of rules.yaml polled by a group of
collectors, their mentions put on the ``mentions`` topic (keyed by ``[source, id]``).

**Each source is polled by exactly one collector at a time.** Ownership goes through
partition assignment: every collector joins the consumer group ``{prefix}-collector`` on
the ``mentions`` topic and pauses the partitions it is given at once (it reads none of
them; the group is only how Kafka shares the sources out and notices a collector gone).
A source belongs to partition ``crc32(name) mod partitions``; a collector polls the sources
of its partitions. When the group rebalances, a collector stops its sources' pollers
before it lets the partitions go (a poll in flight ends first, bounded by
``LISTENER_POLL_TIMEOUT``), so the next owner never polls alongside it; a collector that
dies (even ``kill -9``) leaves its partitions, and its sources, to the others within the
session timeout (10 s).

**Cursors are durable** in the shared state (``LISTENER_STATE=postgresql://...``, the
``cursors`` table), with what was published (``collected``: a feed lists its items at
every poll, and each goes on the bus once; forgotten after ``LISTENER_MENTION_RETENTION``):
a poll's new mentions are put on the bus and acknowledged by the broker before its cursor
is saved with them, so a collector that dies between the two polls that stretch
again (at least once: the evaluators count each mention key once) and one that takes a
source over resumes where its last owner saved.

Each source keeps its interval, jitter, timeouts, byte caps and retry policy: a failure
is logged once (``poll_failed``), counted, and retried with exponential backoff and jitter
(``Retry-After`` honoured), and the collector keeps running. The same source metrics as
embedded mode (``listener_polls_total``, ``listener_source_up``, ...) are served on
``/metrics`` by the collector that owns the source. The secrets of the sources are read
(they must be set where a collector runs); those of the sinks too, as the rules file is
read whole.

**Source health** (the ``source-health`` rule) is checked by the collector that polls the
source, each ``LISTENER_EVALUATE_EVERY``, its alerts written to ``alerts``
(:mod:`listener.roles.sources`).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import tempfile
import threading
import time
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from listener.bus import CONSUMER, TopicName, encode_mention, mention_key, quix_app, topic
from listener.clock import Clock
from listener.collectors.base import Collector, Cursor, PollResult
from listener.components import build_collectors
from listener.config.duration import format_duration
from listener.config.schema import SourceConfig
from listener.errors import (
    BusError,
    ListenerError,
    PollTimeout,
    StoreError,
)
from listener.metrics import Metrics
from listener.model import Mention
from listener.pipeline import SourceHealth
from listener.roles.evaluate import tick_times
from listener.roles.sources import HeldSource, SourceChecks, held_source
from listener.roles.worker import RoleWorker, shared_state
from listener.store import Store
from listener.store.cursors import Collected, Cursors

if TYPE_CHECKING:
    from listener.bus import Bus

log = structlog.get_logger("listener")

ROLE = "collector"
PRUNE_EVERY = 3600.0
"""Seconds between two prunes of what was published (``collected``)."""


def owner_partition(source: str, partitions: int) -> int:
    """The partition of ``mentions`` whose holder polls ``source``."""
    return zlib.crc32(source.encode("utf-8")) % partitions


class SourcePoller:
    """Polls one source until told to stop: each poll's mentions go on the bus, then its
    cursor is saved (see the module)."""

    def __init__(
        self,
        name: str,
        collector: Collector,
        cfg: SourceConfig,
        worker: CollectorWorker,
    ) -> None:
        self.name = name
        self.collector = collector
        self.cfg = cfg
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll:{name}", daemon=True)
        self._busy: threading.Thread | None = None
        self.health = SourceHealth(worker.clock.now())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; returns once a poll in flight has ended (its deadline bounds it)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        worker, rng = self.worker, random.Random()
        structlog.contextvars.bind_contextvars(role=ROLE, source=self.name)  # this thread's
        log.info("source_owned")
        cursor: Cursor | None = None
        loaded = False
        while not self._stop.is_set():
            now = worker.clock.now()
            started = time.monotonic()
            try:
                if not loaded:
                    cursor = worker.load_cursor(self.name)
                    held = worker.held_source(self.name)
                    if held is not None:  # what the source's last poller knew
                        self.health.resume(held.status)
                    loaded = True
                result = self._poll(cursor, now)
                fresh = worker.fresh(self.name, result.mentions)
                worker.publish(self.name, fresh, backfill=result.backfill)
                worker.save_cursor(self.name, result.cursor, fresh, now)
                cursor = result.cursor
                if fresh:
                    self.health.last_new_at = now
            except Exception as exc:  # a source, the bus or the database: retried
                delay = self.health.failed(self.name, self.cfg, exc, now, worker.metrics, rng)
            else:
                self.health.succeeded(self.name, result, now, worker.metrics)
                worker.metrics.mentions_collected.labels(source=self.name).inc(len(result.mentions))
                log.info("poll_ok", mentions=len(result.mentions))
                every = self.cfg.interval.total_seconds()
                delay = every + rng.uniform(0, self.cfg.jitter.total_seconds())
            finally:
                worker.metrics.poll_duration.labels(source=self.name).observe(
                    time.monotonic() - started
                )
            self._stop.wait(delay)
        log.info("source_released")

    def _poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        """One poll in a thread of its own, waited for at most the poll deadline; a poll
        still running from before (it overran) is waited for first."""
        deadline = self.worker.poll_timeout.total_seconds()
        if self._busy is not None and self._busy.is_alive():
            late = format_duration(self.worker.poll_timeout)
            raise PollTimeout(
                f"an earlier poll is still running past {late}; no new poll starts until it ends"
            )
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["result"] = self.collector.poll(cursor, now)
            except BaseException as exc:
                box["error"] = exc

        self._busy = threading.Thread(target=call, name=f"fetch:{self.name}", daemon=True)
        self._busy.start()
        self._busy.join(deadline)
        if self._busy.is_alive():
            raise PollTimeout(
                f"the poll did not finish within {format_duration(self.worker.poll_timeout)} "
                "(LISTENER_POLL_TIMEOUT)"
            )
        if "error" in box:
            raise box["error"]
        result: PollResult = box["result"]
        return result


class Ownership:
    """A collector's run under supervise: the group membership until SIGTERM or SIGINT."""

    def __init__(self, worker: CollectorWorker) -> None:
        self.worker = worker
        self.stopping = threading.Event()

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.worker.run_group(self.stopping)

    def stop(self) -> None:
        self.stopping.set()


class CollectorWorker(RoleWorker):
    """One collector: owns the sources of the ``mentions`` partitions the group gives it."""

    role = ROLE
    inputs = ()
    secrets: ClassVar[bool] = True

    def __init__(
        self,
        bus: Bus,
        config_path: str,
        *,
        state_dir: str,
        database: str,
        poll_timeout: timedelta = timedelta(minutes=2),
        retention: timedelta = timedelta(days=30),
        check_every: timedelta = timedelta(seconds=30),
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.database = shared_state(database, "the sources' cursors")
        self.poll_timeout = poll_timeout
        self.retention = retention
        self.check_every = check_every
        """How often the sources' health is checked (``LISTENER_EVALUATE_EVERY``)."""
        super().__init__(bus, config_path, state_dir=state_dir, metrics=metrics, clock=clock)

    def setup(self) -> None:
        self._lock = threading.RLock()
        self._pollers: dict[str, SourcePoller] = {}
        self._owned: set[int] = set()
        self._store: Store | None = None
        self._producer: Any = None
        self._collectors: dict[str, Collector] = {}
        self._partitions = self.bus.partitions
        self._checks: SourceChecks | None = None
        self._checked = self.clock.now()

    # ------------------------------------------------------------------ for the pollers

    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store.open(self.database)
            return self._store

    def load_cursor(self, source: str) -> Cursor | None:
        return self.store().cursors.load(source)

    def fresh(self, source: str, mentions: Sequence[Mention]) -> list[Mention]:
        """Those of a poll's mentions not published before (a feed lists its items at
        every poll), each once."""
        found = self.store().collected.seen(source, [m.id for m in mentions])
        out: dict[str, Mention] = {}
        for mention in mentions:
            if mention.id not in found:
                out.setdefault(mention.id, mention)
        return list(out.values())

    def save_cursor(
        self, source: str, cursor: Cursor, published: Sequence[Mention], now: datetime
    ) -> None:
        """The poll's cursor and what it published, in one transaction."""
        with self.store().db.transaction("cursor") as c:
            Cursors.save(c, source, cursor, now.timestamp())
            Collected.remember(c, source, [m.id for m in published], now.timestamp())

    def held_source(self, source: str) -> HeldSource | None:
        return held_source(self.store(), source)

    def publish(self, source: str, mentions: Sequence[Mention], *, backfill: bool = False) -> None:
        """Put mentions on ``mentions`` and wait until the broker has them all (``backfill``:
        they come from the source's first poll, reaching into history)."""
        self._send(
            "mentions",
            [(mention_key(m), encode_mention(m, backfill=backfill)) for m in mentions],
            f"{source}: ",
        )

    def _send(self, name: TopicName, messages: Sequence[tuple[str, bytes]], what: str = "") -> None:
        """Put ``(key, value)`` messages on a topic and wait until the broker has them
        all; BusError when it has not."""
        if not messages:
            return
        failed: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(str(err))

        producer, topic_name = self._producer, self.bus.name(name)
        for key, value in messages:
            while True:
                try:
                    producer.produce(topic_name, value, key.encode(), on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)
        left = producer.flush(60)
        if left or failed:
            raise BusError(
                f"{what}{left + len(failed)} of {len(messages)} {name} not acknowledged by "
                f"the broker ({failed[0] if failed else 'timed out after 60s'})"
            )
        self.metrics.bus_messages.labels(role=ROLE, topic=name, outcome="ok").inc(len(messages))

    # ------------------------------------------------------------------ source health

    def check_sources(self, at: datetime) -> None:
        """The source-health check at ``at`` of the sources polled here, each once polled
        since it was taken (:mod:`listener.roles.sources`): its alerts go on ``alerts``,
        then the sources' states are written. Errors are logged and counted; the next
        check tries again."""
        pollers = dict(self._pollers)
        statuses = {
            name: p.health.as_status()
            for name, p in sorted(pollers.items())
            if p.health.last_poll_at is not None
        }
        if not statuses:
            return
        try:
            if self._checks is None:
                self._checks = SourceChecks(self.config, self.store(), self.metrics, at)
            messages, entries = self._checks.check(at, statuses)
            self._send(
                "alerts",
                [(m["alert"]["incident_id"], json.dumps(m).encode()) for m in messages],
                "source health: ",
            )
            self._checks.save(entries)
        except Exception as exc:  # the bus or the database: the next check tries again
            error_type = exc.error_type if isinstance(exc, ListenerError) else type(exc).__name__
            self.metrics.error("evaluate", error_type)
            log.error("source_check_failed", role=ROLE, error_type=error_type, error=str(exc))
            return
        for message in messages:
            alert = message["alert"]
            log.info(
                "incident_event",
                role=ROLE,
                incident_id=alert["incident_id"],
                alert_id=alert["id"],
                kind=alert["kind"],
                rule=alert["rule"],
                source=alert["brand"],
                severity=alert["level"],
            )

    def _check_due(self) -> None:
        """Check the sources at the latest multiple of the check interval reached since
        the last check, if any."""
        now = self.clock.now()
        due = tick_times(self._checked, now, self.check_every)
        self._checked = max(self._checked, now)
        if due:
            self.check_sources(due[-1])

    def _drop_checks(self) -> None:
        if self._checks is not None:
            self._checks.close()
            self._checks = None

    # ------------------------------------------------------------------ ownership

    def owned_sources(self, partitions: set[int]) -> list[str]:
        total = self._partitions
        return sorted(
            name for name in self.config.sources if owner_partition(name, total) in partitions
        )

    def assigned(self, partitions: Sequence[int]) -> None:
        with self._lock:
            self._owned |= set(partitions)
            self._sync()
        self.metrics.bus_rebalances.labels(role=ROLE, event="assigned").inc()
        self.metrics.bus_partitions.labels(role=ROLE).set(len(self._owned))

    def revoked(self, partitions: Sequence[int], *, lost: bool = False) -> None:
        with self._lock:
            self._owned -= set(partitions)
            self._sync()
        self.metrics.bus_rebalances.labels(role=ROLE, event="lost" if lost else "revoked").inc()
        self.metrics.bus_partitions.labels(role=ROLE).set(len(self._owned))

    def _sync(self) -> None:
        """Start a poller for each source now owned, stop those no longer owned."""
        want = set(self.owned_sources(self._owned))
        for name in sorted(set(self._pollers) - want):
            self._pollers.pop(name).stop()
        for name in sorted(want - set(self._pollers)):
            poller = SourcePoller(name, self._collectors[name], self.config.sources[name], self)
            self._pollers[name] = poller
            poller.start()

    def _prune(self) -> None:
        """Forget what was published longer ago than the mention retention."""
        try:
            gone = self.store().collected.prune(self.clock.now() - self.retention)
        except StoreError as exc:  # the next prune tries again
            log.warning("collected_prune_failed", role=ROLE, error=str(exc))
            return
        if gone:
            log.info("collected_pruned", role=ROLE, removed=gone)

    def release_all(self) -> None:
        with self._lock:
            for poller in self._pollers.values():
                poller.stop()
            self._pollers.clear()
            self._owned.clear()

    # ------------------------------------------------------------------ the worker

    def application(self) -> Ownership:  # type: ignore[override]
        """What supervise runs: the group membership (the ``mentions`` topic made first,
        as the other roles make theirs)."""
        with tempfile.TemporaryDirectory() as state:
            app = quix_app(self.bus, ROLE, state)
            topic(app, self.bus, "mentions")
            topic(app, self.bus, "alerts", write="json")  # the sources' health
        self.started(writes=self.bus.name("mentions"), sources=len(self.config.sources))
        return Ownership(self)

    def status(self) -> dict[str, Any]:
        """The sources this collector polls now, with their health."""
        pollers = dict(self._pollers)  # no lock: a rebalance holds it while polls end
        return {"sources": {name: p.health.as_dict() for name, p in sorted(pollers.items())}}

    def run_group(self, stop: threading.Event) -> None:
        """Hold ownership until ``stop``: join the group, pause what it gives, and keep the
        membership alive; a reload (SIGHUP) rebuilds the collectors."""
        from confluent_kafka import Consumer, Producer

        self._collectors = build_collectors(self.config, self.config_path)
        self._producer = Producer(
            {
                "bootstrap.servers": self.bus.brokers,
                "partitioner": "murmur2",
                "enable.idempotence": True,
                **({"batch.num.messages": self.bus.batch} if self.bus.batch else {}),
            }
        )
        consumer = Consumer(
            {
                "bootstrap.servers": self.bus.brokers,
                "group.id": self.bus.group(ROLE),
                "enable.auto.commit": False,
                **CONSUMER,
            }
        )

        def on_assign(c: Any, parts: list[Any]) -> None:
            c.pause(parts)  # held for ownership, never read
            self.assigned([p.partition for p in parts])

        def on_revoke(_c: Any, parts: list[Any]) -> None:
            self.revoked([p.partition for p in parts])

        def on_lost(_c: Any, parts: list[Any]) -> None:
            self.revoked([p.partition for p in parts], lost=True)

        try:
            name = self.bus.name("mentions")
            found = consumer.list_topics(name, timeout=10).topics.get(name)
            if found is None or found.error is not None or not found.partitions:
                raise BusError(f"{name}: no such topic on {self.bus.brokers}")
            self._partitions = len(found.partitions)
            consumer.subscribe(
                [self.bus.name("mentions")],
                on_assign=on_assign,
                on_revoke=on_revoke,
                on_lost=on_lost,
            )
            pruned = 0.0
            while not stop.is_set():
                consumer.poll(0.5)
                self._check_due()
                if time.monotonic() - pruned > PRUNE_EVERY:
                    pruned = time.monotonic()
                    self._prune()
                config = self.reloaded()
                if config is not None:
                    self._drop_checks()  # the next check under the new rules
                    self.release_all()
                    for collector in self._collectors.values():
                        with contextlib.suppress(Exception):
                            collector.close()
                    self._collectors = build_collectors(config, self.config_path)
                    with self._lock:
                        self._owned = {p.partition for p in consumer.assignment()}
                        self._sync()
        finally:
            self._drop_checks()
            self.release_all()
            consumer.close()
            self._producer.flush(10)
            for collector in self._collectors.values():
                with contextlib.suppress(Exception):
                    collector.close()
