"""The Discord sink: one message with one embed per alert, posted to a channel webhook.

``POST {url}?wait=true`` (``https://discord.com/api/webhooks/{id}/{token}``; other query
parameters such as ``thread_id`` are kept), so Discord answers 200 with the created
message (its id is kept as the done marker's value) instead of 204.

:func:`render_message` is pure: ``content`` (a short fallback line: the kind's emoji and
the title), one embed (title ≤ 256 characters, linked to the incident in the console
when ``console_url`` is set; description ≤ 4096: the drill note, the all-clear, the
summary, *Why* with example links, the top mentions with links, the acknowledgement;
inline fields (≤ 25, name ≤ 256, value ≤ 1024): brand, level, status, rule, opened, the
facts, categories, route; a footer with the incident and alert ids; the alert's
timestamp; a colour by severity; all of it ≤ 6000 characters), and
``allowed_mentions: {"parse": []}`` so no text can ping ``@everyone``, ``@here``, a role
or a user. Untrusted text is escaped (``\\`` before ``\\ * _ ~ ` | > < [ ] ( ) #``) and
mass mentions get a zero-width space; only ``http(s)`` URLs are linked. Lengths are
counted in UTF-16 code units, as Discord counts them. :func:`render_digest_message`
renders a scheduled digest.

:class:`DiscordSink` maps the answer onto the sink error tree: 2xx delivered; 429
:class:`~listener.errors.SinkUnavailable` with ``retry_after`` from Discord's JSON
``retry_after`` (else the ``Retry-After`` header); 408, 5xx, timeouts and transport
errors ``SinkUnavailable``; any other status :class:`~listener.errors.SinkRejected` with
Discord's ``message`` and ``code`` (401 ``Invalid Webhook Token``, 404 ``Unknown
Webhook``, 400 ``Invalid Form Body``). A webhook takes no idempotency key, so
``done:<key>`` markers in ``context.state`` keep a retried alert from being posted twice
(:mod:`listener.sinks.chat`). The URL holds the webhook's token: no error carries it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

import httpx

from listener.config.schema import DiscordSinkConfig
from listener.errors import SinkRejected, SinkUnavailable
from listener.model import Alert, Digest
from listener.sinks.base import SinkContext
from listener.sinks.chat import ChatWebhook, markdown_escaper, markdown_link
from listener.sinks.http import parse_retry_after, server_now
from listener.sinks.text import (
    KIND_EMOJI,
    clean_line,
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

MAX_CONTENT: Final = 2000
MAX_TITLE: Final = 256
MAX_DESCRIPTION: Final = 4096
MAX_FIELDS: Final = 25
MAX_FIELD_NAME: Final = 256
MAX_FIELD_VALUE: Final = 1024
MAX_FOOTER: Final = 2048
MAX_EMBED: Final = 6000
"""Discord's limit on all of an embed's text together (title, description, field names
and values, footer, author)."""
MAX_USERNAME: Final = 80
EXCERPT_CHARS: Final = 200
MAX_DRIVERS: Final = 6
MAX_MENTIONS: Final = 5
MAX_FACTS: Final = 15
MAX_DIGEST_STORIES: Final = 5

COLOURS: Final = {"critical": 0xD0021B, "high": 0xF2711C, "other": 0x439FE0}
RESOLVED_COLOUR: Final = 0x2EB67D
DIGEST_COLOUR: Final = 0x439FE0
DRILL_NOTE: Final = "🧪 **DRILL**: this is a test alert, no action needed"
NO_MENTIONS: Final[dict[str, Any]] = {"parse": []}

_escape = markdown_escaper("\\*_~`|><[]()#")


# --------------------------------------------------------------------------- text


def units(text: str) -> int:
    """The length of ``text`` in UTF-16 code units (how Discord counts characters)."""
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-16 code units, ending in "…" when cut, never
    ending in half an escape."""
    if units(text) <= limit:
        return text
    kept = text[: max(0, limit - 1)]
    while kept and units(kept) > limit - 1:
        kept = kept[:-1]
    kept = kept.rstrip()
    trailing = len(kept) - len(kept.rstrip("\\"))
    if trailing % 2:
        kept = kept[:-1]
    return kept + "…"


def esc(value: object, limit: int = 1000) -> str:
    """Untrusted text as one line of inert Discord Markdown: cleaned, cut to ``limit``
    characters, ``\\`` before every formatting, link, mention and heading character,
    and mass mentions defused."""
    return _escape(value, limit)


def link(url: str | None, label: str) -> str:
    """``[label](url)`` for an ``http(s)`` URL, else ``label``
    (:func:`~listener.sinks.chat.markdown_link`)."""
    return markdown_link(url, label)


def join_lines(lines: Sequence[str], limit: int) -> str:
    """As many whole ``lines`` as fit in ``limit`` code units, then how many were left
    out; a first line longer than ``limit`` is cut."""
    text = ""
    for index, line in enumerate(lines):
        candidate = f"{text}\n{line}" if text else line
        note = f"\n…and {len(lines) - index - 1} more"
        last = index == len(lines) - 1
        if units(candidate) <= limit and (last or units(candidate + note) <= limit):
            text = candidate
            continue
        if not text:
            return fit(line, limit)
        return f"{text}\n…and {len(lines) - index} more"
    return text


def _field(name: str, value: str, *, inline: bool = True) -> dict[str, Any]:
    return {
        "name": fit(name, MAX_FIELD_NAME) or "\u200b",
        "value": fit(value, MAX_FIELD_VALUE) or "\u200b",
        "inline": inline,
    }


def embed_size(embed: dict[str, Any]) -> int:
    """The characters Discord counts against :data:`MAX_EMBED` in ``embed``."""
    size = units(embed.get("title", "")) + units(embed.get("description", ""))
    size += sum(units(f["name"]) + units(f["value"]) for f in embed.get("fields", []))
    size += units(embed.get("footer", {}).get("text", ""))
    return size + units(embed.get("author", {}).get("name", ""))


# --------------------------------------------------------------------------- the message


def _fields(alert: Alert) -> list[dict[str, Any]]:
    fields = [
        _field("Brand", esc(alert.brand, 200)),
        _field("Level", esc(level_line(alert), 200)),
        _field("Status", esc(status_line(alert), 300)),
        _field("Rule", esc(alert.rule, 200)),
    ]
    if alert.opened_at is not None:
        stamp = int(alert.opened_at.timestamp())
        fields.append(_field("Opened", f"<t:{stamp}:f> (<t:{stamp}:R>)"))
    budget = MAX_FIELDS - len(fields) - 2  # room for categories and route
    shown = alert.facts[:MAX_FACTS][:budget]
    fields += [_field(esc(f.name, 200), esc(fact_value(f), 300)) for f in shown]
    if alert.categories:
        names = " · ".join(f"{esc(n, 60)} ({c:,})" for n, c in alert.categories[:10])
        fields.append(_field("Categories", names, inline=False))
    if alert.route:
        fields.append(_field("Route", " → ".join(esc(r, 60) for r in alert.route[:10])))
    return fields[:MAX_FIELDS]


def _description(alert: Alert) -> list[str]:
    lines: list[str] = []
    if alert.drill:
        lines.append(DRILL_NOTE)
    if alert.kind == "resolved":
        lines.append(f"✅ **All clear.** {esc(status_line(alert), 200)}.")
    if alert.summary.strip():
        lines.append(esc(alert.summary, 1500))
    if alert.ack is not None:
        ack = f"👀 **{esc(alert.ack.by, 100)}** acknowledged"
        lines.append(ack + (f": “{esc(alert.ack.note, 500)}”" if alert.ack.note else ""))
    e = alert.explanation
    if e is not None and e.drivers:
        lines.append(f"**Why:** {esc(explanation_heading(e), 400)}")
        for d in e.drivers[:MAX_DRIVERS]:
            example = link(d.example.url if d.example else None, "example")
            tail = f" · {example}" if example != "example" else ""
            lines.append(f"• {esc(driver_text(d), 300)}{tail}")
    if alert.top_mentions:
        lines.append("**Top mentions**")
        for i, m in enumerate(alert.top_mentions[:MAX_MENTIONS], 1):
            opened = link(m.url, "open")
            tail = f" · {opened}" if opened != "open" else ""
            lines.append(f"{i}. {esc(mention_line(m, EXCERPT_CHARS), 400)}{tail}")
        if len(alert.top_mentions) > MAX_MENTIONS:
            lines.append(f"…and {len(alert.top_mentions) - MAX_MENTIONS} more")
    return lines


def _within_total(embed: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    """``embed`` with the description made of as many ``lines`` as the 6000 limit and
    4096 allow (fields are dropped from the end if even that cannot fit)."""
    while True:
        room = MAX_EMBED - embed_size({**embed, "description": ""})
        if room >= 200 or not embed.get("fields"):
            break
        embed["fields"] = embed["fields"][:-1]
    description = join_lines(lines, max(0, min(MAX_DESCRIPTION, room)))
    if description:
        embed["description"] = description
    return embed


def _body(
    content: str, embed: dict[str, Any], username: str | None, avatar_url: str | None
) -> dict[str, Any]:
    """The execute-webhook body: the content line, the embed, no mentions parsed, and the
    name and picture when given."""
    body: dict[str, Any] = {
        "content": fit(content, MAX_CONTENT),
        "embeds": [embed],
        "allowed_mentions": dict(NO_MENTIONS),
    }
    if username:
        body["username"] = fit(clean_line(username), MAX_USERNAME)
    safe = web_url(avatar_url)
    if safe is not None:
        body["avatar_url"] = safe
    return body


def render_message(
    alert: Alert,
    *,
    console_url: str | None = None,
    username: str | None = None,
    avatar_url: str | None = None,
) -> dict[str, Any]:
    """The webhook body for ``alert`` (a fresh dict; pure): see the module docstring.
    ``username`` and ``avatar_url`` override the webhook's own name and picture."""
    resolved = alert.kind == "resolved"
    title = f"{KIND_EMOJI[alert.kind]} {esc(alert.title, MAX_TITLE)}"
    embed: dict[str, Any] = {
        "title": fit(title, MAX_TITLE),
        "color": RESOLVED_COLOUR if resolved else COLOURS[severity_of(alert.level)],
        "timestamp": alert.at.isoformat(),
        "fields": _fields(alert),
        "footer": {
            "text": fit(
                f"listener · incident {clean_line(alert.incident_id)} · alert "
                f"{clean_line(alert.id)}",
                MAX_FOOTER,
            )
        },
    }
    console = web_url(console_url)
    if console is not None:
        embed["url"] = f"{console.rstrip('/')}/incidents/{quote(alert.incident_id, safe='')}"
    embed = _within_total(embed, _description(alert))
    content = f"{KIND_EMOJI[alert.kind]} {esc(alert.title, 300)}"
    if alert.facts:
        content += f" · {esc(alert.facts[0].name, 200)}: {esc(fact_value(alert.facts[0]), 200)}"
    return _body(content, embed, username, avatar_url)


def _brand_value(digest: Digest, index: int, limit: int) -> str:
    b = digest.brands[index]
    lines = [
        f"• {esc(volume_line(b, digest.every), 300)}",
        f"• {esc(share_line(b), 300)}",
        f"• {esc(incidents_line(b), 300)}",
    ]
    lines += [f"  ◦ {esc(incident_line(i, digest.timezone), 300)}" for i in listed_incidents(b)]
    for n, story in enumerate(b.stories[:MAX_DIGEST_STORIES], 1):
        opened = link(story.lead.url, "open")
        tail = f" · {opened}" if opened != "open" else ""
        lines.append(f"{n}. {esc(story_line(story), 300)}{tail}")
    return join_lines(lines, limit)


def render_digest_message(
    digest: Digest,
    *,
    console_url: str | None = None,
    username: str | None = None,
    avatar_url: str | None = None,
) -> dict[str, Any]:
    """A digest as a webhook body (pure): one embed titled with the digest's title
    (linked to the console with ``console_url``), the span as its description, and one
    field per brand (volume, negative share, incidents, the incidents, the top stories
    with links), each cut to share the 6000-character embed fairly; brands beyond 24 or
    past the limit are counted in a closing field."""
    embed: dict[str, Any] = {
        "title": fit(esc(digest.title, MAX_TITLE), MAX_TITLE),
        "description": esc(digest.span, 300),
        "color": DIGEST_COLOUR,
        "timestamp": digest.end.isoformat(),
        "footer": {"text": "listener digest"},
    }
    console = web_url(console_url)
    if console is not None:
        embed["url"] = console
    brands = digest.brands[: MAX_FIELDS - 1]
    reserve = 100  # the closing "more brands" field
    room = MAX_EMBED - embed_size(embed) - reserve
    share = min(MAX_FIELD_VALUE, max(300, room // max(1, len(brands)) - MAX_FIELD_NAME // 4))
    fields: list[dict[str, Any]] = []
    for i, b in enumerate(brands):
        field = _field(esc(b.brand, 200), _brand_value(digest, i, share), inline=False)
        if embed_size({**embed, "fields": [*fields, field]}) > MAX_EMBED - reserve:
            break
        fields.append(field)
    hidden = len(digest.brands) - len(fields)
    if hidden > 0:
        fields.append(_field("More", f"…and {hidden} more brands (see the console)"))
    embed["fields"] = fields
    return _body(esc(digest.title, 300), embed, username, avatar_url)


# --------------------------------------------------------------------------- the sink


class DiscordSink:
    """Posts :func:`render_message` bodies to a Discord webhook; see the module
    docstring. ``context.state`` keeps the done markers; ``transport`` replaces the
    network layer (tests). Call :meth:`aclose` when done."""

    def __init__(
        self,
        name: str,
        config: DiscordSinkConfig,
        *,
        context: SinkContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._console_url = config.console_url
        self._username = config.username
        self._avatar_url = config.avatar_url
        url = config.url.get_secret_value()
        self._post_url = httpx.URL(url).copy_merge_params({"wait": "true"})
        self._hook = ChatWebhook(
            f"discord sink '{name}'",
            url,
            config.timeout.total_seconds(),
            context if context is not None else SinkContext(),
            transport=transport,
        )

    def _options(self) -> dict[str, Any]:
        return {
            "console_url": self._console_url,
            "username": self._username,
            "avatar_url": self._avatar_url,
        }

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """Post the message for ``alert`` unless this key was posted already."""

        async def post() -> str:
            return await self._post(render_message(alert, **self._options()), "")

        await self._hook.once(idempotency_key, post)

    async def send_digest(self, digest: Digest, idempotency_key: str) -> None:
        """Post :func:`render_digest_message` unless this key was posted already."""

        async def post() -> str:
            body = render_digest_message(digest, **self._options())
            return await self._post(body, "digest: ")

        await self._hook.once(idempotency_key, post)

    async def send_test(self) -> None:
        """Post the message of :func:`~listener.sinks.webhook.make_test_alert` (a drill
        that says it is a test: ``listener check --deep``)."""
        alert = make_test_alert(self.name, self._hook.clock.now())
        body = render_message(alert, username=self._username, avatar_url=self._avatar_url)
        await self._post(body, "test: ")

    async def healthcheck(self) -> None:
        """``GET`` the webhook (Discord answers with the webhook object; nothing is
        posted): proves the id and token are valid. 401/404 raise SinkRejected; 429,
        5xx, timeouts and connection errors SinkUnavailable."""
        response = await self._hook.get("health check: ")
        self._check(response, "health check: ")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._hook.aclose()

    async def _post(self, body: dict[str, Any], what: str) -> str:
        """POST ``body``; the created message's id (``""`` when Discord did not say)."""
        response = await self._hook.post(body, what, self._post_url)
        self._check(response, what)
        data = _json(response)
        message_id = data.get("id") if isinstance(data, dict) else None
        return message_id if isinstance(message_id, str) and message_id.isdigit() else ""

    def _check(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        data = _json(response)
        data = data if isinstance(data, dict) else {}
        text = f"{self._hook.label}: {what}HTTP {status}"
        if status == 429:
            scope = "global rate limit" if data.get("global") is True else "rate limited"
            raise SinkUnavailable(f"{text} ({scope})", retry_after=self._retry_after(response))
        if status == 408 or status >= 500:
            raise SinkUnavailable(text)
        parts = [str(data.get("message") or "")]
        if isinstance(data.get("code"), int):
            parts.append(f"code {data['code']}")
        raise SinkRejected(text + self._hook.reason(", ".join(p for p in parts if p)))

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        """Discord's JSON ``retry_after`` (seconds, with a fraction), else its
        ``Retry-After`` header."""
        data = _json(response)
        value = data.get("retry_after") if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            value = None
        if value is not None and math.isfinite(value) and value >= 0:
            return float(value)
        return parse_retry_after(response.headers.get("Retry-After"), server_now(response))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


__all__ = [
    "MAX_EMBED",
    "DiscordSink",
    "embed_size",
    "esc",
    "link",
    "render_digest_message",
    "render_message",
    "units",
]
