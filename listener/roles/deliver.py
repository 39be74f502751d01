"""``listener run --role deliver``: the Deliver stage as a worker of distributed mode.

Each worker of the consumer group ``{prefix}-deliver`` reads the ``alerts`` topic (keyed by
incident) and records every message in the shared state in PostgreSQL
(``LISTENER_STATE=postgresql://…``), in one transaction: the incident and its timeline
(the rule engine's event), the notice (sent or muted, and why), and one outbox row per
(alert id, sink). The outbox is the **delivery ledger**: a row is unique by (alert id,
sink), so a message read again after a crash or a rebalance adds nothing, and a row once
delivered is never sent again.

**One sender at a time.** The worker that holds the delivery lease (a PostgreSQL
advisory lock, :class:`~listener.store.postgres.Lease`) drains the outbox into the sinks
with the same :class:`~listener.sinks.delivery.Deliverer` as embedded mode (order per
incident, retries with backoff, rate limits, storm digests and their journal); the others
record and stand by, trying for the lease every :data:`LEASE_EVERY` seconds. The server
lets a lock go the moment its holder's connection closes, so when a delivery worker dies
(even ``kill -9``) another takes over within about a second. A send that was accepted
but not yet marked when its worker died is sent again by the next holder with the same
idempotency key (the alert id), which the receivers deduplicate by: at least once on the
wire, once in effect.

**The mention archive.** Each delivery worker also archives the scored mentions
(:class:`Archiver`, consumer group ``{prefix}-archive`` on ``scored``) in the shared state,
for the reports and the incident pages.

**Digests.** The lease holder also sends the scheduled digests
(:class:`~listener.digests.Digests`), from the shared state, so each goes out once however
many delivery workers run; what was delivered is recorded there, so a new holder does not
send it again.

SIGHUP re-reads rules.yaml (with the sinks' secrets, which must be set where a delivery
worker runs) and rebuilds the sinks; a file that does not load is logged and the running
one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, ClassVar

import structlog

from listener.api import IncidentApi
from listener.bus import CONSUMER, decode_scored, topic
from listener.bus.alerts import AlertRecord, decode_record
from listener.bus.publish import CommandsTopic
from listener.clock import Clock
from listener.collectors.fetch import redact_url
from listener.components import build_sinks
from listener.config.schema import Config
from listener.console import Console
from listener.digests import Digests
from listener.errors import ListenerError, MessageError, StoreError
from listener.httpapi import HttpApi
from listener.metrics import Metrics
from listener.model import ScoredMention
from listener.roles.sources import shared_health
from listener.roles.worker import RoleWorker, shared_state
from listener.sinks.base import Refreshable, SinkContext
from listener.sinks.delivery import Deliverer
from listener.slack_actions import SlackActions
from listener.store import EvaluateWrite, IngestWrite, Store, StoreSinkState
from listener.store.postgres import Lease

if TYPE_CHECKING:
    from quixstreams import Application

    from listener.bus import Bus, TopicName

log = structlog.get_logger("listener")

ROLE = "deliver"
ARCHIVE_BATCH = 500
"""Scored mentions the archiver writes in one transaction, at most."""
LEASE_KEY = 0x6C646C76  # "ldlv": the advisory lock of the delivery lease
LEASE_EVERY = 1.0
"""Seconds between a standby's tries for the lease (and a holder's checks that it still
holds it)."""


class Sender:
    """Drains the outbox into the sinks while this worker holds the lease: an event loop
    in a thread of its own, with its own connection to the database."""

    def __init__(
        self, url: str, config: Config, config_path: str, metrics: Metrics, clock: Clock
    ) -> None:
        self.url = url
        self.config = config
        self.config_path = config_path
        self.metrics = metrics
        self.clock = clock
        self.leading = threading.Event()
        """Set while this worker holds the lease and delivers."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._rebuild: asyncio.Event | None = None
        self._deliverer: Deliverer | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="sender", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def wake(self) -> None:
        """New outbox rows were committed (from any thread)."""
        loop, deliverer = self._loop, self._deliverer
        if loop is not None and deliverer is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(deliverer.wake)

    def reconfigure(self, config: Config) -> None:
        """Deliver with these sinks from the next pass on (from any thread)."""
        self.config = config
        loop, rebuild = self._loop, self._rebuild
        if loop is not None and rebuild is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(rebuild.set)

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop, self._rebuild = asyncio.Event(), asyncio.Event()
        self._started.set()
        lease = Lease(self.url, LEASE_KEY)
        try:
            while not self._stop.is_set():
                try:
                    held = await asyncio.to_thread(lease.hold)
                except StoreError as exc:
                    log.warning("delivery_lease_failed", role=ROLE, error=str(exc))
                    held = False
                if held:
                    await self._lead(lease)
                else:
                    await self._pause(LEASE_EVERY)
        finally:
            await asyncio.to_thread(lease.release)

    async def _pause(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _lead(self, lease: Lease) -> None:
        """Deliver until the lease is lost or the worker stops."""
        assert self._stop is not None
        assert self._rebuild is not None
        try:
            store = await asyncio.to_thread(Store.open, self.url)
        except StoreError as exc:
            log.warning("delivery_store_failed", role=ROLE, error=str(exc))
            await self._pause(LEASE_EVERY)
            return
        self.leading.set()
        log.info("delivery_lease_taken", role=ROLE)
        self.metrics.bus_rebalances.labels(role=ROLE, event="lease_taken").inc()
        try:
            while not self._stop.is_set():
                self._rebuild.clear()
                config = self.config
                sinks = build_sinks(
                    config,
                    self.config_path,
                    lambda name: SinkContext(StoreSinkState(store, name), self.clock),
                )
                deliverer = Deliverer(
                    store,
                    sinks,
                    {n: c.delivery for n, c in config.sinks.items()},
                    self.metrics,
                    self.clock,
                )
                self._deliverer = deliverer
                done = asyncio.Event()
                tasks = [asyncio.create_task(deliverer.run(done))]
                digests = Digests(store, sinks, config, self.metrics, self.clock)
                tasks.append(asyncio.create_task(digests.serve(done)))
                tasks += [
                    asyncio.create_task(self._refresh(name, sink, done))
                    for name, sink in sinks.items()
                    if isinstance(sink, Refreshable) and sink.resend_every is not None
                ]
                kept = True
                while not self._stop.is_set() and not self._rebuild.is_set():
                    await self._pause(LEASE_EVERY)
                    try:
                        kept = await asyncio.to_thread(lease.hold)
                    except StoreError:
                        kept = False
                    if not kept:
                        break
                done.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._deliverer = None
                for name in sinks:  # the next holder reports the ledger: no stale gauge here
                    for gauge in (self.metrics.outbox_pending, self.metrics.outbox_oldest_age):
                        with contextlib.suppress(KeyError):
                            gauge.remove(name)
                for sink in sinks.values():
                    with contextlib.suppress(Exception):
                        await sink.aclose()
                if not kept:
                    log.warning("delivery_lease_lost", role=ROLE)
                    return
        finally:
            self.leading.clear()
            await asyncio.to_thread(store.close)

    async def _refresh(self, name: str, sink: Refreshable, done: asyncio.Event) -> None:
        """Keep what still fires alive in a sink that expires it (Alertmanager's
        ``endsAt``), as embedded mode does, while this worker delivers."""
        every = sink.resend_every.total_seconds()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), every)
            if done.is_set():
                return
            try:
                await sink.refresh()
            except Exception as exc:  # logged and counted; the next refresh tries again
                error_type = exc.error_type if isinstance(exc, ListenerError) else "unexpected"
                self.metrics.error("deliver", error_type)
                log.warning("sink_refresh_failed", role=ROLE, sink=name, error=str(exc))


class Archiver:
    """Keeps the mention archive (what ``listener report`` and the incident pages read)
    in the shared state: a consumer of its own, group ``{prefix}-archive``, on ``scored``,
    in a thread; each batch of up to :data:`ARCHIVE_BATCH` messages is written in one
    transaction (a mention once, with every brand it matched; one stored before adds
    nothing), then its offsets are committed. At least once, and a repeat changes
    nothing. A failure (the database or the broker away) is logged and counted, and the
    archiver starts again after a pause from the last committed offsets."""

    def __init__(self, bus: Bus, url: str, metrics: Metrics, clock: Clock) -> None:
        self.bus = bus
        self.url = url
        self.metrics = metrics
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            try:
                self._consume()
                pause = 1.0
            except Exception as exc:  # the database or the broker: again after a pause
                error = exc.error_type if isinstance(exc, ListenerError) else type(exc).__name__
                self.metrics.error("store", error)
                log.warning("archive_failed", role=ROLE, error=str(exc), retry_in=pause)
                self._stop.wait(pause)
                pause = min(pause * 2, 60.0)

    def _consume(self) -> None:
        from confluent_kafka import Consumer

        messages = self.metrics.bus_messages
        store = Store.open(self.url)
        consumer = Consumer(
            {
                "bootstrap.servers": self.bus.brokers,
                "group.id": self.bus.group("archive"),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **CONSUMER,
            }
        )
        try:
            consumer.subscribe([self.bus.name("scored")])
            while not self._stop.is_set():
                batch = consumer.consume(ARCHIVE_BATCH, 1.0)
                fresh: dict[tuple[str, str], ScoredMention] = {}
                for message in batch:
                    if message.error() is not None:
                        continue
                    try:
                        _, scored = decode_scored(message.value() or b"")
                    except MessageError:
                        messages.labels(role="archive", topic="scored", outcome="skipped").inc()
                        continue
                    fresh.setdefault(scored.mention.key, scored)
                if fresh:
                    store.write_ingest(
                        IngestWrite(now=self.clock.now(), mentions=list(fresh.values()))
                    )
                    messages.labels(role="archive", topic="scored", outcome="ok").inc(len(fresh))
                if batch:
                    consumer.commit(asynchronous=False)
        finally:
            consumer.close()
            store.close()


class DeliverWorker(RoleWorker):
    """One delivery worker: :meth:`record` is what it does with each alert message,
    :meth:`run` consumes until SIGTERM or SIGINT."""

    role = ROLE
    inputs = ("alerts",)
    secrets: ClassVar[bool] = True

    def __init__(
        self,
        bus: Bus,
        config_path: str,
        *,
        state_dir: str,
        database: str,
        api_token: str = "",
        console_refresh: int | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.database = shared_state(database, "the delivery ledger")
        self.api_token = api_token
        self.console_refresh = console_refresh
        super().__init__(bus, config_path, state_dir=state_dir, metrics=metrics, clock=clock)

    def setup(self) -> None:
        self._messages = self.metrics.bus_messages
        self._store: Store | None = None
        self.sender = Sender(self.database, self.config, self.config_path, self.metrics, self.clock)
        self.archiver = Archiver(self.bus, self.database, self.metrics, self.clock)

    def hidden(self) -> list[str]:
        return [self.api_token]

    def routes(self, api: HttpApi) -> None:
        """The incident and silence API on the shared state (as the daemon's; docs/api.md):
        an ack or a silence reaches the evaluators on the ``commands`` topic first."""
        self.api = IncidentApi(
            self.api_token,
            lambda: Store.open(self.database),
            self.clock,
            lambda: self.config,
            evaluators=CommandsTopic(self.bus, lambda: self.config.brand_names()),
        )
        self.api.mount(api)
        # the sources are the collectors': their last source-health checks, shared
        Console(
            self.api,
            sources=lambda store: shared_health(store, self.config.sources),
            refresh=self.console_refresh,
        ).mount(api)
        SlackActions(self.api).mount(api)

    def groups(self) -> list[tuple[str, tuple[TopicName, ...]]]:
        """The recording group's lag on ``alerts``, and the archive's on ``scored``."""
        return [(ROLE, self.inputs), ("archive", ("scored",))]

    def record(self, value: bytes) -> None:
        """Record one alert message in the shared state (the incident's timeline, the
        notice, the ledger's rows), all or nothing; one that is not an alert is counted
        and skipped. A StoreError propagates: the application restarts and the message is
        read again (nothing of it was committed)."""
        config = self.reloaded()
        if config is not None:
            self.sender.reconfigure(config)
        try:
            rec = decode_record(value)
        except MessageError as exc:
            self._messages.labels(role=ROLE, topic="alerts", outcome="skipped").inc()
            self.metrics.error("deliver", exc.error_type)
            log.warning("message_skipped", role=ROLE, topic=self.bus.name("alerts"), error=str(exc))
            return
        unknown = sorted(set(rec.sinks) - set(self.config.sinks))
        if unknown:  # an evaluator on another rules file: its rows wait in the ledger
            log.error("alert_sink_unknown", role=ROLE, alert_id=rec.alert.id, sinks=unknown)
            self.metrics.error("deliver", "unknown_sink")
        if self._store is None:
            self._store = Store.open(self.database)
        record_alert(self._store, rec)
        self._messages.labels(role=ROLE, topic="alerts", outcome="ok").inc()
        if rec.sinks:
            self.sender.wake()

    def stopped(self) -> None:
        self.sender.stop()
        self.archiver.stop()
        with contextlib.suppress(StoreError):
            self.api.close()
        if self._store is not None:
            with contextlib.suppress(StoreError):
                self._store.close()

    def application(self) -> Application:
        """The worker's Quix Streams application (its topic made when missing); the
        sender starts with the first one."""
        if self._store is None:  # a database that cannot be reached: supervise waits
            self._store = Store.open(self.database)
        app = self.quix()
        alerts = topic(app, self.bus, "alerts")
        app.dataframe(alerts).update(self.record)
        if not self._sender_started:
            self._sender_started = True
            self.sender.start()
            self.archiver.start()
        self.started(reads=self.bus.name("alerts"), ledger=redact_url(self.database))
        return app

    _sender_started = False


def record_alert(store: Store, rec: AlertRecord) -> None:
    """Record what an alert message carries in the shared state, in one transaction: the
    engine's event in the incident's timeline, the notice, the ledger's rows (each row
    once: a message read again adds nothing)."""
    store.write_evaluate(
        EvaluateWrite(
            now=rec.at,
            events=[rec.event] if rec.event is not None else [],
            notices=[rec.notice] if rec.notice is not None else [],
            outbox=[(rec.alert, rec.sinks)] if rec.sinks else [],
        )
    )
