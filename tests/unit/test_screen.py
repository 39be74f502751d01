"""The screen (listener.rules.screen) reads every brand's windows in bulk and says which
levels surely do not hold: it must never say so of a level the engine finds holding, must
agree with the engine wherever it is sure, and its readings are the engine's."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.config.load import load_config_text
from listener.model import Fact
from listener.rules.conditions import condition_leaves
from listener.rules.engine import CompiledRule, compile_rules, evaluate_rule_checks
from listener.rules.screen import screen_rule, table_for
from listener.rules.state import EngineState
from listener.scoring.velocity import Sample, VelocityWindows
from tests.support.anomaly_strategies import ANOMALY_LEAVES

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
BRANDS = ("Acme", "Globex", "Initech", "Umbrella")

LEAVES = st.one_of(
    st.builds(
        lambda m, w, a: {"type": "volume", "metric": m, "window": f"{w}m", "above": a},
        st.sampled_from(["total", "negative", "positive"]),
        st.integers(1, 20),
        st.integers(1, 12),
    ),
    st.builds(
        lambda m, w, b, r, v, d, warm: {
            "type": "spike",
            "metric": m,
            "window": f"{w}m",
            "baseline": f"{b}m",
            "ratio": r,
            "min_volume": v,
            "direction": d,
            "warmup": warm,
        },
        st.sampled_from(["total", "negative"]),
        st.integers(1, 10),
        st.integers(1, 60),
        st.sampled_from([1.5, 2, 3]),
        st.integers(1, 6),
        st.sampled_from(["up", "down"]),
        st.booleans(),
    ),
    st.builds(
        lambda m, w, h, t, v, d, tr, c, warm, floor: {
            "type": "zscore",
            "metric": m,
            "window": f"{w}m",
            "history": h,
            "threshold": t,
            "min_volume": v,
            "direction": d,
            "transform": tr,
            "center": c,
            "warmup": warm,
            "min_deviation": floor,
        },
        st.sampled_from(["total", "negative"]),
        st.integers(1, 6),
        st.integers(2, 12),
        st.sampled_from([1, 2, 3.5]),
        st.integers(1, 5),
        st.sampled_from(["up", "down"]),
        st.sampled_from(["none", "sqrt", "log"]),
        st.sampled_from(["mean", "median"]),
        st.booleans(),
        st.sampled_from([0.05, "poisson"]),
    ),
    ANOMALY_LEAVES,
    st.builds(
        lambda w, a, v: {"type": "negative_share", "window": f"{w}m", "above": a, "min_volume": v},
        st.integers(1, 20),
        st.sampled_from([0.3, 0.5, 0.75]),
        st.integers(1, 8),
    ),
    # read only by the engine: filtered, distinct, sentiment
    st.builds(
        lambda w: {"type": "volume", "metric": "voices", "window": f"{w}m", "above": 2},
        st.integers(1, 10),
    ),
    st.builds(
        lambda w: {"type": "mean_sentiment", "window": f"{w}m", "below": -0.2, "min_volume": 1},
        st.integers(1, 10),
    ),
)


def _some(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(inner, min_size=1, max_size=3)


def _tree(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    if depth == 0:
        return LEAVES
    inner = _tree(depth - 1)
    return st.one_of(
        LEAVES,
        st.builds(
            lambda cs: {"type": "all", "conditions": cs}, st.lists(inner, min_size=1, max_size=3)
        ),
        st.builds(
            lambda cs: {"type": "any", "conditions": cs}, st.lists(inner, min_size=1, max_size=3)
        ),
        st.builds(lambda c: {"type": "not", "condition": c}, inner),
    )


COUNTS = st.lists(
    st.tuples(
        st.sampled_from(BRANDS[:3]),  # the fourth brand never has a mention
        st.integers(-100, 3),  # minutes from T0 (a few in the future)
        st.integers(1, 9),
        st.booleans(),
    ),
    max_size=80,
)


def _rule(when: dict[str, Any], high: dict[str, Any]) -> CompiledRule:
    import json

    text = json.dumps(
        {
            "brands": [{"name": b} for b in BRANDS],
            "rules": [
                {
                    "name": "r",
                    "levels": {"watch": {"when": when}, "crisis": {"when": high}},
                    "resolve_after": "5m",
                }
            ],
            "routes": {"default": ["ops"]},
            "sinks": {"ops": {"type": "console"}},
        }
    )
    return compile_rules(load_config_text(text, "rules.yaml", {}))[0]


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (
            (a is None and b is None)
            or (a is not None and math.isnan(a))
            or (b is not None and math.isnan(b))
        )
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    when=_tree(2),
    high=_tree(1),
    counts=COUNTS,
    offset=st.integers(0, 179),  # seconds past T0: not always on a bucket edge
)
def test_the_screen_is_never_wrong_where_it_is_sure(
    when: dict[str, Any],
    high: dict[str, Any],
    counts: list[tuple[str, int, int, bool]],
    offset: int,
) -> None:
    rule = _rule(when, high)
    windows = VelocityWindows(timedelta(minutes=1), timedelta(days=2))
    for brand, minute, weight, negative in counts:
        windows.add(
            brand,
            T0 + timedelta(minutes=minute, seconds=7),
            Sample(
                negative=negative,
                positive=not negative,
                compound=-0.5 if negative else 0.4,
                author=f"u{minute % 3}",
            ),
            weight,
        )
    now = T0 + timedelta(seconds=offset)
    table = table_for([rule], BRANDS, windows, now)
    _, _, checks = evaluate_rule_checks(rule, BRANDS, windows, EngineState(), now)
    if table is None:  # no leaf read in bulk: nothing to screen
        return
    screen = screen_rule(rule, table, np.arange(len(BRANDS), dtype=np.intp))
    # without readings (a backtest), bounds that need no median settle more brands
    bare = screen_rule(rule, table, np.arange(len(BRANDS), dtype=np.intp), readings=False)
    for row, brand in enumerate(BRANDS):
        made = checks[brand]
        if brand in screen.brands(table, screen.still):
            assert not any(check.holds for check in made), (brand, made)
        if brand in bare.brands(table, bare.still):
            assert not any(check.holds for check in made), (brand, made)
        assert bare.still[row] >= screen.still[row]
        for level, check, readings in zip(rule.levels, made, screen.readings, strict=True):
            leaves = list(condition_leaves(level.when))
            assert len(readings) == len(leaves) == len(check.readings)
            for reading, fact in zip(readings, check.readings, strict=True):
                if reading is None:
                    continue
                assert isinstance(fact, Fact)
                assert reading.value[row] == fact.value
                got_t = None if reading.threshold is None else float(reading.threshold[row])
                got_b = None if reading.baseline is None else float(reading.baseline[row])
                assert _close(got_t, fact.threshold), (got_t, fact)
                assert _close(got_b, fact.baseline), (got_b, fact)


def test_a_level_whose_all_has_a_surely_failing_leaf_is_settled_without_the_engine() -> None:
    """An ``all`` with one leaf it cannot read in bulk is still settled when a bulk leaf
    surely fails; and the brand with a burst is left to the engine."""
    rule = _rule(
        {
            "type": "all",
            "conditions": [
                {"type": "volume", "metric": "negative", "window": "5m", "above": 5},
                {"type": "volume", "metric": "voices", "window": "5m", "above": 1},
            ],
        },
        {"type": "volume", "metric": "total", "window": "5m", "above": 50},
    )
    windows = VelocityWindows(timedelta(minutes=1), timedelta(hours=2))
    windows.add("Acme", T0 - timedelta(minutes=2), Sample(negative=True, author="a"), 9)
    windows.add("Globex", T0 - timedelta(minutes=2), Sample(negative=True, author="b"), 2)
    table = table_for([rule], BRANDS, windows, T0)
    assert table is not None
    screen = screen_rule(rule, table, np.arange(len(BRANDS), dtype=np.intp))
    assert screen.brands(table, screen.still) == {"Globex", "Initech", "Umbrella"}
    # the voices leaf has no bulk reading; the volume leaf's is the count
    watch = screen.readings[0]
    assert watch[1] is None
    assert watch[0] is not None
    assert watch[0].value.tolist() == [9.0, 2.0, 0.0, 0.0]


@pytest.mark.parametrize("direction", ["up", "down"])
def test_z_score_readings_over_a_long_history_are_the_engines_to_the_last_bit(
    direction: str,
) -> None:
    """A mean z-score over hundreds of windows of very different counts: the screen's
    value, threshold and baseline are the engine's exactly (its sums add the windows in
    the engine's order; summed pairwise, the deviation would differ in the last bits)."""
    rule = _rule(
        {
            "type": "zscore",
            "metric": "total",
            "window": "2m",
            "history": 288,
            "threshold": 3,
            "min_volume": 1,
            "direction": direction,
        },
        {"type": "volume", "metric": "total", "window": "5m", "above": 10**9},
    )
    windows = VelocityWindows(timedelta(minutes=1), timedelta(days=2))
    rng = random.Random(7)
    for minute in range(600):
        for row, brand in enumerate(BRANDS):
            weight = rng.choice([0, 1, 3, 17, 250, 4099]) * (row + 1)
            windows.add(brand, T0 - timedelta(minutes=minute, seconds=-3), Sample(False), weight)
    now = T0 + timedelta(seconds=30)
    table = table_for([rule], BRANDS, windows, now)
    assert table is not None
    screen = screen_rule(rule, table, np.arange(len(BRANDS), dtype=np.intp))
    _, _, checks = evaluate_rule_checks(rule, BRANDS, windows, EngineState(), now)
    reading = screen.readings[0][0]
    assert reading is not None
    assert reading.threshold is not None
    assert reading.baseline is not None
    for row, brand in enumerate(BRANDS):
        fact = checks[brand][0].readings[0]
        assert fact is not None
        assert float(reading.value[row]) == fact.value
        assert float(reading.threshold[row]) == fact.threshold
        assert float(reading.baseline[row]) == fact.baseline


def test_a_brand_with_a_bucket_far_ahead_is_read_in_bulk_exactly() -> None:
    """A bucket a month ahead costs the running sums one entry, not a month of buckets,
    and the windows at ``now`` do not count it."""
    rule = _rule(
        {"type": "volume", "metric": "negative", "window": "5m", "above": 2},
        {"type": "volume", "metric": "total", "window": "5m", "above": 50},
    )
    windows = VelocityWindows(timedelta(minutes=1), timedelta(hours=1))
    windows.add("Acme", T0 - timedelta(minutes=2), Sample(negative=True), 1)
    windows.add("Acme", T0 + timedelta(days=30), Sample(negative=True), 5)
    windows.add("Globex", T0 - timedelta(minutes=2), Sample(negative=True), 3)
    table = table_for([rule], BRANDS, windows, T0)
    assert table is not None
    screen = screen_rule(rule, table, np.arange(len(BRANDS), dtype=np.intp))
    assert screen.brands(table, screen.still) == {"Acme", "Initech", "Umbrella"}
    watch = screen.readings[0][0]
    assert watch is not None
    assert watch.value.tolist() == [1.0, 3.0, 0.0, 0.0]


@settings(max_examples=200, deadline=None)
@given(
    when=_tree(2),
    high=_tree(1),
    counts=COUNTS,
    offset=st.integers(0, 179),
    later=st.lists(st.integers(1, 400), min_size=1, max_size=6),
)
def test_a_sunk_brand_holds_nothing_until_its_next_mention(
    when: dict[str, Any],
    high: dict[str, Any],
    counts: list[tuple[str, int, int, bool]],
    offset: int,
    later: list[int],
) -> None:
    """A brand the screen finds sunk has no level holding at any later time while it
    gets no new mention (what lets a backtest skip it until then)."""
    rule = _rule(when, high)
    windows = VelocityWindows(timedelta(minutes=1), timedelta(days=2))
    now = T0 + timedelta(minutes=5, seconds=offset)  # every count is before now
    for brand, minute, weight, negative in counts:
        windows.add(
            brand,
            T0 + timedelta(minutes=min(minute, 4), seconds=7),
            Sample(negative=negative, positive=not negative, author=f"u{minute % 3}"),
            weight,
        )
    table = table_for([rule], BRANDS, windows, now)
    if table is None:
        return
    screen = screen_rule(rule, table, np.arange(len(BRANDS), dtype=np.intp))
    assert screen.brands(table, screen.sunk) <= screen.brands(table, screen.still)
    for minutes in later:
        at = now + timedelta(minutes=minutes)
        _, _, checks = evaluate_rule_checks(
            rule, sorted(screen.brands(table, screen.sunk)), windows, EngineState(), at
        )
        for brand, made in checks.items():
            assert not any(check.holds for check in made), (brand, minutes)


def test_a_share_that_time_can_raise_is_not_sunk() -> None:
    """Volume holds and the negative share is short of its threshold: as the positive
    minutes leave the window the share rises, so the brand is still now but not sunk
    (it would hold three minutes later without a new mention)."""
    rule = _rule(
        {
            "type": "all",
            "conditions": [
                {"type": "volume", "metric": "total", "window": "5m", "above": 1},
                {"type": "negative_share", "window": "5m", "above": 0.5, "min_volume": 1},
            ],
        },
        {"type": "volume", "metric": "negative", "window": "5m", "above": 40},
    )
    windows = VelocityWindows(timedelta(minutes=1), timedelta(hours=2))
    windows.add("Acme", T0 - timedelta(minutes=4), Sample(negative=False, positive=True), 3)
    windows.add("Acme", T0 - timedelta(minutes=1), Sample(negative=True), 2)
    table = table_for([rule], BRANDS, windows, T0)
    assert table is not None
    screen = screen_rule(rule, table, np.arange(len(BRANDS), dtype=np.intp))
    assert "Acme" in screen.brands(table, screen.still)
    assert "Acme" not in screen.brands(table, screen.sunk)
    assert {"Globex", "Initech", "Umbrella"} <= screen.brands(
        table, screen.sunk
    )  # nothing at all: volume 0 < 1
    _, _, checks = evaluate_rule_checks(
        rule, ["Acme"], windows, EngineState(), T0 + timedelta(minutes=3)
    )
    assert checks["Acme"][0].holds


def test_the_table_takes_first_buckets_already_read() -> None:
    """Given each brand's first bucket (read once per tick for the memo of settled keys),
    the bulk read uses it: the same table as reading them itself."""
    rule = _rule(
        {"type": "spike", "metric": "total", "window": "5m", "baseline": "30m", "warmup": True},
        {"type": "volume", "metric": "total", "window": "5m", "above": 50},
    )
    windows = VelocityWindows(timedelta(minutes=1), timedelta(hours=2))
    windows.add("Acme", T0 - timedelta(minutes=50), Sample(negative=False), 2)
    windows.add("Globex", T0 - timedelta(minutes=3), Sample(negative=False), 9)
    own = table_for([rule], BRANDS, windows, T0)
    given = table_for([rule], BRANDS, windows, T0, windows.first_seen_seconds(BRANDS))
    assert own is not None
    assert given is not None
    assert given.first.tolist() == own.first.tolist()
    assert {m: s.tolist() for m, s in given.sums.items()} == {
        m: s.tolist() for m, s in own.sums.items()
    }
