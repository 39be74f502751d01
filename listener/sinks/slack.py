"""The Slack sink: an incoming webhook, or the Web API with a bot token.

Rendering is pure: :func:`render_blocks` builds the Block Kit message for an alert (a
``text`` fallback, top-level ``blocks`` and one attachment whose ``color`` shows the
severity), :func:`render_thread_reply` the short line posted in an incident's thread.

:class:`SlackSink` has two modes, chosen by the config:

- **Webhook** (``webhook_url``): one message per alert, POSTed with the official
  ``slack_sdk`` :class:`~slack_sdk.webhook.async_client.AsyncWebhookClient`.
- **Web API** (``token`` + ``channel``), with
  :class:`~slack_sdk.web.async_client.AsyncWebClient`: one *parent* message per incident.
  The first alert of an incident posts it (``chat.postMessage`` with message metadata
  ``listener_incident`` carrying the incident and alert ids) and its channel and ``ts``
  are kept in the sink's durable state (key ``ts:<incident_id>``). Every later alert
  edits the parent in place (``chat.update``) and posts a short reply in its thread
  (metadata ``listener_incident_update``); the resolved alert turns the parent into the
  all-clear and says so in the thread.

**Idempotency across crashes** (Web API mode). State writes are committed at once.

- ``done:<key>``: the alert (``key`` is the idempotency key, i.e. the alert id) was fully
  handled; a repeat is skipped without any call to Slack.
- ``intent:<incident_id>`` is written *before* a parent is posted. With no stored ``ts``
  the sink first looks for a parent of the incident in ``conversations.history``
  (``include_all_metadata``) and adopts it instead of posting a second one. When an
  intent exists (an earlier attempt may have reached Slack) that look-up must succeed;
  otherwise it is best effort (a refused or rate-limited look-up lets the post go on).
- ``post:<key>`` is written before a thread reply is posted; when it exists (or when the
  parent itself had to be recovered), ``conversations.replies`` is searched for a reply
  whose metadata carries the key, and a found one is not posted again.
- ``chat.update`` is idempotent by nature.

What remains: with ``channel`` configured by *name* (not id), a crash between Slack
accepting the very first parent this sink ever posts and the state write cannot be
recovered (``conversations.history`` needs the channel id, learnt from that first post),
so that one parent may be posted twice; configure a channel id to close this. And a bot
without ``channels:history``/``groups:history`` cannot look, so after such a crash it
posts again (a duplicate is better than a lost alert). Webhook mode is at least once:
an incoming webhook has no idempotency key and cannot be read back.

**Errors.** slack-sdk's own retry handlers are turned off (``retry_handlers=[]``): the
delivery framework retries. HTTP 429 or ``ratelimited`` → :class:`SinkUnavailable` with
``retry_after`` from ``Retry-After``; 5xx, transport errors and timeouts →
:class:`SinkUnavailable`; ``invalid_auth``, ``channel_not_found``, ``not_in_channel`` and
any other 4xx or API error → :class:`SinkRejected`. Messages name the Slack method and
error code only: never the token or the webhook URL. The SDK's debug log (which would
print the webhook URL) goes to the ``listener.sinks.slack.sdk`` logger, held at WARNING.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast
from urllib.parse import quote, urlsplit
from urllib.request import proxy_bypass

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient
from slack_sdk.webhook.webhook_response import WebhookResponse

from listener.config.schema import SlackSinkConfig
from listener.errors import SinkRejected, SinkUnavailable
from listener.model import Alert, AlertKind, AuthorRef, Digest, Fact, MentionRef
from listener.sinks.base import SinkContext
from listener.sinks.http import MAX_RESPONSE_BYTES, parse_retry_after
from listener.sinks.text import (
    KIND_EMOJI,
    cut,
    defuse_broadcasts,
    driver_text,
    duration,
    explanation_heading,
    incident_line,
    incidents_line,
    listed_incidents,
    number,
    share_line,
    story_line,
    volume_line,
)

# --------------------------------------------------------------------------- limits

MAX_BLOCKS: Final = 50
"""Slack's limit on blocks in one message (top-level and attachment blocks together)."""
MAX_TEXT: Final = 3000
"""Slack's limit on a section's text, and what the ``text`` fallback is kept within."""
MAX_HEADER: Final = 150
MAX_FIELD: Final = 2000
MAX_FIELDS: Final = 10
MAX_CONTEXT_ELEMENTS: Final = 10
EXCERPT_CHARS: Final = 140
"""Mention texts longer than this are cut (with an ellipsis)."""
MAX_MENTIONS: Final = 5
MAX_SPARK: Final = 48
"""The sparkline shows at most this many of the newest trend values."""
SPARK: Final = "▁▂▃▄▅▆▇█"

PARENT_EVENT: Final = "listener_incident"
"""Message-metadata event type of an incident's parent message."""
REPLY_EVENT: Final = "listener_incident_update"
"""Message-metadata event type of a reply in an incident's thread."""
TEST_TEXT: Final = "listener test notification"
"""What :meth:`SlackSink.send_test` posts."""

HISTORY_PAGE: Final = 200
HISTORY_PAGES: Final = 5
LOOKBACK_SECONDS: Final = 3600.0
"""How far before the earliest hint (the recorded attempt, the incident's opening) a
recovery look-up searches, to allow for clock skew."""

DRILL_NOTE: Final = "🧪 *DRILL*: this is a test alert, no action needed"

# --------------------------------------------------------------------------- styles

RESOLVED_COLOUR: Final = "#2EB67D"
RESOLVED_EMOJI: Final = "🟢"
_RED, _ORANGE, _YELLOW, _BLUE = (
    ("#D0021B", "🔴"),
    ("#F2711C", "🟠"),
    ("#F2C744", "🟡"),
    ("#439FE0", "🔵"),
)
_SEVERITY: Final[dict[str, tuple[str, str]]] = {
    **dict.fromkeys(("crisis", "critical", "severe", "emergency", "sev1", "p1"), _RED),
    **dict.fromkeys(("high", "elevated", "major", "error", "sev2", "p2"), _ORANGE),
    **dict.fromkeys(("watch", "warning", "warn", "medium", "moderate", "sev3", "p3"), _YELLOW),
    **dict.fromkeys(("low", "info", "minor", "notice", "sev4", "p4"), _BLUE),
}
DEFAULT_STYLE: Final = _ORANGE
"""Colour and emoji of a level name not in the table (levels are named by the rules)."""

NOTIFY_KINDS: Final[frozenset[AlertKind]] = frozenset(
    {"opened", "escalated", "reminder", "handoff"}
)
"""Kinds that carry the level's configured mention (``mentions``)."""
BROADCAST_KINDS: Final[frozenset[AlertKind]] = frozenset({"escalated", "handoff"})
"""Kinds whose thread reply is also sent to the channel (``reply_broadcast``): an edit
of the parent notifies nobody."""


def severity_style(level: str, *, resolved: bool = False) -> tuple[str, str]:
    """``(colour, emoji)`` for a level name (case-insensitive); green when ``resolved``."""
    if resolved:
        return RESOLVED_COLOUR, RESOLVED_EMOJI
    return _SEVERITY.get(level.strip().lower(), DEFAULT_STYLE)


# --------------------------------------------------------------------------- text helpers


def _clean(value: object) -> str:
    """One line of printable text (whitespace collapsed, control characters replaced),
    at most :data:`MAX_TEXT` × 2 characters: no Slack text can show more."""
    text = " ".join(str(value)[: MAX_TEXT * 2].split())
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _esc(value: object) -> str:
    """Untrusted text made safe for mrkdwn: ``&``, ``<``, ``>`` escaped (so no link,
    mention or ``<!channel>`` can be injected) and ``@here``-style words defused."""
    text = _clean(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return defuse_broadcasts(text)


def _code(value: object) -> str:
    """An id shown in a code span."""
    return "`" + _esc(value).replace("`", "'") + "`"


def _fit(text: str, limit: int) -> str:
    """mrkdwn cut to ``limit`` characters without leaving half a ``<link>`` or
    ``&entity;`` behind."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    lt = cut.rfind("<")
    if lt > cut.rfind(">"):
        cut = cut[:lt]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + "…"


def _join_lines(head: str, lines: Sequence[str], limit: int = MAX_TEXT) -> str:
    """``head`` then as many whole ``lines`` as fit in ``limit`` characters, then a note
    of how many were left out."""
    text = head
    for index, line in enumerate(lines):
        left = len(lines) - index
        note = f"\n…and {left} more"
        candidate = f"{text}\n{line}" if text else line
        rest_fits = index == len(lines) - 1 or len(candidate) + len(note) <= limit
        if len(candidate) <= limit and rest_fits:
            text = candidate
            continue
        if index == 0 and not head:
            return _fit(line, limit)
        return _fit(text + note, limit)
    return text


def _compact(value: float) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.2f}".rstrip("0").rstrip(".") + suffix
    return number(round(value, 2))


def _date(when: datetime) -> str:
    """A Slack date token: shown in each reader's time zone, with a UTC fallback."""
    utc = when.astimezone(UTC)
    fallback = utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _link(url: str | None, label: str) -> str:
    """``<url|label>`` for an http(s) URL (``label`` already escaped), else ``label``."""
    if not url:
        return label
    clean = "".join(ch for ch in url.strip() if ch.isprintable() and not ch.isspace())
    if len(clean) > 1000 or urlsplit(clean).scheme.lower() not in ("http", "https"):
        return label
    safe = clean.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{safe}|{label}>"


def sparkline(values: Sequence[int], width: int = MAX_SPARK) -> str:
    """The newest ``width`` values as ``▁▂▃▄▅▆▇█`` scaled from 0 to their maximum
    (negative values count as 0); empty for no values."""
    shown = [max(0, int(v)) for v in values][-width:] if width > 0 else []
    top = max(shown, default=0)
    if top == 0:
        return SPARK[0] * len(shown)
    return "".join(SPARK[round(v * (len(SPARK) - 1) / top)] for v in shown)


# --------------------------------------------------------------------------- blocks


def _mrkdwn(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _fit(text, limit)}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(*elements: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [_mrkdwn(e, MAX_FIELD) for e in elements[:MAX_CONTEXT_ELEMENTS]],
    }


def _fact_line(fact: Fact) -> str:
    line = f"• {_esc(fact.name)}: *{number(fact.value)}*"
    extra = []
    if fact.threshold is not None:
        extra.append(f"threshold {number(fact.threshold)}")
    if fact.baseline is not None:
        baseline = f"baseline {number(fact.baseline)}"
        if fact.baseline > 0:
            baseline += f" ({fact.value / fact.baseline:.1f}× baseline)"
        extra.append(baseline)
    return line + (" — " + " · ".join(extra) if extra else "")


def _trend_text(alert: Alert) -> str:
    spark = sparkline(alert.trend)
    shown = alert.trend[-MAX_SPARK:]
    if alert.trend_step > 0:
        head = (
            f"*Trend* · negative mentions per {duration(alert.trend_step)}, "
            f"last {duration(alert.trend_step * len(shown))}"
        )
    else:
        head = "*Trend* · negative mentions, oldest to newest"
    numbers = f"now *{number(shown[-1])}* · peak {number(max(shown))} · low {number(min(shown))}"
    return f"{head}\n`{spark}`  {numbers}"


def _mention_line(index: int, ref: MentionRef) -> str:
    excerpt = _esc(cut(_clean(ref.text), EXCERPT_CHARS))
    body = _link(ref.url, f"“{excerpt}”")
    who = f"@{_esc(_clean(ref.author).lstrip('@'))}" if ref.author else "unknown author"
    if ref.followers is not None:
        who += f" ({ref.followers:,} followers)"
    return f"{index}. {body} — {who} · {_esc(ref.source)} · sentiment {ref.sentiment:+.2f}"


def _author_text(authors: Sequence[AuthorRef]) -> str:
    lines = []
    detractors = [a for a in authors if a.role == "detractor"]
    amplifiers = [a for a in authors if a.role == "amplifier"]
    if detractors:
        items = [
            f"@{_esc(a.handle.lstrip('@'))} ({_esc(a.source)}, {a.mentions:,} mentions)"
            for a in detractors
        ]
        lines.append("*Detractors*: " + " · ".join(items))
    if amplifiers:
        items = [
            f"@{_esc(a.handle.lstrip('@'))} ({_esc(a.source)}, reach {_compact(a.reach)})"
            for a in amplifiers
        ]
        lines.append("*Amplifiers*: " + " · ".join(items))
    return _join_lines("", lines)


def _severity_text(alert: Alert) -> str:
    _, emoji = severity_style(alert.level)
    text = f"{emoji} *{_esc(alert.level.upper())}*"
    if alert.previous_level is not None and alert.previous_level != alert.level:
        text += f" (was {_esc(alert.previous_level)})"
    return text


def _status_text(alert: Alert) -> str:
    if alert.kind == "resolved":
        return "✅ Resolved: all clear"
    if alert.ack is not None:
        return "👀 Acknowledged"
    if alert.kind in ("reminder", "handoff"):
        return "🚨 Open, *unacknowledged*"
    return "🚨 Open"


def _fields(alert: Alert) -> list[dict[str, Any]]:
    on_it = "nobody yet" if alert.kind != "resolved" else "nobody"
    if alert.ack is not None:
        on_it = f"*{_esc(alert.ack.by)}* since {_date(alert.ack.at)}"
    fields = [
        f"*Brand*\n{_esc(alert.brand)}",
        f"*Severity*\n{_severity_text(alert)}",
        f"*Status*\n{_status_text(alert)}",
        f"*On it*\n{on_it}",
    ]
    if alert.opened_at is not None:
        took = duration((alert.at - alert.opened_at).total_seconds())
        verb = "lasted" if alert.kind == "resolved" else "open for"
        fields.append(f"*Opened*\n{_date(alert.opened_at)} ({verb} {took})")
    fields.append(f"*Rule*\n{_esc(alert.rule)}")
    return [_mrkdwn(f, MAX_FIELD) for f in fields[:MAX_FIELDS]]


def _details(alert: Alert) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if alert.facts:
        blocks.append(_section(_join_lines("*The numbers*", [_fact_line(f) for f in alert.facts])))
    if alert.trend:
        blocks.append(_section(_trend_text(alert)))
    if alert.top_mentions:
        lines = [_mention_line(i, m) for i, m in enumerate(alert.top_mentions, start=1)]
        shown = lines[:MAX_MENTIONS]
        if len(lines) > len(shown):
            shown.append(f"…and {len(lines) - len(shown)} more")
        blocks.append(_section(_join_lines("*Top mentions*", shown)))
    if alert.categories:
        items = " · ".join(f"{_esc(name)} ({count:,})" for name, count in alert.categories)
        blocks.append(_section(f"*Categories*\n{items}"))
    if alert.authors:
        blocks.append(_section(_author_text(alert.authors)))
    if alert.ack is not None:
        ack = f"👀 *{_esc(alert.ack.by)}* acknowledged {_date(alert.ack.at)}"
        if alert.ack.note:
            ack += f": “{_esc(cut(_clean(alert.ack.note), 500))}”"
        blocks.append(_section(ack))
    if alert.route:
        blocks.append(_context("Route: " + " → ".join(_esc(r) for r in alert.route)))
    blocks.append(
        _context(
            f"Incident {_code(alert.incident_id)}",
            f"Alert {_code(alert.id)}",
            f"Rule {_code(alert.rule)}",
            _date(alert.at),
        )
    )
    return blocks


def _why_text(alert: Alert) -> str:
    """*Why* — what rose most in the alert's window, each with an example post."""
    e = alert.explanation
    if e is None or not e.drivers:
        return ""
    lines = []
    for d in e.drivers[:MAX_DRIVERS]:
        example = d.example.url if d.example is not None else None
        link = _link(example, "example")
        lines.append(f"• {_esc(driver_text(d))}" + (f" · {link}" if link != "example" else ""))
    return _join_lines(f"*Why:* {_esc(explanation_heading(e))}", lines)


def _fallback(alert: Alert, emoji: str, mention: str | None) -> str:
    text = f"{emoji} {_esc(alert.title)}"
    if alert.facts:
        text += f" · {_esc(alert.facts[0])}"
    if mention:
        text = f"{mention.strip()} {text}"
    return _fit(text, MAX_TEXT)


@dataclass(frozen=True, slots=True)
class Buttons:
    """Which buttons an incident message carries: Acknowledge and Snooze 1h when the
    Slack app sends their clicks back (``interactive``), Open in console with
    ``console_url``."""

    interactive: bool = False
    console_url: str | None = None


ACK_ACTION = "listener_ack"
SNOOZE_ACTION = "listener_snooze"
OPEN_ACTION = "listener_open"


def _actions(alert: Alert, buttons: Buttons) -> dict[str, Any] | None:
    """The actions block of an incident message (None: no button to show)."""
    elements: list[dict[str, Any]] = []
    if buttons.interactive and alert.kind != "resolved":
        if alert.ack is None:
            elements.append(
                {
                    "type": "button",
                    "action_id": ACK_ACTION,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Acknowledge"},
                    "value": alert.incident_id,
                }
            )
        elements.append(
            {
                "type": "button",
                "action_id": SNOOZE_ACTION,
                "text": {"type": "plain_text", "text": "Snooze 1h"},
                "value": alert.incident_id,
            }
        )
    if buttons.console_url:
        elements.append(
            {
                "type": "button",
                "action_id": OPEN_ACTION,
                "text": {"type": "plain_text", "text": "Open in console"},
                "url": f"{buttons.console_url.rstrip('/')}/incidents/"
                + quote(alert.incident_id, safe=""),
            }
        )
    if not elements:
        return None
    return {"type": "actions", "block_id": "listener_actions", "elements": elements}


def render_blocks(
    alert: Alert, *, mention: str | None = None, buttons: Buttons | None = None
) -> dict[str, Any]:
    """The Block Kit message for ``alert`` (a fresh dict; pure).

    Keys: ``text`` (the notification fallback: ``mention``, severity emoji, title, the
    first fact), ``blocks`` (a header with the kind's emoji and the title, which carries
    ``[DRILL]`` for a drill; a drill note; ``mention`` (trusted Slack markup such as
    ``<!subteam^S0123>``) and, once resolved, the all-clear; the alert's ``summary``
    paragraph when it has one; fields: brand, severity with its emoji and previous
    level, status, who is on it (the acknowledgement), when it opened, the rule; *Why*:
    the spike explanation's drivers, each with a link to an example post) and
    ``attachments``: one attachment whose ``color`` is the
    severity's (green once resolved) holding the numbers (value, threshold, baseline),
    the trend sparkline, the top mentions as links, the categories, detractors and
    amplifiers, the acknowledgement note, the route and the incident and alert ids.
    ``buttons``: an actions block under the fields (Acknowledge while nobody has, Snooze
    1h, Open in console; none once resolved but the last).

    Untrusted text is escaped (no injected link or mention) and everything is cut to
    Slack's limits: 50 blocks, 3000 characters per text, 150 per header.
    """
    resolved = alert.kind == "resolved"
    colour, emoji = severity_style(alert.level, resolved=resolved)
    header = cut(f"{KIND_EMOJI[alert.kind]} {_clean(alert.title)}", MAX_HEADER)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}
    ]
    if alert.drill:
        blocks.append(_context(DRILL_NOTE))
    lead = [mention.strip()] if mention and mention.strip() else []
    if resolved:
        sentence = "✅ *All clear.* The incident is resolved"
        if alert.opened_at is not None:
            sentence += f" after {duration((alert.at - alert.opened_at).total_seconds())}"
        lead.append(sentence + ".")
    if lead:
        blocks.append(_section("\n".join(lead)))
    summary = getattr(alert, "summary", "")  # the configured template's paragraph, if any
    if isinstance(summary, str) and summary.strip():
        blocks.append(_section(_esc(summary)))
    blocks.append({"type": "section", "fields": _fields(alert)})
    why = _why_text(alert)
    if why:
        blocks.append(_section(why))
    actions = _actions(alert, buttons) if buttons is not None else None
    if actions is not None:
        blocks.append(actions)
    details = _details(alert)[: max(0, MAX_BLOCKS - len(blocks))]
    return {
        "text": _fallback(alert, emoji, mention),
        "blocks": blocks,
        "attachments": [
            {"color": colour, "fallback": _fit(_esc(alert.title), 300), "blocks": details}
        ],
    }


MAX_DRIVERS = 6
"""Drivers of a spike explanation shown in a Slack message."""
MAX_DIGEST_BRANDS = 40
"""Brands one Slack digest shows in full (a message holds at most 50 blocks); the rest
are counted in a closing line."""


def render_digest_blocks(digest: Digest, console_url: str | None = None) -> dict[str, Any]:
    """A digest as a Slack message (``text`` fallback and ``blocks``): a header, one
    section per brand (volume, negative share, incidents, top stories with links), every
    value escaped, and a link to the console when its URL is configured. Pure."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(digest.title, 150)}},
        _context(_esc(digest.span)),
    ]
    for b in digest.brands[:MAX_DIGEST_BRANDS]:
        lines = [
            f"• {_esc(volume_line(b, digest.every))}",
            f"• {_esc(share_line(b))}",
            f"• {_esc(incidents_line(b))}",
        ]
        lines += [f"   ◦ {_esc(incident_line(i, digest.timezone))}" for i in listed_incidents(b)]
        lines += [
            f"{n}. {_esc(story_line(story))} {_link(story.lead.url, 'open')}".rstrip()
            for n, story in enumerate(b.stories, 1)
        ]
        blocks.append(_section(_join_lines(f"*{_esc(b.brand)}*", lines)))
    hidden = len(digest.brands) - MAX_DIGEST_BRANDS
    if hidden > 0:
        blocks.append(_context(f"…and {hidden} more brands (see the console or email digest)"))
    if console_url:
        blocks.append(_context(_link(console_url, "Open the console")))
    names = ", ".join(b.brand for b in digest.brands[:5])
    return {"text": _fit(_esc(f"{digest.title}: {names}"), MAX_TEXT), "blocks": blocks}


def _reply_line(alert: Alert) -> str:
    _, emoji = severity_style(alert.level)
    level = f"{emoji} *{_esc(alert.level.upper())}*"
    was = f" (was {_esc(alert.previous_level)})" if alert.previous_level else ""
    age = (
        duration((alert.at - alert.opened_at).total_seconds())
        if alert.opened_at is not None
        else None
    )
    kind = alert.kind
    if kind == "opened":
        line = f"Opened at {level}"
    elif kind == "escalated":
        line = f"*Escalated* to {level}{was}"
    elif kind == "deescalated":
        line = f"De-escalated to {level}{was}"
    elif kind == "reminder":
        line = f"Still {level} and *unacknowledged*" + (f" after {age}" if age else "")
    elif kind == "acknowledged":
        by = _esc(alert.ack.by) if alert.ack is not None else "someone"
        line = f"Acknowledged by *{by}*"
        if alert.ack is not None and alert.ack.note:
            line += f": “{_esc(cut(_clean(alert.ack.note), 500))}”"
    elif kind == "handoff":
        line = f"*Not acknowledged in time*, escalating at {level}"
        if alert.route:
            line += f" to {_esc(alert.route[-1])}"
    else:
        line = "*All clear*: resolved" + (f" after {age}" if age else "")
    if alert.facts and kind != "acknowledged":
        line += f" · {_esc(alert.facts[0])}"
    return f"{KIND_EMOJI[kind]} {line}"


def render_thread_reply(alert: Alert, *, mention: str | None = None) -> dict[str, Any]:
    """The short update posted in the incident's thread for ``alert`` (pure): ``text``
    (one line: what changed, the level and previous level, the first fact, ``[DRILL]``
    for a drill, led by ``mention``) and ``blocks`` (that line, then the time and ids)."""
    line = _reply_line(alert)
    if alert.drill:
        line = f"[DRILL] {line}"
    if mention and mention.strip():
        line = f"{mention.strip()} {line}"
    line = _fit(line, MAX_TEXT)
    return {
        "text": line,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": line}},
            _context(_date(alert.at), f"Alert {_code(alert.id)}"),
        ],
    }


# --------------------------------------------------------------------------- the sink

_T = TypeVar("_T")

ClientFactory = Callable[[SlackSinkConfig], AsyncWebClient]
"""Builds the Web API client from the config (tests, a custom session)."""

SDK_LOGGER: Final = logging.getLogger("listener.sinks.slack.sdk")
"""Given to slack-sdk's clients; held at WARNING because the SDK's debug lines would
print the webhook URL (a secret)."""
SDK_LOGGER.setLevel(logging.WARNING)

_CODE = re.compile(r"[a-z0-9_.]{1,64}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,}")
_TRANSIENT_CODES: Final = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_RATE_LIMIT_CODES: Final = frozenset({"ratelimited", "rate_limited"})
_REFUSED_CODES: Final = frozenset(
    {
        "missing_scope",
        "not_allowed_token_type",
        "no_permission",
        "not_in_channel",
        "access_denied",
        "ekm_access_denied",
    }
)
"""Look-up errors that mean "this bot may not read here"; a recovery look-up that gets
one of these lets the post go on."""


def _timeout(config: SlackSinkConfig) -> int:
    # slack-sdk annotates the timeout as int but hands it to aiohttp.ClientTimeout,
    # which takes float seconds: keep sub-second timeouts as they are.
    return cast(int, config.timeout.total_seconds())


def _no_proxy_for(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return bool(host) and bool(proxy_bypass(host))


def default_client(config: SlackSinkConfig) -> AsyncWebClient:
    """The Web API client for ``config``: ``base_url=config.api_url``, its timeout, no
    retry handlers (the delivery framework retries), the quiet SDK logger, and the
    environment's proxy unless ``NO_PROXY`` covers the API host."""
    if config.token is None:
        raise ValueError("a Web API client needs a token")
    client = AsyncWebClient(
        token=config.token.get_secret_value(),
        base_url=str(config.api_url),
        timeout=_timeout(config),
        logger=SDK_LOGGER,
        retry_handlers=[],
    )
    if client.proxy and _no_proxy_for(client.base_url):
        client.proxy = None
    return client


def _webhook_client(config: SlackSinkConfig) -> AsyncWebhookClient:
    assert config.webhook_url is not None
    url = config.webhook_url.get_secret_value()
    client = AsyncWebhookClient(
        url=url, timeout=_timeout(config), logger=SDK_LOGGER, retry_handlers=[]
    )
    if client.proxy and _no_proxy_for(url):
        client.proxy = None
    return client


class _CappedResponse(aiohttp.ClientResponse):
    """An aiohttp response that reads at most :data:`MAX_RESPONSE_BYTES` of its body: a
    longer body is not read on, its connection is closed, and it reads as empty (the
    status alone decides the outcome)."""

    async def read(self) -> bytes:
        if self._body is not None:
            return await super().read()
        chunks: list[bytes] = []
        size = 0
        try:
            while size <= MAX_RESPONSE_BYTES:
                chunk = await self.content.read(min(64 * 1024, MAX_RESPONSE_BYTES + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except BaseException:
            self.close()
            raise
        if size > MAX_RESPONSE_BYTES:
            self._body = b""
            self.close()
            return self._body
        self._body = b"".join(chunks)
        return await super().read()


class _Unavailable(SinkUnavailable):
    """A retryable Slack failure; ``rate_limited`` for 429 / ``ratelimited``."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.code = code
        self.rate_limited = rate_limited


class _Rejected(SinkRejected):
    """A Slack API error that retrying will not fix; ``code`` is Slack's error code."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class _Parent:
    """Where an incident's parent message is, and which alert posted it."""

    channel: str
    ts: str
    key: str | None = None
    alert_id: str | None = None

    def dump(self) -> str:
        return json.dumps(
            {"channel": self.channel, "ts": self.ts, "key": self.key, "alert_id": self.alert_id}
        )

    @staticmethod
    def load(value: str | None) -> _Parent | None:
        if not value:
            return None
        try:
            data = json.loads(value)
            return _Parent(
                str(data["channel"]), str(data["ts"]), data.get("key"), data.get("alert_id")
            )
        except (ValueError, TypeError, KeyError):
            return None


def _epoch_of(value: str | None) -> float | None:
    """The attempt time kept in an intent record (``{"at": epoch, ...}``)."""
    if not value:
        return None
    try:
        at = json.loads(value).get("at")
    except (ValueError, AttributeError):
        return None
    return float(at) if isinstance(at, int | float) else None


class SlackSink:
    """Posts alerts to Slack; see the module docstring for the two modes, threading,
    idempotency and error mapping.

    ``context.state`` keeps the parent messages and done markers (Web API mode) and
    ``context.clock`` dates the recovery hints. ``client_factory`` builds the Web API
    client (default :func:`default_client`); the sink does not close a session the
    client was given. Building opens no connection; :meth:`aclose` is idempotent.
    """

    def __init__(
        self,
        name: str,
        config: SlackSinkConfig,
        *,
        context: SinkContext,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self.name = name
        self._state = context.state
        self._clock = context.clock
        self._mentions = dict(config.mentions)
        self._buttons = Buttons(
            interactive=config.signing_secret is not None,
            console_url=str(config.console_url) if config.console_url is not None else None,
        )
        self._channel = config.channel or ""
        self._timeout = config.timeout.total_seconds()
        self._io = asyncio.Lock()
        self._web: AsyncWebClient | None = None
        self._hook: AsyncWebhookClient | None = None
        if config.token is not None:
            self._web = (client_factory or default_client)(config)
        else:
            self._hook = _webhook_client(config)

    # ------------------------------------------------------------------ public API

    @property
    def mode(self) -> str:
        """``"webapi"`` or ``"webhook"``."""
        return "webapi" if self._web is not None else "webhook"

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """Deliver ``alert`` once (webhook: one message; Web API: the incident's parent
        posted or updated, plus a thread reply); raise a SinkError otherwise."""
        if await self._get(f"done:{idempotency_key}") is not None:
            return
        if self._web is None:
            await self._post_webhook(
                render_blocks(alert, mention=self._mention_for(alert), buttons=self._buttons)
            )
        else:
            await self._send_api(self._web, alert, idempotency_key)
        # "done" first: a crash before the intent is dropped leaves a harmless leftover.
        await self._set(f"done:{idempotency_key}", str(int(self._clock.now().timestamp())))
        if self._web is not None:
            await self._delete(f"post:{idempotency_key}")

    async def send_digest(self, digest: Digest, idempotency_key: str) -> None:
        """Post one digest (:func:`render_digest_blocks`): to the webhook, or to the
        channel with the bot token (a message of its own, not in an incident's thread).
        A key already posted is not posted again."""
        if await self._get(f"done:{idempotency_key}") is not None:
            return
        payload = render_digest_blocks(digest, self._buttons.console_url)
        if self._web is None:
            await self._post_webhook(payload)
        else:
            await self._call(
                "chat.postMessage",
                self._web.chat_postMessage(
                    channel=self._channel,
                    text=payload["text"],
                    blocks=payload["blocks"],
                    unfurl_links=False,
                    unfurl_media=False,
                ),
            )
        await self._set(f"done:{idempotency_key}", str(int(self._clock.now().timestamp())))

    async def healthcheck(self) -> None:
        """Web API: ``auth.test`` (the token is valid). Webhook: only checks that the URL
        is an http(s) URL, as an incoming webhook cannot be probed without posting; the
        deep check calls :meth:`send_test` for that."""
        if self._web is not None:
            await self._call("auth.test", self._web.auth_test())
            return
        assert self._hook is not None
        parts = urlsplit(self._hook.url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise SinkRejected(f"{self._label()}: webhook_url is not an http(s) URL")

    async def send_test(self) -> None:
        """Post the message ``listener test notification`` (``listener check --deep``):
        to the webhook, or to the configured channel with the bot token."""
        if self._web is not None:
            await self._call(
                "chat.postMessage",
                self._web.chat_postMessage(channel=self._channel, text=TEST_TEXT),
            )
        else:
            await self._post_webhook({"text": TEST_TEXT})

    async def aclose(self) -> None:
        """Nothing to release: each request has its own session (see :meth:`_bounded`)."""

    # ------------------------------------------------------------------ Web API mode

    async def _send_api(self, web: AsyncWebClient, alert: Alert, key: str) -> None:
        parent = _Parent.load(await self._get(f"ts:{alert.incident_id}"))
        recovered = False
        if parent is None:
            parent = await self._recover_parent(web, alert)
            if parent is None:
                await self._post_parent(web, alert, key)
                return
            await self._set(f"ts:{alert.incident_id}", parent.dump())
            await self._delete(f"intent:{alert.incident_id}")
            recovered = True
        if parent.key == key:
            return  # the parent is this very alert: an earlier attempt posted it
        if not await self._update_parent(web, parent, alert):
            await self._delete(f"ts:{alert.incident_id}")
            await self._post_parent(web, alert, key)
            return
        await self._post_reply(web, parent, alert, key, check=recovered)

    @staticmethod
    def _metadata(
        event_type: str, alert: Alert, key: str | None, alert_id: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "incident_id": alert.incident_id,
            "alert_id": alert_id if alert_id is not None else alert.id,
        }
        if key is not None:
            payload["idempotency_key"] = key
        if alert_id is not None:
            payload["latest_alert_id"] = alert.id
        payload.update({"kind": alert.kind, "level": alert.level})
        return {"event_type": event_type, "event_payload": payload}

    async def _post_parent(self, web: AsyncWebClient, alert: Alert, key: str) -> None:
        now = self._clock.now().timestamp()
        await self._set(f"intent:{alert.incident_id}", json.dumps({"key": key, "at": now}))
        payload = render_blocks(alert, mention=self._mention_for(alert), buttons=self._buttons)
        response = await self._call(
            "chat.postMessage",
            web.chat_postMessage(
                channel=self._channel,
                text=payload["text"],
                blocks=payload["blocks"],
                attachments=payload["attachments"],
                metadata=self._metadata(PARENT_EVENT, alert, key),
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        channel, ts = response.get("channel"), response.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            raise _Unavailable(f"{self._label()}: chat.postMessage: answer without channel or ts")
        parent = _Parent(channel, ts, key, alert.id)
        await self._set(f"ts:{alert.incident_id}", parent.dump())
        if channel != self._channel:
            await self._set(f"channel:{self._channel}", channel)
        await self._delete(f"intent:{alert.incident_id}")

    async def _update_parent(self, web: AsyncWebClient, parent: _Parent, alert: Alert) -> bool:
        """Edit the parent to show ``alert``; False when the parent is gone."""
        payload = render_blocks(alert, mention=self._mention_for(alert), buttons=self._buttons)
        # The creating alert's ids stay in the metadata (recovery matches on them).
        metadata = self._metadata(PARENT_EVENT, alert, parent.key, parent.alert_id or alert.id)
        try:
            await self._call(
                "chat.update",
                web.chat_update(
                    channel=parent.channel,
                    ts=parent.ts,
                    text=payload["text"],
                    blocks=payload["blocks"],
                    attachments=payload["attachments"],
                    metadata=metadata,
                ),
            )
        except _Rejected as exc:
            if exc.code == "message_not_found":
                return False
            raise
        return True

    async def _post_reply(
        self, web: AsyncWebClient, parent: _Parent, alert: Alert, key: str, *, check: bool
    ) -> None:
        intent = await self._get(f"post:{key}")
        if intent is not None or check:
            found = await self._lookup(
                self._reply_exists(web, parent, key, _epoch_of(intent)),
                required=intent is not None,
            )
            if found:
                return
        now = self._clock.now().timestamp()
        await self._set(f"post:{key}", json.dumps({"at": now}))
        payload = render_thread_reply(alert, mention=self._mention_for(alert))
        await self._call(
            "chat.postMessage",
            web.chat_postMessage(
                channel=parent.channel,
                thread_ts=parent.ts,
                reply_broadcast=alert.kind in BROADCAST_KINDS or None,
                text=payload["text"],
                blocks=payload["blocks"],
                metadata=self._metadata(REPLY_EVENT, alert, key),
                unfurl_links=False,
                unfurl_media=False,
            ),
        )

    # ------------------------------------------------------------------ recovery

    async def _channel_id(self) -> str | None:
        if _CHANNEL_ID.fullmatch(self._channel):
            return self._channel
        return await self._get(f"channel:{self._channel}")

    async def _recover_parent(self, web: AsyncWebClient, alert: Alert) -> _Parent | None:
        """The incident's parent already in the channel (an attempt whose answer or
        state write was lost), or None."""
        intent = await self._get(f"intent:{alert.incident_id}")
        channel = await self._channel_id()
        if channel is None:
            return None  # the channel id is unknown until the first post: cannot look
        hints = [h for h in (_epoch_of(intent), _epoch(alert.opened_at)) if h is not None]
        oldest = min(hints) - LOOKBACK_SECONDS if hints else None
        found = await self._lookup(
            self._find_parent(web, channel, alert.incident_id, oldest), required=intent is not None
        )
        return found or None

    async def _lookup(self, search: Awaitable[_T], *, required: bool) -> _T | None:
        """Run a recovery look-up. A refused one (no history scope, not in the channel)
        gives None; so does a rate-limited one unless ``required`` (an earlier attempt
        may have posted: wait and retry rather than risk a copy)."""
        try:
            return await search
        except _Rejected as exc:
            if exc.code in _REFUSED_CODES:
                return None
            raise
        except _Unavailable as exc:
            if exc.rate_limited and not required:
                return None
            raise

    async def _find_parent(
        self, web: AsyncWebClient, channel: str, incident_id: str, oldest: float | None
    ) -> _Parent | None:
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            response = await self._call(
                "conversations.history",
                web.conversations_history(
                    channel=channel,
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    oldest=f"{oldest:.6f}" if oldest is not None else None,
                    cursor=cursor,
                ),
            )
            for message in _messages(response):
                payload = _payload(message, PARENT_EVENT)
                ts = message.get("ts")
                thread = message.get("thread_ts")
                if (
                    payload is not None
                    and payload.get("incident_id") == incident_id
                    and isinstance(ts, str)
                    and thread in (None, ts)
                ):
                    key = payload.get("idempotency_key")
                    alert_id = payload.get("alert_id")
                    return _Parent(
                        channel,
                        ts,
                        key if isinstance(key, str) else None,
                        alert_id if isinstance(alert_id, str) else None,
                    )
            cursor = _next_cursor(response)
            if cursor is None:
                return None
        return None

    async def _reply_exists(
        self, web: AsyncWebClient, parent: _Parent, key: str, since: float | None
    ) -> bool:
        cursor: str | None = None
        oldest = since - LOOKBACK_SECONDS if since is not None else None
        for _ in range(HISTORY_PAGES):
            response = await self._call(
                "conversations.replies",
                web.conversations_replies(
                    channel=parent.channel,
                    ts=parent.ts,
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    oldest=f"{oldest:.6f}" if oldest is not None else None,
                    cursor=cursor,
                ),
            )
            for message in _messages(response):
                payload = _payload(message, REPLY_EVENT)
                if payload is not None and payload.get("idempotency_key") == key:
                    return True
            cursor = _next_cursor(response)
            if cursor is None:
                return False
        return False

    # ------------------------------------------------------------------ webhook mode

    async def _post_webhook(self, body: dict[str, Any]) -> None:
        assert self._hook is not None
        try:
            response: WebhookResponse = await self._bounded(self._hook, self._hook.send_dict(body))
        except Exception as exc:  # transport errors, timeouts: the class name only
            raise self._transport_error("webhook", exc) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        body_code = response.body.strip() if isinstance(response.body, str) else ""
        code = body_code if _CODE.fullmatch(body_code) else None
        message = f"{self._label()}: webhook: HTTP {status}" + (f" ({code})" if code else "")
        if status == 429:
            retry_after = parse_retry_after(_header(response.headers, "Retry-After"), self._now())
            raise _Unavailable(message, code=code, retry_after=retry_after, rate_limited=True)
        if status == 408 or status >= 500:
            raise _Unavailable(message, code=code)
        raise _Rejected(message, code=code)

    # ------------------------------------------------------------------ plumbing

    def _label(self) -> str:
        return f"slack sink '{self.name}'"

    def _now(self) -> datetime:
        return self._clock.now()

    def _mention_for(self, alert: Alert) -> str | None:
        if alert.kind not in NOTIFY_KINDS:
            return None
        return self._mentions.get(alert.level)

    def _transport_error(self, method: str, exc: BaseException) -> _Unavailable:
        if isinstance(exc, TimeoutError):
            reason = f"timed out ({type(exc).__name__})"
        else:
            reason = f"transport error ({type(exc).__name__})"
        return _Unavailable(f"{self._label()}: {method}: {reason}")

    async def _bounded(
        self, client: AsyncWebClient | AsyncWebhookClient, request: Awaitable[_T]
    ) -> _T:
        """Await one SDK request within the sink's ``timeout`` overall, reading at most
        :data:`MAX_RESPONSE_BYTES` of the answer: unless the client was given a session
        of its own, the request runs on a fresh session whose responses are capped
        (:class:`_CappedResponse`), closed afterwards."""
        async with self._io, asyncio.timeout(self._timeout):
            if client.session is not None:
                return await request
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with aiohttp.ClientSession(
                timeout=timeout,
                response_class=_CappedResponse,
                trust_env=client.trust_env_in_session,
            ) as session:
                client.session = session
                try:
                    return await request
                finally:
                    client.session = None

    async def _call(
        self, method: str, request: Awaitable[AsyncSlackResponse]
    ) -> AsyncSlackResponse:
        """Await one Web API request, translating every failure into a SinkError whose
        message names ``method`` and Slack's error code, never the token."""
        assert self._web is not None
        try:
            return await self._bounded(self._web, request)
        except SlackApiError as exc:
            raise self._api_error(method, exc) from None
        except Exception as exc:  # aiohttp errors, timeouts, odd bodies
            raise self._transport_error(method, exc) from None

    def _api_error(self, method: str, exc: SlackApiError) -> _Unavailable | _Rejected:
        response = exc.response
        status = getattr(response, "status_code", None)
        data = getattr(response, "data", None)
        raw = data.get("error") if isinstance(data, dict) else None
        code = raw if isinstance(raw, str) and _CODE.fullmatch(raw) else None
        message = f"{self._label()}: {method}: {code or 'unexpected answer'} (HTTP {status})"
        if status == 429 or code in _RATE_LIMIT_CODES:
            headers = getattr(response, "headers", None)
            retry_after = parse_retry_after(_header(headers, "Retry-After"), self._now())
            return _Unavailable(message, code=code, retry_after=retry_after, rate_limited=True)
        if not isinstance(status, int) or status >= 500 or status == 408:
            return _Unavailable(message, code=code)
        if code in _TRANSIENT_CODES:
            return _Unavailable(message, code=code)
        return _Rejected(message, code=code)

    async def _get(self, key: str) -> str | None:
        return await asyncio.to_thread(self._state.get, key)

    async def _set(self, key: str, value: str) -> None:
        await asyncio.to_thread(self._state.set, key, value)

    async def _delete(self, key: str) -> None:
        await asyncio.to_thread(self._state.delete, key)


def _epoch(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    if value is None and isinstance(headers, dict):
        lowered = {str(k).lower(): v for k, v in headers.items()}
        value = lowered.get(name.lower())
    return str(value) if value is not None else None


def _messages(response: AsyncSlackResponse) -> list[dict[str, Any]]:
    messages = response.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def _payload(message: dict[str, Any], event_type: str) -> dict[str, Any] | None:
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != event_type:
        return None
    payload = metadata.get("event_payload")
    return payload if isinstance(payload, dict) else None


def _next_cursor(response: AsyncSlackResponse) -> str | None:
    meta = response.get("response_metadata")
    cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
    return cursor if isinstance(cursor, str) and cursor else None


__all__ = [
    "ACK_ACTION",
    "PARENT_EVENT",
    "REPLY_EVENT",
    "SNOOZE_ACTION",
    "TEST_TEXT",
    "Buttons",
    "ClientFactory",
    "SlackSink",
    "default_client",
    "render_blocks",
    "render_thread_reply",
    "severity_style",
    "sparkline",
]
