"""The Hacker News collector against a loopback fake of the Algolia search API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from listener.collectors import build_collector
from listener.collectors.base import Cursor, PollResult
from listener.collectors.hackernews import HackerNewsCollector, hit_mention
from listener.config.schema import BrandConfig, HackerNewsSourceConfig
from listener.errors import MalformedResponse, RateLimited, SourceUnavailable
from listener.model import Author, Engagement
from tests.support.fake_social import FakeHackerNews

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HANG_BOUND = 10.0
"""Seconds after which a poll that should have timed out counts as hung (not a timing test)."""

ACME = BrandConfig(name="Acme", aliases=["Acme", "Acme Cloud"])
GLOBEX = BrandConfig(name="Globex", keywords=["globexpay"])


@pytest.fixture
def hn() -> Iterator[FakeHackerNews]:
    """A fresh fake per test."""
    with FakeHackerNews() as fake:
        yield fake


def config(fake: FakeHackerNews, **overrides: Any) -> HackerNewsSourceConfig:
    values: dict[str, Any] = {
        "type": "hackernews",
        "api_url": fake.api_url,
        "timeout": timedelta(seconds=2),
    }
    values.update(overrides)
    return HackerNewsSourceConfig.model_validate(values)


def poll(
    cfg: HackerNewsSourceConfig,
    cursor: Cursor | None = None,
    now: datetime = NOW,
    brands: tuple[BrandConfig, ...] = (ACME,),
) -> PollResult:
    collector = HackerNewsCollector("hn", cfg, brands)
    try:
        return collector.poll(cursor, now)
    finally:
        collector.close()


def test_stories_and_comments_become_mentions(hn: FakeHackerNews) -> None:
    """Stories, text posts and comments are normalised into the common mention shape."""
    hn.add(
        title="Acme raises prices",
        created_at=NOW - timedelta(minutes=3),
        author="pg",
        points=42,
        num_comments=7,
        url="https://example.com/acme",
        object_id="101",
    )
    hn.add(
        "<p>Anyone else locked out of &quot;Acme&quot;?</p>",
        title="Ask HN: Acme login broken?",
        created_at=NOW - timedelta(minutes=2),
        author="dang",
        object_id="102",
    )
    hn.add(
        "<p>Acme support never answered me.<p>Cancelled.",
        kind="comment",
        created_at=NOW - timedelta(minutes=1),
        author="tptacek",
        story_id=101,
        object_id="103",
    )
    result = poll(config(hn))
    by_id = {m.id: m for m in result.mentions}
    assert [m.id for m in result.mentions] == ["103", "102", "101"]

    story = by_id["101"]
    assert story.source == "hn"
    assert story.text == "Acme raises prices"
    assert story.title == "Acme raises prices"
    assert story.url == "https://example.com/acme"
    assert story.created_at == NOW - timedelta(minutes=3)
    assert story.author == Author(handle="pg")
    assert story.engagement == Engagement(upvotes=42, comments=7)

    ask = by_id["102"]
    assert ask.text == 'Ask HN: Acme login broken? Anyone else locked out of "Acme"?'
    assert ask.url == "https://news.ycombinator.com/item?id=102"

    comment = by_id["103"]
    assert comment.text == "Acme support never answered me. Cancelled."
    assert comment.title is None
    assert comment.url == "https://news.ycombinator.com/item?id=103"
    assert comment.engagement == Engagement()


def test_each_search_term_is_one_query_with_kinds_and_time_filter(hn: FakeHackerNews) -> None:
    """Every alias and keyword is its own query (Algolia has no OR), filtered by kind and time."""
    hn.add(title="Acme Cloud outage", created_at=NOW - timedelta(minutes=5), object_id="1")
    hn.add(title="Paying with GlobexPay", created_at=NOW - timedelta(minutes=5), object_id="2")
    cfg = config(hn, kinds=["story"])
    result = poll(cfg, brands=(ACME, GLOBEX))
    assert sorted(m.id for m in result.mentions) == ["1", "2"]
    searches = hn.requests_for("/api/v1/search_by_date")
    assert [r.param("query") for r in searches] == ["Acme", "Acme Cloud", "Globex", "globexpay"]
    floor = int((NOW - timedelta(hours=1)).timestamp())
    for request in searches:
        assert request.param("tags") == "story"
        assert request.param("numericFilters") == f"created_at_i>={floor}"
        assert request.param("page") == "0"
        assert request.headers["user-agent"].startswith("listener/")
    assert config(hn).kinds == ["story", "comment"]
    poll(config(hn))
    assert hn.requests[-1].param("tags") == "(story,comment)"


def test_first_poll_reaches_back_lookback_and_is_backfill(hn: FakeHackerNews) -> None:
    """Without a cursor the poll reaches back ``lookback`` only, and is marked as backfill."""
    hn.add(title="Acme old news", created_at=NOW - timedelta(hours=3), object_id="1")
    hn.add(title="Acme recent news", created_at=NOW - timedelta(minutes=50), object_id="2")
    cfg = config(hn, lookback=timedelta(hours=1))
    first = poll(cfg)
    assert [m.id for m in first.mentions] == ["2"]
    assert first.backfill is True
    second = poll(cfg, first.cursor, NOW + timedelta(minutes=5))
    assert second.mentions == []
    assert second.backfill is False


def test_second_poll_returns_only_new_items_including_same_second(hn: FakeHackerNews) -> None:
    """The cursor keeps the newest second and its ids, so later same-second items still arrive."""
    at = NOW - timedelta(minutes=10)
    hn.add(title="Acme one", created_at=at - timedelta(minutes=1), object_id="1")
    hn.add(title="Acme two", created_at=at, object_id="2")
    first = poll(config(hn))
    assert sorted(m.id for m in first.mentions) == ["1", "2"]
    assert first.cursor == {"brands": {"Acme": {"since": int(at.timestamp()), "seen": ["2"]}}}

    hn.add(title="Acme three, same second", created_at=at, object_id="3")
    hn.add(title="Acme four", created_at=NOW - timedelta(minutes=1), object_id="4")
    second = poll(config(hn), first.cursor, NOW + timedelta(minutes=5))
    assert sorted(m.id for m in second.mentions) == ["3", "4"]
    assert second.backfill is False
    assert hn.requests[-1].param("numericFilters") == f"created_at_i>={int(at.timestamp())}"

    third = poll(config(hn), second.cursor, NOW + timedelta(minutes=10))
    assert third.mentions == []
    assert third.cursor == second.cursor


def test_a_brand_added_later_is_backfilled_alone(hn: FakeHackerNews) -> None:
    """A brand missing from the cursor reaches back ``lookback`` and marks the poll as backfill."""
    first = poll(config(hn))
    hn.add(title="GlobexPay news", created_at=NOW - timedelta(minutes=30), object_id="9")
    second = poll(config(hn), first.cursor, NOW + timedelta(minutes=5), brands=(ACME, GLOBEX))
    assert [m.id for m in second.mentions] == ["9"]
    assert second.backfill is True


def test_page_limit_bounds_the_pages_per_query(hn: FakeHackerNews) -> None:
    """At most ``page_limit`` pages are fetched per query; the cut is noted."""
    for i in range(250):
        hn.add(title=f"Acme item {i}", created_at=NOW - timedelta(seconds=10 + i))
    result = poll(config(hn, page_limit=2), brands=(BrandConfig(name="Acme"),))
    assert len(result.mentions) == 200
    pages = [r.param("page") for r in hn.requests_for("/api/v1/search_by_date")]
    assert pages == ["0", "1"]
    assert result.notes["truncated"] == 1
    assert result.cursor["brands"]["Acme"]["since"] == int(
        (NOW - timedelta(seconds=10)).timestamp()
    )


def test_all_pages_are_fetched_within_the_limit(hn: FakeHackerNews) -> None:
    """Pagination follows ``nbPages`` and stops at the last page."""
    for i in range(150):
        hn.add(title=f"Acme item {i}", created_at=NOW - timedelta(seconds=10 + i))
    result = poll(config(hn, page_limit=5), brands=(BrandConfig(name="Acme"),))
    assert len(result.mentions) == 150
    assert [r.param("page") for r in hn.requests] == ["0", "1"]
    assert result.notes["truncated"] == 0


def test_rate_limit_raises_rate_limited_with_retry_after(hn: FakeHackerNews) -> None:
    """A 429 becomes RateLimited carrying the server's Retry-After."""
    hn.fail("rate_limit", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        poll(config(hn))
    assert caught.value.retry_after == 7


def test_server_error_raises_source_unavailable(hn: FakeHackerNews) -> None:
    """A 500 becomes SourceUnavailable."""
    hn.fail("server_error")
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        poll(config(hn))


def test_stall_beyond_the_timeout_raises_source_unavailable(hn: FakeHackerNews) -> None:
    """A server that does not answer within the timeout makes the poll fail, not hang."""
    hn.fail("stall", stall=HANG_BOUND * 2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        poll(config(hn, timeout=timedelta(seconds=0.3)))
    assert time.monotonic() - started < HANG_BOUND


def test_truncated_json_raises_malformed_response(hn: FakeHackerNews) -> None:
    """A cut-off JSON body becomes MalformedResponse."""
    hn.add(title="Acme", created_at=NOW - timedelta(minutes=1))
    hn.fail("truncated")
    with pytest.raises(MalformedResponse, match="invalid JSON"):
        poll(config(hn), brands=(BrandConfig(name="Acme"),))


def test_oversized_answer_raises_malformed_response(hn: FakeHackerNews) -> None:
    """An answer larger than ``max_bytes`` is refused."""
    for i in range(20):
        hn.add(title=f"Acme {i} " + "x" * 200, created_at=NOW - timedelta(minutes=1))
    with pytest.raises(MalformedResponse, match="exceeds"):
        poll(config(hn, max_bytes=2048))


def test_one_malformed_brand_is_a_partial_failure(hn: FakeHackerNews) -> None:
    """A malformed answer for one brand is reported beside the other brands' mentions."""
    hn.add(title="GlobexPay is great", created_at=NOW - timedelta(minutes=1), object_id="7")
    previous = {"brands": {"Acme": {"since": 123, "seen": []}}}
    hn.fail("truncated")  # the first query: Acme's
    result = poll(config(hn), previous, brands=(ACME, GLOBEX))
    assert [m.id for m in result.mentions] == ["7"]
    assert len(result.errors) == 1
    assert isinstance(result.errors[0], MalformedResponse)
    assert result.cursor["brands"]["Acme"] == {"since": 123, "seen": []}
    assert "Globex" in result.cursor["brands"]


def test_only_the_configured_brands_are_searched(hn: FakeHackerNews) -> None:
    """A source's ``brands`` list limits the queries to those brands."""
    poll(config(hn, brands=["Globex"]), brands=(ACME, GLOBEX))
    assert {r.param("query") for r in hn.requests} == {"Globex", "globexpay"}


def test_registry_builds_the_collector(hn: FakeHackerNews) -> None:
    """``build_collector`` maps a hackernews source to HackerNewsCollector."""
    collector = build_collector("hn", config(hn), [ACME])
    try:
        assert isinstance(collector, HackerNewsCollector)
        assert collector.poll(None, NOW).mentions == []
    finally:
        collector.close()


def test_hits_without_id_or_time_are_skipped() -> None:
    """A hit lacking ``objectID`` or ``created_at_i`` yields no mention."""
    assert hit_mention("hn", {"created_at_i": 1}) is None
    assert hit_mention("hn", {"objectID": "1", "created_at_i": "soon"}) is None
    mention = hit_mention(
        "hn", {"objectID": "5", "created_at_i": 0, "title": "t", "url": "ftp://x"}
    )
    assert mention is not None
    assert mention.url == "https://news.ycombinator.com/item?id=5"
