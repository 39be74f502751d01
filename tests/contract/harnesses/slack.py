"""Contract harness: the Slack sink in Web API mode against the loopback fake Slack."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import SlackSinkConfig
from listener.sinks import build_sink
from listener.sinks.base import SinkContext
from tests.contract.harnesses import Harness
from tests.support.fake_slack import FakeSlack

CONFIG = SlackSinkConfig


def _delivered(slack: FakeSlack) -> list[str]:
    """One string per delivered alert: the metadata of every parent and thread reply
    (it carries the alert id)."""
    found = []
    for parent in slack.messages():
        found.append(json.dumps(parent.get("metadata"), sort_keys=True))
        found.extend(
            json.dumps(reply.get("metadata"), sort_keys=True)
            for reply in slack.replies(parent["ts"])
        )
    return found


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    with FakeSlack() as slack:
        config = SlackSinkConfig.model_validate(
            {
                "type": "slack",
                "token": slack.token,
                "channel": slack.channel_id,
                "api_url": slack.api_url,
            }
        )
        sink = build_sink("out", config, SinkContext(clock=slack.clock))
        try:
            yield Harness(sink, lambda: _delivered(slack), lambda: slack.fail(503))
        finally:
            await sink.aclose()
