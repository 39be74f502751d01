"""The PagerDuty sink against a loopback Events API v2: events, dedup keys, errors, secrets."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from listener.clock import ManualClock
from listener.config.schema import PagerDutySinkConfig
from listener.errors import SinkError, SinkRejected, SinkUnavailable
from listener.model import Alert, AlertKind, MentionRef
from listener.sinks.base import SinkContext
from listener.sinks.pagerduty import (
    ROUTING_KEY_PLACEHOLDER,
    PagerDutySink,
    dedup_key,
    render_event,
    severity_for,
)
from tests.support.fake_pagerduty import ROUTING_KEY, FakePagerDuty
from tests.support.receiver import sample_alert

MakeSink = Callable[..., PagerDutySink]


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    """A loopback Events API v2."""
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
async def make_sink(clock: ManualClock) -> AsyncIterator[MakeSink]:
    """Build PagerDuty sinks (closed at teardown): ``make_sink(api_url, severities=...)``."""
    sinks: list[PagerDutySink] = []

    def make(
        api_url: str,
        *,
        severities: dict[str, str] | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> PagerDutySink:
        config = PagerDutySinkConfig.model_validate(
            {
                "type": "pagerduty",
                "routing_key": ROUTING_KEY,
                "api_url": api_url,
                "severities": severities or {},
                "timeout": timedelta(seconds=timeout),
            }
        )
        sink = PagerDutySink("pd", config, context=SinkContext(clock=clock), transport=transport)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


def lifecycle() -> list[Alert]:
    """One incident's alerts: opened, escalated, reminder, de-escalated, acked, resolved."""
    base = sample_alert(level="high")
    steps: list[tuple[AlertKind, str, str | None]] = [
        ("opened", "high", None),
        ("escalated", "crisis", "high"),
        ("reminder", "crisis", None),
        ("deescalated", "high", "crisis"),
        ("acknowledged", "high", None),
        ("resolved", "high", None),
    ]
    return [
        replace(base, id=f"inc-0001#{i}", kind=kind, level=level, previous_level=previous)
        for i, (kind, level, previous) in enumerate(steps, start=1)
    ]


def assert_no_secret(exc: BaseException) -> None:
    """Neither the message, the repr nor a chained exception shows the routing key."""
    assert ROUTING_KEY not in str(exc)
    assert ROUTING_KEY not in repr(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


# --------------------------------------------------------------------------- rendering


def test_trigger_event_carries_summary_severity_details_and_links() -> None:
    """A trigger has the title as summary, details (valid JSON) and http(s) links only."""
    alert = sample_alert(level="crisis", categories=(("outage", 12), ("support", 3)))
    junk = MentionRef(
        "x", "m3", "click me", "javascript:alert(1)", "mallory", 1, alert.at, math.nan
    )
    alert = replace(alert, top_mentions=(*alert.top_mentions, junk))
    event = render_event(alert)
    assert event is not None
    assert event["routing_key"] == ROUTING_KEY_PLACEHOLDER
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "inc-0001"
    payload = event["payload"]
    assert payload["summary"] == alert.title
    assert payload["source"] == "listener"
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2026-03-02T09:00:00+00:00"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "Acme",
        "negative-spike",
        "outage",
    )
    details = payload["custom_details"]
    assert details["alert_id"] == "alert-0001"
    assert details["facts"] == [str(f) for f in alert.facts]
    assert details["categories"] == {"outage": 12, "support": 3}
    assert [m["author"] for m in details["top_mentions"]] == ["alice", None, "mallory"]
    assert details["top_mentions"][2]["sentiment"] is None
    assert [link["href"] for link in event["links"]] == ["https://news.example/acme-outage"]
    assert event["links"][0]["text"].startswith("@alice on news: Acme outage")
    json.dumps(event, allow_nan=False)


def test_ack_and_resolve_events_are_minimal() -> None:
    """Acknowledge and resolve carry only the routing key, the action and the dedup key."""
    for kind, action in (("acknowledged", "acknowledge"), ("resolved", "resolve")):
        event = render_event(sample_alert(kind=kind), routing_key="k")
        assert event == {"routing_key": "k", "event_action": action, "dedup_key": "inc-0001"}


def test_deescalation_sends_nothing() -> None:
    """A de-escalation is no event: a trigger could re-page after a manual resolve."""
    assert render_event(sample_alert(kind="deescalated", previous_level="crisis")) is None


@pytest.mark.parametrize(
    ("level", "configured", "expected"),
    [
        ("crisis", {}, "critical"),
        ("Critical", {}, "critical"),
        ("high", {}, "warning"),
        ("watch", {}, "warning"),
        ("high", {"high": "error"}, "error"),
        ("crisis", {"crisis": "info"}, "info"),
    ],
)
def test_severities(level: str, configured: dict[str, Any], expected: str) -> None:
    """Configured severities win; otherwise crisis/critical → critical, the rest warning."""
    assert severity_for(level, configured) == expected
    event = render_event(sample_alert(level=level), severities=configured)
    assert event is not None
    assert event["payload"]["severity"] == expected


def test_long_incident_ids_and_summaries_fit_pagerduty_limits() -> None:
    """Dedup keys stay within 255 characters (stably) and summaries within 1024."""
    long_id = "inc-" + "x" * 400
    assert dedup_key("inc-1") == "inc-1"
    assert dedup_key(long_id) == dedup_key(long_id)
    assert len(dedup_key(long_id)) <= 255
    assert dedup_key(long_id) != dedup_key(long_id + "y")
    event = render_event(sample_alert(incident_id=long_id, rule="r" * 2000))
    assert event is not None
    assert len(event["payload"]["summary"]) == 1024
    assert event["dedup_key"] == dedup_key(long_id)


# --------------------------------------------------------------------------- against the fake


async def test_one_pagerduty_alert_per_incident(
    pagerduty: FakePagerDuty, make_sink: MakeSink
) -> None:
    """All of an incident's alerts share its dedup key: one page, acknowledged, resolved."""
    sink = make_sink(pagerduty.url)
    for alert in lifecycle():
        await sink.send(alert, alert.id)
    actions = [e["event_action"] for e in pagerduty.events]
    assert actions == ["trigger", "trigger", "trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in pagerduty.events} == {"inc-0001"}
    assert {e["routing_key"] for e in pagerduty.events} == {ROUTING_KEY}
    assert pagerduty.alert_count("inc-0001") == 1
    assert pagerduty.alerts["inc-0001"].status == "resolved"
    severities = [e["payload"]["severity"] for e in pagerduty.events[:3]]
    assert severities == ["warning", "critical", "critical"]


async def test_a_resent_trigger_is_not_a_second_page(
    pagerduty: FakePagerDuty, make_sink: MakeSink
) -> None:
    """Sending the same alert twice (a retry after a crash) keeps one PagerDuty alert."""
    sink = make_sink(pagerduty.url)
    alert = sample_alert()
    await sink.send(alert, alert.id)
    await sink.send(alert, alert.id)
    await sink.send(replace(alert, id="alert-0002", incident_id="inc-0002"), "alert-0002")
    assert pagerduty.alert_count("inc-0001") == 1
    assert pagerduty.alert_count("inc-0002") == 1
    assert len(pagerduty.alerts["inc-0001"].events) == 2


async def test_posts_json_to_v2_enqueue(pagerduty: FakePagerDuty, make_sink: MakeSink) -> None:
    """Events go to {api_url}/v2/enqueue as JSON (a trailing slash in api_url is fine)."""
    await make_sink(pagerduty.url + "/").send(sample_alert(), "k")
    [request] = pagerduty.requests
    assert (request.method, request.path, request.status) == ("POST", "/v2/enqueue", 202)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("listener/")


async def test_429_is_retryable_with_retry_after(
    pagerduty: FakePagerDuty, make_sink: MakeSink
) -> None:
    """429 raises SinkUnavailable with retry_after, and nothing is recorded as sent."""
    pagerduty.respond(429, retry_after="30")
    with pytest.raises(SinkUnavailable) as info:
        await make_sink(pagerduty.url).send(sample_alert(), "k")
    assert info.value.retry_after == 30.0
    assert str(info.value) == "pagerduty sink 'pd': trigger: HTTP 429"
    assert_no_secret(info.value)
    assert pagerduty.events == []


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retryable(
    pagerduty: FakePagerDuty, make_sink: MakeSink, status: int
) -> None:
    """5xx and 408 raise SinkUnavailable naming the status only."""
    pagerduty.respond(status)
    with pytest.raises(SinkUnavailable) as info:
        await make_sink(pagerduty.url).send(sample_alert(), "k")
    assert info.value.retryable
    assert f"HTTP {status}" in str(info.value)
    assert_no_secret(info.value)


async def test_400_is_rejected_with_pagerdutys_reason(
    pagerduty: FakePagerDuty, make_sink: MakeSink
) -> None:
    """A 400 raises SinkRejected quoting PagerDuty's message, never the routing key."""
    pagerduty.respond(
        400,
        body={
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": [f"routing key {ROUTING_KEY} is not valid"],
        },
    )
    with pytest.raises(SinkRejected) as info:
        await make_sink(pagerduty.url).send(sample_alert(), "k")
    assert not info.value.retryable
    assert "HTTP 400 (Event object is invalid; routing key <routing_key> is not" in str(info.value)
    assert_no_secret(info.value)


@pytest.mark.parametrize("status", [401, 403, 404, 301])
async def test_other_client_errors_are_rejected(
    pagerduty: FakePagerDuty, make_sink: MakeSink, status: int
) -> None:
    """Other 4xx (and redirects, not followed) raise SinkRejected."""
    pagerduty.respond(status, body={"message": "nope"})
    with pytest.raises(SinkRejected, match=f"HTTP {status}"):
        await make_sink(pagerduty.url).send(sample_alert(), "k")


async def test_the_fake_rejects_what_pagerduty_would(pagerduty: FakePagerDuty) -> None:
    """Sanity: the fake answers 400 to an invalid event (so it would catch a bad render)."""
    async with httpx.AsyncClient() as client:
        response = await client.post(
            pagerduty.url + "/v2/enqueue", json={"routing_key": "short", "event_action": "x"}
        )
    assert response.status_code == 400
    assert len(response.json()["errors"]) >= 2


async def test_network_errors_are_unavailable(make_sink: MakeSink) -> None:
    """A refused connection and other transport errors raise SinkUnavailable, unchained."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SinkUnavailable, match="connection failed") as info:
        await make_sink(f"http://127.0.0.1:{port}").send(sample_alert(), "k")
    assert_no_secret(info.value)

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timeout reading {request.content!r}", request=request)

    sink = make_sink("https://events.example", timeout=0.5, transport=httpx.MockTransport(broken))
    with pytest.raises(SinkUnavailable, match=r"timed out after 0\.5s") as info:
        await sink.send(sample_alert(), "k")
    assert_no_secret(info.value)


async def test_deescalation_posts_nothing(pagerduty: FakePagerDuty, make_sink: MakeSink) -> None:
    """send() of a de-escalation returns without a request."""
    await make_sink(pagerduty.url).send(sample_alert(kind="deescalated"), "k")
    assert pagerduty.requests == []


async def test_send_test_triggers_and_resolves(
    pagerduty: FakePagerDuty, make_sink: MakeSink, clock: ManualClock
) -> None:
    """send_test() opens an info-level test alert under its own dedup key and resolves it."""
    await make_sink(pagerduty.url).send_test()
    trigger, resolve = pagerduty.events
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "info"
    assert trigger["payload"]["summary"].startswith("[DRILL] TEST: listener")
    assert trigger["payload"]["custom_details"]["drill"] is True
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"]
    assert trigger["dedup_key"].startswith("listener-test:pd:20260302T090000Z")
    assert pagerduty.alerts[trigger["dedup_key"]].status == "resolved"


async def test_healthcheck_sends_no_event(pagerduty: FakePagerDuty, make_sink: MakeSink) -> None:
    """healthcheck() reaches the API without an event; unreachable raises SinkUnavailable."""
    await make_sink(pagerduty.url).healthcheck()
    assert [r.method for r in pagerduty.requests] == ["OPTIONS"]
    assert pagerduty.events == []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SinkError):
        await make_sink(f"http://127.0.0.1:{port}").healthcheck()
