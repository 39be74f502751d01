"""Keeping a worker's application running (listener.roles.supervise) and the watch on its
partitions (listener.roles.watch.Watch): a run the worker stopped to start afresh is
started again; one that ends on its own ends the worker; a worker that lost its
partitions and was not given any back is stalled."""

from __future__ import annotations

import random
import threading
import time
from collections import namedtuple
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from listener.bus import Bus
from listener.clock import ManualClock
from listener.metrics import Metrics
from listener.roles.health import Readiness
from listener.roles.supervise import supervise
from listener.roles.watch import Watch
from listener.roles.worker import RoleWorker

Partition = namedtuple("Partition", "topic partition")


class Runs:
    """An application whose runs end at once; the first asks for a restart."""

    def __init__(self, restart: threading.Event) -> None:
        self.restart = restart
        self.runs = 0

    def run(self) -> None:
        self.runs += 1
        if self.runs == 1:
            self.restart.set()


def test_a_run_stopped_to_restart_is_started_again_and_a_clean_end_ends() -> None:
    restart = threading.Event()
    app = Runs(restart)
    metrics = Metrics(CollectorRegistry())
    clock = ManualClock(datetime(2026, 3, 2, tzinfo=UTC))
    readiness = Readiness("ingest", Bus("127.0.0.1:9"))
    code = supervise(
        "ingest", lambda: app, metrics, readiness, clock, rng=random.Random(1), restart=restart
    )
    assert (code, app.runs) == (0, 2)
    assert not restart.is_set()


def test_a_worker_that_lost_its_partitions_and_got_none_back_is_stalled() -> None:
    metrics = Metrics(CollectorRegistry())
    watch = Watch("evaluate", metrics)
    held = [Partition("p.scored", 0), Partition("p.ticks", 0), Partition("changelog__x", 0)]
    watch.assigned(held)
    assert metrics.bus_partitions.labels(role="evaluate")._value.get() == 2
    assert not watch.stalled(0)
    watch.revoked(held, lost=True)
    assert metrics.bus_partitions.labels(role="evaluate")._value.get() == 0
    time.sleep(0.01)
    assert watch.stalled(0.001)
    assert not watch.stalled(60)
    watch.assigned(held[:1])
    assert not watch.stalled(0)
    watch.revoked(held[:1])  # given back in a rebalance: not lost
    assert not watch.stalled(0)


def test_a_worker_whose_first_join_is_never_answered_is_stalled() -> None:
    """Not while its application has not started consuming; once it has, until the group
    answers (an assignment of no partitions answers too: a worker with nothing to do)."""
    watch = Watch("evaluate", Metrics(CollectorRegistry()))
    time.sleep(0.01)
    assert not watch.stalled(0.001)  # built, not consuming yet
    watch.starting()
    time.sleep(0.01)
    assert watch.stalled(0.001)
    assert not watch.stalled(60)
    watch.assigned([])
    assert not watch.stalled(0)


class Stoppable:
    """Stands in for the application: a stalled rejoin cannot be made on demand."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


def test_a_worker_stalled_after_losing_its_partitions_restarts_its_application(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("brands:\n  - name: Acme\n", encoding="utf-8")

    class Worker(RoleWorker):
        role = "ingest"
        inputs = ("mentions",)

    metrics = Metrics(CollectorRegistry())
    worker = Worker(Bus("127.0.0.1:9"), str(rules), state_dir=str(tmp_path), metrics=metrics)
    app = Stoppable()
    worker._app = app  # type: ignore[assignment]
    worker._watch = watch = Watch("ingest", metrics)
    done = threading.Event()
    guard = threading.Thread(target=worker.guard, args=(done, 0.06))
    guard.start()
    try:
        watch.assigned([Partition("p.mentions", 0)])
        time.sleep(0.2)
        assert not app.stopped.is_set()  # holding partitions: left alone
        watch.revoked([Partition("p.mentions", 0)], lost=True)
        assert app.stopped.wait(5)
    finally:
        done.set()
        guard.join(5)
    assert worker._restart.is_set()  # supervise starts it again
    assert watch.lost_at is None
    errors = metrics.errors.labels(stage="bus", error_type="rejoin_stalled")
    assert errors._value.get() == 1


def test_a_run_failing_on_the_shared_state_counts_a_store_error_and_starts_again() -> None:
    """PostgreSQL away (a delivery worker's ledger): the failure is counted under
    ``stage="store"`` (ListenerStateUnavailable), not the bus's, and /readyz says why
    until the next run starts."""
    from listener.errors import StoreError

    metrics = Metrics(CollectorRegistry())
    readiness = Readiness("deliver", Bus("127.0.0.1:9"))
    seen: list[dict[str, object]] = []

    class Flaky:
        runs = 0

        def run(self) -> None:
            self.runs += 1
            if self.runs == 1:
                raise StoreError("the shared state at postgresql://db/listener: refused")
            seen.append(readiness.as_dict())

    app = Flaky()
    clock = ManualClock(datetime(2026, 3, 2, tzinfo=UTC))
    assert supervise("deliver", lambda: app, metrics, readiness, clock, rng=random.Random(1)) == 0
    assert app.runs == 2
    store = metrics.errors.labels(stage="store", error_type="StoreError")._value.get()
    bus = metrics.errors.labels(stage="bus", error_type="StoreError")._value.get()
    assert (store, bus) == (1, 0)
    assert seen[0]["ready"] is True
