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
  changed since, advanced past pruned buckets), so ``value`` of any range of them is two
  binary searches, ``strided`` reads ``count`` adjacent windows (a z-score's history, a
  ramp's steps) in one pass, and ``running_at`` reads many brands at many bounds at once
  (the Evaluate stage's screen): O(log n) per window whatever its length, and memory and
  upkeep that follow the buckets holding mentions, not the time they span. They are
  whole numbers, so the values are exactly those of summing the buckets.
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
(3 sources × 2 languages: about 4.4 MiB per day).

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
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


class _Prefix:
    """Running sums of one brand's unfiltered counts over its buckets, sparse: ``keys``
    are the indices (bucket start // bucket length) of the buckets summed, ascending, and
    ``sums[m][j]`` is ``m`` summed over the buckets ``keys[:j]`` (so ``sums[m][0] == 0``).
    The count over the indices ``[first, last)`` is ``sums[m][bisect(keys, last)] -
    sums[m][bisect(keys, first)]``: the cost follows the buckets that hold mentions, not
    the time they span (a quiet brand's week is a handful of entries, not 10,080).

    ``pending`` holds the indices of buckets not summed yet, all after ``keys[-1]``:
    adding to a bucket at or before the last key cuts the sums there and moves the keys
    from there to ``pending``; reading sums them in (:meth:`VelocityWindows._extend`).
    Pruned buckets stay summed (reads clamp to the brand's lowest held bucket, so they
    cancel out) until :meth:`advance` drops them."""

    __slots__ = ("keys", "pending", "sums")

    def __init__(self) -> None:
        self.keys: array[int] = array("q")
        self.pending: list[int] = []
        self.sums: dict[str, array[int]] = {m: array("q", (0,)) for m in _COUNTS}

    def touch(self, index: int, new: bool) -> None:
        """Bucket ``index`` changed (``new``: it did not exist before)."""
        keys = self.keys
        if not keys or index > keys[-1]:
            if new:
                self.pending.append(index)
            return
        at = bisect_left(keys, index)
        self.pending.extend(keys[at:])
        if new and keys[at] != index:
            self.pending.append(index)
        del keys[at:]
        for sums in self.sums.values():
            del sums[at + 1 :]

    def position(self, index: int) -> int:
        """How many summed buckets have an index below ``index``."""
        return bisect_left(self.keys, index)

    def advance(self, low: int) -> None:
        """Drop the entries of buckets before index ``low`` when they are many (amortised
        O(1))."""
        drop = bisect_left(self.keys, low)
        if drop > 512 and drop * 2 >= len(self.keys):
            del self.keys[:drop]
            for sums in self.sums.values():
                del sums[:drop]


class VelocityWindows:
    """Bucketed measures of mentions per brand (see the module docstring).

    ``bucket`` must be a positive whole number of seconds; ``retention`` must be
    positive (size it to the longest rule look-back plus a bucket, see
    ``listener.rules.engine.max_lookback``). ``distinct_retention`` (default: the same as
    ``retention``) is how long buckets keep their author and story sets.
    """

    __slots__ = (
        "_changes",
        "_dirty",
        "_first",
        "_keys",
        "_low",
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
        # brand -> running sums of the unfiltered counts (built on first read)
        self._prefix: dict[str, _Prefix] = {}
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
                sums, keys = prefix.sums[measure], prefix.keys
                at = [sums[bisect_left(keys, low if b < low else b)] for b in bounds]
                return [float(at[k] - at[k + 1]) for k in range(count)]
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
        pass through this."""
        wanted = [m for m in _COUNTS if m in set(measures)]
        count = len(indices)
        out = {m: np.zeros((len(brands), count), dtype=np.int64) for m in wanted}
        if not count or not wanted:
            return out
        size = self._size
        series, lows = self._series, self._low
        frombuffer, int64, maximum = np.frombuffer, np.int64, np.maximum
        targets = [out[m] for m in wanted]
        held = self._prefix
        for row, brand in enumerate(brands):
            prefix = held.get(brand)
            if prefix is None:
                if brand not in series or brand not in lows:
                    continue
                prefix = self._running(brand)
                if prefix is None:
                    continue
            if prefix.pending:
                self._extend(brand, prefix)
            keys = prefix.keys
            if not keys:
                continue
            # reads clamp to the lowest bucket held: pruned buckets still summed cancel out
            at = maximum(
                frombuffer(keys, dtype=int64).searchsorted(indices),
                bisect_left(keys, lows[brand] // size),
            )
            sums = prefix.sums
            for m, target in zip(wanted, targets, strict=True):
                target[row] = frombuffer(sums[m], dtype=int64)[at]
        return out

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
        prefix = self._prefix[brand] = _Prefix()
        size = self._size
        prefix.pending = [key // size for key in series]
        return prefix

    def _extend(self, brand: str, prefix: _Prefix) -> None:
        """Sum the pending buckets in (the running sums are then exact everywhere)."""
        if not prefix.pending:
            return
        pending = sorted(set(prefix.pending))
        prefix.pending = []
        sums = prefix.sums
        totals, negatives, positives = sums["total"], sums["negative"], sums["positive"]
        t, n, p = totals[-1], negatives[-1], positives[-1]
        size = self._size
        get = self._series[brand].get
        keys = prefix.keys
        for index in pending:
            bucket = get(index * size)
            if bucket is None:  # pruned since
                continue
            keys.append(index)
            t += bucket.total
            n += bucket.negative
            p += bucket.positive
            totals.append(t)
            negatives.append(n)
            positives.append(p)

    def _between(self, brand: str, prefix: _Prefix, measure: str, first: int, last: int) -> int:
        """An unfiltered count over the bucket indices ``[first, last)``."""
        low = self._low[brand] // self._size
        first = max(first, low)
        if last <= first:
            return 0
        self._extend(brand, prefix)
        sums, keys = prefix.sums[measure], prefix.keys
        return sums[bisect_left(keys, last)] - sums[bisect_left(keys, first)]

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

    def prune(self, now: datetime) -> list[tuple[str, int]]:
        """Drop buckets starting before ``now - retention`` (return their ``(brand, start)``)
        and the author/story sets of buckets starting before ``now - distinct_retention``
        (marking those buckets dirty). The cost follows what goes, not what stays: each
        brand's bucket starts (and those of its buckets holding sets) are kept ascending,
        so what a prune takes is a prefix found by bisection."""
        now_us = (as_utc(now) - _EPOCH) // _MICRO
        cutoff_us = now_us - self.retention // _MICRO
        distinct = self.distinct_retention
        distinct_us = now_us - distinct // _MICRO if distinct is not None else cutoff_us
        # the buckets starting (whole seconds) before these go, lose their sets
        drop_below = -(-cutoff_us // 1_000_000)
        strip_below = max(drop_below, -(-distinct_us // 1_000_000))
        dropped: list[tuple[str, int]] = []
        dirty = self._dirty
        for brand in list(self._series):
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
