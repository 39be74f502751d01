"""The shapes that flow through the pipeline. Frozen, typed, serialisable.

``Mention`` is the one shape every source produces. ``ScoredMention`` is a mention
after matching and scoring. ``Alert`` is what the delivery stage sends. ``Ack`` and
``Silence`` are the operators' stored records that the notification policy reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from listener.clock import as_utc

SentimentLabel = Literal["negative", "neutral", "positive", "unscored"]
"""A mention's sentiment: what a scorer said, or ``unscored`` when no scorer reads its
language (``scoring.sentiment``, docs/languages.md): counted in volume, never as
neutral."""
SENTIMENT_LABELS: tuple[SentimentLabel, ...] = ("negative", "neutral", "positive", "unscored")


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
    """Its language as a primary ISO 639 code (``en``): given by the source, or decided by
    the Ingest stage (:mod:`listener.scoring.language`); None when unknown."""
    engagement: Engagement = field(default_factory=Engagement)
    is_repost: bool = False
    reposted_id: str | None = None
    title: str | None = None

    def in_language(self, language: str | None) -> Mention:
        """This mention with ``language``. Built field by field: ``dataclasses.replace`` (or
        the constructor, which normalises ``created_at`` again) costs several times as much,
        and the Ingest stage does this for most mentions."""
        new = object.__new__(Mention)
        put = object.__setattr__
        put(new, "source", self.source)
        put(new, "id", self.id)
        put(new, "text", self.text)
        put(new, "created_at", self.created_at)
        put(new, "url", self.url)
        put(new, "author", self.author)
        put(new, "language", language)
        put(new, "engagement", self.engagement)
        put(new, "is_repost", self.is_repost)
        put(new, "reposted_id", self.reposted_id)
        put(new, "title", self.title)
        return new

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


UNSCORED = Sentiment("unscored", 0.0)
"""The sentiment of a mention in a language no scorer reads (compound 0: it adds nothing
to sentiment sums)."""


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
        if label not in SENTIMENT_LABELS:
            raise ValueError(f"unknown sentiment label {label!r}")
        story = data.get("story")
        return cls(
            mention=Mention.from_dict(data["mention"]),
            brands=tuple(str(b) for b in data["brands"]),
            sentiment=Sentiment(label, float(sentiment["compound"])),
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
class StoryRecord:
    """One story in a period: a mention and its copies (reposts, quotes, near-duplicates:
    the ``story`` Ingest gave each), counted together."""

    story: str
    lead: MentionRef
    """The story's mention that travelled furthest (its first, on a tie)."""
    mentions: int
    negative: int
    reach: float
    first_at: datetime
    last_at: datetime
    categories: tuple[str, ...]
    """The crisis categories of its mentions, most first."""

    def to_dict(self) -> dict[str, Any]:
        lead = asdict(self.lead)
        lead["created_at"] = self.lead.created_at.isoformat()
        return {
            "story": self.story,
            "lead": lead,
            "mentions": self.mentions,
            "negative": self.negative,
            "reach": self.reach,
            "first_at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "categories": list(self.categories),
        }


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
class StoredMention:
    """A stored mention as the spike explanation reads it: its reference, whole text,
    story (its own ``source:id`` when it is not a copy), reach and polarity."""

    ref: MentionRef
    text: str
    story: str
    reach: float
    negative: bool = False


DriverKind = Literal["term", "phrase", "hashtag", "story", "domain", "author"]


def _ref_dict(ref: MentionRef) -> dict[str, Any]:
    data = asdict(ref)
    data["created_at"] = ref.created_at.isoformat()
    return data


def _ref_of(data: dict[str, Any]) -> MentionRef:
    return MentionRef(**{**data, "created_at": datetime.fromisoformat(data["created_at"])})


@dataclass(frozen=True, slots=True)
class Driver:
    """One thing whose share of the conversation rose most in an alert's window against
    its baseline: a word, a two-word phrase, a hashtag, a story, a linked domain or an
    author (what the spike is about). ``now`` and ``before`` count the mentions that
    carry it in the window and in the baseline; ``score`` is the z-score of its weighted
    log-odds ratio (Monroe, Colaresi & Quinn 2008); ``example`` is the window's
    furthest-travelled mention that carries it."""

    kind: DriverKind
    label: str
    now: int
    before: int
    score: float
    example: MentionRef | None = None
    rose: bool = True
    """False: it did not rise; it is listed as what the window is about (the most
    carried things, when too few rose)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "now": self.now,
            "before": self.before,
            "score": round(self.score, 2),
            "example": _ref_dict(self.example) if self.example is not None else None,
            "rose": self.rose,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Driver:
        example = data.get("example")
        return cls(
            kind=data["kind"],
            label=str(data["label"]),
            now=int(data["now"]),
            before=int(data["before"]),
            score=float(data["score"]),
            example=_ref_of(example) if example else None,
            rose=bool(data.get("rose", True)),
        )


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a spike happened, at a glance: the :class:`Driver`s of the mentions in
    [start, end) (``mentions`` of them) against the baseline [baseline_start, start)
    (``baseline`` mentions), strongest first. ``negative``: the window's mentions
    compared are its negative ones (else all of them: too few were negative);
    ``baseline_negative``: so are the baseline's (else all of them: too few were
    negative to say what is usual)."""

    start: datetime
    end: datetime
    baseline_start: datetime
    mentions: int
    baseline: int
    negative: bool
    baseline_negative: bool
    drivers: tuple[Driver, ...]

    @property
    def rose(self) -> bool:
        """Whether anything rose (else the drivers only say what the window is about)."""
        return any(d.rose for d in self.drivers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "baseline_start": self.baseline_start.isoformat(),
            "mentions": self.mentions,
            "baseline": self.baseline,
            "negative": self.negative,
            "baseline_negative": self.baseline_negative,
            "drivers": [d.to_dict() for d in self.drivers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        return cls(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            baseline_start=datetime.fromisoformat(data["baseline_start"]),
            mentions=int(data["mentions"]),
            baseline=int(data["baseline"]),
            negative=bool(data["negative"]),
            baseline_negative=bool(data.get("baseline_negative", data["negative"])),
            drivers=tuple(Driver.from_dict(d) for d in data.get("drivers", ())),
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
    explanation: Explanation | None = None
    """What rose most in the alert's window (None: not a brand's spike, or nothing to
    compare)."""

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
        data["explanation"] = self.explanation.to_dict() if self.explanation else None
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
            explanation=(
                Explanation.from_dict(data["explanation"]) if data.get("explanation") else None
            ),
        )


DigestPeriod = Literal["day", "week"]


@dataclass(frozen=True, slots=True)
class DigestIncident:
    """An incident as a digest lists it: what it was, how high it went, how fast
    someone took it."""

    id: str
    rule: str
    peak_level: str
    status: str
    opened_at: datetime
    resolved_at: datetime | None
    acknowledged_by: str | None
    time_to_ack: float | None
    """Seconds from opening to the first acknowledgement (None: not acknowledged)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "peak_level": self.peak_level,
            "status": self.status,
            "opened_at": self.opened_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "acknowledged_by": self.acknowledged_by,
            "time_to_ack_seconds": self.time_to_ack,
        }


@dataclass(frozen=True, slots=True)
class BrandDigest:
    """One brand's period in a digest, beside the period before it."""

    brand: str
    mentions: int
    negative: int
    previous_mentions: int
    previous_negative: int
    stories: tuple[StoryRecord, ...]
    """The period's most told stories, the most mentioned first."""
    opened: tuple[DigestIncident, ...]
    """Incidents opened in the period."""
    resolved: tuple[DigestIncident, ...]
    """Incidents resolved in the period (opened in it or before)."""
    still_open: tuple[DigestIncident, ...]
    """Incidents open at the period's end."""

    @property
    def negative_share(self) -> float | None:
        return self.negative / self.mentions if self.mentions else None

    @property
    def previous_share(self) -> float | None:
        return self.previous_negative / self.previous_mentions if self.previous_mentions else None

    @property
    def acked(self) -> tuple[DigestIncident, ...]:
        """The period's opened incidents that someone acknowledged."""
        return tuple(i for i in self.opened if i.time_to_ack is not None)

    @property
    def median_time_to_ack(self) -> float | None:
        """Seconds, over the opened incidents that were acknowledged (None: none was)."""
        times = sorted(i.time_to_ack for i in self.acked if i.time_to_ack is not None)
        if not times:
            return None
        mid = len(times) // 2
        return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "brand": self.brand,
            "mentions": self.mentions,
            "negative": self.negative,
            "negative_share": self.negative_share,
            "previous": {
                "mentions": self.previous_mentions,
                "negative": self.previous_negative,
                "negative_share": self.previous_share,
            },
            "stories": [s.to_dict() for s in self.stories],
            "incidents": {
                "opened": [i.to_dict() for i in self.opened],
                "resolved": [i.to_dict() for i in self.resolved],
                "still_open": [i.to_dict() for i in self.still_open],
                "median_time_to_ack_seconds": self.median_time_to_ack,
            },
        }


@dataclass(frozen=True, slots=True)
class Digest:
    """A scheduled summary of [start, end) for some brands (``digests:`` in rules.yaml),
    compared with the period of the same length before it. ``id`` is stable for the
    digest's name, period and receiver: a resend carries the same idempotency key."""

    id: str
    name: str
    every: DigestPeriod
    start: datetime
    end: datetime
    timezone: str
    """The zone the schedule is in: dates are shown in it."""
    brands: tuple[BrandDigest, ...]

    @property
    def title(self) -> str:
        """ "Daily digest · Mon 07 Dec 2026" (the day it is sent, in its zone); "Weekly
        digest · 30 Nov – 07 Dec 2026"."""
        zone = ZoneInfo(self.timezone)
        end = self.end.astimezone(zone)
        if self.every == "day":
            return f"Daily digest · {end:%a %d %b %Y}"
        return f"Weekly digest · {self.start.astimezone(zone):%d %b} – {end:%d %b %Y}"

    @property
    def span(self) -> str:
        """ "Sun 06 Dec 08:00 – Mon 07 Dec 08:00 (Europe/London)": what it covers."""
        zone = ZoneInfo(self.timezone)
        first, last = self.start.astimezone(zone), self.end.astimezone(zone)
        return f"{first:%a %d %b %H:%M} – {last:%a %d %b %H:%M} ({self.timezone})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "digest",
            "id": self.id,
            "name": self.name,
            "every": self.every,
            "title": self.title,
            "span": self.span,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": self.timezone,
            "brands": [b.to_dict() for b in self.brands],
        }
