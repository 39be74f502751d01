"""Contract harness: the Alertmanager sink posting to a loopback fake of Alertmanager's
API v2 (fast, and no binary needed; tests/integration/test_alertmanager_sink.py runs the
sink against the real Alertmanager)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import AlertmanagerSinkConfig
from listener.sinks import build_sink
from tests.contract.harnesses import Harness
from tests.support.alertmanager import FakeAlertmanager

CONFIG = AlertmanagerSinkConfig


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    with FakeAlertmanager() as fake:
        config = AlertmanagerSinkConfig.model_validate({"type": "alertmanager", "url": fake.url})
        sink = build_sink("out", config)
        try:
            yield Harness(
                sink,
                # One string per posted alert; the alert id is its ``alert_id`` annotation.
                lambda: [json.dumps(a, sort_keys=True) for a in fake.posted],
                lambda: fake.fail_next(503),
            )
        finally:
            await sink.aclose()
