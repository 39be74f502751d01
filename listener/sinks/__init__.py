"""The sinks stage: build a :class:`~listener.sinks.base.Sink` from its config block.

The registry maps each sink config class (one ``type`` tag of ``SinkConfig`` in
:mod:`listener.config.schema`) to the constructor of its sink. Adding a sink type means:
a config class in the schema union, a module here with a pure ``render_*`` and a small
``send``, and one entry in :data:`SINK_FACTORIES` (the contract test covers every entry).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, get_args

from pydantic import BaseModel

from listener.config.schema import (
    AlertmanagerSinkConfig,
    ConsoleSinkConfig,
    EmailSinkConfig,
    PagerDutySinkConfig,
    SlackSinkConfig,
    WebhookSinkConfig,
)
from listener.sinks.base import Sink, SinkContext
from listener.sinks.console import ConsoleSink
from listener.sinks.webhook import WebhookSink

SinkFactory = Callable[[str, Any, SinkContext], Sink]


def _lazy(module: str, cls: str) -> SinkFactory:
    """Import a sink's module (and its client library) only when it is configured.
    The class is built as ``cls(name, config, context=context)``."""

    def build(name: str, config: Any, context: SinkContext) -> Sink:
        sink: Sink = getattr(importlib.import_module(module), cls)(name, config, context=context)
        return sink

    return build


_FACTORIES: dict[type[BaseModel], SinkFactory] = {
    ConsoleSinkConfig: lambda name, config, context: ConsoleSink(name, config),
    WebhookSinkConfig: lambda name, config, context: WebhookSink(name, config),
    SlackSinkConfig: _lazy("listener.sinks.slack", "SlackSink"),
    AlertmanagerSinkConfig: _lazy("listener.sinks.alertmanager", "AlertmanagerSink"),
    PagerDutySinkConfig: _lazy("listener.sinks.pagerduty", "PagerDutySink"),
    EmailSinkConfig: _lazy("listener.sinks.email", "EmailSink"),
}

SINK_FACTORIES: Mapping[type[BaseModel], SinkFactory] = _FACTORIES
"""Every registered sink type: config class → ``factory(name, config, context)``."""


def _tag(config_class: type[BaseModel]) -> str:
    field = config_class.model_fields.get("type")
    args = get_args(field.annotation) if field is not None else ()
    return str(args[0]) if args else config_class.__name__


def build_sink(name: str, config: BaseModel, context: SinkContext | None = None) -> Sink:
    """Build the sink named ``name`` from its validated config block.

    Raises ``ValueError`` (naming the known types) when no sink is registered for
    ``type(config)``. Building opens no connection; call ``aclose`` on the result.
    """
    factory = _FACTORIES.get(type(config))
    if factory is None:
        known = ", ".join(sorted(_tag(c) for c in _FACTORIES))
        raise ValueError(
            f"sink {name!r}: no sink type is registered for {type(config).__name__}; "
            f"known types: {known}"
        )
    return factory(name, config, context if context is not None else SinkContext())


__all__ = ["SINK_FACTORIES", "Sink", "SinkContext", "SinkFactory", "build_sink"]
