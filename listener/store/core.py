"""The store's core: one SQLite connection, its lock, and the translation of every
``sqlite3.Error`` into :class:`~listener.errors.StoreError`.

Every module of the package reaches the database only through :class:`Database`:
:meth:`Database.read` and :meth:`Database.write` for one statement,
:meth:`Database.transaction` for a unit of work (``BEGIN IMMEDIATE`` … ``COMMIT``, rolled
back on any error). A ``sqlite3.Error`` never leaves the package.

The statements are written once, in the SQL both databases take (``?`` placeholders,
``INSERT … ON CONFLICT``); the few expressions that differ come from the database's
:class:`Dialect` (``db.sql``). :class:`listener.store.postgres.PostgresDatabase` is the
same contract on PostgreSQL (distributed mode's shared state).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listener.errors import StoreError


def ts(when: datetime) -> float:
    """``when`` as Unix seconds, the form every time is stored in."""
    return when.timestamp()


def dt(seconds: float) -> datetime:
    """Inverse of :func:`ts` (UTC)."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class Dialect:
    """The expressions that differ between SQLite and PostgreSQL."""

    name: str
    whole: str
    """``{}`` as a whole number, towards zero."""
    json_text: str
    """The field ``{key}`` of the JSON text in column ``{col}`` (NULL when absent)."""
    json_flag: str
    """The boolean field ``{key}`` of the JSON text in ``{col}`` (true/false or 1/0)."""
    pruned_payload: str
    """A pruned outbox document keeping ``drill`` of the document in ``{col}``."""


SQLITE = Dialect(
    name="sqlite",
    whole="CAST({} AS INTEGER)",
    json_text="json_extract({col}, '$.{key}')",
    json_flag="json_extract({col}, '$.{key}')",
    pruned_payload="json_object('pruned', 1, 'drill', COALESCE(json_extract({col}, '$.drill'), 0))",
)

POSTGRES = Dialect(
    name="postgresql",
    whole="TRUNC({})::bigint",
    json_text="({col}::jsonb ->> '{key}')",
    json_flag="({col}::jsonb ->> '{key}')::boolean",
    pruned_payload="json_build_object('pruned', 1, 'drill', "
    "COALESCE(({col}::jsonb ->> 'drill')::boolean, false))::text",
)


class Database:
    """A SQLite connection shared by threads: every use holds :attr:`lock` (re-entrant)."""

    sql: Dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.lock = threading.RLock()
        self.path = path
        self._edits = 0

    def version(self) -> tuple[int, int]:
        """A token that changes whenever the file may hold other silences or acks than
        when it was taken: the single-statement writes made through this connection
        (:meth:`write`, :meth:`write_many`: how silences and acks are written; the stages'
        transactions never touch them) and ``PRAGMA data_version``, which moves when
        another connection, in this process or another, commits. Caches of what those
        writers change compare it before use (one statement, no table read; read every
        evaluation, so without :meth:`guard`'s context manager around it). A ``:memory:``
        database (a backtest's) belongs to its connection alone: no statement is needed."""
        if self.path == ":memory:":
            return self._edits, 0
        with self.lock:
            try:
                found = self.conn.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error as exc:
                raise self.error("read", exc) from None
            return self._edits, int(found[0])

    def error(self, what: str, exc: sqlite3.Error) -> StoreError:
        """The StoreError for ``exc`` raised while doing ``what``."""
        return StoreError(f"{self.path}: {what} failed: {exc}")

    @contextmanager
    def guard(self, what: str) -> Iterator[sqlite3.Connection]:
        """Hold the lock and translate ``sqlite3.Error`` (no transaction of its own)."""
        with self.lock:
            try:
                yield self.conn
            except sqlite3.Error as exc:
                raise self.error(what, exc) from None

    @contextmanager
    def transaction(self, what: str = "commit") -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back when anything raises."""
        with self.lock:
            c = self.conn
            try:
                c.execute("BEGIN IMMEDIATE")
                try:
                    yield c
                except BaseException:
                    if c.in_transaction:
                        c.execute("ROLLBACK")
                    raise
                c.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    if c.in_transaction:
                        c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise self.error(what, exc) from None

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.guard("read") as c:
            return c.execute(sql, params).fetchall()

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own implicit transaction; the rows it changed."""
        with self.guard("write") as c:
            self._edits += 1
            return c.execute(sql, params).rowcount

    def write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.guard("write") as c:
            self._edits += 1
            c.executemany(sql, rows)

    def compact(self, c: Any) -> None:
        """Give back the space pruning freed (``VACUUM``), with the lock held (``c`` from
        :meth:`guard`), never inside a transaction."""
        if c.in_transaction:  # pragma: no cover - every transaction holds the lock
            raise StoreError(f"{self.path}: cannot vacuum inside a transaction")
        c.execute("VACUUM")

    def checkpoint(self, c: Any) -> None:
        """Fold the WAL into the file and truncate it (after :meth:`compact`)."""
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_bytes(self) -> int:
        """Bytes on disk: the file plus its WAL (0 for ``:memory:``)."""
        if self.path == ":memory:":
            return 0
        total = 0
        for name in (self.path, f"{self.path}-wal"):
            try:
                total += Path(name).stat().st_size
            except OSError:
                continue
        return total

    def close(self) -> None:
        with self.guard("close") as c:
            c.close()
