"""Hostile sources through the daemon's poll job: an absurd rate-limit hint is clamped
(the daemon backs off an hour at most), a redirect to a private address is refused; each
failure is counted and logged once, and nothing escapes the poll job."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from listener.clock import ManualClock
from listener.collectors.rss import RssCollector
from listener.config.load import load_config_text
from listener.config.schema import RssSourceConfig
from listener.metrics import Metrics
from listener.pipeline import Pipeline, SourceHealth
from listener.processor import Processor
from listener.retry_after import MAX_RETRY_AFTER
from listener.settings import Settings
from listener.store import Store
from tests.support.feed_server import FeedServer, Route

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = """\
brands:
  - name: Acme
sources: {}
rules: []
sinks:
  console: {type: console}
"""


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


async def poll_once(server: FeedServer, tmp_path: Path) -> Pipeline:
    """One run of the daemon's poll job for an rss source reading the server's /feed.xml."""
    config = RssSourceConfig.model_validate({"type": "rss", "urls": [server.url("/feed.xml")]})
    store = Store.open(tmp_path / "s.db")
    metrics = Metrics()
    processor = Processor(load_config_text(RULES, "rules.yaml", {}), store, metrics)
    settings = Settings.from_env({"LISTENER_STATE": str(tmp_path / "s.db")})
    pipeline = Pipeline(settings, store, processor, metrics, ManualClock(T0))
    collector = RssCollector("news", config)
    pipeline.collectors = {"news": collector}
    pipeline.source_configs = {"news": config}
    pipeline.health = {"news": SourceHealth(T0)}
    try:
        await pipeline.poll("news")  # raises nothing
    finally:
        collector.close()
        store.close()
    return pipeline


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "1000000000000"},
        {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"X-Rate-Limit-Reset": "99999999999999"},
        {"RateLimit-Reset": "1000000000000"},
    ],
)
async def test_a_huge_retry_after_from_a_source_backs_off_at_most_the_cap(
    server: FeedServer, tmp_path: Path, headers: dict[str, str]
) -> None:
    """429 with a huge hint: the poll returns, the failure is counted and the source
    waits at most MAX_RETRY_AFTER (and at least its own backoff) before the next poll."""
    server.route("/feed.xml", Route(status=429, headers=headers))
    pipeline = await poll_once(server, tmp_path)
    health = pipeline.health["news"]
    assert health.status == "error"
    assert health.consecutive_failures == 1
    assert health.backoff_until == T0 + timedelta(seconds=MAX_RETRY_AFTER)
    registry = pipeline.metrics.registry
    errors = registry.get_sample_value(
        "listener_errors_total", {"stage": "collect", "error_type": "rate_limited"}
    )
    assert errors == 1
    polls = registry.get_sample_value(
        "listener_polls_total", {"source": "news", "outcome": "error"}
    )
    assert polls == 1
    backoff = registry.get_sample_value("listener_source_backoff_seconds", {"source": "news"})
    assert backoff == MAX_RETRY_AFTER


async def test_a_refused_redirect_is_counted_logged_once_and_backed_off(
    server: FeedServer, tmp_path: Path
) -> None:
    """A feed redirecting to the metadata service: the poll fails as redirect_refused,
    logged once, counted, and the source backs off."""
    target = "http://169.254.169.254/latest/meta-data/"
    server.route("/feed.xml", Route(status=302, headers={"Location": target}))
    with capture_logs() as logs:
        pipeline = await poll_once(server, tmp_path)
    health = pipeline.health["news"]
    assert health.status == "error"
    assert health.backoff_until is not None
    assert health.backoff_until > T0
    assert health.last_error is not None
    assert "169.254.169.254" in health.last_error
    failed = [e for e in logs if e["event"] == "poll_failed"]
    assert [e["error_type"] for e in failed] == ["redirect_refused"]
    errors = pipeline.metrics.registry.get_sample_value(
        "listener_errors_total", {"stage": "collect", "error_type": "redirect_refused"}
    )
    assert errors == 1
    assert len(server.requests) == 1
