"""What a post-incident report shows, gathered from the store into one frozen value.

:func:`gather` is the only function here that reads (through the store's read methods);
every other function is a pure function of rows and ``now``, so the numbers in a report
can be tested without a database, a clock or a chart.

The honest parts, spelled out because a review leans on them:

* **Baseline.** For each chart bucket, the mean number of mentions per bucket over the
  :data:`BASELINE_WINDOW` *before* that bucket (trailing, no look-ahead), counting only
  buckets from the brand's first stored mention on. It is left out until
  :data:`MIN_HISTORY` of stored history precedes the bucket. A listener that was not
  running looks like a quiet brand: the store cannot tell the two apart.
* **Spike.** A bucket is above baseline when its mentions exceed both twice the
  baseline and the baseline plus three standard deviations of the same trailing
  buckets, and number at least :data:`MIN_SPIKE` (so a quiet brand's one-off post is
  not a spike). The spike start is the first bucket of the unbroken run of such
  buckets that reaches the first alert's bucket; with none, no detection time is given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from listener.config.duration import format_duration
from listener.config.schema import Config
from listener.incidents import NotFound
from listener.model import Ack, AuthorRef, Explanation
from listener.processor import explain_spike, rule_window
from listener.rules.source_health import SOURCE_HEALTH
from listener.store import (
    EVIDENCE_AFTER,
    EVIDENCE_BEFORE,
    IncidentEventRecord,
    IncidentRecord,
    NoticeRecord,
    OutboxRecord,
    SourceCount,
    Store,
    StoryRecord,
)
from listener.store.incidents import NoteRecord

BASELINE_WINDOW = timedelta(hours=24)
"""How far back the baseline of each bucket reads."""
LOOKBACK = EVIDENCE_BEFORE - BASELINE_WINDOW
"""The chart starts this long before the incident opened (6 h)."""
AFTER = EVIDENCE_AFTER
"""... and ends this long after it resolved (2 h), or at ``now``."""
MIN_HISTORY = timedelta(hours=1)
"""The baseline is drawn once this much stored history precedes a bucket."""
MIN_SPIKE = 3
"""A bucket needs at least this many mentions to count as a spike."""
DEFAULT_LEAD = timedelta(hours=1)
"""The mentions period starts this long before opening when the rule is unknown."""
STEPS = tuple(timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440))
MAX_BUCKETS = 150
TOP_STORIES = 10
TOP_AUTHORS = 5

Outcome = Literal["delivered", "failed", "pending", "muted"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One step of the timeline: the brand's mentions written in [start, start + step)."""

    start: datetime
    mentions: int
    negative: int
    sentiment: float | None
    """Mean sentiment (compound, -1..1) of the bucket's mentions; None when empty."""
    baseline: float | None
    """Trailing mean of mentions per bucket (see the module docstring)."""
    spread: float | None
    """Standard deviation of the same trailing buckets."""

    @property
    def above_baseline(self) -> bool:
        """True when this bucket is a spike against its own baseline."""
        if self.baseline is None or self.spread is None:
            return False
        threshold = max(2 * self.baseline, self.baseline + 3 * self.spread)
        return self.mentions >= MIN_SPIKE and self.mentions > threshold


@dataclass(frozen=True, slots=True)
class LevelSpan:
    """A stretch of time the incident spent at one level; ``end`` None: still there."""

    level: str
    start: datetime
    end: datetime | None
    entered_by: str
    """The event that entered it: opened, escalated or deescalated."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert to one sink (or one muted alert), with what became of it."""

    alert_id: str
    kind: str
    level: str
    raised_at: datetime
    sink: str | None
    outcome: Outcome
    finished_at: datetime | None
    """Delivered or given up at; None while pending or when muted."""
    attempts: int
    detail: str | None
    """The last error (failed, pending retries) or why it was muted."""

    @property
    def latency(self) -> timedelta | None:
        """From raising the alert to its delivery (or failure)."""
        return None if self.finished_at is None else self.finished_at - self.raised_at


@dataclass(frozen=True, slots=True)
class Detection:
    """How long the spike ran before anyone was told."""

    spike_at: datetime | None
    first_alert_at: datetime | None
    """The first alert raised to a sink (not muted)."""
    first_delivered_at: datetime | None
    note: str
    """How the numbers were found, or why one is missing."""

    @property
    def lead(self) -> timedelta | None:
        if self.spike_at is None or self.first_alert_at is None:
            return None
        return self.first_alert_at - self.spike_at


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a post-incident report shows, independent of its format."""

    incident: IncidentRecord
    now: datetime
    """The report's "as of" time (an open incident is charted up to it)."""
    drill: bool
    description: str
    levels: tuple[str, ...]
    """Severity levels, lowest first."""
    events: tuple[IncidentEventRecord, ...]
    spans: tuple[LevelSpan, ...]
    alerts: tuple[AlertRow, ...]
    ack: Ack | None
    chart_start: datetime
    chart_end: datetime
    step: timedelta
    buckets: tuple[Bucket, ...]
    data_start: datetime | None
    """The brand's first stored mention in the chart's reach (None: none stored)."""
    detection: Detection
    period_start: datetime
    period_end: datetime
    """The mentions below are those of the brand written in [period_start, period_end)."""
    sources: tuple[SourceCount, ...]
    stories: tuple[StoryRecord, ...]
    """The most mentioned stories (a post with its reposts, quotes and near copies)."""
    authors: tuple[AuthorRef, ...]
    categories: tuple[tuple[str, int], ...]
    brand_incident: bool = True
    """False for a source-health incident (its "brand" is a source: no mentions)."""
    explanation: Explanation | None = None
    """Why it spiked when it opened (brand incidents with stored mentions)."""
    notes: tuple[NoteRecord, ...] = ()
    """What people put on the timeline: notes and assignments, oldest first."""

    @property
    def end(self) -> datetime:
        return self.incident.resolved_at or self.now

    @property
    def duration(self) -> timedelta:
        return self.end - self.incident.opened_at

    @property
    def time_to_ack(self) -> timedelta | None:
        return None if self.ack is None else self.ack.at - self.incident.opened_at

    @property
    def mentions(self) -> int:
        return sum(s.mentions for s in self.sources)

    @property
    def negative(self) -> int:
        return sum(s.negative for s in self.sources)

    def rank(self, level: str) -> int:
        """0 for the lowest level; unknown levels rank highest."""
        return self.levels.index(level) if level in self.levels else len(self.levels)


# --------------------------------------------------------------------------- pure parts


def choose_step(span: timedelta) -> timedelta:
    """The smallest bucket size that draws ``span`` in at most :data:`MAX_BUCKETS` bars."""
    for step in STEPS:
        if span / step <= MAX_BUCKETS:
            return step
    return STEPS[-1]


def floor_time(when: datetime, step: timedelta) -> datetime:
    """``when`` rounded down to a multiple of ``step`` since the Unix epoch."""
    size = step.total_seconds()
    return datetime.fromtimestamp(math.floor(when.timestamp() / size) * size, UTC)


def chart_window(
    incident: IncidentRecord, now: datetime, known_until: datetime | None = None
) -> tuple[datetime, datetime, timedelta]:
    """Chart start, end and bucket size: from :data:`LOOKBACK` before opening to
    :data:`AFTER` after resolution, or to ``now`` while open, both aligned to the step.

    A resolved incident's chart never runs past what is known: the later of ``now`` and
    ``known_until`` (the last stored mention; a drill's state lies in simulated time).
    """
    start = incident.opened_at - LOOKBACK
    if incident.resolved_at is not None:
        known = max(now, known_until or now, incident.resolved_at)
        end = min(incident.resolved_at + AFTER, known)
    else:
        end = now
    end = max(end, incident.opened_at + timedelta(minutes=1))
    step = choose_step(end - start)
    start = floor_time(start, step)
    end = floor_time(end - timedelta(microseconds=1), step) + step
    return start, end, step


def build_buckets(
    rows: Iterable[tuple[datetime, int, int, float]],
    start: datetime,
    end: datetime,
    step: timedelta,
    data_start: datetime | None,
) -> tuple[Bucket, ...]:
    """Dense buckets over [start, end) with their trailing baselines.

    ``rows`` are ``(bucket start, mentions, negative, sentiment sum)`` for non-empty
    buckets from ``start - BASELINE_WINDOW`` on (the history the baselines read).
    """
    back = int(BASELINE_WINDOW / step)
    first = start - step * back
    total = back + int((end - start) / step)
    counts = [0] * total
    negatives = [0] * total
    sums = [0.0] * total
    for at, n, neg, compound in rows:
        i = round((at - first) / step)
        if 0 <= i < total:
            counts[i] += n
            negatives[i] += neg
            sums[i] += compound
    known_from = 0 if data_start is None else max(0, math.floor((data_start - first) / step))
    need = max(3, math.ceil(MIN_HISTORY / step))
    out = []
    for i in range(back, total):
        history = counts[max(i - back, known_from) : i]
        baseline = spread = None
        if data_start is not None and len(history) >= need:
            baseline = sum(history) / len(history)
            spread = math.sqrt(sum((c - baseline) ** 2 for c in history) / len(history))
        out.append(
            Bucket(
                start=first + step * i,
                mentions=counts[i],
                negative=negatives[i],
                sentiment=sums[i] / counts[i] if counts[i] else None,
                baseline=baseline,
                spread=spread,
            )
        )
    return tuple(out)


def level_spans(events: Sequence[IncidentEventRecord]) -> tuple[LevelSpan, ...]:
    """When each level was entered and left, from the incident's events in order."""
    spans: list[LevelSpan] = []
    for ev in events:
        if spans and spans[-1].end is None:
            last = spans[-1]
            spans[-1] = LevelSpan(last.level, last.start, ev.at, last.entered_by)
        if ev.kind != "resolved":
            spans.append(LevelSpan(ev.level, ev.at, None, ev.kind))
    return tuple(spans)


def alert_rows(
    notices: Sequence[NoticeRecord], outbox: Sequence[OutboxRecord]
) -> tuple[AlertRow, ...]:
    """One row per alert and sink it was sent to, and one per muted alert, by time."""
    by_alert: dict[tuple[str, str], OutboxRecord] = {(o.alert_id, o.sink): o for o in outbox}
    rows: list[AlertRow] = []
    for n in notices:
        if n.muted or not n.sinks:
            rows.append(
                AlertRow(n.alert_id, n.kind, n.level, n.at, None, "muted", None, 0, n.muted)
            )
            continue
        for sink in n.sinks:
            o = by_alert.get((n.alert_id, sink))
            if o is None:  # pragma: no cover - notices and outbox rows commit together
                continue
            outcome: Outcome = (
                "delivered"
                if o.status == "delivered"
                else "failed"
                if o.status == "failed"
                else "muted"  # settled undelivered, e.g. by `drill --quiet-sinks`
                if o.status == "muted"
                else "pending"
            )
            rows.append(
                AlertRow(
                    alert_id=n.alert_id,
                    kind=n.kind,
                    level=n.level,
                    raised_at=n.at,
                    sink=sink,
                    outcome=outcome,
                    finished_at=o.delivered_at or o.failed_at,
                    attempts=o.attempts,
                    detail=o.last_error,
                )
            )
    return tuple(rows)


def detect(buckets: Sequence[Bucket], alerts: Sequence[AlertRow], step: timedelta) -> Detection:
    """When the volume spike began, and how long until the first alert (module docstring)."""
    sent = [a for a in alerts if a.outcome != "muted"]
    first_alert = min((a.raised_at for a in sent), default=None)
    first_delivered = min(
        (a.finished_at for a in sent if a.outcome == "delivered" and a.finished_at),
        default=None,
    )
    if first_alert is None:
        return Detection(None, None, None, "no alert was sent for this incident")
    at = next((i for i, b in enumerate(buckets) if b.start + step > first_alert), None)
    if at is None:
        return Detection(None, first_alert, first_delivered, "the first alert is outside the chart")
    # the alert may come at the very start of a bucket: the spike ran up to the one before
    end = next((i for i in (at, at - 1) if i >= 0 and buckets[i].above_baseline), None)
    if end is None:
        return Detection(
            None,
            first_alert,
            first_delivered,
            "mentions were not above the baseline when the first alert was raised, so "
            "no spike start is given (the rule fired on something else, e.g. negative "
            "share or a slow rise)",
        )
    start = end
    while start > 0 and buckets[start - 1].above_baseline:
        start -= 1
    spike = buckets[start].start
    return Detection(
        spike,
        first_alert,
        first_delivered,
        "spike start: the first bucket of the unbroken run above the baseline that leads "
        f"to the first alert (to within one {format_duration(step)} bucket)",
    )


def severity_order(
    events: Sequence[IncidentEventRecord], configured: Sequence[str] = ()
) -> tuple[str, ...]:
    """Levels lowest first: the rule's configured order where known, then each level
    the events show, placed above the one it escalated from."""
    order = list(configured)
    for ev in events:
        if ev.level in order:
            continue
        if ev.kind == "escalated" and ev.previous_level in order:
            order.insert(order.index(ev.previous_level) + 1, ev.level)
        elif ev.kind == "deescalated" and ev.previous_level in order:
            order.insert(order.index(ev.previous_level), ev.level)
        else:
            order.append(ev.level)
    return tuple(order)


# --------------------------------------------------------------------------- the reads


def resolve(store: Store, incident_id: str) -> IncidentRecord:
    """The incident with this id; :class:`NotFound` naming close matches otherwise."""
    record = store.incident_log.get(incident_id)
    if record is not None:
        return record
    similar = store.incident_log.ids(incident_id, limit=4)
    hint = f" (did you mean {', '.join(similar)}?)" if similar else ""
    raise NotFound(f"no incident {incident_id!r}{hint}; `listener incidents` lists them")


def gather(
    store: Store,
    incident_id: str,
    now: datetime,
    config: Config | None = None,
    *,
    explain: bool = True,
) -> ReportData:
    """Read one incident's report from the store, as of ``now`` (or of the incident's
    last change when that is later: a drill's incidents lie in simulated time).

    ``config`` (optional) supplies the rule's level order, description and window.
    ``explain=False`` leaves the spike explanation out (what only draws the chart, which
    does not show it, need not read the mentions for it).
    """
    incident = resolve(store, incident_id)
    now = max(now, incident.updated_at)
    rule_cfg = next((r for r in config.rules if r.name == incident.rule), None) if config else None
    events = tuple(store.incident_log.events(incident.id))
    alerts = alert_rows(
        store.incident_log.notices(incident.id), outbox := store.outbox.deliveries(incident.id)
    )
    levels = severity_order(events, list(rule_cfg.levels) if rule_cfg else ())
    brand_incident = incident.rule != SOURCE_HEALTH
    brand = incident.brand
    known_until = None
    if brand_incident and incident.resolved_at is not None:
        after = incident.resolved_at + AFTER
        known_until = store.mentions.last_at(brand, incident.opened_at, after)
    chart_start, chart_end, step = chart_window(incident, now, known_until)
    data_start = None
    rows: list[tuple[datetime, int, int, float]] = []
    if brand_incident:
        history = chart_start - BASELINE_WINDOW
        data_start = store.mentions.first_at(brand, history, chart_end)
        rows = store.mentions.series(brand, history, chart_end, step)
    buckets = build_buckets(rows, chart_start, chart_end, step, data_start)
    detection = detect(buckets, alerts, step)
    lead = rule_window(rule_cfg) if rule_cfg else DEFAULT_LEAD  # what its alerts look at
    period_start = incident.opened_at - lead
    if detection.spike_at is not None:
        period_start = min(period_start, detection.spike_at)
    period_end = (incident.resolved_at or now) + timedelta(microseconds=1)
    return ReportData(
        incident=incident,
        now=now,
        drill=any(o.drill for o in outbox),
        description=rule_cfg.description.strip() if rule_cfg else "",
        levels=levels,
        events=events,
        spans=level_spans(events),
        alerts=alerts,
        ack=store.ack_log.get([incident.id]).get(incident.id),
        chart_start=chart_start,
        chart_end=chart_end,
        step=step,
        buckets=buckets,
        data_start=data_start,
        detection=detection,
        period_start=period_start,
        period_end=period_end,
        sources=tuple(store.mentions.source_counts(brand, period_start, period_end))
        if brand_incident
        else (),
        stories=tuple(store.mentions.stories(brand, period_start, period_end, TOP_STORIES))
        if brand_incident
        else (),
        authors=tuple(store.mentions.top_authors(brand, period_start, period_end, TOP_AUTHORS))
        if brand_incident
        else (),
        categories=tuple(store.mentions.top_categories(brand, period_start, period_end))
        if brand_incident
        else (),
        brand_incident=brand_incident,
        explanation=explain_spike(store, config, brand, incident.opened_at, lead)
        if brand_incident and explain
        else None,
        notes=tuple(store.notes.of(incident.id)),
    )
