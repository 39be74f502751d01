"""Velocity window buckets, one row per (brand, bucket start), as
:mod:`listener.scoring.velocity` encodes them. Only the buckets that changed are written
(``Windows.drain_dirty``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from listener.store.core import Database

BucketRow = tuple[str, int, str]
"""``(brand, bucket_start_epoch_seconds, json)``."""


class Buckets:
    """The ``buckets`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> list[BucketRow]:
        """Every stored window bucket as ``(brand, bucket_start, json)``."""
        return [
            (str(b), int(k), str(d))
            for b, k, d in self.db.read("SELECT brand, bucket, data FROM buckets")
        ]

    @staticmethod
    def upsert(c: Any, rows: Sequence[BucketRow]) -> None:
        """Write changed buckets (inside the caller's transaction)."""
        if rows:
            c.executemany(
                "INSERT INTO buckets VALUES (?,?,?) ON CONFLICT(brand, bucket) DO UPDATE "
                "SET data = excluded.data",
                rows,
            )

    @staticmethod
    def prune(c: Any, before: int | None, brands: Sequence[str] | None = None) -> None:
        """Drop buckets that start before ``before`` (inside the caller's transaction): of
        every brand, or only of ``brands`` (a range of the primary key each, where every
        brand is a scan of the table)."""
        if before is None:
            return
        if brands is None:
            c.execute("DELETE FROM buckets WHERE bucket < ?", (before,))
        elif brands:
            c.executemany(
                "DELETE FROM buckets WHERE brand = ? AND bucket < ?",
                [(brand, before) for brand in brands],
            )

    @staticmethod
    def drop_brand(c: Any, brand: str) -> None:
        """Drop every bucket of ``brand`` (inside the caller's transaction)."""
        c.execute("DELETE FROM buckets WHERE brand = ?", (brand,))
