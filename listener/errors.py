"""The one exception tree of listener.

Third-party errors are translated into these at the boundary where they happen
(collectors, sinks, store, config loading); the CLI turns any of them into one line.

    ListenerError
    ├── ConfigError            rules.yaml cannot be used (carries one ConfigProblem per problem)
    ├── StoreError             the SQLite state file cannot be opened or written
    ├── CollectorError         a source could not be polled
    │   ├── SourceUnavailable  5xx, timeout, connection refused (retry with backoff)
    │   │   └── PollTimeout    the whole poll ran past LISTENER_POLL_TIMEOUT (or still runs)
    │   ├── RateLimited        429; carries ``retry_after`` seconds when the source said so
    │   ├── SourceRejected     4xx other than 408/429 (bad URL, bad credentials)
    │   └── MalformedResponse  the body could not be parsed, or was larger than the cap
    └── SinkError              an alert could not be delivered
        ├── SinkUnavailable    5xx, timeout, connection refused, 429 (retry with backoff)
        └── SinkRejected       4xx other than 408/429: retrying will not help
"""

from __future__ import annotations

from dataclasses import dataclass


class ListenerError(Exception):
    """Base of every error listener raises on purpose."""

    error_type = "error"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file: where it is and how to fix it."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class ConfigError(ListenerError):
    """The config file is invalid. ``problems`` lists every problem found."""

    error_type = "config"

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StoreError(ListenerError):
    """The state store could not be opened or written."""

    error_type = "store"


class CollectorError(ListenerError):
    """A source could not be polled. The pipeline logs it once, counts it and backs off."""

    error_type = "collector"


class SourceUnavailable(CollectorError):
    """The source answered 5xx, timed out or refused the connection."""

    error_type = "unavailable"


class PollTimeout(SourceUnavailable):
    """A poll ran past its deadline. Its worker thread cannot be stopped: no new poll of
    the source starts until that thread has ended."""

    error_type = "poll_timeout"


class RateLimited(CollectorError):
    """The source answered 429. ``retry_after`` is in seconds when the source said so."""

    error_type = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceRejected(CollectorError):
    """The source answered 4xx (other than 408/429): a wrong URL or credentials."""

    error_type = "rejected"


class MalformedResponse(CollectorError):
    """The source's answer could not be parsed, or exceeded the size cap."""

    error_type = "malformed"


class SinkError(ListenerError):
    """An alert could not be delivered to a sink."""

    error_type = "sink"
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SinkUnavailable(SinkError):
    """The receiver answered 5xx/408/429, timed out or refused the connection."""

    error_type = "unavailable"


class SinkRejected(SinkError):
    """The receiver rejected the alert (4xx); retrying will not help."""

    error_type = "rejected"
    retryable = False
