"""A real Prometheus (Debian's) scrapes a real `listener run` on loopback.

The daemon polls a loopback feed with mentions of a brand; its live /metrics passes
`promtool check metrics`, and Prometheus, scraping it every second, answers queries
for the series the daemon produced with the values the daemon reports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import Daemon
from tests.support.feed_server import FeedServer, Route

pytestmark = pytest.mark.e2e

DEADLINE = 60.0
"""Generous bound for anything an external process must do; never a timing assertion."""

RULES = """
brands:
  - name: Acme
sources:
  news:
    type: rss
    urls: ["{feed}"]
    interval: 1s
    jitter: 0s
rules:
  - name: negative-surge
    levels:
      watch:
        when: {{type: spike, metric: negative, window: 10m, baseline: 1h, min_volume: 50}}
routes:
  default: [console]
sinks:
  console: {{type: console, format: json}}
"""

ITEMS = [
    ("a1", "Acme outage: the service is terrible and broken"),
    ("a2", "Acme support fixed it quickly, great job"),
    ("a3", "Acme launches a new logo"),
]


def _binary(name: str) -> str:
    """The path of a Debian prometheus binary; skip without it, but fail under CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing: ./scripts/test installs Debian's prometheus package")
        pytest.skip(f"{name} not installed")
    return path


def rss(items: list[tuple[str, str]]) -> bytes:
    when = format_datetime(datetime.now(UTC) - timedelta(minutes=1))
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://news.test/{guid}</link>"
        f"<pubDate>{when}</pubDate></item>"
        for guid, title in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"{entries}</channel></rss>"
    ).encode()


Series = tuple[str, frozenset[tuple[str, str]]]


def series(name: str, **labels: str) -> Series:
    """The key of one series in :func:`scrape`'s answer."""
    return name, frozenset(labels.items())


def scrape(daemon: Daemon) -> dict[Series, float]:
    """(sample name, labels) → value, from the daemon's /metrics."""
    status, text = daemon.get("/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """`prometheus` on a free loopback port, scraping ``target`` every second."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "listener", "static_configs": [{"targets": [target]}]}],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("w")
        self.base = f"http://127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.base.removeprefix('http://')}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def logs(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 0, b""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while self.get("/-/ready")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus never became ready:\n{self.logs()}")
            time.sleep(0.2)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (empty while it has no samples)."""
        status, body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert status == 200, body
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_value(self, expr: str, value: float) -> dict[str, Any]:
        """Poll until ``expr`` is one series with ``value``; return that series."""
        deadline = time.monotonic() + DEADLINE
        result = self.query(expr)
        while not (len(result) == 1 and float(result[0]["value"][1]) == value):
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr} never became {value}: {result}\n{self.logs()}")
            time.sleep(0.2)
            result = self.query(expr)
        return result[0]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=DEADLINE)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    """A loopback feed with three mentions of Acme (with an ETag, so later polls are 304)."""
    with FeedServer() as server:
        server.route("/feed.xml", Route(body=rss(ITEMS), etag='"v1"'))
        yield server


@pytest.fixture
def daemon(tmp_path: Path, feed: FeedServer) -> Iterator[Daemon]:
    """`listener run` polling the feed every second and evaluating every second."""
    config = tmp_path / "rules.yaml"
    config.write_text(RULES.format(feed=feed.url("/feed.xml")))
    running = Daemon(config, tmp_path / "state.db")
    try:
        yield running
    finally:
        running.close()


def wait_scraped(daemon: Daemon, name: str, labels: dict[str, str], value: float) -> None:
    """Poll the daemon's /metrics until the series has ``value``."""
    key = series(name, **labels)
    deadline = time.monotonic() + DEADLINE
    while scrape(daemon).get(key) != value:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} never became {value}: {scrape(daemon).get(key)}")
        time.sleep(0.1)


def test_live_scrape_passes_promtool(daemon: Daemon) -> None:
    """The daemon's live /metrics, with mentions flowing, is clean for `promtool check
    metrics` (no errors, no lint findings)."""
    promtool = _binary("promtool")
    wait_scraped(daemon, "listener_brand_mentions_1h", {"brand": "Acme"}, 3)
    assert scrape(daemon)[series("listener_matches_total", source="news", brand="Acme")] == 3
    status, text = daemon.get("/metrics")
    assert status == 200
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert daemon.stop() == 0


def test_prometheus_scrapes_the_daemon(tmp_path: Path, daemon: Daemon) -> None:
    """A real Prometheus scraping the daemon on loopback stores its series: the source's
    collected and new mentions, the brand's matches, sentiment histogram and window
    gauges, with the values the daemon itself reports."""
    binary = _binary("prometheus")
    wait_scraped(daemon, "listener_brand_mentions_1h", {"brand": "Acme"}, 3)
    wait_scraped(daemon, "listener_mentions_new_total", {"source": "news"}, 3)
    reported = scrape(daemon)
    collected = reported[series("listener_mentions_collected_total", source="news")]
    assert collected >= 3

    target = daemon.base.removeprefix("http://")
    prometheus = Prometheus(binary, tmp_path, target)
    try:
        prometheus.wait_ready()
        up = prometheus.wait_value('up{job="listener"}', 1)
        assert up["metric"]["instance"] == target
        prometheus.wait_value('listener_mentions_collected_total{source="news"}', collected)
        prometheus.wait_value('listener_mentions_new_total{source="news"}', 3)
        matched = prometheus.wait_value('listener_matches_total{brand="Acme"}', 3)
        assert matched["metric"]["source"] == "news"
        prometheus.wait_value('listener_sentiment_compound_count{brand="Acme"}', 3)
        prometheus.wait_value('listener_sentiment_compound_bucket{brand="Acme", le="+Inf"}', 3)
        prometheus.wait_value('listener_brand_mentions_1h{brand="Acme"}', 3)
        share = reported[series("listener_brand_negative_share_1h", brand="Acme")]
        prometheus.wait_value('listener_brand_negative_share_1h{brand="Acme"}', share)
        measured = reported[
            series(
                "listener_condition_value",
                rule="negative-surge",
                brand="Acme",
                level="watch",
                condition="spike",
            )
        ]
        value = prometheus.wait_value(
            'listener_condition_value{rule="negative-surge", brand="Acme", level="watch"}',
            measured,
        )
        assert value["metric"]["condition"] == "spike"
        assert prometheus.stop() == 0
    finally:
        prometheus.close()
    assert daemon.stop() == 0
