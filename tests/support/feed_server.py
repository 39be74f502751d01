"""A loopback HTTP server with configurable routes, for testing HTTP clients.

``FeedServer`` binds ``127.0.0.1`` on an ephemeral port and serves from a daemon
thread. Each path has a standing :class:`Route` (status, headers, body, validators,
stalls, gzip) that a test can replace or update while the server runs; one-shot
answers can be queued in front of it. Every request is recorded.

    with FeedServer() as server:
        server.route("/feed.xml", Route(body=xml, etag='"v1"'))
        url = server.url("/feed.xml")
        ...
        server.update("/feed.xml", body=longer_xml, etag='"v2"')

Used as a pytest fixture::

    @pytest.fixture
    def server() -> Iterator[FeedServer]:
        with FeedServer() as s:
            yield s

Stalls are bounded by :data:`MAX_STALL` and end at once when the server stops.
Every connection is closed after one response (``Connection: close``).
"""

from __future__ import annotations

import dataclasses
import gzip as gzip_module
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

MAX_STALL = 30.0
"""No stall lasts longer than this many seconds, whatever a route asks for."""


@dataclass(frozen=True)
class Route:
    """How to answer requests for one path.

    ``etag`` / ``last_modified`` are sent as ``ETag`` / ``Last-Modified`` and make the
    server answer 304 to a matching ``If-None-Match`` / ``If-Modified-Since`` (the
    latter compared as the exact string). ``gzip`` compresses the body when the client
    accepts gzip. ``stall_before_headers`` sleeps before anything is sent;
    ``stall_after_headers`` sends the status line, headers and the first
    ``stall_after_bytes`` bytes of the body, then sleeps before the rest.
    ``content_length=False`` omits ``Content-Length`` (the body ends when the
    connection closes). ``headers`` are sent as given (after the ones above).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/xml"
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    stall_before_headers: float = 0.0
    stall_after_headers: float = 0.0
    stall_after_bytes: int = 0
    content_length: bool = True


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, and what it answered."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int
    response_headers: dict[str, str]


class _Server(LoopbackHTTPServer):
    owner: FeedServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_POST(self) -> None:
        self._answer(send_body=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _answer(self, send_body: bool) -> None:
        self.close_connection = True
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        request_body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        request_headers = {k.lower(): v for k, v in self.headers.items()}
        route = owner._next_route(parts.path)
        status, headers, body = _render(route, request_headers)
        owner._record(
            RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers=request_headers,
                body=request_body,
                status=status,
                response_headers={k.lower(): v for k, v in headers},
            )
        )
        try:
            if route is not None and route.stall_before_headers > 0:
                owner._stall(route.stall_before_headers)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if not send_body:
                return
            if route is not None and route.stall_after_headers > 0:
                head = body[: route.stall_after_bytes]
                self.wfile.write(head)
                self.wfile.flush()
                owner._stall(route.stall_after_headers)
                if owner._stopping.is_set():
                    return
                body = body[len(head) :]
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            # The client gave up (timeout, size cap): nothing to report.
            self.close_connection = True


def _render(
    route: Route | None, request: dict[str, str]
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body for ``route`` given the request headers."""
    if route is None:
        body = b"not found\n"
        return 404, _base_headers("text/plain", len(body)), body
    headers: list[tuple[str, str]] = []
    validators: list[tuple[str, str]] = []
    if route.etag is not None:
        validators.append(("ETag", route.etag))
    if route.last_modified is not None:
        validators.append(("Last-Modified", route.last_modified))
    if route.status == 200 and _not_modified(route, request):
        return 304, [*validators, ("Connection", "close")], b""
    body = route.body
    if route.gzip and "gzip" in request.get("accept-encoding", "").lower():
        body = gzip_module.compress(body)
        headers.append(("Content-Encoding", "gzip"))
        headers.append(("Vary", "Accept-Encoding"))
    if route.content_type is not None:
        headers.append(("Content-Type", route.content_type))
    if route.content_length:
        headers.append(("Content-Length", str(len(body))))
    headers.extend(validators)
    headers.append(("Connection", "close"))
    headers.extend(route.headers.items())
    return route.status, headers, body


def _not_modified(route: Route, request: dict[str, str]) -> bool:
    if_none_match = request.get("if-none-match")
    if if_none_match is not None and route.etag is not None:
        tags = {tag.strip() for tag in if_none_match.split(",")}
        return route.etag in tags or "*" in tags
    if_modified_since = request.get("if-modified-since")
    return (
        if_none_match is None
        and if_modified_since is not None
        and route.last_modified is not None
        and if_modified_since.strip() == route.last_modified
    )


def _base_headers(content_type: str, length: int) -> list[tuple[str, str]]:
    return [
        ("Content-Type", content_type),
        ("Content-Length", str(length)),
        ("Connection", "close"),
    ]


class FeedServer(LoopbackServer):
    """A loopback HTTP server; see the module docstring. Thread-safe."""

    handler_class = _Handler
    server_class = _Server

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._queued: dict[str, deque[Route]] = {}
        self._requests: list[RecordedRequest] = []

    # ------------------------------------------------------------------ lifecycle

    def url(self, path: str = "/") -> str:
        """Absolute URL of ``path`` (which may carry a query) on this server."""
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    # ------------------------------------------------------------------ routes

    def route(self, path: str, route: Route | None = None, /, **fields: Any) -> Route:
        """Set the standing answer for ``path`` (a :class:`Route`, or its fields)."""
        new = dataclasses.replace(route or Route(), **fields)
        with self._lock:
            self._routes[path] = new
        return new

    def update(self, path: str, **fields: Any) -> Route:
        """Change some fields of the standing route of ``path`` (e.g. ``body=``)."""
        with self._lock:
            new = dataclasses.replace(self._routes[path], **fields)
            self._routes[path] = new
        return new

    def set_body(self, path: str, body: bytes, *, etag: str | None = None) -> Route:
        """Replace the body of ``path``'s route, and its ``etag`` when given."""
        if etag is None:
            return self.update(path, body=body)
        return self.update(path, body=body, etag=etag)

    def enqueue(self, path: str, *routes: Route) -> None:
        """Answer the next requests for ``path`` with ``routes``, in order, before
        going back to the standing route."""
        with self._lock:
            self._queued.setdefault(path, deque()).extend(routes)

    def remove(self, path: str) -> None:
        """Forget ``path`` (it answers 404 again)."""
        with self._lock:
            self._routes.pop(path, None)
            self._queued.pop(path, None)

    # ------------------------------------------------------------------ records

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """The recorded requests for ``path``."""
        return [r for r in self.requests if r.path == path]

    # ------------------------------------------------------------------ internals

    def _next_route(self, path: str) -> Route | None:
        with self._lock:
            queue = self._queued.get(path)
            if queue:
                return queue.popleft()
            return self._routes.get(path)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _stall(self, seconds: float) -> None:
        self._stopping.wait(min(max(seconds, 0.0), MAX_STALL))
