"""The X/Twitter collector through the real tweepy Client against the loopback fake X API."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from listener.collectors import build_collector
from listener.collectors.base import PollResult
from listener.collectors.fetch import DEFAULT_USER_AGENT
from listener.collectors.requests_http import GuardedAdapter
from listener.collectors.twitter import TwitterCollector, build_queries
from listener.config.schema import BrandConfig, TwitterSourceConfig
from listener.errors import (
    CollectorError,
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.model import Author, Engagement, Mention
from listener.retry_after import MAX_RETRY_AFTER
from tests.conftest import need_shared
from tests.support.fake_x import DEFAULT_TOKEN, FakeX, Fault, TweetSpec, load_search_pages

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HANG_BOUND = 10.0
"""Seconds after which a poll that should have timed out counts as hung (not a timing test)."""
ACME = BrandConfig(name="Acme", aliases=["Acme", "Acme Corp"], handles=["acme"])
GLOBEX = BrandConfig(name="Globex", exclusions=["globex corporation"])
SEARCH = "/2/tweets/search/recent"
NEWEST_RECORDED = "1440717170493689866"
"""``meta.newest_id`` of kpop.jsonl, the newest tweet of the recorded search chain."""
TWITTER_ID = "783214"


@pytest.fixture
def fake() -> Iterator[FakeX]:
    """A fresh fake X API serving the recorded pages."""
    need_shared("fixtures", "tweepy")
    with FakeX() as running:
        yield running


@pytest.fixture
def empty_fake() -> Iterator[FakeX]:
    """A fresh fake X API with no recorded tweets."""
    with FakeX(recorded=False) as running:
        yield running


def config(fake: FakeX, **overrides: Any) -> TwitterSourceConfig:
    values: dict[str, Any] = {
        "type": "twitter",
        "bearer_token": DEFAULT_TOKEN,
        "api_url": fake.url,
        "timeout": timedelta(seconds=2),
    }
    values.update(overrides)
    return TwitterSourceConfig.model_validate(values)


def collector(
    fake: FakeX, brand_list: list[BrandConfig] | None = None, **overrides: Any
) -> TwitterCollector:
    watched = [ACME] if brand_list is None else brand_list
    return TwitterCollector("x", config(fake, **overrides), watched)


def poll(
    fake: FakeX,
    cursor: dict[str, Any] | None = None,
    *,
    now: datetime = NOW,
    brand_list: list[BrandConfig] | None = None,
    **overrides: Any,
) -> PollResult:
    c = collector(fake, brand_list, **overrides)
    try:
        return c.poll(cursor, now)
    finally:
        c.close()


def poll_error(fake: FakeX, **overrides: Any) -> CollectorError:
    with pytest.raises(CollectorError) as caught:
        poll(fake, **overrides)
    return caught.value


def recorded_tweets() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every tweet of the recorded search chain and the users its pages include."""
    pages = load_search_pages()
    tweets = [t for p in pages for t in p["data"]]
    users = {u["id"]: u for p in pages for u in p["includes"]["users"]}
    return tweets, users


# --------------------------------------------------------------------------- normalising


def test_first_poll_normalises_recorded_pages(fake: FakeX) -> None:
    """A first poll follows the recorded chain and turns every tweet into a Mention with
    its author joined from includes.users, engagement, language and UTC time."""
    result = poll(fake)
    tweets, users = recorded_tweets()
    by_id = {m.id: m for m in result.mentions}
    assert [m.id for m in result.mentions] == [t["id"] for t in tweets]
    for tweet in tweets:
        m = by_id[tweet["id"]]
        user = users[tweet["author_id"]]
        metrics = tweet["public_metrics"]
        assert m.source == "x"
        assert m.url == f"https://x.com/{user['username']}/status/{tweet['id']}"
        assert m.author == Author(
            handle=user["username"],
            display_name=user["name"],
            followers=user["public_metrics"]["followers_count"],
        )
        assert m.engagement == Engagement(
            likes=metrics["like_count"],
            reposts=metrics["retweet_count"],
            replies=metrics["reply_count"],
            quotes=metrics["quote_count"],
        )
        assert m.created_at == datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00"))
        assert m.created_at.tzinfo == UTC
        retweeted = [
            r["id"] for r in tweet.get("referenced_tweets", []) if r["type"] == "retweeted"
        ]
        assert m.is_repost == bool(retweeted)
        assert m.reposted_id == (retweeted[0] if retweeted else None)
        assert m.text.startswith("RT @") if retweeted else m.text == tweet["text"]


def test_spot_checks_of_recorded_tweets(fake: FakeX) -> None:
    """Known recorded tweets come out as expected: an original, a retweet, an undetermined
    language and a quote (an original voice, not a repost)."""
    by_id = {m.id: m for m in poll(fake).mentions}
    original = by_id["1440716895355764743"]
    assert original.author == Author(
        "WarmongerHodges", "Frank Owen's Legendary Paintbrush 🟨🟥🥀🇵🇸", 34920
    )
    assert original.language == "en"
    assert original.created_at == datetime(2021, 9, 22, 16, 37, 29, tzinfo=UTC)
    assert original.text.startswith("The same Labour MPs")
    assert not original.is_repost
    retweet = by_id["1394735776701816833"]
    assert retweet.is_repost
    assert retweet.reposted_id == "1391677057810288641"
    assert retweet.language is None  # "und"
    assert retweet.author.handle == "LachiVeronica"
    tweets, _ = recorded_tweets()
    quote = next(
        t for t in tweets if [r["type"] for r in t.get("referenced_tweets", [])] == ["quoted"]
    )
    assert not by_id[quote["id"]].is_repost
    assert by_id[quote["id"]].reposted_id is None


def test_truncated_retweet_text_is_completed_from_includes(fake: FakeX) -> None:
    """A retweet whose text X cut with an ellipsis gets the original's full text."""
    tweets, users = recorded_tweets()
    included = {t["id"]: t for p in load_search_pages() for t in p["includes"].get("tweets", [])}
    cut = next(
        t
        for t in tweets
        if t["text"].endswith("…")
        and any(
            r["type"] == "retweeted" and r["id"] in included for r in t.get("referenced_tweets", [])
        )
    )
    original = included[cut["referenced_tweets"][0]["id"]]
    by_id = {m.id: m for m in poll(fake).mentions}
    author = users[original["author_id"]]["username"]
    assert by_id[cut["id"]].text == f"RT @{author}: {original['text']}"


def test_mentions_have_the_shared_field_shapes(fake: FakeX) -> None:
    """Every Mention has the field types all collectors share and survives a JSON round trip."""
    result = poll(fake, mentions_of=["Twitter"])
    assert result.mentions
    for m in result.mentions:
        assert isinstance(m.id, str)
        assert m.id.isdigit()
        assert m.source == "x"
        assert isinstance(m.text, str)
        assert m.text
        assert m.url is not None
        assert m.url.startswith("https://x.com/")
        assert m.url.endswith(m.id)
        assert isinstance(m.author, Author)
        assert m.author.followers is None or isinstance(m.author.followers, int)
        assert m.language is None or (isinstance(m.language, str) and m.language.islower())
        assert m.created_at.tzinfo == UTC
        assert isinstance(m.engagement, Engagement)
        assert m.engagement.upvotes is None
        assert m.engagement.comments is None
        assert m.is_repost == (m.reposted_id is not None)
        assert m.title is None
        assert Mention.from_dict(m.to_dict()) == m


def test_recorded_pages_raise_no_warning(fake: FakeX) -> None:
    """Pre-2022 pages without edit_history_tweet_ids emit no warning at all."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        poll(fake, mentions_of=["Twitter"])
    assert [str(w.message) for w in caught] == []


# --------------------------------------------------------------------------- cursor


def test_first_poll_sends_start_time_and_is_backfill(fake: FakeX) -> None:
    """Without a cursor the query reaches back lookback (start_time), sends no since_id,
    and the result is marked backfill."""
    result = poll(fake, lookback=timedelta(minutes=30))
    first = fake.requests_for("search")[0]
    assert first.params["start_time"] == "2026-03-02T08:30:00Z"
    assert "since_id" not in first.params
    assert first.params["query"] == '(Acme OR "Acme Corp" OR @acme)'
    assert result.backfill


def test_request_asks_for_expansions_and_fields(fake: FakeX) -> None:
    """Each search asks for author and referenced-tweet expansions and the needed fields."""
    poll(fake, max_results=50)
    params = fake.requests_for("search")[0].params
    assert params["expansions"] == "author_id,referenced_tweets.id,referenced_tweets.id.author_id"
    assert params["tweet.fields"] == (
        "created_at,lang,public_metrics,referenced_tweets,author_id,conversation_id,entities"
    )
    assert params["user.fields"] == "username,name,public_metrics,verified"
    assert params["max_results"] == "50"
    assert fake.requests_for("search")[0].headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert fake.requests_for("search")[0].headers["user-agent"] == DEFAULT_USER_AGENT


def test_configured_user_agent_is_sent(fake: FakeX) -> None:
    """A source's user_agent replaces tweepy's own."""
    poll(fake, user_agent="acme-listener/2.0", page_limit=1)
    assert fake.requests_for("search")[0].headers["user-agent"] == "acme-listener/2.0"


def test_cursor_holds_since_id_per_query(fake: FakeX) -> None:
    """The cursor keeps the newest returned id under each query."""
    result = poll(fake, brand_list=[ACME, GLOBEX])
    queries = build_queries(ACME, max_length=512) + build_queries(GLOBEX, max_length=512)
    assert result.cursor == {
        "queries": {q: {"since_id": NEWEST_RECORDED} for q in queries},
        "mentions": {},
    }


def test_second_poll_sends_since_id_and_returns_only_new(fake: FakeX) -> None:
    """The next poll sends since_id from the cursor and returns only the tweets added
    since, not as backfill."""
    c = collector(fake)
    try:
        first = c.poll(None, NOW)
        page = fake.add_search_tweets(
            TweetSpec("Acme lost my parcel again", username="angry1", created_at=NOW),
            TweetSpec("Never buying Acme again", username="angry2", created_at=NOW, likes=3),
        )
        before = len(fake.requests)
        second = c.poll(first.cursor, NOW + timedelta(minutes=2))
    finally:
        c.close()
    sent = fake.requests[before:]
    assert [r.params.get("since_id") for r in sent] == [NEWEST_RECORDED]
    assert all("start_time" not in r.params for r in sent)
    assert [m.id for m in second.mentions] == [t["id"] for t in page["data"]]
    assert {m.author.handle for m in second.mentions} == {"angry1", "angry2"}
    assert not second.backfill
    query = '(Acme OR "Acme Corp" OR @acme)'
    assert second.cursor["queries"][query]["since_id"] == page["meta"]["newest_id"]


def test_nothing_new_keeps_the_cursor(fake: FakeX) -> None:
    """A poll that finds nothing returns no mentions and leaves since_id where it was."""
    first = poll(fake)
    second = poll(fake, first.cursor, now=NOW + timedelta(minutes=2))
    assert second.mentions == []
    assert second.cursor == first.cursor
    assert not second.backfill


def test_empty_first_poll_remembers_its_start_time(empty_fake: FakeX) -> None:
    """A first poll that finds nothing stores its start_time; the next poll asks from there
    and what it finds is not backfill."""
    first = poll(empty_fake, lookback=timedelta(hours=1))
    assert first.mentions == []
    assert not first.backfill
    query = '(Acme OR "Acme Corp" OR @acme)'
    assert first.cursor["queries"][query] == {"start_time": "2026-03-02T08:00:00Z"}
    empty_fake.add_search_tweets(TweetSpec("Acme is down", created_at=NOW))
    second = poll(empty_fake, first.cursor, now=NOW + timedelta(minutes=2))
    assert empty_fake.requests_for("search")[-1].params["start_time"] == "2026-03-02T08:00:00Z"
    assert [m.text for m in second.mentions] == ["Acme is down"]
    assert not second.backfill


def test_start_time_stays_inside_the_recent_search_window(empty_fake: FakeX) -> None:
    """A lookback beyond recent search's seven days is clamped instead of being rejected."""
    poll(empty_fake, lookback=timedelta(days=30))
    sent = empty_fake.requests_for("search")[0].params["start_time"]
    assert sent == "2026-02-23T09:01:00Z"


def test_unusable_cursor_is_a_first_poll(fake: FakeX) -> None:
    """A cursor of the wrong shape is ignored rather than crashing the poll."""
    result = poll(fake, {"queries": ["nonsense"], "mentions": {"x": 5}})
    assert result.backfill
    assert "since_id" not in fake.requests_for("search")[0].params


def test_page_limit_bounds_pages(fake: FakeX) -> None:
    """At most page_limit pages are fetched per query; since_id covers what was returned."""
    result = poll(fake, page_limit=2)
    sent = fake.requests_for("search")
    assert len(sent) == 2
    assert "next_token" in sent[1].params
    assert len(result.mentions) == 200
    assert result.notes["truncated"] == 1
    assert result.cursor["queries"]['(Acme OR "Acme Corp" OR @acme)'] == {
        "since_id": NEWEST_RECORDED
    }


def test_same_tweet_from_two_queries_is_returned_once(fake: FakeX) -> None:
    """Tweets found by several queries appear once in the result."""
    result = poll(fake, brand_list=[ACME, GLOBEX])
    assert len(result.mentions) == len({m.id for m in result.mentions}) == 201


def test_exclude_retweets_and_languages_reach_the_api(fake: FakeX) -> None:
    """The configured filters are part of the query sent."""
    poll(fake, exclude_retweets=True, languages=["en", "es"], page_limit=1)
    assert fake.requests_for("search")[0].params["query"] == (
        '(Acme OR "Acme Corp" OR @acme) -is:retweet (lang:en OR lang:es)'
    )


def test_search_can_be_turned_off(fake: FakeX) -> None:
    """search: false polls only the mentions timelines."""
    poll(fake, search=False, mentions_of=["Twitter"])
    assert fake.requests_for("search") == []
    assert len(fake.requests_for("mentions")) == 2


# --------------------------------------------------------------------------- mentions


def test_mentions_timeline(fake: FakeX) -> None:
    """mentions_of resolves the user once, caches the id and polls its mentions since the
    newest one seen."""
    c = collector(fake, search=False, mentions_of=["@Twitter"])
    try:
        first = c.poll(None, NOW)
        second = c.poll(first.cursor, NOW + timedelta(minutes=2))
    finally:
        c.close()
    assert len(fake.requests_for("user")) == 1
    assert fake.requests_for("user")[0].path == "/2/users/by/username/Twitter"
    assert len(first.mentions) == 10
    assert first.mentions[0].id == "1578516295611748353"
    assert first.mentions[0].text.startswith("@Twitter @TwitterSupport")
    assert first.mentions[0].url == "https://x.com/i/web/status/1578516295611748353"
    assert first.mentions[0].created_at == NOW  # the cassette has no created_at
    assert first.backfill
    assert first.cursor["mentions"] == {
        "Twitter": {"user_id": TWITTER_ID, "since_id": "1578516295611748353"}
    }
    mentions = fake.requests_for("mentions")
    assert mentions[0].path == f"/2/users/{TWITTER_ID}/mentions"
    assert mentions[0].params["start_time"] == "2026-03-02T08:00:00Z"
    assert mentions[-1].params["since_id"] == "1578516295611748353"
    assert second.mentions == []
    assert second.cursor == first.cursor


def test_injected_mentions(fake: FakeX) -> None:
    """Mentions pages set on the fake for a user added to it are collected."""
    uid = fake.add_user("AcmeSupport")
    fake.set_mentions_pages(uid, [fake.page(TweetSpec("@AcmeSupport help!", created_at=NOW))])
    result = poll(fake, search=False, mentions_of=["acmesupport"])
    assert [m.text for m in result.mentions] == ["@AcmeSupport help!"]
    assert result.cursor["mentions"]["acmesupport"]["user_id"] == uid


def test_unknown_user_is_rejected(fake: FakeX) -> None:
    """A mentions_of user X cannot find is SourceRejected naming the user."""
    error = poll_error(fake, search=False, mentions_of=["nobody_here_123"])
    assert isinstance(error, SourceRejected)
    assert "nobody_here_123" in str(error)


def test_one_failing_unit_is_a_partial_error(fake: FakeX) -> None:
    """An unknown user beside a working search is reported in errors, not raised."""
    result = poll(fake, mentions_of=["nobody_here_123"], page_limit=1)
    assert len(result.mentions) == 100
    assert [type(e) for e in result.errors] == [SourceRejected]
    assert "nobody_here_123" not in result.cursor["mentions"]


# --------------------------------------------------------------------------- errors


def test_429_with_reset_is_rate_limited_after_one_request(fake: FakeX) -> None:
    """A 429 with x-rate-limit-reset is RateLimited(retry_after = reset - now) and no
    request is retried (no busy loop)."""
    fake.fail(Fault.rate_limited(reset=int(NOW.timestamp()) + 60), times=None)
    error = poll_error(fake)
    assert isinstance(error, RateLimited)
    assert error.retry_after == pytest.approx(60.0)
    assert len(fake.requests) == 1


def test_429_without_reset_is_rate_limited_after_one_request(fake: FakeX) -> None:
    """A 429 without x-rate-limit-reset is RateLimited(retry_after=None) after one request."""
    fake.fail(Fault.rate_limited(reset=None), times=None)
    error = poll_error(fake)
    assert isinstance(error, RateLimited)
    assert error.retry_after is None
    assert len(fake.requests) == 1


def test_429_with_a_reset_far_in_the_future_waits_at_most_the_cap(fake: FakeX) -> None:
    """An x-rate-limit-reset thousands of years ahead is clamped to MAX_RETRY_AFTER."""
    fake.fail(Fault.rate_limited(reset=10**15))
    error = poll_error(fake)
    assert isinstance(error, RateLimited)
    assert error.retry_after == MAX_RETRY_AFTER


def test_429_stops_the_poll(fake: FakeX) -> None:
    """After a 429 no further query is sent in the same poll."""
    fake.fail(Fault.rate_limited(reset=int(NOW.timestamp()) + 60), times=None)
    error = poll_error(fake, brand_list=[ACME, GLOBEX], mentions_of=["Twitter"])
    assert isinstance(error, RateLimited)
    assert len(fake.requests) == 1


def test_429_after_some_success_keeps_what_was_found(fake: FakeX) -> None:
    """A 429 on the mentions timeline after a successful search returns the search's
    mentions with RateLimited in errors; the failed unit keeps its old cursor."""
    fake.fail(Fault.rate_limited(reset=int(NOW.timestamp()) + 60), endpoint="user")
    result = poll(fake, mentions_of=["Twitter"], page_limit=1)
    assert len(result.mentions) == 100
    assert [type(e) for e in result.errors] == [RateLimited]
    assert result.cursor["mentions"] == {}


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_is_unavailable(fake: FakeX, status: int) -> None:
    """A 5xx is SourceUnavailable."""
    fake.fail(Fault.server_error(status))
    error = poll_error(fake)
    assert isinstance(error, SourceUnavailable)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("after_bytes", [None, 10])
def test_stall_beyond_timeout_is_unavailable(fake: FakeX, after_bytes: int | None) -> None:
    """A server that stalls (before the headers or mid-body) past the timeout is
    SourceUnavailable instead of hanging tweepy."""
    fake.fail(Fault.stall(20.0, after_bytes=after_bytes))
    started = time.monotonic()
    error = poll_error(fake, timeout=timedelta(seconds=0.5))
    assert isinstance(error, SourceUnavailable)
    assert time.monotonic() - started < HANG_BOUND


def test_truncated_json_is_malformed(fake: FakeX) -> None:
    """A page cut in the middle of its JSON is MalformedResponse."""
    fake.fail(Fault.truncated_json())
    assert isinstance(poll_error(fake), MalformedResponse)


@pytest.mark.parametrize("declare_length", [True, False])
def test_oversized_body_is_malformed(fake: FakeX, declare_length: bool) -> None:
    """A body over max_bytes (declared or streamed) is MalformedResponse."""
    fake.fail(Fault.oversized(2 * 2**20, declare_length=declare_length))
    error = poll_error(fake, max_bytes=2**20)
    assert isinstance(error, MalformedResponse)


def test_json_that_is_not_an_object_is_malformed(fake: FakeX) -> None:
    """A JSON answer of the wrong shape is MalformedResponse, not a crash."""
    fake.fail(Fault.answer(200, b"[1, 2, 3]"))
    assert isinstance(poll_error(fake), MalformedResponse)


def test_wrong_token_is_rejected_after_one_request(fake: FakeX) -> None:
    """A wrong bearer token is SourceRejected and stops the poll."""
    error = poll_error(
        fake, bearer_token="wrong", brand_list=[ACME, GLOBEX], mentions_of=["Twitter"]
    )
    assert isinstance(error, SourceRejected)
    assert [r.status for r in fake.requests] == [401]


def test_bad_request_is_rejected(fake: FakeX) -> None:
    """A 400 (e.g. an invalid query) is SourceRejected."""
    fake.fail(Fault.answer(400, {"title": "Invalid Request", "detail": "bad query"}))
    assert isinstance(poll_error(fake), SourceRejected)


def test_connection_refused_is_unavailable() -> None:
    """Nothing listening on api_url is SourceUnavailable."""
    with FakeX(recorded=False) as gone:
        url = gone.url
    cfg = TwitterSourceConfig.model_validate(
        {"type": "twitter", "bearer_token": "t", "api_url": url, "timeout": timedelta(seconds=2)}
    )
    c = TwitterCollector("x", cfg, [ACME])
    try:
        with pytest.raises(SourceUnavailable):
            c.poll(None, NOW)
    finally:
        c.close()


# --------------------------------------------------------------------------- quota, wiring


def test_quota_remaining_is_reported(fake: FakeX) -> None:
    """quota_remaining comes from the x-rate-limit-remaining header of the answers."""
    fake.set_quota("search", remaining=42)
    result = poll(fake, page_limit=1)
    assert result.quota_remaining == 42


def test_quota_remaining_is_the_tightest_bucket(fake: FakeX) -> None:
    """With several endpoints polled, quota_remaining is the smallest remaining count."""
    fake.set_quota("search", remaining=400)
    fake.set_quota("mentions", remaining=7)
    result = poll(fake, page_limit=1, mentions_of=["Twitter"])
    assert result.quota_remaining == 7


def test_registry_builds_the_collector(fake: FakeX) -> None:
    """build_collector builds a TwitterCollector for a twitter source."""
    built = build_collector("x", config(fake), [ACME])
    try:
        assert isinstance(built, TwitterCollector)
        assert built.poll(None, NOW).mentions
    finally:
        built.close()


def test_session_is_guarded_for_both_api_hosts(fake: FakeX) -> None:
    """The client's session has the guard adapter for api.twitter.com and api.x.com, and
    session_hook sees it."""
    seen: list[requests.Session] = []
    c = TwitterCollector("x", config(fake), [ACME], session_hook=seen.append)
    try:
        session = seen[0]
        for host in ("api.twitter.com", "api.x.com"):
            adapter = session.get_adapter(f"https://{host}/2/tweets/search/recent")
            assert isinstance(adapter, GuardedAdapter)
            assert adapter.base is not None
            assert adapter.base.netloc.startswith("127.0.0.1:")
            assert adapter.timeout == 2.0
    finally:
        c.close()


def test_real_api_url_keeps_the_host() -> None:
    """With the default api_url the adapter only imposes timeout and byte cap."""
    seen: list[requests.Session] = []
    cfg = TwitterSourceConfig.model_validate({"type": "twitter", "bearer_token": "t"})
    c = TwitterCollector("x", cfg, [ACME], session_hook=seen.append)
    try:
        adapter = seen[0].get_adapter("https://api.twitter.com/2/tweets/search/recent")
        assert isinstance(adapter, GuardedAdapter)
        assert adapter.base is None
        assert adapter.max_bytes == cfg.max_bytes
    finally:
        c.close()


def test_source_brands_select_the_queries(fake: FakeX) -> None:
    """A source's brands list limits the queries to those brands."""
    c = collector(fake, [ACME, GLOBEX], brands=["Globex"])
    try:
        assert c.queries == build_queries(GLOBEX, max_length=512)
    finally:
        c.close()


def test_unfittable_term_fails_construction(fake: FakeX) -> None:
    """A brand term longer than max_query_length makes the collector fail to build."""
    long_brand = BrandConfig(name="Acme", keywords=["k" * 80])
    with pytest.raises(ValueError, match="k" * 80):
        TwitterCollector("x", config(fake, max_query_length=64), [long_brand])
