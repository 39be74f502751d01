"""Distributed mode's evaluate role on a real broker (tansu): airline tweets replayed as six
brands through ``listener publish``, ingest workers and evaluators (``listener run --role
evaluate``), with ``listener tick`` bringing the time, make the same alerts (ids, kinds,
levels, incidents) as embedded mode's processor makes of the same mentions at the same
instants; an evaluator killed mid-stream, and one that starts with an empty state folder,
change none of them. Restarts and kills cost the group a rebalance each (about 10 s on
tansu), so one run covers parity, a SIGKILL and a rebuild; bench/scale.py runs more
rounds."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from listener.bus import Bus, decode_alert, decode_scored, tick_message
from listener.config.lint import load_with_warnings
from listener.metrics import Metrics
from listener.model import Mention
from listener.processor import Processor
from listener.roles.evaluate import tick_times
from listener.roles.watch import LagWatch
from listener.store import Store
from tests.integration.broker import (
    Worker,
    bus_env,
    caught_up,
    consume,
    new_bus,
    produce,
    running_broker,
    stop_all,
    wait_for,
)
from tests.integration.test_bus_ingest import AIRLINES, airline_mentions, publish
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

EVERY = timedelta(minutes=30)
Decision = tuple[str, str, str, str]
"""An alert as compared: its id, kind, level and incident id."""
Pair = tuple[tuple[str, str], str]
"""A mention's key and a brand it matched."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_broker(tmp_path_factory.mktemp("tansu") / "tansu.log") as address:
        yield address


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver) -> Path:
    return write_rules(tmp_path_factory.mktemp("config") / "rules.yaml", receiver.url())


def write_rules(path: Path, hook: str) -> Path:
    """The six airlines, a rule that opens, escalates and resolves over their week, and a
    webhook sink at ``hook`` (also bench/resilience.py's)."""
    brands = "".join(
        f"  - name: {name}\n    handles: ['{handle}']\n" for name, handle in AIRLINES.items()
    )
    path.write_text(
        "brands:\n" + brands + "rules:\n"
        "  - name: angry\n"
        "    resolve_after: 1h\n"
        "    levels:\n"
        "      watch:\n"
        "        when: {type: volume, metric: negative, window: 2h, above: 6}\n"
        "      critical:\n"
        "        when: {type: volume, metric: negative, window: 2h, above: 12}\n"
        "        for: 30m\n"
        "routes:\n  default: [ops]\n"
        # the replayed week ends hours ago: its alerts are days old when they go out
        f"sinks:\n  ops: {{type: webhook, url: '{hook}', delivery: {{max_age: 30d}}}}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def mentions() -> list[Mention]:
    return recent(airline_mentions(2400, every=6))


def recent(mentions: list[Mention]) -> list[Mention]:
    """The mentions moved by whole weeks (days and hours of the week kept) to end over 5
    hours ago: the delivery workers run on the real clock, and an alert that ends up
    older than its sink's ``max_age`` (at most a year) expires undelivered."""
    last = max(m.created_at for m in mentions)
    weeks = (datetime.now(UTC) - timedelta(hours=5) - last) // timedelta(weeks=1)
    shift = timedelta(weeks=weeks)
    return [replace(m, created_at=m.created_at + shift) for m in mentions]


@dataclass(frozen=True)
class Embedded:
    """What embedded mode made of the mentions: the alerts routed to a sink, the
    (mention, brand) pairs counted, and what its state file records (:func:`records`)."""

    alerts: set[Decision]
    pairs: set[Pair]
    records: dict[str, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def want(
    config: Path, mentions: list[Mention], tmp_path_factory: pytest.TempPathFactory
) -> Embedded:
    return embedded(config, mentions, tmp_path_factory.mktemp("embedded"))


def records(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """What a state records of the incidents: every incident, event, notice and ledger row
    (the ledger's alert ids and sinks)."""
    return {
        "incidents": sorted(tuple(r) for r in store._read("SELECT * FROM incidents")),
        "events": sorted(tuple(r) for r in store._read("SELECT * FROM incident_events")),
        "notices": sorted(tuple(r) for r in store._read("SELECT * FROM notices")),
        "ledger": sorted(tuple(r) for r in store._read("SELECT alert_id, sink FROM outbox")),
    }


def embedded(config: Path, mentions: list[Mention], tmp: Path) -> Embedded:
    """What embedded mode's processor decides: every mention counted, then the rules run at
    each tick instant."""
    cfg = load_with_warnings(str(config))[0]
    store = Store.open(tmp / "embedded.db")
    try:
        processor = Processor(cfg, store, Metrics())
        ordered = sorted(mentions, key=lambda m: m.created_at)
        results = processor.ingest_many("x", [(m.created_at, [m]) for m in ordered])
        alerts: set[Decision] = set()
        for at in ticks(mentions):
            for alert in processor.evaluate(at):
                alerts.add((alert.id, alert.kind, alert.level, alert.incident_id))
        counted_pairs = sum(r.matched for r in results)
        recorded = records(store)
    finally:
        store.close()
    scored = {
        (s.mention.key, brand)
        for s in processor.stage.run(ordered, ordered[-1].created_at)
        for brand in s.brands
    }
    assert counted_pairs <= len(scored)
    return Embedded(alerts, scored, recorded)


def ticks(mentions: list[Mention]) -> list[datetime]:
    first = min(m.created_at for m in mentions)
    last = max(m.created_at for m in mentions) + timedelta(hours=4)
    return tick_times(first, last, EVERY)


def tick(bus: Bus, config: Path, times: list[datetime], tmp: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "listener",
            "tick",
            "--config",
            str(config),
            "--from",
            times[0].isoformat(),
            "--to",
            times[-1].isoformat(),
            "--every",
            "30m",
        ],
        env=bus_env(bus, tmp / "tick-state"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"published {len(times):,} ticks for ")


def encode_tick(brand: str, at: datetime) -> bytes:
    return json.dumps(tick_message(brand, at)).encode()


def counted(workers: list[Worker], outcome: str = "ok") -> int:
    """Scored mentions the evaluators counted (their ``listener_bus_messages_total``)."""
    total = 0
    for worker in workers:
        if worker.proc.poll() is not None:
            continue
        _, text = worker.get("/metrics")
        for line in text.splitlines():
            if (
                line.startswith("listener_bus_messages_total{")
                and 'role="evaluate"' in line
                and 'topic="scored"' in line
                and f'outcome="{outcome}"' in line
            ):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def wait_counted(workers: list[Worker], want: int, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while counted(workers) < want:
        for w in workers:
            if w.proc.poll() is not None:
                pytest.fail(f"an evaluator exited:\n{w.output()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"evaluators counted {counted(workers)} of {want}")
        time.sleep(0.5)


def decisions(out: list[tuple[str, bytes]]) -> list[Decision]:
    found = []
    for key, value in out:
        alert, sinks = decode_alert(value)
        assert key == alert.incident_id
        if sinks:
            found.append((alert.id, alert.kind, alert.level, alert.incident_id))
    return found


def test_distributed_mode_decides_and_records_what_embedded_mode_does_through_kills(
    broker: str,
    config: Path,
    mentions: list[Mention],
    want: Embedded,
    receiver: WebhookReceiver,
    database: str,
    tmp_path: Path,
) -> None:
    """2,400 airline tweets through two ingest workers, two evaluators and two delivery
    workers sharing four partitions, then a tick every 30 minutes of the week for each
    brand: the alerts on ``alerts`` (keyed by incident) are those of embedded mode, no
    more, no fewer; the shared state in PostgreSQL records the same incidents, events,
    notices and ledger rows as embedded mode's state file, the receiver accepts every
    routed alert, and the archive holds every matched mention for each of its brands.
    While mentions are scored, an ingest worker is SIGKILLed, while they are counted, an
    evaluator, and while alerts are delivered, a delivery worker; each comes back on its
    state folder (a pod restarted): every matched mention still reaches ``scored`` for
    each of its brands, none is counted twice, and no alert is lost (at most the one in
    flight is sent again, with its idempotency key). Halfway through the ticks the other
    evaluator stops and comes back with an empty state folder: it rebuilds its brands
    from the changelog, says so in its metrics, and decides on as before."""
    want_alerts, want_pairs = want.alerts, want.pairs
    pairs = len(want_pairs)
    assert len(want_alerts) > 20  # incidents open, escalate and resolve: the test is not empty
    assert {kind for _, kind, _, _ in want_alerts} >= {"opened", "escalated", "resolved"}
    bus = new_bus(broker, partitions=4)
    assert publish(bus, mentions, tmp_path).returncode == 0

    def start(role: str, folder: str, log: str) -> Worker:
        extra = {"LISTENER_TICKER": "off"} if role == "evaluate" else {}
        if role == "deliver":
            extra["LISTENER_STATE"] = database
        return Worker(role, config, bus_env(bus, tmp_path / folder, **extra), tmp_path / log)

    ingest = [start("ingest", f"i{i}", f"i{i}.log") for i in range(2)]
    evaluators = [start("evaluate", f"e{i}", f"e{i}.log") for i in range(2)]
    deliver = [start("deliver", f"d{i}", f"d{i}.log") for i in range(2)]
    killed = [ingest[0], evaluators[1], deliver[0]]
    try:
        wait_for("a sixth counted", lambda: counted(evaluators) >= pairs // 6)
        killed[0].proc.kill()
        killed[0].proc.wait()
        ingest[0] = start("ingest", "i0", "i0-again.log")  # the same state folder
        wait_for("a third counted", lambda: counted(evaluators) >= pairs // 3)
        killed[1].proc.kill()
        killed[1].proc.wait()
        evaluators[1] = start("evaluate", "e1", "e1-again.log")
        wait_for("mentions scored", lambda: caught_up(bus, "ingest", "mentions"), timeout=180)
        wait_for("scored counted", lambda: caught_up(bus, "evaluate", "scored"), timeout=180)
        times = ticks(mentions)
        half = len(times) // 2
        tick(bus, config, times[:half], tmp_path)
        consume(bus, "alerts", lambda got: len(decisions(got)) >= 10, timeout=120)
        killed[2].proc.kill()  # a delivery worker, while alerts go out
        killed[2].proc.wait()
        deliver[0] = start("deliver", "d0", "d0-again.log")
        # one evaluator goes and comes back with nothing: its state is the changelog's
        assert evaluators[0].stop() == 0
        evaluators[0] = start("evaluate", "e-empty", "e0-empty.log")
        # the rest as a replay's own clock would (listener tick is above)
        brands = list(AIRLINES)
        produce(bus, "ticks", [(b, encode_tick(b, at)) for at in times[half:] for b in brands])
        out = consume(bus, "alerts", lambda got: set(decisions(got)) >= want_alerts, timeout=180)
        _, rebuilt = evaluators[0].get("/metrics")
        wait_for("ticks evaluated", lambda: caught_up(bus, "evaluate", "ticks"))
        lag = LagWatch(bus, "evaluate", ("scored", "ticks"), Metrics(CollectorRegistry()))
        behind = lag.poll()
        found: set[Pair] = set()
        read = [0]

        def all_scored(got: list[tuple[str, bytes]]) -> bool:
            found.update(pairs_of(got[read[0] :]))  # each message decoded once
            read[0] = len(got)
            return found >= want_pairs

        consume(bus, "scored", all_scored)
        routed = {alert_id for alert_id, _ in want.records["ledger"]}
        wait_for("alerts delivered", lambda: set(accepted(receiver)) >= routed, timeout=120)
        wait_for("alerts recorded", lambda: caught_up(bus, "deliver", "alerts"))
        wait_for("mentions archived", lambda: caught_up(bus, "archive", "scored"))
        _, delivering = deliver[1].get("/metrics")
    finally:
        codes = stop_all([*ingest, *evaluators, *deliver])
        stop_all(killed)
    assert codes == [0] * 6, [w.output()[-2000:] for w in [*ingest, *evaluators, *deliver]]
    assert set(decisions(out)) == want_alerts
    assert found == want_pairs  # every one scored, for each of its brands
    # the worker that came back empty restored its partitions' state, and says so
    assert metric(rebuilt, "listener_bus_recovery_seconds_count") >= 1
    assert metric(rebuilt, "listener_bus_rebalances_total", event="assigned") >= 1
    assert metric(rebuilt, "listener_bus_partitions") >= 1
    assert behind == {"scored": 0, "ticks": 0}
    # delivered: every routed alert, once in effect (the one in flight at the kill may
    # have gone twice, with the same idempotency key)
    sent = Counter(accepted(receiver))
    assert set(sent) == routed
    assert sum(sent.values()) - len(sent) <= 1
    # recorded: the shared state holds what embedded mode's state file does
    store = Store.open(database)
    try:
        shared = records(store)
        archived = {
            ((r[1], r[2]), r[0])
            for r in store._read("SELECT brand, source, id FROM mention_brands")
        }
        statuses = {r[0] for r in store._read("SELECT status FROM outbox")}
    finally:
        store.close()
    assert shared == want.records
    assert statuses == {"delivered"}
    assert archived == want_pairs
    # a delivery worker reports its recording group's lag and the archive's
    assert 'listener_bus_lag{role="deliver",topic="alerts"}' in delivering
    assert 'listener_bus_lag{role="archive",topic="scored"}' in delivering


def accepted(receiver: WebhookReceiver) -> list[str]:
    return [str(r.idempotency_key) for r in receiver.requests if r.accepted]


def pairs_of(messages: list[tuple[str, bytes]]) -> set[Pair]:
    return {(s.mention.key, b) for b, s in (decode_scored(v) for _, v in messages)}


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples (with these labels) in a /metrics page."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
