"""The Prometheus Alertmanager sink: incidents as alerts posted to ``/api/v2/alerts``.

Teams that already route with Alertmanager get its grouping, silences and inhibition.

**Rendering** (:func:`render_alerts`, pure). One incident is one Alertmanager alert
with the labels

- ``alertname="ListenerIncident"`` (one constant name, so a route can match every
  listener alert; the rule has its own label),
- ``brand``, ``rule``, ``severity`` (the incident's level), ``incident`` (its id),
- ``category`` (the top crisis category, once the incident has one; it then stays
  the same for the incident's life so a shifting mix does not replace the alert),
- ``drill="true"`` on drill alerts,
- plus the configured ``labels`` (which cannot replace the ones above),

and the annotations ``summary`` (the title), ``description`` (the facts), ``categories``,
``top_mentions`` (text and links), ``acknowledged_by``, ``kind`` and ``alert_id``.
``startsAt`` is when the incident opened; ``endsAt`` is ``now + expire_after`` while
it fires (so it resolves by itself if listener stops refreshing it) and the
resolution time (``alert.at``, never later than now) on the all-clear.

**Identity and escalation.** Alertmanager identifies an alert by its label set, and
``severity`` is a label (so routes and inhibition rules can use it). A change of
severity therefore replaces the alert: the post carries the new severity firing *and*
the previous label set resolved, so exactly one alert per incident fires. The previous
label set is the one this sink last posted as firing for the incident (kept in the
sink state), or, without state, the same labels with ``severity=previous_level``.
Any other change of the label set (new configured ``labels``) is handled the same way.

**Resend.** :meth:`AlertmanagerSink.send` records each incident's firing alert in the
sink state (key ``firing:<incident_id>``, plus the index key ``firing``) and forgets it
once the all-clear is delivered; :meth:`AlertmanagerSink.refresh`, called by the daemon
every ``resend_every``, re-posts every recorded alert with a fresh ``endsAt``.

**Errors.** 2xx is success; 408, 429 and 5xx, timeouts and connection errors raise
:class:`~listener.errors.SinkUnavailable`; any other status (400: Alertmanager refused
the alerts, e.g. an invalid label name) raises :class:`~listener.errors.SinkRejected`
with Alertmanager's reason. Messages never contain the URL or header values.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from listener import __version__
from listener.clock import as_utc
from listener.config.schema import AlertmanagerSinkConfig
from listener.errors import SinkRejected
from listener.model import Alert, MentionRef
from listener.sinks.base import SinkContext
from listener.sinks.http import raise_for_status, request
from listener.sinks.text import driver_text, one_line

ALERTNAME = "ListenerIncident"
"""``alertname`` of every incident alert."""

TEST_ALERTNAME = "ListenerTest"
"""``alertname`` of the alert :meth:`AlertmanagerSink.send_test` posts."""

TEST_EXPIRES = timedelta(minutes=1)
"""How long the test alert fires."""

BUILTIN_LABELS = ("alertname", "brand", "rule", "severity", "category", "incident", "drill")
"""Labels the sink sets itself; configured labels with these names are ignored."""

FIRING_PREFIX = "firing:"
"""State key prefix: ``firing:<incident_id>`` → the JSON alert last posted as firing."""

INDEX_KEY = "firing"
"""State key: JSON list of the incident ids that have a ``firing:`` record."""

USER_AGENT = f"listener/{__version__}"
MENTION_TEXT = 160
"""Mention texts are cut to this many characters in the ``top_mentions`` annotation."""
REASON_LIMIT = 200
"""At most this much of Alertmanager's error answer goes into a SinkRejected message."""

PostableAlert = dict[str, Any]
"""One element of the ``POST /api/v2/alerts`` body: ``labels``, ``annotations``,
``startsAt``, ``endsAt`` (RFC 3339 strings)."""


def rfc3339(when: datetime) -> str:
    """``when`` in UTC as RFC 3339 with milliseconds (``2026-03-02T09:00:00.000Z``)."""
    return as_utc(when).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mention(ref: MentionRef) -> str:
    who = f" @{ref.author}" if ref.author else ""
    line = f"- [{ref.source}]{who}: {one_line(ref.text, MENTION_TEXT)}"
    return f"{line} {ref.url}" if ref.url else line


def alert_labels(
    alert: Alert,
    *,
    extra_labels: Mapping[str, str] | None = None,
    category: str | None = None,
) -> dict[str, str]:
    """The label set (Alertmanager's identity) of ``alert``'s incident at its level.

    ``category`` overrides the top category (the one the incident was first posted
    with). Labels with empty values are left out, as Alertmanager drops them.
    """
    labels = dict(extra_labels or {})
    top = category if category else (alert.categories[0][0] if alert.categories else None)
    own = {
        "alertname": ALERTNAME,
        "brand": alert.brand,
        "rule": alert.rule,
        "severity": alert.level,
        "incident": alert.incident_id,
    }
    if top:
        own["category"] = top
    if alert.drill:
        own["drill"] = "true"
    for name in BUILTIN_LABELS:
        labels.pop(name, None)
    labels.update(own)
    return {name: value for name, value in labels.items() if value}


def alert_annotations(alert: Alert) -> dict[str, str]:
    """The annotations of ``alert`` (what a notification shows; not part of the identity)."""
    annotations = {
        "summary": alert.title,
        "description": "\n".join(str(fact) for fact in alert.facts),
        "categories": ", ".join(f"{name} ({count})" for name, count in alert.categories),
        "top_mentions": "\n".join(_mention(ref) for ref in alert.top_mentions),
        "kind": alert.kind,
        "alert_id": alert.id,
        "why": "\n".join(driver_text(d) for d in alert.explanation.drivers)
        if alert.explanation is not None
        else "",
    }
    if alert.ack is not None:
        note = f": {alert.ack.note}" if alert.ack.note else ""
        annotations["acknowledged_by"] = f"{alert.ack.by}{note}"
    return {name: value for name, value in annotations.items() if value}


def render_alerts(
    alert: Alert,
    *,
    now: datetime,
    expire_after: timedelta,
    extra_labels: Mapping[str, str] | None = None,
    previous: Mapping[str, str] | None = None,
) -> list[PostableAlert]:
    """The ``POST /api/v2/alerts`` body for ``alert`` (fresh dicts; pure).

    The first element is the incident's alert: firing with ``endsAt = now +
    expire_after``, or, for ``kind == "resolved"``, resolved with ``endsAt = alert.at``
    (at most ``now``). ``startsAt`` is ``alert.opened_at`` (else ``alert.at``); ``endsAt``
    is never before it.

    ``previous`` is the label set last posted as firing for this incident (``None`` when
    unknown). When it differs from the new label set (an escalation or de-escalation
    changed ``severity``, the configured labels changed) a second element resolves it;
    without ``previous``, an escalation or de-escalation resolves the label set with
    ``severity=alert.previous_level``.
    """
    category = previous.get("category") if previous is not None else None
    labels = alert_labels(alert, extra_labels=extra_labels, category=category)
    annotations = alert_annotations(alert)
    starts = as_utc(alert.opened_at or alert.at)
    now = as_utc(now)
    ended = max(min(as_utc(alert.at), now), starts)
    ends = ended if alert.kind == "resolved" else max(now + expire_after, starts)
    body: list[PostableAlert] = [
        {
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(starts),
            "endsAt": rfc3339(ends),
        }
    ]
    if previous is not None:
        replaced: dict[str, str] | None = dict(previous)
    elif (
        alert.kind in ("escalated", "deescalated")
        and alert.previous_level
        and alert.previous_level != alert.level
    ):
        replaced = {**labels, "severity": alert.previous_level}
    else:
        replaced = None
    if replaced is not None and replaced != labels:
        body.append(
            {
                "labels": replaced,
                "annotations": dict(annotations),
                "startsAt": rfc3339(starts),
                "endsAt": rfc3339(ended),
            }
        )
    return body


def refreshed(
    posted: Mapping[str, Any], *, now: datetime, expire_after: timedelta
) -> PostableAlert:
    """A copy of a recorded firing alert with ``endsAt = now + expire_after`` (never
    before its ``startsAt``); pure."""
    alert = copy.deepcopy(dict(posted))
    ends = as_utc(now) + expire_after
    starts = alert.get("startsAt")
    if isinstance(starts, str):
        with contextlib.suppress(ValueError):
            ends = max(ends, as_utc(datetime.fromisoformat(starts.replace("Z", "+00:00"))))
    alert["endsAt"] = rfc3339(ends)
    return alert


def render_test_alert(
    sink: str, *, now: datetime, extra_labels: Mapping[str, str] | None = None
) -> PostableAlert:
    """The short-lived alert :meth:`AlertmanagerSink.send_test` posts: ``alertname=
    ListenerTest`` and ``sink=<name>`` (plus the configured labels, so it takes the
    route real alerts take), firing for :data:`TEST_EXPIRES`; pure."""
    labels = dict(extra_labels or {})
    for name in (*BUILTIN_LABELS, "sink"):
        labels.pop(name, None)
    labels.update({"alertname": TEST_ALERTNAME, "sink": sink})
    return {
        "labels": {name: value for name, value in labels.items() if value},
        "annotations": {
            "summary": f"listener test alert (sink {sink}); it resolves by itself",
            "description": "Posted by `listener check --deep` to prove delivery works.",
        },
        "startsAt": rfc3339(now),
        "endsAt": rfc3339(as_utc(now) + TEST_EXPIRES),
    }


class AlertmanagerSink:
    """Posts :func:`render_alerts` bodies to ``<url>/api/v2/alerts`` over one shared
    ``httpx.AsyncClient`` (``config.timeout`` for the whole request and per connect,
    write, read and pool wait; at most 1 MiB of an answer is read; redirects are not
    followed), and keeps firing alerts alive with :meth:`refresh`.

    Every request carries ``User-Agent: listener/<version>`` and the configured headers.
    ``context`` gives the durable state and the clock (``now`` of every ``endsAt``);
    ``transport`` replaces the network layer (tests). :meth:`send` and :meth:`refresh`
    never overlap (a lock), so a refresh cannot re-fire an alert being resolved.
    """

    def __init__(
        self,
        name: str,
        config: AlertmanagerSinkConfig,
        *,
        context: SinkContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        context = context if context is not None else SinkContext()
        self._state = context.state
        self._clock = context.clock
        base = httpx.URL(config.url)
        prefix = base.path.rstrip("/")
        self._alerts_url = base.copy_with(path=f"{prefix}/api/v2/alerts")
        self._ready_url = base.copy_with(path=f"{prefix}/-/ready")
        self._labels = dict(config.labels)
        self._expire_after = config.expire_after
        self.resend_every: timedelta = config.resend_every
        """How often the daemon should call :meth:`refresh`."""
        self._timeout = config.timeout.total_seconds()
        secrets = [config.url.rstrip("/"), base.host, base.password or ""]
        headers = httpx.Headers({"User-Agent": USER_AGENT})
        for key, secret in config.headers.items():
            headers[key] = secret.get_secret_value()
            # The whole value and each word of it ("Bearer <token>": the token alone).
            secrets += [secret.get_secret_value(), *secret.get_secret_value().split()]
        self._secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            transport=transport,
        )
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ Sink

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """Post ``alert`` (and the resolution of the label set it replaces); return on 2xx,
        else raise a :class:`~listener.errors.SinkError`.

        Afterwards the incident's firing alert is recorded for :meth:`refresh`, or, after
        the all-clear (also when Alertmanager rejected it), forgotten. Posting the same
        alert again is harmless: Alertmanager merges it into the one it has.
        """
        async with self._lock:
            record = self._load(alert.incident_id)
            previous = record.get("labels") if record is not None else None
            body = render_alerts(
                alert,
                now=self._clock.now(),
                expire_after=self._expire_after,
                extra_labels=self._labels,
                previous=previous if isinstance(previous, dict) else None,
            )
            try:
                await self._post(body, "")
            except SinkRejected:
                if alert.kind == "resolved":
                    self._forget(alert.incident_id)
                raise
            if alert.kind == "resolved":
                self._forget(alert.incident_id)
            else:
                self._remember(alert.incident_id, body[0])

    async def refresh(self) -> None:
        """Re-post every recorded firing alert with ``endsAt = now + expire_after``, in one
        request, so Alertmanager keeps it firing; the daemon calls this every
        ``resend_every`` (see :attr:`resend_every`).

        Incidents whose all-clear was delivered were already forgotten by :meth:`send`;
        index entries without a (readable) record are dropped here. Posts nothing when
        nothing fires. Raises :class:`~listener.errors.SinkError` like :meth:`send`; it
        never retries itself (the next call posts again), and a failure leaves the
        records as they were.
        """
        async with self._lock:
            index = self._index()
            records: list[dict[str, Any]] = []
            alive: list[str] = []
            for incident_id in index:
                record = self._load(incident_id)
                if record is None:
                    continue
                alive.append(incident_id)
                records.append(record)
            if alive != index:
                self._set_index(alive)
            if not records:
                return
            now = self._clock.now()
            body = [refreshed(r, now=now, expire_after=self._expire_after) for r in records]
            await self._post(body, "refresh: ")

    async def healthcheck(self) -> None:
        """``GET <url>/-/ready``: return on 2xx; raise
        :class:`~listener.errors.SinkUnavailable` when Alertmanager is down or not ready
        (5xx), :class:`~listener.errors.SinkRejected` on another status (a wrong URL or
        credentials). Posts nothing."""
        response = await request(
            self._client,
            "GET",
            self._ready_url,
            label=self._label(),
            what="health check: ",
            timeout=self._timeout,
        )
        self._check(response, "health check: ")

    async def send_test(self) -> None:
        """Post one short-lived test alert (:func:`render_test_alert`: ``alertname=
        ListenerTest``, resolving by itself after a minute) for ``listener check --deep``;
        records nothing."""
        await self._post(
            [render_test_alert(self.name, now=self._clock.now(), extra_labels=self._labels)],
            "test alert: ",
        )

    async def aclose(self) -> None:
        """Close the HTTP client and its connections (idempotent)."""
        await self._client.aclose()

    # ------------------------------------------------------------------ state

    def firing(self) -> dict[str, dict[str, Any]]:
        """The recorded firing alert of every incident :meth:`refresh` re-posts."""
        found = {}
        for incident_id in self._index():
            record = self._load(incident_id)
            if record is not None:
                found[incident_id] = record
        return found

    def _index(self) -> list[str]:
        raw = self._state.get(INDEX_KEY)
        try:
            ids = json.loads(raw) if raw else []
        except ValueError:
            return []
        return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []

    def _set_index(self, ids: Sequence[str]) -> None:
        if ids:
            self._state.set(INDEX_KEY, json.dumps(sorted(set(ids))))
        else:
            self._state.delete(INDEX_KEY)

    def _load(self, incident_id: str) -> dict[str, Any] | None:
        raw = self._state.get(FIRING_PREFIX + incident_id)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("labels"), dict):
            self._state.delete(FIRING_PREFIX + incident_id)
            return None
        return record

    def _remember(self, incident_id: str, posted: PostableAlert) -> None:
        index = self._index()
        if incident_id not in index:
            self._set_index([*index, incident_id])
        self._state.set(FIRING_PREFIX + incident_id, json.dumps(posted, ensure_ascii=False))

    def _forget(self, incident_id: str) -> None:
        self._state.delete(FIRING_PREFIX + incident_id)
        index = self._index()
        if incident_id in index:
            self._set_index([i for i in index if i != incident_id])

    # ------------------------------------------------------------------ HTTP

    def _label(self) -> str:
        return f"alertmanager sink '{self.name}'"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _reason(self, response: httpx.Response) -> str:
        """Alertmanager's short reason (its 400 body is a JSON string), scrubbed."""
        text = response.text.strip()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        if isinstance(parsed, dict):
            parsed = parsed.get("message") or parsed.get("error") or ""
        reason = self._scrub(one_line(str(parsed), REASON_LIMIT))
        return f": {reason}" if reason else ""

    def _check(self, response: httpx.Response, what: str) -> None:
        raise_for_status(response, f"{self._label()}: {what}", lambda: self._reason(response))

    async def _post(self, body: list[PostableAlert], what: str) -> None:
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        response = await request(
            self._client,
            "POST",
            self._alerts_url,
            label=self._label(),
            what=what,
            timeout=self._timeout,
            content=content,
            headers={"Content-Type": "application/json"},
        )
        self._check(response, what)
