"""The Opsgenie sink against a loopback Alert API v2: one alert per incident, done-markers,
errors, the API key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from listener.clock import ManualClock
from listener.config.schema import OpsgenieSinkConfig
from listener.errors import SinkError, SinkRejected, SinkUnavailable
from listener.model import Ack, Alert, AlertKind
from listener.sinks import build_sink
from listener.sinks.base import MemorySinkState, SendsDigest, SendsTest, Sink, SinkContext
from listener.sinks.opsgenie import OpsgenieSink
from tests.support.fake_opsgenie import API_KEY, FakeOpsgenie
from tests.support.receiver import sample_alert
from tests.support.sink_checks import assert_no_secret, closed_port_url

MakeSink = Callable[..., OpsgenieSink]


@pytest.fixture
def opsgenie() -> Iterator[FakeOpsgenie]:
    """A loopback Alert API v2."""
    with FakeOpsgenie() as fake:
        yield fake


@pytest.fixture
def state() -> MemorySinkState:
    return MemorySinkState()


@pytest.fixture
async def make_sink(clock: ManualClock, state: MemorySinkState) -> AsyncIterator[MakeSink]:
    """Build Opsgenie sinks (closed at teardown) sharing one durable state."""
    sinks: list[OpsgenieSink] = []

    def make(
        api_url: str, *, transport: httpx.AsyncBaseTransport | None = None, **fields: Any
    ) -> OpsgenieSink:
        config = OpsgenieSinkConfig.model_validate(
            {
                "type": "opsgenie",
                "api_key": API_KEY,
                "api_url": api_url,
                "timeout": timedelta(seconds=5),
                **fields,
            }
        )
        sink = OpsgenieSink(
            "og", config, context=SinkContext(state=state, clock=clock), transport=transport
        )
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


def lifecycle() -> list[Alert]:
    """One incident: opened, escalated, reminder, de-escalated, acknowledged, resolved."""
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
        replace(
            base,
            id=f"inc-0001#{i}",
            kind=kind,
            level=level,
            previous_level=previous,
            ack=Ack("dana", base.at, "on it") if kind == "acknowledged" else None,
        )
        for i, (kind, level, previous) in enumerate(steps, start=1)
    ]


async def test_one_opsgenie_alert_per_incident(opsgenie: FakeOpsgenie, make_sink: MakeSink) -> None:
    """Every alert of an incident lands on one Opsgenie alert: created once (the reminder
    only counts), its priority follows the level, acknowledged by the person, closed."""
    sink = make_sink(opsgenie.url)
    for alert in lifecycle():
        await sink.send(alert, alert.id)
    assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in opsgenie.calls] == [
        ("POST", "alerts"),
        ("POST", "alerts"),
        ("PUT", "priority"),
        ("POST", "alerts"),
        ("PUT", "priority"),
        ("POST", "acknowledge"),
        ("POST", "close"),
    ]
    assert {c.status for c in opsgenie.calls} == {202}
    assert all(c.headers["authorization"] == f"GenieKey {API_KEY}" for c in opsgenie.calls)
    assert opsgenie.alert_count("inc-0001") == 1
    og = opsgenie.alerts["inc-0001"]
    assert (og.status, og.count, og.priority) == ("closed", 3, "P2")
    assert og.acknowledged
    assert og.acknowledged_by == "dana"
    assert og.notes == [
        "Escalated to crisis (was high)",
        "Still crisis and not acknowledged",
        "on it",
        "Resolved in listener: all clear",
    ]


async def test_a_second_send_with_the_same_key_sends_nothing(
    opsgenie: FakeOpsgenie, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """The done-marker stops a repeat (a retry after a crash, from a new instance); ack
    and close keys too."""
    opened, *_, acked, closed = lifecycle()
    for alert in (opened, opened, acked, acked, closed, closed):
        await make_sink(opsgenie.url).send(alert, alert.id)
    assert len(opsgenie.calls) == 3
    assert set(state.values) == {f"done:{a.id}" for a in (opened, acked, closed)}


async def test_429_is_retryable_with_retry_after(
    opsgenie: FakeOpsgenie, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """429 → SinkUnavailable after Retry-After; nothing marked done."""
    opsgenie.respond(429, retry_after="30")
    with pytest.raises(SinkUnavailable) as info:
        await make_sink(opsgenie.url).send(sample_alert(), "k")
    assert info.value.retry_after == 30.0
    assert str(info.value) == "opsgenie sink 'og': create: HTTP 429"
    assert_no_secret(info.value, API_KEY)
    assert state.values == {}
    assert opsgenie.alerts == {}


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retried(
    opsgenie: FakeOpsgenie, make_sink: MakeSink, status: int
) -> None:
    """5xx and 408 are retryable; the retry creates the alert."""
    opsgenie.respond(status)
    sink = make_sink(opsgenie.url)
    with pytest.raises(SinkUnavailable, match=f"create: HTTP {status}") as info:
        await sink.send(sample_alert(), "k")
    assert_no_secret(info.value, API_KEY)
    await sink.send(sample_alert(), "k")
    assert opsgenie.alert_count("inc-0001") == 1


async def test_a_failed_priority_update_retries_the_whole_escalation(
    opsgenie: FakeOpsgenie, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """An escalation whose second call fails is retried whole: the create again only
    counts, then the priority changes; still one alert, marked done once through."""
    opened, escalated, *_ = lifecycle()
    sink = make_sink(opsgenie.url)
    await sink.send(opened, opened.id)
    opsgenie.respond(503, only="priority")
    with pytest.raises(SinkUnavailable, match="priority: HTTP 503"):
        await sink.send(escalated, escalated.id)
    assert f"done:{escalated.id}" not in state.values
    await sink.send(escalated, escalated.id)
    og = opsgenie.alerts["inc-0001"]
    assert (og.priority, og.count) == ("P1", 3)
    assert opsgenie.alert_count("inc-0001") == 1
    assert f"done:{escalated.id}" in state.values


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "HTTP 401 (Could not authenticate)"),
        (403, "HTTP 403 (Error)"),
        (422, "HTTP 422 (Request body is not processable.)"),
        (404, "HTTP 404 (Error)"),
    ],
)
async def test_client_errors_are_rejected(
    opsgenie: FakeOpsgenie, make_sink: MakeSink, status: int, message: str
) -> None:
    """401, 403, 422 and other 4xx are not retried and quote Opsgenie's message."""
    body = {"message": message.split("(", 1)[1].rstrip(")"), "took": 0.0, "requestId": "r"}
    opsgenie.respond(status, body=body)
    with pytest.raises(SinkRejected) as info:
        await make_sink(opsgenie.url).send(sample_alert(), "k")
    assert str(info.value) == f"opsgenie sink 'og': create: {message}"
    assert not info.value.retryable
    assert_no_secret(info.value, API_KEY)


async def test_a_wrong_key_is_refused_and_an_echoed_key_is_cut(
    opsgenie: FakeOpsgenie, make_sink: MakeSink
) -> None:
    """The fake's own 401 for a wrong key; a message quoting the key shows <api_key>."""
    with pytest.raises(SinkRejected, match="HTTP 401"):
        await make_sink(opsgenie.url, api_key="wrong-SECRET-key").send(sample_alert(), "k")
    opsgenie.respond(422, body={"message": f"key {API_KEY} lacks rights"})
    with pytest.raises(SinkRejected, match="key <api_key> lacks rights") as info:
        await make_sink(opsgenie.url).send(sample_alert(), "k")
    assert_no_secret(info.value, API_KEY)


async def test_network_errors_are_unavailable(make_sink: MakeSink) -> None:
    """A refused connection and a timeout are retryable, unchained, without the key."""
    with pytest.raises(SinkUnavailable, match="create: connection failed") as info:
        await make_sink(closed_port_url()).send(sample_alert(), "k")
    assert_no_secret(info.value, API_KEY)

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timeout {request.headers}", request=request)

    sink = make_sink("https://api.opsgenie.example", transport=httpx.MockTransport(broken))
    with pytest.raises(SinkUnavailable, match="timed out") as info:
        await sink.send(sample_alert(), "k")
    assert_no_secret(info.value, API_KEY)


async def test_configured_priorities_and_tags(opsgenie: FakeOpsgenie, make_sink: MakeSink) -> None:
    """priorities and tags from the config reach Opsgenie."""
    sink = make_sink(opsgenie.url, priorities={"high": "P4"}, tags=["social", "brand-team"])
    await sink.send(sample_alert(), "k")
    create = opsgenie.alerts["inc-0001"].create
    assert create["priority"] == "P4"
    assert create["tags"][:3] == ["social", "brand-team", "listener"]


async def test_send_test_creates_and_closes_a_labelled_p5_alert(
    opsgenie: FakeOpsgenie, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """send_test() creates listener-test-<sink> at P5, says it is a test, closes it."""
    await make_sink(opsgenie.url).send_test()
    og = opsgenie.alerts["listener-test-og"]
    assert og.status == "closed"
    assert og.priority == "P5"
    assert og.message.startswith("[DRILL] TEST: listener")
    assert "test alert from 'listener check --deep' for sink 'og'" in og.create["description"]
    assert state.values == {}


async def test_healthcheck(opsgenie: FakeOpsgenie, make_sink: MakeSink) -> None:
    """GET /v2/alerts?limit=1 changes nothing; a wrong key is rejected; unreachable is
    unavailable."""
    await make_sink(opsgenie.url).healthcheck()
    [call] = opsgenie.calls
    assert (call.method, call.path, call.query) == ("GET", "/v2/alerts", {"limit": ["1"]})
    with pytest.raises(SinkRejected, match=r"health check: HTTP 401 .*check api_key") as info:
        await make_sink(opsgenie.url, api_key="wrong-SECRET-key").healthcheck()
    assert_no_secret(info.value, API_KEY)
    opsgenie.respond(503)
    with pytest.raises(SinkUnavailable, match="health check: HTTP 503"):
        await make_sink(opsgenie.url).healthcheck()
    with pytest.raises(SinkError):
        await make_sink(closed_port_url()).healthcheck()


async def test_the_registry_builds_a_paging_sink() -> None:
    """type: opsgenie builds a Sink that sends tests and takes no digests."""
    config = OpsgenieSinkConfig.model_validate({"type": "opsgenie", "api_key": API_KEY})
    sink = build_sink("og", config, SinkContext())
    assert isinstance(sink, OpsgenieSink)
    assert isinstance(sink, Sink)
    assert isinstance(sink, SendsTest)
    assert not isinstance(sink, SendsDigest)
    await sink.aclose()
