"""``POST /slack/actions``: the clicks on an incident message's buttons (Acknowledge,
Snooze 1h), sent by Slack to the app's interactivity Request URL.

Every request is checked as Slack documents it: ``X-Slack-Signature`` must be ``v0=`` and
the HMAC-SHA256, under a slack sink's ``signing_secret``, of ``v0:{timestamp}:{body}``,
with ``X-Slack-Request-Timestamp`` within five minutes of now (a replayed request is
refused). Then:

* Acknowledge acknowledges the incident as the person who clicked (``NAME (Slack)``):
  the daemon announces it to whoever was alerted, and the incident's message and thread
  are updated by the Slack sink as for any acknowledgement;
* Snooze 1h silences the incident's brand and rule for an hour (its alerts are muted,
  with the reason, and the silence is listed and can be ended early).

Slack is answered at once; what happened is posted back to the person who clicked, as a
message only they see (``response_url``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import structlog

from listener import incidents
from listener.api_models import check_silence_scope
from listener.config.schema import SlackSinkConfig
from listener.errors import BusError, RequestError, StoreError
from listener.httpapi import HttpApi, Request, Response
from listener.sinks.slack import ACK_ACTION, SNOOZE_ACTION

if TYPE_CHECKING:
    from listener.api import IncidentApi
    from listener.config.schema import Config

log = structlog.get_logger("listener.slack")

REPLAY_WINDOW = timedelta(minutes=5)
SNOOZE = timedelta(hours=1)


def signing_secrets(config: Config | None) -> list[str]:
    """The signing secrets of the configured slack sinks."""
    if config is None:
        return []
    return [
        sink.signing_secret.get_secret_value()
        for sink in config.sinks.values()
        if isinstance(sink, SlackSinkConfig) and sink.signing_secret is not None
    ]


def valid_signature(secrets: Sequence[str], timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is Slack's v0 signature of the request under one of
    ``secrets``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    for secret in secrets:
        mine = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        if hmac.compare_digest(mine.encode(), signature.encode()):
            return True
    return False


class SlackActions:
    """The interactivity endpoint on ``api``'s store, clock and config."""

    def __init__(
        self, api: IncidentApi, post: Callable[[str, dict[str, Any]], Any] | None = None
    ) -> None:
        self.api = api
        self._post = post or _post_back
        self._tasks: set[asyncio.Task[Any]] = set()

    def mount(self, server: HttpApi) -> None:
        server.route("POST", "/slack/actions", self.actions)

    async def actions(self, request: Request) -> Response:
        secrets = signing_secrets(self.api.config())
        if not secrets:
            return Response.json(
                {"error": "no slack sink has a signing_secret: buttons are off"}, 404
            )
        stamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        now = self.api.clock.now()
        if not stamp.isdigit() or abs(now.timestamp() - int(stamp)) > REPLAY_WINDOW.total_seconds():
            log.warning("slack_action_refused", why="timestamp", client=request.client)
            return Response.json({"error": "stale or missing X-Slack-Request-Timestamp"}, 401)
        if not valid_signature(secrets, stamp, request.body, signature):
            log.warning("slack_action_refused", why="signature", client=request.client)
            return Response.json({"error": "bad X-Slack-Signature"}, 401)
        try:
            payload = json.loads(dict(parse_qsl(request.body.decode())).get("payload", ""))
        except ValueError:
            return Response.json({"error": "no JSON payload"}, 400)
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return Response(200, b"")  # another kind of interaction: nothing of ours
        user = payload.get("user") or {}
        name = str(user.get("name") or user.get("username") or user.get("id") or "someone")
        by = f"{' '.join(name.split())[:80]} (Slack)"
        said = []
        for action in payload.get("actions") or []:
            if not isinstance(action, dict):
                continue
            kind, incident_id = action.get("action_id"), str(action.get("value") or "")
            if kind == ACK_ACTION:
                said.append(await self._ack(incident_id, by))
            elif kind == SNOOZE_ACTION:
                said.append(await self._snooze(incident_id, by))
        answer_to = str(payload.get("response_url") or "")
        if said and urlsplit(answer_to).scheme in ("http", "https"):
            message: dict[str, Any] = {"response_type": "ephemeral", "replace_original": False}
            task = asyncio.create_task(
                self._answer(answer_to, {**message, "text": "\n".join(said)})
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return Response(200, b"")

    async def _ack(self, incident_id: str, by: str) -> str:
        now = self.api.clock.now()
        try:
            done = await self.api.pool.run(
                lambda: incidents.acknowledge(
                    self.api.store, incident_id, by, now, "from Slack", self.api.evaluators
                )
            )
        except RequestError as exc:
            return f"Not acknowledged: {exc}"
        except (StoreError, BusError) as exc:
            return f"Not acknowledged, try again in a minute: {exc}"
        log.info("acknowledged", incident_id=done, by=by, via="slack")
        if self.api.changed is not None:
            self.api.changed()  # announced at once; the message and thread follow
        return f"✅ Acknowledged {done} as {by}: reminders and escalation stop."

    async def _snooze(self, incident_id: str, by: str) -> str:
        now = self.api.clock.now()

        def snooze() -> Any:
            record = incidents.find(self.api.store, incident_id)
            config = self.api.config()
            if config is not None:
                check_silence_scope(config, record.brand, record.rule, None)
            return incidents.add_silence(
                self.api.store,
                now=now,
                duration=SNOOZE,
                by=by,
                comment=f"snoozed from Slack ({record.id})",
                brand=record.brand,
                rule=record.rule,
                evaluators=self.api.evaluators,
            )

        try:
            silence = await self.api.pool.run(snooze)
        except RequestError as exc:
            return f"Not snoozed: {exc}"
        except (StoreError, BusError) as exc:
            return f"Not snoozed, try again in a minute: {exc}"
        log.info("silenced", silence_id=silence.id, by=by, via="slack")
        return (
            f"🔕 Snoozed {silence.rule} for {silence.brand} until "
            f"{silence.ends_at:%H:%M} UTC ({silence.id}); end it early with "
            f"`listener silence expire {silence.id}`."
        )

    async def _answer(self, url: str, message: dict[str, Any]) -> None:
        try:
            await self._post(url, message)
        except Exception as exc:  # the person sees the change anyway, in the thread
            log.warning("slack_answer_failed", error=f"{type(exc).__name__}: {exc}")


async def _post_back(url: str, message: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.post(url, json=message)
        response.raise_for_status()
