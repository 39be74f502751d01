"""Source-health incidents: a source that keeps failing, or goes silent, is an incident.

A listener that silently stops listening is the worst failure of this product, so
a source's trouble goes through the same incident lifecycle, outbox and routes as a
brand crisis. Pure: the daemon hands in each source's status and ``now``.

Keys live in the engine state under the rule name :data:`SOURCE_HEALTH`, with the
source name in the brand position.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from listener.config.duration import format_duration
from listener.config.schema import SourceHealthConfig
from listener.model import Fact
from listener.rules.engine import EventKind, IncidentEvent, incident_id
from listener.rules.state import EngineState, Incident, KeyState

SOURCE_HEALTH = "source-health"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What the daemon knows about one source. ``since`` is when watching began
    (daemon start or the source's addition), the reference before any success."""

    since: datetime
    last_success_at: datetime | None = None
    last_new_at: datetime | None = None
    last_error: str | None = None
    """The last poll's error message (None after a success)."""
    failures: int = 0
    """Failed polls in a row."""


_WHERE = re.compile(r"^(?P<url>[a-z][a-z0-9+.-]*://\S+)(?: \(redirected to \S+\))?: (?P<what>.*)$")
_HTTP = re.compile(r"^(?P<head>(?:unexpected )?HTTP \d{3})\b[ ,]*(?P<rest>.*)$")
_CLASS = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Timeout)\b(?::\s*)?")


def plain_error(message: str) -> str:
    """A collector's error message in plain words, as a person reads it in an alert:
    ``https://feeds.example.com/rss: HTTP 503`` → ``HTTP 503 from feeds.example.com``;
    ``…: timed out after 10s`` → ``timed out after 10s (feeds.example.com)``; library
    class names (``ConnectError:``, ``(ReadTimeout)``) are left out. Pure."""
    text = " ".join(message.split())
    host = ""
    where = _WHERE.match(text)
    if where:
        host = urlsplit(where["url"]).hostname or ""
        text = where["what"]
    text = _CLASS.sub("", text)
    text = re.sub(r"\(\s*\)|\[Errno -?\d+\]", "", text)
    text = " ".join(text.split()).strip(" :,;") or "unexpected error"
    http = _HTTP.match(text)
    if http and host:
        rest = http["rest"].strip()
        return f"{http['head']} from {host}" + (f" ({rest})" if rest else "")
    return f"{text} ({host})" if host else text


def _facts(
    status: SourceStatus, policy: SourceHealthConfig, now: datetime
) -> tuple[bool, tuple[Fact, ...]]:
    failing_for = now - (status.last_success_at or status.since)
    facts = [
        Fact(
            f"minutes since the last successful poll (alert after "
            f"{format_duration(policy.failing_after)})",
            round(failing_for.total_seconds() / 60, 1),
            threshold=policy.failing_after.total_seconds() / 60,
        )
    ]
    unhealthy = failing_for >= policy.failing_after
    if status.last_error and status.failures:
        facts.append(
            Fact(
                f"failed polls in a row (last error: {plain_error(status.last_error)})",
                float(status.failures),
            )
        )
    if policy.silent_after is not None:
        silent_for = now - (status.last_new_at or status.since)
        facts.append(
            Fact(
                f"minutes since the last new mention (alert after "
                f"{format_duration(policy.silent_after)})",
                round(silent_for.total_seconds() / 60, 1),
                threshold=policy.silent_after.total_seconds() / 60,
            )
        )
        unhealthy = unhealthy or silent_for >= policy.silent_after
    return unhealthy, tuple(facts)


def evaluate_sources(
    statuses: Mapping[str, SourceStatus],
    policies: Mapping[str, SourceHealthConfig],
    state: EngineState,
    now: datetime,
) -> tuple[EngineState, list[IncidentEvent]]:
    """Open an incident for each unhealthy source; resolve it once the source is healthy.

    The incident's level is the policy's ``level``. Sources no longer configured keep
    their state untouched (the caller may prune).
    """
    updates: dict[tuple[str, str], KeyState] = {}
    events: list[IncidentEvent] = []
    for name, status in statuses.items():
        policy = policies[name]
        unhealthy, facts = _facts(status, policy, now)
        key = state.get(SOURCE_HEALTH, name)
        incident = key.incident
        if unhealthy and incident is None:
            opened = Incident(
                id=incident_id(now, SOURCE_HEALTH, name),
                level=policy.level,
                peak_level=policy.level,
                opened_at=now,
                level_since=now,
            )
            updates[(SOURCE_HEALTH, name)] = KeyState(key.timers, opened)
            events.append(_event("opened", opened, name, None, now, facts))
        elif not unhealthy and incident is not None:
            closed = replace(incident, seq=incident.seq + 1, clear_since=now)
            updates[(SOURCE_HEALTH, name)] = KeyState(key.timers, None)
            events.append(_event("resolved", closed, name, incident.level, now, facts))
    return (state.with_keys(updates) if updates else state), events


def _event(
    kind: EventKind,
    incident: Incident,
    source: str,
    previous: str | None,
    now: datetime,
    facts: tuple[Fact, ...],
) -> IncidentEvent:
    return IncidentEvent(
        kind=kind,
        incident_id=incident.id,
        seq=incident.seq,
        rule=SOURCE_HEALTH,
        brand=source,
        level=incident.level,
        previous_level=previous,
        peak_level=incident.peak_level,
        at=now,
        facts=facts,
    )
