"""The durable state of the daemon, in one SQLite file (WAL), or in distributed mode in
PostgreSQL (:mod:`listener.store.postgres`: the same concerns and statements).

What is kept: seen mentions (dedup by source and id), collector cursors, velocity
window buckets, the rule engine's state, incidents with their timeline, and the
delivery outbox. Each stage writes what it produced with one typed write
(:class:`IngestWrite`, :class:`EvaluateWrite`; :class:`BrandWrite` when a brand is handed
to or from another worker) in a single transaction, so a crash
(even ``kill -9``) leaves either the whole step or none of it: no mention counted
twice, no alert lost.

One module per concern, composed by :class:`Store`:

    core        the connection, its lock, transactions; every ``sqlite3.Error`` → StoreError
    schema      the tables, :data:`SCHEMA_VERSION` and the migrations from earlier files
    mentions    seen mentions and their brands, the reports' reads, retention (store.mentions)
    windows     velocity window buckets (store.buckets)
    cursors     collector cursors (store.cursors), what distributed mode's collectors
                published (store.collected) and small named values (store.kv)
    incidents   incidents, events, notices, drills (store.incident_log), silences
                (store.silence_log), acknowledgements (store.ack_log)
    outbox      the delivery outbox (store.outbox)
    sink_state  sinks' durable key-value state (:class:`StoreSinkState`)
    writes      the typed writes of the stages

Callers use the concern's object (``store.mentions.top(...)``, ``store.outbox.due(...)``).
A few methods of :class:`Store` from before the split stay, as one-line delegations, while
the processor and the backtest still call them. Timestamps are stored as Unix seconds
(UTC). All methods are thread-safe; the pipeline calls them from a worker thread so the
event loop never waits on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from listener.collectors.base import Cursor
from listener.errors import StoreError
from listener.model import Ack, Alert, AuthorRef, MentionRef, ScoredMention, Silence, StoryRecord
from listener.store.core import Database, ts
from listener.store.cursors import ENGINE_STATE, Collected, Cursors, KeyValues
from listener.store.incidents import (
    Acks,
    IncidentEventRecord,
    IncidentNotes,
    IncidentRecord,
    Incidents,
    NoticeRecord,
    Silences,
)
from listener.store.mentions import (
    EVIDENCE_AFTER,
    EVIDENCE_BEFORE,
    InboxRow,
    MentionQuery,
    Mentions,
    SourceCount,
    mention_row,
    reach_of,
)
from listener.store.outbox import Outbox, OutboxItem, OutboxRecord
from listener.store.postgres import PostgresDatabase, is_database_url
from listener.store.schema import SCHEMA_VERSION, connect
from listener.store.sink_state import StoreSinkState
from listener.store.windows import BucketRow, Buckets
from listener.store.writes import BrandWrite, EvaluateWrite, IngestWrite

__all__ = [
    "EVIDENCE_AFTER",
    "EVIDENCE_BEFORE",
    "SCHEMA_VERSION",
    "BrandWrite",
    "BucketRow",
    "EvaluateWrite",
    "InboxRow",
    "IncidentEventRecord",
    "IncidentRecord",
    "IngestWrite",
    "MentionQuery",
    "NoticeRecord",
    "OutboxItem",
    "OutboxRecord",
    "SourceCount",
    "Store",
    "StoreError",
    "StoreSinkState",
    "StoryRecord",
    "is_database_url",
    "mention_row",
    "reach_of",
]


class Store:
    """SQLite-backed state. Open with :meth:`open`; close with :meth:`close`.

    A composition of one object per concern (:attr:`mentions`, :attr:`buckets`,
    :attr:`cursors`, :attr:`kv`, :attr:`incident_log`, :attr:`silence_log`,
    :attr:`ack_log`, :attr:`outbox`) over one :class:`~listener.store.core.Database`.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.path = db.path
        self.mentions = Mentions(db)
        self.buckets = Buckets(db)
        self.cursors = Cursors(db)
        self.collected = Collected(db)
        self.kv = KeyValues(db)
        self.incident_log = Incidents(db)
        self.silence_log = Silences(db)
        self.ack_log = Acks(db)
        self.notes = IncidentNotes(db)
        self.outbox = Outbox(db)

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open (creating if needed) the state file, or the PostgreSQL database a
        ``postgresql://`` URL names (migrating it); raise :class:`StoreError` on failure."""
        name = str(path)
        if is_database_url(name):
            return cls(PostgresDatabase(name))
        return cls(Database(connect(name), name))

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ the stages' writes

    def write_ingest(self, *writes: IngestWrite) -> None:
        """Write what ingesting one batch produced, atomically; given several (batches
        ingested in turn), all of them in one transaction, in order."""
        with self.db.transaction("ingest commit") as c:
            for w in writes:
                t = ts(w.now)
                Mentions.insert(c, w.mentions, t)
                if w.cursor is not None:
                    Cursors.save(c, w.cursor[0], w.cursor[1], t)
                Buckets.upsert(c, w.buckets)
                KeyValues.put(c, w.kv)

    def write_evaluate(self, w: EvaluateWrite) -> None:
        """Write what one evaluation produced (state, events, notices, outbox), atomically;
        nothing at all (no transaction) when it changed nothing."""
        if w.empty():
            return
        t = ts(w.now)
        with self.db.transaction("evaluate commit") as c:
            Buckets.upsert(c, w.buckets)
            Buckets.prune(c, w.prune_buckets_before, w.prune_brands)
            values = dict(w.kv)
            if w.engine_state is not None:
                values = {ENGINE_STATE: w.engine_state, **values}
            KeyValues.put(c, values)
            Incidents.apply(c, w.events, w.notices, t)
            Outbox.enqueue(c, w.outbox, t)

    def write_brand(self, w: BrandWrite) -> None:
        """Write a brand's arrival or departure (its buckets, the engine and notification
        state, quiet periods), atomically."""
        with self.db.transaction("brand hand-off") as c:
            Buckets.drop_brand(c, w.brand)
            Buckets.upsert(c, w.buckets)
            KeyValues.put(c, {ENGINE_STATE: w.engine_state, **w.kv})

    def commit(
        self,
        *,
        now: datetime,
        mentions: Sequence[ScoredMention] = (),
        cursor: tuple[str, Cursor] | None = None,
        buckets: Sequence[BucketRow] = (),
        prune_buckets_before: int | None = None,
        engine_state: str | None = None,
        events: Sequence[Any] = (),
        outbox: Sequence[tuple[Alert, Sequence[str]]] = (),
        kv: Mapping[str, str] | None = None,
        notices: Sequence[Any] = (),
    ) -> None:
        """Any mix of the two stages' writes in one transaction (kept for tests and tools
        that build state by hand; the stages use :meth:`write_ingest` and
        :meth:`write_evaluate`)."""
        t = ts(now)
        values = dict(kv or {})
        if engine_state is not None:
            values = {ENGINE_STATE: engine_state, **values}
        with self.db.transaction() as c:
            Mentions.insert(c, mentions, t)
            if cursor is not None:
                Cursors.save(c, cursor[0], cursor[1], t)
            Buckets.upsert(c, buckets)
            Buckets.prune(c, prune_buckets_before)
            KeyValues.put(c, values)
            Incidents.apply(c, events, notices, t)
            Outbox.enqueue(c, outbox, t)

    # ------------------------------------------------------------------ file upkeep

    def vacuum(self, now: datetime) -> None:
        """Rebuild the file to give back the space pruning freed (``VACUUM``), then
        truncate the WAL. Holds the store's lock, so it never runs inside another
        write; other writers wait for it. Records ``now`` as the last vacuum."""
        with self.db.guard("vacuum") as c:
            self.db.compact(c)
            KeyValues.put(c, {"last_vacuum_at": now.isoformat()})
            self.db.checkpoint(c)

    def last_vacuum(self) -> datetime | None:
        """When :meth:`vacuum` last ran on this file (None: never)."""
        value = self.kv.get("last_vacuum_at")
        return datetime.fromisoformat(value) if value else None

    def size_bytes(self) -> int:
        """Bytes on disk: the database file plus its WAL (0 for ``:memory:``; a
        PostgreSQL database's size)."""
        return self.db.size_bytes()

    # ------------------------------------------------------------------ for tests and benches

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.db.read(sql, params)

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.db.write(sql, params)

    @property
    def _conn(self) -> Any:
        return self.db.conn

    # ------------------------------------------------------------------ delegations
    # Methods from before the split that callers still use (the processor and the
    # backtest); each is one line over the module that owns the concern. New code calls
    # the concern's object (store.mentions, store.kv, store.incident_log, ...) directly.

    def seen(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        return self.mentions.seen(keys)

    def top_mentions(
        self, brand: str, start: datetime, end: datetime, limit: int = 5, negative_only: bool = True
    ) -> list[MentionRef]:
        return self.mentions.top(brand, start, end, limit, negative_only)

    def top_categories(self, brand: str, start: datetime, end: datetime) -> list[tuple[str, int]]:
        return self.mentions.top_categories(brand, start, end)

    def top_authors(
        self, brand: str, start: datetime, end: datetime, limit: int = 3
    ) -> list[AuthorRef]:
        return self.mentions.top_authors(brand, start, end, limit)

    def load_buckets(self) -> list[BucketRow]:
        return self.buckets.load()

    def load_engine_state(self) -> str | None:
        return self.kv.get(ENGINE_STATE)

    def load_kv(self, key: str) -> str | None:
        return self.kv.get(key)

    def incidents(self, status: str | None = None, limit: int = 100) -> list[IncidentRecord]:
        return self.incident_log.recent(status, limit)

    def incident_events(self, incident_id: str) -> list[IncidentEventRecord]:
        return self.incident_log.events(incident_id)

    def silences(self, active_at: datetime | None = None) -> list[Silence]:
        return self.silence_log.select(active_at)

    def acks(self, incident_ids: Iterable[str] | None = None) -> dict[str, Ack]:
        return self.ack_log.get(incident_ids)
