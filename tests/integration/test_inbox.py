"""The mention inbox (listener.inbox): GET /mentions with its filters and paging, the CSV
and JSON Lines exports, the console's /mentions page and ``listener mentions`` (state
file and --url), on stored mentions that include a hostile one."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from listener.cli import main
from listener.config.load import load_config_text
from listener.metrics import Metrics
from listener.model import Author, Mention
from listener.processor import Processor
from listener.store import Store
from tests.integration import test_api, test_console
from tests.integration.test_api import CONFIG, TOKEN
from tests.support.incident_state import T0

template = test_api.template  # a state file with 8 angry mentions of Acme, one incident
HOSTILE = Mention(
    source="news",
    id="evil",
    text="<script>alert(1)</script> Acme is down",
    created_at=T0 + timedelta(seconds=30),
    url="javascript:alert(1)",
    author=Author(handle='=HYPERLINK("http://x")'),
    language="en",
)
WINDOW = ["--since", "2026-03-01T00:00:00Z", "--until", "2026-03-03T00:00:00Z"]


@pytest.fixture
async def served(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[test_console.Served]:
    path, incident = request.getfixturevalue("template")
    store = Store.open(path)  # the module's state, with the hostile mention once
    if not store.mentions.seen([("news", "evil")]):
        config = load_config_text(CONFIG, "rules.yaml", {})
        Processor(config, store, Metrics(CollectorRegistry())).ingest("news", [HOSTILE], T0)
    store.close()
    s = await test_console.serve(tmp_path, (path, incident), TOKEN)
    yield s
    await s.daemon.api.stop()
    assert s.daemon.store is not None
    s.daemon.store.close()


async def test_the_api_filters_pages_and_exports(served: test_console.Served) -> None:
    async with httpx.AsyncClient(base_url=served.base) as client:
        rows = (await client.get("/mentions", params={"brand": "Acme"})).json()
        assert len(rows) == 9
        assert rows[0]["id"] == "evil"  # newest first
        assert all(r["brands"] == ["Acme"] for r in rows)
        social = (await client.get("/mentions", params={"source": "social"})).json()
        assert {r["source"] for r in social} == {"social"}
        assert 0 < len(social) < 9
        found = (await client.get("/mentions", params={"q": "WORST OUTAGE"})).json()
        assert len(found) == 8  # any case; not the hostile one
        assert (await client.get("/mentions", params={"language": "en"})).json()[0]["id"] == "evil"
        assert (await client.get("/mentions", params={"sentiment": "positive"})).json() == []
        assert (await client.get("/mentions", params={"sentiment": "unscored"})).json() == []
        regional = (await client.get("/mentions", params={"language": "en-GB"})).json()
        assert regional[0]["id"] == "evil"  # languages are kept as primary codes
        wordy = await client.get("/mentions", params={"language": "english"})
        assert (wordy.status_code, wordy.json()["field"]) == (400, "language")
        page = (await client.get("/mentions", params={"limit": 4, "offset": 4})).json()
        assert [r["id"] for r in page] == [r["id"] for r in rows[4:8]]
        bad = await client.get("/mentions", params={"sentiment": "angry"})
        assert (bad.status_code, bad.json()["field"]) == (400, "sentiment")
        assert (await client.get("/mentions", params={"colour": "red"})).status_code == 400
        old = await client.get("/mentions", params={"since": "2026-03-01T00:00:00Z"})
        assert len(old.json()) == 9
        assert (await client.get("/mentions", params={"since": "yesterday"})).status_code == 400

        exported = await client.get("/mentions.csv", params={"brand": "Acme"})
        assert exported.headers["content-type"].startswith("text/csv")
        assert "attachment" in exported.headers["content-disposition"]
        table = list(csv.reader(io.StringIO(exported.text)))
        assert table[0][:4] == ["created_at", "source", "id", "brands"]
        assert len(table) == 10
        evil = next(r for r in table if r[2] == "evil")
        assert evil[7].startswith("'=HYPERLINK")  # no formula for a spreadsheet to run
        lines = (await client.get("/mentions.jsonl", params={"q": "outage"})).text.splitlines()
        assert len(lines) == 8
        assert all(json.loads(line)["brands"] == ["Acme"] for line in lines)


async def test_the_console_page_escapes_and_links_only_http(
    served: test_console.Served,
) -> None:
    client = await test_console.signed_in(served.base)
    try:
        page = await client.get("/mentions", params={"q": "down"})
        assert page.status_code == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Acme is down" in page.text
        assert "<script>alert(1)" not in page.text
        assert "javascript:" not in page.text
        assert 'href="/mentions.csv?q=down"' in page.text
        every = await client.get("/mentions")
        assert every.text.count('<li class="card ') == 9
        assert 'href="https://news.example.test/1"' in every.text
        bad = await client.get("/mentions", params={"since": "soon"})
        assert bad.status_code == 400
        assert "since" in bad.text
    finally:
        await client.aclose()


async def test_listener_mentions_reads_the_state_or_a_running_listener(
    served: test_console.Served,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LISTENER_URL", raising=False)
    assert served.daemon.store is not None
    state = str(served.daemon.store.path)

    async def cli(*args: str) -> str:
        assert await asyncio.to_thread(main, list(args)) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    table = await cli("mentions", "--state", state, *WINDOW, "--source", "news")
    assert "Acme" in table
    assert len(table.splitlines()) == 1 + sum(1 for i in range(8) if i % 3)
    exported = await cli("mentions", "--state", state, *WINDOW, "--format", "csv")
    assert len(list(csv.reader(io.StringIO(exported)))) == 10
    remote = await cli("mentions", "--url", served.base, *WINDOW, "--format", "jsonl")
    assert len(remote.splitlines()) == 9
    assert await asyncio.to_thread(main, ["mentions", "--state", state, "--since", "x"]) == 2
    assert "since" in capsys.readouterr().err


async def test_the_query_preview_says_what_a_query_matches_and_why(
    served: test_console.Served,
) -> None:
    client = await test_console.signed_in(served.base)
    try:
        page = await client.get("/preview", params={"query": "acme AND (outage OR down)"})
        assert page.status_code == 200
        assert "It matches 9 of the 9 mentions stored in the last 7 day(s)" in page.text
        assert "matched: acme, outage" in page.text
        assert "matched: acme, down" in page.text  # the hostile one, escaped below
        assert "<script>alert(1)" not in page.text
        narrow = await client.get("/preview", params={"query": '"worst outage" NOT social'})
        assert "It matches 8 of the 9" in narrow.text
        only = await client.get("/preview", params={"query": "source:social"})
        assert "It matches 3 of the 9" in only.text
        bad = await client.get("/preview", params={"query": "acme AND (outage"})
        assert bad.status_code == 400
        assert "column" in bad.text
        assert "^" in bad.text  # the caret under the mistake
        excludes = await client.get("/preview", params={"query": "NOT hiring"})
        assert "only excludes" in excludes.text
        # with a brand: what listener check says of its aliases and this NOT
        brand = await client.get(
            "/preview", params={"query": "acme NOT hiring", "brand": "Acme", "days": "2"}
        )
        assert "does not apply to mentions matched by the brand" in brand.text
        assert (
            await client.get("/preview", params={"query": "acme", "days": "99"})
        ).status_code == 400
    finally:
        await client.aclose()
