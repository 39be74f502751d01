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
    Spike,
    Volume,
    ZScore,
)
from listener.rules.engine import CompiledRule

__all__ = ["Readings", "RuleScreen", "RunningReads", "Table", "screen_rule", "table_for"]

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
    if isinstance(leaf, Volume | Spike | ZScore):
        return leaf.metric in _COUNTS and leaf.filters == NO_FILTERS
    if isinstance(leaf, NegativeShare):
        return leaf.metric == "negative" and leaf.filters == NO_FILTERS
    return False


def _measures(leaf: Condition) -> tuple[str, ...]:
    """The counts a bulk leaf reads."""
    if isinstance(leaf, NegativeShare):
        return ("total", leaf.metric)
    if isinstance(leaf, Volume | Spike | ZScore):
        return (leaf.metric,)
    return ()


def _offsets(leaf: Condition) -> tuple[int, ...]:
    """How far before ``now`` (µs) each bound ``leaf`` reads lies: the bucket index of a
    bound is that of the first bucket starting at or after ``now - offset``, as
    ``VelocityWindows.value`` and ``strided`` work them out."""
    if isinstance(leaf, Volume | NegativeShare):
        return (leaf.window // _MICRO, 0)
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


def screen_rule(rule: CompiledRule, table: Table, rows: NDArray[np.intp]) -> RuleScreen:
    """The screen of ``rule`` for the brands at ``rows`` of ``table``."""
    still: Bools = np.ones(len(rows), dtype=np.bool_)
    sunk: Bools = np.ones(len(rows), dtype=np.bool_)
    readings: list[tuple[Readings | None, ...]] = []
    for level in rule.levels:
        shown: list[Readings | None] = []
        holds, sure, down = _tree(level.when, table, rows, shown)
        still &= sure & ~holds
        sunk &= down
        readings.append(tuple(shown))
    sunk &= still
    return RuleScreen(rows, still, sunk, tuple(readings))


def _tree(
    condition: Condition, table: Table, rows: NDArray[np.intp], shown: list[Readings | None]
) -> tuple[Bools, Bools, Bools]:
    """``(holds, sure, sunk)`` of ``condition`` for the brands at ``rows``; appends each
    leaf's readings to ``shown`` in :func:`~listener.rules.conditions.condition_leaves`
    order. Sunk: surely does not hold, and cannot until a new mention (time alone only
    lowers the count that keeps it from holding)."""
    if isinstance(condition, All | Any):
        parts = [_tree(inner, table, rows, shown) for inner in condition.conditions]
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
        holds, sure, _ = _tree(condition.condition, table, rows, shown)
        return ~holds, sure, nothing
    if not _bulk(condition):
        shown.append(None)
        return nothing, nothing, nothing
    leaf = _LEAVES[type(condition)](condition, table, rows)
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


def _volume(leaf: Condition, table: Table, rows: NDArray[np.intp]) -> _Leaf:
    assert isinstance(leaf, Volume)
    current = _read(table, rows, leaf, leaf.metric, (0, 1))
    above = np.full(len(rows), float(leaf.above))
    holds = current >= leaf.above
    return _Leaf(holds, _all_sure(len(rows)), ~holds, Readings(current, above, None))


def _share(leaf: Condition, table: Table, rows: NDArray[np.intp]) -> _Leaf:
    assert isinstance(leaf, NegativeShare)
    whole = _read(table, rows, leaf, "total", (0, 1))
    part = _read(table, rows, leaf, leaf.metric, (0, 1))
    share = np.divide(part, whole, out=np.zeros_like(part), where=whole != 0)
    holds = (whole >= leaf.min_volume) & (share >= leaf.above)
    above = np.full(len(rows), float(leaf.above))
    sunk = whole < leaf.min_volume
    return _Leaf(holds, _all_sure(len(rows)), sunk, Readings(share, above, None))


def _spike(leaf: Condition, table: Table, rows: NDArray[np.intp]) -> _Leaf:
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


def _zscore(leaf: Condition, table: Table, rows: NDArray[np.intp]) -> _Leaf:
    assert isinstance(leaf, ZScore)
    at = table.sums[leaf.metric][rows[:, None], table.positions[id(leaf)]]
    # one row per window, one column per brand (C order): a sum down the rows adds each
    # brand's windows one by one, in order, as the engine's sum() does (numpy sums the
    # contiguous axis pairwise, which may differ in the last bit)
    values = np.ascontiguousarray((at[:, :-1] - at[:, 1:]).T, dtype=np.float64)
    forward, inverse = _TRANSFORMS[leaf.transform]
    current = values[0]
    past = forward(values[1:])
    n = past.shape[0]
    if leaf.center == "median":
        middle = np.median(past, axis=0)
        spread = MAD_SCALE * np.median(np.abs(past - middle), axis=0)
    elif n:
        middle = np.add.reduce(past, axis=0) / n
        dev = past - middle
        spread = np.sqrt(np.add.reduce(dev * dev, axis=0) / n)
    else:
        middle = spread = np.zeros(len(rows))
    deviation = np.maximum(spread, leaf.min_deviation)
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
    sure = ~tie
    if leaf.warmup:
        warm = _warm(table, rows, leaf.lookback)
        holds &= warm
        sure |= ~warm  # in warm-up it surely does not hold
    sunk = current < leaf.min_volume if leaf.direction == "up" else np.zeros_like(holds)
    return _Leaf(np.asarray(holds), np.asarray(sure), sunk, Readings(current, threshold, baseline))


_LEAVES: dict[type, Callable[[Condition, Table, NDArray[np.intp]], _Leaf]] = {
    Volume: _volume,
    NegativeShare: _share,
    Spike: _spike,
    ZScore: _zscore,
}
