"""The Reddit collector: the real praw over a loopback fake Reddit, and the public feeds."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from listener.collectors import build_collector
from listener.collectors.base import PollResult
from listener.collectors.queries import simple_query
from listener.collectors.reddit import RedditCollector
from listener.config.schema import BrandConfig, RedditSourceConfig
from listener.errors import (
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.model import Author, Engagement, Mention
from tests.conftest import need_shared
from tests.support.fake_reddit import FakeReddit, Fault, RateLimit

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T0 = NOW.timestamp()
CLIENT_ID = "listener-cid"
SECRET = "listener-secret"
HANG_BOUND = 10.0
"""Seconds after which a poll that should have failed fast counts as hung (not a timing test)."""

ACME = BrandConfig(name="Acme", aliases=["Acme", "Acme Corp"])
GLOBEX = BrandConfig(name="Globex")
Factory = Callable[..., RedditCollector]


def cassette(name: str) -> Any:
    """Path of a recorded praw cassette under ../shared (skips when absent)."""
    return need_shared("fixtures", "praw", "cassettes", name)


@pytest.fixture
def fake() -> Iterator[FakeReddit]:
    """A fresh fake Reddit per test, with the credentials the collectors use."""
    with FakeReddit(client_id=CLIENT_ID, client_secret=SECRET) as server:
        yield server


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``time.sleep`` call, recorded and skipped (praw's own suite patches it too)."""
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    return calls


@pytest.fixture
def make(fake: FakeReddit) -> Iterator[Factory]:
    """Builds collectors against ``fake`` (credentials unless ``client_id=None``); closes them."""
    built: list[RedditCollector] = []

    def build(*brands: BrandConfig, **overrides: Any) -> RedditCollector:
        values: dict[str, Any] = {
            "type": "reddit",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "api_url": fake.url,
            "auth_url": fake.url,
            "public_url": fake.url,
            "timeout": timedelta(seconds=2),
            "lookback": timedelta(hours=1),
        }
        values.update(overrides)
        if values["client_id"] is None:  # the public path: no credentials (half is an error)
            values["client_secret"] = None
        transport = values.pop("transport", None)
        config = RedditSourceConfig.model_validate(
            {k: v for k, v in values.items() if v is not None}
        )
        collector = RedditCollector("reddit", config, list(brands) or [ACME], transport=transport)
        built.append(collector)
        return collector

    yield build
    for collector in built:
        collector.close()


def ids(result: PollResult) -> list[str]:
    return [m.id for m in result.mentions]


def post(title: str, minutes_ago: float, **fields: Any) -> dict[str, Any]:
    """A post for :meth:`FakeReddit.add_posts`, created ``minutes_ago`` before NOW."""
    return {"title": title, "created_utc": T0 - 60 * minutes_ago, **fields}


# --------------------------------------------------------------------------- api path


def test_search_cassette_yields_normalised_mentions(fake: FakeReddit, make: Factory) -> None:
    """A recorded r/all search replayed through the real praw becomes normalised mentions."""
    fake.load_cassette(cassette("TestSubreddit.test_search.json"), ignore_params={"q"})
    # the posts span 2013-11 to 2016-03, longer than the longest lookback (365d): poll as
    # if within a year of the oldest, so the first poll's window keeps every one of them
    first_poll_at = datetime(2014, 11, 1, tzinfo=UTC)
    brand = BrandConfig(name="praw")
    result = make(brand, lookback=timedelta(days=365)).poll(None, first_poll_at)

    assert ids(result) == [
        "t3_3gpbiu",
        "t3_3x4kt2",
        "t3_3b4erh",
        "t3_1qvzkd",
        "t3_3qc02b",
        "t3_4at068",
    ]
    mention = result.mentions[1]
    title = (
        "[PRAW] Is there an easy way of getting a list of the subreddits I am subscribed to,"
        " without using OAuth?"
    )
    assert mention == Mention(
        source="reddit",
        id="t3_3x4kt2",
        text=title + " As the title says.  I have done a bit of looking around and I can't seem to"
        " find an easy way of doing this.  I am simply looking to return a list of my own"
        " subscribed subs and then do a quick search through each of them.\n\nThanks",
        created_at=datetime(2015, 12, 16, 21, 3, 6, tzinfo=UTC),
        url="https://www.reddit.com/r/redditdev/comments/3x4kt2/praw_is_there_an_easy_way_of_getting_a_list_of/",
        author=Author(handle="GrinningMouth38"),
        engagement=Engagement(upvotes=2, comments=5),
        title=title,
    )
    assert all(m.language is None and m.source == "reddit" for m in result.mentions)
    assert result.backfill is True
    assert result.cursor["streams"]["search all praw"] == {
        "fullname": "t3_4at068",
        "created_utc": 1458221634.0,
    }
    (search,) = fake.api_requests()
    assert search.path == "/r/all/search/"
    assert search.query["q"] == simple_query(brand)
    assert (search.query["sort"], search.query["t"], search.query["restrict_sr"]) == (
        "new",
        "year",  # the time filter that covers a 365d lookback
        "False",
    )
    assert search.headers["authorization"].startswith("bearer fake-token-")


def test_injected_posts_become_mentions(fake: FakeReddit, make: Factory) -> None:
    """Posts injected into the fake come back with title + selftext, score and a deleted author."""
    added = fake.add_posts(
        [
            post("Acme outage again", 5, selftext="Nothing loads.", score=42, num_comments=7),
            post("Is Acme Corp down?", 10, author=None, subreddit="sysadmin"),
        ]
    )
    result = make(ACME).poll(None, NOW)

    first, second = result.mentions
    assert first.id == added[0].fullname
    assert first.text == "Acme outage again. Nothing loads."
    assert first.title == "Acme outage again"
    assert first.engagement == Engagement(upvotes=42, comments=7)
    assert first.author == Author(handle="fake_user")
    assert first.url == "https://www.reddit.com" + added[0].permalink
    assert first.created_at == datetime.fromtimestamp(T0 - 300, UTC)
    assert second.text == "Is Acme Corp down?"
    assert second.author == Author(handle=None)
    assert second.url is not None
    assert second.url.startswith("https://www.reddit.com/r/sysadmin/comments/")


def test_second_poll_returns_only_newer_items(fake: FakeReddit, make: Factory) -> None:
    """The cursor holds the newest fullname and time: a later poll returns only newer posts."""
    fake.add_posts([post("Acme one", 30), post("Acme two", 10)])
    collector = make(ACME)
    first = collector.poll(None, NOW)
    assert [m.text for m in first.mentions] == ["Acme two", "Acme one"]

    (newer,) = fake.add_posts([post("Acme three", -1)])
    second = collector.poll(first.cursor, NOW + timedelta(minutes=5))
    assert ids(second) == [newer.fullname]
    assert second.backfill is False
    (state,) = second.cursor["streams"].values()
    assert state == {"fullname": newer.fullname, "created_utc": newer.created_utc}

    third = collector.poll(second.cursor, NOW + timedelta(minutes=10))
    assert third.mentions == []
    assert third.cursor == second.cursor
    assert len(fake.api_requests()) == 3


def test_first_poll_sets_backfill_and_respects_lookback(fake: FakeReddit, make: Factory) -> None:
    """Without a cursor only posts newer than ``now - lookback`` are kept, flagged as backfill."""
    fake.add_posts([post("Acme old", 120), post("Acme recent", 50), post("Acme newest", 5)])
    collector = make(ACME, lookback=timedelta(hours=1))
    result = collector.poll(None, NOW)

    assert [m.text for m in result.mentions] == ["Acme newest", "Acme recent"]
    assert result.backfill is True
    assert fake.api_requests()[0].query["t"] == "day"
    assert collector.poll(result.cursor, NOW).backfill is False


def test_zero_lookback_starts_from_now(fake: FakeReddit, make: Factory) -> None:
    """With ``lookback: 0`` the first poll keeps nothing, and later polls pick up new posts."""
    fake.add_posts([post("Acme before start", 1)])
    collector = make(ACME, lookback=timedelta(0))
    first = collector.poll(None, NOW)
    assert first.mentions == []
    assert first.backfill is True

    (newer,) = fake.add_posts([post("Acme after start", -2)])
    second = collector.poll(first.cursor, NOW + timedelta(minutes=5))
    assert ids(second) == [newer.fullname]
    assert second.backfill is False


def test_time_filter_covers_the_span_back_to_the_cursor(fake: FakeReddit, make: Factory) -> None:
    """A cursor three days old widens the search's time filter to a week."""
    state = {"fullname": "t3_old", "created_utc": T0 - 3 * 86_400}
    cursor = {"streams": {f"search all {simple_query(ACME)}": state}}
    make(ACME).poll(cursor, NOW)
    assert fake.api_requests()[0].query["t"] == "week"


def test_page_limit_bounds_requests(fake: FakeReddit, make: Factory) -> None:
    """``page_limit`` caps the listing requests of a stream; the newest items are kept."""
    added = fake.add_posts([post(f"Acme post {n}", n / 10) for n in range(250)])
    result = make(ACME, page_limit=2, lookback=timedelta(days=1)).poll(None, NOW)

    assert len(fake.api_requests()) == 2
    assert ids(result) == [p.fullname for p in added[:200]]
    assert fake.api_requests()[1].query["after"] == added[99].fullname
    (state,) = result.cursor["streams"].values()
    assert state["fullname"] == added[0].fullname


def test_comments_stream_keeps_only_brand_mentions(fake: FakeReddit, make: Factory) -> None:
    """A recorded r/askreddit comments page is filtered to comments naming a brand term."""
    path = cassette("TestSubredditListings.test_comments.json")
    fake.load_cassette(path)
    children = json.loads(
        json.loads(path.read_text())["interactions"][1]["response"]["body"]["string"]
    )["data"]["children"]
    term = re.compile(r"(?<!\w)reddit(?!\w)", re.IGNORECASE)
    expected = [c["data"]["name"] for c in children if term.search(c["data"]["body"])]
    assert 0 < len(expected) < len(children)

    recorded_at = datetime(2016, 7, 4, 0, 4, 51, tzinfo=UTC)
    brand = BrandConfig(name="Reddit")
    collector = make(brand, subreddits=["askreddit"], lookback=timedelta(days=1), page_limit=1)
    result = collector.poll(None, recorded_at)

    assert ids(result) == expected
    first = next(c["data"] for c in children if c["data"]["name"] == expected[0])
    mention = result.mentions[0]
    assert mention.text == first["body"]
    assert mention.title is None
    assert mention.author == Author(handle=first["author"])
    assert mention.engagement == Engagement(upvotes=first["score"])
    link = first["link_id"].removeprefix("t3_")
    assert mention.url == f"https://www.reddit.com/r/AskReddit/comments/{link}/_/{first['id']}/"
    paths = [r.path.rstrip("/") for r in fake.api_requests()]
    assert paths == ["/r/askreddit/search", "/r/askreddit/comments"]
    newest = max(children, key=lambda c: c["data"]["created_utc"])["data"]
    assert result.cursor["streams"]["comments askreddit"]["created_utc"] == newest["created_utc"]


def test_injected_comments_are_filtered_and_cursored(fake: FakeReddit, make: Factory) -> None:
    """Injected comments: only brand mentions are kept; the next poll returns only newer ones."""
    fake.add_comments(
        [
            {"body": "Acme support fixed it", "created_utc": T0 - 60, "subreddit": "acme"},
            {"body": "unrelated chatter", "created_utc": T0 - 30, "subreddit": "acme"},
        ]
    )
    collector = make(ACME, subreddits=["acme"])
    first = collector.poll(None, NOW)
    assert [m.text for m in first.mentions] == ["Acme support fixed it"]
    assert first.mentions[0].id.startswith("t1_")

    fake.add_comments([{"body": "acme corp is down", "created_utc": T0 + 30, "subreddit": "acme"}])
    second = collector.poll(first.cursor, NOW + timedelta(minutes=1))
    assert [m.text for m in second.mentions] == ["acme corp is down"]


def test_no_comments_stream_site_wide(fake: FakeReddit, make: Factory) -> None:
    """Without subreddits there is no comments stream (Reddit has no comment search)."""
    make(ACME, comments=True).poll(None, NOW)
    assert [r.path.rstrip("/") for r in fake.api_requests()] == ["/r/all/search"]


def test_wrong_client_secret_is_rejected(fake: FakeReddit, make: Factory) -> None:
    """A 401 from the token endpoint becomes SourceRejected naming the credentials."""
    with pytest.raises(SourceRejected, match="client_id and client_secret"):
        make(ACME, client_secret="wrong").poll(None, NOW)
    assert fake.api_requests() == []


def test_429_raises_rate_limited_with_retry_after(fake: FakeReddit, make: Factory) -> None:
    """A 429 becomes RateLimited carrying the Retry-After seconds."""
    fake.inject(Fault.too_many_requests(retry_after=7))
    with pytest.raises(RateLimited) as caught:
        make(ACME).poll(None, NOW)
    assert caught.value.retry_after == 7.0


def test_500_is_unavailable_without_prawcore_retries(
    fake: FakeReddit, make: Factory, sleeps: list[float]
) -> None:
    """A 500 becomes SourceUnavailable at once: prawcore neither retries nor sleeps."""
    fake.inject(Fault.server_error(500))
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        make(ACME, GLOBEX).poll(None, NOW)
    assert len(fake.api_requests()) == 1  # no retry, and the other brand's stream not tried
    assert sleeps == []


def test_stall_beyond_timeout_is_unavailable(fake: FakeReddit, make: Factory) -> None:
    """A server that stalls past the source's timeout yields SourceUnavailable after one try."""
    fake.inject(Fault.stalled(seconds=8))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        make(ACME, timeout=timedelta(milliseconds=300)).poll(None, NOW)
    assert time.monotonic() - started < HANG_BOUND
    assert len(fake.api_requests()) == 1


@pytest.mark.parametrize("declare_length", [True, False])
def test_oversized_body_is_malformed(fake: FakeReddit, make: Factory, declare_length: bool) -> None:
    """A body over ``max_bytes`` (declared or streamed) becomes MalformedResponse."""
    fake.inject(Fault.oversized(50_000, declare_length=declare_length))
    with pytest.raises(MalformedResponse, match="exceeds 10000"):
        make(ACME, max_bytes=10_000).poll(None, NOW)


def test_truncated_json_is_malformed(fake: FakeReddit, make: Factory) -> None:
    """A listing cut off mid-document becomes MalformedResponse."""
    fake.inject(Fault.truncated_json())
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        make(ACME).poll(None, NOW)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(200, b'{"access_token": "x", "expi'), MalformedResponse),
        (Fault.server_error(503), SourceUnavailable),
        (Fault(200, b'{"error": "invalid_grant"}'), SourceRejected),
    ],
)
def test_token_endpoint_failures_are_translated(
    fake: FakeReddit, make: Factory, fault: Fault, error: type[Exception]
) -> None:
    """Broken JSON, a 5xx or an OAuth error from the token endpoint become our errors."""
    fake.inject(fault, path="/api/v1/access_token")
    with pytest.raises(error):
        make(ACME).poll(None, NOW)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.error(403, "Forbidden"), "HTTP 403"),
        (Fault.error(404, "Not Found"), "HTTP 404"),
        (
            Fault(302, b"", {"Location": "https://www.reddit.com/subreddits/search.json?q=x"}),
            "does the subreddit exist",
        ),
    ],
)
def test_client_errors_are_rejected(
    fake: FakeReddit, make: Factory, fault: Fault, message: str
) -> None:
    """403, 404 and the redirect Reddit sends for an unknown subreddit become SourceRejected."""
    fake.inject(fault)
    with pytest.raises(SourceRejected, match=message):
        make(ACME, subreddits=["nosuchsub"], comments=False).poll(None, NOW)


def test_rejected_stream_is_reported_beside_the_others(fake: FakeReddit, make: Factory) -> None:
    """A 403 on one brand's search is a partial error; the next brand is still polled."""
    fake.add_posts([post("Globex news", 5)])
    fake.inject(Fault.error(403, "Forbidden"))
    result = make(ACME, GLOBEX).poll(None, NOW)

    assert [m.text for m in result.mentions] == ["Globex news"]
    (error,) = result.errors
    assert isinstance(error, SourceRejected)
    assert list(result.cursor["streams"]) == ["search all Globex"]


def test_quota_remaining_reported(fake: FakeReddit, make: Factory) -> None:
    """``quota_remaining`` is ``x-ratelimit-remaining`` of the last response."""
    fake.ratelimit = RateLimit(remaining=587.0, used=13, reset=300)
    assert make(ACME).poll(None, NOW).quota_remaining == 587


def test_quota_remaining_from_recorded_headers(fake: FakeReddit, make: Factory) -> None:
    """The x-ratelimit-remaining recorded by praw in 2023 (599.0) is reported as 599."""
    fake.load_cassette(cassette("TestSubredditStreams.test_comments__with_continue_after_id.json"))
    recorded_at = datetime(2023, 10, 8, 19, 41, 17, tzinfo=UTC)
    brand = BrandConfig(name="Reddit")
    collector = make(brand, subreddits=["listener_test"], page_limit=1, lookback=timedelta(days=2))
    result = collector.poll(None, recorded_at)
    assert result.quota_remaining == 599
    assert result.notes["requests"] == 2


def test_low_quota_never_makes_prawcore_sleep(
    fake: FakeReddit, make: Factory, sleeps: list[float]
) -> None:
    """Headers under which prawcore would pace for 10 s per request cause no sleep at all."""
    fake.ratelimit = RateLimit(remaining=3.0, used=597, reset=500)
    result = make(ACME, GLOBEX, BrandConfig(name="Initech")).poll(None, NOW)
    assert len(fake.api_requests()) == 3
    assert result.quota_remaining == 3
    assert sleeps == []


def test_spent_quota_fails_fast_until_reset(
    fake: FakeReddit, make: Factory, sleeps: list[float]
) -> None:
    """Once ``remaining`` hits 0 later requests raise RateLimited unsent instead of sleeping."""
    fake.ratelimit = RateLimit(remaining=0.0, used=600, reset=120)
    collector = make(ACME)
    first = collector.poll(None, NOW)
    assert first.quota_remaining == 0

    with pytest.raises(RateLimited) as caught:
        collector.poll(first.cursor, NOW + timedelta(minutes=1))
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120
    assert len(fake.api_requests()) == 1
    assert sleeps == []


def test_revoked_token_is_replaced(fake: FakeReddit, make: Factory, sleeps: list[float]) -> None:
    """A 401 on an expired token makes praw fetch a new one once (its only, short, pause)."""
    fake.add_posts([post("Acme hello", 5)])
    collector = make(ACME)
    first = collector.poll(None, NOW)
    fake.revoke_tokens()
    second = collector.poll(first.cursor, NOW)

    assert second.errors == []
    assert fake.tokens_issued == 2
    assert all(s <= 2 for s in sleeps)


def test_registry_builds_the_reddit_collector(fake: FakeReddit) -> None:
    """``build_collector`` maps a reddit source block to a RedditCollector."""
    config = RedditSourceConfig.model_validate({"type": "reddit", "public_url": fake.url})
    collector = build_collector("reddit", config, [ACME])
    try:
        assert isinstance(collector, RedditCollector)
        assert collector.uses_api is False
    finally:
        collector.close()


# --------------------------------------------------------------------------- feed path


def test_feed_path_yields_the_api_shape_and_ids(fake: FakeReddit, make: Factory) -> None:
    """Without credentials the public search feed gives the same mentions, less engagement."""
    fake.add_posts(
        [
            post("Acme outage", 5, selftext="Nothing loads since noon.", score=9),
            post("Acme Corp! Again?", 8, author=None),
            post("Why is acme so slow", 12, selftext="It is."),
        ]
    )
    api = make(ACME).poll(None, NOW)
    feed = make(ACME, client_id=None, client_secret=None).poll(None, NOW)

    assert ids(feed) == ids(api)
    assert len(feed.mentions) == 3
    for from_feed, from_api in zip(feed.mentions, api.mentions, strict=True):
        assert from_feed == dataclasses.replace(from_api, engagement=Engagement())
    (request,) = fake.requests_for("/search.rss")
    assert request.query == {"q": simple_query(ACME), "sort": "new"}
    assert feed.backfill is True
    assert feed.notes["path"] == "feed"


def test_feed_path_subreddits_and_conditional_get(fake: FakeReddit, make: Factory) -> None:
    """Subreddit feeds are restricted to them, and an unchanged feed answers 304 with nothing."""
    fake.add_posts([post("Acme in r/acme", 5, subreddit="acme"), post("Acme elsewhere", 6)])
    collector = make(ACME, client_id=None, subreddits=["acme", "r/AcmeHelp"])
    first = collector.poll(None, NOW)
    assert [m.text for m in first.mentions] == ["Acme in r/acme"]

    second = collector.poll(first.cursor, NOW + timedelta(minutes=5))
    assert second.mentions == []
    assert second.cursor == first.cursor
    one, two = fake.requests_for("/r/acme+AcmeHelp/search.rss")
    assert one.query == {"q": simple_query(ACME), "restrict_sr": "on", "sort": "new"}
    assert (one.status, two.status) == (200, 304)
    (state,) = first.cursor["streams"].values()
    assert two.headers["if-none-match"] == state["etag"]


def test_feed_path_parses_a_real_reddit_feed(make: Factory) -> None:
    """A real Reddit Atom feed maps to fullname ids, bare handles and text without the trailer."""
    body = need_shared(
        "fixtures", "feeds", "feed-rs", "fixture", "atom", "atom_mediarss_reddit_1.xml"
    )
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=body.read_bytes(), headers={"content-type": "application/atom+xml"}
        )
    )
    now = datetime(2023, 7, 23, 18, 0, tzinfo=UTC)
    collector = make(
        ACME,
        client_id=None,
        public_url="https://www.reddit.com",
        lookback=timedelta(days=2),
        transport=transport,
    )
    result = collector.poll(None, now)

    assert result.mentions
    first = result.mentions[0]
    assert first.id == "t3_157kyrd"
    assert first.author == Author(handle="Remarkable_Housing61")
    assert first.title == "Any reason to keep 1G connections to my servers?"
    assert first.text.startswith(first.title + " Hello all, I recently acquired a 40G switch")
    assert first.text.endswith("access to all of the 1G resources.")
    assert first.url == (
        "https://www.reddit.com/r/homelab/comments/157kyrd/any_reason_to_keep_1g_connections_to_my_servers/"
    )
    assert all(re.fullmatch(r"t3_[0-9a-z]+", m.id) for m in result.mentions)
    assert not any("submitted by" in m.text for m in result.mentions)


def test_feed_path_rate_limit(fake: FakeReddit, make: Factory) -> None:
    """A 429 from the public feed becomes RateLimited with its Retry-After."""
    fake.inject(Fault.too_many_requests(retry_after=30), path="/search.rss")
    with pytest.raises(RateLimited) as caught:
        make(ACME, client_id=None).poll(None, NOW)
    assert caught.value.retry_after == 30.0
