"""The GDELT collector against a loopback fake of the GDELT DOC 2.0 API."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from listener.collectors import build_collector
from listener.collectors.base import Cursor, PollResult
from listener.collectors.gdelt import GdeltCollector, article_mention, build_query
from listener.config.schema import BrandConfig, GdeltSourceConfig
from listener.errors import (
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.model import Author
from tests.support.fake_social import GDELT_RATE_TEXT, GDELT_SHORT_TEXT, FakeGdelt
from tests.support.poll_job import poll_job

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
BATCH = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
"""A GDELT update: every article of one 15-minute batch has this seendate."""
HANG_BOUND = 10.0
"""Seconds after which a poll that should have timed out counts as hung (not a timing test)."""
REPO = Path(__file__).resolve().parents[2]

ACME = BrandConfig(name="Acme", aliases=["Acme", "Acme Cloud"])
GLOBEX = BrandConfig(name="Globex", keywords=["globexpay", "GP"])


@pytest.fixture
def gdelt() -> Iterator[FakeGdelt]:
    """A fresh fake per test."""
    with FakeGdelt() as fake:
        yield fake


def config(fake: FakeGdelt, **overrides: Any) -> GdeltSourceConfig:
    values: dict[str, Any] = {
        "type": "gdelt",
        "api_url": fake.api_url,
        "timeout": timedelta(seconds=2),
    }
    values.update(overrides)
    return GdeltSourceConfig.model_validate(values)


def poll(
    cfg: GdeltSourceConfig,
    cursor: Cursor | None = None,
    now: datetime = NOW,
    brands: tuple[BrandConfig, ...] = (ACME,),
) -> PollResult:
    collector = GdeltCollector("news", cfg, brands)
    try:
        return collector.poll(cursor, now)
    finally:
        collector.close()


def param_time(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def test_articles_become_mentions(gdelt: FakeGdelt) -> None:
    """Each article: its URL as id, its title (entities and whitespace cleaned) as text and
    title, the domain as author, seendate as time, GDELT's language as an ISO code."""
    gdelt.add(
        "Acme  recalls kettles &amp; toasters <b>worldwide</b>",
        seen_at=BATCH,
        url="https://news.example.com/acme-recall#comments",
        domain="news.example.com",
    )
    gdelt.add(
        "Caso Acme : la empresa retira sus hervidores",
        seen_at=BATCH - timedelta(minutes=15),
        url="https://www.elsiglo.example.mx/acme",
        domain="elsiglo.example.mx",
        language="Spanish",
        country="Mexico",
    )
    gdelt.add(
        "Acme qapla'",
        seen_at=BATCH - timedelta(minutes=30),
        url="https://qo.example/acme",
        domain="QO.example",
        language="Klingon",
    )
    result = poll(config(gdelt))
    assert [m.id for m in result.mentions] == [
        "https://news.example.com/acme-recall",
        "https://www.elsiglo.example.mx/acme",
        "https://qo.example/acme",
    ]
    english, spanish, unknown = result.mentions
    assert english.source == "news"
    assert english.text == "Acme recalls kettles & toasters worldwide"
    assert english.title == english.text
    assert english.url == "https://news.example.com/acme-recall"
    assert english.created_at == BATCH
    assert english.author == Author(handle="news.example.com")
    assert english.author.followers is None
    assert english.language == "en"
    assert spanish.language == "es"
    assert spanish.created_at == BATCH - timedelta(minutes=15)
    assert unknown.language is None
    assert unknown.author == Author(handle="qo.example")


def test_one_query_ors_every_brands_terms(gdelt: FakeGdelt) -> None:
    """One request per poll: every brand's aliases and keywords OR'ed in parentheses,
    phrases quoted, terms too short for GDELT left out; the time window and paging
    parameters as the API documents them."""
    gdelt.add("Acme Cloud outage", seen_at=BATCH)
    gdelt.add("Paying with GlobexPay", seen_at=BATCH)
    gdelt.add("Nothing to see", seen_at=BATCH, body="but acme is in the body")
    result = poll(config(gdelt), brands=(ACME, GLOBEX))
    assert len(result.mentions) == 3  # GDELT searches the full text, not just the title
    (request,) = gdelt.requests
    assert request.param("query") == '(Acme OR "Acme Cloud" OR Globex OR globexpay)'
    assert request.param("mode") == "artlist"
    assert request.param("format") == "json"
    assert request.param("maxrecords") == "250"
    assert request.param("sort") == "datedesc"
    assert request.param("startdatetime") == param_time(NOW - timedelta(hours=1))
    assert request.param("enddatetime") == param_time(NOW)
    assert request.headers["user-agent"].startswith("listener/")


def test_query_of_one_term_language_and_override(gdelt: FakeGdelt) -> None:
    """A single term has no parentheses (GDELT refuses them); ``language`` adds
    ``sourcelang:``; ``query`` replaces the brands' terms verbatim."""
    gdelt.add("Acme in English", seen_at=BATCH)
    gdelt.add("Acme en español", seen_at=BATCH, language="Spanish")
    one = poll(config(gdelt, language="English"), brands=(BrandConfig(name="Acme"),))
    assert gdelt.requests[-1].param("query") == "Acme sourcelang:english"
    assert [m.text for m in one.mentions] == ["Acme in English"]

    raw = '("acme kettle" OR "acme toaster") -sponsored sourcecountry:unitedstates'
    gdelt.add("Acme kettle fire", seen_at=BATCH)
    gdelt.add("Acme kettle sale", seen_at=BATCH, body="sponsored content")
    override = poll(config(gdelt, query=f"  {raw} "), brands=(ACME, GLOBEX))
    assert gdelt.requests[-1].param("query") == raw
    assert [m.text for m in override.mentions] == ["Acme kettle fire"]


def test_build_query_skips_short_terms_and_duplicates() -> None:
    """Terms under three characters and case-insensitive repeats are left out."""
    cfg = GdeltSourceConfig(type="gdelt")
    brands = [
        BrandConfig(name="HP", aliases=["HP", "Hewlett-Packard"], keywords=["hewlett-packard"]),
        BrandConfig(name="Acme", keywords=['say "acme"']),
    ]
    assert build_query(cfg, brands) == '("Hewlett-Packard" OR Acme OR "say acme")'
    assert build_query(cfg, [BrandConfig(name="HP")]) == ""
    only = GdeltSourceConfig(type="gdelt", brands=["Acme"])
    assert build_query(only, brands) == '(Acme OR "say acme")'


def test_first_poll_reaches_back_lookback_and_is_backfill(gdelt: FakeGdelt) -> None:
    """Without a cursor the poll reaches back ``lookback`` only and is a backfill."""
    gdelt.add("Acme old news", seen_at=NOW - timedelta(hours=3))
    gdelt.add("Acme recent news", seen_at=BATCH)
    first = poll(config(gdelt, lookback=timedelta(hours=2)))
    assert [m.text for m in first.mentions] == ["Acme recent news"]
    assert first.backfill is True
    assert gdelt.requests[-1].param("startdatetime") == param_time(NOW - timedelta(hours=2))
    second = poll(config(gdelt), first.cursor, NOW + timedelta(minutes=5))
    assert second.mentions == []
    assert second.backfill is False


def test_no_repeats_across_polls_including_the_same_second(gdelt: FakeGdelt) -> None:
    """The cursor keeps the newest seendate and the URLs at it: the next poll asks from
    there and skips those, so articles GDELT adds to the same batch still arrive once."""
    gdelt.add("Acme one", seen_at=BATCH - timedelta(minutes=15), url="https://a.example/1")
    gdelt.add("Acme two", seen_at=BATCH, url="https://a.example/2")
    first = poll(config(gdelt))
    assert sorted(m.id for m in first.mentions) == ["https://a.example/1", "https://a.example/2"]
    since = int(BATCH.timestamp())
    assert first.cursor["since"] == since
    assert first.cursor["seen"] == ["https://a.example/2"]

    gdelt.add("Acme three, same batch", seen_at=BATCH, url="https://a.example/3")
    gdelt.add("Acme four", seen_at=BATCH + timedelta(minutes=45), url="https://a.example/4")
    later = BATCH + timedelta(hours=1)
    second = poll(config(gdelt), first.cursor, later)
    assert sorted(m.id for m in second.mentions) == ["https://a.example/3", "https://a.example/4"]
    assert second.backfill is False
    assert gdelt.requests[-1].param("startdatetime") == param_time(BATCH)
    assert gdelt.requests[-1].param("enddatetime") == param_time(later)

    third = poll(config(gdelt), second.cursor, later + timedelta(minutes=5))
    assert third.mentions == []
    assert third.cursor == second.cursor


def test_the_window_asked_for_is_at_least_fifteen_minutes(gdelt: FakeGdelt) -> None:
    """A cursor newer than GDELT's update step still asks for the last 15 minutes; what
    is older than the cursor is dropped."""
    gdelt.add("Acme earlier", seen_at=NOW - timedelta(minutes=10))
    cursor = {**poll(config(gdelt)).cursor, "since": int((NOW - timedelta(minutes=2)).timestamp())}
    result = poll(config(gdelt), cursor, NOW)
    assert gdelt.requests[-1].param("startdatetime") == param_time(NOW - timedelta(minutes=15))
    assert result.mentions == []


def test_a_changed_query_starts_over_as_backfill(gdelt: FakeGdelt) -> None:
    """Editing the brands or ``query`` changes the query: its first poll reaches back
    ``lookback`` again, as a backfill, so a brand added later gets its history."""
    first = poll(config(gdelt))
    gdelt.add("GlobexPay down", seen_at=BATCH)
    second = poll(config(gdelt), first.cursor, NOW + timedelta(minutes=5), brands=(ACME, GLOBEX))
    assert [m.text for m in second.mentions] == ["GlobexPay down"]
    assert second.backfill is True
    assert second.cursor["query"] != first.cursor["query"]


def test_an_empty_object_is_no_articles(gdelt: FakeGdelt) -> None:
    """GDELT answers ``{}`` when nothing matches: no mentions, the cursor stays where it was."""
    result = poll(config(gdelt))
    assert result.mentions == []
    assert result.cursor["since"] == int((NOW - timedelta(hours=1)).timestamp())
    assert result.cursor["seen"] == []
    assert result.notes == {"articles": 0, "truncated": 0}


def test_a_full_answer_is_noted_as_truncated(gdelt: FakeGdelt) -> None:
    """``max_records`` articles back means the window held more: the newest are kept."""
    for i in range(3):
        gdelt.add(f"Acme item {i}", seen_at=BATCH - timedelta(minutes=15 * i))
    result = poll(config(gdelt, max_records=2))
    assert gdelt.requests[-1].param("maxrecords") == "2"
    assert [m.text for m in result.mentions] == ["Acme item 0", "Acme item 1"]
    assert result.notes["truncated"] == 1


@pytest.mark.parametrize(
    "text",
    [
        "Your search contained a keyword that was too common to search for.",
        "The specified phrase is too short.",
        "Timespan is too short.",
    ],
)
def test_a_plain_text_answer_is_a_rejected_query(gdelt: FakeGdelt, text: str) -> None:
    """GDELT refuses a query with HTTP 200 and a line of text: SourceRejected with the text."""
    gdelt.refuse(text)
    with pytest.raises(SourceRejected) as caught:
        poll(config(gdelt))
    assert f"GDELT refused the query: {text}" in str(caught.value)


def test_a_query_gdelt_finds_too_short_is_rejected(gdelt: FakeGdelt) -> None:
    """A raw ``query`` with a two-letter phrase is refused by GDELT, not by the collector."""
    with pytest.raises(SourceRejected, match=GDELT_SHORT_TEXT):
        poll(config(gdelt, query='"ab" OR acme'))


def test_rate_limit_waits_at_least_gdelts_pace(gdelt: FakeGdelt) -> None:
    """A 429 (GDELT sends no Retry-After), or its plain-text request to slow down, is
    RateLimited for at least 5 s; a longer Retry-After is kept."""
    gdelt.fail("rate_limit", retry_after_header=False)
    with pytest.raises(RateLimited) as bare:
        poll(config(gdelt))
    assert bare.value.retry_after == 5.0
    gdelt.fail("rate_limit", retry_after=30)
    with pytest.raises(RateLimited) as hinted:
        poll(config(gdelt))
    assert hinted.value.retry_after == 30
    gdelt.refuse(GDELT_RATE_TEXT)
    with pytest.raises(RateLimited, match="limit requests") as texted:
        poll(config(gdelt))
    assert texted.value.retry_after == 5.0


def test_server_error_raises_source_unavailable(gdelt: FakeGdelt) -> None:
    """A 500 becomes SourceUnavailable."""
    gdelt.fail("server_error")
    with pytest.raises(SourceUnavailable, match="HTTP 500"):
        poll(config(gdelt))


def test_stall_beyond_the_timeout_raises_source_unavailable(gdelt: FakeGdelt) -> None:
    """A server that does not answer within the timeout makes the poll fail, not hang."""
    gdelt.fail("stall", stall=HANG_BOUND * 2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        poll(config(gdelt, timeout=timedelta(seconds=0.3)))
    assert time.monotonic() - started < HANG_BOUND


def test_truncated_json_raises_malformed_response(gdelt: FakeGdelt) -> None:
    """A cut-off JSON body becomes MalformedResponse."""
    gdelt.add("Acme", seen_at=BATCH)
    gdelt.fail("truncated")
    with pytest.raises(MalformedResponse, match="invalid JSON"):
        poll(config(gdelt))


def test_oversized_answer_raises_malformed_response(gdelt: FakeGdelt) -> None:
    """An answer larger than ``max_bytes`` is refused."""
    for i in range(20):
        gdelt.add(f"Acme {i} " + "x" * 200, seen_at=BATCH)
    with pytest.raises(MalformedResponse, match="exceeds"):
        poll(config(gdelt, max_bytes=2048))


def test_articles_without_url_or_seendate_are_skipped() -> None:
    """An article lacking an http(s) URL or a readable seendate yields no mention."""
    good = {"url": "https://x.example/a", "seendate": "20261207T093000Z", "title": ""}
    assert article_mention("news", {**good, "url": "ftp://x.example/a"}) is None
    assert article_mention("news", {**good, "seendate": "2026-12-07"}) is None
    assert article_mention("news", {key: v for key, v in good.items() if key != "url"}) is None
    mention = article_mention("news", good)
    assert mention is not None
    assert (mention.text, mention.title, mention.author) == ("", None, Author())


def test_registry_builds_the_collector(gdelt: FakeGdelt) -> None:
    """``build_collector`` maps a gdelt source to GdeltCollector."""
    collector = build_collector("news", config(gdelt), [ACME])
    try:
        assert isinstance(collector, GdeltCollector)
        assert collector.poll(None, NOW).mentions == []
    finally:
        collector.close()


async def test_a_refused_query_is_logged_once_counted_and_backed_off(
    gdelt: FakeGdelt, tmp_path: Path
) -> None:
    """Through the daemon's poll job: the refusal is one ``poll_failed`` line, counted as
    ``rejected``; the source backs off, and the poll after the backoff collects."""
    cfg = config(gdelt)
    gdelt.refuse("Your search contained an invalid character.")
    gdelt.add("Acme recalls kettles", seen_at=BATCH)
    with poll_job(tmp_path, "news", GdeltCollector("news", cfg, [ACME]), cfg, NOW) as job:
        with capture_logs() as logs:
            await job.pipeline.poll("news")  # raises nothing
        health = job.failed_once("news", logs, "rejected", NOW)
        await job.pipeline.poll("news")  # still backing off: nothing is asked
        assert len(gdelt.requests) == 1
        job.clock.set(health.backoff_until)
        await job.pipeline.poll("news")  # the first poll finished when it returned
        job.collected("news")
        assert job.pipeline.cursors["news"]["since"] == int(BATCH.timestamp())


def test_listener_check_names_the_file_and_line_of_a_bad_gdelt_source(tmp_path: Path) -> None:
    """Invalid keys and a source with nothing to search for are config errors with
    file:line, from ``listener check``."""
    base = (
        "sinks:\n  c: {{type: console}}\nroutes:\n  default: [c]\n"
        "brands:\n  - name: {brand}\nsources:\n  news:\n    type: gdelt\n{extra}"
    )
    path = tmp_path / "rules.yaml"
    path.write_text(
        base.format(brand="Acme", extra="    max_records: 300\n    language: en glish\n")
    )
    bad = _check(path)
    assert bad.returncode == 2
    assert f"{path}:10: sources.news.max_records" in bad.stderr
    assert f"{path}:11: sources.news.language" in bad.stderr
    assert "Traceback" not in bad.stderr
    path.write_text(base.format(brand="HP", extra=""))
    short = _check(path)
    assert short.returncode == 2
    (line,) = short.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}:8: sources.news: nothing to search for")
    path.write_text(base.format(brand="HP", extra="    query: '\"hewlett packard\"'\n"))
    assert _check(path).returncode == 0


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "listener", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
