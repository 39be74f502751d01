"""The console sink: alerts as readable text blocks (people) or JSON lines (pipes).

:func:`render_text` is pure. :class:`ConsoleSink` writes one rendered alert per
``send`` to standard output (or a given stream) and flushes. It never retries:
the delivery framework does.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from listener.config.schema import ConsoleSinkConfig
from listener.errors import SinkUnavailable
from listener.model import Alert, Digest, MentionRef
from listener.sinks.text import (
    clean_line,
    driver_text,
    excerpt,
    explanation_heading,
    render_digest_text,
)
from listener.sinks.webhook import render_webhook

EXCERPT_CHARS = 200
"""Mention texts longer than this are cut (with an ellipsis) in the text rendering."""

DRILL_BANNER = "*** DRILL — this is a test alert, no action needed ***"


def _mention_lines(index: int, ref: MentionRef) -> list[str]:
    who = f"@{clean_line(ref.author).lstrip('@')}" if ref.author else "unknown author"
    if ref.followers is not None:
        who += f" ({ref.followers:,} followers)"
    head = f"  {index}. {who} · {clean_line(ref.source)} · {ref.created_at.isoformat()}"
    lines = [head, f'     "{excerpt(ref.text, EXCERPT_CHARS)}"']
    if ref.url:
        lines.append(f"     {clean_line(ref.url)}")
    return lines


def _level(alert: Alert) -> str:
    """``crisis (was elevated)``; for a resolved alert ``resolved (last watch, peak crisis)``."""
    if alert.kind == "resolved":
        last = clean_line(alert.previous_level or alert.level)
        peak = f", peak {clean_line(alert.peak_level)}" if alert.peak_level else ""
        return f"resolved (last {last}{peak})"
    level = clean_line(alert.level)
    if alert.previous_level is not None and alert.previous_level != alert.level:
        level += f" (was {clean_line(alert.previous_level)})"
    return level


def _ack(alert: Alert) -> str:
    """``ana at 2026-…: "drafting a statement"`` (the note only when there is one)."""
    assert alert.ack is not None
    text = f"{clean_line(alert.ack.by)} at {alert.ack.at.isoformat()}"
    if alert.ack.note:
        text += f': "{excerpt(alert.ack.note, EXCERPT_CHARS)}"'
    return text


def render_text(alert: Alert) -> str:
    """Render ``alert`` as a multi-line block for people (no trailing newline).

    Pure. Contains the title, brand, rule, level (and the previous level; for a resolved
    alert the last and the peak level), the incident id, who acknowledged it with their
    note, every fact via ``str(fact)``, why it spiked (the explanation's drivers), and
    the top mentions with author, followers, an
    excerpt and the url. A drill alert carries ``[DRILL]`` in the title and a banner.
    """
    lines = [clean_line(alert.title)]
    if alert.drill:
        lines.append(DRILL_BANNER)
    lines += [
        f"  brand:    {clean_line(alert.brand)}",
        f"  rule:     {clean_line(alert.rule)}",
        f"  level:    {_level(alert)}",
        f"  kind:     {alert.kind}",
        f"  incident: {clean_line(alert.incident_id)}",
        f"  alert:    {clean_line(alert.id)}",
        f"  at:       {alert.at.isoformat()}",
    ]
    if alert.ack is not None:
        lines.append(f"  acknowledged: {_ack(alert)}")
    if alert.facts:
        lines.append("facts:")
        lines += [f"  - {clean_line(fact)}" for fact in alert.facts]
    e = alert.explanation
    if e is not None:
        lines.append(f"why ({explanation_heading(e)}):")
        lines += [f"  - {driver_text(d)}" for d in e.drivers] or ["  - nothing stands out"]
    if alert.top_mentions:
        lines.append("top mentions:")
        for i, ref in enumerate(alert.top_mentions, start=1):
            lines += _mention_lines(i, ref)
    return "\n".join(lines)


def render_json(alert: Alert) -> str:
    """Render ``alert`` as one JSON line: exactly the webhook document
    (:func:`~listener.sinks.webhook.render_webhook`, ``schema/alert.v1.json``), ASCII-safe.
    Pure."""
    return json.dumps(render_webhook(alert))


class ConsoleSink:
    """Writes each alert to ``stream`` (default: the current ``sys.stdout``) and flushes.

    ``format: text`` writes :func:`render_text` followed by a blank line; ``format: json``
    writes one JSON object per line. A write error (closed stream, broken pipe) raises
    :class:`~listener.errors.SinkUnavailable`. ``aclose`` never closes the stream.
    """

    def __init__(self, name: str, config: ConsoleSinkConfig, stream: TextIO | None = None) -> None:
        self.name = name
        self._format = config.format
        self._stream = stream

    def _out(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def _render(self, alert: Alert, stream: TextIO) -> str:
        if self._format == "json":
            return render_json(alert) + "\n"
        return self._fit(render_text(alert) + "\n\n", stream)

    @staticmethod
    def _fit(text: str, stream: TextIO) -> str:
        encoding = getattr(stream, "encoding", None)
        if encoding:
            # A terminal that cannot show "—" or an emoji gets "?" instead of an error.
            text = text.encode(encoding, "replace").decode(encoding)
        return text

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """Write one alert; ``idempotency_key`` is unused (a console cannot deduplicate)."""
        stream = self._out()
        self._write(stream, self._render(alert, stream))

    def _write(self, stream: TextIO, text: str) -> None:
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError) as exc:
            raise SinkUnavailable(
                f"console sink '{self.name}': cannot write ({type(exc).__name__})"
            ) from None

    async def send_digest(self, digest: Digest, idempotency_key: str) -> None:
        """Write one digest (:func:`~listener.sinks.text.render_digest_text`, or one JSON
        object per line with ``format: json``)."""
        stream = self._out()
        if self._format == "json":
            text = json.dumps(digest.to_dict(), ensure_ascii=False) + "\n"
        else:
            text = self._fit(render_digest_text(digest) + "\n\n", stream)
        self._write(stream, text)

    async def healthcheck(self) -> None:
        """Raise :class:`~listener.errors.SinkUnavailable` when the stream is closed."""
        if self._out().closed:
            raise SinkUnavailable(f"console sink '{self.name}': output stream is closed")

    async def aclose(self) -> None:
        """Nothing to release: the stream belongs to the caller."""
