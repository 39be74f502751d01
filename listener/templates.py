"""Alert summaries rendered from Jinja2 templates (sandboxed: config cannot run code).

A template sees the alert's fields: ``brand``, ``rule``, ``level``, ``previous_level``,
``peak_level`` (the highest level reached, or None), ``kind``, ``facts`` (each renders as
"name = value (threshold …) (baseline …)"),
``categories`` (name, count pairs), ``top_mentions``, ``ack``, ``incident_id``,
``opened_for`` (a readable duration) and ``drill``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from listener.config.duration import format_duration
from listener.model import Alert

DEFAULT_SUMMARY = (
    "{% if kind == 'resolved' %}All clear for {{ brand }}: {{ rule }} no longer holds"
    "{% if opened_for %} after {{ opened_for }}{% endif %}"
    "{% if peak_level %} (peak {{ peak_level | upper }}){% endif %}."
    "{% elif kind == 'acknowledged' %}{{ ack.by }} is on it"
    "{% if ack.note %}: {{ ack.note }}{% endif %} ({{ brand }}, {{ level }})."
    "{% else %}{{ brand }} is at {{ level | upper }} ({{ rule }})"
    "{% if kind == 'escalated' %}, up from {{ previous_level }}"
    "{% elif kind == 'deescalated' %}, down from {{ previous_level }}"
    "{% elif kind == 'reminder' %}, still unacknowledged"
    "{% if opened_for %} after {{ opened_for }}{% endif %}"
    "{% elif kind == 'handoff' %}, unacknowledged for {{ opened_for }}: escalating{% endif %}"
    "{% if facts %}: {{ facts | map('string') | join('; ') }}{% endif %}."
    "{% if categories %} Mostly about {{ categories | map('first') | join(', ') }}.{% endif %}"
    "{% if ack %} {{ ack.by }} is on it.{% endif %}"
    "{% endif %}"
)

_ENV = SandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    """``source`` compiled once (a config holds a handful of templates; reloads add a few)."""
    return _ENV.from_string(source)


def check_template(source: str) -> str | None:
    """``None`` when the template compiles, else the error message (with its line)."""
    try:
        _ENV.from_string(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return f"invalid template{f' (line {line})' if line else ''}: {exc}"
    return None


def render_summary(alert: Alert, source: str | None = None) -> str:
    """The alert's one-paragraph summary; falls back to the default template when a
    custom one fails at render time (the error is part of the text, never raised)."""
    context: dict[str, Any] = {
        "brand": alert.brand,
        "rule": alert.rule,
        "level": alert.level,
        "previous_level": alert.previous_level,
        "peak_level": alert.peak_level,
        "kind": alert.kind,
        "facts": alert.facts,
        "categories": alert.categories,
        "top_mentions": alert.top_mentions,
        "ack": alert.ack,
        "incident_id": alert.incident_id,
        "drill": alert.drill,
        "opened_for": _opened_for(alert),
    }
    try:
        return _compiled(source or DEFAULT_SUMMARY).render(context).strip()
    except TemplateError as exc:
        fallback = _compiled(DEFAULT_SUMMARY).render(context).strip()
        return f"{fallback} (summary template failed: {exc})"


def _opened_for(alert: Alert) -> str | None:
    if alert.opened_at is None:
        return None
    span = alert.at - alert.opened_at
    return format_duration(timedelta(seconds=int(span.total_seconds()) // 60 * 60)) or None
