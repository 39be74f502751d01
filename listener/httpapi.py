"""The daemon's small HTTP endpoint: ``/metrics`` and the routes the daemon adds.

A deliberately tiny HTTP/1.1 server on asyncio streams (one request per
connection) so that the daemon owns its signal handling and has no web framework
to configure. Everything a client sends is bounded: the request line
(:data:`MAX_REQUEST_LINE`, else 414), the header section (:data:`MAX_HEADER_BYTES`
and :data:`MAX_HEADER_LINES`, else 431), the body (:data:`MAX_BODY`, never read past
it, else 413; ``Content-Length`` only, 411 for chunked) and the time to send it all
(:data:`READ_TIMEOUT`, else 408). A malformed request is a 400; every answer carries
the standard reason phrase, and errors are JSON: ``{"error": ..., "field": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from listener.errors import InvalidRequest, RequestError, RequestTooLarge

log = structlog.get_logger("listener.http")

MAX_BODY = 64 * 1024
"""The largest request body accepted (413 above it); a body is never read past it."""
MAX_REQUEST_LINE = 8 * 1024
"""The longest request line (method, target, version) accepted (414 above it)."""
MAX_HEADER_BYTES = 16 * 1024
"""The largest header section accepted, all lines together (431 above it)."""
MAX_HEADER_LINES = 100
"""The most header lines accepted (431 above it)."""
READ_TIMEOUT = 10.0
"""Seconds a client has to send its whole request (408 after)."""
_LINGER_BYTES, _LINGER_SECONDS = 1024 * 1024, 2.0
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")


def reason(status: int) -> str:
    """The standard reason phrase of an HTTP status (``401`` → ``Unauthorized``)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(data, indent=2, default=str).encode() + b"\n",
            "application/json",
            headers or {},
        )

    @classmethod
    def error(cls, exc: RequestError) -> Response:
        """``{"error": ..., "field": ...}`` with the error's status."""
        body: dict[str, Any] = {"error": str(exc)}
        if exc.field is not None:
            body["field"] = exc.field
        return cls.json(body, exc.status)


Handler = Callable[[Request], Awaitable[Response]]


def parse_listen(address: str) -> tuple[str, int]:
    """``127.0.0.1:9464`` / ``:9464`` / ``[::1]:9464`` → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(
            f"invalid listen address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:9464"
        )
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class HttpApi:
    """Routes requests to handlers; serves ``/metrics`` from the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.routes: dict[tuple[str, str], Handler] = {}
        self.prefixes: list[tuple[str, str, Handler]] = []
        self._server: asyncio.Server | None = None
        self.route("GET", "/metrics", self._metrics)

    def route(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        """Serve ``method path``; with ``prefix``, every path under ``path`` (the handler
        reads the rest from ``request.path``)."""
        if prefix:
            self.prefixes.append((method, path, handler))
        else:
            self.routes[(method, path)] = handler

    async def _metrics(self, request: Request) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Start listening; returns the bound address (port 0 picks a free one)."""
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEADER_BYTES)
        sock = self._server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unread = False  # the request was refused before all of it was read
        try:
            request = await asyncio.wait_for(self._read(reader), READ_TIMEOUT)
        except RequestError as exc:
            response, unread = Response.error(exc), True
        except TimeoutError:
            response = Response.error(
                RequestError(f"the request took over {READ_TIMEOUT:g}s to arrive", status=408)
            )
        except (ConnectionError, asyncio.IncompleteReadError):
            response = Response.error(InvalidRequest("the connection closed mid-request"))
        else:
            response = await self._dispatch(request)
        try:
            head = [
                f"HTTP/1.1 {response.status} {reason(response.status)}",
                f"Content-Type: {response.content_type}",
                f"Content-Length: {len(response.body)}",
                "Connection: close",
                *(f"{k}: {v}" for k, v in response.headers.items()),
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
            await writer.drain()
            if unread:  # let the client read the answer instead of a reset (a lingering close)
                await self._linger(reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Discard what the client still sends, within a bound, so that closing with unread
        data does not reset the connection before the client has read the answer."""
        if writer.can_write_eof():
            writer.write_eof()
        discarded = 0
        with contextlib.suppress(TimeoutError, ValueError, ConnectionError):
            async with asyncio.timeout(_LINGER_SECONDS):
                while discarded < _LINGER_BYTES and (chunk := await reader.read(65536)):
                    discarded += len(chunk)

    async def _read(self, reader: asyncio.StreamReader) -> Request:
        """Read one request; :class:`RequestError` on anything malformed or over a limit."""
        try:
            raw = await reader.readline()
        except ValueError:  # no end of line within the stream's limit
            raise RequestTooLarge(
                f"the request line is over {MAX_REQUEST_LINE} bytes", status=414
            ) from None
        if len(raw) > MAX_REQUEST_LINE:
            raise RequestTooLarge(f"the request line is over {MAX_REQUEST_LINE} bytes", status=414)
        if not raw.endswith(b"\n"):
            raise InvalidRequest("the connection closed before the request line ended")
        parts = raw.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1].startswith("/"):
            raise InvalidRequest("malformed request line: expected METHOD /path HTTP/1.1")
        method, target, version = parts
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            if version.startswith("HTTP/"):
                raise RequestError(f"{version} is not supported: use HTTP/1.1", status=505)
            raise InvalidRequest("malformed request line: expected METHOD /path HTTP/1.1")
        headers = await self._headers(reader, MAX_HEADER_BYTES - len(raw))
        if "transfer-encoding" in headers:
            raise RequestError(
                "chunked request bodies are not accepted: send Content-Length", status=411
            )
        length = headers.get("content-length", "0")
        if not _DIGITS.fullmatch(length):
            raise InvalidRequest(f"Content-Length {length[:40]!r} is not a number of bytes")
        if len(length) > 18 or int(length) > MAX_BODY:
            raise RequestTooLarge(
                f"the body is {length[:40]} bytes; the limit is {MAX_BODY} bytes", status=413
            )
        body = await reader.readexactly(int(length)) if int(length) else b""
        try:
            url = urlsplit(target)
        except ValueError:
            raise InvalidRequest(f"malformed request target {target[:80]!r}") from None
        return Request(method, url.path, url.query, headers, body)

    @staticmethod
    async def _headers(reader: asyncio.StreamReader, budget: int) -> dict[str, str]:
        too_large = RequestTooLarge(
            f"the header section is over {MAX_HEADER_BYTES} bytes or {MAX_HEADER_LINES} lines",
            status=431,
        )
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES + 1):
            try:
                raw = await reader.readline()
            except ValueError:
                raise too_large from None
            budget -= len(raw)
            if budget < 0:
                raise too_large
            if raw in (b"\r\n", b"\n"):
                return headers
            if not raw.endswith(b"\n"):
                raise InvalidRequest("the connection closed before the headers ended")
            line = raw.decode("latin-1").rstrip("\r\n")
            name, sep, value = line.partition(":")
            value = value.strip(" \t")
            if not sep or not _TOKEN.fullmatch(name) or "\r" in value or "\x00" in value:
                raise InvalidRequest(f"malformed header line {line[:80]!r}")
            name = name.lower()
            if name not in headers:
                headers[name] = value
            elif name in ("content-length", "transfer-encoding", "authorization", "host"):
                if headers[name] != value:
                    raise InvalidRequest(f"conflicting {name} headers")
            else:
                headers[name] = f"{headers[name]}, {value}"
        raise too_large

    async def _dispatch(self, request: Request) -> Response:
        path = request.path
        handler = self.routes.get((request.method, path)) or next(
            (h for m, p, h in self.prefixes if m == request.method and path.startswith(p)), None
        )
        if handler is None:
            allowed = sorted(
                {m for m, p in self.routes if p == path}
                | {m for m, p, _ in self.prefixes if path.startswith(p)}
            )
            if allowed:
                return Response.json(
                    {
                        "error": f"{request.method} is not allowed here (allowed: "
                        f"{', '.join(allowed)})"
                    },
                    405,
                    {"Allow": ", ".join(allowed)},
                )
            return Response.json({"error": f"no such endpoint {path[:200]!r}"}, 404)
        try:
            return await handler(request)
        except RequestError as exc:
            return Response.error(exc)
        except Exception as exc:  # a bug in a handler must not kill the server
            log.error(
                "http_handler_failed", path=path, error_type=type(exc).__name__, error=str(exc)
            )
            return Response.json({"error": "internal error"}, 500)
