"""Bucketed velocity windows: every measure, filters, warm-up history, pruning, persistence
(rows, the store's JSON buckets and their migration) and the processor's samples."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.config.schema import Measure
from listener.model import Author, Engagement, Mention, ScoredMention, Sentiment
from listener.processor import sample_of
from listener.rules.conditions import CountView
from listener.scoring.reach import reach_score
from listener.scoring.velocity import (
    DISTINCT_MEASURES,
    MEASURES,
    Sample,
    VelocityWindows,
    _Arena,
    _zeros,
)
from listener.store import SCHEMA_VERSION, Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def neg(
    author: str | None = None,
    *,
    compound: float = 0.0,
    reach: float = 0.0,
    story: str | None = None,
    categories: tuple[str, ...] = (),
    source: str | None = None,
    language: str | None = None,
) -> Sample:
    """A negative sample."""
    return Sample(True, False, compound, reach, author, story, categories, source, language)


def pos(
    author: str | None = None,
    *,
    compound: float = 0.0,
    reach: float = 0.0,
    story: str | None = None,
    source: str | None = None,
    language: str | None = None,
) -> Sample:
    """A positive sample."""
    return Sample(False, True, compound, reach, author, story, (), source, language)


NEUTRAL = Sample(negative=False)


def test_implements_count_view() -> None:
    """VelocityWindows can be used wherever a CountView is expected."""
    view: CountView = VelocityWindows(retention=HOUR)
    assert view.value("acme", "total", T0, T0 + MIN) == 0
    assert view.first_seen("acme") is None


def test_measures_lists_every_measure() -> None:
    """MEASURES names the ten measures; four of them count distinct members."""
    assert set(MEASURES) == {
        "total",
        "negative",
        "positive",
        "reach",
        "negative_reach",
        "sentiment_sum",
        "voices",
        "negative_voices",
        "stories",
        "negative_stories",
    }
    assert {"voices", "negative_voices", "stories", "negative_stories"} == DISTINCT_MEASURES


def test_counts_total_and_negative_by_bucket() -> None:
    """Mentions land in the bucket of their time; ranges sum buckets starting in [start, end)."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0 + timedelta(seconds=5), neg())
    w.add("acme", T0 + timedelta(seconds=59), NEUTRAL)
    w.add("acme", T0 + timedelta(minutes=1, seconds=30), neg())
    w.add("globex", T0, neg())
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


def test_every_measure_on_a_small_example() -> None:
    """Counts, reach, sentiment sums and distinct voices and stories over two buckets."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0, neg("ann", compound=-0.5, reach=100, story="s1"))
    w.add("acme", T0 + timedelta(seconds=10), neg("bob", compound=-0.25, reach=10, story="s1"))
    w.add("acme", T0 + MIN, pos("ann", compound=0.75, reach=1, story="s2"))
    w.add("acme", T0 + MIN, neg("ann", compound=-1, reach=0, story="s3"))
    w.add("acme", T0 + MIN, Sample(negative=False, compound=0.0, reach=5))
    expected: dict[Measure, float] = {
        "total": 5,
        "negative": 3,
        "positive": 1,
        "reach": 116,
        "negative_reach": 110,
        "sentiment_sum": -1.0,
        "voices": 2,  # ann posts in both buckets: one voice
        "negative_voices": 2,
        "stories": 3,
        "negative_stories": 2,  # s1 and s3
    }
    for measure, value in expected.items():
        assert w.value("acme", measure, T0, T0 + 2 * MIN) == pytest.approx(value), measure
    assert w.value("acme", "voices", T0 + MIN, T0 + 2 * MIN) == 1
    assert w.value("acme", "negative_stories", T0 + MIN, T0 + 2 * MIN) == 1


def test_weight_multiplies_counts_but_not_voices() -> None:
    """A weighted sample adds n mentions, n × reach and n × sentiment, but one voice."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0, neg("ann", compound=-0.5, reach=10, story="s"), weight=4)
    assert w.value("acme", "total", T0, T0 + MIN) == 4
    assert w.value("acme", "negative_reach", T0, T0 + MIN) == 40
    assert w.value("acme", "sentiment_sum", T0, T0 + MIN) == -2
    assert w.value("acme", "negative_voices", T0, T0 + MIN) == 1
    assert w.value("acme", "stories", T0, T0 + MIN) == 1


def test_weight_zero_only_records_history() -> None:
    """weight=0 counts nothing, adds no voice, but starts the brand's history."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0 - 30 * MIN, neg("ann"), weight=0)
    assert w.value("acme", "total", T0 - HOUR, T0) == 0
    assert w.value("acme", "voices", T0 - HOUR, T0) == 0
    assert w.first_seen("acme") == T0 - 30 * MIN
    with pytest.raises(ValueError, match="weight"):
        w.add("acme", T0, NEUTRAL, weight=-1)


def test_filters_select_category_source_and_language() -> None:
    """Filters keep samples with that category among theirs, that source, that language."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0, neg("a", categories=("outage", "security"), source="x", language="en"))
    w.add("acme", T0, neg("b", categories=("outage",), source="reddit", language="de"))
    w.add("acme", T0, pos("c", source="x", language="en"))
    w.add("acme", T0, neg("d"))  # untagged: counted only without filters
    end = T0 + MIN
    assert w.value("acme", "total", T0, end) == 4
    assert w.value("acme", "total", T0, end, category="outage") == 2
    assert w.value("acme", "total", T0, end, category="security") == 1
    assert w.value("acme", "total", T0, end, source="x") == 2
    assert w.value("acme", "negative", T0, end, source="x") == 1
    assert w.value("acme", "total", T0, end, language="de") == 1
    assert w.value("acme", "voices", T0, end, category="outage", language="en") == 1
    assert w.value("acme", "total", T0, end, category="outage", source="x", language="de") == 0
    assert w.value("acme", "total", T0, end, category="pricing") == 0


def test_unknown_measure_is_rejected() -> None:
    """value refuses a measure it does not know and lists the known ones."""
    w = VelocityWindows(retention=HOUR)
    with pytest.raises(ValueError, match="known: total, negative"):
        w.value("acme", "loudness", T0, T0 + MIN)  # type: ignore[arg-type]


def test_other_timezones_and_naive_datetimes_are_utc_instants() -> None:
    """An aware time in another zone counts at its UTC instant; naive times are UTC."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", datetime(2026, 3, 2, 10, 0, 30, tzinfo=timezone(timedelta(hours=1))), neg())
    assert w.count("acme", "negative", datetime(2026, 3, 2, 9, 0), datetime(2026, 3, 2, 9, 1)) == 1
    assert w.first_seen("acme") == T0


def test_bucket_and_retentions_are_validated() -> None:
    """Bucket sizes that are not positive whole seconds are rejected, as are zero retentions."""
    with pytest.raises(ValueError, match="bucket"):
        VelocityWindows(bucket=timedelta(milliseconds=1500))
    with pytest.raises(ValueError, match="bucket"):
        VelocityWindows(bucket=timedelta(0))
    with pytest.raises(ValueError, match="retention"):
        VelocityWindows(retention=timedelta(0))
    with pytest.raises(ValueError, match="distinct_retention"):
        VelocityWindows(distinct_retention=timedelta(0))


def test_first_seen_is_the_earliest_bucket_and_survives_pruning() -> None:
    """first_seen is the earliest bucket start ever added; prune does not move it."""
    w = VelocityWindows(retention=10 * MIN)
    w.add("acme", T0 + 5 * MIN + timedelta(seconds=30), NEUTRAL)
    w.add("acme", T0 + timedelta(seconds=59), NEUTRAL)  # late, earlier
    assert w.first_seen("acme") == T0
    w.add("acme", T0 + 30 * MIN, NEUTRAL)
    w.prune(T0 + 30 * MIN)
    assert w.value("acme", "total", T0, T0 + 10 * MIN) == 0
    assert w.first_seen("acme") == T0
    assert w.first_seen("globex") is None


def test_prune_drops_buckets_older_than_retention() -> None:
    """prune drops buckets starting before now - retention, returns their keys, not dirty."""
    w = VelocityWindows(retention=10 * MIN)
    for minute in range(15):
        w.add("acme", T0 + minute * MIN, NEUTRAL)
    w.add("globex", T0, NEUTRAL)
    dropped = w.prune(T0 + 14 * MIN + timedelta(seconds=30))
    # cutoff T0+4m30s: buckets T0..T0+4m go
    assert dropped == [("acme", _epoch(T0 + m * MIN)) for m in range(5)] + [("globex", _epoch(T0))]
    assert w.brands() == {"acme"}
    assert w.count("acme", "total", T0, T0 + 15 * MIN) == 10
    rows = w.drain_dirty()
    assert [r[1] for r in rows] == [_epoch(T0 + m * MIN) for m in range(5, 15)]
    assert w.prune(T0 + 14 * MIN + timedelta(seconds=30)) == []


def test_prune_strips_distinct_sets_after_distinct_retention() -> None:
    """Sets older than distinct_retention are dropped (bucket dirty once); counts stay."""
    w = VelocityWindows(retention=HOUR, distinct_retention=10 * MIN)
    for minute in range(20):
        w.add("acme", T0 + minute * MIN, neg(f"u{minute}", source="x", story=f"s{minute}"))
    w.drain_dirty()
    now = T0 + 20 * MIN
    assert w.prune(now) == []
    rows = w.drain_dirty()
    assert [key for _, key, _ in rows] == [_epoch(T0 + m * MIN) for m in range(10)]
    # each bucket is its one part, written without sets: six measures
    assert all(len(json.loads(blob)[2]) == 3 + 6 for _, _, blob in rows)
    assert w.value("acme", "total", T0, now) == 20
    assert w.value("acme", "voices", T0, now) == 10
    assert w.value("acme", "negative_stories", T0, now, source="x") == 10
    w.prune(now)
    assert w.drain_dirty() == []  # already stripped: nothing new to write


def test_drain_dirty_returns_changes_once() -> None:
    """drain_dirty returns the changed buckets as whole rows (JSON arrays), then nothing."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0, neg("ann", reach=2, compound=-0.5))
    w.add("acme", T0 + timedelta(seconds=10), NEUTRAL)
    ((brand, key, blob),) = w.drain_dirty()
    assert (brand, key) == ("acme", _epoch(T0))
    assert blob == f'[{_epoch(T0)},[2,1,0,2.0,2.0,-0.5,["ann"],["ann"],0,0]]'
    assert w.drain_dirty() == []
    w.add("acme", T0 + timedelta(seconds=20), neg(source="x", categories=("outage",)))
    ((_, _, blob),) = w.drain_dirty()
    # two mentions are in no part: the whole keeps its own sets
    assert json.loads(blob) == [
        _epoch(T0),
        [3, 2, 0, 2.0, 2.0, -0.5, ["ann"], ["ann"], 0, 0],
        ["x", None, ["outage"], 1, 1, 0, 0.0, 0.0, 0.0],
    ]


def test_a_bucket_that_is_its_one_part_is_written_once() -> None:
    """When every mention of a bucket is in one sub-series (each has a source), the row
    holds that part alone (``null`` for the whole), and loads back with the same measures."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0, neg("ann", reach=2, compound=-0.5, story="s1", source="x"))
    w.add("acme", T0 + timedelta(seconds=5), pos("bob", compound=0.25, source="x"))
    ((_, _, blob),) = w.drain_dirty()
    assert json.loads(blob) == [
        _epoch(T0),
        None,
        ["x", None, [], 2, 1, 1, 2.0, 2.0, -0.25, ["ann", "bob"], ["ann"], ["s1"], ["s1"]],
    ]
    restored = VelocityWindows(retention=HOUR)
    restored.load([("acme", _epoch(T0), blob)])
    assert restored.export_brand("acme") == w.export_brand("acme")
    assert restored.value("acme", "negative_voices", T0, T0 + MIN) == 1
    # the whole and its part change apart after the load
    restored.add("acme", T0, neg("cy"))
    assert restored.value("acme", "voices", T0, T0 + MIN) == 3
    assert restored.value("acme", "voices", T0, T0 + MIN, source="x") == 2


def test_the_whole_sets_of_a_bucket_split_in_parts_are_the_parts_unions() -> None:
    """With every mention in some part, the whole's sets are not written; loading takes the
    unions of the parts' (exactly the sets the bucket held)."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0, neg("ann", story="s1", source="x", categories=("outage",)))
    w.add("acme", T0, neg("bob", story="s1", source="reddit", language="en"))
    w.add("acme", T0, pos("ann", story="s2", source="x"))
    ((_, _, blob),) = w.drain_dirty()
    data = json.loads(blob)
    assert data[1] == [3, 2, 1, 0.0, 0.0, 0.0]
    assert [part[:3] for part in data[2:]] == [  # in the order they were made
        ["x", None, ["outage"]],
        ["reddit", "en", []],
        ["x", None, []],
    ]
    restored = VelocityWindows(retention=HOUR)
    restored.load([("acme", _epoch(T0), blob)])
    assert restored.export_brand("acme") == w.export_brand("acme")
    for measure in DISTINCT_MEASURES:
        assert restored.value("acme", measure, T0, T0 + MIN) == w.value(
            "acme", measure, T0, T0 + MIN
        )


def test_rows_written_before_schema_6_load() -> None:
    """A bucket as a JSON object (the rows of schema 5 and before) loads with every
    measure, its parts and its first_seen; rewritten, it takes the new form."""
    old = json.dumps(
        {
            "total": 3,
            "negative": 2,
            "reach": 4.0,
            "negative_reach": 3.0,
            "sentiment_sum": -0.75,
            "voices": ["ann", "bob"],
            "negative_voices": ["ann"],
            "stories": ["s1"],
            "negative_stories": ["s1"],
            "parts": [
                {"source": "x", "categories": ["outage"], "total": 1, "negative": 1},
                {"source": "reddit", "language": "en", "total": 1, "voices": ["bob"]},
            ],
            "first_seen": _epoch(T0 - HOUR),
        }
    )
    w = VelocityWindows(retention=2 * HOUR)
    w.load([("acme", _epoch(T0), old)])
    assert w.first_seen("acme") == T0 - HOUR
    got = {m: w.value("acme", m, T0, T0 + MIN) for m in MEASURES}
    assert got == {
        "total": 3,
        "negative": 2,
        "positive": 0,
        "reach": 4.0,
        "negative_reach": 3.0,
        "sentiment_sum": -0.75,
        "voices": 2,
        "negative_voices": 1,
        "stories": 1,
        "negative_stories": 1,
    }
    assert w.value("acme", "negative", T0, T0 + MIN, category="outage") == 1
    assert w.value("acme", "voices", T0, T0 + MIN, language="en") == 1
    ((_, _, new),) = w.export_brand("acme")
    again = VelocityWindows(retention=2 * HOUR)
    again.load([("acme", _epoch(T0), new)])
    assert again.export_brand("acme") == w.export_brand("acme")
    assert {m: again.value("acme", m, T0, T0 + MIN) for m in MEASURES} == got


@pytest.mark.parametrize(
    ("key", "blob", "match"),
    [
        (_epoch(T0) + 1, "{}", "multiple"),
        (_epoch(T0), "{not json", "bad JSON"),
        (_epoch(T0), "3", "expected an array or an object"),
        (_epoch(T0), "[]", "expected \\[first_seen"),
        (_epoch(T0), '["x", [0, 0, 0, 0.0, 0.0, 0.0]]', "bad first_seen"),
        (_epoch(T0), "[0, [1, 0, 0, 0.0, 0.0]]", "expected 6 or 10 measures"),
        (_epoch(T0), "[0, [1, 2, 0, 0.0, 0.0, 0.0]]", "bad counts"),
        (_epoch(T0), "[0, [-1, 0, 0, 0.0, 0.0, 0.0]]", "bad total"),
        (_epoch(T0), '[0, [1, 0, 0, "far", 0.0, 0.0]]', "bad reach"),
        (_epoch(T0), "[0, [1, 0, 0, 0.0, 0.0, 0.0, [1], 0, 0, 0]]", "bad voices"),
        (_epoch(T0), "[0, {}]", "bad measures"),
        (_epoch(T0), "[0, null]", "exactly one part"),
        (_epoch(T0), "[0, [1, 0, 0, 0.0, 0.0, 0.0], 5]", "expected \\[source"),
        (_epoch(T0), "[0, null, [1, null, [], 1, 0, 0, 0.0, 0.0, 0.0]]", "bad source"),
        (_epoch(T0), '[0, null, ["x", null, "o", 1, 0, 0, 0.0, 0.0, 0.0]]', "bad categories"),
        (
            _epoch(T0),
            '[0, [0, 0, 0, 0.0, 0.0, 0.0], ["x", null, [], 1, 0, 0, 0.0, 0.0, 0.0]]',
            "parts hold 1 mentions",
        ),
        (_epoch(T0), '{"total": 1, "negative": 2}', "bad counts"),
        (_epoch(T0), '{"total": 1, "positive": 2}', "bad counts"),
        (_epoch(T0), '{"total": -1}', "bad total"),
        (_epoch(T0), '{"total": 1.5}', "bad total"),
        (_epoch(T0), '{"reach": "far"}', "bad reach"),
        (_epoch(T0), '{"voices": [1]}', "bad voices"),
        (_epoch(T0), '{"parts": {}}', "bad parts"),
        (_epoch(T0), '{"parts": [{"source": 1}]}', "bad source"),
        (_epoch(T0), '{"parts": [{"categories": "x"}]}', "bad categories"),
        (_epoch(T0), '{"first_seen": "yesterday"}', "bad first_seen"),
    ],
)
def test_load_rejects_bad_rows(key: int, blob: str, match: str) -> None:
    """load refuses unaligned bucket starts and blobs that are not buckets."""
    w = VelocityWindows(retention=HOUR)
    with pytest.raises(ValueError, match=match):
        w.load([("acme", key, blob)])


def test_load_restores_first_seen_from_the_rows() -> None:
    """first_seen after a restart is the earliest first_seen carried by any stored row."""
    w = VelocityWindows(retention=10 * MIN)
    w.add("acme", T0, NEUTRAL)
    w.add("acme", T0 + 30 * MIN, NEUTRAL)
    w.prune(T0 + 30 * MIN)
    rows = w.drain_dirty()
    assert [key for _, key, _ in rows] == [_epoch(T0 + 30 * MIN)]
    restored = VelocityWindows(retention=10 * MIN)
    restored.load(rows)
    assert restored.first_seen("acme") == T0
    assert restored.drain_dirty() == []


# ---------------------------------------------------------------- properties


@dataclass(frozen=True)
class Raw:
    """One added sample, as the brute-force recomputation sees it."""

    brand: str
    ms: int
    sample: Sample
    weight: int


SAMPLES = st.builds(
    Sample,
    negative=st.booleans(),
    positive=st.booleans(),
    compound=st.floats(min_value=-1, max_value=1, allow_nan=False),
    reach=st.sampled_from([0.0, 1.0, 2.5, 1000.0]),
    author=st.sampled_from([None, "ann", "bob", "cy", "dee", "eve"]),
    story=st.sampled_from([None, "s1", "s2", "s3"]),
    categories=st.sampled_from([(), ("outage",), ("outage", "security"), ("pricing",)]),
    source=st.sampled_from([None, "x", "reddit"]),
    language=st.sampled_from([None, "en", "de"]),
)
RAW = st.builds(
    Raw,
    brand=st.sampled_from(["acme", "globex"]),
    ms=st.integers(min_value=0, max_value=2 * 3600 * 1000),  # after T0
    sample=SAMPLES,
    weight=st.sampled_from([1, 1, 1, 2, 0]),
)
RAWS = st.one_of(st.lists(RAW, max_size=10), st.lists(RAW, min_size=20, max_size=80))
BUCKETS = st.sampled_from([timedelta(seconds=1), timedelta(seconds=7), MIN, timedelta(minutes=5)])
FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "category": st.sampled_from(["outage", "security", "pricing"]),
        "source": st.sampled_from(["x", "reddit"]),
        "language": st.sampled_from(["en", "de"]),
    },
)


def _bucket_of(raw: Raw, size: int) -> datetime:
    seconds = _epoch(T0) + raw.ms // 1000
    return datetime.fromtimestamp(seconds - seconds % size, UTC)


def brute_force(
    raws: list[Raw],
    brand: str,
    measure: Measure,
    start: datetime,
    end: datetime,
    size: int,
    filters: dict[str, str],
    distinct_from: datetime | None = None,
) -> float:
    """The measure recomputed from the raw samples with the bucketed semantics."""
    chosen = [
        r
        for r in raws
        if r.brand == brand
        and start <= _bucket_of(r, size) < end
        and ("category" not in filters or filters["category"] in r.sample.categories)
        and ("source" not in filters or r.sample.source == filters["source"])
        and ("language" not in filters or r.sample.language == filters["language"])
    ]
    if measure in DISTINCT_MEASURES:
        attr = "author" if measure.endswith("voices") else "story"
        members = {
            getattr(r.sample, attr)
            for r in chosen
            if r.weight
            and getattr(r.sample, attr) is not None
            and (r.sample.negative or not measure.startswith("negative"))
            and (distinct_from is None or _bucket_of(r, size) >= distinct_from)
        }
        return float(len(members))
    per_sample: Callable[[Sample], float] = {
        "total": lambda s: 1.0,
        "negative": lambda s: float(s.negative),
        "positive": lambda s: float(s.positive),
        "reach": lambda s: s.reach,
        "negative_reach": lambda s: s.reach if s.negative else 0.0,
        "sentiment_sum": lambda s: s.compound,
    }[measure]
    return sum(per_sample(r.sample) * r.weight for r in chosen)


def _filled(raws: list[Raw], bucket: timedelta = MIN) -> VelocityWindows:
    """Windows holding the samples."""
    w = VelocityWindows(bucket=bucket, retention=timedelta(days=1))
    for r in raws:
        w.add(r.brand, T0 + timedelta(milliseconds=r.ms), r.sample, r.weight)
    return w


@settings(max_examples=150, deadline=None)
@given(
    raws=RAWS,
    bucket=BUCKETS,
    start_ms=st.integers(min_value=-600_000, max_value=2 * 3600 * 1000),
    length_ms=st.integers(min_value=-1000, max_value=3 * 3600 * 1000),
    brand=st.sampled_from(["acme", "globex", "initech"]),
    filters=FILTERS,
)
def test_every_measure_matches_brute_force(
    raws: list[Raw],
    bucket: timedelta,
    start_ms: int,
    length_ms: int,
    brand: str,
    filters: dict[str, str],
) -> None:
    """Every measure, filtered or not, equals a brute-force recomputation over the samples."""
    w = _filled(raws, bucket)
    start = T0 + timedelta(milliseconds=start_ms)
    end = start + timedelta(milliseconds=length_ms)
    size = int(bucket.total_seconds())
    for measure in MEASURES:
        expected = brute_force(raws, brand, measure, start, end, size, filters)
        got = w.value(brand, measure, start, end, **filters)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), measure
    assert w.count(brand, "total", start, end) == int(
        brute_force(raws, brand, "total", start, end, size, filters={})
    )
    firsts = [_bucket_of(r, size) for r in raws if r.brand == brand]
    assert w.first_seen(brand) == (min(firsts) if firsts else None)


@settings(max_examples=60, deadline=None)
@given(raws=RAWS, drains=st.integers(min_value=0, max_value=3), filters=FILTERS)
def test_drain_and_load_round_trip(raws: list[Raw], drains: int, filters: dict[str, str]) -> None:
    """Rows drained (in several batches, upserted) and loaded rebuild identical measures."""
    w = VelocityWindows(retention=timedelta(days=1))
    table: dict[tuple[str, int], str] = {}
    for i, r in enumerate(raws):
        w.add(r.brand, T0 + timedelta(milliseconds=r.ms), r.sample, r.weight)
        if drains and i % (drains + 1) == 0:
            table.update({(b, k): blob for b, k, blob in w.drain_dirty()})
    table.update({(b, k): blob for b, k, blob in w.drain_dirty()})
    restored = VelocityWindows(retention=timedelta(days=1))
    restored.load((b, k, blob) for (b, k), blob in table.items())
    assert restored.drain_dirty() == []
    assert restored.brands() == w.brands()
    for brand in ("acme", "globex"):
        assert restored.first_seen(brand) == w.first_seen(brand)
        assert restored.export_brand(brand) == w.export_brand(brand)  # the same buckets
        for measure in MEASURES:
            for hour in range(3):
                start, end = T0 + timedelta(hours=hour - 1), T0 + timedelta(hours=hour + 1)
                assert restored.value(brand, measure, start, end, **filters) == w.value(
                    brand, measure, start, end, **filters
                )


def _schema_5_row(w: VelocityWindows, brand: str, key: int) -> str:
    """A bucket of ``w`` as schema 5 wrote it (a JSON object: every non-zero measure of
    the whole and of each part, sets as sorted lists, parts sorted)."""

    def cell(c: object) -> dict[str, object]:
        data: dict[str, object] = {}
        for name in ("total", "negative", "positive", "reach", "negative_reach", "sentiment_sum"):
            if getattr(c, name):
                data[name] = getattr(c, name)
        for name in ("voices", "negative_voices", "stories", "negative_stories"):
            if getattr(c, name):
                data[name] = sorted(getattr(c, name))
        return data

    bucket = w._series[brand][key]
    data = cell(bucket)
    if bucket.parts:
        parts = []
        for (source, language, categories), part in sorted(
            bucket.parts.items(), key=lambda item: (item[0][0] or "", item[0][1] or "", item[0][2])
        ):
            head: dict[str, object] = {}
            if source is not None:
                head["source"] = source
            if language is not None:
                head["language"] = language
            if categories:
                head["categories"] = list(categories)
            parts.append(head | cell(part))
        data["parts"] = parts
    data["first_seen"] = w._first[brand]
    return json.dumps(data)


@settings(max_examples=60, deadline=None)
@given(raws=RAWS, filters=FILTERS)
def test_rows_of_schema_5_load_into_the_same_windows(
    raws: list[Raw], filters: dict[str, str]
) -> None:
    """Windows loaded from the rows schema 5 wrote (JSON objects) equal the windows they
    were written from: the same rows when written again (but for the order of the parts,
    which schema 5 sorted), the same reads (filtered sums, added in that order, to the
    last bit or so)."""

    def parts_sorted(rows: list[tuple[str, int, str]]) -> list[object]:
        return [[*json.loads(r)[:2], *sorted(json.loads(r)[2:], key=str)] for _, _, r in rows]

    w = _filled(raws)
    old = [(b, k, _schema_5_row(w, b, k)) for b, series in w._series.items() for k in series]
    restored = VelocityWindows(retention=timedelta(days=1))
    restored.load(old)
    for brand in ("acme", "globex"):
        assert parts_sorted(restored.export_brand(brand)) == parts_sorted(w.export_brand(brand))
        for measure in MEASURES:
            start, end = T0 - HOUR, T0 + 3 * HOUR
            assert restored.value(brand, measure, start, end, **filters) == pytest.approx(
                w.value(brand, measure, start, end, **filters), rel=1e-12, abs=1e-12
            )


PRUNE_STEP = st.one_of(
    st.tuples(st.just("add"), RAW),
    st.tuples(st.just("add"), RAW),
    st.tuples(st.just("add"), RAW),
    st.tuples(st.just("prune"), st.integers(0, 4 * 3600 * 1000)),
    st.tuples(st.just("restart")),
)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(PRUNE_STEP, min_size=5, max_size=60),
    retention_min=st.integers(min_value=1, max_value=300),
    distinct_min=st.integers(min_value=1, max_value=300),
    filters=FILTERS,
)
def test_prunes_and_restarts_match_brute_force(
    steps: list[tuple[object, ...]], retention_min: int, distinct_min: int, filters: dict[str, str]
) -> None:
    """Adds (in and out of time order), prunes at any times and restarts from a store
    kept as the processor keeps it (drained rows upserted, pruned buckets deleted): every
    measure equals a brute-force recomputation over the samples still held, sets counted
    only where no prune has stripped them; each prune returns exactly the buckets it
    dropped; a restart gives the same buckets."""
    retention, distinct = retention_min * MIN, distinct_min * MIN

    def windows() -> VelocityWindows:
        return VelocityWindows(retention=retention, distinct_retention=distinct)

    w = windows()
    store: dict[tuple[str, int], str] = {}
    held: list[Raw] = []
    for step in steps:
        if step[0] == "add":
            raw = step[1]
            assert isinstance(raw, Raw)
            w.add(raw.brand, T0 + timedelta(milliseconds=raw.ms), raw.sample, raw.weight)
            held.append(raw)
        elif step[0] == "prune":
            now = T0 + timedelta(milliseconds=int(step[1]))  # type: ignore[call-overload]
            gone = {
                (r.brand, _epoch(_bucket_of(r, 60)))
                for r in held
                if _bucket_of(r, 60) < now - retention
            }
            dropped = w.prune(now)
            assert sorted(dropped) == sorted(gone)
            held = [
                r
                if _bucket_of(r, 60) >= now - distinct
                else Raw(r.brand, r.ms, replace(r.sample, author=None, story=None), r.weight)
                for r in held
                if _bucket_of(r, 60) >= now - retention
            ]
            for key in dropped:
                store.pop(key, None)
        else:
            before = {b: w.export_brand(b) for b in ("acme", "globex")}
            w = windows()
            w.load((b, k, blob) for (b, k), blob in store.items())
            for brand, rows in before.items():  # first_seen may move on: rows pruned
                assert [(k, json.loads(r)[1:]) for _, k, r in w.export_brand(brand)] == [
                    (k, json.loads(r)[1:]) for _, k, r in rows
                ]
        store.update({(b, k): blob for b, k, blob in w.drain_dirty()})
        start, end = T0 - HOUR, T0 + 3 * HOUR
        for measure in MEASURES:
            expected = brute_force(held, "acme", measure, start, end, 60, filters)
            got = w.value("acme", measure, start, end, **filters)
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), measure


@settings(max_examples=100, deadline=None)
@given(
    raws=RAWS,
    now_ms=st.integers(min_value=0, max_value=3 * 3600 * 1000),
    later_ms=st.integers(min_value=0, max_value=3600 * 1000),
    retention_min=st.integers(min_value=1, max_value=300),
    distinct=st.one_of(st.none(), st.integers(min_value=1, max_value=300)),
    bucket=BUCKETS,
)
def test_mentions_before_sets_from_may_come_without_author_and_story(
    raws: list[Raw],
    now_ms: int,
    later_ms: int,
    retention_min: int,
    distinct: int | None,
    bucket: timedelta,
) -> None:
    """Adding the samples before ``sets_from(now)`` without author and story leaves, after
    a prune at ``now`` (and at any later time), the very windows adding them whole does;
    and those buckets are not dirtied again by the prune."""

    def windows() -> VelocityWindows:
        return VelocityWindows(
            bucket=bucket,
            retention=retention_min * MIN,
            distinct_retention=None if distinct is None else distinct * MIN,
        )

    now = T0 + timedelta(milliseconds=now_ms)
    whole, bare = windows(), windows()
    cut = bare.sets_from(now)
    for r in raws:
        at = T0 + timedelta(milliseconds=r.ms)
        whole.add(r.brand, at, r.sample, r.weight)
        sample = r.sample if at >= cut else replace(r.sample, author=None, story=None)
        bare.add(r.brand, at, sample, r.weight)
    bare.drain_dirty()
    for when in (now, now + timedelta(milliseconds=later_ms)):
        assert whole.prune(when) == bare.prune(when)
        for brand in ("acme", "globex"):
            assert bare.export_brand(brand) == whole.export_brand(brand)
    kept = {bare.bucket_start(T0 + timedelta(milliseconds=r.ms)) for r in raws}
    assert {key for _, key, _ in bare.drain_dirty()} <= {k for k in kept if k >= _epoch(cut)}


@settings(max_examples=60, deadline=None)
@given(
    raws=RAWS,
    now_ms=st.integers(min_value=0, max_value=3 * 3600 * 1000),
    retention_min=st.integers(min_value=1, max_value=300),
    distinct_min=st.integers(min_value=1, max_value=300),
    filters=FILTERS,
)
def test_prune_keeps_what_the_retentions_cover(
    raws: list[Raw], now_ms: int, retention_min: int, distinct_min: int, filters: dict[str, str]
) -> None:
    """After prune, counts cover buckets within retention; sets those within both."""
    retention, distinct = retention_min * MIN, distinct_min * MIN
    w = VelocityWindows(retention=retention, distinct_retention=distinct)
    for r in raws:
        w.add(r.brand, T0 + timedelta(milliseconds=r.ms), r.sample, r.weight)
    now = T0 + timedelta(milliseconds=now_ms)
    w.prune(now)
    kept = [r for r in raws if _bucket_of(r, 60) >= now - retention]
    start, end = T0 - HOUR, T0 + timedelta(hours=6)
    for measure in MEASURES:
        expected = brute_force(
            kept, "acme", measure, start, end, 60, filters, distinct_from=now - distinct
        )
        got = w.value("acme", measure, start, end, **filters)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), measure


# ---------------------------------------------------------------- store and processor


def test_rows_round_trip_through_the_store(tmp_path: Path) -> None:
    """Drained rows committed to the store load back into identical windows."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0, neg("ann", reach=3, source="x", categories=("outage",)))
    w.add("acme", T0 + MIN, pos("bob", compound=0.5))
    store = Store.open(tmp_path / "s.db")
    try:
        store.commit(now=T0, buckets=w.drain_dirty())
        w.add("acme", T0 + MIN, neg("cy"))
        store.commit(now=T0, buckets=w.drain_dirty())
        restored = VelocityWindows(retention=HOUR)
        restored.load(store.buckets.load())
    finally:
        store.close()
    for measure in MEASURES:
        for filters in ({}, {"category": "outage"}, {"source": "x"}):
            assert restored.value("acme", measure, T0, T0 + 2 * MIN, **filters) == w.value(
                "acme", measure, T0, T0 + 2 * MIN, **filters
            )
    assert restored.first_seen("acme") == T0


def test_store_migrates_version_1_buckets(tmp_path: Path) -> None:
    """A version-1 state file gets an empty JSON buckets table; everything else is kept."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE buckets (brand TEXT NOT NULL, bucket INTEGER NOT NULL, "
        "total INTEGER NOT NULL, negative INTEGER NOT NULL, PRIMARY KEY (brand, bucket));"
        "INSERT INTO buckets VALUES ('acme', 1772442000, 5, 2);"
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO kv VALUES ('quiet_until', '{}');"
        "PRAGMA user_version=1;"
    )
    conn.close()
    row = ("acme", _epoch(T0), '{"total":1}')
    store = Store.open(path)
    try:
        assert store.buckets.load() == []
        assert store.kv.get("quiet_until") == "{}"
        store.commit(now=T0, buckets=[row])
    finally:
        store.close()
    store = Store.open(path)  # opening again migrates nothing
    try:
        assert store.buckets.load() == [row]
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_version_5_file_keeps_its_buckets_and_rewrites_them_when_they_change(
    tmp_path: Path,
) -> None:
    """Opening a schema-5 file leaves its bucket rows (JSON objects) as they are; they load
    into the windows, and a bucket written again takes the new form beside the old ones."""
    path = tmp_path / "v5.db"
    store = Store.open(path)
    old = [
        ("acme", _epoch(T0), '{"total":2,"negative":1,"voices":["ann"],"first_seen":%d}'),
        ("acme", _epoch(T0 + MIN), '{"total":1,"parts":[{"source":"x","total":1}]}'),
    ]
    rows = [(b, k, blob.replace("%d", str(_epoch(T0 - HOUR)))) for b, k, blob in old]
    store.commit(now=T0, buckets=rows)
    store._write("PRAGMA user_version=5")
    store.close()
    store = Store.open(path)
    try:
        assert store._read("PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert sorted(store.buckets.load()) == rows
        w = VelocityWindows(retention=2 * HOUR)
        w.load(store.buckets.load())
        assert w.first_seen("acme") == T0 - HOUR
        assert w.value("acme", "total", T0, T0 + 2 * MIN) == 3
        assert w.value("acme", "voices", T0, T0 + 2 * MIN) == 1
        assert w.value("acme", "total", T0, T0 + 2 * MIN, source="x") == 1
        w.add("acme", T0 + MIN, neg("bob", source="x"))
        store.commit(now=T0, buckets=w.drain_dirty())
        stored = {(b, k): blob for b, k, blob in store.buckets.load()}
        assert stored[("acme", _epoch(T0))] == rows[0][2]
        assert stored[("acme", _epoch(T0 + MIN))].startswith(f"[{_epoch(T0 - HOUR)},")
        again = VelocityWindows(retention=2 * HOUR)
        again.load(store.buckets.load())
        assert again.export_brand("acme") == w.export_brand("acme")
    finally:
        store.close()


def test_processor_samples_carry_what_rules_read() -> None:
    """sample_of takes sentiment, reach, author, source and language from a scored mention."""
    mention = Mention(
        source="x",
        id="1",
        text="acme is down",
        created_at=T0,
        author=Author(handle="ann", followers=100),
        language="en",
        engagement=Engagement(likes=5),
    )
    sample = sample_of(
        ScoredMention(mention, ("Acme",), Sentiment("negative", -0.6), reach=reach_score(mention))
    )
    assert sample == Sample(
        negative=True, compound=-0.6, reach=115.0, author="x:ann", source="x", language="en"
    )
    happy = sample_of(
        ScoredMention(mention, ("Acme",), Sentiment("positive", 0.4), reach=reach_score(mention))
    )
    assert (happy.negative, happy.positive) == (False, True)


# ---------------------------------------------------------------- running sums

STEP = st.one_of(
    st.tuples(st.just("add"), RAW),
    st.tuples(st.just("add"), RAW),
    st.tuples(st.just("read"), st.integers(-600_000, 2 * 3600 * 1000), st.integers(-1000, 10**7)),
    st.tuples(
        st.just("strided"),
        st.integers(0, 3 * 3600 * 1000),
        st.integers(1, 40 * 60 * 1000),
        st.integers(0, 12),
    ),
    st.tuples(st.just("prune"), st.integers(0, 3 * 3600 * 1000)),
    st.tuples(st.just("reload")),
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(STEP, min_size=5, max_size=60),
    bucket=BUCKETS,
    retention_min=st.integers(min_value=1, max_value=300),
)
def test_running_sums_match_brute_force_between_changes(
    steps: list[tuple[object, ...]], bucket: timedelta, retention_min: int
) -> None:
    """Unfiltered counts read through the running sums, interleaved with adds in and out of
    time order, prunes and reloads, are exactly (whole numbers) the brute-force sums over
    the samples still held, for single ranges and for strided windows."""
    size = int(bucket.total_seconds())
    w = VelocityWindows(bucket=bucket, retention=retention_min * MIN)
    held: list[Raw] = []
    for step in steps:
        kind = step[0]
        if kind == "add":
            raw = step[1]
            assert isinstance(raw, Raw)
            w.add(raw.brand, T0 + timedelta(milliseconds=raw.ms), raw.sample, raw.weight)
            held.append(raw)
        elif kind == "prune":
            now = T0 + timedelta(milliseconds=int(step[1]))  # type: ignore[call-overload]
            w.prune(now)
            held = [r for r in held if _bucket_of(r, size) >= now - w.retention]
        elif kind == "reload":
            fresh = VelocityWindows(bucket=bucket, retention=w.retention)
            fresh.load(_all_rows(w))
            w = fresh
        elif kind == "read":
            start = T0 + timedelta(milliseconds=int(step[1]))  # type: ignore[call-overload]
            end = start + timedelta(milliseconds=int(step[2]))  # type: ignore[call-overload]
            for brand in ("acme", "globex"):
                for measure in ("total", "negative", "positive"):
                    expected = brute_force(held, brand, measure, start, end, size, {})
                    got = w.value(brand, measure, start, end)
                    assert got == expected, (measure, got, expected)
                    assert float(int(got)) == got
            # the bulk read of every brand at once gives the same numbers
            first = -(-((start - EPOCH) // timedelta(microseconds=1)) // (size * 1_000_000))
            last = -(-((end - EPOCH) // timedelta(microseconds=1)) // (size * 1_000_000))
            if last > first:
                names = ("acme", "globex", "nobody")
                bulk = w.running_at(names, np.array([first, last]), ("total", "negative"))
                for row, brand in enumerate(names):
                    for measure in ("total", "negative"):
                        expected = brute_force(held, brand, measure, start, end, size, {})
                        sums = bulk[measure][row]
                        assert float(sums[1] - sums[0]) == expected, (brand, measure)
        else:
            end = T0 + timedelta(milliseconds=int(step[1]))  # type: ignore[call-overload]
            width = timedelta(milliseconds=int(step[2]))  # type: ignore[call-overload]
            count = int(step[3])  # type: ignore[call-overload]
            for measure in ("total", "negative", "voices"):
                got_all = w.strided("acme", measure, end, width, count)
                expected_all = [
                    w.value("acme", measure, end - (k + 1) * width, end - k * width)
                    for k in range(count)
                ]
                brute = [
                    brute_force(
                        held, "acme", measure, end - (k + 1) * width, end - k * width, size, {}
                    )
                    for k in range(count)
                ]
                assert got_all == expected_all, measure
                if measure != "voices":
                    assert got_all == brute, measure


def _all_rows(w: VelocityWindows) -> list[tuple[str, int, str]]:
    """Every bucket of ``w`` as a row (marking all dirty first)."""
    for brand, series in w._series.items():
        for key in series:
            w._dirty.add((brand, key))
    return w.drain_dirty()


def test_strided_reads_filtered_windows_one_by_one() -> None:
    """Filtered and distinct measures read through ``strided`` equal ``value`` per window."""
    w = VelocityWindows(retention=timedelta(days=1))
    for minute in range(90):
        w.add("acme", T0 + minute * MIN, Sample(negative=minute % 3 == 0, source="x"))
    end = T0 + 90 * MIN
    got = w.strided("acme", "negative", end, 10 * MIN, 9, source="x")
    assert got == [
        w.value("acme", "negative", end - (k + 1) * 10 * MIN, end - k * 10 * MIN, source="x")
        for k in range(9)
    ]
    assert sum(got) == 30.0


def test_running_sums_survive_far_future_buckets() -> None:
    """A bucket far ahead of the rest (beyond the running sums' span) still reads exactly."""
    w = VelocityWindows(retention=HOUR)
    w.add("acme", T0, NEUTRAL)
    w.add("acme", T0 + timedelta(days=400), NEUTRAL)
    assert w.value("acme", "total", T0 - HOUR, T0 + timedelta(days=401)) == 2.0
    assert w.strided("acme", "total", T0 + MIN, MIN, 2) == [1.0, 0.0]


def test_running_sums_drop_many_pruned_buckets_and_stay_exact() -> None:
    """A long history pruned by more than the running sums keep (their leading entries
    are dropped), then late adds before the last bucket: reads equal summing buckets."""
    w = VelocityWindows(bucket=MIN, retention=600 * MIN)
    for minute in range(3000):
        w.add("acme", T0 + minute * MIN, Sample(negative=minute % 3 == 0), 1 + minute % 4)
    assert w.value("acme", "total", T0, T0 + 3000 * MIN) == sum(1 + m % 4 for m in range(3000))
    now = T0 + 3000 * MIN
    w.prune(now)
    assert w._prefix["acme"].count < 3000 - 512  # the pruned entries went
    for late in (2990, 2500, 2999):
        w.add("acme", T0 + late * MIN, Sample(negative=True), 2)
    for start in (2400, 2450, 2700, 2990):
        expected = sum(1 + m % 4 for m in range(start, 3000)) + sum(
            2 for late in (2990, 2500, 2999) if late >= start
        )
        assert w.value("acme", "total", T0 + start * MIN, now) == expected
    got = w.strided("acme", "negative", now, 100 * MIN, 5)
    assert got == [
        w.value("acme", "negative", now - (k + 1) * 100 * MIN, now - k * 100 * MIN)
        for k in range(5)
    ]


BULK_BRANDS = ("b0", "b1", "b2", "b3", "b4", "b5")
OFFSETS = (0, 1, 2, 3, 5, 8, 13, 21, 34)  # minutes before now each bound reads from
BULK_STEP = st.one_of(
    st.tuples(
        st.just("add"),
        st.sampled_from(BULK_BRANDS),
        st.integers(-40, 2),  # minutes from now: late, current, a little ahead
        st.integers(0, 3),
        st.booleans(),
    ),
    st.tuples(st.just("add"), st.sampled_from(BULK_BRANDS), st.just(0), st.just(1), st.just(True)),
    st.tuples(st.just("burst"), st.sampled_from(BULK_BRANDS), st.integers(-30, 0)),
    st.tuples(st.just("tick"), st.sampled_from([0, 1, 1, 1, 2, 3, -1, 12])),
    st.tuples(st.just("read"), st.lists(st.sampled_from(BULK_BRANDS), unique=True)),
    st.tuples(st.just("read"), st.just(list(BULK_BRANDS))),
    st.tuples(st.just("prune")),
    st.tuples(st.just("drop"), st.sampled_from(BULK_BRANDS)),
    st.tuples(st.just("hand-off"), st.sampled_from(BULK_BRANDS)),
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(BULK_STEP, min_size=10, max_size=120), retention=st.integers(5, 90))
def test_bulk_reads_over_moving_bounds_match_brute_force(
    steps: list[tuple[object, ...]], retention: int
) -> None:
    """The bulk read of many brands at bounds that move with the clock (a bucket or a few
    per tick, sometimes back, sometimes far), interleaved with adds in and out of time
    order (and bursts of late buckets), prunes, brands dropped and handed off (their
    running sums moving about the shared arena, which grows and compacts), gives every
    window exactly its brute-force count, for all brands or any subset, in any order."""
    w = VelocityWindows(bucket=MIN, retention=retention * MIN)
    counts: dict[str, dict[int, list[int]]] = {b: {} for b in BULK_BRANDS}  # minute -> counts
    now = 100  # minutes after T0; reads happen 7 s into the minute
    for step in steps:
        kind = step[0]
        if kind in ("add", "burst"):
            brand, offset = step[1], step[2]
            assert isinstance(brand, str)
            assert isinstance(offset, int)
            late = (
                [(offset, step[3], step[4])]
                if kind == "add"
                else [(offset - k, 1, k % 2) for k in range(12)]
            )
            for when, weight, negative in late:
                assert isinstance(weight, int)
                minute = now + when
                w.add(brand, T0 + minute * MIN, Sample(negative=bool(negative)), weight)
                held = counts[brand].setdefault(minute, [0, 0])
                held[0] += weight
                held[1] += weight if negative else 0
        elif kind == "tick":
            assert isinstance(step[1], int)
            now += step[1]
        elif kind == "prune":
            w.prune(T0 + now * MIN + 7 * timedelta(seconds=1))
            for held in counts.values():
                for minute in [m for m in held if m < now + 1 - retention]:
                    del held[minute]
        elif kind == "drop":
            assert isinstance(step[1], str)
            w.drop_brand(step[1])
            counts[step[1]] = {}
        elif kind == "hand-off":
            assert isinstance(step[1], str)
            rows, first = w.export_brand(step[1]), w.first_seen(step[1])
            w.drop_brand(step[1])
            w.load(rows)
            if first is not None:
                w.start_history(step[1], first)
        else:
            names = step[1]
            assert isinstance(names, list)
            if not names:
                continue
            base = (T0 - EPOCH) // MIN + now  # the bucket index of now's minute
            # bounds: the first bucket starting at or after now (+7 s) - offset
            indices = np.array([base + 1 - offset for offset in OFFSETS], dtype=np.int64)
            bulk = w.running_at(names, indices, ("total", "negative"))
            for row, brand in enumerate(names):
                for j in range(len(OFFSETS) - 1):
                    lo, hi = now + 1 - OFFSETS[j + 1], now + 1 - OFFSETS[j]
                    window = [c for m, c in counts[brand].items() if lo <= m < hi]
                    for col, measure in enumerate(("total", "negative")):
                        sums = bulk[measure][row]
                        expected = sum(c[col] for c in window)
                        assert sums[j] - sums[j + 1] == expected, (brand, measure, j)


def test_the_arena_compacts_and_reads_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Brands that grow their running sums, most of them then dropped while the others
    grow on: the shared arena reclaims the room left behind (compacts) and stays within a
    few times what the brands hold, and every brand reads what summing its buckets gives,
    in bulk and one range at a time."""
    w = VelocityWindows(bucket=MIN, retention=timedelta(days=1))
    brands = [f"b{i}" for i in range(30)]
    for minute in range(200):
        for i, brand in enumerate(brands):
            if minute % (i % 5 + 1) == 0:
                w.add(brand, T0 + minute * MIN, Sample(negative=minute % 3 == 0), 1 + i % 2)
        if minute % 20 == 19:
            w.running_at(brands, np.array([0, 10**9], dtype=np.int64), ("total",))
    arena = w._arena
    rebuilt: list[bool] = []
    rebuild = _Arena._rebuild

    def spy(self: _Arena, capacity: int, compact: bool) -> None:
        rebuilt.append(compact)
        rebuild(self, capacity, compact)

    monkeypatch.setattr(_Arena, "_rebuild", spy)
    for brand in brands[:25]:
        w.drop_brand(brand)
    for minute in range(200, 1000):  # the others grow, and move into the room left behind
        for brand in brands[25:]:
            w.add(brand, T0 + minute * MIN, Sample(negative=True), 3)
        if minute % 10 == 0:
            w.running_at(brands, np.array([0, 10**9], dtype=np.int64), ("total",))
    assert True in rebuilt  # the room left behind was reclaimed
    assert len(arena.keys) <= 4 * sum(p.size for p in w._prefix.values()) + 64
    start = (T0 - EPOCH) // MIN
    bulk = w.running_at(brands, np.array([start, start + 130, start + 1000]), ("total", "negative"))
    for row, brand in enumerate(brands):
        for j, (lo, hi) in enumerate([(0, 130), (130, 1000)]):
            for measure in ("total", "negative"):
                expected = w.value(brand, measure, T0 + lo * MIN, T0 + hi * MIN)
                sums = bulk[measure][row]
                assert sums[j + 1] - sums[j] == expected, (brand, measure, lo)
    assert (
        w.value("b29", "total", T0, T0 + 260 * MIN)
        == sum(2 for m in range(200) if m % 5 == 0) + 3 * 60
    )
    assert w.value("b0", "total", T0, T0 + 260 * MIN) == 0


def test_bulk_reads_after_many_late_buckets_stay_exact() -> None:
    """More late buckets than the bulk read steps over between two reads of the same
    bounds: the brand's positions are searched for again, and read exactly."""
    w = VelocityWindows(bucket=MIN, retention=timedelta(hours=2))
    for minute in range(0, 60, 3):
        w.add("acme", T0 + minute * MIN, NEUTRAL)
        w.add("globex", T0 + minute * MIN, NEUTRAL, 2)
    start = (T0 - EPOCH) // MIN
    indices = np.array([start + 60, start + 45, start + 30, start])
    w.running_at(["acme", "globex"], indices, ("total",))
    for minute in range(31, 60, 3):  # ten new buckets in the middle of acme's history
        w.add("acme", T0 + minute * MIN, NEUTRAL, 5)
    bulk = w.running_at(["acme", "globex"], indices, ("total",))["total"]
    assert (bulk[0, :-1] - bulk[0, 1:]).tolist() == [5 + 25, 5 + 25, 10]
    assert (bulk[1, :-1] - bulk[1, 1:]).tolist() == [10, 10, 20]


def test_bulk_reads_do_not_count_pruned_buckets() -> None:
    """Pruned buckets stay in the running sums for a while; a bulk read of a range that
    starts before the retention counts only the buckets still held, as ``value`` does."""
    w = VelocityWindows(bucket=MIN, retention=5 * MIN)
    for minute in range(11):
        w.add("acme", T0 + minute * MIN, Sample(negative=minute % 2 == 0), 1)
    assert w.value("acme", "total", T0, T0 + 11 * MIN) == 11  # the running sums exist
    w.prune(T0 + 11 * MIN)
    first = (T0 - EPOCH) // MIN
    bulk = w.running_at(["acme", "nobody"], np.array([first, first + 11]), ["total", "negative"])
    assert w.value("acme", "total", T0, T0 + 11 * MIN) == 5
    assert bulk["total"][0, 1] - bulk["total"][0, 0] == 5
    assert bulk["negative"][0, 1] - bulk["negative"][0, 0] == 3  # minutes 6, 8, 10
    assert bulk["total"][1].tolist() == [0, 0]


def test_arena_buffers_of_any_size_are_zeroed_and_writable() -> None:
    """The arena's buffers, small (numpy's own) or large (anonymous memory in small
    pages), start at zero, have the shape asked for and take writes."""
    for shape in ((64,), (3, 64), (1 << 20,), (3, 1 << 19)):
        buffer = _zeros(*shape)
        assert buffer.shape == shape
        assert buffer.dtype == np.int64
        assert not buffer.any()
        buffer[..., -1] = 7
        assert int(buffer.sum()) == 7 * (shape[0] if len(shape) == 2 else 1)
