"""Slack buttons: an incident message carries Acknowledge, Snooze 1h and Open in console;
their clicks come back, signed, to ``POST /slack/actions`` (listener.slack_actions), here
sent by the fake Slack as Slack sends them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from listener.app import Daemon
from listener.sinks.slack import ACK_ACTION, SNOOZE_ACTION, Buttons, render_blocks
from listener.store import Store
from tests.integration import test_api, test_console
from tests.integration.test_api import CONFIG, TOKEN
from tests.support.fake_slack import FakeSlack
from tests.support.incident_state import T0

template = test_api.template  # a state file with one open incident (Acme), and its id
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def config_text(slack: FakeSlack, secret: str | None = SECRET) -> str:
    sink = (
        f"  ops: {{type: slack, token: {slack.token}, channel: {slack.channel_id}, "
        f"api_url: '{slack.api_url}', console_url: 'https://listener.example.com'"
        + (f", signing_secret: {secret}" if secret else "")
        + "}"
    )
    return CONFIG.replace("  ops: {type: console}", sink)


async def serve(tmp_path: Path, state: tuple[Path, str], text: str) -> tuple[Daemon, str]:
    served = await test_console.serve(tmp_path, state, TOKEN, text)
    return served.daemon, f"{served.base}/slack/actions"


def opened(incident_id: str, rule: str = "neg", brand: str = "Acme", level: str = "watch") -> Any:
    from listener.model import Alert

    return Alert(
        id=f"{incident_id}#1",
        incident_id=incident_id,
        kind="opened",
        rule=rule,
        brand=brand,
        level=level,
        previous_level=None,
        at=T0,
        facts=(),
    )


def message(store: Store, incident_id: str) -> dict[str, Any]:
    """The incident's Slack message as the sink renders it, with the buttons."""
    record = store.incident_log.get(incident_id)
    assert record is not None
    alert = opened(incident_id, record.rule, record.brand, record.level)
    posted = render_blocks(
        alert, buttons=Buttons(interactive=True, console_url="https://listener.example.com")
    )
    return {**posted, "ts": "1772442000.000001"}


async def test_acknowledge_and_snooze_from_slack(
    tmp_path: Path, request: pytest.FixtureRequest, slack: FakeSlack
) -> None:
    import asyncio

    state = request.getfixturevalue("template")
    daemon, endpoint = await serve(tmp_path, state, config_text(slack))
    store = daemon.store
    assert store is not None
    incident = state[1]
    posted = message(store, incident)
    try:
        opener = next(e for b in posted["blocks"] if b["type"] == "actions" for e in b["elements"])
        assert opener["action_id"] == ACK_ACTION
        click = asyncio.to_thread
        assert await click(slack.click, endpoint, posted, ACK_ACTION, secret=SECRET) == 200
        ack = store.ack_log.get([incident])[incident]
        assert ack.by == "dana (Slack)"
        # a second click: already taken, said to the one who clicked, nothing changes
        assert await click(slack.click, endpoint, posted, ACK_ACTION, secret=SECRET) == 200
        assert await click(slack.click, endpoint, posted, SNOOZE_ACTION, secret=SECRET) == 200
        (silence,) = store.silence_log.select()
        assert (silence.brand, silence.rule, silence.created_by) == ("Acme", "neg", "dana (Slack)")
        assert silence.ends_at - silence.starts_at == timedelta(hours=1)
        for _ in range(50):  # the answers go back in the background
            if len(slack.responses) == 3:
                break
            await asyncio.sleep(0.1)
        said = [r["text"] for r in slack.responses]
        assert said[0].startswith("✅ Acknowledged")
        assert "already acknowledged by dana (Slack)" in said[1]
        assert said[2].startswith("🔕 Snoozed neg for Acme")
        assert all(r["response_type"] == "ephemeral" for r in slack.responses)

        # refused: a wrong secret, a forged signature, a replay after five minutes
        assert await click(slack.click, endpoint, posted, SNOOZE_ACTION, secret="wrong") == 401
        forged = "v0=" + "0" * 64
        assert (
            await click(
                slack.click, endpoint, posted, SNOOZE_ACTION, secret=SECRET, signature=forged
            )
            == 401
        )
        late = T0 + timedelta(minutes=2) - timedelta(minutes=6)
        assert (
            await click(slack.click, endpoint, posted, SNOOZE_ACTION, secret=SECRET, at=late) == 401
        )
        assert len(store.silence_log.select()) == 1
    finally:
        await daemon.api.stop()
        store.close()


async def test_without_a_signing_secret_there_are_no_buttons_to_click(
    tmp_path: Path, request: pytest.FixtureRequest, slack: FakeSlack
) -> None:
    import asyncio

    state = request.getfixturevalue("template")
    daemon, endpoint = await serve(tmp_path, state, config_text(slack, secret=None))
    assert daemon.store is not None
    try:
        posted = message(daemon.store, state[1])
        status = await asyncio.to_thread(slack.click, endpoint, posted, ACK_ACTION, secret=SECRET)
        assert status == 404
        assert daemon.store.ack_log.get([state[1]]) == {}
    finally:
        await daemon.api.stop()
        daemon.store.close()


def test_the_buttons_follow_the_incident() -> None:
    """Acknowledge while nobody has; Snooze until resolved; Open in console always."""
    from dataclasses import replace

    from listener.model import Ack, Alert

    alert = opened("20260302T0900Z-acme-neg")
    both = Buttons(interactive=True, console_url="https://l.example.com/")

    def ids(a: Alert, buttons: Buttons | None) -> list[str]:
        blocks = render_blocks(a, buttons=buttons)["blocks"]
        return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]

    assert ids(alert, both) == [ACK_ACTION, SNOOZE_ACTION, "listener_open"]
    acked = replace(alert, kind="acknowledged", ack=Ack("dana", T0, ""))
    assert ids(acked, both) == [SNOOZE_ACTION, "listener_open"]
    assert ids(replace(alert, kind="resolved"), both) == ["listener_open"]
    assert ids(alert, Buttons()) == []
    assert ids(alert, None) == []
    blocks = render_blocks(alert, buttons=both)["blocks"]
    link = [e for b in blocks if b["type"] == "actions" for e in b["elements"]][-1]["url"]
    assert link == "https://l.example.com/incidents/20260302T0900Z-acme-neg"
