"""Text shaping the sinks share: one printable line, cut to a limit; a digest's lines."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from listener.model import (
    Alert,
    AlertKind,
    BrandDigest,
    Digest,
    DigestIncident,
    DigestPeriod,
    Driver,
    Explanation,
    Fact,
    MentionRef,
    StoryRecord,
)

KIND_EMOJI: dict[AlertKind, str] = {
    "opened": "🚨",
    "escalated": "⏫",
    "deescalated": "⏬",
    "resolved": "✅",
    "reminder": "⏰",
    "acknowledged": "👀",
    "handoff": "📟",
}
"""The emoji chat sinks put before an alert of each kind."""


def clean_line(value: object) -> str:
    """One line of printable text: whitespace collapsed, control characters (ANSI escapes
    hidden in a mention's text, say) replaced, so nothing can drive a terminal or break a
    header."""
    text = " ".join(str(value).split())
    return "".join(ch if ch.isprintable() else " " for ch in text)


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def one_line(text: str, limit: int) -> str:
    """Whitespace collapsed, then cut to ``limit``."""
    return cut(" ".join(text.split()), limit)


def excerpt(value: object, limit: int) -> str:
    """:func:`clean_line`, then cut to ``limit``."""
    return cut(clean_line(value), limit)


def fit_lines(lines: Sequence[str], limit: int, size: Callable[[str], int] = len) -> str:
    """``lines`` joined with newlines, as many whole lines as fit within ``limit``
    (measured by ``size``), then ``… N more lines not shown`` when some did not. Lines
    are never cut, so one that holds markup (a tag, an entity) stays whole; a first line
    longer than the limit leaves only the note."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        left = len(lines) - index
        note = f"… {left} more line{'s' if left != 1 else ''} not shown"
        cost = size(line) + (1 if kept else 0)
        last = index == len(lines) - 1
        if used + cost <= limit and (last or used + cost + 1 + size(note) <= limit):
            kept.append(line)
            used += cost
            continue
        kept.append(note)
        break
    return "\n".join(kept)


# ---------------------------------------------------------------------- digests


def _count(n: float) -> str:
    return f"{n:,.0f}"


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{max(minutes, 1) if seconds else 0} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def volume_line(b: BrandDigest, every: DigestPeriod) -> str:
    """ "1,240 mentions (▲ 32% on the day before: 940)"."""
    before = "the day before" if every == "day" else "the week before"
    now, then = b.mentions, b.previous_mentions
    if then == 0:
        return f"{_count(now)} mentions (none {before}{' either' if now == 0 else ''})"
    pct = round((now - then) / then * 100)
    arrow = "▲" if pct > 0 else "▼" if pct < 0 else "="
    return f"{_count(now)} mentions ({arrow} {abs(pct)}% on {before}: {_count(then)})"


def share_line(b: BrandDigest) -> str:
    """ "18% negative (▲ 6 pts from 12%)"."""
    share, before = b.negative_share, b.previous_share
    if share is None:
        return "no negative share (no mentions)"
    text = f"{share:.0%} negative ({_count(b.negative)})"
    if before is None:
        return text
    points = round((share - before) * 100)
    arrow = "▲" if points > 0 else "▼" if points < 0 else "="
    return f"{text} ({arrow} {abs(points)} pts from {before:.0%})"


def incidents_line(b: BrandDigest) -> str:
    """ "2 incidents opened, 1 resolved, 1 still open; median time to acknowledge 7 min
    (2 of 2 acknowledged)"."""
    if not (b.opened or b.resolved or b.still_open):
        return "no incidents"
    parts = [
        f"{len(b.opened)} incident{'s' if len(b.opened) != 1 else ''} opened",
        f"{len(b.resolved)} resolved",
        f"{len(b.still_open)} still open",
    ]
    text = ", ".join(parts)
    if b.opened:
        median = b.median_time_to_ack
        acked = f"{len(b.acked)} of {len(b.opened)} acknowledged"
        text += (
            f"; median time to acknowledge {_minutes(median)} ({acked})"
            if median is not None
            else f"; {acked}"
        )
    return text


def incident_line(i: DigestIncident, zone: str) -> str:
    """ "crisis · negative-surge · opened Mon 09:14 · acknowledged by ana after 4 min ·
    resolved Mon 11:02"."""
    tz = ZoneInfo(zone)
    parts = [i.peak_level, i.rule, f"opened {i.opened_at.astimezone(tz):%a %H:%M}"]
    if i.acknowledged_by is not None and i.time_to_ack is not None:
        parts.append(
            f"acknowledged by {clean_line(i.acknowledged_by)} after {_minutes(i.time_to_ack)}"
        )
    else:
        parts.append("not acknowledged")
    if i.resolved_at is not None:
        parts.append(f"resolved {i.resolved_at.astimezone(tz):%a %H:%M}")
    return " · ".join(parts)


def story_line(s: StoryRecord) -> str:
    """ "“Acme checkout down again…” — @ana (x) · 1 + 14 copies, 12 negative"."""
    who = f"@{clean_line(s.lead.author)} ({s.lead.source})" if s.lead.author else s.lead.source
    copies = s.mentions - 1
    size = f"1 + {copies} cop{'ies' if copies != 1 else 'y'}" if copies else "1 mention"
    return f"“{excerpt(s.lead.text, 120)}” — {who} · {size}, {s.negative} negative"


def render_digest_text(digest: Digest) -> str:
    """The digest as plain text (the console sink, email's text part)."""
    lines = [digest.title, digest.span]
    for b in digest.brands:
        lines += [
            "",
            clean_line(b.brand),
            f"  {volume_line(b, digest.every)}",
            f"  {share_line(b)}",
        ]
        lines.append(f"  {incidents_line(b)}")
        lines += [f"    - {incident_line(i, digest.timezone)}" for i in listed_incidents(b)]
        if b.stories:
            lines.append("  Top stories:")
            for n, s in enumerate(b.stories, 1):
                lines.append(f"    {n}. {story_line(s)}")
                if s.lead.url:
                    lines.append(f"       {clean_line(s.lead.url)}")
    return "\n".join(lines)


def listed_incidents(b: BrandDigest) -> tuple[DigestIncident, ...]:
    """The incidents a digest lists for a brand, each once: those opened in the period,
    then older ones resolved in it or still open."""
    seen: dict[str, DigestIncident] = {}
    for i in (*b.opened, *b.resolved, *b.still_open):
        seen.setdefault(i.id, i)
    return tuple(seen.values())


# ---------------------------------------------------------------------- spike explanation


def driver_label(d: Driver) -> str:
    """A driver as people read it: ``"outage"``, ``"cancelled flight"``, ``#acmedown``,
    ``story "Third outage this month…"``, ``link status.acme.com``, ``@ana on x``."""
    if d.kind in ("term", "phrase"):
        return f"“{clean_line(d.label)}”"
    if d.kind == "story":
        return f"story “{excerpt(d.label, 80)}”"
    if d.kind == "domain":
        return f"link {clean_line(d.label)}"
    return clean_line(d.label)


def _span(e: Explanation) -> str:
    minutes = max(1, round((e.end - e.start).total_seconds() / 60))
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.0f} h"


def explanation_scope(e: Explanation) -> str:
    """What was compared: "negative mentions of the last 16 min (47) against the day
    before's mentions (101)"."""
    now = "negative mentions" if e.negative else "mentions"
    before = "negative mentions" if e.baseline_negative else "mentions"
    return (
        f"{now} of the last {_span(e)} ({e.mentions:,}) against the day before's "
        f"{before} ({e.baseline:,})"
    )


def explanation_heading(e: Explanation) -> str:
    """What the list under it is: "what rose: <scope>"; "nothing rose clearly (<scope>);
    what they are about"; or that nothing stands out."""
    if not e.drivers:
        return f"nothing stands out ({explanation_scope(e)})"
    if e.rose:
        tail = ", then what else they are about" if not all(d.rose for d in e.drivers) else ""
        return f"what rose{tail}: {explanation_scope(e)}"
    return f"nothing rose clearly ({explanation_scope(e)}); what they are about"


def driver_text(d: Driver) -> str:
    """``“outage” 14 now, 2 before``; ``(no clear rise)`` after one that did not rise."""
    text = f"{driver_label(d)} {d.now} now, {d.before} before"
    return text if d.rose else f"{text} (no clear rise)"


def explanation_line(e: Explanation, limit: int = 5) -> str:
    """One line: "Why: “outage” 14 now, 2 before; #acmedown 9 now, 0 before …", or that
    nothing stands out."""
    if not e.drivers:
        return f"Why: nothing stands out ({explanation_scope(e)})"
    return "Why: " + "; ".join(driver_text(d) for d in e.drivers[:limit])


# ---------------------------------------------------------------------- chat messages

Severity = Literal["critical", "high", "other"]
_CRITICAL_LEVELS = frozenset({"crisis", "critical", "severe", "emergency", "sev1", "p1"})
_HIGH_LEVELS = frozenset({"high", "elevated", "major", "error", "sev2", "p2"})


def severity_of(level: str) -> Severity:
    """How loud a level name is (case-insensitive): ``critical`` (crisis, critical and
    the like), ``high`` (high, elevated…) or ``other``; chat sinks colour by it."""
    name = level.strip().lower()
    if name in _CRITICAL_LEVELS:
        return "critical"
    return "high" if name in _HIGH_LEVELS else "other"


_BROADCASTS = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)


def defuse_broadcasts(text: str) -> str:
    """``@here``, ``@channel`` and ``@everyone`` with a zero-width space after the ``@``,
    so no chat service reads them as a mass mention."""
    return _BROADCASTS.sub("@\u200b\\1", text)


MAX_URL = 1000
"""Longer URLs are not linked (nobody reads them; some services refuse them)."""


def web_url(url: str | None, limit: int = MAX_URL) -> str | None:
    """``url`` when it is an absolute ``http(s)`` URL with a host, at most ``limit``
    characters, without spaces or control characters; else ``None`` (never linked)."""
    if not url:
        return None
    clean = url.strip()
    if len(clean) > limit or any(ch.isspace() or not ch.isprintable() for ch in clean):
        return None
    try:
        parts = urlsplit(clean)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return clean


def number(value: float) -> str:
    """``1,234`` for whole numbers, ``0.81`` otherwise."""
    if not math.isfinite(value):
        return str(value)
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def fact_value(fact: Fact) -> str:
    """A fact's value with its threshold and baseline: ``42 (threshold 10 · baseline 3.50,
    12.0× baseline)``."""
    extra = []
    if fact.threshold is not None:
        extra.append(f"threshold {number(fact.threshold)}")
    if fact.baseline is not None:
        text = f"baseline {number(fact.baseline)}"
        if fact.baseline > 0 and math.isfinite(fact.value):
            text += f", {fact.value / fact.baseline:.1f}× baseline"
        extra.append(text)
    return number(fact.value) + (f" ({' · '.join(extra)})" if extra else "")


def duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h5m``, ``2d4h``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    days, rest = divmod(total // 60, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    return "".join(parts)


def status_line(alert: Alert) -> str:
    """Where the incident stands: resolved (after how long), acknowledged by whom, or
    open and not yet acknowledged."""
    if alert.kind == "resolved":
        if alert.opened_at is not None:
            return f"Resolved after {duration((alert.at - alert.opened_at).total_seconds())}"
        return "Resolved"
    if alert.ack is not None:
        return f"Acknowledged by {clean_line(alert.ack.by)}"
    return "Open, not acknowledged yet"


def level_line(alert: Alert) -> str:
    """``CRISIS (was high)``."""
    text = clean_line(alert.level.upper())
    if alert.previous_level is not None and alert.previous_level != alert.level:
        text += f" (was {clean_line(alert.previous_level)})"
    return text


def mention_line(ref: MentionRef, limit: int) -> str:
    """ "“Acme outage: nothing…” — @alice (12,345 followers) · news · sentiment -0.80"
    (the text cut to ``limit``)."""
    who = f"@{clean_line(ref.author).lstrip('@')}" if ref.author else "unknown author"
    if ref.followers is not None:
        who += f" ({ref.followers:,} followers)"
    sentiment = f" · sentiment {ref.sentiment:+.2f}" if math.isfinite(ref.sentiment) else ""
    return f"“{excerpt(ref.text, limit)}” — {who} · {clean_line(ref.source)}{sentiment}"
