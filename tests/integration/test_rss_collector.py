"""The RSS collector against a loopback HTTP server: fixtures, HTTP semantics and errors."""

from __future__ import annotations

import codecs
import re
import socket
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from listener.collectors import RssCollector, build_collector
from listener.collectors.base import PollResult
from listener.collectors.fetch import HttpFetcher
from listener.collectors.rss import feed_key
from listener.config.schema import BrandConfig, RssSourceConfig
from listener.errors import (
    CollectorError,
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.store import Store
from tests.conftest import SHARED, need_shared
from tests.support.feed_server import FeedServer, Route

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HANG_BOUND = 10.0
"""Seconds after which a poll that should have timed out counts as hung (not a timing test)."""

FEED_ROOT = SHARED / "fixtures" / "feeds"
FEED_FILES = sorted(FEED_ROOT.rglob("*.xml")) if FEED_ROOT.is_dir() else []
HEADER_LINE = re.compile(r"^Header:\s+([^:]+):(.*)$", re.MULTILINE)
EXPECT_LINE = re.compile(r"^Expect:\s*(.*)$", re.MULTILINE)
EMPTY_DOCUMENT = "feedparser/illformed/rss_empty_document.xml"


def feed(*items: tuple[str, str], link: str = "http://example.test/") -> bytes:
    """A small RSS 2.0 document with ``(guid, title)`` items."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>{link}{guid}</link></item>"
        for guid, title in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>{link}</link>{body}</channel></rss>"
    ).encode()


def config(*urls: str, **overrides: object) -> RssSourceConfig:
    values: dict[str, object] = {"type": "rss", "urls": list(urls), "timeout": timedelta(seconds=2)}
    values.update(overrides)
    return RssSourceConfig.model_validate(values)


def poll(cfg: RssSourceConfig, cursor: dict[str, object] | None = None) -> PollResult:
    collector = RssCollector("news", cfg)
    try:
        return collector.poll(cursor, NOW)
    finally:
        collector.close()


def poll_error(cfg: RssSourceConfig) -> CollectorError:
    with pytest.raises(CollectorError) as caught:
        poll(cfg)
    return caught.value


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A fresh loopback server per test."""
    with FeedServer() as running:
        yield running


@pytest.fixture(scope="module")
def fixture_server() -> Iterator[FeedServer]:
    """One loopback server serving every shared feed fixture under its relative path."""
    with FeedServer() as running:
        for path in FEED_FILES:
            raw = path.read_bytes()
            text = decode_by_bom(raw)
            headers = {name.strip(): value.strip() for name, value in HEADER_LINE.findall(text)}
            content_type = next(
                (v for k, v in headers.items() if k.lower() == "content-type"), "application/xml"
            )
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            running.route(
                "/" + path.relative_to(FEED_ROOT).as_posix(),
                body=raw,
                headers=headers,
                content_type=content_type,
            )
        yield running


def decode_by_bom(raw: bytes) -> str:
    """Fixture text for reading its comment: UTF-16 by BOM, else UTF-8 ignoring errors."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    return raw.decode("utf-8", errors="ignore")


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize(
    "path",
    FEED_FILES or [None],
    ids=lambda p: p.relative_to(FEED_ROOT).as_posix() if isinstance(p, Path) else "missing",
)
def test_every_shared_feed_is_parsed_or_rejected(
    path: Path | None, fixture_server: FeedServer
) -> None:
    """Each shared feed fixture, served with its own headers, yields valid mentions or a
    CollectorError; feeds that feedparser's oracle calls well-formed must not be rejected."""
    need_shared("fixtures", "feeds")
    assert path is not None
    relative = path.relative_to(FEED_ROOT).as_posix()
    expect = EXPECT_LINE.search(decode_by_bom(path.read_bytes()))
    cfg = config(fixture_server.url("/" + relative))

    outcome: PollResult | CollectorError
    try:
        outcome = poll(cfg)
    except CollectorError as error:
        outcome = error

    if isinstance(outcome, CollectorError):
        well_formed = expect is not None and expect.group(1).strip().startswith("not bozo")
        assert not well_formed, outcome
        if relative == EMPTY_DOCUMENT:
            assert isinstance(outcome, MalformedResponse)
        return
    result = outcome
    assert relative != EMPTY_DOCUMENT
    assert result.errors == []
    for mention in result.mentions:
        assert mention.source == "news"
        assert mention.id.strip()
        assert isinstance(mention.text, str)
        assert mention.created_at.tzinfo is not None
        assert mention.created_at.utcoffset() == timedelta(0)


def test_real_feeds_yield_their_entries(fixture_server: FeedServer) -> None:
    """A real-world feed gives every entry with its own id (not resolved against the feed
    URL), text and an absolute link."""
    need_shared("fixtures", "feeds", "feed-rs")
    result = poll(config(fixture_server.url("/feed-rs/fixture/atom/atom_mediarss_reddit_1.xml")))

    assert len(result.mentions) == 25
    assert len({m.id for m in result.mentions}) == 25
    assert all(m.id.startswith("t3_") for m in result.mentions)
    assert all(m.text and m.url and m.url.startswith("https://") for m in result.mentions)


def test_utf16_feed_is_accepted(fixture_server: FeedServer) -> None:
    """The UTF-16 (BOM) fixture is decoded rather than rejected."""
    need_shared("fixtures", "feeds", "feedparser")
    result = poll(config(fixture_server.url("/feedparser/encoding/utf-16le-bom.xml")))

    assert result.errors == []


# --------------------------------------------------------------------------- HTTP semantics


def test_conditional_get_gets_304_and_keeps_the_cursor(server: FeedServer) -> None:
    """The second poll sends the stored validators, gets 304, returns nothing, keeps the cursor."""
    last_modified = "Mon, 02 Mar 2026 08:00:00 GMT"
    server.route("/feed", body=feed(("urn:1", "one")), etag='"v1"', last_modified=last_modified)
    url = server.url("/feed")
    cfg = config(url)

    first = poll(cfg)
    second = poll(cfg, first.cursor)

    assert [m.id for m in first.mentions] == ["urn:1"]
    assert first.cursor == {
        "feeds": {
            feed_key(url): {
                "etag": '"v1"',
                "modified": last_modified,
                "href": url,
                "polled_at": NOW.timestamp(),
            }
        }
    }
    request = server.requests_for("/feed")[1]
    assert request.headers["if-none-match"] == '"v1"'
    assert request.headers["if-modified-since"] == last_modified
    assert request.status == 304
    assert second.mentions == []
    assert second.errors == []
    assert second.cursor == first.cursor


def test_last_modified_alone_gives_304(server: FeedServer) -> None:
    """A feed with only Last-Modified is also fetched conditionally."""
    stamp = "Sun, 01 Mar 2026 00:00:00 GMT"
    server.route("/feed", body=feed(("urn:1", "one")), last_modified=stamp)
    cfg = config(server.url("/feed"))

    first = poll(cfg)
    second = poll(cfg, first.cursor)

    assert "if-none-match" not in server.requests_for("/feed")[1].headers
    assert server.requests_for("/feed")[1].status == 304
    assert second.mentions == []


def test_changed_feed_is_fetched_again_with_new_validators(server: FeedServer) -> None:
    """When the body and ETag change at run time, the next poll returns the entries and new ETag."""
    server.route("/feed", body=feed(("urn:1", "one")), etag='"v1"')
    url = server.url("/feed")
    cfg = config(url)
    first = poll(cfg)

    server.set_body("/feed", feed(("urn:1", "one"), ("urn:2", "two")), etag='"v2"')
    second = poll(cfg, first.cursor)

    assert [m.id for m in second.mentions] == ["urn:1", "urn:2"]
    assert second.cursor["feeds"][feed_key(url)]["etag"] == '"v2"'


def test_user_agent_and_accept_headers_are_sent(server: FeedServer) -> None:
    """The configured User-Agent and a feed Accept header go out with every request."""
    server.route("/feed", body=feed(("urn:1", "one")))

    poll(config(server.url("/feed"), user_agent="acme-listener/1.0 (+ops@acme.test)"))

    [request] = server.requests_for("/feed")
    assert request.headers["user-agent"] == "acme-listener/1.0 (+ops@acme.test)"
    assert "application/rss+xml" in request.headers["accept"]


def test_gzip_body_is_decoded_and_parsed(server: FeedServer) -> None:
    """A gzip-encoded response is decompressed before parsing."""
    server.route("/feed", body=feed(("urn:1", "zipped")), gzip=True)

    result = poll(config(server.url("/feed")))

    [request] = server.requests_for("/feed")
    assert "gzip" in request.headers["accept-encoding"]
    assert request.response_headers["content-encoding"] == "gzip"
    assert [m.title for m in result.mentions] == ["zipped"]


def test_relative_content_location_is_the_base_for_links(server: FeedServer) -> None:
    """A relative Content-Location header is resolved against the feed URL and used as base."""
    body = (
        b'<rss version="2.0"><channel><title>T</title>'
        b"<item><guid>7</guid><title>t</title><link>posts/7</link></item></channel></rss>"
    )
    server.route("/feed.cgi", body=body, headers={"Content-Location": "/blog/"})

    [mention] = poll(config(server.url("/feed.cgi"))).mentions

    assert mention.id == "7"
    assert mention.url == server.url("/blog/posts/7")


def test_redirect_is_followed_and_final_url_recorded(server: FeedServer) -> None:
    """A 301 is followed; the final URL is the cursor's href and the base for relative links."""
    body = (
        b'<rss version="2.0"><channel><title>T</title>'
        b"<item><guid>urn:1</guid><title>moved</title><link>posts/1</link></item></channel></rss>"
    )
    server.route("/old/feed", status=301, headers={"Location": "/new/feed"})
    server.route("/new/feed", body=body)
    old, new = server.url("/old/feed"), server.url("/new/feed")

    result = poll(config(old))

    assert result.cursor["feeds"][feed_key(old)]["href"] == new
    assert [m.url for m in result.mentions] == [server.url("/new/posts/1")]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, SourceUnavailable),
        (503, SourceUnavailable),
        (408, SourceUnavailable),
        (404, SourceRejected),
        (401, SourceRejected),
    ],
)
def test_http_error_statuses_are_translated(
    server: FeedServer, status: int, error: type[CollectorError]
) -> None:
    """5xx and 408 are SourceUnavailable; other 4xx are SourceRejected."""
    server.route("/feed", status=status, body=b"nope")

    assert type(poll_error(config(server.url("/feed")))) is error


def test_429_with_retry_after_is_rate_limited(server: FeedServer) -> None:
    """A 429 with Retry-After raises RateLimited carrying those seconds."""
    server.route("/feed", status=429, headers={"Retry-After": "7"})

    error = poll_error(config(server.url("/feed")))

    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0


def test_429_without_retry_after_has_no_retry_after(server: FeedServer) -> None:
    """A bare 429 raises RateLimited with retry_after None."""
    server.route("/feed", status=429)

    error = poll_error(config(server.url("/feed")))

    assert isinstance(error, RateLimited)
    assert error.retry_after is None


@pytest.mark.parametrize(
    "stall",
    [
        {"stall_before_headers": 20.0},
        {"stall_after_headers": 20.0, "stall_after_bytes": 40},
    ],
    ids=["before-headers", "mid-body"],
)
def test_stalled_response_times_out(server: FeedServer, stall: dict[str, float]) -> None:
    """A server that stops sending raises SourceUnavailable after the configured timeout."""
    server.route("/feed", body=feed(("urn:1", "slow")), **stall)
    cfg = config(server.url("/feed"), timeout=timedelta(seconds=0.5))

    started = time.monotonic()
    error = poll_error(cfg)

    assert isinstance(error, SourceUnavailable)
    assert time.monotonic() - started < HANG_BOUND


@pytest.mark.parametrize(
    "route",
    [
        Route(body=b"<rss>" + b"x" * 20_000 + b"</rss>"),
        Route(body=b"<rss>" + b"x" * 20_000 + b"</rss>", content_length=False),
        Route(body=b"<rss>" + b" " * 2_000_000 + b"</rss>", gzip=True),
    ],
    ids=["content-length", "until-close", "gzip-bomb"],
)
def test_body_over_max_bytes_is_malformed(server: FeedServer, route: Route) -> None:
    """A body larger than max_bytes (declared, streamed or after decompression) is rejected."""
    server.route("/feed", route)

    error = poll_error(config(server.url("/feed"), max_bytes=4096))

    assert isinstance(error, MalformedResponse)
    assert "exceeds" in str(error)


def test_connection_refused_is_unavailable() -> None:
    """Nothing listening on the port raises SourceUnavailable."""
    error = poll_error(config(f"http://127.0.0.1:{unused_port()}/feed"))

    assert isinstance(error, SourceUnavailable)


def test_transport_failure_is_unavailable() -> None:
    """A transport error from an injected httpx transport is translated too."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server hung up", request=request)

    collector = RssCollector(
        "news", config("http://feeds.test/feed"), transport=httpx.MockTransport(broken)
    )
    try:
        with pytest.raises(SourceUnavailable):
            collector.poll(None, NOW)
    finally:
        collector.close()


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_fetcher_decodes_both_deflate_flavours(wbits: int) -> None:
    """Deflate bodies are decoded whether or not the server sent the zlib wrapper."""
    compressor = zlib.compressobj(wbits=wbits)
    payload = compressor.compress(b"<rss/>" * 100) + compressor.flush()

    def answer(request: httpx.Request) -> httpx.Response:
        stream = httpx.ByteStream(payload)
        return httpx.Response(200, headers={"Content-Encoding": "deflate"}, stream=stream)

    with HttpFetcher(timeout=1, max_bytes=10_000, transport=httpx.MockTransport(answer)) as f:
        response = f.get("http://feeds.test/feed?token=secret")

    assert response.body == b"<rss/>" * 100
    assert "content-encoding" not in response.headers


def test_prebuilt_mock_responses_are_capped_too() -> None:
    """A transport that returns a ready-made body is still subject to the size cap."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 5000)

    fetcher = HttpFetcher(timeout=1, max_bytes=1000, transport=httpx.MockTransport(answer))
    with fetcher, pytest.raises(MalformedResponse):
        fetcher.get("http://feeds.test/feed")


def test_redirect_to_another_scheme_is_rejected(server: FeedServer) -> None:
    """A redirect to a non-HTTP scheme is SourceRejected, without the query string."""
    server.route("/feed", status=302, headers={"Location": "ftp://files.test/f?token=secret"})

    error = poll_error(config(server.url("/feed?token=secret")))

    assert isinstance(error, SourceRejected)
    assert "secret" not in str(error)


def test_redirect_loop_is_unavailable(server: FeedServer) -> None:
    """Endless redirects stop at the redirect limit with SourceUnavailable."""
    server.route("/loop", status=302, headers={"Location": "/loop"})

    error = poll_error(config(server.url("/loop")))

    assert isinstance(error, SourceUnavailable)
    assert len(server.requests_for("/loop")) <= 10


def test_one_failing_url_is_reported_beside_the_others_mentions(server: FeedServer) -> None:
    """When one of two feeds fails, the other's mentions come back with one error."""
    server.route("/good", body=feed(("urn:1", "fine")), etag='"g1"')
    server.route("/bad", status=500)
    good, bad = server.url("/good"), server.url("/bad")

    result = poll(config(bad, good))

    assert [m.id for m in result.mentions] == ["urn:1"]
    assert len(result.errors) == 1
    assert isinstance(result.errors[0], SourceUnavailable)
    assert set(result.cursor["feeds"]) == {feed_key(good)}


def test_failed_parse_keeps_the_old_validators(server: FeedServer) -> None:
    """A 200 that cannot be parsed leaves that feed's stored ETag untouched."""
    server.route("/good", body=feed(("urn:1", "fine")))
    server.route(
        "/broken",
        body=b"<html><body>down for maintenance</body></html>",
        content_type="text/html",
        etag='"new"',
    )
    good, broken = server.url("/good"), server.url("/broken")
    old_state = {"etag": '"old"', "modified": None, "href": broken}

    result = poll(config(good, broken), {"feeds": {feed_key(broken): old_state}})

    assert [type(e) for e in result.errors] == [MalformedResponse]
    assert result.cursor["feeds"][feed_key(broken)] == old_state


def test_every_url_failing_raises_the_first_error(server: FeedServer) -> None:
    """When all feeds fail the first failure is raised."""
    server.route("/limited", status=429)
    server.route("/down", status=503)

    error = poll_error(config(server.url("/limited"), server.url("/down")))

    assert isinstance(error, RateLimited)


@pytest.mark.parametrize("status", [404, 429, 500])
def test_errors_never_show_the_query_string(server: FeedServer, status: int) -> None:
    """Error messages name the feed without its query string (it may hold a token)."""
    server.route("/feed", status=status)

    error = poll_error(config(server.url("/feed?token=secret")))

    assert "/feed" in str(error)
    assert "secret" not in str(error)
    assert "token" not in str(error)


def test_timeout_and_refused_errors_never_show_the_query_string(server: FeedServer) -> None:
    """Transport-level errors also leave the query string out."""
    server.route("/feed", stall_before_headers=20.0)
    slow = config(server.url("/feed?token=secret"), timeout=timedelta(seconds=0.3))
    refused = config(f"http://127.0.0.1:{unused_port()}/feed?token=secret")

    for cfg in (slow, refused):
        assert "secret" not in str(poll_error(cfg))


# --------------------------------------------------------------------------- registry


def test_build_collector_knows_rss_and_rejects_others() -> None:
    """The registry builds an RssCollector from its config and names known types otherwise."""
    collector = build_collector("news", config("http://feeds.test/feed"), [])
    try:
        assert isinstance(collector, RssCollector)
        assert collector.name == "news"
    finally:
        collector.close()

    with pytest.raises(ValueError, match="rss"):
        build_collector("odd", object(), [])


def test_search_feeds_are_templated_per_brand(server: FeedServer) -> None:
    """A feed URL with {query} becomes one feed per brand with its search query encoded."""
    server.route("/search", body=feed(("urn:1", "one")))
    brands = [
        BrandConfig(name="Acme", aliases=["Acme", "Acme Cloud"]),
        BrandConfig(name="Globex"),
        BrandConfig(name="Initech"),
    ]
    cfg = RssSourceConfig.model_validate(
        {
            "type": "rss",
            "feeds": [{"url": server.url("/search?q={query}&hl=en")}],
            "brands": ["Acme", "Globex"],
        }
    )
    collector = RssCollector("news", cfg, brands)
    try:
        result = collector.poll(None, NOW)
    finally:
        collector.close()
    queries = sorted(r.query for r in server.requests_for("/search"))
    assert queries == ["q=Acme+OR+%22Acme+Cloud%22&hl=en", "q=Globex&hl=en"]
    assert [m.id for m in result.mentions] == ["urn:1"]  # the same entry, deduplicated later


def test_feeds_with_their_own_interval_are_skipped_until_due(server: FeedServer) -> None:
    """A feed with a longer interval is fetched only when that interval has passed."""
    server.route("/fast", body=feed(("urn:f", "fast")))
    server.route("/slow", body=feed(("urn:s", "slow")))
    cfg = RssSourceConfig.model_validate(
        {
            "type": "rss",
            "urls": [server.url("/fast")],
            "feeds": [{"url": server.url("/slow"), "interval": "1h"}],
        }
    )
    collector = RssCollector("news", cfg)
    try:
        first = collector.poll(None, NOW)
        second = collector.poll(first.cursor, NOW + timedelta(minutes=5))
        third = collector.poll(second.cursor, NOW + timedelta(hours=1))
    finally:
        collector.close()
    assert len(server.requests_for("/fast")) == 3
    assert len(server.requests_for("/slow")) == 2
    assert second.notes["skipped"] == 1
    assert third.notes["skipped"] == 0


def test_first_poll_of_a_feed_is_backfill(server: FeedServer) -> None:
    """History returned by a feed's first poll is flagged as backfill; later polls are not."""
    server.route("/feed", body=feed(("urn:1", "one")))
    cfg = config(server.url("/feed"))
    first = poll(cfg)
    server.route("/feed", body=feed(("urn:1", "one"), ("urn:2", "two")))
    second = poll(cfg, first.cursor)
    assert first.backfill is True
    assert second.backfill is False


SECRET = "s3cr3t-Tok3n"


def _file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_cursor_holds_no_feed_credentials(server: FeedServer, tmp_path: Path) -> None:
    """A feed URL with user info and an API key never reaches the state file."""
    server.route("/feed", body=feed(("urn:1", "one")), etag='"v1"')
    url = server.url(f"/feed?apikey={SECRET}").replace("://", f"://ops:{SECRET}x@")
    first = poll(config(url))
    assert first.mentions
    assert SECRET not in repr(first.cursor)
    store = Store.open(tmp_path / "s.db")
    store.commit(now=NOW, cursor=("news", first.cursor))
    store.close()
    assert SECRET.encode() not in _file_bytes(tmp_path / "s.db")


def test_old_cursors_are_migrated_without_secrets_or_loss(
    server: FeedServer, tmp_path: Path
) -> None:
    """A version-3 file keyed by secret-bearing URLs is rewritten on open: the secret is
    gone from the file (free pages and WAL included) and the feed keeps its validators."""
    server.route("/feed", body=feed(("urn:1", "one")), etag='"v1"')
    url = server.url(f"/feed?apikey={SECRET}")
    path = tmp_path / "s.db"
    store = Store.open(path)
    old = {"feeds": {url: {"etag": '"v1"', "modified": None, "href": url, "polled_at": 1.0}}}
    for n in range(20):  # every poll rewrote the cursor: old copies sit in free pages
        store.commit(now=NOW, cursor=("news", {**old, "n": n}))
    other = {"brands": {"Acme": {"since_id": "42", "next": "https://api.example/p?c=abc"}}}
    store.commit(now=NOW, cursor=("social", other))
    store._write("PRAGMA user_version=3")
    store.close()
    assert SECRET.encode() in _file_bytes(path)

    store = Store.open(path)
    cursor = store.cursors.load("news")
    assert store.cursors.load("social") == other  # other collectors' cursors stay as they are
    store.close()

    assert SECRET.encode() not in _file_bytes(path)
    assert cursor is not None
    assert cursor["feeds"][feed_key(url)]["etag"] == '"v1"'
    second = poll(config(url), cursor)
    assert server.requests_for("/feed")[-1].headers["if-none-match"] == '"v1"'
    assert second.mentions == []  # 304: nothing fetched twice


def test_source_errors_read_in_plain_words(server: FeedServer) -> None:
    """What a source-health alert says about a failing feed: the status and the host, or
    how long it waited; no library class names, no query string."""
    from listener.rules.source_health import plain_error

    server.route("/down", status=503)
    server.route("/slow", stall_before_headers=20.0)
    down = poll_error(config(server.url("/down?token=secret")))
    slow = poll_error(config(server.url("/slow"), timeout=timedelta(seconds=0.3)))
    refused = poll_error(config(f"http://127.0.0.1:{unused_port()}/feed"))

    assert plain_error(str(down)) == "HTTP 503 from 127.0.0.1"
    assert plain_error(str(slow)) == "timed out after 0.3s (127.0.0.1)"
    assert "Error" not in plain_error(str(refused))
    assert plain_error(str(refused)).endswith("(127.0.0.1)")
