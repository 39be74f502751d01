"""RSS/Atom collector: the daemon fetches (timeouts, byte cap, conditional GET),
feedparser only parses the bytes.

Cursor shape (JSON)::

    {"feeds": {"<feed_key(configured url)>": {"etag": str | None, "modified": str | None,
                                             "href": "<final url after redirects, redacted>",
                                             "polled_at": float}}}

A feed is keyed by :func:`feed_key` (its host and a hash of the
whole URL), never by the URL itself: a feed URL may carry credentials (``user:pass@``,
``?apikey=``) and the cursor is written to the state file.

A feed's ``etag``/``modified`` change only after a successful 2xx, so a failed or
unparseable poll is retried with the old validators. Every entry currently in a feed is
returned on each 2xx; the pipeline deduplicates on ``(source, id)``.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote_plus, urljoin, urlsplit

import feedparser
import httpx

from listener.collectors.base import Cursor, PollResult
from listener.collectors.fetch import redact_url, source_fetcher
from listener.collectors.queries import brands_for, simple_query
from listener.collectors.text import cap_text, join_title
from listener.config.schema import BrandConfig, RssSourceConfig
from listener.errors import CollectorError, MalformedResponse
from listener.model import Author, Mention

ACCEPT = str(feedparser.http.ACCEPT_HEADER)

_WS = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAG_NAMES = (
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 "
    "h6 header hr li main nav ol p pre section table td th tr ul"
)
_BLOCK_TAGS = frozenset(_BLOCK_TAG_NAMES.split())
_SKIP_TAGS = frozenset({"script", "style"})


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block tags become spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment: tags stripped, entities unescaped, whitespace
    collapsed."""
    if not fragment:
        return ""
    extractor = _TextExtractor()
    try:
        extractor.feed(fragment)
        extractor.close()
        text = "".join(extractor.parts)
    except Exception:  # html.parser has had crash bugs on hostile markup; degrade, never fail
        text = html.unescape(_TAG.sub(" ", fragment))
    return _WS.sub(" ", text).strip()


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _timestamp(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed is None:
            continue
        try:
            year, month, day, hour, minute, second = (int(v) for v in tuple(parsed)[:6])
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except (TypeError, ValueError, OverflowError):
            continue
    return None


def _entry_id(entry: Mapping[str, Any], title: str, summary: str) -> str:
    for key in ("id", "link"):
        value = _str(entry.get(key))
        if value:
            return value
    published = _str(entry.get("published")) or _str(entry.get("updated"))
    basis = f"{title}\n{published}"
    if not title and not published:
        basis += f"\n{summary}"
    return "sha1:" + hashlib.sha1(basis.encode("utf-8"), usedforsecurity=False).hexdigest()


def _summary(entry: Mapping[str, Any]) -> str:
    summary = _str(entry.get("summary"))
    if summary:
        return summary
    for content in entry.get("content") or ():
        value = _str(content.get("value")) if isinstance(content, Mapping) else ""
        if value:
            return value
    return ""


def _entry_url(entry: Mapping[str, Any], base: str) -> str | None:
    link = _str(entry.get("link"))
    if not link:
        return None
    try:
        url = urljoin(base, link)
    except ValueError:
        return None
    return url if url.lower().startswith(("http://", "https://")) else None


def _entry_mention(
    source_name: str, entry: Mapping[str, Any], base: str, language: str | None, now: datetime
) -> Mention:
    title = html_to_text(_str(entry.get("title")))
    summary = html_to_text(_summary(entry))
    author = _str(entry.get("author")) or None
    detail = entry.get("author_detail")
    display = _str(detail.get("name")) if isinstance(detail, Mapping) else ""
    return Mention(
        source=source_name,
        id=_entry_id(entry, title, summary),
        text=cap_text(join_title(title, summary)),
        created_at=_timestamp(entry) or now,
        url=_entry_url(entry, base),
        author=Author(handle=author, display_name=display or author),
        language=language,
        title=title or None,
    )


def parse_feed(
    source_name: str, body: bytes, headers: Mapping[str, str], now: datetime
) -> list[Mention]:
    """Parse a feed document into mentions (pure: no I/O).

    ``headers`` are the HTTP response headers; keys are lower-cased here (feedparser
    only reads lower-case keys, e.g. the charset in ``content-type``).
    ``content-location`` (the absolute URL of the document) is the base that relative
    entry links are resolved against; only http(s) links become ``Mention.url``.
    It is deliberately *not* handed to feedparser, which would also resolve relative
    entry ids against it (Reddit's ``t3_…``, bare guids): ids must not change when a
    feed moves or is fetched through a redirect.

    Raises :class:`MalformedResponse` for an empty body, or when feedparser finds
    neither entries nor a recognisable feed in an ill-formed document; a slightly
    broken feed that still yields entries is accepted.
    """
    if not body.strip():
        raise MalformedResponse("empty feed document")
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    base = lowered.pop("content-location", "")
    try:
        parsed: Any = feedparser.parse(io.BytesIO(body), response_headers=lowered)
        entries: list[Any] = list(parsed.get("entries") or [])
        bozo = bool(parsed.get("bozo"))
        version = _str(parsed.get("version"))
        feed = parsed.get("feed") or {}
    except Exception as exc:  # feedparser is lenient, but its internals may still raise
        raise MalformedResponse(f"feed could not be parsed ({type(exc).__name__})") from exc
    if bozo and not entries and not version:
        problem = parsed.get("bozo_exception")
        reason = f": {_short(problem)}" if problem is not None else ""
        raise MalformedResponse(f"not a feed{reason}")
    language = (_str(feed.get("language")).lower() or None) if isinstance(feed, Mapping) else None
    return [
        _entry_mention(source_name, entry, base, language, now)
        for entry in entries
        if isinstance(entry, Mapping)
    ]


def _short(problem: object) -> str:
    text = _WS.sub(" ", str(problem)).strip()
    return text[:200] or type(problem).__name__


def feed_key(url: str) -> str:
    """The name of a feed in the cursor, without its secrets: the host and a hash of the
    whole URL (``feeds.example.com#3f2a…``), so user info, a token in the query or in the
    path never reach the state file, and two URLs differing only there stay apart."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    return f"{host}#{hashlib.sha256(url.encode()).hexdigest()[:32]}"


def expand_feeds(
    config: RssSourceConfig, brands: Sequence[BrandConfig]
) -> dict[str, timedelta | None]:
    """Every feed URL to poll and its own interval (``None``: every poll).

    A URL with ``{query}`` becomes one feed per brand, with the brand's search query
    URL-encoded in its place.
    """
    entries = [(u, None) for u in config.urls] + [(f.url, f.interval) for f in config.feeds]
    out: dict[str, timedelta | None] = {}
    for url, interval in entries:
        if "{query}" in url:
            for brand in brands_for(config, brands):
                out.setdefault(url.replace("{query}", quote_plus(simple_query(brand))), interval)
        else:
            out.setdefault(url, interval)
    return out


class RssCollector:
    """Polls every configured feed URL with a conditional GET; see the module docstring.

    Failures of some feeds are reported in :attr:`PollResult.errors` beside the other
    feeds' mentions; when every feed failed, the first error is raised.
    """

    name: str

    def __init__(
        self,
        name: str,
        config: RssSourceConfig,
        brands: Sequence[BrandConfig] = (),
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._feeds = expand_feeds(config, brands)
        self._urls = list(self._feeds)
        self._fetcher = source_fetcher(config, transport)

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        stored = (cursor or {}).get("feeds")
        previous: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
        feeds: dict[str, dict[str, Any]] = {}
        mentions: list[Mention] = []
        errors: list[CollectorError] = []
        not_modified = skipped = polled = 0
        backfill = False
        for url in self._urls:
            key = feed_key(url)  # the state file never holds a feed's URL (it may carry a token)
            state = previous.get(key)
            old: dict[str, Any] = dict(state) if isinstance(state, Mapping) else {}
            interval = self._feeds[url]
            last = old.get("polled_at")
            if (
                interval is not None
                and isinstance(last, int | float)
                and now.timestamp() - last < interval.total_seconds() - 1
            ):
                feeds[key] = old  # this feed has its own, longer interval
                skipped += 1
                continue
            polled += 1
            try:
                found, new = self._poll_feed(url, old, now)
            except CollectorError as exc:
                errors.append(exc)
                if old:
                    feeds[key] = old
                continue
            feeds[key] = {**new, "polled_at": now.timestamp()}
            if found is None:
                not_modified += 1
                continue
            # a feed's first poll returns whatever history it holds: all of it is
            # backfill (stored and counted into the baseline, unable to open an incident)
            backfill = backfill or "polled_at" not in old
            mentions.extend(found)
        if errors and len(errors) == polled:
            raise errors[0]
        mentions = list({m.id: m for m in reversed(mentions)}.values())[::-1]
        notes = {
            "feeds": len(self._urls),
            "not_modified": not_modified,
            "failed": len(errors),
            "skipped": skipped,
        }
        return PollResult(
            mentions=mentions,
            cursor={"feeds": feeds},
            errors=errors,
            notes=notes,
            backfill=backfill,
        )

    def _poll_feed(
        self, url: str, old: dict[str, Any], now: datetime
    ) -> tuple[list[Mention] | None, dict[str, Any]]:
        """Mentions (``None`` when not modified) and the feed's new cursor state."""
        headers = {"Accept": ACCEPT}
        etag, modified = old.get("etag"), old.get("modified")
        if isinstance(etag, str) and etag:
            headers["If-None-Match"] = etag
        if isinstance(modified, str) and modified:
            headers["If-Modified-Since"] = modified
        response = self._fetcher.get(url, headers)
        if response.status == 304:
            return None, {**old, "href": redact_url(response.url)}
        if response.status in (204, 205):
            return [], {**old, "href": redact_url(response.url)}
        feed_headers = dict(response.headers)
        feed_headers["content-location"] = urljoin(
            response.url, feed_headers.get("content-location", "")
        )
        try:
            found = parse_feed(self.name, response.body, feed_headers, now)
        except MalformedResponse as exc:
            raise MalformedResponse(f"{redact_url(response.url)}: {exc}") from exc
        state = {
            "etag": response.headers.get("etag"),
            "modified": response.headers.get("last-modified"),
            "href": redact_url(response.url),
        }
        return found, state

    def close(self) -> None:
        """Close the HTTP client."""
        self._fetcher.close()
