"""The delivery framework over a real outbox and a real webhook receiver, in manual time."""

from __future__ import annotations

import asyncio
import random
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from listener.clock import ManualClock
from listener.config.schema import DeliveryConfig, WebhookSinkConfig
from listener.errors import SinkRejected, SinkUnavailable
from listener.metrics import Metrics
from listener.model import Alert
from listener.sinks.base import Sink
from listener.sinks.delivery import (
    DIGEST_MAX,
    Deliverer,
    DigestAlert,
    RateLimiter,
    backoff,
    digest,
    digest_key,
)
from listener.sinks.webhook import WebhookSink
from listener.store import OutboxItem, Store
from listener.store.core import Database
from listener.store.outbox import Outbox
from tests.support.receiver import WebhookReceiver, sample_alert

SECRET = "s3cret"
RULE = "negative-spike"
POLICY = DeliveryConfig(
    initial_backoff=timedelta(seconds=10),
    max_backoff=timedelta(seconds=80),
    max_age=timedelta(hours=1),
)
HANG = 10.0
"""Generous bound that only detects hangs."""


# ---------------------------------------------------------------------- helpers


class FakeSink:
    """A sink that raises the scripted exceptions in order, then succeeds; records sends."""

    def __init__(self, name: str, *failures: BaseException) -> None:
        self.name = name
        self.failures = deque(failures)
        self.sent: list[tuple[str, str]] = []
        self.attempts = 0

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.popleft()
        self.sent.append((alert.id, idempotency_key))

    async def healthcheck(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class StuckSink(FakeSink):
    """A sink whose send never returns (a receiver that hangs with no timeout)."""

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        self.attempts += 1
        await asyncio.Event().wait()


def alert(incident: str, seq: int) -> Alert:
    """Alert ``<incident>-<seq>`` of ``incident``."""
    return sample_alert(id=f"{incident}-{seq}", incident_id=incident, rule=RULE)


def enqueue(store: Store, clock: ManualClock, sinks: list[str], *alerts: Alert) -> None:
    """Commit ``alerts`` to the outbox for ``sinks`` at the clock's time."""
    store.commit(now=clock.now(), outbox=[(a, sinks) for a in alerts])


def pending_items(store: Store, sink: str) -> list[OutboxItem]:
    """Every pending item of ``sink``, due or not, oldest first."""
    return store.outbox.due(sink, datetime(9999, 1, 1, tzinfo=UTC), 1000)


def alerts_total(metrics: Metrics, sink: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "listener_alerts_total", {"rule": RULE, "sink": sink, "outcome": outcome}
    )
    return value or 0.0


def errors_total(metrics: Metrics, error_type: str) -> float:
    value = metrics.registry.get_sample_value(
        "listener_errors_total", {"stage": "deliver", "error_type": error_type}
    )
    return value or 0.0


def gauge(metrics: Metrics, sink: str) -> float | None:
    return metrics.registry.get_sample_value("listener_outbox_pending", {"sink": sink})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real state file in tmp_path."""
    s = Store.open(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A loopback webhook receiver."""
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
async def make_webhook(receiver: WebhookReceiver) -> AsyncIterator[Callable[[str], WebhookSink]]:
    """Build webhook sinks to the receiver (URL with a secret token, 2 s timeout: short
    enough for the one test that stalls the receiver, long enough that a loaded CI runner
    never times out a plain answer, as 0.3 s once did)."""
    sinks: list[WebhookSink] = []

    def make(name: str) -> WebhookSink:
        config = WebhookSinkConfig.model_validate(
            {
                "type": "webhook",
                "url": receiver.url(f"/{name}?token={SECRET}"),
                "headers": {"Authorization": f"Bearer {SECRET}"},
                "timeout": timedelta(seconds=2),
            }
        )
        sink = WebhookSink(name, config)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


def deliverer(
    store: Store,
    sinks: dict[str, Any],
    metrics: Metrics,
    clock: ManualClock,
    *,
    policy: DeliveryConfig = POLICY,
    **kwargs: Any,
) -> Deliverer:
    policies = dict.fromkeys(sinks, policy)
    return Deliverer(store, sinks, policies, metrics, clock, rng=random.Random(7), **kwargs)


# ---------------------------------------------------------------------- outage and recovery


async def test_outage_then_recovery_delivers_each_alert_once_in_order(
    store: Store,
    clock: ManualClock,
    metrics: Metrics,
    receiver: WebhookReceiver,
    make_webhook: Callable[[str], WebhookSink],
) -> None:
    """500, 500, a timeout, then recovery: every alert arrives once, in order per incident."""
    alerts = [alert("A", 1), alert("B", 1), alert("A", 2), alert("B", 2), alert("A", 3)]
    enqueue(store, clock, ["hook"], *alerts)
    receiver.respond(500, times=2)
    receiver.stall(seconds=HANG)
    d = deliverer(store, {"hook": make_webhook("hook")}, metrics, clock)

    with capture_logs() as logs:
        assert await d.deliver_due("hook") == 0  # 500, the pass stops
        assert await d.deliver_due("hook") == 0  # A waits for its retry; B-1: 500
        assert await d.deliver_due("hook") == 0  # both incidents wait: nothing is sent
        assert len(receiver.requests) == 2
        for _ in range(20):
            if not store.outbox.pending():
                break
            clock.advance(POLICY.max_backoff + timedelta(seconds=1))
            await d.deliver_due("hook")

    assert store.outbox.pending() == {}
    assert None not in receiver.idempotency_keys()
    keys = [str(k) for k in receiver.idempotency_keys()]
    assert sorted(keys) == sorted(a.id for a in alerts)  # each exactly once
    assert [k for k in keys if k.startswith("A")] == ["A-1", "A-2", "A-3"]
    assert [k for k in keys if k.startswith("B")] == ["B-1", "B-2"]
    assert [b["id"] for b in receiver.bodies()] == keys
    for request in receiver.requests:  # every attempt of an alert used its id as the key
        assert request.idempotency_key == request.json["id"]
    assert alerts_total(metrics, "hook", "delivered") == 5
    assert alerts_total(metrics, "hook", "retry") == 3
    assert alerts_total(metrics, "hook", "failed") == 0
    assert errors_total(metrics, "unavailable") == 3
    assert gauge(metrics, "hook") == 0
    retries = [e for e in logs if e["event"] == "alert_delivery_retry"]
    assert len(retries) == 3
    assert {e["log_level"] for e in retries} == {"warning"}
    assert retries[0]["alert_id"] == "A-1"
    assert retries[0]["attempt"] == 1
    assert retries[0]["error"] == "webhook sink 'hook': HTTP 500"
    assert "timed out" in retries[2]["error"]
    assert SECRET not in repr(logs)
    assert "127.0.0.1" not in repr(logs)


async def test_a_later_alert_never_overtakes_an_earlier_one_of_its_incident(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """While an incident's oldest alert waits for its retry, its later alerts wait too;
    other incidents go on."""
    sink = FakeSink("s", SinkUnavailable("down"))
    enqueue(store, clock, ["s"], alert("A", 1))
    d = deliverer(store, {"s": sink}, metrics, clock)
    assert await d.deliver_due("s") == 0
    enqueue(store, clock, ["s"], alert("A", 2), alert("B", 1))
    d.wake()
    assert await d.deliver_due("s") == 1
    assert sink.sent == [("B-1", "B-1")]
    clock.advance(POLICY.initial_backoff)
    assert await d.deliver_due("s") == 2
    assert [a for a, _ in sink.sent] == ["B-1", "A-1", "A-2"]


# ---------------------------------------------------------------------- backoff


async def test_backoff_grows_with_jitter_up_to_the_cap(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """Each retry waits initial × 2^attempts (jittered to 50–100 %), capped at max_backoff."""
    sink = FakeSink("s", *(SinkUnavailable("down") for _ in range(6)))
    enqueue(store, clock, ["s"], alert("A", 1))
    d = deliverer(store, {"s": sink}, metrics, clock)
    delays = []
    for attempt in range(6):
        await d.deliver_due("s")
        [item] = pending_items(store, "s")
        assert item.attempts == attempt + 1
        delay = (item.next_attempt_at - clock.now()).total_seconds()
        base = min(10 * 2**attempt, 80)
        assert base / 2 <= delay <= base
        delays.append(delay)
        assert await d.deliver_due("s") == 0  # not due before its time
        clock.set(item.next_attempt_at)
    assert delays[:4] == sorted(delays[:4])  # the jitter ranges do not overlap below the cap
    assert all(40 <= d <= 80 for d in delays[3:])
    assert await d.deliver_due("s") == 1


def test_backoff_function_is_bounded() -> None:
    """The backoff never exceeds max_backoff, even after very many attempts, unless told to."""
    rng = random.Random(1)
    assert backoff(POLICY, 10_000, rng) <= POLICY.max_backoff
    assert backoff(POLICY, 0, rng) >= POLICY.initial_backoff / 2
    assert backoff(POLICY, 0, rng, retry_after=300) == timedelta(seconds=300)


async def test_retry_after_is_respected(
    store: Store,
    clock: ManualClock,
    metrics: Metrics,
    receiver: WebhookReceiver,
    make_webhook: Callable[[str], WebhookSink],
) -> None:
    """A 429 with Retry-After longer than the backoff delays the retry by at least that."""
    receiver.respond(429, retry_after="300")
    enqueue(store, clock, ["hook"], alert("A", 1))
    d = deliverer(store, {"hook": make_webhook("hook")}, metrics, clock)
    assert await d.deliver_due("hook") == 0
    [item] = pending_items(store, "hook")
    assert item.next_attempt_at - clock.now() == timedelta(seconds=300)
    clock.advance(timedelta(seconds=299))
    assert await d.deliver_due("hook") == 0
    assert len(receiver.requests) == 1
    clock.advance(timedelta(seconds=1))
    assert await d.deliver_due("hook") == 1
    assert receiver.idempotency_keys() == ["A-1"]


@pytest.mark.parametrize(
    "hint", ["1000000000000", "Fri, 31 Dec 9999 23:59:59 GMT", "1e400", "-5", "soon"]
)
async def test_a_huge_or_garbage_retry_after_neither_aborts_the_pass_nor_parks_the_alert(
    store: Store,
    clock: ManualClock,
    metrics: Metrics,
    receiver: WebhookReceiver,
    make_webhook: Callable[[str], WebhookSink],
    hint: str,
) -> None:
    """A 429 with an absurd Retry-After: the pass goes on (other incidents' alerts are
    delivered), and the alert is retried after at most the one-hour cap; garbage is
    ignored (the normal backoff applies)."""
    policy = POLICY.model_copy(update={"max_age": timedelta(days=30)})
    receiver.respond(429, retry_after=hint)
    enqueue(store, clock, ["hook"], alert("A", 1), alert("B", 1), alert("C", 1))
    d = deliverer(store, {"hook": make_webhook("hook")}, metrics, clock, policy=policy)
    assert await d.deliver_due("hook") == 0  # the 429 ends this pass, without raising
    assert await d.deliver_due("hook") == 2  # the next pass delivers what is behind it
    assert receiver.idempotency_keys() == ["B-1", "C-1"]
    [item] = pending_items(store, "hook")
    wait = item.next_attempt_at - clock.now()
    if hint in ("1e400", "-5", "soon"):
        assert wait <= POLICY.initial_backoff
    else:
        assert wait == timedelta(hours=1)
    assert errors_total(metrics, "unavailable") == 1
    clock.advance(wait)
    assert await d.deliver_due("hook") == 1
    assert receiver.idempotency_keys() == ["B-1", "C-1", "A-1"]


# ---------------------------------------------------------------------- giving up


async def test_an_item_older_than_max_age_is_failed_loudly(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """An alert older than max_age is marked failed, logged at error and counted, not sent."""
    sink = FakeSink("s")
    enqueue(store, clock, ["s"], alert("A", 1), alert("A", 2))
    clock.advance(POLICY.max_age + timedelta(seconds=1))
    enqueue(store, clock, ["s"], alert("A", 3))
    d = deliverer(store, {"s": sink}, metrics, clock)
    with capture_logs() as logs:
        assert await d.deliver_due("s") == 1
    assert sink.sent == [("A-3", "A-3")]
    assert [(r.alert_id, r.status) for r in store.outbox.deliveries("A")] == [
        ("A-1", "failed"),
        ("A-2", "failed"),
        ("A-3", "delivered"),
    ]
    assert alerts_total(metrics, "s", "failed") == 2
    assert errors_total(metrics, "expired") == 2
    failed = [e for e in logs if e["event"] == "alert_delivery_failed"]
    assert [(e["alert_id"], e["log_level"], e["error_type"]) for e in failed] == [
        ("A-1", "error", "expired"),
        ("A-2", "error", "expired"),
    ]


async def test_retries_stop_at_max_age(store: Store, clock: ManualClock, metrics: Metrics) -> None:
    """A retry is never scheduled past max_age; the item then fails instead of lingering."""
    sink = FakeSink("s", SinkUnavailable("busy", retry_after=7200))
    enqueue(store, clock, ["s"], alert("A", 1))
    d = deliverer(store, {"s": sink}, metrics, clock)
    start = clock.now()
    await d.deliver_due("s")
    [item] = pending_items(store, "s")
    assert item.next_attempt_at == start + POLICY.max_age
    clock.set(item.next_attempt_at)
    await d.deliver_due("s")
    assert store.outbox.pending() == {}
    assert store.outbox.deliveries("A")[0].status == "failed"
    assert sink.attempts == 1


async def test_rejected_is_failed_and_the_next_item_proceeds(
    store: Store,
    clock: ManualClock,
    metrics: Metrics,
    receiver: WebhookReceiver,
    make_webhook: Callable[[str], WebhookSink],
) -> None:
    """A 400 marks the alert failed (logged at error, counted) and the next alert is sent."""
    receiver.respond(400)
    enqueue(store, clock, ["hook"], alert("A", 1), alert("A", 2))
    d = deliverer(store, {"hook": make_webhook("hook")}, metrics, clock)
    with capture_logs() as logs:
        assert await d.deliver_due("hook") == 1
    assert receiver.idempotency_keys() == ["A-2"]
    records = store.outbox.deliveries("A")
    assert [(r.alert_id, r.status) for r in records] == [("A-1", "failed"), ("A-2", "delivered")]
    assert records[0].last_error == "webhook sink 'hook': HTTP 400"
    assert alerts_total(metrics, "hook", "failed") == 1
    assert alerts_total(metrics, "hook", "delivered") == 1
    assert errors_total(metrics, "rejected") == 1
    [failed] = [e for e in logs if e["event"] == "alert_delivery_failed"]
    assert failed["log_level"] == "error"
    assert failed["error_type"] == "rejected"


async def test_a_buggy_sink_is_retried_not_fatal(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """An unexpected exception from a sink is logged once without its message, counted and
    retried like SinkUnavailable."""
    sink = FakeSink("s", RuntimeError(f"bug near https://x/?token={SECRET}"))
    enqueue(store, clock, ["s"], alert("A", 1))
    d = deliverer(store, {"s": sink}, metrics, clock)
    with capture_logs() as logs:
        assert await d.deliver_due("s") == 0
    [event] = [e for e in logs if e["event"] == "alert_delivery_retry"]
    assert event["error_type"] == "unexpected"
    assert event["exc_type"] == "RuntimeError"
    assert SECRET not in repr(logs)
    assert errors_total(metrics, "unexpected") == 1
    assert alerts_total(metrics, "s", "retry") == 1
    clock.advance(POLICY.initial_backoff)
    assert await d.deliver_due("s") == 1


# ---------------------------------------------------------------------- isolation


async def test_a_down_sink_does_not_delay_another(
    store: Store,
    clock: ManualClock,
    metrics: Metrics,
    receiver: WebhookReceiver,
    make_webhook: Callable[[str], WebhookSink],
) -> None:
    """While one sink hangs in send, another sink's pass completes and delivers."""
    stuck = StuckSink("stuck")
    enqueue(store, clock, ["stuck", "hook"], alert("A", 1), alert("B", 1))
    d = deliverer(store, {"stuck": stuck, "hook": make_webhook("hook")}, metrics, clock)
    hanging = asyncio.create_task(d.deliver_due("stuck"))
    try:
        async with asyncio.timeout(HANG):
            assert await d.deliver_due("hook") == 2
        assert receiver.idempotency_keys() == ["A-1", "B-1"]
        assert not hanging.done()
        assert stuck.attempts == 1
    finally:
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
    assert store.outbox.pending() == {"stuck": 2}


async def test_run_delivers_on_wake_and_isolates_a_stuck_sink(
    store: Store,
    clock: ManualClock,
    metrics: Metrics,
    receiver: WebhookReceiver,
    make_webhook: Callable[[str], WebhookSink],
) -> None:
    """run() delivers what wake() announces while another sink's worker hangs, and stops."""
    stuck = StuckSink("stuck")
    d = deliverer(
        store,
        {"stuck": stuck, "hook": make_webhook("hook")},
        metrics,
        clock,
        max_wait=HANG,
        stop_grace=0.1,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    try:
        await asyncio.sleep(0)
        enqueue(store, clock, ["stuck", "hook"], alert("A", 1))
        d.wake()
        await asyncio.to_thread(receiver.wait_for, 1, HANG)
        enqueue(store, clock, ["hook"], alert("A", 2))
        d.wake()
        await asyncio.to_thread(receiver.wait_for, 2, HANG)
    finally:
        stop.set()
        async with asyncio.timeout(HANG):
            await task
    assert receiver.idempotency_keys() == ["A-1", "A-2"]
    assert store.outbox.pending() == {"stuck": 1}


async def test_flush_is_bounded_and_leaves_the_rest_pending(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """flush() delivers what it can and returns within its timeout despite a hanging sink."""
    ok, stuck = FakeSink("ok"), StuckSink("stuck")
    enqueue(store, clock, ["ok", "stuck"], alert("A", 1), alert("A", 2))
    d = deliverer(store, {"ok": ok, "stuck": stuck}, metrics, clock)
    async with asyncio.timeout(HANG):
        await d.flush(0.2)
    assert [a for a, _ in ok.sent] == ["A-1", "A-2"]
    assert store.outbox.pending() == {"stuck": 2}


async def test_drain_delivers_everything_due_across_incidents(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """drain() keeps going past one incident's retry and delivers every other due alert."""
    flaky, ok = FakeSink("flaky", SinkUnavailable("down")), FakeSink("ok")
    enqueue(store, clock, ["flaky", "ok"], alert("A", 1), alert("B", 1), alert("C", 1))
    d = deliverer(store, {"flaky": flaky, "ok": ok}, metrics, clock)
    await d.drain()
    assert [a for a, _ in flaky.sent] == ["B-1", "C-1"]
    assert [a for a, _ in ok.sent] == ["A-1", "B-1", "C-1"]
    assert store.outbox.pending() == {"flaky": 1}
    assert gauge(metrics, "flaky") == 1
    assert gauge(metrics, "ok") == 0


# ---------------------------------------------------------------------- restart


async def test_a_restart_resends_only_what_was_not_delivered(
    tmp_path: Path,
    clock: ManualClock,
    receiver: WebhookReceiver,
    make_webhook: Callable[[str], WebhookSink],
) -> None:
    """A second Deliverer over the same state file sends only the undelivered alerts, with
    the same Idempotency-Key as before."""
    path = tmp_path / "state.db"
    first = Store.open(path)
    enqueue(first, clock, ["hook"], alert("A", 1), alert("A", 2), alert("B", 1))
    receiver.respond(200)
    receiver.respond(503)
    d1 = deliverer(first, {"hook": make_webhook("hook")}, Metrics(), clock)
    assert await d1.deliver_due("hook") == 1
    first.close()

    second = Store.open(path)
    try:
        clock.advance(POLICY.max_backoff)
        d2 = deliverer(second, {"hook": make_webhook("hook")}, Metrics(), clock)
        assert await d2.deliver_due("hook") == 2
        assert second.outbox.pending() == {}
    finally:
        second.close()
    assert receiver.idempotency_keys() == ["A-1", "A-2", "B-1"]
    assert [r.idempotency_key for r in receiver.requests] == ["A-1", "A-2", "A-2", "B-1"]
    assert [r.status for r in receiver.requests] == [200, 503, 200, 200]


async def test_unknown_sink_name_is_an_error(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """deliver_due for a sink the Deliverer was not given raises KeyError."""
    d = deliverer(store, {}, metrics, clock)
    with pytest.raises(KeyError):
        await d.deliver_due("nope")
    await d.drain()


def test_fake_sinks_satisfy_the_protocol() -> None:
    """The test doubles are Sinks (so the tests exercise the real contract)."""
    sinks: list[Sink] = [FakeSink("a"), StuckSink("b")]
    assert [s.name for s in sinks] == ["a", "b"]


async def test_rejected_from_a_fake_sink_is_failed(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """SinkRejected from any sink marks the item failed with the sink's message."""
    sink = FakeSink("s", SinkRejected("no such channel"))
    enqueue(store, clock, ["s"], alert("A", 1))
    d = deliverer(store, {"s": sink}, metrics, clock)
    assert await d.deliver_due("s") == 0
    [record] = store.outbox.deliveries("A")
    assert (record.status, record.last_error, record.attempts) == ("failed", "no such channel", 1)


# ---------------------------------------------------------------------- rate limits and storms


def with_policy(**changes: Any) -> DeliveryConfig:
    """POLICY with some fields changed."""
    return POLICY.model_copy(update=changes)


class ClockedSink(FakeSink):
    """A FakeSink that also records the manual clock's time of each accepted send."""

    def __init__(self, name: str, clock: ManualClock, *failures: BaseException) -> None:
        super().__init__(name, *failures)
        self.clock = clock
        self.times: list[datetime] = []
        self.alerts: list[Alert] = []

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        await super().send(alert, idempotency_key)
        self.times.append(self.clock.now())
        self.alerts.append(alert)


class OutageSink(FakeSink):
    """A sink that raises SinkUnavailable while ``down`` is true."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.down = False

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        if self.down:
            self.attempts += 1
            raise SinkUnavailable(f"{self.name} is down")
        await super().send(alert, idempotency_key)


class Crash(BaseException):
    """The process "dies" (what a kill -9 would do at that point)."""


class CrashingStore(Store):
    """A Store that dies at its ``crash_after``-th ``outbox.mark_delivered`` call, before
    writing it."""

    crash_after: int | None = None
    marks = 0

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.outbox = CrashingOutbox(db, self)


class CrashingOutbox(Outbox):
    """The outbox of a :class:`CrashingStore`: counts its marks and dies on cue."""

    def __init__(self, db: Database, store: CrashingStore) -> None:
        super().__init__(db)
        self.store = store

    def mark_delivered(self, item_id: int, now: datetime) -> None:
        self.store.marks += 1
        if self.store.crash_after is not None and self.store.marks >= self.store.crash_after:
            raise Crash
        super().mark_delivered(item_id, now)


def storm(incidents: int, per_incident: int) -> list[Alert]:
    """``incidents × per_incident`` alerts, interleaved like a storm across brands."""
    return [alert(f"I{i:02d}", seq) for seq in range(1, per_incident + 1) for i in range(incidents)]


def member_ids(body: dict[str, Any]) -> list[str]:
    """The member alert ids a webhook digest body lists (one fact per member)."""
    ids = []
    for fact in body["facts"]:
        match = re.match(r"\[(\S+)\] ", fact["name"])
        assert match, fact
        ids.append(match.group(1))
    return ids


def in_incident_order(ids: list[str]) -> bool:
    """Every incident's alerts (``<incident>-<seq>``) appear with increasing seq."""
    last: dict[str, int] = {}
    for alert_id in ids:
        incident, seq = alert_id.rsplit("-", 1)
        if int(seq) <= last.get(incident, 0):
            return False
        last[incident] = int(seq)
    return True


def test_rate_limiter_is_strict_per_sliding_minute() -> None:
    """A burst of max_per_minute goes at once, then each send waits for a token spent a
    minute earlier; a clock set backwards never makes a wait longer than a minute."""
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    limiter = RateLimiter(3, clock)
    assert [limiter.try_take() for _ in range(4)] == [True, True, True, False]
    assert limiter.ready_at() == clock.now() + timedelta(minutes=1)
    clock.advance(timedelta(seconds=59))
    assert not limiter.try_take()
    clock.advance(timedelta(seconds=1))
    assert [limiter.try_take() for _ in range(4)] == [True, True, True, False]
    clock.set(clock.now() - timedelta(hours=1))
    assert limiter.ready_at() == clock.now() + timedelta(minutes=1)
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(0, clock)


class TickingClock(ManualClock):
    """A clock that moves a microsecond at every reading, as the real one does."""

    def now(self) -> datetime:
        return self.advance(timedelta(microseconds=1))


def test_rate_limiter_takes_a_free_token_on_a_clock_that_moves_between_readings() -> None:
    """With tokens left, a send is allowed even though the clock moved since the caller
    read it (a real clock always does: before the fix, a rate-limited sink sent only when
    two readings fell in the same microsecond, and otherwise spun)."""
    clock = TickingClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    limiter = RateLimiter(2, clock)
    assert [limiter.try_take() for _ in range(3)] == [True, True, False]


async def test_rate_limit_spreads_sends_over_time_without_dropping(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """With max_per_minute: 3, eight due alerts go out three a minute, in order, none
    dropped or retried; each send that waited is counted once."""
    sink = ClockedSink("s", clock)
    alerts = [alert(f"I{i}", 1) for i in range(8)]
    enqueue(store, clock, ["s"], *alerts)
    d = deliverer(store, {"s": sink}, metrics, clock, policy=with_policy(max_per_minute=3))

    assert await d.deliver_due("s") == 3
    assert await d.deliver_due("s") == 0  # over the limit: nothing is sent
    await d.drain()  # returns: it does not wait for the limit
    assert store.outbox.pending() == {"s": 5}
    assert {i.attempts for i in pending_items(store, "s")} == {0}  # waiting is not a retry
    clock.advance(timedelta(seconds=59))
    assert await d.deliver_due("s") == 0
    clock.advance(timedelta(seconds=1))
    assert await d.deliver_due("s") == 3
    clock.advance(timedelta(seconds=60))
    assert await d.deliver_due("s") == 2

    assert [a for a, _ in sink.sent] == [a.id for a in alerts]
    assert store.outbox.pending() == {}
    for i, sent_at in enumerate(sink.times):  # never more than 3 in any sixty seconds
        assert sum(sent_at <= t < sent_at + timedelta(minutes=1) for t in sink.times[i:]) <= 3
    assert sink.times[-1] - sink.times[0] >= timedelta(minutes=2)
    assert alerts_total(metrics, "s", "delivered") == 8
    assert alerts_total(metrics, "s", "rate_limited") == 2  # I3 and I6 had to wait
    assert alerts_total(metrics, "s", "retry") == 0


async def test_a_storm_arrives_as_one_digest_carrying_all_members(
    store: Store,
    clock: ManualClock,
    metrics: Metrics,
    receiver: WebhookReceiver,
    make_webhook: Callable[[str], WebhookSink],
) -> None:
    """Thirty due alerts over group_over: 5 reach the receiver as one digest listing all
    thirty, in outbox order, and are all marked delivered together."""
    alerts = storm(10, 3)
    alerts[7] = replace(alerts[7], kind="escalated", level="crisis")
    enqueue(store, clock, ["hook"], *alerts)
    d = deliverer(
        store, {"hook": make_webhook("hook")}, metrics, clock, policy=with_policy(group_over=5)
    )
    with capture_logs() as logs:
        assert await d.deliver_due("hook") == 30

    [request] = receiver.requests
    body = request.json
    assert request.idempotency_key == body["id"] == digest_key(a.id for a in alerts)
    assert member_ids(body) == [a.id for a in alerts]
    assert body["title"] == "30 alerts: 1 escalated, 29 opened — Acme"
    assert (body["kind"], body["level"]) == ("escalated", "crisis")
    assert store.outbox.pending() == {}
    assert {r.status for i in range(10) for r in store.outbox.deliveries(f"I{i:02d}")} == {
        "delivered"
    }
    assert alerts_total(metrics, "hook", "delivered") == 30
    assert alerts_total(metrics, "hook", "grouped") == 30
    assert [e["alert_id"] for e in logs if e["event"] == "alert_delivered"] == [
        a.id for a in alerts
    ]
    [event] = [e for e in logs if e["event"] == "digest_delivered"]
    assert (event["digest_id"], event["members"]) == (body["id"], 30)


async def test_at_most_group_over_due_alerts_go_one_by_one(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """group_over due alerts (not more) are sent as themselves, not as a digest."""
    sink = FakeSink("s")
    alerts = storm(5, 1)
    enqueue(store, clock, ["s"], *alerts)
    d = deliverer(store, {"s": sink}, metrics, clock, policy=with_policy(group_over=5))
    assert await d.deliver_due("s") == 5
    assert [a for a, _ in sink.sent] == [a.id for a in alerts]
    assert alerts_total(metrics, "s", "grouped") == 0


async def test_a_digest_retried_after_a_failure_keeps_its_id(
    tmp_path: Path,
    clock: ManualClock,
    receiver: WebhookReceiver,
    make_webhook: Callable[[str], WebhookSink],
) -> None:
    """A digest answered 500 is resent with the same id and members, also by a restarted
    Deliverer, although more alerts arrived meanwhile (they follow on their own)."""
    path = tmp_path / "state.db"
    policy = with_policy(group_over=5)
    first = Store.open(path)
    alerts = storm(3, 2)
    enqueue(first, clock, ["hook"], *alerts)
    receiver.respond(500)
    d1 = deliverer(first, {"hook": make_webhook("hook")}, Metrics(), clock, policy=policy)
    assert await d1.deliver_due("hook") == 0
    later = [alert("X", 1), alert("I00", 3)]
    enqueue(first, clock, ["hook"], *later)
    assert await d1.deliver_due("hook") == 1  # X-1 alone; I00-3 waits for the digest
    first.close()

    second = Store.open(path)
    try:
        clock.advance(POLICY.initial_backoff)
        d2 = deliverer(second, {"hook": make_webhook("hook")}, Metrics(), clock, policy=policy)
        assert await d2.deliver_due("hook") == 7
        assert second.outbox.pending() == {}
    finally:
        second.close()
    digest_id = digest_key(a.id for a in alerts)
    assert [r.idempotency_key for r in receiver.requests] == [digest_id, "X-1", digest_id, "I00-3"]
    assert [r.status for r in receiver.requests] == [500, 200, 200, 200]
    assert receiver.requests[0].raw == receiver.requests[2].raw
    assert member_ids(receiver.requests[2].json) == [a.id for a in alerts]


async def test_a_crash_between_digest_and_marks_resends_the_same_digest(
    tmp_path: Path, clock: ManualClock, metrics: Metrics
) -> None:
    """If the process dies after the receiver accepted a digest, halfway through marking
    its members, the next start resends that same digest (dropped by its key) and sends
    none of its members again on its own."""
    path = tmp_path / "state.db"
    policy = with_policy(group_over=2)
    first = CrashingStore.open(path)
    first.crash_after = 3
    alerts = storm(2, 3)
    enqueue(first, clock, ["s"], *alerts)
    before = ClockedSink("s", clock)
    with pytest.raises(Crash):
        await deliverer(first, {"s": before}, metrics, clock, policy=policy).deliver_due("s")
    first.close()
    assert len(before.sent) == 1
    assert isinstance(before.alerts[0], DigestAlert)

    enqueue_later = [alert("I00", 4), alert("I01", 4), alert("Z", 1)]
    second = Store.open(path)
    try:
        enqueue(second, clock, ["s"], *enqueue_later)
        after = ClockedSink("s", clock)
        assert (
            await deliverer(second, {"s": after}, Metrics(), clock, policy=policy).deliver_due("s")
            == 6 - 2 + 3
        )
        assert second.outbox.pending() == {}
    finally:
        second.close()
    first_key = before.sent[0][1]
    assert after.sent[0][1] == first_key  # the same digest: the receiver drops it by key
    assert after.alerts[0] == before.alerts[0]
    second_digest = after.alerts[1]
    assert isinstance(second_digest, DigestAlert)
    assert list(second_digest.members) == [a.id for a in enqueue_later]
    assert len(after.sent) == 2


async def test_an_alert_tried_alone_is_never_grouped_nor_overtaken(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """An alert that failed once on its own (and every later alert of its incident) goes
    out alone after its backoff; the storm around it is one digest, in incident order."""
    sink = ClockedSink("s", clock, SinkUnavailable("blip"))
    enqueue(store, clock, ["s"], alert("A", 1))
    d = deliverer(store, {"s": sink}, metrics, clock, policy=with_policy(group_over=3))
    assert await d.deliver_due("s") == 0
    enqueue(store, clock, ["s"], alert("A", 2), *storm(4, 2))
    assert await d.deliver_due("s") == 8  # A waits for its retry; the rest is a digest
    [first] = sink.alerts
    assert isinstance(first, DigestAlert)
    assert "A-2" not in first.members
    clock.advance(POLICY.max_backoff)
    assert await d.deliver_due("s") == 2
    assert [a.id for a in sink.alerts[1:]] == ["A-1", "A-2"]


async def test_an_alert_in_flight_at_a_crash_is_resent_alone(
    tmp_path: Path, clock: ManualClock, metrics: Metrics
) -> None:
    """An alert whose send was accepted just before the process died is resent on its
    own after the restart (same key), not inside the next storm's digest."""
    path = tmp_path / "state.db"
    policy = with_policy(group_over=2)
    first = CrashingStore.open(path)
    first.crash_after = 1
    enqueue(first, clock, ["s"], alert("A", 1))
    before = FakeSink("s")
    with pytest.raises(Crash):
        await deliverer(first, {"s": before}, metrics, clock, policy=policy).deliver_due("s")
    first.close()

    second = Store.open(path)
    try:
        enqueue(second, clock, ["s"], alert("A", 2), *storm(3, 1))
        after = ClockedSink("s", clock)
        assert (
            await deliverer(second, {"s": after}, Metrics(), clock, policy=policy).deliver_due("s")
            == 5
        )
    finally:
        second.close()
    assert before.sent == [("A-1", "A-1")]
    assert [a.id for a in after.alerts[:2]] == ["A-1", "A-2"]
    [grouped] = after.alerts[2:]
    assert isinstance(grouped, DigestAlert)
    assert list(grouped.members) == ["I00-1", "I01-1", "I02-1"]


async def test_a_storm_over_digest_max_goes_out_in_several_digests(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """More than DIGEST_MAX due alerts become several digests, every alert in exactly one,
    each incident's alerts in order."""
    sink = ClockedSink("s", clock)
    alerts = storm(DIGEST_MAX // 2 + 5, 2)
    enqueue(store, clock, ["s"], *alerts)
    d = deliverer(store, {"s": sink}, metrics, clock, policy=with_policy(group_over=5))
    assert await d.deliver_due("s") == len(alerts)
    assert all(isinstance(a, DigestAlert) for a in sink.alerts)
    carried = [m for a in sink.alerts for m in getattr(a, "members", ())]
    assert sorted(carried) == sorted(a.id for a in alerts)
    assert in_incident_order(carried)
    assert len(sink.alerts[0].facts) == DIGEST_MAX


async def test_a_digest_older_than_max_age_fails_as_a_whole(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """A digest that cannot be delivered before its oldest member's max_age fails: every
    member is marked failed, logged and counted, and the journal is cleared."""
    sink = OutageSink("s")
    sink.down = True
    enqueue(store, clock, ["s"], *storm(3, 1))
    d = deliverer(store, {"s": sink}, metrics, clock, policy=with_policy(group_over=2))
    with capture_logs() as logs:
        for _ in range(200):
            if not store.outbox.pending():
                break
            await d.deliver_due("s")
            clock.advance(POLICY.max_backoff)
    assert store.outbox.pending() == {}
    assert alerts_total(metrics, "s", "failed") == 3
    assert errors_total(metrics, "expired") == 1
    failed = [e["alert_id"] for e in logs if e["event"] == "alert_delivery_failed"]
    assert failed == ["I00-1", "I01-1", "I02-1"]
    sink.down = False
    enqueue(store, clock, ["s"], alert("B", 1))
    assert await d.deliver_due("s") == 1  # nothing of the failed digest lingers


async def test_a_sink_down_for_ten_minutes_gets_everything_in_order_afterwards(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """While one sink is down for ten minutes another keeps receiving; afterwards the
    down sink receives every pending alert, once each, in order per incident."""
    down, up = OutageSink("down"), OutageSink("up")
    d = deliverer(store, {"down": down, "up": up}, metrics, clock)
    down.down = True
    enqueued: list[str] = []
    seqs = dict.fromkeys("ABC", 0)
    for step in range(20):  # one new alert every 30 s, for ten minutes
        incident = "ABC"[step % 3]
        seqs[incident] += 1
        new = alert(incident, seqs[incident])
        enqueue(store, clock, ["down", "up"], new)
        enqueued.append(new.id)
        await d.deliver_due("down")
        assert await d.deliver_due("up") == 1
        assert [a for a, _ in up.sent] == enqueued  # the other sink is never held up
        clock.advance(timedelta(seconds=30))
    assert down.sent == []
    assert down.attempts > 3
    assert store.outbox.pending() == {"down": 20}

    down.down = False
    for _ in range(10):
        if not store.outbox.pending():
            break
        clock.advance(POLICY.max_backoff)
        await d.deliver_due("down")
    received = [a for a, _ in down.sent]
    assert sorted(received) == sorted(enqueued)  # every alert, exactly once
    assert in_incident_order(received)
    assert [k for _, k in down.sent] == received
    assert alerts_total(metrics, "down", "failed") == 0


def test_digest_is_pure_and_its_id_depends_only_on_the_members() -> None:
    """digest() summarises its members (most severe kind, drill only if all are) and
    derives the same id from the same member ids in any order."""
    members = [
        alert("A", 1),
        replace(alert("B", 1), kind="escalated", level="crisis", brand="Globex"),
        replace(alert("C", 1), kind="resolved", facts=()),
    ]
    one = digest(members)
    assert one == digest(members)
    assert one.id == digest(list(reversed(members))).id == digest_key(["C-1", "B-1", "A-1"])
    assert one.id != digest(members[:2]).id
    assert one.incident_id == one.id
    assert (one.kind, one.level, one.previous_level) == ("escalated", "crisis", None)
    assert one.title == "3 alerts: 1 escalated, 1 opened, 1 resolved — Acme, Globex"
    assert one.brand == "Acme, Globex"
    assert one.members == ("A-1", "B-1", "C-1")
    assert [str(f).split(" ", 1)[0] for f in one.facts] == ["[A-1]", "[B-1]", "[C-1]"]
    assert one.facts[2].value == 0
    assert len({(m.source, m.id) for m in one.top_mentions}) == len(one.top_mentions) == 2
    assert one.to_dict()["members"] == ("A-1", "B-1", "C-1")
    assert not one.drill
    drills = digest([replace(m, drill=True) for m in members])
    assert drills.drill
    assert drills.title.startswith("[DRILL] 3 alerts: ")
    with pytest.raises(ValueError, match="at least one"):
        digest([])
    with pytest.raises(ValueError, match="twice"):
        digest([members[0], members[0]])
