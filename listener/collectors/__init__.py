"""Collectors: one per configured source, built from its config block.

:func:`build_collector` is the registry: it maps each source config class to the
constructor of its collector. Adding a source type means adding a config class to
``listener.config.schema`` and one entry to :data:`COLLECTORS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from listener.collectors.base import Collector, Cursor, PollResult
from listener.collectors.rss import RssCollector
from listener.config.schema import (
    BlueskySourceConfig,
    BrandConfig,
    HackerNewsSourceConfig,
    MastodonSourceConfig,
    RedditSourceConfig,
    RssSourceConfig,
    TwitterSourceConfig,
)

Factory = Callable[[str, Any, Sequence[BrandConfig]], Collector]


def _lazy(module: str, cls: str) -> Factory:
    """Import a collector's module (and its client library) only when it is configured."""

    def build(name: str, config: Any, brands: Sequence[BrandConfig]) -> Collector:
        collector: Collector = getattr(importlib.import_module(module), cls)(name, config, brands)
        return collector

    return build


COLLECTORS: dict[type[Any], Factory] = {
    RssSourceConfig: RssCollector,
    TwitterSourceConfig: _lazy("listener.collectors.twitter", "TwitterCollector"),
    RedditSourceConfig: _lazy("listener.collectors.reddit", "RedditCollector"),
    HackerNewsSourceConfig: _lazy("listener.collectors.hackernews", "HackerNewsCollector"),
    MastodonSourceConfig: _lazy("listener.collectors.mastodon", "MastodonCollector"),
    BlueskySourceConfig: _lazy("listener.collectors.bluesky", "BlueskyCollector"),
}
"""Source config class → collector constructor ``(name, config, brands) -> Collector``."""


def build_collector(name: str, config: object, brands: Sequence[BrandConfig]) -> Collector:
    """Build the collector for source ``name`` from its config block.

    Raises ``ValueError`` (listing the known types) for a config class with no collector.
    """
    factory = COLLECTORS.get(type(config))
    if factory is None:
        known = ", ".join(sorted(_type_name(cls) for cls in COLLECTORS))
        raise ValueError(
            f"source {name!r}: no collector for {type(config).__name__}; known types: {known}"
        )
    return factory(name, config, brands)


def _type_name(cls: type[Any]) -> str:
    """The config's ``type`` tag (e.g. ``rss``) where it has one, else the class name."""
    field = getattr(cls, "model_fields", {}).get("type")
    args = getattr(getattr(field, "annotation", None), "__args__", ())
    return str(args[0]) if args else cls.__name__


__all__ = ["COLLECTORS", "Collector", "Cursor", "PollResult", "RssCollector", "build_collector"]
