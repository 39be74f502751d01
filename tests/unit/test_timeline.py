"""The timeline (listener.rules.timeline) says at which of many steps some level may hold:
at a step it calls cold, the engine must find no level holding for any brand, whatever
the windows hold after that step."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from listener.config.load import load_config_text
from listener.rules.conditions import Check
from listener.rules.engine import CompiledRule, compile_rules
from listener.rules.timeline import Timeline
from listener.scoring.velocity import Sample, VelocityWindows
from tests.support.anomaly_strategies import ANOMALY_LEAVES

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
BRANDS = ("Acme", "Globex", "Initech", "Umbrella")
METRICS = ["total", "negative", "positive", "voices", "negative_voices", "stories", "reach"]
FILTERS = st.sampled_from([{}, {"source": "x"}, {"category": "outage"}])


def _minutes(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda m: f"{m}m")


LEAVES = st.one_of(
    st.builds(
        lambda m, w, a, f: {"type": "volume", "metric": m, "window": w, "above": a, **f},
        st.sampled_from(METRICS),
        _minutes(1, 20),
        st.integers(1, 6),
        FILTERS,
    ),
    st.builds(
        lambda m, w, b, r, v, d, warm, f: {
            "type": "spike",
            "metric": m,
            "window": w,
            "baseline": b,
            "ratio": r,
            "min_volume": v,
            "direction": d,
            "warmup": warm,
            **f,
        },
        st.sampled_from(METRICS),
        _minutes(1, 10),
        _minutes(1, 60),
        st.sampled_from([1.5, 2, 3]),
        st.integers(1, 4),
        st.sampled_from(["up", "down"]),
        st.booleans(),
        FILTERS,
    ),
    st.builds(
        lambda m, w, h, t, v, d, tr, c, warm, floor, f: {
            "type": "zscore",
            "metric": m,
            "window": w,
            "history": h,
            "threshold": t,
            "min_volume": v,
            "direction": d,
            "transform": tr,
            "center": c,
            "warmup": warm,
            "min_deviation": floor,
            **f,
        },
        st.sampled_from(METRICS),
        _minutes(1, 6),
        st.integers(2, 12),
        st.sampled_from([1, 2, 3.5]),
        st.integers(1, 4),
        st.sampled_from(["up", "down"]),
        st.sampled_from(["none", "sqrt", "log"]),
        st.sampled_from(["mean", "median"]),
        st.booleans(),
        st.sampled_from([0.05, "poisson"]),
        FILTERS,
    ),
    ANOMALY_LEAVES,
    st.builds(
        lambda m, w, a, v, f: {
            "type": "negative_share",
            "metric": m,
            "window": w,
            "above": a,
            "min_volume": v,
            **f,
        },
        st.sampled_from(["negative", "negative", "negative_voices", "negative_reach"]),
        _minutes(1, 20),
        st.sampled_from([0.3, 0.5, 0.75]),
        st.integers(1, 4),
        FILTERS,
    ),
    st.builds(
        lambda w, b, v: {"type": "mean_sentiment", "window": w, "below": b, "min_volume": v},
        _minutes(1, 10),
        st.sampled_from([-0.3, 0.0, 0.5]),
        st.integers(1, 4),
    ),
    st.builds(
        lambda m, w, r, v, d, warm: {
            "type": "seasonal",
            "metric": m,
            "window": w,
            "period": "1d",
            "ratio": r,
            "min_volume": v,
            "direction": d,
            "warmup": warm,
        },
        st.sampled_from(METRICS),
        _minutes(1, 30),
        st.sampled_from([1.5, 3]),
        st.integers(1, 4),
        st.sampled_from(["up", "down"]),
        st.booleans(),
    ),
    st.builds(
        lambda m, w, s, g, v, warm: {
            "type": "ramp",
            "metric": m,
            "window": w,
            "steps": s,
            "growth": g,
            "min_volume": v,
            "warmup": warm,
        },
        st.sampled_from(METRICS),
        _minutes(1, 5),
        st.integers(2, 4),
        st.sampled_from([1.5, 2]),
        st.integers(1, 4),
        st.booleans(),
    ),
)


def _tree(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    if depth == 0:
        return LEAVES
    inner = _tree(depth - 1)
    parts = st.lists(inner, min_size=1, max_size=3)
    return st.one_of(
        LEAVES,
        st.builds(lambda cs: {"type": "all", "conditions": cs}, parts),
        st.builds(lambda cs: {"type": "any", "conditions": cs}, parts),
        st.builds(lambda c: {"type": "not", "condition": c}, inner),
    )


SAMPLES = st.lists(
    st.tuples(
        st.sampled_from(BRANDS[:3]),  # the fourth brand never has a mention
        # minutes from T0: mostly near the steps (warm-up edges), some a day back (seasonal);
        # some after the steps (the replay's windows hold mentions ahead of its evaluations)
        st.one_of(st.integers(-40, 60), st.integers(-1500, 150)),
        st.integers(1, 3),
        st.sampled_from(["negative", "positive", "neutral"]),
        st.sampled_from(["x", "y"]),
        st.booleans(),  # tagged outage
    ),
    max_size=150,
)


def _rules(levels: list[dict[str, Any]], brands: list[str] | None) -> list[CompiledRule]:
    rule: dict[str, Any] = {
        "name": "r",
        "levels": {f"l{i}": {"when": when} for i, when in enumerate(levels)},
        "resolve_after": "5m",
    }
    if brands is not None:
        rule["brands"] = brands
    text = json.dumps(
        {
            "brands": [{"name": b} for b in BRANDS],
            "rules": [rule],
            "routes": {"default": ["ops"]},
            "sinks": {"ops": {"type": "console"}},
        }
    )
    return compile_rules(load_config_text(text, "rules.yaml", {}))


def _windows(samples: list[tuple[str, int, int, str, str, bool]]) -> VelocityWindows:
    windows = VelocityWindows(timedelta(minutes=1), timedelta(days=3))
    for brand, minute, weight, label, source, outage in samples:
        windows.add(
            brand,
            T0 + timedelta(minutes=minute, seconds=7),
            Sample(
                negative=label == "negative",
                positive=label == "positive",
                compound={"negative": -0.6, "positive": 0.5, "neutral": 0.0}[label],
                reach=float(weight) * 3,
                author=f"u{minute % 4}",
                story=f"s{minute % 5}",
                categories=("outage",) if outage else (),
                source=source,
            ),
            weight,
        )
    return windows


@settings(max_examples=300, deadline=None)
@given(
    levels=st.lists(st.one_of(LEAVES, LEAVES, _tree(2)), min_size=1, max_size=3),
    samples=SAMPLES,
    first=st.integers(-60, 60),
    steps=st.integers(1, 40),
    offset=st.sampled_from([0, 0, 25]),  # seconds past the minute: steps off the bucket edge
)
def test_no_level_holds_at_a_cold_step(
    levels: list[dict[str, Any]],
    samples: list[tuple[str, int, int, str, str, bool]],
    first: int,
    steps: int,
    offset: int,
) -> None:
    """At every step the timeline finds cold for one brand and one level, that level does
    not hold for that brand, although the windows already hold mentions of later steps;
    and a rule over several brands and levels is cold exactly where all of them are."""
    (rule,) = _rules(levels, None)
    windows = _windows(samples)
    nows = [T0 + timedelta(minutes=first + k, seconds=offset) for k in range(steps)]
    hot_for: dict[str, list[bool]] = {brand: [False] * steps for brand in BRANDS}
    for level in rule.levels:
        timeline = Timeline([replace(rule, levels=(level,))])
        for brand in BRANDS:
            hot = timeline.hot(windows, [brand], nows)
            assert len(hot) == steps
            for k, (now, is_hot) in enumerate(zip(nows, hot, strict=True)):
                hot_for[brand][k] |= is_hot
                if not is_hot:
                    assert not level.when.check(windows, brand, now).holds, (brand, now, level)
    for only in (None, ("Acme", "Umbrella"), ("Globex",)):
        wanted = BRANDS if only is None else only
        expected = [any(hot_for[b][k] for b in wanted) for k in range(steps)]
        assert Timeline([replace(rule, brands=only)]).hot(windows, BRANDS, nows) == expected


BULK = st.one_of(
    st.builds(
        lambda m, w, a: {"type": "volume", "metric": m, "window": w, "above": a},
        st.sampled_from(["total", "negative", "positive"]),
        _minutes(1, 10),
        st.integers(1, 5),
    ),
    st.builds(
        lambda m, w, b, r, v, floor, d, warm: {
            "type": "spike",
            "metric": m,
            "window": w,
            "baseline": b,
            "ratio": r,
            "min_volume": v,
            "min_baseline": floor,
            "direction": d,
            "warmup": warm,
        },
        st.sampled_from(["total", "negative"]),
        _minutes(1, 10),
        _minutes(1, 40),
        st.sampled_from([1.5, 2, 3]),
        st.integers(1, 4),
        st.sampled_from([0.5, 1.0]),
        st.sampled_from(["up", "down"]),
        st.booleans(),
    ),
    st.builds(
        lambda w, a, v: {"type": "negative_share", "window": w, "above": a, "min_volume": v},
        _minutes(1, 10),
        st.sampled_from([0.3, 0.5, 0.75, 1.0]),
        st.integers(1, 4),
    ),
    st.builds(
        lambda m, w, h, t, v, dev, d, warm: {
            "type": "zscore",
            "metric": m,
            "window": w,
            "history": h,
            "threshold": t,
            "min_volume": v,
            "min_deviation": dev,
            "direction": d,
            "warmup": warm,
        },
        st.sampled_from(["total", "negative"]),
        _minutes(1, 6),
        st.integers(2, 12),
        st.sampled_from([0.5, 1, 2, 3.5]),
        st.integers(1, 4),
        st.sampled_from([0.05, 0.5, 1.0]),
        st.sampled_from(["up", "down"]),
        st.booleans(),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    leaf=BULK,
    samples=st.lists(
        st.tuples(
            st.sampled_from(BRANDS[:3]),
            st.integers(-60, 60),
            st.integers(1, 2),
            st.sampled_from(["negative", "positive", "neutral"]),
            st.just("x"),
            st.just(False),
        ),
        max_size=100,
    ),
    first=st.integers(-30, 30),
    offset=st.sampled_from([0, 25]),
)
def test_an_unfiltered_count_leaf_is_hot_exactly_where_it_holds(
    leaf: dict[str, Any],
    samples: list[tuple[str, int, int, str, str, bool]],
    first: int,
    offset: int,
) -> None:
    """Volume, spike, negative share and plain z-scores of unfiltered counts are worked
    out as the engine works them out (warm-up included): hot for a brand exactly where the
    leaf holds (on bucket edges; off them a z-score is read by its floor only)."""
    (rule,) = _rules([leaf], None)
    windows = _windows(samples)
    nows = [T0 + timedelta(minutes=first + k, seconds=offset) for k in range(40)]
    timeline = Timeline([rule])
    (level,) = rule.levels
    for brand in BRANDS:
        hot = timeline.hot(windows, [brand], nows)
        for now, is_hot in zip(nows, hot, strict=True):
            check = level.when.check(windows, brand, now)
            if is_hot == check.holds:
                continue
            # a z-score off the bucket edges is read by its floor only, and one within the
            # tie distance of its threshold is left to the engine: hot, never cold
            assert leaf["type"] == "zscore", (brand, now, check)
            assert is_hot, (brand, now, check)
            assert offset or _near_tie(check, leaf["min_volume"]), (brand, now, check)


@settings(max_examples=100, deadline=None)
@given(
    levels=st.lists(st.one_of(BULK, LEAVES, _tree(1)), min_size=1, max_size=3),
    kept=st.lists(st.booleans(), min_size=3, max_size=3),
    samples=SAMPLES,
    first=st.integers(-60, 60),
    offset=st.sampled_from([0, 0, 25]),
    only=st.sampled_from([None, ["Acme", "Umbrella"]]),
)
def test_where_holding_is_known_it_is_what_the_engine_finds(
    levels: list[dict[str, Any]],
    kept: list[bool],
    samples: list[tuple[str, int, int, str, str, bool]],
    first: int,
    offset: int,
    only: list[str] | None,
) -> None:
    """Where the timeline's holding code of a (rule, brand) key is known (not ``-1``), its
    bits are exactly the levels whose ``when`` the engine finds holding at that step; a
    brand the rule does not apply to is ``0``; ``hot`` is where some code is not ``0``.
    Unfiltered counts are known wherever they are worked out exactly, and ``lasting``
    names the levels that keep firing for a while."""
    (plain,) = _rules(levels, only)
    rule = replace(
        plain,
        levels=tuple(
            replace(level, keep_firing_for=timedelta(minutes=5) if keep else timedelta(0))
            for level, keep in zip(plain.levels, kept, strict=False)
        ),
    )
    windows = _windows(samples)
    nows = [T0 + timedelta(minutes=first + k, seconds=offset) for k in range(30)]
    timeline = Timeline([rule, plain])
    holding = timeline.holding(windows, BRANDS, nows)
    assert holding.codes.shape == (2 * len(BRANDS), len(nows))
    for r, compiled in enumerate((rule, plain)):
        for b, brand in enumerate(BRANDS):
            row = holding.codes[r * len(BRANDS) + b]
            lasting = sum(1 << lv.rank for lv in compiled.levels if lv.keep_firing_for)
            if only is not None and brand not in only:
                assert not row.any()
                continue
            assert holding.lasting[r * len(BRANDS) + b] == lasting
            for now, code in zip(nows, row.tolist(), strict=True):
                if code == -1:
                    continue
                holds = [lv.when.check(windows, brand, now).holds for lv in compiled.levels]
                assert code == sum(1 << i for i, h in enumerate(holds) if h), (brand, now)
    assert holding.hot == timeline.hot(windows, BRANDS, nows)
    if all(_exact(level) for level in levels):
        assert (holding.codes >= 0).all()


def _exact(leaf: dict[str, Any]) -> bool:
    """Whether the timeline works ``leaf`` out exactly everywhere: volume or spike of an
    unfiltered count, or the negative share of unfiltered counts."""
    unfiltered = "source" not in leaf and "category" not in leaf
    if leaf["type"] in ("volume", "spike"):
        return unfiltered and leaf["metric"] in ("total", "negative", "positive")
    return (
        leaf["type"] == "negative_share"
        and unfiltered
        and leaf.get("metric", "negative") == "negative"
    )


def _near_tie(check: Check, min_volume: int) -> bool:
    """Whether a z-score's value (or its baseline, falling) is within 1e-9 of a bound."""
    fact = check.facts[0]
    near = [(fact.value, fact.threshold), (fact.baseline, float(min_volume))]
    return any(
        a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
        for a, b in near
    )


def test_a_quiet_stretch_is_cold_and_a_burst_is_hot() -> None:
    """Counts below every level's need leave the steps cold; the steps whose window holds
    a burst are hot, and only those."""
    (rule,) = _rules(
        [
            {"type": "volume", "metric": "negative", "window": "5m", "above": 5},
            {"type": "spike", "metric": "total", "window": "5m", "baseline": "1h", "warmup": False},
        ],
        None,
    )
    windows = VelocityWindows(timedelta(minutes=1), timedelta(hours=2))
    windows.add("Acme", T0 + timedelta(minutes=10), Sample(negative=True), 6)
    windows.add("Globex", T0 + timedelta(minutes=3), Sample(negative=True), 2)
    nows = [T0 + timedelta(minutes=k) for k in range(1, 20)]
    hot = Timeline([rule]).hot(windows, BRANDS, nows)
    # the burst's bucket starts at +10m: read by the windows ending at +11m … +15m
    assert [now for now, h in zip(nows, hot, strict=True) if h] == [
        T0 + timedelta(minutes=m) for m in range(11, 16)
    ]


def test_a_brand_in_warm_up_is_cold_and_a_not_of_it_is_hot() -> None:
    """A spike cannot hold before the brand's history covers its look-back, so its steps
    are cold; ``not`` of it holds there, so those steps are hot."""
    spike = {"type": "spike", "metric": "total", "window": "5m", "baseline": "1h", "min_volume": 1}
    windows = VelocityWindows(timedelta(minutes=1), timedelta(hours=2))
    windows.add("Acme", T0, Sample(negative=False), 50)
    nows = [T0 + timedelta(minutes=k) for k in range(1, 10)]
    (rule,) = _rules([spike], ["Acme"])
    assert Timeline([rule]).hot(windows, BRANDS, nows) == [False] * len(nows)
    (negated,) = _rules([{"type": "not", "condition": spike}], ["Acme"])
    assert Timeline([negated]).hot(windows, BRANDS, nows) == [True] * len(nows)


def test_not_of_not_is_hot_where_the_condition_may_hold() -> None:
    """``not`` answers from its inner condition's other bound: twice negated, a leaf
    read only by its floor is hot where that floor is met, as the leaf itself is."""
    mean = {"type": "mean_sentiment", "window": "5m", "below": -0.2, "min_volume": 3}
    windows = VelocityWindows(timedelta(minutes=1), timedelta(hours=2))
    windows.add("Acme", T0 + timedelta(minutes=2), Sample(negative=True, compound=-0.6), 3)
    nows = [T0 + timedelta(minutes=k) for k in range(10)]
    (rule,) = _rules([mean], ["Acme"])
    (twice,) = _rules([{"type": "not", "condition": {"type": "not", "condition": mean}}], ["Acme"])
    expected = [3 <= k <= 7 for k in range(10)]
    assert Timeline([rule]).hot(windows, BRANDS, nows) == expected
    assert Timeline([twice]).hot(windows, BRANDS, nows) == expected
    assert [rule.levels[0].when.check(windows, "Acme", now).holds for now in nows] == expected


def test_a_leaf_with_no_floor_makes_every_step_hot() -> None:
    """Summed reach has no count that bounds it: every step may hold, so every step is
    hot (the replay evaluates all of them, as before)."""
    (rule,) = _rules([{"type": "volume", "metric": "reach", "window": "5m", "above": 1}], None)
    windows = VelocityWindows(timedelta(minutes=1), timedelta(hours=2))
    nows = [T0 + timedelta(minutes=k) for k in range(5)]
    assert Timeline([rule]).hot(windows, BRANDS, nows) == [True] * 5


def test_a_stretch_fits_the_cells_it_is_given() -> None:
    """The steps of one read shrink with the brands and the bounds read, never below one."""
    (rule,) = _rules([{"type": "spike", "metric": "total", "window": "5m", "baseline": "1h"}], None)
    timeline = Timeline([rule])  # three bounds: 65m, 5m and 0 before now
    assert timeline.span(10, cells=3_000) == 100
    assert timeline.span(1_000, cells=3_000) == 1
