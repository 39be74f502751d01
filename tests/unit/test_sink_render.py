"""The pure renderers of the sinks: console text/JSON and the webhook document."""

from __future__ import annotations

import copy
import io
import json
from dataclasses import replace

from listener.config.schema import ConsoleSinkConfig
from listener.model import Alert
from listener.sinks.console import DRILL_BANNER, ConsoleSink, render_json, render_text
from listener.sinks.webhook import SCHEMA_ID, render_webhook
from tests.support.receiver import sample_alert

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
}


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


def test_json_line_round_trips() -> None:
    """The JSON rendering is one line that parses back into the same alert."""
    alert = sample_alert(drill=True)
    line = render_json(alert)
    assert "\n" not in line
    assert Alert.from_dict(json.loads(line)) == alert


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
    expected = json.loads(json.dumps(alert.to_dict()))
    assert [json.loads(line) for line in lines] == [expected, expected]
