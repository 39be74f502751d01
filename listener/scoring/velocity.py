"""Per-brand bucketed measures of mentions over time (the numbers rules look at).

Contract (pure, in memory; the caller persists and restores):

* Each mention is added as a :class:`Sample` (sentiment, reach, author, story,
  categories, source, language) into fixed buckets of ``bucket`` length aligned to the
  Unix epoch (bucket start = ``floor(epoch_seconds / bucket) * bucket``), by the time of
  the mention (``at``, usually ``created_at``), not the time it was collected.
* **Measures** (:data:`MEASURES`), for one brand over a range: ``total``, ``negative``
  and ``positive`` (mention counts), ``reach`` and ``negative_reach`` (summed reach),
  ``sentiment_sum`` (summed compound scores; divide by ``total`` for the mean),
  ``voices`` and ``negative_voices`` (distinct authors), ``stories`` and
  ``negative_stories`` (distinct story ids). Distinct measures are exact unions over the
  buckets of the range, so one author posting in every minute of a window is one voice.
  Samples without an author (story) add to no voice (story) count.
* **Bucketed semantics**: ``value(brand, measure, start, end)`` covers the buckets whose
  *bucket start* lies in ``[start, end)``. A bucket that starts before ``start`` is not
  counted even if it overlaps the range, and the bucket containing ``end`` is counted
  when it starts before ``end``. With ``now`` inside the current bucket,
  ``[now - 15m, now)`` therefore covers the current partial bucket and the buckets
  starting in the 15 minutes before ``now``; the resolution is one bucket.
* **Filters**: ``category=``, ``source=`` and ``language=`` restrict a measure to the
  samples with that category among their ``categories``, that ``source``, that
  ``language`` (exact, case-sensitive strings; all given filters must match). Each bucket
  keeps one sub-series per (source, language, categories) combination it has seen, so
  any combination of filters is exact.
* ``add(..., weight=n)`` adds ``n`` identical mentions at once (a backtest replaying a
  volume series): counts, reach and sentiment are multiplied by ``n``; the author and the
  story are one voice and one story. ``weight=0`` only records history (``first_seen``).
* **Running sums**: the unfiltered counts (``total``, ``negative``, ``positive``) are also
  kept as sparse prefix sums over each brand's buckets (the indices of the buckets that
  hold mentions and the sums up to each; built lazily, cut back from the earliest bucket
  changed since, advanced past pruned buckets), every brand's in one shared arena of
  numpy buffers, so ``value`` of any range of them is two binary searches, ``strided``
  reads ``count`` adjacent windows (a z-score's history, a ramp's steps) in one pass, and
  ``running_at`` reads many brands at many bounds at once (the Evaluate stage's screen)
  with a few numpy operations over all of them, starting from where the bounds fell at
  the last bulk read: O(log n) per window whatever its length (O(1) for a bound that
  moved a bucket or a few), and memory and upkeep that follow the buckets holding
  mentions, not the time they span. They are whole numbers, so the values are exactly
  those of summing the buckets.
* ``first_seen(brand)`` is the start of the earliest bucket ever added for the brand (for
  warm-up). Pruning does not move it in memory; persisted, it travels in every bucket
  row, so after a restart it is the earliest among the stored rows (a brand with no
  bucket left within the retention starts its warm-up again).
* ``prune(now)`` drops buckets starting before ``now - retention``; values over ranges
  within the retention are unaffected. Late mentions older than that may be added but
  are dropped by the next prune. Future-dated mentions are kept and counted only by
  ranges that include their bucket. The author and story sets of buckets starting
  before ``now - distinct_retention`` are dropped earlier (to bound memory): from then on
  those buckets add nothing to ``voices`` and ``stories`` measures (size
  ``distinct_retention`` to the longest look-back of a rule on a distinct measure).
* ``sets_from(now)``: mentions before it fall in buckets that a prune at ``now`` strips
  of their sets, so a caller about to prune at ``now`` (or later) may add them without
  author and story (a backfill, a batch spanning hours): the windows after that prune
  are the same, and the bucket is encoded once, without sets, instead of twice.
* ``drain_dirty()`` hands out the buckets changed since the last drain (added to, or
  stripped of their sets by a prune) as ``(brand, bucket_start, json)`` rows, for
  writing to SQLite; ``load(rows)`` restores buckets from such rows (and does not mark
  them dirty). Buckets dropped by ``prune`` are no longer dirty; ``prune`` returns their
  keys so the caller can delete them from the store. The rows' form is under **Rows**.
* **Hand-off** (a brand's state moving to another worker): ``export_brand(brand)`` gives
  every bucket of the brand as rows (dirty or not), ``drop_brand(brand)`` forgets the
  brand, and ``load(rows)`` plus ``start_history(brand, first_seen)`` restore it
  elsewhere: every read of the brand then gives what it gave before the hand-off.

Memory (measured with tracemalloc, CPython 3.11): a bucket costs about 0.4 KiB, plus about
0.45 KiB per (source, language, categories) sub-series it holds, plus about 250 bytes per
mention whose author or story sits in its sets (until ``distinct_retention``). Per brand
per day of ``retention``, with mentions in every 1-minute bucket: about 0.55 MiB with no
sub-series, 1.2 MiB with one (one source, the processor's usual case: 8.5 MiB for a 7-day
seasonal rule), and about 0.65 MiB more per further combination present in every minute
(3 sources × 2 languages: about 4.4 MiB per day). The running sums add 32 bytes per
bucket summed (its index and three sums), and up to about as much again in room kept for
growth and left behind by moves until the arena compacts.

**Rows.** A bucket is one JSON array, ``[first_seen, whole, part, part, ...]``. A *cell*
(the measures of the whole bucket, or of one sub-series) is written as ``total,
negative, positive, reach, negative_reach, sentiment_sum``, then, only when it holds any,
its four sets ``voices, negative_voices, stories, negative_stories`` (each a sorted list,
``0`` when empty). ``whole`` is a cell as a list, or ``null`` when the bucket has a single
sub-series holding every mention of it (the bucket is that sub-series: the processor's
usual case, each mention having a source). A part is ``[source, language, [categories],
cell...]`` (``null`` for no source or language). When the parts' totals add up to the
whole's, every mention is in a part and the whole's sets are the unions of the parts'
(not written); otherwise they are written. Parts are written in the order they were
made and floats as Python's ``repr`` (exact), so a loaded bucket equals the one dumped
and every read of it sums the same numbers in the same order (reads sum buckets in time
order). Rows written before schema 6 are JSON objects (``{"total": 1, ..., "voices":
[...], "parts": [{"source": ..., ...}], "first_seen": ...}``: every measure of the whole
and of each part, zeros left out) and load as they did.

Datetimes may be aware (any zone) or naive (taken as UTC).
"""

from __future__ import annotations

import json
import math
import mmap
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from operator import attrgetter
from typing import Any, Final, get_args

import numpy as np
from numpy.typing import NDArray

from listener.clock import as_utc
from listener.config.schema import Measure, Metric

__all__ = ["DISTINCT_MEASURES", "MEASURES", "BucketRow", "Sample", "VelocityWindows"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MICRO = timedelta(microseconds=1)

BucketRow = tuple[str, int, str]
"""``(brand, bucket_start_epoch_seconds, json)``: one bucket as persisted."""

MEASURES: Final[tuple[Measure, ...]] = get_args(Measure)
"""Every measure :meth:`VelocityWindows.value` knows."""

DISTINCT_MEASURES: Final[frozenset[Measure]] = frozenset(
    {"voices", "negative_voices", "stories", "negative_stories"}
)
"""The measures that count distinct authors or stories (exact unions of sets)."""

_COUNTS = ("total", "negative", "positive")
_SUMS = ("reach", "negative_reach", "sentiment_sum")
_SETS = ("voices", "negative_voices", "stories", "negative_stories")


@dataclass(frozen=True, slots=True)
class Sample:
    """One mention as the windows see it.

    ``compound`` is the sentiment score (−1…1), ``reach`` how far the mention travels,
    ``author`` who wrote it (a voice), ``story`` the story it belongs to (copies and
    near-duplicates share one), ``categories`` its crisis categories.
    """

    negative: bool
    positive: bool = False
    compound: float = 0.0
    reach: float = 0.0
    author: str | None = None
    story: str | None = None
    categories: tuple[str, ...] = ()
    source: str | None = None
    language: str | None = None


class _Cell:
    """The measures of one series in one bucket; a set is None until it has a member."""

    __slots__ = (
        "negative",
        "negative_reach",
        "negative_stories",
        "negative_voices",
        "positive",
        "reach",
        "sentiment_sum",
        "stories",
        "total",
        "voices",
    )

    def __init__(self) -> None:
        self.total = 0
        self.negative = 0
        self.positive = 0
        self.reach = 0.0
        self.negative_reach = 0.0
        self.sentiment_sum = 0.0
        self.voices: set[str] | None = None
        self.negative_voices: set[str] | None = None
        self.stories: set[str] | None = None
        self.negative_stories: set[str] | None = None

    def add(self, sample: Sample, weight: int) -> None:
        self.total += weight
        reach = sample.reach * weight
        self.reach += reach
        self.sentiment_sum += sample.compound * weight
        negative = sample.negative
        if negative:
            self.negative += weight
            self.negative_reach += reach
        if sample.positive:
            self.positive += weight
        if not weight:
            return
        author = sample.author
        if author is not None:
            if self.voices is None:
                self.voices = {author}
            else:
                self.voices.add(author)
            if negative:
                if self.negative_voices is None:
                    self.negative_voices = {author}
                else:
                    self.negative_voices.add(author)
        story = sample.story
        if story is not None:
            if self.stories is None:
                self.stories = {story}
            else:
                self.stories.add(story)
            if negative:
                if self.negative_stories is None:
                    self.negative_stories = {story}
                else:
                    self.negative_stories.add(story)

    def has_sets(self) -> bool:
        return self.voices is not None or self.stories is not None

    def drop_sets(self) -> None:
        self.voices = self.negative_voices = self.stories = self.negative_stories = None

    def row(self, sets: bool = True) -> list[Any]:
        """The cell as a row writes it (see **Rows** in the module docstring): the six
        numbers, then the four sets when it holds any (and ``sets``)."""
        values: list[Any] = [
            self.total,
            self.negative,
            self.positive,
            self.reach,
            self.negative_reach,
            self.sentiment_sum,
        ]
        if sets and (self.voices is not None or self.stories is not None):
            v, nv, st, nst = self.voices, self.negative_voices, self.stories, self.negative_stories
            values += (
                sorted(v) if v else 0,
                sorted(nv) if nv else 0,
                sorted(st) if st else 0,
                sorted(nst) if nst else 0,
            )
        return values

    @classmethod
    def from_row(cls, values: list[Any], start: int, where: str) -> _Cell:
        """The cell written from ``values[start]`` on by :meth:`row`."""
        n = len(values) - start
        if n != 6 and n != 10:
            raise ValueError(f"{where}: expected 6 or 10 measures, not {n}")
        cell = cls()
        for name, value in zip(_COUNTS + _SUMS, values[start : start + 6], strict=True):
            setattr(cell, name, _measure(name, value, where))
        if n == 10:
            for name, members in zip(_SETS, values[start + 6 :], strict=True):
                if members != 0:
                    setattr(cell, name, _members(name, members, where))
        return cell._checked(where)

    @classmethod
    def from_json(cls, data: Any, where: str) -> _Cell:
        """A cell of a row written before schema 6 (a JSON object)."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object")
        cell = cls()
        for name in _COUNTS:
            setattr(cell, name, _measure(name, data.get(name, 0), where))
        for name in _SUMS:
            setattr(cell, name, _measure(name, data.get(name, 0.0), where))
        for name in _SETS:
            members = data.get(name)
            if members is not None:
                setattr(cell, name, _members(name, members, where))
        return cell._checked(where)

    def _checked(self, where: str) -> _Cell:
        if self.negative > self.total or self.positive > self.total:
            raise ValueError(
                f"{where}: bad counts: total={self.total}, negative={self.negative}, "
                f"positive={self.positive}"
            )
        return self


def _measure(name: str, value: Any, where: str) -> int | float:
    """A stored count (a whole number, not negative) or sum (finite, as a float)."""
    if name in _COUNTS:
        if type(value) is not int or value < 0:
            raise ValueError(f"{where}: bad {name} {value!r}")
        return value
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"{where}: bad {name} {value!r}")
    return float(value)


def _members(name: str, members: Any, where: str) -> set[str] | None:
    """A stored set (a list of strings; None when empty)."""
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ValueError(f"{where}: bad {name} {members!r}")
    return set(members) or None


_PartKey = tuple[str | None, str | None, tuple[str, ...]]
"""``(source, language, categories)`` of a sub-series."""


class _Bucket(_Cell):
    """A bucket: the measures of all its samples, and one sub-series per combination."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        super().__init__()
        self.parts: dict[_PartKey, _Cell] | None = None


_FLOOR = np.iinfo(np.int64).min
_CEILING = np.iinfo(np.int64).max
_ROW = {m: i for i, m in enumerate(_COUNTS)}
"""The row of each unfiltered count in :attr:`_Arena.sums`."""
_GET_COUNTS = tuple(attrgetter(m) for m in _COUNTS)
_NO_REGION = (0, 0, _FLOOR)
"""The region of a brand with nothing summed: the empty one, read from anywhere."""


def _zeros(*shape: int) -> NDArray[np.int64]:
    """A zeroed int64 buffer for the arena, in small pages where the platform allows.

    numpy asks the kernel for transparent huge pages for arrays of 4 MiB and more; the
    arena is touched a region at a time as brands are summed, and first touching a huge
    page costs it whole (measured on the bench machine: the first tick at 1,000 brands,
    which sums every brand's three days, 1.1 s in huge pages, 0.7 s without; steady
    ticks the same), and room not yet used would count as resident."""
    size = math.prod(shape) * 8
    advise = getattr(mmap, "MADV_NOHUGEPAGE", None)
    if size < 1 << 22 or advise is None:
        return np.zeros(shape, dtype=np.int64)
    memory = mmap.mmap(-1, size)  # anonymous: zero-filled, freed with the array
    memory.madvise(advise)
    return np.frombuffer(memory, dtype=np.int64).reshape(shape)


class _Arena:
    """Every brand's running sums (:class:`_Prefix`) in shared numpy buffers, one region
    per brand, so that the bulk read gathers all brands' sums at once
    (:meth:`VelocityWindows.running_at`).

    A region at ``start`` holding ``count`` summed buckets: ``keys[start]`` is a floor
    sentinel (the int64 minimum), ``keys[start + 1 : start + 1 + count]`` the bucket
    indices summed, ascending, and ``keys[start + 1 + count]`` a ceiling sentinel (the
    int64 maximum); ``sums[row, start + 1 + c]`` is that count (``_ROW``) summed over the
    first ``c`` of them (``c = 0 … count``). So the first key at or above an index ``q``
    sits at ``p = start + 1 + #(keys below q)``, ``sums[row, p]`` is the running sum there,
    and ``keys[p - 1] < q <= keys[p]`` tells that ``p`` is right (the sentinels make that
    hold at the ends). A region that outgrows its room moves to the end with a quarter
    more; the room it leaves, and that of brands dropped, is reclaimed when the buffers
    are full (a compaction keeps the regions of ``live``). Region 0 is empty: it stands
    for every brand with nothing summed."""

    __slots__ = ("keys", "live", "sums", "top")

    def __init__(self, live: Mapping[str, _Prefix]) -> None:
        self.live = live
        self.keys = _zeros(64)
        self.sums = _zeros(len(_COUNTS), 64)
        self.keys[0], self.keys[1] = _FLOOR, _CEILING
        self.top = 2

    def region(self, size: int) -> int:
        """The start of ``size`` free slots (the regions of ``live`` may move first)."""
        self.reserve(size)
        start = self.top
        self.top += size
        return start

    def reserve(self, size: int) -> None:
        """Make room for regions of ``size`` slots in all (the regions of ``live`` may
        move): one growth for many regions, rather than doubling up to them."""
        if self.top + size <= len(self.keys):
            return
        held = sum(prefix.size for prefix in self.live.values()) + 2
        if (self.top - held) * 2 > self.top:  # mostly room left behind: compact
            self._rebuild(max(64, (held + size) * 3 // 2), compact=True)
        else:
            self._rebuild(max(64, (self.top + size) * 3 // 2), compact=False)

    def _rebuild(self, capacity: int, compact: bool) -> None:
        """New buffers of ``capacity`` slots, holding the regions of ``live`` one after the
        other (``compact``) or where they are."""
        keys, sums = _zeros(capacity), _zeros(len(_COUNTS), capacity)
        if compact:
            keys[0], keys[1] = _FLOOR, _CEILING
            top = 2
            for prefix in self.live.values():
                if prefix.size:
                    old, end = prefix.start, prefix.start + prefix.count + 2
                    keys[top : top + end - old] = self.keys[old:end]
                    sums[:, top : top + end - old] = self.sums[:, old:end]
                    prefix.start = top
                    top += prefix.size
        else:
            top = self.top
            keys[:top] = self.keys[:top]
            sums[:, :top] = self.sums[:, :top]
        self.keys, self.sums, self.top = keys, sums, top


class _Prefix:
    """Running sums of one brand's unfiltered counts over its buckets, sparse: a region of
    the :class:`_Arena` (``start``, room for ``size`` slots) holding the indices (bucket
    start // bucket length) of the ``count`` buckets summed, ascending, and the sums up to
    each. The count over the indices ``[first, last)`` is the running sum at the first key
    at or above ``last`` less that at ``first``: the cost follows the buckets that hold
    mentions, not the time they span (a quiet brand's week is a handful of entries, not
    10,080).

    ``pending`` holds the indices of buckets not summed yet, all after the last key
    (``last``): adding to a bucket at or before it cuts the sums there and moves the keys
    from there to ``pending``; reading sums them in (:meth:`extend`). Pruned buckets stay
    summed (reads clamp to the brand's lowest held bucket, so they cancel out) until
    :meth:`advance` drops them."""

    __slots__ = ("arena", "count", "last", "pending", "size", "start")

    def __init__(self, arena: _Arena) -> None:
        self.arena = arena
        self.start = 0  # the empty region until something is summed
        self.size = 0
        self.count = 0
        self.last: int | None = None
        self.pending: list[int] = []

    def keys(self) -> NDArray[np.int64]:
        """The indices summed (a view: valid until the next change)."""
        first = self.start + 1
        return self.arena.keys[first : first + self.count]

    def sums(self, measure: str) -> NDArray[np.int64]:
        """``measure`` summed over the first ``c`` keys, for ``c = 0 … count`` (a view)."""
        first = self.start + 1
        return self.arena.sums[_ROW[measure], first : first + self.count + 1]

    def touch(self, index: int, new: bool) -> None:
        """Bucket ``index`` changed (``new``: it did not exist before)."""
        last = self.last
        if last is None or index > last:
            if new:
                self.pending.append(index)
            return
        keys = self.arena.keys
        first = self.start + 1
        if index == last:  # the latest bucket again (the usual add after a read): unsum it
            at = self.count - 1
            self.pending.append(index)
        else:
            at = int(keys[first : first + self.count].searchsorted(index))
            self.pending.extend(keys[first + at : first + self.count].tolist())
            if new and keys.item(first + at) != index:
                self.pending.append(index)
        self.count = at
        keys[first + at] = _CEILING
        self.last = keys.item(first + at - 1) if at else None

    def position(self, index: int) -> int:
        """How many summed buckets have an index below ``index``."""
        return int(self.keys().searchsorted(index))

    def extend(self, bucket_at: Callable[[int], _Bucket | None], size: int) -> None:
        """Sum the pending buckets in (``bucket_at``: the bucket starting at a second, None
        when pruned since; ``size``: the bucket length in seconds)."""
        if not self.pending:
            return
        indices = sorted(set(self.pending)) if len(self.pending) > 1 else self.pending
        self.pending = []
        found = [bucket_at(index * size) for index in indices]
        buckets = [b for b in found if b is not None]
        if len(buckets) < len(found):  # pruned since
            indices = [index for index, b in zip(indices, found, strict=True) if b is not None]
            if not indices:
                return
        count, added = self.count, len(indices)
        if count + added + 2 > self.size:
            self._move(count + added + 2)
        arena, at = self.arena, self.start + 1 + count
        keys, sums = arena.keys, arena.sums
        keys[at + added] = _CEILING
        if added > 8:  # a brand's history summed at once
            keys[at : at + added] = indices
            counts = np.array(
                [np.fromiter(map(get, buckets), np.int64, added) for get in _GET_COUNTS]
            )
            sums[:, at + 1 : at + 1 + added] = sums[:, at, None] + counts.cumsum(axis=1)
        else:  # the usual read after an add: a bucket or two, cheaper one by one
            totals, negatives, positives = sums
            total, negative, positive = sums[:, at].tolist()
            for j, (index, bucket) in enumerate(zip(indices, buckets, strict=True), start=at):
                keys[j] = index
                total += bucket.total
                negative += bucket.negative
                positive += bucket.positive
                totals[j + 1] = total
                negatives[j + 1] = negative
                positives[j + 1] = positive
        self.count = count + added
        self.last = indices[-1]

    @staticmethod
    def room(need: int) -> int:
        """The size of a region for ``need`` slots: a quarter more, so that a brand's
        growth moves it now and then, not at every new bucket."""
        return need + max(need // 4, 8)

    def _move(self, need: int) -> None:
        """Move to a region with room for ``need`` slots (:meth:`room`)."""
        size = self.room(need)
        new = self.arena.region(size)  # may move this region too: read start after
        old, end = self.start, self.start + self.count + 2
        arena = self.arena
        arena.keys[new : new + end - old] = arena.keys[old:end]
        arena.sums[:, new : new + end - old] = arena.sums[:, old:end]
        self.start, self.size = new, size

    def advance(self, low: int) -> None:
        """Drop the entries of buckets before index ``low`` when they are many (amortised
        O(1))."""
        drop = self.position(low)
        count = self.count
        if drop > 512 and drop * 2 >= count:
            first = self.start + 1
            keys, sums = self.arena.keys, self.arena.sums
            keys[first : first + count - drop] = keys[first + drop : first + count].copy()
            sums[:, first : first + count - drop + 1] = sums[
                :, first + drop : first + count + 1
            ].copy()
            self.count = count - drop
            keys[first + self.count] = _CEILING
            if not self.count:
                self.last = None


class _Positions:
    """Where the bulk read (:meth:`VelocityWindows.running_at`) found each brand's bounds
    last time, as the number of the brand's keys below each bound: the next read starts
    from there. Ticks a bucket or a few apart move each bound by a key or a few (and a
    brand's new buckets add a key or a few near the top), so stepping every position up
    or down while it is not where it belongs, over all brands at once, finds them
    exactly for a few numpy operations, where a binary search per brand would cost a
    call and a log factor each. A position is checked against its keys either side
    (the arena's sentinels make that hold at the ends), so whatever changed since, the
    positions found are exact: a row it cannot settle in a few steps (a brand new here,
    a jump in time, many late buckets) is searched for directly."""

    __slots__ = ("base", "brands", "offsets", "rows")

    STEPS: Final = 8
    """How many steps up or down a guess may take (and how far the bounds may have moved
    since it was made) before its row is searched for instead."""

    def __init__(self) -> None:
        self.brands: tuple[str, ...] = ()
        self.rows: dict[str, int] = {}
        """The row of each brand in :attr:`offsets` (:attr:`brands` in order)."""
        self.offsets: NDArray[np.int64] = np.zeros((0, 0), dtype=np.int64)
        """Per brand and bound: how many of its keys lay below the bound."""
        self.base: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        """The first bound of each row when it was found (how far the bounds moved since)."""

    def find(
        self,
        keys: NDArray[np.int64],
        brands: Sequence[str],
        starts: NDArray[np.int64],
        counts: NDArray[np.int64],
        bounds: NDArray[np.int64],
    ) -> NDArray[np.int64]:
        """The position in ``keys`` (the arena's) of the first key at or above each of
        ``bounds`` (brands × bounds) in the region of each brand (``starts``, ``counts``)."""
        names = tuple(brands)
        first = (starts + 1)[:, None]
        rows: NDArray[np.intp] | None = None  # the rows of ``names`` here (None: in order)
        if self.offsets.shape[1] != bounds.shape[1]:  # other bounds: nothing to start from
            guess = np.zeros(bounds.shape, dtype=np.int64)
            known = np.zeros(len(names), dtype=np.bool_)
        elif names == self.brands:  # the usual tick: every brand read again
            guess = self.offsets
            known = np.abs(bounds[:, 0] - self.base) <= self.STEPS
        else:  # some brands (those due within a bucket), or others
            rows = np.fromiter((self.rows.get(b, -1) for b in names), np.intp, len(names))
            held = np.maximum(rows, 0)
            guess = self.offsets[held]
            known = (rows >= 0) & (np.abs(bounds[:, 0] - self.base[held]) <= self.STEPS)
        found = first + np.minimum(guess, counts[:, None])
        self._search(keys, found, bounds, first, counts, np.flatnonzero(~known))
        if known.any():
            lost = self._step(keys, found, bounds)
            self._search(keys, found, bounds, first, counts, np.flatnonzero(lost))
        offsets, base = found - first, bounds[:, 0].copy()
        if rows is not None and (rows >= 0).all():
            self.offsets[rows] = offsets
            self.base[rows] = base
        else:
            if names != self.brands:
                self.brands, self.rows = names, {b: row for row, b in enumerate(names)}
            self.offsets, self.base = offsets, base
        return found

    @staticmethod
    def _search(
        keys: NDArray[np.int64],
        found: NDArray[np.int64],
        bounds: NDArray[np.int64],
        first: NDArray[np.int64],
        counts: NDArray[np.int64],
        rows: NDArray[np.intp],
    ) -> None:
        """Find the positions of ``rows`` by binary search, one brand at a time (in place)."""
        for row in rows.tolist():
            start, count = int(first[row, 0]), int(counts[row])
            found[row] = start + keys[start : start + count].searchsorted(bounds[row])

    def _step(
        self, keys: NDArray[np.int64], found: NDArray[np.int64], bounds: NDArray[np.int64]
    ) -> NDArray[np.bool_]:
        """Step the positions ``found`` (in place) up while the key there is below its
        bound, and down while the key before is not; the rows not settled in
        :attr:`STEPS` steps."""
        flat, want = found.reshape(-1), bounds.reshape(-1)
        up = np.flatnonzero(keys[flat] < want)
        for _ in range(self.STEPS):
            if not len(up):
                break
            flat[up] += 1
            up = up[keys[flat[up]] < want[up]]
        down = np.flatnonzero(keys[flat - 1] >= want)
        for _ in range(self.STEPS):
            if not len(down):
                break
            flat[down] -= 1
            down = down[keys[flat[down] - 1] >= want[down]]
        lost = np.zeros(found.shape[0], dtype=np.bool_)
        width = found.shape[1]
        lost[up // width] = True
        lost[down // width] = True
        return lost


class VelocityWindows:
    """Bucketed measures of mentions per brand (see the module docstring).

    ``bucket`` must be a positive whole number of seconds; ``retention`` must be
    positive (size it to the longest rule look-back plus a bucket, see
    ``listener.rules.engine.max_lookback``). ``distinct_retention`` (default: the same as
    ``retention``) is how long buckets keep their author and story sets.
    """

    __slots__ = (
        "_arena",
        "_changes",
        "_dirty",
        "_first",
        "_keys",
        "_low",
        "_positions",
        "_prefix",
        "_series",
        "_sets",
        "_size",
        "_size_us",
        "distinct_retention",
        "retention",
    )

    def __init__(
        self,
        bucket: timedelta = timedelta(minutes=1),
        retention: timedelta = timedelta(hours=24),
        distinct_retention: timedelta | None = None,
    ) -> None:
        if bucket <= timedelta(0) or bucket % _SECOND:
            raise ValueError(f"bucket must be a positive whole number of seconds, not {bucket}")
        if retention <= timedelta(0):
            raise ValueError(f"retention must be positive, not {retention}")
        if distinct_retention is not None and distinct_retention <= timedelta(0):
            raise ValueError(f"distinct_retention must be positive, not {distinct_retention}")
        self._size = bucket // _SECOND
        self._size_us = self._size * 1_000_000
        self.retention = retention
        self.distinct_retention = distinct_retention
        # brand -> bucket start (epoch seconds) -> bucket
        self._series: dict[str, dict[int, _Bucket]] = {}
        # brand -> earliest bucket start ever added or loaded
        self._first: dict[str, int] = {}
        # brand -> the starts of its buckets, ascending (prune cuts a prefix)
        self._keys: dict[str, list[int]] = {}
        # brand -> the earliest bucket start held
        self._low: dict[str, int] = {}
        # brand -> starts of the buckets that may hold author or story sets, ascending
        self._sets: dict[str, list[int]] = {}
        self._dirty: set[tuple[str, int]] = set()
        # brand -> running sums of the unfiltered counts (built on first read), all in one arena
        self._prefix: dict[str, _Prefix] = {}
        self._arena = _Arena(self._prefix)
        # the bulk read's last positions (see running_at)
        self._positions: _Positions | None = None
        # brand -> a number that moves whenever anything a read of the brand sees changes
        self._changes: dict[str, int] = {}

    @property
    def bucket(self) -> timedelta:
        """The bucket length."""
        return timedelta(seconds=self._size)

    def changes(self, brand: str) -> int:
        """A number that differs after any change to ``brand``'s buckets that a read
        within the retentions can see (an add, a load): equal numbers at two times mean
        every such read gives the same value (the Evaluate stage's coalescing). ``prune``
        does not move it: it drops only buckets (sets) that no range within ``retention``
        (``distinct_retention``) of the prune's ``now``, or of a later one, covers."""
        return self._changes.get(brand, 0)

    def _changed(self, brand: str) -> None:
        self._changes[brand] = self._changes.get(brand, 0) + 1

    def bucket_start(self, at: datetime) -> int:
        """The epoch second at which the bucket holding ``at`` starts."""
        if at.tzinfo is None:  # naive: UTC (an aware time subtracts whatever its zone)
            at = at.replace(tzinfo=UTC)
        return ((at - _EPOCH) // _SECOND) // self._size * self._size

    # ------------------------------------------------------------------ writing

    def add(self, brand: str, at: datetime, sample: Sample, weight: int = 1) -> None:
        """Add ``weight`` mentions like ``sample`` of ``brand`` at ``at``."""
        if weight < 0:
            raise ValueError(f"weight cannot be negative, not {weight}")
        key = self.bucket_start(at)
        series = self._series.get(brand)
        if series is None:
            series = self._series[brand] = {}
        bucket = series.get(key)
        new = bucket is None
        if bucket is None:
            bucket = series[key] = _Bucket()
            self._created(brand, key)
            keys = self._keys.get(brand)
            if keys is None:
                self._keys[brand] = [key]
            else:
                _insert(keys, key)
        bucket.add(sample, weight)
        changes = self._changes
        changes[brand] = changes.get(brand, 0) + 1
        prefix = self._prefix.get(brand)
        if prefix is not None:
            prefix.touch(key // self._size, new)
        if weight and (sample.author is not None or sample.story is not None):
            held = self._sets.get(brand)
            if held is None:
                self._sets[brand] = [key]
            else:
                _insert(held, key)
        source, language, categories = sample.source, sample.language, sample.categories
        if source is not None or language is not None or categories:
            parts = bucket.parts
            if parts is None:
                parts = bucket.parts = {}
            part = (source, language, categories)
            cell = parts.get(part)
            if cell is None:
                cell = parts[part] = _Cell()
            cell.add(sample, weight)
        self._dirty.add((brand, key))

    def sets_from(self, now: datetime) -> datetime:
        """The start of the earliest bucket whose author and story sets a prune at ``now``
        keeps: a mention before it adds to no voice or story count that any read after
        that prune sees, so it may be added without author and story (see the module
        docstring)."""
        kept = min(self.distinct_retention or self.retention, self.retention)
        cut_us = (as_utc(now) - _EPOCH) // _MICRO - kept // _MICRO
        below = -(-cut_us // 1_000_000)  # prune strips the buckets starting before this
        return _EPOCH + timedelta(seconds=-(-below // self._size) * self._size)

    def _created(self, brand: str, key: int) -> None:
        first = self._first.get(brand)
        if first is None or key < first:
            self._first[brand] = key
        low = self._low.get(brand)
        if low is None or key < low:
            self._low[brand] = key

    # ------------------------------------------------------------------ reading

    def _buckets(self, brand: str, start: datetime, end: datetime) -> list[_Bucket]:
        """The buckets of ``brand`` whose start is in ``[start, end)``."""
        series = self._series.get(brand)
        if not series:
            return []
        start_us = (as_utc(start) - _EPOCH) // _MICRO
        end_us = (as_utc(end) - _EPOCH) // _MICRO
        if end_us <= start_us:
            return []
        size_us = self._size_us
        first = -(-start_us // size_us)  # first bucket index starting at or after start
        last = -(-end_us // size_us)  # first bucket index starting at or after end
        size = self._size
        if last - first <= len(series):
            get = series.get
            return [b for b in (get(i * size) for i in range(first, last)) if b is not None]
        # in time order too (the order of their sums), whatever order they were made in
        keys = self._keys[brand]
        return [
            series[k]
            for k in keys[bisect_left(keys, first * size) : bisect_left(keys, last * size)]
        ]

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
        """``measure`` of ``brand`` over the buckets starting in ``[start, end)``, filtered.

        Raises ``ValueError`` on an unknown measure.
        """
        if category is None and source is None and language is None and measure in _COUNTS:
            prefix = self._running(brand)
            if prefix is not None:
                start_us = (as_utc(start) - _EPOCH) // _MICRO
                end_us = (as_utc(end) - _EPOCH) // _MICRO
                if end_us <= start_us:
                    return 0.0
                size_us = self._size_us
                return float(
                    self._between(
                        brand, prefix, measure, -(-start_us // size_us), -(-end_us // size_us)
                    )
                )
        if measure not in MEASURES:
            raise ValueError(f"unknown measure {measure!r}; known: {', '.join(MEASURES)}")
        buckets = self._buckets(brand, start, end)
        if not buckets:
            return 0.0
        cells: Iterable[_Cell]
        if category is None and source is None and language is None:
            cells = buckets
        else:
            cells = [
                cell
                for b in buckets
                if b.parts
                for (src, lang, cats), cell in b.parts.items()
                if (source is None or src == source)
                and (language is None or lang == language)
                and (category is None or category in cats)
            ]
        if measure in DISTINCT_MEASURES:
            seen: set[str] = set()
            for cell in cells:
                members = getattr(cell, measure)
                if members:
                    seen.update(members)
            return float(len(seen))
        return float(sum(getattr(cell, measure) for cell in cells))

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
        """``value`` over ``[end - (k + 1) × width, end - k × width)`` for k = 0 … count - 1
        (the latest window first): the same numbers, read in one pass."""
        if category is None and source is None and language is None and measure in _COUNTS:
            prefix = self._running(brand)
            if prefix is not None and width > timedelta(0):
                end_us = (as_utc(end) - _EPOCH) // _MICRO
                width_us = width // _MICRO
                size_us = self._size_us
                # bounds[k]: the first bucket index starting at or after end - k × width
                bounds = [-(-(end_us - k * width_us) // size_us) for k in range(count + 1)]
                low = self._low[brand] // self._size
                self._extend(brand, prefix)
                # reads clamp to the lowest bucket held: pruned buckets still summed cancel out
                at = prefix.sums(measure)[prefix.keys().searchsorted(np.maximum(bounds, low))]
                windows: list[float] = (at[:-1] - at[1:]).astype(np.float64).tolist()
                return windows
        return [
            self.value(
                brand,
                measure,
                end - (k + 1) * width,
                end - k * width,
                category=category,
                source=source,
                language=language,
            )
            for k in range(count)
        ]

    def running_at(
        self, brands: Sequence[str], indices: NDArray[np.int64], measures: Iterable[str]
    ) -> dict[str, NDArray[np.int64]]:
        """The running sums of the unfiltered counts ``measures`` (``total``, ``negative``,
        ``positive``) of each of ``brands`` at the bucket indices ``indices`` (bucket index
        = bucket start // bucket length): ``sums[m][i, k] - sums[m][i, j]`` is ``m`` of
        ``brands[i]`` over the buckets with index in ``[indices[j], indices[k])``, exactly
        what :meth:`value` reads over that range (the rows of different brands have
        different origins: only differences within a row mean anything). A brand with no
        bucket reads zeros. The Evaluate stage's screen reads every brand's windows in one
        pass through this: every brand's sums are in one arena, so finding where each
        bound falls and reading the sums there are a few numpy operations over all brands
        (:class:`_Positions`)."""
        wanted = [m for m in _COUNTS if m in set(measures)]
        shape = (len(brands), len(indices))
        if not shape[0] or not shape[1] or not wanted:
            return {m: np.zeros(shape, dtype=np.int64) for m in wanted}
        regions = self._regions(brands)
        starts, counts, low = regions[:, 0], regions[:, 1], regions[:, 2]
        # reads clamp to the lowest bucket held: pruned buckets still summed cancel out
        bounds = np.maximum(np.asarray(indices, dtype=np.int64)[None, :], low[:, None])
        if self._positions is None:
            self._positions = _Positions()
        at = self._positions.find(self._arena.keys, brands, starts, counts, bounds)
        sums = self._arena.sums
        return {m: sums[_ROW[m]][at] for m in wanted}

    def _regions(self, brands: Sequence[str]) -> NDArray[np.int64]:
        """Per brand (a row): the start and count of its running sums' region in the arena,
        with nothing pending, and the index of its lowest bucket held (the empty region and
        the int64 minimum for a brand with no bucket)."""
        held, series, lows = self._prefix, self._series, self._low
        out: list[_Prefix | None] = []
        growing: list[tuple[str, _Prefix]] = []
        for brand in brands:
            prefix = held.get(brand)
            if prefix is None and brand in series and brand in lows:
                prefix = self._running(brand)
            if prefix is not None and prefix.pending:
                growing.append((brand, prefix))
            out.append(prefix)
        if growing:  # room for all that move at once (the first read after a start sums all)
            needs = ((p.count + len(p.pending) + 2, p.size) for _, p in growing)
            self._arena.reserve(sum(_Prefix.room(need) for need, room in needs if need > room))
            for brand, prefix in growing:
                self._extend(brand, prefix)
        size = self._size
        found = chain.from_iterable(
            (p.start, p.count, lows[b] // size) if p else _NO_REGION
            for b, p in zip(brands, out, strict=True)
        )
        return np.fromiter(found, np.int64, 3 * len(brands)).reshape(-1, 3)

    def first_seen_seconds(self, brands: Sequence[str]) -> NDArray[np.int64]:
        """:meth:`first_seen` of each of ``brands`` as epoch seconds (the int64 minimum
        for a brand never seen)."""
        first = self._first
        never = np.iinfo(np.int64).min
        return np.fromiter((first.get(b, never) for b in brands), dtype=np.int64, count=len(brands))

    def _running(self, brand: str) -> _Prefix | None:
        """The running sums of ``brand`` (built when missing); None when it has no bucket."""
        prefix = self._prefix.get(brand)
        if prefix is not None:
            return prefix
        series = self._series.get(brand)
        if not series or brand not in self._low:
            return None
        prefix = self._prefix[brand] = _Prefix(self._arena)
        size = self._size
        prefix.pending = [key // size for key in series]
        return prefix

    def _extend(self, brand: str, prefix: _Prefix) -> None:
        """Sum the pending buckets in (the running sums are then exact everywhere)."""
        if prefix.pending:
            prefix.extend(self._series[brand].get, self._size)

    def _between(self, brand: str, prefix: _Prefix, measure: str, first: int, last: int) -> int:
        """An unfiltered count over the bucket indices ``[first, last)``."""
        low = self._low[brand] // self._size
        first = max(first, low)
        if last <= first:
            return 0
        self._extend(brand, prefix)
        start = prefix.start + 1
        hi, lo = self._arena.keys[start : start + prefix.count].searchsorted((last, first))
        sums = self._arena.sums
        row = _ROW[measure]
        return sums.item(row, start + hi) - sums.item(row, start + lo)

    def count(self, brand: str, metric: Metric, start: datetime, end: datetime) -> int:
        """``value`` as a whole number (for counting measures such as total and negative)."""
        return int(self.value(brand, metric, start, end))

    def first_seen(self, brand: str) -> datetime | None:
        """The start of the earliest bucket of ``brand`` (None when never seen)."""
        first = self._first.get(brand)
        return None if first is None else _EPOCH + timedelta(seconds=first)

    def brands(self) -> set[str]:
        """Brands that have at least one bucket."""
        return set(self._series)

    # ------------------------------------------------------------------ hand-off

    def bucket_starts(self, brand: str) -> list[int]:
        """The starts (epoch seconds) of ``brand``'s buckets, ascending."""
        return list(self._keys.get(brand, ()))

    def export_brand(self, brand: str) -> list[BucketRow]:
        """Rows for every bucket of ``brand`` (changed since the last drain or not),
        sorted by start: what :meth:`load` restores the brand from."""
        series = self._series.get(brand)
        if not series:
            return []
        return [(brand, key, self._dump(brand, series[key])) for key in self._keys[brand]]

    def drop_brand(self, brand: str) -> None:
        """Forget ``brand``: its buckets (dirty or not), their sets and running sums, and
        its first bucket. Its :meth:`changes` number moves (reads of it now see nothing)."""
        if brand not in self._series and brand not in self._first:
            return
        self._series.pop(brand, None)
        self._first.pop(brand, None)
        self._keys.pop(brand, None)
        self._low.pop(brand, None)
        self._sets.pop(brand, None)
        self._prefix.pop(brand, None)
        self._dirty -= {(b, key) for b, key in self._dirty if b == brand}
        self._changed(brand)

    def start_history(self, brand: str, first_seen: datetime) -> None:
        """Make ``brand``'s history start at ``first_seen`` (the start of a bucket) when it
        starts later or not at all: a brand handed over keeps its warm-up even when none
        of its buckets is left (``first_seen`` outlives pruning in memory)."""
        key = self.bucket_start(first_seen)
        first = self._first.get(brand)
        if first is None or key < first:
            self._first[brand] = key
            self._changed(brand)

    # ------------------------------------------------------------------ housekeeping

    def prune(self, now: datetime, brands: Iterable[str] | None = None) -> list[tuple[str, int]]:
        """Drop buckets starting before ``now - retention`` (return their ``(brand, start)``)
        and the author/story sets of buckets starting before ``now - distinct_retention``
        (marking those buckets dirty), of every brand or of ``brands`` only. The cost
        follows what goes, not what stays: each brand's bucket starts (and those of its
        buckets holding sets) are kept ascending, so what a prune takes is a prefix found
        by bisection."""
        now_us = (as_utc(now) - _EPOCH) // _MICRO
        cutoff_us = now_us - self.retention // _MICRO
        distinct = self.distinct_retention
        distinct_us = now_us - distinct // _MICRO if distinct is not None else cutoff_us
        # the buckets starting (whole seconds) before these go, lose their sets
        drop_below = -(-cutoff_us // 1_000_000)
        strip_below = max(drop_below, -(-distinct_us // 1_000_000))
        dropped: list[tuple[str, int]] = []
        dirty = self._dirty
        all_series = self._series
        for brand in list(all_series) if brands is None else [b for b in brands if b in all_series]:
            series = self._series[brand]
            keys = self._keys[brand]
            if keys[0] < drop_below:
                cut = bisect_left(keys, drop_below)
                for key in keys[:cut]:
                    del series[key]
                    dirty.discard((brand, key))
                    dropped.append((brand, key))
                del keys[:cut]
                if keys:
                    self._low[brand] = keys[0]
                    prefix = self._prefix.get(brand)
                    if prefix is not None:
                        prefix.advance(keys[0] // self._size)
                else:
                    del self._series[brand], self._low[brand], self._keys[brand]
                    self._prefix.pop(brand, None)
            held = self._sets.get(brand)
            if held and held[0] < strip_below:
                cut = bisect_left(held, strip_below)
                for key in held[:cut]:
                    bucket = series.get(key)  # None: dropped above
                    if bucket is not None and _strip(bucket):
                        dirty.add((brand, key))
                del held[:cut]
                if not held:
                    del self._sets[brand]
        return dropped

    def discard_dirty(self) -> None:
        """Forget which buckets changed, writing no rows (windows that are never persisted:
        a backtest's, whose store is thrown away at the end)."""
        self._dirty.clear()

    def drain_dirty(self) -> list[BucketRow]:
        """Rows for the buckets changed since the last drain, sorted by brand then start."""
        rows: list[BucketRow] = []
        series = self._series
        dump = self._dump
        for brand, key in sorted(self._dirty):
            bucket = series.get(brand, {}).get(key)
            if bucket is not None:
                rows.append((brand, key, dump(brand, bucket)))
        self._dirty.clear()
        return rows

    def _dump(self, brand: str, bucket: _Bucket) -> str:
        """The row of a bucket (see **Rows** in the module docstring)."""
        row: list[Any] = [self._first[brand], None]
        parts = bucket.parts
        if not parts:
            row[1] = bucket.row()
            return _encode(row)
        held = 0
        # in the order they were made: loaded, they sum (filtered reads) in the same order
        for (source, language, categories), cell in parts.items():
            held += cell.total
            row.append([source, language, categories, *cell.row()])
        if len(parts) > 1 or held != bucket.total:
            # the whole's sets are the unions of the parts' when these hold every mention
            row[1] = bucket.row(sets=held != bucket.total)
        return _encode(row)

    def load(self, rows: Iterable[BucketRow]) -> None:
        """Restore buckets from rows (replacing any in memory with the same key), in the
        form :meth:`drain_dirty` writes or the one written before schema 6.

        Raises ``ValueError`` on a row whose start is not bucket-aligned or whose JSON is
        not a bucket (bad JSON, negative counts, more negatives or positives than
        mentions, parts holding more mentions than the bucket, sets that are not lists of
        strings).
        """
        touched: set[str] = set()
        try:
            for brand, key, blob in rows:
                where = f"bucket {key} of {brand!r}"
                if key % self._size:
                    raise ValueError(f"{where}: start is not a multiple of {self._size}s")
                try:
                    data = json.loads(blob)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{where}: bad JSON: {exc}") from None
                if isinstance(data, list):
                    bucket, first = _bucket_from_row(data, where)
                else:
                    bucket, first = _bucket_from_object(data, key, where)
                self._series.setdefault(brand, {})[key] = bucket
                touched.add(brand)
                self._prefix.pop(brand, None)
                self._changed(brand)
                self._created(brand, key)
                if first < self._first[brand]:
                    self._first[brand] = first
                if bucket.has_sets() or any(c.has_sets() for c in (bucket.parts or {}).values()):
                    self._sets.setdefault(brand, []).append(key)
        finally:  # rows come in any order: sort the indexes of each brand loaded once
            for brand in touched:
                self._keys[brand] = sorted(self._series[brand])
                held = self._sets.get(brand)
                if held is not None:
                    self._sets[brand] = sorted(set(held))


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _insert(keys: list[int], key: int) -> None:
    """Put ``key`` into the ascending ``keys`` unless it is there: an append when it is
    the latest (the usual case: buckets are made as time goes), else a bisection."""
    if not keys or key > keys[-1]:
        keys.append(key)
    elif key != keys[-1]:
        at = bisect_left(keys, key)
        if keys[at] != key:
            keys.insert(at, key)


def _strip(bucket: _Bucket) -> bool:
    """Drop a bucket's author/story sets; whether it had any."""
    had = bucket.has_sets()
    bucket.drop_sets()
    for cell in (bucket.parts or {}).values():
        had = had or cell.has_sets()
        cell.drop_sets()
    return had


def _bucket_of(cell: _Cell) -> _Bucket:
    """A bucket with the measures of ``cell`` (sets copied: they change apart)."""
    bucket = _Bucket()
    for name in _COUNTS + _SUMS:
        setattr(bucket, name, getattr(cell, name))
    for name in _SETS:
        members = getattr(cell, name)
        setattr(bucket, name, set(members) if members else None)
    return bucket


def _part_key(raw: Any, where: str) -> _PartKey:
    source, language, categories = raw
    if not (source is None or isinstance(source, str)) or not (
        language is None or isinstance(language, str)
    ):
        raise ValueError(f"{where}: bad source or language")
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise ValueError(f"{where}: bad categories {categories!r}")
    return (source, language, tuple(categories))


def _bucket_from_row(data: list[Any], where: str) -> tuple[_Bucket, int]:
    """A bucket and its brand's first_seen from a row (see **Rows**)."""
    if len(data) < 2:
        raise ValueError(f"{where}: expected [first_seen, whole, parts...]")
    first, whole = data[0], data[1]
    if type(first) is not int:
        raise ValueError(f"{where}: bad first_seen {first!r}")
    parts: dict[_PartKey, _Cell] = {}
    for i, raw in enumerate(data[2:]):
        at = f"{where}, part {i}"
        if not isinstance(raw, list) or len(raw) < 3:
            raise ValueError(f"{at}: expected [source, language, categories, measures...]")
        parts[_part_key(raw[:3], at)] = _Cell.from_row(raw, 3, at)
    if whole is None:
        if len(parts) != 1:
            raise ValueError(f"{where}: no measures of its own needs exactly one part")
        bucket = _bucket_of(next(iter(parts.values())))
    elif isinstance(whole, list):
        bucket = _bucket_of(_Cell.from_row(whole, 0, where))
        held = sum(cell.total for cell in parts.values())
        if held > bucket.total:
            raise ValueError(f"{where}: parts hold {held} mentions, the bucket {bucket.total}")
        if parts and held == bucket.total:  # every mention is in a part
            for name in _SETS:
                union: set[str] = set()
                for cell in parts.values():
                    members = getattr(cell, name)
                    if members:
                        union |= members
                setattr(bucket, name, union or None)
    else:
        raise ValueError(f"{where}: bad measures {whole!r}")
    bucket.parts = parts or None
    return bucket, first


def _bucket_from_object(data: Any, key: int, where: str) -> tuple[_Bucket, int]:
    """A bucket and its brand's first_seen from a row written before schema 6."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an array or an object")
    bucket = _bucket_of(_Cell.from_json(data, where))
    raw_parts = data.get("parts", [])
    if not isinstance(raw_parts, list):
        raise ValueError(f"{where}: bad parts {raw_parts!r}")
    for i, raw in enumerate(raw_parts):
        at = f"{where}, part {i}"
        part = _Cell.from_json(raw, at)
        categories = raw.get("categories", [])
        found = _part_key((raw.get("source"), raw.get("language"), categories), at)
        if bucket.parts is None:
            bucket.parts = {}
        bucket.parts[found] = part
    first = data.get("first_seen", key)
    if type(first) is not int:
        raise ValueError(f"{where}: bad first_seen {first!r}")
    return bucket, first
