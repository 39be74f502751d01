"""Contract harness: the Teams sink posting to a loopback workflow webhook."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import TeamsSinkConfig
from listener.sinks import build_sink
from tests.contract.harnesses import Harness
from tests.support.fake_teams import FakeTeams
from tests.support.receiver import Answer

CONFIG = TeamsSinkConfig


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    with FakeTeams() as teams:
        config = TeamsSinkConfig.model_validate({"type": "teams", "url": teams.webhook_url})
        sink = build_sink("out", config)
        try:
            yield Harness(
                sink,
                lambda: [json.dumps(card, ensure_ascii=False) for card in teams.cards],
                lambda: teams.script(Answer(503)),
            )
        finally:
            await sink.aclose()
