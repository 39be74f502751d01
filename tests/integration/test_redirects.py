"""Collectors refuse redirects that lead from their configured host to loopback,
link-local, private … addresses, before connecting, over real HTTP and the real client
libraries; redirects within the configured kind of address are followed, a few at most."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from listener.collectors.base import PollResult
from listener.collectors.bluesky import BlueskyCollector
from listener.collectors.fetch import HttpFetcher
from listener.collectors.mastodon import MastodonCollector
from listener.collectors.redirects import MAX_REDIRECTS
from listener.collectors.requests_http import guard_session
from listener.collectors.rss import RssCollector
from listener.collectors.twitter import TwitterCollector
from listener.config.schema import (
    BlueskySourceConfig,
    BrandConfig,
    MastodonSourceConfig,
    RssSourceConfig,
    TwitterSourceConfig,
)
from listener.errors import CollectorError, RedirectRefused, SourceUnavailable
from tests.support.feed_server import FeedServer, Route

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HANG = 10.0
"""Generous bound: a refused redirect fails at once, a connection attempt would not."""
FORBIDDEN = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.1/feed.xml",
    "http://[::ffff:10.0.0.1]/feed.xml",
    "http://[fe80::1]/feed.xml",
]
ACME = BrandConfig(name="Acme", hashtags=["acme"])
FEED = (
    b'<rss version="2.0"><channel><title>t</title>'
    b"<item><guid>n1</guid><title>Acme is down</title></item></channel></rss>"
)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def moved(location: str) -> Route:
    return Route(status=302, headers={"Location": location}, content_type=None)


def rss(url: str) -> RssCollector:
    config = RssSourceConfig.model_validate({"type": "rss", "urls": [url], "timeout": 2})
    return RssCollector("news", config)


def failure(result: PollResult | None, raised: CollectorError | None) -> CollectorError:
    """The one error of a poll, raised or reported beside its (empty) results."""
    if raised is not None:
        return raised
    assert result is not None
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


@pytest.mark.parametrize("target", FORBIDDEN)
def test_rss_redirect_from_loopback_to_a_private_address_is_refused(
    server: FeedServer, target: str
) -> None:
    """A loopback feed answering 302 to the metadata service or the internal network:
    RedirectRefused (a collector error naming the target host, not the query), at once."""
    server.route("/feed.xml", moved(target))
    collector = rss(server.url("/feed.xml?token=s3cret"))
    started = time.monotonic()
    try:
        with pytest.raises(RedirectRefused) as info:
            collector.poll(None, NOW)
    finally:
        collector.close()
    assert time.monotonic() - started < HANG
    assert info.value.error_type == "redirect_refused"
    assert "refused" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert len(server.requests) == 1


def test_rss_redirect_to_another_loopback_port_is_followed(server: FeedServer) -> None:
    """Loopback to loopback (same kind as the configured URL): followed, feed read."""
    with FeedServer() as other:
        other.route("/real.xml", Route(body=FEED))
        server.route("/feed.xml", moved(other.url("/real.xml")))
        collector = rss(server.url("/feed.xml"))
        try:
            result = collector.poll(None, NOW)
        finally:
            collector.close()
        assert [m.id for m in result.mentions] != []
        assert len(other.requests_for("/real.xml")) == 1


def test_redirects_are_capped(server: FeedServer) -> None:
    """A redirect loop ends after MAX_REDIRECTS redirects as SourceUnavailable."""
    for hop in range(MAX_REDIRECTS + 2):
        server.route(f"/r{hop}", moved(server.url(f"/r{hop + 1}")))
    fetcher = HttpFetcher(timeout=2, max_bytes=1024)
    try:
        with pytest.raises(SourceUnavailable, match="too many redirects"):
            fetcher.get(server.url("/r0"))
    finally:
        fetcher.close()
    assert len(server.requests) == MAX_REDIRECTS + 1


def test_fetcher_checks_every_hop(server: FeedServer) -> None:
    """A first redirect within loopback is fine; the second, to a private address, is not."""
    server.route("/a", moved(server.url("/b")))
    server.route("/b", moved("http://192.168.1.1/"))
    fetcher = HttpFetcher(timeout=2, max_bytes=1024)
    try:
        with pytest.raises(RedirectRefused, match=r"192\.168\.1\.1"):
            fetcher.get(server.url("/a"))
    finally:
        fetcher.close()
    assert [r.path for r in server.requests] == ["/a", "/b"]


def _poll_mastodon(server: FeedServer) -> tuple[PollResult | None, CollectorError | None]:
    config = MastodonSourceConfig.model_validate(
        {"type": "mastodon", "instance": server.url(), "timeout": 2}
    )
    collector = MastodonCollector("masto", config, [ACME])
    try:
        return collector.poll(None, NOW), None
    except CollectorError as exc:
        return None, exc
    finally:
        collector.close()


@pytest.mark.parametrize("target", FORBIDDEN[:2])
def test_mastodon_py_redirect_is_refused(server: FeedServer, target: str) -> None:
    """Mastodon.py follows redirects through its requests session: the hop to a private
    address is refused before connecting and reported as RedirectRefused."""
    server.route("/api/v1/timelines/tag/acme", moved(target))
    started = time.monotonic()
    error = failure(*_poll_mastodon(server))
    assert time.monotonic() - started < HANG
    assert isinstance(error, RedirectRefused), error
    assert len(server.requests_for("/api/v1/timelines/tag/acme")) == 1


@pytest.mark.parametrize("target", FORBIDDEN[:2])
def test_tweepy_redirect_is_refused(server: FeedServer, target: str) -> None:
    """tweepy follows redirects through its requests session: refused the same way."""
    server.route("/2/tweets/search/recent", moved(target))
    values: dict[str, Any] = {
        "type": "twitter",
        "bearer_token": "t0ken",
        "api_url": server.url().rstrip("/"),
        "timeout": timedelta(seconds=2),
    }
    collector = TwitterCollector("x", TwitterSourceConfig.model_validate(values), [ACME])
    started = time.monotonic()
    try:
        result, raised = collector.poll(None, NOW), None
    except CollectorError as exc:
        result, raised = None, exc
    finally:
        collector.close()
    assert time.monotonic() - started < HANG
    error = failure(result, raised)
    assert isinstance(error, RedirectRefused), error
    assert len(server.requests_for("/2/tweets/search/recent")) == 1


def test_atproto_redirect_is_refused(server: FeedServer) -> None:
    """Bluesky's atproto client (httpx) gets the same check: the collector follows
    redirects itself."""
    path = "/xrpc/app.bsky.feed.searchPosts"
    server.route(path, moved(FORBIDDEN[0]))
    config = BlueskySourceConfig.model_validate(
        {"type": "bluesky", "service_url": server.url().rstrip("/"), "timeout": 2}
    )
    collector = BlueskyCollector("bsky", config, [ACME])
    started = time.monotonic()
    try:
        result, raised = collector.poll(None, NOW), None
    except CollectorError as exc:
        result, raised = None, exc
    finally:
        collector.close()
    assert time.monotonic() - started < HANG
    error = failure(result, raised)
    assert isinstance(error, RedirectRefused), error
    assert len(server.requests_for(path)) == 1


def test_a_guarded_requests_session_checks_every_hop_and_caps_redirects(
    server: FeedServer,
) -> None:
    """The session praw, tweepy and Mastodon.py use: loopback to loopback is followed, a
    hop to a private address is refused before connecting, and a loop ends after
    MAX_REDIRECTS redirects."""
    netloc = server.url().split("/")[2]
    session = guard_session(requests.Session(), timeout=2, max_bytes=1024, hosts={netloc: None})
    with FeedServer() as other:
        other.route("/ok", Route(body=b"fine", content_type="text/plain"))
        server.route("/to-other", moved(other.url("/ok")))
        server.route("/to-private", moved(FORBIDDEN[1]))
        for hop in range(MAX_REDIRECTS + 2):
            server.route(f"/r{hop}", moved(server.url(f"/r{hop + 1}")))
        try:
            assert session.get(server.url("/to-other")).text == "fine"
            with pytest.raises(RedirectRefused, match=r"10\.0\.0\.1"):
                session.get(server.url("/to-private"))
            with pytest.raises(requests.TooManyRedirects):
                session.get(server.url("/r0"))
        finally:
            session.close()
    assert len([r for r in server.requests if r.path.startswith("/r")]) == MAX_REDIRECTS + 1
