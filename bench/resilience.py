"""Distributed mode's parity and kill rounds (issue 13), run by ``bench/scale.py``.

Each round replays airline tweets as six brands (the set of
tests/integration/test_bus_evaluate.py) through two ingest workers, two evaluators and two
delivery workers on a real broker (tansu) and a real PostgreSQL, with a webhook receiver
that records every request: while mentions are scored an ingest worker is SIGKILLed,
while they are counted an evaluator, and while alerts go out a delivery worker; each
comes back on its state folder. The round then compares with embedded mode's processor
on the same mentions at the same instants:

* ``lost``: matched (mention, brand) pairs that never reached ``scored`` or the archive,
  alerts embedded mode made that distributed mode did not, routed alerts the receiver
  never accepted;
* ``duplicate_alerts``: alerts the receiver took twice in effect: one alert under two
  idempotency keys, or one key with two bodies. A receiver drops a copy by its key (as
  receivers are asked to; the embedded crash test counts the same way): the send in flight
  when its delivery worker died goes again with the same key, and those copies are counted
  apart (``redelivered``);
* ``recounted``: incident events whose facts (the counts behind each decision) differ
  from embedded mode's: a mention counted twice, or not at all, shows there;
* ``parity``: the alerts, incidents, events, notices and ledger rows are embedded mode's.

Failover: seconds from each SIGKILL until the killed worker's partitions were taken by a
survivor (ingest, evaluate: the survivors' ``listener_bus_rebalances_total{event=
"assigned"}`` moves) or until the other delivery worker took the lease (deliver: its
``delivery_lease_taken``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.broker import (
    Worker,
    bus_env,
    caught_up,
    consume,
    new_bus,
    wait_for,
)
from tests.integration.test_bus_evaluate import (
    Embedded,
    accepted,
    counted,
    decisions,
    embedded,
    metric,
    pairs_of,
    recent,
    records,
    tick,
    ticks,
    write_rules,
)
from tests.integration.test_bus_ingest import airline_mentions, publish
from tests.support.postgres import new_database
from tests.support.receiver import WebhookReceiver


@dataclass
class Round:
    """What one round found."""

    lost: int = 0
    duplicate_alerts: int = 0
    redelivered: int = 0
    """Copies the receiver dropped by their idempotency key (the send in flight when its
    delivery worker died, sent again by the next)."""
    recounted: int = 0
    parity: bool = True
    failover: dict[str, float] = field(default_factory=dict)
    alerts: int = 0
    mentions: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _assigned(workers: list[Worker]) -> float:
    total = 0.0
    for w in workers:
        if w.proc.poll() is not None:
            continue
        try:
            _, text = w.get("/metrics")
        except Exception:  # a worker starting or stopping: counted at the next poll
            continue
        total += metric(text, "listener_bus_rebalances_total", event="assigned")
    return total


def _failover(survivors: list[Worker], before: float, timeout: float = 120) -> float:
    """Seconds until the survivors were assigned partitions again (after a kill)."""
    began = time.monotonic()
    while _assigned(survivors) <= before:
        if time.monotonic() - began > timeout:
            return float("nan")
        time.sleep(0.1)
    return time.monotonic() - began


def _lease_holder(workers: list[Worker]) -> int | None:
    held = None
    for i, worker in enumerate(workers):
        if worker.proc.poll() is None and any(
            e.get("event") == "delivery_lease_taken" for e in worker.events()
        ):
            held = i
    return held


def many_brands(path: Path, hook: str, count: int) -> Path:
    """``count`` brands (the six airlines and synthetic ones, bench/perf.py) with the
    airline rule and the webhook sink: the synthetic many-brand stream's rules."""
    import json

    import perf

    path.write_text(
        json.dumps(
            {
                "brands": perf.brand_dicts(count),
                "rules": [
                    {
                        "name": "angry",
                        "resolve_after": "1h",
                        "levels": {
                            "watch": {
                                "when": {
                                    "type": "volume",
                                    "metric": "negative",
                                    "window": "2h",
                                    "above": 3,
                                }
                            }
                        },
                    }
                ],
                "routes": {"default": ["ops"]},
                "sinks": {"ops": {"type": "webhook", "url": hook, "delivery": {"max_age": "30d"}}},
            }
        ),
        encoding="utf-8",
    )
    return path


def stream(size: int, brands: int) -> list[Any]:
    """The round's mentions: airline tweets (as six brands), or with ``brands`` above six
    half of them also naming one of the synthetic brands."""
    mentions = airline_mentions(size, every=max(1, 14_000 // size))
    if brands > 6:
        import perf

        named = perf.with_synthetic_brands(
            [perf.Tweet(m.id, m.text, m.created_at, m.author.handle or "") for m in mentions],
            perf.brand_dicts(brands),
        )
        mentions = [perf.mention(t, "x") for t in named]
    return recent(mentions)


def run_round(address: str, pg_server: str, work: Path, size: int, brands: int = 6) -> Round:
    """One parity and kill round in ``work`` (a folder of its own): the airline tweets as
    six brands, or with ``brands`` above six the synthetic many-brand stream."""
    began = time.monotonic()
    out = Round()
    mentions = stream(size, brands)
    out.mentions = len(mentions)
    database = new_database(pg_server)
    with WebhookReceiver() as receiver:
        if brands > 6:
            config = many_brands(work / "rules.yaml", receiver.url(), brands)
        else:
            config = write_rules(work / "rules.yaml", receiver.url())
        want: Embedded = embedded(config, mentions, work)
        out.alerts = len(want.alerts)
        bus = new_bus(address, partitions=4)
        if publish(bus, mentions, work).returncode:
            raise SystemExit("publish failed")

        def start(role: str, name: str) -> Worker:
            extra = {"LISTENER_TICKER": "off"} if role == "evaluate" else {}
            if role == "deliver":
                extra["LISTENER_STATE"] = database
            return Worker(role, config, bus_env(bus, work / name, **extra), work / f"{name}.log")

        ingest = [start("ingest", f"i{i}") for i in range(2)]
        evaluators = [start("evaluate", f"e{i}") for i in range(2)]
        deliver = [start("deliver", f"d{i}") for i in range(2)]
        killed: list[Worker] = []
        pairs = len(want.pairs)
        try:
            for w in [*ingest, *evaluators, *deliver]:
                w.address()
            wait_for("a sixth counted", lambda: counted(evaluators) >= pairs // 6, 300)
            before = _assigned(ingest[1:])
            killed.append(ingest[0])
            ingest[0].proc.kill()
            ingest[0].proc.wait()
            out.failover["ingest"] = _failover(ingest[1:], before)
            ingest[0] = start("ingest", "i0-again")
            wait_for("a third counted", lambda: counted(evaluators) >= pairs // 3, 300)
            before = _assigned(evaluators[:1])
            killed.append(evaluators[1])
            evaluators[1].proc.kill()
            evaluators[1].proc.wait()
            out.failover["evaluate"] = _failover(evaluators[:1], before)
            evaluators[1] = start("evaluate", "e1")  # its own state folder, warm
            wait_for("mentions scored", lambda: caught_up(bus, "ingest", "mentions"), 300)
            wait_for("scored counted", lambda: caught_up(bus, "evaluate", "scored"), 300)
            times = ticks(mentions)
            half = len(times) // 2
            tick(bus, config, times[:half], work)
            consume(bus, "alerts", lambda got: len(decisions(got)) >= 1, timeout=300)
            victim = _lease_holder(deliver)
            victim = 0 if victim is None else victim
            sent_before = len(accepted(receiver))
            killed.append(deliver[victim])
            deliver[victim].proc.kill()
            deliver[victim].proc.wait()
            down = time.monotonic()
            survivor = deliver[1 - victim]
            wait_for(
                "the other takes the lease",
                lambda: any(e.get("event") == "delivery_lease_taken" for e in survivor.events()),
                timeout=300,
            )
            out.failover["deliver"] = time.monotonic() - down
            tick(bus, config, times[half:], work)  # many brands: listener tick waits longer
            wait_for("the other sends", lambda: len(accepted(receiver)) > sent_before, timeout=300)
            deliver[victim] = start("deliver", f"d{victim}-again")
            out_alerts = consume(
                bus, "alerts", lambda got: set(decisions(got)) >= want.alerts, timeout=300
            )
            wait_for("ticks evaluated", lambda: caught_up(bus, "evaluate", "ticks"), 300)
            routed = {alert_id for alert_id, _ in want.records["ledger"]}
            wait_for("alerts delivered", lambda: set(accepted(receiver)) >= routed, 300)
            wait_for("alerts recorded", lambda: caught_up(bus, "deliver", "alerts"), 300)
            wait_for("mentions archived", lambda: caught_up(bus, "archive", "scored"), 300)
            found: set[Any] = set()
            seen = [0]

            def all_scored(got: list[tuple[str, bytes]]) -> bool:
                found.update(pairs_of(got[seen[0] :]))
                seen[0] = len(got)
                return found >= want.pairs

            consume(bus, "scored", all_scored, timeout=300)
            time.sleep(2)  # a pass of the standby, were it to send again
            sent = Counter(accepted(receiver))
            bodies: dict[str, set[bytes]] = {}
            keys_of: dict[str, set[str]] = {}
            for r in receiver.requests:
                if r.accepted and isinstance(r.json, dict):
                    key = str(r.idempotency_key)
                    bodies.setdefault(key, set()).add(r.raw)
                    keys_of.setdefault(str(r.json.get("id")), set()).add(key)
        finally:
            for w in [*ingest, *evaluators, *deliver]:
                w.stop()
            for w in killed:
                w.stop()
    from listener.store import Store

    store = Store.open(database)
    try:
        shared = records(store)
        rows = store._read("SELECT brand, source, id FROM mention_brands")
        archived = {((source, mention), brand) for brand, source, mention in rows}
    finally:
        store.close()
    made = set(decisions(out_alerts))
    out.lost = (
        len(want.pairs - found)
        + len(want.pairs - archived)
        + len(want.alerts - made)
        + len(routed - set(sent))
    )
    # a receiver drops a copy by its idempotency key (as receivers are asked to, and as the
    # embedded crash test counts): twice in effect is one alert under two keys, or one key
    # with two bodies; the copies it dropped are counted apart
    out.duplicate_alerts = sum(len(k) - 1 for k in keys_of.values()) + sum(
        len(b) - 1 for b in bodies.values()
    )
    out.redelivered = sum(n - 1 for n in sent.values())
    events = {(r[0], r[1]): r for r in shared["events"]}
    out.recounted = sum(1 for r in want.records["events"] if events.get((r[0], r[1])) != r) + len(
        set(events) - {(r[0], r[1]) for r in want.records["events"]}
    )
    for what, missing in (
        ("not on scored", want.pairs - found),
        ("not archived", want.pairs - archived),
        ("alerts not made", want.alerts - made),
        ("alerts not accepted", routed - set(sent)),
    ):
        if missing:  # named, to chase
            out.notes.append(f"{what}: {sorted(map(str, missing))[:5]}")
    out.parity = made == want.alerts and shared == want.records
    if not out.parity:
        for key in shared:
            if shared[key] != want.records[key]:
                out.notes.append(f"{key} differ")
    out.seconds = time.monotonic() - began
    return out
