"""Who hears what, and when: the notification policy on top of incident events.

Pure: given incident events, the open incidents' notification state, silences,
acknowledgements and ``now``, it decides which sinks each alert goes to, which alerts
are muted (and why), and which time-driven alerts are due:

* **routes**: ``opened``/``escalated``/``reminder`` go to the level's route; follow-ups
  (``deescalated``, ``acknowledged``, ``resolved``) go to every sink that already heard
  about the incident, so whoever was paged hears that it is over;
* **silences** (with expiry and a comment) mute matching alerts; the muted alert is
  recorded, and when the silence ends while the incident is still open and unheard, a
  catch-up reminder goes out;
* **inhibition**: while a brand has an incident at a ``source`` level, its alerts at
  ``target`` levels from other incidents are muted;
* **reminders** every ``repeat_every`` while an incident is open and unacknowledged; a
  reminder due while silenced or inhibited is recorded as muted (once per interval), so
  the incident's history and ``listener_alerts_muted_total`` show it;
* **time-based escalation**: unacknowledged at a level for ``after`` → hand off to the
  step's route (social team → PR lead → exec);
* **acknowledgement** stops reminders and hand-offs and is announced once.

Alert ids are deterministic (``<incident>#<seq>``, ``<incident>#reminder-<n>``,
``<incident>#handoff-<n>``, ``<incident>#ack``) so a replay after a crash enqueues
nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from listener.errors import BrandHeld
from listener.model import Ack, AlertKind, Silence

FOLLOW_UPS = frozenset({"deescalated", "acknowledged", "resolved"})


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: frozenset[str]
    target: frozenset[str]


@dataclass(frozen=True, slots=True)
class Step:
    after: timedelta
    route: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tracked:
    """What has been said about one open incident."""

    incident_id: str
    rule: str
    brand: str
    level: str
    opened_at: datetime
    level_since: datetime
    heard: tuple[str, ...] = ()
    """Sinks that received at least one alert of this incident."""
    last_sent_at: datetime | None = None
    reminders: int = 0
    handoffs: int = 0
    """Escalation steps done at the current level (restarts when the level changes)."""
    pages: int = 0
    """Hand-offs sent over the incident's whole life (numbers their alert ids)."""
    ack: Ack | None = None
    muted_at: datetime | None = None
    """When a reminder was last recorded as muted (one per interval while muted)."""


@dataclass(frozen=True, slots=True)
class NotifyState:
    incidents: Mapping[str, Tracked] = field(default_factory=dict)

    def brands(self) -> set[str]:
        """The brands with at least one tracked incident."""
        return {t.brand for t in self.incidents.values()}

    def split_brand(self, brand: str) -> tuple[NotifyState, NotifyState]:
        """``(part, rest)``: the tracked incidents of ``brand``, and the others (``rest``
        is ``self`` when ``brand`` has none)."""
        part = {k: t for k, t in self.incidents.items() if t.brand == brand}
        if not part:
            return NotifyState(), self
        return NotifyState(part), NotifyState(
            {k: t for k, t in self.incidents.items() if t.brand != brand}
        )

    def merge_brands(self, part: NotifyState) -> NotifyState:
        """A new state with the incidents of ``part`` added; :class:`BrandHeld` when a
        brand of ``part`` already has a tracked incident here, or an incident id is taken."""
        if not part.incidents:
            return self
        clash = sorted(part.brands() & self.brands())
        if clash:
            raise BrandHeld(
                f"notification state already tracks incidents of {', '.join(map(repr, clash))}:"
                " a brand's state can be merged only where the brand has none"
            )
        taken = sorted(part.incidents.keys() & self.incidents.keys())
        if taken:
            raise BrandHeld(f"notification state already tracks incident {taken[0]!r}")
        return NotifyState({**self.incidents, **part.incidents})

    def to_json(self) -> str:
        def dump(t: Tracked) -> dict[str, Any]:
            return {
                "rule": t.rule,
                "brand": t.brand,
                "level": t.level,
                "opened_at": t.opened_at.isoformat(),
                "level_since": t.level_since.isoformat(),
                "heard": list(t.heard),
                "last_sent_at": t.last_sent_at.isoformat() if t.last_sent_at else None,
                "reminders": t.reminders,
                "handoffs": t.handoffs,
                "pages": t.pages,
                "muted_at": t.muted_at.isoformat() if t.muted_at else None,
                "ack": None
                if t.ack is None
                else {"by": t.ack.by, "at": t.ack.at.isoformat(), "note": t.ack.note},
            }

        return json.dumps(
            {"version": 1, "incidents": {k: dump(v) for k, v in sorted(self.incidents.items())}}
        )

    @classmethod
    def from_json(cls, text: str) -> NotifyState:
        data = json.loads(text)
        out: dict[str, Tracked] = {}
        for key, t in data.get("incidents", {}).items():
            ack = t.get("ack")
            out[key] = Tracked(
                incident_id=key,
                rule=t["rule"],
                brand=t["brand"],
                level=t["level"],
                opened_at=datetime.fromisoformat(t["opened_at"]),
                level_since=datetime.fromisoformat(t["level_since"]),
                heard=tuple(t.get("heard", ())),
                last_sent_at=datetime.fromisoformat(t["last_sent_at"])
                if t.get("last_sent_at")
                else None,
                reminders=int(t.get("reminders", 0)),
                handoffs=int(t.get("handoffs", 0)),
                # saved before pages were: the current level's hand-offs are a lower bound
                pages=int(t.get("pages", t.get("handoffs", 0))),
                muted_at=datetime.fromisoformat(t["muted_at"]) if t.get("muted_at") else None,
                ack=Ack(ack["by"], datetime.fromisoformat(ack["at"]), ack.get("note", ""))
                if ack
                else None,
            )
        return cls(out)


@dataclass(frozen=True, slots=True)
class Notice:
    """One alert to enqueue (or to record as muted)."""

    alert_id: str
    kind: AlertKind
    incident_id: str
    level: str
    sinks: tuple[str, ...]
    muted: str | None = None
    """Why nothing is sent: ``silenced <id>``, ``inhibited by <incident>``, ``nobody heard``."""
    route: tuple[str, ...] = ()
    ack: Ack | None = None


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """An incident event, as the policy needs it."""

    alert_id: str
    kind: AlertKind
    incident_id: str
    rule: str
    brand: str
    level: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Policy:
    """``route(rule, level)`` gives a level's sinks; ``steps(rule, level)`` its escalation
    steps; ``repeat(rule)`` its reminder interval (None: no reminders)."""

    route: Callable[[str, str], Sequence[str]]
    steps: Callable[[str, str], Sequence[Step]] = lambda rule, level: ()
    repeat: Callable[[str], timedelta | None] = lambda rule: None
    inhibit: Sequence[InhibitRule] = ()


def _muted(
    brand: str,
    rule: str,
    level: str,
    incident_id: str,
    state: NotifyState,
    silences: Iterable[Silence],
    policy: Policy,
    now: datetime,
) -> str | None:
    for silence in silences:
        if silence.active(now) and silence.matches(brand, rule, level):
            return f"silenced {silence.id}"
    for other in state.incidents.values():
        if other.brand != brand or other.incident_id == incident_id:
            continue
        for inhibit in policy.inhibit:
            if other.level in inhibit.source and level in inhibit.target:
                return f"inhibited by {other.incident_id}"
    return None


def _send(tracked: Tracked, sinks: Sequence[str], now: datetime, *, remind: bool = True) -> Tracked:
    """Record who heard; ``remind`` restarts the reminder clock (hand-offs do not)."""
    heard = tuple(dict.fromkeys([*tracked.heard, *sinks]))
    last = now if sinks and remind else tracked.last_sent_at
    return replace(tracked, heard=heard, last_sent_at=last)


def on_changes(
    changes: Sequence[IncidentChange],
    state: NotifyState,
    silences: Sequence[Silence],
    policy: Policy,
    now: datetime,
) -> tuple[NotifyState, list[Notice]]:
    """Decide the sinks of each incident event's alert."""
    incidents = dict(state.incidents)
    notices: list[Notice] = []
    for ch in changes:
        tracked = incidents.get(ch.incident_id)
        if tracked is None:
            tracked = Tracked(ch.incident_id, ch.rule, ch.brand, ch.level, ch.at, ch.at)
        elif ch.kind in ("escalated", "deescalated"):
            tracked = replace(tracked, level=ch.level, level_since=ch.at, handoffs=0)
        current = NotifyState(incidents)
        if ch.kind in FOLLOW_UPS:
            sinks = tracked.heard
            muted = None if sinks else "nobody heard"
        else:
            sinks = tuple(policy.route(ch.rule, ch.level))
            muted = _muted(
                ch.brand, ch.rule, ch.level, ch.incident_id, current, silences, policy, now
            )
        sent = () if muted else tuple(sinks)
        notices.append(
            Notice(ch.alert_id, ch.kind, ch.incident_id, ch.level, sent, muted, tuple(sinks))
        )
        tracked = _send(tracked, sent, now)
        if ch.kind == "resolved":
            incidents.pop(ch.incident_id, None)
        else:
            incidents[ch.incident_id] = tracked
    return NotifyState(incidents), notices


def on_tick(
    state: NotifyState,
    silences: Sequence[Silence],
    acks: Mapping[str, Ack],
    policy: Policy,
    now: datetime,
) -> tuple[NotifyState, list[Notice]]:
    """Acknowledgements, hand-offs, reminders and catch-ups due at ``now``."""
    incidents = dict(state.incidents)
    notices: list[Notice] = []
    for key in sorted(incidents):
        t = incidents[key]
        ack = acks.get(key)
        if ack is not None and t.ack is None:
            t = replace(t, ack=ack)
            notices.append(
                Notice(
                    f"{key}#ack",
                    "acknowledged",
                    key,
                    t.level,
                    t.heard,
                    None if t.heard else "nobody heard",
                    t.heard,
                    ack,
                )
            )
        if t.ack is None:
            steps = policy.steps(t.rule, t.level)
            while t.handoffs < len(steps) and now - t.level_since >= steps[t.handoffs].after:
                step = steps[t.handoffs]
                t = replace(t, handoffs=t.handoffs + 1, pages=t.pages + 1)
                muted = _muted(
                    t.brand, t.rule, t.level, key, NotifyState(incidents), silences, policy, now
                )
                sent = () if muted else step.route
                notices.append(
                    Notice(
                        f"{key}#handoff-{t.pages}",
                        "handoff",
                        key,
                        t.level,
                        sent,
                        muted,
                        step.route,
                    )
                )
                t = _send(t, sent, now, remind=False)
            route = tuple(policy.route(t.rule, t.level))
            muted = _muted(
                t.brand, t.rule, t.level, key, NotifyState(incidents), silences, policy, now
            )
            every = policy.repeat(t.rule)
            due = (
                any(s not in t.heard for s in route)  # muted so far: catch up once unmuted
                or (
                    every is not None
                    and t.last_sent_at is not None
                    and now - t.last_sent_at >= every
                )
            )
            if due and not muted and route:
                t = replace(t, reminders=t.reminders + 1)
                notices.append(
                    Notice(
                        f"{key}#reminder-{t.reminders}",
                        "reminder",
                        key,
                        t.level,
                        route,
                        None,
                        route,
                    )
                )
                t = _send(t, route, now)
            elif muted and route and every is not None:
                t, muted_reminder = _muted_reminder(t, route, muted, every, now)
                notices.extend(muted_reminder)
        incidents[key] = t
    return NotifyState(incidents), notices


def next_tick(
    state: NotifyState, policy: Policy, silences: Iterable[Silence], ticked: datetime
) -> datetime | None:
    """The earliest time after ``ticked`` (when :func:`on_tick` last ran, leaving
    ``state``) at which it can send or record anything while no incident changes and no
    acknowledgement or silence is added: the next hand-off, reminder or record of a muted
    reminder, or, while an incident is tracked unacknowledged, the start or end of one of
    ``silences`` (which may unmute a reminder or a catch-up held back). None when nothing
    is due by time alone. A time due at or before ``ticked`` that :func:`on_tick` did not
    act on was held back by a mute, which only those changes lift."""
    times: list[datetime] = []
    waiting = False
    for t in state.incidents.values():
        if t.ack is not None:  # acknowledged: nothing more is sent by time
            continue
        waiting = True
        steps = policy.steps(t.rule, t.level)
        if t.handoffs < len(steps):
            times.append(t.level_since + steps[t.handoffs].after)
        every = policy.repeat(t.rule)
        if every is not None and policy.route(t.rule, t.level):
            if t.last_sent_at is not None:
                times.append(t.last_sent_at + every)
            since = t.last_sent_at or t.opened_at
            times.append((since if t.muted_at is None else max(since, t.muted_at)) + every)
    if waiting:
        for silence in silences:
            times += (silence.starts_at, silence.ends_at)
    return min((at for at in times if at > ticked), default=None)


def _muted_reminder(
    t: Tracked, route: tuple[str, ...], muted: str, every: timedelta, now: datetime
) -> tuple[Tracked, list[Notice]]:
    """A reminder that falls due while muted, recorded (no sinks) once per interval.

    Due ``every`` after the last alert that went out (the opening, for an incident muted
    from the start) and after the last muted one. The reminder clock itself does not
    move: once the mute ends, the reminder goes out at once."""
    since = t.last_sent_at or t.opened_at
    if t.muted_at is not None:
        since = max(since, t.muted_at)
    if now - since < every:
        return t, []
    t = replace(t, reminders=t.reminders + 1, muted_at=now)
    notice = Notice(
        f"{t.incident_id}#reminder-{t.reminders}",
        "reminder",
        t.incident_id,
        t.level,
        (),
        muted,
        route,
    )
    return t, [notice]
