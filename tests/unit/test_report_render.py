"""Rendering a post-incident report: the chart PNG, self-contained HTML, GitHub Markdown."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from matplotlib import dates as mdates
from PIL import Image

from listener.report import ReportData, gather, render_chart, render_document
from listener.report.chart import chart_figure, note_marks
from listener.report.render import (
    copies,
    md_escape,
    render_html,
    render_markdown,
    safe_url,
    seen,
)
from listener.store import Store
from tests.support.incident_state import (
    HOSTILE_AUTHOR,
    HOSTILE_URL,
    T0,
    build_state,
    config,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportData:
    """One real incident (with a hostile post among its mentions), gathered once."""
    path = tmp_path_factory.mktemp("report") / "s.db"
    incident_id, end = build_state(path)
    store = Store.open(path)
    try:
        at = end - timedelta(minutes=1)
        store.notes.add(incident_id, "note", "dana", "holding <statement> posted", at)
        return gather(store, incident_id, end, config())
    finally:
        store.close()


@pytest.fixture(scope="module")
def chart(report: ReportData) -> bytes:
    return render_chart(report)


def _xml(html: str) -> ET.Element:
    assert html.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(html.split("\n", 1)[1])  # raises on any unbalanced or bad markup


def _text(el: ET.Element) -> str:
    return "".join(el.itertext())


def test_chart_is_a_png_of_a_readable_size(chart: bytes) -> None:
    """The chart decodes as a PNG about 1200 × 700 pixels."""
    image = Image.open(io.BytesIO(chart))
    assert image.format == "PNG"
    width, height = image.size
    assert 1000 <= width <= 1600
    assert 550 <= height <= 900
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50  # drawn, not blank


def test_chart_marks_each_note_and_assignment_within_its_window(report: ReportData) -> None:
    """Notes and assignments get a numbered mark at their time on the chart (numbered as
    in the table); one written outside the chart's span gets none."""
    before = dataclasses.replace(
        report.notes[0], at=report.chart_start - timedelta(hours=1), text="too early"
    )
    handed = dataclasses.replace(
        report.notes[0], at=report.incident.opened_at + timedelta(minutes=3), kind="assigned"
    )
    data = dataclasses.replace(report, notes=(before, handed, *report.notes))
    marks = note_marks(data)
    assert [(m.number, m.kind, m.at) for m in marks] == [
        (2, "assigned", handed.at), (3, "note", report.notes[0].at),
    ]  # fmt: skip
    top = chart_figure(data).axes[0]
    boxes = {t.get_gid(): t for t in top.texts if (t.get_gid() or "").startswith("note-")}
    assert sorted(boxes) == ["note-2", "note-3"]
    for mark in marks:
        box = boxes[f"note-{mark.number}"]
        assert box.get_text() == str(mark.number)
        assert box.xy[0] == pytest.approx(mdates.date2num(mark.at))
    start, end = top.get_xlim()
    assert all(start <= box.xy[0] <= end for box in boxes.values())


def test_chart_renders_without_any_mentions(report: ReportData) -> None:
    """A source-health incident (or a pruned store) still gets a chart with a note."""
    empty = dataclasses.replace(
        report, buckets=tuple(dataclasses.replace(b, mentions=0, negative=0, sentiment=None,
                                                  baseline=None) for b in report.buckets),
        brand_incident=False, alerts=(), ack=None,
    )  # fmt: skip
    assert Image.open(io.BytesIO(render_chart(empty))).format == "PNG"


def test_html_is_well_formed_self_contained_and_embeds_the_chart(
    report: ReportData, chart: bytes
) -> None:
    """One XML-parsable document, no external assets, the chart as a base64 data URI."""
    html = render_html([(report, chart)])
    root = _xml(html)
    (img,) = root.iter("img")
    src = img.get("src", "")
    assert src.startswith("data:image/png;base64,")
    png = base64.b64decode(src.split(",", 1)[1])
    assert png == chart
    assert Image.open(io.BytesIO(png)).size[0] > 1000
    assert not re.search(r'(src|href)="(?!data:|https?://)', html)
    assert "<link" not in html
    assert "<script" not in html


def test_html_escapes_hostile_mention_text_authors_and_links(report: ReportData) -> None:
    """Mentions are untrusted: no script, no handler attribute, no javascript: link."""
    html = render_html([(report, None)])
    root = _xml(html)
    assert "<script" not in html
    assert "<img src=x" not in html
    assert "javascript:" not in " ".join(a.get("href", "") for a in root.iter("a"))
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    body = _text(root)
    assert HOSTILE_AUTHOR in body  # shown as text
    assert not any(a.get("href") == HOSTILE_URL for a in root.iter("a"))
    assert any(a.get("href", "").startswith("https://news.example.test/") for a in root.iter("a"))


def test_html_lists_the_lifecycle_alerts_and_acknowledgement(report: ReportData) -> None:
    """Each level entered, each alert per sink with its outcome, the ack and its timing."""
    root = _xml(render_html([(report, None)]))
    tables = {
        _text(h3): table for h3, table in zip(root.iter("h3"), _tables_after_h3(root), strict=False)
    }
    levels = tables["Severity levels"]
    rows = [[_text(td) for td in tr.iter("td")] for tr in levels.iter("tr")][1:]
    assert [r[0] for r in rows] == ["watch", "crisis", "watch"]
    assert rows[1][3] == "escalated"
    alerts = tables["Alerts, acknowledgement and notes"]
    rows = [[_text(td) for td in tr.iter("td")] for tr in alerts.iter("tr")][1:]
    assert rows[0][2:6] == ["opened", "watch", "ops", "delivered after 1 attempt(s)"]
    assert any(r[4] == "pager" and r[5].startswith("failed") and "HTTP 503" in r[5] for r in rows)
    assert rows[-2][2] == "acknowledgement"
    assert "by dana: on it" in rows[-2][5]
    assert rows[-2][7] == "time to acknowledge 5m"
    assert rows[-1][2:6] == ["note 1", "", "", "dana: holding <statement> posted"]  # escaped
    summary = {_text(tr[0]): _text(tr[1]) for tr in next(root.iter("table")).iter("tr")}
    assert summary["Peak severity"] == "crisis"
    assert summary["Duration"] == "42m"
    assert summary["Spike → first alert"].startswith("2m (spike from 2026-03-02 09:00:00 UTC")
    assert "by dana" in summary["Acknowledged"]


def test_html_and_markdown_group_the_top_mentions_by_story(report: ReportData) -> None:
    """The top stories: each led by its furthest-travelled copy (text, author, source,
    link) with how many mentions it gathers, the negative ones, reach, first to last seen
    and categories; the hostile post is a story of its own, escaped and unlinked."""
    root = _xml(render_html([(report, None)]))
    tables = {_text(h3): t for h3, t in zip(root.iter("h3"), _tables_after_h3(root), strict=False)}
    stories = tables["Top stories"]
    rows = [[_text(td).strip() for td in tr.iter("td")] for tr in stories.iter("tr")][1:]
    first = rows[0]
    assert first[0].startswith("@acme your service is terrible and broken, worst outage ever")
    assert first[1:] == [
        "1 + 59 copies", "60", "8,130", "2026-03-02 09:00:00 – 09:19:00 UTC", "news", "user5",
        "outage",
    ]  # fmt: skip
    links = [a.get("href") for a in stories.iter("a")]
    assert links[0] == "https://news.example.test/59"
    assert rows[1][1:3] == ["1", "1"]
    assert rows[1][6] == HOSTILE_AUTHOR  # as text
    assert HOSTILE_URL not in links
    assert len(links) == len(rows) - 1  # no link for the javascript: one
    text = render_markdown([report])
    assert "### Top stories" in text
    assert "| 1 + 59 copies | 60 | 8,130 | 2026-03-02 09:00:00 – 09:19:00 UTC | news |" in text
    assert "[link](https://news.example.test/59)" in text


def test_story_sizes_and_spans_read_plainly() -> None:
    """One post; one with a copy; with copies; seen once, within a day, across days."""
    assert [copies(n) for n in (1, 2, 5)] == ["1", "1 + 1 copy", "1 + 4 copies"]
    at = T0
    assert seen(at, at) == "2026-03-02 09:00:00 UTC"
    assert seen(at, at + timedelta(minutes=5)) == "2026-03-02 09:00:00 – 09:05:00 UTC"
    later = T0 + timedelta(days=1)
    assert seen(at, later) == "2026-03-02 09:00:00 UTC – 2026-03-03 09:00:00 UTC"


def _tables_after_h3(root: ET.Element) -> list[ET.Element]:
    """The table following each h3 (or a placeholder when the section has none); a table
    scrolls inside its own box (``div.scroll``)."""
    out: list[ET.Element] = []
    for section in root.iter("section"):
        children = list(section)
        for i, child in enumerate(children):
            if child.tag == "h3":
                nxt = next((c for c in children[i + 1 :] if c.tag in ("div", "h3")), None)
                table = nxt.find("table") if nxt is not None and nxt.tag == "div" else None
                out.append(table if table is not None else ET.Element("none"))
    return out


def test_html_of_several_incidents_has_one_section_each(report: ReportData) -> None:
    """The drill writes all its incidents into one file, one printable section each."""
    other = dataclasses.replace(
        report, incident=dataclasses.replace(report.incident, id="other-incident")
    )
    root = _xml(render_html([(report, None), (other, None)]))
    assert [s.get("id") for s in root.iter("section")] == [report.incident.id, "other-incident"]


def test_markdown_writes_the_chart_beside_the_file(report: ReportData) -> None:
    """Markdown for --out reports/x.md links x.png, to be written beside it."""
    text, images = render_document([report], "md", "reports/x.md")
    assert list(images) == ["x.png"]
    assert Image.open(io.BytesIO(images["x.png"])).format == "PNG"
    assert re.search(r"!\[[^\]]*\]\(x\.png\)", text)
    assert "| **Peak severity** | crisis |" in text
    assert "## Lifecycle" in text


def test_markdown_to_stdout_says_how_to_get_the_chart(report: ReportData) -> None:
    """Without --out there is no image, and a line says how to get one."""
    text, images = render_document([report], "md")
    assert images == {}
    assert "![" not in text
    assert f"listener report {report.incident.id} --format md --out report.md" in text


def test_markdown_tables_survive_hostile_text(report: ReportData) -> None:
    """Pipes, HTML, emphasis and links in a post stay inside one escaped cell."""
    text = render_markdown([report])
    assert "<script>" not in text
    assert "<img" not in text
    assert "javascript:" not in re.sub(r"\\\[click\\\]\(javascript:alert\(1\)\)", "", text)
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Story |"))
    width = lines[header].count(" | ")
    for line in lines[header + 2 : header + 12]:
        if not line.startswith("|"):
            break
        assert len(re.findall(r"(?<!\\) \| ", line)) == width, line


def test_escaping_and_link_helpers() -> None:
    """Only http(s) links survive; Markdown specials are backslash-escaped."""
    assert safe_url("https://example.test/a?b=1") == "https://example.test/a?b=1"
    assert safe_url(" JavaScript:alert(1)") is None
    assert safe_url("data:text/html;base64,xx") is None
    assert safe_url("//no-scheme.test") is None
    assert md_escape("a|b *c* [d](e) <f> & g\nh") == (
        "a\\|b \\*c\\* \\[d\\](e) &lt;f&gt; &amp; g h"
    )


def test_report_time_only_extends_an_open_incident(report: ReportData) -> None:
    """The duration of a resolved incident does not depend on when the report is made."""
    assert report.duration == timedelta(minutes=42)
    later = dataclasses.replace(report, now=report.now + timedelta(days=30))
    assert later.duration == report.duration
