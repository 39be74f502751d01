"""The YouTube collector against a loopback fake of the YouTube Data API v3."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listener.collectors import build_collector
from listener.collectors.base import Cursor, PollResult
from listener.collectors.youtube import (
    QUOTA_WAIT,
    CommentsDisabled,
    YouTubeCollector,
    published_at,
    thread_mention,
)
from listener.config.schema import YouTubeSourceConfig
from listener.errors import (
    CollectorError,
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.model import Author, Engagement
from tests.support.fake_youtube import ENDPOINT, FakeYouTube

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
KEY = "AIzaSyTEST-secret-key_0123456789"
CHANNEL = "UC" + "c" * 22
VIDEO_A = "dQw4w9WgXcQ"
VIDEO_B = "9bZkp7q19f0"
VIDEO_C = "kJQP7kiw5Fk"
HANG_BOUND = 10.0
"""Seconds after which a poll that should have timed out counts as hung (not a timing test)."""
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def youtube() -> Iterator[FakeYouTube]:
    """A fresh fake per test, with two videos of one channel and one of another."""
    with FakeYouTube(key=KEY) as fake:
        fake.add_video(VIDEO_A, channel=CHANNEL)
        fake.add_video(VIDEO_B, channel=CHANNEL)
        fake.add_video(VIDEO_C, channel="UC" + "o" * 22)
        yield fake


def config(fake: FakeYouTube, **overrides: Any) -> YouTubeSourceConfig:
    values: dict[str, Any] = {
        "type": "youtube",
        "api_key": KEY,
        "api_url": fake.api_url,
        "video_ids": [VIDEO_A],
        "timeout": timedelta(seconds=2),
    }
    values.update(overrides)
    return YouTubeSourceConfig.model_validate(values)


def poll(cfg: YouTubeSourceConfig, cursor: Cursor | None = None, now: datetime = NOW) -> PollResult:
    collector = YouTubeCollector("yt", cfg)
    try:
        return collector.poll(cursor, now)
    finally:
        collector.close()


def fail(cfg: YouTubeSourceConfig, error: type[CollectorError]) -> CollectorError:
    """Poll, expect ``error``, and check the key appears nowhere in it."""
    with pytest.raises(error) as caught:
        poll(cfg)
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value.__cause__ or "")
    return caught.value


def test_top_level_comments_become_mentions(youtube: FakeYouTube) -> None:
    """Comment id, textOriginal, publishedAt (UTC), display name, watch URL with ``lc``,
    likes and the thread's reply count."""
    youtube.add(
        "Acme's kettle <b>exploded</b>\nsecond line",
        video=VIDEO_A,
        author="@bob",
        author_channel="UC" + "b" * 22,
        published_at=NOW - timedelta(minutes=5),
        likes=3,
        replies=2,
    )
    result = poll(config(youtube))
    (mention,) = result.mentions
    assert mention.source == "yt"
    assert mention.id == "Ugz00001commentAaBbCc"
    assert mention.text == "Acme's kettle <b>exploded</b>\nsecond line"
    assert mention.created_at == NOW - timedelta(minutes=5)
    assert mention.created_at.tzinfo == UTC
    assert mention.url == f"https://www.youtube.com/watch?v={VIDEO_A}&lc=Ugz00001commentAaBbCc"
    assert mention.author == Author(handle="@bob", display_name="@bob")
    assert mention.engagement == Engagement(likes=3, replies=2)
    assert mention.language is None
    assert mention.title is None
    assert result.backfill
    (request,) = youtube.requests_for(ENDPOINT)
    assert request.param("videoId") == VIDEO_A
    assert request.param("part") == "snippet"
    assert request.param("order") == "time"
    assert request.param("maxResults") == "100"
    assert request.param("textFormat") == "plainText"
    assert request.param("key") == KEY


def test_a_channel_is_one_request_for_all_its_videos(youtube: FakeYouTube) -> None:
    """``channel_id`` reads every video of the channel in one stream, not other channels'."""
    youtube.add("on A", video=VIDEO_A, published_at=NOW - timedelta(minutes=3))
    youtube.add("on B", video=VIDEO_B, published_at=NOW - timedelta(minutes=2))
    youtube.add("elsewhere", video=VIDEO_C, published_at=NOW - timedelta(minutes=1))
    result = poll(config(youtube, video_ids=[], channel_id=CHANNEL))
    assert [m.text for m in result.mentions] == ["on B", "on A"]
    (request,) = youtube.requests
    assert request.param("allThreadsRelatedToChannelId") == CHANNEL
    assert request.param("videoId") is None
    assert set(result.cursor["streams"]) == {CHANNEL}


def test_no_repeats_across_polls_including_the_same_second(youtube: FakeYouTube) -> None:
    """The cursor keeps the newest publishedAt per stream and the ids at that second."""
    second = NOW - timedelta(minutes=1)
    youtube.add("first", video=VIDEO_A, published_at=second)
    first = poll(config(youtube))
    assert [m.text for m in first.mentions] == ["first"]
    youtube.add("same second", video=VIDEO_A, published_at=second)
    youtube.add("later", video=VIDEO_A, published_at=NOW)
    second_poll = poll(config(youtube), first.cursor, NOW + timedelta(minutes=5))
    assert [m.text for m in second_poll.mentions] == ["later", "same second"]
    assert not second_poll.backfill
    third = poll(config(youtube), second_poll.cursor, NOW + timedelta(minutes=10))
    assert third.mentions == []
    assert third.cursor == second_poll.cursor


def test_first_poll_reaches_back_lookback_only(youtube: FakeYouTube) -> None:
    """Without a cursor, comments older than ``lookback`` are left and paging stops there."""
    youtube.add("old", video=VIDEO_A, published_at=NOW - timedelta(hours=3))
    youtube.add("recent", video=VIDEO_A, published_at=NOW - timedelta(minutes=30))
    result = poll(config(youtube, lookback=timedelta(hours=1)))
    assert [m.text for m in result.mentions] == ["recent"]
    assert result.backfill


def test_pages_follow_next_page_token_up_to_page_limit(youtube: FakeYouTube) -> None:
    """More than 100 new comments are read over pages; ``page_limit`` (default 3) caps
    them and the cut is noted; paging stops at the cursor without asking further."""
    for i in range(350):
        youtube.add(f"c{i}", video=VIDEO_A, published_at=NOW - timedelta(seconds=400 - i))
    result = poll(config(youtube))
    assert len(result.mentions) == 300
    assert result.mentions[0].text == "c349"
    assert result.notes["truncated"] == 1
    tokens = [r.param("pageToken") for r in youtube.requests]
    assert tokens[0] is None
    assert len(tokens) == 3
    assert all(tokens[1:])
    youtube.add("new", video=VIDEO_A, published_at=NOW + timedelta(seconds=30))
    before = len(youtube.requests)
    later = poll(config(youtube), result.cursor, NOW + timedelta(minutes=5))
    assert [m.text for m in later.mentions] == ["new"]
    assert len(youtube.requests) - before == 1
    assert later.notes["truncated"] == 0


def test_quota_exceeded_is_rate_limited_until_the_reset(youtube: FakeYouTube) -> None:
    """403 ``quotaExceeded`` waits an hour (the longest the pipeline honours) and says quota."""
    youtube.exhaust()
    error = fail(config(youtube), RateLimited)
    assert isinstance(error, RateLimited)
    assert error.retry_after == QUOTA_WAIT
    assert "quota" in str(error)
    assert "commentThreads" in str(error)


def test_comments_disabled_on_one_video_is_a_partial_failure(youtube: FakeYouTube) -> None:
    """The other videos are still read; the disabled one is a noted partial error."""
    youtube.add_video(VIDEO_B, channel=CHANNEL, comments=False)
    youtube.add("on C", video=VIDEO_C, published_at=NOW - timedelta(minutes=1))
    result = poll(config(youtube, video_ids=[VIDEO_B, VIDEO_C]))
    assert [m.text for m in result.mentions] == ["on C"]
    (error,) = result.errors
    assert isinstance(error, CommentsDisabled)
    assert isinstance(error, SourceRejected)
    assert VIDEO_B in str(error)
    assert "disabled comments" in str(error)
    assert KEY not in str(error)
    assert result.notes["comments_disabled"] == 1
    assert set(result.cursor["streams"]) == {VIDEO_B, VIDEO_C}


def test_an_invalid_key_is_rejected_without_the_key(youtube: FakeYouTube) -> None:
    """400 ``keyInvalid``: rejected, naming the endpoint, never the key."""
    wrong = "AIzaSyWRONG-key_9876543210"
    with pytest.raises(SourceRejected, match="API key was refused") as caught:
        poll(config(youtube, api_key=wrong))
    assert wrong not in str(caught.value)
    assert "commentThreads" in str(caught.value)


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ({"video_ids": ["zzzzzzzzzzz"]}, "video zzzzzzzzzzz"),
        ({"channel_id": "UC" + "n" * 22}, "UC"),
    ],
)
def test_an_unknown_video_or_channel_is_rejected_by_id(
    youtube: FakeYouTube, target: dict[str, Any], named: str
) -> None:
    """404 ``videoNotFound`` / ``channelNotFound`` → rejected, naming the id."""
    overrides = {"video_ids": [], **target}
    error = fail(config(youtube, **overrides), SourceRejected)
    assert named in str(error)
    assert "not found" in str(error)


def test_server_error_is_unavailable(youtube: FakeYouTube) -> None:
    """A 5xx becomes SourceUnavailable."""
    youtube.fail("server_error")
    fail(config(youtube), SourceUnavailable)


def test_a_429_is_rate_limited(youtube: FakeYouTube) -> None:
    """An HTTP 429 keeps its Retry-After."""
    youtube.fail("rate_limit", retry_after=42)
    error = fail(config(youtube), RateLimited)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 42


def test_stall_beyond_the_timeout_is_unavailable(youtube: FakeYouTube) -> None:
    """A server that does not answer within the timeout makes the poll fail, not hang."""
    youtube.fail("stall", stall=HANG_BOUND * 2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        poll(config(youtube, timeout=timedelta(seconds=0.3)))
    assert time.monotonic() - started < HANG_BOUND


def test_truncated_json_is_malformed(youtube: FakeYouTube) -> None:
    """A cut-off JSON body becomes MalformedResponse."""
    youtube.add("x", video=VIDEO_A, published_at=NOW)
    youtube.fail("truncated")
    fail(config(youtube), MalformedResponse)


def test_threads_without_id_time_or_video_are_skipped() -> None:
    """A thread lacking its comment id, a readable publishedAt or a video yields nothing."""
    good: dict[str, Any] = {
        "snippet": {
            "videoId": VIDEO_A,
            "totalReplyCount": 0,
            "topLevelComment": {
                "id": "c1",
                "snippet": {"textDisplay": "a &amp; b", "publishedAt": "2026-12-07T09:30:00Z"},
            },
        }
    }
    mention = thread_mention("yt", good)
    assert mention is not None
    assert mention.text == "a & b"
    assert mention.author == Author()
    top = good["snippet"]["topLevelComment"]
    assert thread_mention("yt", {"snippet": {**good["snippet"], "videoId": ""}}) is None
    no_id = {"snippet": {**good["snippet"], "topLevelComment": {**top, "id": ""}}}
    assert thread_mention("yt", no_id) is None
    assert published_at("2026-12-07") is None
    assert published_at("yesterday") is None
    assert published_at("2026-12-07T10:30:00+01:00") == datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def test_registry_builds_the_collector(youtube: FakeYouTube) -> None:
    """``build_collector`` maps a youtube source to YouTubeCollector."""
    collector = build_collector("yt", config(youtube), [])
    try:
        assert isinstance(collector, YouTubeCollector)
        assert collector.poll(None, NOW).mentions == []
    finally:
        collector.close()


def test_listener_check_names_the_file_and_line_of_a_bad_youtube_source(tmp_path: Path) -> None:
    """A bad video id, an empty key and a source with both or neither target are config
    errors with file:line from ``listener check``; the key is never printed."""
    base = (
        "sinks:\n  c: {{type: console}}\nroutes:\n  default: [c]\n"
        "brands:\n  - name: Acme\nsources:\n  yt:\n    type: youtube\n{extra}"
    )
    path = tmp_path / "rules.yaml"
    path.write_text(base.format(extra="    api_key: ''\n    video_ids: [short]\n"))
    bad = _check(path)
    assert bad.returncode == 2
    assert f"{path}:10: sources.yt.api_key" in bad.stderr
    assert f"{path}:11: sources.yt.video_ids" in bad.stderr
    assert "Traceback" not in bad.stderr
    both = f"    api_key: {KEY}\n    channel_id: {CHANNEL}\n    video_ids: [{VIDEO_A}]\n"
    path.write_text(base.format(extra=both))
    twice = _check(path)
    assert twice.returncode == 2
    assert f"{path}:8: sources.yt" in twice.stderr
    assert "channel_id" in twice.stderr
    assert KEY not in twice.stderr
    path.write_text(base.format(extra=f"    api_key: {KEY}\n    channel_id: {CHANNEL}\n"))
    assert _check(path).returncode == 0, _check(path).stderr


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "listener", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


async def test_a_spent_quota_backs_the_poll_job_off_for_the_hour_and_hides_the_key(
    youtube: FakeYouTube, tmp_path: Path
) -> None:
    """Through the daemon's poll job: a spent quota is one ``poll_failed`` line, counted as
    ``rate_limited``, the key in no log line or health message; the source waits the quota
    hour, asks nothing meanwhile, and the poll after it collects."""
    from structlog.testing import capture_logs

    from tests.support.poll_job import poll_job

    cfg = config(youtube)
    youtube.add("Acme broke my phone", video=VIDEO_A, published_at=NOW - timedelta(minutes=5))
    youtube.exhaust()
    with poll_job(tmp_path, "yt", YouTubeCollector("yt", cfg), cfg, NOW) as job:
        with capture_logs() as logs:
            await job.pipeline.poll("yt")  # raises nothing
        health = job.failed_once("yt", logs, "rate_limited", NOW)
        assert health.backoff_until is not None
        assert health.backoff_until >= NOW + timedelta(seconds=QUOTA_WAIT)
        assert KEY not in str(health.last_error)
        assert all(KEY not in str(e) for e in logs)
        asked = len(youtube.requests)
        job.clock.set(NOW + timedelta(minutes=30))
        await job.pipeline.poll("yt")  # still waiting: nothing is asked
        assert len(youtube.requests) == asked
        youtube.replenish()
        job.clock.set(health.backoff_until)
        await job.pipeline.poll("yt")
        job.collected("yt")
        assert job.pipeline.cursors["yt"]["streams"]
