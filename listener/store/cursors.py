"""Collector cursors (one per source) and the small durable values (``kv``): the rule
engine's state, the notification state, quiet periods, the last vacuum."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from listener.collectors.base import Cursor
from listener.store.core import Database

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


class KeyValues:
    """The ``kv`` table: small named values, each a string."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        rows = self.db.read("SELECT value FROM kv WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    @staticmethod
    def put(c: Any, values: Mapping[str, str]) -> None:
        """Write values (inside the caller's transaction)."""
        if values:
            c.executemany(
                "INSERT INTO kv VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                "SET value = excluded.value",
                list(values.items()),
            )
