"""A loopback fake of a Discord channel webhook that answers as Discord documents it.

``FakeDiscord`` is a :class:`~tests.support.receiver.WebhookReceiver` (it records every
request, scripts answers, waits) serving ``/api/webhooks/{WEBHOOK_ID}/{TOKEN}``::

    with FakeDiscord() as discord:
        discord.rate_limit(retry_after=1.5)     # the next POST gets 429 + Discord's JSON
        discord.invalid_token()                 # the one after it 401 (code 50027)
        url = discord.webhook_url               # configure the sink with it
        ...
        [message] = discord.messages            # the bodies Discord accepted

Execute webhook (``POST``): an unknown webhook id answers ``404 {"message": "Unknown
Webhook", "code": 10015}``, a wrong token ``401 {"message": "Invalid Webhook Token",
"code": 50027}``; a body past Discord's limits (content 2000 characters, 10 embeds, a
title 256, a description 4096, 25 fields of name 256 and value 1024, a footer 2048, 6000
for an embed's text; lengths in UTF-16 code units), with neither content nor embeds, or
with a ``username`` containing "discord" answers ``400 {"code": 50035, "errors": {...},
"message": "Invalid Form Body"}``. A valid one is ``200`` with the created message (id,
channel, content, embeds, ``webhook_id``) when the query says ``wait=true``, else ``204``.
``GET`` on the webhook answers the webhook object (with its token, as Discord does).
Scripted answers come first, for POSTs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from tests.support.receiver import Answer, WebhookReceiver

WEBHOOK_ID = "1234567890123456789"
TOKEN = "dIsCoRdSECRETtoken-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO"
"""The webhook's token; ``SECRET`` in it makes a leak easy to grep."""
CHANNEL_ID = "987654321098765432"

INVALID_TOKEN = {"message": "Invalid Webhook Token", "code": 50027}
UNKNOWN_WEBHOOK = {"message": "Unknown Webhook", "code": 10015}


def _units(text: Any) -> int:
    return len(str(text).encode("utf-16-le")) // 2


def _embed_problems(embed: Any) -> dict[str, str]:
    if not isinstance(embed, dict):
        return {"": "must be an object"}
    problems = {}
    for key, limit in (("title", 256), ("description", 4096)):
        if _units(embed.get(key, "")) > limit:
            problems[key] = f"Must be {limit} or fewer in length."
    fields = embed.get("fields", [])
    if len(fields) > 25:
        problems["fields"] = "Must be 25 or fewer in length."
    for i, field in enumerate(fields):
        name, value = field.get("name", ""), field.get("value", "")
        if not name or _units(name) > 256:
            problems[f"fields.{i}.name"] = "Must be between 1 and 256 in length."
        if not value or _units(value) > 1024:
            problems[f"fields.{i}.value"] = "Must be between 1 and 1024 in length."
    if _units(embed.get("footer", {}).get("text", "")) > 2048:
        problems["footer.text"] = "Must be 2048 or fewer in length."
    total = sum(_units(embed.get(k, "")) for k in ("title", "description"))
    total += sum(_units(f.get("name", "")) + _units(f.get("value", "")) for f in fields)
    total += _units(embed.get("footer", {}).get("text", ""))
    if total > 6000:
        problems["size"] = "Embed size exceeds maximum size of 6000"
    return problems


def problems(body: Any) -> dict[str, str]:
    """What Discord would refuse in an execute-webhook body (empty: valid)."""
    if not isinstance(body, dict):
        return {"": "must be a JSON object"}
    found: dict[str, str] = {}
    if not body.get("content") and not body.get("embeds"):
        found["content"] = "Cannot send an empty message"
    if _units(body.get("content", "")) > 2000:
        found["content"] = "Must be 2000 or fewer in length."
    embeds = body.get("embeds", [])
    if len(embeds) > 10:
        found["embeds"] = "Must be 10 or fewer in length."
    for i, embed in enumerate(embeds):
        found.update({f"embeds.{i}.{k}": v for k, v in _embed_problems(embed).items()})
    username = str(body.get("username", ""))
    if "discord" in username.lower() or _units(username) > 80:
        found["username"] = 'Username cannot contain "discord"'
    return found


def _errors(found: dict[str, str]) -> dict[str, Any]:
    """Discord's nested ``errors`` object for ``found`` (path → message)."""
    tree: dict[str, Any] = {}
    for path, message in found.items():
        node = tree
        for part in [p for p in path.split(".") if p]:
            node = node.setdefault(part, {})
        node["_errors"] = [{"code": "BASE_TYPE_INVALID", "message": message}]
    return tree


class FakeDiscord(WebhookReceiver):
    """A loopback Discord webhook; see the module docstring. Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1_100_000_000_000_000_000)

    @property
    def webhook_url(self) -> str:
        """The webhook URL to configure (with the token in it, like Discord's)."""
        return f"{self.base_url}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"

    # ------------------------------------------------------------------ script

    def rate_limit(self, retry_after: float = 1.5, *, global_: bool = False) -> None:
        """Answer the next POST ``429`` as Discord does: ``Retry-After`` (whole seconds,
        rounded up), the ``X-RateLimit-*`` headers and the JSON body with the exact
        ``retry_after``."""
        headers = {
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{retry_after:g}",
            "X-RateLimit-Scope": "global" if global_ else "user",
        }
        if global_:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": global_,
        }
        self.script(Answer.json(429, body, headers))

    def invalid_token(self) -> None:
        """Answer the next POST ``401 Invalid Webhook Token`` (code 50027)."""
        self.script(Answer.json(401, INVALID_TOKEN))

    # ------------------------------------------------------------------ the API

    def answer(self, method: str, path: str, query: str, body: Any) -> Answer:
        scripted = self.scripted() if method == "POST" else None
        if scripted is not None:
            return scripted
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["api", "webhooks"] or parts[2] != WEBHOOK_ID:
            return Answer.json(404, UNKNOWN_WEBHOOK)
        if parts[3] != TOKEN:
            return Answer.json(401, INVALID_TOKEN)
        if method == "GET":
            return Answer.json(200, self._webhook())
        if method != "POST":
            return Answer.json(405, {"message": "405: Method Not Allowed", "code": 0})
        found = problems(body)
        if found:
            return Answer.json(
                400, {"code": 50035, "errors": _errors(found), "message": "Invalid Form Body"}
            )
        if "wait=true" not in query.lower().split("&"):
            return Answer(204)
        return Answer.json(200, self._message(body))

    def _webhook(self) -> dict[str, Any]:
        return {
            "type": 1,
            "id": WEBHOOK_ID,
            "name": "listener",
            "avatar": None,
            "channel_id": CHANNEL_ID,
            "guild_id": "111111111111111111",
            "application_id": None,
            "token": TOKEN,
            "url": f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{TOKEN}",
        }

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(next(self._ids)),
            "type": 0,
            "channel_id": CHANNEL_ID,
            "content": body.get("content", ""),
            "embeds": body.get("embeds", []),
            "author": {"id": WEBHOOK_ID, "username": body.get("username", "listener"), "bot": True},
            "webhook_id": WEBHOOK_ID,
            "mentions": [],
            "mention_everyone": False,
        }

    # ------------------------------------------------------------------ records

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The bodies Discord accepted (a message was created), in order."""
        return self.bodies()
