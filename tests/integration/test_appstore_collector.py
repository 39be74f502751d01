"""The App Store collector against a loopback fake of Apple's customer reviews feed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from listener.collectors import build_collector
from listener.collectors.appstore import AppStoreCollector, parse_feed, review_mention
from listener.collectors.base import Cursor, PollResult
from listener.config.schema import AppStoreSourceConfig
from listener.errors import MalformedResponse, RateLimited, SourceRejected, SourceUnavailable
from listener.model import Author
from tests.support.fake_appstore import FakeAppStore

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
APP = "1234567"
HANG_BOUND = 10.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store() -> Iterator[FakeAppStore]:
    """A fresh fake per test, the app known in the US."""
    with FakeAppStore() as fake:
        fake.add_app(APP, ("us",))
        yield fake


def config(fake: FakeAppStore, **overrides: Any) -> AppStoreSourceConfig:
    values: dict[str, Any] = {
        "type": "appstore",
        "app_id": APP,
        "api_url": fake.url,
        "timeout": timedelta(seconds=2),
    }
    values.update(overrides)
    return AppStoreSourceConfig.model_validate(values)


def poll(
    cfg: AppStoreSourceConfig, cursor: Cursor | None = None, now: datetime = NOW
) -> PollResult:
    collector = AppStoreCollector("reviews", cfg)
    try:
        return collector.poll(cursor, now)
    finally:
        collector.close()


def test_reviews_become_mentions(store: FakeAppStore) -> None:
    """A review: ``<country>:<id>``, the stars before the title, title and content as
    text, ``updated`` (Pacific offset) in UTC, the reviewer, the review link, votes."""
    store.add(
        APP,
        "us",
        "Crashes  on launch",
        "Since the update\nit crashes every time",
        rating=1,
        updated=NOW - timedelta(hours=1),
        author="Ann Onymous",
        votes=3,
        review_id="11223344556",
    )
    result = poll(config(store))
    (mention,) = result.mentions
    assert mention.source == "reviews"
    assert mention.id == "us:11223344556"
    assert mention.title == "★1 Crashes on launch"
    assert mention.text == "Crashes on launch. Since the update it crashes every time"
    assert mention.created_at == NOW - timedelta(hours=1)
    assert mention.created_at.tzinfo == UTC
    assert mention.author == Author(handle="Ann Onymous")
    assert mention.url is not None
    assert mention.url.startswith("https://itunes.apple.com/us/review?id=")
    assert mention.language is None
    assert mention.engagement.likes == 3
    assert result.backfill is True
    (request,) = store.requests
    assert request.path == f"/us/rss/customerreviews/page=1/id={APP}/sortby=mostrecent/json"


def test_quirks_single_entry_no_entry_and_the_app_entry() -> None:
    """One review as an object, no ``entry`` at all, and the app's own first entry (no
    ``im:rating``) are all read correctly."""
    with FakeAppStore(app_entry=True) as fake:
        fake.add_app(APP, ("us", "gb"))
        fake.add(APP, "gb", "Great", "Love it", rating=5, updated=NOW - timedelta(minutes=5))
        result = poll(config(fake, countries=["us", "gb"]))
        (mention,) = result.mentions
        assert mention.id.startswith("gb:")
        assert mention.title == "★5 Great"
        assert result.errors == []
        assert result.cursor["countries"]["us"]["seen"] == []
        assert '"entry": {"im:name"' in fake_body(fake, "us")  # only the app, as an object
        assert '"entry": [{"im:name"' in fake_body(fake, "gb")
    with FakeAppStore() as plain:
        plain.add_app(APP, ("us", "gb"))
        plain.add(APP, "gb", "Fine", "ok", rating=4, updated=NOW - timedelta(minutes=5))
        result = poll(config(plain, countries=["us", "gb"]))
        assert [m.title for m in result.mentions] == ["★4 Fine"]
        assert '"entry"' not in fake_body(plain, "us")
        assert '"entry": {"author"' in fake_body(plain, "gb")


def fake_body(fake: FakeAppStore, country: str) -> str:
    """The raw page 1 of ``country``'s feed, as Apple's JSON text."""
    url = f"{fake.url}/{country}/rss/customerreviews/page=1/id={APP}/sortby=mostrecent/json"
    with httpx.Client() as client:
        return client.get(url).text


def test_no_repeats_across_polls_including_the_same_second(store: FakeAppStore) -> None:
    """The second poll returns only reviews not returned before, even at the same second."""
    at = NOW - timedelta(minutes=10)
    store.add(APP, "us", "One", "first", updated=at)
    first = poll(config(store))
    assert len(first.mentions) == 1
    store.add(APP, "us", "Two", "same second", updated=at)
    store.add(APP, "us", "Three", "later", updated=at + timedelta(minutes=1))
    second = poll(config(store), first.cursor, NOW + timedelta(minutes=30))
    assert sorted(m.title or "" for m in second.mentions) == ["★5 Three", "★5 Two"]
    assert second.backfill is False
    third = poll(config(store), second.cursor, NOW + timedelta(hours=1))
    assert third.mentions == []


def test_first_poll_keeps_only_the_lookback(store: FakeAppStore) -> None:
    """Without a cursor, reviews older than ``lookback`` are not collected."""
    store.add(APP, "us", "Old", "old", updated=NOW - timedelta(days=3))
    store.add(APP, "us", "New", "new", updated=NOW - timedelta(hours=3))
    result = poll(config(store))
    assert [m.title for m in result.mentions] == ["★5 New"]


def test_paging_stops_at_known_reviews_and_max_pages(store: FakeAppStore) -> None:
    """Pages are read while full and new; ``max_pages`` bounds them (noted as truncated)."""
    for i in range(120):
        store.add(APP, "us", f"R{i}", "x", updated=NOW - timedelta(minutes=200 - i))
    result = poll(config(store, max_pages=2))
    assert len(result.mentions) == 100
    assert result.notes == {"requests": 2, "truncated": 1}
    assert [r.path.split("/")[4] for r in store.requests] == ["page=1", "page=2"]
    store.add(APP, "us", "Fresh", "y", updated=NOW + timedelta(minutes=1))
    again = poll(config(store, max_pages=10), result.cursor, NOW + timedelta(minutes=5))
    assert [m.title for m in again.mentions] == ["★5 Fresh"]
    assert again.notes == {"requests": 1, "truncated": 0}


def test_one_feed_per_country_with_its_own_cursor(store: FakeAppStore) -> None:
    """Each country is its own feed and cursor; ids carry the country."""
    store.add_app(APP, ("de",))
    store.add(APP, "us", "Bad", "bad", rating=2, updated=NOW - timedelta(minutes=3))
    store.add(APP, "de", "Gut", "gut", rating=4, updated=NOW - timedelta(minutes=2))
    result = poll(config(store, countries=["us", "de"]))
    assert sorted(m.id.split(":")[0] for m in result.mentions) == ["de", "us"]
    assert set(result.cursor["countries"]) == {"us", "de"}
    assert result.cursor["app"] == APP


def test_unknown_country_is_rejected_naming_app_and_country(store: FakeAppStore) -> None:
    """A 404 is rejected with the app id and country; alone it fails the poll, beside a
    good country it is a partial error."""
    with pytest.raises(SourceRejected, match=f"app id {APP} in App Store country 'zz'"):
        poll(config(store, countries=["zz"]))
    store.add(APP, "us", "Ok", "ok", updated=NOW - timedelta(minutes=1))
    result = poll(config(store, countries=["us", "zz"]))
    assert len(result.mentions) == 1
    (error,) = result.errors
    assert isinstance(error, SourceRejected)
    assert "zz" not in result.cursor["countries"]


def test_rate_limits_429_and_403(store: FakeAppStore) -> None:
    """429 and Apple's 403 throttle are RateLimited for at least 60 s."""
    store.fail("rate_limit", retry_after_header=False)
    with pytest.raises(RateLimited) as bare:
        poll(config(store))
    assert bare.value.retry_after == 60.0
    store.fail("rate_limit", retry_after=120)
    with pytest.raises(RateLimited) as hinted:
        poll(config(store))
    assert hinted.value.retry_after == 120
    store.throttle()
    with pytest.raises(RateLimited, match="HTTP 403") as throttled:
        poll(config(store))
    assert throttled.value.retry_after == 60.0


def test_server_error_and_stall_are_unavailable(store: FakeAppStore) -> None:
    """5xx and timeouts are SourceUnavailable, without hanging."""
    store.fail("server_error")
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        poll(config(store))
    store.fail("stall", stall=HANG_BOUND * 2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        poll(config(store, timeout=timedelta(seconds=0.3)))
    assert time.monotonic() - started < HANG_BOUND


def test_malformed_answers(store: FakeAppStore) -> None:
    """Cut-off JSON and JSON that is not a feed are MalformedResponse."""
    store.add(APP, "us", "Ok", "ok", updated=NOW - timedelta(minutes=1))
    store.fail("truncated")
    with pytest.raises(MalformedResponse, match="invalid JSON"):
        poll(config(store))
    with pytest.raises(MalformedResponse, match="not an App Store feed"):
        parse_feed(b'{"results": []}', "x")
    with pytest.raises(MalformedResponse, match="neither"):
        parse_feed(b'{"feed": {"entry": "x"}}', "x")


def test_entries_without_rating_id_or_time_are_skipped() -> None:
    """The app's entry and reviews without id or a readable time yield no mention; a
    non-http link falls back to the store page."""
    good = {
        "im:rating": {"label": "3"},
        "id": {"label": "9"},
        "updated": {"label": "2026-12-06T17:11:09-07:00"},
        "title": {"label": "Meh"},
        "content": {"label": "ok"},
        "link": {"attributes": {"rel": "related", "href": "javascript:alert(1)"}},
    }
    assert review_mention("r", "us", APP, {**good, "im:rating": None}) is None
    assert review_mention("r", "us", APP, {**good, "id": {"label": ""}}) is None
    assert review_mention("r", "us", APP, {**good, "updated": {"label": "yesterday"}}) is None
    mention = review_mention("r", "us", APP, good)
    assert mention is not None
    assert mention.url == f"https://apps.apple.com/us/app/id{APP}"
    assert mention.created_at == datetime(2026, 12, 7, 0, 11, 9, tzinfo=UTC)
    assert (mention.author, mention.engagement.likes) == (Author(), None)


def test_another_app_id_starts_over(store: FakeAppStore) -> None:
    """A cursor of another app is not used: the poll is a backfill again."""
    store.add(APP, "us", "Ok", "ok", updated=NOW - timedelta(minutes=1))
    first = poll(config(store))
    again = poll(config(store), {**first.cursor, "app": "999"})
    assert again.backfill is True
    assert len(again.mentions) == 1


def test_registry_builds_the_collector(store: FakeAppStore) -> None:
    """``build_collector`` maps an appstore source to AppStoreCollector."""
    collector = build_collector("reviews", config(store), [])
    try:
        assert isinstance(collector, AppStoreCollector)
        assert collector.poll(None, NOW).mentions == []
    finally:
        collector.close()


def test_listener_check_names_the_file_and_line_of_a_bad_appstore_source(tmp_path: Path) -> None:
    """A non-digit app id, a bad country and too many pages are config errors with
    file:line; a numeric YAML app id is fine."""
    base = (
        "sinks:\n  c: {{type: console}}\nroutes:\n  default: [c]\n"
        "brands:\n  - name: Acme\nsources:\n  reviews:\n    type: appstore\n{extra}"
    )
    path = tmp_path / "rules.yaml"
    path.write_text(
        base.format(extra="    app_id: id123\n    countries: [US]\n    max_pages: 11\n")
    )
    bad = _check(path)
    assert bad.returncode == 2
    assert f"{path}:10: sources.reviews.app_id" in bad.stderr
    assert f"{path}:11: sources.reviews.countries" in bad.stderr
    assert f"{path}:12: sources.reviews.max_pages" in bad.stderr
    assert "Traceback" not in bad.stderr
    path.write_text(base.format(extra="    app_id: 284882215\n    countries: [us, gb]\n"))
    ok = _check(path)
    assert ok.returncode == 0, ok.stderr


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "listener", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


async def test_a_server_error_backs_the_poll_job_off_and_the_next_poll_collects(
    store: FakeAppStore, tmp_path: Path
) -> None:
    """Through the daemon's poll job: a 500 is one ``poll_failed`` line, counted as
    ``unavailable``; the source backs off, and the poll after the backoff reads the
    reviews and moves the cursor."""
    from structlog.testing import capture_logs

    from tests.support.poll_job import poll_job

    cfg = config(store)
    store.add(APP, "us", "Acme crashes", "The Acme app crashes on launch", rating=1,
              updated=NOW - timedelta(minutes=5))  # fmt: skip
    store.fail("server_error")
    with poll_job(tmp_path, "reviews", AppStoreCollector("reviews", cfg), cfg, NOW) as job:
        with capture_logs() as logs:
            await job.pipeline.poll("reviews")  # raises nothing
        health = job.failed_once("reviews", logs, "unavailable", NOW)
        assert health.backoff_until is not None
        job.clock.set(health.backoff_until)
        await job.pipeline.poll("reviews")
        job.collected("reviews")
        assert job.pipeline.cursors["reviews"]["countries"]
