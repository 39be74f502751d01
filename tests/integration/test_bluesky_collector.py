"""The Bluesky collector (atproto) against loopback fakes of the AppView, entryway and PDS."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from listener.collectors import build_collector
from listener.collectors.base import Cursor, PollResult
from listener.collectors.bluesky import BlueskyCollector, post_mention, search_queries
from listener.config.schema import BlueskySourceConfig, BrandConfig
from listener.errors import MalformedResponse, RateLimited, SourceRejected, SourceUnavailable
from listener.model import Author, Engagement
from tests.support.fake_social import FakeBluesky

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HANG_BOUND = 10.0
"""Seconds after which a poll that should have timed out counts as hung (not a timing test)."""
SEARCH = "/xrpc/app.bsky.feed.searchPosts"
LOGIN = "/xrpc/com.atproto.server.createSession"

ACME = BrandConfig(name="Acme", aliases=["Acme", "Acme Cloud"])
GLOBEX = BrandConfig(name="Globex", keywords=["globexpay"])


@pytest.fixture
def bsky() -> Iterator[FakeBluesky]:
    """A fresh fake per test with one account."""
    with FakeBluesky(accounts={"watcher.test": "app-pass-1234"}) as fake:
        yield fake


def config(fake: FakeBluesky, **overrides: Any) -> BlueskySourceConfig:
    values: dict[str, Any] = {
        "type": "bluesky",
        "service_url": fake.url,
        "timeout": timedelta(seconds=2),
    }
    values.update(overrides)
    return BlueskySourceConfig.model_validate(values)


def poll(
    cfg: BlueskySourceConfig,
    cursor: Cursor | None = None,
    now: datetime = NOW,
    brands: tuple[BrandConfig, ...] = (ACME,),
) -> PollResult:
    collector = BlueskyCollector("bsky", cfg, brands)
    try:
        return collector.poll(cursor, now)
    finally:
        collector.close()


def test_posts_become_mentions_without_login(bsky: FakeBluesky) -> None:
    """Posts found by an unauthenticated search are normalised into the common mention shape."""
    post = bsky.add(
        "Acme ate my order again",
        created_at=NOW - timedelta(minutes=4),
        handle="carol.bsky.social",
        display_name="Carol",
        langs=["EN", "de"],
        likes=9,
        reposts=3,
        replies=2,
        quotes=1,
    )
    result = poll(config(bsky))
    assert len(result.mentions) == 1
    mention = result.mentions[0]
    rkey = post["uri"].rsplit("/", 1)[1]
    assert mention.source == "bsky"
    assert mention.id == post["uri"]
    assert mention.url == f"https://bsky.app/profile/carol.bsky.social/post/{rkey}"
    assert mention.text == "Acme ate my order again"
    assert mention.created_at == NOW - timedelta(minutes=4)
    assert mention.language == "en"
    assert mention.author == Author(
        handle="carol.bsky.social", display_name="Carol", followers=None
    )
    assert mention.engagement == Engagement(likes=9, reposts=3, replies=2, quotes=1)
    assert result.quota_remaining == 3000 - len(bsky.requests)  # the smallest seen
    assert bsky.requests_for(LOGIN) == []
    assert all("authorization" not in r.headers for r in bsky.requests)


def test_each_term_is_one_latest_first_query_since_the_cursor(bsky: FakeBluesky) -> None:
    """Every alias and keyword is its own query (phrases quoted), newest first, since lookback."""
    bsky.add("the Acme Cloud console is down", created_at=NOW - timedelta(minutes=5))
    bsky.add("paid with globexpay today", created_at=NOW - timedelta(minutes=5))
    result = poll(config(bsky), brands=(ACME, GLOBEX))
    assert len(result.mentions) == 2
    searches = bsky.requests_for(SEARCH)
    assert [r.param("q") for r in searches] == ["Acme", '"Acme Cloud"', "Globex", "globexpay"]
    for request in searches:
        assert request.param("sort") == "latest"
        assert request.param("since") == "2026-03-02T08:00:00.000Z"
        assert request.param("limit") == "100"
        assert request.headers["user-agent"].startswith("listener/")
    assert search_queries(GLOBEX) == ["Globex", "globexpay"]


def test_first_poll_reaches_back_lookback_and_is_backfill(bsky: FakeBluesky) -> None:
    """Without a cursor the search reaches back ``lookback`` only, and is marked as backfill."""
    bsky.add("Acme long ago", created_at=NOW - timedelta(hours=2))
    bsky.add("Acme lately", created_at=NOW - timedelta(minutes=30))
    first = poll(config(bsky, lookback=timedelta(hours=1)))
    assert [m.text for m in first.mentions] == ["Acme lately"]
    assert first.backfill is True
    second = poll(config(bsky), first.cursor, NOW + timedelta(minutes=5))
    assert second.mentions == []
    assert second.backfill is False


def test_second_poll_returns_only_new_posts_including_same_instant(bsky: FakeBluesky) -> None:
    """The cursor keeps the newest instant and its URIs; later posts at that instant still come."""
    at = NOW - timedelta(minutes=10)
    first_post = bsky.add("Acme one", created_at=at)
    first = poll(config(bsky))
    assert first.cursor == {
        "brands": {"Acme": {"since": "2026-03-02T08:50:00.000000Z", "seen": [first_post["uri"]]}}
    }
    twin = bsky.add("Acme two, same instant", created_at=at)
    later = bsky.add("Acme three", created_at=NOW - timedelta(minutes=1))
    second = poll(config(bsky), first.cursor, NOW + timedelta(minutes=5))
    assert [m.id for m in second.mentions] == [later["uri"], twin["uri"]]
    assert bsky.requests_for(SEARCH)[-1].param("since") == "2026-03-02T08:50:00.000Z"
    third = poll(config(bsky), second.cursor, NOW + timedelta(minutes=10))
    assert third.mentions == []


def test_sort_time_is_the_earlier_of_created_and_indexed(bsky: FakeBluesky) -> None:
    """A post claiming a future ``createdAt`` counts at its ``indexedAt``, as the search does."""
    bsky.add(
        "Acme from the future",
        created_at=NOW + timedelta(days=30),
        indexed_at=NOW - timedelta(minutes=2),
    )
    result = poll(config(bsky))
    assert [m.created_at for m in result.mentions] == [NOW - timedelta(minutes=2)]


def test_page_limit_bounds_the_pages_per_query(bsky: FakeBluesky) -> None:
    """At most ``page_limit`` pages are read per query, following the opaque cursor."""
    for i in range(250):
        bsky.add(f"Acme post {i}", created_at=NOW - timedelta(seconds=10 + i))
    result = poll(config(bsky, page_limit=2), brands=(BrandConfig(name="Acme"),))
    assert len(result.mentions) == 200
    searches = bsky.requests_for(SEARCH)
    assert len(searches) == 2
    assert searches[0].param("cursor") is None
    assert searches[1].param("cursor") == "100"
    assert result.notes["truncated"] == 1


def test_login_follows_the_did_document_to_the_pds() -> None:
    """After login every call goes to the PDS the session's DID document names, with a bearer."""
    with FakeBluesky() as pds, FakeBluesky(accounts={"me.test": "pw"}, pds_url=pds.url) as entry:
        pds.add("Acme status page is lying", created_at=NOW - timedelta(minutes=1))
        cfg = config(entry, handle="me.test", app_password="pw")
        collector = BlueskyCollector("bsky", cfg, [ACME])
        try:
            first = collector.poll(None, NOW)
            second = collector.poll(first.cursor, NOW + timedelta(minutes=5))
        finally:
            collector.close()
        assert [m.text for m in first.mentions] == ["Acme status page is lying"]
        assert second.mentions == []
        assert [r.path for r in entry.requests] == [LOGIN]  # one login, kept between polls
        assert json.loads(entry.requests[0].body) == {"identifier": "me.test", "password": "pw"}
        searches = pds.requests_for(SEARCH)
        assert len(searches) == 4
        assert all(r.headers["authorization"].startswith("Bearer ey") for r in searches)


def test_search_that_needs_login_is_rejected_without_credentials() -> None:
    """A service refusing unauthenticated search gives SourceRejected with a hint to log in."""
    with FakeBluesky(require_auth=True, accounts={"me.test": "pw"}) as fake:
        with pytest.raises(SourceRejected, match=r"403.*set handle and app_password"):
            poll(config(fake))
        fake.add("Acme needs login", created_at=NOW - timedelta(minutes=1))
        result = poll(config(fake, handle="me.test", app_password="pw"))
        assert len(result.mentions) == 1


def test_a_refused_continuation_keeps_the_first_page() -> None:
    """When the public AppView refuses ``cursor`` without login, the first page is kept."""
    with FakeBluesky(refuse_cursor_without_auth=True) as fake:
        for i in range(150):
            fake.add(f"Acme post {i}", created_at=NOW - timedelta(seconds=10 + i))
        result = poll(config(fake), brands=(BrandConfig(name="Acme"),))
        assert len(result.mentions) == 100
        assert result.errors == []
        assert result.notes["truncated"] == 1
        assert [r.status for r in fake.requests_for(SEARCH)] == [200, 403]


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'at+jwt'})}.{part(claims)}.c2ln"


def test_login_with_the_default_service_goes_to_the_entryway() -> None:
    """With credentials and the default public AppView, login goes to bsky.social, then the PDS."""
    seen: list[httpx.Request] = []
    did = "did:plc:abcdefghijklmnopqrstuvwx"
    exp = int(time.time()) + 7200

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("createSession"):
            doc = {
                "id": did,
                "service": [
                    {
                        "id": "#atproto_pds",
                        "type": "AtprotoPersonalDataServer",
                        "serviceEndpoint": "https://pds.example",
                    }
                ],
            }
            session = {
                "accessJwt": _jwt({"sub": did, "exp": exp, "scope": "com.atproto.appPass"}),
                "refreshJwt": _jwt({"sub": did, "exp": exp, "scope": "com.atproto.refresh"}),
                "handle": "me.test",
                "did": did,
                "didDoc": doc,
            }
            return httpx.Response(200, json=session)
        return httpx.Response(200, json={"posts": []})

    cfg = BlueskySourceConfig.model_validate(
        {"type": "bluesky", "handle": "me.test", "app_password": "pw"}
    )
    assert cfg.service_url == "https://public.api.bsky.app"
    collector = BlueskyCollector("bsky", cfg, [GLOBEX], transport=httpx.MockTransport(answer))
    try:
        collector.poll(None, NOW)
    finally:
        collector.close()
    assert [(r.url.host, r.url.path.rsplit("/", 1)[1]) for r in seen] == [
        ("bsky.social", "com.atproto.server.createSession"),
        ("pds.example", "app.bsky.feed.searchPosts"),
        ("pds.example", "app.bsky.feed.searchPosts"),
    ]


def test_wrong_app_password_is_rejected_and_retried_next_poll(bsky: FakeBluesky) -> None:
    """A refused login becomes SourceRejected, and the next poll logs in again."""
    collector = BlueskyCollector(
        "bsky", config(bsky, handle="watcher.test", app_password="wrong"), [ACME]
    )
    try:
        with pytest.raises(SourceRejected, match="createSession: HTTP 401"):
            collector.poll(None, NOW)
        with pytest.raises(SourceRejected):
            collector.poll(None, NOW)
    finally:
        collector.close()
    assert len(bsky.requests_for(LOGIN)) == 2
    assert bsky.requests_for(SEARCH) == []


def test_rate_limit_raises_rate_limited_with_retry_after(bsky: FakeBluesky) -> None:
    """A 429 becomes RateLimited carrying the server's Retry-After."""
    bsky.fail("rate_limit", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        poll(config(bsky))
    assert caught.value.retry_after == 7


def test_rate_limit_reset_header_gives_retry_after(bsky: FakeBluesky) -> None:
    """Without Retry-After, Bluesky's RateLimit-Reset epoch gives the wait."""
    bsky.fail("rate_limit", retry_after=90, retry_after_header=False)
    with pytest.raises(RateLimited) as caught:
        poll(config(bsky))
    assert caught.value.retry_after == pytest.approx(90, abs=5)


def test_server_error_raises_source_unavailable(bsky: FakeBluesky) -> None:
    """A 500 becomes SourceUnavailable."""
    bsky.fail("server_error")
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        poll(config(bsky))


def test_stall_beyond_the_timeout_raises_source_unavailable(bsky: FakeBluesky) -> None:
    """A stalled search makes the poll fail within its timeout instead of hanging."""
    bsky.fail("stall", stall=HANG_BOUND * 2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        poll(config(bsky, timeout=timedelta(seconds=0.3)))
    assert time.monotonic() - started < HANG_BOUND


def test_truncated_json_raises_malformed_response(bsky: FakeBluesky) -> None:
    """A cut-off JSON body becomes MalformedResponse."""
    bsky.add("Acme cut short", created_at=NOW - timedelta(minutes=1))
    bsky.fail("truncated")
    with pytest.raises(MalformedResponse):
        poll(config(bsky), brands=(BrandConfig(name="Acme"),))


def test_oversized_answer_raises_malformed_response(bsky: FakeBluesky) -> None:
    """An answer larger than ``max_bytes`` is refused."""
    for i in range(10):
        bsky.add(f"Acme {i} " + "x" * 300, created_at=NOW - timedelta(minutes=1))
    with pytest.raises(MalformedResponse, match="exceeds"):
        poll(config(bsky, max_bytes=2048))


def test_one_malformed_brand_is_a_partial_failure(bsky: FakeBluesky) -> None:
    """A malformed answer for one brand is reported beside the other brands' mentions."""
    post = bsky.add("globexpay refund", created_at=NOW - timedelta(minutes=1))
    previous = {"brands": {"Acme": {"since": "2026-03-02T08:30:00.000000Z", "seen": []}}}
    bsky.fail("truncated")  # Acme's first query
    result = poll(config(bsky), previous, brands=(ACME, GLOBEX))
    assert [m.id for m in result.mentions] == [post["uri"]]
    assert len(result.errors) == 1
    assert isinstance(result.errors[0], MalformedResponse)
    assert result.cursor["brands"]["Acme"] == previous["brands"]["Acme"]


def test_a_given_transport_carries_the_requests() -> None:
    """The ``transport`` argument replaces the network (httpx transports work)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"posts": []})

    cfg = BlueskySourceConfig.model_validate(
        {"type": "bluesky", "service_url": "https://appview.example"}
    )
    collector = BlueskyCollector("bsky", cfg, [ACME], transport=httpx.MockTransport(answer))
    try:
        assert collector.poll(None, NOW).mentions == []
    finally:
        collector.close()
    assert [r.url.host for r in seen] == ["appview.example", "appview.example"]
    assert seen[0].url.path == "/xrpc/app.bsky.feed.searchPosts"


def test_post_without_uri_or_time_is_skipped() -> None:
    """A post lacking a URI or a usable time yields no mention; an invalid handle gives the DID."""
    assert post_mention("bsky", {"record": {"createdAt": "2026-03-02T08:00:00Z"}}) is None
    assert (
        post_mention("bsky", {"uri": "at://did:plc:x/app.bsky.feed.post/1", "record": {}}) is None
    )
    mention = post_mention(
        "bsky",
        {
            "uri": "at://did:plc:abc/app.bsky.feed.post/3k",
            "author": {"handle": "handle.invalid"},
            "record": {"text": "hi", "createdAt": "2026-03-02T08:00:00Z"},
        },
    )
    assert mention is not None
    assert mention.url == "https://bsky.app/profile/did:plc:abc/post/3k"


def test_registry_builds_the_collector(bsky: FakeBluesky) -> None:
    """``build_collector`` maps a bluesky source to BlueskyCollector."""
    collector = build_collector("bsky", config(bsky), [ACME])
    try:
        assert isinstance(collector, BlueskyCollector)
    finally:
        collector.close()
