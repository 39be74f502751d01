"""Contract harness: the PagerDuty sink posting to a loopback Events API v2."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import PagerDutySinkConfig
from listener.sinks import build_sink
from tests.contract.harnesses import Harness
from tests.support.fake_pagerduty import ROUTING_KEY, FakePagerDuty

CONFIG = PagerDutySinkConfig


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    with FakePagerDuty() as pagerduty:
        config = PagerDutySinkConfig.model_validate(
            {"type": "pagerduty", "routing_key": ROUTING_KEY, "api_url": pagerduty.url}
        )
        sink = build_sink("out", config)
        try:
            yield Harness(
                sink,
                lambda: [json.dumps(event) for event in pagerduty.events],
                lambda: pagerduty.respond(503),
            )
        finally:
            await sink.aclose()
