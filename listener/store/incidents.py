"""Incidents with their timeline (events), the notices sent or muted for them,
acknowledgements, silences, and which incidents a drill opened."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listener.model import Ack, Fact, Silence
from listener.store.core import Database, dt, ts


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
class NoticeRecord:
    alert_id: str
    kind: str
    level: str
    at: datetime
    sinks: tuple[str, ...]
    muted: str | None


_INCIDENT_COLUMNS = "id, rule, brand, status, level, peak_level, opened_at, updated_at, resolved_at"


def _incident(r: Sequence[Any]) -> IncidentRecord:
    return IncidentRecord(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        dt(r[6]),
        dt(r[7]),
        dt(r[8]) if r[8] is not None else None,
    )


class Incidents:
    """The ``incidents``, ``incident_events``, ``notices`` and ``drill_incidents`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ writes

    @staticmethod
    def apply(c: Any, events: Sequence[Any], notices: Sequence[Any], at: float) -> None:
        """Record rule-engine ``IncidentEvent``s and ``Notice``s (inside the caller's
        transaction); a notice is stamped ``at``."""
        for ev in events:
            _apply_event(c, ev)
        if notices:
            c.executemany(
                "INSERT INTO notices VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                [
                    (
                        n.alert_id,
                        n.incident_id,
                        n.kind,
                        n.level,
                        at,
                        json.dumps(list(n.sinks)),
                        n.muted,
                    )
                    for n in notices
                ],
            )

    def mark_drill(self, incident_ids: Iterable[str]) -> None:
        """Remember that these incidents were opened by ``listener drill``."""
        self.db.write_many(
            "INSERT INTO drill_incidents VALUES (?) ON CONFLICT DO NOTHING",
            [(i,) for i in incident_ids],
        )

    # ------------------------------------------------------------------ reads

    def recent(self, status: str | None = None, limit: int = 100) -> list[IncidentRecord]:
        where = "WHERE status = ?" if status else ""
        params: list[Any] = [status] if status else []
        rows = self.db.read(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents {where} ORDER BY opened_at DESC LIMIT ?",
            [*params, limit],
        )
        return [_incident(r) for r in rows]

    def touching(
        self, brands: Sequence[str], start: datetime, end: datetime
    ) -> list[IncidentRecord]:
        """The incidents of ``brands`` open at some time in [start, end): opened before
        ``end`` and not resolved before ``start``; oldest first. Drills' incidents are left
        out."""
        if not brands:
            return []
        marks = ",".join("?" * len(brands))
        rows = self.db.read(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE brand IN ({marks}) "
            "AND opened_at < ? AND (resolved_at IS NULL OR resolved_at >= ?) "
            "AND id NOT IN (SELECT incident_id FROM drill_incidents) ORDER BY opened_at, id",
            [*brands, ts(end), ts(start)],
        )
        return [_incident(r) for r in rows]

    def get(self, incident_id: str) -> IncidentRecord | None:
        rows = self.db.read(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
        )
        return _incident(rows[0]) if rows else None

    def starting_with(self, prefix: str, limit: int = 2) -> list[str]:
        """The ids of up to ``limit`` incidents whose id starts with ``prefix`` (exactly:
        case counts, ``%`` and ``_`` are themselves), in id order."""
        rows = self.db.read(
            "SELECT id FROM incidents WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT ?",
            (len(prefix), prefix, limit),
        )
        return [str(r[0]) for r in rows]

    def events(self, incident_id: str) -> list[IncidentEventRecord]:
        rows = self.db.read(
            "SELECT incident_id, seq, kind, level, previous_level, at, facts FROM incident_events "
            "WHERE incident_id = ? ORDER BY seq",
            (incident_id,),
        )
        return [
            IncidentEventRecord(
                r[0], r[1], r[2], r[3], r[4], dt(r[5]), tuple(Fact(**f) for f in json.loads(r[6]))
            )
            for r in rows
        ]

    def ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of incidents starting with ``prefix`` (for hints), newest first."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.db.read(
            "SELECT id FROM incidents WHERE id LIKE ? ESCAPE '\\' ORDER BY opened_at DESC LIMIT ?",
            (escaped + "%", limit),
        )
        return [str(r[0]) for r in rows]

    def notices(self, incident_id: str) -> list[NoticeRecord]:
        rows = self.db.read(
            "SELECT alert_id, kind, level, at, sinks, muted FROM notices WHERE incident_id = ? "
            "ORDER BY at, alert_id",
            (incident_id,),
        )
        return [
            NoticeRecord(r[0], r[1], r[2], dt(r[3]), tuple(json.loads(r[4])), r[5]) for r in rows
        ]

    def drill_ids(self, incident_ids: Iterable[str]) -> set[str]:
        """Those of ``incident_ids`` that a drill opened."""
        ids = list(incident_ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self.db.read(
            f"SELECT incident_id FROM drill_incidents WHERE incident_id IN ({marks})", ids
        )
        return {str(r[0]) for r in rows}


def _apply_event(c: Any, ev: Any) -> None:
    at = ts(ev.at)
    if ev.kind == "opened":
        c.execute(
            "INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?,NULL) ON CONFLICT DO NOTHING",
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
        "INSERT INTO incident_events VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (ev.incident_id, ev.seq, ev.kind, ev.level, ev.previous_level, at, facts),
    )


class Silences:
    """The ``silences`` table.

    The active silences are read every evaluation: :meth:`select` with ``active_at``
    keeps the last answer for as long as it holds, i.e. until the next time a silence
    starts or ends, or until :meth:`Database.version` says the table may have changed (a
    silence added or expired through this store or by another process)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._active: tuple[tuple[int, int], float, float, list[Any]] | None = None
        """(version, from, until, answer): the silences active at any time in
        ``[from, until)``, as the query gave them at ``from``."""

    def add(self, silence: Silence) -> None:
        """Store a silence."""
        self.db.write(
            "INSERT INTO silences VALUES (?,?,?,?,?,?,?,?)",
            (
                silence.id,
                silence.brand,
                silence.rule,
                silence.level,
                ts(silence.starts_at),
                ts(silence.ends_at),
                silence.created_by,
                silence.comment,
            ),
        )

    def expire(self, silence_id: str, now: datetime) -> bool:
        """End a silence now; False when there is no such active silence."""
        return bool(
            self.db.write(
                "UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?",
                (ts(now), silence_id, ts(now)),
            )
        )

    def select(self, active_at: datetime | None = None) -> list[Silence]:
        """Silences (only those active at ``active_at`` when given), newest first."""
        if active_at is None:
            return self._select("", [])
        at = ts(active_at)
        with self.db.lock:
            version = self.db.version()
            kept = self._active
            if kept is not None and kept[0] == version and kept[1] <= at < kept[2]:
                return list(kept[3])
            found = self._select("WHERE starts_at <= ? AND ends_at > ?", [at, at])
            # the set active at ``at`` holds until the next start or end after it
            rows = self.db.read(
                "SELECT MIN(x) FROM (SELECT MIN(starts_at) AS x FROM silences WHERE starts_at > ?"
                " UNION ALL SELECT MIN(ends_at) FROM silences WHERE ends_at > ?) AS bounds",
                (at, at),
            )
            until = rows[0][0] if rows and rows[0][0] is not None else math.inf
            self._active = (version, at, float(until), found)
            return list(found)

    def _select(self, where: str, params: list[Any]) -> list[Silence]:
        rows = self.db.read(f"SELECT * FROM silences {where} ORDER BY starts_at DESC", params)
        return [
            Silence(
                id=r[0],
                brand=r[1],
                rule=r[2],
                level=r[3],
                starts_at=dt(r[4]),
                ends_at=dt(r[5]),
                created_by=r[6],
                comment=r[7],
            )
            for r in rows
        ]


class Acks:
    """The ``acks`` table.

    The open incidents' acknowledgements are read every evaluation: :meth:`get` of given
    ids answers from what it read before, per id, until :meth:`Database.version` says the
    table may have changed (an ack through this store or by another process)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: dict[str, Ack | None] = {}
        """Per incident id read since ``_version``: its ack (None: none)."""
        self._version: tuple[int, int] | None = None

    def add(self, incident_id: str, by: str, at: datetime, note: str = "") -> bool:
        """Record an acknowledgement; the first one wins. False when already acknowledged."""
        return bool(
            self.db.write(
                "INSERT INTO acks VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                (incident_id, by, ts(at), note),
            )
        )

    def get(self, incident_ids: Iterable[str] | None = None) -> dict[str, Ack]:
        ids = list(incident_ids) if incident_ids is not None else None
        if ids is not None and not ids:
            return {}
        if ids is None:
            rows = self.db.read("SELECT incident_id, by, at, note FROM acks")
            return {r[0]: Ack(r[1], dt(r[2]), r[3]) for r in rows}
        with self.db.lock:
            version = self.db.version()
            known = self._known
            if version != self._version or len(known) > 2 * len(ids) + 64:
                known = self._known = {}  # changed, or holding many ids no longer asked for
                self._version = version
            missing = [i for i in dict.fromkeys(ids) if i not in known]
            if missing:
                marks = ",".join("?" * len(missing))
                rows = self.db.read(
                    f"SELECT incident_id, by, at, note FROM acks WHERE incident_id IN ({marks})",
                    missing,
                )
                known.update(dict.fromkeys(missing))
                known.update({r[0]: Ack(r[1], dt(r[2]), r[3]) for r in rows})
            return {i: ack for i in ids if (ack := known[i]) is not None}


@dataclass(frozen=True, slots=True)
class NoteRecord:
    """A person's entry on an incident's timeline: a note (``statement posted 11:05``),
    or an assignment (``text``: who has it now)."""

    incident_id: str
    at: datetime
    kind: str
    """``note`` or ``assigned``."""
    by: str
    text: str


class IncidentNotes:
    """The ``incident_notes`` table: notes and assignments, oldest first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, incident_id: str, kind: str, by: str, text: str, at: datetime) -> None:
        self.db.write(
            "INSERT INTO incident_notes (incident_id, at, kind, by, text) VALUES (?, ?, ?, ?, ?)",
            (incident_id, ts(at), kind, by, text),
        )

    def of(self, incident_id: str) -> list[NoteRecord]:
        rows = self.db.read(
            "SELECT incident_id, at, kind, by, text FROM incident_notes WHERE incident_id = ? "
            "ORDER BY at",
            (incident_id,),
        )
        return [NoteRecord(r[0], dt(r[1]), r[2], r[3], r[4]) for r in rows]

    def assignees(self, incident_ids: Iterable[str]) -> dict[str, str]:
        """Who each of these incidents is assigned to now (absent: nobody)."""
        ids = list(incident_ids)
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self.db.read(
            f"SELECT incident_id, at, text FROM incident_notes WHERE kind = 'assigned' "
            f"AND incident_id IN ({marks}) ORDER BY at",
            ids,
        )
        return {r[0]: r[2] for r in rows if r[2]}
