"""Every registered sink type honours the Sink contract against its own receiver."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from listener.config.schema import ConsoleSinkConfig, WebhookSinkConfig
from listener.errors import SinkError
from listener.sinks import SINKS, build_sink
from listener.sinks.webhook import render_webhook
from tests.contract.harnesses import Harness, discover
from tests.support.receiver import sample_alert

HARNESSES = discover()


def test_every_registered_sink_has_a_contract_harness() -> None:
    """Adding a sink type to the registry without a harness here fails the build."""
    missing = {cls.__name__ for cls in SINKS} - {cls.__name__ for cls in HARNESSES}
    assert not missing, f"add tests/contract/harnesses/<sink>.py for: {sorted(missing)}"


@pytest.fixture(params=list(HARNESSES), ids=lambda cls: cls.__name__)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """One harness per registered sink type."""
    async with HARNESSES[request.param]() as h:
        yield h


async def test_send_delivers_one_rendered_alert(harness: Harness) -> None:
    """send() of an alert returns and the receiver holds exactly that alert once."""
    alert = sample_alert(drill=True)
    await harness.sink.send(alert, alert.id)
    [delivered] = harness.delivered()
    assert alert.id in delivered
    assert harness.sink.name == "out"


async def test_healthcheck_passes_when_the_receiver_is_up(harness: Harness) -> None:
    """healthcheck() returns when the receiver is reachable, and delivers nothing."""
    await harness.sink.healthcheck()
    assert harness.delivered() == []


async def test_a_broken_receiver_raises_a_sink_error(harness: Harness) -> None:
    """A failing receiver surfaces as a SinkError subclass, never another exception."""
    harness.break_receiver()
    with pytest.raises(SinkError):
        await harness.sink.send(sample_alert(), "k")


async def test_aclose_is_idempotent(harness: Harness) -> None:
    """aclose() may be called more than once."""
    await harness.sink.aclose()
    await harness.sink.aclose()


async def test_webhook_5xx_is_retryable() -> None:
    """A webhook receiver answering 5xx gives a retryable SinkError."""
    async with HARNESSES[WebhookSinkConfig]() as h:
        h.break_receiver()
        with pytest.raises(SinkError) as info:
            await h.sink.send(sample_alert(), "k")
    assert info.value.retryable


async def test_webhook_document_is_what_render_webhook_says() -> None:
    """The webhook sink posts exactly the pure rendering."""
    alert = sample_alert()
    async with HARNESSES[WebhookSinkConfig]() as h:
        await h.sink.send(alert, alert.id)
        [body] = h.delivered()
    assert json.loads(body) == render_webhook(alert)


@pytest.mark.parametrize(
    "config",
    [
        ConsoleSinkConfig(type="console"),
        WebhookSinkConfig.model_validate({"type": "webhook", "url": "https://hooks.example/x"}),
    ],
    ids=lambda c: type(c).__name__,
)
async def test_build_sink_uses_the_registry(config: BaseModel) -> None:
    """build_sink() builds the registered sink type for each config class, opening nothing."""
    sink = build_sink("named", config)
    try:
        assert sink.name == "named"
        assert type(sink).__name__.lower().startswith(config.type)  # type: ignore[attr-defined]
    finally:
        await sink.aclose()


def test_build_sink_rejects_an_unknown_config() -> None:
    """An unregistered config class is a ValueError that lists the known types."""

    class CarrierPigeonConfig(BaseModel):
        type: str = "pigeon"

    with pytest.raises(
        ValueError, match="known types: alertmanager, console, discord, email"
    ) as info:
        build_sink("coo", CarrierPigeonConfig())
    assert "CarrierPigeonConfig" in str(info.value)
