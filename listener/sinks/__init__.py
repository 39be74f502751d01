"""The sinks stage: build a :class:`~listener.sinks.base.Sink` from its config block.

The registry maps each sink config class (one ``type`` tag of ``SinkConfig`` in
:mod:`listener.config.schema`) to the constructor of its sink. Adding a sink type means:
a config class in the schema union, a module here with a pure ``render_*`` and a small
``send``, and one entry in :data:`SINK_FACTORIES` (the contract test covers every entry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, get_args

from pydantic import BaseModel

from listener.config.schema import ConsoleSinkConfig, WebhookSinkConfig
from listener.sinks.base import Sink
from listener.sinks.console import ConsoleSink
from listener.sinks.webhook import WebhookSink

SinkFactory = Callable[[str, Any], Sink]

_FACTORIES: dict[type[BaseModel], SinkFactory] = {
    ConsoleSinkConfig: ConsoleSink,
    WebhookSinkConfig: WebhookSink,
}

SINK_FACTORIES: Mapping[type[BaseModel], SinkFactory] = _FACTORIES
"""Every registered sink type: config class → ``factory(name, config)`` (read-only view)."""


def _tag(config_class: type[BaseModel]) -> str:
    field = config_class.model_fields.get("type")
    args = get_args(field.annotation) if field is not None else ()
    return str(args[0]) if args else config_class.__name__


def build_sink(name: str, config: BaseModel) -> Sink:
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
    return factory(name, config)


__all__ = ["SINK_FACTORIES", "Sink", "SinkFactory", "build_sink"]
