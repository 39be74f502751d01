"""Rule conditions: pure checks of mention measures at a given ``now``.

Every condition reads measures through a :class:`CountView` over half-open ranges
``[start, end)`` (``VelocityWindows`` is the production view; its values are bucketed,
see ``listener.scoring.velocity``) and returns a :class:`Check`: whether it holds and the
:class:`~listener.model.Fact` values behind the decision, for alerts.

Count-based conditions read one ``metric`` (mentions, negative mentions, reach, distinct
voices or stories, …), optionally filtered to a category, source or language
(:class:`Filters`). Conditions that compare with history (spike, zscore, seasonal, ramp)
have a warm-up: with ``warmup`` they do not hold until the brand's ``first_seen`` is at
least their :attr:`~Condition.lookback` before ``now`` (a fact says how much history
there is), so a brand that has just appeared cannot "spike" against an empty past.

Built from config by :func:`build_condition`, whose registry :data:`CONDITIONS` (a
:class:`~listener.registry.Registry`, the shape every extension point shares) maps each
condition config class to its builder.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal, Protocol, cast, runtime_checkable

from listener.config.duration import format_duration as _format_duration
from listener.config.schema import (
    AllCondition,
    AnomalyCondition,
    AnyCondition,
    ConditionConfig,
    Direction,
    MeanSentimentCondition,
    Measure,
    Metric,
    NegativeShareCondition,
    NotCondition,
    RampCondition,
    SeasonalCondition,
    SeasonalZScoreCondition,
    ShareMetric,
    SpikeCondition,
    VolumeCondition,
    ZCenter,
    ZScoreCondition,
    ZTransform,
)
from listener.model import Fact
from listener.registry import Registry

__all__ = [
    "CONDITIONS",
    "All",
    "Anomaly",
    "Any",
    "Check",
    "Condition",
    "CountView",
    "Filters",
    "MeanSentiment",
    "NegativeShare",
    "Not",
    "Ramp",
    "Seasonal",
    "SeasonalZScore",
    "Spike",
    "StridedView",
    "Volume",
    "ZScore",
    "anomaly_parts",
    "build_condition",
    "center_and_spread",
    "condition_leaves",
    "distinct_lookback",
    "lookback",
    "poisson_deviation",
    "reads_distinct",
    "rising_floor",
]


class CountView(Protocol):
    """Read access to measures of mentions per brand (see ``listener.scoring.velocity``)."""

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
        """``measure`` of ``brand`` over ``[start, end)``, restricted by the filters given."""
        ...

    def first_seen(self, brand: str) -> datetime | None:
        """When the brand's history starts (None when it has none)."""
        ...


@runtime_checkable
class StridedView(CountView, Protocol):
    """A :class:`CountView` that reads adjacent windows in one call (``VelocityWindows``
    does it from running sums); views without it are read window by window."""

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
        """``value`` over ``[end - (k + 1) × width, end - k × width)`` for k = 0 … count - 1."""
        ...


@lru_cache(maxsize=64)
def _strided(view_type: type) -> bool:
    """Whether views of this type are :class:`StridedView` (an isinstance check on a
    runtime protocol costs tens of µs; the answer depends on the type only)."""
    return issubclass(view_type, StridedView)


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of a condition: whether it holds, and the numbers behind it.

    ``parts`` are the checks an all/any/not made of its inner conditions (None for a
    leaf), so what every leaf measured is known without checking it again
    (:attr:`readings`)."""

    holds: bool
    facts: tuple[Fact, ...]
    parts: tuple[Check, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def readings(self) -> tuple[Fact | None, ...]:
        """The first fact (value, threshold, baseline) of each leaf check, in the order of
        :func:`condition_leaves`; None for a leaf without facts."""
        if self.parts is None:
            return (self.facts[0] if self.facts else None,)
        return tuple(reading for part in self.parts for reading in part.readings)


class Condition(Protocol):
    """A pure check of measures for one brand at ``now``."""

    @property
    def lookback(self) -> timedelta:
        """How far before ``now`` the condition reads."""
        ...

    @property
    def window(self) -> timedelta:
        """The longest 'current' window it looks at (the mentions an alert shows)."""
        ...

    def check(self, view: CountView, brand: str, now: datetime) -> Check: ...


_NOUNS: dict[Measure, str] = {
    "total": "mentions",
    "negative": "negative mentions",
    "positive": "positive mentions",
    "reach": "reach",
    "negative_reach": "negative reach",
    "voices": "voices",
    "negative_voices": "negative voices",
    "stories": "stories",
    "negative_stories": "negative stories",
    "sentiment_sum": "summed sentiment",
}

_WHOLE: dict[ShareMetric, Metric] = {
    "negative": "total",
    "negative_reach": "reach",
    "negative_voices": "voices",
    "negative_stories": "stories",
}

_DISTINCT: frozenset[str] = frozenset({"voices", "negative_voices", "stories", "negative_stories"})


@dataclass(frozen=True, slots=True)
class Filters:
    """Which mentions a series counts: those with ``category``, from ``source``, in
    ``language`` (None = any; all given must match)."""

    category: str | None = None
    source: str | None = None
    language: str | None = None

    def read(
        self, view: CountView, brand: str, measure: Measure, start: datetime, end: datetime
    ) -> float:
        """``measure`` over ``[start, end)`` through these filters."""
        return view.value(
            brand,
            measure,
            start,
            end,
            category=self.category,
            source=self.source,
            language=self.language,
        )

    def strided(
        self,
        view: CountView,
        brand: str,
        measure: Measure,
        end: datetime,
        width: timedelta,
        count: int,
    ) -> list[float]:
        """``measure`` over ``[end - (k + 1) × width, end - k × width)`` for k = 0 … count - 1
        through these filters (the latest window first)."""
        if _strided(type(view)):
            return cast(StridedView, view).strided(
                brand,
                measure,
                end,
                width,
                count,
                category=self.category,
                source=self.source,
                language=self.language,
            )
        return [
            self.read(view, brand, measure, end - (k + 1) * width, end - k * width)
            for k in range(count)
        ]

    @property
    def suffix(self) -> str:
        """`` [category=outage, source=news]`` for fact names; empty without filters."""
        given = [
            f"{name}={value}"
            for name, value in (
                ("category", self.category),
                ("source", self.source),
                ("language", self.language),
            )
            if value is not None
        ]
        return f" [{', '.join(given)}]" if given else ""


NO_FILTERS = Filters()


format_duration = lru_cache(maxsize=1024)(_format_duration)
"""Fact names repeat every check: their durations are formatted once."""


@lru_cache(maxsize=4096)
def _label(measure: Measure, window: timedelta, filters: Filters = NO_FILTERS) -> str:
    """A fact name such as ``negative mentions in 15m`` or ``voices in 1h [source=x]``."""
    return f"{_NOUNS[measure]} in {format_duration(window)}{filters.suffix}"


def _minutes(span: timedelta) -> float:
    return span / timedelta(minutes=1)


def _warm_up(check: Check, view: CountView, brand: str, now: datetime, need: timedelta) -> Check:
    """``check``, or a failing check with a warm-up fact while the brand's history is
    shorter than ``need``."""
    first = view.first_seen(brand)
    history = max(now - first, timedelta(0)) if first is not None else timedelta(0)
    if first is not None and history >= need:
        return check
    fact = Fact(
        "minutes of history (warm-up)",
        float(math.floor(_minutes(history))),
        threshold=_minutes(need),
    )
    return Check(False, (*check.facts, fact))


@dataclass(frozen=True, slots=True)
class Volume:
    """Holds when ``metric`` over ``[now - window, now)`` is at least ``above``."""

    metric: Metric
    window: timedelta
    above: float
    filters: Filters = NO_FILTERS

    @property
    def lookback(self) -> timedelta:
        return self.window

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        current = self.filters.read(view, brand, self.metric, now - self.window, now)
        name = _label(self.metric, self.window, self.filters)
        return Check(current >= self.above, (Fact(name, current, threshold=self.above),))


@dataclass(frozen=True, slots=True)
class Spike:
    """Holds when the window's value is ``ratio`` times its baseline (up) or has fallen
    to the baseline divided by ``ratio`` (down).

    ``current`` = ``metric`` over ``[now - window, now)``; ``baseline_per_window`` =
    ``metric`` over ``[now - window - baseline, now - window)`` × ``window / baseline``;
    ``effective`` = ``max(baseline_per_window, min_baseline)`` (never zero).

    * up: holds when ``current ≥ min_volume`` and ``current ≥ ratio × effective``. Facts:
      the current value (threshold = the value needed, ``max(min_volume, ratio ×
      effective)``; baseline = ``baseline_per_window``) and the ratio ``current /
      effective`` (threshold ``ratio``).
    * down: holds when ``baseline_per_window ≥ min_volume`` and ``current ≤
      baseline_per_window / ratio``. Facts: the current value (threshold = the most
      allowed; baseline as above), the ratio (threshold ``1 / ratio``) and the baseline
      per window (threshold ``min_volume``).

    With ``warmup``, does not hold before the brand has ``window + baseline`` of history.
    """

    metric: Metric
    window: timedelta
    baseline: timedelta
    ratio: float
    min_volume: int
    min_baseline: float
    direction: Direction = "up"
    filters: Filters = NO_FILTERS
    warmup: bool = True

    @property
    def lookback(self) -> timedelta:
        return self.window + self.baseline

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        read, metric = self.filters.read, self.metric
        window_start = now - self.window
        current = read(view, brand, metric, window_start, now)
        before = read(view, brand, metric, window_start - self.baseline, window_start)
        per_window = before * (self.window / self.baseline)
        effective = max(per_window, self.min_baseline)
        name = _label(metric, self.window, self.filters)
        ratio_name = f"{name} vs {format_duration(self.baseline)} baseline (ratio)"
        if self.direction == "up":
            needed = self.ratio * effective
            holds = current >= self.min_volume and current >= needed
            facts: tuple[Fact, ...] = (
                Fact(
                    name,
                    current,
                    threshold=max(float(self.min_volume), needed),
                    baseline=per_window,
                ),
                Fact(ratio_name, current / effective, threshold=self.ratio),
            )
        else:
            allowed = per_window / self.ratio
            holds = per_window >= self.min_volume and current <= allowed
            facts = (
                Fact(name, current, threshold=allowed, baseline=per_window),
                Fact(ratio_name, current / effective, threshold=1 / self.ratio),
                Fact(
                    f"{_NOUNS[metric]} per {format_duration(self.window)} in the "
                    f"{format_duration(self.baseline)} baseline{self.filters.suffix}",
                    per_window,
                    threshold=self.min_volume,
                ),
            )
        check = Check(holds, facts)
        return _warm_up(check, view, brand, now, self.lookback) if self.warmup else check


MAD_SCALE = 1.4826
"""MAD × this estimates the standard deviation of normal data (1 / Φ⁻¹(3/4))."""


def _anscombe(x: float) -> float:
    return 2.0 * math.sqrt(max(x, 0.0) + 0.375)


def _anscombe_inverse(y: float) -> float:
    return (max(y, 0.0) / 2.0) ** 2 - 0.375


def _identity(x: float) -> float:
    return x


_TRANSFORMS: dict[ZTransform, tuple[Callable[[float], float], Callable[[float], float]]] = {
    "none": (_identity, _identity),
    "sqrt": (_anscombe, _anscombe_inverse),
    "log": (math.log1p, math.expm1),
}
"""Each z-score scale: (count → scale, scale → count), both non-decreasing."""

_SCALE_NAMES: dict[ZTransform, str] = {"none": "", "sqrt": " (sqrt scale)", "log": " (log scale)"}


def poisson_deviation(middle: float, transform: ZTransform) -> float:
    """The counting noise of a Poisson count whose centre is ``middle`` (on the
    ``transform`` scale), on that scale: √count, 1 (Anscombe) or 1/√count (log), the
    count floored at 1. ``min_deviation: poisson`` floors a z-score's deviation with it,
    so a change within what counting alone explains is never significant."""
    if transform == "sqrt":
        return 1.0
    if transform == "log":
        return 1.0 / math.sqrt(max(math.expm1(middle), 1.0))
    return math.sqrt(max(middle, 1.0))


def center_and_spread(values: list[float], center: ZCenter) -> tuple[float, float]:
    """``(mean, population standard deviation)`` or ``(median, MAD × 1.4826)`` of a
    non-empty list."""
    if center == "median":
        mid = statistics.median(values)
        return mid, MAD_SCALE * statistics.median([abs(x - mid) for x in values])
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in values) / len(values))


@lru_cache(maxsize=256)
def _least_rise(
    transform: ZTransform, floor: float | Literal["poisson"], threshold: float
) -> float:
    """The least transformed value ``T(current)`` at which ``T(current) - m ≥ threshold ×
    max(spread, floor(m))`` can hold for some centre ``m ≥ T(0)``: the minimum over m of
    ``m + threshold × floor(m)`` (a lower bound, to rounding)."""
    forward = _TRANSFORMS[transform][0]
    lowest = forward(0.0)
    if floor != "poisson":
        return lowest + threshold * floor
    if transform == "sqrt":
        return lowest + threshold
    if transform == "none":  # m + threshold × √max(m, 1) rises with m
        return threshold
    # log: m + threshold (m < log 2), else log(1 + u) + threshold / √u for u = e^m - 1 ≥ 1,
    # least where 1 / (1 + u) = (threshold / 2) · u^(-3/2)
    best = math.log(2.0) + threshold
    if threshold > 1.0:  # the slope at u = 1, 1/2 - threshold/2, is negative
        low, high = 1.0, 1e12
        for _ in range(200):
            mid = math.sqrt(low * high)
            if 1.0 / (1.0 + mid) < (threshold / 2.0) * mid**-1.5:
                low = mid
            else:
                high = mid
        best = min(best, math.log1p(low) + threshold / math.sqrt(low))
    return min(threshold, best)


def rising_floor(leaf: ZScore | SeasonalZScore) -> float:
    """The least count of the current window at which the rising z-score ``leaf`` can
    hold, whatever its history: its ``min_volume``, and for a :class:`ZScore` the count
    whose transformed value is ``threshold`` deviations above the lowest possible centre
    with its least possible deviation (with ``transform: log`` and ``min_deviation:
    poisson``, threshold 5: 51.7 mentions), slightly below the exact bound (relative
    1e-9), so a count under it surely does not hold. (A seasonal z-score's ratios have no
    lowest centre: its floor is ``min_volume``.)"""
    if isinstance(leaf, SeasonalZScore):
        return float(leaf.min_volume)
    inverse = _TRANSFORMS[leaf.transform][1]
    least = inverse(_least_rise(leaf.transform, leaf.min_deviation, leaf.threshold))
    return max(float(leaf.min_volume), least * (1.0 - 1e-9))


@dataclass(frozen=True, slots=True)
class ZScore:
    """Holds when the window's value is ``threshold`` deviations from the centre of the
    ``history`` windows before it: above (up) or below (down).

    ``current`` = ``metric`` over ``[now - window, now)``; the history is ``metric`` over
    ``[now - (k + 1) × window, now - k × window)`` for k = 1 … ``history``. Each value is
    first mapped to the ``transform`` scale (``none``; ``sqrt``: Anscombe's ``2·√(x +
    3/8)``, on which Poisson counts have deviation ≈ 1 at any rate; ``log``: ``log(1 +
    x)``). The centre and ``deviation`` are the history's mean and (population) standard
    deviation, or with ``center: median`` its median and MAD × 1.4826; the deviation is
    floored at ``min_deviation`` (on the transformed scale; ``poisson``: at the counting
    noise of the centre, :func:`poisson_deviation`); ``z = (T(current) - centre) /
    deviation``. The work per check is bounded by ``history`` (two sorts of it for the
    median).

    * up: holds when ``current ≥ min_volume`` and ``z ≥ threshold``.
    * down: holds when the centre (as a count) is ``≥ min_volume`` and ``z ≤ -threshold``.

    Facts: the current value (threshold = the count needed or the most allowed, mapped
    back from the transformed scale; baseline = the centre as a count) and ``z``
    (threshold ``threshold``, or ``-threshold`` down). With ``warmup``, does not hold
    before the brand has ``(history + 1) × window`` of history.
    """

    metric: Metric
    window: timedelta
    history: int
    threshold: float
    min_volume: int
    min_deviation: float | Literal["poisson"]
    direction: Direction = "up"
    filters: Filters = NO_FILTERS
    warmup: bool = True
    transform: ZTransform = "none"
    center: ZCenter = "mean"

    @property
    def lookback(self) -> timedelta:
        return self.window * (self.history + 1)

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        metric, window = self.metric, self.window
        forward, inverse = _TRANSFORMS[self.transform]
        values = self.filters.strided(view, brand, metric, now, window, self.history + 1)
        current = values[0]
        past = [forward(value) for value in values[1:]]
        middle, spread = center_and_spread(past, self.center)
        floor = self.min_deviation
        if floor == "poisson":
            floor = poisson_deviation(middle, self.transform)
        deviation = max(spread, floor)
        z = (forward(current) - middle) / deviation
        baseline = inverse(middle)
        plain = self.transform == "none"
        name = _label(metric, window, self.filters)
        kind = "robust z-score" if self.center == "median" else "z-score"
        z_name = (
            f"{kind} of {name}{_SCALE_NAMES[self.transform]} vs the {self.history} × "
            f"{format_duration(window)} before"
        )
        if self.direction == "up":
            needed = max(float(self.min_volume), inverse(middle + self.threshold * deviation))
            # on the counts' own scale compare counts (exact); else the monotone z
            holds = (
                current >= needed if plain else (current >= self.min_volume and z >= self.threshold)
            )
            facts = (
                Fact(name, current, threshold=needed, baseline=baseline),
                Fact(z_name, z, threshold=self.threshold),
            )
        else:
            allowed = inverse(middle - self.threshold * deviation)
            low = current <= allowed if plain else z <= -self.threshold
            holds = baseline >= self.min_volume and low
            facts = (
                Fact(name, current, threshold=allowed, baseline=baseline),
                Fact(z_name, z, threshold=-self.threshold),
            )
        check = Check(holds, facts)
        return _warm_up(check, view, brand, now, self.lookback) if self.warmup else check


@dataclass(frozen=True, slots=True)
class Seasonal:
    """Holds when the window's value is ``ratio`` times (up), or at most 1/``ratio`` of
    (down), the same window one ``period`` earlier, averaged over ``seasons`` periods.

    ``current`` = ``metric`` over ``[now - window, now)``; ``seasonal`` = the mean of
    ``metric`` over ``[now - k × period - window, now - k × period)`` for k = 1 …
    ``seasons``; ``effective = max(seasonal, min_baseline)``. Up: holds when ``current ≥
    min_volume`` and ``current ≥ ratio × effective``; down: when ``seasonal ≥
    min_volume`` and ``current ≤ seasonal / ratio``. Facts: the current value
    (threshold; baseline = ``seasonal``) and the ratio ``current / effective``. With
    ``warmup``, does not hold before the brand has ``seasons × period + window`` of
    history.
    """

    metric: Metric
    window: timedelta
    period: timedelta
    seasons: int
    ratio: float
    min_volume: int
    min_baseline: float
    direction: Direction = "up"
    filters: Filters = NO_FILTERS
    warmup: bool = True

    @property
    def lookback(self) -> timedelta:
        return self.period * self.seasons + self.window

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        read, metric, window = self.filters.read, self.metric, self.window
        current = read(view, brand, metric, now - window, now)
        past = [
            read(view, brand, metric, now - k * self.period - window, now - k * self.period)
            for k in range(1, self.seasons + 1)
        ]
        seasonal = sum(past) / len(past)
        effective = max(seasonal, self.min_baseline)
        name = _label(metric, window, self.filters)
        period = format_duration(self.period)
        when = (
            f"{period} earlier" if self.seasons == 1 else f"over the last {self.seasons} × {period}"
        )
        ratio_name = f"{name} vs the same time {when} (ratio)"
        if self.direction == "up":
            needed = max(float(self.min_volume), self.ratio * effective)
            holds = current >= needed
            facts = (
                Fact(name, current, threshold=needed, baseline=seasonal),
                Fact(ratio_name, current / effective, threshold=self.ratio),
            )
        else:
            allowed = seasonal / self.ratio
            holds = seasonal >= self.min_volume and current <= allowed
            facts = (
                Fact(name, current, threshold=allowed, baseline=seasonal),
                Fact(ratio_name, current / effective, threshold=1 / self.ratio),
            )
        check = Check(holds, facts)
        return _warm_up(check, view, brand, now, self.lookback) if self.warmup else check


@dataclass(frozen=True, slots=True)
class SeasonalZScore:
    """Holds when the window's ratio to the same time one ``period`` earlier is
    ``threshold`` robust deviations above (up) or below (down) that ratio's usual value.

    For k = 0 … ``history``: ``c_k`` = ``metric`` over ``[now - (k + 1) × window, now - k ×
    window)``, ``b_k`` = the mean of the same window ``s × period`` earlier for s = 1 …
    ``seasons``, and ``r_k = log(1 + c_k) - log(1 + b_k)``. The centre and deviation are
    the median and MAD × 1.4826 of ``r_1 … r_history``, the deviation floored at the
    counting noise of the baseline (``1/√b_0``, b_0 floored at 1); ``z = (r_0 - centre) /
    deviation``. A daily rise is in the baseline, so what stands out is a window unusual
    *for its time of day*, measured against how much that ratio varied over the last
    ``history`` windows (after Hochenbaum, Vallis & Kejariwal 2017, arXiv:1704.07706:
    seasonal adjustment, then a robust test; here online, one window at a time).

    * up: holds when ``c_0 ≥ min_volume`` and ``z ≥ threshold``.
    * down: holds when ``b_0 ≥ min_volume`` and ``z ≤ -threshold``.

    Facts: the current value (threshold = the count needed or the most allowed; baseline
    = the count its time of day and the usual ratio expect) and ``z``. With ``warmup``,
    does not hold before the brand has ``(history + 1) × window + seasons × period`` of
    history. The work per check is ``seasons + 1`` strided reads and two sorts of
    ``history`` values.
    """

    metric: Metric
    window: timedelta
    period: timedelta
    seasons: int
    history: int
    threshold: float
    min_volume: int
    direction: Direction = "up"
    filters: Filters = NO_FILTERS
    warmup: bool = True

    @property
    def lookback(self) -> timedelta:
        return self.window * (self.history + 1) + self.period * self.seasons

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        metric, window, count = self.metric, self.window, self.history + 1
        strided = self.filters.strided
        current = strided(view, brand, metric, now, window, count)
        earlier = [
            strided(view, brand, metric, now - s * self.period, window, count)
            for s in range(1, self.seasons + 1)
        ]
        seasons = float(self.seasons)
        expected = [sum(column) / seasons for column in zip(*earlier, strict=True)]
        ratios = [math.log1p(c) - math.log1p(b) for c, b in zip(current, expected, strict=True)]
        middle, spread = center_and_spread(ratios[1:], "median")
        seasonal = expected[0]
        deviation = max(spread, 1.0 / math.sqrt(max(seasonal, 1.0)))
        z = (ratios[0] - middle) / deviation
        value = current[0]
        base = math.log1p(seasonal)
        baseline = math.expm1(base + middle)
        name = _label(metric, window, self.filters)
        z_name = (
            f"robust z-score of {name} vs the same time "
            f"{_earlier(self.period, self.seasons)} (log ratio), against the "
            f"{self.history} × {format_duration(window)} before"
        )
        if self.direction == "up":
            needed = max(
                float(self.min_volume), math.expm1(base + middle + self.threshold * deviation)
            )
            holds = value >= self.min_volume and z >= self.threshold
            facts = (
                Fact(name, value, threshold=needed, baseline=baseline),
                Fact(z_name, z, threshold=self.threshold),
            )
        else:
            allowed = math.expm1(base + middle - self.threshold * deviation)
            holds = seasonal >= self.min_volume and z <= -self.threshold
            facts = (
                Fact(name, value, threshold=allowed, baseline=baseline),
                Fact(z_name, z, threshold=-self.threshold),
            )
        check = Check(holds, facts)
        return _warm_up(check, view, brand, now, self.lookback) if self.warmup else check


def _earlier(period: timedelta, seasons: int) -> str:
    """``1d earlier`` or ``over the last 3 × 1d``."""
    span = format_duration(period)
    return f"{span} earlier" if seasons == 1 else f"over the last {seasons} × {span}"


@dataclass(frozen=True, slots=True)
class Ramp:
    """Holds on a slow ramp: ``metric`` rose in each of the last ``steps`` windows and the
    latest window is at least ``growth`` times the window before the ramp.

    ``values[k]`` = ``metric`` over ``[now - (k + 1) × window, now - k × window)`` for
    k = ``steps`` (the window before the ramp, ``first``) … 0 (the current window).
    Holds when each window is more than the one before it and ``current ≥ max(min_volume,
    growth × max(first, 1))``. Facts: the current value (threshold = the value needed;
    baseline = ``first``) and the number of rises in a row up to now (threshold
    ``steps``). With ``warmup``, does not hold before the brand has ``(steps + 1) ×
    window`` of history.
    """

    metric: Metric
    window: timedelta
    steps: int
    growth: float
    min_volume: int
    filters: Filters = NO_FILTERS
    warmup: bool = True

    @property
    def lookback(self) -> timedelta:
        return self.window * (self.steps + 1)

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        metric, window = self.metric, self.window
        values = self.filters.strided(view, brand, metric, now, window, self.steps + 1)[::-1]
        rises = 0
        for i in range(len(values) - 1, 0, -1):
            if values[i] <= values[i - 1]:
                break
            rises += 1
        first, current = values[0], values[-1]
        needed = max(float(self.min_volume), self.growth * max(first, 1.0))
        holds = rises >= self.steps and current >= needed
        name = _label(metric, window, self.filters)
        facts = (
            Fact(name, current, threshold=needed, baseline=first),
            Fact(
                f"rises in a row of {_NOUNS[metric]} per {format_duration(window)}"
                f"{self.filters.suffix}",
                rises,
                threshold=self.steps,
            ),
        )
        check = Check(holds, facts)
        return _warm_up(check, view, brand, now, self.lookback) if self.warmup else check


@dataclass(frozen=True, slots=True)
class NegativeShare:
    """Holds when the negative share of the window is ≥ ``above`` and its whole ≥
    ``min_volume``.

    ``metric`` is the negative part (``negative``, ``negative_reach``,
    ``negative_voices`` or ``negative_stories``); the whole is the matching measure of all
    mentions (``total``, ``reach``, ``voices``, ``stories``). The share of an empty
    window is 0. Facts: the share (threshold ``above``) and the whole (threshold
    ``min_volume``).
    """

    window: timedelta
    above: float
    min_volume: int
    metric: ShareMetric = "negative"
    filters: Filters = NO_FILTERS

    @property
    def lookback(self) -> timedelta:
        return self.window

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        start = now - self.window
        whole_metric = _WHOLE[self.metric]
        whole = self.filters.read(view, brand, whole_metric, start, now)
        part = self.filters.read(view, brand, self.metric, start, now)
        share = part / whole if whole else 0.0
        holds = whole >= self.min_volume and share >= self.above
        of = "" if whole_metric == "total" else f" of {_NOUNS[whole_metric]}"
        span = format_duration(self.window)
        facts = (
            Fact(f"negative share{of} in {span}{self.filters.suffix}", share, self.above),
            Fact(_label(whole_metric, self.window, self.filters), whole, self.min_volume),
        )
        return Check(holds, facts)


@dataclass(frozen=True, slots=True)
class MeanSentiment:
    """Holds when the mean sentiment score of the window's mentions is ≤ ``below`` and
    there are ≥ ``min_volume`` mentions (the mean of an empty window is 0).

    Facts: the mean (threshold ``below``) and the mention count (threshold
    ``min_volume``).
    """

    window: timedelta
    below: float
    min_volume: int
    filters: Filters = NO_FILTERS

    @property
    def lookback(self) -> timedelta:
        return self.window

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        start = now - self.window
        total = self.filters.read(view, brand, "total", start, now)
        summed = self.filters.read(view, brand, "sentiment_sum", start, now)
        mean = summed / total if total else 0.0
        holds = total >= self.min_volume and mean <= self.below
        span = format_duration(self.window)
        facts = (
            Fact(f"mean sentiment in {span}{self.filters.suffix}", mean, threshold=self.below),
            Fact(_label("total", self.window, self.filters), total, threshold=self.min_volume),
        )
        return Check(holds, facts)


def _bound(condition: object) -> str | None:
    """Whether ``condition``'s facts give a least (``"min"``) or a most (``"max"``) allowed
    value as their threshold; None when it is not known (such facts are never merged)."""
    if isinstance(condition, Volume):
        return "min"
    direction = getattr(condition, "direction", None)
    return {"up": "min", "down": "max"}.get(direction) if isinstance(direction, str) else None


def _merge_facts(pairs: Sequence[tuple[object, Check]]) -> tuple[Fact, ...]:
    """The facts of an all-of, each measurement once.

    Two conditions often measure the same thing (a zscore and a spike over the same
    30m window both report "mentions in 30m = 59"), each with its own threshold: shown
    twice, the alert reads as two contradictory facts. Facts with the same name and value
    become one, carrying the threshold (and baseline) that binds, since every condition
    must hold: the highest least-allowed value, or the lowest most-allowed one. When which
    binds is unknown (directions differ, no threshold) both stay."""
    out: list[Fact] = []
    bounds: list[str | None] = []
    first: dict[tuple[str, float], int] = {}
    for condition, check in pairs:
        bound = _bound(condition)
        for fact in check.facts:
            at = first.get((fact.name, fact.value))
            if at is None:
                first[(fact.name, fact.value)] = len(out)
                out.append(fact)
                bounds.append(bound)
                continue
            kept = out[at]
            if fact == kept:
                continue
            if (
                bound is None
                or bound != bounds[at]
                or fact.threshold is None
                or kept.threshold is None
            ):
                out.append(fact)
                bounds.append(bound)
                continue
            if (fact.threshold > kept.threshold) == (bound == "min") and (
                fact.threshold != kept.threshold
            ):
                out[at] = fact
    return tuple(out)


@dataclass(frozen=True, slots=True)
class All:
    """Holds when every inner condition holds; facts of all of them (all are evaluated),
    each measurement once (:func:`_merge_facts`)."""

    conditions: tuple[Condition, ...]

    @property
    def lookback(self) -> timedelta:
        return max(c.lookback for c in self.conditions)

    @property
    def window(self) -> timedelta:
        return max(c.window for c in self.conditions)

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        checks = tuple(c.check(view, brand, now) for c in self.conditions)
        facts = _merge_facts(list(zip(self.conditions, checks, strict=True)))
        return Check(all(c.holds for c in checks), facts, checks)


@dataclass(frozen=True, slots=True)
class Any:
    """Holds when at least one inner condition holds; facts of those that hold (or of all)."""

    conditions: tuple[Condition, ...]

    @property
    def lookback(self) -> timedelta:
        return max(c.lookback for c in self.conditions)

    @property
    def window(self) -> timedelta:
        return max(c.window for c in self.conditions)

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        checks = tuple(c.check(view, brand, now) for c in self.conditions)
        holding = [c for c in checks if c.holds]
        shown = holding or checks
        return Check(bool(holding), tuple(f for c in shown for f in c.facts), checks)


@dataclass(frozen=True, slots=True)
class Anomaly(Any):
    """``type: anomaly``: an ``any`` of robust log-scale z-scores at several windows
    (:class:`ZScore`, each against its own windows over the same history, floored at
    the counting noise) and, optionally, a :class:`SeasonalZScore`. It is an
    :class:`Any` in every respect (checks, facts, the screen, the replay timeline); only
    the condition gauges' labels name it (``anomaly.0.zscore``). Built by
    :func:`anomaly_parts` from :class:`~listener.config.schema.AnomalyCondition`."""


@dataclass(frozen=True, slots=True)
class Not:
    """Holds when the inner condition does not; facts of the inner condition.

    (An inner condition in warm-up does not hold, so ``not`` of it holds.)
    """

    condition: Condition

    @property
    def lookback(self) -> timedelta:
        return self.condition.lookback

    @property
    def window(self) -> timedelta:
        return self.condition.window

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        inner = self.condition.check(view, brand, now)
        return Check(not inner.holds, inner.facts, (inner,))


_Filtered = (
    VolumeCondition
    | SpikeCondition
    | NegativeShareCondition
    | MeanSentimentCondition
    | ZScoreCondition
    | SeasonalCondition
    | SeasonalZScoreCondition
    | RampCondition
    | AnomalyCondition
)


def _filters(config: _Filtered) -> Filters:
    if config.category is None and config.source is None and config.language is None:
        return NO_FILTERS
    return Filters(config.category, config.source, config.language)


def _leaf(cls: type[Condition]) -> Callable[[_Filtered], Condition]:
    """A builder for a leaf condition: every field of ``cls`` comes from the config field
    of the same name, except ``filters`` (category, source, language)."""

    def build(config: _Filtered) -> Condition:
        return cls(
            **{
                f.name: _filters(config) if f.name == "filters" else getattr(config, f.name)
                for f in fields(cls)  # type: ignore[arg-type]
            }
        )

    return build


def _all(config: AllCondition) -> Condition:
    return All(tuple(build_condition(c) for c in config.conditions))


def _any(config: AnyCondition) -> Condition:
    return Any(tuple(build_condition(c) for c in config.conditions))


def _not(config: NotCondition) -> Condition:
    return Not(build_condition(config.condition))


def anomaly_parts(config: AnomalyCondition) -> tuple[Condition, ...]:
    """The conditions ``type: anomaly`` is made of: a ``zscore`` per window (``transform:
    log``, ``center: median``, ``min_deviation: poisson``, ``history`` / window windows,
    ``min_volume`` = ``min_volume_per_hour`` × window, at least 1), then the
    ``seasonal_zscore`` of ``seasonal`` (same ``min_volume`` rule) unless it is null."""
    filters = _filters(config)
    hour = timedelta(hours=1)

    def least(window: timedelta) -> int:
        return max(1, math.ceil(config.min_volume_per_hour * (window / hour) - 1e-9))

    parts: list[Condition] = [
        ZScore(
            metric=config.metric,
            window=window,
            history=config.history // window,
            threshold=config.threshold,
            min_volume=least(window),
            min_deviation="poisson",
            filters=filters,
            warmup=config.warmup,
            transform="log",
            center="median",
        )
        for window in config.windows
    ]
    seasonal = config.seasonal
    if seasonal is not None:
        parts.append(
            SeasonalZScore(
                metric=config.metric,
                window=seasonal.window,
                period=seasonal.period,
                seasons=seasonal.seasons,
                history=seasonal.history // seasonal.window,
                threshold=seasonal.threshold,
                min_volume=least(seasonal.window),
                filters=filters,
                warmup=config.warmup,
            )
        )
    return tuple(parts)


def _anomaly(config: AnomalyCondition) -> Condition:
    return Anomaly(anomaly_parts(config))


CONDITIONS: Registry[[], Condition] = Registry("condition")
"""Every condition type: config class → ``builder(config)``."""
CONDITIONS.register(VolumeCondition, _leaf(Volume))
CONDITIONS.register(SpikeCondition, _leaf(Spike))
CONDITIONS.register(NegativeShareCondition, _leaf(NegativeShare))
CONDITIONS.register(MeanSentimentCondition, _leaf(MeanSentiment))
CONDITIONS.register(ZScoreCondition, _leaf(ZScore))
CONDITIONS.register(SeasonalCondition, _leaf(Seasonal))
CONDITIONS.register(SeasonalZScoreCondition, _leaf(SeasonalZScore))
CONDITIONS.register(RampCondition, _leaf(Ramp))
CONDITIONS.register(AnomalyCondition, _anomaly)
CONDITIONS.register(AllCondition, _all)
CONDITIONS.register(AnyCondition, _any)
CONDITIONS.register(NotCondition, _not)


def build_condition(config: ConditionConfig) -> Condition:
    """Build the runtime condition for a config block; :class:`~listener.errors.UnknownType`
    (a ``ValueError`` naming the known types) on an unknown config class."""
    return CONDITIONS.build(config)


_LEAF_TYPES: dict[type, str] = {
    Volume: "volume",
    Spike: "spike",
    NegativeShare: "negative_share",
    MeanSentiment: "mean_sentiment",
    ZScore: "zscore",
    Seasonal: "seasonal",
    SeasonalZScore: "seasonal_zscore",
    Ramp: "ramp",
}


_ANY_KINDS: dict[type, str] = {Anomaly: "anomaly"}
"""The label of an ``any`` built from a condition type of its own."""


def condition_leaves(condition: Condition, path: str = "") -> Iterator[tuple[str, Condition]]:
    """Every leaf condition under ``condition`` with its path, the ``condition`` label of
    the condition gauges: ``spike``, ``all.1.negative_share``, ``not.volume`` (config
    types and positions only, so the label set is bounded by the config). The order is
    that of :attr:`Check.readings`."""
    if isinstance(condition, All | Any):
        kind = "all" if isinstance(condition, All) else _ANY_KINDS.get(type(condition), "any")
        for i, inner in enumerate(condition.conditions):
            yield from condition_leaves(inner, f"{path}{kind}.{i}.")
    elif isinstance(condition, Not):
        yield from condition_leaves(condition.condition, f"{path}not.")
    else:
        yield path + _LEAF_TYPES.get(type(condition), type(condition).__name__.lower()), condition


def reads_distinct(condition: Condition) -> timedelta:
    """How far back ``condition`` reads a distinct measure (voices, stories), zero when it
    reads none: how long the windows must keep their author and story sets."""
    return max(
        (
            leaf.lookback
            for _, leaf in condition_leaves(condition)
            if getattr(leaf, "metric", None) in _DISTINCT
        ),
        default=timedelta(0),
    )


def lookback(config: ConditionConfig) -> timedelta:
    """How far back before ``now`` a condition reads (to size retention and warm-up)."""
    return build_condition(config).lookback


def distinct_lookback(config: ConditionConfig) -> timedelta:
    """How far back a condition reads a distinct measure (voices, stories), zero when it
    reads none: how long the windows must keep their author and story sets."""
    if isinstance(config, AllCondition | AnyCondition):
        return max(distinct_lookback(c) for c in config.conditions)
    if isinstance(config, NotCondition):
        return distinct_lookback(config.condition)
    metric: str | None = getattr(config, "metric", None)
    return lookback(config) if metric in _DISTINCT else timedelta(0)
