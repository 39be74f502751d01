"""YouTube collector: top-level comments through the YouTube Data API v3 (an API key).

One *stream* per target: the whole channel (``channel_id``: ``commentThreads`` with
``allThreadsRelatedToChannelId``, every video of the channel) or each listed video
(``video_ids``: ``commentThreads`` with ``videoId``, one call per video). Each request asks
``part=snippet&order=time&maxResults=100&textFormat=plainText`` (newest first) and follows
``nextPageToken`` for at most ``page_limit`` pages. The key travels as the ``key`` query
parameter; no message names the URL with its query: they say ``commentThreads`` and the
channel or video.

The collector does not search: it reads every comment of its targets, and the matcher
assigns them to brands (a comment that names no brand is dropped there).

A thread's top-level comment becomes a mention whose id is the comment id, text its
``textOriginal``, time its ``publishedAt`` (UTC), author its ``authorDisplayName`` (the
``@handle`` YouTube shows; the channel id where it is missing), URL
``https://www.youtube.com/watch?v=<video>&lc=<comment>``, likes its ``likeCount`` and
replies the thread's ``totalReplyCount``. YouTube gives no language; replies are not read.

Cursor shape (JSON)::

    {"streams": {"<channel or video id>": {"since": <epoch seconds>, "seen": ["<id>", ...]}}}

``since`` is the newest ``publishedAt`` of the stream and ``seen`` the comment ids at that
second; paging stops at the first comment older than ``since`` (or, on a stream's first
poll, older than ``lookback``: that poll is a backfill). When ``page_limit`` pages did not
reach it, ``notes["truncated"]`` counts the streams cut short (older comments are skipped).

Errors, from Google's JSON error body (``error.errors[].reason``): ``quotaExceeded`` /
``dailyLimitExceeded`` → :class:`RateLimited` for :data:`QUOTA_WAIT` (the daily quota
resets at midnight Pacific time), ``rateLimitExceeded`` and the like →
:class:`RateLimited` for :data:`RATE_WAIT`; ``commentsDisabled`` on one video → a partial
failure (the other videos are still read, ``notes["comments_disabled"]`` counts them);
``videoNotFound`` / ``channelNotFound`` → :class:`SourceRejected` naming the id; an invalid
key (400) and any other 4xx → :class:`SourceRejected`; 5xx and timeouts →
:class:`SourceUnavailable`; a body that is not the documented JSON →
:class:`MalformedResponse`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from listener.collectors.base import Cursor, PollResult, since_seen
from listener.collectors.fetch import redact_url, source_fetcher
from listener.collectors.rss import html_to_text
from listener.collectors.text import cap_text
from listener.config.schema import BrandConfig, YouTubeSourceConfig
from listener.errors import CollectorError, MalformedResponse, RateLimited, SourceRejected
from listener.model import Author, Engagement, Mention

ENDPOINT = "commentThreads"
"""The one endpoint read, and the name messages give it."""

PAGE_SIZE = 100
"""``maxResults``: the most the API returns per page."""

QUOTA_WAIT = 3600.0
"""Seconds to wait once the daily quota is spent (the longest wait the pipeline honours;
the quota itself resets at midnight Pacific time)."""

RATE_WAIT = 60.0
"""Seconds to wait after a per-minute or per-user rate limit."""

MAX_SEEN = 1000
"""At most this many comment ids are kept for a stream's newest second."""

QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
NOT_FOUND_REASONS = frozenset({"videoNotFound", "channelNotFound"})
KEPT_STATUSES = frozenset({400, 401, 403, 404})
"""4xx answers whose Google error body is read for its reason."""


class CommentsDisabled(SourceRejected):
    """One video has its comments turned off: a partial failure of the poll."""


@dataclass(frozen=True, slots=True)
class Stream:
    """One target: the channel or one video. ``key`` names it in the cursor."""

    key: str
    param: str  # "allThreadsRelatedToChannelId" or "videoId"

    @property
    def label(self) -> str:
        return f"channel {self.key}" if self.param != "videoId" else f"video {self.key}"


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def published_at(value: Any) -> datetime | None:
    """An RFC 3339 ``publishedAt`` as an aware UTC datetime; ``None`` when unreadable."""
    text = _str(value)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def comment_url(video_id: str, comment_id: str) -> str:
    """The watch page of ``video_id`` with ``comment_id`` highlighted."""
    return "https://www.youtube.com/watch?" + urlencode({"v": video_id, "lc": comment_id})


def thread_mention(source: str, thread: Mapping[str, Any]) -> Mention | None:
    """A mention from one ``youtube#commentThread`` (its top-level comment; pure); ``None``
    without a comment id, a readable ``publishedAt`` or a video."""
    snippet = thread.get("snippet")
    if not isinstance(snippet, Mapping):
        return None
    top = snippet.get("topLevelComment")
    if not isinstance(top, Mapping):
        return None
    comment = top.get("snippet")
    comment_id = _str(top.get("id"))
    video_id = _str(snippet.get("videoId")) or (
        _str(comment.get("videoId")) if isinstance(comment, Mapping) else ""
    )
    if not isinstance(comment, Mapping) or not comment_id or not video_id:
        return None
    created = published_at(comment.get("publishedAt"))
    if created is None:
        return None
    text = comment.get("textOriginal")
    if not isinstance(text, str):
        text = html_to_text(_str(comment.get("textDisplay")))
    channel = comment.get("authorChannelId")
    channel_id = _str(channel.get("value")) if isinstance(channel, Mapping) else ""
    display = _str(comment.get("authorDisplayName"))
    return Mention(
        source=source,
        id=comment_id,
        text=cap_text(text.strip()),
        created_at=created,
        url=comment_url(video_id, comment_id),
        author=Author(handle=display or channel_id or None, display_name=display or None),
        engagement=Engagement(
            likes=_count(comment.get("likeCount")),
            replies=_count(snippet.get("totalReplyCount")),
        ),
    )


def google_error(body: bytes) -> tuple[list[str], str]:
    """``(reasons, message)`` of a Google API error body (``{"error": {"errors":
    [{"reason": ...}], "details": [{"reason": ...}], "message": ...}}``); empty when the
    body is not one."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return [], ""
    error = data.get("error") if isinstance(data, Mapping) else None
    if not isinstance(error, Mapping):
        return [], ""
    reasons: list[str] = []
    for key in ("errors", "details"):
        items = error.get(key)
        if isinstance(items, list):
            reasons += [_str(i.get("reason")) for i in items if isinstance(i, Mapping)]
    return [r for r in reasons if r], html_to_text(_str(error.get("message")))[:300]


def _raise_for_error(status: int, body: bytes, stream: Stream, key: str, where: str) -> None:
    """Map a kept 4xx to our errors. Google's message is scrubbed of the key (it never
    names it, but a message is not a place to find out)."""
    reasons, message = google_error(body)
    message = message.replace(key, "…") if key else message
    reason = reasons[0] if reasons else f"HTTP {status}"
    detail = f"{reason}: {message}" if message else reason
    at = f"{where}: {ENDPOINT} for {stream.label}"
    if QUOTA_REASONS.intersection(reasons):
        raise RateLimited(
            f"{at}: daily quota exceeded ({detail}); it resets at midnight Pacific time",
            QUOTA_WAIT,
        )
    if RATE_REASONS.intersection(reasons):
        raise RateLimited(f"{at}: rate limited ({detail})", RATE_WAIT)
    if "commentsDisabled" in reasons:
        raise CommentsDisabled(f"{at}: comments are disabled ({detail})")
    if NOT_FOUND_REASONS.intersection(reasons) or status == 404:
        raise SourceRejected(f"{at}: {stream.label} not found ({detail})")
    if status == 400 and {"keyInvalid", "API_KEY_INVALID"}.intersection(reasons):
        raise SourceRejected(f"{at}: the API key was refused ({detail})")
    raise SourceRejected(f"{at}: HTTP {status} ({detail})")


def _page(body: bytes, stream: Stream, where: str) -> tuple[list[Mapping[str, Any]], str]:
    """The threads of one page and its ``nextPageToken`` (``""`` on the last page)."""
    at = f"{where}: {ENDPOINT} for {stream.label}"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"{at}: invalid JSON ({exc})") from exc
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"{at}: the answer is not a JSON object")
    items = data.get("items", [])
    if not isinstance(items, list):
        raise MalformedResponse(f"{at}: 'items' is not a list")
    return [i for i in items if isinstance(i, Mapping)], _str(data.get("nextPageToken"))


def _stream_state(cursor: Cursor | None, key: str) -> tuple[int, set[str]] | None:
    """``(since, seen)`` of one stream in ``cursor``; ``None`` when it has none."""
    streams = cursor.get("streams") if isinstance(cursor, Mapping) else None
    return since_seen(streams.get(key)) if isinstance(streams, Mapping) else None


class YouTubeCollector:
    """Reads the comment threads of a channel or of listed videos; see the module docstring."""

    name: str

    def __init__(
        self,
        name: str,
        config: YouTubeSourceConfig,
        brands: Sequence[BrandConfig] = (),
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._key = config.api_key.get_secret_value()
        if config.channel_id is not None:
            self.streams = [Stream(config.channel_id, "allThreadsRelatedToChannelId")]
        else:
            self.streams = [Stream(v, "videoId") for v in config.video_ids]
        self._where = redact_url(config.api_url)
        self._fetcher = source_fetcher(config, transport)

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        now = now.astimezone(UTC)
        mentions: dict[str, Mention] = {}
        streams: dict[str, Any] = {}
        errors: list[CollectorError] = []
        backfill = False
        truncated = 0
        for stream in self.streams:
            state = _stream_state(cursor, stream.key)
            if state is None:
                backfill = True
                state = (int((now - self._config.lookback).timestamp()), set())
            try:
                found, state, complete = self._read(stream, *state)
            except CommentsDisabled as exc:
                errors.append(exc)
                found, complete = [], True
            for mention in found:
                mentions.setdefault(mention.id, mention)
            truncated += not complete
            streams[stream.key] = {"since": state[0], "seen": sorted(state[1])[-MAX_SEEN:]}
        return PollResult(
            mentions=sorted(mentions.values(), key=lambda m: m.created_at, reverse=True),
            cursor={"streams": streams},
            errors=errors,
            notes={
                "streams": len(self.streams),
                "truncated": truncated,
                "comments_disabled": len(errors),
            },
            backfill=backfill,
        )

    def _read(
        self, stream: Stream, since: int, seen: set[str]
    ) -> tuple[list[Mention], tuple[int, set[str]], bool]:
        """One stream, newest first, until a comment older than ``since`` or the end, at
        most ``page_limit`` pages. Returns the new mentions, the stream's new state and
        whether the pages reached ``since`` (or the end)."""
        found: list[Mention] = []
        newest, newest_ids = since, set(seen)
        token = ""
        for _ in range(self._config.page_limit):
            threads, token = self._get(stream, token)
            older = False
            for thread in threads:
                mention = thread_mention(self.name, thread)
                if mention is None:
                    continue
                at = int(mention.created_at.timestamp())
                if at < since:
                    older = True
                    break
                if mention.id in seen:
                    continue
                found.append(mention)
                if at > newest:
                    newest, newest_ids = at, {mention.id}
                elif at == newest:
                    newest_ids.add(mention.id)
            if older or not token:
                return found, (newest, newest_ids), True
        return found, (newest, newest_ids), False

    def _get(self, stream: Stream, token: str) -> tuple[list[Mapping[str, Any]], str]:
        params = {
            "part": "snippet",
            stream.param: stream.key,
            "order": "time",
            "maxResults": str(PAGE_SIZE),
            "textFormat": "plainText",
        }
        if token:
            params["pageToken"] = token
        params["key"] = self._key
        url = f"{self._config.api_url}/{ENDPOINT}?{urlencode(params)}"
        # the fetcher's own errors (5xx, timeouts, 429, caps) name the path, never the query
        response = self._fetcher.get(url, {"Accept": "application/json"}, keep=KEPT_STATUSES)
        if response.status >= 400:
            _raise_for_error(response.status, response.body, stream, self._key, self._where)
        return _page(response.body, stream, self._where)

    def close(self) -> None:
        """Close the HTTP client."""
        self._fetcher.close()
