"""What the loopback fakes of JSON APIs share (Telegram's Bot API, Opsgenie): a handler
that reads each request, asks its fake for the answer, records both and writes the JSON
answer; and a script of answers that go before the fake's own logic.

A fake subclasses :class:`JsonApiFake` and implements :meth:`JsonApiFake.handle`
(``Call`` in, ``(status, headers, body)`` out, under the fake's lock). Scripted answers
(:meth:`JsonApiFake.script`) are taken first, in order, by every request that
:meth:`JsonApiFake.scripted` says they apply to. Every connection is closed after one
response.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

Answer = tuple[int, dict[str, str], Any]
"""``(status, headers, JSON body or None)``."""


@dataclass(frozen=True)
class Call:
    """One request as a fake sees it (header names lower-case; ``json`` is the parsed
    body, or None when it is empty or not JSON)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    json: Any
    status: int = 0
    """What was answered (set when recorded)."""


@dataclass
class Reply:
    """One scripted answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


class _Server(LoopbackHTTPServer):
    owner: JsonApiFake


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self) -> None:
        self.close_connection = True
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        parts = urlsplit(self.path)
        call = Call(
            self.command,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in self.headers.items()},
            raw,
            parsed,
        )
        status, headers, body = self.server.owner._answer(call)
        data = b"" if body is None else json.dumps(body).encode()
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass


class JsonApiFake(LoopbackServer):
    """A loopback JSON API; see the module docstring. Thread-safe."""

    handler_class = _Handler
    server_class = _Server

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._calls: list[Call] = []

    @property
    def url(self) -> str:
        """The base URL to configure as ``api_url``."""
        return self.base_url

    def script(self, *replies: Reply) -> None:
        """Answer the next requests that :meth:`scripted` accepts with ``replies``."""
        with self.lock:
            self._script.extend(replies)

    def scripted(self, call: Call) -> bool:
        """Whether a scripted answer applies to ``call`` (default: every request)."""
        return True

    def handle(self, call: Call) -> Answer:
        """The fake's own answer to ``call`` (called under :attr:`lock`)."""
        raise NotImplementedError

    def _answer(self, call: Call) -> Answer:
        with self.lock:
            if self._script and self.scripted(call):
                reply = self._script.popleft()
                answer: Answer = (reply.status, reply.headers, reply.body)
            else:
                answer = self.handle(call)
            self._calls.append(replace(call, status=answer[0]))
            return answer

    @property
    def calls(self) -> list[Call]:
        """Every request so far (any method, any answer), in arrival order."""
        with self.lock:
            return list(self._calls)
