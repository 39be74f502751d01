"""What the chat-webhook sinks (Microsoft Teams, Discord) share: one httpx client that
POSTs JSON to a secret webhook URL (bounded by :func:`listener.sinks.http.request`), done
markers per idempotency key in the sink's durable state, and the redaction of the URL's
secret parts from anything a receiver echoes back.

A chat webhook has no idempotency key of its own and cannot be read back, so the sink
keeps ``done:<key>`` in ``context.state`` once the service accepted a message (checked
before sending, written after success, like the Slack sink's): a retry or a resend after
a restart with the same key posts nothing. What remains is the gap between the service's
answer and that write (a crash, a timeout after the service accepted): then the message
may be posted twice; a duplicate is better than a lost alert.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

from listener.sinks.base import SinkContext
from listener.sinks.http import options_healthcheck, request, sink_client
from listener.sinks.text import clean_line, cut, defuse_broadcasts, one_line, web_url

REDACTED = "<redacted>"


def _may_be_secret(part: str) -> bool:
    """Long (16+ characters), or 8+ with a digit in it: a token, an id, a signature,
    not a word of the path such as ``webhooks``."""
    return len(part) >= 16 or (len(part) >= 8 and any(ch.isdigit() for ch in part))


def secret_parts(url: str) -> list[str]:
    """The parts of a webhook URL that may be secret, longest first: the URL itself, and
    every path segment and query value that looks like a token or an id (a Discord
    webhook's id and token, a Teams workflow's id and ``sig``, a connector's GUIDs), raw
    and %-decoded. Pure."""
    parts = urlsplit(url)
    found = {url}
    for segment in parts.path.split("/"):
        found.update({segment, unquote(segment)})
    for _, value in parse_qsl(parts.query, keep_blank_values=True):
        found.add(value)
    found.add(parts.query)
    return sorted((p for p in found if _may_be_secret(p)), key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``<redacted>``."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def markdown_escaper(specials: str) -> Callable[[object, int], str]:
    """An escape for one chat service's Markdown: ``escape(value, limit)`` is ``value`` as
    one clean line (:func:`~listener.sinks.text.clean_line`), cut to ``limit``
    characters, with a ``\\`` before each of ``specials`` (so untrusted text cannot make a
    link or formatting) and mass mentions defused. Escaping comes after cutting, so no
    escape is cut in half."""
    pattern = re.compile("([" + re.escape(specials) + "])")

    def escape(value: object, limit: int) -> str:
        return defuse_broadcasts(pattern.sub(r"\\\1", cut(clean_line(value), limit)))

    return escape


def markdown_link(url: str | None, label: str) -> str:
    """``[label](url)`` for an ``http(s)`` URL (``label`` already escaped), else ``label``.
    Parentheses and angle brackets in the URL are %-escaped so it cannot end the link
    early."""
    safe = web_url(url)
    if safe is None:
        return label
    for ch, code in (("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E")):
        safe = safe.replace(ch, code)
    return f"[{label}]({safe})"


def json_bytes(body: dict[str, Any]) -> bytes:
    """The UTF-8 JSON a chat service receives (no NaN: it is not JSON)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")


class ChatWebhook:
    """A secret webhook URL, the client that posts to it and the sink's done markers.

    ``timeout`` bounds each request as a whole; at most
    :data:`~listener.sinks.http.MAX_RESPONSE_BYTES` of an answer are read; redirects are
    not followed (a 3xx is the sink's to judge). ``transport`` replaces the network layer
    (tests). Errors raised here name ``label`` and never the URL."""

    def __init__(
        self,
        label: str,
        url: str,
        timeout: float,
        context: SinkContext,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.label = label
        self.url = url
        self.timeout = timeout
        self._state = context.state
        self.clock = context.clock
        self._secrets = secret_parts(url)
        self._client = sink_client(timeout, transport)

    async def post(
        self, body: dict[str, Any], what: str, url: str | httpx.URL | None = None
    ) -> httpx.Response:
        """POST ``body`` as JSON (to ``url``, by default the webhook's); the answer, whatever
        its status. Raises :class:`~listener.errors.SinkUnavailable` on a timeout or
        transport error."""
        return await self._request("POST", what, url, json_bytes(body))

    async def get(self, what: str, url: str | httpx.URL | None = None) -> httpx.Response:
        """GET the webhook (or ``url``); raises like :meth:`post`."""
        return await self._request("GET", what, url, None)

    async def _request(
        self, method: str, what: str, url: str | httpx.URL | None, content: bytes | None
    ) -> httpx.Response:
        return await request(
            self._client,
            method,
            url if url is not None else self.url,
            label=self.label,
            what=what,
            timeout=self.timeout,
            content=content,
            headers={"Content-Type": "application/json"} if content is not None else None,
        )

    async def probe(self) -> None:
        """``OPTIONS`` to the webhook (no message): any answer below 500 proves it
        reachable; a 5xx, timeout or connection error raises SinkUnavailable."""
        await options_healthcheck(self._client, self.url, self.label, self.timeout)

    def reason(self, text: str, limit: int = 200) -> str:
        """A receiver's explanation, one short line without any secret part of the URL,
        as `` (text)``; empty for no text."""
        line = one_line(redact(text, self._secrets), limit)
        return f" ({line})" if line else ""

    async def once(self, key: str, send: Callable[[], Awaitable[str]]) -> None:
        """Run ``send`` unless ``done:<key>`` is in the state; record it after ``send``
        returned (its result, e.g. the created message's id, is the marker's value)."""
        if await asyncio.to_thread(self._state.get, f"done:{key}") is not None:
            return
        value = await send()
        stamp = str(int(self.clock.now().timestamp()))
        await asyncio.to_thread(self._state.set, f"done:{key}", value or stamp)

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()
