"""What every HTTP sink (httpx) shares: one bounded request (:func:`request`: an overall
deadline and a cap on the response body), error translation at the boundary, the
receiver's clock for ``Retry-After`` dates, and a harmless reachability check."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from listener import __version__
from listener.errors import ListenerError, SinkRejected, SinkUnavailable
from listener.retry_after import retry_after_value

USER_AGENT = f"listener/{__version__}"

MAX_RESPONSE_BYTES = 1024 * 1024
"""The most bytes of a receiver's answer a sink reads (on the wire and decoded). A longer
body is not read further (the connection is closed) and is ignored: the status alone
decides the outcome."""

_CHUNK = 64 * 1024
_DROPPED_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


class _TooLarge(ListenerError):
    """A receiver's answer over :data:`MAX_RESPONSE_BYTES`; caught in :func:`request`."""

    error_type = "too_large"


def _decoder(encoding: str) -> Callable[[bytes, int], bytes] | None:
    """A bounded decoder for ``Content-Encoding`` (identity, gzip, deflate); ``None`` for
    anything else (the body is then ignored)."""
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return lambda data, limit: data
    if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
        return None
    wbits = 16 + zlib.MAX_WBITS if codings[0] != "deflate" else zlib.MAX_WBITS
    inflate = zlib.decompressobj(wbits)
    return lambda data, limit: inflate.decompress(data, limit + 1)


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    """The body of ``response``, read in chunks; raises :class:`_TooLarge` as soon as more
    than ``cap`` bytes arrived or were decoded (nothing beyond is read)."""
    if response.is_stream_consumed:  # a body given whole (an in-memory transport): no stream
        if len(response.content) > cap:
            raise _TooLarge
        return response.content
    decode = _decoder(response.headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    wire = size = 0
    async for chunk in response.aiter_raw(_CHUNK):
        wire += len(chunk)
        if wire > cap:
            raise _TooLarge
        if decode is None:
            continue
        try:
            data = decode(chunk, cap - size)
        except zlib.error:
            decode = None  # undecodable: the status still counts, the body is ignored
            continue
        size += len(data)
        if size > cap:
            raise _TooLarge
        chunks.append(data)
    return b"".join(chunks)


def sink_client(
    timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` an HTTP sink shares across its requests: ``timeout``
    seconds for each of connect, write, read and pool wait (:func:`request` bounds the
    whole request too), ``User-Agent: listener/<version>`` and ``headers``, redirects not
    followed; ``transport`` replaces the network layer (tests)."""
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        transport=transport,
    )


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    label: str,
    what: str,
    timeout: float,  # noqa: ASYNC109 - the sink's configured deadline, applied here
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> httpx.Response:
    """One request through ``client`` that ends within ``timeout`` seconds overall
    (connecting, sending, waiting and reading together, so a receiver that trickles bytes
    cannot hold the sink), reading at most ``max_bytes`` of the answer (streamed; a longer
    body is not read on, its connection is closed, and the returned response has an empty
    body). The returned response holds the body already decoded. Raises
    :class:`SinkUnavailable` on a timeout or transport error (``label: what<reason>``)."""
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(method, url, content=content, headers=headers) as response:
                try:
                    body = await _read_capped(response, max_bytes)
                except _TooLarge:
                    body = b""
    except TimeoutError:
        raise SinkUnavailable(
            f"{label}: {what}timed out after {timeout:g}s (whole request)"
        ) from None
    except httpx.HTTPError as exc:
        raise transport_error(label, exc, what, timeout) from None
    kept = [(k, v) for k, v in response.headers.multi_items() if k not in _DROPPED_HEADERS]
    return httpx.Response(
        response.status_code, headers=kept, content=body, request=response.request
    )


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
    response = await request(
        client, "OPTIONS", url, label=label, what="health check: ", timeout=timeout_s
    )
    if response.status_code >= 500:
        raise SinkUnavailable(f"{label}: health check: HTTP {response.status_code}")
