"""Bucketed velocity counters: counts, pruning, persistence rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.rules.conditions import CountView
from listener.scoring.velocity import VelocityWindows

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def test_implements_count_view() -> None:
    """VelocityWindows can be used wherever a CountView is expected."""
    view: CountView = VelocityWindows(retention=timedelta(hours=1))
    assert view.count("acme", "total", T0, T0 + MIN) == 0


def test_counts_total_and_negative_by_bucket() -> None:
    """Mentions land in the bucket of their time; ranges sum buckets starting in [start, end)."""
    w = VelocityWindows(retention=timedelta(hours=1))
    w.add("acme", T0 + timedelta(seconds=5), negative=True)
    w.add("acme", T0 + timedelta(seconds=59), negative=False)
    w.add("acme", T0 + timedelta(minutes=1, seconds=30), negative=True)
    w.add("globex", T0, negative=True)
    assert w.count("acme", "total", T0, T0 + 2 * MIN) == 3
    assert w.count("acme", "negative", T0, T0 + 2 * MIN) == 2
    # the bucket at T0 starts before T0+1s, so it is not counted
    assert w.count("acme", "total", T0 + timedelta(seconds=1), T0 + 2 * MIN) == 1
    # the bucket at T0+1m starts before T0+1m+1s, so it is counted whole
    assert w.count("acme", "total", T0, T0 + MIN + timedelta(seconds=1)) == 3
    assert w.count("acme", "total", T0, T0 + MIN) == 2
    assert w.count("acme", "total", T0 + MIN, T0) == 0
    assert w.count("nobody", "total", T0, T0 + MIN) == 0
    assert w.brands() == {"acme", "globex"}


def test_other_timezones_and_naive_datetimes_are_utc_instants() -> None:
    """An aware time in another zone counts at its UTC instant; naive times are UTC."""
    w = VelocityWindows(retention=timedelta(hours=1))
    w.add("acme", datetime(2026, 3, 2, 10, 0, 30, tzinfo=timezone(timedelta(hours=1))), True)
    assert w.count("acme", "negative", datetime(2026, 3, 2, 9, 0), datetime(2026, 3, 2, 9, 1)) == 1


def test_bucket_must_be_whole_seconds() -> None:
    """Bucket sizes that are not positive whole seconds are rejected, as is zero retention."""
    with pytest.raises(ValueError, match="bucket"):
        VelocityWindows(bucket=timedelta(milliseconds=1500))
    with pytest.raises(ValueError, match="bucket"):
        VelocityWindows(bucket=timedelta(0))
    with pytest.raises(ValueError, match="retention"):
        VelocityWindows(retention=timedelta(0))


def test_prune_drops_buckets_older_than_retention() -> None:
    """prune drops buckets starting before now - retention, returns their keys, not dirty."""
    w = VelocityWindows(retention=timedelta(minutes=10))
    for minute in range(15):
        w.add("acme", T0 + minute * MIN, negative=False)
    w.add("globex", T0, negative=False)
    dropped = w.prune(T0 + 14 * MIN + timedelta(seconds=30))
    # cutoff T0+4m30s: buckets T0..T0+4m go
    assert dropped == [("acme", _epoch(T0 + m * MIN)) for m in range(5)] + [("globex", _epoch(T0))]
    assert w.brands() == {"acme"}
    assert w.count("acme", "total", T0, T0 + 15 * MIN) == 10
    rows = w.drain_dirty()
    assert [r[1] for r in rows] == [_epoch(T0 + m * MIN) for m in range(5, 15)]
    assert w.prune(T0 + 14 * MIN + timedelta(seconds=30)) == []


def test_drain_dirty_returns_changes_once() -> None:
    """drain_dirty returns the changed buckets with their full counts, then nothing."""
    w = VelocityWindows(retention=timedelta(hours=1))
    w.add("acme", T0, negative=True)
    w.add("acme", T0 + timedelta(seconds=10), negative=False)
    assert w.drain_dirty() == [("acme", _epoch(T0), 2, 1)]
    assert w.drain_dirty() == []
    w.add("acme", T0 + timedelta(seconds=20), negative=True)
    assert w.drain_dirty() == [("acme", _epoch(T0), 3, 2)]


def test_load_rejects_bad_rows() -> None:
    """load refuses unaligned bucket starts and impossible counts."""
    w = VelocityWindows(retention=timedelta(hours=1))
    with pytest.raises(ValueError, match="multiple"):
        w.load([("acme", _epoch(T0) + 1, 1, 0)])
    with pytest.raises(ValueError, match="bad counts"):
        w.load([("acme", _epoch(T0), 1, 2)])


MENTIONS = st.lists(
    st.tuples(
        st.sampled_from(["acme", "globex"]),
        st.integers(min_value=0, max_value=4 * 3600 * 1000),  # ms after T0
        st.booleans(),
    ),
    max_size=60,
)
BUCKETS = st.sampled_from([timedelta(seconds=1), timedelta(seconds=7), MIN, timedelta(minutes=5)])


@settings(max_examples=100, deadline=None)
@given(
    mentions=MENTIONS,
    bucket=BUCKETS,
    start_ms=st.integers(min_value=-600_000, max_value=4 * 3600 * 1000),
    length_ms=st.integers(min_value=-1000, max_value=4 * 3600 * 1000),
    brand=st.sampled_from(["acme", "globex", "initech"]),
)
def test_count_matches_brute_force(
    mentions: list[tuple[str, int, bool]],
    bucket: timedelta,
    start_ms: int,
    length_ms: int,
    brand: str,
) -> None:
    """count equals a brute-force sum over raw mentions whose bucket start is in [start, end)."""
    w = VelocityWindows(bucket=bucket, retention=timedelta(days=1))
    for name, ms, negative in mentions:
        w.add(name, T0 + timedelta(milliseconds=ms), negative)
    start = T0 + timedelta(milliseconds=start_ms)
    end = start + timedelta(milliseconds=length_ms)
    size = int(bucket.total_seconds())

    def bucket_start(ms: int) -> datetime:
        seconds = _epoch(T0) + ms // 1000
        return datetime.fromtimestamp(seconds - seconds % size, UTC)

    in_range = [(n, neg) for n, ms, neg in mentions if start <= bucket_start(ms) < end]
    assert w.count(brand, "total", start, end) == sum(1 for n, _ in in_range if n == brand)
    assert w.count(brand, "negative", start, end) == sum(1 for n, g in in_range if n == brand and g)


@settings(max_examples=50, deadline=None)
@given(mentions=MENTIONS, drains=st.integers(min_value=0, max_value=3))
def test_drain_and_load_round_trip(mentions: list[tuple[str, int, bool]], drains: int) -> None:
    """Rows drained (in several batches, upserted) and loaded rebuild identical counts."""
    w = VelocityWindows(retention=timedelta(days=1))
    table: dict[tuple[str, int], tuple[int, int]] = {}
    for i, (name, ms, negative) in enumerate(mentions):
        w.add(name, T0 + timedelta(milliseconds=ms), negative)
        if drains and i % (drains + 1) == 0:
            table.update({(b, k): (t, n) for b, k, t, n in w.drain_dirty()})
    table.update({(b, k): (t, n) for b, k, t, n in w.drain_dirty()})
    restored = VelocityWindows(retention=timedelta(days=1))
    restored.load((b, k, t, n) for (b, k), (t, n) in table.items())
    assert restored.drain_dirty() == []
    assert restored.brands() == w.brands()
    for brand in ("acme", "globex"):
        for metric in ("total", "negative"):
            for hour in range(5):
                start, end = T0 + timedelta(hours=hour - 1), T0 + timedelta(hours=hour + 1)
                assert restored.count(brand, metric, start, end) == w.count(
                    brand, metric, start, end
                )
