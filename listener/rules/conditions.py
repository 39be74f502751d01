"""Rule conditions: pure checks of mention counts at a given ``now``.

Every condition reads counts through a :class:`CountView` over half-open ranges
``[start, end)`` (``VelocityWindows`` is the production view; its counts are bucketed,
see ``listener.scoring.velocity``) and returns a :class:`Check`: whether it holds and the
:class:`~listener.model.Fact` values behind the decision, for alerts.

Built from config by :func:`build_condition`, whose registry maps each condition config
class to its builder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from listener.config.duration import format_duration
from listener.config.schema import (
    AllCondition,
    AnyCondition,
    ConditionConfig,
    Metric,
    NegativeShareCondition,
    NotCondition,
    SpikeCondition,
    VolumeCondition,
)
from listener.model import Fact

__all__ = [
    "All",
    "Any",
    "Check",
    "Condition",
    "CountView",
    "NegativeShare",
    "Not",
    "Spike",
    "Volume",
    "build_condition",
    "lookback",
]


class CountView(Protocol):
    """Read access to mention counts: ``metric`` mentions of ``brand`` in ``[start, end)``."""

    def count(self, brand: str, metric: Metric, start: datetime, end: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of a condition: whether it holds, and the numbers behind it."""

    holds: bool
    facts: tuple[Fact, ...]


class Condition(Protocol):
    """A pure check of counts for one brand at ``now``."""

    def check(self, view: CountView, brand: str, now: datetime) -> Check: ...


def _mentions(metric: Metric, window: timedelta) -> str:
    """A fact name such as ``negative mentions in 15m`` or ``mentions in 1h``."""
    prefix = "negative mentions" if metric == "negative" else "mentions"
    return f"{prefix} in {format_duration(window)}"


@dataclass(frozen=True, slots=True)
class Volume:
    """Holds when the ``metric`` count over ``[now - window, now)`` is at least ``above``."""

    metric: Metric
    window: timedelta
    above: int

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        current = view.count(brand, self.metric, now - self.window, now)
        fact = Fact(_mentions(self.metric, self.window), current, threshold=self.above)
        return Check(current >= self.above, (fact,))


@dataclass(frozen=True, slots=True)
class Spike:
    """Holds when the window's count is ``ratio`` times the baseline rate and ≥ ``min_volume``.

    ``current`` = count over ``[now - window, now)``; ``baseline_per_window`` = count over
    ``[now - window - baseline, now - window)`` × ``window / baseline``; ``effective`` =
    ``max(baseline_per_window, min_baseline)`` (so a silent baseline never divides by
    zero). Holds when ``current ≥ min_volume`` and ``current ≥ ratio × effective``.
    Facts: the current count (threshold = the count needed, ``max(min_volume,
    ratio × effective)``; baseline = ``baseline_per_window``) and the ratio
    ``current / effective`` (threshold = ``ratio``).
    """

    metric: Metric
    window: timedelta
    baseline: timedelta
    ratio: float
    min_volume: int
    min_baseline: float

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        window_start = now - self.window
        current = view.count(brand, self.metric, window_start, now)
        before = view.count(brand, self.metric, window_start - self.baseline, window_start)
        per_window = before * (self.window / self.baseline)
        effective = max(per_window, self.min_baseline)
        needed = self.ratio * effective
        holds = current >= self.min_volume and current >= needed
        name = _mentions(self.metric, self.window)
        facts = (
            Fact(name, current, threshold=max(float(self.min_volume), needed), baseline=per_window),
            Fact(
                f"{name} vs {format_duration(self.baseline)} baseline (ratio)",
                current / effective,
                threshold=self.ratio,
            ),
        )
        return Check(holds, facts)


@dataclass(frozen=True, slots=True)
class NegativeShare:
    """Holds when negative/total over the window is ≥ ``above`` and total ≥ ``min_volume``.

    The share of an empty window is 0. Facts: the share (threshold ``above``) and the
    total (threshold ``min_volume``).
    """

    window: timedelta
    above: float
    min_volume: int

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        start = now - self.window
        total = view.count(brand, "total", start, now)
        negative = view.count(brand, "negative", start, now)
        share = negative / total if total else 0.0
        holds = total >= self.min_volume and share >= self.above
        span = format_duration(self.window)
        facts = (
            Fact(f"negative share in {span}", share, threshold=self.above),
            Fact(_mentions("total", self.window), total, threshold=self.min_volume),
        )
        return Check(holds, facts)


@dataclass(frozen=True, slots=True)
class All:
    """Holds when every inner condition holds; facts of all of them (all are evaluated)."""

    conditions: tuple[Condition, ...]

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        checks = [c.check(view, brand, now) for c in self.conditions]
        return Check(all(c.holds for c in checks), tuple(f for c in checks for f in c.facts))


@dataclass(frozen=True, slots=True)
class Any:
    """Holds when at least one inner condition holds; facts of those that hold (or of all)."""

    conditions: tuple[Condition, ...]

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        checks = [c.check(view, brand, now) for c in self.conditions]
        holding = [c for c in checks if c.holds]
        shown = holding or checks
        return Check(bool(holding), tuple(f for c in shown for f in c.facts))


@dataclass(frozen=True, slots=True)
class Not:
    """Holds when the inner condition does not; facts of the inner condition."""

    condition: Condition

    def check(self, view: CountView, brand: str, now: datetime) -> Check:
        inner = self.condition.check(view, brand, now)
        return Check(not inner.holds, inner.facts)


def _volume(config: VolumeCondition) -> Condition:
    return Volume(config.metric, config.window, config.above)


def _spike(config: SpikeCondition) -> Condition:
    return Spike(
        config.metric,
        config.window,
        config.baseline,
        config.ratio,
        config.min_volume,
        config.min_baseline,
    )


def _share(config: NegativeShareCondition) -> Condition:
    return NegativeShare(config.window, config.above, config.min_volume)


def _all(config: AllCondition) -> Condition:
    return All(tuple(build_condition(c) for c in config.conditions))


def _any(config: AnyCondition) -> Condition:
    return Any(tuple(build_condition(c) for c in config.conditions))


def _not(config: NotCondition) -> Condition:
    return Not(build_condition(config.condition))


_BUILDERS: dict[type[object], Callable[..., Condition]] = {
    VolumeCondition: _volume,
    SpikeCondition: _spike,
    NegativeShareCondition: _share,
    AllCondition: _all,
    AnyCondition: _any,
    NotCondition: _not,
}


def build_condition(config: ConditionConfig) -> Condition:
    """Build the runtime condition for a config block; ``ValueError`` on an unknown type."""
    builder = _BUILDERS.get(type(config))
    if builder is None:
        known = ", ".join(sorted(c.__name__ for c in _BUILDERS))
        raise ValueError(f"unknown condition config {type(config).__name__}; known: {known}")
    return builder(config)


def lookback(config: ConditionConfig) -> timedelta:
    """How far back before ``now`` a condition reads counts (to size retention)."""
    if isinstance(config, SpikeCondition):
        return config.window + config.baseline
    if isinstance(config, VolumeCondition | NegativeShareCondition):
        return config.window
    if isinstance(config, AllCondition | AnyCondition):
        return max(lookback(c) for c in config.conditions)
    if isinstance(config, NotCondition):
        return lookback(config.condition)
    raise ValueError(f"unknown condition config {type(config).__name__}")
