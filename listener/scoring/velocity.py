"""Per-brand bucketed counters of mentions over time (the numbers rules look at).

Contract (pure, in memory; the caller persists and restores):

* Mentions are counted by the time of the mention (``at``, usually ``created_at``),
  not the time they were collected, into fixed buckets of ``bucket`` length aligned to
  the Unix epoch (bucket start = ``floor(epoch_seconds / bucket) * bucket``).
* **Bucketed semantics**: ``count(brand, metric, start, end)`` is the sum over the
  buckets whose *bucket start* lies in ``[start, end)``. A bucket that starts before
  ``start`` is not counted even if it overlaps the range, and the bucket containing
  ``end`` is counted when it starts before ``end``. With ``now`` inside the current
  bucket, ``[now - 15m, now)`` therefore covers the current partial bucket and the
  buckets starting in the 15 minutes before ``now``; the resolution is one bucket.
* ``prune(now)`` drops buckets starting before ``now - retention``; counts over ranges
  within the retention are unaffected. Late mentions older than that may be added but
  are dropped by the next prune. Future-dated mentions are kept and counted only by
  ranges that include their bucket.
* ``drain_dirty()`` hands out the buckets changed since the last drain, for writing
  to SQLite; ``load(rows)`` restores buckets from such rows (and does not mark them
  dirty). Pruned buckets are no longer dirty; ``prune`` returns their keys so the
  caller can delete them from the store.

Datetimes may be aware (any zone) or naive (taken as UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from listener.clock import as_utc
from listener.config.schema import Metric

__all__ = ["BucketRow", "VelocityWindows"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MICRO = timedelta(microseconds=1)

BucketRow = tuple[str, int, int, int]
"""``(brand, bucket_start_epoch_seconds, total, negative)``."""


class VelocityWindows:
    """Bucketed total/negative mention counters per brand.

    ``bucket`` must be a positive whole number of seconds; ``retention`` must be
    positive (size it to the longest rule lookback plus a bucket, see
    ``listener.rules.engine.max_lookback``).
    """

    __slots__ = ("_buckets", "_dirty", "_size", "_size_us", "retention")

    def __init__(
        self,
        bucket: timedelta = timedelta(minutes=1),
        retention: timedelta = timedelta(hours=24),
    ) -> None:
        if bucket <= timedelta(0) or bucket % _SECOND:
            raise ValueError(f"bucket must be a positive whole number of seconds, not {bucket}")
        if retention <= timedelta(0):
            raise ValueError(f"retention must be positive, not {retention}")
        self._size = bucket // _SECOND
        self._size_us = self._size * 1_000_000
        self.retention = retention
        # brand -> bucket start (epoch seconds) -> [total, negative]
        self._buckets: dict[str, dict[int, list[int]]] = {}
        self._dirty: set[tuple[str, int]] = set()

    @property
    def bucket(self) -> timedelta:
        """The bucket length."""
        return timedelta(seconds=self._size)

    def bucket_start(self, at: datetime) -> int:
        """The epoch second at which the bucket holding ``at`` starts."""
        return ((as_utc(at) - _EPOCH) // _SECOND) // self._size * self._size

    def add(self, brand: str, at: datetime, negative: bool) -> None:
        """Count one mention of ``brand`` at ``at`` (and as negative when ``negative``)."""
        key = self.bucket_start(at)
        cell = self._buckets.setdefault(brand, {}).get(key)
        if cell is None:
            cell = self._buckets[brand][key] = [0, 0]
        cell[0] += 1
        if negative:
            cell[1] += 1
        self._dirty.add((brand, key))

    def count(self, brand: str, metric: Metric, start: datetime, end: datetime) -> int:
        """Sum of ``metric`` over the buckets of ``brand`` whose start is in ``[start, end)``."""
        series = self._buckets.get(brand)
        if not series:
            return 0
        index = 0 if metric == "total" else 1
        start_us = (as_utc(start) - _EPOCH) // _MICRO
        end_us = (as_utc(end) - _EPOCH) // _MICRO
        if end_us <= start_us:
            return 0
        size_us = self._size_us
        first = -(-start_us // size_us)  # first bucket index starting at or after start
        last = -(-end_us // size_us)  # first bucket index starting at or after end
        if last - first <= len(series):
            size = self._size
            total = 0
            for i in range(first, last):
                cell = series.get(i * size)
                if cell is not None:
                    total += cell[index]
            return total
        lo, hi = first * self._size, last * self._size
        return sum(cell[index] for key, cell in series.items() if lo <= key < hi)

    def prune(self, now: datetime) -> list[tuple[str, int]]:
        """Drop buckets starting before ``now - retention``; return their ``(brand, start)``."""
        cutoff_us = (as_utc(now) - self.retention - _EPOCH) // _MICRO
        dropped: list[tuple[str, int]] = []
        for brand in list(self._buckets):
            series = self._buckets[brand]
            old = [key for key in series if key * 1_000_000 < cutoff_us]
            for key in sorted(old):
                del series[key]
                self._dirty.discard((brand, key))
                dropped.append((brand, key))
            if not series:
                del self._buckets[brand]
        return dropped

    def drain_dirty(self) -> list[BucketRow]:
        """Rows for the buckets changed since the last drain, sorted by brand then start."""
        rows: list[BucketRow] = []
        for brand, key in sorted(self._dirty):
            cell = self._buckets.get(brand, {}).get(key)
            if cell is not None:
                rows.append((brand, key, cell[0], cell[1]))
        self._dirty.clear()
        return rows

    def load(self, rows: Iterable[BucketRow]) -> None:
        """Restore buckets from rows (replacing any in memory with the same key).

        Raises ``ValueError`` on a row whose start is not bucket-aligned or whose
        counts are negative or have more negatives than mentions.
        """
        for brand, key, total, negative in rows:
            if key % self._size:
                raise ValueError(f"bucket start {key} is not a multiple of {self._size}s")
            if not 0 <= negative <= total:
                raise ValueError(f"bad counts for {brand!r} at {key}: {total=}, {negative=}")
            self._buckets.setdefault(brand, {})[key] = [total, negative]

    def brands(self) -> set[str]:
        """Brands that have at least one bucket."""
        return set(self._buckets)
