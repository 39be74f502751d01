"""Rule conditions: every type up and down, zero-safety, floors, warm-up, filters, facts."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from listener.config.schema import ConditionConfig, Measure, SeasonalCondition, ZScoreCondition
from listener.model import Fact
from listener.rules.conditions import (
    All,
    Check,
    CountView,
    Filters,
    Not,
    Spike,
    Volume,
    build_condition,
    center_and_spread,
    condition_leaves,
    distinct_lookback,
    lookback,
    reads_distinct,
)
from listener.rules.conditions import Any as AnyOf
from listener.scoring.velocity import Sample, VelocityWindows

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
M15 = timedelta(minutes=15)
H1 = timedelta(hours=1)
D1 = timedelta(days=1)
D7 = timedelta(days=7)
ZERO = timedelta(0)

CONDITION = TypeAdapter(ConditionConfig)

Key = tuple[Measure, timedelta, timedelta]
"""(measure, start - NOW, end - NOW)."""
FilterKey = tuple[str | None, str | None, str | None]


def cond(data: dict[str, Any]) -> ConditionConfig:
    """Validate a condition config the way rules.yaml does."""
    return CONDITION.validate_python(data)


@dataclass
class RangeView:
    """A CountView answering from values keyed by (measure, start - NOW, end - NOW).

    It answers only for the filters ``expect`` (others read 0) and says the brand was
    first seen ``history`` before NOW (None: never).
    """

    values: dict[Key, float] = field(default_factory=dict)
    history: timedelta | None = timedelta(days=60)
    expect: FilterKey = (None, None, None)
    calls: list[tuple[str, Measure, datetime, datetime, FilterKey]] = field(default_factory=list)

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
        """The stored value for the range (0 when none or other filters)."""
        filters = (category, source, language)
        self.calls.append((brand, measure, start, end, filters))
        if filters != self.expect:
            return 0.0
        return self.values.get((measure, start - NOW, end - NOW), 0.0)

    def first_seen(self, brand: str) -> datetime | None:
        """NOW - history."""
        return None if self.history is None else NOW - self.history


def cur(measure: Measure, n: float, window: timedelta = M15) -> dict[Key, float]:
    """The value over [NOW - window, NOW)."""
    return {(measure, -window, ZERO): n}


def before(
    measure: Measure, n: float, window: timedelta = M15, baseline: timedelta = H1
) -> dict[Key, float]:
    """The value over the spike baseline span [NOW - window - baseline, NOW - window)."""
    return {(measure, -window - baseline, -window): n}


def past_windows(
    measure: Measure, values: list[float], window: timedelta = M15
) -> dict[Key, float]:
    """Values of the windows before the current one, newest first (k = 1, 2, …)."""
    return {(measure, -(k + 1) * window, -k * window): v for k, v in enumerate(values, start=1)}


def seasons(
    measure: Measure, values: list[float], period: timedelta = D7, window: timedelta = M15
) -> dict[Key, float]:
    """Values of the same window 1, 2, … periods ago."""
    return {(measure, -k * period - window, -k * period): v for k, v in enumerate(values, start=1)}


def ramp(measure: Measure, values: list[float], window: timedelta = M15) -> dict[Key, float]:
    """Consecutive windows ending now, oldest first (the last is the current window)."""
    n = len(values) - 1
    return {(measure, -(n - i + 1) * window, -(n - i) * window): v for i, v in enumerate(values)}


def both(total: float = 0, negative: float = 0) -> dict[Key, float]:
    """Total and negative counts over the current 15m window."""
    return {**cur("total", total), **cur("negative", negative)}


VOLUME = {"type": "volume", "window": "15m", "above": 10}
SPIKE = {"type": "spike", "window": "15m", "baseline": "1h", "ratio": 3, "min_volume": 5}
SPIKE_DOWN = {**SPIKE, "direction": "down"}
SHARE = {"type": "negative_share", "window": "15m", "above": 0.3, "min_volume": 10}
MEAN = {"type": "mean_sentiment", "window": "15m", "below": -0.3, "min_volume": 10}
ZSCORE = {"type": "zscore", "window": "15m", "history": 4, "threshold": 3, "min_volume": 5}
ZSCORE_DOWN = {**ZSCORE, "direction": "down"}
SEASONAL = {"type": "seasonal", "window": "15m", "period": "7d", "ratio": 3, "min_volume": 5}
SEASONAL_DOWN = {**SEASONAL, "direction": "down"}
RAMP = {"type": "ramp", "window": "15m", "steps": 3, "growth": 2, "min_volume": 10}
ALL = {"type": "all", "conditions": [VOLUME, SHARE]}
ANY = {"type": "any", "conditions": [VOLUME, SHARE]}
NOT = {"type": "not", "condition": VOLUME}
OUTAGE = {"category": "outage"}

Case = tuple[str, dict[str, Any], dict[Key, float], bool]

CASES: list[Case] = [
    # volume
    ("volume below", VOLUME, cur("negative", 9), False),
    ("volume at threshold", VOLUME, cur("negative", 10), True),
    ("volume counts negative by default", VOLUME, cur("total", 50), False),
    ("volume of total", {**VOLUME, "metric": "total"}, cur("total", 50), True),
    ("volume of reach", {**VOLUME, "metric": "reach", "above": 5000}, cur("reach", 5000), True),
    ("volume of voices", {**VOLUME, "metric": "voices"}, cur("voices", 9), False),
    (
        "volume of negative stories",
        {**VOLUME, "metric": "negative_stories"},
        cur("negative_stories", 10),
        True,
    ),
    # spike up: zero-safe, floors
    ("spike zero baseline floored, under min_volume", SPIKE, cur("negative", 4), False),
    ("spike 0 -> 1 never fires", {**SPIKE, "min_volume": 1}, cur("negative", 1), False),
    ("spike zero baseline at min_volume", SPIKE, cur("negative", 5), True),
    ("spike min_baseline floor", {**SPIKE, "min_baseline": 2}, cur("negative", 5), False),
    ("spike min_baseline floor met", {**SPIKE, "min_baseline": 2}, cur("negative", 6), True),
    # a baseline of 40 per hour is 10 per 15m, so 30 are needed
    ("spike under ratio", SPIKE, {**cur("negative", 29), **before("negative", 40)}, False),
    ("spike at ratio", SPIKE, {**cur("negative", 30), **before("negative", 40)}, True),
    ("spike metric total", {**SPIKE, "metric": "total"}, cur("total", 5), True),
    # spike down: a drop to a third of a baseline of 10 per 15m
    ("spike down to a third", SPIKE_DOWN, {**cur("negative", 3), **before("negative", 40)}, True),
    (
        "spike down not far enough",
        SPIKE_DOWN,
        {**cur("negative", 4), **before("negative", 40)},
        False,
    ),
    ("spike down to zero", SPIKE_DOWN, before("negative", 40), True),
    ("spike down needs a baseline", SPIKE_DOWN, before("negative", 16), False),
    ("spike down zero everywhere", SPIKE_DOWN, {}, False),
    # negative share, of counts, reach and voices
    ("share below", SHARE, both(10, 2), False),
    ("share at threshold", SHARE, both(10, 3), True),
    ("share under min_volume", SHARE, both(9, 9), False),
    ("share of nothing", SHARE, {}, False),
    (
        "share of reach",
        {**SHARE, "metric": "negative_reach"},
        {**cur("reach", 1000), **cur("negative_reach", 700)},
        True,
    ),
    (
        "share of voices",
        {**SHARE, "metric": "negative_voices"},
        {**cur("voices", 20), **cur("negative_voices", 5)},
        False,
    ),
    # mean sentiment
    ("mean sentiment low", MEAN, {**cur("total", 20), **cur("sentiment_sum", -8)}, True),
    ("mean sentiment at threshold", MEAN, {**cur("total", 20), **cur("sentiment_sum", -6)}, True),
    ("mean sentiment mild", MEAN, {**cur("total", 20), **cur("sentiment_sum", -5)}, False),
    (
        "mean sentiment under min_volume",
        MEAN,
        {**cur("total", 9), **cur("sentiment_sum", -9)},
        False,
    ),
    ("mean sentiment of nothing", MEAN, {}, False),
    # z-score: history 10, 12, 8, 10 → mean 10, deviation √2, needed 10 + 3√2 ≈ 14.24
    (
        "zscore up",
        ZSCORE,
        {**cur("negative", 15), **past_windows("negative", [10, 12, 8, 10])},
        True,
    ),
    (
        "zscore up not enough",
        ZSCORE,
        {**cur("negative", 14), **past_windows("negative", [10, 12, 8, 10])},
        False,
    ),
    ("zscore flat zero history floors the deviation", ZSCORE, cur("negative", 5), True),
    ("zscore 0 -> 1 never fires", {**ZSCORE, "min_volume": 1}, cur("negative", 1), False),
    ("zscore under min_volume", ZSCORE, cur("negative", 4), False),
    ("zscore min_deviation", {**ZSCORE, "min_deviation": 2}, cur("negative", 5), False),
    (
        "zscore down",
        ZSCORE_DOWN,
        {**cur("negative", 15), **past_windows("negative", [20, 22, 18, 20])},
        True,
    ),
    (
        "zscore down not enough",
        ZSCORE_DOWN,
        {**cur("negative", 16), **past_windows("negative", [20, 22, 18, 20])},
        False,
    ),
    ("zscore down needs a mean", ZSCORE_DOWN, past_windows("negative", [4, 4, 4, 4]), False),
    ("zscore down zero everywhere", ZSCORE_DOWN, {}, False),
    # robust z-score: history 10, 12, 8, 100 → median 11, MAD 2 → needed 11 + 3 × 2.9652
    # ≈ 19.9; the mean (32.5) and deviation (≈ 39) of the same history need ≈ 150
    (
        "zscore median ignores a burst in the history",
        {**ZSCORE, "center": "median"},
        {**cur("negative", 20), **past_windows("negative", [10, 12, 8, 100])},
        True,
    ),
    (
        "zscore median not enough",
        {**ZSCORE, "center": "median"},
        {**cur("negative", 19), **past_windows("negative", [10, 12, 8, 100])},
        False,
    ),
    (
        "zscore mean hides behind a burst in the history",
        ZSCORE,
        {**cur("negative", 20), **past_windows("negative", [10, 12, 8, 100])},
        False,
    ),
    # sqrt scale: a flat history of 100 → 2√100.375 ≈ 20.04, deviation floored at 1 (the
    # counting noise) → needed ((20.04 + 3) / 2)² − 3/8 ≈ 132.3 (raw scale: 103)
    (
        "zscore sqrt",
        {**ZSCORE, "transform": "sqrt"},
        {**cur("negative", 133), **past_windows("negative", [100] * 4)},
        True,
    ),
    (
        "zscore sqrt within the counting noise",
        {**ZSCORE, "transform": "sqrt"},
        {**cur("negative", 132), **past_windows("negative", [100] * 4)},
        False,
    ),
    (
        "zscore raw floor is tighter than the counting noise",
        ZSCORE,
        {**cur("negative", 104), **past_windows("negative", [100] * 4)},
        True,
    ),
    (
        "zscore sqrt down",
        {**ZSCORE_DOWN, "transform": "sqrt"},
        {**cur("negative", 72), **past_windows("negative", [100] * 4)},
        True,
    ),
    (
        "zscore sqrt down not enough",
        {**ZSCORE_DOWN, "transform": "sqrt"},
        {**cur("negative", 73), **past_windows("negative", [100] * 4)},
        False,
    ),
    # log scale: a flat history of 9 → log 10, floor 0.1 → needed 10·e^0.3 − 1 ≈ 12.5
    (
        "zscore log",
        {**ZSCORE, "transform": "log", "min_deviation": 0.1},
        {**cur("negative", 13), **past_windows("negative", [9] * 4)},
        True,
    ),
    (
        "zscore log not enough",
        {**ZSCORE, "transform": "log", "min_deviation": 0.1},
        {**cur("negative", 12), **past_windows("negative", [9] * 4)},
        False,
    ),
    (
        "zscore transformed still needs min_volume",
        {**ZSCORE, "transform": "log", "center": "median", "min_volume": 20},
        {**cur("negative", 19), **past_windows("negative", [0] * 4)},
        False,
    ),
    # seasonal: the same 15m one week earlier
    ("seasonal up", SEASONAL, {**cur("negative", 30), **seasons("negative", [10])}, True),
    ("seasonal under ratio", SEASONAL, {**cur("negative", 29), **seasons("negative", [10])}, False),
    ("seasonal zero last week at min_volume", SEASONAL, cur("negative", 5), True),
    ("seasonal zero last week under min_volume", SEASONAL, cur("negative", 4), False),
    (
        "seasonal averages seasons",
        {**SEASONAL, "seasons": 2},
        {**cur("negative", 44), **seasons("negative", [10, 20])},
        False,
    ),
    (
        "seasonal averages seasons met",
        {**SEASONAL, "seasons": 2},
        {**cur("negative", 45), **seasons("negative", [10, 20])},
        True,
    ),
    (
        "seasonal daily",
        {**SEASONAL, "period": "1d"},
        {**cur("negative", 30), **seasons("negative", [10], D1)},
        True,
    ),
    (
        "seasonal daily ignores last week",
        {**SEASONAL, "period": "1d"},
        {**cur("negative", 30), **seasons("negative", [30])},
        True,
    ),
    ("seasonal down", SEASONAL_DOWN, {**cur("negative", 10), **seasons("negative", [30])}, True),
    (
        "seasonal down not enough",
        SEASONAL_DOWN,
        {**cur("negative", 11), **seasons("negative", [30])},
        False,
    ),
    ("seasonal down needs a baseline", SEASONAL_DOWN, seasons("negative", [4]), False),
    # ramp: rising in each of 3 windows, and the last ≥ 2 × the first and ≥ 10
    ("ramp", RAMP, ramp("negative", [5, 6, 8, 12]), True),
    ("ramp with a flat step", RAMP, ramp("negative", [5, 6, 6, 12]), False),
    ("ramp not grown enough", RAMP, ramp("negative", [5, 6, 8, 9]), False),
    ("ramp under min_volume", RAMP, ramp("negative", [0, 1, 2, 3]), False),
    ("ramp from zero floors the first at 1", RAMP, ramp("negative", [0, 4, 8, 12]), True),
    ("ramp rising only twice", RAMP, ramp("negative", [7, 5, 6, 12]), False),
    # combinators
    ("all both", ALL, both(20, 10), True),
    ("all one", ALL, both(20, 5), False),
    ("any one", ANY, both(20, 9), True),
    ("any none", ANY, both(40, 9), False),
    ("not holds", NOT, cur("negative", 3), True),
    ("not fails", NOT, cur("negative", 30), False),
]


@pytest.mark.parametrize(
    ("config", "values", "holds"),
    [pytest.param(c, v, h, id=name) for name, c, v, h in CASES],
)
def test_condition_table(config: dict[str, Any], values: dict[Key, float], holds: bool) -> None:
    """Each condition holds exactly when its values meet its thresholds and floors."""
    check = build_condition(cond(config)).check(RangeView(values), "acme", NOW)
    assert isinstance(check, Check)
    assert check.holds is holds


WARM_CASES: list[tuple[str, dict[str, Any], dict[Key, float], timedelta]] = [
    ("spike", SPIKE, cur("negative", 100), M15 + H1),
    ("spike down", SPIKE_DOWN, before("negative", 400), M15 + H1),
    ("zscore", ZSCORE, cur("negative", 100), 5 * M15),
    ("seasonal", SEASONAL, cur("negative", 100), D7 + M15),
    ("ramp", RAMP, ramp("negative", [5, 6, 8, 12]), 4 * M15),
]


@pytest.mark.parametrize(
    ("config", "values", "need"),
    [pytest.param(c, v, n, id=name) for name, c, v, n in WARM_CASES],
)
def test_warm_up(config: dict[str, Any], values: dict[Key, float], need: timedelta) -> None:
    """Conditions on history hold only once the brand has their look-back of history."""
    condition = build_condition(cond(config))
    assert condition.lookback == need
    assert condition.check(RangeView(values, history=need), "acme", NOW).holds
    early = condition.check(RangeView(values, history=need - timedelta(seconds=1)), "a", NOW)
    assert not early.holds
    assert early.facts[-1] == Fact(
        "minutes of history (warm-up)", need / timedelta(minutes=1) - 1, need / timedelta(minutes=1)
    )
    assert not condition.check(RangeView(values, history=None), "acme", NOW).holds
    opted_out = build_condition(cond({**config, "warmup": False}))
    assert opted_out.check(RangeView(values, history=None), "acme", NOW).holds


def test_conditions_without_history_have_no_warm_up() -> None:
    """Volume, share and mean sentiment hold for a brand first seen just now."""
    view = RangeView({**both(20, 20), **cur("sentiment_sum", -20)}, history=ZERO)
    for config in (VOLUME, SHARE, MEAN):
        assert build_condition(cond(config)).check(view, "acme", NOW).holds, config["type"]


FILTERED = [VOLUME, SPIKE, SHARE, MEAN, ZSCORE, SEASONAL, RAMP]


@pytest.mark.parametrize("config", FILTERED, ids=lambda c: c["type"])
def test_filters_reach_the_view(config: dict[str, Any]) -> None:
    """Every count-based condition reads its measures through its filters, and only them."""
    filtered = build_condition(cond({**config, **OUTAGE, "source": "x", "language": "en"}))
    view = RangeView(expect=("outage", "x", "en"))
    filtered.check(view, "acme", NOW)
    assert view.calls
    assert {filters for *_, filters in view.calls} == {("outage", "x", "en")}


def test_filtered_values_decide() -> None:
    """A filtered volume sees the filtered series only."""
    config = cond({**VOLUME, **OUTAGE})
    assert (
        build_condition(config)
        .check(RangeView(cur("negative", 10), expect=("outage", None, None)), "a", NOW)
        .holds
    )
    assert not build_condition(config).check(RangeView(cur("negative", 10)), "a", NOW).holds


def test_volume_reads_its_window() -> None:
    """Volume asks the view for the metric over [now - window, now) of the brand."""
    view = RangeView()
    Volume("total", M15, 3).check(view, "acme", NOW)
    assert view.calls == [("acme", "total", NOW - M15, NOW, (None, None, None))]


def test_zscore_seasonal_and_ramp_read_their_windows() -> None:
    """zscore reads history windows back to back; seasonal the same window per period;
    ramp steps + 1 windows ending now (in any order)."""
    view = RangeView()
    build_condition(cond(ZSCORE)).check(view, "a", NOW)
    assert [(c[2] - NOW, c[3] - NOW) for c in view.calls] == [(-M15, ZERO)] + [
        (-(k + 1) * M15, -k * M15) for k in range(1, 5)
    ]
    view = RangeView()
    build_condition(cond({**SEASONAL, "seasons": 2})).check(view, "a", NOW)
    assert [(c[2] - NOW, c[3] - NOW) for c in view.calls] == [
        (-M15, ZERO),
        (-D7 - M15, -D7),
        (-2 * D7 - M15, -2 * D7),
    ]
    view = RangeView()
    build_condition(cond(RAMP)).check(view, "a", NOW)
    assert sorted((c[2] - NOW, c[3] - NOW) for c in view.calls) == [
        (-4 * M15, -3 * M15),
        (-3 * M15, -2 * M15),
        (-2 * M15, -M15),
        (-M15, ZERO),
    ]


# ---------------------------------------------------------------- facts


def check_of(config: dict[str, Any], values: dict[Key, float], **view: Any) -> Check:
    """Build and check a condition at NOW."""
    return build_condition(cond(config)).check(RangeView(values, **view), "acme", NOW)


def test_volume_facts() -> None:
    """Volume reports the value with its threshold under a readable name."""
    check = check_of(VOLUME, cur("negative", 12))
    assert check.facts == (Fact("negative mentions in 15m", 12, threshold=10),)
    assert str(check.facts[0]) == "negative mentions in 15m = 12 (threshold 10)"


def test_facts_name_metrics_and_filters() -> None:
    """Fact names say which measure and which filters: reach, voices, [category=…]."""
    reach = check_of({**VOLUME, "metric": "negative_reach"}, {})
    assert reach.facts[0].name == "negative reach in 15m"
    voices = check_of(
        {**VOLUME, "metric": "voices", **OUTAGE, "source": "x"}, {}, expect=("outage", "x", None)
    )
    assert voices.facts[0].name == "voices in 15m [category=outage, source=x]"


def test_spike_facts() -> None:
    """Spike reports the value (needed value, baseline per window) and the ratio."""
    check = check_of(SPIKE, {**cur("negative", 45), **before("negative", 40)})
    assert check.holds
    assert check.facts == (
        Fact("negative mentions in 15m", 45, threshold=30.0, baseline=10.0),
        Fact("negative mentions in 15m vs 1h baseline (ratio)", 4.5, threshold=3),
    )
    assert str(check.facts[0]) == "negative mentions in 15m = 45 (threshold 30) (baseline 10)"


def test_spike_down_facts() -> None:
    """A downward spike reports the most allowed, the ratio and the baseline's floor."""
    check = check_of({**SPIKE_DOWN, "metric": "total"}, before("total", 40))
    assert check.holds
    assert check.facts == (
        Fact("mentions in 15m", 0, threshold=10 / 3, baseline=10.0),
        Fact("mentions in 15m vs 1h baseline (ratio)", 0, threshold=1 / 3),
        Fact("mentions per 15m in the 1h baseline", 10.0, threshold=5),
    )


def test_spike_zero_baseline_is_safe() -> None:
    """With no baseline and no current mentions the spike neither holds nor divides by zero."""
    spike = Spike("negative", M15, H1, ratio=3, min_volume=1, min_baseline=0.5)
    check = spike.check(RangeView(), "a", NOW)
    assert not check.holds
    assert check.facts[1].value == 0
    assert check.facts[0].threshold == 1.5


def test_zscore_facts() -> None:
    """zscore reports the value (needed value, baseline = the mean) and z."""
    check = check_of(ZSCORE, {**cur("negative", 16), **past_windows("negative", [10, 10, 10, 10])})
    assert check.facts == (
        Fact("negative mentions in 15m", 16, threshold=13.0, baseline=10.0),
        Fact("z-score of negative mentions in 15m vs the 4 × 15m before", 6.0, threshold=3),
    )
    down = check_of(ZSCORE_DOWN, {**cur("negative", 4), **past_windows("negative", [10] * 4)})
    assert down.holds
    assert down.facts[0] == Fact("negative mentions in 15m", 4, threshold=7.0, baseline=10.0)
    assert down.facts[1].value == -6.0
    assert down.facts[1].threshold == -3


def test_robust_sqrt_zscore_facts() -> None:
    """With a transform the facts stay in counts: the count needed is mapped back from the
    transformed scale and the baseline is the centre as a count; z names its statistic."""
    config = {**ZSCORE, "transform": "sqrt", "center": "median"}
    check = check_of(config, {**cur("negative", 133), **past_windows("negative", [100] * 4)})
    value, z = check.facts
    assert check.holds
    assert value.name == "negative mentions in 15m"
    assert value.value == 133
    assert value.threshold == pytest.approx((2 * math.sqrt(100.375) + 3) ** 2 / 4 - 0.375)
    assert value.baseline == pytest.approx(100.0)
    assert z.name == "robust z-score of negative mentions in 15m (sqrt scale) vs the 4 × 15m before"
    assert z.value == pytest.approx(2 * math.sqrt(133.375) - 2 * math.sqrt(100.375))
    assert z.threshold == 3


def _brute_z(current: int, past: list[int], transform: str, center: str, floor: float) -> float:
    """The z-score recomputed from scratch with the statistics module."""
    scale = {
        "none": float,
        "sqrt": lambda x: 2 * math.sqrt(x + 0.375),
        "log": math.log1p,
    }[transform]
    ys = [scale(x) for x in past]
    if center == "median":
        mid = statistics.median(ys)
        spread = 1.4826 * statistics.median([abs(y - mid) for y in ys])
    else:
        mid, spread = statistics.fmean(ys), statistics.pstdev(ys)
    return (scale(current) - mid) / max(spread, floor)


@settings(max_examples=200, deadline=None)
@given(
    past=st.lists(st.integers(0, 5000), min_size=2, max_size=40),
    current=st.integers(0, 20000),
    transform=st.sampled_from(["none", "sqrt", "log"]),
    center=st.sampled_from(["mean", "median"]),
    threshold=st.sampled_from([1, 2.5, 3, 5]),
    direction=st.sampled_from(["up", "down"]),
)
def test_zscore_equals_brute_force(
    past: list[int], current: int, transform: str, center: str, threshold: float, direction: str
) -> None:
    """For any history, scale and centre, z and the decision equal a from-scratch
    recomputation (away from the exact boundary, where rounding may fall either way)."""
    floor = 0.1 if transform == "log" else 1.0
    config = {
        **ZSCORE,
        "history": len(past),
        "threshold": threshold,
        "direction": direction,
        "transform": transform,
        "center": center,
        "min_deviation": floor,
    }
    values = {**cur("negative", current), **past_windows("negative", [float(x) for x in past])}
    check = check_of(config, values)
    expected = _brute_z(current, past, transform, center, floor)
    z = check.facts[1].value
    assert z == pytest.approx(expected, rel=1e-9, abs=1e-9)
    if abs(expected - (threshold if direction == "up" else -threshold)) < 1e-6:
        return
    if direction == "up":
        assert check.holds is (current >= 5 and expected >= threshold)
    else:
        assert check.facts[0].baseline is not None
        centre = check.facts[0].baseline
        assert check.holds is (centre >= 5 and expected <= -threshold)


def test_median_and_spread() -> None:
    """mean/pstdev and median/MAD × 1.4826 (the median of an even length: the middle two's
    mean)."""
    assert center_and_spread([2.0, 4.0], "mean") == (3.0, 1.0)
    mid, spread = center_and_spread([1.0, 2.0, 3.0, 100.0], "median")
    assert mid == 2.5
    assert spread == pytest.approx(1.4826)


def test_seasonal_facts() -> None:
    """seasonal reports the value against the same time one or more periods earlier."""
    check = check_of(SEASONAL, {**cur("negative", 30), **seasons("negative", [10])})
    assert check.facts == (
        Fact("negative mentions in 15m", 30, threshold=30.0, baseline=10.0),
        Fact("negative mentions in 15m vs the same time 7d earlier (ratio)", 3.0, threshold=3),
    )
    two = check_of({**SEASONAL, "seasons": 2}, seasons("negative", [10, 20]))
    assert two.facts[1].name == (
        "negative mentions in 15m vs the same time over the last 2 × 7d (ratio)"
    )
    assert two.facts[0].baseline == 15


def test_ramp_facts() -> None:
    """ramp reports the current value (baseline = the window before the ramp) and the rises."""
    check = check_of(RAMP, ramp("negative", [5, 6, 8, 12]))
    assert check.facts == (
        Fact("negative mentions in 15m", 12, threshold=10.0, baseline=5),
        Fact("rises in a row of negative mentions per 15m", 3, threshold=3),
    )
    broken = check_of(RAMP, ramp("negative", [5, 9, 8, 12]))
    assert broken.facts[1].value == 1


def test_share_facts() -> None:
    """Negative share reports the share and its whole with their thresholds."""
    check = check_of(SHARE, both(20, 8))
    assert check.facts == (
        Fact("negative share in 15m", 0.4, threshold=0.3),
        Fact("mentions in 15m", 20, threshold=10),
    )
    reach = check_of({**SHARE, "metric": "negative_reach"}, cur("reach", 100))
    assert [f.name for f in reach.facts] == ["negative share of reach in 15m", "reach in 15m"]


def test_mean_sentiment_facts() -> None:
    """Mean sentiment reports the mean and the mention count with their thresholds."""
    check = check_of(MEAN, {**cur("total", 20), **cur("sentiment_sum", -8)})
    assert check.facts == (
        Fact("mean sentiment in 15m", -0.4, threshold=-0.3),
        Fact("mentions in 15m", 20, threshold=10),
    )


def test_combinator_facts() -> None:
    """All shows every child's facts; Any shows those that hold (or all); Not shows its child's."""
    hold = Volume("negative", M15, 1)
    fail = Volume("total", H1, 100)
    view = RangeView({**cur("negative", 2), **cur("total", 3, H1)})
    assert All((hold, fail)).check(view, "a", NOW) == Check(
        False, (Fact("negative mentions in 15m", 2, 1), Fact("mentions in 1h", 3, 100))
    )
    assert AnyOf((fail, hold)).check(view, "a", NOW) == Check(
        True, (Fact("negative mentions in 15m", 2, 1),)
    )
    assert AnyOf((fail,)).check(view, "a", NOW) == Check(False, (Fact("mentions in 1h", 3, 100),))
    assert Not(fail).check(view, "a", NOW) == Check(True, (Fact("mentions in 1h", 3, 100),))


# ---------------------------------------------------------------- real windows


def test_with_velocity_windows() -> None:
    """Conditions work on real bucketed values and warm-up history from VelocityWindows."""
    windows = VelocityWindows(retention=timedelta(hours=2))
    for minute in range(60):  # one negative mention a minute for the hour before the window
        windows.add("acme", NOW - M15 - timedelta(minutes=minute + 1), Sample(negative=True))
    for second in range(0, 900, 30):  # 30 in the last 15 minutes
        windows.add("acme", NOW - timedelta(seconds=second + 1), Sample(negative=True))
    view: CountView = windows
    assert build_condition(cond({**SPIKE, "ratio": 2})).check(view, "acme", NOW).holds
    assert not build_condition(cond({**SPIKE, "ratio": 2.5})).check(view, "acme", NOW).holds
    # the brand has 1h15m of history: a 2h baseline is still warming up
    assert (
        not build_condition(cond({**SPIKE, "baseline": "2h", "ratio": 2}))
        .check(view, "acme", NOW)
        .holds
    )


def test_distinct_voices_and_filters_on_velocity_windows() -> None:
    """Voices count one author once; a category filter keeps that category's mentions."""
    windows = VelocityWindows(retention=timedelta(hours=2))
    for i in range(30):
        sample = Sample(negative=True, author=f"u{i % 3}", categories=("outage",), source="x")
        windows.add("acme", NOW - timedelta(seconds=20 * i + 1), sample)
    volume = {**VOLUME, "metric": "negative_voices", "above": 3}
    assert build_condition(cond(volume)).check(windows, "acme", NOW).holds
    assert not build_condition(cond({**volume, "above": 4})).check(windows, "acme", NOW).holds
    outage = {**VOLUME, **OUTAGE, "above": 30}
    assert build_condition(cond(outage)).check(windows, "acme", NOW).holds
    pricing = {**outage, "category": "pricing"}
    check = build_condition(cond(pricing)).check(windows, "acme", NOW)
    assert check.facts == (Fact("negative mentions in 15m [category=pricing]", 0, 30),)


# ---------------------------------------------------------------- config and registry


def test_defaults_are_documented_values() -> None:
    """New keys default so that old configs keep their meaning and floors are on."""
    spike = build_condition(cond({"type": "spike", "window": "15m"}))
    assert spike == Spike("negative", M15, timedelta(hours=6), 3.0, 10, 1.0, "up", Filters(), True)
    z = cond({"type": "zscore", "window": "15m"})
    assert isinstance(z, ZScoreCondition)
    assert (z.history, z.threshold, z.direction, z.min_volume, z.min_deviation, z.warmup) == (
        24,
        3.0,
        "up",
        10,
        1.0,
        True,
    )
    assert (z.transform, z.center) == ("none", "mean")
    s = cond({"type": "seasonal", "window": "1h"})
    assert isinstance(s, SeasonalCondition)
    assert (s.period, s.seasons, s.ratio, s.min_volume, s.min_baseline) == (D7, 1, 3.0, 10, 1.0)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({**SEASONAL, "period": "2d"}, "period must be 1d or 7d"),
        ({**SEASONAL, "period": "1d", "window": "2d"}, "window must not be longer than period"),
        ({**VOLUME, "metric": "sentiment_sum"}, "metric"),
        ({**SHARE, "metric": "voices"}, "metric"),
        ({**SPIKE, "direction": "sideways"}, "direction"),
        ({**ZSCORE, "history": 1}, "history"),
        ({**ZSCORE, "transform": "cube"}, "transform"),
        ({**ZSCORE, "center": "mode"}, "center"),
        ({**RAMP, "steps": 1}, "steps"),
        ({**RAMP, "growth": 1}, "growth"),
        ({**MEAN, "below": -2}, "below"),
        ({**VOLUME, "category": ""}, "category"),
        ({**NOT, "metric": "total"}, "metric"),
    ],
)
def test_invalid_configs_are_rejected(config: dict[str, Any], match: str) -> None:
    """Out-of-range or unknown values are rejected by the strict models."""
    with pytest.raises(ValidationError, match=match):
        cond(config)


def test_unknown_config_is_rejected() -> None:
    """build_condition refuses unknown config types and lists the known ones."""
    with pytest.raises(ValueError, match="known types: all, anomaly, any, mean_sentiment"):
        build_condition(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (VOLUME, M15),
        (SHARE, M15),
        (MEAN, M15),
        (SPIKE, M15 + H1),
        (ZSCORE, 5 * M15),
        ({**SEASONAL, "seasons": 2}, 2 * D7 + M15),
        (RAMP, 4 * M15),
        ({"type": "all", "conditions": [VOLUME, {"type": "not", "condition": SPIKE}]}, M15 + H1),
        ({"type": "any", "conditions": [RAMP, MEAN]}, 4 * M15),
    ],
)
def test_lookback(config: dict[str, Any], expected: timedelta) -> None:
    """lookback is the furthest a condition reads back from now, for every type."""
    assert lookback(cond(config)) == expected
    assert build_condition(cond(config)).lookback == expected


def test_distinct_lookback() -> None:
    """distinct_lookback covers only conditions reading voices or stories."""
    voices = {**SPIKE, "metric": "negative_voices"}
    assert distinct_lookback(cond(SPIKE)) == ZERO
    assert distinct_lookback(cond(voices)) == M15 + H1
    assert distinct_lookback(cond({**SHARE, "metric": "negative_stories"})) == M15
    nested = {"type": "all", "conditions": [RAMP, {"type": "not", "condition": voices}]}
    assert distinct_lookback(cond(nested)) == M15 + H1
    for config in (SPIKE, voices, {**SHARE, "metric": "negative_stories"}, nested):
        assert reads_distinct(build_condition(cond(config))) == distinct_lookback(cond(config))


def test_window_is_the_longest_current_window_of_the_leaves() -> None:
    """A condition's window is the longest window among its leaves, through all/any/not."""
    nested = {
        "type": "any",
        "conditions": [
            {**RAMP, "window": "5m"},
            {"type": "not", "condition": {**VOLUME, "window": "2h"}},
            {"type": "all", "conditions": [{**SHARE, "window": "30m"}]},
        ],
    }
    assert build_condition(cond(nested)).window == timedelta(hours=2)
    assert build_condition(cond({**ZSCORE, "window": "7m"})).window == timedelta(minutes=7)


def test_checks_carry_the_readings_of_every_leaf_in_leaf_order() -> None:
    """An all/any/not check's readings are each leaf's own first fact (what the gauges
    show), in the order of condition_leaves, without checking the leaves again."""
    windows = VelocityWindows(retention=timedelta(days=1))
    for minute in range(120):
        sample = Sample(negative=minute % 2 == 0, compound=-0.2, author=f"a{minute % 7}")
        windows.add("acme", NOW - timedelta(minutes=minute + 1), sample, weight=minute % 4)
    nested = {
        "type": "any",
        "conditions": [
            {**RAMP, "window": "5m"},
            {"type": "not", "condition": {**VOLUME, "window": "2h"}},
            {"type": "all", "conditions": [SHARE, ZSCORE, {**SPIKE, "metric": "voices"}]},
        ],
    }
    condition = build_condition(cond(nested))
    leaves = list(condition_leaves(condition))
    assert [path for path, _ in leaves] == [
        "any.0.ramp",
        "any.1.not.volume",
        "any.2.all.0.negative_share",
        "any.2.all.1.zscore",
        "any.2.all.2.spike",
    ]
    check = condition.check(windows, "acme", NOW)
    assert check.readings == tuple(leaf.check(windows, "acme", NOW).facts[0] for _, leaf in leaves)


def test_all_of_shows_a_shared_measurement_once_with_the_binding_threshold() -> None:
    """A zscore and a spike over the same window both measure "mentions in 15m": the
    all-of reports it once, with the higher of the two least-allowed values (both must
    hold), beside the z-score and the ratio."""
    values = {
        **cur("total", 45),
        **past_windows("total", [10, 10, 10, 10]),
        **before("total", 40, baseline=H1),
    }
    zscore = {**ZSCORE, "metric": "total"}
    spike = {**SPIKE, "metric": "total"}
    alone = [check_of(c, values).facts[0] for c in (zscore, spike)]
    assert len({f.threshold for f in alone}) == 2  # the two disagree on the threshold
    check = check_of({"type": "all", "conditions": [zscore, spike]}, values)
    names = [f.name for f in check.facts]
    assert names.count("mentions in 15m") == 1
    assert len(check.facts) == 3
    (shared,) = [f for f in check.facts if f.name == "mentions in 15m"]
    assert shared.threshold == max(f.threshold or 0 for f in alone)
    swapped = check_of({"type": "all", "conditions": [spike, zscore]}, values)
    assert set(swapped.facts) == set(check.facts)


def test_all_of_keeps_facts_whose_binding_threshold_is_unknown() -> None:
    """An up and a down condition on the same measurement keep their own facts."""
    values = {**cur("total", 0), **before("total", 40)}
    up, down = {**SPIKE, "metric": "total"}, {**SPIKE_DOWN, "metric": "total"}
    check = check_of({"type": "all", "conditions": [up, down]}, values)
    assert [f.name for f in check.facts].count("mentions in 15m") == 2


@dataclass
class PlainView:
    """``VelocityWindows`` seen through the bare :class:`CountView` (no strided reads)."""

    inner: VelocityWindows

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
        return self.inner.value(
            brand, measure, start, end, category=category, source=source, language=language
        )

    def first_seen(self, brand: str) -> datetime | None:
        return self.inner.first_seen(brand)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=150),
    negative_every=st.integers(min_value=1, max_value=4),
    offset_s=st.integers(min_value=0, max_value=119),
    extra=st.sampled_from(
        [
            {},
            {"center": "median"},
            {"transform": "sqrt"},
            {"transform": "log", "direction": "down"},
            {"metric": "negative", "window": "7m", "history": 9},
            {"source": "x"},
        ]
    ),
)
def test_strided_reads_decide_like_range_reads(
    counts: list[int], negative_every: int, offset_s: int, extra: dict[str, Any]
) -> None:
    """zscore and ramp read through running sums (strided) give the same checks, facts and
    all, as when every window is read range by range."""
    windows = VelocityWindows(retention=timedelta(days=2))
    start = NOW - len(counts) * timedelta(minutes=1)
    for i, n in enumerate(counts):
        sample = Sample(negative=i % negative_every == 0, source="x" if i % 3 else None)
        windows.add("acme", start + i * timedelta(minutes=1), sample, weight=n)
    now = NOW + timedelta(seconds=offset_s)
    zscore = build_condition(cond({**ZSCORE, "threshold": 1, "min_volume": 1, **extra}))
    ramp = build_condition(cond({**RAMP, "min_volume": 1, "window": "2m"}))
    for condition in (zscore, ramp):
        assert condition.check(windows, "acme", now) == condition.check(
            PlainView(windows), "acme", now
        )
