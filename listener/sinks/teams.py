"""The Microsoft Teams sink: an Adaptive Card per alert, posted to a channel webhook.

The URL is a Teams **Workflows** webhook (the "Post to a channel when a webhook request
is received" workflow) or a legacy Office 365 connector incoming-webhook URL; both take
the same body::

    {"type": "message",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null,
                      "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                                  "type": "AdaptiveCard", "version": "1.4",
                                  "body": [...], "actions": [...]}}]}

:func:`render_card` is pure: a header (the kind's emoji and the title, coloured by
severity: ``Attention`` for crisis/critical, ``Warning`` for high/elevated, ``Accent``
otherwise, ``Good`` once resolved), a FactSet (brand, level, status, rule, incident,
opened, then the facts), *Why* (the spike explanation's drivers, each with a link to an
example post), the top mentions and ``Action.OpenUrl`` buttons (console, mentions,
examples; ``http(s)`` only). :func:`render_digest_card` renders a scheduled digest.

Teams renders a subset of Markdown in a TextBlock: every untrusted text is escaped
(``\\`` before ``\\ * _ [ ] < > ~`` and backticks) so it cannot make a link or
formatting, and ``@here``-style words are defused. Everything is cut and capped, and a
card that would still pass :data:`MAX_PAYLOAD` bytes (Teams refuses about 28 KB) loses
its least important sections.

:class:`TeamsSink` maps the answer onto the sink error tree: 2xx delivered (Workflows
answers 202, connectors 200 with ``1``; a connector's 200 whose text says the delivery
failed is not); 429 :class:`~listener.errors.SinkUnavailable` with ``Retry-After``;
408, 5xx, timeouts and transport errors ``SinkUnavailable``; any other status
:class:`~listener.errors.SinkRejected` with Teams' reason. A webhook has no idempotency
key, so ``done:<key>`` markers in ``context.state`` keep a retried alert from being
posted twice (:mod:`listener.sinks.chat`). The URL is a secret: no error carries it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC
from typing import Any, Final
from urllib.parse import quote

import httpx

from listener.config.schema import TeamsSinkConfig
from listener.errors import SinkRejected, SinkUnavailable
from listener.model import Alert, Digest, MentionRef
from listener.sinks.base import SinkContext
from listener.sinks.chat import ChatWebhook, json_bytes, markdown_escaper, markdown_link
from listener.sinks.http import raise_for_status
from listener.sinks.text import (
    KIND_EMOJI,
    clean_line,
    cut,
    driver_label,
    driver_text,
    explanation_heading,
    fact_value,
    incident_line,
    incidents_line,
    level_line,
    listed_incidents,
    mention_line,
    severity_of,
    share_line,
    status_line,
    story_line,
    volume_line,
    web_url,
)
from listener.sinks.webhook import make_test_alert

CARD_CONTENT_TYPE: Final = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA: Final = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION: Final = "1.4"

MAX_PAYLOAD: Final = 24_000
"""Bytes of JSON a card may take (Teams refuses a message of about 28 KB)."""
MAX_TITLE: Final = 200
MAX_TEXT: Final = 1000
"""Characters of one untrusted text (a summary, a note) before escaping."""
EXCERPT_CHARS: Final = 200
MAX_FACTS: Final = 12
MAX_DRIVERS: Final = 6
MAX_MENTIONS: Final = 5
MAX_ACTIONS: Final = 6
"""Teams shows at most six buttons."""
MAX_DIGEST_BRANDS: Final = 20
MAX_DIGEST_STORIES: Final = 5

COLOURS: Final = {"critical": "Attention", "high": "Warning", "other": "Accent"}
RESOLVED_COLOUR: Final = "Good"
DRILL_NOTE: Final = "🧪 **DRILL**: this is a test alert, no action needed"
CUT_NOTE: Final = "Some details were left out to fit Teams' message size."

_escape = markdown_escaper("\\*_[]<>`~")
_FAILED_DELIVERY = "webhook message delivery failed"


# --------------------------------------------------------------------------- text


def esc(value: object, limit: int = MAX_TEXT) -> str:
    """Untrusted text as one escaped Markdown line: cleaned (no line breaks or control
    characters), cut to ``limit`` characters, ``\\`` before every character Teams could
    read as formatting or a link, and mass mentions defused."""
    return _escape(value, limit)


def link(url: str | None, label: str) -> str:
    """``[label](url)`` for an ``http(s)`` URL, else ``label``
    (:func:`~listener.sinks.chat.markdown_link`)."""
    return markdown_link(url, label)


def _block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _subtle(text: str) -> dict[str, Any]:
    return _block(text, isSubtle=True, size="Small", spacing="Small")


def _heading(text: str) -> dict[str, Any]:
    return _block(text, weight="Bolder", spacing="Medium")


def _item(text: str) -> dict[str, Any]:
    return _block(text, spacing="None")


def _action(title: str, url: str) -> dict[str, Any]:
    return {"type": "Action.OpenUrl", "title": cut(clean_line(title), 40), "url": url}


# --------------------------------------------------------------------------- the card

Section = list[dict[str, Any]]


def _facts(alert: Alert) -> dict[str, Any]:
    rows = [
        ("Brand", esc(alert.brand, 200)),
        ("Level", esc(level_line(alert), 200)),
        ("Status", esc(status_line(alert), 300)),
        ("Rule", esc(alert.rule, 200)),
        ("Incident", esc(alert.incident_id, 200)),
    ]
    if alert.opened_at is not None:
        rows.append(("Opened", f"{alert.opened_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"))
    rows.append(("At", f"{alert.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"))
    shown = alert.facts[:MAX_FACTS]
    rows += [(esc(f.name, 100), esc(fact_value(f), 200)) for f in shown]
    if len(alert.facts) > len(shown):
        rows.append(("More", f"{len(alert.facts) - len(shown)} more facts"))
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in rows]}


def _why(alert: Alert) -> Section:
    e = alert.explanation
    if e is None or not e.drivers:
        return []
    items = [_heading(f"Why: {esc(explanation_heading(e), 400)}")]
    for d in e.drivers[:MAX_DRIVERS]:
        example = d.example.url if d.example is not None else None
        example_link = link(example, "example")
        tail = f" · {example_link}" if example_link != "example" else ""
        items.append(_item(f"• {esc(driver_text(d), 300)}{tail}"))
    return items


def _mention(index: int, ref: MentionRef) -> dict[str, Any]:
    text = f"{index}. {esc(mention_line(ref, EXCERPT_CHARS), EXCERPT_CHARS + 200)}"
    opened = link(ref.url, "open")
    return _item(text + (f" · {opened}" if opened != "open" else ""))


def _mentions(alert: Alert) -> Section:
    if not alert.top_mentions:
        return []
    shown = alert.top_mentions[:MAX_MENTIONS]
    items = [_heading("Top mentions")]
    items += [_mention(i, m) for i, m in enumerate(shown, 1)]
    if len(alert.top_mentions) > len(shown):
        items.append(_item(f"…and {len(alert.top_mentions) - len(shown)} more"))
    return items


def _extras(alert: Alert) -> Section:
    items: Section = []
    if alert.categories:
        names = " · ".join(f"{esc(n, 60)} ({c:,})" for n, c in alert.categories[:10])
        items.append(_block(f"**Categories:** {names}", spacing="Small"))
    if alert.ack is not None:
        text = f"👀 **{esc(alert.ack.by, 100)}** acknowledged"
        if alert.ack.note:
            text += f": “{esc(alert.ack.note, 500)}”"
        items.append(_block(text, spacing="Small"))
    if alert.route:
        items.append(_subtle("Route: " + " → ".join(esc(r, 60) for r in alert.route[:10])))
    return items


def _actions(alert: Alert, console_url: str | None) -> list[dict[str, Any]]:
    """Buttons: the incident in the console, then the top mentions and the drivers'
    examples (``http(s)`` only, each URL once, at most :data:`MAX_ACTIONS`)."""
    candidates: list[tuple[str, str | None]] = []
    if console_url:
        candidates.append(
            (
                "Open in console",
                f"{console_url.rstrip('/')}/incidents/{quote(alert.incident_id, safe='')}",
            )
        )
    candidates += [(f"Mention {i}", m.url) for i, m in enumerate(alert.top_mentions, 1)]
    if alert.explanation is not None:
        candidates += [
            (f"Example: {driver_label(d)}", d.example.url if d.example else None)
            for d in alert.explanation.drivers
        ]
    actions: list[dict[str, Any]] = []
    seen: set[str] = set()
    for title, url in candidates:
        safe = web_url(url)
        if safe is None or safe in seen:
            continue
        seen.add(safe)
        actions.append(_action(title, safe))
        if len(actions) == MAX_ACTIONS:
            break
    return actions


def _message(body: Section, actions: list[dict[str, Any]]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "actions": actions,
        "msteams": {"width": "Full"},
    }
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def payload_size(message: dict[str, Any]) -> int:
    """Bytes of the JSON Teams receives for ``message``."""
    return len(json_bytes(message))


def _fitted(
    head: Section, sections: Sequence[Section], tail: Section, actions: list[dict[str, Any]]
) -> dict[str, Any]:
    """The message with ``head``, as many of ``sections`` (in order) as fit in
    :data:`MAX_PAYLOAD` and ``tail``; a note says when some were left out."""
    kept = list(sections)
    while True:
        body = head + [e for s in kept for e in s] + tail
        if len(kept) < len(sections):
            body.append(_subtle(CUT_NOTE))
        message = _message(body, actions)
        if payload_size(message) <= MAX_PAYLOAD or not kept:
            return message
        kept.pop()


def render_card(alert: Alert, console_url: str | None = None) -> dict[str, Any]:
    """The Teams message (an Adaptive Card 1.4 attachment) for ``alert``: a fresh dict;
    pure. See the module docstring for what it shows; ``console_url`` adds an Open in
    console button. Within :data:`MAX_PAYLOAD` bytes."""
    resolved = alert.kind == "resolved"
    colour = RESOLVED_COLOUR if resolved else COLOURS[severity_of(alert.level)]
    head: Section = [
        _block(
            f"{KIND_EMOJI[alert.kind]} {esc(alert.title, MAX_TITLE)}",
            size="Large",
            weight="Bolder",
            color=colour,
        )
    ]
    if alert.drill:
        head.append(_block(DRILL_NOTE, color="Warning", spacing="Small"))
    if resolved:
        head.append(_block(f"✅ **All clear.** {esc(status_line(alert), 200)}.", color="Good"))
    if alert.summary.strip():
        head.append(_block(esc(alert.summary)))
    head.append(_facts(alert))
    ids = f"Incident {esc(alert.incident_id, 200)} · Alert {esc(alert.id, 200)}"
    sections = [_why(alert), _mentions(alert), _extras(alert)]
    return _fitted(head, sections, [_subtle(ids)], _actions(alert, console_url))


def _brand_section(digest: Digest, index: int) -> Section:
    b = digest.brands[index]
    items = [
        _heading(esc(b.brand, 200)),
        _item(f"• {esc(volume_line(b, digest.every), 300)}"),
        _item(f"• {esc(share_line(b), 300)}"),
        _item(f"• {esc(incidents_line(b), 300)}"),
    ]
    items += [
        _item(f"   ◦ {esc(incident_line(i, digest.timezone), 300)}") for i in listed_incidents(b)
    ][:10]
    for n, story in enumerate(b.stories[:MAX_DIGEST_STORIES], 1):
        opened = link(story.lead.url, "open")
        tail = f" · {opened}" if opened != "open" else ""
        items.append(_item(f"{n}. {esc(story_line(story), 400)}{tail}"))
    return items


def render_digest_card(digest: Digest, console_url: str | None = None) -> dict[str, Any]:
    """A digest as a Teams message (pure): the title and span, then per brand the volume,
    negative share and incidents lines, the incidents and the top stories with links; an
    Open in console button with ``console_url``. Brands that do not fit (more than
    :data:`MAX_DIGEST_BRANDS`, or past :data:`MAX_PAYLOAD`) are left out with a note."""
    head: Section = [
        _block(esc(digest.title, MAX_TITLE), size="Large", weight="Bolder", color="Accent"),
        _subtle(esc(digest.span, 200)),
    ]
    shown = digest.brands[:MAX_DIGEST_BRANDS]
    sections = [_brand_section(digest, i) for i in range(len(shown))]
    tail: Section = []
    hidden = len(digest.brands) - len(shown)
    if hidden > 0:
        tail.append(_subtle(f"…and {hidden} more brands (see the console or email digest)"))
    safe = web_url(console_url)
    actions = [_action("Open the console", safe)] if safe else []
    return _fitted(head, sections, tail, actions)


# --------------------------------------------------------------------------- the sink


class TeamsSink:
    """Posts :func:`render_card` messages to a Teams webhook; see the module docstring.
    ``context.state`` keeps the done markers; ``transport`` replaces the network layer
    (tests). Call :meth:`aclose` when done."""

    def __init__(
        self,
        name: str,
        config: TeamsSinkConfig,
        *,
        context: SinkContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._console_url = config.console_url
        self._hook = ChatWebhook(
            f"teams sink '{name}'",
            config.url.get_secret_value(),
            config.timeout.total_seconds(),
            context if context is not None else SinkContext(),
            transport=transport,
        )

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """Post the card for ``alert`` unless this key was posted already."""

        async def post() -> str:
            await self._post(render_card(alert, self._console_url), "")
            return ""

        await self._hook.once(idempotency_key, post)

    async def send_digest(self, digest: Digest, idempotency_key: str) -> None:
        """Post :func:`render_digest_card` unless this key was posted already."""

        async def post() -> str:
            await self._post(render_digest_card(digest, self._console_url), "digest: ")
            return ""

        await self._hook.once(idempotency_key, post)

    async def send_test(self) -> None:
        """Post the card of :func:`~listener.sinks.webhook.make_test_alert` (a drill that
        says it is a test: ``listener check --deep``)."""
        alert = make_test_alert(self.name, self._hook.clock.now())
        await self._post(render_card(alert), "test: ")

    async def healthcheck(self) -> None:
        """Send ``OPTIONS`` to the webhook (no message): any answer below 500 proves it
        reachable. :meth:`send_test` proves that it posts."""
        await self._hook.probe()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._hook.aclose()

    async def _post(self, message: dict[str, Any], what: str) -> None:
        response = await self._hook.post(message, what)
        prefix = f"{self._hook.label}: {what}"
        raise_for_status(response, prefix, lambda: self._hook.reason(_reason(response)))
        text = response.text.strip()
        if text.lower().startswith(_FAILED_DELIVERY):
            # A legacy connector answers 200 with this text when Teams refused the post.
            reason = self._hook.reason(text)
            if re.search(r"\b(429|5\d\d)\b", text):
                raise SinkUnavailable(f"{prefix}HTTP {response.status_code}{reason}")
            raise SinkRejected(f"{prefix}HTTP {response.status_code}{reason}")


def _reason(response: httpx.Response) -> str:
    """Teams' explanation: a Workflows ``{"error": {"code", "message"}}`` or the text."""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            parts = [str(error.get(k) or "") for k in ("code", "message")]
            return ": ".join(p for p in parts if p)
    return json.dumps(data)[:200]


__all__ = [
    "MAX_PAYLOAD",
    "TeamsSink",
    "esc",
    "link",
    "payload_size",
    "render_card",
    "render_digest_card",
]
