"""The Mastodon collector (Mastodon.py) against a loopback fake Mastodon instance."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from listener.collectors import build_collector
from listener.collectors.base import Cursor, PollResult
from listener.collectors.mastodon import (
    MastodonCollector,
    hashtags_for,
    search_query,
    status_mention,
)
from listener.collectors.requests_http import GuardedAdapter
from listener.config.schema import BrandConfig, MastodonSourceConfig
from listener.errors import MalformedResponse, RateLimited, SourceRejected, SourceUnavailable
from listener.model import Author, Engagement
from tests.support.fake_social import FakeMastodon

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HANG_BOUND = 10.0
"""Seconds after which a poll that should have timed out counts as hung (not a timing test)."""
TOKEN = "s3cret-token"

ACME = BrandConfig(name="Acme", aliases=["Acme", "Acme Cloud"], hashtags=["#Acme"])
GLOBEX = BrandConfig(name="Globex", hashtags=["globex"], keywords=["globexpay"])
TAG_PATH = "/api/v1/timelines/tag/"


@pytest.fixture
def masto() -> Iterator[FakeMastodon]:
    """A fresh fake instance per test that accepts TOKEN."""
    with FakeMastodon(token=TOKEN) as fake:
        yield fake


def config(fake: FakeMastodon, **overrides: Any) -> MastodonSourceConfig:
    values: dict[str, Any] = {
        "type": "mastodon",
        "instance": fake.url,
        "timeout": timedelta(seconds=2),
    }
    values.update(overrides)
    return MastodonSourceConfig.model_validate(values)


def poll(
    cfg: MastodonSourceConfig,
    cursor: Cursor | None = None,
    now: datetime = NOW,
    brands: tuple[BrandConfig, ...] = (ACME,),
) -> PollResult:
    collector = MastodonCollector("masto", cfg, brands)
    try:
        return collector.poll(cursor, now)
    finally:
        collector.close()


def test_hashtag_statuses_become_mentions(masto: FakeMastodon) -> None:
    """Statuses of a hashtag timeline are normalised into the common mention shape."""
    status = masto.add(
        "Is #Acme down for everyone?\nMy deploys fail & nobody answers",
        created_at=NOW - timedelta(minutes=3),
        acct="bob@other.example",
        display_name="Bob B.",
        followers=1200,
        likes=5,
        reposts=2,
        replies=1,
        language="EN",
    )
    result = poll(config(masto))
    assert len(result.mentions) == 1
    mention = result.mentions[0]
    assert mention.source == "masto"
    assert mention.id == f"127.0.0.1:{status['id']}"
    assert mention.text == "Is #Acme down for everyone? My deploys fail & nobody answers"
    assert mention.created_at == NOW - timedelta(minutes=3)
    assert mention.url == status["url"]
    assert mention.language == "en"
    assert mention.author == Author(
        handle="bob@other.example", display_name="Bob B.", followers=1200
    )
    assert mention.engagement == Engagement(likes=5, reposts=2, replies=1)
    assert mention.is_repost is False
    assert result.quota_remaining == 300 - len(masto.requests)  # the smallest seen


def test_hashtags_default_to_the_brands_and_can_be_configured(masto: FakeMastodon) -> None:
    """Without ``hashtags`` the brands' hashtags (without ``#``) are read; configured ones win."""
    assert hashtags_for(config(masto), [ACME, GLOBEX]) == ["acme", "globex"]
    assert hashtags_for(config(masto, hashtags=["#Outage", "acme"]), [ACME]) == ["outage", "acme"]
    assert hashtags_for(config(masto, brands=["Globex"]), [ACME, GLOBEX]) == ["globex"]
    poll(config(masto), brands=(ACME, GLOBEX))
    assert [r.path for r in masto.requests_for(TAG_PATH)] == [
        f"{TAG_PATH}acme",
        f"{TAG_PATH}globex",
    ]


def test_second_poll_returns_only_new_statuses(masto: FakeMastodon) -> None:
    """The cursor keeps each hashtag's newest id and the next poll asks ``since_id``."""
    old = masto.add("#acme one", created_at=NOW - timedelta(minutes=10))
    first = poll(config(masto))
    assert first.cursor == {"tags": {"acme": old["id"]}, "search": {}}
    new = masto.add("#acme two", created_at=NOW - timedelta(minutes=1))
    second = poll(config(masto), first.cursor, NOW + timedelta(minutes=5))
    assert [m.id for m in second.mentions] == [f"127.0.0.1:{new['id']}"]
    assert second.backfill is False
    assert masto.requests_for(TAG_PATH)[-1].param("since_id") == old["id"]
    third = poll(config(masto), second.cursor, NOW + timedelta(minutes=10))
    assert third.mentions == []
    assert third.cursor == second.cursor


def test_first_poll_keeps_lookback_only_and_is_backfill(masto: FakeMastodon) -> None:
    """Without a cursor only statuses newer than ``now - lookback`` are kept, as backfill."""
    masto.add("#acme ancient", created_at=NOW - timedelta(hours=5))
    recent = masto.add("#acme recent", created_at=NOW - timedelta(minutes=20))
    first = poll(config(masto, lookback=timedelta(hours=1)))
    assert [m.id for m in first.mentions] == [f"127.0.0.1:{recent['id']}"]
    assert first.backfill is True
    assert first.cursor["tags"]["acme"] == recent["id"]
    masto.add("#globex new tag", created_at=NOW - timedelta(minutes=2))
    second = poll(config(masto), first.cursor, NOW, brands=(ACME, GLOBEX))
    assert len(second.mentions) == 1
    assert second.backfill is True  # the globex tag had no cursor yet


def test_an_empty_first_read_is_remembered(masto: FakeMastodon) -> None:
    """A hashtag that had nothing on its first read is not backfill on the next poll."""
    first = poll(config(masto))
    assert first.backfill is True
    assert first.cursor == {"tags": {"acme": ""}, "search": {}}
    new = masto.add("#acme first ever", created_at=NOW + timedelta(minutes=1))
    second = poll(config(masto), first.cursor, NOW + timedelta(minutes=5))
    assert [m.id for m in second.mentions] == [f"127.0.0.1:{new['id']}"]
    assert second.backfill is False
    assert masto.requests_for(TAG_PATH)[-1].param("since_id") is None


def test_page_limit_bounds_the_pages_per_hashtag(masto: FakeMastodon) -> None:
    """At most ``page_limit`` pages are read per hashtag, paging down with ``max_id``."""
    for i in range(100):
        masto.add(f"#acme {i}", created_at=NOW - timedelta(seconds=30 + i))
    cursor = {"tags": {"acme": "1"}, "search": {}}
    result = poll(config(masto, page_limit=2), cursor)
    assert len(result.mentions) == 80
    pages = masto.requests_for(TAG_PATH)
    assert len(pages) == 2
    assert pages[0].param("max_id") is None
    assert pages[1].param("max_id") is not None
    assert all(p.param("since_id") == "1" for p in pages)
    assert result.notes["truncated"] == 1


def test_paging_runs_to_the_end_within_the_limit(masto: FakeMastodon) -> None:
    """Pages are read until a short page when the limit allows."""
    for i in range(50):
        masto.add(f"#acme {i}", created_at=NOW - timedelta(seconds=30 + i))
    result = poll(config(masto, page_limit=5))
    assert len(result.mentions) == 50
    assert len(masto.requests_for(TAG_PATH)) == 2
    assert result.notes["truncated"] == 0


def test_search_runs_only_with_a_token(masto: FakeMastodon) -> None:
    """Status search is used only with an access token, which it sends as a bearer token."""
    found = masto.add("Acme Cloud lost my data", created_at=NOW - timedelta(minutes=2))
    without = poll(config(masto))
    assert masto.requests_for("/api/v2/search") == []
    assert without.mentions == []

    with_token = poll(config(masto, access_token=TOKEN))
    assert [m.id for m in with_token.mentions] == [f"127.0.0.1:{found['id']}"]
    searches = masto.requests_for("/api/v2/search")
    assert len(searches) == 1
    assert searches[0].param("q") == 'Acme "Acme Cloud"'
    assert searches[0].param("type") == "statuses"
    assert searches[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert with_token.cursor["search"] == {"Acme": found["id"]}


def test_search_cursor_asks_min_id(masto: FakeMastodon) -> None:
    """A second search asks only for statuses newer than the last one seen."""
    first_status = masto.add("Acme again", created_at=NOW - timedelta(minutes=9))
    cfg = config(masto, access_token=TOKEN, hashtags=["unrelated"])
    first = poll(cfg)
    later = masto.add("Acme still broken", created_at=NOW - timedelta(minutes=1))
    second = poll(cfg, first.cursor, NOW + timedelta(minutes=5))
    assert [m.id for m in second.mentions] == [f"127.0.0.1:{later['id']}"]
    assert masto.requests_for("/api/v2/search")[-1].param("min_id") == first_status["id"]


def test_invalid_token_is_rejected(masto: FakeMastodon) -> None:
    """A token the instance refuses becomes SourceRejected."""
    with pytest.raises(SourceRejected, match="401"):
        poll(config(masto, access_token="wrong"))


def test_nothing_to_read_is_rejected(masto: FakeMastodon) -> None:
    """A source without hashtags and without a token says so instead of silently idling."""
    with pytest.raises(SourceRejected, match="nothing to read"):
        poll(config(masto), brands=(BrandConfig(name="Plain"),))


def test_rate_limit_raises_rate_limited_with_retry_after(masto: FakeMastodon) -> None:
    """A 429 becomes RateLimited carrying the server's Retry-After."""
    masto.fail("rate_limit", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        poll(config(masto))
    assert caught.value.retry_after == 7


def test_rate_limit_reset_header_gives_retry_after(masto: FakeMastodon) -> None:
    """Without Retry-After, Mastodon's X-RateLimit-Reset time gives the wait."""
    masto.fail("rate_limit", retry_after=120, retry_after_header=False)
    with pytest.raises(RateLimited) as caught:
        poll(config(masto))
    assert caught.value.retry_after == pytest.approx(120, abs=5)


def test_server_error_raises_source_unavailable(masto: FakeMastodon) -> None:
    """A 500 becomes SourceUnavailable."""
    masto.fail("server_error")
    with pytest.raises(SourceUnavailable, match="500"):
        poll(config(masto))


def test_stall_beyond_the_timeout_raises_source_unavailable(masto: FakeMastodon) -> None:
    """A stalled timeline makes the poll fail within its timeout instead of hanging."""
    masto.fail("stall", stall=HANG_BOUND * 2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        poll(config(masto, timeout=timedelta(seconds=0.3)))
    assert time.monotonic() - started < HANG_BOUND


def test_truncated_json_raises_malformed_response(masto: FakeMastodon) -> None:
    """A cut-off JSON body becomes MalformedResponse."""
    masto.add("#acme cut", created_at=NOW - timedelta(minutes=1))
    masto.fail("truncated")
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        poll(config(masto))


def test_oversized_answer_raises_malformed_response(masto: FakeMastodon) -> None:
    """An answer larger than ``max_bytes`` is refused."""
    for i in range(5):
        masto.add(f"#acme {i} " + "x" * 400, created_at=NOW - timedelta(minutes=1))
    with pytest.raises(MalformedResponse, match="exceeds"):
        poll(config(masto, max_bytes=4096))


def test_one_failing_hashtag_is_a_partial_failure(masto: FakeMastodon) -> None:
    """A malformed answer for one hashtag is reported beside the other hashtag's mentions."""
    globex = masto.add("#globex fine", created_at=NOW - timedelta(minutes=1))
    cursor = {"tags": {"acme": "5", "globex": "6"}, "search": {}}
    masto.fail("truncated", path=f"{TAG_PATH}acme")
    result = poll(config(masto), cursor, brands=(ACME, GLOBEX))
    assert [m.id for m in result.mentions] == [f"127.0.0.1:{globex['id']}"]
    assert len(result.errors) == 1
    assert isinstance(result.errors[0], MalformedResponse)
    assert result.cursor["tags"] == {"acme": "5", "globex": globex["id"]}


def test_failing_instance_metadata_does_not_break_polling(masto: FakeMastodon) -> None:
    """Timelines and search still work when the instance metadata endpoints fail."""
    masto.add("#acme and Acme search", created_at=NOW - timedelta(minutes=1))
    masto.fail("server_error", path="/api/v1/instance", times=5)
    masto.fail("server_error", path="/api/v2/instance", times=5)
    cursor = {"tags": {"acme": "1"}, "search": {"Acme": "1"}}
    result = poll(config(masto, access_token=TOKEN), cursor)
    assert len(result.mentions) == 1
    assert result.errors == []
    assert masto.requests_for("/api/v2/search")[0].param("min_id") == "1"


def test_a_given_session_is_guarded_and_used(masto: FakeMastodon) -> None:
    """A caller's requests session gets the guard adapter and carries the requests."""
    session = requests.Session()
    masto.add("#acme via session", created_at=NOW - timedelta(minutes=1))
    collector = MastodonCollector("masto", config(masto), [ACME], session=session)
    try:
        assert isinstance(session.get_adapter(masto.url + "/api"), GuardedAdapter)
        assert len(collector.poll(None, NOW).mentions) == 1
    finally:
        collector.close()


def test_reblogs_carry_the_original_text_and_id() -> None:
    """A reblog is a repost of the original status, whose text and id it carries."""
    original = {
        "id": "200",
        "created_at": "2026-03-02T08:00:00.000Z",
        "url": "https://a.example/@carol/200",
        "content": "<p>Acme <strong>lost</strong> my files</p>",
        "language": "de",
        "account": {"acct": "carol@a.example"},
    }
    reblog = {
        "id": "300",
        "created_at": datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
        "url": None,
        "uri": "https://b.example/users/dave/statuses/300/activity",
        "content": "",
        "reblog": original,
        "account": {"acct": "dave", "display_name": "", "followers_count": 3},
        "favourites_count": 0,
    }
    mention = status_mention("masto", "b.example", reblog)
    assert mention is not None
    assert mention.id == "b.example:300"
    assert mention.is_repost is True
    assert mention.reposted_id == "b.example:200"
    assert mention.text == "Acme lost my files"
    assert mention.url == "https://a.example/@carol/200"
    assert mention.language == "de"
    assert mention.author == Author(handle="dave", display_name=None, followers=3)
    assert status_mention("masto", "b.example", {"id": "1"}) is None


def test_search_query_ors_terms_and_quotes_phrases() -> None:
    """One search query lists a brand's aliases and keywords, phrases quoted."""
    assert search_query(ACME) == 'Acme "Acme Cloud"'
    assert search_query(GLOBEX) == "Globex globexpay"


def test_registry_builds_the_collector(masto: FakeMastodon) -> None:
    """``build_collector`` maps a mastodon source to MastodonCollector."""
    collector = build_collector("masto", config(masto), [ACME])
    try:
        assert isinstance(collector, MastodonCollector)
    finally:
        collector.close()
