"""Hacker News collector: stories and comments from the public Algolia search API.

No credentials. Each brand is searched with ``/search_by_date`` (newest first), one
query per search term (aliases, else the name, plus keywords): Algolia has no ``OR`` in
its query syntax and requires every word, so one OR-query would match almost nothing.
``tags`` restricts to the configured kinds and ``numericFilters=created_at_i>=T`` to what
is new; at most ``page_limit`` pages of :data:`HITS_PER_PAGE` hits per query per poll.

Cursor shape (JSON)::

    {"brands": {"<brand name>": {"since": <epoch seconds>, "seen": ["<objectID>", ...]}}}

``since`` is the newest ``created_at_i`` returned so far and ``seen`` the ids returned
at exactly that second: the next poll asks for ``created_at_i>=since`` and drops
``seen``, so items posted in the same second as the newest one are not lost. A brand
without a cursor (first poll, or a brand added later) reaches back ``lookback`` and the
poll is a backfill.

429 and unavailability (5xx, timeouts) fail the whole poll, so the pipeline backs off
and nothing is skipped; a rejected or malformed answer to one query is reported in
:attr:`PollResult.errors` and that brand keeps its old cursor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from listener.collectors.base import Cursor, PollResult, since_seen
from listener.collectors.fetch import source_fetcher
from listener.collectors.queries import brands_for
from listener.collectors.rss import html_to_text
from listener.collectors.text import as_count, cap_text, join_title
from listener.config.schema import BrandConfig, HackerNewsSourceConfig
from listener.errors import CollectorError, MalformedResponse, RateLimited, SourceUnavailable
from listener.model import Author, Engagement, Mention

HITS_PER_PAGE = 100
"""Hits asked for per page (Algolia allows up to 1000)."""

ITEM_URL = "https://news.ycombinator.com/item?id={}"

MAX_SEEN = 1000
"""At most this many ids are kept for the newest second (a bound, never reached in practice)."""


def search_terms(brand: BrandConfig) -> list[str]:
    """The brand's terms, one Algolia query each: aliases (or the name) then keywords."""
    terms = [t.replace('"', "").strip() for t in (*brand.search_terms, *brand.keywords)]
    return list(dict.fromkeys(t for t in terms if t))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def hit_mention(source: str, hit: Mapping[str, Any]) -> Mention | None:
    """A mention from one Algolia hit (pure); ``None`` for a hit without an id or time."""
    object_id = _text(hit.get("objectID")).strip()
    created = as_count(hit.get("created_at_i"))
    if not object_id or created is None:
        return None
    tags = hit.get("_tags")
    comment_text = _text(hit.get("comment_text"))
    is_comment = (isinstance(tags, list) and "comment" in tags) or (
        bool(comment_text) and not _text(hit.get("title"))
    )
    item_url = ITEM_URL.format(object_id)
    if is_comment:
        title = None
        text = html_to_text(comment_text)
        url = item_url
    else:
        title = html_to_text(_text(hit.get("title"))) or None
        text = join_title(title or "", html_to_text(_text(hit.get("story_text"))))
        link = _text(hit.get("url")).strip()
        url = link if link.lower().startswith(("http://", "https://")) else item_url
    author = _text(hit.get("author")).strip() or None
    return Mention(
        source=source,
        id=object_id,
        text=cap_text(text),
        created_at=datetime.fromtimestamp(created, UTC),
        url=url,
        author=Author(handle=author),
        engagement=Engagement(
            upvotes=as_count(hit.get("points")), comments=as_count(hit.get("num_comments"))
        ),
        title=title,
    )


class HackerNewsCollector:
    """Searches Hacker News for every brand; see the module docstring."""

    name: str

    def __init__(
        self,
        name: str,
        config: HackerNewsSourceConfig,
        brands: Sequence[BrandConfig] = (),
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._brands = brands_for(config, brands)
        self._endpoint = config.api_url.rstrip("/") + "/search_by_date"
        kinds = list(dict.fromkeys(config.kinds))
        self._tags = kinds[0] if len(kinds) == 1 else "(" + ",".join(kinds) + ")"
        self._fetcher = source_fetcher(config, transport)

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        stored = (cursor or {}).get("brands")
        previous: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
        floor = int((now - self._config.lookback).timestamp())
        states: dict[str, dict[str, Any]] = {}
        mentions: dict[str, Mention] = {}
        errors: list[CollectorError] = []
        backfill = False
        queries = requests = truncated = 0
        for brand in self._brands:
            state = since_seen(previous.get(brand.name))
            if state is None:
                backfill = True
                since, seen = floor, set[str]()
            else:
                since, seen = state
            hits: dict[str, Mapping[str, Any]] = {}
            try:
                for term in search_terms(brand):
                    queries += 1
                    found, pages, complete = self._search(term, since)
                    requests += pages
                    truncated += not complete
                    for hit in found:
                        hits.setdefault(_text(hit.get("objectID")), hit)
            except (RateLimited, SourceUnavailable):
                raise
            except CollectorError as exc:
                errors.append(exc)
                if isinstance(previous.get(brand.name), Mapping):
                    states[brand.name] = dict(previous[brand.name])
                continue
            newest, newest_ids = since, set(seen)
            for object_id, hit in hits.items():
                created = as_count(hit.get("created_at_i"))
                if created is None or created < since or object_id in seen:
                    continue
                mention = hit_mention(self.name, hit)
                if mention is None:
                    continue
                mentions.setdefault(mention.id, mention)
                if created > newest:
                    newest, newest_ids = created, {object_id}
                elif created == newest:
                    newest_ids.add(object_id)
            states[brand.name] = {"since": newest, "seen": sorted(newest_ids)[-MAX_SEEN:]}
        if errors and len(errors) == len(self._brands):
            raise errors[0]
        ordered = sorted(mentions.values(), key=lambda m: m.created_at, reverse=True)
        return PollResult(
            mentions=ordered,
            cursor={"brands": states},
            errors=errors,
            notes={"queries": queries, "requests": requests, "truncated": truncated},
            backfill=backfill,
        )

    def _search(self, term: str, since: int) -> tuple[list[Mapping[str, Any]], int, bool]:
        """Hits for ``term`` at or after ``since``, the pages fetched, and whether every
        page was fetched (``False`` when ``page_limit`` cut the search short)."""
        hits: list[Mapping[str, Any]] = []
        page = 0
        while True:
            params = {
                "query": term,
                "tags": self._tags,
                "numericFilters": f"created_at_i>={since}",
                "hitsPerPage": str(HITS_PER_PAGE),
                "page": str(page),
            }
            response = self._fetcher.get(
                f"{self._endpoint}?{urlencode(params)}", {"Accept": "application/json"}
            )
            found, pages = _parse_page(response.body)
            hits.extend(found)
            page += 1
            if page >= pages or not found:
                return hits, page, True
            if page >= self._config.page_limit:
                return hits, page, False

    def close(self) -> None:
        """Close the HTTP client."""
        self._fetcher.close()


def _parse_page(body: bytes) -> tuple[list[Mapping[str, Any]], int]:
    """The hits of one Algolia answer and its ``nbPages``; raises MalformedResponse."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"Hacker News search: invalid JSON ({exc})") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("hits"), list):
        raise MalformedResponse("Hacker News search: no 'hits' list in the answer")
    hits = [h for h in data["hits"] if isinstance(h, Mapping)]
    pages = as_count(data.get("nbPages"))
    return hits, pages if pages is not None else 1
