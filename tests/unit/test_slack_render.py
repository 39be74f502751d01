"""The Slack sink's pure rendering: Block Kit payloads and thread replies."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from listener.model import Ack, Alert, AlertKind, AuthorRef, Fact, MentionRef
from listener.sinks.slack import (
    KIND_EMOJI,
    MAX_BLOCKS,
    RESOLVED_COLOUR,
    SPARK,
    render_blocks,
    render_thread_reply,
    severity_style,
    sparkline,
)
from tests.support.receiver import sample_alert, sample_explanation

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KINDS: tuple[AlertKind, ...] = get_args(AlertKind)


def all_texts(payload: dict[str, Any]) -> str:
    """Every text of a rendered payload, joined (for "does it say X" checks)."""
    return json.dumps(payload, ensure_ascii=False)


def every_block(payload: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = list(payload["blocks"])
    for attachment in payload.get("attachments", []):
        blocks += attachment["blocks"]
    return blocks


def assert_within_limits(payload: dict[str, Any]) -> None:
    """Slack's Block Kit limits hold for ``payload``."""
    blocks = every_block(payload)
    assert len(blocks) <= MAX_BLOCKS
    assert len(payload["text"]) <= 3000
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if "text" in block and block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        for item in block.get("fields", []):
            assert len(item["text"]) <= 2000
        assert len(block.get("fields", [])) <= 10
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
    for text in re.findall(r'"text": "((?:[^"\\]|\\.)*)"', json.dumps(payload)):
        decoded = json.loads(f'"{text}"')
        assert decoded.count("<") == decoded.count(">"), decoded  # no half links
        assert not re.search(r"&[a-z]*$", decoded)  # no half entities


def colour(payload: dict[str, Any]) -> str:
    [attachment] = payload["attachments"]
    return str(attachment["color"])


def header(payload: dict[str, Any]) -> str:
    return str(payload["blocks"][0]["text"]["text"])


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("crisis", ("#D0021B", "🔴")),
        ("CRITICAL", ("#D0021B", "🔴")),
        ("elevated", ("#F2711C", "🟠")),
        ("high", ("#F2711C", "🟠")),
        ("watch", ("#F2C744", "🟡")),
        ("low", ("#439FE0", "🔵")),
        ("made-up-level", ("#F2711C", "🟠")),
    ],
)
def test_severity_style_per_level(level: str, expected: tuple[str, str]) -> None:
    """Each known level name maps to its colour and emoji; unknown names get orange."""
    assert severity_style(level) == expected


def test_the_attachment_colour_is_the_severity_and_green_once_resolved() -> None:
    """The coloured bar follows the level, and turns green for the all-clear."""
    assert colour(render_blocks(sample_alert(level="crisis"))) == "#D0021B"
    assert colour(render_blocks(sample_alert(level="watch"))) == "#F2C744"
    resolved = render_blocks(sample_alert(kind="resolved", level="crisis"))
    assert colour(resolved) == RESOLVED_COLOUR


@pytest.mark.parametrize("kind", KINDS)
def test_the_header_leads_with_the_kind_emoji_and_title(kind: AlertKind) -> None:
    """Every kind has its own emoji in front of the alert's title."""
    alert = sample_alert(kind=kind, previous_level="watch", ack=Ack("Dana", AT))
    payload = render_blocks(alert)
    assert header(payload) == f"{KIND_EMOJI[kind]} {alert.title}"
    assert_within_limits(payload)


def test_severity_field_shows_emoji_level_and_previous_level() -> None:
    """The severity field carries the emoji, the level and what it was."""
    payload = render_blocks(sample_alert(kind="escalated", level="crisis", previous_level="high"))
    assert "🔴 *CRISIS* (was high)" in all_texts(payload)


def test_facts_show_value_threshold_baseline_and_ratio() -> None:
    """Each fact is listed with its threshold, its baseline and the ratio to it."""
    text = all_texts(render_blocks(sample_alert()))
    assert "negative mentions in 15m: *42* — threshold 10 · baseline 3.50 (12.0× baseline)" in text
    assert "negative share: *0.81* — threshold 0.60" in text


def test_the_fallback_text_has_emoji_title_and_first_fact() -> None:
    """The notification text names severity, title and the key number."""
    payload = render_blocks(sample_alert())
    assert payload["text"] == (
        "🟠 HIGH: Acme — negative-spike · negative mentions in 15m = 42 "
        "(threshold 10) (baseline 3.50)"
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], ""),
        ([0, 0, 0], "▁▁▁"),
        ([0, 1, 2, 3, 4, 5, 6, 7], SPARK),
        ([7, 0], "█▁"),
        ([5, 5], "██"),
        ([-3, 14], "▁█"),
    ],
)
def test_sparkline_scales_from_zero_to_the_maximum(values: list[int], expected: str) -> None:
    """The sparkline maps 0 to the lowest bar and the maximum to the highest."""
    assert sparkline(values) == expected


def test_sparkline_keeps_only_the_newest_values() -> None:
    """A long trend is cut to its newest values."""
    assert sparkline(list(range(100)), width=4) == sparkline([96, 97, 98, 99])
    assert len(sparkline(list(range(100)))) == 48


def test_trend_block_shows_the_sparkline_and_its_span() -> None:
    """The trend section shows the sparkline, the step, the span and the numbers."""
    alert = sample_alert(trend=(0, 2, 4, 8, 16, 42), trend_step=900)
    text = all_texts(render_blocks(alert))
    assert f"`{sparkline(alert.trend)}`" in text
    assert "per 15m, last 1h30m" in text
    assert "now *42* · peak 42 · low 0" in text


def test_no_trend_no_trend_block() -> None:
    """An alert without a trend renders no trend section."""
    assert "*Trend*" not in all_texts(render_blocks(sample_alert(trend=())))


def test_top_mentions_are_links_with_author_and_reach() -> None:
    """A mention with a URL is a Slack link; its author and followers follow it."""
    text = all_texts(render_blocks(sample_alert()))
    assert (
        "1. <https://news.example/acme-outage|“Acme outage: nothing works since this morning, "
        "support is silent”> — @alice (12,345 followers) · news · sentiment -0.80"
    ) in text
    assert "2. “Still down for me too” — unknown author · forum" in text


def test_untrusted_text_cannot_inject_links_or_mentions() -> None:
    """Mention texts, authors and URLs are escaped: no <!channel>, no @here, no fake link."""
    evil = MentionRef(
        source="x",
        id="1",
        text="<!channel> @here click <https://evil.example|here> & win",
        url="https://ok.example/a|b>c<d",
        author="<@U123>",
        followers=None,
        created_at=AT,
        sentiment=-1.0,
    )
    odd = replace(evil, id="2", url="javascript:alert(1)", text="plain")
    payload = render_blocks(sample_alert(top_mentions=(evil, odd), brand="<!here>"))
    assert header(payload).endswith("<!here> — negative-spike")  # plain_text: shown as is
    payload["blocks"] = payload["blocks"][1:]
    text = all_texts(payload)
    assert "<!channel>" not in text
    assert "<!here>" not in text
    assert "<@U123>" not in text
    assert "@here" not in text
    assert "&lt;!channel&gt;" in text
    assert "&amp; win" in text
    assert "<https://ok.example/a%7Cb%3Ec%3Cd|" in text
    assert "javascript:" not in text
    assert_within_limits(payload)


def test_categories_and_authors_are_listed() -> None:
    """Categories with counts, detractors and amplifiers each appear."""
    alert = sample_alert(
        categories=(("product outage", 31), ("customer service", 12)),
        authors=(
            AuthorRef("angry", "x", 9, 120.0, "detractor"),
            AuthorRef("bignews", "news", 1, 1_250_000.0, "amplifier"),
        ),
    )
    text = all_texts(render_blocks(alert))
    assert "*Categories*\\nproduct outage (31) · customer service (12)" in text
    assert "*Detractors*: @angry (x, 9 mentions)" in text
    assert "*Amplifiers*: @bignews (news, reach 1.25M)" in text


def test_who_is_on_it_comes_from_the_acknowledgement() -> None:
    """Without an ack nobody is on it; with one, the field and a section name who."""
    assert "*On it*\\nnobody yet" in all_texts(render_blocks(sample_alert()))
    acked = sample_alert(kind="acknowledged", ack=Ack("Dana", AT, "talking to support"))
    text = all_texts(render_blocks(acked))
    assert "*On it*\\n*Dana* since <!date^" in text
    assert "👀 *Dana* acknowledged <!date^" in text
    assert "“talking to support”" in text
    assert "👀 Acknowledged" in text


def test_opened_field_shows_how_long_it_has_been_open() -> None:
    """With opened_at, the opened field shows the time and the age."""
    alert = sample_alert(kind="reminder", opened_at=AT - timedelta(minutes=80))
    assert "(open for 1h20m)" in all_texts(render_blocks(alert))


def test_resolved_says_all_clear() -> None:
    """The resolved rendering leads with the all-clear and how long it lasted."""
    alert = sample_alert(kind="resolved", opened_at=AT - timedelta(hours=2))
    payload = render_blocks(alert)
    assert header(payload).startswith("✅ RESOLVED")
    assert "✅ *All clear.* The incident is resolved after 2h." in all_texts(payload)
    assert "✅ Resolved: all clear" in all_texts(payload)


def test_incident_and_alert_ids_and_route_are_shown() -> None:
    """The ids and the escalation route appear in the context lines."""
    text = all_texts(render_blocks(sample_alert(route=("social", "pr-lead"))))
    assert "Incident `inc-0001`" in text
    assert "Alert `alert-0001`" in text
    assert "Route: social → pr-lead" in text


def test_drill_is_marked() -> None:
    """A drill carries [DRILL] in the header and text, and a drill note."""
    payload = render_blocks(sample_alert(drill=True))
    assert "[DRILL]" in header(payload)
    assert "[DRILL]" in payload["text"]
    assert "🧪 *DRILL*" in all_texts(payload)
    assert render_thread_reply(sample_alert(drill=True, kind="escalated"))["text"].startswith(
        "[DRILL] "
    )


def test_a_mention_leads_the_text_and_the_blocks() -> None:
    """The configured mention is put first in the fallback text and in a section."""
    payload = render_blocks(sample_alert(), mention="<!subteam^S0123>")
    assert payload["text"].startswith("<!subteam^S0123> ")
    assert payload["blocks"][1]["text"]["text"] == "<!subteam^S0123>"


def test_huge_alerts_stay_within_slack_limits() -> None:
    """Hundreds of facts, long mentions and names are cut to Slack's limits safely."""
    long = "ü&<>" * 3000
    mention = MentionRef("news", "m", long, "https://x.example/" + "a" * 900, long, 1, AT, -0.5)
    alert = sample_alert(
        brand="B" * 400,
        rule="r" * 400,
        incident_id="i" * 3000,
        facts=tuple(Fact(f"metric {i} {long}", i, 1, 1) for i in range(120)),
        top_mentions=tuple(replace(mention, id=str(i)) for i in range(60)),
        categories=tuple((f"cat{i}&", i) for i in range(500)),
        authors=tuple(AuthorRef(f"a{i}" * 50, "x", i, 1.0, "detractor") for i in range(120)),
        trend=tuple(range(300)),
        trend_step=60,
        ack=Ack("D" * 5000, AT, "n" * 5000),
        route=tuple("r" * 300 for _ in range(40)),
        drill=True,
        summary="<s>&" * 5000,
    )
    for kind in KINDS:
        payload = render_blocks(replace(alert, kind=kind), mention="<!here>")
        assert_within_limits(payload)
        reply = render_thread_reply(replace(alert, kind=kind), mention="<!here>")
        assert_within_limits(reply)
    assert "…and" in all_texts(render_blocks(alert))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"kind": "opened"}, "🚨 Opened at 🟠 *HIGH*"),
        ({"kind": "escalated", "level": "crisis", "previous_level": "high"},
         "⏫ *Escalated* to 🔴 *CRISIS* (was high) · negative mentions in 15m = 42"),
        ({"kind": "deescalated", "level": "watch", "previous_level": "high"},
         "⏬ De-escalated to 🟡 *WATCH* (was high)"),
        ({"kind": "reminder", "opened_at": AT - timedelta(minutes=45)},
         "⏰ Still 🟠 *HIGH* and *unacknowledged* after 45m"),
        ({"kind": "acknowledged", "ack": Ack("Dana", AT, "on it")},
         "👀 Acknowledged by *Dana*: “on it”"),
        ({"kind": "handoff", "route": ("social", "pr-lead")},
         "📟 *Not acknowledged in time*, escalating at 🟠 *HIGH* to pr-lead"),
        ({"kind": "resolved", "opened_at": AT - timedelta(hours=1)},
         "✅ *All clear*: resolved after 1h"),
    ],
)  # fmt: skip
def test_thread_reply_says_what_changed(changes: dict[str, Any], expected: str) -> None:
    """Each kind's thread reply is one short line saying what changed."""
    reply = render_thread_reply(sample_alert(**changes))
    assert reply["text"].startswith(expected)
    assert reply["blocks"][0]["text"]["text"] == reply["text"]
    assert "Alert `alert-0001`" in all_texts(reply)


def test_thread_reply_carries_the_mention() -> None:
    """A mention given to the reply leads it."""
    reply = render_thread_reply(sample_alert(kind="escalated"), mention="<!subteam^S1>")
    assert reply["text"].startswith("<!subteam^S1> ⏫")


def test_rendering_is_pure_and_json_ready() -> None:
    """The same alert renders to equal, JSON-serialisable payloads."""
    alert: Alert = sample_alert(trend=(1, 2, 3), trend_step=60, ack=Ack("x", AT))
    assert render_blocks(alert) == render_blocks(alert)
    assert json.loads(json.dumps(render_blocks(alert))) == render_blocks(alert)
    assert render_thread_reply(alert) == render_thread_reply(alert)


def test_the_summary_paragraph_is_shown_escaped() -> None:
    """An alert's summary (from the configured template) is a section of its own."""
    alert = replace(sample_alert(), summary="Complaints <b>doubled</b> & rising")
    assert "Complaints &lt;b&gt;doubled&lt;/b&gt; &amp; rising" in all_texts(render_blocks(alert))


def test_why_shows_what_rose_escaped_with_example_links() -> None:
    """The explanation is a *Why* section under the fields (seen without expanding the
    attachment): each driver with its counts, a link to an example post where it has an
    http(s) one; a driver's label cannot inject a link or a broadcast."""
    explanation = sample_explanation()
    evil = replace(
        explanation.drivers[0],
        label="<!channel> <https://evil.example|click>",
        example=replace(explanation.drivers[0].example, url="javascript:alert(1)"),
    )
    alert = sample_alert(explanation=replace(explanation, drivers=(evil, *explanation.drivers)))
    payload = render_blocks(alert)
    texts = [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section" and "text" in b]
    [why] = [t for t in texts if t.startswith("*Why:*")]
    fields = next(i for i, b in enumerate(payload["blocks"]) if "fields" in b)
    assert payload["blocks"][fields + 1]["text"]["text"] == why
    assert "negative mentions of the last 16 min (42)" in why
    assert "• #acmedown 12 now, 0 before · <https://news.example/acme-outage|example>" in why
    assert "• @bob (forum) 5 now, 0 before\n" in why + "\n"  # no example: no link
    assert "<!channel>" not in why
    assert "<https://evil.example" not in why
    assert "javascript:" not in all_texts(payload)
    assert_within_limits(payload)
    plain = render_blocks(sample_alert())
    assert "*Why:*" not in all_texts(plain)
