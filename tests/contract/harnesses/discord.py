"""Contract harness: the Discord sink posting to a loopback Discord webhook."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import DiscordSinkConfig
from listener.sinks import build_sink
from tests.contract.harnesses import Harness
from tests.support.fake_discord import FakeDiscord
from tests.support.receiver import Answer

CONFIG = DiscordSinkConfig


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    with FakeDiscord() as discord:
        config = DiscordSinkConfig.model_validate({"type": "discord", "url": discord.webhook_url})
        sink = build_sink("out", config)
        try:
            yield Harness(
                sink,
                lambda: [json.dumps(body, ensure_ascii=False) for body in discord.bodies()],
                lambda: discord.script(Answer(503)),
            )
        finally:
            await sink.aclose()
