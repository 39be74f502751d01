"""The Alertmanager sink against the real Prometheus Alertmanager (Debian's 0.25) on
loopback: alerts arrive with their labels, escalate, stay alive, resolve, and get
Alertmanager's silences and inhibition. One server for the module; every test uses its
own brand and incident ids. Skips without the binary, fails instead when ``CI=true``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listener.clock import ManualClock
from listener.config.schema import AlertmanagerSinkConfig
from listener.errors import SinkRejected, SinkUnavailable
from listener.model import Alert
from listener.sinks.alertmanager import ALERTNAME, AlertmanagerSink
from listener.sinks.base import MemorySinkState, SinkContext
from tests.support.alertmanager import (
    Alertmanager,
    alertmanager_binary,
    parse_time,
    running_alertmanager,
)
from tests.support.receiver import sample_alert

REPO = Path(__file__).resolve().parents[2]
SECRET = "t0ps3cret-header"
EXPIRE = timedelta(minutes=5)
LAG = timedelta(seconds=30)
"""The tests' clock runs this far behind the real one, so an all-clear sent after the
clock was advanced a little still ends in the past for Alertmanager."""


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    """The real Alertmanager, started once for this module."""
    with running_alertmanager() as am:
        yield am


class Rig:
    """Builds sinks to one Alertmanager on one shared state and manual clock (set to the
    real time: Alertmanager judges endsAt by its own clock), with a brand for this test."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.brand = f"brand-{uuid.uuid4().hex[:8]}"
        self.state = MemorySinkState()
        self.clock = ManualClock(datetime.now(UTC).replace(microsecond=0) - LAG)
        self.sinks: list[AlertmanagerSink] = []

    def make(
        self,
        url: str | None = None,
        *,
        timeout: float = 10.0,
        labels: dict[str, str] | None = None,
    ) -> AlertmanagerSink:
        """A sink to ``url`` (default: the server) with a secret header."""
        url = url or self.url
        assert url is not None, "this rig has no Alertmanager: pass a url"
        config = AlertmanagerSinkConfig.model_validate(
            {
                "type": "alertmanager",
                "url": url,
                "labels": labels if labels is not None else {"team": "social"},
                "headers": {"X-Scope-OrgID": SECRET},
                "expire_after": EXPIRE,
                "timeout": timedelta(seconds=timeout),
            }
        )
        sink = AlertmanagerSink("am", config, context=SinkContext(self.state, self.clock))
        self.sinks.append(sink)
        return sink

    def alert(self, n: int = 1, **changes: Any) -> Alert:
        """An alert of incident ``inc-<brand>-<n>``, opened a minute ago, sent now."""
        now = self.clock.now()
        base: dict[str, Any] = {
            "id": f"{self.brand}-{n}-{uuid.uuid4().hex[:6]}",
            "incident_id": f"inc-{self.brand}-{n}",
            "brand": self.brand,
            "level": "watch",
            "at": now,
            "opened_at": now - timedelta(minutes=1),
            "categories": (("outage", 4),),
        }
        return sample_alert(**{**base, **changes})


async def _rig(url: str | None) -> AsyncIterator[Rig]:
    r = Rig(url)
    yield r
    for sink in r.sinks:
        await sink.aclose()


@pytest.fixture
async def rig(alertmanager: Alertmanager) -> AsyncIterator[Rig]:
    """A :class:`Rig` on the module's Alertmanager; its sinks are closed at teardown."""
    async for r in _rig(alertmanager.url):
        yield r


@pytest.fixture
async def offline() -> AsyncIterator[Rig]:
    """A :class:`Rig` without Alertmanager (for tests that need no server)."""
    async for r in _rig(None):
        yield r


def assert_no_secret(exc: BaseException) -> None:
    """Neither the message nor the chain mentions the URL or a header value."""
    assert SECRET not in str(exc)
    assert "127.0.0.1" not in str(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


async def test_opened_alert_is_active_with_labels_and_annotations(
    rig: Rig, alertmanager: Alertmanager
) -> None:
    """An opened alert is listed active with the identity labels and the annotations."""
    sink = rig.make()
    alert = rig.alert()
    await sink.send(alert, alert.id)
    [got] = alertmanager.alerts(brand=rig.brand)
    assert got["labels"] == {
        "alertname": ALERTNAME,
        "brand": rig.brand,
        "rule": "negative-spike",
        "severity": "watch",
        "category": "outage",
        "incident": alert.incident_id,
        "team": "social",
    }
    assert got["annotations"]["summary"] == alert.title
    assert got["annotations"]["alert_id"] == alert.id
    assert "negative mentions in 15m = 42" in got["annotations"]["description"]
    assert "https://news.example/acme-outage" in got["annotations"]["top_mentions"]
    assert got["status"]["state"] == "active"
    assert parse_time(got["startsAt"]) == alert.opened_at
    assert parse_time(got["endsAt"]) == rig.clock.now() + EXPIRE
    await sink.healthcheck()


async def test_escalation_replaces_the_severity(rig: Rig, alertmanager: Alertmanager) -> None:
    """After an escalation only the crisis alert is active; the watch one is resolved."""
    sink = rig.make()
    first = rig.alert()
    await sink.send(first, first.id)
    rig.clock.advance(timedelta(seconds=1))
    up = rig.alert(kind="escalated", level="crisis", previous_level="watch")
    await sink.send(up, up.id)
    [got] = alertmanager.alerts(brand=rig.brand)
    assert got["labels"]["severity"] == "crisis"
    assert got["annotations"]["summary"].startswith("ESCALATED to CRISIS")
    assert alertmanager.alerts(brand=rig.brand, severity="watch") == []


async def test_refresh_reposts_with_a_later_ends_at(rig: Rig, alertmanager: Alertmanager) -> None:
    """refresh() moves endsAt forward in Alertmanager, also from a restarted sink."""
    alert = rig.alert()
    first = rig.make()
    await first.send(alert, alert.id)
    [before] = alertmanager.alerts(brand=rig.brand)
    await first.aclose()
    rig.clock.advance(timedelta(seconds=30))
    await rig.make().refresh()  # a new sink on the same durable state
    [after] = alertmanager.alerts(brand=rig.brand)
    assert parse_time(after["endsAt"]) == parse_time(before["endsAt"]) + timedelta(seconds=30)
    assert after["fingerprint"] == before["fingerprint"]
    assert after["annotations"] == before["annotations"]
    assert after["status"]["state"] == "active"


async def test_resolved_alert_leaves_the_active_list(rig: Rig, alertmanager: Alertmanager) -> None:
    """The all-clear resolves the alert in Alertmanager and the sink stops refreshing it."""
    sink = rig.make()
    alert = rig.alert()
    await sink.send(alert, alert.id)
    assert len(alertmanager.alerts(brand=rig.brand)) == 1
    rig.clock.advance(timedelta(seconds=1))
    done = rig.alert(kind="resolved")
    await sink.send(done, done.id)
    assert alertmanager.alerts(brand=rig.brand) == []
    assert sink.firing() == {}
    await sink.refresh()
    assert alertmanager.alerts(brand=rig.brand) == []


async def test_a_silence_suppresses_a_matching_alert(rig: Rig, alertmanager: Alertmanager) -> None:
    """A silence made through Alertmanager's API mutes the brand's alert: teams get silences."""
    silence_id = alertmanager.silence(brand=rig.brand, comment="known issue")
    sink = rig.make()
    alert = rig.alert()
    await sink.send(alert, alert.id)
    [got] = alertmanager.alerts(brand=rig.brand)
    assert got["status"]["state"] == "suppressed"
    assert got["status"]["silencedBy"] == [silence_id]
    assert alertmanager.unmuted(brand=rig.brand) == []


async def test_a_crisis_inhibits_a_watch_of_the_same_brand(
    rig: Rig, alertmanager: Alertmanager
) -> None:
    """With the documented inhibit rule, a crisis mutes another rule's watch for the brand."""
    sink = rig.make()
    watch = rig.alert(1, rule="volume")
    crisis = rig.alert(2, level="crisis")
    await sink.send(watch, watch.id)
    await sink.send(crisis, crisis.id)

    def inhibited(alerts: list[dict[str, Any]]) -> bool:
        return [a["status"]["state"] for a in alerts] == ["suppressed"]

    [got] = alertmanager.wait_for(inhibited, brand=rig.brand, severity="watch")
    assert got["status"]["inhibitedBy"]
    [top] = alertmanager.alerts(brand=rig.brand, severity="crisis")
    assert top["status"]["state"] == "active"


async def test_send_test_posts_a_short_lived_test_alert(
    rig: Rig, alertmanager: Alertmanager
) -> None:
    """send_test() posts ListenerTest that expires within a minute and records nothing."""
    sink = rig.make(labels={"team": rig.brand})
    await sink.send_test()
    [got] = alertmanager.alerts(alertname="ListenerTest", team=rig.brand)
    assert got["labels"]["sink"] == "am"
    assert parse_time(got["endsAt"]) == rig.clock.now() + timedelta(minutes=1)
    assert sink.firing() == {}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_nothing_listening_is_unavailable(offline: Rig) -> None:
    """A port with nothing listening gives SinkUnavailable for send, refresh and healthcheck."""
    sink = offline.make(f"http://127.0.0.1:{_closed_port()}")
    offline.state.set("firing", '["x"]')
    offline.state.set(
        "firing:x", '{"labels": {"alertname": "x"}, "startsAt": "2026-01-01T00:00:00Z"}'
    )
    alert = offline.alert()
    with pytest.raises(SinkUnavailable, match="connection failed") as sent:
        await sink.send(alert, alert.id)
    with pytest.raises(SinkUnavailable, match="refresh: connection failed") as refreshed:
        await sink.refresh()
    with pytest.raises(SinkUnavailable, match="health check: connection failed") as checked:
        await sink.healthcheck()
    for info in (sent, refreshed, checked):
        assert_no_secret(info.value)
    assert sink.firing() == {
        "x": {"labels": {"alertname": "x"}, "startsAt": "2026-01-01T00:00:00Z"}
    }


async def test_a_server_that_never_answers_times_out(offline: Rig) -> None:
    """A server that accepts but never answers gives SinkUnavailable after the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        sink = offline.make(f"http://127.0.0.1:{port}", timeout=0.3)
        alert = offline.alert()
        with pytest.raises(SinkUnavailable, match="timed out") as info:
            await sink.send(alert, alert.id)
    assert_no_secret(info.value)


async def test_a_malformed_post_is_rejected(rig: Rig, alertmanager: Alertmanager) -> None:
    """Alertmanager's 400 (an invalid label name) is SinkRejected with its reason."""
    sink = rig.make(labels={"bad-name": "x"})
    alert = rig.alert()
    with pytest.raises(SinkRejected, match=r"HTTP 400: invalid label set") as info:
        await sink.send(alert, alert.id)
    assert not info.value.retryable
    assert_no_secret(info.value)
    assert alertmanager.alerts(brand=rig.brand) == []
    assert sink.firing() == {}


async def test_health_check_of_a_wrong_path_is_rejected(
    rig: Rig, alertmanager: Alertmanager
) -> None:
    """A base URL with a wrong path prefix fails the health check as SinkRejected."""
    sink = rig.make(f"{alertmanager.url}/not-here")
    with pytest.raises(SinkRejected, match="health check: HTTP 404") as info:
        await sink.healthcheck()
    assert_no_secret(info.value)


def test_the_documented_alertmanager_yml_is_valid(tmp_path: Path) -> None:
    """The routing and inhibition example in docs/sinks.md passes the real amtool, and
    routes crises to the PR lead."""
    amtool = shutil.which("amtool")
    if amtool is None:  # same Debian package as the server
        alertmanager_binary()
        pytest.skip("amtool not installed")
    section = (REPO / "docs/sinks.md").read_text().split("\n## alertmanager\n", 1)[1]
    snippet = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "alertmanager.yml"
    receivers = "".join(f"  - name: {r}\n" for r in ("default", "social-team", "pr-oncall"))
    config.write_text(snippet + "receivers:\n" + receivers)

    def amtool_run(*args: str) -> str:
        result = subprocess.run(
            [amtool, *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    amtool_run("check-config", str(config))
    route = ("config", "routes", "test", f"--config.file={config}", "alertname=ListenerIncident")
    assert amtool_run(*route, "severity=crisis", "brand=Acme") == "pr-oncall"
    assert amtool_run(*route, "severity=watch", "brand=Acme") == "social-team"
