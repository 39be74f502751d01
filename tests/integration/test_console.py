"""The web console (listener.console) over HTTP on a daemon's API server: sessions for
the API token, CSRF on every form, pages for browsers and JSON for the rest, ack and
silences through the forms, everything from sources escaped. In a real browser:
tests/e2e/test_console_browser.py."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from listener.api import RestApi
from listener.app import Daemon
from listener.clock import ManualClock
from listener.config.load import load_config_text
from listener.console import Console
from listener.roles.sources import shared_health
from listener.settings import Settings
from listener.slack_actions import SlackActions
from listener.store import Store
from tests.integration import test_api
from tests.integration.test_api import CONFIG, TOKEN, Idle
from tests.support.incident_state import T0

template = test_api.template  # a state file with one open incident (Acme), and its id
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@dataclass
class Served:
    base: str
    incident: str
    daemon: Daemon


async def serve(tmp_path: Path, state: tuple[Path, str], token: str, text: str = CONFIG) -> Served:
    """A daemon's HTTP server as the daemon mounts it (API, console, Slack actions) on a
    copy of ``state``, with the rules ``text``."""
    shutil.copy(state[0], tmp_path / "state.db")
    daemon = Daemon(
        Settings.from_env({"LISTENER_API_TOKEN": token}),
        clock=ManualClock(T0 + timedelta(minutes=2)),
    )
    daemon.store = Store.open(tmp_path / "state.db")
    daemon.config = load_config_text(text, "rules.yaml", {})
    rest = RestApi(daemon.settings, daemon.store, Idle(), daemon.clock, lambda: daemon.config)
    rest.mount(daemon.api)
    # sources as distributed mode shows them: the collectors' last checks, shared
    names = list(daemon.config.sources)
    Console(rest, sources=lambda store: shared_health(store, names)).mount(daemon.api)
    SlackActions(rest).mount(daemon.api)
    _, port = await daemon.api.start("127.0.0.1", 0)
    return Served(f"http://127.0.0.1:{port}", state[1], daemon)


@pytest.fixture
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    s = await serve(tmp_path, request.getfixturevalue("template"), TOKEN)
    yield s
    await s.daemon.api.stop()
    assert s.daemon.store is not None
    s.daemon.store.close()


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page[:500]
    return found.group(1)


async def signed_in(base: str, name: str = "ana") -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, headers=HTML)
    form = await client.get("/login")
    answer = await client.post(
        "/login", data={"csrf": csrf(form.text), "name": name, "token": TOKEN, "next": "/"}
    )
    assert answer.status_code == 303
    return client


async def test_a_session_for_the_token_and_a_page_for_browsers_only(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base) as anon:
        away = await anon.get("/", headers=HTML)
        assert (away.status_code, away.headers["location"]) == (303, "/login?next=%2F")
        # the JSON API is unchanged for everything that is not a browser
        api = await anon.get(f"/incidents/{served.incident}")
        assert api.json()["id"] == served.incident
        login = await anon.get("/login", headers=HTML)
        assert login.headers["content-security-policy"].startswith("default-src 'self'")
        wrong = await anon.post(
            "/login",
            data={"csrf": csrf(login.text), "name": "ana", "token": "nope"},
            headers=HTML,
        )
        assert wrong.status_code == 401
        assert "not the API token" in wrong.text
        forged = await anon.post("/login", data={"csrf": "x", "name": "ana", "token": TOKEN})
        assert forged.status_code == 401
        assert "expired" in forged.text
        good = await anon.post(
            "/login",
            data={"csrf": csrf(login.text), "name": "ana", "token": TOKEN, "next": "//evil"},
        )
        assert (good.status_code, good.headers["location"]) == (303, "/")
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback; over TLS it is Secure


async def test_incidents_filters_ack_and_silences_through_the_forms(served: Served) -> None:
    client = await signed_in(served.base)
    try:
        home = await client.get("/")
        assert home.status_code == 200
        assert f'href="/incidents/{served.incident}"' in home.text
        assert "not acknowledged" in home.text
        assert served.incident not in (await client.get("/?brand=Globex")).text
        assert served.incident not in (await client.get("/?status=resolved")).text
        page = await client.get(f"/incidents/{served.incident}")
        assert re.search(r"Acme: .+; watch level for \d+ min; not yet acknowledged\.", page.text)
        # a form without its CSRF token changes nothing
        refused = await client.post(
            "/console/ack", data={"incident": served.incident, "csrf": "forged"}
        )
        assert refused.status_code == 403
        done = await client.post(
            "/console/ack",
            data={
                "incident": served.incident,
                "note": "statement drafted",
                "csrf": csrf(page.text),
            },
        )
        assert done.status_code == 303
        page = await client.get(done.headers["location"])
        assert "acknowledged by ana" in page.text
        assert "statement drafted" in page.text
        again = await client.post(
            "/console/ack", data={"incident": served.incident, "csrf": csrf(page.text)}
        )
        assert "already acknowledged by ana" in again.text
        sources = await client.get("/sources")
        assert "<strong>news</strong> · pending" in sources.text  # no collector checked it yet
        token = csrf(page.text)
        for action, data in (
            ("assign", {"to": "Eve"}),
            ("note", {"text": "<b>statement</b> posted 11:05"}),
        ):
            done = await client.post(
                f"/console/{action}", data={"incident": served.incident, "csrf": token, **data}
            )
            assert done.status_code == 303
        page = await client.get(f"/incidents/{served.incident}")
        assert "assigned it to <strong>Eve</strong>" in page.text
        assert "&lt;b&gt;statement&lt;/b&gt; posted 11:05" in page.text  # escaped
        assert "assigned to Eve" in (await client.get("/")).text
        empty = await client.post(
            "/console/note", data={"incident": served.incident, "csrf": token, "text": " "}
        )
        assert "say what happened" in empty.text

        silences = await client.get("/silences")
        token = csrf(silences.text)
        everything = await client.post(
            "/console/silences", data={"for": "1h", "comment": "calm", "csrf": token}
        )
        assert everything.status_code == 400
        assert "matches every alert" in everything.text
        unknown = await client.post(
            "/console/silences",
            data={"brand": "Umbrella", "for": "1h", "comment": "x", "csrf": token},
        )
        assert "Umbrella" in unknown.text
        assert unknown.status_code == 400
        made = await client.post(
            "/console/silences",
            data={"brand": "Acme", "for": "2h", "comment": "statement out", "csrf": token},
        )
        assert made.status_code == 303
        listed = (await client.get("/silences")).text
        silence_id = re.search(r"(sil-[0-9a-f]+)", listed)
        assert silence_id is not None
        assert "statement out" in listed
        ended = await client.post(
            "/console/silences/expire", data={"silence": silence_id.group(1), "csrf": token}
        )
        assert ended.status_code == 303
        assert "End now" not in (await client.get("/silences")).text
        # the JSON API sees what the console did
        api = (await client.get("/silences", headers={"Accept": "application/json"})).json()
        assert [(s["brand"], s["active"], s["created_by"]) for s in api] == [("Acme", False, "ana")]
    finally:
        await client.aclose()


async def test_what_people_and_sources_write_is_escaped(served: Served) -> None:
    client = await signed_in(served.base, name="<script>alert(1)</script>")
    try:
        home = await client.get("/")
        assert "<script>alert(1)</script>" not in home.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in home.text
        page = await client.get("/incidents/%3Cimg%20src%3Dx%3E")
        assert page.status_code == 404
        assert "<img src=x>" not in page.text
    finally:
        await client.aclose()


async def test_without_a_token_the_console_is_read_only_and_local(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    s = await serve(tmp_path, request.getfixturevalue("template"), "")
    try:
        async with httpx.AsyncClient(base_url=s.base, headers=HTML) as client:
            home = await client.get("/")
            assert home.status_code == 200
            assert s.incident in home.text
            page = await client.get(f"/incidents/{s.incident}")
            assert "/console/ack" not in page.text  # no form
            refused = await client.post("/console/ack", data={"incident": s.incident})
            assert refused.status_code == 403
            assert "read-only" in refused.text
    finally:
        await s.daemon.api.stop()
        assert s.daemon.store is not None
        s.daemon.store.close()
