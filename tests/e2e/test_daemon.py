"""`listener run` as a subprocess against a loopback feed server and webhook receiver."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.support.daemon import SECRET, Daemon
from tests.support.feed_server import FeedServer, Route
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.e2e


RULES = """
brands:
  - name: Acme
    handles: ["@acme"]
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
      watch:
        when: {{type: volume, metric: negative, window: 1h, above: 5}}
routes:
  default: [team, console]
sinks:
  team:
    type: webhook
    url: "{hook}?token=${{HOOK_TOKEN}}"
  console: {{type: console, format: json}}
"""


def rss(items: list[tuple[str, str]], age: timedelta = timedelta(0)) -> bytes:
    when = format_datetime(datetime.now(UTC) - age)
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://news.test/{guid}</link>"
        f"<pubDate>{when}</pubDate></item>"
        for guid, title in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"{entries}</channel></rss>"
    ).encode()


ANGRY = [
    (f"a{i}", f"Acme outage: the service is terrible and broken, awful day #{i}") for i in range(8)
]


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    with FeedServer() as server:
        # what the feed held before the daemon started: history from a few hours ago
        server.route(
            "/feed.xml", Route(body=rss([("calm", "Acme has a new logo")], age=timedelta(hours=3)))
        )
        yield server


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def test_surge_alerts_once_and_survives_reload_and_restart(
    tmp_path: Path, feed: FeedServer, receiver: WebhookReceiver
) -> None:
    """A surge of angry mentions alerts once, metrics move, bad reloads are rejected,
    SIGTERM exits 0, and a restart neither recounts mentions nor re-sends the alert."""
    config = tmp_path / "rules.yaml"
    config.write_text(RULES.format(feed=feed.url("/feed.xml"), hook=receiver.url("/hook")))
    state = tmp_path / "state.db"
    daemon = Daemon(config, state)
    try:
        assert daemon.get("/healthz") == (200, "ok\n")
        daemon.wait_metric("listener_polls_total", 1, source="news", outcome="ok")
        status, body = daemon.get("/readyz")
        ready = json.loads(body)
        assert status == 200
        assert ready["ready"] is True
        assert ready["sources"]["news"]["status"] == "ok"

        feed.set_body("/feed.xml", rss([("calm", "Acme has a new logo"), *ANGRY]))
        (hit,) = receiver.wait_for(1, timeout=30)
        alert = hit.json
        assert (alert["kind"], alert["brand"], alert["level"]) == ("opened", "Acme", "watch")
        assert hit.idempotency_key == alert["id"]
        assert alert["facts"][0]["value"] >= 6
        assert alert["top_mentions"][0]["url"].startswith("https://news.test/a")

        daemon.wait_metric(
            "listener_alerts_total", 1, rule="negative-surge", sink="team", outcome="delivered"
        )
        assert daemon.metric("listener_mentions_new_total", source="news") == 9
        assert (
            daemon.metric(
                "listener_incident_events_total", rule="negative-surge", brand="Acme", kind="opened"
            )
            == 1
        )
        assert daemon.metric("listener_matches_total", source="news", brand="Acme") == 9

        # SIGHUP with a broken file: rejected with check's messages, old rules keep running
        good = config.read_text()
        config.write_text(good.replace("type: volume", "type: volum"))
        daemon.proc.send_signal(signal.SIGHUP)
        rejected = daemon.wait_log("reload_rejected")
        assert "rules[0].levels.watch.when.type: unknown condition type 'volum'" in str(
            rejected["problem"]
        )
        daemon.wait_metric("listener_config_reloads_total", 1, outcome="error")
        assert daemon.metric("listener_config_last_reload_successful") == 0
        config.write_text(good)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_metric("listener_config_reloads_total", 1, outcome="ok")
        assert daemon.metric("listener_config_last_reload_successful") == 1
        assert daemon.get("/healthz")[0] == 200

        # a reload that renames the source leaves no stale series for the old name
        config.write_text(good.replace("  news:\n", "  wire:\n"))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_metric("listener_config_reloads_total", 2, outcome="ok")
        daemon.wait_metric("listener_source_up", 1, source="wire")
        assert 'listener_source_up{source="news"}' not in daemon.get("/metrics")[1]
        assert list(json.loads(daemon.get("/readyz")[1])["sources"]) == ["wire"]
        config.write_text(good)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_metric("listener_config_reloads_total", 3, outcome="ok")

        assert daemon.stop() == 0
        daemon.wait_log("stopped")
    finally:
        daemon.close()
    assert SECRET not in "".join(daemon.raw)
    assert any('"kind": "opened"' in line for line in daemon.stdout)  # the console sink

    # restart on the same state: nothing recounted, nothing re-sent
    feed.update("/feed.xml", etag=None)
    again = Daemon(config, state)
    try:
        again.wait_metric("listener_polls_total", 2, source="news", outcome="ok")
        assert again.metric("listener_mentions_new_total", source="news") == 0
        assert (
            again.metric(
                "listener_incident_events_total", rule="negative-surge", brand="Acme", kind="opened"
            )
            == 0
        )
        assert again.stop() == 0
    finally:
        again.close()
    assert receiver.idempotency_keys() == [alert["id"]]


def test_failing_source_is_retried_and_reported(tmp_path: Path, receiver: WebhookReceiver) -> None:
    """A feed answering 500 is counted, backed off, shown in /readyz, and raises a
    source-health alert that resolves when the feed recovers; the daemon keeps running."""
    with FeedServer() as feed:
        feed.route("/feed.xml", Route(status=500, body=b"boom"))
        config = tmp_path / "rules.yaml"
        rules = RULES.format(feed=feed.url("/feed.xml"), hook=receiver.url("/hook"))
        config.write_text(
            rules.replace("    jitter: 0s\n", "    jitter: 0s\n    health: {failing_after: 2s}\n")
        )
        daemon = Daemon(config, tmp_path / "state.db")
        try:
            daemon.wait_metric(
                "listener_errors_total", 2, stage="collect", error_type="unavailable"
            )
            status, body = daemon.get("/readyz")
            source = json.loads(body)["sources"]["news"]
            assert status == 200
            assert source["status"] == "error"
            assert source["consecutive_failures"] >= 2
            assert "500" in source["last_error"]
            assert daemon.metric("listener_source_up", source="news") == 0
            (opened,) = receiver.wait_for(1, timeout=30)
            assert (opened.json["rule"], opened.json["brand"], opened.json["kind"]) == (
                "source-health",
                "news",
                "opened",
            )
            feed.route("/feed.xml", Route(body=rss(ANGRY[:1])))
            daemon.wait_metric("listener_source_up", 1, source="news")
            resolved = receiver.wait_for(2, timeout=30)[1]
            assert (resolved.json["kind"], resolved.json["incident_id"]) == (
                "resolved",
                opened.json["incident_id"],
            )
            assert daemon.stop(signal.SIGINT) == 0
        finally:
            daemon.close()


def test_incident_api_acknowledges_and_silences(
    tmp_path: Path, feed: FeedServer, receiver: WebhookReceiver
) -> None:
    """Incidents are listed over HTTP; acknowledging needs the token, is announced to the
    sinks and shows in the incident; silences are created, listed and expired."""
    config = tmp_path / "rules.yaml"
    config.write_text(RULES.format(feed=feed.url("/feed.xml"), hook=receiver.url("/hook")))
    daemon = Daemon(config, tmp_path / "state.db", env={"LISTENER_API_TOKEN": "tok-123"})
    try:
        daemon.wait_metric("listener_polls_total", 1, source="news", outcome="ok")
        feed.set_body("/feed.xml", rss([("calm", "Acme has a new logo"), *ANGRY]))
        (opened,) = receiver.wait_for(1, timeout=30)
        incident = opened.json["incident_id"]
        status, listing = daemon.call("GET", "/incidents?status=open")
        assert status == 200
        assert [i["id"] for i in listing] == [incident]  # type: ignore[union-attr]
        path = f"/incidents/{incident}/ack"
        assert daemon.call("POST", path, {"by": "ana"})[0] == 401
        assert daemon.call("POST", path, {"by": "ana"}, token="wrong")[0] == 401
        assert daemon.call("POST", path, {"by": "ana", "note": "on it"}, token="tok-123") == (
            200,
            {"acknowledged": incident},
        )
        assert daemon.call("POST", path, {"by": "bob"}, token="tok-123")[0] == 409
        ack = receiver.wait_for(2, timeout=30)[1].json
        assert (ack["kind"], ack["incident_id"], ack["ack"]["by"]) == (
            "acknowledged",
            incident,
            "ana",
        )
        assert ack["summary"] == "ana is on it: on it (Acme, watch)."
        status, detail = daemon.call("GET", f"/incidents/{incident}")
        assert status == 200
        assert detail["acknowledged_by"] == "ana"
        assert daemon.call("GET", "/incidents/nope")[0] == 404

        silence = {"brand": "Acme", "for": "1h", "comment": "statement published", "by": "ana"}
        assert daemon.call("POST", "/silences", silence)[0] == 401
        for wrong, field in (({"brand": "Acme Corp"}, "brand"), ({"for": "1e300"}, "for")):
            status, error = daemon.call("POST", "/silences", {**silence, **wrong}, token="tok-123")
            assert (status, error["field"]) == (400, field)  # type: ignore[index]
        assert daemon.call("GET", "/silences") == (200, [])
        status, created = daemon.call("POST", "/silences", silence, token="tok-123")
        assert status == 201
        sid = created["id"]  # type: ignore[index]
        assert [s["id"] for s in daemon.call("GET", "/silences")[1]] == [sid]  # type: ignore[union-attr]
        assert daemon.call("DELETE", f"/silences/{sid}", token="tok-123")[0] == 200
        assert daemon.call("DELETE", f"/silences/{sid}", token="tok-123")[0] == 404
        assert daemon.metric("listener_time_to_ack_seconds_count", rule="negative-surge") == 1
        assert daemon.stop() == 0
    finally:
        daemon.close()
    assert "tok-123" not in "".join(daemon.raw)
