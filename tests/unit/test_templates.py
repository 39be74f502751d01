"""Alert summaries from (sandboxed) Jinja2 templates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from listener.model import Ack, Alert, Fact
from listener.templates import check_template, render_summary

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ALERT = Alert(
    id="i#2",
    incident_id="i",
    kind="escalated",
    rule="negative-surge",
    brand="Acme",
    level="crisis",
    previous_level="watch",
    at=T0 + timedelta(minutes=42),
    facts=(Fact("negative mentions in 15m", 212, 80, 14.2),),
    categories=(("outage", 150), ("customer_service", 30)),
    opened_at=T0,
)


def test_default_summary_says_what_why_and_where_from() -> None:
    """The default text names the brand, level, change, numbers and driving categories."""
    text = render_summary(ALERT)
    assert text == (
        "Acme is at CRISIS (negative-surge), up from watch: negative mentions in "
        "15m = 212 (threshold 80) (baseline 14.20). Mostly about outage, "
        "customer_service."
    )


def test_default_summary_for_follow_ups() -> None:
    """Acknowledgement, reminders and the all-clear read naturally."""
    ack = replace(ALERT, kind="acknowledged", ack=Ack("ana", T0, "statement in 10 minutes"))
    assert render_summary(ack) == "ana is on it: statement in 10 minutes (Acme, crisis)."
    reminder = render_summary(replace(ALERT, kind="reminder"))
    assert "still unacknowledged after 42m" in reminder
    assert render_summary(replace(ALERT, kind="resolved")) == (
        "All clear for Acme: negative-surge no longer holds after 42m."
    )
    assert render_summary(replace(ALERT, kind="resolved", peak_level="crisis")) == (
        "All clear for Acme: negative-surge no longer holds after 42m (peak CRISIS)."
    )


def test_custom_template_and_errors() -> None:
    """A custom template renders; a broken one is caught by check; a render-time failure
    falls back to the default text and says so."""
    assert (
        render_summary(ALERT, "{{ brand }}/{{ level }}/{{ facts[0].value }}") == "Acme/crisis/212"
    )
    assert check_template("{{ brand ") is not None
    assert check_template("{% if x %}") is not None
    assert check_template("{{ brand }}") is None
    text = render_summary(ALERT, "{{ facts[5].value }}")
    assert text.startswith("Acme is at CRISIS")
    assert "summary template failed" in text


def test_templates_are_sandboxed() -> None:
    """A template cannot reach Python internals."""
    text = render_summary(ALERT, "{{ brand.__class__.__mro__[1].__subclasses__() }}")
    assert "summary template failed" in text


def test_a_template_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering the same summary template again reuses its compiled form."""
    from listener import templates

    compiled: list[str] = []
    original = templates._ENV.from_string

    def counting(source: str) -> Any:
        compiled.append(source)
        return original(source)

    templates._compiled.cache_clear()
    monkeypatch.setattr(templates._ENV, "from_string", counting)
    custom = "{{ brand }} at {{ level }}"
    for _ in range(3):
        assert render_summary(ALERT, custom) == "Acme at crisis"
        render_summary(ALERT)
    assert sorted(compiled) == sorted([custom, templates.DEFAULT_SUMMARY])
    templates._compiled.cache_clear()
