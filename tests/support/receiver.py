"""A loopback webhook receiver that records every request, for testing alert delivery.

``WebhookReceiver`` binds ``127.0.0.1`` on an ephemeral port and serves from a daemon
thread. Every POST is answered ``200`` unless answers were scripted in front of it:

    with WebhookReceiver() as receiver:
        receiver.respond(500, times=2)              # the next two POSTs get 500
        receiver.stall(seconds=5)                   # the third hangs, then is dropped
        receiver.respond(429, retry_after="7")      # the fourth gets 429 + Retry-After
        url = receiver.url("/hook?token=s3cret")
        ...
        receiver.wait_for(3, timeout=10)            # three POSTs answered 2xx
        assert receiver.idempotency_keys() == [...]

Scripted answers apply to POSTs only, in order; ``GET`` is answered 405. ``OPTIONS`` and
``HEAD`` (a sink's health check) get :attr:`WebhookReceiver.probe_status` (204). A fake
of a service subclasses it and overrides :meth:`WebhookReceiver.answer` (how the service
answers a request) and keeps the recording, scripting and waiting. Header names in records
are lower-case. A stall records the request (``status=None``), waits up to its
``seconds`` (at most :data:`MAX_STALL`, ended at once when the receiver stops) and
closes the connection without an answer. Every connection is closed after one request.

:func:`sample_alert` builds a realistic :class:`~listener.model.Alert` to send to it,
:func:`sample_digest` a daily :class:`~listener.model.Digest`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from listener.model import (
    Alert,
    BrandDigest,
    Digest,
    DigestIncident,
    Driver,
    Explanation,
    Fact,
    MentionRef,
    StoryRecord,
)
from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

MAX_STALL = 30.0
"""No stall lasts longer than this many seconds, whatever a test asks for."""


@dataclass(frozen=True)
class Answer:
    """One scripted answer: ``status`` with ``headers`` and ``body``, or (``stall`` > 0)
    no answer at all after waiting ``stall`` seconds."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stall: float = 0.0

    @classmethod
    def json(cls, status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
        """``status`` with ``body`` as JSON (``Content-Type: application/json``)."""
        return cls(
            status,
            {"Content-Type": "application/json", **(headers or {})},
            json.dumps(body).encode(),
        )


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it. ``json`` is the parsed body (``None`` when
    the body is empty or not JSON); ``status`` is what was answered (``None``: stalled)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw: bytes
    json: Any
    status: int | None

    @property
    def accepted(self) -> bool:
        """A POST answered 2xx: the alert reached the receiver."""
        return self.method == "POST" and self.status is not None and 200 <= self.status < 300

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


class _Server(LoopbackHTTPServer):
    owner: WebhookReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._handle(None)

    def do_GET(self) -> None:
        self._handle(None)

    def do_OPTIONS(self) -> None:
        owner = self.server.owner
        self._handle(Answer(owner.probe_status, {"Allow": "POST, OPTIONS, HEAD"}))

    def do_HEAD(self) -> None:
        self._handle(Answer(self.server.owner.probe_status))

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _handle(self, answer: Answer | None) -> None:
        """Record the request and send ``answer`` (None: the one the owner chooses)."""
        self.close_connection = True
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        parts = urlsplit(self.path)
        if answer is None:
            answer = owner.answer(self.command, parts.path, parts.query, parsed)
        owner._record(
            Received(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
                raw=raw,
                json=parsed,
                status=None if answer.stall > 0 else answer.status,
            )
        )
        try:
            if answer.stall > 0:
                owner._stopping.wait(min(answer.stall, MAX_STALL))
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
            self.wfile.flush()
        except OSError:
            # The client gave up (its timeout): nothing to report.
            pass


class WebhookReceiver(LoopbackServer):
    """A loopback webhook receiver; see the module docstring. Thread-safe."""

    handler_class = _Handler
    server_class = _Server

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._script: deque[Answer] = deque()
        self._requests: list[Received] = []
        self.probe_status = 204
        """The status answered to ``OPTIONS`` and ``HEAD``."""

    # ------------------------------------------------------------------ lifecycle

    def url(self, path: str = "/hook") -> str:
        """Absolute URL of ``path`` (which may carry a query) on this receiver."""
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    # ------------------------------------------------------------------ script

    def script(self, *answers: Answer) -> None:
        """Answer the next POSTs with ``answers``, in order, then ``200`` again."""
        with self._lock:
            self._script.extend(answers)

    def respond(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` POSTs with ``status`` (and ``Retry-After`` when given)."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        self.script(*(Answer(status, extra) for _ in range(times)))

    def stall(self, times: int = 1, *, seconds: float = 5.0) -> None:
        """Leave the next ``times`` POSTs unanswered for ``seconds``, then drop them."""
        self.script(*(Answer(stall=seconds) for _ in range(times)))

    def answer(self, method: str, path: str, query: str, body: Any) -> Answer:
        """The answer to a ``POST`` or ``GET`` (``body``: the parsed JSON, or None).
        Here: a POST gets the next scripted answer, else ``200``; a GET ``405``. Fakes of
        a service override it (and call :meth:`scripted` first)."""
        if method != "POST":
            return Answer(405, {"Allow": "POST, OPTIONS, HEAD"})
        return self.scripted() or Answer()

    def scripted(self) -> Answer | None:
        """The next scripted answer, taken off the script; None when there is none."""
        with self._lock:
            return self._script.popleft() if self._script else None

    def _record(self, request: Received) -> None:
        with self._lock:
            self._requests.append(request)

    # ------------------------------------------------------------------ records

    @property
    def requests(self) -> list[Received]:
        """A snapshot of every request so far (any method, any answer), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[Received]:
        """The POSTs answered 2xx, in arrival order."""
        return [r for r in self.requests if r.accepted]

    def bodies(self) -> list[Any]:
        """Parsed JSON bodies of the POSTs answered 2xx, in arrival order."""
        return [r.json for r in self.accepted]

    def idempotency_keys(self) -> list[str | None]:
        """``Idempotency-Key`` headers of the POSTs answered 2xx, in arrival order."""
        return [r.idempotency_key for r in self.accepted]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``n`` POSTs were answered 2xx and return them; raise
        ``AssertionError`` (with what did arrive) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            accepted = self.accepted
            if len(accepted) >= n:
                return accepted
            if time.monotonic() >= deadline:
                seen = [(r.method, r.path, r.status) for r in self.requests]
                raise AssertionError(
                    f"expected {n} accepted POSTs within {timeout}s, got {len(accepted)}; "
                    f"requests: {seen}"
                )
            time.sleep(0.02)

    def clear(self) -> None:
        """Forget recorded requests and scripted answers."""
        with self._lock:
            self._requests.clear()
            self._script.clear()


def _outage_post(at: datetime) -> MentionRef:
    return MentionRef(
        source="news",
        id="m1",
        text="Acme outage: nothing works since this morning, support is silent",
        url="https://news.example/acme-outage",
        author="alice",
        followers=12345,
        created_at=at,
        sentiment=-0.8,
    )


def sample_explanation(at: datetime | None = None) -> Explanation:
    """A spike explanation as an "opened" alert carries it: a word, a hashtag, a story
    (with an example post) and an author (without)."""
    at = at or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    example = _outage_post(at)
    return Explanation(
        start=at - timedelta(minutes=15),
        end=at + timedelta(minutes=1),
        baseline_start=at - timedelta(hours=24, minutes=15),
        mentions=42,
        baseline=310,
        negative=True,
        baseline_negative=True,
        drivers=(
            Driver("term", "outage", 31, 2, 7.9, example),
            Driver("hashtag", "#acmedown", 12, 0, 5.1, example),
            Driver("story", "Acme outage: nothing works since this morning", 9, 0, 4.4, example),
            Driver("author", "@bob (forum)", 5, 0, 3.0, None),
        ),
    )


def sample_alert(**changes: Any) -> Alert:
    """A realistic "opened" alert with two facts and two top mentions; ``changes``
    replace fields (e.g. ``id=``, ``incident_id=``, ``drill=True``)."""
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    alert = Alert(
        id="alert-0001",
        incident_id="inc-0001",
        kind="opened",
        rule="negative-spike",
        brand="Acme",
        level="high",
        previous_level=None,
        at=at,
        facts=(
            Fact("negative mentions in 15m", 42, threshold=10, baseline=3.5),
            Fact("negative share", 0.81, threshold=0.6),
        ),
        top_mentions=(
            _outage_post(at),
            MentionRef(
                source="forum",
                id="m2",
                text="Still down for me too",
                url=None,
                author=None,
                followers=None,
                created_at=at,
                sentiment=-0.4,
            ),
        ),
    )
    return replace(alert, **changes)


HOSTILE_TEXT = "<!channel> @everyone **bold** [click](https://evil.example) `code` <@123> # big"
"""Text a source could write that must stay inert in every chat message."""


def sample_digest(brands: int = 2, *, hostile: bool = False) -> Digest:
    """A daily digest (Sun 08:00 to Mon 08:00 UTC) of ``brands`` brands: the first with
    two incidents and two stories (one linked, one whose lead links to ``javascript:``;
    with ``hostile`` its text is :data:`HOSTILE_TEXT`)."""
    end = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    start = end - timedelta(days=1)
    lead = replace(_outage_post(start + timedelta(hours=2)), id="s1")
    evil = replace(
        lead,
        id="s2",
        text=HOSTILE_TEXT if hostile else "Still down",
        url="javascript:alert(1)",
        author="<b>mallory</b>",
    )
    stories = tuple(
        StoryRecord(f"news:{ref.id}", ref, 12 - i, 9 - i, 1e4, ref.created_at, end, ("outage",))
        for i, ref in enumerate((lead, evil))
    )
    incidents = (
        DigestIncident(
            "inc-1",
            "surge",
            "crisis",
            "resolved",
            start + timedelta(hours=1),
            start + timedelta(hours=3),
            "ana",
            240.0,
        ),
        DigestIncident(
            "inc-2", "surge", "high", "open", start + timedelta(hours=5), None, None, None
        ),
    )
    first = BrandDigest("Acme", 20, 9, 10, 2, stories, incidents, incidents[:1], incidents[1:])
    rest = tuple(BrandDigest(f"Brand {n}", n, 0, 0, 0, (), (), (), ()) for n in range(1, brands))
    return Digest(
        id="digest:daily:20261207T080000Z",
        name="daily",
        every="day",
        start=start,
        end=end,
        timezone="UTC",
        brands=(first, *rest)[:brands] if brands else (),
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_secrets_absent(exc: BaseException, *secrets: str) -> None:
    """Neither the message nor the repr of ``exc`` shows any of ``secrets``, and it
    chains no exception that could (a sink's errors are raised ``from None``)."""
    for secret in secrets:
        assert secret not in str(exc)
        assert secret not in repr(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
