"""The Evaluate stage's screen: every rule's conditions checked for every brand at once.

Evaluating a rule for one brand costs tens of µs of Python (conditions, facts, timers),
so a tick at 1,000 brands × 10 rules took seconds although almost every key ends as it
started: no level holds, no incident, nothing to do. The screen answers, per rule and
brand, whether each level's ``when`` **surely does not hold** at ``now``, with numpy over
all brands together (one read of the running sums per tick,
:meth:`~listener.scoring.velocity.VelocityWindows.running_at`). The engine then skips the
keys whose every level surely does not hold and whose state has nothing running
(:func:`listener.rules.engine.evaluate_rule_checks`, ``still=``), and evaluates the rest
exactly as before. The screen never decides anything itself:

* a leaf it cannot read in bulk (filters, reach, voices and stories, sentiment, seasonal,
  ramp) is *unknown* for every brand, so a level with one is evaluated by the engine
  unless another leaf of an ``all`` surely fails;
* a comparison of floats that are not computed in the engine's order (a z-score's
  deviation: numpy's sums and power functions may differ from the engine's in the last
  bit) is *unknown* within a relative ``1e-9`` of its threshold, so a tie goes to the
  engine; counts, shares and spikes are computed elementwise with the engine's operations
  and compare exactly.

Its readings (the first fact of each leaf: value, threshold, baseline) are what the
engine's check would show for that leaf, as arrays, for the condition gauges of the keys
it lets the engine skip (equal to the engine's to the last bit for counts, shares and
spikes; z-score thresholds to about 1e-15 relative).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from listener.clock import as_utc
from listener.rules.conditions import (
    MAD_SCALE,
    NO_FILTERS,
    All,
    Any,
    Condition,
    NegativeShare,
    Not,
    SeasonalZScore,
    Spike,
    Volume,
    ZScore,
    rising_floor,
)
from listener.rules.engine import CompiledRule

__all__ = [
    "Decision",
    "Readings",
    "RuleScreen",
    "RunningReads",
    "Table",
    "decide",
    "may_rise",
    "median0",
    "screen_rule",
    "seasonal_decision",
    "table_for",
    "zscore_decision",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_COUNTS = frozenset({"total", "negative", "positive"})
_TIE = 1e-9
"""Relative distance from a threshold within which a float comparison is left to the engine."""

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


class RunningReads(Protocol):
    """What the screen reads from the windows (``VelocityWindows`` provides it)."""

    @property
    def bucket(self) -> timedelta: ...

    def running_at(
        self, brands: Sequence[str], indices: NDArray[np.int64], measures: Iterable[str]
    ) -> dict[str, NDArray[np.int64]]: ...

    def first_seen_seconds(self, brands: Sequence[str]) -> NDArray[np.int64]: ...


@dataclass(frozen=True, slots=True)
class Readings:
    """A leaf's first fact for each brand: value, threshold and baseline (None when the
    fact has none)."""

    value: Floats
    threshold: Floats | None
    baseline: Floats | None


@dataclass(frozen=True, slots=True)
class _Leaf:
    """A leaf checked in bulk: whether it holds, whether that is sure, whether it is
    *sunk* (see :class:`RuleScreen`), and its readings."""

    holds: Bools
    sure: Bools
    sunk: Bools
    readings: Readings | None


@dataclass(frozen=True, slots=True)
class Table:
    """One tick's bulk read of the windows: the running sums of ``brands`` at the bucket
    indices a tick's bulk leaves read (their columns), where each leaf's bounds sit among
    those columns (``positions``, by leaf identity), and when each brand was first seen."""

    brands: tuple[str, ...]
    now_us: int
    positions: Mapping[int, NDArray[np.intp]]
    sums: Mapping[str, NDArray[np.int64]]
    first: NDArray[np.int64]

    def window(self, leaf: Condition, measure: str, start: int, end: int) -> Floats:
        """``measure`` between ``leaf``'s bounds number ``start`` and ``end`` (its bounds
        are in :func:`_offsets` order), for every brand."""
        at = self.positions[id(leaf)]
        sums = self.sums[measure]
        return (sums[:, at[end]] - sums[:, at[start]]).astype(np.float64)


@dataclass(frozen=True, slots=True)
class RuleScreen:
    """One rule's screen of the brands at ``rows`` of the table, as masks aligned with
    ``rows``: ``still`` where every level's ``when`` surely does not hold; ``sunk`` where,
    moreover, that stays so as time passes until the brand gets a new mention (every
    level has a count below its least needed value that time alone can only lower: a
    volume, or the ``min_volume`` of a rising spike, z-score or negative share, in an
    ``all``); ``readings[level][leaf]`` the leaf readings of every screened brand (None
    for a leaf read only by the engine)."""

    rows: NDArray[np.intp]
    still: Bools
    sunk: Bools
    readings: tuple[tuple[Readings | None, ...], ...]

    def brands(self, table: Table, mask: Bools) -> frozenset[str]:
        """The brands where ``mask`` (``still``, ``sunk``) is set."""
        return frozenset(table.brands[i] for i in self.rows[mask].tolist())


def _us(at: datetime) -> int:
    return (as_utc(at) - _EPOCH) // _MICRO


def _bulk(leaf: Condition) -> bool:
    """Whether the screen reads ``leaf`` in bulk: an unfiltered count of the kinds below."""
    if isinstance(leaf, Volume | Spike | ZScore | SeasonalZScore):
        return leaf.metric in _COUNTS and leaf.filters == NO_FILTERS
    if isinstance(leaf, NegativeShare):
        return leaf.metric == "negative" and leaf.filters == NO_FILTERS
    return False


def _measures(leaf: Condition) -> tuple[str, ...]:
    """The counts a bulk leaf reads."""
    if isinstance(leaf, NegativeShare):
        return ("total", leaf.metric)
    if isinstance(leaf, Volume | Spike | ZScore | SeasonalZScore):
        return (leaf.metric,)
    return ()


def _offsets(leaf: Condition) -> tuple[int, ...]:
    """How far before ``now`` (µs) each bound ``leaf`` reads lies: the bucket index of a
    bound is that of the first bucket starting at or after ``now - offset``, as
    ``VelocityWindows.value`` and ``strided`` work them out."""
    if isinstance(leaf, Volume | NegativeShare):
        return (leaf.window // _MICRO, 0)
    if isinstance(leaf, SeasonalZScore):
        width, period = leaf.window // _MICRO, leaf.period // _MICRO
        return tuple(
            s * period + k * width for s in range(leaf.seasons + 1) for k in range(leaf.history + 2)
        )
    if isinstance(leaf, Spike):
        window = leaf.window // _MICRO
        return (window + leaf.baseline // _MICRO, window, 0)
    if isinstance(leaf, ZScore):
        width = leaf.window // _MICRO
        return tuple(k * width for k in range(leaf.history + 2))
    return ()


def _leaves(condition: Condition) -> Iterable[Condition]:
    if isinstance(condition, All | Any):
        for inner in condition.conditions:
            yield from _leaves(inner)
    elif isinstance(condition, Not):
        yield from _leaves(condition.condition)
    else:
        yield condition


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a set of rules reads in bulk: every bulk leaf's bound offsets, end to end."""

    leaves: tuple[Condition, ...]
    spans: tuple[tuple[int, int], ...]
    offsets: NDArray[np.int64]
    measures: frozenset[str]


_PLANS: dict[tuple[int, ...], tuple[tuple[CompiledRule, ...], _Plan]] = {}


def _plan(rules: Sequence[CompiledRule]) -> _Plan:
    key = tuple(id(rule) for rule in rules)
    held = _PLANS.get(key)
    if held is not None and all(a is b for a, b in zip(held[0], rules, strict=True)):
        return held[1]
    leaves: list[Condition] = []
    seen: set[int] = set()
    for rule in rules:
        for level in rule.levels:
            for leaf in _leaves(level.when):
                if _bulk(leaf) and id(leaf) not in seen:
                    seen.add(id(leaf))
                    leaves.append(leaf)
    spans: list[tuple[int, int]] = []
    offsets: list[int] = []
    at = 0
    for leaf in leaves:
        own = _offsets(leaf)
        spans.append((at, at + len(own)))
        offsets.extend(own)
        at += len(own)
    measures = frozenset(m for leaf in leaves for m in _measures(leaf))
    plan = _Plan(tuple(leaves), tuple(spans), np.array(offsets, dtype=np.int64), measures)
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[key] = (tuple(rules), plan)
    return plan


def table_for(
    rules: Sequence[CompiledRule],
    brands: Sequence[str],
    view: RunningReads,
    now: datetime,
    first_seen: NDArray[np.int64] | None = None,
) -> Table | None:
    """The bulk read every bulk leaf of ``rules`` needs at ``now`` (None when none has
    one); ``first_seen``: each brand's first bucket, when already read
    (``first_seen_seconds``)."""
    plan = _plan(rules)
    if not plan.leaves or not brands:
        return None
    size_us = view.bucket // _MICRO
    now_us = _us(now)
    indices = -(-(now_us - plan.offsets) // size_us)
    columns, inverse = np.unique(indices, return_inverse=True)
    positions = {
        id(leaf): inverse[start:end]
        for leaf, (start, end) in zip(plan.leaves, plan.spans, strict=True)
    }
    sums = view.running_at(brands, columns, plan.measures)
    first = view.first_seen_seconds(brands) if first_seen is None else first_seen
    return Table(tuple(brands), now_us, positions, sums, first)


def screen_rule(
    rule: CompiledRule, table: Table, rows: NDArray[np.intp], *, readings: bool = True
) -> RuleScreen:
    """The screen of ``rule`` for the brands at ``rows`` of ``table``; without
    ``readings`` (no condition gauges to show) the z-score leaves have none and skip the
    work only readings need."""
    still: Bools = np.ones(len(rows), dtype=np.bool_)
    sunk: Bools = np.ones(len(rows), dtype=np.bool_)
    levels: list[tuple[Readings | None, ...]] = []
    for level in rule.levels:
        shown: list[Readings | None] = []
        holds, sure, down = _tree(level.when, table, rows, shown, readings)
        still &= sure & ~holds
        sunk &= down
        levels.append(tuple(shown))
    sunk &= still
    return RuleScreen(rows, still, sunk, tuple(levels))


def _tree(
    condition: Condition,
    table: Table,
    rows: NDArray[np.intp],
    shown: list[Readings | None],
    readings: bool = True,
) -> tuple[Bools, Bools, Bools]:
    """``(holds, sure, sunk)`` of ``condition`` for the brands at ``rows``; appends each
    leaf's readings to ``shown`` in :func:`~listener.rules.conditions.condition_leaves`
    order. Sunk: surely does not hold, and cannot until a new mention (time alone only
    lowers the count that keeps it from holding)."""
    if isinstance(condition, All | Any):
        parts = [_tree(inner, table, rows, shown, readings) for inner in condition.conditions]
        holds_all = np.logical_and.reduce([h for h, _, _ in parts])
        sure_all = np.logical_and.reduce([s for _, s, _ in parts])
        if isinstance(condition, All):
            decided = np.logical_or.reduce([s & ~h for h, s, _ in parts])
            sunk = np.logical_or.reduce([d for _, _, d in parts])
            return holds_all, sure_all | decided, sunk
        holds_any = np.logical_or.reduce([h for h, _, _ in parts])
        decided = np.logical_or.reduce([s & h for h, s, _ in parts])
        sunk = np.logical_and.reduce([d for _, _, d in parts])
        return holds_any, sure_all | decided, sunk
    nothing = np.zeros(len(rows), dtype=np.bool_)
    if isinstance(condition, Not):  # time lowering the inner count may make it hold
        holds, sure, _ = _tree(condition.condition, table, rows, shown, readings)
        return ~holds, sure, nothing
    if not _bulk(condition):
        shown.append(None)
        return nothing, nothing, nothing
    leaf = _LEAVES[type(condition)](condition, table, rows, readings)
    shown.append(leaf.readings)
    return leaf.holds, leaf.sure, leaf.sunk


def _read(
    table: Table, rows: NDArray[np.intp], leaf: Condition, measure: str, span: tuple[int, int]
) -> Floats:
    return table.window(leaf, measure, *span)[rows]


def _warm(table: Table, rows: NDArray[np.intp], need: timedelta) -> Bools:
    """Whether each brand has at least ``need`` of history (``_warm_up``'s test)."""
    first = table.first[rows]
    seen = first != np.iinfo(np.int64).min
    history = np.maximum(table.now_us - np.where(seen, first, 0) * 1_000_000, 0)
    return np.asarray(seen & (history >= need // _MICRO), dtype=np.bool_)


def _all_sure(n: int) -> Bools:
    return np.ones(n, dtype=np.bool_)


def _volume(leaf: Condition, table: Table, rows: NDArray[np.intp], _readings: bool) -> _Leaf:
    assert isinstance(leaf, Volume)
    current = _read(table, rows, leaf, leaf.metric, (0, 1))
    above = np.full(len(rows), float(leaf.above))
    holds = current >= leaf.above
    return _Leaf(holds, _all_sure(len(rows)), ~holds, Readings(current, above, None))


def _share(leaf: Condition, table: Table, rows: NDArray[np.intp], _readings: bool) -> _Leaf:
    assert isinstance(leaf, NegativeShare)
    whole = _read(table, rows, leaf, "total", (0, 1))
    part = _read(table, rows, leaf, leaf.metric, (0, 1))
    share = np.divide(part, whole, out=np.zeros_like(part), where=whole != 0)
    holds = (whole >= leaf.min_volume) & (share >= leaf.above)
    above = np.full(len(rows), float(leaf.above))
    sunk = whole < leaf.min_volume
    return _Leaf(holds, _all_sure(len(rows)), sunk, Readings(share, above, None))


def _spike(leaf: Condition, table: Table, rows: NDArray[np.intp], _readings: bool) -> _Leaf:
    assert isinstance(leaf, Spike)
    current = _read(table, rows, leaf, leaf.metric, (1, 2))
    before = _read(table, rows, leaf, leaf.metric, (0, 1))
    per_window = before * (leaf.window / leaf.baseline)
    effective = np.maximum(per_window, leaf.min_baseline)
    if leaf.direction == "up":
        needed = leaf.ratio * effective
        holds = (current >= leaf.min_volume) & (current >= needed)
        threshold = np.maximum(float(leaf.min_volume), needed)
    else:
        threshold = per_window / leaf.ratio
        holds = (per_window >= leaf.min_volume) & (current <= threshold)
    if leaf.warmup:
        holds &= _warm(table, rows, leaf.lookback)
    sunk = current < leaf.min_volume if leaf.direction == "up" else np.zeros_like(holds)
    return _Leaf(holds, _all_sure(len(rows)), sunk, Readings(current, threshold, per_window))


_Map = Callable[[Floats], Floats]


def _anscombe(x: Floats) -> Floats:
    return 2.0 * np.sqrt(np.maximum(x, 0.0) + 0.375)


def _anscombe_inverse(y: Floats) -> Floats:
    half = np.maximum(y, 0.0) / 2.0
    return half * half - 0.375


def _identity(x: Floats) -> Floats:
    return x


_TRANSFORMS: dict[str, tuple[_Map, _Map]] = {
    "none": (_identity, _identity),
    "sqrt": (_anscombe, _anscombe_inverse),
    "log": (np.log1p, np.expm1),
}


def _near(a: Floats, b: Floats | float) -> Bools:
    """Where ``a`` and ``b`` are within the tie distance (a decision left to the engine)."""
    scale = np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
    return np.asarray(np.abs(a - b) <= _TIE * scale)


def _floor(leaf: ZScore, middle: Floats) -> Floats | float:
    """The z-score's ``min_deviation`` for every brand (``poisson``: the counting noise
    of its centre, as :func:`~listener.rules.conditions.poisson_deviation`)."""
    if leaf.min_deviation != "poisson":
        return leaf.min_deviation
    if leaf.transform == "sqrt":
        return 1.0
    if leaf.transform == "log":
        return np.asarray(1.0 / np.sqrt(np.maximum(np.expm1(middle), 1.0)))
    return np.asarray(np.sqrt(np.maximum(middle, 1.0)))


def median0(values: Floats) -> Floats:
    """The median along axis 0 (of a non-empty axis), as ``statistics.median`` takes it
    (the middle value, or the mean of the middle two) and ``np.median`` would, without
    its per-call overhead (a tick calls it for a handful of brands)."""
    n = values.shape[0]
    half = n // 2
    if n % 2:
        return np.asarray(np.partition(values, half, axis=0)[half])
    parted = np.partition(values, half, axis=0)  # the lower half below it: its max
    return np.asarray((parted[:half].max(axis=0) + parted[half]) / 2)


def _centre(past: Floats, zero: Bools, base: float) -> tuple[Floats, Floats]:
    """``(median, MAD × 1.4826)`` of each column of ``past`` (window, column), where
    ``zero`` marks the entries that equal ``base`` (a window with no mentions). A column
    where they are a strict majority has exactly ``base`` and 0 (the median lies among
    them, and so does the median of the distances from it), without a partition: most
    columns, for brands with few mentions."""
    n = past.shape[0]
    dense = zero.sum(axis=0) < n // 2 + 1
    middle = np.full(past.shape[1:], base)
    spread = np.zeros(past.shape[1:])
    if dense.all():
        middle = median0(past)
        spread = MAD_SCALE * median0(np.abs(past - middle))
    elif dense.any():
        sub = past[:, dense]
        mid = median0(sub)
        middle[dense] = mid
        spread[dense] = MAD_SCALE * median0(np.abs(sub - mid))
    return middle, spread


@dataclass(frozen=True, slots=True)
class Decision:
    """A z-score leaf worked out in bulk (any shape of brands, or brands × steps):
    whether it holds (before its warm-up), where that is too close to call (a float
    compared within the tie distance of its threshold), and its first fact."""

    holds: Bools
    tie: Bools
    current: Floats
    threshold: Floats
    baseline: Floats


def _seasonal_ratios(windows: Floats) -> tuple[Floats, Floats]:
    """``(expected, ratios)`` from windows shaped ``(seasons + 1, history + 1, …)``: the
    mean of the same window over the earlier periods (added one by one, as the engine's
    ``sum()`` does) and ``log(1 + count) − log(1 + expected)``."""
    total = windows[1].copy()
    for s in range(2, windows.shape[0]):
        total = total + windows[s]
    expected = total / float(windows.shape[0] - 1)
    return expected, np.log1p(windows[0]) - np.log1p(expected)


def seasonal_decision(leaf: SeasonalZScore, windows: Floats) -> Decision:
    """``leaf`` (:class:`~listener.rules.conditions.SeasonalZScore`) from ``windows`` of
    shape ``(seasons + 1, history + 1, …)``: ``windows[s, k]`` is the count of the k-th
    window back, ``s`` periods earlier. The engine's operations in its order (the seasonal
    mean adds the periods one by one); log1p, the medians and the division may differ from
    the engine's in the last bit, hence the tie distance."""
    expected, ratios = _seasonal_ratios(windows)
    counts = windows[0]
    past = ratios[1:]
    middle, spread = _centre(past, (counts[1:] == 0) & (expected[1:] == 0), 0.0)
    seasonal = expected[0]
    deviation = np.maximum(spread, 1.0 / np.sqrt(np.maximum(seasonal, 1.0)))
    z = (ratios[0] - middle) / deviation
    current = counts[0]
    base = np.log1p(seasonal)
    baseline = np.expm1(base + middle)
    if leaf.direction == "up":
        threshold = np.maximum(
            float(leaf.min_volume), np.expm1(base + middle + leaf.threshold * deviation)
        )
        holds = (current >= leaf.min_volume) & (z >= leaf.threshold)
        tie = _near(z, leaf.threshold)
    else:
        threshold = np.expm1(base + middle - leaf.threshold * deviation)
        holds = (seasonal >= leaf.min_volume) & (z <= -leaf.threshold)
        tie = _near(z, -leaf.threshold) | _near(seasonal, float(leaf.min_volume))
    return Decision(np.asarray(holds), np.asarray(tie), current, np.asarray(threshold), baseline)


def zscore_decision(leaf: ZScore, values: Floats) -> Decision:
    """``leaf`` (:class:`~listener.rules.conditions.ZScore`) from ``values`` of shape
    ``(history + 1, …)``, the latest window first. For ``center: mean`` the sums run down
    axis 0 one window at a time, as the engine's ``sum()`` does, when ``values`` is C
    ordered (numpy sums a contiguous axis pairwise, which may differ in the last bit)."""
    forward, inverse = _TRANSFORMS[leaf.transform]
    current = values[0]
    past = forward(values[1:])
    n = past.shape[0]
    if leaf.center == "median":
        middle, spread = _centre(past, values[1:] == 0, float(forward(np.zeros(1))[0]))
    elif n:
        middle = np.add.reduce(past, axis=0) / n
        dev = past - middle
        spread = np.sqrt(np.add.reduce(dev * dev, axis=0) / n)
    else:
        middle = spread = np.zeros(current.shape)
    deviation = np.maximum(spread, _floor(leaf, middle))
    z = (forward(current) - middle) / deviation
    baseline = inverse(middle)
    plain = leaf.transform == "none"
    if leaf.direction == "up":
        threshold = np.maximum(float(leaf.min_volume), inverse(middle + leaf.threshold * deviation))
        if plain:
            holds = current >= threshold
            tie = _near(current, threshold)
        else:
            holds = (current >= leaf.min_volume) & (z >= leaf.threshold)
            tie = _near(z, leaf.threshold)
    else:
        threshold = inverse(middle - leaf.threshold * deviation)
        low = current <= threshold if plain else z <= -leaf.threshold
        holds = (baseline >= leaf.min_volume) & low
        tie = (_near(current, threshold) if plain else _near(z, -leaf.threshold)) | _near(
            baseline, float(leaf.min_volume)
        )
    return Decision(np.asarray(holds), np.asarray(tie), current, np.asarray(threshold), baseline)


def _zscore(leaf: Condition, table: Table, rows: NDArray[np.intp], readings: bool) -> _Leaf:
    assert isinstance(leaf, ZScore)
    sums, at = table.sums[leaf.metric], table.positions[id(leaf)]

    def values(picked: NDArray[np.intp]) -> Floats:
        bounds = sums[picked[:, None], at]
        # one row per window, one column per brand (C order): see zscore_decision
        return np.ascontiguousarray((bounds[:, :-1] - bounds[:, 1:]).T, dtype=np.float64)

    current = (sums[rows, at[0]] - sums[rows, at[1]]).astype(np.float64)
    return _settle(leaf, values, current, table, rows, readings)


def _seasonal_zscore(
    leaf: Condition, table: Table, rows: NDArray[np.intp], readings: bool
) -> _Leaf:
    assert isinstance(leaf, SeasonalZScore)
    sums, at = table.sums[leaf.metric], table.positions[id(leaf)]

    def values(picked: NDArray[np.intp]) -> Floats:
        bounds = sums[picked[:, None], at].reshape(len(picked), leaf.seasons + 1, -1)
        return np.moveaxis(bounds[:, :, :-1] - bounds[:, :, 1:], 0, -1).astype(np.float64)

    current = (sums[rows, at[0]] - sums[rows, at[1]]).astype(np.float64)
    return _settle(leaf, values, current, table, rows, readings)


def _settle(
    leaf: ZScore | SeasonalZScore,
    values: Callable[[NDArray[np.intp]], Floats],
    current: Floats,
    table: Table,
    rows: NDArray[np.intp],
    readings: bool,
) -> _Leaf:
    """A z-score leaf's screen from its windows (``values(rows)``: those of the brands at
    ``rows``, brands on the last axis) and ``current`` window: sure away from ties and in
    warm-up; sunk (rising) below the least count it can hold at
    (:func:`~listener.rules.conditions.rising_floor`).
    Without ``readings`` the medians are taken only for the brands where it can hold at
    all (warm, and rising at or above that count)."""
    warm = _warm(table, rows, leaf.lookback) if leaf.warmup else np.ones(len(rows), np.bool_)
    up = leaf.direction == "up"
    sunk = np.asarray(current < rising_floor(leaf)) if up else np.zeros(len(rows), np.bool_)
    can = warm & ~sunk
    holds = np.zeros(len(rows), dtype=np.bool_)
    sure = np.ones(len(rows), dtype=np.bool_)
    shown: Readings | None = None
    if readings:  # every brand's readings, so every brand's medians
        decision = decide(leaf, values(rows))
        holds, sure = decision.holds & warm, ~decision.tie | ~warm
        shown = Readings(decision.current, decision.threshold, decision.baseline)
    elif can.any():
        picked = rows[can]
        windows = values(picked)
        if up:  # the medians only where a bound without them leaves it open
            rise = may_rise(leaf, windows)
            can[can] = rise
            windows = windows[..., rise]
        if windows.shape[-1]:
            decision = decide(leaf, windows)
            holds[can], sure[can] = decision.holds, ~decision.tie
    return _Leaf(holds, np.asarray(sure), sunk, shown)


def decide(leaf: ZScore | SeasonalZScore, values: Floats) -> Decision:
    """:func:`zscore_decision` or :func:`seasonal_decision`, as ``leaf`` is."""
    if isinstance(leaf, ZScore):
        return zscore_decision(leaf, values)
    return seasonal_decision(leaf, values)


def may_rise(leaf: ZScore | SeasonalZScore, values: Floats) -> Bools:
    """Where a rising z-score (``direction: up``) may hold, from a bound that needs no
    median, for ``values`` shaped as :func:`zscore_decision` or :func:`seasonal_decision`
    take them: the centre is at least the history's least value and the deviation at
    least the floor's least over the history's range, so ``z ≥ threshold`` needs
    ``current − least ≥ threshold × that floor`` (compared with the tie distance to
    spare: a column it rules out surely does not hold)."""
    if isinstance(leaf, SeasonalZScore):
        expected, ratios = _seasonal_ratios(values)
        gap = ratios[0] - ratios[1:].min(axis=0)
        need = leaf.threshold / np.sqrt(np.maximum(expected[0], 1.0))
    else:
        forward = _TRANSFORMS[leaf.transform][0]
        scaled = forward(values)
        low = scaled[1:].min(axis=0)
        gap = scaled[0] - low
        if leaf.min_deviation != "poisson":
            floor: Floats | float = leaf.min_deviation
        elif leaf.transform == "log":  # falls as the centre rises: least at the top
            floor = 1.0 / np.sqrt(np.maximum(np.expm1(scaled[1:].max(axis=0)), 1.0))
        elif leaf.transform == "sqrt":
            floor = 1.0
        else:  # rises with the centre: least at the bottom
            floor = np.sqrt(np.maximum(low, 1.0))
        need = leaf.threshold * floor
    return np.asarray(gap >= need - _TIE * np.maximum(1.0, np.abs(need)))


_LEAVES: dict[type, Callable[[Condition, Table, NDArray[np.intp], bool], _Leaf]] = {
    Volume: _volume,
    NegativeShare: _share,
    Spike: _spike,
    ZScore: _zscore,
    SeasonalZScore: _seasonal_zscore,
}
