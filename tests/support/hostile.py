"""A loopback HTTP server that answers every request in a hostile way, for testing that
clients bound their requests: it trickles its answer one byte at a time, or floods a
huge body in chunks.

    with HostileServer(trickle=0.5) as server:        # a byte every 0.5 s, for a minute
        ...
    with HostileServer(flood=50 * 1024 * 1024, status=500) as server:
        ...
        assert server.wait_closed()                   # the client hung up early
        assert server.written < server.flood

Any method and path is answered the same way (the request body is read first). Every
connection is closed after one answer. Trickles end at once when the server stops.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

TRICKLE_BYTES = 120
"""How many body bytes a trickle announces (and would send, given the time)."""


class _Server(LoopbackHTTPServer):
    owner: HostileServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _answer(self) -> None:
        self.close_connection = True
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        owner.requests += 1
        try:
            size = owner.flood if owner.flood else TRICKLE_BYTES
            self.send_response(owner.status)
            self.send_header("Content-Type", owner.content_type)
            self.send_header("Content-Length", str(size))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            if owner.flood:
                chunk = b"x" * 65536
                while owner.written < size:
                    part = chunk[: size - owner.written]
                    self.wfile.write(part)
                    owner.written += len(part)
                self.wfile.flush()
                owner.finished.set()
                return
            for _ in range(size):
                if owner._stopping.wait(owner.trickle):
                    return
                self.wfile.write(b" ")
                self.wfile.flush()
                owner.written += 1
            owner.finished.set()
        except OSError:
            owner.closed_early.set()

    do_GET = do_POST = do_PUT = do_OPTIONS = do_HEAD = _answer


class HostileServer(LoopbackServer):
    """See the module docstring. ``status`` is answered with a ``Content-Length`` of
    ``flood`` bytes (sent as fast as the client reads) or, without ``flood``, of
    :data:`TRICKLE_BYTES` bytes sent one every ``trickle`` seconds."""

    handler_class = _Handler
    server_class = _Server

    def __init__(
        self,
        *,
        status: int = 200,
        trickle: float = 0.5,
        flood: int = 0,
        content_type: str = "application/json",
    ) -> None:
        super().__init__()
        self.status = status
        self.trickle = trickle
        self.flood = flood
        self.content_type = content_type
        self.requests = 0
        self.written = 0
        self.finished = threading.Event()
        """Set when the whole body was written."""
        self.closed_early = threading.Event()
        """Set when the client closed the connection before the body was all written."""

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """Whether the client hung up before the whole body was written, waiting up to
        ``timeout`` seconds for the server's writes to notice."""
        return self.closed_early.wait(timeout) and not self.finished.is_set()
