"""App Store collector: customer reviews of one app from Apple's public RSS feed in JSON.

No credentials. For each configured country, one feed per poll, newest first::

    GET {api_url}/{country}/rss/customerreviews/page={n}/id={app_id}/sortby=mostrecent/json

Apple serves pages 1 to 10 of :data:`PAGE_SIZE` reviews; at most ``max_pages`` are read
per country per poll, and paging stops at the first review already collected (or older),
or at a page that is not full.

The format is Apple's legacy RSS-as-JSON: ``{"feed": {"entry": [...], ...}}`` where every
value is wrapped as ``{"label": ...}``. ``entry`` is a single object when there is one
review and missing when there are none; on older feeds the first entry is the app itself
(it has ``im:name`` and no ``im:rating``): entries without ``im:rating`` are skipped.

A review becomes a mention: id ``<country>:<review id>``, title ``★<rating> <title>``
(the model has no rating field, so the stars lead the title), text the title and the
content joined (:func:`~listener.collectors.text.join_title`, whitespace collapsed),
time ``updated`` (its offset turned into UTC), author handle the reviewer's name, url the
review's ``link`` when it is http(s), else the app's store page, engagement ``likes``
the review's ``im:voteSum`` (people who found it helpful), no language (Apple does not
say; the country is not a language).

Cursor shape (JSON)::

    {"app": "<app id>", "countries": {"<cc>": {"since": <epoch seconds>, "seen": ["<id>", ...]}}}

``since`` is the newest ``updated`` seen in that country and ``seen`` the review ids at
exactly that second. A country without a cursor (first poll, a country added later, or
another ``app_id``) keeps only reviews newer than ``lookback`` and the poll is a backfill.

Errors: 404 (an unknown app id, or an App Store country that does not exist) →
:class:`SourceRejected` naming both; 403 and 429 (Apple throttles with either) →
:class:`RateLimited`, at least :data:`RATE_LIMIT_WAIT` seconds; 5xx and timeouts →
:class:`SourceUnavailable`; JSON that does not parse or is not a feed →
:class:`MalformedResponse`. Rate limits and unavailability fail the whole poll; a
rejected or malformed answer for one country is reported in :attr:`PollResult.errors`
and that country keeps its old cursor (the poll fails when every country did).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from listener.collectors.base import Cursor, PollResult, since_seen
from listener.collectors.fetch import redact_url, source_fetcher
from listener.collectors.text import cap_text, join_title
from listener.config.schema import AppStoreSourceConfig, BrandConfig
from listener.errors import (
    CollectorError,
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.model import Author, Engagement, Mention

PAGE_SIZE = 50
"""Reviews per page of Apple's feed."""

RATE_LIMIT_WAIT = 60.0
"""The least wait after a 403 or 429: Apple sends no ``Retry-After``."""

MAX_SEEN = 1000
"""At most this many review ids are kept for the newest second of a country."""

STORE_PAGE = "https://apps.apple.com/{country}/app/id{app_id}"
"""A mention's url when its review has no usable link."""


def _label(value: Any) -> str:
    """The text of an Apple ``{"label": ...}`` wrapper (or of a bare string), stripped."""
    if isinstance(value, Mapping):
        value = value.get("label")
    return value.strip() if isinstance(value, str) else ""


def _clean(text: str) -> str:
    """Plain text with whitespace runs (line breaks included) collapsed: Apple's review
    text is plain text, not HTML, so nothing else is taken out."""
    return " ".join(text.split())


def _link(entry: Mapping[str, Any]) -> str:
    """The review's http(s) link (``rel=related`` first when there are several), or ""."""
    links = entry.get("link")
    candidates = links if isinstance(links, list) else [links]
    hrefs: list[tuple[bool, str]] = []
    for link in candidates:
        attributes = link.get("attributes") if isinstance(link, Mapping) else None
        if not isinstance(attributes, Mapping):
            continue
        href = attributes.get("href")
        if isinstance(href, str) and href.strip().lower().startswith(("http://", "https://")):
            hrefs.append((attributes.get("rel") != "related", href.strip()))
    return min(hrefs)[1] if hrefs else ""


def updated_at(value: Any) -> datetime | None:
    """An entry's ``updated`` (``2026-12-06T17:11:09-07:00``) in UTC; ``None`` when
    missing, malformed or without an offset."""
    try:
        moment = datetime.fromisoformat(_label(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _count(value: Any) -> int | None:
    text = _label(value)
    return int(text) if text.isdigit() else None


def review_mention(
    source: str, country: str, app_id: str, entry: Mapping[str, Any]
) -> Mention | None:
    """A mention from one feed entry (pure); ``None`` for an entry that is not a review
    (no ``im:rating``: the app's own entry) or lacks an id or a readable ``updated``."""
    rating = _label(entry.get("im:rating"))
    review_id = _label(entry.get("id"))
    created = updated_at(entry.get("updated"))
    if not rating or not review_id or created is None:
        return None
    title = _clean(_label(entry.get("title")))
    content = _clean(_label(entry.get("content")))
    author = entry.get("author")
    name = _clean(_label(author.get("name"))) if isinstance(author, Mapping) else ""
    stars = f"★{rating}" if rating.isdigit() else ""
    return Mention(
        source=source,
        id=f"{country}:{review_id}",
        text=cap_text(join_title(title, content)),
        created_at=created,
        url=_link(entry) or STORE_PAGE.format(country=country, app_id=app_id),
        author=Author(handle=name or None),
        language=None,
        engagement=Engagement(likes=_count(entry.get("im:voteSum"))),
        title=" ".join(p for p in (stars, title) if p) or None,
    )


def parse_feed(body: bytes, where: str) -> list[Mapping[str, Any]]:
    """The entries of one feed page: ``[]`` without ``entry``, a single object as a list
    of one. Anything that is not a JSON ``{"feed": {...}}`` is :class:`MalformedResponse`."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise MalformedResponse(f"{where}: invalid JSON ({exc})") from exc
    feed = data.get("feed") if isinstance(data, Mapping) else None
    if not isinstance(feed, Mapping):
        raise MalformedResponse(f"{where}: the answer is not an App Store feed (no 'feed')")
    entries = feed.get("entry", [])
    if isinstance(entries, Mapping):
        entries = [entries]
    if not isinstance(entries, list):
        raise MalformedResponse(f"{where}: 'entry' is neither a list nor an object")
    return [e for e in entries if isinstance(e, Mapping)]


class AppStoreCollector:
    """Reads one app's customer reviews in each configured country; see the module
    docstring. ``brands`` is not used: the reviews are of the app, whatever they say,
    and the matcher assigns them to brands afterwards."""

    name: str

    def __init__(
        self,
        name: str,
        config: AppStoreSourceConfig,
        brands: Sequence[BrandConfig] = (),
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._base = config.api_url.rstrip("/")
        self._fetcher = source_fetcher(config, transport)

    def feed_url(self, country: str, page: int) -> str:
        """The feed of ``page`` (1–10) of the app's reviews in ``country``."""
        app_id = self._config.app_id
        return (
            f"{self._base}/{country}/rss/customerreviews/page={page}/id={app_id}"
            "/sortby=mostrecent/json"
        )

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        app_id = self._config.app_id
        stored = (cursor or {}).get("countries") if (cursor or {}).get("app") == app_id else None
        previous: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
        floor = int((now - self._config.lookback).timestamp())
        states: dict[str, dict[str, Any]] = {}
        mentions: dict[str, Mention] = {}
        errors: list[CollectorError] = []
        backfill = False
        requests = truncated = 0
        for country in self._config.countries:
            state = since_seen(previous.get(country))
            if state is None:
                backfill = True
            since, seen = state or (floor, set[str]())
            try:
                found, pages, complete = self._read(country, since, seen)
            except (RateLimited, SourceUnavailable):
                raise
            except CollectorError as exc:
                errors.append(exc)
                if state is not None:
                    states[country] = dict(previous[country])
                continue
            requests += pages
            truncated += not complete
            newest, newest_ids = since, set(seen)
            for mention in found:
                mentions.setdefault(mention.id, mention)
                at = int(mention.created_at.timestamp())
                if at > newest:
                    newest, newest_ids = at, {mention.id}
                elif at == newest:
                    newest_ids.add(mention.id)
            states[country] = {"since": newest, "seen": sorted(newest_ids)[-MAX_SEEN:]}
        if errors and len(errors) == len(self._config.countries):
            raise errors[0]
        ordered = sorted(mentions.values(), key=lambda m: m.created_at, reverse=True)
        return PollResult(
            mentions=ordered,
            cursor={"app": app_id, "countries": states},
            errors=errors,
            notes={"requests": requests, "truncated": truncated},
            backfill=backfill,
        )

    def _read(self, country: str, since: int, seen: set[str]) -> tuple[list[Mention], int, bool]:
        """The new reviews of one country, the pages fetched, and whether the feed was
        read down to known reviews or its end (``False`` when ``max_pages`` cut it)."""
        found: list[Mention] = []
        for page in range(1, self._config.max_pages + 1):
            entries = self._page(country, page)
            reviews = 0
            reached_known = False
            for entry in entries:
                mention = review_mention(self.name, country, self._config.app_id, entry)
                if mention is None:
                    continue
                reviews += 1
                at = int(mention.created_at.timestamp())
                if at < since or mention.id in seen:
                    reached_known = True
                    continue
                found.append(mention)
            if reached_known or reviews < PAGE_SIZE:
                return found, page, True
        return found, self._config.max_pages, False

    def _page(self, country: str, page: int) -> list[Mapping[str, Any]]:
        url = self.feed_url(country, page)
        where = redact_url(url)
        try:
            response = self._fetcher.get(url, {"Accept": "application/json"})
        except RateLimited as exc:  # Apple says nothing of how long: wait at least a minute
            raise RateLimited(str(exc), max(exc.retry_after or 0.0, RATE_LIMIT_WAIT)) from exc
        except SourceRejected as exc:
            message = str(exc)
            if message.endswith("HTTP 403"):  # Apple's throttle answers 403 as often as 429
                raise RateLimited(f"{message} (throttled)", RATE_LIMIT_WAIT) from exc
            if message.endswith("HTTP 404"):
                raise SourceRejected(
                    f"{message}: no reviews feed for app id {self._config.app_id} in App Store "
                    f"country '{country}' (check app_id and countries)"
                ) from exc
            raise
        return parse_feed(response.body, where)

    def close(self) -> None:
        """Close the HTTP client."""
        self._fetcher.close()
