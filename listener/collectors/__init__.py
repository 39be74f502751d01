"""Collectors: one per configured source, built from its config block.

:data:`COLLECTORS` is the registry (:class:`~listener.registry.Registry`, the shape
every extension point shares): it maps each source config class to the builder of its
collector. Adding a source type means adding a config class to the ``SourceConfig`` union
in ``listener.config.schema`` and registering it in :data:`COLLECTORS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from listener.collectors.base import Collector, Cursor, PollResult
from listener.collectors.rss import RssCollector
from listener.config.schema import (
    AppStoreSourceConfig,
    BlueskySourceConfig,
    BrandConfig,
    GdeltSourceConfig,
    HackerNewsSourceConfig,
    MastodonSourceConfig,
    RedditSourceConfig,
    RssSourceConfig,
    TwitterSourceConfig,
    YouTubeSourceConfig,
)
from listener.registry import Registry

CollectorRegistry = Registry[[str, Sequence[BrandConfig]], Collector]
"""The collector registry's shape: ``builder(config, name, brands) -> Collector``."""


def _lazy(module: str, cls: str) -> Callable[[Any, str, Sequence[BrandConfig]], Collector]:
    """Import a collector's module (and its client library) only when it is configured.
    The class is built as ``cls(name, config, brands)``."""

    def build(config: Any, name: str, brands: Sequence[BrandConfig]) -> Collector:
        collector: Collector = getattr(importlib.import_module(module), cls)(name, config, brands)
        return collector

    return build


def _rss(config: RssSourceConfig, name: str, brands: Sequence[BrandConfig]) -> Collector:
    return RssCollector(name, config, brands)


COLLECTORS: CollectorRegistry = Registry("collector")
"""Every registered source type: config class → ``builder(config, name, brands)``."""
COLLECTORS.register(RssSourceConfig, _rss)
COLLECTORS.register(TwitterSourceConfig, _lazy("listener.collectors.twitter", "TwitterCollector"))
COLLECTORS.register(RedditSourceConfig, _lazy("listener.collectors.reddit", "RedditCollector"))
COLLECTORS.register(
    HackerNewsSourceConfig, _lazy("listener.collectors.hackernews", "HackerNewsCollector")
)
COLLECTORS.register(
    MastodonSourceConfig, _lazy("listener.collectors.mastodon", "MastodonCollector")
)
COLLECTORS.register(GdeltSourceConfig, _lazy("listener.collectors.gdelt", "GdeltCollector"))
COLLECTORS.register(
    AppStoreSourceConfig, _lazy("listener.collectors.appstore", "AppStoreCollector")
)
COLLECTORS.register(BlueskySourceConfig, _lazy("listener.collectors.bluesky", "BlueskyCollector"))
COLLECTORS.register(YouTubeSourceConfig, _lazy("listener.collectors.youtube", "YouTubeCollector"))


def build_collector(name: str, config: object, brands: Sequence[BrandConfig]) -> Collector:
    """Build the collector for source ``name`` from its config block.

    Raises :class:`~listener.errors.UnknownType` (a ``ValueError`` listing the known
    types) for a config class with no collector.
    """
    return COLLECTORS.build(config, name, brands)


__all__ = [
    "COLLECTORS",
    "Collector",
    "CollectorRegistry",
    "Cursor",
    "PollResult",
    "RssCollector",
    "build_collector",
]
