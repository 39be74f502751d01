"""The webhook sink: POST each alert as a versioned JSON document.

:func:`render_webhook` is pure and defines the wire format (``listener.alert/v1``,
published as JSON Schema in ``schema/alert.v1.json``). :class:`WebhookSink` sends it with
an ``Idempotency-Key`` header and, with a ``secret``, an HMAC-SHA256 signature
(:func:`sign`; receivers check it with :func:`verify`), and maps the outcome onto the
sink error tree:

- 2xx: delivered;
- 408, 429, 5xx: :class:`~listener.errors.SinkUnavailable`, with ``retry_after`` from
  a ``Retry-After`` header (seconds or HTTP-date);
- any other status (3xx included: redirects are not followed):
  :class:`~listener.errors.SinkRejected`;
- timeout, refused connection, any other transport error:
  :class:`~listener.errors.SinkUnavailable`.

The URL, header values and the signing secret are secrets (a token may sit in the query
string): no error message, log line or exception chain produced here contains them.

Signature scheme: ``X-Listener-Timestamp: <unix seconds>`` and ``X-Listener-Signature:
sha256=<hex>`` where ``<hex>`` is HMAC-SHA256, keyed with the secret (UTF-8), of the ASCII
timestamp, a ``.``, and the exact body bytes. Each attempt is signed afresh, so a retry
carries a new timestamp but the same ``Idempotency-Key``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from listener.clock import Clock, SystemClock, as_utc
from listener.config.schema import WebhookSinkConfig
from listener.model import Alert, Digest, Explanation, Fact, MentionRef
from listener.sinks.http import USER_AGENT, options_healthcheck, raise_for_status, request

SCHEMA_ID = "listener.alert/v1"

SIGNATURE_HEADER = "X-Listener-Signature"
TIMESTAMP_HEADER = "X-Listener-Timestamp"
SIGNATURE_TOLERANCE = 300.0
"""Seconds a signed request stays acceptable either side of the receiver's clock."""

_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_SIGNATURE = re.compile(r"sha256=([0-9a-f]{64})")


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a non-finite number is sent as ``null``."""
    return value if value is None or math.isfinite(value) else None


def _fact(fact: Fact) -> dict[str, Any]:
    return {
        "name": fact.name,
        "value": _finite(fact.value),
        "threshold": _finite(fact.threshold),
        "baseline": _finite(fact.baseline),
        "text": str(fact),
    }


def _mention(ref: MentionRef) -> dict[str, Any]:
    return {
        "source": ref.source,
        "id": ref.id,
        "text": ref.text,
        "url": ref.url,
        "author": ref.author,
        "followers": ref.followers,
        "created_at": ref.created_at.isoformat(),
        "sentiment": _finite(ref.sentiment),
    }


def render_webhook(alert: Alert) -> dict[str, Any]:
    """The JSON document posted for ``alert`` (a fresh dict; pure).

    Keys: ``schema`` (always ``"listener.alert/v1"``; fields are only ever added within
    v1), ``id``, ``incident_id``, ``kind``, ``title``, ``rule``, ``brand``, ``level``,
    ``previous_level``, ``at`` (ISO 8601), ``drill``, ``facts`` (name, value, threshold,
    baseline, text), ``top_mentions`` (source, id, text, url, author, followers,
    created_at, sentiment), ``summary``, ``opened_at``, ``categories`` (name, mentions),
    ``authors`` (handle, source, mentions, reach, role: detractor/amplifier), ``trend``
    (step_seconds, negative counts oldest first), ``ack`` (by, at, note, or null),
    ``route``, ``peak_level`` (the highest level the incident reached, or null) and
    ``explanation`` (why it spiked: the window and baseline compared, and the
    ``drivers``: kind, label, now, before, score, example mention; or null).
    Non-finite numbers become ``null``. ``schema/alert.v1.json``
    is the JSON Schema of this document; keep the two in step.
    """
    return {
        "schema": SCHEMA_ID,
        "id": alert.id,
        "incident_id": alert.incident_id,
        "kind": alert.kind,
        "title": alert.title,
        "rule": alert.rule,
        "brand": alert.brand,
        "level": alert.level,
        "previous_level": alert.previous_level,
        "at": alert.at.isoformat(),
        "drill": alert.drill,
        "facts": [_fact(f) for f in alert.facts],
        "top_mentions": [_mention(m) for m in alert.top_mentions],
        "summary": alert.summary,
        "opened_at": alert.opened_at.isoformat() if alert.opened_at else None,
        "categories": [{"name": n, "mentions": c} for n, c in alert.categories],
        "authors": [
            {
                "handle": a.handle,
                "source": a.source,
                "mentions": a.mentions,
                "reach": _finite(a.reach),
                "role": a.role,
            }
            for a in alert.authors
        ],
        "trend": {"step_seconds": alert.trend_step, "negative": list(alert.trend)},
        "ack": (
            {"by": alert.ack.by, "at": alert.ack.at.isoformat(), "note": alert.ack.note}
            if alert.ack
            else None
        ),
        "route": list(alert.route),
        "peak_level": alert.peak_level,
        "explanation": _explanation(alert.explanation),
    }


def _explanation(e: Explanation | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "start": e.start.isoformat(),
        "end": e.end.isoformat(),
        "baseline_start": e.baseline_start.isoformat(),
        "mentions": e.mentions,
        "baseline": e.baseline,
        "negative": e.negative,
        "baseline_negative": e.baseline_negative,
        "drivers": [
            {
                "kind": d.kind,
                "label": d.label,
                "now": d.now,
                "before": d.before,
                "score": _finite(round(d.score, 2)),
                "example": _mention(d.example) if d.example is not None else None,
            }
            for d in e.drivers
        ],
    }


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Listener-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds):
    ``sha256=`` and the hex HMAC-SHA256, keyed with ``secret`` (a str is UTF-8 encoded),
    of ``b"<timestamp>." + body``. Pure."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(key, message, hashlib.sha256).hexdigest()


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float | datetime,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> None:
    """Check a signed webhook request, receiver side; return quietly when it is genuine.

    ``headers`` are the request's headers (names in any case), ``body`` the raw body bytes
    exactly as received (before any JSON parsing), ``now`` the receiver's clock (unix
    seconds or an aware datetime). Raises ``ValueError`` when a header is missing or
    malformed, when no ``sha256=`` signature in ``X-Listener-Signature`` (a
    comma-separated list is accepted, for secret rotation) matches, or when the timestamp
    is more than ``tolerance`` seconds away from ``now`` (a replay, or a clock too far
    off). Within the window, drop requests whose ``Idempotency-Key`` you have already
    processed. The comparison takes constant time; messages never contain the secret.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    raw_timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    raw_signature = lowered.get(SIGNATURE_HEADER.lower())
    if raw_timestamp is None:
        raise ValueError(f"missing {TIMESTAMP_HEADER} header")
    if raw_signature is None:
        raise ValueError(f"missing {SIGNATURE_HEADER} header")
    raw_timestamp = raw_timestamp.strip()
    if not _TIMESTAMP.fullmatch(raw_timestamp):
        raise ValueError(f"malformed {TIMESTAMP_HEADER} header (want unix seconds)")
    timestamp = int(raw_timestamp)
    expected = sign(secret, timestamp, body).encode("ascii")
    candidates = [part.strip() for part in raw_signature.split(",")]
    if not any(_SIGNATURE.fullmatch(c) for c in candidates):
        raise ValueError(f"malformed {SIGNATURE_HEADER} header (want sha256=<64 hex digits>)")
    matched = False
    for candidate in candidates:
        # compare_digest on bytes: a str with non-ASCII characters would raise TypeError.
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise ValueError("signature mismatch (wrong secret, or the body was changed)")
    current = as_utc(now).timestamp() if isinstance(now, datetime) else float(now)
    age = current - timestamp
    if age > tolerance:
        raise ValueError(f"stale request: signed {age:.0f}s ago (tolerance {tolerance:g}s)")
    if -age > tolerance:
        raise ValueError(
            f"timestamp {-age:.0f}s in the future (tolerance {tolerance:g}s); check the clocks"
        )


def make_test_alert(sink: str, now: datetime) -> Alert:
    """The synthetic alert ``listener check --deep`` sends through a sink (pure).

    It says what it is everywhere a person looks: a drill (``drill: true``, ``[DRILL]``
    in the title), brand ``listener``, rule ``check --deep``, level ``test``, kind
    ``opened``, one fact naming the sink; incident id ``listener-test:<sink>:<UTC stamp>``
    and alert id ``<incident id>#1``, so each run is a new alert to the receiver.
    """
    now = as_utc(now)
    incident = f"listener-test:{sink}:{now.strftime('%Y%m%dT%H%M%SZ')}"
    return Alert(
        id=f"{incident}#1",
        incident_id=incident,
        kind="opened",
        rule="check --deep",
        brand="listener",
        level="test",
        previous_level=None,
        at=now,
        facts=(Fact(f"test alert from 'listener check --deep' for sink '{sink}'", 1),),
        drill=True,
    )


class WebhookSink:
    """POSTs :func:`render_webhook` documents to the configured URL over one shared
    ``httpx.AsyncClient`` (``config.timeout`` bounds the whole request, and each of
    connect, write, read and pool wait; at most
    :data:`~listener.sinks.http.MAX_RESPONSE_BYTES` of the answer are read; redirects are
    not followed; environment proxy settings apply).

    Every request carries ``User-Agent: listener/<version>`` and the configured headers
    (which may replace the User-Agent); a POST also carries ``Content-Type:
    application/json`` and ``Idempotency-Key`` and, with ``config.secret``,
    ``X-Listener-Timestamp`` and ``X-Listener-Signature`` (see :func:`sign`), which
    configured headers cannot replace. ``clock`` gives the signature timestamps: leave
    the real clock there outside tests, since receivers compare them with theirs.
    ``transport`` replaces the network layer (tests). Call :meth:`aclose` when done.
    """

    def __init__(
        self,
        name: str,
        config: WebhookSinkConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._secret = config.secret.get_secret_value() if config.secret is not None else None
        self._url = config.url.get_secret_value()
        self._timeout = config.timeout.total_seconds()
        headers = httpx.Headers({"User-Agent": USER_AGENT})
        for key, secret in config.headers.items():
            headers[key] = secret.get_secret_value()
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            transport=transport,
        )

    def _label(self) -> str:
        return f"webhook sink '{self.name}'"

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """POST one alert; return on 2xx, else raise a :class:`~listener.errors.SinkError`."""
        await self._post(render_webhook(alert), idempotency_key)

    async def send_digest(self, digest: Digest, idempotency_key: str) -> None:
        """POST one digest (``Digest.to_dict``: ``"type": "digest"``), with the same
        headers and signature as an alert."""
        await self._post(digest.to_dict(), idempotency_key)

    async def _post(self, document: dict[str, Any], idempotency_key: str) -> None:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        if self._secret is not None:
            timestamp = int(self._clock.now().timestamp())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        response = await request(
            self._client,
            "POST",
            self._url,
            label=self._label(),
            what="",
            timeout=self._timeout,
            content=body,
            headers=headers,
        )
        raise_for_status(response, f"{self._label()}: ")

    async def send_test(self) -> None:
        """POST :func:`make_test_alert` (a drill that says it is a test) like any alert,
        signed when a secret is set (``listener check --deep``); raises like :meth:`send`."""
        alert = make_test_alert(self.name, self._clock.now())
        await self.send(alert, alert.id)

    async def healthcheck(self) -> None:
        """Send an ``OPTIONS`` request (no alert, no side effects on a sane receiver).

        Any answer below 500 proves the receiver is reachable (many answer 404 or 405
        to ``OPTIONS``); a 5xx, timeout or connection error raises
        :class:`~listener.errors.SinkUnavailable`.
        """
        await options_healthcheck(self._client, self._url, self._label(), self._timeout)

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()
