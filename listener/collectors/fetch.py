"""A small blocking HTTP GET for collectors, with the limits a daemon needs.

:class:`HttpFetcher` wraps one :class:`httpx.Client`. Every request has connect and
read timeouts and an overall deadline, follows a bounded number of redirects, and
streams the body under a byte cap (counted both on the wire and after gzip/deflate
decoding, so a compression bomb is stopped early). Every failure is translated here
into the :mod:`listener.errors` collector tree; nothing from httpx escapes.

Error messages name a URL only as ``scheme://host[:port]/path``: query strings and
user info may carry tokens and never appear.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import httpx

from listener import __version__
from listener.collectors.redirects import MAX_REDIRECTS, Resolver, refusal, resolve_host
from listener.config.schema import SourceBase
from listener.errors import (
    CollectorError,
    MalformedResponse,
    RateLimited,
    RedirectRefused,
    SourceRejected,
    SourceUnavailable,
)
from listener.retry_after import retry_after_from_headers

DEFAULT_USER_AGENT = f"listener/{__version__}"
"""Sent when the caller gives no ``user_agent``."""

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """A completed GET. ``url`` is the final URL after redirects; ``headers`` has
    lower-case keys (repeated headers joined with ``", "``) and describes the decoded
    ``body``: ``content-encoding`` and ``content-length`` are dropped once the body
    has been decompressed. ``body`` is empty for 304."""

    status: int
    url: str
    headers: dict[str, str]
    body: bytes


def redact_url(url: str | httpx.URL) -> str:
    """``scheme://host[:port]/path`` of ``url``: no user info, query or fragment."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return f"{scheme}{netloc}{parts.path}"


def _scrub(text: str, *urls: str) -> str:
    """Remove the secret-bearing parts of ``urls`` from ``text`` (a library's message)."""
    for url in urls:
        if not url:
            continue
        text = text.replace(url, redact_url(url))
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        if parts.query:
            text = text.replace("?" + parts.query, "?…")
        if parts.fragment:
            text = text.replace("#" + parts.fragment, "#…")
        userinfo = parts.netloc.rpartition("@")[0]
        if userinfo:
            text = text.replace(userinfo + "@", "…@")
    return text


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from a response's headers (lower-case keys; ``now`` in epoch
    seconds): :func:`listener.retry_after.retry_after_from_headers`, the one parser
    sinks and collectors share (capped at one hour; garbage ignored)."""
    return retry_after_from_headers(headers, now)


def _as_float(value: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return number


def send_following(
    client: httpx.Client,
    request: httpx.Request,
    *,
    max_redirects: int = MAX_REDIRECTS,
    resolve: Resolver = resolve_host,
) -> httpx.Response:
    """Send ``request`` (streamed) and follow at most ``max_redirects`` redirects here,
    not in httpx, so that each target is checked by
    :func:`~listener.collectors.redirects.refusal` (against ``request``'s URL) before
    anything connects to it. Returns the final response, open (close it); raises
    :class:`~listener.errors.RedirectRefused` for a refused target and
    ``httpx.TooManyRedirects`` past the limit."""
    origin = str(request.url)
    for _ in range(max_redirects + 1):
        response = client.send(request, stream=True, follow_redirects=False)
        following = response.next_request
        if following is None:
            return response
        response.close()
        reason = refusal([origin], str(following.url), resolve)
        if reason is not None:
            raise RedirectRefused(
                f"{redact_url(origin)}: redirect to {redact_url(following.url)} refused: {reason}"
            )
        request = following
    raise httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=request)


class _Decoder:
    """Incremental gzip/deflate/identity decoder that never yields more than asked for."""

    def __init__(self, encoding: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1:
            raise MalformedResponse(f"unsupported Content-Encoding {encoding!r}")
        self.coding = codings[0] if codings else None
        self._zlib: zlib._Decompress | None = None
        self._deflate_started = False
        if self.coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        elif self.coding is not None:
            raise MalformedResponse(f"unsupported Content-Encoding {encoding!r}")

    def decode(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; the result is at most ``limit + 1`` bytes (more means over cap)."""
        if self._zlib is None:
            return data
        try:
            if self.coding == "deflate" and not self._deflate_started:
                self._deflate_started = True
                try:
                    return self._zlib.decompress(data, limit + 1)
                except zlib.error:
                    # Some servers send raw deflate without the zlib wrapper.
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._zlib.decompress(data, limit + 1)
        except zlib.error as exc:
            raise MalformedResponse(f"could not decode {self.coding} body: {exc}") from exc

    def flush(self) -> bytes:
        if self._zlib is None:
            return b""
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            raise MalformedResponse(f"could not decode {self.coding} body: {exc}") from exc


class HttpFetcher:
    """Blocking GETs with timeouts, a redirect limit and policy, and a body size cap.

    ``timeout`` (seconds) bounds connecting and each read; reading the body stops once
    ``total_timeout`` (default ``3 * timeout``) has passed since the request began, so
    a server that trickles bytes cannot hold a worker for long. ``max_bytes`` caps the body
    both as received and as decoded. ``transport`` replaces the network (tests).

    :meth:`get` raises only :class:`~listener.errors.CollectorError` subclasses:
    transport failures, timeouts, 5xx, 408 and unexpected 1xx/3xx →
    :class:`SourceUnavailable`; 429 → :class:`RateLimited` (with ``retry_after``);
    other 4xx and unusable URLs → :class:`SourceRejected`; an oversized or undecodable
    body → :class:`MalformedResponse`. 2xx and 304 are returned. At most
    ``max_redirects`` redirects are followed, each checked before it is followed
    (:func:`send_following`; ``resolve`` looks host names up): one to a loopback,
    private, link-local … address the URL given to :meth:`get` is not →
    :class:`~listener.errors.RedirectRefused`.
    ``trust_env`` honours the usual proxy and CA bundle environment variables.
    One fetcher may be shared by threads (``httpx.Client`` is thread-safe).
    """

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        user_agent: str | None = None,
        transport: httpx.BaseTransport | None = None,
        total_timeout: float | None = None,
        max_redirects: int = MAX_REDIRECTS,
        trust_env: bool = True,
        clock: Callable[[], float] = time.time,
        resolve: Resolver = resolve_host,
    ) -> None:
        if timeout <= 0 or max_bytes <= 0:
            raise ValueError("timeout and max_bytes must be positive")
        self.max_bytes = max_bytes
        self.total_timeout = total_timeout if total_timeout is not None else 3 * timeout
        self._clock = clock
        self._max_redirects = max_redirects
        self._resolve = resolve
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            max_redirects=max_redirects,
            transport=transport,
            headers={
                "User-Agent": user_agent or DEFAULT_USER_AGENT,
                "Accept-Encoding": "gzip, deflate",
            },
            trust_env=trust_env,
        )

    def get(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        keep: Collection[int] = (),
    ) -> FetchResponse:
        """GET ``url`` with extra request ``headers``; see the class docstring for errors.
        A status in ``keep`` (4xx an API explains in its body, say) is returned with its
        body, read under the same cap, for the caller to map."""
        where = redact_url(url)
        try:
            request = self._client.build_request("GET", url, headers=dict(headers or {}))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
            raise SourceRejected(
                f"{where}: unusable URL or headers ({type(exc).__name__})"
            ) from None
        deadline = time.monotonic() + self.total_timeout
        final = url
        try:
            response = send_following(
                self._client, request, max_redirects=self._max_redirects, resolve=self._resolve
            )
            try:
                final = str(response.url)
                return self._finish(response, where, deadline, keep)
            finally:
                response.close()
        except CollectorError:
            raise
        except httpx.TimeoutException as exc:
            waited = self._client.timeout.read
            raise SourceUnavailable(f"{where}: timed out after {waited:g}s") from exc
        except httpx.UnsupportedProtocol as exc:
            message = _scrub(str(exc), url, final)
            raise SourceRejected(f"{where}: unsupported URL or redirect: {message}") from exc
        except httpx.TooManyRedirects as exc:
            raise SourceUnavailable(f"{where}: too many redirects") from exc
        except httpx.DecodingError as exc:
            raise MalformedResponse(f"{where}: could not decode the body") from exc
        except (httpx.HTTPError, httpx.StreamError) as exc:
            message = _scrub(str(exc), url, final) or "no details"
            raise SourceUnavailable(f"{where}: {type(exc).__name__}: {message}") from exc
        except httpx.InvalidURL as exc:
            raise SourceRejected(f"{where}: unusable redirect URL") from exc
        except OSError as exc:
            detail = exc.strerror or "no details"
            raise SourceUnavailable(f"{where}: {type(exc).__name__}: {detail}") from exc

    def _finish(
        self, response: httpx.Response, where: str, deadline: float, keep: Collection[int] = ()
    ) -> FetchResponse:
        status = response.status_code
        headers = {k.lower(): v for k, v in response.headers.items()}
        final = str(response.url)
        where_final = redact_url(final)
        if where_final != where:
            where = f"{where} (redirected to {where_final})"
        if status == 304:
            return FetchResponse(status, final, headers, b"")
        if status not in keep:
            self._raise_for_status(status, headers, where)
        body, decoded = self._read_capped(response, headers, where, deadline)
        if decoded:
            headers.pop("content-encoding", None)
            headers.pop("content-length", None)
        return FetchResponse(status, final, headers, body)

    def _raise_for_status(self, status: int, headers: Mapping[str, str], where: str) -> None:
        if status == 429:
            retry_after = parse_retry_after(headers, self._clock())
            suffix = f", retry after {retry_after:g}s" if retry_after is not None else ""
            raise RateLimited(f"{where}: HTTP 429 rate limited{suffix}", retry_after)
        if status == 408 or status >= 500:
            raise SourceUnavailable(f"{where}: HTTP {status}")
        if 400 <= status < 500:
            raise SourceRejected(f"{where}: HTTP {status}")
        if not 200 <= status < 300:
            raise SourceUnavailable(f"{where}: unexpected HTTP {status}")

    def _read_capped(
        self, response: httpx.Response, headers: dict[str, str], where: str, deadline: float
    ) -> tuple[bytes, bool]:
        cap = self.max_bytes
        decoder = _Decoder(headers.get("content-encoding", ""))
        declared = _as_float(headers.get("content-length", "").strip())
        if decoder.coding is None and declared is not None and declared > cap:
            raise MalformedResponse(f"{where}: body of {int(declared)} bytes exceeds {cap} bytes")
        if response.is_stream_consumed:
            # The transport handed over a complete, already decoded body (e.g.
            # httpx.MockTransport with ``content=``): only the cap is left to check.
            body = response.content
            if len(body) > cap:
                raise MalformedResponse(f"{where}: body exceeds {cap} bytes")
            return body, decoder.coding is not None
        chunks: list[bytes] = []
        wire = size = 0
        raw: Iterator[bytes] = response.iter_raw(_CHUNK)
        for chunk in raw:
            wire += len(chunk)
            if wire > cap:
                raise MalformedResponse(f"{where}: body exceeds {cap} bytes")
            data = decoder.decode(chunk, cap - size)
            size += len(data)
            if size > cap:
                raise MalformedResponse(f"{where}: decoded body exceeds {cap} bytes")
            chunks.append(data)
            if time.monotonic() > deadline:
                raise SourceUnavailable(
                    f"{where}: body not received within {self.total_timeout:g}s"
                )
        tail = decoder.flush()
        size += len(tail)
        if size > cap:
            raise MalformedResponse(f"{where}: decoded body exceeds {cap} bytes")
        chunks.append(tail)
        return b"".join(chunks), decoder.coding is not None

    def close(self) -> None:
        """Close the connection pool. Idempotent."""
        self._client.close()

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def source_fetcher(config: SourceBase, transport: httpx.BaseTransport | None = None) -> HttpFetcher:
    """The fetcher of a source: its ``timeout``, ``max_bytes`` and ``user_agent``
    (default :data:`DEFAULT_USER_AGENT`); ``transport`` replaces the network (tests)."""
    return HttpFetcher(
        timeout=config.timeout.total_seconds(),
        max_bytes=config.max_bytes,
        user_agent=config.user_agent or DEFAULT_USER_AGENT,
        transport=transport,
    )
