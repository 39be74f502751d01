"""The volume anomaly detector: ``seasonal_zscore``, ``min_deviation: poisson`` and
``type: anomaly`` (its parts, labels, look-back, warm-up, facts and config errors), on
real velocity windows."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from listener.config.schema import ConditionConfig
from listener.rules.conditions import (
    Anomaly,
    SeasonalZScore,
    ZScore,
    build_condition,
    condition_leaves,
    poisson_deviation,
    rising_floor,
)
from listener.rules.screen import median0
from listener.scoring.velocity import Sample, VelocityWindows

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
CONDITION = TypeAdapter(ConditionConfig)


def build(data: dict[str, Any]) -> Any:
    return build_condition(CONDITION.validate_python(data))


def daily(minute: int) -> int:
    """Mentions per minute on an ordinary day: a smooth cycle from 2 (03:00) to 10
    (15:00), with a fixed jitter of -1, 0 or +1 (a hash of the minute)."""
    phase = ((minute % 1440) - 180) / 1440
    rate = 2 + 8 * (1 - math.cos(2 * math.pi * phase)) / 2
    jitter = (minute * 2654435761 >> 7) % 4 - 1
    return max(0, round(rate) + min(jitter, 1))


def windows_of(days: float, per_minute: Callable[[int], int]) -> VelocityWindows:
    """``days`` of minutes from START, ``per_minute(m)`` mentions in minute m."""
    windows = VelocityWindows(MINUTE, timedelta(days=9))
    sample = Sample(negative=False)
    for m in range(int(days * 24 * 60)):
        count = per_minute(m)
        if count:
            windows.add("acme", START + m * MINUTE + timedelta(seconds=5), sample, count)
    return windows


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return START + timedelta(days=day, hours=hour, minutes=minute)


SEASONAL = {
    "type": "seasonal_zscore",
    "metric": "total",
    "window": "30m",
    "seasons": 3,
    "history": 48,
    "threshold": 7,
    "min_volume": 10,
}


def brute_seasonal(view: VelocityWindows, now: datetime, window: timedelta) -> float:
    """The seasonal z-score from its definition, window by window."""
    ratios = []
    for k in range(49):
        end = now - k * window
        c = view.value("acme", "total", end - window, end)
        b = statistics.fmean(
            view.value(
                "acme", "total", end - s * timedelta(days=1) - window, end - s * timedelta(days=1)
            )
            for s in (1, 2, 3)
        )
        ratios.append((math.log1p(c) - math.log1p(b), b))
    past = [r for r, _ in ratios[1:]]
    mid = statistics.median(past)
    mad = 1.4826 * statistics.median([abs(r - mid) for r in past])
    return (ratios[0][0] - mid) / max(mad, 1.0 / math.sqrt(max(ratios[0][1], 1.0)))


def test_a_rise_unusual_for_the_time_of_day_holds_and_the_daily_rise_does_not() -> None:
    """Four ordinary days, then on day 4 the night triples from 03:00 to 03:30: the
    seasonal z-score holds at 03:30 (and equals its definition); the morning rise at
    09:30 on the same day does not hold."""

    def counts(m: int) -> int:
        night_burst = (
            timedelta(days=4, hours=3) <= m * MINUTE < timedelta(days=4, hours=3, minutes=30)
        )
        return 6 if night_burst else daily(m)

    view = windows_of(4.5, counts)
    condition = build(SEASONAL)
    assert isinstance(condition, SeasonalZScore)
    burst = condition.check(view, "acme", at(4, 3, 30))
    assert burst.holds
    assert burst.facts[0].value == 180
    assert burst.facts[0].threshold == pytest.approx(160.7, abs=0.1)
    assert burst.facts[1].value == pytest.approx(brute_seasonal(view, at(4, 3, 30), 30 * MINUTE))
    assert burst.facts[1].value >= 7
    assert "vs the same time over the last 3 × 1d (log ratio)" in burst.facts[1].name
    morning = condition.check(view, "acme", at(4, 9, 30))
    assert not morning.holds
    assert morning.facts[0].value == 190
    # the anomaly's z-scores against all recent hours do not see it; its seasonal part does
    anomaly = build({"type": "anomaly", "metric": "total"}).check(view, "acme", at(4, 3, 30))
    assert anomaly.holds
    assert [part.holds for part in anomaly.parts or ()] == [False, False, False, False, True]


def test_seasonal_zscore_down_and_its_floors() -> None:
    """down holds when a busy window falls far below its time of day; under min_volume
    (up) nothing holds, and the deviation is never below the counting noise."""

    def counts(m: int) -> int:
        quiet = timedelta(days=4, hours=12) <= m * MINUTE < timedelta(days=4, hours=12, minutes=30)
        return 0 if quiet else daily(m)

    view = windows_of(4.6, counts)
    down = build({**SEASONAL, "direction": "down"})
    check = down.check(view, "acme", at(4, 12, 30))
    assert check.holds
    assert check.facts[1].value <= -7
    up = build({**SEASONAL, "min_volume": 1000})
    assert not up.check(view, "acme", at(4, 3, 30)).holds

    # a history repeating exactly every day has no spread: the deviation is the counting
    # noise of the baseline, 1/√b
    def repeating(m: int) -> int:
        extra = 3 if timedelta(days=4, hours=12) <= m * MINUTE < at(4, 12, 30) - START else 0
        return daily(m % 1440) + extra

    flat = windows_of(4.6, repeating)
    b = flat.value("acme", "total", at(3, 12), at(3, 12, 30))
    c = flat.value("acme", "total", at(4, 12), at(4, 12, 30))
    assert c == b + 90
    z = build(SEASONAL).check(flat, "acme", at(4, 12, 30)).facts[1].value
    assert z == pytest.approx((math.log1p(c) - math.log1p(b)) * math.sqrt(b), rel=1e-9)


def test_seasonal_zscore_warms_up_for_its_look_back() -> None:
    condition = build(SEASONAL)
    assert condition.lookback == timedelta(days=3) + 49 * 30 * MINUTE
    view = windows_of(4.5, lambda m: 50)
    early = condition.check(view, "acme", START + condition.lookback - MINUTE)
    assert not early.holds
    assert early.facts[-1].name == "minutes of history (warm-up)"
    assert all(
        f.name != "minutes of history (warm-up)"
        for f in condition.check(view, "acme", START + condition.lookback).facts
    )


@pytest.mark.parametrize(
    ("current", "floor", "holds"),
    [
        (130, "poisson", False),  # within what counting explains at 100 a window
        (200, "poisson", True),
        (130, 0.01, True),  # a fixed floor below the counting noise calls it significant
    ],
)
def test_poisson_floor_is_the_counting_noise_of_the_centre(
    current: int, floor: object, holds: bool
) -> None:
    """A flat history of 100 per 15 minutes (zero MAD) on the log scale: the poisson
    floor is 1/√100, so 130 is z ≈ 2.6 and 200 is z ≈ 6.8 against a threshold of 5."""
    assert poisson_deviation(math.log1p(100), "log") == pytest.approx(0.1, rel=1e-3)
    assert poisson_deviation(100.0, "none") == 10.0
    assert poisson_deviation(3.0, "sqrt") == 1.0
    per_minute = 100 / 15

    def counts(m: int) -> int:
        # 100 in each 15 minutes (6 or 7 a minute), then `current` in the last 15
        if m >= 24 * 60 - 15:
            return current // 15 + (1 if m - (24 * 60 - 15) < current % 15 else 0)
        return int((m % 15 + 1) * per_minute) - int((m % 15) * per_minute)

    view = windows_of(1, counts)
    condition = build(
        {
            "type": "zscore",
            "metric": "total",
            "window": "15m",
            "history": 12,
            "threshold": 5,
            "transform": "log",
            "center": "median",
            "min_deviation": floor,
        }
    )
    check = condition.check(view, "acme", START + timedelta(days=1))
    assert check.facts[0].value == current
    assert check.holds is holds


def test_anomaly_is_an_any_of_its_parts_with_its_own_labels() -> None:
    """The defaults: four log/median/poisson z-scores over 3 days and the seasonal part,
    min_volume scaled per window, look-back 4 days 30 minutes; gauge labels name it."""
    condition = build({"type": "anomaly", "metric": "total"})
    assert isinstance(condition, Anomaly)
    zs = [c for c in condition.conditions if isinstance(c, ZScore)]
    assert [(z.window, z.history, z.min_volume) for z in zs] == [
        (15 * MINUTE, 288, 5),
        (30 * MINUTE, 144, 10),
        (60 * MINUTE, 72, 20),
        (120 * MINUTE, 36, 40),
    ]
    assert all(
        (z.transform, z.center, z.min_deviation, z.threshold) == ("log", "median", "poisson", 5)
        for z in zs
    )
    seasonal = condition.conditions[-1]
    assert isinstance(seasonal, SeasonalZScore)
    assert (seasonal.window, seasonal.history, seasonal.seasons, seasonal.threshold) == (
        30 * MINUTE,
        48,
        3,
        7,
    )
    assert condition.lookback == timedelta(days=4, minutes=30)
    assert [label for label, _ in condition_leaves(condition)] == [
        "anomaly.0.zscore",
        "anomaly.1.zscore",
        "anomaly.2.zscore",
        "anomaly.3.zscore",
        "anomaly.4.seasonal_zscore",
    ]
    bare = build(
        {
            "type": "anomaly",
            "seasonal": None,
            "windows": ["1h"],
            "history": "1d",
            "min_volume_per_hour": 3,
            "language": "fr",
        }
    )
    assert [type(c) for c in bare.conditions] == [ZScore]
    assert bare.conditions[0].min_volume == 3
    assert bare.conditions[0].filters.language == "fr"
    assert bare.lookback == timedelta(hours=25)


def test_a_burst_fires_the_anomaly_with_the_facts_of_the_part_that_holds() -> None:
    """Three and a half ordinary days, then 20 minutes at 15 times the day's rate: the
    15-minute part holds (its facts are shown); the seasonal part is still warming up."""

    def counts(m: int) -> int:
        burst = timedelta(days=3, hours=14) <= m * MINUTE < timedelta(days=3, hours=14, minutes=20)
        return 150 if burst else daily(m)

    view = windows_of(3.7, counts)
    condition = build({"type": "anomaly", "metric": "total"})
    check = condition.check(view, "acme", at(3, 14, 15))
    assert check.holds
    holding = [i for i, part in enumerate(check.parts or ()) if part.holds]
    assert 0 in holding
    assert 4 not in holding  # 3d 14h of history: the seasonal part needs 4d 30m
    assert check.facts[0].name == "mentions in 15m"
    assert check.facts[0].value == 2250
    assert check.facts[1].name.startswith("robust z-score of mentions in 15m (log scale)")
    quiet = condition.check(view, "acme", at(3, 13, 0))
    assert not quiet.holds


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"windows": ["15m", "7m"]}, "history (3d) must be 2 to 1000 whole windows of 7m"),
        ({"windows": ["15m", "15m"]}, "windows must be different"),
        ({"windows": []}, "at least 1 item"),
        ({"history": "10m", "windows": ["15m"]}, "must be 2 to 1000 whole windows"),
        ({"seasonal": {"window": "2d"}}, "window must not be longer than period"),
        ({"seasonal": {"period": "2d"}}, "period must be 1d or 7d"),
        ({"seasonal": {"history": "45m"}}, "seasonal.history (45m) must be 2 to 1000"),
        ({"seasonal": {"treshold": 3}}, "treshold"),
        ({"min_volume_per_hour": 0}, "greater than 0"),
    ],
)
def test_anomaly_config_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        CONDITION.validate_python({"type": "anomaly", **data})


@pytest.mark.parametrize(
    ("transform", "floor", "threshold"),
    [
        ("log", "poisson", 5.0),
        ("log", "poisson", 3.0),
        ("log", "poisson", 7.0),
        ("log", 0.1, 5.0),
        ("sqrt", "poisson", 5.0),
        ("sqrt", 1.0, 4.0),
        ("none", "poisson", 5.0),
        ("none", 2.0, 3.0),
    ],
)
def test_rising_floor_is_a_tight_lower_bound_of_the_count_that_can_fire(
    transform: str, floor: object, threshold: float
) -> None:
    """Whatever the history (flat histories at every centre from 0 to 400 a window, where
    the deviation is its least), a count below ``rising_floor`` never holds, and the
    first whole count at or above it holds for some history."""
    condition = build(
        {
            "type": "zscore",
            "metric": "total",
            "window": "15m",
            "history": 4,
            "threshold": threshold,
            "min_volume": 1,
            "transform": transform,
            "center": "median",
            "min_deviation": floor,
            "warmup": False,
        }
    )
    assert isinstance(condition, ZScore)
    least = rising_floor(condition)
    below, at_least = math.ceil(least) - 1, math.ceil(least)
    fired_at_least = False
    for centre in range(401):

        def counts(m: int, centre: int = centre) -> int:
            window = m // 15
            return (below if window == 4 else centre) if m % 15 == 0 else 0

        view = windows_of(75 / 1440, counts)
        now = START + timedelta(minutes=75)
        assert not condition.check(view, "acme", now).holds, (centre, below)

        def higher(m: int, centre: int = centre) -> int:
            window = m // 15
            return (at_least if window == 4 else centre) if m % 15 == 0 else 0

        fired_at_least |= condition.check(windows_of(75 / 1440, higher), "acme", now).holds
    assert fired_at_least


def test_median0_is_statistics_median() -> None:
    """The screen's median along axis 0, odd and even lengths, with ties."""
    rows = [[3.0], [1.0], [2.0], [2.0], [5.0], [0.5]]
    for n in range(1, len(rows) + 1):
        values = np.array(rows[:n])
        assert median0(values)[0] == statistics.median(v[0] for v in rows[:n])
