"""The Opsgenie sink: Alert API v2, one Opsgenie alert per incident.

:func:`render_calls` is pure and maps an alert onto the API calls for it, the incident
id being the Opsgenie **alias** (Opsgenie keeps one open alert per alias):

- ``opened``, ``reminder``, ``handoff``: create (``POST /v2/alerts``: ``message`` = the
  title, ``alias``, ``description`` = the facts, **Why**, the top mentions and the
  acknowledgement as text, ``priority``, ``tags``, ``details``, ``entity`` = brand,
  ``source`` ``listener``, and a ``note`` saying what happened). A create for an alias
  that is open only raises that alert's count: never a second page.
- ``escalated``: create, then set the priority (``PUT
  /v2/alerts/{alias}/priority?identifierType=alias``): a create for an open alias does
  not change its priority.
- ``deescalated``: set the priority only. A create could open a *new* alert (a new page)
  when a person closed the old one in Opsgenie meanwhile, as PagerDuty's sink avoids too.
- ``acknowledged``: ``POST /v2/alerts/{alias}/acknowledge?identifierType=alias`` (who and
  their note); ``resolved``: ``POST /v2/alerts/{alias}/close?identifierType=alias``.

Priority: the level's entry in ``priorities``, else by the level's name (crisis/critical
P1, high/elevated P2, watch/warning P3, low/info P4; any other name P3).

Answers: Opsgenie answers 202 (``{"result": "Request will be processed", ...}``) and
processes the request later; any 2xx is delivered. 429, 408, 5xx, timeouts and transport
errors → :class:`~listener.errors.SinkUnavailable` (``retry_after`` from
``Retry-After``); 401, 403, 422 and any other answer →
:class:`~listener.errors.SinkRejected` with Opsgenie's ``message``. The API key is a
header value only: no error message produced here contains it.

**Idempotency.** Creates are harmless to repeat (the alias), and acknowledging or closing
twice changes nothing; the sink still keeps ``done:<idempotency key>`` in its durable
state (checked before, set after every call of the alert succeeded), so a retried alert
sends nothing once it went through.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any, Final, Literal
from urllib.parse import quote

import httpx

from listener.clock import Clock
from listener.config.schema import OpsgeniePriority, OpsgenieSinkConfig
from listener.errors import SinkRejected, SinkUnavailable
from listener.model import Alert, MentionRef
from listener.sinks.base import SinkContext
from listener.sinks.http import raise_for_status, request, sink_client
from listener.sinks.text import (
    clean_line,
    driver_text,
    excerpt,
    explanation_heading,
    fit_lines,
    one_line,
)
from listener.sinks.webhook import make_test_alert

ALERTS_PATH: Final = "/v2/alerts"
SOURCE: Final = "listener"
MAX_MESSAGE: Final = 130
MAX_ALIAS: Final = 512
MAX_DESCRIPTION: Final = 15000
MAX_NOTE: Final = 25000
MAX_USER: Final = 100
MAX_ENTITY: Final = 512
MAX_TAGS: Final = 20
MAX_TAG: Final = 50
MAX_DETAILS: Final = 8000
"""Opsgenie's limit on ``details``: keys and values together, in characters."""
MAX_MENTIONS: Final = 5
EXCERPT_CHARS: Final = 280

_PRIORITY_NAMES: Final[tuple[tuple[OpsgeniePriority, frozenset[str]], ...]] = (
    ("P1", frozenset({"crisis", "critical", "severe", "emergency", "sev1", "p1"})),
    ("P2", frozenset({"high", "elevated", "major", "error", "sev2", "p2"})),
    ("P3", frozenset({"watch", "warning", "warn", "medium", "moderate", "sev3", "p3"})),
    ("P4", frozenset({"low", "info", "minor", "notice", "sev4", "p4"})),
    ("P5", frozenset({"test", "sev5", "p5"})),
)
DEFAULT_PRIORITY: Final[OpsgeniePriority] = "P3"

Action = Literal["create", "priority", "acknowledge", "close"]


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One Alert API request: ``method`` on ``path`` (under ``api_url``, with its query)
    with the JSON ``body``; ``action`` names it in errors."""

    action: Action
    method: Literal["POST", "PUT"]
    path: str
    body: dict[str, Any]


def alias_for(incident_id: str) -> str:
    """The Opsgenie alias of an incident: its id, or ``listener:<sha256 hex>`` of it when
    longer than 512 characters. Pure and stable across restarts."""
    if len(incident_id) <= MAX_ALIAS:
        return incident_id
    return "listener:" + hashlib.sha256(incident_id.encode("utf-8")).hexdigest()


def priority_for(
    level: str, priorities: Mapping[str, OpsgeniePriority] | None = None
) -> OpsgeniePriority:
    """The Opsgenie priority of ``level``: the configured one, else by its name (any
    case): crisis/critical P1, high/elevated P2, watch/warning P3, low/info P4, test P5,
    anything else P3."""
    if priorities and level in priorities:
        return priorities[level]
    name = level.strip().lower()
    return next((p for p, names in _PRIORITY_NAMES if name in names), DEFAULT_PRIORITY)


def _mention_lines(index: int, ref: MentionRef) -> list[str]:
    who = f"@{clean_line(ref.author).lstrip('@')}" if ref.author else "unknown author"
    if ref.followers is not None:
        who += f" ({ref.followers:,} followers)"
    lines = [f"{index}. “{excerpt(ref.text, EXCERPT_CHARS)}” — {who} · {clean_line(ref.source)}"]
    if ref.url and ref.url.lower().startswith(("https://", "http://")):
        lines.append(f"   link: {excerpt(ref.url, 1000)}")
    return lines


def render_description(alert: Alert) -> str:
    """The alert's ``description`` as plain text (pure), at most 15000 characters: level,
    brand, rule, the summary, the facts, why it spiked (drivers with example links), the
    top mentions with their links, the acknowledgement, the route and the ids."""
    level = alert.level
    if alert.previous_level is not None and alert.previous_level != alert.level:
        level += f" (was {alert.previous_level})"
    lines = []
    if alert.drill:
        lines.append("DRILL: this is a test alert, no action needed")
    lines.append(f"Level {level} · brand {alert.brand} · rule {alert.rule}")
    if alert.summary.strip():
        lines += ["", alert.summary]
    if alert.facts:
        lines += ["", "The numbers", *(f"- {f}" for f in alert.facts)]
    e = alert.explanation
    if e is not None:
        lines += ["", f"Why: {explanation_heading(e)}"]
        for d in e.drivers:
            url = d.example.url if d.example is not None else None
            link = f" — example: {url}" if url and url.lower().startswith("http") else ""
            lines.append(f"- {driver_text(d)}{link}")
    if alert.top_mentions:
        lines += ["", "Top mentions"]
        for i, ref in enumerate(alert.top_mentions[:MAX_MENTIONS], 1):
            lines += _mention_lines(i, ref)
    if alert.ack is not None:
        note = f": “{alert.ack.note}”" if alert.ack.note else ""
        lines += ["", f"Acknowledged by {alert.ack.by}{note}"]
    if alert.route:
        lines.append("Route: " + " → ".join(alert.route))
    at = alert.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines += ["", f"Incident {alert.incident_id} · alert {alert.id} · {at}"]
    return fit_lines([excerpt(x, 2000) if x else "" for x in lines], MAX_DESCRIPTION)


def render_details(alert: Alert) -> dict[str, str]:
    """``details`` (string values, as Opsgenie wants them; pure): ids, kind, brand, rule,
    level, time, drill, the facts and the top mentions' links; values are cut so that
    keys and values together stay within 8000 characters."""
    pairs: list[tuple[str, str]] = [
        ("incident_id", alert.incident_id),
        ("alert_id", alert.id),
        ("kind", alert.kind),
        ("brand", alert.brand),
        ("rule", alert.rule),
        ("level", alert.level),
        ("at", alert.at.isoformat()),
        ("drill", "true" if alert.drill else "false"),
    ]
    if alert.opened_at is not None:
        pairs.append(("opened_at", alert.opened_at.isoformat()))
    if alert.ack is not None:
        pairs.append(("acknowledged_by", alert.ack.by))
    pairs += [(f"fact_{i}", str(f)) for i, f in enumerate(alert.facts, 1)]
    links = [m.url for m in alert.top_mentions if m.url and m.url.startswith("http")]
    pairs += [(f"mention_{i}", url) for i, url in enumerate(links[:MAX_MENTIONS], 1)]
    details: dict[str, str] = {}
    room = MAX_DETAILS
    for key, value in pairs:
        text = excerpt(value, max(0, min(1000, room - len(key))))
        if room - len(key) - len(text) < 0 or not text:
            break
        details[key] = text
        room -= len(key) + len(text)
    return details


def _tags(alert: Alert, extra: Sequence[str]) -> list[str]:
    tags = [*extra, SOURCE, f"brand:{alert.brand}", f"rule:{alert.rule}", f"level:{alert.level}"]
    if alert.drill:
        tags.append("drill")
    unique = dict.fromkeys(one_line(t.replace(",", " "), MAX_TAG) for t in tags)
    return [t for t in unique if t][:MAX_TAGS]


def _note(alert: Alert) -> str | None:
    if alert.kind == "escalated":
        return f"Escalated to {alert.level} (was {alert.previous_level or 'lower'})"
    if alert.kind == "reminder":
        return f"Still {alert.level} and not acknowledged"
    if alert.kind == "handoff":
        route = " → ".join(alert.route) or "the next route"
        return f"Not acknowledged in time: escalating to {route}"
    return None


def _path(alias: str, action: str) -> str:
    return f"{ALERTS_PATH}/{quote(alias, safe='')}/{action}?identifierType=alias"


def render_calls(
    alert: Alert,
    *,
    priorities: Mapping[str, OpsgeniePriority] | None = None,
    tags: Sequence[str] = (),
) -> list[ApiCall]:
    """The Alert API calls for ``alert``, in order (pure); see the module docstring."""
    alias = alias_for(alert.incident_id)
    priority = priority_for(alert.level, priorities)
    set_priority = ApiCall("priority", "PUT", _path(alias, "priority"), {"priority": priority})
    if alert.kind == "deescalated":
        return [set_priority]
    if alert.kind == "acknowledged":
        body: dict[str, Any] = {"source": SOURCE, "user": SOURCE}
        if alert.ack is not None:
            body["user"] = one_line(alert.ack.by, MAX_USER) or SOURCE
            if alert.ack.note:
                body["note"] = one_line(alert.ack.note, MAX_NOTE)
        return [ApiCall("acknowledge", "POST", _path(alias, "acknowledge"), body)]
    if alert.kind == "resolved":
        body = {"source": SOURCE, "user": SOURCE, "note": "Resolved in listener: all clear"}
        return [ApiCall("close", "POST", _path(alias, "close"), body)]
    create: dict[str, Any] = {
        "message": one_line(alert.title, MAX_MESSAGE),
        "alias": alias,
        "description": render_description(alert),
        "priority": priority,
        "tags": _tags(alert, tags),
        "details": render_details(alert),
        "entity": one_line(alert.brand, MAX_ENTITY),
        "source": SOURCE,
    }
    note = _note(alert)
    if note is not None:
        create["note"] = one_line(note, MAX_NOTE)
    calls = [ApiCall("create", "POST", ALERTS_PATH, create)]
    if alert.kind == "escalated":
        calls.append(set_priority)
    return calls


class OpsgenieSink:
    """Sends :func:`render_calls` requests to ``{api_url}/v2/alerts…`` with
    ``Authorization: GenieKey <api_key>`` over one shared ``httpx.AsyncClient``
    (``config.timeout`` for the whole request; at most 1 MiB of an answer is read;
    redirects are not followed). ``context.state`` keeps the done-markers; ``transport``
    replaces the network layer (tests). Call :meth:`aclose` when done."""

    def __init__(
        self,
        name: str,
        config: OpsgenieSinkConfig,
        *,
        context: SinkContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        context = context if context is not None else SinkContext()
        self._state = context.state
        self._clock: Clock = context.clock
        self._key = config.api_key.get_secret_value()
        self._base = config.api_url.rstrip("/")
        self._priorities: dict[str, OpsgeniePriority] = dict(config.priorities)
        self._tags = tuple(config.tags)
        self._timeout = config.timeout.total_seconds()
        self._client = sink_client(
            self._timeout, transport, {"Authorization": f"GenieKey {self._key}"}
        )

    def _label(self) -> str:
        return f"opsgenie sink '{self.name}'"

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """Make the alert's calls, once per ``idempotency_key``; raise a SinkError when
        one fails (a retry makes them all again: each is harmless to repeat)."""
        done = f"done:{idempotency_key}"
        if await asyncio.to_thread(self._state.get, done) is not None:
            return
        for call in render_calls(alert, priorities=self._priorities, tags=self._tags):
            await self._call(call)
        await asyncio.to_thread(self._state.set, done, str(int(self._clock.now().timestamp())))

    async def send_test(self) -> None:
        """Create a P5 test alert (:func:`~listener.sinks.webhook.make_test_alert`, alias
        ``listener-test-<sink>``, ``[DRILL] TEST`` in its message) and close it at once
        (``listener check --deep``): proves the key can create and close alerts."""
        opened = make_test_alert(self.name, self._clock.now())
        opened = replace(opened, incident_id=f"listener-test-{self.name}")
        closed = replace(opened, id=f"{opened.incident_id}#2", kind="resolved")
        for alert in (opened, closed):
            for call in render_calls(alert, priorities={alert.level: "P5"}, tags=self._tags):
                await self._call(call, "test: ")

    async def healthcheck(self) -> None:
        """``GET /v2/alerts?limit=1`` (changes nothing): any answer below 500 but 401 and
        403 proves the API reachable; 401/403 raise :class:`SinkRejected` (the key is
        wrong, or may not read alerts: :meth:`send_test` checks creating); a 5xx, timeout
        or connection error raises :class:`SinkUnavailable`."""
        response = await request(
            self._client,
            "GET",
            f"{self._base}{ALERTS_PATH}?limit=1",
            label=self._label(),
            what="health check: ",
            timeout=self._timeout,
        )
        status = response.status_code
        text = f"{self._label()}: health check: HTTP {status}"
        if status in (401, 403):
            raise SinkRejected(f"{text}{self._problem(response)}; check api_key")
        if status >= 500:
            raise SinkUnavailable(text)

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    def _problem(self, response: httpx.Response) -> str:
        """Opsgenie's ``message`` from an error body (short, one line, the key cut out)."""
        try:
            body = response.json()
        except ValueError:
            return ""
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str):
            return ""
        text = one_line(clean_line(message), 300).replace(self._key, "<api_key>")
        return f" ({text})" if text else ""

    async def _call(self, call: ApiCall, what: str = "") -> None:
        response = await request(
            self._client,
            call.method,
            self._base + call.path,
            label=self._label(),
            what=f"{what}{call.action}: ",
            timeout=self._timeout,
            content=json.dumps(call.body, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        raise_for_status(
            response,
            f"{self._label()}: {what}{call.action}: ",
            lambda: self._problem(response),
        )


__all__ = [
    "ApiCall",
    "OpsgenieSink",
    "alias_for",
    "priority_for",
    "render_calls",
    "render_description",
    "render_details",
]
