"""The Telegram sink's pure renderers: what the message shows, escaping, the 4096 limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from listener.model import (
    Ack,
    BrandDigest,
    Digest,
    DigestIncident,
    Fact,
    MentionRef,
    StoryRecord,
)
from listener.sinks.telegram import (
    MAX_MESSAGE,
    render_digest,
    render_message,
    render_send_message,
    utf16_len,
)
from listener.sinks.text import fit_lines
from tests.support.fake_telegram import parse_html
from tests.support.receiver import sample_alert, sample_explanation

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def shown(html: str) -> str:
    """What Telegram shows (and a check that it would accept the HTML)."""
    text, _ = parse_html(html)
    return text


def evil_mention(**changes: object) -> MentionRef:
    ref = MentionRef(
        source="x",
        id="m9",
        text='<a href="https://evil.example">win</a> & <script>x</script> @everyone @here',
        url='https://x.example/p?a=1&b="2"',
        author="<b>mallory</b>",
        followers=10,
        created_at=AT,
        sentiment=-0.9,
    )
    return replace(ref, **changes)


def sample_digest(brands: int = 1, stories: tuple[StoryRecord, ...] = ()) -> Digest:
    incident = DigestIncident(
        "inc-1", "negative-spike", "crisis", "resolved", AT, AT + timedelta(hours=1), "dana", 240
    )
    brand = BrandDigest("Acme", 1240, 220, 940, 110, stories, (incident,), (incident,), ())
    return Digest(
        "digest-1",
        "daily",
        "day",
        AT - timedelta(days=1),
        AT,
        "Europe/London",
        tuple(replace(brand, brand=f"Acme {n}" if n else "Acme") for n in range(brands)),
    )


def test_message_has_what_people_need() -> None:
    """Title, level, brand, rule, status, every fact, the mentions and the ids."""
    alert = sample_alert()
    html = render_message(alert)
    text, links = parse_html(html)
    assert html.startswith(f"🚨 <b>{alert.title}</b>\n")
    assert "Level HIGH · brand Acme · rule negative-spike" in text
    assert "Status: open" in text
    assert "• negative mentions in 15m: 42 (threshold 10, baseline 3.50)" in text
    assert "• negative share: 0.81 (threshold 0.60)" in text
    assert "1. “Acme outage: nothing works since this morning, support is silent”" in text
    assert "@\u2060alice (12,345 followers) · news" in text
    assert "2. “Still down for me too” — unknown author · forum" in text
    assert "Incident inc-0001 · alert alert-0001 · 2026-03-02 09:00 UTC" in text
    assert links == ["https://news.example/acme-outage"]
    assert "DRILL" not in text


def test_message_says_why_it_spiked_with_example_links() -> None:
    """The explanation's heading and each driver, with a link to its example post."""
    html = render_message(sample_alert(explanation=sample_explanation()))
    text, links = parse_html(html)
    assert "Why: what rose: negative mentions of the last 16 min (42)" in text
    assert "• “outage” 31 now, 2 before · example" in text
    assert "• @\u2060bob (forum) 5 now, 0 before\n" in text
    assert links.count("https://news.example/acme-outage") == 4  # three drivers + a mention
    assert text.index("Why:") < text.index("Top mentions")


def test_drill_ack_route_and_resolution_are_shown() -> None:
    """A drill says so; an acknowledgement names who and their note; the route shows."""
    alert = sample_alert(
        drill=True,
        kind="acknowledged",
        ack=Ack("dana", AT, "drafting a statement"),
        route=("comms", "exec"),
    )
    text = shown(render_message(alert))
    assert text.startswith("👀 [DRILL] ACKNOWLEDGED (high)")
    assert "DRILL: this is a test alert, no action needed" in text
    assert "Status: acknowledged by dana" in text
    assert "👀 Acknowledged by dana: “drafting a statement”" in text
    assert "Route: comms → exec" in text
    resolved = shown(render_message(sample_alert(kind="resolved")))
    assert resolved.startswith("✅ RESOLVED: Acme")
    assert "Status: resolved: all clear" in resolved


def test_untrusted_text_is_escaped_and_only_web_links_are_links() -> None:
    """Tags, entities and mass mentions from a post stay text; a javascript: URL is no
    link; quotes in a URL cannot leave the href."""
    bad_link = evil_mention(id="m10", url="javascript:alert(1)")
    alert = sample_alert(
        top_mentions=(evil_mention(), bad_link),
        brand="Acme <i>&amp;",
        facts=(Fact("</b><b>", 1),),
        summary="@all <pre>",
    )
    html = render_message(alert)
    text, links = parse_html(html)
    assert '<a href="https://evil.example">win</a> & <script>x</script>' in text
    assert "@\u2060everyone @\u2060here" in text
    assert "@everyone" not in text
    assert "— @<b>mallory</b> (10 followers)" in text
    assert "brand Acme <i>&amp;" in text
    assert links == ['https://x.example/p?a=1&b="2"']
    assert 'href="https://x.example/p?a=1&amp;b=&quot;2&quot;"' in html
    assert "javascript" not in html


def test_a_huge_alert_is_cut_between_lines_within_4096() -> None:
    """Hundreds of long facts (escaping inflates them, emoji count twice): the message
    stays within Telegram's limit, still parses, and says what it left out."""
    facts = tuple(Fact(f"{i} <&> 🚨🚨 " + "x" * 300, i) for i in range(300))
    html = render_message(sample_alert(facts=facts, explanation=sample_explanation()))
    assert utf16_len(html) <= MAX_MESSAGE
    text = shown(html)
    assert utf16_len(text) <= MAX_MESSAGE
    assert text.splitlines()[-1].endswith("more lines not shown")
    assert text.startswith("🚨 HIGH: Acme")


def test_fit_lines_keeps_whole_lines_and_the_note_within_the_limit() -> None:
    """Lines are never split; the note counts against the limit."""
    lines = ["<b>a</b>" * 3, "b" * 10, "c" * 10, "d" * 10]
    assert fit_lines(lines, 1000) == "\n".join(lines)
    cut = fit_lines(lines, 50)
    assert cut.split("\n")[0] == lines[0]
    assert cut.endswith("more lines not shown")
    assert len(cut) <= 50
    assert fit_lines(["x" * 60], 50) == "… 1 more line not shown"


def test_digest_is_escaped_linked_and_bounded() -> None:
    """Volume, share, incidents and stories per brand; hostile stories inert; many
    brands stay within the limit."""
    story = StoryRecord(
        "s1",
        evil_mention(),
        15,
        12,
        1e6,
        AT,
        AT,
        ("outage",),
    )
    digest = sample_digest(stories=(story, replace(story, lead=evil_mention(url="ftp://x"))))
    html = render_digest(digest)
    text, links = parse_html(html)
    assert text.startswith("📊 Daily digest · Mon 02 Mar 2026\n")
    assert "1,240 mentions (▲ 32% on the day before: 940)" in text
    assert "18% negative (220)" in text
    assert "crisis · negative-spike · opened" in text
    assert "<script>x</script>" in text
    assert "@everyone" not in text
    assert links == ['https://x.example/p?a=1&b="2"']
    big = render_digest(sample_digest(brands=200))
    assert utf16_len(big) <= MAX_MESSAGE
    assert shown(big).endswith("more lines not shown")


@pytest.mark.parametrize(
    ("thread", "silent", "extra"),
    [
        (None, False, {}),
        (42, True, {"message_thread_id": 42, "disable_notification": True}),
    ],
)
def test_send_message_parameters(
    thread: int | None, silent: bool, extra: dict[str, object]
) -> None:
    """HTML mode, no link previews; a forum topic and silence only when asked."""
    body = render_send_message("hi", "@acme_alerts", thread_id=thread, silent=silent)
    assert body == {
        "chat_id": "@acme_alerts",
        "text": "hi",
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
        **extra,
    }
