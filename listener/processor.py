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

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from listener.collectors.base import Cursor
from listener.config.schema import ConditionConfig, Config, RuleConfig, SourceHealthConfig
from listener.errors import StoreError
from listener.matching.brands import BrandMatcher
from listener.metrics import Metrics
from listener.model import Alert, Mention, ScoredMention, Sentiment
from listener.rules.engine import (
    CompiledRule,
    EngineState,
    IncidentEvent,
    compile_rules,
    evaluate_rule,
    max_lookback,
)
from listener.rules.source_health import SOURCE_HEALTH, SourceStatus, evaluate_sources
from listener.scoring.base import Scorer
from listener.scoring.sentiment import VaderScorer
from listener.scoring.velocity import Sample, VelocityWindows
from listener.store import Store, reach_of

log = structlog.get_logger("listener.processor")

BUCKET = timedelta(minutes=1)
UNMATCHED = Sentiment("neutral", 0.0)


def condition_window(cond: ConditionConfig) -> timedelta:
    """The longest 'current' window a condition looks at (for picking top mentions)."""
    inner = [*getattr(cond, "conditions", ())]
    if getattr(cond, "condition", None) is not None:
        inner.append(cond.condition)  # type: ignore[union-attr]
    return max([getattr(cond, "window", timedelta(0)), *(condition_window(c) for c in inner)])


def rule_window(rule: RuleConfig) -> timedelta:
    return max(condition_window(level.when) for level in rule.levels.values()) or timedelta(hours=1)


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


def sample_of(s: ScoredMention) -> Sample:
    """What the velocity windows count of a scored mention.

    Story ids and crisis categories are not wired yet (``story=None``, ``categories=()``).
    """
    m = s.mention
    label = s.sentiment.label
    return Sample(
        negative=label == "negative",
        positive=label == "positive",
        compound=s.sentiment.compound,
        reach=reach_of(s),
        author=f"{m.source}:{m.author.handle}" if m.author.handle else None,
        source=m.source,
        language=m.language,
    )


@dataclass(frozen=True, slots=True)
class IngestResult:
    received: int
    new: int
    matched: int
    negative: int
    stale: int
    """Matched mentions older than the windows' retention: stored, never counted."""


class Processor:
    """The pure core wired to the store. Build once; :meth:`reconfigure` on reload."""

    def __init__(
        self,
        config: Config,
        store: Store,
        metrics: Metrics,
        *,
        scorer: Scorer | None = None,
        drill: bool = False,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.scorer: Scorer = scorer if scorer is not None else VaderScorer()
        self.drill = drill
        self._lock = threading.RLock()
        self.config = config
        self.matcher = BrandMatcher(config.brands)
        self.rules = compile_rules(config)
        self.windows = windows_for(self.rules)
        self.state = EngineState()
        self.quiet_until: dict[str, datetime] = {}
        self._load_state()

    def _load_state(self) -> None:
        raw_quiet = self.store.load_kv("quiet_until")
        self.quiet_until = {
            brand: datetime.fromisoformat(at) for brand, at in json.loads(raw_quiet or "{}").items()
        }
        self.windows = windows_for(self.rules)
        self.windows.load(self.store.load_buckets())
        self.windows.drain_dirty()
        raw = self.store.load_engine_state()
        self.state = EngineState.from_json(raw) if raw else EngineState()

    def reconfigure(self, config: Config) -> None:
        """Apply a new config; window counts and open incidents are kept."""
        with self._lock:
            matcher = BrandMatcher(config.brands)
            rules = compile_rules(config)
            self.config, self.matcher, self.rules = config, matcher, rules
            self.windows.retention = retention_for(rules)
            self.windows.distinct_retention = distinct_retention_for(rules)

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
        with self._lock:
            batch: dict[tuple[str, str], Mention] = {}
            for m in mentions:
                batch.setdefault(m.key, m)
            seen = self.store.seen(batch) if batch else set()
            fresh = [m for k, m in batch.items() if k not in seen]
            oldest = now - self.windows.retention
            quiet_until = dict(self.quiet_until)
            span = self.quiet_span()
            scored: list[ScoredMention] = []
            matched = negative = stale = 0
            for m in fresh:
                text = f"{m.title}. {m.text}" if m.title and m.title not in m.text else m.text
                brands = self.matcher.match(text)
                sentiment = self.scorer.score(text) if brands else UNMATCHED
                s = ScoredMention(m, brands, sentiment)
                scored.append(s)
                if not brands:
                    continue
                matched += 1
                negative += s.negative
                for brand in brands:
                    self.metrics.matches.labels(brand=brand).inc()
                    self.metrics.scored.labels(brand=brand, sentiment=sentiment.label).inc()
                at = min(m.created_at, now)
                if at < oldest:
                    stale += 1
                    continue
                for brand in brands:
                    # history is quiet until it has left the longest rule window
                    if backfill and quiet_until.get(brand, now) < at + span:
                        quiet_until[brand] = at + span
                    self.windows.add(brand, at, sample_of(s))
            try:
                self.store.commit(
                    now=now,
                    mentions=scored,
                    cursor=(source, cursor) if cursor is not None else None,
                    buckets=self.windows.drain_dirty(),
                    kv={"quiet_until": _dump_times(quiet_until)}
                    if quiet_until != self.quiet_until
                    else None,
                )
            except StoreError:
                self._load_state()  # memory must not run ahead of the store
                raise
            self.quiet_until = quiet_until
            self.metrics.mentions_collected.labels(source=source).inc(len(mentions))
            self.metrics.mentions_new.labels(source=source).inc(len(fresh))
            return IngestResult(len(mentions), len(fresh), matched, negative, stale)

    # ------------------------------------------------------------------ evaluate

    def quiet_span(self) -> timedelta:
        """How long a backfilled brand cannot open incidents: the longest rule window."""
        windows = [rule_window(r) for r in self.config.rules]
        return max(windows, default=timedelta(0))

    def evaluate(
        self, now: datetime, sources: Mapping[str, SourceStatus] | None = None
    ) -> list[Alert]:
        """Run every rule at ``now`` (and the source-health check when ``sources`` is
        given); persist state, events and routed alerts atomically.

        A rule that raises is logged and counted and the others still run.
        """
        with self._lock:
            brands = self.config.brand_names()
            state = self.state
            quiet = {b for b, until in self.quiet_until.items() if until > now}
            events: list[IncidentEvent] = []
            if sources:
                policies = {name: self.health_policy(name) for name in sources}
                state, produced = evaluate_sources(sources, policies, state, now)
                events.extend(produced)
            for rule in self.rules:
                try:
                    state, produced = evaluate_rule(rule, brands, self.windows, state, now, quiet)
                except Exception as exc:
                    self.metrics.error("evaluate", type(exc).__name__)
                    log.error(
                        "rule_failed", rule=rule.name, error_type=type(exc).__name__, error=str(exc)
                    )
                    continue
                self.metrics.evaluations.labels(rule=rule.name).inc()
                events.extend(produced)
            outbox = [(self._alert(ev), self.route(ev)) for ev in events]
            alerts = [a for a, _ in outbox]
            pruned = self.windows.prune(now)
            cutoff = int((now - self.windows.retention).timestamp()) if pruned else None
            try:
                self.store.commit(
                    now=now,
                    engine_state=state.to_json(),
                    events=events,
                    outbox=[(a, sinks) for a, sinks in outbox if sinks],
                    buckets=self.windows.drain_dirty(),
                    prune_buckets_before=cutoff,
                )
            except StoreError:
                self._load_state()
                raise
            self.state = state
            for ev in events:
                self.metrics.incident_events.labels(
                    rule=ev.rule, brand=ev.brand, kind=ev.kind
                ).inc()
            self._update_open_gauge()
            return alerts

    def _update_open_gauge(self) -> None:
        self.metrics.incidents_open.clear()
        for inc in self.state.open_incidents():
            self.metrics.incidents_open.labels(
                rule=inc.rule, brand=inc.brand, level=inc.level
            ).inc()

    def _rule_config(self, name: str) -> RuleConfig | None:
        return next((r for r in self.config.rules if r.name == name), None)

    def health_policy(self, source: str) -> SourceHealthConfig:
        cfg = self.config.sources.get(source)
        return (
            cfg.health
            if cfg is not None and cfg.health is not None
            else (self.config.source_health)
        )

    def route(self, event: IncidentEvent) -> list[str]:
        """The sinks an event's alert goes to: its level's route; the peak level's route
        for de-escalations and the all-clear, so whoever was paged hears it is over.
        Source-health alerts use ``routes.source-health``, else their level's route."""
        if event.rule == SOURCE_HEALTH:
            routes = self.config.routes
            sinks = routes.get(SOURCE_HEALTH) or routes.get(event.level) or routes.get("default")
            return [s for s in sinks or [] if s in self.config.sinks]
        rule = self._rule_config(event.rule)
        if rule is None:
            return []
        level = event.peak_level if event.kind in ("deescalated", "resolved") else event.level
        return [s for s in rule.route_for(level, self.config.routes) if s in self.config.sinks]

    def _alert(self, ev: IncidentEvent) -> Alert:
        rule = self._rule_config(ev.rule)
        window = rule_window(rule) if rule else timedelta(hours=1)
        top = (
            self.store.top_mentions(ev.brand, ev.at - window, ev.at + BUCKET, limit=5)
            if ev.rule != SOURCE_HEALTH
            else []
        )
        return Alert(
            id=ev.alert_id,
            incident_id=ev.incident_id,
            kind=ev.kind,
            rule=ev.rule,
            brand=ev.brand,
            level=ev.level,
            previous_level=ev.previous_level,
            at=ev.at,
            facts=ev.facts,
            top_mentions=tuple(top),
            drill=self.drill,
        )


def _dump_times(times: Mapping[str, datetime]) -> str:
    return json.dumps({k: v.isoformat() for k, v in sorted(times.items())})
