"""One registry shape for every extension point: collectors, scorers, conditions, sinks.

The config side of an extension point is a pydantic discriminated union on ``type`` in
:mod:`listener.config.schema` (``SourceConfig``, ``ScorerConfig``, ``ConditionConfig``,
``SinkConfig``): parsing picks the config class and names the known tags when a tag is
wrong. The build side is a :class:`Registry`: each config class maps to one builder,
``builder(config, *args) -> product``, where ``args`` are what the extension point hands
every builder (a collector's name and the brands; a sink's name and its context; nothing
for scorers and conditions)::

    COLLECTORS.build(config, name, brands)   # listener.collectors
    SCORERS.build(config)                    # listener.scoring
    CONDITIONS.build(config)                 # listener.rules.conditions
    SINKS.build(config, name, context)       # listener.sinks

``tests/unit/test_registry.py`` checks that every member of each union is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, get_args

from pydantic import BaseModel

from listener.errors import UnknownType

P = ParamSpec("P")
ProductT = TypeVar("ProductT")
ConfigT = TypeVar("ConfigT")


class Registry(Generic[P, ProductT]):
    """Config class → builder, for one extension point (``kind``: ``"sink"``, …).

    ``Registry[[str, SinkContext], Sink]`` builds a ``Sink`` from a config and the
    arguments ``(name, context)``. Lookup is by the exact class of the config (the union
    member pydantic chose), never by isinstance, so a subclass is not silently built as its
    parent. Iterating yields the registered config classes."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[type[Any], Callable[Concatenate[Any, P], ProductT]] = {}

    def register(
        self, config_class: type[ConfigT], builder: Callable[Concatenate[ConfigT, P], ProductT]
    ) -> None:
        """Build ``config_class`` configs with ``builder``; a class registers once."""
        if config_class in self._builders:
            raise ValueError(f"{self.kind} config {config_class.__name__} is already registered")
        self._builders[config_class] = builder

    def build(self, config: object, /, *args: P.args, **kwargs: P.kwargs) -> ProductT:
        """The product ``config`` describes. Raises :class:`~listener.errors.UnknownType`
        (a ValueError naming the known types) when its class is not registered."""
        builder = self._builders.get(type(config))
        if builder is None:
            raise UnknownType(
                f"no {self.kind} is registered for {type(config).__name__}; "
                f"known types: {', '.join(self.names())}"
            )
        return builder(config, *args, **kwargs)

    def names(self) -> list[str]:
        """The ``type`` tags of the registered configs, sorted (for error hints)."""
        return sorted(type_tag(cls) for cls in self._builders)

    def __iter__(self) -> Iterator[type[Any]]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def __contains__(self, config_class: object) -> bool:
        return config_class in self._builders

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def type_tag(config_class: type[Any]) -> str:
    """The ``type`` tag of a config class (``type: Literal["rss"]`` → ``rss``), else its
    class name."""
    field = config_class.model_fields.get("type") if issubclass(config_class, BaseModel) else None
    args = get_args(field.annotation) if field is not None else ()
    return str(args[0]) if args else config_class.__name__
