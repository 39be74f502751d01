"""Build the runtime collectors and sinks a config describes.

Constructors validate what the schema cannot (an X query term too long for the API, a
malformed regex, a bad library setting). Their errors become one
:class:`~listener.errors.ConfigError` naming the source or sink, so ``listener check``
and ``listener run`` (startup and SIGHUP) report them like any other config problem.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from listener.collectors import build_collector
from listener.collectors.base import Collector
from listener.config.load import line_of
from listener.config.schema import Config
from listener.errors import ConfigError, ConfigProblem
from listener.sinks import build_sink
from listener.sinks.base import Sink, SinkContext


def build_collectors(config: Config, file: str) -> dict[str, Collector]:
    """Every configured collector, or a ConfigError listing each one that failed."""
    built: dict[str, Collector] = {}
    problems: list[ConfigProblem] = []
    for name, cfg in config.sources.items():
        try:
            built[name] = build_collector(name, cfg, config.brands)
        except Exception as exc:  # a constructor's validation error, whatever its type
            problems.append(_problem(file, ("sources", name), exc))
    if problems:
        for collector in built.values():
            with contextlib.suppress(Exception):
                collector.close()
        raise ConfigError(problems)
    return built


def build_sinks(
    config: Config, file: str, context: Callable[[str], SinkContext] | None = None
) -> dict[str, Sink]:
    """Every configured sink, or a ConfigError listing each one that failed.

    ``context(name)`` gives each sink its durable state and clock (default: in memory).
    """
    built: dict[str, Sink] = {}
    problems: list[ConfigProblem] = []
    for name, cfg in config.sinks.items():
        try:
            built[name] = build_sink(name, cfg, context(name) if context else None)
        except Exception as exc:
            problems.append(_problem(file, ("sinks", name), exc))
    if problems:
        raise ConfigError(problems)
    return built


def _problem(file: str, path: tuple[str, str], exc: Exception) -> ConfigProblem:
    message = str(exc) or type(exc).__name__
    return ConfigProblem(file, line_of(file, path), ".".join(path), message)
