"""Seen mentions (dedup by source and id), their brands, the reads the reports make,
and retention.

A mention is one ``mentions`` row and one ``mention_brands`` row per brand it matched.
Rows are written compactly (:func:`mention_row`, schema 5): ``data`` holds the mention's
fields that the columns do not (no ``source``, ``id``, ``created_at``, nor the author's
handle, which the ``author`` column holds as ``source:handle``; no null or default
field), as compact JSON; ``tags`` only the categories, emotions and story that are
set (a missing story is the mention's own ``source:id``). Rows of earlier versions, with
every field, read the same (:func:`_ref`). ``reach`` is the number Ingest computed
(:attr:`listener.model.ScoredMention.reach`), stored as it is and read from its column
(every version has it), never recomputed here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from listener.model import AuthorRef, MentionRef, ScoredMention, StoredMention, StoryRecord
from listener.store.core import Database, dt, ts

EVIDENCE_BEFORE = timedelta(hours=30)
"""Mentions of a brand from this long before one of its incidents opened are evidence,
kept past retention: the post-incident report's chart starts 6 h before the opening and
its baseline reads the 24 h before that (:mod:`listener.report.data`)."""
EVIDENCE_AFTER = timedelta(hours=2)
"""... and until this long after the incident resolved (for ever while it is open)."""
_PRUNE_SLICE = timedelta(days=1)

MentionRow = tuple[str, str, float, float, str, float, float, str, str | None, str]
"""One ``mentions`` row: source, id, created_at, collected_at, sentiment label, compound,
reach, data, author, tags."""


STORY_SCAN = 50_000
"""The most mentions :meth:`Mentions.stories` groups (the furthest-travelled first)."""


@dataclass(frozen=True, slots=True)
class SourceCount:
    """A brand's mentions from one source in a period."""

    source: str
    mentions: int
    negative: int
    reach: float


@dataclass(frozen=True, slots=True)
class MentionQuery:
    """Which stored mentions to list: written in [start, end), matching every filter
    given; ``text`` anywhere in the stored mention (text, title, URL, author's name),
    any case."""

    start: datetime
    end: datetime
    brand: str | None = None
    source: str | None = None
    sentiment: str | None = None
    """``negative``, ``neutral``, ``positive`` or ``unscored``."""
    category: str | None = None
    language: str | None = None
    text: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class InboxRow:
    """A stored mention as the inbox and the exports show it."""

    ref: MentionRef
    text: str
    """The whole text (``ref.text`` is cut for alerts)."""
    title: str | None
    language: str | None
    brands: tuple[str, ...]
    sentiment: str
    reach: float
    categories: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        r = self.ref
        return {
            "created_at": r.created_at.isoformat(),
            "source": r.source,
            "id": r.id,
            "brands": list(self.brands),
            "sentiment": self.sentiment,
            "compound": r.sentiment,
            "reach": self.reach,
            "author": r.author,
            "url": r.url,
            "language": self.language,
            "categories": list(self.categories),
            "title": self.title,
            "text": self.text,
        }


def _like(text: str) -> str:
    """``text`` for a LIKE pattern, its wildcards taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def reach_of(scored: ScoredMention) -> float:
    """Estimated readers of a mention: the reach Ingest computed for it
    (:attr:`ScoredMention.reach <listener.model.ScoredMention.reach>`)."""
    return scored.reach


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _data_json(data: dict[str, Any]) -> str:
    """``data`` as JSON; the usual cases (the text alone, or the text and its language) are
    put together as strings: the same JSON, faster."""
    if len(data) == 1:
        return '{"text":' + _dumps(data["text"]) + "}"
    if len(data) == 2 and "language" in data:
        return '{"text":' + _dumps(data["text"]) + ',"language":' + _dumps(data["language"]) + "}"
    return _dumps(data)


def mention_row(s: ScoredMention, collected_at: float) -> MentionRow:
    """The ``mentions`` row of a scored mention (by hand: no ``dataclasses.asdict``; the
    usual mention, a text and a handle, takes the shortest path)."""
    m = s.mention
    created = ts(m.created_at)
    data: dict[str, Any] = {"text": m.text}
    if m.created_at.microsecond and dt(created) != m.created_at:  # pragma: no cover
        data["created_at"] = m.created_at.isoformat()  # past float precision (year > 2100)
    if m.url is not None:
        data["url"] = m.url
    a = m.author
    handle = a.handle
    if handle == "" or a.display_name is not None or a.followers is not None:
        author: dict[str, Any] = {}
        if handle == "":  # a handle is in the ``author`` column (``source:handle``) unless ""
            author["handle"] = ""
        if a.display_name is not None:
            author["display_name"] = a.display_name
        if a.followers is not None:
            author["followers"] = a.followers
        data["author"] = author
    if m.language is not None:
        data["language"] = m.language
    e = m.engagement
    if (
        e.likes is not None
        or e.reposts is not None
        or e.replies is not None
        or e.quotes is not None
    ):
        data["engagement"] = {
            k: v
            for k, v in (
                ("likes", e.likes),
                ("reposts", e.reposts),
                ("replies", e.replies),
                ("quotes", e.quotes),
            )
            if v is not None
        }
    if m.is_repost:
        data["is_repost"] = True
    if m.reposted_id is not None:
        data["reposted_id"] = m.reposted_id
    if m.title is not None:
        data["title"] = m.title
    tags: dict[str, Any] = {}
    if s.categories:
        tags["categories"] = list(s.categories)
    if s.emotions:
        tags["emotions"] = list(s.emotions)
    story = s.story
    if story is not None and story != f"{m.source}:{m.id}":
        tags["story"] = story
    return (
        m.source,
        m.id,
        created,
        collected_at,
        s.sentiment.label,
        s.sentiment.compound,
        s.reach,
        _data_json(data),
        f"{m.source}:{handle}" if handle else None,
        _dumps(tags) if tags else "{}",
    )


def _ref(
    source: str, id_: str, created_at: float, data: str, compound: float, by: str | None
) -> MentionRef:
    """The MentionRef of a stored row, compact (schema 5) or full (earlier)."""
    d = json.loads(data)
    author = d.get("author") or {}
    when = d.get("created_at")
    return MentionRef(
        source=source,
        id=id_,
        text=d["text"][:280],
        url=d.get("url"),
        author=author.get("handle", by[len(source) + 1 :] if by else None),
        followers=author.get("followers"),
        created_at=datetime.fromisoformat(when) if when else dt(created_at),
        sentiment=compound,
    )


def _story(tags: str | None, source: str, id_: str) -> str:
    story = json.loads(tags or "{}").get("story") if tags and tags != "{}" else None
    return str(story) if story else f"{source}:{id_}"


def _categories(tags: str | None) -> tuple[str, ...]:
    return tuple(json.loads(tags or "{}").get("categories", ()))


class Mentions:
    """The ``mentions`` and ``mention_brands`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ writes

    @staticmethod
    def insert(c: Any, mentions: Sequence[ScoredMention], collected_at: float) -> None:
        """Store mentions not stored yet (inside the caller's transaction); the brands of a
        mention already stored are left as they are."""
        if not mentions:
            return
        rows = [mention_row(s, collected_at) for s in mentions]
        c.execute("SAVEPOINT mentions")
        inserted = c.executemany(
            "INSERT INTO mentions VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", rows
        ).rowcount
        fresh: Iterable[tuple[ScoredMention, MentionRow]]
        if inserted == len(rows):  # every one new: the common case
            fresh = zip(mentions, rows, strict=True)
        else:  # some stored before (or twice in the batch): one at a time, as they come
            c.execute("ROLLBACK TO mentions")
            fresh = [
                (s, r)
                for s, r in zip(mentions, rows, strict=True)
                if c.execute(
                    "INSERT INTO mentions VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", r
                ).rowcount
            ]
        c.executemany(
            "INSERT INTO mention_brands VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
            [(b, r[2], r[0], r[1], int(s.negative)) for s, r in fresh for b in s.brands],
        )
        c.execute("RELEASE mentions")

    # ------------------------------------------------------------------ reads

    def seen(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (source, id) keys are already stored."""
        out: set[tuple[str, str]] = set()
        keys = list(keys)
        for i in range(0, len(keys), 400):
            chunk = keys[i : i + 400]
            where = " OR ".join("(source = ? AND id = ?)" for _ in chunk)
            params = [v for key in chunk for v in key]
            out.update(
                (s, i_)
                for s, i_ in self.db.read(f"SELECT source, id FROM mentions WHERE {where}", params)
            )
        return out

    def count(self) -> int:
        return int(self.db.read("SELECT COUNT(*) FROM mentions")[0][0])

    def top(
        self, brand: str, start: datetime, end: datetime, limit: int = 5, negative_only: bool = True
    ) -> list[MentionRef]:
        """The mentions of ``brand`` in [start, end) that travelled furthest."""
        rows = self.db.read(
            "SELECT m.source, m.id, m.created_at, m.data, m.compound, m.author "
            "FROM mention_brands b "
            "JOIN mentions m ON m.source = b.source AND m.id = b.id "
            "WHERE b.brand = ? AND b.created_at >= ? AND b.created_at < ? "
            + ("AND b.negative = 1 " if negative_only else "")
            + "ORDER BY m.reach DESC, m.compound ASC, b.created_at DESC LIMIT ?",
            (brand, ts(start), ts(end), limit),
        )
        return [_ref(*row) for row in rows]

    def top_categories(self, brand: str, start: datetime, end: datetime) -> list[tuple[str, int]]:
        """Crisis categories of the brand's negative mentions in [start, end), most first."""
        rows = self.db.read(
            "SELECT m.tags FROM mention_brands b JOIN mentions m ON m.source = b.source "
            "AND m.id = b.id WHERE b.brand = ? AND b.created_at >= ? AND b.created_at < ? "
            "AND b.negative = 1",
            (brand, ts(start), ts(end)),
        )
        counts: dict[str, int] = {}
        for (tags,) in rows:
            for name in _categories(tags):
                counts[name] = counts.get(name, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]

    def top_authors(
        self, brand: str, start: datetime, end: datetime, limit: int = 3
    ) -> list[AuthorRef]:
        """Detractors (most negative mentions) and amplifiers (largest reach) in [start, end)."""
        rows = self.db.read(
            "SELECT m.author, COUNT(*), MAX(m.reach), SUM(b.negative) FROM mention_brands b "
            "JOIN mentions m ON m.source = b.source AND m.id = b.id WHERE b.brand = ? AND "
            "b.created_at >= ? AND b.created_at < ? AND m.author IS NOT NULL GROUP BY m.author",
            (brand, ts(start), ts(end)),
        )

        def ref(row: Any, role: Any) -> AuthorRef:
            source, _, handle = str(row[0]).partition(":")
            return AuthorRef(
                handle=handle, source=source, mentions=int(row[1]), reach=float(row[2]), role=role
            )

        detractors = [r for r in sorted(rows, key=lambda r: (-r[3], -r[2])) if r[3] > 1][:limit]
        amplifiers = [r for r in sorted(rows, key=lambda r: -r[2]) if r[2] > 0][:limit]
        return [ref(r, "detractor") for r in detractors] + [ref(r, "amplifier") for r in amplifiers]

    def series(
        self, brand: str, start: datetime, end: datetime, step: timedelta
    ) -> list[tuple[datetime, int, int, float]]:
        """The brand's mentions in [start, end) per ``step`` from ``start``: one
        ``(bucket start, mentions, negative, sum of sentiment)`` per non-empty bucket."""
        size = step.total_seconds()
        k = self.db.sql.whole.format("(b.created_at - ?) / ?")
        rows = self.db.read(
            f"SELECT {k} AS k, COUNT(*), SUM(b.negative), "
            "SUM(m.compound) FROM mention_brands b JOIN mentions m ON m.source = b.source "
            "AND m.id = b.id WHERE b.brand = ? AND b.created_at >= ? AND b.created_at < ? "
            "GROUP BY k ORDER BY k",
            (ts(start), size, brand, ts(start), ts(end)),
        )
        return [(start + step * int(k), int(n), int(neg), float(c)) for k, n, neg, c in rows]

    def first_at(self, brand: str, start: datetime, end: datetime) -> datetime | None:
        """When the brand's first stored mention in [start, end) was written."""
        rows = self.db.read(
            "SELECT MIN(created_at) FROM mention_brands WHERE brand = ? AND created_at >= ? "
            "AND created_at < ?",
            (brand, ts(start), ts(end)),
        )
        return dt(rows[0][0]) if rows and rows[0][0] is not None else None

    def last_at(self, brand: str, start: datetime, end: datetime) -> datetime | None:
        """When the brand's last stored mention in [start, end) was written."""
        rows = self.db.read(
            "SELECT MAX(created_at) FROM mention_brands WHERE brand = ? AND created_at >= ? "
            "AND created_at < ?",
            (brand, ts(start), ts(end)),
        )
        return dt(rows[0][0]) if rows and rows[0][0] is not None else None

    def recent(
        self, brand: str, start: datetime, end: datetime, limit: int, negative_only: bool = False
    ) -> list[StoredMention]:
        """The brand's mentions in [start, end), the newest first, at most ``limit``, with
        their whole text, story, reach and polarity (what the spike explanation reads)."""
        rows = self.db.read(
            "SELECT m.source, m.id, m.created_at, m.data, m.compound, m.author, m.reach, "
            "m.tags, b.negative FROM mention_brands b JOIN mentions m ON m.source = b.source "
            "AND m.id = b.id WHERE b.brand = ? AND b.created_at >= ? AND b.created_at < ? "
            + ("AND b.negative = 1 " if negative_only else "")
            + "ORDER BY b.created_at DESC, m.source, m.id LIMIT ?",
            (brand, ts(start), ts(end), limit),
        )
        out = []
        for source, id_, created, data, compound, by, reach, tags, negative in rows:
            d = json.loads(data)
            text = str(d.get("text", ""))
            author = d.get("author") or {}
            when = d.get("created_at")
            ref = MentionRef(
                source=source,
                id=id_,
                text=text[:280],
                url=d.get("url"),
                author=author.get("handle", by[len(source) + 1 :] if by else None),
                followers=author.get("followers"),
                created_at=datetime.fromisoformat(when) if when else dt(created),
                sentiment=compound,
            )
            story = _story(tags, source, id_)
            out.append(StoredMention(ref, text, story, float(reach), bool(negative)))
        return out

    def stories(
        self,
        brand: str,
        start: datetime,
        end: datetime,
        limit: int = 5,
        negative_only: bool = False,
    ) -> list[StoryRecord]:
        """The brand's stories in [start, end), the most mentioned first (then the
        furthest travelled): each mention with its copies counted once as a story.
        Groups at most :data:`STORY_SCAN` mentions, the furthest travelled."""
        rows = self.db.read(
            "SELECT m.source, m.id, m.created_at, m.data, m.compound, m.author, m.reach, "
            "b.negative, m.tags FROM mention_brands b JOIN mentions m ON m.source = b.source "
            "AND m.id = b.id WHERE b.brand = ? AND b.created_at >= ? AND b.created_at < ? "
            + ("AND b.negative = 1 " if negative_only else "")
            + "ORDER BY m.reach DESC, b.created_at ASC LIMIT ?",
            (brand, ts(start), ts(end), STORY_SCAN),
        )
        groups: dict[str, list[Any]] = {}
        for r in rows:
            groups.setdefault(_story(r[8], r[0], r[1]), []).append(r)
        ranked = sorted(groups.items(), key=lambda g: (-len(g[1]), -sum(r[6] for r in g[1]), g[0]))[
            :limit
        ]
        out = []
        for story, members in ranked:
            lead = members[0]  # rows come furthest-travelled first
            counts: dict[str, int] = {}
            for r in members:
                for name in _categories(r[8]):
                    counts[name] = counts.get(name, 0) + 1
            out.append(
                StoryRecord(
                    story=story,
                    lead=_ref(*lead[:6]),
                    mentions=len(members),
                    negative=sum(int(r[7]) for r in members),
                    reach=float(sum(r[6] for r in members)),
                    first_at=dt(min(r[2] for r in members)),
                    last_at=dt(max(r[2] for r in members)),
                    categories=tuple(sorted(counts, key=lambda k: (-counts[k], k))),
                )
            )
        return out

    def source_counts(self, brand: str, start: datetime, end: datetime) -> list[SourceCount]:
        """The brand's mentions in [start, end) per source, most first."""
        rows = self.db.read(
            "SELECT b.source, COUNT(*), SUM(b.negative), SUM(m.reach) FROM mention_brands b "
            "JOIN mentions m ON m.source = b.source AND m.id = b.id WHERE b.brand = ? "
            "AND b.created_at >= ? AND b.created_at < ? GROUP BY b.source "
            "ORDER BY COUNT(*) DESC, b.source",
            (brand, ts(start), ts(end)),
        )
        return [SourceCount(str(s), int(n), int(neg), float(r)) for s, n, neg, r in rows]

    def search(self, query: MentionQuery) -> list[InboxRow]:
        """The stored mentions ``query`` selects, newest first (the inbox, exports)."""
        where = ["m.created_at >= ?", "m.created_at < ?"]
        params: list[Any] = [ts(query.start), ts(query.end)]
        if query.brand:
            where.append(
                "EXISTS (SELECT 1 FROM mention_brands b WHERE b.source = m.source AND "
                "b.id = m.id AND b.brand = ?)"
            )
            params.append(query.brand)
        if query.source:
            where.append("m.source = ?")
            params.append(query.source)
        if query.sentiment:
            where.append("m.sentiment = ?")
            params.append(query.sentiment)
        if query.category:
            where.append("m.tags LIKE ? ESCAPE '\\'")
            params.append(f'%"{_like(query.category)}"%')
        if query.language:
            where.append("m.data LIKE ? ESCAPE '\\'")
            params.append(f'%"language":"{_like(query.language)}"%')
        if query.text:
            where.append("lower(m.data) LIKE ? ESCAPE '\\'")
            params.append(f"%{_like(query.text.lower())}%")
        rows = self.db.read(
            "SELECT m.source, m.id, m.created_at, m.data, m.compound, m.author, m.reach, "
            f"m.sentiment, m.tags FROM mentions m WHERE {' AND '.join(where)} "
            "ORDER BY m.created_at DESC, m.source, m.id LIMIT ? OFFSET ?",
            [*params, query.limit, query.offset],
        )
        brands = self._brands_of([(str(r[0]), str(r[1])) for r in rows])
        out = []
        for r in rows:
            data = json.loads(r[3])
            tags = json.loads(r[8] or "{}")
            out.append(
                InboxRow(
                    ref=_ref(*r[:6]),
                    text=data["text"],
                    title=data.get("title"),
                    language=data.get("language"),
                    brands=brands.get((str(r[0]), str(r[1])), ()),
                    sentiment=str(r[7]),
                    reach=float(r[6]),
                    categories=tuple(tags.get("categories", ())),
                )
            )
        return out

    def _brands_of(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, ...]]:
        out: dict[tuple[str, str], list[str]] = {}
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            marks = " OR ".join("(source = ? AND id = ?)" for _ in chunk)
            rows = self.db.read(
                f"SELECT source, id, brand FROM mention_brands WHERE {marks} ORDER BY brand",
                [v for key in chunk for v in key],
            )
            for source, id_, brand in rows:
                out.setdefault((str(source), str(id_)), []).append(str(brand))
        return {k: tuple(v) for k, v in out.items()}

    # ------------------------------------------------------------------ retention

    def prune(self, before: datetime) -> int:
        """Forget mentions collected before ``before`` (retention), except evidence.

        A mention is evidence while one of its brands has an incident that opened less
        than ``EVIDENCE_BEFORE`` after the mention was written and resolved less than
        ``EVIDENCE_AFTER`` before it (or is still open): reports of old incidents keep
        their timeline, top posts and authors. Evidence is judged again at every prune, so
        the mentions an open incident keeps go once it has resolved and they fall outside
        its period. Incidents, their events, notices and acknowledgements are never pruned.
        Returns how many mentions were deleted.

        The work goes a day of collection time per transaction (skipping days with nothing
        stored), so a first run over a large file neither holds the lock nor loads the
        whole history at once.
        """
        cutoff, removed = ts(before), 0
        since: float | None = float("-inf")
        while since is not None:
            n, since = self._prune_slice(cutoff, since)
            removed += n
        return removed

    def _prune_slice(self, cutoff: float, since: float) -> tuple[int, float | None]:
        """Judge the day of collection time that starts at the first mention collected at
        or after ``since``; (deleted, where the next day starts, or None at ``cutoff``)."""
        with self.db.transaction("prune") as c:
            start = c.execute(
                "SELECT MIN(collected_at) FROM mentions WHERE collected_at >= ?", (since,)
            ).fetchone()[0]
            if start is None or start >= cutoff:
                return 0, None
            upper = min(cutoff, float(start) + _PRUNE_SLICE.total_seconds())
            candidates = c.execute(
                "SELECT source, id, created_at FROM mentions "
                "WHERE collected_at >= ? AND collected_at < ?",
                (start, upper),
            ).fetchall()
            doomed, doomed_brands = _not_evidence(c, candidates)
            c.executemany(
                "DELETE FROM mention_brands WHERE brand = ? AND created_at = ? AND source = ? "
                "AND id = ?",
                doomed_brands,
            )
            c.executemany("DELETE FROM mentions WHERE source = ? AND id = ?", doomed)
            return len(doomed), (upper if upper < cutoff else None)


def _not_evidence(
    c: Any, candidates: Sequence[tuple[str, str, float]]
) -> tuple[list[tuple[str, str]], list[tuple[str, float, str, str]]]:
    """Which candidate mentions (and brand rows) are no incident's evidence."""
    if not candidates:
        return [], []
    keys = {(str(s), str(i)) for s, i, _ in candidates}
    lo = min(float(t) for _, _, t in candidates)
    hi = max(float(t) for _, _, t in candidates)
    periods: dict[str, list[tuple[float, float]]] = {}
    before, after = EVIDENCE_BEFORE.total_seconds(), EVIDENCE_AFTER.total_seconds()
    for brand, opened, resolved in c.execute("SELECT brand, opened_at, resolved_at FROM incidents"):
        end = float("inf") if resolved is None else float(resolved) + after
        periods.setdefault(str(brand), []).append((float(opened) - before, end))
    rows: list[tuple[str, str, str, float]] = []
    brand = c.execute("SELECT MIN(brand) FROM mention_brands").fetchone()[0]
    while brand is not None:  # one index seek per brand, not a scan of every row
        rows.extend(
            (brand, s, i, t)
            for s, i, t in c.execute(
                "SELECT source, id, created_at FROM mention_brands WHERE brand = ? "
                "AND created_at >= ? AND created_at <= ?",
                (brand, lo, hi),
            )
            if (s, i) in keys
        )
        brand = c.execute(
            "SELECT MIN(brand) FROM mention_brands WHERE brand > ?", (brand,)
        ).fetchone()[0]
    kept = {
        (s, i) for b, s, i, t in rows if any(start <= t <= end for start, end in periods.get(b, ()))
    }
    doomed = sorted(keys - kept)
    return doomed, [(b, t, s, i) for b, s, i, t in rows if (s, i) not in kept]
