"""The Telegram sink: a bot posts each alert to a chat with the Bot API's ``sendMessage``.

:func:`render_message` is pure and builds the message text in Telegram's HTML mode (only
``<b> <i> <a href> <code>`` are used): the title (``[DRILL]`` for drills), level, brand,
rule, status, the summary, the facts, **Why** (the spike explanation's drivers, each with a
link to an example post), the top mentions as links, the acknowledgement and the incident
and alert ids. :func:`render_digest` does the same for a scheduled digest.

Everything from sources is untrusted: ``&``, ``<`` and ``>`` are escaped in every text
(``"`` too inside an ``href``), only http(s) links become links, and an ``@name`` from a
mention (which would notify that user in a group) is defused with a word joiner. Telegram
takes at most 4096 characters of text after entity parsing; the HTML source is kept
within 4096 UTF-16 code units (never less room than the parsed text needs) by dropping
whole lines from the end, so no tag or entity is ever cut.

:class:`TelegramSink` posts ``{"chat_id", "text", "parse_mode": "HTML",
"disable_web_page_preview": true}`` (plus ``message_thread_id`` for a forum topic and
``disable_notification`` for ``silent_levels``) to ``{api_url}/bot{token}/sendMessage``.
Answers: 2xx delivered (unless the body says ``"ok": false``); 429 →
:class:`~listener.errors.SinkUnavailable` after ``parameters.retry_after`` (or the
``Retry-After`` header); 408, 5xx, timeouts and transport errors → ``SinkUnavailable``;
400 (chat not found, a group moved to a supergroup), 401 (a wrong token), 403 (the bot
was blocked or removed) and any other answer → :class:`~listener.errors.SinkRejected`
with Telegram's ``description``.

The bot token is part of every request's URL: errors name the API method, never the URL,
and Telegram's own words are scrubbed of the token should they echo it.

**Idempotency.** The Bot API has no idempotency key, so the sink keeps a done-marker
``done:<idempotency key>`` in its durable state (checked before sending, set after
Telegram accepted): a retry of an alert or digest that was already posted posts nothing.
A crash between Telegram's answer and the marker may still post it twice.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import UTC
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from listener.clock import Clock
from listener.config.schema import TelegramSinkConfig
from listener.errors import SinkRejected, SinkUnavailable
from listener.model import Alert, Digest, Fact, MentionRef
from listener.sinks.base import SinkContext
from listener.sinks.http import (
    parse_retry_after,
    raise_for_status,
    request,
    server_now,
    sink_client,
)
from listener.sinks.text import (
    KIND_EMOJI,
    driver_text,
    excerpt,
    explanation_heading,
    fit_lines,
    incident_line,
    incidents_line,
    listed_incidents,
    one_line,
    share_line,
    story_line,
    volume_line,
)
from listener.sinks.webhook import make_test_alert

MAX_MESSAGE: Final = 4096
"""Telegram's limit on a message's text (after entity parsing); kept on the HTML source."""
MAX_TITLE: Final = 256
MAX_LINE: Final = 400
"""Untrusted texts (a fact, a driver, the summary) are cut to this before escaping."""
EXCERPT_CHARS: Final = 160
MAX_MENTIONS: Final = 5
MAX_DRIVERS: Final = 6
MAX_URL: Final = 2048
DRILL_NOTE: Final = "🧪 <i>DRILL: this is a test alert, no action needed</i>"


_MENTION = re.compile(r"@(?=\w)")
_DESCRIPTION = re.compile(r"[^\x00-\x1f\x7f]{1,300}")


def utf16_len(text: str) -> int:
    """The length Telegram counts: UTF-16 code units (an emoji may take two)."""
    return len(text.encode("utf-16-le")) // 2


def _esc(value: object, limit: int = MAX_LINE) -> str:
    """Untrusted text as one line for Telegram HTML: cleaned, cut to ``limit``, ``&<>``
    escaped, ``@name`` defused (a word joiner after the ``@``)."""
    text = html.escape(excerpt(value, limit), quote=False)
    return _MENTION.sub("@\u2060", text)


def _href(url: str | None) -> str | None:
    """An http(s) URL escaped for an ``href`` attribute, or None for anything else."""
    if not url:
        return None
    clean = url.strip()
    if (
        len(clean) > MAX_URL
        or not clean.isprintable()
        or any(ch.isspace() for ch in clean)
        or urlsplit(clean).scheme.lower() not in ("http", "https")
    ):
        return None
    return html.escape(clean, quote=True)


def _link(url: str | None, label: str) -> str:
    """``<a href>label</a>`` for an http(s) URL (``label`` already escaped), else ``label``."""
    href = _href(url)
    return f'<a href="{href}">{label}</a>' if href else label


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def _fact_line(fact: Fact) -> str:
    line = f"• {_esc(fact.name)}: <b>{_num(fact.value)}</b>"
    extra = []
    if fact.threshold is not None:
        extra.append(f"threshold {_num(fact.threshold)}")
    if fact.baseline is not None:
        extra.append(f"baseline {_num(fact.baseline)}")
    return line + (" (" + ", ".join(extra) + ")" if extra else "")


def _mention_line(index: int, ref: MentionRef) -> str:
    body = _link(ref.url, f"“{_esc(ref.text, EXCERPT_CHARS)}”")
    who = _esc("@" + ref.author.lstrip("@"), 80) if ref.author else "unknown author"
    if ref.followers is not None:
        who += f" ({ref.followers:,} followers)"
    return f"{index}. {body} — {who} · {_esc(ref.source, 40)}"


def _why_lines(alert: Alert) -> list[str]:
    e = alert.explanation
    if e is None:
        return []
    lines = [f"<b>Why:</b> {_esc(explanation_heading(e))}"]
    for d in e.drivers[:MAX_DRIVERS]:
        example = _link(d.example.url, "example") if d.example is not None else ""
        tail = f" · {example}" if example.startswith("<a ") else ""
        lines.append(f"• {_esc(driver_text(d))}{tail}")
    return lines


def _status(alert: Alert) -> str:
    if alert.kind == "resolved":
        return "resolved: all clear"
    if alert.ack is not None:
        return f"acknowledged by <b>{_esc(alert.ack.by, 100)}</b>"
    if alert.kind in ("reminder", "handoff"):
        return "open, <b>unacknowledged</b>"
    return "open"


def render_message(alert: Alert) -> str:
    """The HTML text posted for ``alert`` (pure), at most :data:`MAX_MESSAGE` UTF-16 code
    units: whole lines are dropped from the end (with a note) when it would be longer."""
    level = f"<b>{_esc(alert.level.upper(), 40)}</b>"
    if alert.previous_level is not None and alert.previous_level != alert.level:
        level += f" (was {_esc(alert.previous_level, 40)})"
    lines = [f"{KIND_EMOJI[alert.kind]} <b>{_esc(alert.title, MAX_TITLE)}</b>"]
    if alert.drill:
        lines.append(DRILL_NOTE)
    lines.append(
        f"Level {level} · brand <b>{_esc(alert.brand, 80)}</b> · rule {_esc(alert.rule, 80)}"
    )
    lines.append(f"Status: {_status(alert)}")
    if alert.summary.strip():
        lines += ["", _esc(alert.summary)]
    if alert.facts:
        lines += ["", "<b>The numbers</b>", *(_fact_line(f) for f in alert.facts)]
    why = _why_lines(alert)
    if why:
        lines += ["", *why]
    if alert.top_mentions:
        lines += ["", "<b>Top mentions</b>"]
        lines += [_mention_line(i, m) for i, m in enumerate(alert.top_mentions[:MAX_MENTIONS], 1)]
    if alert.ack is not None:
        ack = f"👀 Acknowledged by <b>{_esc(alert.ack.by, 100)}</b>"
        if alert.ack.note:
            ack += f": “{_esc(alert.ack.note, 500)}”"
        lines += ["", ack]
    if alert.route:
        lines.append("Route: " + " → ".join(_esc(r, 80) for r in alert.route))
    at = alert.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines += [
        "",
        f"Incident <code>{_esc(alert.incident_id, 200)}</code> · "
        f"alert <code>{_esc(alert.id, 200)}</code> · {at}",
    ]
    return fit_lines(lines, MAX_MESSAGE, utf16_len)


def render_digest(digest: Digest) -> str:
    """A digest as HTML text (pure): the title and span, then per brand its volume,
    negative share, incidents and top stories (linked), within :data:`MAX_MESSAGE`."""
    lines = [f"📊 <b>{_esc(digest.title, MAX_TITLE)}</b>", f"<i>{_esc(digest.span)}</i>"]
    for b in digest.brands:
        lines += [
            "",
            f"<b>{_esc(b.brand, 80)}</b>",
            f"• {_esc(volume_line(b, digest.every))}",
            f"• {_esc(share_line(b))}",
            f"• {_esc(incidents_line(b))}",
        ]
        lines += [f"   ◦ {_esc(incident_line(i, digest.timezone))}" for i in listed_incidents(b)]
        lines += [
            f"{n}. {_esc(story_line(s))} {_link(s.lead.url, 'open')}".rstrip()
            for n, s in enumerate(b.stories, 1)
        ]
    return fit_lines(lines, MAX_MESSAGE, utf16_len)


def render_send_message(
    text: str,
    chat_id: int | str,
    *,
    thread_id: int | None = None,
    silent: bool = False,
) -> dict[str, Any]:
    """The ``sendMessage`` parameters for ``text`` (pure)."""
    body: dict[str, Any] = {
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }
    if thread_id is not None:
        body["message_thread_id"] = thread_id
    if silent:
        body["disable_notification"] = True
    return body


class TelegramSink:
    """Posts :func:`render_message` texts with ``sendMessage`` over one shared
    ``httpx.AsyncClient`` (``config.timeout`` for the whole request; at most 1 MiB of an
    answer is read; redirects are not followed). ``context.state`` keeps the
    done-markers; ``transport`` replaces the network layer (tests). Call :meth:`aclose`
    when done."""

    def __init__(
        self,
        name: str,
        config: TelegramSinkConfig,
        *,
        context: SinkContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        context = context if context is not None else SinkContext()
        self._state = context.state
        self._clock: Clock = context.clock
        self._token = config.token.get_secret_value()
        self._base = f"{config.api_url.rstrip('/')}/bot{self._token}/"
        self._chat_id = config.chat_id
        self._thread_id = config.message_thread_id
        self._silent = frozenset(config.silent_levels)
        self._timeout = config.timeout.total_seconds()
        self._client = sink_client(self._timeout, transport)

    def _label(self) -> str:
        return f"telegram sink '{self.name}'"

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """Post one alert, once per ``idempotency_key``; raise a SinkError otherwise."""
        await self._post_once(
            render_message(alert), idempotency_key, silent=alert.level in self._silent
        )

    async def send_digest(self, digest: Digest, idempotency_key: str) -> None:
        """Post one digest (:func:`render_digest`), once per ``idempotency_key``."""
        await self._post_once(render_digest(digest), idempotency_key, silent=False)

    async def send_test(self) -> None:
        """Post :func:`~listener.sinks.webhook.make_test_alert` (a drill that says it is
        a test) as an alert is posted, without a done-marker (``listener check --deep``):
        proves the token, the chat and the HTML end to end."""
        alert = make_test_alert(self.name, self._clock.now())
        await self._call("sendMessage", self._message(render_message(alert), silent=False))

    async def healthcheck(self) -> None:
        """``getMe``: the token is valid and the Bot API reachable (posts nothing)."""
        await self._call("getMe", None)

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    # ------------------------------------------------------------------ internals

    def _message(self, text: str, *, silent: bool) -> dict[str, Any]:
        return render_send_message(text, self._chat_id, thread_id=self._thread_id, silent=silent)

    async def _post_once(self, text: str, key: str, *, silent: bool) -> None:
        done = f"done:{key}"
        if await asyncio.to_thread(self._state.get, done) is not None:
            return
        answer = await self._call("sendMessage", self._message(text, silent=silent))
        result = answer.get("result")
        message_id = result.get("message_id") if isinstance(result, dict) else None
        value = str(message_id) if isinstance(message_id, int) else "sent"
        await asyncio.to_thread(self._state.set, done, value)

    def _description(self, body: Any) -> str:
        """Telegram's ``description`` (one short line, the token scrubbed), or ""."""
        raw = body.get("description") if isinstance(body, dict) else None
        if not isinstance(raw, str):
            return ""
        text = one_line(raw, 300).replace(self._token, "<token>")
        return text if _DESCRIPTION.fullmatch(text) else ""

    async def _call(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """One Bot API call; the parsed answer on success, else a SinkError naming
        ``method`` (never the URL, which holds the token)."""
        prefix = f"{self._label()}: {method}: "
        response = await request(
            self._client,
            "POST" if params is not None else "GET",
            self._base + method,
            label=self._label(),
            what=f"{method}: ",
            timeout=self._timeout,
            content=json.dumps(params, ensure_ascii=False).encode() if params else None,
            headers={"Content-Type": "application/json"} if params else None,
        )
        try:
            body = json.loads(response.content) if response.content else None
        except ValueError:
            body = None
        description = self._description(body)
        reason = f" ({description})" if description else ""
        status = response.status_code
        if status == 429:
            raise SinkUnavailable(
                f"{prefix}HTTP 429{reason}", retry_after=_retry_after(body, response)
            )
        raise_for_status(response, prefix, lambda: reason + _hint(status, body))
        if isinstance(body, dict) and body.get("ok") is False:
            raise SinkRejected(f"{prefix}not ok{reason}")
        return body if isinstance(body, dict) else {}


def _retry_after(body: Any, response: httpx.Response) -> float | None:
    """``parameters.retry_after`` from Telegram's answer, else the ``Retry-After`` header."""
    parameters = body.get("parameters") if isinstance(body, dict) else None
    value = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_retry_after(response.headers.get("Retry-After"), server_now(response))


def _hint(status: int, body: Any) -> str:
    """What to do about a refusal, where Telegram's answer says."""
    parameters = body.get("parameters") if isinstance(body, dict) else None
    moved = parameters.get("migrate_to_chat_id") if isinstance(parameters, dict) else None
    if isinstance(moved, int) and not isinstance(moved, bool):
        return f"; the group is now the supergroup {moved}: set chat_id: {moved}"
    if status == 401:
        return "; the bot token is wrong or was revoked (ask @BotFather)"
    if status == 403:
        return "; add the bot to the chat again (or unblock it) and let it post"
    return ""


__all__ = [
    "MAX_MESSAGE",
    "TelegramSink",
    "render_digest",
    "render_message",
    "render_send_message",
    "utf16_len",
]
