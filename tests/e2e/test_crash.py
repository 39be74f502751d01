"""Crash test: `listener run` is killed with SIGKILL at random points of alert delivery and
restarted on the same state file, again and again; afterwards a receiver that
deduplicates by ``Idempotency-Key`` (as a real one should) has every alert, and none
twice as a new alert.

The scenario (:func:`run_crash_scenario`, also run by ``bench/crash.py``):

- a feed server whose feed grows each round with angry mentions of a few of many brands,
  so their negative volume crosses the rule's three thresholds at different times
  (``opened``, then ``escalated`` twice, per brand) and several alerts are often due at
  once (the webhook sink groups more than four into a digest);
- a loopback receiver that is slow, answers 500 before processing (the sender retries),
  or processes and then answers after the sender's timeout (the sender retries an alert
  the receiver already has), and drops a repeated key (answering 2xx);
- each round: start the daemon, add mentions, then SIGKILL it, either from inside the
  receiver right after it accepted a new alert and before it answers (the sender never
  learns of the success), or at a random moment after the round's first POST; all
  choices come from one seeded RNG;
- finally one more start drains the outbox, then SIGTERM.

What is checked: every alert the store's incident events imply (``<incident>#<seq>``)
reached the receiver, alone or as a digest member (zero lost); no alert was accepted as
new under two different keys (alone and in a digest, or in two digests), so key
deduplication leaves each alert once (zero duplicates); a resent key always carried the
same body; each incident's alerts were first seen in order; the outbox holds nothing
pending or failed. The figures, duplicates dropped by key included, are printed.

``LISTENER_CRASH_ROUNDS`` (default 5, the bounded CI form) and ``LISTENER_CRASH_SEED``
set the number of rounds and the seed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import Daemon
from tests.support.feed_server import FeedServer, Route

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

ROUNDS_ENV = "LISTENER_CRASH_ROUNDS"
SEED_ENV = "LISTENER_CRASH_SEED"
DEFAULT_ROUNDS = 5
DEFAULT_SEED = 20260302

SINK = "hook"
GROUP_OVER = 4
SEND_TIMEOUT = 1.0
"""The webhook sink's timeout in seconds; a "late" answer comes after it."""
THRESHOLDS = (2, 4, 6)
"""Negative mentions in the window for watch, elevated, crisis."""
P_FAIL, P_LATE, P_SLOW = 0.15, 0.05, 0.30
ROUND_DEADLINE = 4.0
"""Seconds a round waits for deliveries before killing the daemon anyway."""
DRAIN_DEADLINE = 45.0

CONFIG = """
brands:
{brands}
sources:
  news:
    type: rss
    urls: ["{feed}"]
    interval: 1s
    jitter: 0s
    retry: {{initial: 1s, max: 2s}}
rules:
  - name: negative-surge
    levels:
      watch: {{when: {{type: volume, metric: negative, window: 1h, above: {t[0]}}}}}
      elevated: {{when: {{type: volume, metric: negative, window: 1h, above: {t[1]}}}}}
      crisis: {{when: {{type: volume, metric: negative, window: 1h, above: {t[2]}}}}}
routes:
  default: [{sink}]
sinks:
  {sink}:
    type: webhook
    url: "{hook}"
    timeout: {timeout}s
    delivery:
      initial_backoff: 0.2s
      max_backoff: 1s
      max_age: 1h
      max_per_minute: 300
      group_over: {group_over}
"""

_MEMBER = re.compile(r"^\[(\S+)\] ")


# ---------------------------------------------------------------------- the receiver


class DedupReceiver:
    """A loopback webhook receiver that deduplicates by ``Idempotency-Key`` and misbehaves
    on purpose (slow, 500 before processing, an answer after the sender's timeout).

    ``arm(n, kill)`` calls ``kill`` right after the ``n``-th newly accepted key, before
    answering (the sender dies not knowing it succeeded).
    """

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.bodies: dict[str, bytes] = {}
        """First body accepted for each key."""
        self.order: list[str] = []
        """Keys accepted as new, in arrival order."""
        self.posts = 0
        self.failed = 0
        self.late = 0
        self.duplicates = 0
        """Deliveries of a key already accepted: dropped (and answered 2xx)."""
        self.mismatched = 0
        """Deliveries of a known key with a different body (must stay 0)."""
        self.mismatches: list[tuple[str, bytes, bytes]] = []
        self.unkeyed = 0
        self.truncated = 0
        """POSTs whose body was cut short (the sender was killed while sending)."""
        self.in_flight = 0
        """POSTs being handled right now."""
        self._kill_after: int | None = None
        self._kill: Callable[[], None] | None = None
        self._stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Silence the access log."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> DedupReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hook"

    def arm(self, n: int, kill: Callable[[], None]) -> None:
        with self._lock:
            self._kill_after, self._kill = n, kill

    def disarm(self) -> None:
        with self._lock:
            self._kill_after, self._kill = None, None

    def snapshot(self) -> tuple[int, list[str]]:
        with self._lock:
            return self.posts, list(self.order)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.in_flight += 1
        try:
            self._process(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _process(self, request: BaseHTTPRequestHandler) -> None:
        request.close_connection = True
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length > 0 else b""
        key = request.headers.get("Idempotency-Key")
        with self._lock:
            self.posts += 1
            draw, pause = self._rng.random(), self._rng.uniform(0.05, 0.25)
        if key is None:
            with self._lock:
                self.unkeyed += 1
            self._answer(request, 400)
            return
        try:
            complete = len(raw) == length and isinstance(json.loads(raw), dict)
        except ValueError:
            complete = False
        if not complete:  # the sender died halfway through the body: nothing to process
            with self._lock:
                self.truncated += 1
            self._answer(request, 400)
            return
        if draw < P_FAIL:  # down for a moment: nothing processed
            with self._lock:
                self.failed += 1
            self._answer(request, 500)
            return
        late = draw < P_FAIL + P_LATE
        if late or draw < P_FAIL + P_LATE + P_SLOW:
            self._stopping.wait(pause)
        kill: Callable[[], None] | None = None
        with self._lock:
            if key in self.bodies:
                self.duplicates += 1
                if self.bodies[key] != raw:
                    self.mismatched += 1
                    self.mismatches.append((key, self.bodies[key], raw))
            else:
                self.bodies[key] = raw
                self.order.append(key)
                if self._kill_after is not None:
                    self._kill_after -= 1
                    if self._kill_after <= 0:
                        kill, self._kill, self._kill_after = self._kill, None, None
            if late:
                self.late += 1
        if kill is not None:
            kill()
        if late:  # processed, but the answer comes after the sender gave up
            self._stopping.wait(SEND_TIMEOUT + 0.5)
        self._answer(request, 200)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int) -> None:
        with contextlib.suppress(OSError):
            request.send_response(status)
            request.send_header("Content-Length", "0")
            request.send_header("Connection", "close")
            request.end_headers()
            request.wfile.flush()


# ---------------------------------------------------------------------- the feed


@dataclass
class Feed:
    """The growing feed: a calm item from hours ago (the first poll's backfill, which
    touches no brand), then angry mentions of the brands."""

    server: FeedServer
    brands: list[str]
    items: list[tuple[str, str, datetime]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        old = datetime.now(UTC) - timedelta(hours=3)
        self.items.append(("calm", "A quiet day, nothing to report", old))
        self.server.route("/feed.xml", Route(body=self._xml()))

    def _xml(self) -> bytes:
        entries = "".join(
            f"<item><guid>{guid}</guid><title>{title}</title>"
            f"<link>https://news.test/{guid}</link><pubDate>{format_datetime(when)}</pubDate>"
            "</item>"
            for guid, title, when in self.items
        )
        return (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            f"{entries}</channel></rss>"
        ).encode()

    def anger(self, brands: list[str], each: int) -> int:
        """Add ``each`` angry mentions of every brand in ``brands``; return how many."""
        now = datetime.now(UTC)
        added = 0
        for brand in brands:
            for _ in range(each):
                n = self.counts.get(brand, 0) + 1
                self.counts[brand] = n
                guid = f"{brand.lower()}-{n}"
                title = f"{brand} outage: the service is terrible and broken, awful day #{n}"
                self.items.append((guid, title, now))
                added += 1
        self.server.update("/feed.xml", body=self._xml())
        return added

    def open_brands(self) -> list[str]:
        """Brands that can still cross a threshold."""
        return [b for b in self.brands if self.counts.get(b, 0) < THRESHOLDS[-1]]


# ---------------------------------------------------------------------- the scenario


@dataclass
class CrashFigures:
    """What one crash scenario measured."""

    rounds: int
    seed: int
    kills: int = 0
    kills_in_receiver: int = 0
    """Kills between the receiver's accept of a new alert and its answer."""
    kills_in_flight: int = 0
    """Kills while a POST was in flight or an alert was pending in the outbox."""
    alerts: int = 0
    """Alerts the store's incident events imply."""
    deliveries: int = 0
    """POSTs the receiver got (retries, resends and failures included)."""
    accepted: int = 0
    """Keys accepted as new (single alerts and digests)."""
    digests: int = 0
    grouped: int = 0
    """Alerts that arrived as digest members."""
    answered_500: int = 0
    answered_late: int = 0
    truncated: int = 0
    """POSTs cut short by a kill (refused as incomplete)."""
    duplicates_dropped: int = 0
    """Deliveries the receiver dropped because it already had their key."""
    mismatched: int = 0
    lost: list[str] = field(default_factory=list)
    new_twice: list[str] = field(default_factory=list)
    """Alerts accepted as new under two keys (alone and in a digest, or two digests)."""
    unknown: list[str] = field(default_factory=list)
    """Received alert ids no incident event implies."""
    out_of_order: list[str] = field(default_factory=list)
    outbox: dict[str, int] = field(default_factory=dict)
    """Outbox rows of the sink by status, at the end."""
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"crash test: {self.rounds} rounds (seed {self.seed}), {self.kills} SIGKILLs "
            f"({self.kills_in_flight} with a delivery in flight or pending, "
            f"{self.kills_in_receiver} between the receiver's accept and its answer), "
            f"{self.alerts} alerts, {self.deliveries} deliveries "
            f"({self.answered_500} answered 500, {self.answered_late} answered late, "
            f"{self.truncated} cut short by a kill), "
            f"{self.accepted} keys accepted ({self.digests} digests carrying "
            f"{self.grouped} alerts), {self.duplicates_dropped} duplicates dropped by key, "
            f"{len(self.lost)} lost, {len(self.new_twice)} accepted twice as new, "
            f"{self.mismatched} resent with another body; outbox {self.outbox}; "
            f"{self.seconds:.1f}s"
        )

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.new_twice
            or self.unknown
            or self.out_of_order
            or self.mismatched
            or set(self.outbox) - {"delivered"}
        )


def _read_only(state: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)


def _implied_alerts(state: Path) -> list[str]:
    """``<incident>#<seq>`` of every incident event, in incident and seq order."""
    with contextlib.closing(_read_only(state)) as conn:
        rows = conn.execute(
            "SELECT incident_id, seq FROM incident_events ORDER BY incident_id, seq"
        ).fetchall()
    return [f"{incident}#{seq}" for incident, seq in rows]


def _outbox(state: Path) -> dict[str, int]:
    with contextlib.closing(_read_only(state)) as conn:
        rows = conn.execute(
            "SELECT status, COUNT(*) FROM outbox WHERE sink = ? GROUP BY status", (SINK,)
        ).fetchall()
    return {str(status): int(n) for status, n in rows}


def _mentions(state: Path) -> int:
    with contextlib.closing(_read_only(state)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM mentions").fetchone()[0])


def _received(receiver: DedupReceiver) -> tuple[list[str], dict[str, list[str]], int]:
    """Alert ids in first-arrival order, every key under which each arrived, digests."""
    first: list[str] = []
    keys: dict[str, list[str]] = {}
    digests = 0
    for key in receiver.snapshot()[1]:
        body = json.loads(receiver.bodies[key])
        if key.startswith("digest-"):
            digests += 1
            ids = []
            for fact in body["facts"]:
                match = _MEMBER.match(fact["name"])
                assert match is not None, fact
                ids.append(match.group(1))
        else:
            ids = [key]
        for alert_id in ids:
            if alert_id not in keys:
                first.append(alert_id)
            keys.setdefault(alert_id, []).append(key)
    return first, keys, digests


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _servers(seed: int) -> Iterator[tuple[FeedServer, DedupReceiver]]:
    with FeedServer() as feed, DedupReceiver(seed) as receiver:
        yield feed, receiver


def _crash_round(
    number: int,
    rng: random.Random,
    config: Path,
    state: Path,
    feed: Feed,
    receiver: DedupReceiver,
    figures: CrashFigures,
) -> None:
    """Start the daemon, make some brands angry, SIGKILL it during delivery."""
    daemon = Daemon(config, state)
    try:
        if number == 1:  # the first poll (backfill) must be stored before the anger
            daemon.wait_metric("listener_polls_total", 1, source="news", outcome="ok")
        choices = feed.open_brands()
        picked = rng.sample(choices, min(len(choices), rng.choice([1, 2, 3, 3, 6])))
        feed.anger(picked, rng.choice([2, 2, 2, 4]))
        posts_before = receiver.snapshot()[0]
        pid = daemon.proc.pid
        if rng.random() < 0.5:  # from inside the receiver: accepted, not yet answered
            receiver.arm(rng.choice([1, 1, 2]), functools.partial(_sigkill, pid))
            killed = _wait(functools.partial(_exited, daemon), ROUND_DEADLINE)
            figures.kills_in_receiver += killed
            figures.kills_in_flight += killed
        else:  # at a random moment after the round's first POST
            _wait(functools.partial(_posted_since, receiver, posts_before), ROUND_DEADLINE)
            time.sleep(rng.uniform(0.0, 0.4))
            busy = receiver.in_flight > 0 or _outbox(state).get("pending", 0) > 0
            _sigkill(pid)
            figures.kills_in_flight += busy
        _sigkill(pid)
        daemon.proc.wait(timeout=10)
        figures.kills += 1
    finally:
        receiver.disarm()
        daemon.close()


def _exited(daemon: Daemon) -> bool:
    return daemon.proc.poll() is not None


def _posted_since(receiver: DedupReceiver, posts: int) -> bool:
    return receiver.snapshot()[0] > posts


def run_crash_scenario(
    rounds: int, seed: int, workdir: Path, say: Callable[[str], None] | None = None
) -> CrashFigures:
    """Run the crash scenario (see the module docstring) in ``workdir``; never raises for
    a lost or duplicated alert (see :attr:`CrashFigures.ok`), only for a daemon that does
    not start, stop or drain."""
    started = time.monotonic()
    rng = random.Random(seed)
    figures = CrashFigures(rounds=rounds, seed=seed)
    brands = [f"Brand{i:02d}" for i in range(2 * rounds + 6)]
    state = workdir / "state.db"
    config = workdir / "rules.yaml"
    with _servers(seed + 1) as (server, receiver):
        feed = Feed(server, brands)
        config.write_text(
            CONFIG.format(
                brands="\n".join(f"  - name: {b}" for b in brands),
                feed=server.url("/feed.xml"),
                hook=receiver.url(),
                t=THRESHOLDS,
                sink=SINK,
                timeout=SEND_TIMEOUT,
                group_over=GROUP_OVER,
            )
        )
        for number in range(1, rounds + 1):
            _crash_round(number, rng, config, state, feed, receiver, figures)
            if say is not None:
                posts, order = receiver.snapshot()
                say(f"round {number}/{rounds}: {posts} posts, {len(order)} keys accepted")

        daemon = Daemon(config, state)
        try:
            expected_mentions = len(feed.items)

            def drained() -> bool:
                if _mentions(state) < expected_mentions:
                    return False
                implied = set(_implied_alerts(state))
                return _outbox(state).get("pending", 0) == 0 and implied <= set(
                    _received(receiver)[1]
                )

            if not _wait(drained, DRAIN_DEADLINE, interval=0.2):
                raise AssertionError(
                    f"not drained in {DRAIN_DEADLINE}s: outbox {_outbox(state)}; "
                    f"stderr tail:\n{''.join(daemon.raw[-20:])}"
                )
            time.sleep(1.5)  # one more evaluation: nothing new may appear
            assert _wait(drained, DRAIN_DEADLINE, interval=0.2)
            assert daemon.stop() == 0
        finally:
            daemon.close()

        implied = _implied_alerts(state)
        first, keys, digests = _received(receiver)
        figures.alerts = len(implied)
        figures.deliveries = receiver.posts
        figures.accepted = len(receiver.order)
        figures.digests = digests
        figures.grouped = sum(1 for ks in keys.values() if any(k.startswith("digest-") for k in ks))
        figures.answered_500 = receiver.failed
        figures.answered_late = receiver.late
        figures.truncated = receiver.truncated
        figures.duplicates_dropped = receiver.duplicates
        figures.mismatched = receiver.mismatched
        figures.lost = sorted(set(implied) - set(keys))
        figures.new_twice = sorted(a for a, ks in keys.items() if len(ks) > 1)
        figures.unknown = sorted(set(keys) - set(implied))
        last: dict[str, int] = {}
        for alert_id in first:
            incident, seq = alert_id.rsplit("#", 1)
            if int(seq) <= last.get(incident, 0):
                figures.out_of_order.append(alert_id)
            last[incident] = int(seq)
        figures.outbox = _outbox(state)
    figures.seconds = time.monotonic() - started
    return figures


# ---------------------------------------------------------------------- the test


def test_sigkill_during_delivery_loses_and_duplicates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL at random points of delivery, LISTENER_CRASH_ROUNDS times, then a drain:
    zero alerts lost, zero accepted twice as new, each incident's alerts in order."""
    rounds = int(os.environ.get(ROUNDS_ENV, DEFAULT_ROUNDS))
    seed = int(os.environ.get(SEED_ENV, DEFAULT_SEED))
    figures = run_crash_scenario(rounds, seed, tmp_path)
    with capsys.disabled():
        print("\n" + figures.summary())
    assert figures.kills == rounds
    assert figures.alerts >= rounds  # the scenario did produce alerts to lose
    assert figures.lost == []
    assert figures.new_twice == []
    assert figures.unknown == []
    assert figures.out_of_order == []
    assert figures.mismatched == 0
    assert receiver_saw_every_alert(figures)
    assert figures.outbox == {"delivered": figures.alerts}
    assert figures.ok


def receiver_saw_every_alert(figures: CrashFigures) -> bool:
    """Each alert arrived as a new key exactly once: singles plus digest members."""
    return figures.accepted - figures.digests + figures.grouped == figures.alerts
