"""Post-incident reports as HTML (one self-contained, printable file) or Markdown.

Both formats render the same :class:`View` (formatted strings, no logic in templates).
Mention texts, handles and links are untrusted: the HTML template autoescapes every
value, links are kept only when they are ``http(s)``, and Markdown cells are escaped
so a post cannot break a table, inject HTML or disguise a link.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from jinja2 import Environment, StrictUndefined

from listener import incidents
from listener.config.duration import format_duration
from listener.report.chart import level_colour
from listener.report.data import BASELINE_WINDOW, MIN_HISTORY, ReportData
from listener.scoring.explain import MIN_SCORE
from listener.sinks.text import driver_label, explanation_heading

KIND_LABELS = {
    "opened": "opened",
    "escalated": "escalated",
    "deescalated": "de-escalated",
    "resolved": "resolved",
    "reminder": "reminder",
    "acknowledged": "acknowledged",
    "handoff": "handoff (unacknowledged)",
}


def when(at: datetime | None) -> str:
    return "—" if at is None else f"{at:%Y-%m-%d %H:%M:%S} UTC"


def span(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    sign = "−" if delta < timedelta(0) else ""
    return sign + format_duration(abs(delta))


def copies(mentions: int) -> str:
    """A story's size: ``1``, ``1 + 1 copy``, ``1 + 4 copies``."""
    extra = mentions - 1
    return "1" if extra < 1 else f"1 + {extra} {'copy' if extra == 1 else 'copies'}"


def seen(first: datetime, last: datetime) -> str:
    """From first to last seen; the day once when both fall on it."""
    if first == last:
        return when(first)
    if first.date() == last.date():
        return f"{when(first).removesuffix(' UTC')} – {last:%H:%M:%S} UTC"
    return f"{when(first)} – {when(last)}"


def offset(at: datetime, origin: datetime) -> str:
    """``+1h05m`` from the opening (``−…`` before it)."""
    delta = at - origin
    return ("−" if delta < timedelta(0) else "+") + format_duration(abs(delta))


def safe_url(url: str | None) -> str | None:
    """The URL when it is a plain http(s) link, else None (no ``javascript:`` links)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


@dataclass(frozen=True, slots=True)
class Row:
    cells: tuple[str, ...]
    link: str | None = None
    """A safe URL for the row's ``link_cell`` (mentions)."""


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    empty: str
    note: str = ""
    link_cell: int = -1


@dataclass(frozen=True, slots=True)
class View:
    """One incident's report, formatted."""

    title: str
    sentence: str
    """What happened, in one plain sentence (as the console's)."""
    drill: bool
    incident_id: str
    as_of: str
    summary: tuple[tuple[str, str], ...]
    peak: str
    peak_colour: str
    description: str
    chart_alt: str
    chart_caption: str
    lifecycle: tuple[Table, ...]
    mentions_intro: str
    mentions: tuple[Table, ...]
    review: tuple[str, ...]


def build_view(data: ReportData) -> View:
    inc = data.incident
    opened = inc.opened_at
    sent = [a for a in data.alerts if a.outcome != "muted"]
    outcomes = {o: sum(a.outcome == o for a in data.alerts) for o in ("delivered", "failed")}
    pending = sum(a.outcome == "pending" for a in data.alerts)
    muted = sum(a.outcome == "muted" for a in data.alerts)
    status = inc.status if inc.resolved_at else f"{inc.status} (at {inc.level} as of the report)"
    ack = data.ack
    det = data.detection
    summary = [
        ("Brand", inc.brand),
        ("Rule", inc.rule),
        ("Peak severity", inc.peak_level),
        ("Status", status),
        ("Opened", when(opened)),
        ("Resolved", when(inc.resolved_at) if inc.resolved_at else "not yet"),
        ("Duration", span(data.duration) + ("" if inc.resolved_at else " so far")),
        (
            "Acknowledged",
            f"by {ack.by} at {when(ack.at)}, {span(data.time_to_ack)} after opening"
            if ack
            else "not acknowledged",
        ),
        (
            "Alerts",
            f"{len({a.alert_id for a in sent})} raised to {len(sent)} sink deliveries: "
            f"{outcomes['delivered']} delivered, {outcomes['failed']} failed, "
            f"{pending} pending; {muted} muted",
        ),
        ("Spike → first alert", _detection_line(data)),
        (
            "Mentions",
            f"{data.mentions} ({data.negative} negative, {_share(data.negative, data.mentions)})"
            if data.brand_incident
            else "— (source-health incident)",
        ),
        ("Incident id", inc.id),
    ]
    if det.first_delivered_at is not None:
        first = det.first_delivered_at
        summary.insert(-2, ("First delivery", f"{when(first)} ({offset(first, opened)})"))
    first_fact = next((str(f) for e in data.events for f in e.facts), None)
    return View(
        title=f"{inc.brand} — {inc.rule}",
        sentence=incidents.sentence(
            brand=inc.brand,
            rule=inc.rule,
            level=inc.level,
            status=inc.status,
            lasted=data.duration,
            what=first_fact,
            acknowledged_by=ack.by if ack else None,
        ),
        drill=data.drill,
        incident_id=inc.id,
        as_of=when(data.now),
        summary=tuple(summary),
        peak=inc.peak_level,
        peak_colour=level_colour(data.rank(inc.peak_level), max(len(data.levels), 1)),
        description=data.description,
        chart_alt=(
            f"Mentions of {inc.brand} per {_step(data)} from {when(data.chart_start)} to "
            f"{when(data.chart_end)}, with the baseline, severity levels, alerts and notes"
        ),
        chart_caption=_caption(data),
        lifecycle=(_levels_table(data), _alerts_table(data), _events_table(data)),
        mentions_intro=_mentions_intro(data),
        mentions=_mention_tables(data),
        review=_review(data),
    )


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "—"


def _step(data: ReportData) -> str:
    return format_duration(data.step)


def _detection_line(data: ReportData) -> str:
    det = data.detection
    if det.lead is not None and det.spike_at is not None and det.first_alert_at is not None:
        return (
            f"{span(det.lead)} (spike from {when(det.spike_at)}, first alert raised "
            f"{when(det.first_alert_at)}); {det.note}"
        )
    if det.first_alert_at is not None:
        return f"first alert raised {when(det.first_alert_at)}; {det.note}"
    return det.note


def _caption(data: ReportData) -> str:
    hours = int(BASELINE_WINDOW.total_seconds() // 3600)
    text = (
        f"Bars: mentions of {data.incident.brand} per {_step(data)} bucket (blue), negative "
        f"ones in orange. Dashed line: the baseline, the mean mentions per bucket over the "
        f"{hours} h before each bucket (trailing, no look-ahead), from the first stored "
        f"mention on and once {format_duration(MIN_HISTORY)} of history precedes it. "
        "Shaded bands: the severity level the incident was at (yellow lowest, red highest). "
        "Triangles with dotted lines: alerts raised (green delivered, red failed, grey "
        "pending, white muted); a star: the acknowledgement. Numbered boxes under the top "
        "edge with thin lines: people's notes (teal) and assignments (brown), numbered as "
        "in the table of alerts, acknowledgement and notes. Lower panel: mean sentiment "
        "(−1 very negative … +1 very positive). Times in UTC."
    )
    if data.data_start is not None and data.data_start > data.chart_start:
        text += f" The store holds no mentions of this brand before {when(data.data_start)}."
    return text


def _levels_table(data: ReportData) -> Table:
    facts = {(e.at, e.level): "; ".join(str(f) for f in e.facts) for e in data.events}
    rows = [
        Row(
            (
                s.level,
                when(s.start),
                offset(s.start, data.incident.opened_at),
                KIND_LABELS.get(s.entered_by, s.entered_by),
                when(s.end) if s.end else "still at it",
                span((s.end or data.now) - s.start),
                facts.get((s.start, s.level), ""),
            )
        )
        for s in data.spans
    ]
    return Table(
        "Severity levels",
        ("Level", "Entered", "Since opening", "By", "Left", "Time at level", "Why (facts)"),
        tuple(rows),
        "no level changes recorded",
    )


def _alerts_table(data: ReportData) -> Table:
    rows = []
    for a in data.alerts:
        if a.outcome == "muted":
            outcome = f"muted: {a.detail or 'no reason recorded'}"
        elif a.outcome == "delivered":
            outcome = f"delivered after {a.attempts} attempt(s)"
        elif a.outcome == "failed":
            outcome = f"failed after {a.attempts} attempt(s): {a.detail or ''}".rstrip(": ")
        else:
            outcome = "pending" + (f" (last error: {a.detail})" if a.detail else "")
        rows.append(
            Row(
                (
                    when(a.raised_at),
                    offset(a.raised_at, data.incident.opened_at),
                    KIND_LABELS.get(a.kind, a.kind),
                    a.level,
                    a.sink or "—",
                    outcome,
                    when(a.finished_at),
                    span(a.latency),
                )
            )
        )
    if data.ack is not None:
        rows.append(
            Row(
                (
                    when(data.ack.at),
                    offset(data.ack.at, data.incident.opened_at),
                    "acknowledgement",
                    "",
                    "",
                    f"by {data.ack.by}" + (f": {data.ack.note}" if data.ack.note else ""),
                    "",
                    f"time to acknowledge {span(data.time_to_ack)}",
                )
            )
        )
    for number, note in enumerate(data.notes, start=1):  # numbered as on the chart
        said = (
            f"{note.by} gave it to {note.text}"
            if note.kind == "assigned"
            else f"{note.by}: {note.text}"
        )
        rows.append(
            Row(
                (
                    when(note.at),
                    offset(note.at, data.incident.opened_at),
                    f"{'assignment' if note.kind == 'assigned' else 'note'} {number}",
                    "",
                    "",
                    said,
                    "",
                    "",
                )
            )
        )
    return Table(
        "Alerts, acknowledgement and notes",
        (
            "Raised",
            "Since opening",
            "Kind",
            "Level",
            "Sink",
            "Outcome",
            "Delivered / failed",
            "Latency",
        ),
        tuple(rows),
        "no alerts were raised for this incident",
        note="One row per alert and sink. Latency: from raising the alert to its delivery.",
    )


def _events_table(data: ReportData) -> Table:
    rows = [
        Row(
            (
                str(e.seq),
                when(e.at),
                KIND_LABELS.get(e.kind, e.kind),
                f"{e.previous_level} → {e.level}"
                if e.previous_level and e.previous_level != e.level
                else e.level,
                "; ".join(str(f) for f in e.facts),
            )
        )
        for e in data.events
    ]
    return Table(
        "Incident events",
        ("#", "At", "Event", "Level", "Facts"),
        tuple(rows),
        "no events recorded",
    )


def _mentions_intro(data: ReportData) -> str:
    if not data.brand_incident:
        return (
            f"A source-health incident: {data.incident.brand} is a source that failed or went "
            "silent, so there are no brand mentions to show."
        )
    return (
        f"Mentions of {data.incident.brand} written from {when(data.period_start)} (the "
        f"rule's window before opening, or the spike start if earlier) to "
        f"{when(data.incident.resolved_at or data.now)}: {data.mentions} in all, "
        f"{data.negative} negative ({_share(data.negative, data.mentions)}). Reach is the "
        "estimated readers of a post (followers plus weighted reposts, replies and likes)."
    )


def _why_table(data: ReportData) -> Table:
    e = data.explanation
    note = (
        f"When the incident opened, {explanation_heading(e)}. Weighted log-odds with an "
        "informative Dirichlet prior (Monroe, Colaresi and Quinn 2008): the score is how "
        f"sure a rise is ({MIN_SCORE} or more: it rose); each row links to the "
        "furthest-travelled post that carries it."
        if e is not None
        else ""
    )
    return Table(
        "Why it spiked",
        ("What", "Kind", "Now", "Before", "Score"),
        tuple(
            Row(
                (driver_label(d), d.kind, str(d.now), str(d.before), f"{d.score:.1f}"),
                link=safe_url(d.example.url) if d.example is not None else None,
            )
            for d in (e.drivers if e is not None else ())
        ),
        "nothing stood out against the day before"
        if e is not None
        else "too few mentions when it opened to say",
        note=note,
        link_cell=0,
    )


def _mention_tables(data: ReportData) -> tuple[Table, ...]:
    if not data.brand_incident:
        return ()
    top = Table(
        "Top stories",
        ("Story", "Mentions", "Negative", "Reach", "Seen", "Source", "Author", "Categories"),
        tuple(
            Row(
                (
                    " ".join(s.lead.text.split()),
                    copies(s.mentions),
                    str(s.negative),
                    f"{s.reach:,.0f}",
                    seen(s.first_at, s.last_at),
                    s.lead.source,
                    s.lead.author or "—",
                    ", ".join(s.categories) or "—",
                ),
                link=safe_url(s.lead.url),
            )
            for s in data.stories
        ),
        "no mentions stored for this period",
        note="A story is a post with its reposts, quotes and near copies, counted together "
        "and shown by the copy that travelled furthest; the most mentioned first.",
        link_cell=0,
    )
    authors = Table(
        "Top authors",
        ("Role", "Author", "Source", "Mentions", "Largest reach"),
        tuple(
            Row(
                (
                    "detractor (most negative mentions)"
                    if a.role == "detractor"
                    else "amplifier (largest reach)",
                    a.handle,
                    a.source,
                    str(a.mentions),
                    f"{a.reach:,.0f}",
                )
            )
            for a in data.authors
        ),
        "no repeat detractors or amplifiers",
    )
    categories = Table(
        "Top categories (negative mentions)",
        ("Category", "Negative mentions"),
        tuple(Row((name, str(n))) for name, n in data.categories),
        "no crisis category was tagged",
    )
    sources = Table(
        "Sources",
        ("Source", "Mentions", "Negative", "Negative share", "Reach"),
        tuple(
            Row(
                (
                    s.source,
                    str(s.mentions),
                    str(s.negative),
                    _share(s.negative, s.mentions),
                    f"{s.reach:,.0f}",
                )
            )
            for s in data.sources
        ),
        "no mentions stored for this period",
    )
    return (_why_table(data), top, authors, categories, sources)


def _review(data: ReportData) -> tuple[str, ...]:
    out = [
        "Was the first alert early enough? Compare the spike start with the first alert "
        "above; a long gap means the rule's thresholds or windows are too lax.",
        "Did the right people hear at each level? Check the sinks per level, failures and "
        "muted alerts.",
    ]
    if data.ack is None and data.incident.resolved_at is not None:
        out.append(
            "Nobody acknowledged this incident: was it seen? If it was noise, tighten the rule."
        )
    elif data.time_to_ack is not None:
        out.append(f"Time to acknowledge was {span(data.time_to_ack)}: is that within the plan?")
    if data.categories:
        out.append(
            f"Root cause: the negative mentions were mostly about {data.categories[0][0]}; "
            "does the response plan cover it?"
        )
    out.append(
        "Who were the amplifiers and detractors, and was each answered? Update the plan, "
        "the rules (listener backtest) and rehearse again (listener drill)."
    )
    return tuple(out)


# --------------------------------------------------------------------------- HTML

_HTML = """{% macro table(t) %}
<h3>{{ t.title }}</h3>
{% if t.note %}<p class="note">{{ t.note }}</p>{% endif %}
{% if t.rows %}
<div class="scroll"><table>
<tr>{% for h in t.headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in t.rows %}
<tr>
{% for cell in row.cells %}
{% if loop.index0 == t.link_cell %}
<td class="text">{{ cell }}{% if row.link %}
 <a href="{{ row.link }}" rel="noopener noreferrer nofollow">link</a>{% endif %}</td>
{% else %}
<td>{{ cell }}</td>
{% endif %}
{% endfor %}
</tr>
{% endfor %}
</table></div>
{% else %}
<p class="note">{{ t.empty[:1] | upper }}{{ t.empty[1:] }}.</p>
{% endif %}
{% endmacro %}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1" />
<title>{{ page_title }}</title>
<style>
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #222; margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; border-bottom: 1px solid #ccc; padding-bottom: 3px; margin-top: 28px; }
h3 { font-size: 14px; margin: 18px 0 6px; }
.sub, .note, figcaption { color: #555; font-size: 12.5px; }
.drill { background: #6a3d9a; color: #fff; border-radius: 3px; padding: 1px 6px;
  font-size: 13px; vertical-align: middle; }
.badge { border-radius: 3px; padding: 1px 6px; font-weight: 600; color: #111; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
table.summary th { width: 170px; }
td.text { max-width: 420px; overflow-wrap: anywhere; }
img.chart { width: 100%; height: auto; border: 1px solid #eee; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: 0; }
.sentence { font-size: 16px; background: #f4f6fb; border-left: 4px solid #3b5bdb;
  padding: 8px 12px; margin: 8px 0 12px; }
body { overflow-wrap: anywhere; }
@media (max-width: 640px) {
  body { padding: 12px; }
  table.summary th { width: auto; }
  /* the chart keeps a readable size and scrolls sideways inside its box */
  img.chart { width: 640px; max-width: none; }
}
code { font-size: 12px; }
section.incident + section.incident { margin-top: 48px; border-top: 3px solid #333;
  padding-top: 16px; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  section.incident + section.incident { page-break-before: always; border-top: none; }
  h2, h3 { page-break-after: avoid; }
  tr, figure { page-break-inside: avoid; }
  a { color: inherit; }
}
</style>
</head>
<body>
{% for r in reports %}
<section class="incident" id="{{ r.view.incident_id }}">
<h1>{% if r.view.drill %}<span class="drill">DRILL</span> {% endif %}{{ r.view.title }}</h1>
<p class="sentence">{{ r.view.sentence }}</p>
<p class="sub">Post-incident report for incident <code>{{ r.view.incident_id }}</code>,
as of {{ r.view.as_of }}. Peak severity:
<span class="badge" style="background: {{ r.view.peak_colour }}">{{ r.view.peak }}</span></p>
<div class="scroll"><table class="summary">
{% for name, value in r.view.summary %}
<tr><th>{{ name }}</th><td>{{ value }}</td></tr>
{% endfor %}
</table></div>
{% if r.view.description %}
<p class="note">What the rule watches: {{ r.view.description }}</p>
{% endif %}
<h2>Timeline</h2>
<figure>
{% if r.chart %}
<div class="scroll"><img class="chart" src="data:image/png;base64,{{ r.chart }}"
 alt="{{ r.view.chart_alt }}" /></div>
{% endif %}
<figcaption>{{ r.view.chart_caption }}</figcaption>
</figure>
<h2>Lifecycle</h2>
{% for t in r.view.lifecycle %}{{ table(t) }}{% endfor %}
<h2>Mentions</h2>
<p>{{ r.view.mentions_intro }}</p>
{% for t in r.view.mentions %}{{ table(t) }}{% endfor %}
<h2>For the review</h2>
<ul>
{% for q in r.view.review %}<li>{{ q }}</li>
{% endfor %}
</ul>
</section>
{% endfor %}
<p class="note">Generated by listener {{ version }}.</p>
</body>
</html>
"""

_ENV = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(reports: Sequence[tuple[ReportData, bytes | None]]) -> str:
    """One self-contained HTML document: each report with its chart PNG embedded."""
    from listener import __version__

    page = _ENV.from_string(_HTML)
    views = [build_view(data) for data, _ in reports]
    charts = [base64.b64encode(png).decode("ascii") if png else "" for _, png in reports]
    title = "Post-incident report" + (f": {views[0].title}" if len(views) == 1 else "s")
    return page.render(
        reports=[{"view": v, "chart": c} for v, c in zip(views, charts, strict=True)],
        page_title=title,
        version=__version__,
    )


# --------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: str) -> str:
    """Text safe inside a GitHub-flavoured Markdown table cell: one line, no HTML, no
    emphasis or links of its own, no cell breaks."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_link(url: str) -> str:
    return quote(url, safe=":/?#=&%@+,;~.-_!$'*")


def _md_table(t: Table) -> list[str]:
    out = [f"### {md_escape(t.title)}", ""]
    if t.note:
        out += [md_escape(t.note), ""]
    if not t.rows:
        return [*out, f"_{md_escape(t.empty[:1].upper() + t.empty[1:])}._", ""]
    out.append("| " + " | ".join(md_escape(h) for h in t.headers) + " |")
    out.append("|" + "|".join("---" for _ in t.headers) + "|")
    for row in t.rows:
        cells = [md_escape(c) for c in row.cells]
        if row.link and 0 <= t.link_cell < len(cells):
            cells[t.link_cell] += f" [link]({_md_link(row.link)})"
        out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]


def render_markdown(
    reports: Sequence[ReportData], images: Sequence[str | None] | None = None
) -> str:
    """GitHub-flavoured Markdown. ``images`` gives, per report, the relative path of its
    chart PNG written beside the file (None: no image, with a line saying how to get it)."""
    lines: list[str] = []
    for i, data in enumerate(reports):
        view = build_view(data)
        image = images[i] if images is not None and i < len(images) else None
        drill = "[DRILL] " if view.drill else ""
        lines += [f"# {drill}Post-incident report: {md_escape(view.title)}", ""]
        lines += [f"As of {view.as_of}.", ""]
        lines += ["| | |", "|---|---|"]
        lines += [f"| **{md_escape(k)}** | {md_escape(v)} |" for k, v in view.summary]
        lines.append("")
        if view.description:
            lines += [f"What the rule watches: {md_escape(view.description)}", ""]
        lines += ["## Timeline", ""]
        if image:
            lines += [f"![{md_escape(view.chart_alt)}]({_md_link(image)})", ""]
        else:
            lines += [
                "_The chart is not included in Markdown on standard output: run "
                f"`listener report {data.incident.id} --format md --out report.md` (writes "
                "report.png beside it) or `--format html` for a self-contained file._",
                "",
            ]
        lines += [md_escape(view.chart_caption), "", "## Lifecycle", ""]
        for t in view.lifecycle:
            lines += _md_table(t)
        lines += ["## Mentions", "", md_escape(view.mentions_intro), ""]
        for t in view.mentions:
            lines += _md_table(t)
        lines += ["## For the review", ""]
        lines += [f"- {md_escape(q)}" for q in view.review]
        lines.append("")
    return "\n".join(lines)
