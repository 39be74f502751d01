"""Contract harness: the Telegram sink posting to a loopback Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import TelegramSinkConfig
from listener.sinks import build_sink
from tests.contract.harnesses import Harness
from tests.support.fake_telegram import CHAT_ID, TOKEN, FakeTelegram

CONFIG = TelegramSinkConfig


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    with FakeTelegram() as telegram:
        config = TelegramSinkConfig.model_validate(
            {"type": "telegram", "token": TOKEN, "chat_id": CHAT_ID, "api_url": telegram.url}
        )
        sink = build_sink("out", config)
        try:
            yield Harness(
                sink,
                lambda: [message.text for message in telegram.messages],
                lambda: telegram.respond(503, body={"ok": False, "error_code": 503}),
            )
        finally:
            await sink.aclose()
