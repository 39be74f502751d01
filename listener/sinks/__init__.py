"""The sinks stage: build a :class:`~listener.sinks.base.Sink` from its config block.

The registry maps each sink config class (one ``type`` tag of ``SinkConfig`` in
:mod:`listener.config.schema`) to the constructor of its sink. Adding a sink type means:
a config class in the schema union, a module here with a pure ``render_*`` and a small
``send``, and one registration in :data:`SINKS` (a :class:`~listener.registry.Registry`,
the shape every extension point shares; the contract test covers every entry). Optional
capabilities (:class:`~listener.sinks.base.Refreshable`,
:class:`~listener.sinks.base.SendsTest`) are ``runtime_checkable`` protocols in
:mod:`listener.sinks.base`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from listener.config.schema import (
    AlertmanagerSinkConfig,
    ConsoleSinkConfig,
    DiscordSinkConfig,
    EmailSinkConfig,
    OpsgenieSinkConfig,
    PagerDutySinkConfig,
    SlackSinkConfig,
    TeamsSinkConfig,
    TelegramSinkConfig,
    WebhookSinkConfig,
)
from listener.registry import Registry
from listener.sinks.base import Refreshable, SendsTest, Sink, SinkContext
from listener.sinks.console import ConsoleSink
from listener.sinks.webhook import WebhookSink

SinkRegistry = Registry[[str, SinkContext], Sink]
"""The sink registry's shape: ``builder(config, name, context) -> Sink``."""


def _lazy(module: str, cls: str) -> Callable[[Any, str, SinkContext], Sink]:
    """Import a sink's module (and its client library) only when it is configured.
    The class is built as ``cls(name, config, context=context)``."""

    def build(config: Any, name: str, context: SinkContext) -> Sink:
        sink: Sink = getattr(importlib.import_module(module), cls)(name, config, context=context)
        return sink

    return build


def _console(config: ConsoleSinkConfig, name: str, context: SinkContext) -> Sink:
    return ConsoleSink(name, config)


def _webhook(config: WebhookSinkConfig, name: str, context: SinkContext) -> Sink:
    return WebhookSink(name, config)


SINKS: SinkRegistry = Registry("sink")
"""Every registered sink type: config class → ``builder(config, name, context)``."""
SINKS.register(ConsoleSinkConfig, _console)
SINKS.register(WebhookSinkConfig, _webhook)
SINKS.register(SlackSinkConfig, _lazy("listener.sinks.slack", "SlackSink"))
SINKS.register(AlertmanagerSinkConfig, _lazy("listener.sinks.alertmanager", "AlertmanagerSink"))
SINKS.register(PagerDutySinkConfig, _lazy("listener.sinks.pagerduty", "PagerDutySink"))
SINKS.register(EmailSinkConfig, _lazy("listener.sinks.email", "EmailSink"))
SINKS.register(TelegramSinkConfig, _lazy("listener.sinks.telegram", "TelegramSink"))
SINKS.register(OpsgenieSinkConfig, _lazy("listener.sinks.opsgenie", "OpsgenieSink"))
SINKS.register(TeamsSinkConfig, _lazy("listener.sinks.teams", "TeamsSink"))
SINKS.register(DiscordSinkConfig, _lazy("listener.sinks.discord", "DiscordSink"))


def build_sink(name: str, config: BaseModel, context: SinkContext | None = None) -> Sink:
    """Build the sink named ``name`` from its validated config block.

    Raises :class:`~listener.errors.UnknownType` (a ``ValueError`` naming the known
    types) when no sink is registered for ``type(config)``. Building opens no connection;
    call ``aclose`` on the result.
    """
    return SINKS.build(config, name, context if context is not None else SinkContext())


__all__ = [
    "SINKS",
    "Refreshable",
    "SendsTest",
    "Sink",
    "SinkContext",
    "SinkRegistry",
    "build_sink",
]
