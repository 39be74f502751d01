"""Incident history as people read it, and what people decide about it (acks, silences):
shared by ``listener incidents|ack|silence`` and the HTTP API, in both modes.

An ack or a silence is written to the state, which the embedded daemon reads at its next
tick. In distributed mode the evaluators hold each brand's acks and silences in their own
state: they are told first (:class:`Evaluators`, the ``commands`` topic), then the state is
written, so that a failure between the two is healed by doing it again."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from listener.config.duration import format_duration
from listener.config.schema import Config
from listener.errors import Conflict as Conflict  # re-exported: the tree is in listener.errors
from listener.errors import InvalidRequest, ListenerError
from listener.errors import NotFound as NotFound
from listener.model import Ack, Explanation, Silence
from listener.rules.source_health import SOURCE_HEALTH
from listener.sinks.text import clean_line, driver_text, explanation_heading
from listener.store import IncidentRecord, Store


class Evaluators(Protocol):
    """Distributed mode's evaluators, told of what changes their decisions
    (:class:`listener.bus.publish.CommandsTopic`). Each raises (a ListenerError) when
    they could not be told; nothing is written then."""

    def acknowledged(self, brand: str, incident_id: str, ack: Ack) -> None: ...

    def silenced(self, silence: Silence) -> None: ...

    def expired(self, silence: Silence, at: datetime) -> None: ...


def _evaluators_hold(rule: str | None) -> bool:
    """Whether the evaluators decide what an ack or a silence of ``rule`` changes (any
    rule: None). Source health is checked by the collectors, which read acks and silences
    from the shared state (:mod:`listener.roles.sources`)."""
    return rule != SOURCE_HEALTH


def summary(
    record: IncidentRecord, store: Store, assignees: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """One incident as the API lists it (``assignees``: who has each, read already)."""
    ack = store.ack_log.get([record.id]).get(record.id)
    if assignees is None:
        assignees = store.notes.assignees([record.id])
    return {
        "id": record.id,
        "rule": record.rule,
        "brand": record.brand,
        "status": record.status,
        "level": record.level,
        "peak_level": record.peak_level,
        "opened_at": record.opened_at.isoformat(),
        "resolved_at": record.resolved_at.isoformat() if record.resolved_at else None,
        "acknowledged_by": ack.by if ack else None,
        "acknowledged_at": ack.at.isoformat() if ack else None,
        "acknowledged_note": ack.note if ack else None,
        "time_to_ack_seconds": (ack.at - record.opened_at).total_seconds() if ack else None,
        "drill": bool(store.incident_log.drill_ids([record.id])),
        "assignee": assignees.get(record.id),
    }


def listing(store: Store, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    records = store.incident_log.recent(status=status, limit=limit)
    assignees = store.notes.assignees([r.id for r in records])  # one read for the page
    return [summary(r, store, assignees) for r in records]


def find(store: Store, incident_id: str) -> IncidentRecord:
    """The incident with this id, or with the only id that starts with it (a person types
    ``20260302T0905``); NotFound when none does, InvalidRequest naming two when several
    do."""
    record = store.incident_log.get(incident_id)
    if record is not None:
        return record
    found = store.incident_log.starting_with(incident_id) if incident_id else []
    if not found:
        raise NotFound(f"no incident {incident_id[:200]!r}")
    if len(found) > 1:
        raise InvalidRequest(
            f"{incident_id!r} starts more than one incident id ({found[0]}, {found[1]}, ...): "
            "give more of it"
        )
    record = store.incident_log.get(found[0])
    if record is None:  # gone meanwhile
        raise NotFound(f"no incident {incident_id[:200]!r}")
    return record


def detail(
    store: Store, incident_id: str, config: Config | None = None, *, explain: bool = False
) -> dict[str, Any]:
    """An incident with its timeline, notifications, deliveries and notes; with
    ``explain``, also ``explanation``: why it spiked when it opened (``config`` gives the
    rule's window and the brand's own names; null for source-health incidents)."""
    record = find(store, incident_id)
    incident_id = record.id
    out = summary(record, store)
    if explain:
        out["explanation"] = _explanation(store, record, config)
    out["timeline"] = [
        {
            "seq": e.seq,
            "kind": e.kind,
            "level": e.level,
            "previous_level": e.previous_level,
            "at": e.at.isoformat(),
            "facts": [str(f) for f in e.facts],
        }
        for e in store.incident_log.events(incident_id)
    ]
    out["notifications"] = [
        {
            "alert_id": n.alert_id,
            "kind": n.kind,
            "level": n.level,
            "at": n.at.isoformat(),
            "sinks": list(n.sinks),
            "muted": n.muted,
        }
        for n in store.incident_log.notices(incident_id)
    ]
    out["deliveries"] = [
        {
            "alert_id": d.alert_id,
            "sink": d.sink,
            "status": d.status,
            "attempts": d.attempts,
            "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            "last_error": d.last_error,
        }
        for d in store.outbox.deliveries(incident_id)
    ]
    out["notes"] = [
        {"at": n.at.isoformat(), "kind": n.kind, "by": n.by, "text": n.text}
        for n in store.notes.of(incident_id)
    ]
    return out


MAX_NOTE = 2000
MAX_NAME = 200


def add_note(store: Store, incident_id: str, by: str, text: str, now: datetime) -> str:
    """Put a note on the incident's timeline (``statement posted 11:05``; open or
    resolved); the incident's id."""
    record = find(store, incident_id)
    by, text = _name(by, "by"), " ".join(text.split())
    if not text:
        raise InvalidRequest("text: say what happened", field="text")
    if len(text) > MAX_NOTE:
        raise InvalidRequest(f"text: at most {MAX_NOTE} characters", field="text")
    store.notes.add(record.id, "note", by, text, now)
    return record.id


def assign(store: Store, incident_id: str, to: str, by: str, now: datetime) -> str:
    """Give the incident to ``to`` (``by`` did), on its timeline; the incident's id."""
    record = find(store, incident_id)
    store.notes.add(record.id, "assigned", _name(by, "by"), _name(to, "to"), now)
    return record.id


def _name(text: str, field: str) -> str:
    name = " ".join(text.split())
    if not name:
        raise InvalidRequest(f"{field}: say who", field=field)
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"{field}: at most {MAX_NAME} characters", field=field)
    return name


def ackable(store: Store, incident_id: str, by: str) -> IncidentRecord:
    """The open incident ``by`` may acknowledge (its id, or the start of it: :func:`find`);
    NotFound or Conflict (with why) else."""
    record = find(store, incident_id)
    if record.status != "open":
        raise Conflict(f"incident {record.id} is {record.status}")
    if not by.strip():
        raise ListenerError("say who acknowledges (--by NAME)")
    existing = store.ack_log.get([record.id]).get(record.id)
    if existing is not None:
        raise Conflict(f"incident {record.id} was already acknowledged by {existing.by}")
    return record


def acknowledge(
    store: Store,
    incident_id: str,
    by: str,
    now: datetime,
    note: str = "",
    evaluators: Evaluators | None = None,
) -> str:
    """Record that ``by`` took the incident (its id, or the start of it); the daemon (or
    its evaluator, told first) announces it and stops reminders. The incident's id."""
    record = ackable(store, incident_id, by)
    if evaluators is not None and _evaluators_hold(record.rule):
        evaluators.acknowledged(record.brand, record.id, Ack(by.strip(), now, note))
    if not store.ack_log.add(record.id, by.strip(), now, note):
        existing = store.ack_log.get([record.id])[record.id]
        raise Conflict(f"incident {record.id} was already acknowledged by {existing.by}")
    return record.id


def add_silence(
    store: Store,
    *,
    now: datetime,
    duration: timedelta,
    by: str,
    comment: str,
    brand: str | None = None,
    rule: str | None = None,
    level: str | None = None,
    evaluators: Evaluators | None = None,
) -> Silence:
    """A new silence (:func:`new_silence`), the evaluators told, stored."""
    silence = new_silence(
        now=now,
        duration=duration,
        by=by,
        comment=comment,
        brand=brand,
        rule=rule,
        level=level,
    )
    if evaluators is not None and _evaluators_hold(silence.rule):
        evaluators.silenced(silence)
    store.silence_log.add(silence)
    return silence


def expire_silence(
    store: Store, silence_id: str, now: datetime, evaluators: Evaluators | None = None
) -> Silence:
    """End the active silence ``silence_id`` now (the evaluators told first); NotFound
    when no active silence has that id."""
    found = [s for s in store.silence_log.select(now) if s.id == silence_id]
    if not found:
        raise NotFound(f"no active silence {silence_id[:200]!r}")
    if evaluators is not None and _evaluators_hold(found[0].rule):
        evaluators.expired(found[0], now)
    store.silence_log.expire(silence_id, now)
    return found[0]


def new_silence(
    *,
    now: datetime,
    duration: timedelta,
    by: str,
    comment: str,
    brand: str | None = None,
    rule: str | None = None,
    level: str | None = None,
) -> Silence:
    """A silence from now for ``duration``, checked (a comment, who, a positive
    duration), with a new id."""
    if not comment.strip():
        raise ListenerError("a silence needs a comment saying why (--comment)")
    if not by.strip():
        raise ListenerError("say who silences (--by NAME)")
    if duration <= timedelta(0):
        raise ListenerError("a silence needs a positive duration (--for 2h)")
    silence = Silence(
        id=f"sil-{secrets.token_hex(4)}",
        starts_at=now,
        ends_at=now + duration,
        created_by=by.strip(),
        comment=comment.strip(),
        brand=brand,
        rule=rule,
        level=level,
    )
    return silence


def silence_dict(s: Silence, now: datetime) -> dict[str, Any]:
    return {
        "id": s.id,
        "brand": s.brand,
        "rule": s.rule,
        "level": s.level,
        "starts_at": s.starts_at.isoformat(),
        "ends_at": s.ends_at.isoformat(),
        "active": s.active(now),
        "created_by": s.created_by,
        "comment": s.comment,
    }


def render_silences(silences: list[dict[str, Any]]) -> str:
    """Silences (:func:`silence_dict`), a line each."""
    if not silences:
        return "no silences"
    lines = []
    for s in silences:
        state = "active" if s["active"] else "expired"
        match = (
            ", ".join(f"{k}={s[k]}" for k in ("brand", "rule", "level") if s.get(k)) or "everything"
        )
        until = s["ends_at"][:16].replace("T", " ")
        lines.append(
            f"{s['id']}  {state:<8} {match}  until {until}  by {s['created_by']}: {s['comment']}"
        )
    return "\n".join(lines)


def render_listing(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no incidents"
    lines = [f"{'incident':<48} {'status':<9} {'level':<9} {'peak':<9} {'opened':<20} ack"]
    for r in rows:
        opened = r["opened_at"][:16].replace("T", " ")
        ack = r["acknowledged_by"] or "-"
        lines.append(
            f"{r['id']:<48} {r['status']:<9} {r['level']:<9} {r['peak_level']:<9} "
            f"{opened:<20} {ack}" + ("  [DRILL]" if r.get("drill") else "")
        )
    return "\n".join(lines)


def _explanation(
    store: Store, record: IncidentRecord, config: Config | None
) -> dict[str, Any] | None:
    if record.rule == SOURCE_HEALTH:
        return None
    from listener.processor import explain_spike, rule_window

    rule = next((r for r in config.rules if r.name == record.rule), None) if config else None
    window = rule_window(rule) if rule is not None else timedelta(hours=1)
    found = explain_spike(store, config, record.brand, record.opened_at, window)
    return found.to_dict() if found is not None else None


def render_detail(d: dict[str, Any]) -> str:
    lines = [
        ("[DRILL] " if d.get("drill") else "") + f"{d['id']}  ({d['rule']} for {d['brand']})",
        f"  status {d['status']}, level {d['level']}, peak {d['peak_level']}",
        f"  opened {d['opened_at']}"
        + (f", resolved {d['resolved_at']}" if d["resolved_at"] else ""),
    ]
    if d["acknowledged_by"]:
        tta = format_duration(timedelta(seconds=int(d["time_to_ack_seconds"])))
        lines.append(
            f"  acknowledged by {d['acknowledged_by']} at {d['acknowledged_at']} "
            f"(time to acknowledge {tta})"
        )
        if d.get("acknowledged_note"):
            lines.append(f"  note: {clean_line(d['acknowledged_note'])}")
    if d.get("assignee"):
        lines.append(f"  assigned to {clean_line(d['assignee'])}")
    if d.get("explanation"):
        e = Explanation.from_dict(d["explanation"])
        lines.append(f"why it spiked ({explanation_heading(e)}):")
        lines += [f"  {driver_text(x)}" for x in e.drivers] or ["  nothing stands out"]
    lines.append("timeline:")
    entries = [
        (e["at"], f"  {e['at']}  {e['kind']:<12} {e['level']:<9} {'; '.join(e['facts'])}")
        for e in d["timeline"]
    ]
    entries += [
        (
            n["at"],
            f"  {n['at']}  {n['kind']:<12} {clean_line(n['by'])}: {clean_line(n['text'])}",
        )
        for n in d.get("notes", [])
    ]
    lines.extend(line for _, line in sorted(entries, key=lambda e: e[0]))
    lines.append("notifications:")
    for n in d["notifications"]:
        where = ", ".join(n["sinks"]) or "-"
        lines.append(
            f"  {n['at']}  {n['kind']:<12} → {where}"
            + (f"  (muted: {n['muted']})" if n["muted"] else "")
        )
    lines.append("deliveries:")
    lines.extend(
        f"  {x['alert_id']} → {x['sink']}: {x['status']} after {x['attempts']} attempt(s)"
        + (f" ({x['last_error']})" if x["last_error"] else "")
        for x in d["deliveries"]
    )
    return "\n".join(lines)


def sentence(
    *,
    brand: str,
    rule: str,
    level: str,
    status: str,
    lasted: timedelta,
    what: str | None,
    acknowledged_by: str | None,
) -> str:
    """One plain sentence on an incident, as a PR lead reads it on a phone: the brand,
    what the rule measured (``what``: the first fact), the level and for how long (or
    after how long it resolved), and whether anyone has it."""
    span = human_span(max(60, int(lasted.total_seconds())))
    state = f"resolved after {span}" if status != "open" else f"{level} level for {span}"
    who = f"acknowledged by {acknowledged_by}" if acknowledged_by else "not yet acknowledged"
    return f"{brand}: {what or f'rule {rule} holds'}; {state}; {who}."


def human_span(seconds: int) -> str:
    """``42 min``, ``3 h 5 min``, ``2 d``: how long, as people say it."""
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d"
