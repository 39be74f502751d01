"""Reddit collector: praw with client credentials, Reddit's public search feeds without.

**With credentials** (``client_id`` and ``client_secret``): a read-only ``praw.Reddit``
(application-only OAuth) over a ``requests.Session`` guarded by
:func:`~listener.collectors.requests_http.guard_session` (timeout, byte cap, and
``api_url``/``auth_url`` rewrites). Each poll runs one *stream* per brand query and one
comments stream:

* search: ``subreddit("a+b" or "all").search(simple_query(brand), sort="new",
  time_filter=...)``; ``time_filter`` is the smallest of day/week/month/year/all that
  covers the span back to the cursor (first poll: back to ``now - lookback``);
* comments (``comments: true`` and at least one subreddit): Reddit's API has no comment
  search, so the newest comments of the configured subreddits are read
  (``subreddit("a+b").comments()``) and only those whose body mentions a brand term
  (the brand matcher's rules, exclusions included) are kept. Site-wide (no
  ``subreddits``) there is no comments stream.

Listings are newest first; a stream stops at the first item at or before its cursor
(the newest fullname and ``created_utc`` it saw), and at ``page_limit`` requests of 100
items (a burst larger than that within one interval keeps its newest items). The first
poll of a stream keeps only items newer than ``now - lookback`` and sets
``PollResult.backfill``.

**Bounded inside praw.** The collector's session takes three things away from prawcore
so that a poll never sleeps or retries inside it (the pipeline owns backoff):

* prawcore's ``RateLimiter`` paces requests from the ``x-ratelimit-*`` headers (up to
  10 s per request, or until the window resets once ``remaining`` hits 0). The session
  reads ``x-ratelimit-remaining`` itself (``PollResult.quota_remaining``) and removes it
  before prawcore sees the response, so prawcore never paces. When it reaches 0, later
  API requests fail at once with :class:`RateLimited` (``retry_after`` from
  ``x-ratelimit-reset``) without being sent, until the window resets.
* prawcore retries timeouts, connection errors and 408/5xx twice, sleeping 2–4 s and
  0–2 s. The session turns those into errors prawcore does not retry, so each becomes
  one :class:`SourceUnavailable` after at most one ``timeout``.
* The one retry left is prawcore's on a 401 from the API (an expired token): it waits
  0–2 s and retries once with a fresh token.

praw's own ``timeout`` setting is ignored by praw 8; the guarded adapter imposes the
source's ``timeout`` on every request.

**Without credentials**: Reddit's public search feeds,
``{public_url}/search.rss?q=<query>&sort=new`` (or
``/r/<a+b>/search.rss?q=...&restrict_sr=on&sort=new``), fetched with
:class:`~listener.collectors.fetch.HttpFetcher` (conditional GET) and parsed with
:func:`~listener.collectors.rss.parse_feed`. Feeds carry no scores or comment counts, and
there is no comments stream.

Both paths produce the same mentions: ``id`` is the fullname (``t3_…``, ``t1_…``), so
switching paths does not duplicate; ``url`` is ``https://www.reddit.com`` + permalink;
``text`` is title + selftext (submissions) or the body (comments); ``title`` is the
submission title; ``author.handle`` is the account name (``None`` when deleted).

Cursor shape (JSON)::

    {"streams": {"<stream key>": {"fullname": "t3_…" | None, "created_utc": float,
                                  "etag": str | None, "modified": str | None}}}

``etag``/``modified`` are kept for feeds only. A failed stream keeps its old state.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, urljoin, urlsplit

import httpx
import praw
import praw.exceptions
import prawcore
import requests

from listener.collectors.base import Cursor, PollResult
from listener.collectors.fetch import (
    DEFAULT_USER_AGENT,
    HttpFetcher,
    parse_retry_after,
    redact_url,
    source_fetcher,
)
from listener.collectors.queries import brands_for, simple_query
from listener.collectors.requests_http import ResponseTooLarge, guard_session
from listener.collectors.rss import ACCEPT, parse_feed
from listener.collectors.text import cap_text, join_title
from listener.config.schema import BrandConfig, RedditSourceConfig
from listener.errors import (
    CollectorError,
    ListenerError,
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.matching.brands import BrandMatcher
from listener.model import Author, Engagement, Mention

REDDIT_SITE = "https://www.reddit.com"
"""Base of every mention URL (``REDDIT_SITE + permalink``), whatever ``public_url`` is."""

PAGE_SIZE = 100
"""Items per listing request (Reddit's maximum)."""

_API_HOST = "oauth.reddit.com"
_AUTH_HOST = "www.reddit.com"
_REAL_API_URL = "https://oauth.reddit.com"
_REAL_AUTH_URL = "https://www.reddit.com"
_RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 522})
"""The statuses prawcore would retry (with sleeps); the session fails them at once."""
_TIME_FILTERS = (
    (86_400.0, "day"),
    (7 * 86_400.0, "week"),
    (31 * 86_400.0, "month"),
    (366 * 86_400.0, "year"),
)
_GONE = frozenset({"[deleted]", "[removed]"})
_FULLNAME = re.compile(r"^t[0-9]_[0-9a-z]+$")
_COMMENTS_PATH = re.compile(r"/comments/([0-9a-z]+)(?:/|$)", re.IGNORECASE)
_FEED_TRAILER = re.compile(r"\s*submitted by\s+\S+(?:\s*\[link\])?(?:\s*\[comments\])?\s*$")
_SHAPE_ERRORS = (LookupError, TypeError, ValueError, AttributeError)
"""What praw raises while turning an unexpected JSON document into objects."""


# --------------------------------------------------------------------------- session


class _StopRequest(ListenerError):
    """Raised by the session instead of sending (or after receiving) a request.

    Not a ``requests`` exception, so prawcore wraps it in ``RequestException`` and does
    not retry it."""


class _QuotaSpent(_StopRequest):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate-limit window spent; resets in {retry_after:.0f}s")
        self.retry_after = retry_after


class _PagesSpent(_StopRequest):
    """The stream's ``page_limit`` is used up: the normal end of a stream."""


class _Unavailable(_StopRequest):
    """A timeout, connection error or retryable status (that prawcore would retry)."""


class _RedditSession(requests.Session):
    """The session praw uses: reads the quota, enforces it and the page budget, and
    keeps prawcore from pacing or retrying (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self.quota_remaining: int | None = None
        self.blocked_until: float | None = None
        self.pages_left: int | None = None
        self.api_requests = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        api = urlsplit(request.url or "").hostname != _AUTH_HOST
        if api:
            if self.blocked_until is not None:
                wait = self.blocked_until - self._clock()
                if wait > 0:
                    raise _QuotaSpent(wait)
                self.blocked_until = None
            if self.pages_left is not None:
                if self.pages_left <= 0:
                    raise _PagesSpent("page limit reached")
                self.pages_left -= 1
            self.api_requests += 1
        try:
            response = super().send(request, **kwargs)
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise _Unavailable(_describe(exc)) from exc
        self._read_quota(response.headers)
        if response.status_code in _RETRYABLE_STATUSES:
            response.close()
            raise _Unavailable(f"HTTP {response.status_code}")
        return response

    def _read_quota(self, headers: requests.structures.CaseInsensitiveDict[str]) -> None:
        # Removing the header is what keeps prawcore's RateLimiter from pacing: without it
        # the limiter only counts requests and never schedules a sleep.
        remaining = _number(headers.pop("x-ratelimit-remaining", None))
        if remaining is None:
            return
        self.quota_remaining = max(0, int(remaining))
        if remaining <= 0:
            reset = _number(headers.get("x-ratelimit-reset")) or 0.0
            self.blocked_until = self._clock() + max(1.0, reset)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return f"timed out ({type(exc).__name__})"
    return type(exc).__name__


def _number(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


# --------------------------------------------------------------------------- errors


def _translate(exc: BaseException, where: str) -> CollectorError:
    """A praw/prawcore/requests error as one of ours."""
    if isinstance(exc, prawcore.RequestException):
        original = exc.original_exception
        if isinstance(original, CollectorError):  # ours, raised in the session
            return original
        if isinstance(original, _QuotaSpent):
            return RateLimited(f"{where}: {original}", original.retry_after)
        if isinstance(original, _Unavailable):
            return SourceUnavailable(f"{where}: {original}")
        if isinstance(original, ResponseTooLarge):
            return MalformedResponse(f"{where}: {original}")
        if isinstance(original, requests.exceptions.ContentDecodingError):
            return MalformedResponse(f"{where}: could not decode the body")
        if isinstance(original, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema):
            return SourceRejected(f"{where}: unusable URL ({type(original).__name__})")
        return SourceUnavailable(f"{where}: {_describe(original)}")
    if isinstance(exc, prawcore.TooManyRequests):
        headers = {k.lower(): v for k, v in exc.response.headers.items()}
        retry_after = parse_retry_after(headers, time.time())
        suffix = f", retry after {retry_after:g}s" if retry_after is not None else ""
        return RateLimited(f"{where}: HTTP 429 rate limited{suffix}", retry_after)
    if isinstance(exc, prawcore.BadJSON):
        return MalformedResponse(f"{where}: the response is not valid JSON")
    if isinstance(exc, prawcore.Redirect):
        return SourceRejected(f"{where}: redirected to {exc.path} (does the subreddit exist?)")
    if isinstance(exc, prawcore.ResponseException):
        status = exc.response.status_code
        token = urlsplit(exc.response.url or "").path.rstrip("/").endswith("/access_token")
        if token and status in (400, 401, 403):
            return SourceRejected(
                f"{where}: Reddit refused the client credentials (HTTP {status}); "
                "check client_id and client_secret"
            )
        if status == 429:
            headers = {k.lower(): v for k, v in exc.response.headers.items()}
            return RateLimited(
                f"{where}: HTTP 429 rate limited", parse_retry_after(headers, time.time())
            )
        if status == 408 or status >= 500:
            return SourceUnavailable(f"{where}: HTTP {status}")
        return SourceRejected(f"{where}: HTTP {status} ({type(exc).__name__})")
    if isinstance(exc, prawcore.OAuthException):
        return SourceRejected(f"{where}: Reddit refused the client credentials ({exc.error})")
    if isinstance(exc, prawcore.PrawcoreException | praw.exceptions.PRAWException):
        return SourceRejected(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        return MalformedResponse(f"{where}: the response is not valid JSON")
    if isinstance(exc, requests.exceptions.RequestException):
        return SourceUnavailable(f"{where}: {_describe(exc)}")
    return MalformedResponse(f"{where}: unexpected response shape ({type(exc).__name__})")


_CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    prawcore.PrawcoreException,
    praw.exceptions.PRAWException,
    requests.exceptions.RequestException,
    *_SHAPE_ERRORS,
)


# --------------------------------------------------------------------------- mentions


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _name_of(value: object, attribute: str) -> str:
    """A praw object's name without a lazy fetch (``Redditor.name``,
    ``Subreddit.display_name``), or the plain string Reddit sent."""
    if isinstance(value, str):
        return value.strip()
    data = getattr(value, "__dict__", None)
    return _str(data.get(attribute)) if isinstance(data, dict) else ""


def _handle(value: object) -> str | None:
    name = _name_of(value, "name").removeprefix("/u/").removeprefix("u/")
    return None if not name or name in _GONE else name


def _site_url(permalink: str) -> str | None:
    path = urlsplit(permalink).path if permalink else ""
    return REDDIT_SITE + path if path.startswith("/") else None


def _fullname(data: Mapping[str, Any], prefix: str) -> str | None:
    name = _str(data.get("name"))
    if _FULLNAME.match(name):
        return name
    ident = _str(data.get("id"))
    return prefix + ident if ident else None


def submission_mention(source: str, data: Mapping[str, Any]) -> Mention | None:
    """A mention from a submission's data (``vars(praw.models.Submission)`` or the raw
    listing child); ``None`` without an id or a usable ``created_utc``."""
    fullname = _fullname(data, "t3_")
    created = _timestamp(data.get("created_utc"))
    if fullname is None or created is None:
        return None
    title = _str(data.get("title"))
    selftext = _str(data.get("selftext"))
    if selftext in _GONE:
        selftext = ""
    return Mention(
        source=source,
        id=fullname,
        text=cap_text(join_title(title, selftext)),
        created_at=created,
        url=_site_url(_str(data.get("permalink"))),
        author=Author(handle=_handle(data.get("author"))),
        engagement=Engagement(
            upvotes=_int(data.get("score")), comments=_int(data.get("num_comments"))
        ),
        title=title or None,
    )


def comment_mention(source: str, data: Mapping[str, Any]) -> Mention | None:
    """A mention from a comment's data; ``None`` without an id or ``created_utc``."""
    fullname = _fullname(data, "t1_")
    created = _timestamp(data.get("created_utc"))
    if fullname is None or created is None:
        return None
    permalink = _str(data.get("permalink"))
    if not permalink:
        subreddit = _name_of(data.get("subreddit"), "display_name")
        link = _str(data.get("link_id")).removeprefix("t3_")
        if subreddit and link:
            permalink = f"/r/{subreddit}/comments/{link}/_/{fullname.removeprefix('t1_')}/"
    body = _str(data.get("body"))
    return Mention(
        source=source,
        id=fullname,
        text=cap_text("" if body in _GONE else body),
        created_at=created,
        url=_site_url(permalink),
        author=Author(handle=_handle(data.get("author"))),
        engagement=Engagement(upvotes=_int(data.get("score"))),
    )


def feed_mention(mention: Mention) -> Mention:
    """A mention parsed from a Reddit feed entry, in the API path's shape: the fullname
    as id, the bare account name as handle, the "submitted by … [link] [comments]"
    trailer removed from the text, and no language."""
    ident = mention.id
    if not _FULLNAME.match(ident):
        found = _COMMENTS_PATH.search(urlsplit(mention.url or ident).path)
        if found:
            ident = "t3_" + found.group(1).lower()
    title = mention.title or ""
    text = _FEED_TRAILER.sub("", mention.text).rstrip()
    if title and text in (title, title + "."):
        text = title
    url = mention.url
    if url:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if (host == "reddit.com" or host.endswith(".reddit.com")) and parts.path.startswith("/"):
            url = REDDIT_SITE + parts.path
    return dataclasses.replace(
        mention,
        id=ident,
        text=text,
        url=url,
        author=Author(handle=_handle(mention.author.handle)),
        language=None,
    )


# --------------------------------------------------------------------------- streams


@dataclass(frozen=True, slots=True)
class _Mark:
    """Where a stream stopped: the newest item it saw."""

    fullname: str | None
    created_utc: float

    @classmethod
    def load(cls, state: object) -> _Mark | None:
        if not isinstance(state, Mapping):
            return None
        created = state.get("created_utc")
        if isinstance(created, bool) or not isinstance(created, int | float):
            return None
        fullname = state.get("fullname")
        return cls(fullname if isinstance(fullname, str) else None, float(created))

    def is_new(self, fullname: str, created: float) -> bool:
        """Whether an item is after this mark (items in the same second count as new)."""
        return fullname != self.fullname and created >= self.created_utc


@dataclass(frozen=True, slots=True)
class _Stream:
    key: str
    kind: str  # "search", "comments" or "feed"
    subreddits: str
    query: str = ""
    url: str = ""


class _Window:
    """Decides which items of one stream are new and tracks the newest one seen."""

    def __init__(self, mark: _Mark | None, floor: float) -> None:
        self.mark = mark
        self.floor = floor
        self.newest: _Mark | None = None

    def admit(self, fullname: str, created: float) -> bool:
        """Whether the item is new; records it as the newest when it is."""
        if self.mark is not None:
            fresh = self.mark.is_new(fullname, created)
        else:
            fresh = created > self.floor
        if fresh and (self.newest is None or created > self.newest.created_utc):
            self.newest = _Mark(fullname, created)
        return fresh

    def state(self) -> dict[str, Any]:
        mark = self.newest or self.mark or _Mark(None, self.floor)
        return {"fullname": mark.fullname, "created_utc": mark.created_utc}


def _time_filter(span_seconds: float) -> str:
    for limit, name in _TIME_FILTERS:
        if span_seconds <= limit:
            return name
    return "all"


def _clean_subreddit(name: str) -> str:
    name = name.strip().strip("/")
    for prefix in ("r/", "R/"):
        name = name.removeprefix(prefix)
    return name


# --------------------------------------------------------------------------- collector


class RedditCollector:
    """Polls Reddit for the brands' mentions; see the module docstring.

    A stream that fails with :class:`SourceRejected` or :class:`MalformedResponse` is
    reported in :attr:`PollResult.errors` and the next stream is polled; a
    :class:`SourceUnavailable` or :class:`RateLimited` ends the poll (the other streams
    would wait on the same trouble). When no stream succeeded the first error is raised.
    """

    name: str

    def __init__(
        self,
        name: str,
        config: RedditSourceConfig,
        brands: Sequence[BrandConfig],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._brands = brands_for(config, brands)
        self._matcher = BrandMatcher(self._brands)
        self._subreddits = "+".join(
            dict.fromkeys(s for s in (_clean_subreddit(n) for n in config.subreddits) if s)
        )
        self._page_limit = config.page_limit
        self._lookback = config.lookback.total_seconds()
        user_agent = config.user_agent or DEFAULT_USER_AGENT
        client_id = config.client_id.get_secret_value().strip() if config.client_id else ""
        secret = config.client_secret.get_secret_value().strip() if config.client_secret else ""
        self._session: _RedditSession | None = None
        self._reddit: praw.Reddit | None = None
        self._fetcher: HttpFetcher | None = None
        self._feed_quota: int | None = None
        if client_id and secret:
            session = _RedditSession()
            guard_session(
                session,
                timeout=config.timeout.total_seconds(),
                max_bytes=config.max_bytes,
                hosts={
                    _API_HOST: _rewrite(config.api_url, _REAL_API_URL),
                    _AUTH_HOST: _rewrite(config.auth_url, _REAL_AUTH_URL),
                },
            )
            self._session = session
            try:
                self._reddit = praw.Reddit(
                    client_id=client_id,
                    client_secret=secret,
                    user_agent=user_agent,
                    check_for_updates=False,
                    check_for_async=False,
                    # set explicitly so that no praw.ini can point the credentials elsewhere
                    oauth_url=_REAL_API_URL,
                    reddit_url=_REAL_AUTH_URL,
                    username=None,
                    password=None,
                    requestor_kwargs={"session": session},
                )
            except (prawcore.PrawcoreException, praw.exceptions.PRAWException) as exc:
                session.close()
                raise ValueError(f"source {name!r}: praw refused the settings: {exc}") from exc
        else:
            self._fetcher = source_fetcher(config, transport)
        self._streams = self._plan()

    @property
    def uses_api(self) -> bool:
        """True with client credentials (praw), False on the public-feed path."""
        return self._reddit is not None

    def _plan(self) -> list[_Stream]:
        subs = self._subreddits
        streams: dict[str, _Stream] = {}
        for brand in self._brands:
            query = simple_query(brand)
            if not query:
                continue
            if self._reddit is not None:
                key = f"search {subs or 'all'} {query}"
                streams.setdefault(key, _Stream(key, "search", subs or "all", query=query))
            else:
                url = _feed_url(self._config.public_url, subs, query)
                key = f"feed {url}"
                streams.setdefault(key, _Stream(key, "feed", subs, query=query, url=url))
        if self._reddit is not None and self._config.comments and subs and self._brands:
            key = f"comments {subs}"
            streams[key] = _Stream(key, "comments", subs)
        return list(streams.values())

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        stored = (cursor or {}).get("streams")
        previous: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
        states: dict[str, Any] = {}
        mentions: list[Mention] = []
        errors: list[CollectorError] = []
        backfill = False
        succeeded = 0
        self._feed_quota = None
        sent_before = 0
        if self._session is not None:
            self._session.quota_remaining = None
            sent_before = self._session.api_requests
        for index, stream in enumerate(self._streams):
            old = previous.get(stream.key)
            try:
                found, state = self._poll_stream(stream, old, now)
            except CollectorError as exc:
                errors.append(exc)
                # An outage or a rate limit would hit every later stream too: stop here.
                fatal = isinstance(exc, SourceUnavailable | RateLimited)
                for kept in self._streams[index : None if fatal else index + 1]:
                    if isinstance(previous.get(kept.key), Mapping):
                        states[kept.key] = dict(previous[kept.key])
                if fatal:
                    break
                continue
            succeeded += 1
            states[stream.key] = state
            backfill = backfill or _Mark.load(old) is None
            mentions.extend(found)
        if errors and succeeded == 0:
            raise errors[0]
        notes: dict[str, Any] = {
            "path": "api" if self._reddit is not None else "feed",
            "streams": len(self._streams),
            "failed": len(errors),
        }
        quota = self._feed_quota
        if self._session is not None:
            quota = self._session.quota_remaining
            notes["requests"] = self._session.api_requests - sent_before
        unique = list({m.id: m for m in reversed(mentions)}.values())[::-1]
        return PollResult(
            mentions=unique,
            cursor={"streams": states},
            errors=errors,
            notes=notes,
            backfill=backfill,
            quota_remaining=quota,
        )

    def _poll_stream(
        self, stream: _Stream, old: object, now: datetime
    ) -> tuple[list[Mention], dict[str, Any]]:
        window = _Window(_Mark.load(old), now.timestamp() - self._lookback)
        if stream.kind == "feed":
            return self._poll_feed(stream, old, window, now)
        return self._poll_listing(stream, window, now), window.state()

    # ------------------------------------------------------------------ api path

    def _poll_listing(self, stream: _Stream, window: _Window, now: datetime) -> list[Mention]:
        reddit, session = self._reddit, self._session
        assert reddit is not None
        assert session is not None
        limit = PAGE_SIZE * self._page_limit
        subreddit = reddit.subreddit(stream.subreddits)
        listing: Iterator[Any]
        convert: Callable[[str, Mapping[str, Any]], Mention | None]
        if stream.kind == "search":
            where = f"reddit search r/{stream.subreddits} {stream.query!r}"
            since = window.mark.created_utc if window.mark is not None else window.floor
            listing = subreddit.search(
                stream.query,
                sort="new",
                time_filter=_time_filter(now.timestamp() - since),
                limit=limit,
            )
            convert = submission_mention
        else:
            where = f"reddit comments r/{stream.subreddits}"
            listing = subreddit.comments(limit=limit)
            convert = comment_mention
        found: list[Mention] = []
        session.pages_left = self._page_limit
        try:
            for item in listing:
                mention = convert(self.name, vars(item))
                if mention is None:
                    continue
                if not window.admit(mention.id, mention.created_at.timestamp()):
                    break  # listings are newest first: the rest is older
                if stream.kind == "search" or self._matcher.match(mention.text):
                    found.append(mention)
        except prawcore.RequestException as exc:
            if not isinstance(exc.original_exception, _PagesSpent):
                raise _translate(exc, where) from exc
        except _CLIENT_ERRORS as exc:
            raise _translate(exc, where) from exc
        finally:
            session.pages_left = None
        return found

    # ------------------------------------------------------------------ feed path

    def _poll_feed(
        self, stream: _Stream, old: object, window: _Window, now: datetime
    ) -> tuple[list[Mention], dict[str, Any]]:
        fetcher = self._fetcher
        assert fetcher is not None
        previous: Mapping[str, Any] = old if isinstance(old, Mapping) else {}
        headers = {"Accept": ACCEPT}
        etag, modified = previous.get("etag"), previous.get("modified")
        if isinstance(etag, str) and etag:
            headers["If-None-Match"] = etag
        if isinstance(modified, str) and modified:
            headers["If-Modified-Since"] = modified
        response = fetcher.get(stream.url, headers)
        remaining = _number(response.headers.get("x-ratelimit-remaining"))
        if remaining is not None:
            self._feed_quota = max(0, int(remaining))
        validators = {"etag": etag, "modified": modified}
        if response.status in (204, 205, 304):
            return [], {**window.state(), **validators}
        feed_headers = dict(response.headers)
        feed_headers["content-location"] = urljoin(
            response.url, feed_headers.get("content-location", "")
        )
        try:
            parsed = parse_feed(self.name, response.body, feed_headers, now)
        except MalformedResponse as exc:
            raise MalformedResponse(f"{redact_url(response.url)}: {exc}") from exc
        found = [
            m
            for m in (feed_mention(p) for p in parsed)
            if window.admit(m.id, m.created_at.timestamp())
        ]
        state = {
            **window.state(),
            "etag": response.headers.get("etag"),
            "modified": response.headers.get("last-modified"),
        }
        return found, state

    def close(self) -> None:
        """Close the HTTP session or client. Idempotent."""
        if self._session is not None:
            self._session.close()
        if self._fetcher is not None:
            self._fetcher.close()


def _rewrite(configured: str, real: str) -> str | None:
    """The base URL to send a real host's requests to, or ``None`` to keep the host."""
    configured = configured.rstrip("/")
    return None if configured == real else configured


def _feed_url(public_url: str, subreddits: str, query: str) -> str:
    base = public_url.rstrip("/")
    q = quote_plus(query)
    if subreddits:
        return f"{base}/r/{subreddits}/search.rss?q={q}&restrict_sr=on&sort=new"
    return f"{base}/search.rss?q={q}&sort=new"


__all__ = [
    "PAGE_SIZE",
    "REDDIT_SITE",
    "RedditCollector",
    "comment_mention",
    "feed_mention",
    "submission_mention",
]
