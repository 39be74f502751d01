"""The ``alerts`` topic's messages: an alert with its sinks, and what the deliver role
records of it in the shared state (the rule engine's event behind it, the notification
policy's notice). Apart from :mod:`listener.bus` so that reading the bus's settings needs
nothing of the rules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from listener.bus import FORMAT, _describe, decode_alert, instant
from listener.clock import as_utc
from listener.errors import MessageError
from listener.model import Alert, Fact
from listener.rules.engine import IncidentEvent
from listener.rules.notify import Notice

if TYPE_CHECKING:
    from listener.processor import Evaluated

__all__ = ["AlertRecord", "alert_message", "alert_messages", "decode_record"]


def alert_message(
    alert: Alert,
    sinks: Sequence[str],
    *,
    event: IncidentEvent | None = None,
    notice: Notice | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The value of an alert's message: the alert and the sinks it is routed to, and what
    the deliver role records of it in the shared state: the engine's ``event`` behind it
    (none for a reminder, an acknowledgement or a hand-off) and the policy's ``notice``,
    made at ``at`` (the evaluation's instant)."""
    out: dict[str, Any] = {"v": FORMAT, "alert": alert.to_dict(), "sinks": list(sinks)}
    if event is not None:
        out["event"] = {
            "kind": event.kind,
            "incident_id": event.incident_id,
            "seq": event.seq,
            "rule": event.rule,
            "brand": event.brand,
            "level": event.level,
            "previous_level": event.previous_level,
            "peak_level": event.peak_level,
            "at": as_utc(event.at).isoformat(),
            "facts": [
                {"name": f.name, "value": f.value, "threshold": f.threshold, "baseline": f.baseline}
                for f in event.facts
            ],
        }
    if notice is not None and at is not None:
        out["notice"] = {
            "alert_id": notice.alert_id,
            "kind": notice.kind,
            "incident_id": notice.incident_id,
            "level": notice.level,
            "sinks": list(notice.sinks),
            "muted": notice.muted,
            "at": as_utc(at).isoformat(),
        }
    return out


def alert_messages(decided: Evaluated, at: datetime) -> list[dict[str, Any]]:
    """The messages of what one evaluation at ``at`` decided, one per alert, in order: the
    first ones carry the engine's events, each carries its notice."""
    events = decided.events
    return [
        alert_message(
            alert, sinks, event=events[i] if i < len(events) else None, notice=notice, at=at
        )
        for i, ((alert, sinks), notice) in enumerate(
            zip(decided.alerts, decided.notices, strict=True)
        )
    ]


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """What an alert message carries (:func:`decode_record`)."""

    alert: Alert
    sinks: tuple[str, ...]
    event: IncidentEvent | None
    notice: Notice | None
    at: datetime
    """When the evaluation made it (the notice's stamp; the alert's time without one)."""


def decode_record(value: bytes | str) -> AlertRecord:
    """Everything an alert message carries; :class:`MessageError` when it is not one, or
    its event or notice is not the alert's."""
    alert, sinks = decode_alert(value)
    data = json.loads(value)
    event: IncidentEvent | None = None
    notice: Notice | None = None
    at = alert.at
    try:
        if (e := data.get("event")) is not None:
            event = IncidentEvent(
                kind=e["kind"],
                incident_id=str(e["incident_id"]),
                seq=int(e["seq"]),
                rule=str(e["rule"]),
                brand=str(e["brand"]),
                level=str(e["level"]),
                previous_level=e["previous_level"],
                peak_level=str(e["peak_level"]),
                at=instant(e["at"], "alert event"),
                facts=tuple(Fact(**f) for f in e["facts"]),
            )
        if (n := data.get("notice")) is not None:
            at = instant(n["at"], "alert notice")
            notice = Notice(
                alert_id=str(n["alert_id"]),
                kind=n["kind"],
                incident_id=str(n["incident_id"]),
                level=str(n["level"]),
                sinks=tuple(str(x) for x in n["sinks"]),
                muted=n["muted"],
            )
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise MessageError(f"alert: {_describe(exc)}") from None
    if event is not None and event.alert_id != alert.id:
        raise MessageError(f"alert: event {event.alert_id} is not alert {alert.id}'s")
    if notice is not None and notice.alert_id != alert.id:
        raise MessageError(f"alert: notice {notice.alert_id} is not alert {alert.id}'s")
    return AlertRecord(alert, sinks, event, notice, at)
