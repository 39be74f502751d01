"""A loopback fake of PagerDuty's Events API v2 that records events and keeps alerts.

``FakePagerDuty`` binds ``127.0.0.1`` on an ephemeral port and serves from a daemon
thread. Point a PagerDuty sink's ``api_url`` at :attr:`FakePagerDuty.url`::

    with FakePagerDuty() as pd:
        pd.respond(429, retry_after="30")     # the next event gets 429 + Retry-After
        pd.respond(500, times=2)              # the two after it get 500
        pd.respond(400)                       # then one gets PagerDuty's "invalid event"
        ...
        assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]
        assert pd.alerts["inc-1"].status == "resolved"

``POST /v2/enqueue`` checks an event the way PagerDuty documents it (a routing key of 32
characters, ``event_action`` one of trigger/acknowledge/resolve, a ``dedup_key`` of at
most 255 characters, for a trigger ``payload.summary`` up to 1024 characters,
``payload.source`` and ``payload.severity`` in critical/error/warning/info) and answers
``400`` with PagerDuty's error body when it does not hold, else ``202`` with ``{"status":
"success", "message": "Event processed", "dedup_key": ...}``. Accepted events change
:attr:`FakePagerDuty.alerts` by PagerDuty's rules: a trigger opens an alert unless one with
the dedup key is open (then it is appended to it); acknowledge and resolve apply to an
open alert and are dropped otherwise; a trigger after a resolve opens a new alert.
``OPTIONS`` (a health check) is answered ``204``; every other path ``404``.

Scripted answers (:meth:`respond`) apply to enqueue POSTs, in order, before the checks;
an event answered that way is recorded in :attr:`requests` but is not an accepted event.
Every connection is closed after one response.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefSECRET"
"""A well-formed (32 characters) routing key for tests; ``"SECRET"`` makes leaks easy to grep."""

SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


@dataclass
class Reply:
    """One scripted answer to an enqueue POST."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class PdAlert:
    """A PagerDuty alert as the fake keeps it: its dedup key, status and events."""

    dedup_key: str
    status: str
    summary: str
    severity: str
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    """One request as the fake saw it (header names lower-case)."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    status: int


def _problems(event: Any) -> list[str]:
    """What PagerDuty would complain about in ``event`` (empty: valid)."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= 255):
        errors.append("'dedup_key' must be a string of 1 to 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is required for acknowledge and resolve events")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
                errors.append("'payload.summary' must be a string of 1 to 1024 characters")
            if not isinstance(payload.get("source"), str) or not payload["source"]:
                errors.append("'payload.source' is missing")
            if payload.get("severity") not in SEVERITIES:
                errors.append("'payload.severity' is invalid")
            details = payload.get("custom_details")
            if details is not None and not isinstance(details, dict):
                errors.append("'payload.custom_details' must be an object")
        links = event.get("links", [])
        if not all(isinstance(x, dict) and isinstance(x.get("href"), str) for x in links):
            errors.append("every link needs an 'href'")
    return errors


class _Server(LoopbackHTTPServer):
    owner: FakePagerDuty


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_OPTIONS(self) -> None:
        self._answer(204, {"Allow": "POST, OPTIONS"}, None, b"")

    def do_GET(self) -> None:
        self._answer(404, {}, {"status": "not found"}, b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if self.path.split("?", 1)[0] != "/v2/enqueue":
            self._answer(404, {}, {"status": "not found"}, raw)
            return
        status, headers, body = self.server.owner._handle(raw)
        self._answer(status, headers, body, raw)

    def _answer(self, status: int, headers: dict[str, str], body: Any, raw: bytes) -> None:
        self.close_connection = True
        self.server.owner._record(
            Request(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                raw,
                status,
            )
        )
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


class FakePagerDuty(LoopbackServer):
    """A loopback Events API v2; see the module docstring. Thread-safe."""

    handler_class = _Handler
    server_class = _Server
    refuse_second_start = False

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._requests: list[Request] = []
        self._events: list[dict[str, Any]] = []
        self._alerts: dict[str, list[PdAlert]] = {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The base URL to configure as ``api_url``."""
        return self.base_url

    # ------------------------------------------------------------------ script

    def respond(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: str | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``times`` enqueue POSTs with ``status`` (PagerDuty's error body
        for a 400 unless ``body`` is given; ``Retry-After`` when given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if body is None and status == 400:
            body = {"status": "invalid event", "message": "Event object is invalid"}
        with self._lock:
            self._script.extend(Reply(status, headers, body) for _ in range(times))

    # ------------------------------------------------------------------ the API

    def _handle(self, raw: bytes) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            if self._script:
                reply = self._script.popleft()
                return reply.status, reply.headers, reply.body
            try:
                event = json.loads(raw)
            except ValueError:
                return 400, {}, {"status": "invalid event", "message": "Malformed JSON"}
            errors = _problems(event)
            if errors:
                body = {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": errors,
                }
                return 400, {}, body
            self._events.append(event)
            dedup = self._apply(event)
            return 202, {}, {"status": "success", "message": "Event processed", "dedup_key": dedup}

    def _apply(self, event: dict[str, Any]) -> str:
        dedup = str(event.get("dedup_key") or f"generated-{len(self._events)}")
        history = self._alerts.setdefault(dedup, [])
        current = history[-1] if history and history[-1].status != "resolved" else None
        action = event["event_action"]
        if action == "trigger":
            if current is None:
                payload = event["payload"]
                current = PdAlert(dedup, "triggered", payload["summary"], payload["severity"])
                history.append(current)
            current.events.append(event)
        elif current is not None:
            current.status = "acknowledged" if action == "acknowledge" else "resolved"
            current.events.append(event)
        return dedup

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    # ------------------------------------------------------------------ records

    @property
    def requests(self) -> list[Request]:
        """Every request so far (any method, any answer), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The accepted (202) events, parsed, in arrival order."""
        with self._lock:
            return list(self._events)

    @property
    def alerts(self) -> dict[str, PdAlert]:
        """The latest PagerDuty alert per dedup key."""
        with self._lock:
            return {key: history[-1] for key, history in self._alerts.items() if history}

    def alert_count(self, dedup_key: str) -> int:
        """How many PagerDuty alerts were opened with ``dedup_key`` (pages, in effect)."""
        with self._lock:
            return len(self._alerts.get(dedup_key, []))
