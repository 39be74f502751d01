"""The shapes that flow through the pipeline. Frozen, typed, serialisable.

``Mention`` is the one shape every source produces. ``ScoredMention`` is a mention
after matching and scoring. ``Alert`` is what the delivery stage sends. ``Ack`` and
``Silence`` are the operators' stored records that the notification policy reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from listener.clock import as_utc

SentimentLabel = Literal["negative", "neutral", "positive"]


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a mention. ``followers`` is the reach where the source tells it."""

    handle: str | None = None
    display_name: str | None = None
    followers: int | None = None


@dataclass(frozen=True, slots=True)
class Engagement:
    """Engagement counters; ``None`` where the source does not report one."""

    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    quotes: int | None = None
    upvotes: int | None = None
    comments: int | None = None


@dataclass(frozen=True, slots=True)
class Mention:
    """One post, comment or article from one source.

    ``source`` is the configured source name (e.g. ``news``), ``id`` is unique within
    that source; ``(source, id)`` identifies a mention for deduplication.
    """

    source: str
    id: str
    text: str
    created_at: datetime
    url: str | None = None
    author: Author = field(default_factory=Author)
    language: str | None = None
    engagement: Engagement = field(default_factory=Engagement)
    is_repost: bool = False
    reposted_id: str | None = None
    title: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "created_at", as_utc(self.created_at))

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the daemon's JSON Lines mention format). Spelled out rather
        than ``dataclasses.asdict``, which deep-copies every value: a bus worker encodes one
        per message."""
        author, engagement = self.author, self.engagement
        return {
            "source": self.source,
            "id": self.id,
            "text": self.text,
            "created_at": self.created_at.isoformat(),
            "url": self.url,
            "author": {
                "handle": author.handle,
                "display_name": author.display_name,
                "followers": author.followers,
            },
            "language": self.language,
            "engagement": {
                "likes": engagement.likes,
                "reposts": engagement.reposts,
                "replies": engagement.replies,
                "quotes": engagement.quotes,
                "upvotes": engagement.upvotes,
                "comments": engagement.comments,
            },
            "is_repost": self.is_repost,
            "reposted_id": self.reposted_id,
            "title": self.title,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Mention:
        """Inverse of :meth:`to_dict`; raises KeyError, ValueError or TypeError on bad input."""
        return cls(
            source=str(data["source"]),
            id=str(data["id"]),
            text=str(data["text"]),
            created_at=datetime.fromisoformat(str(data["created_at"])),
            url=data.get("url"),
            author=Author(**(data.get("author") or {})),
            language=data.get("language"),
            engagement=Engagement(**(data.get("engagement") or {})),
            is_repost=bool(data.get("is_repost", False)),
            reposted_id=data.get("reposted_id"),
            title=data.get("title"),
        )


@dataclass(frozen=True, slots=True)
class Sentiment:
    """A sentiment score: ``compound`` in [-1, 1] and its label."""

    label: SentimentLabel
    compound: float


@dataclass(frozen=True, slots=True)
class ScoredMention:
    """A mention with the brands it matched, its sentiment, tags and reach."""

    mention: Mention
    brands: tuple[str, ...]
    sentiment: Sentiment
    categories: tuple[str, ...] = ()
    """Crisis categories that fired (outage, security, ...)."""
    emotions: tuple[str, ...] = ()
    """Clear emotion signals (anger, concern, confusion)."""
    story: str | None = None
    """The story this mention belongs to (its own ``source:id`` unless it is a copy)."""
    reach: float = field(kw_only=True)
    """Estimated readers (:func:`listener.scoring.reach.reach_score`), computed once at
    ingest; the store keeps it and the windows weigh by it."""

    @property
    def negative(self) -> bool:
        return self.sentiment.label == "negative"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the mention (:meth:`Mention.to_dict`) and what ingest found."""
        return {
            "mention": self.mention.to_dict(),
            "brands": list(self.brands),
            "sentiment": {"label": self.sentiment.label, "compound": self.sentiment.compound},
            "categories": list(self.categories),
            "emotions": list(self.emotions),
            "story": self.story,
            "reach": self.reach,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoredMention:
        """Inverse of :meth:`to_dict`; raises KeyError, ValueError or TypeError on bad input."""
        sentiment = data["sentiment"]
        label = str(sentiment["label"])
        if label not in ("negative", "neutral", "positive"):
            raise ValueError(f"unknown sentiment label {label!r}")
        story = data.get("story")
        return cls(
            mention=Mention.from_dict(data["mention"]),
            brands=tuple(str(b) for b in data["brands"]),
            sentiment=Sentiment(label, float(sentiment["compound"])),  # type: ignore[arg-type]
            categories=tuple(str(c) for c in data.get("categories") or ()),
            emotions=tuple(str(e) for e in data.get("emotions") or ()),
            story=None if story is None else str(story),
            reach=float(data["reach"]),
        )


@dataclass(frozen=True, slots=True)
class Fact:
    """One number behind a decision: what was measured, against what threshold and baseline."""

    name: str
    value: float
    threshold: float | None = None
    baseline: float | None = None

    def __str__(self) -> str:
        text = f"{self.name} = {_num(self.value)}"
        if self.threshold is not None:
            text += f" (threshold {_num(self.threshold)})"
        if self.baseline is not None:
            text += f" (baseline {_num(self.baseline)})"
        return text


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


AlertKind = Literal[
    "opened", "escalated", "deescalated", "resolved", "reminder", "acknowledged", "handoff"
]
"""``reminder``: the incident is still open and unacknowledged after the repeat interval;
``acknowledged``: someone took it; ``handoff``: nobody acknowledged it in time, so the next
escalation route is paged."""


@dataclass(frozen=True, slots=True)
class MentionRef:
    """A mention as shown in an alert: enough to read it and click through."""

    source: str
    id: str
    text: str
    url: str | None
    author: str | None
    followers: int | None
    created_at: datetime
    sentiment: float


@dataclass(frozen=True, slots=True)
class AuthorRef:
    """An author worth knowing in an incident: a detractor (many negative mentions)
    or an amplifier (large reach)."""

    handle: str
    source: str
    mentions: int
    reach: float
    role: Literal["detractor", "amplifier"]


@dataclass(frozen=True, slots=True)
class Ack:
    """Who acknowledged an incident, when, and what they said."""

    by: str
    at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class Silence:
    """Mute alerts matching ``brand``/``rule``/``level`` (``None`` matches any) from
    ``starts_at`` until ``ends_at``. A stored record: the store keeps silences, the
    notification policy (:mod:`listener.rules.notify`) applies them."""

    id: str
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    brand: str | None = None
    rule: str | None = None
    level: str | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, brand: str, rule: str, level: str) -> bool:
        return (
            (self.brand is None or self.brand == brand)
            and (self.rule is None or self.rule == rule)
            and (self.level is None or self.level == level)
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """A notification about an incident, delivered through the outbox to each routed sink.

    ``id`` is stable across retries and restarts; sinks send it as the idempotency key.
    """

    id: str
    incident_id: str
    kind: AlertKind
    rule: str
    brand: str
    level: str
    previous_level: str | None
    at: datetime
    facts: tuple[Fact, ...]
    top_mentions: tuple[MentionRef, ...] = ()
    drill: bool = False
    categories: tuple[tuple[str, int], ...] = ()
    """The crisis categories driving the incident, with mention counts, largest first."""
    authors: tuple[AuthorRef, ...] = ()
    trend: tuple[int, ...] = ()
    """Negative mentions per interval over the last hours, oldest first (for sparklines)."""
    trend_step: int = 0
    """Seconds per ``trend`` value."""
    ack: Ack | None = None
    opened_at: datetime | None = None
    route: tuple[str, ...] = ()
    """The escalation route the alert was sent on (e.g. social team, then PR lead)."""
    summary: str = ""
    """One paragraph for people, rendered from the configured (Jinja2) template."""
    peak_level: str | None = None
    """The highest level the incident reached (None when unknown: reminders, hand-offs)."""

    @property
    def title(self) -> str:
        prefix = "[DRILL] " if self.drill else ""
        verbs = {
            "opened": f"{self.level.upper()}: {self.brand} — {self.rule}",
            "escalated": f"ESCALATED to {self.level.upper()}: {self.brand} — {self.rule}",
            "deescalated": f"De-escalated to {self.level}: {self.brand} — {self.rule}",
            "resolved": f"RESOLVED: {self.brand} — {self.rule}",
            "reminder": f"STILL {self.level.upper()}: {self.brand} — {self.rule} (unacknowledged)",
            "acknowledged": f"ACKNOWLEDGED ({self.level}): {self.brand} — {self.rule}",
            "handoff": f"NOT ACKNOWLEDGED, escalating ({self.level.upper()}): "
            f"{self.brand} — {self.rule}",
        }
        return prefix + verbs[self.kind]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["title"] = self.title
        for ref in data["top_mentions"]:
            ref["created_at"] = ref["created_at"].isoformat()
        data["categories"] = [list(c) for c in self.categories]
        data["trend"] = list(self.trend)
        data["route"] = list(self.route)
        data["opened_at"] = self.opened_at.isoformat() if self.opened_at else None
        if self.ack is not None:
            data["ack"] = {"by": self.ack.by, "at": self.ack.at.isoformat(), "note": self.ack.note}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(
            id=data["id"],
            incident_id=data["incident_id"],
            kind=data["kind"],
            rule=data["rule"],
            brand=data["brand"],
            level=data["level"],
            previous_level=data.get("previous_level"),
            at=datetime.fromisoformat(data["at"]),
            facts=tuple(Fact(**f) for f in data.get("facts", ())),
            top_mentions=tuple(
                MentionRef(**{**m, "created_at": datetime.fromisoformat(m["created_at"])})
                for m in data.get("top_mentions", ())
            ),
            drill=bool(data.get("drill", False)),
            categories=tuple((str(c), int(n)) for c, n in data.get("categories", ())),
            authors=tuple(AuthorRef(**a) for a in data.get("authors", ())),
            trend=tuple(int(v) for v in data.get("trend", ())),
            trend_step=int(data.get("trend_step", 0)),
            ack=(
                Ack(
                    data["ack"]["by"],
                    datetime.fromisoformat(data["ack"]["at"]),
                    data["ack"].get("note", ""),
                )
                if data.get("ack")
                else None
            ),
            opened_at=(
                datetime.fromisoformat(data["opened_at"]) if data.get("opened_at") else None
            ),
            route=tuple(data.get("route", ())),
            summary=str(data.get("summary", "")),
            peak_level=data.get("peak_level"),
        )
