"""match → score → count → evaluate → route, as one synchronous step over the store.

The :class:`Processor` is shared by the daemon, ``listener drill`` and backtests,
so the same code decides in all three. It is called from a worker thread (its
methods block on SQLite) and serialises itself with a lock.

Each call writes in at most two transactions: (1) new mentions, the source's
cursor and the window buckets; (2) the engine state, incident events and the
outbox rows of the alerts they produce. A crash between the two is safe: the
next evaluation sees the stored counts and raises the same events.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Collection, Container, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import structlog
from numpy.typing import NDArray
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

from listener.clock import as_utc
from listener.collectors.base import Cursor
from listener.config.schema import (
    Config,
    Measure,
    RuleConfig,
    SourceHealthConfig,
)
from listener.errors import BrandHeld, BrandStateError, StoreError
from listener.ingest import Ingest
from listener.metrics import BRAND_WINDOW, BrandValues, Metrics
from listener.model import (
    Ack,
    Alert,
    AlertKind,
    Explanation,
    Fact,
    Mention,
    ScoredMention,
    StoredMention,
)
from listener.rules.brand_state import BrandState, first_seen_at, merge_brand, split_brand
from listener.rules.conditions import Check, CountView
from listener.rules.conditions import condition_leaves as condition_leaves  # re-exported
from listener.rules.engine import (
    CompiledRule,
    EngineState,
    IncidentEvent,
    compile_rule,
    compile_rules,
    evaluate_rule_checks,
    max_lookback,
    next_change,
    next_move,
)
from listener.rules.notify import (
    IncidentChange,
    InhibitRule,
    Notice,
    NotifyState,
    Policy,
    Step,
    Tracked,
    next_tick,
    on_changes,
    on_tick,
)
from listener.rules.screen import RuleScreen, Table, screen_rule, table_for
from listener.rules.settled import Marks, Plan, SettledKeys, marks_of
from listener.rules.source_health import SOURCE_HEALTH, SourceStatus, evaluate_sources
from listener.rules.state import KeyState, StateEncoder
from listener.scoring.base import Scorer
from listener.scoring.explain import FeatureCache, brand_words, explain_window
from listener.scoring.velocity import BucketRow, Sample, VelocityWindows
from listener.store import BrandWrite, EvaluateWrite, IngestWrite, Store, reach_of
from listener.templates import render_summary

log = structlog.get_logger("listener.processor")

BUCKET = timedelta(minutes=1)
EXPLAINED: frozenset[AlertKind] = frozenset({"opened", "escalated", "handoff"})
"""The alerts that carry a spike explanation: those that call people to act for the
first time (a reminder goes to people who had one already)."""
TREND_STEP = timedelta(minutes=30)
TREND_POINTS = 12
RELEASED = "released_brands"
"""The store's kv key of the brands handed to another worker (a JSON list)."""
"""Alerts carry the last 6 hours of negative volume in 30-minute steps."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def rule_window(rule: RuleConfig) -> timedelta:
    """The longest 'current' window of a rule's levels (``CompiledRule.window``)."""
    return compile_rule(rule).window


def explain_spike(
    store: Store,
    config: Config | None,
    brand: str,
    at: datetime,
    window: timedelta,
    cache: FeatureCache | None = None,
) -> Explanation | None:
    """Why ``brand`` spiked at ``at``: what rose in the ``window`` ending with the minute
    of ``at`` against the day before (the stored mentions;
    :func:`listener.scoring.explain.explain_window`). The one computation behind the
    alerts, ``listener report``, ``incidents show``, the console and the backtest."""
    brands = config.brands if config is not None else ()
    cfg = next((b for b in brands if b.name == brand), None)
    ignore = brand_words(cfg) if cfg is not None else frozenset({brand.casefold()})

    def read(a: datetime, b: datetime, limit: int) -> list[StoredMention]:
        return store.mentions.recent(brand, a, b, limit)

    return explain_window(read, at - window, at + BUCKET, ignore, cache)


def retention_for(rules: Sequence[CompiledRule]) -> timedelta:
    """Buckets are kept for the longest look-back of any rule (at least an hour), plus a margin."""
    return max(max_lookback(rules), timedelta(hours=1)) + timedelta(minutes=10)


def distinct_retention_for(rules: Sequence[CompiledRule]) -> timedelta:
    """Author and story sets are kept for the longest look-back of a rule on voices or
    stories (at least an hour), plus a margin; counts may be kept far longer."""
    return max(max_lookback(rules, distinct=True), timedelta(hours=1)) + timedelta(minutes=10)


def windows_for(rules: Sequence[CompiledRule]) -> VelocityWindows:
    """Empty velocity windows sized for these rules."""
    return VelocityWindows(
        bucket=BUCKET,
        retention=retention_for(rules),
        distinct_retention=distinct_retention_for(rules),
    )


def sample_of(s: ScoredMention, *, distinct: bool = True) -> Sample:
    """What the velocity windows count of a scored mention; without author and story
    when not ``distinct`` (it then adds to no voice or story count).

    Voices are ``source:handle`` (the same handle on two platforms is two voices).
    """
    m = s.mention
    label = s.sentiment.label
    return Sample(
        negative=label == "negative",
        positive=label == "positive",
        compound=s.sentiment.compound,
        reach=reach_of(s),
        author=f"{m.source}:{m.author.handle}" if distinct and m.author.handle else None,
        story=s.story if distinct else None,
        categories=s.categories,
        source=m.source,
        language=m.language,
    )


class ReadOnce:
    """A :class:`CountView` that reads each range of the windows once: one evaluation's
    conditions and the gauges of what they measured share the reads. Use for one
    evaluation only (the windows must not change while it is in use)."""

    def __init__(self, view: CountView) -> None:
        self._view = view
        self._read: dict[tuple[object, ...], float] = {}

    def value(
        self,
        brand: str,
        measure: Measure,
        start: datetime,
        end: datetime,
        *,
        category: str | None = None,
        source: str | None = None,
        language: str | None = None,
    ) -> float:
        key = (brand, measure, start, end, category, source, language)
        found = self._read.get(key)
        if found is None:
            found = self._read[key] = self._view.value(
                brand, measure, start, end, category=category, source=source, language=language
            )
        return found

    def strided(
        self,
        brand: str,
        measure: Measure,
        end: datetime,
        width: timedelta,
        count: int,
        *,
        category: str | None = None,
        source: str | None = None,
        language: str | None = None,
    ) -> list[float]:
        """Adjacent windows, from the view's own strided read when it has one (running
        sums: cheaper than caching), else range by range through the cache."""
        view = self._view
        if isinstance(view, VelocityWindows):
            return view.strided(
                brand,
                measure,
                end,
                width,
                count,
                category=category,
                source=source,
                language=language,
            )
        return [
            self.value(
                brand,
                measure,
                end - (k + 1) * width,
                end - k * width,
                category=category,
                source=source,
                language=language,
            )
            for k in range(count)
        ]

    def first_seen(self, brand: str) -> datetime | None:
        return self._view.first_seen(brand)


def read_epoch(now: datetime, bucket: timedelta) -> int:
    """Which buckets a read ending at ``now`` covers: ranges ``[now - a, now - b)`` with
    ``a`` and ``b`` whole buckets cover the same buckets for every ``now`` of one epoch
    (``now`` in ``((e - 1) × bucket, e × bucket]``)."""
    size_us = bucket // _MICRO
    return -(-((as_utc(now) - _EPOCH) // _MICRO) // size_us)


def bucket_aligned(rule: CompiledRule, bucket: timedelta) -> bool:
    """Whether every duration a rule's conditions read by is a whole number of buckets."""
    for level in rule.levels:
        for condition in (level.when, level.exit):
            if condition is None:
                continue
            for _, leaf in condition_leaves(condition):
                if not is_dataclass(leaf):
                    return False
                for f in fields(leaf):
                    value = getattr(leaf, f.name)
                    if isinstance(value, timedelta) and value % bucket:
                        return False
    return True


@dataclass(frozen=True, slots=True)
class IngestResult:
    received: int
    new: int
    matched: int
    negative: int
    stale: int
    """Matched mentions older than the windows' retention: stored, never counted."""


@dataclass(frozen=True, slots=True)
class Evaluated:
    """What one evaluation decided: each alert with the sinks it is routed to (none for
    one muted or routed nowhere: it still records the incident), the rows of the window
    buckets that changed (a prune stripped them), and what it recorded of the incidents:
    the engine's events and the notification policy's notices (one notice per alert, in
    the same order; the first ``len(events)`` alerts are the events', in their order)."""

    alerts: list[tuple[Alert, tuple[str, ...]]]
    buckets: list[BucketRow]
    events: Sequence[IncidentEvent] = ()
    notices: Sequence[Notice] = ()


@dataclass(frozen=True, slots=True)
class _Tick:
    """What one evaluation knows before it runs the rules: the brands held (``rows``:
    each one's row), their :class:`Marks`, those quiet, and the screen's bulk read of the
    due ones (``table_row``: each brand's row in it, -1 when not read)."""

    now: datetime
    epoch: int
    brands: Sequence[str]
    rows: Mapping[str, int]
    marks: Marks
    quiet: Container[str]
    table: Table | None
    table_row: NDArray[np.intp]


class Processor:
    """The pure core wired to the store. Build once; :meth:`reconfigure` on reload."""

    def __init__(
        self,
        config: Config,
        store: Store,
        metrics: Metrics,
        *,
        scorer: Scorer | None = None,
        stage: Ingest | None = None,
        drill: bool = False,
        readings: bool = True,
        holds_state: bool = True,
        explain: bool = True,
        persist_windows: bool = True,
    ) -> None:
        """``stage``: the Ingest stage to run (default: built from ``config``, with
        ``scorer`` overriding ``scoring.sentiment``); give one or the other. ``explain``:
        whether alerts carry the spike explanation (a backtest, which sends no alert,
        explains its changes once at the end). ``persist_windows``: whether the window
        buckets that change are written to the store (a backtest's store is thrown away:
        encoding every bucket for it was a tenth of a replay)."""
        if stage is not None and scorer is not None:
            raise TypeError("Processor: pass a stage or a scorer, not both")
        self.store = store
        self.metrics = metrics
        self.drill = drill
        self.persist_windows = persist_windows
        self.holds_state = holds_state
        """Whether the store is the home of the Evaluate state (window buckets, engine and
        notification state, quiet periods, released brands) and of the outbox embedded
        mode's Deliverer drains. An evaluator of distributed mode keeps that state in Quix
        Streams state and writes its alerts to the ``alerts`` topic; its store is a cache
        of mentions and incidents for the alerts, and none of the rest is written there."""
        self.explain = explain
        self.readings = readings
        """Whether the condition gauges are kept. Without them (a backtest), a key the
        screen finds *sunk* (``RuleScreen.sunk``) is not evaluated again until its brand
        gets a mention: its decisions cannot change before, only what it measures."""
        self._ingested_until = datetime.min.replace(tzinfo=UTC)
        """The latest ``now`` of an ingest (no bucket starts after it)."""
        self._lock = threading.RLock()
        self.config = config
        self.stage = stage if stage is not None else Ingest.build(config, scorer=scorer)
        """The Ingest stage: match, score, tag, stories (:mod:`listener.ingest`)."""
        self.rules = compile_rules(config)
        self.windows = windows_for(self.rules)
        self.state = EngineState()
        self.notify = NotifyState()
        self.quiet_until: dict[str, datetime] = {}
        self.released: frozenset[str] = frozenset()
        """Configured brands this processor does not hold (handed to another worker with
        :meth:`export_brand`, not adopted back since): not counted, not evaluated."""
        self._memos: dict[str, SettledKeys] = {}
        """Per rule, the keys settled by earlier evaluations (:mod:`listener.rules.settled`),
        by row of :attr:`_memo_brands`."""
        self._memo_brands: tuple[str, ...] = ()
        self._applies: dict[str, NDArray[np.bool_]] = {}
        """Per rule, whether it applies to the brand at each row of :attr:`_memo_brands`."""
        self._memo_keys: Mapping[tuple[str, str], KeyState] | None = None
        """The engine keys the memos were left consistent with (the states they hold are
        those keys' states): while the engine state's keys are this very mapping, nothing
        else has changed a key since."""
        self._brand_memo: dict[str, tuple[tuple[int, int] | None, BrandValues]] = {}
        self._evaluated_at: datetime | None = None
        """The ``now`` of the last evaluation (what the brand gauges read up to)."""
        metrics.brands.source(self.brand_readings)
        self._leaf_cache: tuple[list[CompiledRule] | None, list[tuple[str, str, str]]] = (None, [])
        # the labelled series of _count_matches, looked up once each
        self._sentiment_series: dict[str, Histogram] = {}
        self._match_series: dict[tuple[str, str], PromCounter] = {}
        self._score_series: dict[tuple[str, str], PromCounter] = {}
        self._row_cache: tuple[tuple[str, ...], dict[str, int]] = ((), {})
        self._gauge_rows: NDArray[np.intp] | None = None
        """Each brand's row in the condition gauges, by its row in the evaluation (None:
        the same; see :meth:`ConditionReadings.layout`)."""
        self.screening = True
        """Whether evaluation screens the due brands in bulk first (``listener.rules.screen``);
        off, every due key is checked one by one (the same decisions, state and gauges)."""
        self._encoder = StateEncoder()
        self._written = EngineState()
        """The engine state the store holds (the object: written again only when not it)."""
        self._last_now = datetime.min.replace(tzinfo=UTC)
        self._aligned = {r.name: bucket_aligned(r, BUCKET) for r in self.rules}
        self._policy: tuple[Config, Policy] | None = None
        """The notification policy and the config it was built from."""
        self._brand_set: tuple[Config, frozenset[str]] | None = None
        self._features = FeatureCache()
        self._open_shown: EngineState | None = None
        """The state whose open incidents the open-incidents gauge shows."""
        self._load_state()

    def _load_state(self) -> None:
        raw_notify = self.store.load_kv("notify_state")
        self.notify = NotifyState.from_json(raw_notify) if raw_notify else NotifyState()
        raw_quiet = self.store.load_kv("quiet_until")
        self.quiet_until = {
            brand: datetime.fromisoformat(at) for brand, at in json.loads(raw_quiet or "{}").items()
        }
        self._notify_written = self.notify
        self.released = frozenset(json.loads(self.store.load_kv(RELEASED) or "[]"))
        """The notification state the store holds (written again only when not equal)."""
        self.windows = windows_for(self.rules)
        rows = self.store.load_buckets()
        self.windows.load(rows)
        self.windows.drain_dirty()
        if rows:  # no bucket starts after the end of the latest one loaded
            latest = max(key for _, key, _ in rows) + self.windows.bucket // timedelta(seconds=1)
            self._ingested_until = max(self._ingested_until, _EPOCH + timedelta(seconds=latest))
        self._pruned_epoch: int | None = None
        """The read epoch (bucket) of the last prune of the windows."""
        self._swept = False
        """Whether the store's buckets were pruned of every brand since the load (later
        prunes delete only those of the brands whose buckets the windows dropped)."""
        raw = self.store.load_engine_state()
        self.state = self._written = EngineState.from_json(raw) if raw else EngineState()
        self._forget_settled()
        self._brand_memo = {}  # new windows: their change counts start again

    def reconfigure(self, config: Config) -> None:
        """Apply a new config; window counts and open incidents are kept."""
        with self._lock:
            stage = self.stage.reconfigure(config)
            rules = compile_rules(config)
            self.config, self.stage, self.rules = config, stage, rules
            self._forget_settled()
            self._aligned = {r.name: bucket_aligned(r, BUCKET) for r in rules}
            self.windows.retention = retention_for(rules)
            self.windows.distinct_retention = distinct_retention_for(rules)
            self._pruned_epoch = None  # the retention may have shrunk: prune at the next tick

    # ------------------------------------------------------------------ brand hand-off

    def _configured(self) -> frozenset[str]:
        """The configured brands' names (worked out once per config)."""
        config = self.config
        if self._brand_set is None or self._brand_set[0] is not config:
            self._brand_set = (config, frozenset(config.brand_names()))
        return self._brand_set[1]

    def held_brands(self) -> list[str]:
        """The configured brands this processor holds (counts and evaluates)."""
        names = self.config.brand_names()
        released = self.released
        return [b for b in names if b not in released] if released else names

    def export_brand(self, brand: str) -> BrandState:
        """Hand ``brand`` over: its Evaluate state (window buckets, engine keys, tracked
        notifications, quiet period) leaves memory and the store in one transaction, and
        the brand is released (no longer counted or evaluated here, across restarts)
        until :meth:`adopt_brand` takes it back. :class:`~listener.errors.BrandHeld` when
        it is not held here. Stored mentions and incident history stay."""
        with self._lock:
            if brand in self.released:
                raise BrandHeld(f"cannot export brand {brand!r}: this processor released it")
            windows = self.windows
            state, engine, notify = split_brand(
                brand,
                self.state,
                self.notify,
                tuple(windows.export_brand(brand)),
                windows.first_seen(brand),
                self.quiet_until,
            )
            quiet = {b: at for b, at in self.quiet_until.items() if b != brand}
            released = self.released | {brand}
            self._write_brand(brand, engine, notify, quiet, released, ())
            windows.drop_brand(brand)
            self._swap_brand(brand, engine, notify, quiet, released)
            return state

    def adopt_brand(self, state: BrandState) -> None:
        """Take over a brand :meth:`export_brand` handed out (here or in another
        process): its state joins memory and the store in one transaction, and the brand
        is counted and evaluated here from then on, deciding as the exporter would have.
        :class:`~listener.errors.BrandHeld` when this processor holds the brand already;
        :class:`~listener.errors.BrandStateError` when its buckets cannot be loaded."""
        brand = state.brand
        with self._lock:
            if brand not in self.released and brand in self.config.brand_names():
                raise BrandHeld(
                    f"cannot adopt brand {brand!r}: this processor already holds it "
                    "(a brand lives in one worker: export it from here first)"
                )
            engine, notify = merge_brand(state, self.state, self.notify)
            if brand in self.windows.brands() or brand in self.quiet_until:
                raise BrandHeld(f"cannot adopt brand {brand!r}: its windows are already here")
            check = windows_for(self.rules)
            try:
                check.load(state.buckets)
            except ValueError as exc:
                raise BrandStateError(f"cannot adopt brand {brand!r}: {exc}") from None
            quiet = dict(self.quiet_until)
            if state.quiet_until is not None:
                quiet[brand] = state.quiet_until
            released = self.released - {brand}
            self._write_brand(brand, engine, notify, quiet, released, state.buckets)
            self.windows.load(state.buckets)
            first = first_seen_at(state)
            if first is not None:
                self.windows.start_history(brand, first)
            if state.buckets:
                end = state.buckets[-1][1] + self.windows.bucket // timedelta(seconds=1)
                self._ingested_until = max(self._ingested_until, _EPOCH + timedelta(seconds=end))
            self._pruned_epoch = None  # its buckets may be due a prune
            self._swap_brand(brand, engine, notify, quiet, released)

    def _write_brand(
        self,
        brand: str,
        engine: EngineState,
        notify: NotifyState,
        quiet: Mapping[str, datetime],
        released: frozenset[str],
        buckets: Sequence[tuple[str, int, str]],
    ) -> None:
        """Store a brand's departure or arrival (memory is changed only once it is)."""
        if not self.holds_state:
            return
        try:
            self.store.write_brand(
                BrandWrite(
                    brand=brand,
                    engine_state=self._encoder.encode(engine),
                    buckets=buckets,
                    kv={
                        "notify_state": notify.to_json(),
                        "quiet_until": _dump_times(quiet),
                        RELEASED: json.dumps(sorted(released)),
                    },
                )
            )
        except StoreError:
            self._load_state()
            raise

    def _swap_brand(
        self,
        brand: str,
        engine: EngineState,
        notify: NotifyState,
        quiet: dict[str, datetime],
        released: frozenset[str],
    ) -> None:
        """Hold the states written by :meth:`_write_brand`; forget what was cached of the
        brand (its keys are evaluated afresh at the next tick)."""
        self.state = self._written = engine
        self.notify = self._notify_written = notify
        self.quiet_until, self.released = quiet, released
        if brand in self._memo_brands:
            row = self._memo_brands.index(brand)
            for memo in self._memos.values():
                memo.forget(row)
        self._brand_memo.pop(brand, None)
        self._update_open_gauge()

    # ------------------------------------------------------------------ ingest

    def ingest(
        self,
        source: str,
        mentions: Sequence[Mention],
        now: datetime,
        *,
        cursor: Cursor | None = None,
        backfill: bool = False,
    ) -> IngestResult:
        """Store and count the mentions not seen before; persist the cursor with them.

        Mentions older than the window retention are stored (so they are never counted
        later) but move no window. A ``backfill`` batch (a source's first poll, reaching
        into history) is counted into the baseline, but a brand it touched cannot open an
        incident until that history has left the longest rule window: day one cannot raise
        a false spike. Mentions dated in the future count now.
        """
        (result,) = self.ingest_many(source, [(now, mentions)], cursor=cursor, backfill=backfill)
        return result

    def ingest_many(
        self,
        source: str,
        batches: Sequence[tuple[datetime, Sequence[Mention]]],
        *,
        cursor: Cursor | None = None,
        backfill: bool = False,
    ) -> list[IngestResult]:
        """:meth:`ingest` each ``(now, mentions)`` batch in turn, with no evaluation
        between them (the same windows, store and results), the Ingest stage run once over
        them all and one transaction storing them; ``cursor`` is persisted with the last.
        A replay ingests a stretch of simulated time so (``listener.backtest``)."""
        if not batches:
            return []
        with self._lock:
            known: set[tuple[str, str]] = set()
            firsts: list[list[Mention]] = []
            for _, mentions in batches:
                batch: dict[tuple[str, str], Mention] = {}
                for m in mentions:
                    if m.key not in known:
                        batch.setdefault(m.key, m)
                known.update(batch)
                firsts.append(list(batch.values()))
            seen = self.store.seen(known) if known else set()
            fresh = [[m for m in first if m.key not in seen] for first in firsts]
            scored_all = iter(self.stage.run([m for f in fresh for m in f], batches[-1][0]))
            quiet_until = dict(self.quiet_until)
            span = self.quiet_span()
            results: list[IngestResult] = []
            writes: list[IngestWrite] = []
            for (now, mentions), new in zip(batches, fresh, strict=True):
                scored = list(itertools.islice(scored_all, len(new)))
                before = dict(quiet_until)
                matched, negative, stale = self._count(scored, now, backfill, quiet_until, span)
                writes.append(
                    IngestWrite(
                        now=now,
                        mentions=scored,
                        kv={"quiet_until": _dump_times(quiet_until)}
                        if quiet_until != before
                        else {},
                    )
                )
                results.append(IngestResult(len(mentions), len(new), matched, negative, stale))
            last = writes[-1]
            writes[-1] = replace(
                last,
                cursor=(source, cursor) if cursor is not None else None,
                buckets=self._changed_buckets(),
            )
            try:
                self.store.write_ingest(*writes)
            except StoreError:
                self._load_state()  # memory must not run ahead of the store
                raise
            if any(r.matched > r.stale for r in results):
                self._pruned_epoch = None  # a bucket added may already be due a prune
            self._ingested_until = max(self._ingested_until, as_utc(batches[-1][0]))
            for w in writes:  # once stored: a retried batch counts once
                self._count_matches(source, w.mentions)
            self.quiet_until = quiet_until
            self.metrics.mentions_collected.labels(source=source).inc(
                sum(r.received for r in results)
            )
            self.metrics.mentions_new.labels(source=source).inc(sum(r.new for r in results))
            return results

    def _changed_buckets(self) -> list[BucketRow]:
        """The rows of the window buckets changed since the last call, to write (none when
        the windows are not persisted)."""
        if self.persist_windows:
            return self.windows.drain_dirty()
        self.windows.discard_dirty()
        return []

    def count_scored(
        self, brand: str, scored: Sequence[ScoredMention], now: datetime, *, backfill: bool = False
    ) -> list[BucketRow]:
        """Count mentions scored elsewhere (by an ingest worker of distributed mode) into
        the windows of ``brand``, a brand held here, each once (the caller knows which it
        counted before), as :meth:`ingest` would at ``now``: the other brands they matched
        are counted by whoever holds them. They are stored (an alert lists the top posts).
        A ``backfill`` (from a source's first poll) keeps the brand quiet as :meth:`ingest`
        does (:attr:`quiet_until`). The rows of the window buckets that changed."""
        with self._lock:
            if brand in self.released:
                raise BrandHeld(f"cannot count for brand {brand!r}: this processor released it")
            mine = [replace(s, brands=(brand,)) for s in scored if brand in s.brands]
            quiet = dict(self.quiet_until)
            matched, _, stale = self._count(mine, now, backfill, quiet, self.quiet_span())
            if backfill and brand in quiet:
                self.quiet_until[brand] = quiet[brand]
            changed = self.windows.drain_dirty()
            try:
                self.store.write_ingest(
                    IngestWrite(
                        now=now, mentions=scored, buckets=changed if self.holds_state else ()
                    )
                )
            except StoreError:
                self._load_state()
                raise
            if matched > stale:
                self._pruned_epoch = None
            self._ingested_until = max(self._ingested_until, as_utc(now))
            return changed

    def _count(
        self,
        scored: Sequence[ScoredMention],
        now: datetime,
        backfill: bool,
        quiet_until: dict[str, datetime],
        span: timedelta,
    ) -> tuple[int, int, int]:
        """Count one batch's matched mentions into the windows (``quiet_until`` updated for
        a backfill); ``(matched, negative, stale)``."""
        oldest = now - self.windows.retention
        # the next prune (at this now or later) strips the buckets before this of their
        # authors and stories: adding them without is the same, and encodes them once
        sets_from = self.windows.sets_from(now)
        matched = negative = stale = 0
        for s in scored:
            if not s.brands:
                continue
            m, brands = s.mention, s.brands
            matched += 1
            negative += s.negative
            at = min(m.created_at, now)
            if at < oldest:
                stale += 1
                continue
            sample = sample_of(s, distinct=at >= sets_from)
            for brand in brands:
                if brand in self.released:
                    continue  # another worker holds it
                # history is quiet until it has left the longest rule window
                if backfill and quiet_until.get(brand, now) < at + span:
                    quiet_until[brand] = at + span
                self.windows.add(brand, at, sample)
        return matched, negative, stale

    # ------------------------------------------------------------------ evaluate

    def _count_matches(self, source: str, scored: Sequence[ScoredMention]) -> None:
        """Matches and scores per brand. Each labelled series is looked up once and kept
        (``labels()`` checks and locks at every call: at 1,000 brands, a lookup per brand
        per batch was most of the cost; nothing removes these series)."""
        per_pair: Counter[tuple[str, str]] = Counter()
        compounds: dict[str, list[float]] = {}
        unscored: Counter[str] = Counter()
        for s in scored:
            label = s.sentiment.label
            scored_one = label != "unscored"  # an unscored one has no compound to observe
            if not scored_one and s.brands:
                unscored[s.mention.language or "unknown"] += 1
            for brand in s.brands:
                per_pair[brand, label] += 1
                if scored_one:
                    compounds.setdefault(brand, []).append(s.sentiment.compound)
        metrics, histograms = self.metrics, self._sentiment_series
        for language, n in unscored.items():
            metrics.unscored.labels(language=language).inc(n)
        for brand, values in compounds.items():
            histogram = histograms.get(brand)
            if histogram is None:
                histogram = histograms[brand] = metrics.sentiment.labels(brand=brand)
            for value in values:
                histogram.observe(value)
        matches, scores = self._match_series, self._score_series
        for (brand, sentiment), n in per_pair.items():
            matched = matches.get((source, brand))
            if matched is None:
                matched = matches[source, brand] = metrics.matches.labels(
                    source=source, brand=brand
                )
            matched.inc(n)
            score = scores.get((brand, sentiment))
            if score is None:
                score = scores[brand, sentiment] = metrics.scored.labels(
                    brand=brand, sentiment=sentiment
                )
            score.inc(n)

    def quiet_span(self) -> timedelta:
        """How long a backfilled brand cannot open incidents: the longest rule window."""
        return max((r.window for r in self.rules), default=timedelta(0))

    def evaluate(
        self, now: datetime, sources: Mapping[str, SourceStatus] | None = None
    ) -> list[Alert]:
        """Run every rule at ``now`` (and the source-health check when ``sources`` is
        given); persist state, events and routed alerts atomically.

        A rule that raises is logged and counted and the others still run. Each
        (rule, brand) is evaluated at most once per call, and only when something could
        have moved it: keys settled at an earlier call in the same bucket
        (``listener.rules.settled``), whose brand's windows have not changed since, are
        skipped; the due brands are screened in bulk first (``listener.rules.screen``) and
        the engine checks only the keys the screen cannot settle (same decisions, state and
        gauges as checking every key).
        """
        with self._lock:
            try:
                decided = self._evaluate(now, sources).alerts
            except BaseException:
                # what the memos were left in may not match the state held: start again
                self._forget_settled()
                raise
        return [alert for alert, sinks in decided if sinks]

    def evaluate_brands(self, now: datetime, brands: Collection[str]) -> Evaluated:
        """Run every rule at ``now`` for these held brands only (an evaluator of
        distributed mode, where time reaches each brand in its own tick message): the same
        decisions for them as :meth:`evaluate`, and nothing else moves (the other brands'
        keys, windows, notifications)."""
        with self._lock:
            try:
                return self._evaluate(now, None, frozenset(brands))
            except BaseException:
                self._forget_settled()
                raise

    def evaluate_sources(
        self,
        now: datetime,
        sources: Mapping[str, SourceStatus],
        engine: EngineState,
        notify: NotifyState,
    ) -> tuple[Evaluated, EngineState, NotifyState]:
        """The source-health check alone, for these sources, from their state (``engine``'s
        keys and ``notify``'s incidents of these sources): a collector of distributed mode,
        whose sources' states live in the shared database. What it decided, and the
        sources' states after; the processor keeps none of them. For a processor that
        holds no brand (each released) and not the Evaluate state (``holds_state``)."""
        if self.holds_state or self.held_brands():
            raise TypeError("evaluate_sources: for a processor that holds no brand's state")
        with self._lock:
            self.state, self.notify = engine, notify
            try:
                decided = self._evaluate(now, sources, frozenset(sources))
                return decided, self.state, self.notify
            finally:
                self._forget_settled()
                self.state, self.notify = EngineState(), NotifyState()

    def _evaluate(
        self,
        now: datetime,
        sources: Mapping[str, SourceStatus] | None,
        only: frozenset[str] | None = None,
    ) -> Evaluated:
        """Each alert the evaluation made with the sinks it is routed to, the window
        buckets it changed, and the incident events and notices it recorded."""
        if only is None:
            brands = self.held_brands()
        else:  # the due brands alone: nothing is read or planned of the others
            configured, released = self._configured(), self.released
            brands = [b for b in sorted(only) if b in configured and b not in released]
        state = self.state
        quiet = {b for b, until in self.quiet_until.items() if until > now}
        events: list[IncidentEvent] = []
        view = self.windows  # reads of counts are O(1): nothing to gain from caching
        if sources:
            policies = {name: self.health_policy(name) for name in sources}
            state, produced = evaluate_sources(sources, policies, state, now)
            events.extend(produced)
        epoch = read_epoch(now, self.windows.bucket)
        memos = self._settled_for(brands)
        if as_utc(now) < self._last_now:
            # time went back (prunes since may have dropped what now reads): no reuse
            for memo in memos.values():
                memo.forget()
        trusted = state.keys is self._memo_keys
        self._memo_keys = None  # until this evaluation has settled every rule's keys
        marks = self._marks(brands, now)
        if self.readings:
            self._gauge_rows = self.metrics.conditions.layout(self._leaf_keys, brands)
        rows = self._rows(brands)
        # a rule's keys move only with that rule: what each must evaluate is known now
        dues = [
            (rule, self._coalesce(rule, brands, state, now, epoch, marks, trusted=trusted))
            for rule in self.rules
        ]
        table, table_row = None, np.zeros(0, dtype=np.intp)
        if self.screening and dues:
            wanted = np.logical_or.reduce([plan.due for _, plan in dues])
            read_rows = np.flatnonzero(wanted)
            everyone = len(read_rows) == len(brands)
            read = brands if everyone else [brands[i] for i in read_rows]
            first = marks.first_seen if everyone else marks.first_seen[read_rows]
            table = table_for(self.rules, read, view, now, first)
            table_row = np.full(len(brands), -1, dtype=np.intp)
            table_row[read_rows] = np.arange(len(read_rows), dtype=np.intp)
        tick = _Tick(now, epoch, brands, rows, marks, quiet, table, table_row)
        for rule, plan in dues:
            state = self._run_rule(tick, rule, plan, memos[rule.name], state, events)
        notify, notices, alerts = self._notify(events, now, only)
        pruned, prune_brands = self._prune(now, epoch, only)
        cutoff = int((now - self.windows.retention).timestamp()) if pruned else None
        changed = self._changed_buckets()
        try:
            self.store.write_evaluate(
                EvaluateWrite(
                    now=now,
                    engine_state=None
                    if state is self._written or not self.holds_state
                    else self._encoder.encode(state),
                    events=events,
                    notices=notices,
                    outbox=[(a, n.sinks) for a, n in zip(alerts, notices, strict=True) if n.sinks]
                    if self.holds_state
                    else [],
                    buckets=changed if self.holds_state else (),
                    prune_buckets_before=cutoff if self.holds_state else None,
                    prune_brands=prune_brands,
                    kv={}
                    if notify == self._notify_written or not self.holds_state
                    else {"notify_state": notify.to_json()},
                )
            )
        except StoreError:
            self._load_state()
            raise
        self.state, self.notify = state, notify
        self._memo_keys = state.keys  # every memo now holds its keys' states
        self._written, self._notify_written = state, notify
        self._swept = self._swept or cutoff is not None
        self._last_now = max(self._last_now, as_utc(now))
        for ev in events:
            self.metrics.incident_events.labels(rule=ev.rule, brand=ev.brand, kind=ev.kind).inc()
        for alert, notice in zip(alerts, notices, strict=True):
            if notice.muted:
                reason = notice.muted.split(" ", 1)[0]
                self.metrics.alerts_muted.labels(rule=alert.rule, reason=reason).inc()
            if notice.kind == "acknowledged" and notice.ack is not None:
                opened = alert.opened_at or notice.ack.at
                self.metrics.time_to_ack.labels(rule=alert.rule).observe(
                    max(0.0, (notice.ack.at - opened).total_seconds())
                )
        self._update_open_gauge()
        self._evaluated_at = now
        return Evaluated(
            [(a, n.sinks) for a, n in zip(alerts, notices, strict=True)], changed, events, notices
        )

    def _run_rule(
        self,
        tick: _Tick,
        rule: CompiledRule,
        plan: Plan,
        memo: SettledKeys,
        state: EngineState,
        events: list[IncidentEvent],
    ) -> EngineState:
        """Evaluate ``rule`` for the brands its ``plan`` says are due: screen them, check
        with the engine those the screen cannot settle, record what is settled, show the
        gauges; its events join ``events``. The engine state after it (a rule that raises
        is logged and counted, its memo and gauges go, and its events are dropped)."""
        brands, none = tick.brands, np.zeros(0, dtype=np.intp)
        due_rows = np.flatnonzero(plan.due)
        engine_rows, engine_still, screen = due_rows, none, None
        if tick.table is not None and len(due_rows):
            screen = screen_rule(rule, tick.table, tick.table_row[due_rows], readings=self.readings)
            resting = plan.resting[due_rows]
            # a resting key that surely stays still: checking it changes nothing
            engine_rows = due_rows[~(screen.still & resting)]
            engine_still = due_rows[screen.still & ~resting]
        still_rows, rested, sunk = none, none, np.zeros(0, dtype=np.bool_)
        try:
            state, produced, checks = evaluate_rule_checks(
                rule,
                [brands[i] for i in engine_rows.tolist()],
                self.windows,
                state,
                tick.now,
                tick.quiet,
                still={brands[i] for i in engine_still.tolist()},
            )
            if screen is not None:
                checked = np.zeros(len(brands), dtype=np.bool_)
                checked[[tick.rows[b] for b in checks]] = True
                left = screen.still & ~checked[due_rows]  # settled by the screen alone
                still_rows = due_rows[left]
                rested = still_rows[~plan.resting[still_rows]]  # those the engine rested
                # sunk keys may stand until their brand moves (nothing after now is counted)
                dormant = not self.readings and self._ingested_until <= tick.now
                sunk = screen.sunk[left] if dormant else np.zeros(len(still_rows), np.bool_)
                if self.readings:
                    self._show_screened(rule, screen, left, still_rows, brands, tick.now)
        except Exception as exc:
            self.metrics.error("evaluate", type(exc).__name__)
            log.error("rule_failed", rule=rule.name, error_type=type(exc).__name__, error=str(exc))
            memo.forget()
            for level in rule.levels:
                for path in level.leaves:
                    self.metrics.conditions.clear((rule.name, level.name, path), self._gauge_rows)
            return state
        self.metrics.evaluations.labels(rule=rule.name).inc()
        events.extend(produced)
        aligned = self._aligned.get(rule.name, False)
        keys = state.keys
        memo.settle(
            rule, checks, tick.rows, still_rows, rested, sunk, keys, tick.marks, tick.epoch, aligned
        )
        if self.readings:
            self._show_checks(rule, checks, tick.rows)
        return state

    def next_change(self) -> datetime | None:
        """While no level of any rule holds for any brand, the earliest ``now`` at which an
        evaluation (without source health) can change anything: a key (a level timer to
        stop, an incident to move down or resolve), or a notification (a hand-off, a
        reminder, a silence starting or ending while one is due); the time of the last
        evaluation when the next one may already, None when nothing moves before a level
        holds (every key rests, nothing is due). Evaluations before it decide nothing: a
        backtest skips them (:func:`listener.backtest.replay_mentions`). Assumes no
        acknowledgement or silence is added meanwhile."""
        return self._next(next_change)

    def next_move(self) -> datetime | None:
        """While every level of every rule holds for every brand exactly as it did at the
        last evaluation, the earliest ``now`` at which an evaluation (without source
        health) can change more than when the holding levels last held
        (:func:`listener.rules.engine.next_move` per key, a notification as in
        :meth:`next_change`; the last evaluation's time while a brand is quiet). The
        evaluations before it decide as that one did: a backtest that knows which levels
        hold skips them, evaluating the last step before the levels change (which records
        when they last held). Assumes no acknowledgement or silence is added meanwhile."""
        with self._lock:
            last = self._evaluated_at
            if last is not None and any(until > last for until in self.quiet_until.values()):
                return last  # a quiet brand's timers run, and it opens when it is not
        return self._next(next_move)

    def _next(
        self, per_key: Callable[[CompiledRule, KeyState, datetime], datetime | None]
    ) -> datetime | None:
        with self._lock:
            last = self._evaluated_at
            state, notify = self.state, self.notify
            held = set(self.held_brands())
            rules = {rule.name: rule for rule in self.rules}
            times: list[datetime] = []
            for (name, brand), key in state.keys.items():
                rule = rules.get(name)
                if key.resting or rule is None or brand not in held:
                    continue  # at rest, or never evaluated again
                if rule.brands is not None and brand not in rule.brands:
                    continue
                if last is None:  # loaded, never evaluated here: it may move at once
                    return datetime.min.replace(tzinfo=UTC)
                found = per_key(rule, key, last)
                if found is not None:
                    times.append(found)
            if notify.incidents:
                if last is None:
                    return datetime.min.replace(tzinfo=UTC)
                acks = self.store.acks(notify.incidents)
                if any(t.ack is None and key in acks for key, t in notify.incidents.items()):
                    return last  # an acknowledgement the next tick announces
                found = next_tick(notify, self.policy(), self.store.silences(), last)
                if found is not None:
                    times.append(found)
            return min(times, default=None)

    def _prune(
        self, now: datetime, epoch: int, only: frozenset[str] | None = None
    ) -> tuple[bool, list[str] | None]:
        """Prune the windows, once per read epoch (bucket) and after an ingest: with
        retentions of whole buckets, the buckets a prune drops (those starting before
        ``now - retention``) are the same for every ``now`` of one epoch, so pruning again
        would drop nothing. Whether buckets were dropped, and the brands whose stored
        buckets to prune with them (None: every brand's, the first time after a load).
        With ``only``, the windows of those brands alone, every time."""
        windows = self.windows
        if only is not None:
            gone = windows.prune(now, only)
            return bool(gone), sorted({brand for brand, _ in gone})
        if epoch == self._pruned_epoch and not (
            windows.retention % windows.bucket
            or (windows.distinct_retention or windows.retention) % windows.bucket
        ):
            return False, None
        dropped = windows.prune(now)
        self._pruned_epoch = epoch
        if not dropped:
            return False, None
        return True, sorted({brand for brand, _ in dropped}) if self._swept else None

    def _settled_for(self, brands: Sequence[str]) -> dict[str, SettledKeys]:
        """Each rule's memo of settled keys, by row of ``brands`` (moved along when the
        brands held change: a brand keeps what was settled of it)."""
        names = tuple(brands)
        rules = self.rules
        if names != self._memo_brands or self._memos.keys() != {r.name for r in rules}:
            old = {brand: row for row, brand in enumerate(self._memo_brands)}
            take = [old.get(brand, -1) for brand in names]
            held = self._memos
            self._memos = {
                r.name: held[r.name].moved(r.name, names, take)
                if r.name in held
                else SettledKeys(r.name, names)
                for r in rules
            }
            self._applies = {
                r.name: np.ones(len(names), dtype=np.bool_)
                if r.brands is None
                else np.fromiter((b in set(r.brands) for b in names), np.bool_, len(names))
                for r in rules
            }
            self._memo_brands = names
        return self._memos

    def _forget_settled(self) -> None:
        """Forget every memo of settled keys (the next evaluation checks every key)."""
        self._memos = {}
        self._memo_brands = ()
        self._memo_keys = None

    def _coalesce(
        self,
        rule: CompiledRule,
        brands: Sequence[str],
        state: EngineState,
        now: datetime,
        epoch: int,
        marks: Marks | None = None,
        *,
        trusted: bool | None = None,
    ) -> Plan:
        """Which of ``brands`` ``rule`` must evaluate at ``now`` (:class:`Plan`, by row of
        ``brands``): not the settled keys whose brand's windows have not changed, in the
        same read epoch, still past warm-up, with the state left by that evaluation.
        ``marks``: :meth:`_marks` of ``brands``, read once for all rules of a tick;
        ``trusted``: whether ``state``'s keys are those the memos were left with (default:
        whether they are the very mapping)."""
        memos = self._settled_for(brands)
        if marks is None:
            marks = self._marks(brands, now)
        if trusted is None:
            trusted = state.keys is self._memo_keys
        keys = None if trusted else state.keys
        return memos[rule.name].plan(rule, self._applies[rule.name], marks, epoch, keys)

    def _marks(self, brands: Sequence[str], now: datetime) -> Marks:
        """Each brand's windows' change count and first bucket (:class:`Marks`)."""
        windows = self.windows
        return marks_of(
            [windows.changes(brand) for brand in brands], windows.first_seen_seconds(brands), now
        )

    # ------------------------------------------------------------------ notifications

    def policy(self) -> Policy:
        """The notification policy of the current config (built once per config)."""
        config = self.config
        if self._policy is None or self._policy[0] is not config:
            self._policy = (config, policy_of(config))
        return self._policy[1]

    def _notify(
        self, events: Sequence[IncidentEvent], now: datetime, only: frozenset[str] | None = None
    ) -> tuple[NotifyState, list[Notice], list[Alert]]:
        """Apply the notification policy (to the incidents of ``only``'s brands alone, when
        given); one Alert per Notice, in the same order."""
        policy = self.policy()
        silences = self.store.silences(active_at=now)
        changes = [
            IncidentChange(ev.alert_id, ev.kind, ev.incident_id, ev.rule, ev.brand, ev.level, ev.at)
            for ev in events
        ]
        held, rest = self.notify, NotifyState()
        if only is not None:
            incidents = self.notify.incidents
            held = NotifyState({k: t for k, t in incidents.items() if t.brand in only})
            rest = NotifyState({k: t for k, t in incidents.items() if t.brand not in only})
        notify, from_events = on_changes(changes, held, silences, policy, now)
        acks = self.store.acks(notify.incidents)
        notify, from_ticks = on_tick(notify, silences, acks, policy, now)
        tracked = {**held.incidents, **notify.incidents}
        if rest.incidents:
            notify = NotifyState({**rest.incidents, **notify.incidents})
        alerts = [
            self._event_alert(ev, notice, tracked.get(ev.incident_id))
            for ev, notice in zip(events, from_events, strict=True)
        ]
        alerts += [self._tick_alert(n, tracked[n.incident_id], now) for n in from_ticks]
        return notify, [*from_events, *from_ticks], alerts

    def _event_alert(self, ev: IncidentEvent, notice: Notice, t: Tracked | None) -> Alert:
        return self._make_alert(
            alert_id=ev.alert_id,
            kind=ev.kind,
            incident_id=ev.incident_id,
            rule=ev.rule,
            brand=ev.brand,
            level=ev.level,
            previous_level=ev.previous_level,
            at=ev.at,
            facts=ev.facts,
            opened_at=t.opened_at if t else None,
            ack=t.ack if t else None,
            route=notice.route,
            peak_level=ev.peak_level,
        )

    def _tick_alert(self, notice: Notice, t: Tracked, now: datetime) -> Alert:
        facts: tuple[Fact, ...] = ()
        compiled = next((r for r in self.rules if r.name == t.rule), None)
        level = compiled.level(t.level) if compiled is not None else None
        if level is not None:
            try:
                facts = level.when.check(self.windows, t.brand, now).facts
            except Exception:  # facts are decoration; a failing condition is logged elsewhere
                facts = ()
        return self._make_alert(
            alert_id=notice.alert_id,
            kind=notice.kind,
            incident_id=t.incident_id,
            rule=t.rule,
            brand=t.brand,
            level=t.level,
            previous_level=None,
            at=now,
            facts=facts,
            opened_at=t.opened_at,
            ack=notice.ack or t.ack,
            route=notice.route,
        )

    def _update_open_gauge(self) -> None:
        if self.state is self._open_shown:
            return  # the same open incidents
        self._open_shown = self.state
        self.metrics.incidents_open.clear()
        for inc in self.state.open_incidents():
            self.metrics.incidents_open.labels(
                rule=inc.rule, brand=inc.brand, level=inc.level
            ).inc()

    def brand_readings(self) -> dict[str, BrandValues]:
        """Volume, negative volume, negative share and mean sentiment of each configured
        brand over :data:`~listener.metrics.BRAND_WINDOW` before the last evaluation (the
        ``listener_brand_*_1h`` gauges, read when scraped); empty before the first."""
        with self._lock:
            now = self._evaluated_at
            if now is None:
                return {}
            windows, start = self.windows, now - BRAND_WINDOW
            # a brand's 1h reads give the same values while its windows and epoch stay
            epoch = read_epoch(now, windows.bucket) if not BRAND_WINDOW % windows.bucket else None
            memo, out = self._brand_memo, {}
            for brand in self.held_brands():
                mark = (epoch, windows.changes(brand)) if epoch is not None else None
                held = memo.get(brand)
                if held is not None and mark is not None and held[0] == mark:
                    out[brand] = held[1]
                    continue
                total = windows.value(brand, "total", start, now)
                negative = windows.value(brand, "negative", start, now)
                summed = windows.value(brand, "sentiment_sum", start, now)
                values = (
                    total,
                    negative,
                    negative / total if total else 0.0,
                    summed / total if total else 0.0,
                )
                memo[brand] = (mark, values)
                out[brand] = values
            for gone in memo.keys() - out.keys():
                del memo[gone]
            return out

    def _show_checks(
        self, rule: CompiledRule, checks: Mapping[str, tuple[Check, ...]], rows: Mapping[str, int]
    ) -> None:
        """The condition gauges of the keys the engine just checked: each leaf's first
        fact (value, threshold, baseline)."""
        put = self.metrics.conditions.put
        name = rule.name
        at = self._gauge_rows
        for brand, made in checks.items():
            row = rows[brand] if at is None else int(at[rows[brand]])
            for level, check in zip(rule.levels, made, strict=True):
                for path, fact in zip(level.leaves, check.readings, strict=True):
                    reading = (
                        (math.nan, None, None)
                        if fact is None
                        else (
                            fact.value,
                            fact.threshold,
                            fact.baseline,
                        )
                    )
                    put((name, level.name, path), row, reading)

    def _show_screened(
        self,
        rule: CompiledRule,
        screen: RuleScreen,
        left: NDArray[np.bool_],
        rows: NDArray[np.intp],
        brands: Sequence[str],
        now: datetime,
    ) -> None:
        """The condition gauges of the keys the engine let the screen settle (``left``:
        which of those screened; ``rows``: their rows among ``brands``): the screen's
        readings, and a check of each leaf it could not read in bulk."""
        if not len(rows):
            return
        gauges = self.metrics.conditions
        at = rows if self._gauge_rows is None else self._gauge_rows[rows]
        pick = np.flatnonzero(left)
        for level, found in zip(rule.levels, screen.readings, strict=True):
            leaves = condition_leaves(level.when)
            for (path, leaf), reading in zip(leaves, found, strict=True):
                key = (rule.name, level.name, path)
                if reading is not None:
                    gauges.put_many(
                        key,
                        at,
                        reading.value[pick],
                        None if reading.threshold is None else reading.threshold[pick],
                        None if reading.baseline is None else reading.baseline[pick],
                    )
                    continue
                for row, gauge_row in zip(rows.tolist(), at.tolist(), strict=True):
                    first = leaf.check(self.windows, brands[row], now).readings[0]
                    gauges.put(
                        key,
                        gauge_row,
                        (math.nan, None, None)
                        if first is None
                        else (first.value, first.threshold, first.baseline),
                    )

    @property
    def _leaf_keys(self) -> list[tuple[str, str, str]]:
        """Every (rule, level, leaf path) the condition gauges show."""
        rules = self.rules
        if self._leaf_cache[0] is not rules:
            keys = [
                (rule.name, level.name, path)
                for rule in rules
                for level in rule.levels
                for path in level.leaves
            ]
            self._leaf_cache = (rules, keys)
        return self._leaf_cache[1]

    def _rows(self, brands: Sequence[str]) -> dict[str, int]:
        """Each brand's row in the screen's table and the gauges' arrays."""
        names = tuple(brands)
        if self._row_cache[0] != names:
            self._row_cache = (names, {b: i for i, b in enumerate(names)})
        return self._row_cache[1]

    def _rule_config(self, name: str) -> RuleConfig | None:
        return next((r for r in self.config.rules if r.name == name), None)

    def health_policy(self, source: str) -> SourceHealthConfig:
        cfg = self.config.sources.get(source)
        return (
            cfg.health
            if cfg is not None and cfg.health is not None
            else (self.config.source_health)
        )

    def _make_alert(
        self,
        *,
        alert_id: str,
        kind: AlertKind,
        incident_id: str,
        rule: str,
        brand: str,
        level: str,
        previous_level: str | None,
        at: datetime,
        facts: tuple[Fact, ...],
        opened_at: datetime | None,
        ack: Ack | None,
        route: tuple[str, ...],
        peak_level: str | None = None,
    ) -> Alert:
        cfg = self._rule_config(rule)
        compiled = next((r for r in self.rules if r.name == rule), None)
        window = compiled.window if compiled is not None else timedelta(hours=1)
        brand_rule = rule != SOURCE_HEALTH
        start, end = at - window, at + BUCKET
        # an all-clear lists no angry posts: they are what the incident was, not what is
        show_top = brand_rule and kind != "resolved"
        top = self.store.top_mentions(brand, start, end, limit=5) if show_top else []
        explained = self.explain and brand_rule and kind in EXPLAINED
        explanation = (
            explain_spike(self.store, self.config, brand, at, window, self._features)
            if explained
            else None
        )
        categories = self.store.top_categories(brand, start, end) if brand_rule else []
        authors = self.store.top_authors(brand, start, end) if brand_rule else []
        step = TREND_STEP
        trend = (
            tuple(
                int(self.windows.value(brand, "negative", at - step * (i + 1), at - step * i))
                for i in reversed(range(TREND_POINTS))
            )
            if brand_rule
            else ()
        )
        alert = Alert(
            id=alert_id,
            incident_id=incident_id,
            kind=kind,
            rule=rule,
            brand=brand,
            level=level,
            previous_level=previous_level,
            at=at,
            facts=facts,
            top_mentions=tuple(top),
            drill=self.drill,
            opened_at=opened_at,
            ack=ack,
            route=route,
            categories=tuple(categories),
            authors=tuple(authors),
            trend=trend,
            trend_step=int(step.total_seconds()) if trend else 0,
            peak_level=peak_level,
            explanation=explanation,
        )
        template = (cfg.summary if cfg else None) or self.config.notifications.summary
        return replace(alert, summary=render_summary(alert, template))


def policy_of(config: Config) -> Policy:
    """The notification policy of ``config``. Its answers depend on ``config`` alone, so
    each is worked out once per (rule, level) and kept."""
    rule_configs: dict[str, RuleConfig] = {}
    for r in config.rules:
        rule_configs.setdefault(r.name, r)
    routes: dict[tuple[str, str], tuple[str, ...]] = {}
    escalations: dict[tuple[str, str], tuple[Step, ...]] = {}
    repeats: dict[str, timedelta | None] = {}

    def route(rule: str, level: str) -> tuple[str, ...]:
        found = routes.get((rule, level))
        if found is None:
            if rule == SOURCE_HEALTH:
                known = config.routes
                sinks = known.get(SOURCE_HEALTH) or known.get(level) or known.get("default")
            else:
                cfg = rule_configs.get(rule)
                sinks = cfg.route_for(level, config.routes) if cfg is not None else []
            found = routes[(rule, level)] = tuple(s for s in sinks or [] if s in config.sinks)
        return found

    def steps(rule: str, level: str) -> tuple[Step, ...]:
        found = escalations.get((rule, level))
        if found is None:
            cfg = rule_configs.get(rule)
            lvl = cfg.levels.get(level) if cfg is not None else None
            found = escalations[(rule, level)] = (
                ()
                if lvl is None
                else tuple(
                    Step(e.after, tuple(s for s in e.route if s in config.sinks))
                    for e in lvl.escalate
                )
            )
        return found

    def repeat(rule: str) -> timedelta | None:
        if rule not in repeats:
            cfg = rule_configs.get(rule)
            own = cfg.repeat_every if cfg is not None else None
            repeats[rule] = own or config.notifications.repeat_every
        return repeats[rule]

    inhibit = [
        InhibitRule(frozenset(i.source), frozenset(i.target)) for i in config.notifications.inhibit
    ]
    return Policy(route=route, steps=steps, repeat=repeat, inhibit=inhibit)


def _dump_times(times: Mapping[str, datetime]) -> str:
    return json.dumps({k: v.isoformat() for k, v in sorted(times.items())})
