"""What every HTTP sink (httpx) shares: error translation at the boundary, the
receiver's clock for ``Retry-After`` dates, and a harmless reachability check."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from listener.errors import SinkRejected, SinkUnavailable
from listener.retry_after import retry_after_value


def server_now(response: httpx.Response) -> datetime:
    """The receiver's own "now" (its ``Date`` header), so an HTTP-date ``Retry-After`` is
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


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP-date,
    measured from ``now``): :func:`listener.retry_after.retry_after_value`, the one parser
    sinks and collectors share (capped at one hour; negative, non-finite or unparseable
    values give ``None``, and the delivery backoff applies)."""
    return retry_after_value(value, now.timestamp())


def raise_for_status(
    response: httpx.Response, message: str, reason: Callable[[], str] = lambda: ""
) -> None:
    """Return on 2xx. 408, 429 and 5xx: :class:`SinkUnavailable` (retry, after the
    receiver's ``Retry-After`` when it gives one); any other status :class:`SinkRejected`
    with ``reason()`` (the receiver's own explanation) appended. ``message`` starts the
    error's text, before ``HTTP <status>``."""
    status = response.status_code
    if 200 <= status < 300:
        return
    text = f"{message}HTTP {status}"
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), server_now(response))
        raise SinkUnavailable(text, retry_after=retry_after)
    raise SinkRejected(text + reason())


def transport_error(label: str, exc: httpx.HTTPError, what: str, timeout: float) -> SinkUnavailable:
    """A timeout, refused connection or other transport failure as a retryable error.

    Only the exception's class name is kept: httpx messages may quote the request, and so
    a URL with a token in it."""
    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out after {timeout:g}s ({type(exc).__name__})"
    elif isinstance(exc, httpx.ConnectError):
        reason = "connection failed (ConnectError)"
    else:
        reason = f"transport error ({type(exc).__name__})"
    return SinkUnavailable(f"{label}: {what}{reason}")


async def options_healthcheck(
    client: httpx.AsyncClient, url: str, label: str, timeout_s: float
) -> None:
    """Send an ``OPTIONS`` request: any answer below 500 proves the receiver reachable
    (many answer 404 or 405); a 5xx, timeout or connection error raises SinkUnavailable."""
    try:
        response = await client.request("OPTIONS", url)
    except httpx.HTTPError as exc:
        raise transport_error(label, exc, "health check: ", timeout_s) from None
    if response.status_code >= 500:
        raise SinkUnavailable(f"{label}: health check: HTTP {response.status_code}")
