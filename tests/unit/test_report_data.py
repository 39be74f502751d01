"""The numbers of a post-incident report: buckets, baseline, levels, alerts, detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.incidents import NotFound
from listener.model import Fact
from listener.report.data import (
    AFTER,
    BASELINE_WINDOW,
    LOOKBACK,
    AlertRow,
    Bucket,
    build_buckets,
    chart_window,
    choose_step,
    detect,
    gather,
    level_spans,
    severity_order,
)
from listener.report.data import (
    alert_rows as make_alert_rows,
)
from listener.store import (
    EVIDENCE_AFTER,
    EVIDENCE_BEFORE,
    IncidentEventRecord,
    IncidentRecord,
    NoticeRecord,
    OutboxRecord,
    Store,
)
from tests.support.incident_state import T0, build_state, config

STEP = timedelta(minutes=5)


def event(seq: int, kind: str, level: str, at: datetime, prev: str | None = None):
    return IncidentEventRecord("inc", seq, kind, level, prev, at, (Fact("n", seq),))


def incident(opened: datetime, resolved: datetime | None) -> IncidentRecord:
    return IncidentRecord(
        "inc", "neg", "Acme", "resolved" if resolved else "open", "watch", "crisis",
        opened, resolved or opened, resolved,
    )  # fmt: skip


def test_evidence_kept_by_retention_covers_the_chart_and_its_baseline() -> None:
    """Pruning keeps every mention a report reads: the look-back, its baseline, the tail."""
    assert LOOKBACK + BASELINE_WINDOW <= EVIDENCE_BEFORE
    assert AFTER <= EVIDENCE_AFTER
    assert timedelta(hours=1) <= LOOKBACK


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (timedelta(hours=2), timedelta(minutes=1)),
        (timedelta(hours=8), timedelta(minutes=5)),
        (timedelta(hours=20), timedelta(minutes=10)),
        (timedelta(days=10), timedelta(hours=2)),
        (timedelta(days=400), timedelta(days=1)),
    ],
)
def test_step_keeps_the_chart_to_a_readable_number_of_bars(
    span: timedelta, step: timedelta
) -> None:
    """The bucket is the smallest round size giving at most 150 bars."""
    assert choose_step(span) == step


def test_chart_window_runs_from_lookback_to_after_resolution_within_what_is_known() -> None:
    """Six hours before opening to two after resolving, aligned; never past what is known."""
    opened = datetime(2026, 3, 2, 9, 2, tzinfo=UTC)
    resolved = opened + timedelta(minutes=42)
    start, end, step = chart_window(incident(opened, resolved), now=resolved + timedelta(days=1))
    assert step == STEP
    assert start == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 2, 11, 45, tzinfo=UTC)
    _, end, _ = chart_window(
        incident(opened, resolved), now=resolved, known_until=resolved + timedelta(minutes=30)
    )
    assert end == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    _, end, _ = chart_window(incident(opened, None), now=opened + timedelta(hours=1))
    assert end == datetime(2026, 3, 2, 10, 5, tzinfo=UTC)


def test_baseline_is_a_trailing_mean_with_no_look_ahead() -> None:
    """Each bucket's baseline is the mean of the buckets before it, never itself or later."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    first = start - BASELINE_WINDOW
    rows = [(first + STEP * i, 2, 1, -0.5) for i in range(int(BASELINE_WINDOW / STEP))]
    rows.append((start + STEP * 2, 50, 40, -40.0))  # the spike
    buckets = build_buckets(rows, start, start + STEP * 5, STEP, data_start=first)
    assert [b.mentions for b in buckets] == [0, 0, 50, 0, 0]
    assert [b.negative for b in buckets][2] == 40
    assert buckets[2].sentiment == pytest.approx(-0.8)
    assert buckets[0].sentiment is None
    n = int(BASELINE_WINDOW / STEP)
    assert buckets[0].baseline == pytest.approx(2.0)
    assert buckets[2].baseline == pytest.approx((2 * (n - 2)) / n)  # not its own 50
    assert buckets[3].baseline == pytest.approx((2 * (n - 3) + 50) / n)
    assert buckets[2].above_baseline
    assert not buckets[3].above_baseline


def test_baseline_waits_for_an_hour_of_stored_history() -> None:
    """Before the first stored mention there is no history: no baseline for an hour."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    rows = [(start + STEP * i, 1, 0, 0.0) for i in range(20)]
    buckets = build_buckets(rows, start, start + STEP * 20, STEP, data_start=start)
    assert all(b.baseline is None for b in buckets[:12])
    assert buckets[12].baseline == pytest.approx(1.0)
    assert all(b.baseline is None for b in build_buckets([], start, start + STEP, STEP, None))


def test_level_spans_say_when_each_level_was_entered_and_left() -> None:
    """Opened, escalated, de-escalated, resolved: three spans, the last one closed."""
    t = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    events = [
        event(1, "opened", "watch", t),
        event(2, "escalated", "crisis", t + timedelta(minutes=5), "watch"),
        event(3, "deescalated", "watch", t + timedelta(minutes=20), "crisis"),
        event(4, "resolved", "watch", t + timedelta(minutes=40), "watch"),
    ]
    spans = level_spans(events)
    assert [(s.level, s.entered_by) for s in spans] == [
        ("watch", "opened"),
        ("crisis", "escalated"),
        ("watch", "deescalated"),
    ]
    assert spans[1].end == t + timedelta(minutes=20)
    assert spans[-1].end == t + timedelta(minutes=40)
    assert level_spans(events[:2])[-1].end is None


def test_severity_order_follows_the_rule_or_the_escalations() -> None:
    """The configured order wins; without it an escalation ranks its level above."""
    t = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    events = [
        event(1, "opened", "elevated", t),
        event(2, "escalated", "crisis", t, "elevated"),
        event(3, "deescalated", "watch", t, "elevated"),
    ]
    assert severity_order(events) == ("watch", "elevated", "crisis")
    assert severity_order(events, ["watch", "elevated", "crisis", "sev0"]) == (
        "watch",
        "elevated",
        "crisis",
        "sev0",
    )


def test_alert_rows_join_notices_with_what_each_sink_did() -> None:
    """One row per alert and sink: delivered, failed with its error, pending, muted."""
    t = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def out(alert: str, sink: str, status: str, error: str | None = None) -> OutboxRecord:
        return OutboxRecord(
            alert, sink, status, 2, error, t,
            t + timedelta(seconds=3) if status == "delivered" else None,
            t + timedelta(minutes=9) if status == "failed" else None,
            False,
        )  # fmt: skip

    notices = [
        NoticeRecord("a#1", "opened", "watch", t, ("ops", "pager"), None),
        NoticeRecord("a#2", "reminder", "watch", t, ("ops",), None),
        NoticeRecord("a#3", "escalated", "crisis", t, (), "silenced sil-1"),
    ]
    outbox = [
        out("a#1", "ops", "delivered"),
        out("a#1", "pager", "failed", "HTTP 500"),
        out("a#2", "ops", "pending", "timeout"),
    ]
    rows = make_alert_rows(notices, outbox)
    assert [(r.sink, r.outcome, r.detail) for r in rows] == [
        ("ops", "delivered", None),
        ("pager", "failed", "HTTP 500"),
        ("ops", "pending", "timeout"),
        (None, "muted", "silenced sil-1"),
    ]
    assert rows[0].latency == timedelta(seconds=3)
    assert rows[1].latency == timedelta(minutes=9)
    assert rows[2].latency is None


def _bucket(i: int, mentions: int, start: datetime) -> Bucket:
    return Bucket(start + STEP * i, mentions, 0, None, 2.0, 1.0)


def test_detection_runs_back_from_the_first_alert_over_the_spike() -> None:
    """The spike starts at the first bucket of the unbroken run above baseline."""
    t = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    buckets = [_bucket(i, n, t) for i, n in enumerate([2, 9, 2, 8, 12, 30, 40, 3])]
    alert = AlertRow("a#1", "opened", "watch", t + STEP * 5, "ops", "delivered",
                     t + STEP * 5 + timedelta(seconds=4), 1, None)  # fmt: skip
    muted = AlertRow("a#0", "opened", "watch", t, None, "muted", None, 0, "silenced")
    found = detect(buckets, [muted, alert], STEP)
    assert found.spike_at == t + STEP * 3
    assert found.first_alert_at == t + STEP * 5
    assert found.first_delivered_at == t + STEP * 5 + timedelta(seconds=4)
    assert found.lead == STEP * 2


def test_detection_gives_no_spike_when_volume_was_not_above_baseline() -> None:
    """A rule that fired on something other than volume gets no invented spike time."""
    t = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    buckets = [_bucket(i, 2, t) for i in range(6)]
    alert = AlertRow("a#1", "opened", "watch", t + STEP * 4, "ops", "pending", None, 0, None)
    found = detect(buckets, [alert], STEP)
    assert found.spike_at is None
    assert found.lead is None
    assert "not above the baseline" in found.note
    assert detect(buckets, [], STEP).note == "no alert was sent for this incident"


def test_gather_reads_a_real_incident_from_the_store(tmp_path: Path) -> None:
    """Through the real processor and store: lifecycle, alerts, ack, detection, mentions."""
    incident_id, end = build_state(tmp_path / "s.db")
    store = Store.open(tmp_path / "s.db")
    try:
        data = gather(store, incident_id, end + timedelta(days=1), config())
        chart_only = gather(store, incident_id, end + timedelta(days=1), config(), explain=False)
        with pytest.raises(NotFound, match="did you mean"):
            gather(store, incident_id[:10], end, config())
    finally:
        store.close()
    assert data.incident.id == incident_id
    assert data.explanation is not None  # why it spiked, for the report's table
    assert chart_only.explanation is None  # the console's chart reads no mentions for it
    assert data.levels == ("watch", "crisis")
    assert data.description == "Complaints about Acme piling up."
    assert [s.level for s in data.spans] == ["watch", "crisis", "watch"]
    assert data.ack is not None
    assert data.time_to_ack == timedelta(minutes=5)
    outcomes = {(a.sink, a.outcome) for a in data.alerts}
    assert outcomes == {("ops", "delivered"), ("pager", "failed")}
    assert data.detection.spike_at == T0
    assert data.detection.lead == timedelta(minutes=2)
    assert data.chart_start == T0 - timedelta(hours=6)
    assert data.chart_end == datetime(2026, 3, 2, 11, 45, tzinfo=UTC)  # resolved + 2 h
    assert sum(b.mentions for b in data.buckets) > 60
    assert any(b.baseline is not None for b in data.buckets)
    story = data.stories[0]  # the 60 complaints are copies of one another: one story
    assert (story.mentions, story.negative, story.categories) == (60, 60, ("outage",))
    assert story.lead.id == "a59"  # the copy that travelled furthest
    assert (story.first_at, story.last_at) == (T0, T0 + timedelta(minutes=19))
    rest = [(s.lead.id, s.mentions, s.negative) for s in data.stories[1:]]
    assert rest == [("evil", 1, 1), ("q47", 1, 0)]  # then by reach; a quiet post before it
    assert data.categories[0][0] == "outage"
    assert {s.source for s in data.sources} == {"news", "social", "blog"}
    assert data.negative == 61
    assert {a.role for a in data.authors} == {"detractor", "amplifier"}
