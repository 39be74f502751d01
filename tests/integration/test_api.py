"""The write API over real HTTP: strict bodies, names checked against the running config,
standard status lines; a refused request stores nothing."""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from listener.api import RestApi
from listener.app import Daemon
from listener.clock import ManualClock
from listener.config.load import load_config_text
from listener.errors import StoreError
from listener.httpapi import MAX_BODY
from listener.metrics import Metrics
from listener.pipeline import SourceHealth
from listener.processor import Processor
from listener.settings import Settings
from listener.store import Store
from tests.support.incident_state import T0, angry

TOKEN = "tok-api"

CONFIG = """
brands:
  - name: Acme
    handles: ["@acme"]
  - name: Globex
sources:
  news:
    type: rss
    urls: ["http://127.0.0.1:9/feed.xml"]
    health: {level: degraded}
rules:
  - name: neg
    levels:
      watch:
        when: {type: volume, metric: negative, window: 15m, above: 5}
      crisis:
        when: {type: volume, metric: negative, window: 15m, above: 20}
  - name: globex-only
    brands: [Globex]
    levels:
      page:
        when: {type: volume, metric: negative, window: 15m, above: 50}
sinks:
  ops: {type: console}
routes:
  default: [ops]
"""


@dataclass
class Api:
    """A daemon's HTTP API on a real port, with one open incident in its store."""

    port: int
    incident: str

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        raw: bytes | None = None,
    ) -> tuple[int, str, Mapping[str, str], Any]:
        """One request with http.client: status, reason phrase, headers, parsed JSON."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            return (
                response.status,
                response.reason,
                # header names as HTTP has them: case-insensitive (uvicorn sends lower case)
                CaseInsensitiveDict(response.getheaders()),
                json.loads(payload) if payload else None,
            )
        finally:
            conn.close()

    async def acall(
        self, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> tuple[int, str, Mapping[str, str], Any]:
        return await asyncio.to_thread(self.call, method, path, body, **kwargs)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A state file with one open incident (Acme at watch), built once; its id."""
    path = tmp_path_factory.mktemp("api") / "state.db"
    store = Store.open(path)
    processor = Processor(load_config_text(CONFIG, "rules.yaml", {}), store, Metrics())
    processor.ingest("news", [angry(i, T0) for i in range(8)], T0)
    processor.evaluate(T0 + timedelta(minutes=1))
    (incident,) = store.incident_log.recent(status="open")
    store.close()
    return path, incident.id


class Idle:
    """A pipeline with no sources and no processor: an ack evaluates nothing."""

    health: dict[str, SourceHealth] = {}  # noqa: RUF012 - read only

    def stopping(self) -> bool:
        return False

    def processing_alive(self) -> bool:
        return True

    async def evaluate(self) -> None:
        return None


async def start(tmp_path: Path, template: tuple[Path, str], token: str = TOKEN) -> Daemon:
    """A daemon with CONFIG and a copy of the template state, serving only its API."""
    shutil.copy(template[0], tmp_path / "state.db")
    daemon = Daemon(
        Settings.from_env({"LISTENER_API_TOKEN": token}),
        clock=ManualClock(T0 + timedelta(minutes=2)),
    )
    daemon.store = Store.open(tmp_path / "state.db")
    daemon.config = load_config_text(CONFIG, "rules.yaml", {})
    RestApi(daemon.settings, daemon.store, Idle(), daemon.clock, lambda: daemon.config).mount(
        daemon.api
    )
    await daemon.api.start("127.0.0.1", 0)
    return daemon


async def stop(daemon: Daemon) -> None:
    await daemon.api.stop()
    assert daemon.store is not None
    daemon.store.close()


@pytest.fixture
async def api(tmp_path: Path, template: tuple[Path, str]) -> AsyncIterator[Api]:
    """The API of a daemon with CONFIG loaded and the token set."""
    daemon = await start(tmp_path, template)
    assert daemon.api.address is not None
    yield Api(daemon.api.address[1], template[1])
    await stop(daemon)


GOOD_SILENCE = {"for": "2h", "by": "ana", "comment": "statement published"}


def silence(**changes: Any) -> dict[str, Any]:
    return {**GOOD_SILENCE, **changes}


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"by": {"$ne": 1}}, "by", "must be a string, not an object"),
        ({"by": 5}, "by", "must be a string, not a number"),
        ({"by": "x" * 60_000}, "by", "at most 200 characters"),
        ({"by": "   "}, "by", "empty or blank"),
        ({"by": "ana\nbob"}, "by", "control characters"),
        ({}, "by", "required"),
        ({"by": "ana", "note": ["x"]}, "note", "must be a string, not an array"),
        ({"by": "ana", "note": "x" * 2001}, "note", "at most 2000 characters"),
        ({"by": "ana", "nte": "typo"}, "nte", "unknown field (known: by, note)"),
    ],
)
async def test_ack_refuses_wrong_types_lengths_and_fields(
    api: Api, body: dict[str, Any], field: str, says: str
) -> None:
    """A wrong acknowledgement is a 400 naming the field and what is wrong; the incident
    stays unacknowledged."""
    status, reason, _, error = await api.acall("POST", f"/incidents/{api.incident}/ack", body)
    assert (status, reason) == (400, "Bad Request")
    assert error["field"] == field
    assert error["error"].startswith(f"{field}: ")
    assert says in error["error"]
    assert len(error["error"]) < 500  # the input is not echoed back
    _, _, _, detail = await api.acall("GET", f"/incidents/{api.incident}")
    assert detail["acknowledged_by"] is None


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"not json", "must be JSON"),
        (b'["by", "ana"]', "must be a JSON object"),
        (b'{"by": NaN}', "must be JSON"),
        (b"\xff\xfe", "UTF-8"),
        (b"[" * (MAX_BODY // 2), "nests too deeply"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_400(api: Api, raw: bytes, says: str) -> None:
    """Non-JSON, non-object or absurdly nested bodies are a 400 about the body, not a 500."""
    status, reason, _, error = await api.acall("POST", f"/incidents/{api.incident}/ack", raw=raw)
    assert (status, reason, error["field"]) == (400, "Bad Request", "body")
    assert says in error["error"]


async def test_a_body_over_the_limit_is_413_and_nothing_is_stored(api: Api) -> None:
    """A body over 64 KiB (a 999 KB ``by``) is refused from its Content-Length."""
    status, reason, _, error = await api.acall("POST", "/silences", silence(by="x" * 999_000))
    assert (status, reason) == (413, HTTPStatus(413).phrase)
    assert str(MAX_BODY) in error["error"]
    path = f"/incidents/{api.incident}/ack"
    assert (await api.acall("POST", path, {"by": "x" * 999_000}))[0] == 413
    assert (await api.acall("GET", "/silences"))[3] == []
    assert (await api.acall("GET", f"/incidents/{api.incident}"))[3]["acknowledged_by"] is None


async def test_ack_accepts_a_good_body_once(api: Api) -> None:
    """A valid acknowledgement is stored (trimmed); a second is 409 Conflict on the wire."""
    path = f"/incidents/{api.incident}/ack"
    assert (await api.acall("POST", path, {"by": "  ana ", "note": "on it\nchecking"}))[:2] == (
        200,
        "OK",
    )
    _, _, _, detail = await api.acall("GET", f"/incidents/{api.incident}")
    assert detail["acknowledged_by"] == "ana"
    status, reason, _, error = await api.acall("POST", path, {"by": "bob"})
    assert (status, reason) == (409, "Conflict")
    assert "already acknowledged by ana" in error["error"]


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (silence(brand=5), "brand", "must be a string, not a number"),
        (silence(comment=["x"]), "comment", "must be a string, not an array"),
        (silence(comment=" "), "comment", "empty or blank"),
        (silence(comment="x" * 2001), "comment", "at most 2000 characters"),
        (silence(by={"$ne": 1}), "by", "must be a string"),
        (silence(by="x" * 201), "by", "at most 200 characters"),
        (silence(rule=None, until="tomorrow"), "until", "unknown field"),
        ({"by": "ana", "comment": "c"}, "for", "required"),
        (silence(**{"for": "1e300"}), "for", "duration"),
        (silence(**{"for": 1e300}), "for", ""),
        (silence(**{"for": 10**40}), "for", ""),
        (silence(**{"for": "9" * 40}), "for", ""),
        (silence(**{"for": "3000000d"}), "for", ""),
        (silence(**{"for": "31d"}), "for", "longer than the maximum 30d"),
        (silence(**{"for": "forever"}), "for", "duration"),
        (silence(**{"for": "0s"}), "for", "longer than zero"),
        (silence(**{"for": -60}), "for", "duration"),
        (silence(**{"for": True}), "for", "must be a duration"),
        (silence(**{"for": ["2h"]}), "for", "must be a duration"),
        (silence(brand="Acme Corp"), "brand", "unknown brand 'Acme Corp' (known: Acme, Globex"),
        (silence(rule="negative"), "rule", "unknown rule 'negative' (known: globex-only, neg"),
        (silence(level="sev1"), "level", "unknown level 'sev1' (known: crisis, degraded, page"),
        (
            silence(rule="neg", level="page"),
            "level",
            "'page' for rule 'neg' (known: crisis, watch)",
        ),
        (
            silence(rule="globex-only", brand="Acme"),
            "brand",
            "'Acme' for rule 'globex-only' (known: Globex)",
        ),
        (silence(rule="source-health", brand="Acme"), "brand", "unknown source 'Acme'"),
        (silence(rule="source-health", level="page"), "level", "(known: degraded, watch)"),
    ],
)
async def test_silence_refuses_bad_bodies_and_names_that_match_nothing(
    api: Api, body: dict[str, Any], field: str, says: str
) -> None:
    """A silence of the wrong shape, or for a brand, rule or level the running config does
    not have, is a 400 naming the field (and the known names); nothing is stored. (Huge
    durations only name the field: parse_duration may refuse them with its own cap.)"""
    status, reason, _, error = await api.acall("POST", "/silences", body)
    assert (status, reason) == (400, "Bad Request")
    assert error["field"] == field
    assert error["error"].startswith(f"{field}: ")
    assert says in error["error"]
    assert (await api.acall("GET", "/silences"))[3] == []


@pytest.mark.parametrize(
    "body",
    [
        silence(brand="Acme"),
        silence(brand="Acme", rule="neg", level="crisis", **{"for": 5400}),
        silence(rule="globex-only", brand="Globex", level="page"),
        silence(rule="source-health", brand="news", level="degraded", **{"for": "30d"}),
        silence(brand="news"),  # without a rule: the source's health incidents
        silence(level="watch", comment="maintenance\nback at 6", brand=None),
    ],
)
async def test_silence_accepts_good_bodies_with_201_created(api: Api, body: dict[str, Any]) -> None:
    """A valid silence is stored and answered ``201 Created`` with its Location."""
    status, reason, headers, created = await api.acall("POST", "/silences", body)
    assert (status, reason) == (201, "Created")
    assert headers["Location"] == f"/silences/{created['id']}"
    assert {k: created[k] for k in ("brand", "rule", "level", "created_by")} == {
        "brand": body.get("brand"),
        "rule": body.get("rule"),
        "level": body.get("level"),
        "created_by": "ana",
    }
    listed = (await api.acall("GET", "/silences"))[3]
    assert [s["id"] for s in listed] == [created["id"]]


async def test_write_endpoints_answer_401_and_403_with_their_phrases(
    api: Api, tmp_path: Path, template: tuple[Path, str]
) -> None:
    """A wrong token is ``401 Unauthorized`` (with WWW-Authenticate); no token configured
    is ``403 Forbidden``; the authorisation is checked before the body."""
    status, reason, headers, _ = await api.acall("POST", "/silences", {"brand": 5}, token="wrong")
    assert (status, reason, headers["WWW-Authenticate"]) == (401, "Unauthorized", "Bearer")
    (tmp_path / "bare").mkdir()
    daemon = await start(tmp_path / "bare", template, token="")
    try:
        assert daemon.api.address is not None
        bare = Api(daemon.api.address[1], api.incident)
        for path in ("/silences", f"/incidents/{api.incident}/ack"):
            assert (await bare.acall("POST", path, GOOD_SILENCE))[:2] == (403, "Forbidden")
    finally:
        await stop(daemon)


async def test_incident_listing_refuses_an_unknown_status(api: Api) -> None:
    """``?status=`` is ``open`` or ``resolved``; anything else is a 400, not an empty list."""
    assert (await api.acall("GET", "/incidents?status=open"))[3][0]["id"] == api.incident
    status, _, _, error = await api.acall("GET", "/incidents?status=opne")
    assert (status, error["field"]) == (400, "status")
    assert "open, resolved" in error["error"]
    assert (await api.acall("GET", "/incidents/nope"))[:2] == (404, "Not Found")


class Unreachable:
    """Distributed mode's evaluators with their broker away: nothing can be told."""

    def __init__(self) -> None:
        self.told = 0

    def _fail(self, *_: Any) -> None:
        from listener.errors import BusError

        self.told += 1
        raise BusError("publishing to 127.0.0.1:9: broker transport failure")

    acknowledged = silenced = expired = _fail


async def test_a_state_or_bus_that_cannot_be_reached_answers_503_and_changes_nothing(
    tmp_path: Path, template: tuple[Path, str]
) -> None:
    """The incident routes as a delivery worker serves them: a database that cannot be
    opened answers 503 with Retry-After (and is tried again at the next request); an ack
    or a silence the evaluators cannot be told of is not written either."""
    from listener.api import IncidentApi
    from listener.httpapi import HttpApi

    clock = ManualClock(T0 + timedelta(minutes=2))
    config = load_config_text(CONFIG, "rules.yaml", {})
    opened: list[Store] = []

    def store() -> Store:
        if not opened:  # the first try: the database is away
            opened.append(Store.open(tmp_path / "state.db"))
            raise StoreError("the shared state at postgresql://db/listener: connection refused")
        return opened[0]

    shutil.copy(template[0], tmp_path / "state.db")
    evaluators = Unreachable()
    server = HttpApi(Metrics().registry)
    IncidentApi(TOKEN, store, clock, lambda: config, evaluators=evaluators).mount(server)
    await server.start("127.0.0.1", 0)
    try:
        assert server.address is not None
        api = Api(server.address[1], template[1])
        status, _, headers, body = await api.acall("GET", "/incidents")
        assert (status, headers.get("Retry-After")) == (503, "5")
        assert "connection refused" in body["error"]
        status, _, _, listed = await api.acall("GET", "/incidents")
        assert status == 200
        assert [i["id"] for i in listed] == [api.incident]
        status, _, headers, body = await api.acall(
            "POST", f"/incidents/{api.incident}/ack", {"by": "ana"}
        )
        assert (status, headers.get("Retry-After")) == (503, "5")
        assert "broker transport failure" in body["error"]
        status, _, _, _ = await api.acall("POST", "/silences", silence(brand="Acme"))
        assert status == 503
        assert evaluators.told == 2
        assert opened[0].ack_log.get([api.incident]) == {}
        assert opened[0].silence_log.select() == []
    finally:
        await server.stop()
        for s in opened:
            s.close()


async def test_an_incident_says_why_it_spiked(api: Api) -> None:
    """``GET /incidents/ID`` carries the explanation of its opening (the remote
    ``incidents show`` prints it). This brand had no mention the day before, so nothing
    can be said to have risen: the drivers are what its complaints are about, each with
    its count and an example post."""
    status, _, _, detail = await api.acall("GET", f"/incidents/{api.incident}")
    assert status == 200
    explanation = detail["explanation"]
    assert (explanation["negative"], explanation["mentions"], explanation["baseline"]) == (
        True,
        8,
        0,
    )
    drivers = explanation["drivers"]
    assert drivers
    assert {d["rose"] for d in drivers} == {False}
    assert drivers[0]["now"] == 8
    assert drivers[0]["example"]["url"].startswith("https://")
