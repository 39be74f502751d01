"""Structured logging, configured once.

JSON lines when standard error is not a terminal (production, containers), a
readable console renderer when it is (in colour, unless ``NO_COLOR`` is set). A
redaction processor removes secrets (tokens, webhook URLs, header values from the
config) from every event before it is rendered, whatever key they were logged under.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog

REDACTED = "***"
_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api[_-]?key|webhook_url)", re.I)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>https?://)[^/\s:@]+:[^/\s@]+@")
_URL_QUERY_SECRET = re.compile(r"(?i)([?&](?:token|key|secret|sig|signature|access_token)=)[^&\s]+")


class Redactor:
    """A structlog processor that hides configured secrets and secret-looking values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Replace the set of literal secrets (called again after a config reload)."""
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact_text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
        return _URL_QUERY_SECRET.sub(r"\1***", text)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {
                k: REDACTED if _SECRET_KEYS.search(str(k)) else self._value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._value(v) for v in value]
        if isinstance(value, BaseException):
            return self.redact_text(f"{type(value).__name__}: {value}")
        return value

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key != "event" and _SECRET_KEYS.search(key):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._value(event_dict[key])
        return event_dict


REDACTOR = Redactor()


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process. Safe to call more than once."""
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        # colours only on a terminal, and never with NO_COLOR set (https://no-color.org)
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty() and not os.environ.get("NO_COLOR")
        )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if fmt == "json" else _noop,
        REDACTOR,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def _noop(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return event_dict
