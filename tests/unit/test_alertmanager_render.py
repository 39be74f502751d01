"""The Alertmanager sink's pure rendering, and its state handling over a mock transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from listener.clock import ManualClock
from listener.config.schema import AlertmanagerSinkConfig
from listener.errors import SinkRejected, SinkUnavailable
from listener.model import Ack, Alert
from listener.sinks import build_sink
from listener.sinks.alertmanager import (
    ALERTNAME,
    FIRING_PREFIX,
    INDEX_KEY,
    AlertmanagerSink,
    alert_labels,
    refreshed,
    render_alerts,
    render_test_alert,
    rfc3339,
)
from listener.sinks.base import MemorySinkState, SinkContext
from tests.support.receiver import sample_alert

NOW = datetime(2026, 3, 2, 9, 10, tzinfo=UTC)
OPENED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EXPIRE = timedelta(minutes=5)


def opened(**changes: Any) -> Alert:
    """The sample alert, opened at OPENED and sent at NOW."""
    return sample_alert(**{"at": NOW, "opened_at": OPENED, **changes})


def render(alert: Alert, **kwargs: Any) -> list[dict[str, Any]]:
    return render_alerts(alert, now=NOW, expire_after=EXPIRE, **kwargs)


# --------------------------------------------------------------------------- render


def test_opened_alert_has_identity_labels_and_annotations() -> None:
    """An opened alert is one firing alert with the documented labels and annotations."""
    alert = opened(categories=(("outage", 12), ("safety", 3)))
    [posted] = render(alert)
    assert posted["labels"] == {
        "alertname": ALERTNAME,
        "brand": "Acme",
        "rule": "negative-spike",
        "severity": "high",
        "incident": "inc-0001",
        "category": "outage",
    }
    notes = posted["annotations"]
    assert notes["summary"] == alert.title
    assert notes["description"] == "\n".join(str(f) for f in alert.facts)
    assert notes["categories"] == "outage (12), safety (3)"
    assert "https://news.example/acme-outage" in notes["top_mentions"]
    assert "[forum]: Still down for me too" in notes["top_mentions"]
    assert notes["kind"] == "opened"
    assert notes["alert_id"] == alert.id
    assert "acknowledged_by" not in notes


def test_firing_times_are_opened_at_and_now_plus_expiry() -> None:
    """startsAt is when the incident opened; endsAt is now + expire_after, in RFC 3339 UTC."""
    [posted] = render(opened())
    assert posted["startsAt"] == "2026-03-02T09:00:00.000Z"
    assert posted["endsAt"] == "2026-03-02T09:15:00.000Z"


def test_starts_at_falls_back_to_the_alert_time() -> None:
    """Without opened_at, startsAt is the alert's own time."""
    [posted] = render(opened(opened_at=None))
    assert posted["startsAt"] == rfc3339(NOW)


def test_rfc3339_converts_to_utc() -> None:
    """Times from other zones are written in UTC with milliseconds and a Z."""
    local = datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(local) == "2026-03-02T10:00:00.123Z"


def test_no_category_label_without_categories_and_drill_is_labelled() -> None:
    """The category label appears only with categories; drills carry drill="true"."""
    [plain] = render(opened())
    assert "category" not in plain["labels"]
    assert "drill" not in plain["labels"]
    [drill] = render(opened(drill=True))
    assert drill["labels"]["drill"] == "true"
    assert drill["annotations"]["summary"].startswith("[DRILL] ")


def test_extra_labels_are_added_but_cannot_replace_built_in_ones() -> None:
    """Configured labels join the set; built-in names and empty values are ignored."""
    labels = alert_labels(
        opened(), extra_labels={"team": "social", "severity": "low", "brand": "x", "env": ""}
    )
    assert labels["team"] == "social"
    assert labels["severity"] == "high"
    assert labels["brand"] == "Acme"
    assert "env" not in labels


def test_acknowledgement_is_an_annotation_not_a_label() -> None:
    """An acknowledged alert keeps firing with the same labels and names who took it."""
    alert = opened(kind="acknowledged", ack=Ack("dana", NOW, "on it"))
    [posted] = render(alert, previous=alert_labels(opened()))
    assert posted["labels"] == alert_labels(opened())
    assert posted["annotations"]["acknowledged_by"] == "dana: on it"
    assert posted["endsAt"] == rfc3339(NOW + EXPIRE)


def test_escalation_fires_the_new_severity_and_resolves_the_recorded_one() -> None:
    """An escalation posts the new severity firing and the recorded label set resolved."""
    first = opened(level="watch")
    recorded = alert_labels(first, extra_labels={"team": "social"})
    up = opened(kind="escalated", level="crisis", previous_level="watch")
    new, old = render(up, extra_labels={"team": "social"}, previous=recorded)
    assert new["labels"] == {**recorded, "severity": "crisis"}
    assert new["endsAt"] == rfc3339(NOW + EXPIRE)
    assert old["labels"] == recorded
    assert old["startsAt"] == rfc3339(OPENED)
    assert old["endsAt"] == rfc3339(NOW)
    assert old["annotations"]["summary"] == up.title


def test_escalation_without_state_resolves_the_previous_level() -> None:
    """Without a recorded label set, the previous level's label set is resolved."""
    down = opened(kind="deescalated", level="watch", previous_level="crisis")
    new, old = render(down)
    assert new["labels"]["severity"] == "watch"
    assert old["labels"] == {**new["labels"], "severity": "crisis"}
    assert old["endsAt"] == rfc3339(NOW)


def test_same_label_set_posts_one_alert() -> None:
    """A reminder with the recorded label set posts just the refreshed alert."""
    alert = opened(kind="reminder")
    assert len(render(alert, previous=alert_labels(alert))) == 1
    assert len(render(opened(kind="escalated", level="high", previous_level="high"))) == 1


def test_category_label_sticks_to_the_first_one_posted() -> None:
    """A shifting category mix keeps the incident's first category label (no replacement)."""
    first = opened(categories=(("outage", 5),))
    later = opened(kind="reminder", categories=(("safety", 9), ("outage", 8)))
    [posted] = render(later, previous=alert_labels(first))
    assert posted["labels"]["category"] == "outage"
    assert posted["annotations"]["categories"] == "safety (9), outage (8)"


def test_resolved_alert_ends_at_its_time() -> None:
    """The all-clear has endsAt = alert.at, with the same labels as the firing alert."""
    done = opened(kind="resolved", at=NOW - timedelta(minutes=2))
    [posted] = render(done, previous=alert_labels(opened()))
    assert posted["labels"] == alert_labels(opened())
    assert posted["endsAt"] == rfc3339(NOW - timedelta(minutes=2))


def test_resolved_alert_never_ends_in_the_future_or_before_it_started() -> None:
    """endsAt of an all-clear is at most now and at least startsAt."""
    [future] = render(opened(kind="resolved", at=NOW + timedelta(hours=1)))
    assert future["endsAt"] == rfc3339(NOW)
    [early] = render(opened(kind="resolved", at=OPENED - timedelta(hours=1)))
    assert early["endsAt"] == early["startsAt"] == rfc3339(OPENED)


def test_resolved_alert_also_resolves_a_different_recorded_label_set() -> None:
    """When the configured labels changed, the all-clear resolves the old set too."""
    old_labels = alert_labels(opened(), extra_labels={"team": "old"})
    done, old = render(opened(kind="resolved"), extra_labels={"team": "new"}, previous=old_labels)
    assert done["labels"]["team"] == "new"
    assert old["labels"] == old_labels
    assert done["endsAt"] == old["endsAt"] == rfc3339(NOW)


def test_render_is_pure() -> None:
    """Rendering twice gives equal, independent results and changes no input."""
    previous = alert_labels(opened(level="watch"))
    snapshot = dict(previous)
    alert = opened(kind="escalated", level="crisis", previous_level="watch")
    a = render(alert, previous=previous)
    b = render(alert, previous=previous)
    assert a == b
    a[0]["labels"]["brand"] = "changed"
    assert b[0]["labels"]["brand"] == "Acme"
    assert previous == snapshot
    json.dumps(a)


def test_refreshed_moves_only_ends_at() -> None:
    """A refreshed alert keeps labels, annotations and startsAt; endsAt is now + expiry."""
    [posted] = render(opened())
    later = NOW + timedelta(minutes=3)
    again = refreshed(posted, now=later, expire_after=EXPIRE)
    assert again == {**posted, "endsAt": rfc3339(later + EXPIRE)}
    assert posted["endsAt"] == rfc3339(NOW + EXPIRE)
    again["labels"]["brand"] = "changed"
    assert posted["labels"]["brand"] == "Acme"


def test_test_alert_is_short_lived_and_named() -> None:
    """The check --deep alert is ListenerTest, carries the sink name, expires in a minute."""
    posted = render_test_alert("am", now=NOW, extra_labels={"team": "social", "alertname": "x"})
    assert posted["labels"] == {"alertname": "ListenerTest", "sink": "am", "team": "social"}
    assert posted["startsAt"] == rfc3339(NOW)
    assert posted["endsAt"] == rfc3339(NOW + timedelta(minutes=1))


# --------------------------------------------------------------------------- sink + state


class Recorder:
    """A mock transport recording the JSON body of every request."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.paths: list[str] = []
        self.answer = httpx.Response(200)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        self.bodies.append(json.loads(request.content) if request.content else None)
        return self.answer


Rig = tuple[AlertmanagerSink, Recorder, MemorySinkState, ManualClock]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A sink on a mock transport with memory state and a manual clock at NOW."""
    recorder = Recorder()
    state = MemorySinkState()
    clock = ManualClock(NOW)
    config = AlertmanagerSinkConfig.model_validate(
        {
            "type": "alertmanager",
            "url": "http://am.example:9093/prefix/",
            "labels": {"team": "social"},
            "headers": {"Authorization": "Bearer t0ps3cret"},
        }
    )
    sink = AlertmanagerSink(
        "am", config, context=SinkContext(state, clock), transport=httpx.MockTransport(recorder)
    )
    yield sink, recorder, state, clock
    await sink.aclose()


async def test_send_records_the_firing_alert_and_refresh_reposts_it(rig: Rig) -> None:
    """send() records the firing alert; refresh() re-posts it with a later endsAt."""
    sink, recorder, state, clock = rig
    await sink.send(opened(), "k1")
    assert recorder.paths == ["/prefix/api/v2/alerts"]
    [posted] = recorder.bodies[0]
    assert json.loads(state.values[FIRING_PREFIX + "inc-0001"]) == posted
    assert json.loads(state.values[INDEX_KEY]) == ["inc-0001"]
    clock.advance(timedelta(minutes=1))
    await sink.refresh()
    [again] = recorder.bodies[1]
    assert again["labels"] == posted["labels"]
    assert again["endsAt"] == rfc3339(NOW + timedelta(minutes=1) + EXPIRE)


async def test_escalation_uses_the_recorded_labels(rig: Rig) -> None:
    """The second send resolves exactly the label set the first one posted."""
    sink, recorder, state, _ = rig
    await sink.send(opened(level="watch"), "k1")
    await sink.send(opened(kind="escalated", level="crisis", previous_level="watch"), "k2")
    [first] = recorder.bodies[0]
    new, old = recorder.bodies[1]
    assert old["labels"] == first["labels"]
    assert new["labels"]["severity"] == "crisis"
    assert json.loads(state.values[FIRING_PREFIX + "inc-0001"])["labels"] == new["labels"]


async def test_resolution_forgets_the_incident(rig: Rig) -> None:
    """After the all-clear the incident is forgotten and refresh() posts nothing."""
    sink, recorder, state, _ = rig
    await sink.send(opened(), "k1")
    await sink.send(opened(kind="resolved"), "k2")
    assert state.values == {}
    await sink.refresh()
    assert len(recorder.bodies) == 2


async def test_refresh_drops_index_entries_without_records(rig: Rig) -> None:
    """A stale or corrupt entry is dropped; with nothing firing no request is made."""
    sink, recorder, state, _ = rig
    state.set(INDEX_KEY, json.dumps(["gone", "bad"]))
    state.set(FIRING_PREFIX + "bad", "{not json")
    await sink.refresh()
    assert recorder.bodies == []
    assert state.values == {}
    assert sink.firing() == {}


async def test_a_failed_send_records_nothing(rig: Rig) -> None:
    """A 503 raises SinkUnavailable and leaves the state untouched."""
    sink, recorder, state, _ = rig
    recorder.answer = httpx.Response(503, headers={"Retry-After": "7"})
    with pytest.raises(SinkUnavailable) as info:
        await sink.send(opened(), "k")
    assert info.value.retry_after == 7
    assert state.values == {}


async def test_a_rejected_resolution_is_forgotten(rig: Rig) -> None:
    """When Alertmanager rejects the all-clear, refresh() stops re-firing the incident."""
    sink, recorder, state, _ = rig
    await sink.send(opened(), "k1")
    recorder.answer = httpx.Response(400, json="invalid label set: t0ps3cret am.example")
    with pytest.raises(SinkRejected) as info:
        await sink.send(opened(kind="resolved"), "k2")
    assert "invalid label set" in str(info.value)
    assert "t0ps3cret" not in str(info.value)
    assert "am.example" not in str(info.value)
    assert state.values == {}


async def test_refresh_failure_keeps_the_records(rig: Rig) -> None:
    """A failing refresh raises a SinkError and forgets nothing."""
    sink, recorder, state, _ = rig
    await sink.send(opened(), "k1")
    before = dict(state.values)
    recorder.answer = httpx.Response(502)
    with pytest.raises(SinkUnavailable, match="refresh: HTTP 502"):
        await sink.refresh()
    assert state.values == before


async def test_healthcheck_and_test_alert_paths(rig: Rig) -> None:
    """healthcheck() GETs /-/ready under the prefix; send_test() posts ListenerTest only."""
    sink, recorder, state, _ = rig
    await sink.healthcheck()
    await sink.send_test()
    assert recorder.paths == ["/prefix/-/ready", "/prefix/api/v2/alerts"]
    [test] = recorder.bodies[1]
    assert test["labels"]["alertname"] == "ListenerTest"
    assert state.values == {}
    assert sink.resend_every == timedelta(minutes=1)


async def test_the_registry_builds_it_with_the_context() -> None:
    """build_sink() builds an AlertmanagerSink that uses the context's state."""
    state = MemorySinkState()
    config = AlertmanagerSinkConfig.model_validate(
        {"type": "alertmanager", "url": "http://127.0.0.1:9"}
    )
    sink = build_sink("am", config, SinkContext(state, ManualClock(NOW)))
    try:
        assert isinstance(sink, AlertmanagerSink)
        assert sink.name == "am"
        assert sink.firing() == {}
    finally:
        await sink.aclose()
