"""``listener incidents|ack|silence --url``: the CLI on a running listener's HTTP API
(amtool's model: no exec into the container that holds the state), the token from
LISTENER_API_TOKEN, incident ids given by their start."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from listener.cli import main
from tests.integration import test_api
from tests.integration.test_api import TOKEN, start, stop

template = test_api.template  # a state file with one open incident, and its id


@pytest.fixture
async def served(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, str]]:
    """A daemon serving its API on a copy of that state: its URL, the incident's id."""
    state = request.getfixturevalue("template")
    daemon = await start(tmp_path, state)
    assert daemon.api.address is not None
    monkeypatch.setenv("LISTENER_API_TOKEN", TOKEN)
    monkeypatch.delenv("LISTENER_URL", raising=False)
    monkeypatch.delenv("LISTENER_STATE", raising=False)
    yield f"http://127.0.0.1:{daemon.api.address[1]}", state[1]
    await stop(daemon)


async def cli(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def test_an_operator_lists_shows_acks_and_silences_over_http(
    served: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, incident = served
    assert await cli("incidents", "--status", "open", "--url", url) == 0
    assert incident in capsys.readouterr().out
    assert await cli("incidents", "--json", "--limit", "1", "--url", url) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [incident]
    start = incident[:10]  # the day and hour: the only incident that begins so
    assert await cli("incidents", "show", start, "--json", "--url", url) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["acknowledged_by"]) == (incident, None)
    assert await cli("ack", start, "--by", "dana", "--note", "on it", "--url", url) == 0
    assert f"acknowledged {incident} as dana" in capsys.readouterr().out
    assert await cli("ack", start, "--by", "eve", "--url", url) == 1
    assert "already acknowledged by dana" in capsys.readouterr().err
    assert await cli("note", start, "holding statement posted", "--by", "dana", "--url", url) == 0
    assert f"noted on {incident}" in capsys.readouterr().out
    assert await cli("assign", start, "Eve  Ng", "--by", "dana", "--url", url) == 0
    assert f"{incident} is assigned to Eve Ng" in capsys.readouterr().out
    assert await cli("incidents", "show", incident, "--json", "--url", url) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["assignee"] == "Eve Ng"
    assert [(n["kind"], n["by"], n["text"]) for n in shown["notes"]] == [
        ("note", "dana", "holding statement posted"),
        ("assigned", "dana", "Eve Ng"),
    ]
    assert await cli("incidents", "show", incident, "--url", url) == 0
    text = capsys.readouterr().out
    assert "acknowledged by dana" in text
    assert "dana: holding statement posted" in text
    assert "assigned to Eve Ng" in text
    assert await cli("note", start, "   ", "--by", "dana", "--url", url) == 1
    assert "text" in capsys.readouterr().err

    add = ["silence", "add", "--brand", "Acme", "--for", "1h", "--comment", "statement out"]
    assert await cli(*add, "--by", "dana", "--url", url) == 0
    made = re.search(r"(sil-[0-9a-f]+): silenced until", capsys.readouterr().out)
    assert made is not None
    silence_id = made.group(1)
    assert await cli("silence", "list", "--url", url) == 0
    listed = capsys.readouterr().out
    assert silence_id in listed
    assert "active" in listed
    assert "brand=Acme" in listed
    assert await cli("silence", "expire", silence_id, "--url", url) == 0
    assert await cli("silence", "list", "--url", url) == 0
    assert "expired" in capsys.readouterr().out
    # the API checks the scope: an unknown brand is refused with the known names
    bad = ["silence", "add", "--brand", "Umbrella", "--for", "1h", "--comment", "x", "--by", "d"]
    assert await cli(*bad, "--url", url) == 1, capsys.readouterr().err
    assert "Umbrella" in capsys.readouterr().err


async def test_what_goes_wrong_is_said_in_words(
    served: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, incident = served
    assert await cli("incidents", "show", "2099", "--url", url) == 1
    assert "404" in capsys.readouterr().err
    monkeypatch.setenv("LISTENER_API_TOKEN", "wrong")
    assert await cli("ack", incident, "--by", "dana", "--url", url) == 1
    assert "refused the token" in capsys.readouterr().err
    monkeypatch.delenv("LISTENER_API_TOKEN")
    assert await cli("ack", incident, "--by", "dana", "--url", url) == 2
    assert "LISTENER_API_TOKEN" in capsys.readouterr().err
    # reading needs no token; LISTENER_URL works as --url does
    monkeypatch.setenv("LISTENER_URL", url)
    assert await cli("incidents") == 0
    assert incident in capsys.readouterr().out
    monkeypatch.delenv("LISTENER_URL")
    assert await cli("incidents", "--url", "http://127.0.0.1:1") == 1  # nothing listens
    err = capsys.readouterr().err
    assert "cannot reach listener" in err
    assert "Traceback" not in err
    assert await cli("incidents", "--url", "ftp://x") == 2
    assert "not an http(s) URL" in capsys.readouterr().err
    assert await cli("incidents", "--url", url, "--state", "x.db") == 2


async def test_notes_and_assignments_on_the_state_file(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same commands without --url write the state file (the daemon shows them)."""
    import shutil

    monkeypatch.delenv("LISTENER_URL", raising=False)
    path, incident = request.getfixturevalue("template")
    state = str(tmp_path / "copy.db")
    shutil.copy(path, state)
    by = ["--by", "ana", "--state", state]
    assert await cli("note", incident[:12], "statement posted", *by) == 0
    assert await cli("assign", incident, "bo", *by) == 0
    capsys.readouterr()
    assert await cli("incidents", "--state", state, "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["assignee"] == "bo"
    assert await cli("incidents", "show", incident, "--state", state) == 0
    assert "ana: statement posted" in capsys.readouterr().out


def test_an_incident_is_found_by_the_start_of_its_id_when_only_one_begins_so(
    tmp_path: Path,
) -> None:
    """Two incidents opened at the same evaluation share the start of their ids: that
    start is refused naming both, more of it finds one; the API and the CLI, local or
    remote, go through the same lookup."""
    from dataclasses import replace
    from datetime import timedelta

    from prometheus_client import CollectorRegistry

    from listener import incidents
    from listener.config.load import load_config_text
    from listener.errors import InvalidRequest, NotFound
    from listener.metrics import Metrics
    from listener.processor import Processor
    from listener.store import Store
    from tests.integration.test_api import CONFIG
    from tests.support.incident_state import T0, angry

    store = Store.open(tmp_path / "state.db")
    processor = Processor(
        load_config_text(CONFIG, "rules.yaml", {}), store, Metrics(CollectorRegistry())
    )
    mentions = [angry(i, T0) for i in range(8)]
    mentions += [
        replace(m, id=f"g{i}", text=m.text.replace("@acme", "Globex"))
        for i, m in enumerate(mentions)
    ]
    processor.ingest("news", mentions, T0)
    processor.evaluate(T0 + timedelta(minutes=1))
    ids = sorted(r.id for r in store.incident_log.recent(status="open"))
    assert len(ids) == 2
    shared = ids[0][: next(i for i, (a, b) in enumerate(zip(*ids, strict=False)) if a != b)]
    with pytest.raises(InvalidRequest, match="more than one incident id"):
        incidents.find(store, shared)
    assert incidents.find(store, ids[1][: len(shared) + 1]).id == ids[1]
    assert incidents.find(store, ids[0]).id == ids[0]
    for missing in ("", "2099", ids[0].lower()):
        with pytest.raises(NotFound):
            incidents.find(store, missing)
    store.close()
