"""The mention inbox: the stored mentions, searched and filtered, listed a page at a
time or exported whole (CSV, JSON Lines). One query language for the API (``GET
/mentions``, ``/mentions.csv``, ``/mentions.jsonl``), the console's ``/mentions`` and
``listener mentions``.

Filters (each optional): ``brand``, ``source``, ``sentiment`` (negative, neutral,
positive, unscored), ``category``, ``language``, ``q`` (text anywhere in the stored mention, any
case), ``since`` (an ISO 8601 instant, or how far back: ``24h``, default) and ``until``
(an instant; default now); ``limit`` (1 to 500, default 50) and ``offset`` page through
the list, newest first. An export takes up to :data:`EXPORT_MAX` mentions.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from listener.clock import as_utc
from listener.config.duration import parse_duration
from listener.config.lint import not_bypassed
from listener.config.schema import BrandConfig
from listener.errors import InvalidRequest, ListenerError
from listener.langcodes import normal_language
from listener.matching.query import Document, compile_query
from listener.model import SENTIMENT_LABELS
from listener.store import InboxRow, MentionQuery, Store

SENTIMENTS = SENTIMENT_LABELS
PAGE_MAX = 500
EXPORT_MAX = 50_000
DEFAULT_SINCE = timedelta(hours=24)
COLUMNS = (
    "created_at",
    "source",
    "id",
    "brands",
    "sentiment",
    "compound",
    "reach",
    "author",
    "url",
    "language",
    "categories",
    "title",
    "text",
)
FILTERS = ("brand", "source", "sentiment", "category", "language", "q", "since", "until")


def parse_query(params: Mapping[str, str], now: datetime, *, export: bool = False) -> MentionQuery:
    """The query of these parameters; InvalidRequest naming the one at fault."""
    unknown = sorted(set(params) - {*FILTERS, "limit", "offset"})
    if unknown:
        raise InvalidRequest(
            f"{unknown[0]}: not a filter (use {', '.join(FILTERS)}, limit, offset)",
            field=unknown[0],
        )
    since = params.get("since") or ""
    until = params.get("until") or ""
    end = _instant(until, "until") if until else now
    start = end - DEFAULT_SINCE
    if since:
        start = (
            _instant(since, "since") if since[:1].isdigit() and "T" in since else end - _back(since)
        )
    if start >= end:
        raise InvalidRequest("since: must be before until", field="since")
    sentiment = params.get("sentiment") or None
    if sentiment is not None and sentiment not in SENTIMENTS:
        raise InvalidRequest(
            f"sentiment: one of {', '.join(SENTIMENTS)}, not {sentiment[:40]!r}", field="sentiment"
        )
    language = params.get("language") or None
    if language is not None:
        code = normal_language(language)
        if code is None:
            raise InvalidRequest(
                f"language: a language code (en, fr, de, ...), not {language[:40]!r}",
                field="language",
            )
        language = code
    limit = EXPORT_MAX if export else _number(params.get("limit"), "limit", 50, 1, PAGE_MAX)
    offset = 0 if export else _number(params.get("offset"), "offset", 0, 0, 10**9)
    return MentionQuery(
        start=start,
        end=end,
        brand=params.get("brand") or None,
        source=params.get("source") or None,
        sentiment=sentiment,
        category=params.get("category") or None,
        language=language,
        text=(params.get("q") or "").strip()[:200] or None,
        limit=limit,
        offset=offset,
    )


def search(store: Store, query: MentionQuery) -> list[InboxRow]:
    return store.mentions.search(query)


def to_csv(rows: Sequence[InboxRow]) -> str:
    """A spreadsheet's CSV: a header row, then one row a mention (lists joined by ``;``;
    a cell that would start a formula is prefixed with ``'``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        data = row.as_dict()
        writer.writerow([cell(data[c]) for c in COLUMNS])
    return out.getvalue()


def to_jsonl(rows: Sequence[InboxRow]) -> str:
    """One JSON object a line, the same fields as the CSV."""
    return "".join(json.dumps(r.as_dict(), ensure_ascii=False) + "\n" for r in rows)


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    text = str(value)
    # a spreadsheet runs a cell that starts with these as a formula (CSV injection)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _instant(text: str, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{field}: {text[:40]!r} is not an ISO 8601 instant", field=field
        ) from None
    if when.tzinfo is None:
        raise InvalidRequest(f"{field}: {text[:40]!r} has no UTC offset", field=field)
    return as_utc(when)


def _back(text: str) -> timedelta:
    try:
        span = parse_duration(text)
    except (ValueError, ListenerError):
        raise InvalidRequest(
            f"since: {text[:40]!r} is neither an instant nor a duration like 24h", field="since"
        ) from None
    if span <= timedelta(0):
        raise InvalidRequest("since: a duration above zero", field="since")
    return span


def _number(text: str | None, field: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidRequest(f"{field}: a whole number from {low} to {high}", field=field)
    return int(text)


PREVIEW_SCAN = 20_000
"""The most recent stored mentions a query preview reads."""
PREVIEW_SHOWN = 50


@dataclass(frozen=True)
class Preview:
    """What a brand query would have matched among the stored mentions: how many of those
    read, per day, the newest with why they matched, and warnings about the query."""

    read: int
    truncated: bool
    """More mentions were stored in the period than :data:`PREVIEW_SCAN`."""
    matched: int
    per_day: tuple[tuple[str, int], ...]
    shown: tuple[tuple[InboxRow, tuple[str, ...]], ...]
    warnings: tuple[tuple[str, str], ...]


def preview(
    store: Store,
    text: str,
    *,
    start: datetime,
    end: datetime,
    brand: BrandConfig | None = None,
    source_types: Mapping[str, str] | None = None,
) -> Preview:
    """Test the brand query ``text`` on the stored mentions written in [start, end)
    (the newest :data:`PREVIEW_SCAN`); QuerySyntaxError on a mistake. With ``brand``,
    also what ``listener check`` would warn about it with this query."""
    query = compile_query(text)
    types = source_types or {}
    rows = store.mentions.search(MentionQuery(start, end, limit=PREVIEW_SCAN + 1))
    truncated = len(rows) > PREVIEW_SCAN
    rows = rows[:PREVIEW_SCAN]
    days: dict[str, int] = {}
    day = start.date()
    while day <= (end - timedelta(microseconds=1)).date():
        days[day.isoformat()] = 0
        day += timedelta(days=1)
    shown: list[tuple[InboxRow, tuple[str, ...]]] = []
    matched = 0
    for row in rows:
        body = f"{row.title}\n{row.text}" if row.title else row.text
        source = row.ref.source
        doc = Document.of(
            body, row.language, [source, *([types[source]] if source in types else [])]
        )
        if not query.matches(doc):
            continue
        matched += 1
        key = row.ref.created_at.date().isoformat()
        days[key] = days.get(key, 0) + 1
        if len(shown) < PREVIEW_SHOWN:
            shown.append((row, query.explain(doc)))
    warnings: list[tuple[str, str]] = []
    if not query.requires_terms:
        warnings.append(
            (
                "this query only excludes: a mention with none of its words can match",
                "add the words that name the brand, e.g. (acme OR @acme) NOT hiring",
            )
        )
    if brand is not None:
        found = not_bypassed(brand.model_copy(update={"query": text}))
        if found is not None:
            warnings.append(found)
    return Preview(
        read=len(rows),
        truncated=truncated,
        matched=matched,
        per_day=tuple(sorted(days.items())),
        shown=tuple(shown),
        warnings=tuple(warnings),
    )
