"""When a replay must evaluate: the simulated steps at which some rule's level may hold.

A backtest of mention files (:func:`listener.backtest.replay_mentions`) steps through
simulated time a bucket at a time and evaluated every rule at the end of every step,
although almost every one of those evaluations decides nothing: while no (rule, brand)
key has an incident open or a level timer running and no notification is pending
(:meth:`listener.processor.Processor.resting`), an evaluation at a ``now`` at which no
level's ``when`` holds for any brand leaves every key, incident and notification as it
is. This module finds, for a stretch of steps at once, the steps at which some level
**may** hold (*hot* steps), with numpy over (brand, step): one read of the windows'
running sums at every bound of every step (``running_at``), then each condition for
every brand and step together. A tick costs the engine about a millisecond even when it
settles every key from memo; a step read here costs microseconds.

Reads at a step never see a bucket that starts after it (every condition reads
``[now - a, now - b)`` with ``b ≥ 0``), so the windows may already hold the mentions of
later steps when a stretch is read: a replay ingests a stretch, reads it here once, then
evaluates only where it must.

Sound, not exact: at a step it finds cold no level holds for any brand; at a hot step
one may (the engine decides). Per leaf, two answers per (brand, step), *surely holds*
and *may hold*:

* ``volume``, ``spike`` and ``negative_share`` of unfiltered mention counts are worked
  out with the engine's own float operations, elementwise (as
  :mod:`listener.rules.screen` does them): the same answers to the bit;
* a plain ``zscore`` (mean, no transform) of an unfiltered count, on steps at bucket
  edges, from its history's sum and sum of squares (each brand's running sums at every
  bucket the stretch reads): the deviation differs from the engine's by rounding, so a
  comparison within a relative 1e-9 of its threshold is left open;
* any other ``zscore`` (a transform, a median, a Poisson floor) and a
  ``seasonal_zscore`` of an unfiltered count, from all the windows it reads, with the
  Screen's arithmetic (:func:`~listener.rules.screen.zscore_decision`,
  :func:`~listener.rules.screen.seasonal_decision`), left open within the same distance
  of its threshold;
* any other leaf may hold unless a floor it needs is not met: its window's count at
  least its ``min_volume`` (``above``), read from the unfiltered count that bounds it (a
  filtered count, distinct voices or stories never exceed the brand's mentions of that
  sentiment), and with ``warmup`` the brand's history at least its look-back. A leaf
  with no such floor (summed reach, a falling z-score or seasonal) may always hold, so a
  rule made of such leaves makes every step hot;
* ``all``, ``any`` and ``not`` combine those (``not`` surely holds where its inner
  condition surely does not, and may hold where it does not surely hold).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

from listener.clock import as_utc
from listener.rules.conditions import (
    NO_FILTERS,
    All,
    Any,
    Condition,
    MeanSentiment,
    NegativeShare,
    Not,
    Ramp,
    Seasonal,
    SeasonalZScore,
    Spike,
    Volume,
    ZScore,
    rising_floor,
)
from listener.rules.engine import CompiledRule
from listener.rules.screen import RunningReads, decide, may_rise

__all__ = ["CELLS", "Holding", "Timeline"]

CELLS: Final = 1 << 20
"""How many running sums (per count) one read of a stretch holds at most: the steps of a
stretch are chosen to fit (8 MiB per count)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
_TIE: Final = 1e-9
"""Relative distance from a threshold within which a float comparison stays open."""
_COUNTS: Final = frozenset({"total", "negative", "positive"})
_BOUNDED_BY: Final[dict[str, str]] = {
    "total": "total",
    "negative": "negative",
    "positive": "positive",
    "voices": "total",
    "stories": "total",
    "negative_voices": "negative",
    "negative_stories": "negative",
}
"""The unfiltered count that no value of a metric exceeds over the same range (filtered
or not): a distinct voice or story comes from at least one counted mention. Reach has
none."""
_WHOLE: Final[dict[str, str]] = {
    "negative": "total",
    "negative_reach": "reach",
    "negative_voices": "voices",
    "negative_stories": "stories",
}
"""The whole of each negative-share metric (as ``listener.rules.conditions`` has it)."""

Bools = NDArray[np.bool_]
Floats = NDArray[np.float64]
Answer = tuple[Bools | bool, Bools | bool]
"""``(surely holds, may hold)`` for every (brand, step), or one answer for all."""


@dataclass(frozen=True, slots=True)
class _Window:
    """``measure`` over ``[now - start, now - end)``, both in µs before ``now``."""

    measure: str
    start: int
    end: int


def _current(measure: str, window: timedelta) -> _Window:
    return _Window(measure, window // _MICRO, 0)


def _floor(metric: str, window: timedelta) -> _Window | None:
    """The unfiltered count that bounds ``metric`` over the window (None: none does)."""
    bound = _BOUNDED_BY.get(metric)
    return None if bound is None else _current(bound, window)


def _bulk(leaf: Condition) -> bool:
    """Whether ``leaf`` is worked out from its windows: an unfiltered count compared (a
    z-score other than the plain one, or a seasonal z-score, to within the tie distance)."""
    if isinstance(leaf, Volume | Spike | SeasonalZScore):
        return leaf.metric in _COUNTS and leaf.filters == NO_FILTERS
    if isinstance(leaf, ZScore):
        return leaf.metric in _COUNTS and leaf.filters == NO_FILTERS and not _plain_zscore(leaf)
    if isinstance(leaf, NegativeShare):
        return leaf.metric == "negative" and leaf.filters == NO_FILTERS
    return False


def _plain_zscore(leaf: Condition) -> bool:
    """Whether ``leaf`` is a z-score worked out exactly (see :func:`_zscore`)."""
    return (
        isinstance(leaf, ZScore)
        and leaf.transform == "none"
        and leaf.center == "mean"
        and leaf.min_deviation != "poisson"
        and leaf.metric in _COUNTS
        and leaf.filters == NO_FILTERS
    )


def _reads(leaf: Condition) -> tuple[_Window, ...]:
    """The windows a leaf's answer is worked out from (none: it may always hold)."""
    if _plain_zscore(leaf):
        assert isinstance(leaf, ZScore)
        window = leaf.window // _MICRO
        return (
            _Window(leaf.metric, window, 0),
            _Window(leaf.metric, (leaf.history + 1) * window, window),
        )
    if _bulk(leaf):
        if isinstance(leaf, ZScore):  # every window, the latest first
            width = leaf.window // _MICRO
            return tuple(
                _Window(leaf.metric, (k + 1) * width, k * width) for k in range(leaf.history + 1)
            )
        if isinstance(leaf, SeasonalZScore):  # every window of every period back
            width, period = leaf.window // _MICRO, leaf.period // _MICRO
            return tuple(
                _Window(leaf.metric, s * period + (k + 1) * width, s * period + k * width)
                for s in range(leaf.seasons + 1)
                for k in range(leaf.history + 1)
            )
        if isinstance(leaf, Volume):
            return (_current(leaf.metric, leaf.window),)
        if isinstance(leaf, NegativeShare):
            return (_current("total", leaf.window), _current("negative", leaf.window))
        assert isinstance(leaf, Spike)
        window = leaf.window // _MICRO
        return (
            _Window(leaf.metric, window, 0),
            _Window(leaf.metric, window + leaf.baseline // _MICRO, window),
        )
    floor: _Window | None = None
    if isinstance(leaf, Volume | Ramp):
        floor = _floor(leaf.metric, leaf.window)
    elif isinstance(leaf, Spike | ZScore | Seasonal | SeasonalZScore):
        floor = _floor(leaf.metric, leaf.window) if leaf.direction == "up" else None
    elif isinstance(leaf, NegativeShare):
        floor = _floor(_WHOLE[leaf.metric], leaf.window)
    elif isinstance(leaf, MeanSentiment):
        floor = _current("total", leaf.window)
    return () if floor is None else (floor,)


def _least(leaf: Condition) -> float:
    """The least value a floor-checked leaf's window needs (see :func:`_reads`)."""
    if isinstance(leaf, Volume):
        return float(leaf.above)
    if isinstance(leaf, ZScore | SeasonalZScore) and leaf.direction == "up":
        return rising_floor(leaf)
    return float(getattr(leaf, "min_volume", 0))


def _warmup(leaf: Condition) -> timedelta | None:
    """The history a leaf needs before it can hold (None: none)."""
    if isinstance(leaf, Spike | ZScore | Seasonal | SeasonalZScore | Ramp) and leaf.warmup:
        return leaf.lookback
    return None


def _at_least(x: Floats, threshold: Floats | float) -> tuple[Bools, Bools]:
    """``x ≥ threshold`` for floats computed otherwise than the engine computes them (to
    within rounding), left open within the tie distance: (surely, maybe)."""
    tie = _TIE * np.maximum(1.0, np.maximum(np.abs(x), np.abs(threshold)))
    return np.asarray(x >= threshold + tie), np.asarray(x >= threshold - tie)


def _answer(leaf: Condition, values: Sequence[Floats]) -> Answer:
    """A leaf's answer from the windows :func:`_reads` names (before its warm-up)."""
    if not values:
        return False, True
    if not _bulk(leaf):  # only a floor: it may hold where the floor is met
        return False, np.asarray(values[0] >= _least(leaf))
    if isinstance(leaf, Volume):
        holds = np.asarray(values[0] >= leaf.above)  # whole counts: exact
        return holds, holds
    if isinstance(leaf, NegativeShare):
        whole, part = values
        share = np.divide(part, whole, out=np.zeros_like(part), where=whole != 0)
        holds = np.asarray((whole >= leaf.min_volume) & (share >= leaf.above))
        return holds, holds
    assert isinstance(leaf, Spike)
    current, before = values
    # the engine's float operations, in its order: elementwise, the same values to the bit
    per_window = before * (leaf.window / leaf.baseline)
    if leaf.direction == "up":
        needed = leaf.ratio * np.maximum(per_window, leaf.min_baseline)
        holds = np.asarray((current >= leaf.min_volume) & (current >= needed))
    else:
        holds = np.asarray((per_window >= leaf.min_volume) & (current <= per_window / leaf.ratio))
    return holds, holds


@dataclass(frozen=True, slots=True)
class _Stretch:
    """One read of the windows for a stretch of steps: window values by (brand, step)."""

    view: RunningReads
    brands: Sequence[str]
    sums: dict[str, NDArray[np.int64]]
    """count → running sums, shape (brand, column): each bucket index read once."""
    at: NDArray[np.intp]
    """(bound, step) → the column of :attr:`sums` read there."""
    bound: dict[int, int]
    """µs before ``now`` → its position among the bounds."""
    now_us: NDArray[np.int64]
    first_us: NDArray[np.int64]
    seen: Bools
    values: dict[_Window, Floats]
    warmed: dict[timedelta, Bools]

    def window(self, w: _Window) -> Floats:
        found = self.values.get(w)
        if found is None:
            sums = self.sums[w.measure]
            end, start = self.at[self.bound[w.end]], self.at[self.bound[w.start]]
            found = self.values[w] = (sums[:, end] - sums[:, start]).astype(np.float64)
        return found

    def cells(
        self, windows: Sequence[_Window], rows: NDArray[np.intp], steps: NDArray[np.intp]
    ) -> Floats:
        """``windows`` (of one measure) at the (brand, step) cells ``(rows[i], steps[i])``
        only, shape (window, cell), in two reads (not kept)."""
        sums = self.sums[windows[0].measure]
        bound = self.bound
        ends = self.at[[bound[w.end] for w in windows]][:, steps]
        starts = self.at[[bound[w.start] for w in windows]][:, steps]
        return np.asarray(sums[rows, ends] - sums[rows, starts], dtype=np.float64)

    def spread(self, leaf: ZScore, rows: NDArray[np.intp]) -> Floats | None:
        """The population standard deviation of ``leaf``'s history windows for the brands
        at ``rows`` at every step (None when the steps or the window are off the bucket
        grid, or the counts too large for exact sums of squares).

        With ``now`` at bucket index ``n`` and the window ``w`` buckets long, the history
        is ``V(n - k·w)`` for k = 1 … history, ``V(i)`` the count of the ``w`` buckets
        before index ``i``: the running sums at every index from the earliest history
        bound to the last step give ``V`` everywhere, and cumulative sums of ``V²`` along
        each phase of ``w`` give every step's sum of squares as one difference. The sums
        are whole numbers (exact); the deviation, ``√(h·Σx² − (Σx)²) / h``, differs from
        the engine's two-pass one by rounding only."""
        size = self.view.bucket // _MICRO
        width = leaf.window // _MICRO
        if width % size or (self.now_us % size).any():
            return None
        w, h = width // size, leaf.history
        n = self.now_us // size
        low = int(n[0]) - (h + 2) * w
        indices = np.arange(low, int(n[-1]) + 1, dtype=np.int64)
        picked = [self.brands[r] for r in rows.tolist()]
        at = self.view.running_at(picked, indices, (leaf.metric,))[leaf.metric]
        counts = at[:, w:] - at[:, :-w]  # V(i) at column i - low - w
        if counts.size and counts.max() >= 1 << 20:  # h·Σx² could overflow int64
            return None
        squares = counts * counts
        length = squares.shape[1]
        padded = np.pad(squares, ((0, 0), (0, -length % w)))
        phased = padded.reshape(len(rows), -1, w).cumsum(axis=1).reshape(len(rows), -1)
        since = n - int(n[0])  # column of V(n - (h + 1)·w): the sums start after it
        squared = phased[:, since + h * w] - phased[:, since]
        summed = at[:, since + h * w + w] - at[:, since + w]  # buckets [n - (h+1)w, n - w)
        variance = (h * squared - summed * summed).astype(np.float64)
        return np.asarray(np.sqrt(np.maximum(variance, 0.0)) / h, dtype=np.float64)

    def warm(self, need: timedelta) -> Bools:
        """Whether each brand has at least ``need`` of history at each step (the
        engine's warm-up test: a brand never seen has none)."""
        found = self.warmed.get(need)
        if found is None:
            history = np.maximum(self.now_us[None, :] - self.first_us[:, None], 0)
            found = self.warmed[need] = np.asarray(
                self.seen[:, None] & (history >= need // _MICRO), dtype=np.bool_
            )
        return found


_LEVEL_BITS: Final = 62
"""Levels whose holding a :class:`Holding` code can tell (a bit each, lowest rank first)."""


@dataclass(frozen=True, slots=True)
class Holding:
    """Which levels hold, by (rule, brand) key and step, where that is known exactly.

    ``codes[rule_index * len(brands) + brand_index, step]``: the bits of the levels whose
    ``when`` surely holds (rank ``i`` → bit ``i``), when every level's answer is exact
    (holds surely or surely not); ``-1`` when some level's is not (it may hold or not: the
    engine decides). A key a rule does not apply to is ``0``. Equal codes at two steps
    mean the engine finds the same levels holding at both (see
    :func:`listener.rules.engine.next_move`)."""

    codes: NDArray[np.int64]
    lasting: NDArray[np.int64]
    """Per key: the bits of the levels whose ``keep_firing_for`` is not zero (when such a
    level last held is what its firing after it stops depends on)."""

    @property
    def hot(self) -> list[bool]:
        """Per step: whether some level may hold for some key (:meth:`Timeline.hot`)."""
        return [bool(h) for h in (self.codes != 0).any(axis=0).tolist()]

    def steady(self, k: int, before: NDArray[np.int64] | None) -> bool:
        """Whether every key's levels hold at step ``k`` exactly as in ``before`` (the
        codes of an earlier step; None: unknown), and no level that stops holding at step
        ``k + 1`` keeps firing for a while after it last held (so the engine need not
        record that it held at ``k``)."""
        if before is None or k + 1 >= self.codes.shape[1]:
            return False
        at, after = self.codes[:, k], self.codes[:, k + 1]
        return (
            bool((at >= 0).all())
            and np.array_equal(at, before)
            and bool((after >= 0).all())
            and not (at & ~after & self.lasting).any()
        )


class Timeline:
    """The hot steps of a set of rules (see the module): what they read is planned once."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        windows: dict[_Window, None] = {}
        for rule in self.rules:
            for level in rule.levels:
                for leaf in _leaves(level.when):
                    windows.update(dict.fromkeys(_reads(leaf)))
        self._offsets = np.array(
            sorted({w.start for w in windows} | {w.end for w in windows}), dtype=np.int64
        )
        self._measures = frozenset(w.measure for w in windows)

    def span(self, brands: int, cells: int = CELLS) -> int:
        """How many steps one read may cover for ``brands`` brands (at least one):
        ``cells`` running sums per count."""
        return max(1, cells // max(1, brands * len(self._offsets)))

    def hot(
        self, view: RunningReads, brands: Sequence[str], nows: Sequence[datetime]
    ) -> list[bool]:
        """For each of ``nows`` (ascending): whether some level of some rule may hold at
        it for one of ``brands`` (each rule's own brand list applies)."""
        if not nows:
            return []
        stretch = self._read(view, brands, nows)
        row = {brand: i for i, brand in enumerate(brands)}
        hot = np.zeros(len(nows), dtype=np.bool_)
        for rule in self.rules:
            rows = (
                np.arange(len(brands))
                if rule.brands is None
                else np.array([row[b] for b in rule.brands if b in row], dtype=np.intp)
            )
            if not len(rows):
                continue
            for level in rule.levels:
                _, may = _tree(level.when, stretch)
                if isinstance(may, bool):
                    if may:
                        return [True] * len(nows)
                    continue
                hot |= may[rows].any(axis=0)
        return [bool(h) for h in hot.tolist()]

    def holding(
        self, view: RunningReads, brands: Sequence[str], nows: Sequence[datetime]
    ) -> Holding:
        """Which levels surely hold at each of ``nows`` (ascending) for each (rule, brand)
        key, where the answer is exact (see :class:`Holding`)."""
        keys = len(self.rules) * len(brands)
        codes = np.zeros((keys, len(nows)), dtype=np.int64)
        lasting = np.zeros(keys, dtype=np.int64)
        if not nows or not keys:
            return Holding(codes, lasting)
        stretch = self._read(view, brands, nows)
        row = {brand: i for i, brand in enumerate(brands)}
        for r, rule in enumerate(self.rules):
            rows = (
                np.arange(len(brands))
                if rule.brands is None
                else np.array([row[b] for b in rule.brands if b in row], dtype=np.intp)
            )
            if not len(rows):
                continue
            code = np.zeros((len(rows), len(nows)), dtype=np.int64)
            exact = np.ones((len(rows), len(nows)), dtype=np.bool_)
            for level in rule.levels:
                surely, may = _tree(level.when, stretch)
                sure = np.broadcast_to(surely, (len(brands), len(nows)))[rows]
                exact &= sure == np.broadcast_to(may, (len(brands), len(nows)))[rows]
                if level.rank < _LEVEL_BITS:
                    code |= sure.astype(np.int64) << level.rank
                else:
                    exact &= ~sure  # no bit to say so: holding is left open
            code[~exact] = -1
            codes[r * len(brands) + rows] = code
            lasting[r * len(brands) + rows] = sum(
                1 << level.rank
                for level in rule.levels
                if level.keep_firing_for and level.rank < _LEVEL_BITS
            )
        return Holding(codes, lasting)

    def _read(
        self, view: RunningReads, brands: Sequence[str], nows: Sequence[datetime]
    ) -> _Stretch:
        now_us = np.fromiter(
            ((as_utc(now) - _EPOCH) // _MICRO for now in nows), dtype=np.int64, count=len(nows)
        )
        size_us = view.bucket // _MICRO
        offsets = self._offsets
        # bound (offset) × step: the first bucket index starting at or after now - offset
        indices = -(-(now_us[None, :] - offsets[:, None]) // size_us)
        # bounds of many (offset, step) pairs fall on the same bucket: each read once,
        # as a range of buckets when that is no longer than the bounds
        flat = indices.ravel()
        low, high = (int(flat.min()), int(flat.max())) if flat.size else (0, -1)
        if high - low < flat.size:
            columns, inverse = np.arange(low, high + 1, dtype=np.int64), flat - low
        else:
            columns, inverse = np.unique(flat, return_inverse=True)
        read = view.running_at(brands, columns, self._measures)
        first = view.first_seen_seconds(brands)
        seen = first != np.iinfo(np.int64).min
        return _Stretch(
            view=view,
            brands=brands,
            sums=read,
            at=np.asarray(inverse, dtype=np.intp).reshape(indices.shape),
            bound={int(offset): i for i, offset in enumerate(offsets.tolist())},
            now_us=now_us,
            first_us=np.where(seen, first, 0) * 1_000_000,
            seen=seen,
            values={},
            warmed={},
        )


def _leaves(condition: Condition) -> list[Condition]:
    if isinstance(condition, All | Any):
        return [leaf for inner in condition.conditions for leaf in _leaves(inner)]
    if isinstance(condition, Not):
        return _leaves(condition.condition)
    return [condition]


_Combine = Callable[[Sequence[Bools | bool]], Bools | bool]


def _every(parts: Sequence[Bools | bool]) -> Bools | bool:
    out: Bools | bool = True
    for part in parts:
        out = out & part
    return out


def _some(parts: Sequence[Bools | bool]) -> Bools | bool:
    out: Bools | bool = False
    for part in parts:
        out = out | part
    return out


def _tree(condition: Condition, stretch: _Stretch) -> Answer:
    """``(surely holds, may hold)`` of ``condition`` for every (brand, step)."""
    if isinstance(condition, All | Any):
        answers = [_tree(inner, stretch) for inner in condition.conditions]
        combine: _Combine = _every if isinstance(condition, All) else _some
        return combine([a[0] for a in answers]), combine([a[1] for a in answers])
    if isinstance(condition, Not):
        surely, maybe = _tree(condition.condition, stretch)
        return _negate(maybe), _negate(surely)
    if _plain_zscore(condition):
        assert isinstance(condition, ZScore)
        surely, maybe = _zscore(condition, stretch)
    elif isinstance(condition, ZScore | SeasonalZScore) and _bulk(condition):
        return _robust(condition, stretch)
    else:
        surely, maybe = _answer(condition, [stretch.window(w) for w in _reads(condition)])
    need = _warmup(condition)
    if need is not None:
        warm = stretch.warm(need)
        surely, maybe = surely & warm, maybe & warm
    return surely, maybe


def _robust(leaf: ZScore | SeasonalZScore, stretch: _Stretch) -> Answer:
    """Any other z-score or a seasonal z-score (:func:`_bulk`) for every (brand, step),
    warm-up included: worked out from all its windows only where it can hold at all (a
    rising one's window at least its :func:`~listener.rules.conditions.rising_floor`;
    with ``warmup``, the brand's history at least its look-back), with the screen's
    arithmetic."""
    windows = _reads(leaf)
    current = stretch.window(windows[0])
    if leaf.direction != "up":
        where = np.ones(current.shape, dtype=np.bool_)
    else:
        where = current >= rising_floor(leaf)
    if leaf.warmup:
        where = where & stretch.warm(leaf.lookback)
    surely = np.zeros(current.shape, dtype=np.bool_)
    maybe = np.zeros(current.shape, dtype=np.bool_)
    if not where.any():
        return surely, maybe
    rows, steps = np.nonzero(where)
    stacked = stretch.cells(windows, rows, steps)  # (window, cell)
    if isinstance(leaf, SeasonalZScore):
        stacked = stacked.reshape(leaf.seasons + 1, leaf.history + 1, -1)
    if leaf.direction == "up":  # the medians only where a bound without them leaves it open
        rise = may_rise(leaf, stacked)
        rows, steps, stacked = rows[rise], steps[rise], stacked[..., rise]
        if not len(rows):
            return surely, maybe
    decision = decide(leaf, stacked)
    surely[rows, steps] = decision.holds & ~decision.tie
    maybe[rows, steps] = decision.holds | decision.tie
    return surely, maybe


def _zscore(leaf: ZScore, stretch: _Stretch) -> Answer:
    """A plain z-score (:func:`_plain_zscore`) for every (brand, step), before its
    warm-up: worked out as the engine does for the brands whose floor is met at some step
    of the stretch (the window's count at least ``min_volume`` rising, the history's mean
    falling), only the floor when the spread cannot be read exactly."""
    current, before = (stretch.window(w) for w in _reads(leaf))
    mean = before / leaf.history
    up = leaf.direction == "up"
    floor = current >= leaf.min_volume if up else _at_least(mean, float(leaf.min_volume))[1]
    rows = np.flatnonzero(floor.any(axis=1))
    spread = stretch.spread(leaf, rows) if len(rows) else None
    if spread is None:
        return False, floor
    deviation = np.maximum(spread, leaf.min_deviation)
    middle, value = mean[rows], current[rows]
    if up:
        # the engine compares counts: current ≥ max(min_volume, mean + threshold × deviation)
        needed = np.maximum(float(leaf.min_volume), middle + leaf.threshold * deviation)
        surely, maybe = _at_least(value, needed)
    else:
        base_surely, base_maybe = _at_least(middle, float(leaf.min_volume))
        allowed = middle - leaf.threshold * deviation
        low_surely, low_maybe = _at_least(-value, -allowed)
        surely, maybe = base_surely & low_surely, base_maybe & low_maybe
    out_surely = np.zeros(current.shape, dtype=np.bool_)
    out_maybe = np.zeros(current.shape, dtype=np.bool_)
    out_surely[rows], out_maybe[rows] = surely, maybe
    return out_surely, out_maybe


def _negate(answer: Bools | bool) -> Bools | bool:
    return (not answer) if isinstance(answer, bool) else ~answer
