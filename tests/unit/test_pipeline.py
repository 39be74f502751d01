"""The pipeline's supervision contract: spawned tasks run one at a time per key, a task
that raises is counted and logged (never fatal), nothing starts once stopping, shutdown
waits for in-flight work within its deadline and abandons the rest; backoff stays in
its bounds; a reload drops what belonged to sources that are gone."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from listener.clock import ManualClock
from listener.collectors.base import Collector
from listener.config.load import load_config_text
from listener.metrics import Metrics
from listener.pipeline import Pipeline, SourceHealth, backoff_delay
from listener.processor import Processor
from listener.settings import Settings
from listener.sinks.base import Sink
from listener.store import Store

BASE = """\
brands:
  - name: Acme
rules: []
routes:
  source-health: [console]
sinks:
  console: {type: console}
"""
RULES = BASE + 'sources:\n  news:\n    type: rss\n    urls: ["http://127.0.0.1:9/feed.xml"]\n'
NO_SOURCES = BASE + "sources: {}\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "s.db")
    yield opened
    opened.close()


def _pipeline(store: Store, clock: ManualClock) -> Pipeline:
    config = load_config_text(RULES, "rules.yaml", {})
    metrics = Metrics()
    settings = Settings.from_env({})
    return Pipeline(settings, store, Processor(config, store, metrics), metrics, clock)


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    """The n-th failure waits 50-100 % of initial × 2^(n-1), capped at the maximum."""
    rng = random.Random(7)
    for failures, full in ((1, 10.0), (2, 20.0), (3, 40.0), (10, 300.0)):
        for _ in range(50):
            delay = backoff_delay(failures, 10.0, 300.0, rng)
            assert full / 2 <= delay <= full


async def test_a_failing_task_is_counted_and_logged_not_raised(
    store: Store, clock: ManualClock
) -> None:
    """A spawned job that raises is a bug: counted under its stage, logged once."""
    pipeline = _pipeline(store, clock)

    async def broken() -> None:
        raise ZeroDivisionError

    with capture_logs() as logs:
        assert pipeline.spawn("poll:news", broken)
        await asyncio.sleep(0.01)
    failed = [e for e in logs if e["event"] == "task_failed"]
    assert [(e["task"], e["error_type"]) for e in failed] == [("poll:news", "ZeroDivisionError")]
    labels = {"stage": "collect", "error_type": "ZeroDivisionError"}
    assert pipeline.metrics.registry.get_sample_value("listener_errors_total", labels) == 1


async def test_one_run_per_key_and_none_once_stopping(store: Store, clock: ManualClock) -> None:
    """A key whose last run still goes is not started again; after stop nothing starts."""
    pipeline = _pipeline(store, clock)
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    assert pipeline.spawn("evaluate", slow)
    assert not pipeline.spawn("evaluate", slow)
    release.set()
    await asyncio.sleep(0.01)
    pipeline.stop_event.set()
    assert not pipeline.spawn("evaluate", slow)
    assert pipeline.stopping()


async def test_shutdown_waits_for_work_in_flight_and_abandons_it_past_the_deadline(
    store: Store, clock: ManualClock
) -> None:
    """In-flight work ends on its own within the deadline; past it, it is cancelled."""
    pipeline = _pipeline(store, clock)
    finished: list[str] = []

    async def quick() -> None:
        with pipeline.working():
            await asyncio.sleep(0.05)
        finished.append("quick")

    async def stuck() -> None:
        await asyncio.sleep(60)

    pipeline.spawn("quick", quick)
    pipeline.spawn("stuck", stuck)
    with capture_logs() as logs:
        await pipeline.shutdown(time.monotonic() + 0.5)
    assert finished == ["quick"]
    abandoned = [e["tasks"] for e in logs if e["event"] == "shutdown_abandoned"]
    assert abandoned == [["stuck"]]


async def test_install_drops_what_belonged_to_a_source_that_is_gone(
    store: Store, clock: ManualClock
) -> None:
    """A reload without a source forgets its health, cursor and metric series."""
    pipeline = _pipeline(store, clock)
    config = load_config_text(RULES, "rules.yaml", {})

    class Idle:
        def poll(self, cursor: object, now: object) -> None:
            raise AssertionError("not polled here")

        def close(self) -> None:
            pass

    idle: Collector = Idle()  # type: ignore[assignment]
    await pipeline.install(config, {"news": idle}, {}, replacing=False)
    assert set(pipeline.health) == {"news"}
    assert isinstance(pipeline.health["news"], SourceHealth)
    pipeline.cursors["news"] = {"page": 1}
    pipeline.metrics.source_up.labels(source="news").set(1)
    gone = load_config_text(NO_SOURCES, "rules.yaml", {})
    await pipeline.install(gone, {}, {}, replacing=True)
    assert pipeline.health == {}
    assert pipeline.cursors == {}
    up = pipeline.metrics.registry.get_sample_value("listener_source_up", {"source": "news"})
    assert up is None
    assert [j.id for j in pipeline.scheduler.get_jobs()] == []
    await pipeline.stop_delivery()


async def test_install_schedules_a_refresh_only_for_sinks_that_refresh(
    store: Store, clock: ManualClock
) -> None:
    """A sink that is Refreshable (Alertmanager's resend_every) gets a refresh job at its
    own interval; a plain sink gets none."""
    pipeline = _pipeline(store, clock)
    config = load_config_text(NO_SOURCES, "rules.yaml", {})

    class Plain:
        async def send(self, alert: object) -> None: ...

        async def aclose(self) -> None: ...

    class Expiring(Plain):
        resend_every = timedelta(minutes=3)

        async def refresh(self) -> None: ...

    sinks: dict[str, Sink] = {"plain": Plain(), "am": Expiring()}  # type: ignore[dict-item]
    await pipeline.install(config, {}, sinks, replacing=False)
    jobs = {j.id: j for j in pipeline.scheduler.get_jobs()}
    assert set(jobs) == {"refresh:am"}
    assert jobs["refresh:am"].trigger.interval == timedelta(minutes=3)
    await pipeline.stop_delivery()
