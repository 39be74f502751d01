"""One registry shape for collectors, scorers, conditions and sinks, and the optional
capabilities as runtime-checkable protocols."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from listener.collectors import COLLECTORS
from listener.config.schema import (
    ConditionConfig,
    ScorerConfig,
    SinkConfig,
    SourceConfig,
    VaderScoringConfig,
)
from listener.errors import ListenerError, UnknownType
from listener.model import Sentiment
from listener.registry import Registry, type_tag
from listener.rules.conditions import CONDITIONS
from listener.scoring import SCORERS, batch_scoring, score_many
from listener.scoring.base import BatchScorer, Scorer
from listener.sinks import SINKS
from listener.sinks.base import Refreshable, SendsTest, Sink, SinkContext

EXTENSION_POINTS: list[tuple[Any, Registry[Any, Any]]] = [
    (SourceConfig, COLLECTORS),
    (ScorerConfig, SCORERS),
    (ConditionConfig, CONDITIONS),
    (SinkConfig, SINKS),
]
BUILD_ARGS: dict[str, tuple[Any, ...]] = {
    "collector": ("name", []),
    "scorer": (),
    "condition": (),
    "sink": ("name", SinkContext()),
}
IDS = ["collectors", "scorers", "conditions", "sinks"]


def _members(union: Any) -> set[type[Any]]:
    """The config classes of ``Annotated[A | B | …, Field(discriminator="type")]``."""
    inner, *_ = get_args(union)
    return set(get_args(inner))


@pytest.mark.parametrize(("union", "registry"), EXTENSION_POINTS, ids=IDS)
def test_every_config_type_has_a_builder(union: Any, registry: Registry[Any, Any]) -> None:
    """Each member of the config union is registered, and nothing else is."""
    assert isinstance(registry, Registry)
    assert set(registry) == _members(union)
    assert registry.names() == sorted(type_tag(cls) for cls in _members(union))


@pytest.mark.parametrize(("union", "registry"), EXTENSION_POINTS, ids=IDS)
def test_an_unknown_config_names_the_known_types(union: Any, registry: Registry[Any, Any]) -> None:
    """Building an unregistered config class raises UnknownType listing every known tag."""

    class CarrierPigeonConfig(BaseModel):
        type: str = "pigeon"

    with pytest.raises(UnknownType) as info:
        registry.build(CarrierPigeonConfig(), *BUILD_ARGS[registry.kind])
    message = str(info.value)
    assert "CarrierPigeonConfig" in message
    assert f"known types: {', '.join(registry.names())}" in message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ListenerError)


def test_a_config_class_registers_once() -> None:
    """A second builder for the same config class is refused, not silently replacing."""
    registry: Registry[[], str] = Registry("thing")
    registry.register(VaderScoringConfig, lambda config: "first")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(VaderScoringConfig, lambda config: "second")
    assert registry.build(VaderScoringConfig(type="vader")) == "first"


def test_lookup_is_by_exact_class() -> None:
    """A subclass of a registered config is not built as its parent."""

    class Special(VaderScoringConfig):
        pass

    registry: Registry[[], str] = Registry("thing")
    registry.register(VaderScoringConfig, lambda config: "vader")
    assert VaderScoringConfig in registry
    assert Special not in registry
    with pytest.raises(UnknownType, match="known types: vader"):
        registry.build(Special(type="vader"))


def test_type_tag_reads_the_literal() -> None:
    """The tag is the ``type`` Literal of a pydantic config, else the class name."""
    assert type_tag(VaderScoringConfig) == "vader"
    assert type_tag(int) == "int"


class _Plain:
    def score(self, text: str) -> Sentiment:
        return Sentiment("neutral", 0.0)


class _Batched(_Plain):
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def score_batch(self, texts: Any) -> list[Sentiment]:
        self.batches.append(list(texts))
        return [Sentiment("positive", 1.0) for _ in texts]


def test_score_many_uses_the_batch_capability() -> None:
    """A scorer with score_batch (the BatchScorer protocol) scores in one call."""
    batched = _Batched()
    assert isinstance(batched, BatchScorer)
    assert not isinstance(_Plain(), BatchScorer)
    assert isinstance(_Plain(), Scorer)
    assert [s.label for s in score_many(batched, ["a", "b"])] == ["positive", "positive"]
    assert batched.batches == [["a", "b"]]
    assert [s.label for s in score_many(_Plain(), ["a"])] == ["neutral"]


def test_batch_scoring_is_decided_once_per_scorer() -> None:
    """batch_scoring picks the batch call or text-by-text scoring when it is made; an
    empty batch calls nothing."""
    batched = _Batched()
    score = batch_scoring(batched)
    assert [s.label for s in score(["a"])] == ["positive"]
    assert score([]) == []
    assert batched.batches == [["a"]]
    assert [s.label for s in batch_scoring(_Plain())(["a", "b"])] == ["neutral", "neutral"]


def test_a_built_collector_satisfies_the_protocol() -> None:
    """What the collector registry builds is a Collector (runtime-checkable)."""
    from listener.collectors import build_collector
    from listener.collectors.base import Collector
    from listener.config.schema import RssSourceConfig

    config = RssSourceConfig.model_validate({"type": "rss", "urls": ["http://feeds.test/x"]})
    collector = build_collector("news", config, [])
    try:
        assert isinstance(collector, Collector)
    finally:
        collector.close()


async def test_sink_capabilities_are_protocols() -> None:
    """Refreshable, SendsTest and SendsDigest are recognised by isinstance on the real sinks."""
    from listener.config.schema import (
        AlertmanagerSinkConfig,
        ConsoleSinkConfig,
        DiscordSinkConfig,
        TeamsSinkConfig,
    )
    from listener.sinks import build_sink
    from listener.sinks.base import SendsDigest

    alertmanager = build_sink(
        "am",
        AlertmanagerSinkConfig.model_validate(
            {"type": "alertmanager", "url": "http://127.0.0.1:9/", "resend_every": "2m"}
        ),
    )
    console = build_sink("out", ConsoleSinkConfig(type="console"))
    try:
        assert isinstance(alertmanager, Sink)
        assert isinstance(alertmanager, Refreshable)
        assert isinstance(alertmanager, SendsTest)
        assert alertmanager.resend_every == timedelta(minutes=2)
        assert isinstance(console, Sink)
        assert not isinstance(console, Refreshable)
    finally:
        await alertmanager.aclose()
        await console.aclose()
    chats = [
        build_sink("t", TeamsSinkConfig.model_validate({"type": "teams", "url": "http://h/w"})),
        build_sink("d", DiscordSinkConfig.model_validate({"type": "discord", "url": "http://h/d"})),
    ]
    try:
        for chat in chats:
            assert isinstance(chat, SendsTest)
            assert isinstance(chat, SendsDigest)
            assert not isinstance(chat, Refreshable)
    finally:
        for chat in chats:
            await chat.aclose()
