"""Sinks' durable key-value state (``sink_state``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from listener.store import Store


class StoreSinkState:
    """A sink's durable key-value state (:class:`listener.sinks.base.SinkState`) in the store.

    Writes are committed at once, so what a sink records right after a send (a Slack
    message ts) survives a crash a moment later.
    """

    def __init__(self, store: Store, sink: str) -> None:
        self.store = store
        self.sink = sink

    def get(self, key: str) -> str | None:
        rows = self.store.db.read(
            "SELECT value FROM sink_state WHERE sink = ? AND key = ?", (self.sink, key)
        )
        return str(rows[0][0]) if rows else None

    def set(self, key: str, value: str) -> None:
        self.store.db.write(
            "INSERT INTO sink_state VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sink, key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (self.sink, key, value, int(time.time())),
        )

    def delete(self, key: str) -> None:
        self.store.db.write("DELETE FROM sink_state WHERE sink = ? AND key = ?", (self.sink, key))
