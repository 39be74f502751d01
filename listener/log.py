"""Structured logging, configured once.

JSON lines when standard error is not a terminal (production, containers), a
readable console renderer when it is (in colour, unless ``NO_COLOR`` is set). A
redaction processor removes secrets (tokens, webhook URLs, header values from the
config) from every event before it is rendered, whatever key they were logged under.
Logging never breaks the daemon: a line that cannot be written (standard error is a
closed pipe, ``listener run | head``) is dropped and counted in :data:`WRITE_ERRORS`
(the daemon exports it as ``listener_log_write_errors_total``), never raised into the
code that logged it. APScheduler's own stdlib log records (warning and above) go
through the same chain, so they are structured too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, MutableMapping
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


class WriteErrors:
    """How many log lines could not be written; callbacks run once per lost line."""

    def __init__(self) -> None:
        self.count = 0
        self._hooks: list[Callable[[], None]] = []

    def subscribe(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` for every lost line from now on; returns the unsubscribe call."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    def lost(self) -> None:
        self.count += 1
        for hook in list(self._hooks):
            with contextlib.suppress(Exception):
                hook()


WRITE_ERRORS = WriteErrors()


class LogOutput:
    """Where rendered lines go: one write and flush per line, and never an exception.

    A write error is counted in :data:`WRITE_ERRORS` and the line dropped. A broken pipe
    is for good: the stream's descriptor is pointed at ``/dev/null`` (so the interpreter's
    exit flush cannot fail either) and every later line is counted as lost, unwritten.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.broken = False
        self._lock = threading.Lock()

    def write_line(self, line: str) -> None:
        with self._lock:
            if not self.broken:
                try:
                    self.stream.write(line + "\n")
                    self.stream.flush()
                    return
                except ValueError:  # the stream object was closed
                    self.broken = True
                except OSError as exc:
                    if exc.errno in (errno.EPIPE, errno.EBADF):
                        self.broken = True
                        self._silence()
        WRITE_ERRORS.lost()

    def _silence(self) -> None:
        """Point the broken descriptor at /dev/null and drop what is still buffered."""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fd = self.stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
            self.stream.flush()


class SafeLogger:
    """structlog's final logger: hands each rendered line to a :class:`LogOutput`."""

    def __init__(self, output: LogOutput) -> None:
        self._output = output

    def msg(self, message: str) -> None:
        self._output.write_line(message)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


class _ToStructlog(logging.Handler):
    """A stdlib handler that re-emits records through structlog (structured, redacted)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            structlog.get_logger(record.name).log(record.levelno, record.getMessage(), **fields)
        except Exception:  # a handler never raises into the library that logged
            WRITE_ERRORS.lost()


ROUTED_STDLIB_LOGGERS = {
    "apscheduler": logging.WARNING,
    "quixstreams": logging.INFO,
    "uvicorn": logging.ERROR,
}
"""Libraries whose stdlib loggers go through structlog, each from its level up (Quix
Streams' info lines say what a worker of distributed mode was given: partitions, state
recovered, topics made; uvicorn's warnings are each malformed request a client sent, a
flood anyone could cause, and its errors a failure of the server)."""


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
        keep_event_level,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if fmt == "json" else _noop,
        REDACTOR,
        renderer,
    ]
    output = LogOutput(out)
    min_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        logger_factory=lambda *args: SafeLogger(output),
        cache_logger_on_first_use=False,
    )
    for name, floor in ROUTED_STDLIB_LOGGERS.items():
        stdlib = logging.getLogger(name)
        stdlib.handlers = [_ToStructlog()]
        stdlib.setLevel(max(floor, min_level))
        stdlib.propagate = False


def keep_event_level(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """``level`` is the line's log level: an event's own ``level`` field (an incident's
    or a silence's) is kept as ``severity`` instead of being overwritten."""
    if "level" in event_dict:
        value = event_dict.pop("level")
        event_dict.setdefault("severity", value)
    return event_dict


def _noop(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return event_dict
