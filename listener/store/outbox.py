"""The delivery outbox: one row per alert and sink, written in the same transaction as
the decision that produced it, then settled by the deliverer (delivered, retried, failed,
muted). Retention drops the alert documents of settled rows, never the rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.model import Alert
from listener.store.core import Database, dt, ts

_OUTBOX_PRUNE_BATCH = 500


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


class Outbox:
    """The ``outbox`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def enqueue(c: Any, rows: Sequence[tuple[Alert, Sequence[str]]], at: float) -> None:
        """Queue each alert for its sinks (inside the caller's transaction); queueing the
        same alert id for the same sink again is a no-op."""
        params: list[tuple[str, str, str, str, str, float, float]] = []
        for alert, sinks in rows:
            payload = json.dumps(alert.to_dict())
            params.extend(
                (alert.id, sink, alert.incident_id, alert.rule, payload, at, at) for sink in sinks
            )
        if params:
            c.executemany(
                "INSERT INTO outbox (alert_id, sink, incident_id, rule, payload, "
                "created_at, next_attempt_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                params,
            )

    def due(self, sink: str, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Pending alerts for ``sink`` whose next attempt is due, oldest first."""
        rows = self.db.read(
            "SELECT id, alert_id, sink, incident_id, rule, payload, created_at, attempts, "
            "next_attempt_at FROM outbox WHERE sink = ? AND status = 'pending' "
            "AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (sink, ts(now), limit),
        )
        return [
            OutboxItem(
                id=r[0],
                alert_id=r[1],
                sink=r[2],
                incident_id=r[3],
                rule=r[4],
                alert=Alert.from_dict(json.loads(r[5])),
                created_at=dt(r[6]),
                attempts=r[7],
                next_attempt_at=dt(r[8]),
            )
            for r in rows
        ]

    def mark_delivered(self, item_id: int, now: datetime) -> None:
        self.db.write(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE id = ?",
            (ts(now), item_id),
        )

    def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        self.db.write(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
            "WHERE id = ?",
            (ts(next_attempt_at), error[:500], item_id),
        )

    def mark_failed(self, item_id: int, now: datetime, error: str) -> None:
        """Give up on an item; ``next_attempt_at`` keeps when (read back as ``failed_at``)."""
        self.db.write(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?, "
            "next_attempt_at = ? WHERE id = ?",
            (error[:500], ts(now), item_id),
        )

    def mute_pending(self, incident_ids: Iterable[str], sinks: Iterable[str], reason: str) -> int:
        """Settle the alerts of these incidents still pending for these sinks as ``muted``
        with ``reason`` (a drill that delivers nothing: no later run sends them)."""
        ids, names = list(incident_ids), list(sinks)
        if not ids or not names:
            return 0
        return self.db.write(
            "UPDATE outbox SET status = 'muted', last_error = ? WHERE status = 'pending' "
            f"AND incident_id IN ({','.join('?' * len(ids))}) "
            f"AND sink IN ({','.join('?' * len(names))})",
            [reason[:500], *ids, *names],
        )

    def backlog(self) -> dict[str, tuple[int, datetime]]:
        """Per sink with alerts waiting: how many, and when the oldest entered the outbox."""
        rows = self.db.read(
            "SELECT sink, COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending' "
            "GROUP BY sink"
        )
        return {str(s): (int(n), dt(float(t))) for s, n, t in rows}

    def pending(self) -> dict[str, int]:
        """Per sink with alerts waiting: how many (:meth:`backlog` without the age)."""
        return {sink: n for sink, (n, _) in self.backlog().items()}

    def deliveries(self, incident_id: str) -> list[OutboxRecord]:
        """Every outbox row of an incident, oldest first, with when it ended (a failed
        row keeps its failure time in ``next_attempt_at``: see :meth:`mark_failed`)."""
        drill = self.db.sql.json_flag.format(col="payload", key="drill")
        rows = self.db.read(
            "SELECT alert_id, sink, status, attempts, last_error, created_at, delivered_at, "
            f"next_attempt_at, {drill} FROM outbox "
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
                created_at=dt(r[5]),
                delivered_at=dt(r[6]) if r[6] is not None else None,
                failed_at=dt(r[7]) if r[2] == "failed" else None,
                drill=bool(r[8]),
            )
            for r in rows
        ]

    def prune(self, before: datetime) -> int:
        """Drop the alert documents of delivered and failed outbox rows that ended before
        ``before`` (retention); pending rows are never touched.

        The row itself stays, small: an incident's report and ``incidents show`` read its
        sink, outcome, attempts, error and times (:meth:`deliveries`), and incidents are
        kept for ever. Only the payload goes (about 2 KB per alert and sink), replaced by
        ``{"pruned": 1, "drill": …}`` so a drill stays marked as one. Muted alerts have
        no outbox row (they live in ``notices``). Returns how many rows were pruned; a
        second run over the same rows prunes none. Works in batches, one transaction each.
        """
        cutoff, removed = ts(before), 0
        pruned = self.db.sql.pruned_payload.format(col="payload")
        unpruned = self.db.sql.json_text.format(col="payload", key="pruned")
        while True:
            with self.db.guard("outbox prune") as c:
                n = c.execute(
                    f"UPDATE outbox SET payload = {pruned} WHERE id IN ("
                    "SELECT id FROM outbox WHERE status IN ('delivered', 'failed') "
                    "AND COALESCE(delivered_at, next_attempt_at) < ? "
                    f"AND {unpruned} IS NULL LIMIT ?)",
                    (cutoff, _OUTBOX_PRUNE_BATCH),
                ).rowcount
            removed += n
            if n < _OUTBOX_PRUNE_BATCH:
                return removed
