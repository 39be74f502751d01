"""A loopback fake of Slack: the Web API methods the Slack sink uses, and incoming webhooks.

``FakeSlack`` binds ``127.0.0.1`` on an ephemeral port and serves from a daemon thread:

    with FakeSlack() as slack:
        config = {"type": "slack", "token": slack.token, "channel": slack.channel_id,
                  "api_url": slack.api_url}
        slack.rate_limit(retry_after="7")          # the next call gets 429 + Retry-After
        slack.fail(500, method="chat.update")      # the next chat.update gets HTTP 500
        slack.fail(error="channel_not_found")      # 200 {"ok": false, "error": ...}
        slack.stall(seconds=5)                     # the next call hangs, then is dropped
        slack.drop_after("chat.postMessage")       # done, but the answer never comes
        ...
        slack.messages()       # top-level messages of the channel, oldest first
        slack.replies(ts)      # the replies in the thread under ``ts``, oldest first
        slack.webhook_posts    # JSON bodies POSTed to /webhook/..., in order

Web API (``POST``/``GET`` ``/api/<method>``, JSON, form or query parameters, ``Authorization:
Bearer <token>``; a wrong or missing token gets ``invalid_auth`` / ``not_authed``):

- ``auth.test``;
- ``chat.postMessage``: channel by id, ``name`` or ``#name`` (answers with the id),
  assigns a ``ts``, keeps ``metadata``, ``thread_ts`` (must be a top-level message) and
  ``reply_broadcast``; checks Block Kit limits (50 blocks, 150-character headers,
  3000-character section texts, 10 fields of at most 2000) and answers ``invalid_blocks``;
- ``chat.update`` (channel id only, like Slack): replaces text, blocks, attachments and,
  when given, metadata; ``message_not_found`` for an unknown ts;
- ``conversations.history``: top-level messages and broadcast replies, newest first,
  ``oldest``/``latest`` (exclusive), ``limit`` and ``cursor`` paging, ``metadata`` only
  with ``include_all_metadata``;
- ``conversations.replies``: the parent then its replies, oldest first, same options.

Incoming webhooks: ``POST /webhook/<anything>`` with a JSON body that has ``text``,
``blocks`` or ``attachments`` is answered ``200 ok``; otherwise ``400 no_text``.

``ts`` values come from ``clock`` (a :class:`~listener.clock.Clock`, by default fixed at
2026-03-02 09:00 UTC) plus a counter, so they are unique, increasing and independent of
the wall clock. Scripted faults apply in order to the next matching request (any method
when ``method`` is None; ``"webhook"`` names webhook posts).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from listener.clock import Clock, ManualClock
from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

MAX_STALL = 30.0
"""No stall lasts longer than this many seconds, whatever a test asks for."""

TOKEN = "xoxb-fake-0000-secret-token"
CHANNEL_ID = "C0ALERTS01"
CHANNEL_NAME = "alerts"


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour for the next request to ``method`` (None: any).

    ``status``/``error``/``headers``: answer with that HTTP status and Slack error
    instead; ``stall`` > 0: answer nothing for that long, then drop the connection;
    ``drop``: carry the request out, then drop the connection without an answer."""

    method: str | None = None
    status: int = 200
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it (``status`` None: no answer was sent)."""

    method: str
    params: dict[str, Any]
    authorization: str | None
    status: int | None


class _Server(LoopbackHTTPServer):
    owner: FakeSlack


class _Drop(Exception):
    """Close the connection without answering."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _handle(self) -> None:
        self.close_connection = True
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        params: dict[str, Any] = dict(parse_qsl(parts.query))
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        body: Any = None
        if raw and ctype == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if isinstance(body, dict):
                params.update(body)
        elif raw:
            params.update(parse_qsl(raw.decode("utf-8", "replace")))
        if parts.path.startswith("/respond/"):
            method = "respond"
        elif parts.path.startswith("/webhook/"):
            method = "webhook"
        elif parts.path.startswith("/api/"):
            method = parts.path.removeprefix("/api/")
        else:
            self._answer(404, {"ok": False, "error": "unknown_path"}, {})
            return
        auth = self.headers.get("Authorization")
        fault = owner._next_fault(method)
        try:
            if fault is not None and fault.stall > 0:
                owner._record(Call(method, params, auth, None))
                owner._stopping.wait(min(fault.stall, MAX_STALL))
                return
            if fault is not None and not fault.drop:
                payload: Any = {"ok": False, "error": fault.error or "internal_error"}
                if method == "webhook":
                    payload = fault.error or "internal_error"
                owner._record(Call(method, params, auth, fault.status))
                self._answer(fault.status, payload, fault.headers)
                return
            status, payload = owner._dispatch(method, params, auth)
            if fault is not None and fault.drop:
                owner._record(Call(method, params, auth, None))
                return
            owner._record(Call(method, params, auth, status))
            self._answer(status, payload, {})
        except OSError:
            pass  # the client gave up (its timeout): nothing to report

    def _answer(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if isinstance(payload, str):
            data = payload.encode()
            ctype = "text/html"
        else:
            data = json.dumps(payload).encode()
            ctype = "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _as_json(value: Any) -> Any:
    """Form-encoded requests carry blocks, attachments and metadata as JSON strings."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeSlack(LoopbackServer):
    """A loopback fake Slack; see the module docstring. Thread-safe."""

    handler_class = _Handler
    server_class = _Server

    def __init__(
        self,
        *,
        token: str = TOKEN,
        channels: dict[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.token = token
        self.channels = dict(channels or {CHANNEL_ID: CHANNEL_NAME})
        """Channel id → name."""
        self.channel_id = next(iter(self.channels))
        self.clock = clock or ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._calls: list[Call] = []
        self._messages: dict[str, list[dict[str, Any]]] = {cid: [] for cid in self.channels}
        self._webhook_posts: list[Any] = []
        self._responses: list[Any] = []
        self._counter = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.base_url

    @property
    def api_url(self) -> str:
        """The Web API base URL (``url + "/api/"``)."""
        return self.url + "/api/"

    def webhook_url(self, path: str = "T000/B000/s3cretHookPart") -> str:
        """An incoming-webhook URL on this fake."""
        return f"{self.url}/webhook/{path.lstrip('/')}"

    # ------------------------------------------------------------------ script

    def script(self, *faults: Fault) -> None:
        """Apply ``faults`` to the next matching requests, in order."""
        with self._lock:
            self._faults.extend(faults)

    def fail(
        self,
        status: int = 200,
        *,
        error: str | None = None,
        method: str | None = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``method``) with ``status`` and Slack
        ``error`` (default ``internal_error``)."""
        self.script(*(Fault(method, status, error, dict(headers or {})) for _ in range(times)))

    def rate_limit(
        self, *, retry_after: str | None = "7", method: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests with ``429`` and ``Retry-After``."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.fail(429, error="ratelimited", method=method, times=times, headers=headers)

    def stall(self, *, seconds: float = 5.0, method: str | None = None, times: int = 1) -> None:
        """Leave the next ``times`` requests unanswered for ``seconds``, then drop them."""
        self.script(*(Fault(method, stall=seconds) for _ in range(times)))

    def drop_after(self, method: str | None = None, *, times: int = 1) -> None:
        """Carry out the next ``times`` requests, then drop the connection unanswered
        (Slack accepted the post; the client never heard)."""
        self.script(*(Fault(method, drop=True) for _ in range(times)))

    def _next_fault(self, method: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.method is None or fault.method == method:
                    del self._faults[index]
                    return fault
        return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    # ------------------------------------------------------------------ records

    @property
    def calls(self) -> list[Call]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._calls)

    def methods(self) -> list[str]:
        """The method of every request so far (``webhook`` for webhook posts)."""
        return [c.method for c in self.calls]

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Top-level messages of ``channel`` (id or name; default the first), oldest first:
        no thread replies, no broadcast copies."""
        cid = self._resolve(channel) if channel is not None else self.channel_id
        with self._lock:
            return [
                json.loads(json.dumps(m))
                for m in self._messages.get(cid or "", [])
                if m.get("thread_ts") in (None, m["ts"])
            ]

    def replies(self, ts: str, channel: str | None = None) -> list[dict[str, Any]]:
        """The replies in the thread under ``ts`` (not the parent), oldest first."""
        cid = self._resolve(channel) if channel is not None else self.channel_id
        with self._lock:
            return [
                json.loads(json.dumps(m))
                for m in self._messages.get(cid or "", [])
                if m.get("thread_ts") == ts and m["ts"] != ts
            ]

    @property
    def webhook_posts(self) -> list[Any]:
        """JSON bodies accepted on ``/webhook/...``, in order."""
        with self._lock:
            return list(self._webhook_posts)

    @property
    def responses(self) -> list[Any]:
        """What the app posted to the ``response_url`` of its clicks, in order."""
        with self._lock:
            return list(self._responses)

    def click(
        self,
        endpoint: str,
        message: dict[str, Any],
        action_id: str,
        *,
        secret: str,
        user: str = "dana",
        at: datetime | None = None,
        signature: str | None = None,
    ) -> int:
        """Click the button ``action_id`` of ``message`` (as posted) as ``user``, as Slack
        does: a signed ``block_actions`` payload POSTed to the app's Request URL
        (``endpoint``) at ``at`` (default: this fake's clock), with a ``response_url``
        on this fake. The status the app answered."""
        import hashlib
        import hmac
        import urllib.error
        import urllib.request
        from urllib.parse import urlencode

        buttons = [
            e
            for b in message.get("blocks", [])
            if b.get("type") == "actions"
            for e in b.get("elements", [])
        ]
        button = next((b for b in buttons if b.get("action_id") == action_id), None)
        if button is None:
            raise AssertionError(f"no button {action_id!r} in the message")
        payload = {
            "type": "block_actions",
            "user": {"id": "U0" + user.upper()[:8], "username": user, "name": user},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "listener_actions",
                    "value": button.get("value"),
                }
            ],
            "response_url": f"{self.url}/respond/{next(self._counter)}",
            "container": {"type": "message", "message_ts": message.get("ts", "")},
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        stamp = str(int((at or self.clock.now()).timestamp()))
        mac = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
        request = urllib.request.Request(
            endpoint,
            data=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature or "v0=" + mac.hexdigest(),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def delete_message(self, ts: str, channel: str | None = None) -> None:
        """Remove a message (someone deleted it in Slack)."""
        cid = self._resolve(channel) if channel is not None else self.channel_id
        with self._lock:
            self._messages[cid or ""] = [
                m for m in self._messages.get(cid or "", []) if m["ts"] != ts
            ]

    # ------------------------------------------------------------------ the API

    def _resolve(self, channel: Any) -> str | None:
        name = str(channel or "")
        if name in self.channels:
            return name
        bare = name.removeprefix("#")
        for cid, cname in self.channels.items():
            if cname == bare:
                return cid
        return None

    def _new_ts(self) -> str:
        seconds = int(self.clock.now().timestamp())
        return f"{seconds}.{next(self._counter):06d}"

    def _dispatch(self, method: str, params: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        if method == "respond":
            with self._lock:
                self._responses.append(params)
            return 200, "ok"
        if method == "webhook":
            if not any(params.get(k) for k in ("text", "blocks", "attachments")):
                return 400, "no_text"
            with self._lock:
                self._webhook_posts.append(params)
            return 200, "ok"
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
        }.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}
        if auth != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}
        with self._lock:
            return 200, handler(params)

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.invalid/",
            "team": "Fake",
            "user": "listener",
            "team_id": "T0FAKE0001",
            "user_id": "U0BOT00001",
            "bot_id": "B0BOT00001",
        }

    @staticmethod
    def _blocks_problem(blocks: Any) -> str | None:
        if blocks is None:
            return None
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "too many blocks"
        for block in blocks:
            if not isinstance(block, dict):
                return "not a block"
            text = block.get("text")
            if isinstance(text, dict):
                limit = 150 if block.get("type") == "header" else 3000
                if len(str(text.get("text", ""))) > limit:
                    return "text too long"
            fields = block.get("fields")
            if fields is not None and (
                len(fields) > 10 or any(len(str(f.get("text", ""))) > 2000 for f in fields)
            ):
                return "bad fields"
            elements = block.get("elements")
            if block.get("type") == "context" and (not elements or len(elements) > 10):
                return "bad context"
        return None

    def _message_problem(self, params: dict[str, Any]) -> str | None:
        blocks = _as_json(params.get("blocks"))
        attachments = _as_json(params.get("attachments")) or []
        if not (params.get("text") or blocks or attachments):
            return "no_text"
        if len(str(params.get("text") or "")) > 40000:
            return "msg_too_long"
        total = len(blocks or [])
        for attachment in attachments:
            if self._blocks_problem(attachment.get("blocks")):
                return "invalid_attachments"
            total += len(attachment.get("blocks") or [])
        if self._blocks_problem(blocks) or total > 50:
            return "invalid_blocks"
        metadata = _as_json(params.get("metadata"))
        if metadata is not None and not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict)
        ):
            return "invalid_metadata_format"
        return None

    def _find(self, cid: str, ts: Any) -> dict[str, Any] | None:
        return next((m for m in self._messages[cid] if m["ts"] == ts), None)

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = self._resolve(params.get("channel"))
        if cid is None:
            return {"ok": False, "error": "channel_not_found"}
        problem = self._message_problem(params)
        if problem is not None:
            return {"ok": False, "error": problem}
        message: dict[str, Any] = {
            "type": "message",
            "ts": self._new_ts(),
            "user": "U0BOT00001",
            "bot_id": "B0BOT00001",
            "text": params.get("text") or "",
        }
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key) is not None:
                message[key] = _as_json(params[key])
        thread_ts = params.get("thread_ts")
        if thread_ts:
            parent = self._find(cid, thread_ts)
            if parent is None or parent.get("thread_ts") not in (None, parent["ts"]):
                return {"ok": False, "error": "thread_not_found"}
            parent["thread_ts"] = parent["ts"]
            parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
            message["thread_ts"] = thread_ts
            if _truthy(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        self._messages[cid].append(message)
        shown = {k: v for k, v in message.items() if k != "metadata"}
        return {"ok": True, "channel": cid, "ts": message["ts"], "message": shown}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = params.get("channel")
        if cid not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        message = self._find(str(cid), params.get("ts"))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        problem = self._message_problem(params)
        if problem is not None:
            return {"ok": False, "error": problem}
        message["text"] = params.get("text") or ""
        for key in ("blocks", "attachments"):
            message.pop(key, None)
            if params.get(key) is not None:
                message[key] = _as_json(params[key])
        if params.get("metadata") is not None:
            message["metadata"] = _as_json(params["metadata"])
        message["edited"] = {"user": "U0BOT00001", "ts": self._new_ts()}
        return {"ok": True, "channel": cid, "ts": message["ts"], "text": message["text"]}

    @staticmethod
    def _page(messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        oldest = float(params.get("oldest") or 0)
        latest = float(params["latest"]) if params.get("latest") else None
        chosen = [
            m
            for m in messages
            if float(m["ts"]) > oldest and (latest is None or float(m["ts"]) < latest)
        ]
        start = int(str(params.get("cursor") or "0").removeprefix("offset:") or 0)
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        page = chosen[start : start + limit]
        meta = _truthy(params.get("include_all_metadata"))
        shown = [
            {k: v for k, v in m.items() if k != "metadata" or meta}
            for m in json.loads(json.dumps(page))
        ]
        more = start + limit < len(chosen)
        return {
            "ok": True,
            "messages": shown,
            "has_more": more,
            "response_metadata": {"next_cursor": f"offset:{start + limit}" if more else ""},
        }

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = params.get("channel")
        if cid not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        visible = [
            m
            for m in self._messages[str(cid)]
            if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
        ]
        return self._page(list(reversed(visible)), params)

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = params.get("channel")
        if cid not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        ts = params.get("ts")
        parent = self._find(str(cid), ts)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        thread = [parent] + [
            m for m in self._messages[str(cid)] if m.get("thread_ts") == ts and m["ts"] != ts
        ]
        return self._page(thread, params)


__all__ = ["CHANNEL_ID", "CHANNEL_NAME", "TOKEN", "Call", "FakeSlack", "Fault"]
