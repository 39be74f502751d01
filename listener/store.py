"""The durable state of the daemon, in one SQLite file (WAL).

What is kept: seen mentions (dedup by source and id), collector cursors, velocity
window buckets, the rule engine's state, incidents with their timeline, and the
delivery outbox. :meth:`Store.commit` writes everything one processing step
produced in a single transaction, so a crash (even ``kill -9``) leaves either the
whole step or none of it: no mention counted twice, no alert lost.

Timestamps are stored as Unix seconds (UTC). All methods are thread-safe; the
pipeline calls them from a worker thread so the event loop never waits on disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from listener.collectors.base import Cursor
from listener.collectors.fetch import redact_url
from listener.collectors.rss import feed_key
from listener.errors import StoreError
from listener.model import Ack, Alert, AuthorRef, Fact, MentionRef, ScoredMention
from listener.scoring.reach import reach_score

SCHEMA_VERSION = 4
"""Version 2: ``buckets`` holds one JSON blob per bucket (``listener.scoring.velocity``).
Opening a version-1 file drops and recreates the ``buckets`` table, so velocity window
history (and the rules' warm-up) restarts once after the upgrade; nothing else changes.
Version 4: cursors name feed URLs by :func:`~listener.collectors.rss.feed_key`, never by
the URL (which may carry credentials); opening an older file rewrites its cursors in place
and scrubs the freed space, so no cursor is lost and no secret stays in the file."""

EVIDENCE_BEFORE = timedelta(hours=30)
"""Mentions of a brand from this long before one of its incidents opened are evidence,
kept past retention: the post-incident report's chart starts 6 h before the opening and
its baseline reads the 24 h before that (:mod:`listener.report.data`)."""
EVIDENCE_AFTER = timedelta(hours=2)
"""... and until this long after the incident resolved (for ever while it is open)."""
_PRUNE_SLICE = timedelta(days=1)
_OUTBOX_PRUNE_BATCH = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mentions (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    created_at REAL NOT NULL,
    collected_at REAL NOT NULL,
    sentiment TEXT NOT NULL,
    compound REAL NOT NULL,
    reach REAL NOT NULL,
    data TEXT NOT NULL,
    author TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (source, id)
);
CREATE INDEX IF NOT EXISTS mentions_collected ON mentions (collected_at);
CREATE TABLE IF NOT EXISTS mention_brands (
    brand TEXT NOT NULL,
    created_at REAL NOT NULL,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    negative INTEGER NOT NULL,
    PRIMARY KEY (brand, source, id)
);
CREATE INDEX IF NOT EXISTS mention_brands_time ON mention_brands (brand, created_at);
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS buckets (
    brand TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (brand, bucket)
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    brand TEXT NOT NULL,
    status TEXT NOT NULL,
    level TEXT NOT NULL,
    peak_level TEXT NOT NULL,
    opened_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    resolved_at REAL
);
CREATE INDEX IF NOT EXISTS incidents_status ON incidents (status, opened_at);
CREATE TABLE IF NOT EXISTS incident_events (
    incident_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    previous_level TEXT,
    at REAL NOT NULL,
    facts TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    delivered_at REAL,
    UNIQUE (alert_id, sink)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sink, status, next_attempt_at, id);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    brand TEXT,
    rule TEXT,
    level TEXT,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS acks (
    incident_id TEXT PRIMARY KEY,
    by TEXT NOT NULL,
    at REAL NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    alert_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    at REAL NOT NULL,
    sinks TEXT NOT NULL,
    muted TEXT
);
CREATE INDEX IF NOT EXISTS notices_incident ON notices (incident_id, at);
CREATE TABLE IF NOT EXISTS sink_state (
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (sink, key)
);
CREATE TABLE IF NOT EXISTS drill_incidents (
    incident_id TEXT PRIMARY KEY
);
"""


def _ts(when: datetime) -> float:
    return when.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One alert waiting for one sink."""

    id: int
    alert_id: str
    sink: str
    incident_id: str
    rule: str
    alert: Alert
    created_at: datetime
    attempts: int
    next_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An incident as stored, with its timeline when loaded one at a time."""

    id: str
    rule: str
    brand: str
    status: str
    level: str
    peak_level: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class IncidentEventRecord:
    incident_id: str
    seq: int
    kind: str
    level: str
    previous_level: str | None
    at: datetime
    facts: tuple[Fact, ...]


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One alert for one sink, as the outbox remembers it."""

    alert_id: str
    sink: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    drill: bool


@dataclass(frozen=True, slots=True)
class MentionRecord:
    """A stored mention with what was computed for it: reach, polarity, categories."""

    ref: MentionRef
    reach: float
    negative: bool
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SourceCount:
    """A brand's mentions from one source in a period."""

    source: str
    mentions: int
    negative: int
    reach: float


def reach_of(scored: ScoredMention) -> float:
    """Estimated readers of a mention (see :mod:`listener.scoring.reach`)."""
    return reach_score(scored.mention)


def _migrate_buckets(conn: sqlite3.Connection) -> None:
    """Schema 1 → 2: drop a ``buckets`` table of (brand, bucket, total, negative) counts.

    The table is recreated empty in the JSON form, so window history restarts once.
    Idempotent: a table already in the new form (a crash before the version was set) stays.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(buckets)")}
    if columns and "data" not in columns:
        conn.execute("DROP TABLE buckets")


def _migrate_mention_tags(conn: sqlite3.Connection) -> None:
    """Schema 2 → 3: mentions gain ``author`` and ``tags`` (categories, emotions, story)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(mentions)")}
    if columns and "author" not in columns:
        conn.execute("ALTER TABLE mentions ADD COLUMN author TEXT")
    if columns and "tags" not in columns:
        conn.execute("ALTER TABLE mentions ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'")


def _scrub_cursor(value: Any) -> Any:
    """``value`` (a stored cursor) without feed URLs: a URL used as a key becomes its
    :func:`~listener.collectors.rss.feed_key` (what the RSS collector looks up) and a
    feed's ``href`` (the final URL) its redacted form. Other values (ids, a source's own
    paging tokens) stay."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, inner in value.items():
        if key == "href" and isinstance(inner, str):
            out[key] = redact_url(inner)
        else:
            out[feed_key(key) if "://" in key else key] = _scrub_cursor(inner)
    return out


def _migrate_cursor_secrets(conn: sqlite3.Connection) -> None:
    """Schema 3 → 4: rewrite every cursor without URLs (:func:`_scrub_cursor`).

    When one changed, the file is rebuilt (``VACUUM``) and the WAL truncated: every
    earlier version of a cursor (one per poll) may linger in free pages, and the
    credentials with it. Idempotent: a scrubbed cursor stays as it is."""
    changed = False
    conn.execute("BEGIN IMMEDIATE")
    try:
        for source, text in conn.execute("SELECT source, cursor FROM cursors").fetchall():
            scrubbed = json.dumps(_scrub_cursor(json.loads(text)))
            if scrubbed != text:
                conn.execute("UPDATE cursors SET cursor = ? WHERE source = ?", (scrubbed, source))
                changed = True
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if changed:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class Store:
    """SQLite-backed state. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open (creating if needed) the state file; raise :class:`StoreError` on failure."""
        name = str(path)
        try:
            if name != ":memory:":
                Path(name).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(name, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{name}: state file has schema version {version}, this listener knows "
                    f"{SCHEMA_VERSION}; it was written by a newer listener (upgrade, or point "
                    "--state at another file)"
                )
            if version < 2:
                _migrate_buckets(conn)
            if 0 < version < 3:
                _migrate_mention_tags(conn)
            conn.executescript(_SCHEMA)
            if 0 < version < 4:
                _migrate_cursor_secrets(conn)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"{name}: cannot open state file: {exc}") from None
        return cls(conn, name)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: read failed: {exc}") from None

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            try:
                self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: write failed: {exc}") from None

    # ------------------------------------------------------------------ mentions, cursors

    def seen(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (source, id) keys are already stored."""
        out: set[tuple[str, str]] = set()
        keys = list(keys)
        for i in range(0, len(keys), 400):
            chunk = keys[i : i + 400]
            where = " OR ".join("(source = ? AND id = ?)" for _ in chunk)
            params = [v for key in chunk for v in key]
            out.update(
                (s, i_)
                for s, i_ in self._read(f"SELECT source, id FROM mentions WHERE {where}", params)
            )
        return out

    def load_cursor(self, source: str) -> Cursor | None:
        rows = self._read("SELECT cursor FROM cursors WHERE source = ?", (source,))
        return json.loads(rows[0][0]) if rows else None

    def load_buckets(self) -> list[tuple[str, int, str]]:
        """Every stored window bucket as ``(brand, bucket_start, json)``."""
        return [
            (str(b), int(k), str(d))
            for b, k, d in self._read("SELECT brand, bucket, data FROM buckets")
        ]

    def load_engine_state(self) -> str | None:
        return self.load_kv("engine_state")

    def load_kv(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM kv WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def mention_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM mentions")[0][0])

    def top_mentions(
        self, brand: str, start: datetime, end: datetime, limit: int = 5, negative_only: bool = True
    ) -> list[MentionRef]:
        """The mentions of ``brand`` in [start, end) that travelled furthest."""
        rows = self._read(
            "SELECT m.data, m.compound FROM mention_brands b JOIN mentions m "
            "ON m.source = b.source AND m.id = b.id "
            "WHERE b.brand = ? AND b.created_at >= ? AND b.created_at < ? "
            + ("AND b.negative = 1 " if negative_only else "")
            + "ORDER BY m.reach DESC, m.compound ASC, b.created_at DESC LIMIT ?",
            (brand, _ts(start), _ts(end), limit),
        )
        out = []
        for data, compound in rows:
            d = json.loads(data)
            author = d.get("author") or {}
            out.append(
                MentionRef(
                    source=d["source"],
                    id=d["id"],
                    text=d["text"][:280],
                    url=d.get("url"),
                    author=author.get("handle"),
                    followers=author.get("followers"),
                    created_at=datetime.fromisoformat(d["created_at"]),
                    sentiment=compound,
                )
            )
        return out

    def top_categories(self, brand: str, start: datetime, end: datetime) -> list[tuple[str, int]]:
        """Crisis categories of the brand's negative mentions in [start, end), most first."""
        rows = self._read(
            "SELECT m.tags FROM mention_brands b JOIN mentions m ON m.source = b.source "
            "AND m.id = b.id WHERE b.brand = ? AND b.created_at >= ? AND b.created_at < ? "
            "AND b.negative = 1",
            (brand, _ts(start), _ts(end)),
        )
        counts: dict[str, int] = {}
        for (tags,) in rows:
            for name in json.loads(tags or "{}").get("categories", ()):
                counts[name] = counts.get(name, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]

    def top_authors(
        self, brand: str, start: datetime, end: datetime, limit: int = 3
    ) -> list[AuthorRef]:
        """Detractors (most negative mentions) and amplifiers (largest reach) in [start, end)."""
        rows = self._read(
            "SELECT m.author, COUNT(*), MAX(m.reach), SUM(b.negative) FROM mention_brands b "
            "JOIN mentions m ON m.source = b.source AND m.id = b.id WHERE b.brand = ? AND "
            "b.created_at >= ? AND b.created_at < ? AND m.author IS NOT NULL GROUP BY m.author",
            (brand, _ts(start), _ts(end)),
        )

        def ref(row: Any, role: Any) -> AuthorRef:
            source, _, handle = str(row[0]).partition(":")
            return AuthorRef(
                handle=handle, source=source, mentions=int(row[1]), reach=float(row[2]), role=role
            )

        detractors = [r for r in sorted(rows, key=lambda r: (-r[3], -r[2])) if r[3] > 1][:limit]
        amplifiers = [r for r in sorted(rows, key=lambda r: -r[2]) if r[2] > 0][:limit]
        return [ref(r, "detractor") for r in detractors] + [ref(r, "amplifier") for r in amplifiers]

    # ------------------------------------------------------------------ reports

    def mention_series(
        self, brand: str, start: datetime, end: datetime, step: timedelta
    ) -> list[tuple[datetime, int, int, float]]:
        """The brand's mentions in [start, end) per ``step`` from ``start``: one
        ``(bucket start, mentions, negative, sum of sentiment)`` per non-empty bucket."""
        size = step.total_seconds()
        rows = self._read(
            "SELECT CAST((b.created_at - ?) / ? AS INTEGER) AS k, COUNT(*), SUM(b.negative), "
            "SUM(m.compound) FROM mention_brands b JOIN mentions m ON m.source = b.source "
            "AND m.id = b.id WHERE b.brand = ? AND b.created_at >= ? AND b.created_at < ? "
            "GROUP BY k ORDER BY k",
            (_ts(start), size, brand, _ts(start), _ts(end)),
        )
        return [(start + step * int(k), int(n), int(neg), float(c)) for k, n, neg, c in rows]

    def first_mention_at(self, brand: str, start: datetime, end: datetime) -> datetime | None:
        """When the brand's first stored mention in [start, end) was written."""
        rows = self._read(
            "SELECT MIN(created_at) FROM mention_brands WHERE brand = ? AND created_at >= ? "
            "AND created_at < ?",
            (brand, _ts(start), _ts(end)),
        )
        return _dt(rows[0][0]) if rows and rows[0][0] is not None else None

    def last_mention_at(self, brand: str, start: datetime, end: datetime) -> datetime | None:
        """When the brand's last stored mention in [start, end) was written."""
        rows = self._read(
            "SELECT MAX(created_at) FROM mention_brands WHERE brand = ? AND created_at >= ? "
            "AND created_at < ?",
            (brand, _ts(start), _ts(end)),
        )
        return _dt(rows[0][0]) if rows and rows[0][0] is not None else None

    def mentions_by_reach(
        self, brand: str, start: datetime, end: datetime, limit: int = 10
    ) -> list[MentionRecord]:
        """The brand's mentions in [start, end) that travelled furthest, any sentiment."""
        rows = self._read(
            "SELECT m.data, m.compound, m.reach, b.negative, m.tags FROM mention_brands b "
            "JOIN mentions m ON m.source = b.source AND m.id = b.id WHERE b.brand = ? "
            "AND b.created_at >= ? AND b.created_at < ? "
            "ORDER BY m.reach DESC, m.compound ASC, b.created_at DESC LIMIT ?",
            (brand, _ts(start), _ts(end), limit),
        )
        out = []
        for data, compound, reach, negative, tags in rows:
            d = json.loads(data)
            author = d.get("author") or {}
            ref = MentionRef(
                source=d["source"],
                id=d["id"],
                text=d["text"][:280],
                url=d.get("url"),
                author=author.get("handle"),
                followers=author.get("followers"),
                created_at=datetime.fromisoformat(d["created_at"]),
                sentiment=compound,
            )
            categories = tuple(json.loads(tags or "{}").get("categories", ()))
            out.append(MentionRecord(ref, float(reach), bool(negative), categories))
        return out

    def source_counts(self, brand: str, start: datetime, end: datetime) -> list[SourceCount]:
        """The brand's mentions in [start, end) per source, most first."""
        rows = self._read(
            "SELECT b.source, COUNT(*), SUM(b.negative), SUM(m.reach) FROM mention_brands b "
            "JOIN mentions m ON m.source = b.source AND m.id = b.id WHERE b.brand = ? "
            "AND b.created_at >= ? AND b.created_at < ? GROUP BY b.source "
            "ORDER BY COUNT(*) DESC, b.source",
            (brand, _ts(start), _ts(end)),
        )
        return [SourceCount(str(s), int(n), int(neg), float(r)) for s, n, neg, r in rows]

    def deliveries(self, incident_id: str) -> list[OutboxRecord]:
        """Every outbox row of an incident, oldest first, with when it ended (a failed
        row keeps its failure time in ``next_attempt_at``: see :meth:`mark_failed`)."""
        rows = self._read(
            "SELECT alert_id, sink, status, attempts, last_error, created_at, delivered_at, "
            "next_attempt_at, json_extract(payload, '$.drill') FROM outbox "
            "WHERE incident_id = ? ORDER BY id",
            (incident_id,),
        )
        return [
            OutboxRecord(
                alert_id=r[0],
                sink=r[1],
                status=r[2],
                attempts=int(r[3]),
                last_error=r[4],
                created_at=_dt(r[5]),
                delivered_at=_dt(r[6]) if r[6] is not None else None,
                failed_at=_dt(r[7]) if r[2] == "failed" else None,
                drill=bool(r[8]),
            )
            for r in rows
        ]

    def incident_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of incidents starting with ``prefix`` (for hints), newest first."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._read(
            "SELECT id FROM incidents WHERE id LIKE ? ESCAPE '\\' ORDER BY opened_at DESC LIMIT ?",
            (escaped + "%", limit),
        )
        return [str(r[0]) for r in rows]

    # ------------------------------------------------------------------ one transaction

    def commit(
        self,
        *,
        now: datetime,
        mentions: Sequence[ScoredMention] = (),
        cursor: tuple[str, Cursor] | None = None,
        buckets: Sequence[tuple[str, int, str]] = (),
        prune_buckets_before: int | None = None,
        engine_state: str | None = None,
        events: Sequence[Any] = (),
        outbox: Sequence[tuple[Alert, Sequence[str]]] = (),
        kv: Mapping[str, str] | None = None,
        notices: Sequence[Any] = (),
    ) -> None:
        """Write one processing step atomically.

        ``events`` are rule-engine ``IncidentEvent`` objects; ``outbox`` pairs each
        alert with the sinks it is routed to (re-enqueueing the same alert id for the
        same sink is a no-op).
        """
        t = _ts(now)
        with self._lock:
            c = self._conn
            try:
                c.execute("BEGIN IMMEDIATE")
                for s in mentions:
                    m = s.mention
                    cur = c.execute(
                        "INSERT OR IGNORE INTO mentions VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (
                            m.source,
                            m.id,
                            _ts(m.created_at),
                            t,
                            s.sentiment.label,
                            s.sentiment.compound,
                            reach_of(s),
                            json.dumps(m.to_dict()),
                            f"{m.source}:{m.author.handle}" if m.author.handle else None,
                            json.dumps(
                                {
                                    "categories": list(s.categories),
                                    "emotions": list(s.emotions),
                                    "story": s.story,
                                }
                            ),
                        ),
                    )
                    if cur.rowcount:
                        c.executemany(
                            "INSERT OR IGNORE INTO mention_brands VALUES (?,?,?,?,?)",
                            [
                                (b, _ts(m.created_at), m.source, m.id, int(s.negative))
                                for b in s.brands
                            ],
                        )
                if cursor is not None:
                    c.execute(
                        "INSERT INTO cursors VALUES (?,?,?) ON CONFLICT(source) DO UPDATE "
                        "SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                        (cursor[0], json.dumps(cursor[1]), t),
                    )
                c.executemany(
                    "INSERT INTO buckets VALUES (?,?,?) ON CONFLICT(brand, bucket) DO UPDATE "
                    "SET data = excluded.data",
                    buckets,
                )
                if prune_buckets_before is not None:
                    c.execute("DELETE FROM buckets WHERE bucket < ?", (prune_buckets_before,))
                if engine_state is not None:
                    c.execute(
                        "INSERT INTO kv VALUES ('engine_state', ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = excluded.value",
                        (engine_state,),
                    )
                for key, value in (kv or {}).items():
                    c.execute(
                        "INSERT INTO kv VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = excluded.value",
                        (key, value),
                    )
                for ev in events:
                    self._apply_event(c, ev)
                c.executemany(
                    "INSERT OR IGNORE INTO notices VALUES (?,?,?,?,?,?,?)",
                    [
                        (
                            n.alert_id,
                            n.incident_id,
                            n.kind,
                            n.level,
                            t,
                            json.dumps(list(n.sinks)),
                            n.muted,
                        )
                        for n in notices
                    ],
                )
                for alert, sinks in outbox:
                    payload = json.dumps(alert.to_dict())
                    c.executemany(
                        "INSERT OR IGNORE INTO outbox (alert_id, sink, incident_id, rule, payload, "
                        "created_at, next_attempt_at) VALUES (?,?,?,?,?,?,?)",
                        [
                            (alert.id, sink, alert.incident_id, alert.rule, payload, t, t)
                            for sink in sinks
                        ],
                    )
                c.execute("COMMIT")
            except sqlite3.Error as exc:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise StoreError(f"{self.path}: commit failed: {exc}") from None

    @staticmethod
    def _apply_event(c: sqlite3.Connection, ev: Any) -> None:
        at = _ts(ev.at)
        if ev.kind == "opened":
            c.execute(
                "INSERT OR IGNORE INTO incidents VALUES (?,?,?,?,?,?,?,?,NULL)",
                (ev.incident_id, ev.rule, ev.brand, "open", ev.level, ev.peak_level, at, at),
            )
        elif ev.kind == "resolved":
            c.execute(
                "UPDATE incidents SET status = 'resolved', updated_at = ?, resolved_at = ?, "
                "peak_level = ? WHERE id = ?",
                (at, at, ev.peak_level, ev.incident_id),
            )
        else:
            c.execute(
                "UPDATE incidents SET level = ?, peak_level = ?, updated_at = ? WHERE id = ?",
                (ev.level, ev.peak_level, at, ev.incident_id),
            )
        facts = json.dumps(
            [
                {"name": f.name, "value": f.value, "threshold": f.threshold, "baseline": f.baseline}
                for f in ev.facts
            ]
        )
        c.execute(
            "INSERT OR IGNORE INTO incident_events VALUES (?,?,?,?,?,?,?)",
            (ev.incident_id, ev.seq, ev.kind, ev.level, ev.previous_level, at, facts),
        )

    def prune_mentions(self, before: datetime) -> int:
        """Forget mentions collected before ``before`` (retention), except evidence.

        A mention is evidence while one of its brands has an incident that opened less
        than ``EVIDENCE_BEFORE`` after the mention was written and resolved less than
        ``EVIDENCE_AFTER`` before it (or is still open): reports of old incidents keep
        their timeline, top posts and authors. Evidence is judged again at every prune, so
        the mentions an open incident keeps go once it has resolved and they fall outside
        its period. Incidents, their events, notices and acknowledgements are never pruned.
        Returns how many mentions were deleted.

        The work goes a day of collection time per transaction (skipping days with nothing
        stored), so a first run over a large file neither holds the lock nor loads the
        whole history at once.
        """
        cutoff, removed = _ts(before), 0
        since: float | None = float("-inf")
        while since is not None:
            n, since = self._prune_slice(cutoff, since)
            removed += n
        return removed

    def _prune_slice(self, cutoff: float, since: float) -> tuple[int, float | None]:
        """Judge the day of collection time that starts at the first mention collected at
        or after ``since``; (deleted, where the next day starts, or None at ``cutoff``)."""
        with self._lock:
            c = self._conn
            try:
                c.execute("BEGIN IMMEDIATE")
                start = c.execute(
                    "SELECT MIN(collected_at) FROM mentions WHERE collected_at >= ?", (since,)
                ).fetchone()[0]
                if start is None or start >= cutoff:
                    c.execute("COMMIT")
                    return 0, None
                upper = min(cutoff, float(start) + _PRUNE_SLICE.total_seconds())
                candidates = c.execute(
                    "SELECT source, id, created_at FROM mentions "
                    "WHERE collected_at >= ? AND collected_at < ?",
                    (start, upper),
                ).fetchall()
                doomed, doomed_brands = self._not_evidence(c, candidates)
                c.executemany(
                    "DELETE FROM mention_brands WHERE brand = ? AND source = ? AND id = ?",
                    doomed_brands,
                )
                c.executemany("DELETE FROM mentions WHERE source = ? AND id = ?", doomed)
                c.execute("COMMIT")
                return len(doomed), (upper if upper < cutoff else None)
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"{self.path}: prune failed: {exc}") from None

    @staticmethod
    def _not_evidence(
        c: sqlite3.Connection, candidates: Sequence[tuple[str, str, float]]
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
        """Which candidate mentions (and brand rows) are no incident's evidence."""
        if not candidates:
            return [], []
        keys = {(str(s), str(i)) for s, i, _ in candidates}
        lo = min(float(t) for _, _, t in candidates)
        hi = max(float(t) for _, _, t in candidates)
        periods: dict[str, list[tuple[float, float]]] = {}
        before, after = EVIDENCE_BEFORE.total_seconds(), EVIDENCE_AFTER.total_seconds()
        for brand, opened, resolved in c.execute(
            "SELECT brand, opened_at, resolved_at FROM incidents"
        ):
            end = float("inf") if resolved is None else float(resolved) + after
            periods.setdefault(str(brand), []).append((float(opened) - before, end))
        rows: list[tuple[str, str, str, float]] = []
        brand = c.execute("SELECT MIN(brand) FROM mention_brands").fetchone()[0]
        while brand is not None:  # one index seek per brand, not a scan of every row
            rows.extend(
                (brand, s, i, t)
                for s, i, t in c.execute(
                    "SELECT source, id, created_at FROM mention_brands WHERE brand = ? "
                    "AND created_at >= ? AND created_at <= ?",
                    (brand, lo, hi),
                )
                if (s, i) in keys
            )
            brand = c.execute(
                "SELECT MIN(brand) FROM mention_brands WHERE brand > ?", (brand,)
            ).fetchone()[0]
        kept = {
            (s, i)
            for b, s, i, t in rows
            if any(start <= t <= end for start, end in periods.get(b, ()))
        }
        doomed = sorted(keys - kept)
        return doomed, [(b, s, i) for b, s, i, _ in rows if (s, i) not in kept]

    def prune_outbox(self, before: datetime) -> int:
        """Drop the alert documents of delivered and failed outbox rows that ended before
        ``before`` (retention); pending rows are never touched.

        The row itself stays, small: an incident's report and ``incidents show`` read its
        sink, outcome, attempts, error and times (:meth:`deliveries`), and incidents are
        kept for ever. Only the payload goes (about 2 KB per alert and sink), replaced by
        ``{"pruned": 1, "drill": …}`` so a drill stays marked as one. Muted alerts have
        no outbox row (they live in ``notices``). Returns how many rows were pruned; a
        second run over the same rows prunes none. Works in batches, one transaction each.
        """
        cutoff, removed = _ts(before), 0
        while True:
            with self._lock:
                c = self._conn
                try:
                    cur = c.execute(
                        "UPDATE outbox SET payload = json_object('pruned', 1, 'drill', "
                        "COALESCE(json_extract(payload, '$.drill'), 0)) WHERE id IN ("
                        "SELECT id FROM outbox WHERE status IN ('delivered', 'failed') "
                        "AND COALESCE(delivered_at, next_attempt_at) < ? "
                        "AND json_extract(payload, '$.pruned') IS NULL LIMIT ?)",
                        (cutoff, _OUTBOX_PRUNE_BATCH),
                    )
                except sqlite3.Error as exc:
                    raise StoreError(f"{self.path}: outbox prune failed: {exc}") from None
            removed += cur.rowcount
            if cur.rowcount < _OUTBOX_PRUNE_BATCH:
                return removed

    def vacuum(self, now: datetime) -> None:
        """Rebuild the file to give back the space pruning freed (``VACUUM``), then
        truncate the WAL. Holds the store's lock, so it never runs inside another
        write; other writers wait for it. Records ``now`` as the last vacuum."""
        with self._lock:
            c = self._conn
            if c.in_transaction:  # pragma: no cover - every transaction holds the lock
                raise StoreError(f"{self.path}: cannot vacuum inside a transaction")
            try:
                c.execute("VACUUM")
                c.execute(
                    "INSERT INTO kv VALUES ('last_vacuum_at', ?) ON CONFLICT(key) DO UPDATE "
                    "SET value = excluded.value",
                    (now.isoformat(),),
                )
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: vacuum failed: {exc}") from None

    def last_vacuum(self) -> datetime | None:
        """When :meth:`vacuum` last ran on this file (None: never)."""
        value = self.load_kv("last_vacuum_at")
        return datetime.fromisoformat(value) if value else None

    def size_bytes(self) -> int:
        """Bytes on disk: the database file plus its WAL (0 for ``:memory:``)."""
        if self.path == ":memory:":
            return 0
        total = 0
        for name in (self.path, f"{self.path}-wal"):
            try:
                total += Path(name).stat().st_size
            except OSError:
                continue
        return total

    # ------------------------------------------------------------------ outbox

    def due(self, sink: str, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Pending alerts for ``sink`` whose next attempt is due, oldest first."""
        rows = self._read(
            "SELECT id, alert_id, sink, incident_id, rule, payload, created_at, attempts, "
            "next_attempt_at FROM outbox WHERE sink = ? AND status = 'pending' "
            "AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (sink, _ts(now), limit),
        )
        return [
            OutboxItem(
                id=r[0],
                alert_id=r[1],
                sink=r[2],
                incident_id=r[3],
                rule=r[4],
                alert=Alert.from_dict(json.loads(r[5])),
                created_at=_dt(r[6]),
                attempts=r[7],
                next_attempt_at=_dt(r[8]),
            )
            for r in rows
        ]

    def mark_delivered(self, item_id: int, now: datetime) -> None:
        self._write(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE id = ?",
            (_ts(now), item_id),
        )

    def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        self._write(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
            "WHERE id = ?",
            (_ts(next_attempt_at), error[:500], item_id),
        )

    def mark_failed(self, item_id: int, now: datetime, error: str) -> None:
        """Give up on an item; ``next_attempt_at`` keeps when (read back as ``failed_at``)."""
        self._write(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?, "
            "next_attempt_at = ? WHERE id = ?",
            (error[:500], _ts(now), item_id),
        )

    def outbox_pending(self) -> dict[str, int]:
        return {sink: n for sink, (n, _) in self.outbox_backlog().items()}

    def outbox_backlog(self) -> dict[str, tuple[int, datetime]]:
        """Per sink with alerts waiting: how many, and when the oldest entered the outbox."""
        rows = self._read(
            "SELECT sink, COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending' "
            "GROUP BY sink"
        )
        return {str(s): (int(n), _dt(float(t))) for s, n, t in rows}

    # ------------------------------------------------------------------ incidents

    def incidents(self, status: str | None = None, limit: int = 100) -> list[IncidentRecord]:
        where = "WHERE status = ?" if status else ""
        params: list[Any] = [status] if status else []
        rows = self._read(
            f"SELECT id, rule, brand, status, level, peak_level, opened_at, updated_at, "
            f"resolved_at FROM incidents {where} ORDER BY opened_at DESC LIMIT ?",
            [*params, limit],
        )
        return [
            IncidentRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                _dt(r[6]),
                _dt(r[7]),
                _dt(r[8]) if r[8] is not None else None,
            )
            for r in rows
        ]

    def incident_events(self, incident_id: str) -> list[IncidentEventRecord]:
        rows = self._read(
            "SELECT incident_id, seq, kind, level, previous_level, at, facts FROM incident_events "
            "WHERE incident_id = ? ORDER BY seq",
            (incident_id,),
        )
        return [
            IncidentEventRecord(
                r[0], r[1], r[2], r[3], r[4], _dt(r[5]), tuple(Fact(**f) for f in json.loads(r[6]))
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ silences, acks

    def add_silence(self, silence: Any) -> None:
        """Store a :class:`listener.rules.notify.Silence`."""
        self._write(
            "INSERT INTO silences VALUES (?,?,?,?,?,?,?,?)",
            (
                silence.id,
                silence.brand,
                silence.rule,
                silence.level,
                _ts(silence.starts_at),
                _ts(silence.ends_at),
                silence.created_by,
                silence.comment,
            ),
        )

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        """End a silence now; False when there is no such active silence."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?",
                (_ts(now), silence_id, _ts(now)),
            )
            return bool(cur.rowcount)

    def silences(self, active_at: datetime | None = None) -> list[Any]:
        """Silences (only those active at ``active_at`` when given), newest first."""
        from listener.rules.notify import Silence

        where, params = "", []
        if active_at is not None:
            where, params = "WHERE starts_at <= ? AND ends_at > ?", [_ts(active_at)] * 2
        rows = self._read(f"SELECT * FROM silences {where} ORDER BY starts_at DESC", params)
        return [
            Silence(
                id=r[0],
                brand=r[1],
                rule=r[2],
                level=r[3],
                starts_at=_dt(r[4]),
                ends_at=_dt(r[5]),
                created_by=r[6],
                comment=r[7],
            )
            for r in rows
        ]

    def add_ack(self, incident_id: str, by: str, at: datetime, note: str = "") -> bool:
        """Record an acknowledgement; the first one wins. False when already acknowledged."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO acks VALUES (?,?,?,?)", (incident_id, by, _ts(at), note)
            )
            return bool(cur.rowcount)

    def acks(self, incident_ids: Iterable[str] | None = None) -> dict[str, Ack]:
        ids = list(incident_ids) if incident_ids is not None else None
        if ids is not None and not ids:
            return {}
        if ids is None:
            rows = self._read("SELECT incident_id, by, at, note FROM acks")
        else:
            marks = ",".join("?" * len(ids))
            rows = self._read(
                f"SELECT incident_id, by, at, note FROM acks WHERE incident_id IN ({marks})", ids
            )
        return {r[0]: Ack(r[1], _dt(r[2]), r[3]) for r in rows}

    def notices(self, incident_id: str) -> list[NoticeRecord]:
        rows = self._read(
            "SELECT alert_id, kind, level, at, sinks, muted FROM notices WHERE incident_id = ? "
            "ORDER BY at, alert_id",
            (incident_id,),
        )
        return [
            NoticeRecord(r[0], r[1], r[2], _dt(r[3]), tuple(json.loads(r[4])), r[5]) for r in rows
        ]

    def incident(self, incident_id: str) -> IncidentRecord | None:
        rows = self._read(
            "SELECT id, rule, brand, status, level, peak_level, opened_at, updated_at, "
            "resolved_at FROM incidents WHERE id = ?",
            (incident_id,),
        )
        return (
            IncidentRecord(
                rows[0][0],
                rows[0][1],
                rows[0][2],
                rows[0][3],
                rows[0][4],
                rows[0][5],
                _dt(rows[0][6]),
                _dt(rows[0][7]),
                _dt(rows[0][8]) if rows[0][8] is not None else None,
            )
            if rows
            else None
        )

    # ------------------------------------------------------------------ drills

    def mark_drill(self, incident_ids: Iterable[str]) -> None:
        """Remember that these incidents were opened by ``listener drill``."""
        with self._lock:
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO drill_incidents VALUES (?)",
                    [(i,) for i in incident_ids],
                )
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: write failed: {exc}") from None

    def drill_ids(self, incident_ids: Iterable[str]) -> set[str]:
        """Those of ``incident_ids`` that a drill opened."""
        ids = list(incident_ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self._read(
            f"SELECT incident_id FROM drill_incidents WHERE incident_id IN ({marks})", ids
        )
        return {str(r[0]) for r in rows}

    def mute_pending(self, incident_ids: Iterable[str], sinks: Iterable[str], reason: str) -> int:
        """Settle the alerts of these incidents still pending for these sinks as ``muted``
        with ``reason`` (a drill that delivers nothing: no later run sends them)."""
        ids, names = list(incident_ids), list(sinks)
        if not ids or not names:
            return 0
        with self._lock:
            try:
                cur = self._conn.execute(
                    "UPDATE outbox SET status = 'muted', last_error = ? WHERE status = 'pending' "
                    f"AND incident_id IN ({','.join('?' * len(ids))}) "
                    f"AND sink IN ({','.join('?' * len(names))})",
                    [reason[:500], *ids, *names],
                )
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: write failed: {exc}") from None
        return cur.rowcount


@dataclass(frozen=True, slots=True)
class NoticeRecord:
    alert_id: str
    kind: str
    level: str
    at: datetime
    sinks: tuple[str, ...]
    muted: str | None


class StoreSinkState:
    """A sink's durable key-value state (:class:`listener.sinks.base.SinkState`) in the store.

    Writes are committed at once, so what a sink records right after a send (a Slack
    message ts) survives a crash a moment later.
    """

    def __init__(self, store: Store, sink: str) -> None:
        self.store = store
        self.sink = sink

    def get(self, key: str) -> str | None:
        rows = self.store._read(
            "SELECT value FROM sink_state WHERE sink = ? AND key = ?", (self.sink, key)
        )
        return str(rows[0][0]) if rows else None

    def set(self, key: str, value: str) -> None:
        self.store._write(
            "INSERT INTO sink_state VALUES (?, ?, ?, strftime('%s','now')) "
            "ON CONFLICT(sink, key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (self.sink, key, value),
        )

    def delete(self, key: str) -> None:
        self.store._write("DELETE FROM sink_state WHERE sink = ? AND key = ?", (self.sink, key))
