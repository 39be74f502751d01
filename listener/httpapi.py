"""The HTTP endpoint of the daemon and of the workers: ``/metrics`` and the routes they add,
an ASGI application (Starlette) served by uvicorn on the caller's event loop.

uvicorn parses HTTP (h11) and bounds what a client sends: the request line and header
section together (:data:`MAX_HEADER_BYTES`; a request over it is refused and its
connection closed), the connections served at once (:data:`MAX_CONNECTIONS`, 503 past
it) and idle keep-alive connections (:data:`KEEP_ALIVE` seconds). The body is bounded
here (:data:`MAX_BODY`, 413, never read past it). Every answer carries the standard
reason phrase; errors are JSON: ``{"error": ..., "field": ...}``.

The daemon keeps its own signal handling: the server is started and stopped by its
owner (:meth:`HttpApi.start`, :meth:`HttpApi.stop`), never by uvicorn's signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

from listener.errors import RequestError, RequestTooLarge

log = structlog.get_logger("listener.http")

MAX_BODY = 64 * 1024
"""The largest request body accepted (413 above it); a body is never read past it."""
DRAIN_BODY = 1024 * 1024
"""A body over :data:`MAX_BODY` but within this is read and discarded before the 413, so
the client, still sending, reads the answer instead of a reset connection."""
MAX_HEADER_BYTES = 16 * 1024
"""The largest request line and header section accepted, together, when they arrive in
pieces (h11's bound on an incomplete request)."""
MAX_CONNECTIONS = 200
"""Connections served at once; more are answered 503."""
KEEP_ALIVE = 5
"""Seconds an idle keep-alive connection is kept open."""
PREFIX = "{rest:path}"
"""How a prefix route's pattern ends (everything under its path)."""


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
    """Lower-case names; repeated headers joined with ``, ``."""
    body: bytes
    client: str | None = None
    """The peer's address (None when unknown)."""
    secure: bool = False
    """Whether the request came over TLS (``https``, or ``X-Forwarded-Proto: https`` from
    a proxy in front)."""

    def wants_html(self) -> bool:
        """Whether the client asks for a page (a browser) rather than JSON."""
        return "text/html" in self.headers.get("accept", "")


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
        self.app = Starlette(exception_handlers={HTTPException: _http_error})
        """The ASGI application."""
        self._server: uvicorn.Server | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.address: tuple[str, int] | None = None
        """The bound (host, port) while serving."""
        self._handlers: dict[tuple[str, str], Handler] = {}
        """Per (method, path pattern), what answers it; for ``GET``, unless a browser asks
        and ``_pages`` has a page for the pattern."""
        self._pages: dict[str, Handler] = {}
        self.route("GET", "/metrics", self._metrics)

    def route(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        """Serve ``method path`` (again: ``handler`` answers it from now on); with
        ``prefix``, every path under ``path`` (the handler reads the rest from
        ``request.path``). ``path`` may name one segment as a parameter
        (``/incidents/{id}/chart.png``; read from ``request.path`` too): such a path,
        like any but a prefix, is served ahead of a prefix that also covers it, whichever
        was registered first."""
        pattern = path + PREFIX if prefix else path
        self._serve(method, pattern)
        self._handlers[(method, pattern)] = handler

    def page(self, path: str, handler: Handler, *, prefix: bool = False) -> None:
        """Serve ``GET path`` to browsers with ``handler`` (a page): where a JSON route
        has the same path, whichever was registered first, a request that accepts
        ``text/html`` gets the page and any other the JSON."""
        pattern = path + PREFIX if prefix else path
        self._serve("GET", pattern)
        self._pages[pattern] = handler

    def _serve(self, method: str, pattern: str) -> None:
        """One Starlette route per (method, pattern), its handler chosen per request."""
        if (method, pattern) in self._handlers or (method == "GET" and pattern in self._pages):
            return

        def choose(request: Request) -> Handler:
            page = self._pages.get(pattern) if method == "GET" else None
            handler = self._handlers.get((method, pattern))
            if page is not None and (handler is None or request.wants_html()):
                return page
            assert handler is not None
            return handler

        route = Route(pattern, _endpoint(choose), methods=[method])
        routes = self.app.router.routes
        if pattern.endswith(PREFIX):
            routes.append(route)
            return
        # Starlette answers with the first route that matches: a prefix goes last
        first_prefix = next(
            (i for i, r in enumerate(routes) if isinstance(r, Route) and r.path.endswith(PREFIX)),
            len(routes),
        )
        routes.insert(first_prefix, route)

    async def _metrics(self, request: Request) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Start listening; returns the bound address (port 0 picks a free one). Raises
        ``OSError`` when the address cannot be bound."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            http="h11",
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        self._server = server
        self._loop_task = asyncio.create_task(server.main_loop(), name="http")
        bound = sock.getsockname()
        self.address = (str(bound[0]), int(bound[1]))
        return self.address

    async def stop(self) -> None:
        server, task = self._server, self._loop_task
        if server is None or task is None:
            return
        self._server = self._loop_task = self.address = None
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 2)
        server.config.timeout_graceful_shutdown = 2
        with contextlib.suppress(Exception):
            await server.shutdown()


def _endpoint(
    choose: Callable[[Request], Handler],
) -> Callable[[StarletteRequest], Awaitable[StarletteResponse]]:
    """A Starlette endpoint: the request read (its body bounded), answered by the handler
    ``choose`` gives for it, its errors answered (a RequestError with its status, anything
    else 500)."""

    async def endpoint(request: StarletteRequest) -> StarletteResponse:
        try:
            ours = await _request(request)
            response = await choose(ours)(ours)
        except ClientDisconnect:  # gone before its request was whole: nobody to answer
            return StarletteResponse(status_code=400)
        except RequestError as exc:
            response = Response.error(exc)
        except Exception as exc:  # a bug in a handler must not kill the server
            log.error(
                "http_handler_failed",
                path=request.url.path,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            response = Response.json({"error": "internal error"}, 500)
        return StarletteResponse(
            response.body, response.status, response.headers, response.content_type
        )

    return endpoint


async def _request(request: StarletteRequest) -> Request:
    """Ours, from Starlette's: RequestTooLarge (413) for a body over :data:`MAX_BODY`."""
    length = request.headers.get("content-length")
    if length is not None and int(length) > MAX_BODY:  # h11 checked it is a number
        if int(length) <= DRAIN_BODY:
            async for _ in request.stream():
                pass
        raise RequestTooLarge(
            f"the body is {length[:40]} bytes; the limit is {MAX_BODY} bytes", status=413
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise RequestTooLarge(f"the body is over the limit of {MAX_BODY} bytes", status=413)
        chunks.append(chunk)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    secure = request.url.scheme == "https" or headers.get("x-forwarded-proto") == "https"
    return Request(
        request.method,
        request.url.path,
        request.url.query,
        headers,
        b"".join(chunks),
        request.client.host if request.client is not None else None,
        secure,
    )


async def _http_error(request: StarletteRequest, exc: Exception) -> StarletteResponse:
    """Starlette's own errors (no such path: 404; a known path, another method: 405 with
    ``Allow``), as JSON."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = headers.get("Allow", headers.get("allow", ""))
        message = f"{request.method} is not allowed here (allowed: {allowed})"
    elif exc.status_code == 404:
        message = f"no such endpoint {request.url.path[:200]!r}"
    else:
        message = str(exc.detail)
    answer = Response.json({"error": message}, exc.status_code, headers)
    return StarletteResponse(answer.body, answer.status, answer.headers, answer.content_type)
