"""A loopback fake of a Microsoft Teams Workflows webhook ("Post to a channel when a
webhook request is received") that answers as the service does.

``FakeTeams`` is a :class:`~tests.support.receiver.WebhookReceiver` (it records every
request, scripts answers, waits) serving
``/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke?api-version=1&sig={SIG}``::

    with FakeTeams() as teams:
        teams.throttle(retry_after="30")        # the next POST gets 429 + Retry-After
        teams.reject("Bad payload received")    # the one after it 400 with that text
        url = teams.webhook_url                 # configure the sink with it
        ...
        [card] = teams.cards                    # the Adaptive Cards Teams accepted

A POST with a wrong ``sig`` answers ``401`` with the Workflows error body
(``{"error": {"code": "DirectApiAuthorizationRequired", "message": ...}}``); a body over
28 KB ``413``; a body that is not a message with one Adaptive Card attachment (type
``message``; ``contentType`` ``application/vnd.microsoft.card.adaptive``; content of type
``AdaptiveCard`` with a ``body`` list; only ``TextBlock``, ``FactSet`` and ``Container``
elements and ``Action.OpenUrl`` actions with an ``http(s)`` URL) ``400`` with
``{"error": {"code": "InvalidRequestContent", ...}}``; otherwise ``202 Accepted`` with
no body. With ``legacy=True`` it answers like an Office 365 connector instead: ``200``
with the text ``1``. Scripted answers come first.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.receiver import Answer, WebhookReceiver

WORKFLOW_ID = "0123456789abcdef0123456789abcdef"
SIG = "SECRETsig_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
"""The URL's signature (a secret); ``SECRET`` in it makes a leak easy to grep."""
MAX_BYTES = 28 * 1024
CARD = "application/vnd.microsoft.card.adaptive"
ELEMENTS = ("TextBlock", "FactSet", "Container")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def problems(body: Any) -> list[str]:
    """Why a Teams workflow would refuse ``body`` (empty: it posts a card)."""
    if not isinstance(body, dict) or body.get("type") != "message":
        return ["the body is not a message ('type': 'message')"]
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return ["a message needs exactly one attachment"]
    attachment = attachments[0]
    if attachment.get("contentType") != CARD:
        return [f"the attachment's contentType is not {CARD}"]
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return ["the attachment's content is not an AdaptiveCard"]
    found = []
    if not isinstance(card.get("body"), list) or not card["body"]:
        found.append("the card has no body")
    for element in card.get("body", []):
        if element.get("type") not in ELEMENTS:
            found.append(f"unknown element type {element.get('type')!r}")
        if element.get("type") == "TextBlock" and not isinstance(element.get("text"), str):
            found.append("a TextBlock without text")
    for action in card.get("actions", []):
        url = str(action.get("url", ""))
        if action.get("type") != "Action.OpenUrl" or not url.startswith(("http://", "https://")):
            found.append(f"an action that is not an http(s) Action.OpenUrl: {url[:40]!r}")
    return found


class FakeTeams(WebhookReceiver):
    """A loopback Teams workflow webhook; see the module docstring. Thread-safe."""

    def __init__(self, *, legacy: bool = False) -> None:
        super().__init__()
        self.legacy = legacy

    @property
    def webhook_url(self) -> str:
        """The workflow URL to configure (its ``sig`` is the secret)."""
        return (
            f"{self.base_url}/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke"
            f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
        )

    # ------------------------------------------------------------------ script

    def throttle(self, retry_after: str | None = "30") -> None:
        """Answer the next POST ``429`` (with ``Retry-After`` unless None)."""
        self.respond(429, retry_after=retry_after)

    def reject(self, text: str, status: int = 400) -> None:
        """Answer the next POST ``status`` with ``text`` as its body."""
        self.script(Answer(status, {"Content-Type": "text/plain"}, text.encode()))

    # ------------------------------------------------------------------ the API

    def answer(self, method: str, path: str, query: str, body: Any) -> Answer:
        scripted = self.scripted() if method == "POST" else None
        if scripted is not None:
            return scripted
        if method != "POST":
            return Answer.json(405, _error("MethodNotAllowed", "Use POST."))
        if path != f"/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke":
            return Answer.json(404, _error("WorkflowNotFound", "The workflow was not found."))
        if f"sig={SIG}" not in query.split("&"):
            message = "The request must be authenticated only by Shared Access scheme."
            return Answer.json(401, _error("DirectApiAuthorizationRequired", message))
        if len(json.dumps(body, ensure_ascii=False).encode()) > MAX_BYTES:
            return Answer.json(413, _error("RequestEntityTooLarge", "Message is too large."))
        found = problems(body)
        if found:
            return Answer.json(400, _error("InvalidRequestContent", "; ".join(found)))
        if self.legacy:
            return Answer(200, {"Content-Type": "text/plain"}, b"1")
        return Answer(202)

    # ------------------------------------------------------------------ records

    @property
    def cards(self) -> list[dict[str, Any]]:
        """The Adaptive Cards accepted, in order."""
        return [body["attachments"][0]["content"] for body in self.bodies()]
