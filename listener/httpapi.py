"""The daemon's small HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz``.

A deliberately tiny HTTP/1.1 server on asyncio streams (one request per
connection, bounded header size, read timeouts) so that the daemon owns its
signal handling and has no web framework to configure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = structlog.get_logger("listener.http")

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


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
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(
            status, json.dumps(data, indent=2, default=str).encode() + b"\n", "application/json"
        )


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
        self._server = await asyncio.start_server(self._handle, host, port, limit=16384)
        sock = self._server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await asyncio.wait_for(self._respond(reader), 10)
        except (
            TimeoutError,
            asyncio.IncompleteReadError,
            ConnectionError,
            ValueError,
            asyncio.LimitOverrunError,
        ):
            response = Response(400, b"bad request\n")
        try:
            head = [
                f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'OK')}",
                f"Content-Type: {response.content_type}",
                f"Content-Length: {len(response.body)}",
                "Connection: close",
                *(f"{k}: {v}" for k, v in response.headers.items()),
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> Response:
        line = (await reader.readline()).decode("latin-1").strip()
        parts = line.split(" ")
        if len(parts) != 3:
            return Response(400, b"bad request\n")
        method, target, _ = parts
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
            if len(headers) > 100:
                return Response(400, b"too many headers\n")
        length = int(headers.get("content-length", "0") or 0)
        if length > 1_000_000:
            return Response(413, b"payload too large\n")
        body = await reader.readexactly(length) if length else b""
        url = urlsplit(target)
        request = Request(method, url.path, url.query, headers, body)
        handler = self.routes.get((method, url.path)) or next(
            (h for m, p, h in self.prefixes if m == method and url.path.startswith(p)), None
        )
        if handler is None:
            known = [p for _, p in self.routes] + [p for _, p, _ in self.prefixes]
            if any(url.path == p or (p.endswith("/") and url.path.startswith(p)) for p in known):
                return Response(405, b"method not allowed\n")
            return Response(404, b"not found\n")
        try:
            return await handler(request)
        except Exception as exc:  # a bug in a handler must not kill the server
            log.error(
                "http_handler_failed", path=url.path, error_type=type(exc).__name__, error=str(exc)
            )
            return Response(500, b"internal error\n")
