"""A loopback fake of Opsgenie's Alert API v2 that checks requests the way Opsgenie
documents them and keeps alerts by alias.

    with FakeOpsgenie() as og:                   # api_url = og.url, api_key = API_KEY
        og.respond(429, retry_after="30")        # the next request: 429 + Retry-After
        og.respond(503, times=2)
        ...
        assert og.alerts["inc-1"].status == "closed"

Every request needs ``Authorization: GenieKey <API_KEY>`` (else 401 ``{"message": "Could
not authenticate", ...}``). ``POST /v2/alerts`` (create) checks ``message`` (1 to 130
characters), ``alias`` (up to 512), ``description`` (up to 15000), ``priority``
(P1..P5), ``tags`` (up to 20, each up to 50 characters), ``details`` (string values,
keys and values up to 8000 characters together), ``entity`` (512), ``source`` (100),
``note`` (25000) and answers 422 ``{"message": "Request body is not processable. Please
check the errors.", "errors": {...}}`` when one does not hold. ``POST
/v2/alerts/{id}/acknowledge|close?identifierType=alias`` (``user`` up to 100, ``note``) and
``PUT /v2/alerts/{id}/priority?identifierType=alias`` act on the open alert of that alias;
for an alias that has none they are accepted too and do nothing (Opsgenie processes them
later and drops them). Accepted requests answer 202 ``{"result": "Request will be
processed", "took": 0.1, "requestId": ...}``. ``GET /v2/alerts`` lists the alerts (200).

Alerts follow Opsgenie's rules: a create with the alias of an open alert only raises its
``count`` (no new alert, no new notification); a create after the alert was closed opens
a new one. Scripted answers (:meth:`respond`) go before every check (of the requests
they apply to).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.support.json_api import Answer, Call, JsonApiFake, Reply

API_KEY = "0a1b2c3d-SECRET-4e5f-9a8b-7c6d5e4f3a2b"
"""An api key for tests; ``SECRET`` makes leaks easy to grep."""
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
_ACTION_PATH = re.compile(r"^/v2/alerts/(?P<id>[^/]+)/(?P<action>acknowledge|close|priority)$")
LIMITS = {
    "message": 130,
    "alias": 512,
    "description": 15000,
    "entity": 512,
    "source": 100,
    "note": 25000,
    "user": 100,
}


@dataclass
class OgAlert:
    """An Opsgenie alert as the fake keeps it."""

    alias: str
    message: str
    priority: str
    status: str = "open"
    acknowledged: bool = False
    count: int = 1
    acknowledged_by: str | None = None
    notes: list[str] = field(default_factory=list)
    create: dict[str, Any] = field(default_factory=dict)


def _body(message: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, **extra, "took": 0.002, "requestId": str(uuid.uuid4())}


def _accepted() -> Answer:
    return 202, {}, {"result": "Request will be processed", "took": 0.1, "requestId": "r-1"}


def _problems(body: Any, required: tuple[str, ...] = ()) -> dict[str, str]:
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}
    errors = {}
    for key in required:
        if not isinstance(body.get(key), str) or not body[key]:
            errors[key] = f"{key} can not be empty"
    for key, limit in LIMITS.items():
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors[key] = f"{key} must be a string of at most {limit} characters"
    if "priority" in body and body["priority"] not in PRIORITIES:
        errors["priority"] = "priority must be one of P1, P2, P3, P4, P5"
    tags = body.get("tags", [])
    if not isinstance(tags, list) or len(tags) > 20:
        errors["tags"] = "at most 20 tags"
    elif not all(isinstance(t, str) and 0 < len(t) <= 50 for t in tags):
        errors["tags"] = "each tag must be 1 to 50 characters"
    details = body.get("details", {})
    if not isinstance(details, dict) or not all(isinstance(v, str) for v in details.values()):
        errors["details"] = "details must map strings to strings"
    elif sum(len(k) + len(v) for k, v in details.items()) > 8000:
        errors["details"] = "details must be at most 8000 characters"
    return errors


class FakeOpsgenie(JsonApiFake):
    """A loopback Alert API v2; see the module docstring. Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self._alerts: dict[str, list[OgAlert]] = {}
        self.only: str | None = None

    def scripted(self, call: Call) -> bool:
        return self.only is None or call.path.endswith(f"/{self.only}")

    def respond(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: str | None = None,
        body: Any = None,
        only: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (Opsgenie's error body
        unless ``body`` is given; ``Retry-After`` when given); with ``only`` (e.g.
        ``"priority"``), only requests whose path ends with it take scripted answers."""
        self.only = only
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if body is None and status >= 400:
            body = _body({429: "You are making too many requests!"}.get(status, "Error"))
        self.script(*(Reply(status, headers, body) for _ in range(times)))

    def handle(self, call: Call) -> Answer:
        if call.headers.get("authorization") != f"GenieKey {API_KEY}":
            return 401, {}, _body("Could not authenticate")
        if call.path == "/v2/alerts" and call.method == "GET":
            listed = [{"alias": a.alias, "status": a.status} for a in self._open()]
            return 200, {}, {"data": listed, "took": 0.01, "requestId": "r-0"}
        if call.path == "/v2/alerts" and call.method == "POST":
            return self._create(call.json)
        match = _ACTION_PATH.match(call.path)
        if match is None:
            return 404, {}, _body("Not Found")
        action = match["action"]
        if (action == "priority") != (call.method == "PUT") or call.query.get("identifierType") != [
            "alias"
        ]:
            return 404, {}, _body("Not Found")
        errors = _problems(call.json, ("priority",) if action == "priority" else ())
        if errors:
            return 422, {}, _body("Request body is not processable.", errors=errors)
        current = self._current(unquote(match["id"]))
        if current is not None:
            self._apply(current, action, call.json)
        return _accepted()

    def _create(self, body: Any) -> Answer:
        errors = _problems(body, ("message",))
        if errors:
            message = "Request body is not processable. Please check the errors."
            return 422, {}, _body(message, errors=errors)
        alias = body.get("alias") or str(uuid.uuid4())
        current = self._current(alias)
        if current is not None:
            current.count += 1
        else:
            current = OgAlert(alias, body["message"], body.get("priority", "P3"), create=body)
            self._alerts.setdefault(alias, []).append(current)
        if body.get("note"):
            current.notes.append(body["note"])
        return _accepted()

    def _apply(self, alert: OgAlert, action: str, body: dict[str, Any]) -> None:
        if action == "priority":
            alert.priority = body["priority"]
        elif action == "acknowledge":
            alert.acknowledged = True
            alert.acknowledged_by = body.get("user")
        else:
            alert.status = "closed"
        if body.get("note"):
            alert.notes.append(body["note"])

    def _current(self, alias: str) -> OgAlert | None:
        history = self._alerts.get(alias, [])
        return history[-1] if history and history[-1].status == "open" else None

    def _open(self) -> list[OgAlert]:
        return [h[-1] for h in self._alerts.values() if h and h[-1].status == "open"]

    @property
    def alerts(self) -> dict[str, OgAlert]:
        """The latest alert per alias."""
        with self.lock:
            return {alias: h[-1] for alias, h in self._alerts.items() if h}

    def alert_count(self, alias: str) -> int:
        """How many alerts were opened with ``alias`` (pages, in effect)."""
        with self.lock:
            return len(self._alerts.get(alias, []))
