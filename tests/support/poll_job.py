"""One source behind the daemon's real poll job (``Pipeline.poll``), for collector tests
that check what the daemon does with a failure: logs, metrics, health, backoff, cursor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from listener.clock import ManualClock
from listener.config.load import load_config_text
from listener.metrics import Metrics
from listener.pipeline import Pipeline, SourceHealth
from listener.processor import Processor
from listener.settings import Settings
from listener.store import Store

RULES = "brands:\n  - name: Acme\nsources: {}\nrules: []\nsinks:\n  c: {type: console}\n"
"""The daemon's config for these tests: one brand, Acme."""


@dataclass
class PollJob:
    pipeline: Pipeline
    clock: ManualClock
    metrics: Metrics

    def errors(self, error_type: str) -> float | None:
        """``listener_errors_total`` of the collect stage for ``error_type``."""
        return self.metrics.registry.get_sample_value(
            "listener_errors_total", {"stage": "collect", "error_type": error_type}
        )

    def failed_once(
        self, name: str, logs: list[dict[str, Any]], error_type: str, now: datetime
    ) -> SourceHealth:
        """Assert one poll of ``name`` failed as ``error_type``: one ``poll_failed`` line,
        counted once, the source in error and backing off past ``now``. Its health."""
        health = self.pipeline.health[name]
        assert health.status == "error"
        assert health.backoff_until is not None
        assert health.backoff_until > now
        failed = [e for e in logs if e["event"] == "poll_failed"]
        assert [e["error_type"] for e in failed] == [error_type]
        assert self.errors(error_type) == 1
        return health

    def collected(self, name: str) -> None:
        """Assert the last poll of ``name`` succeeded and left a cursor."""
        health = self.pipeline.health[name]
        assert health.status == "ok", health.last_error
        assert self.pipeline.cursors[name]


@contextmanager
def poll_job(
    tmp_path: Path, name: str, collector: Any, config: Any, now: datetime
) -> Iterator[PollJob]:
    """A pipeline on a state file in ``tmp_path`` whose only source is ``collector``
    (named ``name``, configured by ``config``), its clock at ``now``; the collector and
    the store are closed afterwards."""
    store = Store.open(tmp_path / "s.db")
    metrics = Metrics()
    processor = Processor(load_config_text(RULES, "rules.yaml", {}), store, metrics)
    settings = Settings.from_env({"LISTENER_STATE": str(tmp_path / "s.db")})
    clock = ManualClock(now)
    pipeline = Pipeline(settings, store, processor, metrics, clock)
    pipeline.collectors = {name: collector}
    pipeline.source_configs = {name: config}
    pipeline.health = {name: SourceHealth(now)}
    try:
        yield PollJob(pipeline, clock, metrics)
    finally:
        collector.close()
        store.close()
