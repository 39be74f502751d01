"""A loopback fake of Telegram's Bot API (``sendMessage``, ``getMe``) that checks messages
the way Telegram does and keeps what was posted.

    with FakeTelegram() as tg:                   # api_url = tg.url, token = TOKEN
        tg.respond(429, retry_after=5)           # the next call: Too Many Requests
        tg.respond(403)                          # then: Forbidden: bot was blocked
        ...
        assert tg.messages[0].text.startswith("🚨 HIGH")   # the text after parsing

``POST|GET /bot<token>/<method>``: a token other than :data:`TOKEN` answers 401
``{"ok": false, "error_code": 401, "description": "Unauthorized"}``; an unknown method
404 ``Not Found``. ``sendMessage`` checks the chat (:attr:`FakeTelegram.chats`, else 400
``Bad Request: chat not found``) and, with ``parse_mode: HTML``, the text as Telegram
parses it: only ``b strong i em u ins s strike del a code pre blockquote tg-spoiler
span`` tags, closed in order, ``a`` with an ``href``, the entities ``&lt; &gt; &amp;
&quot;`` and numeric ones (else 400 ``Bad Request: can't parse entities: ...``), and at
most 4096 UTF-16 code units of text after parsing (else 400 ``Bad Request: message is too
long``). A posted message answers ``{"ok": true, "result": {"message_id": N, ...}}`` and
is kept in :attr:`FakeTelegram.messages` (with its parsed text and links).

Scripted answers (:meth:`respond`) go before those checks, for every method; the
documented error bodies are filled in for 400, 401, 403 and 429 (``parameters.retry_after``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from tests.support.json_api import Answer, Call, JsonApiFake, Reply

TOKEN = "123456789:AAF-SECRETtokenSECRET_0123456789abc"
"""A well-formed bot token for tests; ``SECRET`` makes leaks easy to grep."""
CHAT_ID = -1001234567890
MAX_TEXT = 4096

ALLOWED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}
    | {"blockquote", "tg-spoiler", "span"}
)
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    429: "Too Many Requests: retry after {retry_after}",
}


@dataclass
class Message:
    """A posted message: its request parameters, the text after parsing and its links."""

    message_id: int
    params: dict[str, Any]
    text: str
    links: list[str] = field(default_factory=list)


class EntityError(ValueError):
    """Telegram's "can't parse entities"."""


class _TelegramHtml(HTMLParser):
    """Parses a message the way Telegram's HTML mode does (strictly)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.parts: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        if tag == "a":
            href = dict(attrs).get("href")
            if not href:
                raise EntityError("Can't find end of the href")
            self.links.append(href)
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise EntityError(f'Can\'t find end tag corresponding to start tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def parse_html(text: str) -> tuple[str, list[str]]:
    """The text Telegram shows for ``text`` in HTML mode and its links; raises
    :class:`EntityError` where Telegram would refuse it."""
    for index, ch in enumerate(text):
        if ch == "&" and not _ENTITY.match(text, index):
            raise EntityError(f"Unsupported entity at byte offset {index}")
        if ch == "<" and not re.match(r"</?[a-z-]+[ >]", text[index : index + 40]):
            raise EntityError(f"Unexpected character '<' at byte offset {index}")
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"')
    return "".join(parser.parts), parser.links


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def error(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    """A Bot API error body."""
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


class FakeTelegram(JsonApiFake):
    """A loopback Bot API; see the module docstring. Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self.chats: set[int | str] = {CHAT_ID, "@acme_alerts"}
        self._messages: list[Message] = []

    def respond(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` calls with ``status`` (Telegram's error body for it
        unless ``body`` is given; ``parameters.retry_after`` with a 429)."""
        if body is None and status in DESCRIPTIONS:
            description = DESCRIPTIONS[status].format(retry_after=retry_after)
            extra = {"retry_after": retry_after} if retry_after is not None else {}
            body = error(status, description, **extra)
        self.script(*(Reply(status, dict(headers or {}), body) for _ in range(times)))

    def handle(self, call: Call) -> Answer:
        match = _PATH.match(call.path)
        if match is None:
            return 404, {}, error(404, "Not Found")
        if match["token"] != TOKEN:
            return 401, {}, error(401, "Unauthorized")
        method = match["method"]
        if method == "getMe":
            bot = {"id": 123456789, "is_bot": True, "first_name": "listener", "username": "l_bot"}
            return 200, {}, {"ok": True, "result": bot}
        if method != "sendMessage" or call.method != "POST":
            return 404, {}, error(404, "Not Found")
        return self._send(call.json)

    def _send(self, params: Any) -> Answer:
        if not isinstance(params, dict) or "chat_id" not in params:
            return 400, {}, error(400, "Bad Request: chat_id is empty")
        if params["chat_id"] not in self.chats:
            return 400, {}, error(400, "Bad Request: chat not found")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return 400, {}, error(400, "Bad Request: message text is empty")
        links: list[str] = []
        if params.get("parse_mode") == "HTML":
            try:
                text, links = parse_html(text)
            except EntityError as exc:
                return 400, {}, error(400, f"Bad Request: can't parse entities: {exc}")
        if utf16_len(text) > MAX_TEXT:
            return 400, {}, error(400, "Bad Request: message is too long")
        message = Message(len(self._messages) + 1, params, text, links)
        self._messages.append(message)
        result = {
            "message_id": message.message_id,
            "chat": {"id": CHAT_ID, "type": "supergroup"},
            "date": 1772442000,
            "text": text,
        }
        return 200, {}, {"ok": True, "result": result}

    @property
    def messages(self) -> list[Message]:
        """The messages posted (accepted), in order."""
        with self.lock:
            return list(self._messages)
