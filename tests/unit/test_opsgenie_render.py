"""The Opsgenie sink's pure renderers: calls per alert kind, priorities, Opsgenie's limits."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from listener.model import Ack, AlertKind, Fact
from listener.sinks.opsgenie import (
    alias_for,
    priority_for,
    render_calls,
    render_description,
    render_details,
)
from tests.support.fake_opsgenie import LIMITS
from tests.support.receiver import sample_alert, sample_explanation


def test_create_carries_what_a_responder_needs() -> None:
    """message = title, alias = incident, description with facts, why and mentions,
    priority, tags, string details, entity = brand, source listener."""
    alert = sample_alert(explanation=sample_explanation(), summary="Checkout is failing.")
    [call] = render_calls(alert, tags=["social"])
    assert (call.action, call.method, call.path) == ("create", "POST", "/v2/alerts")
    body = call.body
    assert body["message"] == alert.title
    assert body["alias"] == "inc-0001"
    assert body["priority"] == "P2"
    assert body["tags"] == ["social", "listener", "brand:Acme", "rule:negative-spike", "level:high"]
    assert body["entity"] == "Acme"
    assert body["source"] == "listener"
    assert "note" not in body
    text = body["description"]
    assert text.startswith("Level high · brand Acme · rule negative-spike\n\nCheckout is failing.")
    assert "- negative mentions in 15m = 42 (threshold 10) (baseline 3.50)" in text
    assert "Why: what rose: negative mentions of the last 16 min (42)" in text
    assert "- “outage” 31 now, 2 before — example: https://news.example/acme-outage" in text
    assert "1. “Acme outage: nothing works since this morning, support is silent” — @alice" in text
    assert "link: https://news.example/acme-outage" in text
    assert text.endswith("Incident inc-0001 · alert alert-0001 · 2026-03-02 09:00 UTC")
    details = body["details"]
    assert all(isinstance(v, str) for v in details.values())
    assert details["incident_id"] == "inc-0001"
    assert details["drill"] == "false"
    assert details["mention_1"] == "https://news.example/acme-outage"


@pytest.mark.parametrize(
    ("kind", "actions"),
    [
        ("opened", ["create"]),
        ("reminder", ["create"]),
        ("handoff", ["create"]),
        ("escalated", ["create", "priority"]),
        ("deescalated", ["priority"]),
        ("acknowledged", ["acknowledge"]),
        ("resolved", ["close"]),
    ],
)
def test_calls_per_kind(kind: AlertKind, actions: list[str]) -> None:
    """Each kind's calls; all of them name the incident's alias."""
    alert = sample_alert(kind=kind, level="crisis", previous_level="high", route=("exec",))
    calls = render_calls(alert)
    assert [c.action for c in calls] == actions
    for call in calls:
        if call.action == "create":
            assert call.body["alias"] == "inc-0001"
        else:
            assert call.path == f"/v2/alerts/inc-0001/{call.action}?identifierType=alias"
            assert call.method == ("PUT" if call.action == "priority" else "POST")
    notes = {
        "escalated": "Escalated to crisis (was high)",
        "reminder": "Still crisis and not acknowledged",
        "handoff": "Not acknowledged in time: escalating to exec",
    }
    if kind in notes:
        assert calls[0].body["note"] == notes[kind]
    if "priority" in actions:
        assert calls[-1].body == {"priority": "P1"}


def test_acknowledge_names_who_and_their_note_and_close_says_all_clear() -> None:
    """The acknowledgement carries the person and the note; the close its reason."""
    alert = sample_alert(kind="acknowledged", ack=Ack("dana", sample_alert().at, "on it"))
    [ack] = render_calls(alert)
    assert ack.body == {"source": "listener", "user": "dana", "note": "on it"}
    [close] = render_calls(sample_alert(kind="resolved"))
    assert close.body["note"] == "Resolved in listener: all clear"


@pytest.mark.parametrize(
    ("level", "configured", "expected"),
    [
        ("crisis", {}, "P1"),
        ("Critical", {}, "P1"),
        ("elevated", {}, "P2"),
        ("high", {}, "P2"),
        ("watch", {}, "P3"),
        ("low", {}, "P4"),
        ("test", {}, "P5"),
        ("spicy", {}, "P3"),
        ("watch", {"watch": "P5"}, "P5"),
        ("crisis", {"crisis": "P2"}, "P2"),
    ],
)
def test_priorities(level: str, configured: dict[str, Any], expected: str) -> None:
    """Configured priorities win; otherwise by the level's name, P3 for unknown names."""
    assert priority_for(level, configured) == expected
    [call] = render_calls(sample_alert(level=level), priorities=configured)
    assert call.body["priority"] == expected


def test_everything_fits_opsgenies_limits() -> None:
    """A huge alert: message 130, alias 512 (stable hash), description 15000, tags 20 of
    50, details 8000 in all; the alias is escaped in the path."""
    long_id = "inc/" + "x" * 600
    facts = tuple(Fact("f" * 3000, i) for i in range(40))
    alert = sample_alert(
        incident_id=long_id, rule="r" * 400, facts=facts, explanation=sample_explanation()
    )
    [create] = render_calls(alert, tags=[f"t{i}" for i in range(30)])
    body = create.body
    for key, limit in LIMITS.items():
        assert len(body.get(key, "")) <= limit, key
    assert len(body["message"]) == 130
    assert body["alias"] == alias_for(long_id) == alias_for(long_id)
    assert body["alias"] != alias_for(long_id + "y")
    assert body["description"].endswith("more lines not shown")
    assert len(body["tags"]) == 20
    assert all(len(t) <= 50 for t in body["tags"])
    assert sum(len(k) + len(v) for k, v in body["details"].items()) <= 8000
    json.dumps(body, allow_nan=False)
    [close] = render_calls(replace(alert, kind="resolved", incident_id="a/b c"))
    assert close.path == "/v2/alerts/a%2Fb%20c/close?identifierType=alias"


def test_a_drill_says_so_and_renderers_are_pure() -> None:
    """A drill is tagged and labelled; rendering twice gives the same and changes nothing."""
    alert = sample_alert(drill=True)
    [call] = render_calls(alert)
    assert call.body["message"].startswith("[DRILL] ")
    assert "drill" in call.body["tags"]
    assert call.body["description"].startswith("DRILL: this is a test alert")
    assert render_description(alert) == render_description(alert)
    assert render_details(alert) == render_details(alert)
    assert sample_alert(drill=True) == alert
