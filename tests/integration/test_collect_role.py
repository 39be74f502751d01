"""A collector's source poller (listener.roles.collect.SourcePoller) without the broker:
the real Hacker News collector against its loopback fake, and the collector worker's side
(cursors, what was published) recorded. The group, the broker and PostgreSQL:
tests/integration/test_bus_collect.py."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from listener.clock import ManualClock
from listener.collectors.base import Cursor
from listener.collectors.hackernews import HackerNewsCollector
from listener.config.schema import BrandConfig, HackerNewsSourceConfig
from listener.metrics import Metrics
from listener.model import Mention
from listener.roles.collect import SourcePoller
from tests.support.fake_social import FakeHackerNews

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Recorded:
    """The collector worker's side of a poller: the cursor it saved and what it
    published (ids, and whether as a backfill)."""

    def __init__(self) -> None:
        self.metrics = Metrics(CollectorRegistry())
        self.clock = ManualClock(NOW)
        self.poll_timeout = timedelta(seconds=10)
        self.cursor: Cursor | None = None
        self.published: list[tuple[list[str], bool]] = []
        self.saved = threading.Semaphore(0)

    def load_cursor(self, source: str) -> Cursor | None:
        return self.cursor

    def held_source(self, source: str) -> None:
        return None  # no poller of the source before this one

    def fresh(self, source: str, mentions: Sequence[Mention]) -> list[Mention]:
        return list(mentions)

    def publish(self, source: str, mentions: Sequence[Mention], *, backfill: bool = False) -> None:
        self.published.append(([m.id for m in mentions], backfill))

    def save_cursor(self, source: str, cursor: Cursor, published: Any, now: datetime) -> None:
        self.cursor = cursor
        self.saved.release()


def test_a_first_poll_is_published_as_a_backfill_and_the_next_are_not() -> None:
    """The first poll of a source with no cursor reaches back ``lookback``: its mentions go
    on the bus marked as a backfill (the brand's evaluator keeps it quiet); the polls
    after it, from the saved cursor, are not backfills."""
    worker = Recorded()
    with FakeHackerNews() as hn:
        hn.add(title="Acme old news", created_at=NOW - timedelta(hours=3), object_id="1")
        hn.add(title="Acme recent news", created_at=NOW - timedelta(minutes=50), object_id="2")
        cfg = HackerNewsSourceConfig.model_validate(
            {
                "type": "hackernews",
                "api_url": hn.api_url,
                "timeout": timedelta(seconds=2),
                "lookback": timedelta(hours=1),
                "interval": timedelta(milliseconds=100),
                "jitter": timedelta(0),
            }
        )
        collector = HackerNewsCollector("hn", cfg, (BrandConfig(name="Acme", aliases=["Acme"]),))
        poller = SourcePoller("hn", collector, cfg, worker)  # type: ignore[arg-type]
        poller.start()
        try:
            for _ in range(3):  # three polls, each saved
                assert worker.saved.acquire(timeout=30)
        finally:
            poller.stop()
            collector.close()
    assert worker.published[0] == (["2"], True)
    assert len(worker.published) >= 3
    assert all(not backfill for _, backfill in worker.published[1:])
    assert poller.health.status == "ok"
