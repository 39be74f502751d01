"""Contract harness: the email sink sending to a loopback SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import EmailSinkConfig
from listener.sinks import build_sink
from tests.contract.harnesses import Harness
from tests.support.smtp import SmtpServer

CONFIG = EmailSinkConfig


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    with SmtpServer() as smtp:
        config = EmailSinkConfig.model_validate(
            {
                "type": "email",
                "host": smtp.host,
                "port": smtp.port,
                "security": "none",
                "from": "listener@example.com",
                "to": ["team@example.com"],
            }
        )
        sink = build_sink("out", config)
        try:
            yield Harness(
                sink,
                lambda: [m.data.decode("utf-8", "replace") for m in smtp.messages],
                lambda: smtp.reject(451),
            )
        finally:
            await sink.aclose()
