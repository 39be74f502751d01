"""The webhook sink: POST each alert as a versioned JSON document.

:func:`render_webhook` is pure and defines the wire format (``listener.alert/v1``).
:class:`WebhookSink` sends it with an ``Idempotency-Key`` header and maps the outcome
onto the sink error tree:

- 2xx: delivered;
- 408, 429, 5xx: :class:`~listener.errors.SinkUnavailable`, with ``retry_after`` from
  a ``Retry-After`` header (seconds or HTTP-date);
- any other status (3xx included: redirects are not followed):
  :class:`~listener.errors.SinkRejected`;
- timeout, refused connection, any other transport error:
  :class:`~listener.errors.SinkUnavailable`.

The URL and header values are secrets (a token may sit in the query string): no error
message, log line or exception chain produced here contains them.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from listener import __version__
from listener.config.schema import WebhookSinkConfig
from listener.errors import SinkRejected, SinkUnavailable
from listener.model import Alert, Fact, MentionRef

SCHEMA_ID = "listener.alert/v1"
USER_AGENT = f"listener/{__version__}"


def _fact(fact: Fact) -> dict[str, Any]:
    return {
        "name": fact.name,
        "value": fact.value,
        "threshold": fact.threshold,
        "baseline": fact.baseline,
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
        "sentiment": ref.sentiment,
    }


def render_webhook(alert: Alert) -> dict[str, Any]:
    """The JSON document posted for ``alert`` (a fresh dict; pure).

    Keys: ``schema`` (always ``"listener.alert/v1"``; fields are only ever added within
    v1), ``id``, ``incident_id``, ``kind``, ``title``, ``rule``, ``brand``, ``level``,
    ``previous_level``, ``at`` (ISO 8601), ``drill``, ``facts`` (name, value, threshold,
    baseline, text) and ``top_mentions`` (source, id, text, url, author, followers,
    created_at, sentiment).
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
    }


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP-date,
    measured from ``now``); never negative; ``None`` when absent or unparseable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _response_now(response: httpx.Response) -> datetime:
    """The receiver's own "now" (its ``Date`` header) so an HTTP-date ``Retry-After`` is
    read against the clock that wrote it; the local clock when there is none."""
    date = response.headers.get("Date")
    if date:
        try:
            when = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            pass
        else:
            return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return datetime.now(UTC)


class WebhookSink:
    """POSTs :func:`render_webhook` documents to the configured URL over one shared
    ``httpx.AsyncClient`` (``config.timeout`` applies to each of connect, write, read and
    pool wait; redirects are not followed; environment proxy settings apply).

    Every request carries ``User-Agent: listener/<version>`` and the configured headers
    (which may replace the User-Agent); a POST also carries ``Content-Type:
    application/json`` and ``Idempotency-Key``, which configured headers cannot replace.
    ``transport`` replaces the network layer (tests). Call :meth:`aclose` when done.
    """

    def __init__(
        self,
        name: str,
        config: WebhookSinkConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
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

    def _transport_error(self, exc: httpx.HTTPError, what: str) -> SinkUnavailable:
        # Only the class name: httpx messages may quote the request, and so the URL.
        if isinstance(exc, httpx.TimeoutException):
            reason = f"timed out after {self._timeout:g}s ({type(exc).__name__})"
        elif isinstance(exc, httpx.ConnectError):
            reason = "connection failed (ConnectError)"
        else:
            reason = f"transport error ({type(exc).__name__})"
        return SinkUnavailable(f"{self._label()}: {what}{reason}")

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """POST one alert; return on 2xx, else raise a :class:`~listener.errors.SinkError`."""
        body = json.dumps(render_webhook(alert), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        message = f"{self._label()}: HTTP {status}"
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), _response_now(response)
            )
            raise SinkUnavailable(message, retry_after=retry_after)
        raise SinkRejected(message)

    async def healthcheck(self) -> None:
        """Send an ``OPTIONS`` request (no alert, no side effects on a sane receiver).

        Any answer below 500 proves the receiver is reachable (many answer 404 or 405
        to ``OPTIONS``); a 5xx, timeout or connection error raises
        :class:`~listener.errors.SinkUnavailable`.
        """
        try:
            response = await self._client.request("OPTIONS", self._url)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "health check: ") from None
        if response.status_code >= 500:
            raise SinkUnavailable(f"{self._label()}: health check: HTTP {response.status_code}")

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()
