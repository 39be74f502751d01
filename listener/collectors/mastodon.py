"""Mastodon collector: public hashtag timelines, and status search with a token, through
Mastodon.py.

Without credentials it reads the public timeline of every configured hashtag
(``hashtags``, default: the brands' hashtags) on ``instance``. With ``access_token`` it
also searches statuses for every brand (``/api/v2/search``, which Mastodon answers with
statuses only for authenticated requests); Mastodon's query parser ORs plain terms, so
one query per brand lists its aliases and keywords, phrases quoted.

Cursor shape (JSON)::

    {"tags": {"<hashtag>": "<newest status id>"}, "search": {"<brand name>": "<newest id>"}}

(``""``: read before, nothing seen yet.)

A hashtag is read newest first with ``since_id`` = its cursor, paging down with
``max_id``; a search uses ``min_id`` = its cursor and ``offset`` paging. Either stops
after ``page_limit`` pages. Without a cursor (first poll, or a hashtag or brand added
later) only statuses newer than ``now - lookback`` are kept and the poll is a backfill.

Mastodon.py runs with ``ratelimit_method="throw"`` (it never sleeps) on a requests
session guarded by :func:`~listener.collectors.requests_http.guard_session` (timeout cap
and ``max_bytes``). 429 and unavailability fail the whole poll; a rejected or malformed
answer for one hashtag or search is a partial failure and keeps that cursor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
    MastodonVersionError,
)

from listener.collectors.base import Cursor, PollResult
from listener.collectors.fetch import DEFAULT_USER_AGENT, parse_retry_after, redact_url
from listener.collectors.queries import brands_for, quoted
from listener.collectors.requests_http import ResponseTooLarge, guard_session
from listener.collectors.rss import html_to_text
from listener.collectors.text import as_count, cap_text
from listener.config.schema import BrandConfig, MastodonSourceConfig
from listener.errors import (
    CollectorError,
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.model import Author, Engagement, Mention

PAGE_SIZE = 40
"""Statuses asked for per page (the most Mastodon serves)."""

ASSUMED_VERSION = "4.0.0"
"""The Mastodon version Mastodon.py is told (search with ``min_id``/``offset`` needs 2.8)."""


def _id_key(value: str) -> tuple[int, str]:
    """Order of Mastodon ids: numeric strings compare by length, then digits."""
    return (len(value), value)


def _newer(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if _id_key(a) >= _id_key(b) else b


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return None


def _status_id(status: Mapping[str, Any]) -> str | None:
    value = status.get("id")
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def status_mention(source: str, host: str, status: Mapping[str, Any]) -> Mention | None:
    """A mention from one Mastodon status (pure). ``id`` is ``<host>:<status id>``; a
    reblog carries the original's text and ``reposted_id``. ``None`` without id or time."""
    sid = _status_id(status)
    created = _time(status.get("created_at"))
    if sid is None or created is None:
        return None
    reblog = status.get("reblog")
    original: Mapping[str, Any] = reblog if isinstance(reblog, Mapping) else status
    original_id = _status_id(original) if original is not status else None
    spoiler = html_to_text(_str(original.get("spoiler_text")) or "")
    content = original.get("content")
    body = html_to_text(content if isinstance(content, str) else "")
    text = f"{spoiler} {body}".strip() if spoiler and spoiler != body else body
    text = cap_text(text)
    account = status.get("account")
    account = account if isinstance(account, Mapping) else {}
    url = _str(status.get("url")) or _str(original.get("url")) or _str(status.get("uri"))
    language = _str(original.get("language"))
    return Mention(
        source=source,
        id=f"{host}:{sid}",
        text=text,
        created_at=created,
        url=url,
        author=Author(
            handle=_str(account.get("acct")),
            display_name=_str(account.get("display_name")),
            followers=as_count(account.get("followers_count")),
        ),
        language=language.lower() if language else None,
        engagement=Engagement(
            likes=as_count(status.get("favourites_count")),
            reposts=as_count(status.get("reblogs_count")),
            replies=as_count(status.get("replies_count")),
        ),
        is_repost=original_id is not None,
        reposted_id=f"{host}:{original_id}" if original_id is not None else None,
    )


def hashtags_for(config: MastodonSourceConfig, brands: Sequence[BrandConfig]) -> list[str]:
    """The hashtags to read (without ``#``, lower-cased): the configured ones, else the
    hashtags of the source's brands."""
    tags = config.hashtags or [t for b in brands_for(config, brands) for t in b.hashtags]
    cleaned = (t.strip().lstrip("#").strip().lower() for t in tags)
    return list(dict.fromkeys(t for t in cleaned if t))


def search_query(brand: BrandConfig) -> str:
    """One Mastodon search query for a brand: its aliases (or name) and keywords, phrases
    quoted; Mastodon's parser treats plain terms as alternatives."""
    terms = [t.replace('"', "").strip() for t in (*brand.search_terms, *brand.keywords)]
    return " ".join(dict.fromkeys(quoted(t) for t in terms if t))


class MastodonCollector:
    """Reads hashtag timelines and (with a token) searches one Mastodon instance; see the
    module docstring."""

    name: str

    def __init__(
        self,
        name: str,
        config: MastodonSourceConfig,
        brands: Sequence[BrandConfig] = (),
        *,
        session: requests.Session | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._brands = brands_for(config, brands)
        self._tags = hashtags_for(config, brands)
        base = config.instance.rstrip("/")
        parts = urlsplit(base)
        self._host = parts.hostname or parts.netloc
        self._where = redact_url(base)
        timeout = config.timeout.total_seconds()
        self._session = session if session is not None else requests.Session()
        guard_session(
            self._session, timeout=timeout, max_bytes=config.max_bytes, hosts={parts.netloc: None}
        )
        self._headers: dict[str, str] = {}
        self._quota: int | None = None
        self._session.hooks["response"].append(self._remember)
        token = config.access_token.get_secret_value() if config.access_token else None
        self._search = bool(token)
        self._api = Mastodon(
            api_base_url=base,
            access_token=token or None,
            request_timeout=timeout,
            session=self._session,
            ratelimit_method="throw",
            # an assumed version: Mastodon.py's own detection fetches the instance
            # metadata lazily and recurses without end when that request fails
            mastodon_version=ASSUMED_VERSION,
            version_check_mode="created",
            user_agent=config.user_agent or DEFAULT_USER_AGENT,
        )

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Response hook: keep the last response's headers and the smallest
        ``X-RateLimit-Remaining`` of this poll."""
        self._headers = {k.lower(): v for k, v in response.headers.items()}
        remaining = self._headers.get("x-ratelimit-remaining", "").strip()
        if remaining.isdigit():
            self._quota = min(int(remaining), self._quota if self._quota is not None else 1 << 62)

    # ------------------------------------------------------------------ polling

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        if not self._tags and not self._search:
            raise SourceRejected(
                f"{self._where}: nothing to read: no hashtags (configured or on the brands) "
                "and no access_token for search"
            )
        floor = now.astimezone(UTC) - self._config.lookback
        self._quota = None
        old_tags = _ids((cursor or {}).get("tags"))
        old_search = _ids((cursor or {}).get("search"))
        tags: dict[str, str] = {}
        searches: dict[str, str] = {}
        mentions: dict[str, Mention] = {}
        errors: list[CollectorError] = []
        backfill = False
        units = requests_made = truncated = 0

        def run(cursor: str | None, fetch: Callable[[str | None], list[Any]]) -> str | None:
            """Read one listing; its new cursor ("": read, nothing seen yet; ``None``: a
            first read failed)."""
            nonlocal backfill, units, requests_made, truncated
            units += 1
            if cursor is None:
                backfill = True
            since = cursor or None
            try:
                found, pages, complete = self._pages(fetch, since, floor)
            except (RateLimited, SourceUnavailable):
                raise
            except CollectorError as exc:
                if isinstance(exc.__cause__, MastodonUnauthorizedError):
                    raise  # wrong credentials concern the whole source
                errors.append(exc)
                return cursor
            requests_made += pages
            truncated += not complete
            newest = since
            for status in found:
                sid = _status_id(status)
                if sid is None or (since is not None and _id_key(sid) <= _id_key(since)):
                    continue
                newest = _newer(newest, sid)
                mention = status_mention(self.name, self._host, status)
                if mention is None or (since is None and mention.created_at < floor):
                    continue
                mentions.setdefault(mention.id, mention)
            return newest or ""

        for tag in self._tags:
            cursor_id = old_tags.get(tag)
            new_id = run(cursor_id, self._tag_page(tag, cursor_id or None))
            if new_id is not None:
                tags[tag] = new_id
        if self._search:
            for brand in self._brands:
                query = search_query(brand)
                if not query:
                    continue
                cursor_id = old_search.get(brand.name)
                new_id = run(cursor_id, self._search_page(query, cursor_id or None))
                if new_id is not None:
                    searches[brand.name] = new_id
        if errors and len(errors) == units:
            raise errors[0]
        ordered = sorted(mentions.values(), key=lambda m: m.created_at, reverse=True)
        return PollResult(
            mentions=ordered,
            cursor={"tags": tags, "search": searches},
            errors=errors,
            notes={"queries": units, "requests": requests_made, "truncated": truncated},
            backfill=backfill,
            quota_remaining=self._quota,
        )

    def _tag_page(self, tag: str, since_id: str | None) -> Callable[[str | None], list[Any]]:
        def fetch(max_id: str | None) -> list[Any]:
            return list(
                self._call(
                    f"tag #{tag}",
                    lambda: self._api.timeline_hashtag(
                        tag, since_id=since_id, max_id=max_id, limit=PAGE_SIZE
                    ),
                )
            )

        return fetch

    def _search_page(self, query: str, min_id: str | None) -> Callable[[str | None], list[Any]]:
        offset = 0

        def fetch(_max_id: str | None) -> list[Any]:
            nonlocal offset
            result = self._call(
                "search",
                lambda: self._api.search_v2(
                    query,
                    resolve=False,
                    result_type="statuses",
                    min_id=min_id,
                    offset=offset,
                    limit=PAGE_SIZE,
                ),
            )
            offset += PAGE_SIZE
            statuses = result.get("statuses") if isinstance(result, Mapping) else None
            if not isinstance(statuses, list):
                raise MalformedResponse(f"{self._where}: search: no 'statuses' list")
            return statuses

        return fetch

    def _pages(
        self, fetch: Callable[[str | None], list[Any]], since: str | None, floor: datetime
    ) -> tuple[list[Mapping[str, Any]], int, bool]:
        """Statuses from successive pages (``max_id`` = the oldest id so far), the pages
        fetched, and whether the listing ran to its end before ``page_limit``. Without a
        cursor, paging stops at the first page that reaches back past ``floor``."""
        statuses: list[Mapping[str, Any]] = []
        max_id: str | None = None
        pages = 0
        while True:
            page = [s for s in fetch(max_id) if isinstance(s, Mapping)]
            pages += 1
            statuses.extend(page)
            ids = [i for i in (_status_id(s) for s in page) if i is not None]
            if not ids or len(page) < PAGE_SIZE:
                return statuses, pages, True
            if since is None:
                times = [t for t in (_time(s.get("created_at")) for s in page) if t is not None]
                if times and min(times) < floor:
                    return statuses, pages, True
            if pages >= self._config.page_limit:
                return statuses, pages, False
            max_id = min(ids, key=_id_key)

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """Run one Mastodon.py call, translating its exceptions."""
        try:
            return call()
        except MastodonError as exc:
            raise self._translate(exc, f"{self._where}: {what}") from exc

    def _translate(self, exc: MastodonError, where: str) -> CollectorError:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, CollectorError):  # ours, raised in the session (a refused redirect)
            return cause
        if isinstance(exc, MastodonRatelimitError):
            retry_after = parse_retry_after(self._headers, time.time())
            reset = self._api.ratelimit_reset
            if retry_after is None and isinstance(reset, int | float):
                retry_after = max(0.0, float(reset) - time.time())
            hint = f", retry after {retry_after:g}s" if retry_after is not None else ""
            return RateLimited(f"{where}: HTTP 429 rate limited{hint}", retry_after)
        if isinstance(exc, MastodonNetworkError):
            if isinstance(cause, ResponseTooLarge):
                return MalformedResponse(f"{where}: {cause}")
            if isinstance(cause, requests.Timeout):
                return SourceUnavailable(f"{where}: timed out ({type(cause).__name__})")
            detail = type(cause).__name__ if cause is not None else "network error"
            return SourceUnavailable(f"{where}: {detail}")
        if isinstance(exc, MastodonServerError):
            return SourceUnavailable(f"{where}: HTTP {_status(exc) or '5xx'} ({_detail(exc)})")
        if isinstance(exc, MastodonNotFoundError | MastodonUnauthorizedError):
            return SourceRejected(f"{where}: HTTP {_status(exc)} ({_detail(exc)})")
        if isinstance(exc, MastodonAPIError):
            status = _status(exc)
            if status is None:  # Mastodon.py could not parse the body
                return MalformedResponse(f"{where}: the answer is not valid JSON")
            if status == 408 or status >= 500:
                return SourceUnavailable(f"{where}: HTTP {status} ({_detail(exc)})")
            return SourceRejected(f"{where}: HTTP {status} ({_detail(exc)})")
        if isinstance(exc, MastodonVersionError):
            return SourceUnavailable(f"{where}: could not determine the instance's version")
        if isinstance(exc, MastodonIllegalArgumentError):
            return SourceRejected(f"{where}: {exc}")
        return SourceUnavailable(f"{where}: {type(exc).__name__}")

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


def _ids(value: Any) -> dict[str, str]:
    """A cursor's ``{key: newest id}``; ``""`` means read before, nothing seen yet."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def _status(exc: MastodonError) -> int | None:
    """The HTTP status of a Mastodon.py API error (its second argument)."""
    args = exc.args
    return args[1] if len(args) > 1 and isinstance(args[1], int) else None


def _detail(exc: MastodonError) -> str:
    args = exc.args
    parts = [str(a) for a in args[2:4] if a]
    return ": ".join(parts)[:200] or "no details"
