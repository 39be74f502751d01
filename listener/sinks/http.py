"""What every HTTP sink (httpx) shares: error translation at the boundary, the
receiver's clock for ``Retry-After`` dates, and a harmless reachability check."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from listener.errors import SinkUnavailable


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
