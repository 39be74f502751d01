"""Contract harness: the Opsgenie sink posting to a loopback Alert API v2."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import OpsgenieSinkConfig
from listener.sinks import build_sink
from tests.contract.harnesses import Harness
from tests.support.fake_opsgenie import API_KEY, FakeOpsgenie

CONFIG = OpsgenieSinkConfig


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    with FakeOpsgenie() as opsgenie:
        config = OpsgenieSinkConfig.model_validate(
            {"type": "opsgenie", "api_key": API_KEY, "api_url": opsgenie.url}
        )
        sink = build_sink("out", config)
        try:
            yield Harness(
                sink,
                lambda: [
                    call.raw.decode()
                    for call in opsgenie.calls
                    if call.method == "POST" and call.status == 202
                ],
                lambda: opsgenie.respond(503),
            )
        finally:
            await sink.aclose()
