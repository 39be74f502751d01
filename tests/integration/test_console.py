"""The web console (listener.console) over HTTP on a daemon's API server: sessions for
the API token, CSRF on every form, pages for browsers and JSON for the rest, ack and
silences through the forms, everything from sources escaped. In a real browser:
tests/e2e/test_console_browser.py."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from listener.api import RestApi
from listener.app import Daemon
from listener.clock import ManualClock
from listener.config.load import load_config_text
from listener.console import CHART_SLOT, Console
from listener.roles.sources import shared_health
from listener.settings import Settings
from listener.slack_actions import SlackActions
from listener.store import Store
from tests.integration import test_api
from tests.integration.test_api import CONFIG, TOKEN, Idle
from tests.support import incident_state
from tests.support.incident_state import HOSTILE_AUTHOR, HOSTILE_URL, T0

template = test_api.template  # a state file with one open incident (Acme), and its id
PNG = b"\x89PNG\r\n\x1a\n"
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


def cells(page: str, title: str) -> list[list[str]]:
    """The rows (each a list of cell texts, tags stripped) of the table after ``title``."""
    found = re.search(rf"<h3>{re.escape(title)}</h3>.*?<tbody>(.*?)</tbody>", page, re.S)
    assert found is not None, f"no table {title!r}"
    rows = re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in rows]  # fmt: skip


async def test_viewers_of_a_chart_share_one_drawing_until_it_changes(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every viewer's page refresh asks for the chart: within one slot, the same data is
    drawn once; a note (which the chart marks) or the next slot draws it again."""
    import listener.console

    drawn: list[object] = []
    draw = listener.console.render_chart

    def counting(data: Any) -> bytes:
        drawn.append(data)
        return draw(data)

    monkeypatch.setattr(listener.console, "render_chart", counting)
    client = await signed_in(served.base)
    src = f"/incidents/{served.incident}/chart.png"
    try:
        first, again = [(await client.get(src)).content for _ in range(2)]
        assert first == again
        assert len(drawn) == 1
        page = await client.get(f"/incidents/{served.incident}")
        note = {"incident": served.incident, "csrf": csrf(page.text), "text": "holding line"}
        assert (await client.post("/console/note", data=note)).status_code == 303
        await client.get(src)
        assert len(drawn) == 2
        clock = served.daemon.clock
        assert isinstance(clock, ManualClock)
        clock.advance(CHART_SLOT)
        await client.get(src)
        await client.get(src)
        assert len(drawn) == 3
    finally:
        await client.aclose()


async def test_the_incident_page_is_the_live_report(served: Served) -> None:
    """Under the sentence and the forms: the report's chart (its PNG behind the page's
    sign-in), the levels, the alerts with the ack and its time, the notes (numbered as
    on the chart), the top stories with their copies, authors, categories, sources."""
    client = await signed_in(served.base)
    try:
        page = await client.get(f"/incidents/{served.incident}")
        token = csrf(page.text)
        await client.post("/console/ack", data={"incident": served.incident, "csrf": token})
        note = {"incident": served.incident, "csrf": token, "text": "statement posted 11:05"}
        assert (await client.post("/console/note", data=note)).status_code == 303
        page = await client.get(f"/incidents/{served.incident}")
        text = page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self';")
        src = f"/incidents/{served.incident}/chart.png"
        img = re.search(
            rf'<img class="chart" src="{re.escape(src)}" width="\d+" height="\d+" '
            r'alt="Mentions of Acme per [^"]+ with the baseline[^"]+"',
            text,
        )
        assert img is not None
        assert text.index('class="sentence"') < text.index("/console/note") < img.start()
        assert "ana at 2026-03-02 09:02 UTC (1m after opening)" in text  # time to ack
        assert "<dt>Spike → first alert</dt>" in text
        levels = cells(text, "Severity levels")
        assert [r[0] for r in levels] == ["watch"]
        alerts = cells(text, "Alerts, acknowledgement and notes")
        assert any(r[2] == "acknowledgement" and r[7] == "time to acknowledge 1m" for r in alerts)
        assert ["note 1", "", "", "ana: statement posted 11:05"] in [r[2:6] for r in alerts]
        assert "<strong>ana</strong>: statement posted 11:05" in text  # and on the timeline
        (why,) = cells(text, "Why it spiked")  # the complaints' story rose
        assert why[0].startswith("story “@acme your service is terrible")
        assert why[1:4] == ["story", "8", "0"]
        (story,) = cells(text, "Top stories")
        assert story[0].startswith("@acme your service is terrible")
        assert story[1:3] == ["1 + 7 copies", "8"]
        assert "outage" in story[7]
        assert ["amplifier (largest reach)", "user7", "news", "1"] in [
            r[:4] for r in cells(text, "Top authors")
        ]
        assert cells(text, "Top categories (negative mentions)") == [["outage", "8"]]
        assert {r[0] for r in cells(text, "Sources")} == {"news", "social"}

        chart = await client.get(src)
        assert chart.status_code == 200
        assert chart.headers["content-type"] == "image/png"
        assert chart.headers["cache-control"] == "no-store"
        assert chart.content.startswith(PNG)
        assert (await client.get(f"/incidents/{served.incident[:12]}/chart.png")).content[:8] == PNG
        assert (await client.get("/incidents/nope/chart.png")).status_code == 404
    finally:
        await client.aclose()
    async with httpx.AsyncClient(base_url=served.base) as anon:
        away = await anon.get(src)  # as the page: a session is needed
        assert (away.status_code, away.headers["location"]) == (
            303,
            f"/login?next={quote(src, safe='')}",
        )
        assert PNG not in away.content


async def test_the_report_on_the_page_keeps_what_sources_wrote_inert(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A post with a <script>, a javascript: link and a hostile author name: escaped in
    the stories and authors tables, and never a link."""
    state = tmp_path_factory.mktemp("hostile") / "state.db"
    incident, _ = incident_state.build_state(state)
    s = await serve(tmp_path, (state, incident), TOKEN, incident_state.CONFIG)
    client = await signed_in(s.base)
    try:
        text = (await client.get(f"/incidents/{incident}")).text
        assert re.findall(r"<script[^>]*>", text) == ['<script src="/console.js" defer>']
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in text
        assert "<img src=x" not in text
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in text
        hrefs = re.findall(r'href="([^"]*)"', text)
        assert not [h for h in hrefs if "javascript" in h.lower() or h == HOSTILE_URL]
        assert "https://news.example.test/59" in hrefs  # the lead of the complaints' story
        stories = cells(text, "Top stories")
        assert stories[0][1] == "1 + 59 copies"
        assert any(r[6] == "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" for r in stories)
        assert HOSTILE_AUTHOR not in text
    finally:
        await client.aclose()
        await s.daemon.api.stop()
        assert s.daemon.store is not None
        s.daemon.store.close()


@pytest.mark.usefixtures("no_matplotlib")
async def test_without_the_report_extra_the_page_keeps_its_tables(served: Served) -> None:
    """No matplotlib: the page says how to get the chart and shows the rest; the PNG
    route says the same."""
    client = await signed_in(served.base)
    try:
        page = await client.get(f"/incidents/{served.incident}")
        assert page.status_code == 200
        assert "No chart here" in page.text
        assert "pip install &#39;listener[report]&#39;" in page.text
        assert '<img class="chart"' not in page.text
        assert cells(page.text, "Top stories")[0][1] == "1 + 7 copies"
        chart = await client.get(f"/incidents/{served.incident}/chart.png")
        assert chart.status_code == 501
        assert "listener[report]" in chart.text
    finally:
        await client.aclose()


def live_regions(page: str) -> dict[str, str]:
    """The regions the page's script swaps (``data-live``), by id, with their markup."""
    return dict(re.findall(r'<div id="([\w-]+)" data-live>(.*?)\n</div>\n', page, re.S))


async def test_live_pages_update_by_a_script_of_the_daemons_not_a_reload(served: Served) -> None:
    """The incident list and an incident's page carry /console.js (from this origin, no
    inline script), their interval and a Refresh link (for no JavaScript), and mark the
    regions it swaps; no region holds a form, so nothing typed is lost; no meta refresh."""
    client = await signed_in(served.base)
    try:
        for path, regions in (
            ("/?brand=Acme", {"live-list"}),
            (f"/incidents/{served.incident}", {"live-head", "live-report"}),
        ):
            page = (await client.get(path)).text
            assert "http-equiv" not in page
            assert re.findall(r"<script[^>]*>", page) == ['<script src="/console.js" defer>']
            assert 'data-refresh="30"' in page
            assert f'<a class="refresh" href="{path.replace("&", "&amp;")}">Refresh</a>' in page
            found = live_regions(page)
            assert set(found) == regions, path
            assert not [r for r in found.values() if "<form" in r or "<input" in r]
        assert served.incident in live_regions((await client.get("/")).text)["live-list"]
        script = await client.get("/console.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "data-live" in script.text
        assert "://" not in script.text  # nothing from elsewhere
        silences = (await client.get("/silences")).text  # a page that is not live
        assert "console.js" not in silences
        assert "data-refresh" not in silences
    finally:
        await client.aclose()


async def test_digests_page_shows_each_schedule_and_the_last_digest(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """/digests: each digest's schedule, brands, next time and what each receiver last
    got; /digests/NAME: the digest of its last fire time, from the state, with what
    sources wrote escaped and the incidents linked."""
    state = tmp_path_factory.mktemp("digest") / "state.db"
    incident, _ = incident_state.build_state(state)
    rules = incident_state.CONFIG + (
        "digests:\n  morning: {every: day, at: '11:00', route: [ops, pager]}\n"
        "  weekly: {every: week, day: tue, route: [ops], brands: [Globex]}\n"
        "  saturday: {every: day, cron: '0 9 * * 6', route: [ops]}\n"
    )
    s = await serve(tmp_path, (state, incident), TOKEN, rules)
    clock = s.daemon.clock
    assert isinstance(clock, ManualClock)
    clock.set(T0 + timedelta(hours=2, minutes=30))
    assert s.daemon.store is not None
    fire = T0 + timedelta(hours=2)
    s.daemon.store.kv.set(
        {"digest/morning/ops": json.dumps({"at": fire.isoformat(), "outcome": "delivered"})}
    )
    client = await signed_in(s.base)
    try:
        listing = (await client.get("/digests")).text
        assert 'href="/digests/morning"' in listing
        assert "every day at 11:00 (UTC)" in listing
        assert "every Tuesday at 09:00 (UTC)" in listing
        assert "Globex, covering the week before; next 2026-03-03 09:00 UTC" in listing
        assert "ops: delivered (2026-03-02 11:00 UTC) · pager: not seen by the daemon yet" in (
            listing
        )
        page = (await client.get("/digests/morning")).text
        assert "<h1>Daily digest · Mon 02 Mar 2026</h1>" in page
        assert "Sun 01 Mar 11:00 – Mon 02 Mar 11:00 (UTC)" in page
        assert "1 incident opened, 1 resolved, 0 still open; median time to acknowledge 5 min" in (
            page
        )
        assert f'href="/incidents/{incident}"' in page
        assert "1 + 59 copies" in page
        assert "<script>alert" not in page
        hrefs = re.findall(r'href="([^"]*)"', page)
        assert not [h for h in hrefs if "javascript" in h.lower()]
        assert (await client.get("/digests/evening")).status_code == 404
        assert "on the cron schedule &#39;0 9 * * 6&#39; (UTC)" in listing
        waiting = (await client.get("/digests/saturday")).text
        assert "None was due in the last period: the first goes at 2026-03-07 09:00 UTC" in (
            waiting
        )
        async with httpx.AsyncClient(base_url=s.base, headers=HTML) as anon:
            away = await anon.get("/digests/morning")
            assert away.status_code == 303
            assert away.headers["location"].startswith("/login")
    finally:
        await client.aclose()
        await s.daemon.api.stop()
        s.daemon.store.close()
