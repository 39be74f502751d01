"""Collector cursors (one per source) and the small durable values (``kv``): the rule
engine's state, the notification state, quiet periods, the last vacuum."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from listener.collectors.base import Cursor
from listener.store.core import Database, ts

ENGINE_STATE = "engine_state"


class Cursors:
    """The ``cursors`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, source: str) -> Cursor | None:
        rows = self.db.read("SELECT cursor FROM cursors WHERE source = ?", (source,))
        return json.loads(rows[0][0]) if rows else None

    @staticmethod
    def save(c: Any, source: str, cursor: Cursor, at: float) -> None:
        """Write a source's cursor (inside the caller's transaction)."""
        c.execute(
            "INSERT INTO cursors VALUES (?,?,?) ON CONFLICT(source) DO UPDATE "
            "SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            (source, json.dumps(cursor), at),
        )


class Collected:
    """The ``collected`` table: what distributed mode's collectors have put on the bus,
    by source and id, so a mention a source returns again (a feed lists its items at
    every poll) is published once. Embedded mode dedups against its mentions instead."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def seen(self, source: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` (of ``source``) were published before."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.db.read(
                f"SELECT id FROM collected WHERE source = ? AND id IN ({marks})",
                [source, *chunk],
            )
            found.update(str(r[0]) for r in rows)
        return found

    @staticmethod
    def remember(c: Any, source: str, ids: Sequence[str], at: float) -> None:
        """Record ids as published (inside the caller's transaction)."""
        c.executemany(
            "INSERT INTO collected VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(source, i, at) for i in ids],
        )

    def prune(self, before: datetime) -> int:
        """Forget what was published before ``before`` (a source that lists an item
        longer than that publishes it again; the evaluators count it once)."""
        return self.db.write("DELETE FROM collected WHERE collected_at < ?", (ts(before),))


class KeyValues:
    """The ``kv`` table: small named values, each a string."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        rows = self.db.read("SELECT value FROM kv WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set(self, values: Mapping[str, str]) -> None:
        """Write values, in a transaction of their own."""
        with self.db.transaction() as c:
            KeyValues.put(c, values)

    @staticmethod
    def put(c: Any, values: Mapping[str, str]) -> None:
        """Write values (inside the caller's transaction)."""
        if values:
            c.executemany(
                "INSERT INTO kv VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                "SET value = excluded.value",
                list(values.items()),
            )
