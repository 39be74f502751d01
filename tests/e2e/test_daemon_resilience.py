"""`listener run` under stress: a dead log reader, stalling sources, SIGTERM mid-poll and
a reload whose file takes long to read. The daemon keeps polling and answering."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.test_daemon import ANGRY, rss
from tests.support.daemon import Daemon
from tests.support.feed_server import FeedServer, Route

pytestmark = pytest.mark.e2e

HEAD = """
brands:
  - name: Acme
    handles: ["@acme"]
rules:
  - name: negative-surge
    levels:
      watch:
        when: {type: volume, metric: negative, window: 1h, above: 5}
routes:
  default: [console]
sinks:
  console: {type: console, format: json}
sources:
"""


def source(name: str, url: str, *extra: str) -> str:
    lines = [
        f"  {name}:",
        "    type: rss",
        f'    urls: ["{url}"]',
        "    interval: 1s",
        "    jitter: 0s",
        "    retry: {initial: 1s, max: 2s}",
        *(f"    {line}" for line in extra),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    with FeedServer() as server:
        calm = rss([("calm", "Acme has a new logo")], age=timedelta(hours=3))  # history
        server.route("/feed.xml", Route(body=calm))
        server.route("/down.xml", Route(status=500, body=b"boom"))
        yield server


def fetch(base: str, path: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(base: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in fetch(base, "/metrics")[1].splitlines():
        m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return 0.0


def wait_metric(base: str, name: str, at_least: float, timeout: float = 30, **labels: str) -> None:
    deadline = time.monotonic() + timeout
    while metric(base, name, **labels) < at_least:
        assert time.monotonic() < deadline, f"{name}{labels} stayed below {at_least}"
        time.sleep(0.1)


def test_dead_log_reader_neither_stops_polling_nor_shutdown(
    tmp_path: Path, feed: FeedServer
) -> None:
    """With its stdout and stderr pipes closed (`listener run | head -1`), the daemon keeps
    polling and processing, counts the lost log lines, and exits 0 on SIGTERM."""
    config = tmp_path / "rules.yaml"
    config.write_text(
        HEAD + source("news", feed.url("/feed.xml")) + source("down", feed.url("/down.xml"))
    )
    env = {
        **os.environ,
        "LISTENER_LOG_FORMAT": "json",
        "LISTENER_EVALUATE_EVERY": "1s",
        "LISTENER_SHUTDOWN_TIMEOUT": "5s",
    }
    args = ["run", "--config", str(config), "--state", str(tmp_path / "s.db")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "listener", *args, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        assert proc.stdout is not None
        started: dict[str, object] = {}
        for line in proc.stderr:
            started = json.loads(line)
            if started.get("event") == "started":
                break
        assert started.get("event") == "started"
        base = f"http://{started['listen']}"
        proc.stderr.close()  # the reader is gone: every later write meets a broken pipe
        proc.stdout.close()
        # the first poll of `news` is a backfill (its brand stays quiet for the rule's
        # window): the angry items must come in a later poll
        wait_metric(base, "listener_polls_total", 1, source="news", outcome="ok")
        polls = metric(base, "listener_polls_total", source="news", outcome="ok")
        wait_metric(base, "listener_log_write_errors_total", 1)  # `down` keeps failing
        feed.set_body("/feed.xml", rss(ANGRY))  # processing logs `polled`, evaluation opens
        wait_metric(base, "listener_mentions_new_total", len(ANGRY), source="news")
        wait_metric(base, "listener_polls_total", polls + 3, source="news", outcome="ok")
        opened = {"rule": "negative-surge", "brand": "Acme", "kind": "opened"}
        wait_metric(base, "listener_incident_events_total", 1, **opened)
        assert fetch(base, "/readyz")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_stalling_sources_starve_neither_the_api_nor_healthy_sources(
    tmp_path: Path, feed: FeedServer
) -> None:
    """Eight sources whose server never answers time out (counted, backed off, one thread
    each, no second poll while stuck); /incidents and /healthz answer promptly and the
    healthy source keeps being polled and the rules evaluated."""
    feed.route("/stall.xml", Route(stall_before_headers=60))
    stalling = "".join(
        source(f"stall{i}", feed.url(f"/stall.xml?n={i}"), "timeout: 60s") for i in range(8)
    )
    config = tmp_path / "rules.yaml"
    config.write_text(HEAD + source("news", feed.url("/feed.xml")) + stalling)
    daemon = Daemon(config, tmp_path / "s.db", env={"LISTENER_POLL_TIMEOUT": "2s"})
    try:
        daemon.wait_metric("listener_errors_total", 8, stage="collect", error_type="poll_timeout")
        polls = daemon.metric("listener_polls_total", source="news", outcome="ok")
        rule = {"rule": "negative-surge"}
        evaluations = daemon.metric("listener_rule_evaluations_total", **rule)
        for _ in range(10):
            status, body = fetch(daemon.base, "/incidents", timeout=3)
            assert (status, json.loads(body)) == (200, [])
            assert fetch(daemon.base, "/healthz", timeout=3) == (200, "ok\n")
            time.sleep(0.3)
        daemon.wait_metric("listener_polls_total", polls + 3, source="news", outcome="ok")
        daemon.wait_metric("listener_rule_evaluations_total", evaluations + 2, **rule)
        assert len(feed.requests_for("/stall.xml")) == 8  # stuck threads are not piled up
        stuck = json.loads(daemon.get("/readyz")[1])["sources"]["stall0"]
        assert stuck["status"] == "error"
        assert (
            "LISTENER_POLL_TIMEOUT" in stuck["last_error"]
            or "still running" in (stuck["last_error"])
        )
        assert daemon.metric("listener_source_up", source="stall0") == 0
        assert daemon.stop() == 0  # the stuck threads do not hold the exit
    finally:
        daemon.close()


def test_sigterm_waits_for_the_poll_in_flight(tmp_path: Path, feed: FeedServer) -> None:
    """SIGTERM during a slow poll lets it finish and be processed within the shutdown
    timeout: no cancellation, no traceback."""
    feed.route("/slow.xml", Route(body=rss(ANGRY), stall_before_headers=3))
    config = tmp_path / "rules.yaml"
    config.write_text(HEAD + source("slow", feed.url("/slow.xml")))
    daemon = Daemon(config, tmp_path / "s.db", env={"LISTENER_SHUTDOWN_TIMEOUT": "15s"})
    try:
        deadline = time.monotonic() + 20
        while not feed.requests_for("/slow.xml"):  # the poll is in flight
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert daemon.stop() == 0
    finally:
        daemon.close()
    events = [entry.get("event") for entry in daemon.logs]
    assert events.index("stopping") < events.index("polled") < events.index("stopped")
    polled = next(entry for entry in daemon.logs if entry.get("event") == "polled")
    assert (polled["source"], polled["new"]) == ("slow", len(ANGRY))
    stderr = "".join(daemon.raw)
    assert "Traceback" not in stderr
    assert "CancelledError" not in stderr


def test_reload_reads_the_file_off_the_event_loop(tmp_path: Path, feed: FeedServer) -> None:
    """While a SIGHUP reload waits on its file (a FIFO nobody writes yet), /healthz answers
    and polling goes on; once the file arrives the reload succeeds."""
    config = tmp_path / "rules.yaml"
    text = HEAD + source("news", feed.url("/feed.xml"))
    config.write_text(text)
    daemon = Daemon(config, tmp_path / "s.db")
    try:
        daemon.wait_metric("listener_polls_total", 1, source="news", outcome="ok")
        config.unlink()
        os.mkfifo(config)
        daemon.proc.send_signal(signal.SIGHUP)
        polls = daemon.metric("listener_polls_total", source="news", outcome="ok")
        for _ in range(5):
            assert fetch(daemon.base, "/healthz", timeout=3) == (200, "ok\n")
            time.sleep(0.2)
        daemon.wait_metric("listener_polls_total", polls + 2, source="news", outcome="ok")
        deadline = time.monotonic() + 20
        while True:  # the reload opened the FIFO for reading: hand it the file
            try:
                fd = os.open(config, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                assert time.monotonic() < deadline, "the reload never opened the file"
                time.sleep(0.05)
        with os.fdopen(fd, "w") as pipe:
            pipe.write(text)
        daemon.wait_metric("listener_config_reloads_total", 1, outcome="ok")
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_source_health_lines_name_their_source_and_severity(
    tmp_path: Path, feed: FeedServer
) -> None:
    """Two failing sources: each source-health incident line names its own source (a
    failing poll's context never leaks into other work), and carries the incident's
    severity apart from the line's log level."""
    config = tmp_path / "rules.yaml"
    health = "health: {failing_after: 2s}"
    config.write_text(
        HEAD
        + source("down", feed.url("/down.xml"), health)
        + source("gone", feed.url("/gone.xml"), health)
    )
    feed.route("/gone.xml", Route(status=503, body=b"nope"))
    daemon = Daemon(config, tmp_path / "s.db")
    try:
        for name in ("down", "gone"):
            daemon.wait_metric(
                "listener_incident_events_total", 1, rule="source-health", brand=name, kind="opened"
            )
        daemon.wait_log("incident_event")
        assert daemon.stop() == 0
    finally:
        daemon.close()
    lines = [entry for entry in daemon.logs if entry.get("event") == "incident_event"]
    assert sorted(str(entry["brand"]) for entry in lines) == ["down", "gone"]
    for entry in lines:
        assert entry["source"] == entry["brand"]
        assert entry["level"] == "info"
        assert entry["severity"] == "watch"  # the policy's level
    others = [e for e in daemon.logs if e.get("event") not in ("poll_failed", "incident_event")]
    assert not [e for e in others if "source" in e and e.get("event") != "polled"]
