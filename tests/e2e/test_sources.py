"""One daemon, three real client libraries: X (tweepy), Reddit (praw) and RSS (feedparser)
against loopback fakes replaying recorded API responses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.conftest import need_shared
from tests.support.daemon import Daemon
from tests.support.fake_reddit import FakeReddit
from tests.support.fake_x import DEFAULT_TOKEN, FakeX, TweetSpec
from tests.support.feed_server import FeedServer, Route
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

RULES = """
brands:
  - name: Acme
    handles: ["@acme"]
sources:
  x:
    type: twitter
    bearer_token: ${{X_BEARER_TOKEN}}
    api_url: "{x}"
    interval: 1s
    jitter: 0s
  reddit:
    type: reddit
    client_id: ${{REDDIT_CLIENT_ID}}
    client_secret: ${{REDDIT_CLIENT_SECRET}}
    subreddits: [acme]
    api_url: "{reddit}"
    auth_url: "{reddit}"
    public_url: "{reddit}"
    interval: 1s
    jitter: 0s
  news:
    type: rss
    urls: ["{feed}"]
    interval: 1s
    jitter: 0s
rules:
  - name: negative-surge
    levels:
      watch:
        when: {{type: volume, metric: negative, window: 1h, above: 9}}
routes:
  default: [team]
sinks:
  team: {{type: webhook, url: "{hook}"}}
"""

ANGRY = "Acme is down again, this outage is terrible and support is useless"


def rss(n: int) -> bytes:
    now = format_datetime(datetime.now(UTC))
    items = "".join(
        f"<item><guid>n{i}</guid><title>{ANGRY} ({i})</title>"
        f"<link>https://news.test/n{i}</link><pubDate>{now}</pubDate></item>"
        for i in range(n)
    )
    return f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()


@pytest.fixture
def fakes() -> Iterator[tuple[FakeX, FakeReddit, FeedServer, WebhookReceiver]]:
    need_shared("fixtures", "tweepy")
    with (
        FakeX() as x,
        FakeReddit(client_id="cid", client_secret="csecret") as reddit,
        FeedServer() as feed,
        WebhookReceiver() as hook,
    ):
        feed.route("/feed.xml", Route(body=rss(0)))
        yield x, reddit, feed, hook


def test_x_reddit_and_rss_feed_one_incident(
    tmp_path: Path, fakes: tuple[FakeX, FakeReddit, FeedServer, WebhookReceiver]
) -> None:
    """Recorded X pages are backfill; then four angry mentions from each platform make
    one incident that no single platform could have opened alone."""
    x, reddit, feed, hook = fakes
    config = tmp_path / "rules.yaml"
    config.write_text(
        RULES.format(x=x.url, reddit=reddit.url, feed=feed.url("/feed.xml"), hook=hook.url())
    )
    env = {
        "X_BEARER_TOKEN": DEFAULT_TOKEN,
        "REDDIT_CLIENT_ID": "cid",
        "REDDIT_CLIENT_SECRET": "csecret",
    }
    daemon = Daemon(config, tmp_path / "state.db", env=env)
    try:
        for source in ("x", "reddit", "news"):
            daemon.wait_metric("listener_polls_total", 1, source=source, outcome="ok")
        # the recorded X search pages arrived as history: stored, matched to nothing (a poll
        # is counted when it returns; its batch is stored a moment later by the processor)
        daemon.wait_metric("listener_mentions_new_total", 200, source="x")
        assert daemon.metric("listener_source_quota_remaining", source="x") > 0

        now = datetime.now(UTC)
        x.add_search_tweets(
            *(
                TweetSpec(
                    f"{ANGRY} #{i}", username=f"angry{i}", followers=1000 * (i + 1), created_at=now
                )
                for i in range(4)
            )
        )
        reddit.add_posts(
            [
                {
                    "title": f"{ANGRY} [{i}]",
                    "created_utc": time.time(),
                    "subreddit": "acme",
                    "author": f"redditor{i}",
                    "score": 5,
                }
                for i in range(4)
            ]
        )
        feed.update("/feed.xml", body=rss(4))

        (hit,) = hook.wait_for(1, timeout=45)
        alert = hit.json
        assert (alert["kind"], alert["brand"]) == ("opened", "Acme")
        assert alert["facts"][0]["value"] >= 10
        sources = {m["source"] for m in alert["top_mentions"]}
        assert sources <= {"x", "reddit", "news"}
        assert "x" in sources
        for source in ("x", "reddit", "news"):
            assert (
                daemon.metric("listener_mentions_scored_total", brand="Acme", sentiment="negative")
                >= 10
            )
            assert daemon.metric("listener_mentions_new_total", source=source) >= 4
        status, body = daemon.get("/readyz")
        ready = json.loads(body)
        assert status == 200
        assert {n: s["status"] for n, s in ready["sources"].items()} == {
            "x": "ok",
            "reddit": "ok",
            "news": "ok",
        }
        assert daemon.stop() == 0
    finally:
        daemon.close()

    # restart: cursors persisted, nothing re-counted, no second alert
    again = Daemon(config, tmp_path / "state.db", env=env)
    try:
        for source in ("x", "reddit", "news"):
            again.wait_metric("listener_polls_total", 2, source=source, outcome="ok")
        for source in ("x", "reddit", "news"):
            assert again.metric("listener_mentions_new_total", source=source) == 0
        assert again.stop() == 0
    finally:
        again.close()
    assert len(hook.idempotency_keys()) == 1
    assert now - timedelta(minutes=5) < datetime.fromisoformat(alert["at"])
