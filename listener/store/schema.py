"""The state file's schema and the migrations from every earlier version.

:func:`connect` opens (creating if needed) a state file and brings it to
:data:`SCHEMA_VERSION`; a file written by a newer listener is refused.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from listener.collectors.fetch import redact_url
from listener.collectors.rss import feed_key
from listener.errors import StoreError

SCHEMA_VERSION = 6
"""Version 2: ``buckets`` holds one JSON blob per bucket (``listener.scoring.velocity``).
Opening a version-1 file drops and recreates the ``buckets`` table, so velocity window
history (and the rules' warm-up) restarts once after the upgrade; nothing else changes.
Version 4: cursors name feed URLs by :func:`~listener.collectors.rss.feed_key`, never by
the URL (which may carry credentials); opening an older file rewrites its cursors in place
and scrubs the freed space, so no cursor is lost and no secret stays in the file.
Version 5: mentions are stored compactly (:mod:`listener.store.mentions`: ``data`` keeps
only what the columns do not, without null fields; ``tags`` only what is set) and
``mention_brands`` is a ``WITHOUT ROWID`` table keyed by (brand, created_at, source, id)
(no rowid, no index holding a second copy of the rows). Rows written
before stay readable as they are; opening an older file rebuilds ``mention_brands`` once.
A version-4 listener refuses a version-5 file (it could not read the compact rows).
Version 6: ``buckets`` rows are written as JSON arrays, the measures in a fixed order and
a bucket holding one sub-series written once (:mod:`listener.scoring.velocity`, **Rows**):
about a third of the bytes, and a third of the time to encode. The table is unchanged and
rows written before (JSON objects) load as they are and take the new form when next
written, so opening an older file changes nothing in it; a version-5 listener refuses a
version-6 file (it could not read the new rows).
A table added that changes nothing older listeners read (``incident_notes``: notes and
assignments on an incident's timeline) is created when a file is opened; the version
stays, so an older listener still opens the file (and ignores the table)."""

SCHEMA = """
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
    PRIMARY KEY (brand, created_at, source, id)
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS incident_notes (
    incident_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    by TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_notes_by_incident ON incident_notes (incident_id, at);
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
CREATE TABLE IF NOT EXISTS collected (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    collected_at REAL NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX IF NOT EXISTS collected_at ON collected (collected_at);
"""


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


def _migrate_mention_brands(conn: sqlite3.Connection) -> None:
    """Schema 4 → 5: rebuild ``mention_brands`` as a ``WITHOUT ROWID`` table keyed by
    (brand, created_at, source, id), the order every read takes (same columns, same rows;
    the ``mention_brands_time`` index, a second copy of that key, goes), in one
    transaction. Idempotent: a rebuilt table stays."""
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'mention_brands'"
    ).fetchone()
    if row is None or "WITHOUT ROWID" in str(row[0]).upper():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DROP INDEX IF EXISTS mention_brands_time")
        conn.execute("ALTER TABLE mention_brands RENAME TO mention_brands_v4")
        conn.execute(
            "CREATE TABLE mention_brands (brand TEXT NOT NULL, created_at REAL NOT NULL, "
            "source TEXT NOT NULL, id TEXT NOT NULL, negative INTEGER NOT NULL, "
            "PRIMARY KEY (brand, created_at, source, id)) WITHOUT ROWID"
        )
        conn.execute(
            "INSERT INTO mention_brands (brand, created_at, source, id, negative) "
            "SELECT brand, created_at, source, id, negative FROM mention_brands_v4"
        )
        conn.execute("DROP TABLE mention_brands_v4")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def connect(name: str) -> sqlite3.Connection:
    """Open the state file ``name`` at :data:`SCHEMA_VERSION`; StoreError on failure."""
    conn: sqlite3.Connection | None = None
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
        if 0 < version < 5:
            _migrate_mention_brands(conn)
        conn.executescript(SCHEMA)
        if 0 < version < 4:
            _migrate_cursor_secrets(conn)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        raise StoreError(f"{name}: cannot open state file: {exc}") from None
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    return conn
