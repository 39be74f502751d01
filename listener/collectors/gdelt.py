"""GDELT collector: worldwide online news through the GDELT DOC 2.0 API (no credentials).

One request per poll: ``mode=artlist&format=json&sort=datedesc`` with at most
``max_records`` (≤ 250) articles between ``startdatetime`` and ``enddatetime``. GDELT asks
for at most one request every 5 seconds, so the query is one for the whole source: every
brand's aliases (or name) and keywords OR'ed in parentheses, phrases quoted (or the raw
``query`` of the config), plus ``sourcelang:<language>``. The matcher assigns each article
to its brands afterwards and applies exclusions and brands' boolean queries. Terms shorter
than :data:`MIN_TERM` characters are left out: GDELT refuses the whole query for one of
them ("The specified phrase is too short").

An article becomes a mention whose id is its URL (without fragment), text and title its
title (GDELT gives no body), author its domain, time its ``seendate`` (UTC, in GDELT's
15-minute steps) and language the ISO 639-1 code of GDELT's language name
(:data:`LANGUAGES`; ``None`` for a name not listed there).

Cursor shape (JSON)::

    {"query": "<hash of the query>", "since": <epoch seconds>, "seen": ["<url>", ...]}

``since`` is the newest ``seendate`` returned so far and ``seen`` the URLs at exactly that
second (GDELT gives a whole 15-minute batch one ``seendate``): the next poll asks from
``since`` and drops ``seen``. Without a cursor, or when the query changed (brands or
``query`` edited), the poll reaches back ``lookback`` and is a backfill. The window asked
for is never shorter than :data:`MIN_WINDOW`. When ``max_records`` articles come back the
window held more: the newest are kept and ``notes["truncated"]`` says so (GDELT has no
paging, and a second request would break its rate limit).

Errors: GDELT answers a query it refuses with HTTP 200 and a line of plain text
("Your search contained…", "The specified phrase is too short.") → :class:`SourceRejected`
with that text; 429, or the text "Please limit requests…" → :class:`RateLimited` (at least
:data:`RATE_LIMIT_WAIT` seconds); 5xx and timeouts → :class:`SourceUnavailable`; a JSON
answer that does not parse, or one over ``max_bytes`` → :class:`MalformedResponse`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urldefrag, urlencode

import httpx

from listener.collectors.base import Cursor, PollResult, since_seen
from listener.collectors.fetch import redact_url, source_fetcher
from listener.collectors.queries import brands_for, quoted
from listener.collectors.rss import html_to_text
from listener.collectors.text import cap_text
from listener.config.schema import BrandConfig, GdeltSourceConfig
from listener.errors import MalformedResponse, RateLimited, SourceRejected
from listener.model import Author, Mention

MIN_TERM = 3
"""Terms shorter than this many characters are not sent (GDELT refuses short phrases)."""

MIN_WINDOW = timedelta(minutes=15)
"""The shortest window asked for: GDELT's index is updated every 15 minutes."""

RATE_LIMIT_WAIT = 5.0
"""GDELT's documented pace (one request every 5 seconds): the least wait after a 429."""

MAX_SEEN = 1000
"""At most this many URLs are kept for the newest second."""

SEENDATE = "%Y%m%dT%H%M%SZ"
"""GDELT's ``seendate`` format (``20261207T093000Z``)."""

PARAM_TIME = "%Y%m%d%H%M%S"
"""The format of ``startdatetime`` and ``enddatetime``."""

LANGUAGES: Mapping[str, str] = {
    "arabic": "ar",
    "chinese": "zh",
    "dutch": "nl",
    "english": "en",
    "french": "fr",
    "german": "de",
    "hindi": "hi",
    "italian": "it",
    "japanese": "ja",
    "korean": "ko",
    "polish": "pl",
    "portuguese": "pt",
    "russian": "ru",
    "spanish": "es",
    "swedish": "sv",
    "turkish": "tr",
    "ukrainian": "uk",
}
"""GDELT's language names (lower-cased) → ISO 639-1; the languages GDELT covers most.
Any other name gives a mention without a language."""


def brand_terms(brand: BrandConfig) -> list[str]:
    """A brand's terms for GDELT: aliases (or the name) then keywords, without quotes,
    at least :data:`MIN_TERM` characters."""
    terms = [t.replace('"', "").strip() for t in (*brand.search_terms, *brand.keywords)]
    return [t for t in dict.fromkeys(terms) if len(t) >= MIN_TERM]


def build_query(config: GdeltSourceConfig, brands: Sequence[BrandConfig]) -> str:
    """The query of a source: its raw ``query``, or every brand's terms OR'ed (GDELT
    wants parentheses around OR'ed terms, and none around a single one); then
    ``sourcelang:`` when ``language`` is set. Empty when there is nothing to search for."""
    if config.query:
        query = config.query
    else:
        terms: dict[str, str] = {}
        for brand in brands_for(config, brands):
            for term in brand_terms(brand):
                terms.setdefault(term.casefold(), quoted(term))
        parts = list(terms.values())
        if not parts:
            return ""
        query = parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
    if config.language:
        query += f" sourcelang:{config.language.lower()}"
    return query


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def seen_at(value: Any) -> datetime | None:
    """A ``seendate`` as an aware UTC datetime; ``None`` when missing or malformed."""
    try:
        return datetime.strptime(_str(value), SEENDATE).replace(tzinfo=UTC)
    except ValueError:
        return None


def language_code(name: Any) -> str | None:
    """The ISO 639-1 code of a GDELT language name (see :data:`LANGUAGES`)."""
    return LANGUAGES.get(_str(name).casefold())


def article_mention(source: str, article: Mapping[str, Any]) -> Mention | None:
    """A mention from one GDELT article (pure); ``None`` without an http(s) URL or a
    readable ``seendate``."""
    url = urldefrag(_str(article.get("url"))).url
    created = seen_at(article.get("seendate"))
    if not url.lower().startswith(("http://", "https://")) or created is None:
        return None
    title = html_to_text(_str(article.get("title")))
    domain = _str(article.get("domain")).lower()
    return Mention(
        source=source,
        id=url,
        text=cap_text(title),
        created_at=created,
        url=url,
        author=Author(handle=domain or None),
        language=language_code(article.get("language")),
        title=title or None,
    )


def parse_answer(body: bytes, where: str) -> list[Mapping[str, Any]]:
    """The articles of one answer (``{}`` is none). A plain-text answer is GDELT's
    refusal: :class:`RateLimited` for "Please limit requests…", else
    :class:`SourceRejected` with its text; JSON that does not parse is
    :class:`MalformedResponse`."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        raise MalformedResponse(f"{where}: empty answer")
    if text[0] not in "{[":
        message = html_to_text(text)[:300]
        if message.casefold().startswith("please limit requests"):
            raise RateLimited(f"{where}: GDELT: {message}", RATE_LIMIT_WAIT)
        raise SourceRejected(f"{where}: GDELT refused the query: {message}")
    try:
        # strict=False: GDELT's titles sometimes carry raw control characters
        data = json.loads(text, strict=False)
    except ValueError as exc:
        raise MalformedResponse(f"{where}: invalid JSON ({exc})") from exc
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"{where}: the answer is not a JSON object")
    articles = data.get("articles", [])
    if not isinstance(articles, list):
        raise MalformedResponse(f"{where}: 'articles' is not a list")
    return [a for a in articles if isinstance(a, Mapping)]


def _state(cursor: Cursor | None, fingerprint: str) -> tuple[int, set[str]] | None:
    """``(since, seen)`` of a cursor made for the same query, else ``None``."""
    if not isinstance(cursor, Mapping) or cursor.get("query") != fingerprint:
        return None
    return since_seen(cursor)


class GdeltCollector:
    """Searches GDELT's worldwide news index once per poll; see the module docstring."""

    name: str

    def __init__(
        self,
        name: str,
        config: GdeltSourceConfig,
        brands: Sequence[BrandConfig] = (),
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self.query = build_query(config, brands)
        if not self.query:
            raise ValueError(
                "nothing to search for: no brand of this source has an alias, name or keyword "
                f"of at least {MIN_TERM} characters; set 'query'"
            )
        self._fingerprint = hashlib.sha256(self.query.encode()).hexdigest()[:16]
        self._where = redact_url(config.api_url)
        self._fetcher = source_fetcher(config, transport)

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        now = now.astimezone(UTC)
        state = _state(cursor, self._fingerprint)
        backfill = state is None
        since, seen = state or (int((now - self._config.lookback).timestamp()), set[str]())
        start = min(datetime.fromtimestamp(since, UTC), now - MIN_WINDOW)
        params = {
            "query": self.query,
            "mode": "artlist",
            "format": "json",
            "maxrecords": str(self._config.max_records),
            "sort": "datedesc",
            "startdatetime": start.strftime(PARAM_TIME),
            "enddatetime": now.strftime(PARAM_TIME),
        }
        url = f"{self._config.api_url}?{urlencode(params)}"
        try:
            response = self._fetcher.get(url, {"Accept": "application/json"})
        except RateLimited as exc:  # GDELT rarely says how long: wait at least its pace
            raise RateLimited(str(exc), max(exc.retry_after or 0.0, RATE_LIMIT_WAIT)) from exc
        articles = parse_answer(response.body, self._where)
        mentions: dict[str, Mention] = {}
        newest, newest_ids = since, set(seen)
        for article in articles:
            mention = article_mention(self.name, article)
            if mention is None:
                continue
            at = int(mention.created_at.timestamp())
            if at < since or mention.id in seen:
                continue
            mentions.setdefault(mention.id, mention)
            if at > newest:
                newest, newest_ids = at, {mention.id}
            elif at == newest:
                newest_ids.add(mention.id)
        ordered = sorted(mentions.values(), key=lambda m: m.created_at, reverse=True)
        return PollResult(
            mentions=ordered,
            cursor={
                "query": self._fingerprint,
                "since": newest,
                "seen": sorted(newest_ids)[-MAX_SEEN:],
            },
            notes={
                "articles": len(articles),
                "truncated": int(len(articles) >= self._config.max_records),
            },
            backfill=backfill,
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._fetcher.close()
