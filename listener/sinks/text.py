"""Text shaping the sinks share: one printable line, cut to a limit; a digest's lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from listener.model import (
    AlertKind,
    BrandDigest,
    Digest,
    DigestIncident,
    DigestPeriod,
    Driver,
    Explanation,
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
