"""The daemon's pipeline in process: back-pressure from the bounded queue, big polls handed
over in slices, and reloads that fail in unexpected ways."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from listener.api import RestApi
from listener.app import Daemon
from listener.clock import ManualClock
from listener.collectors.base import PollResult
from listener.config import lint
from listener.config.load import load_config_text
from listener.httpapi import Request
from listener.metrics import Metrics
from listener.model import Mention
from listener.pipeline import INGEST_CHUNK, Batch, Pipeline, SourceHealth
from listener.processor import Processor
from listener.settings import Settings
from listener.sinks.base import Sink
from listener.sinks.console import ConsoleSink
from listener.store import Store

RULES = """\
brands:
  - name: Acme
sources:
  news:
    type: rss
    urls: ["http://127.0.0.1:9/feed.xml"]
rules: []
routes:
  source-health: [console]
sinks:
  console: {type: console}
"""


class CountingCollector:
    """Answers every poll with ``size`` mentions and counts the polls."""

    def __init__(self, size: int = 0) -> None:
        self.size = size
        self.polls = 0

    def poll(self, cursor: Any, now: datetime) -> PollResult:
        self.polls += 1
        mentions = [Mention("news", f"m{i}", "hello", now) for i in range(self.size)]
        return PollResult(mentions, {"page": self.polls})

    def close(self) -> None:
        pass


def _pipeline(
    tmp_path: Path, clock: ManualClock, collector: CountingCollector, **env: str
) -> Pipeline:
    settings = Settings.from_env({"LISTENER_STATE": str(tmp_path / "s.db"), **env})
    store = Store.open(tmp_path / "s.db")
    config = load_config_text(RULES, "rules.yaml", {})
    metrics = Metrics()
    pipeline = Pipeline(settings, store, Processor(config, store, metrics), metrics, clock)
    pipeline.collectors = {"news": collector}  # type: ignore[dict-item]
    pipeline.source_configs = dict(config.sources)
    pipeline.health = {"news": SourceHealth(clock.now())}
    return pipeline


def _value(pipeline: Pipeline, name: str, **labels: str) -> float | None:
    return pipeline.metrics.registry.get_sample_value(name, labels)


async def test_a_full_queue_skips_the_poll(tmp_path: Path, clock: ManualClock) -> None:
    """While the queue holds LISTENER_QUEUE_MAX_MENTIONS, a due poll fetches nothing and
    is counted as skipped; once processing drains it, polling resumes."""
    collector = CountingCollector()
    pipeline = _pipeline(tmp_path, clock, collector, LISTENER_QUEUE_MAX_MENTIONS="5")
    backlog = [Mention("news", f"b{i}", "x", clock.now()) for i in range(5)]
    await pipeline.batches.put(Batch("news", backlog, None, False, clock.now(), 0))
    assert _value(pipeline, "listener_queue_mentions") == 5
    await pipeline.poll("news")
    assert collector.polls == 0
    labels = {"source": "news", "action": "skipped"}
    assert _value(pipeline, "listener_queue_backpressure_total", **labels) == 1
    await pipeline.batches.get()
    pipeline.batches.task_done()
    await pipeline.poll("news")
    assert collector.polls == 1
    assert _value(pipeline, "listener_polls_total", source="news", outcome="ok") == 1
    pipeline.store.close()


async def test_a_big_poll_is_handed_over_in_slices_within_the_bound(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A poll bigger than the queue goes in slices of INGEST_CHUNK, waiting for room (counted
    once); the cursor rides with the last slice only; the queue never holds more than
    its bound."""
    size = 2 * INGEST_CHUNK + INGEST_CHUNK // 2
    collector = CountingCollector(size)
    pipeline = _pipeline(tmp_path, clock, collector, LISTENER_QUEUE_MAX_MENTIONS=str(INGEST_CHUNK))
    taken: list[Batch] = []
    peak = 0

    async def consume() -> None:
        nonlocal peak
        while len(taken) < 3:
            peak = max(peak, pipeline.batches.weight())
            await asyncio.sleep(0.01)
            taken.append(await pipeline.batches.get())
            pipeline.batches.task_done()

    consumer = asyncio.ensure_future(consume())
    await asyncio.wait_for(pipeline.poll("news"), 10)
    await asyncio.wait_for(consumer, 10)
    assert [len(b.mentions) for b in taken] == [INGEST_CHUNK, INGEST_CHUNK, INGEST_CHUNK // 2]
    assert [b.cursor for b in taken] == [None, None, {"page": 1}]
    assert [b.last for b in taken] == [False, False, True]
    assert len({b.poll for b in taken}) == 1
    assert peak <= INGEST_CHUNK
    labels = {"source": "news", "action": "waited"}
    assert _value(pipeline, "listener_queue_backpressure_total", **labels) == 1
    pipeline.store.close()


async def test_a_stuck_poll_times_out_and_is_not_started_again(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A poll past LISTENER_POLL_TIMEOUT is a failure with backoff; while its thread still
    runs, the next due poll fails at once instead of starting a second thread."""
    release = threading.Event()
    started: list[int] = []

    class Stuck(CountingCollector):
        def poll(self, cursor: Any, now: datetime) -> PollResult:
            started.append(1)
            release.wait(30)
            return super().poll(cursor, now)

    pipeline = _pipeline(tmp_path, clock, Stuck(), LISTENER_POLL_TIMEOUT="0.2s")
    await pipeline.poll("news")
    health = pipeline.health["news"]
    assert (health.status, health.consecutive_failures) == ("error", 1)
    assert "LISTENER_POLL_TIMEOUT" in str(health.last_error)
    assert (
        _value(pipeline, "listener_errors_total", stage="collect", error_type="poll_timeout") == 1
    )
    clock.advance(timedelta(minutes=5))  # past the backoff
    await pipeline.poll("news")
    assert started == [1]
    assert health.consecutive_failures == 2
    assert "still running" in str(health.last_error)
    release.set()
    pipeline.store.close()


async def test_a_reload_failing_unexpectedly_is_rejected_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever reading the new file raises, the reload is counted and logged as rejected
    and the running config stays."""

    def broken(path: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    daemon = Daemon(Settings.from_env({"LISTENER_CONFIG": str(tmp_path / "rules.yaml")}))
    monkeypatch.setattr(lint, "read_config_text", broken)
    with capture_logs() as logs:
        await daemon.reload()
    registry = daemon.metrics.registry
    assert registry.get_sample_value("listener_config_reloads_total", {"outcome": "error"}) == 1
    assert registry.get_sample_value("listener_config_last_reload_successful") == 0
    labels = {"stage": "config", "error_type": "RecursionError"}
    assert registry.get_sample_value("listener_errors_total", labels) == 1
    failed = next(entry for entry in logs if entry["event"] == "reload_failed")
    assert failed["error_type"] == "RecursionError"


async def test_healthz_fails_once_the_processing_stage_is_gone(
    tmp_path: Path, clock: ManualClock
) -> None:
    """/healthz is 503 when the processing stage has ended, so a liveness probe restarts a
    pipeline whose polls could only pile up."""
    pipeline = _pipeline(tmp_path, clock, CountingCollector())
    api = RestApi(pipeline.settings, pipeline.store, pipeline, clock, lambda: None)
    request = Request("GET", "/healthz", "", {}, b"")
    assert (await api.healthz(request)).status == 200

    async def ended() -> None:
        return None

    pipeline._processing = asyncio.ensure_future(ended())
    await pipeline._processing
    assert (await api.healthz(request)).status == 503
    pipeline.store.close()


async def test_readyz_shows_each_source_and_is_503_once_stopping(
    tmp_path: Path, clock: ManualClock
) -> None:
    """/readyz is 200 with every source's health while a config runs, flags a failing
    source as degraded, and turns 503 as soon as the daemon stops."""
    pipeline = _pipeline(tmp_path, clock, CountingCollector())
    config = load_config_text(RULES, "rules.yaml", {})
    api = RestApi(pipeline.settings, pipeline.store, pipeline, clock, lambda: config)
    request = Request("GET", "/readyz", "", {}, b"")
    answer = await api.readyz(request)
    body = json.loads(answer.body)
    assert (answer.status, body["ready"], body["degraded"]) == (200, True, False)
    assert body["sources"]["news"]["status"] == "pending"
    pipeline.health["news"].status = "error"
    assert json.loads((await api.readyz(request)).body)["degraded"] is True
    pipeline.stop_event.set()
    assert (await api.readyz(request)).status == 503
    pipeline.store.close()


async def test_the_pipeline_sends_scheduled_digests_and_a_reload_keeps_what_was_sent(
    tmp_path: Path,
) -> None:
    """The daemon's delivery runs the digests of the installed config: the first waits
    for its fire time, goes out once, and a reload (a new install) does not send it again."""
    clock = ManualClock(datetime(2026, 12, 7, 7, 59, tzinfo=UTC))
    pipeline = _pipeline(tmp_path, clock, CountingCollector())
    config = load_config_text(
        RULES + "digests:\n  morning: {every: day, at: '08:00', route: [console]}\n",
        "rules.yaml",
        {},
    )
    out = io.StringIO()

    def sinks() -> dict[str, Sink]:
        return {"console": ConsoleSink("console", config.sinks["console"], stream=out)}  # type: ignore[arg-type]

    await pipeline.install(config, {}, sinks(), replacing=False)
    assert pipeline.digests is not None
    await asyncio.sleep(0.2)
    assert out.getvalue() == ""
    clock.set(datetime(2026, 12, 7, 8, tzinfo=UTC))
    pipeline.digests.wake()
    for _ in range(100):
        if "Daily digest" in out.getvalue():
            break
        await asyncio.sleep(0.05)
    assert out.getvalue().startswith("Daily digest · Mon 07 Dec 2026\n")
    await pipeline.install(config, {}, sinks(), replacing=True)
    assert pipeline.digests is not None
    pipeline.digests.wake()
    await asyncio.sleep(0.3)
    assert out.getvalue().count("Daily digest") == 1
    await pipeline.stop_delivery()
    pipeline.store.close()
