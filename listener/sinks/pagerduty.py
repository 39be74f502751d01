"""The PagerDuty sink: Events API v2 alert events, one PagerDuty alert per incident.

:func:`render_event` is pure and maps an alert onto one event for
``POST {api_url}/v2/enqueue``:

- ``opened``, ``escalated``, ``reminder``, ``handoff``: ``trigger`` (summary = the alert
  title, source ``listener``, severity from ``severities`` or the default, details
  and links to the top mentions);
- ``acknowledged``: ``acknowledge``; ``resolved``: ``resolve``;
- ``deescalated``: no event (``None``). PagerDuty keeps the alert as it is until the
  incident is acknowledged or resolved; a trigger here could open a *new* page if a
  person had resolved the alert in PagerDuty meanwhile.

The ``dedup_key`` is the incident id (or ``listener:<sha256 of it>`` when longer than
PagerDuty's 255 characters), so PagerDuty merges every alert of an incident into one
PagerDuty alert, and a repeated trigger (a retry after a crash) is appended to the open
alert, never a second page.

:class:`PagerDutySink` maps the answer onto the sink error tree: 2xx (PagerDuty says 202)
delivered; 429, 408 and 5xx :class:`~listener.errors.SinkUnavailable` (``retry_after``
from ``Retry-After``); any other status :class:`~listener.errors.SinkRejected` (with
PagerDuty's error text); timeouts and transport errors ``SinkUnavailable``. The routing
key is a secret: no error message or exception chain produced here contains it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import httpx

from listener.clock import Clock
from listener.config.schema import PagerDutySinkConfig
from listener.model import Alert, AlertKind, MentionRef
from listener.sinks.base import SinkContext
from listener.sinks.http import options_healthcheck, raise_for_status, request, sink_client
from listener.sinks.text import driver_text, one_line
from listener.sinks.webhook import make_test_alert

Severity = Literal["critical", "error", "warning", "info"]
EventAction = Literal["trigger", "acknowledge", "resolve"]

ENQUEUE_PATH = "/v2/enqueue"
SOURCE = "listener"
ROUTING_KEY_PLACEHOLDER = "<routing_key>"
"""What :func:`render_event` puts in ``routing_key`` unless given the real one."""

MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_LINKS = 5
EXCERPT_CHARS = 280
CRITICAL_LEVELS = frozenset({"crisis", "critical"})

ACTIONS: Mapping[AlertKind, EventAction | None] = {
    "opened": "trigger",
    "escalated": "trigger",
    "reminder": "trigger",
    "handoff": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
    "deescalated": None,
}
"""The event action for each alert kind (``None``: nothing is sent)."""


def dedup_key(incident_id: str) -> str:
    """The PagerDuty ``dedup_key`` of an incident: its id, or ``listener:<sha256 hex>`` of
    it when longer than 255 characters. Pure and stable across restarts."""
    if len(incident_id) <= MAX_DEDUP_KEY:
        return incident_id
    return "listener:" + hashlib.sha256(incident_id.encode("utf-8")).hexdigest()


def severity_for(level: str, severities: Mapping[str, Severity] | None = None) -> Severity:
    """The PagerDuty severity of ``level``: the configured one, else ``critical`` for
    levels named ``crisis`` or ``critical`` (any case) and ``warning`` for the rest."""
    if severities and level in severities:
        return severities[level]
    return "critical" if level.lower() in CRITICAL_LEVELS else "warning"


def _is_web_url(url: str | None) -> bool:
    return url is not None and url.lower().startswith(("https://", "http://"))


def _mention(ref: MentionRef) -> dict[str, Any]:
    return {
        "source": ref.source,
        "author": ref.author,
        "followers": ref.followers,
        "created_at": ref.created_at.isoformat(),
        "sentiment": ref.sentiment if math.isfinite(ref.sentiment) else None,
        "text": one_line(ref.text, EXCERPT_CHARS),
        "url": ref.url,
    }


def _link(ref: MentionRef) -> dict[str, str]:
    who = f"@{ref.author.lstrip('@')}" if ref.author else "unknown author"
    return {"href": str(ref.url), "text": one_line(f"{who} on {ref.source}: {ref.text}", 120)}


def custom_details(alert: Alert) -> dict[str, Any]:
    """What a responder reads in PagerDuty's alert details (pure): ids, brand, rule,
    level, the facts as lines, the crisis categories with counts, the top mentions
    (excerpts) and, when present, the summary, acknowledgement, escalation route and
    ``why`` (the spike explanation's drivers, one line each)."""
    details: dict[str, Any] = {
        "alert_id": alert.id,
        "incident_id": alert.incident_id,
        "kind": alert.kind,
        "brand": alert.brand,
        "rule": alert.rule,
        "level": alert.level,
        "previous_level": alert.previous_level,
        "at": alert.at.isoformat(),
        "drill": alert.drill,
        "facts": [str(f) for f in alert.facts],
        "categories": dict(alert.categories),
        "top_mentions": [_mention(m) for m in alert.top_mentions],
    }
    summary = getattr(alert, "summary", "")
    if summary:
        details["summary"] = summary
    if alert.opened_at is not None:
        details["opened_at"] = alert.opened_at.isoformat()
    if alert.ack is not None:
        details["acknowledged_by"] = alert.ack.by
        if alert.ack.note:
            details["acknowledgement_note"] = alert.ack.note
    if alert.route:
        details["route"] = list(alert.route)
    if alert.explanation is not None and alert.explanation.drivers:
        details["why"] = [driver_text(d) for d in alert.explanation.drivers]
    return details


def render_event(
    alert: Alert,
    *,
    severities: Mapping[str, Severity] | None = None,
    routing_key: str = ROUTING_KEY_PLACEHOLDER,
) -> dict[str, Any] | None:
    """The Events API v2 event for ``alert`` (a fresh dict), or ``None`` when its kind
    sends nothing (``deescalated``). Pure; the routing key is a placeholder unless given.

    A trigger carries ``payload`` (``summary`` = the title, cut to 1024 characters;
    ``source`` ``listener``; ``severity``; ``timestamp`` = the alert's time; ``component``
    = brand; ``group`` = rule; ``class`` = the top crisis category when there is one;
    ``custom_details``), ``links`` to up to five top mentions with an http(s) URL, and
    ``client``. Acknowledge and resolve events carry only the routing key, the action and
    the dedup key, as PagerDuty documents them.
    """
    action = ACTIONS[alert.kind]
    if action is None:
        return None
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(alert.incident_id),
    }
    if action != "trigger":
        return event
    payload: dict[str, Any] = {
        "summary": one_line(alert.title, MAX_SUMMARY),
        "source": SOURCE,
        "severity": severity_for(alert.level, severities),
        "timestamp": alert.at.isoformat(),
        "component": alert.brand,
        "group": alert.rule,
        "custom_details": custom_details(alert),
    }
    if alert.categories:
        payload["class"] = alert.categories[0][0]
    event["payload"] = payload
    event["links"] = [_link(m) for m in alert.top_mentions if _is_web_url(m.url)][:MAX_LINKS]
    event["client"] = SOURCE
    return event


class PagerDutySink:
    """Sends :func:`render_event` events to ``{api_url}/v2/enqueue`` over one shared
    ``httpx.AsyncClient`` (``config.timeout`` for the whole request and each of connect,
    write, read and pool wait; at most 1 MiB of an answer is read; redirects are not
    followed). Needs no state: the dedup key makes PagerDuty itself idempotent per
    incident. ``transport`` replaces the network layer (tests).
    Call :meth:`aclose` when done."""

    def __init__(
        self,
        name: str,
        config: PagerDutySinkConfig,
        *,
        context: SinkContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        context = context if context is not None else SinkContext()
        self._clock: Clock = context.clock
        self._routing_key = config.routing_key.get_secret_value()
        self._severities: dict[str, Severity] = dict(config.severities)
        self._url = config.api_url.rstrip("/") + ENQUEUE_PATH
        self._timeout = config.timeout.total_seconds()
        self._client = sink_client(self._timeout, transport)

    def _label(self) -> str:
        return f"pagerduty sink '{self.name}'"

    def _redact(self, text: str) -> str:
        return text.replace(self._routing_key, "<routing_key>") if self._routing_key else text

    def _problem(self, response: httpx.Response) -> str:
        """PagerDuty's own words from an error body (``message`` and ``errors``), short,
        one line, with the routing key cut out should it be echoed."""
        try:
            body = response.json()
        except ValueError:
            return ""
        if not isinstance(body, dict):
            return ""
        parts = [str(body.get("message") or "")]
        errors = body.get("errors")
        if isinstance(errors, list):
            parts += [str(e) for e in errors]
        text = one_line("; ".join(p for p in parts if p), 300)
        return f" ({self._redact(text)})" if text else ""

    async def _post(self, event: dict[str, Any], what: str = "") -> None:
        body = json.dumps(event, ensure_ascii=False).encode("utf-8")
        response = await request(
            self._client,
            "POST",
            self._url,
            label=self._label(),
            what=what,
            timeout=self._timeout,
            content=body,
            headers={"Content-Type": "application/json"},
        )
        raise_for_status(
            response,
            f"{self._label()}: {what}{event['event_action']}: ",
            lambda: self._problem(response),
        )

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """Send the event for one alert (nothing for ``deescalated``); return on 2xx, else
        raise a :class:`~listener.errors.SinkError`. ``idempotency_key`` is not sent:
        PagerDuty deduplicates on the incident's dedup key."""
        event = render_event(alert, severities=self._severities, routing_key=self._routing_key)
        if event is not None:
            await self._post(event)

    async def send_test(self) -> None:
        """Trigger a test alert (:func:`~listener.sinks.webhook.make_test_alert`: a drill,
        severity ``info``, its own dedup key) and resolve it at once
        (``listener check --deep``). This proves the routing key works end to end; the
        service's urgency rules decide whether the short-lived alert notifies anyone."""
        opened = make_test_alert(self.name, self._clock.now())
        for alert in (opened, replace(opened, id=f"{opened.incident_id}#2", kind="resolved")):
            event = render_event(
                alert, severities={alert.level: "info"}, routing_key=self._routing_key
            )
            if event is not None:
                await self._post(event, "test: ")

    async def healthcheck(self) -> None:
        """Send an ``OPTIONS`` request to the Events API (no event, no key): any answer
        below 500 proves it reachable; a 5xx, timeout or connection error raises
        :class:`~listener.errors.SinkUnavailable`. :meth:`send_test` checks the key."""
        await options_healthcheck(self._client, self._url, self._label(), self._timeout)

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()
