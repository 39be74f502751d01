"""Every HTTP sink bounds a request: ``timeout`` is a deadline for the whole request (a
receiver trickling bytes cannot hold it), and the answer is read only up to
MAX_RESPONSE_BYTES (a huge body is not read on; the status still decides)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from listener.config.schema import (
    AlertmanagerSinkConfig,
    DiscordSinkConfig,
    OpsgenieSinkConfig,
    PagerDutySinkConfig,
    SlackSinkConfig,
    TeamsSinkConfig,
    TelegramSinkConfig,
    WebhookSinkConfig,
)
from listener.errors import SinkUnavailable
from listener.sinks import build_sink
from listener.sinks.base import Sink, SinkContext
from tests.support.fake_opsgenie import API_KEY
from tests.support.fake_pagerduty import ROUTING_KEY
from tests.support.fake_telegram import CHAT_ID, TOKEN
from tests.support.hostile import HostileServer
from tests.support.receiver import sample_alert

FLOOD = 50 * 1024 * 1024
HANG = 15.0
"""Generous bound: a trickle would take 60 s, a deadline 1 s."""

Build = Callable[[HostileServer], Sink]


def _build(config: Any) -> Sink:
    return build_sink("out", config, SinkContext())


SINKS: dict[str, Build] = {
    "webhook": lambda s: _build(
        WebhookSinkConfig.model_validate({"type": "webhook", "url": s.url("/hook"), "timeout": 1})
    ),
    "slack-webhook": lambda s: _build(
        SlackSinkConfig.model_validate(
            {"type": "slack", "webhook_url": s.url("/services/T/B/X"), "timeout": 1}
        )
    ),
    "slack-webapi": lambda s: _build(
        SlackSinkConfig.model_validate(
            {
                "type": "slack",
                "token": "xoxb-fake-token",
                "channel": "C0123456789",
                "api_url": s.url("/api/"),
                "timeout": 1,
            }
        )
    ),
    "alertmanager": lambda s: _build(
        AlertmanagerSinkConfig.model_validate(
            {"type": "alertmanager", "url": s.url(), "timeout": 1}
        )
    ),
    "pagerduty": lambda s: _build(
        PagerDutySinkConfig.model_validate(
            {"type": "pagerduty", "routing_key": ROUTING_KEY, "api_url": s.url(), "timeout": 1}
        )
    ),
    "telegram": lambda s: _build(
        TelegramSinkConfig.model_validate(
            {
                "type": "telegram",
                "token": TOKEN,
                "chat_id": CHAT_ID,
                "api_url": s.url(),
                "timeout": 1,
            }
        )
    ),
    "opsgenie": lambda s: _build(
        OpsgenieSinkConfig.model_validate(
            {"type": "opsgenie", "api_key": API_KEY, "api_url": s.url(), "timeout": 1}
        )
    ),
    "teams": lambda s: _build(
        TeamsSinkConfig.model_validate(
            {"type": "teams", "url": s.url("/workflows/w/triggers?sig=x"), "timeout": 1}
        )
    ),
    "discord": lambda s: _build(
        DiscordSinkConfig.model_validate(
            {"type": "discord", "url": s.url("/api/webhooks/1/token"), "timeout": 1}
        )
    ),
}


@pytest.mark.parametrize("kind", list(SINKS))
async def test_a_trickling_receiver_times_out_at_the_sink_deadline(kind: str) -> None:
    """A receiver sending one byte every half second (a minute in all) fails the attempt
    as a timeout soon after the 1 s deadline, not when the trickle ends."""
    with HostileServer(trickle=0.5) as server:
        sink = SINKS[kind](server)
        started = time.monotonic()
        try:
            with pytest.raises(SinkUnavailable, match="timed out") as info:
                await sink.send(sample_alert(), "k")
        finally:
            await sink.aclose()
        elapsed = time.monotonic() - started
    assert info.value.retryable
    assert server.requests == 1
    assert elapsed < HANG
    assert not server.finished.is_set()


@pytest.mark.parametrize("kind", list(SINKS))
async def test_a_huge_error_body_is_not_read_and_the_status_still_counts(kind: str) -> None:
    """A 503 with a 50 MB body: retryable (HTTP 503), and the sink hung up long before the
    receiver could write it all."""
    with HostileServer(status=503, flood=FLOOD) as server:
        sink = SINKS[kind](server)
        try:
            with pytest.raises(SinkUnavailable, match="503") as info:
                await sink.send(sample_alert(), "k")
        finally:
            await sink.aclose()
        assert server.wait_closed()
    assert info.value.retryable
    assert server.written < FLOOD


@pytest.mark.parametrize(
    "kind",
    [
        "webhook",
        "slack-webhook",
        "alertmanager",
        "pagerduty",
        "telegram",
        "opsgenie",
        "teams",
        "discord",
    ],
)
async def test_a_huge_success_body_is_not_read_and_the_alert_is_delivered(kind: str) -> None:
    """A 2xx with a 50 MB body is a delivery; the body is not read to its end."""
    with HostileServer(status=202, flood=FLOOD, content_type="text/plain") as server:
        sink = SINKS[kind](server)
        try:
            await sink.send(sample_alert(), "k")
        finally:
            await sink.aclose()
        assert server.wait_closed()
    assert server.written < FLOOD
