"""``listener run --role evaluate``: the Evaluate stage as a worker of distributed mode.

Each worker of the consumer group ``{prefix}-evaluate`` reads ``scored`` and ``ticks``,
both keyed by brand and partitioned alike, so one worker holds all of a brand's messages
and the brand's state. A scored mention is counted into the brand's windows, once (the
mention keys counted are part of the state: a mention delivered again moves no count); a
tick runs the rules for the brand at its instant, with the same
:class:`~listener.processor.Processor` code as embedded mode, and writes each alert it
makes to ``alerts``, keyed by the incident id. Quix Streams has no timers: time reaches
each brand only in its ticks, so the same messages give the same decisions.

**State.** A brand's Evaluate state (window buckets, engine keys, tracked notifications,
the last tick, the mention keys it counted) lives in Quix Streams state under the brand's
key (RocksDB, backed by a changelog topic), written with each message it changes
(:class:`BrandRecord`), so a brand moves with its partition when the group rebalances,
and a worker that starts with an empty state folder rebuilds it from the changelog. The
worker's :class:`Processor` is a cache of the brands it has read: each record carries a
version, and a brand whose stored version is not the one the cache holds is read again
(another worker evaluated it meanwhile, or a checkpoint was rolled back).

**Ticks.** Unless ``LISTENER_TICKER=off``, every worker publishes a tick for every brand of
rules.yaml at each multiple of ``LISTENER_EVALUATE_EVERY``: several workers publish the
same instants, and a tick not after a brand's last one is passed over, so any number of
tickers gives each brand each instant once. A replay turns them off and publishes its own
(``listener tick``).
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from listener.bus import (
    Bus,
    Command,
    Scored,
    decode_event,
    mention_key,
    silence_from,
    silence_value,
    tick_message,
    topic,
)
from listener.bus.alerts import alert_messages
from listener.clock import Clock, SystemClock, as_utc
from listener.config.schema import Config
from listener.errors import MessageError
from listener.metrics import BrandValues, Metrics
from listener.model import Ack, Silence
from listener.processor import RELEASED, Processor
from listener.roles.worker import RoleWorker
from listener.rules.brand_state import BrandState
from listener.rules.notify import NotifyState
from listener.rules.state import EngineState
from listener.scoring.velocity import BucketRow
from listener.store import Store
from listener.store.incidents import Acks, Silences

if TYPE_CHECKING:
    from quixstreams import Application

log = structlog.get_logger("listener")

ROLE = "evaluate"
SEEN_CHUNK = 200
"""Mention keys per state entry of a bucket's counted keys (each message rewrites the
last chunk of its bucket only)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
CACHE_PRUNE_EVERY = timedelta(hours=1)
SHOWN_FOR = timedelta(minutes=5)
"""The least time a brand's gauges are exported after its last evaluation here."""


class KeyedState(Protocol):
    """The state of one message key, as Quix Streams hands it to a stateful function."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


@dataclass(slots=True)
class BrandRecord:
    """What the worker knows of one brand's stored state, and how it is laid out there
    (entries of the brand's Quix state)::

        v             version: one more at every write
        idx           the starts of its window buckets (epoch seconds), ascending
        b<start>      a bucket's row, as the windows dump it
        s<start>.<i>  chunk i of the keys of the mentions counted into that bucket
        engine        its engine keys (EngineState JSON)
        notify        its tracked incidents (NotifyState JSON)
        first         the start of its first bucket ever (epoch seconds) or null
        quiet         the end of its backfill quiet period (ISO 8601), when it had one
        tick          its last tick (ISO 8601) or null
        silences      the silences that may mute it (``commands``), by id
        acks          its open incidents' acknowledgements (``commands``), by incident
    """

    version: int = 0
    starts: set[int] = field(default_factory=set)
    seen: dict[int, list[str]] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    tick: datetime | None = None
    engine: str = ""
    notify: str = ""
    first: int | None = None
    quiet: datetime | None = None
    silences: dict[str, Silence] = field(default_factory=dict)
    acks: dict[str, Ack] = field(default_factory=dict)

    @classmethod
    def read(cls, brand: str, state: KeyedState) -> tuple[BrandRecord, BrandState]:
        """The record and the :class:`BrandState` stored for ``brand`` (empty when none)."""
        version = int(state.get("v", 0))
        starts = [int(s) for s in state.get("idx", [])]
        rows: list[BucketRow] = [(brand, s, str(state.get(f"b{s}"))) for s in starts]
        seen: dict[int, list[str]] = {}
        for s in starts:
            chunk, i = state.get(f"s{s}.0"), 0
            while chunk is not None:
                seen.setdefault(s, []).extend(chunk)
                i += 1
                chunk = state.get(f"s{s}.{i}")
        engine = state.get("engine") or ""
        notify = state.get("notify") or ""
        tick = state.get("tick")
        first = state.get("first")
        quiet = state.get("quiet")
        record = cls(
            version=version,
            starts=set(starts),
            seen=seen,
            keys={k for keys in seen.values() for k in keys},
            tick=datetime.fromisoformat(tick) if tick else None,
            engine=engine,
            notify=notify,
            first=first,
            quiet=datetime.fromisoformat(quiet) if quiet else None,
            silences={
                sid: silence_from(sid, v) for sid, v in (state.get("silences") or {}).items()
            },
            acks={
                i: Ack(v["by"], datetime.fromisoformat(v["at"]), v.get("note", ""))
                for i, v in (state.get("acks") or {}).items()
            },
        )
        brand_state = BrandState(
            brand=brand,
            buckets=tuple(rows),
            first_seen=first,
            engine=EngineState.from_json(engine) if engine else EngineState(),
            notify=NotifyState.from_json(notify) if notify else NotifyState(),
            quiet_until=record.quiet,
        )
        return record, brand_state

    def put_rows(self, state: KeyedState, rows: list[BucketRow], starts: list[int]) -> None:
        """Store changed bucket rows and the brand's bucket starts now (``starts``): the
        buckets gone (pruned) leave with the keys counted into them."""
        for _, start, blob in rows:
            state.set(f"b{start}", blob)
        now = set(starts)
        if now != self.starts:
            for start in self.starts - now:
                state.delete(f"b{start}")
                for i in range(-(-len(self.seen.get(start, ())) // SEEN_CHUNK)):
                    state.delete(f"s{start}.{i}")
                for key in self.seen.pop(start, ()):
                    self.keys.discard(key)
            state.set("idx", sorted(now))
            self.starts = now

    def count_key(self, state: KeyedState, start: int, key: str) -> None:
        """Record a mention key as counted into the bucket starting at ``start``."""
        keys = self.seen.setdefault(start, [])
        keys.append(key)
        self.keys.add(key)
        i = (len(keys) - 1) // SEEN_CHUNK
        state.set(f"s{start}.{i}", keys[i * SEEN_CHUNK : (i + 1) * SEEN_CHUNK])

    def put_texts(self, state: KeyedState, engine: str, notify: str) -> None:
        """Store the engine and notification state, where they changed."""
        if engine != self.engine:
            state.set("engine", engine)
            self.engine = engine
        if notify != self.notify:
            state.set("notify", notify)
            self.notify = notify

    def put_quiet(self, state: KeyedState, until: datetime | None) -> None:
        """Store the end of the brand's backfill quiet period, when it changed."""
        if until != self.quiet:
            state.set("quiet", until.isoformat() if until is not None else None)
            self.quiet = until

    def put_first(self, state: KeyedState, first_seen: datetime | None) -> None:
        """Store the start of the brand's first bucket ever, when it changed."""
        first = None if first_seen is None else (as_utc(first_seen) - _EPOCH) // _SECOND
        if first != self.first:
            state.set("first", first)
            self.first = first

    def put_commands(self, state: KeyedState) -> None:
        """Store its silences and acknowledgements as they are now."""
        state.set("silences", {sid: silence_value(v) for sid, v in self.silences.items()})
        state.set(
            "acks",
            {
                i: {"by": a.by, "at": as_utc(a.at).isoformat(), "note": a.note}
                for i, a in self.acks.items()
            },
        )

    def apply(self, command: Command) -> bool:
        """Take one command (the first acknowledgement of an incident wins, as in the
        store; a silence seen before, or an expiry of none, changes nothing); whether the
        record changed."""
        if command.ack is not None and command.incident_id is not None:
            if command.incident_id in self.acks:
                return False
            self.acks[command.incident_id] = command.ack
            return True
        if command.silence is not None:
            if command.silence.id in self.silences:
                return False
            self.silences[command.silence.id] = command.silence
            return True
        if command.silence_id is not None and command.at is not None:
            found = self.silences.get(command.silence_id)
            if found is None or found.ends_at <= command.at:
                return False
            self.silences[command.silence_id] = replace(found, ends_at=command.at)
            return True
        return False

    def forget(self, at: datetime, tracked: Collection[str]) -> bool:
        """Drop silences that ended a day before ``at`` and the acknowledgements of
        incidents no longer tracked (resolved); whether any went."""
        ended = [sid for sid, v in self.silences.items() if v.ends_at < at - timedelta(days=1)]
        done = [i for i in self.acks if i not in tracked]
        for sid in ended:
            del self.silences[sid]
        for i in done:
            del self.acks[i]
        return bool(ended or done)

    def bump(self, state: KeyedState) -> None:
        self.version += 1
        state.set("v", self.version)


class HeldSilences(Silences):
    """The silences the processor sees: those of the brand being evaluated (its record's,
    from ``commands``), not the cache's table."""

    current: BrandRecord | None = None

    def select(self, active_at: datetime | None = None) -> list[Silence]:
        held = self.current.silences.values() if self.current is not None else ()
        found = [s for s in held if active_at is None or s.active(active_at)]
        return sorted(found, key=lambda s: s.starts_at, reverse=True)


class HeldAcks(Acks):
    """The acknowledgements the processor sees: those of the brand being evaluated."""

    current: BrandRecord | None = None

    def get(self, incident_ids: Iterable[str] | None = None) -> dict[str, Ack]:
        held = self.current.acks if self.current is not None else {}
        if incident_ids is None:
            return dict(held)
        return {i: held[i] for i in incident_ids if i in held}


class BrandEvaluator:
    """The decisions of one evaluator: :meth:`handle` takes one message of a brand and
    that brand's state, changes both as embedded mode would, and gives the alert
    messages to write. Pure of the bus: the application (:class:`EvaluateWorker`) hands
    it messages and state."""

    def __init__(
        self,
        config: Config,
        cache_dir: str,
        metrics: Metrics,
        now: datetime,
        *,
        clock: Clock | None = None,
        shown_for: timedelta = SHOWN_FOR,
    ) -> None:
        """``shown_for``: how long after its last evaluation a brand's condition and
        brand gauges are still exported (by ``clock``; a rebalance may have moved it)."""
        self.config = config
        self.metrics = metrics
        self.brands = frozenset(config.brand_names())
        path = Path(cache_dir) / "evaluate-cache.sqlite"
        for stale in path.parent.glob(path.name + "*"):  # a cache of a run before: not used
            stale.unlink()
        self.store = Store.open(path)
        # every brand starts released: a brand is held once its state is read
        self.store.commit(now=now, kv={RELEASED: json.dumps(sorted(self.brands))})
        # silences and acknowledgements reach a brand in its commands, and live in its state
        self.silences, self.acks = HeldSilences(self.store.db), HeldAcks(self.store.db)
        self.store.silence_log, self.store.ack_log = self.silences, self.acks
        # alerts go to the alerts topic, not to this cache's outbox
        self.processor = Processor(config, self.store, metrics, holds_state=False)
        # the gauges show the brands evaluated here lately, not every brand ever held
        metrics.conditions.hold(shown_for, clock if clock is not None else SystemClock())
        metrics.brands.source(self._brand_readings)
        self.records: dict[str, BrandRecord] = {}
        self._messages = metrics.bus_messages
        self._pruned_at: datetime | None = None

    def close(self) -> None:
        self.store.close()

    def _brand_readings(self) -> dict[str, BrandValues]:
        shown = self.metrics.conditions.held_brands()
        return {b: v for b, v in self.processor.brand_readings().items() if b in shown}

    def _prune_cache(self, at: datetime) -> None:
        """Hourly (in tick time): drop the cached mentions no alert can list any more
        (older than the longest window the rules read, and a day)."""
        if self._pruned_at is not None and at - self._pruned_at < CACHE_PRUNE_EVERY:
            return
        self._pruned_at = at
        keep = max(self.processor.windows.retention, timedelta(days=1))
        self.store.mentions.prune(at - keep)

    def held(self, brand: str, state: KeyedState) -> BrandRecord:
        """The brand's record, its state read into the processor first unless the one
        held is the one stored."""
        record = self.records.get(brand)
        stored = int(state.get("v", 0))
        if record is not None and record.version == stored:
            return record
        if record is not None:
            self.processor.export_brand(brand)  # what is held is not what is stored
        record, brand_state = BrandRecord.read(brand, state)
        self.processor.adopt_brand(brand_state)
        self.records[brand] = record
        return record

    def handle(self, value: bytes, state: KeyedState) -> list[dict[str, Any]]:
        """One message of ``scored`` or ``ticks``: the alert messages it makes."""
        try:
            brand, what = decode_event(value)
            if brand not in self.brands:
                raise MessageError(f"brand {brand!r} is not in rules.yaml")
        except MessageError as exc:
            self._messages.labels(role=ROLE, topic="evaluate", outcome="skipped").inc()
            self.metrics.error("evaluate", exc.error_type)
            log.warning("message_skipped", role=ROLE, error=str(exc))
            return []
        record = self.held(brand, state)
        if isinstance(what, Scored):
            self._count(brand, what, record, state)
            return []
        if isinstance(what, Command):
            self._command(what, record, state)
            return []
        return self._tick(brand, what, record, state)

    def _command(self, command: Command, record: BrandRecord, state: KeyedState) -> None:
        if not record.apply(command):
            self._messages.labels(role=ROLE, topic="commands", outcome="duplicate").inc()
            return
        self._messages.labels(role=ROLE, topic="commands", outcome="ok").inc()
        record.put_commands(state)
        record.bump(state)
        log.info(
            "command_applied",
            role=ROLE,
            brand=command.brand,
            incident_id=command.incident_id,
            silence_id=command.silence.id if command.silence else command.silence_id,
        )

    def _count(self, brand: str, got: Scored, record: BrandRecord, state: KeyedState) -> None:
        scored = got.scored
        key = mention_key(scored.mention)
        if key in record.keys:
            self._messages.labels(role=ROLE, topic="scored", outcome="duplicate").inc()
            return
        created = as_utc(scored.mention.created_at)
        now = max(created, record.tick) if record.tick is not None else created
        rows = self.processor.count_scored(brand, [scored], now, backfill=got.backfill)
        if got.backfill:
            record.put_quiet(state, self.processor.quiet_until.get(brand))
        if not rows:  # older than the windows keep (as embedded mode): never counted
            self._messages.labels(role=ROLE, topic="scored", outcome="stale").inc()
            return
        self._messages.labels(role=ROLE, topic="scored", outcome="ok").inc()
        windows = self.processor.windows
        record.put_rows(state, rows, windows.bucket_starts(brand))
        record.count_key(state, windows.bucket_start(created), key)
        record.put_first(state, windows.first_seen(brand))
        record.bump(state)

    def _tick(
        self, brand: str, at: datetime, record: BrandRecord, state: KeyedState
    ) -> list[dict[str, Any]]:
        if record.tick is not None and at <= record.tick:
            self._messages.labels(role=ROLE, topic="ticks", outcome="duplicate").inc()
            return []
        self._messages.labels(role=ROLE, topic="ticks", outcome="ok").inc()
        processor = self.processor
        self.silences.current = self.acks.current = record
        try:
            decided = processor.evaluate_brands(at, (brand,))
        finally:
            self.silences.current = self.acks.current = None
        record.put_rows(state, decided.buckets, processor.windows.bucket_starts(brand))
        keys = processor.state.keys
        mine = ((rule.name, brand) for rule in processor.rules)  # its keys: no scan of all
        engine = EngineState({key: keys[key] for key in mine if key in keys})
        notify, _ = processor.notify.split_brand(brand)
        record.put_texts(
            state,
            engine.to_json() if engine.keys else "",
            notify.to_json() if notify.incidents else "",
        )
        record.put_first(state, processor.windows.first_seen(brand))
        if record.forget(at, notify.incidents):
            record.put_commands(state)
        record.tick = at
        state.set("tick", at.isoformat())
        record.bump(state)
        self._prune_cache(at)
        for alert, _ in decided.alerts:
            self._messages.labels(role=ROLE, topic="alerts", outcome="ok").inc()
            log.info(
                "incident_event",
                role=ROLE,
                incident_id=alert.incident_id,
                alert_id=alert.id,
                kind=alert.kind,
                rule=alert.rule,
                brand=alert.brand,
                severity=alert.level,
            )
        return alert_messages(decided, at)


def tick_times(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """The multiples of ``every`` (from the epoch) in ``(start, end]``."""
    step = every // timedelta(microseconds=1)
    first = (as_utc(start) - _EPOCH) // timedelta(microseconds=1) // step + 1
    last = (as_utc(end) - _EPOCH) // timedelta(microseconds=1) // step
    return [_EPOCH + timedelta(microseconds=k * step) for k in range(first, last + 1)]


class Ticker:
    """Publishes a tick for every brand at each multiple of ``every`` (from a thread)."""

    def __init__(
        self,
        produce: Callable[[str, dict[str, Any]], None],
        brands: Callable[[], list[str]],
        every: timedelta,
        clock: Clock,
        flush: Callable[[], object] = lambda: None,
    ) -> None:
        self.produce, self.brands, self.every, self.clock = produce, brands, every, clock
        self.flush = flush
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: datetime = clock.now()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def due(self) -> list[datetime]:
        """The tick instants reached since the last call."""
        now = self.clock.now()
        times = tick_times(self.last, now, self.every)
        self.last = max(self.last, now)
        return times[-1:]  # a late ticker ticks once, at the latest instant

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.every.total_seconds())):
            for at in self.due():
                try:
                    for brand in self.brands():
                        self.produce(brand, tick_message(brand, at))
                    self.flush()
                except Exception as exc:  # the broker is away: the next instant ticks again
                    log.warning("tick_failed", role=ROLE, error=f"{type(exc).__name__}: {exc}")


class EvaluateWorker(RoleWorker):
    """One evaluator: :meth:`run` consumes until SIGTERM or SIGINT."""

    role = ROLE
    inputs = ("scored", "ticks", "commands")

    def __init__(
        self,
        bus: Bus,
        config_path: str,
        *,
        state_dir: str,
        evaluate_every: timedelta,
        ticker: bool = True,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(bus, config_path, state_dir=state_dir, metrics=metrics, clock=clock)
        self.evaluate_every = evaluate_every
        self.ticker_on = ticker
        self.evaluator: BrandEvaluator | None = None
        self._cache = tempfile.TemporaryDirectory(prefix="listener-evaluate-")
        self._ticker: Ticker | None = None

    def handle(self, value: bytes, state: KeyedState) -> list[dict[str, Any]]:
        if self.reloaded() is not None:
            self._drop_cache()  # every brand is read again from its state, under the new rules
        if self.evaluator is None:
            self.evaluator = BrandEvaluator(
                self.config,
                self._cache.name,
                self.metrics,
                self.clock.now(),
                clock=self.clock,
                shown_for=max(SHOWN_FOR, 3 * self.evaluate_every),
            )
        return self.evaluator.handle(value, state)

    def _drop_cache(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()
            self.evaluator = None

    def stopped(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        self._drop_cache()
        self._cache.cleanup()

    def application(self) -> Application:
        """The worker's Quix Streams application (its topics made when missing); the
        brand cache starts empty with it (a restarted application re-reads every brand)."""
        self._drop_cache()
        app = self.quix()
        scored = topic(app, self.bus, "scored")
        ticks = topic(app, self.bus, "ticks", write="json")
        alerts = topic(app, self.bus, "alerts", write="json")
        commands = topic(app, self.bus, "commands")
        sdf = app.dataframe(scored).concat(app.dataframe(ticks)).concat(app.dataframe(commands))
        sdf = sdf.apply(self.handle, stateful=True, expand=True)
        sdf.to_topic(alerts, key=lambda message: message["alert"]["incident_id"])
        if self.ticker_on and self._ticker is None:  # once its topic is known to exist
            producer = app.get_producer()
            ticks_name = self.bus.name("ticks")

            def produce(brand: str, message: Mapping[str, Any]) -> None:
                producer.produce(ticks_name, json.dumps(message).encode(), brand.encode())

            self._ticker = Ticker(
                produce,
                lambda: self.config.brand_names(),
                self.evaluate_every,
                self.clock,
                flush=lambda: producer.flush(10),
            )
            self._ticker.start()
        self.started(
            reads=[self.bus.name(t) for t in ("scored", "ticks", "commands")],
            writes=self.bus.name("alerts"),
            ticker=self.ticker_on,
        )
        return app
