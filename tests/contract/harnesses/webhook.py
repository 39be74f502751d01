"""Contract harness: the webhook sink posting to a loopback receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import WebhookSinkConfig
from listener.sinks import build_sink
from tests.contract.harnesses import Harness
from tests.support.receiver import WebhookReceiver

CONFIG = WebhookSinkConfig


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    with WebhookReceiver() as receiver:
        config = WebhookSinkConfig.model_validate({"type": "webhook", "url": receiver.url()})
        sink = build_sink("out", config)
        try:
            yield Harness(
                sink,
                lambda: [r.raw.decode() for r in receiver.accepted],
                lambda: receiver.respond(503),
            )
        finally:
            await sink.aclose()
