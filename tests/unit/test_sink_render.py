"""The pure renderers of the sinks: console text/JSON and the webhook document."""

from __future__ import annotations

import copy
import io
import json
from dataclasses import replace
from pathlib import Path

from jsonschema import Draft202012Validator

from listener.config.schema import ConsoleSinkConfig
from listener.model import Ack
from listener.sinks.console import DRILL_BANNER, ConsoleSink, render_json, render_text
from listener.sinks.webhook import SCHEMA_ID, render_webhook
from tests.support.receiver import sample_alert, sample_explanation

WEBHOOK_KEYS = {
    "schema",
    "id",
    "incident_id",
    "kind",
    "title",
    "rule",
    "brand",
    "level",
    "previous_level",
    "at",
    "drill",
    "facts",
    "top_mentions",
    "summary",
    "opened_at",
    "categories",
    "authors",
    "trend",
    "ack",
    "route",
    "peak_level",
    "explanation",
}
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema" / "alert.v1.json"


def test_text_has_everything_a_person_needs() -> None:
    """The text block names the title, brand, rule, level, incident, every fact and the mentions."""
    alert = sample_alert()
    text = render_text(alert)
    assert text.splitlines()[0] == alert.title
    for needle in ("Acme", "negative-spike", "high", "inc-0001", "alert-0001"):
        assert needle in text
    for fact in alert.facts:
        assert str(fact) in text
    assert "@alice (12,345 followers)" in text
    assert "Acme outage: nothing works since this morning" in text
    assert "https://news.example/acme-outage" in text
    assert "unknown author" in text
    assert "DRILL" not in text


def test_text_says_why_it_spiked() -> None:
    """The explanation's scope and each driver with its counts; and "nothing stands out"
    when none rose."""
    alert = sample_alert(explanation=sample_explanation())
    text = render_text(alert)
    assert (
        "why (what rose: negative mentions of the last 16 min (42) against the day before's "
        "negative mentions (310)):" in text
    )
    assert "  - “outage” 31 now, 2 before" in text
    assert "  - #acmedown 12 now, 0 before" in text
    assert "  - story “Acme outage: nothing works since this morning” 9 now, 0 before" in text
    assert "  - @bob (forum) 5 now, 0 before" in text
    assert text.index("why (") < text.index("top mentions:")
    quiet = render_text(replace(alert, explanation=replace(sample_explanation(), drivers=())))
    assert "why (nothing stands out (negative mentions of the last 16 min" in quiet
    assert "  - nothing stands out" in quiet
    usual = replace(sample_explanation().drivers[0], rose=False)
    about = render_text(replace(alert, explanation=replace(sample_explanation(), drivers=(usual,))))
    assert "why (nothing rose clearly (negative mentions" in about
    assert "); what they are about):" in about
    assert "  - “outage” 31 now, 2 before (no clear rise)" in about
    assert "why (" not in render_text(sample_alert())


def test_text_shows_previous_level_on_escalation() -> None:
    """An escalation shows the level it came from."""
    alert = sample_alert(kind="escalated", level="critical", previous_level="high")
    text = render_text(alert)
    assert "ESCALATED to CRITICAL" in text
    assert "critical (was high)" in text


def test_text_marks_a_drill() -> None:
    """A drill alert is marked in the title and by a banner line."""
    text = render_text(sample_alert(drill=True))
    assert text.startswith("[DRILL] ")
    assert DRILL_BANNER in text


def test_text_cuts_long_mentions_and_neutralises_control_characters() -> None:
    """Mention text is one line, cut with an ellipsis, and cannot carry terminal escapes."""
    alert = sample_alert()
    ref = replace(alert.top_mentions[0], text="\x1b[2Jevil\nline " + "x" * 500)
    text = render_text(replace(alert, top_mentions=(ref,)))
    assert "\x1b" not in text
    excerpt = next(line for line in text.splitlines() if "evil" in line)
    assert excerpt.rstrip('"').endswith("…")
    assert len(excerpt) < 230


def test_text_rendering_is_pure() -> None:
    """Rendering twice gives the same text and leaves the alert as it was."""
    alert = sample_alert()
    before = copy.deepcopy(alert.to_dict())
    assert render_text(alert) == render_text(alert)
    assert alert.to_dict() == before


def test_json_line_is_the_webhook_document_and_valid() -> None:
    """``format: json`` writes one line holding exactly the webhook document, which
    validates against schema/alert.v1.json (schema id and fact texts included)."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    base = sample_alert(drill=True)
    for alert in (
        base,
        replace(base, explanation=sample_explanation()),
        replace(base, explanation=replace(sample_explanation(), drivers=())),
        replace(base, kind="acknowledged", ack=Ack("dana", base.at, "on it")),
        replace(base, kind="resolved", previous_level="high", peak_level="critical"),
    ):
        line = render_json(alert)
        assert "\n" not in line
        doc = json.loads(line)
        assert doc == json.loads(json.dumps(render_webhook(alert)))
        validator.validate(doc)
        assert doc["schema"] == "listener.alert/v1"
        assert [f["text"] for f in doc["facts"]] == [str(f) for f in alert.facts]


def test_text_says_a_resolved_alert_resolved_from_its_last_and_peak_level() -> None:
    """A resolved alert reads "resolved (last high, peak critical)", never "high (was high)"."""
    alert = sample_alert(kind="resolved", level="high", previous_level="high")
    text = render_text(replace(alert, peak_level="critical"))
    assert "level:    resolved (last high, peak critical)" in text
    assert "(was high)" not in text


def test_text_names_who_acknowledged_and_their_note() -> None:
    """An acknowledged alert shows who took it, when, and the note."""
    base = sample_alert()
    alert = replace(base, kind="acknowledged", ack=Ack("dana", base.at, "drafting\na statement"))
    text = render_text(alert)
    assert f'acknowledged: dana at {base.at.isoformat()}: "drafting a statement"' in text


def test_webhook_document_is_versioned_and_complete() -> None:
    """The webhook document carries the schema id, the alert fields, the facts and mentions."""
    alert = sample_alert()
    doc = render_webhook(alert)
    assert set(doc) == WEBHOOK_KEYS
    assert doc["schema"] == SCHEMA_ID == "listener.alert/v1"
    assert doc["id"] == "alert-0001"
    assert doc["incident_id"] == "inc-0001"
    assert doc["title"] == alert.title
    assert doc["at"] == "2026-03-02T09:00:00+00:00"
    assert doc["drill"] is False
    assert [f["text"] for f in doc["facts"]] == [str(f) for f in alert.facts]
    assert doc["facts"][0] == {
        "name": "negative mentions in 15m",
        "value": 42,
        "threshold": 10,
        "baseline": 3.5,
        "text": str(alert.facts[0]),
    }
    first = doc["top_mentions"][0]
    assert first["author"] == "alice"
    assert first["followers"] == 12345
    assert first["url"] == "https://news.example/acme-outage"
    assert first["created_at"] == "2026-03-02T09:00:00+00:00"
    assert json.loads(json.dumps(doc)) == doc


def test_webhook_document_marks_a_drill() -> None:
    """A drill alert says so in the document and in its title."""
    doc = render_webhook(sample_alert(drill=True))
    assert doc["drill"] is True
    assert doc["title"].startswith("[DRILL] ")


def test_webhook_rendering_is_pure() -> None:
    """Each call returns a fresh, equal document; changing one does not change the next."""
    alert = sample_alert()
    first = render_webhook(alert)
    first["facts"].clear()
    second = render_webhook(alert)
    assert second["facts"]
    assert second == render_webhook(alert)


async def test_console_sink_writes_text_or_json_lines() -> None:
    """The console sink writes a text block, or one JSON object per line in json format."""
    alert = sample_alert()
    text_out, json_out = io.StringIO(), io.StringIO()
    await ConsoleSink("c", ConsoleSinkConfig(type="console"), stream=text_out).send(alert, "k")
    json_sink = ConsoleSink("j", ConsoleSinkConfig(type="console", format="json"), stream=json_out)
    await json_sink.send(alert, "k")
    await json_sink.send(alert, "k")
    assert text_out.getvalue() == render_text(alert) + "\n\n"
    lines = json_out.getvalue().splitlines()
    expected = json.loads(json.dumps(render_webhook(alert)))
    assert [json.loads(line) for line in lines] == [expected, expected]


def test_every_sink_names_who_acknowledged_and_their_note() -> None:
    """The acknowledged alert carries who took it and their note in every sink's message
    that has room for it (PagerDuty's acknowledge event has none: docs/sinks.md)."""
    from datetime import timedelta

    from listener.sinks.alertmanager import render_alerts
    from listener.sinks.discord import render_message as render_discord
    from listener.sinks.email import render_html, render_plain
    from listener.sinks.opsgenie import render_calls
    from listener.sinks.slack import render_blocks, render_thread_reply
    from listener.sinks.teams import render_card
    from listener.sinks.telegram import render_message as render_telegram

    base = sample_alert()
    alert = replace(base, kind="acknowledged", ack=Ack("dana", base.at, "drafting a statement"))
    rendered = {
        "console": render_text(alert),
        "console json": render_json(alert),
        "webhook": json.dumps(render_webhook(alert)),
        "slack": json.dumps(render_blocks(alert), ensure_ascii=False),
        "slack thread": json.dumps(render_thread_reply(alert), ensure_ascii=False),
        "alertmanager": json.dumps(
            render_alerts(alert, now=base.at, expire_after=timedelta(hours=1))
        ),
        "email": render_plain(alert),
        "email html": render_html(alert),
        "telegram": render_telegram(alert),
        "opsgenie": json.dumps([c.body for c in render_calls(alert)]),
        "teams": json.dumps(render_card(alert), ensure_ascii=False),
        "discord": json.dumps(render_discord(alert), ensure_ascii=False),
    }
    for sink, text in rendered.items():
        assert "dana" in text, sink
        assert "drafting a statement" in text, sink
