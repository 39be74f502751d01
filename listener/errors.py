"""The one exception tree of listener.

Third-party errors are translated into these at the boundary where they happen
(collectors, sinks, store, config loading); the CLI turns any of them into one line.

    ListenerError
    ├── UsageError             the command line is wrong: a bad flag value, a missing argument
    │   └── BacktestUsageError   a flag of ``listener backtest`` (``--map``); also a BacktestError
    ├── ConfigError            rules.yaml cannot be used (carries one ConfigProblem per problem)
    ├── DurationError          not a duration, or out of range (also a ValueError)
    ├── UnknownType            no builder is registered for a config class (also a ValueError)
    ├── QuerySyntaxError       a brand query cannot be compiled (position, hint)
    ├── CategoryError          a crisis category cannot be used (also a ValueError)
    ├── ScorerError            a sentiment scorer cannot be built (extra, model, device, labels)
    ├── BacktestError          the input of ``listener backtest`` cannot be used
    │   └── BacktestUsageError   (also a UsageError, above)
    ├── ReportExtraMissing     ``listener report`` needs matplotlib (the ``report`` extra)
    ├── StoreError             the SQLite state file cannot be opened or written
    ├── BrandStateError        a brand's Evaluate state cannot be handed over: malformed, or
    │   │                      not of the brand it names
    │   └── BrandHeld          the brand is already held where it was to be adopted (or is
    │                          not held where it was to be exported)
    ├── BusError               the message bus of distributed mode cannot be used (a bad
    │   │                      LISTENER_BUS, the broker or its client library missing)
    │   └── MessageError       a message on a topic is not what its topic carries
    ├── CollectorError         a source could not be polled
    │   ├── SourceUnavailable  5xx, timeout, connection refused (retry with backoff)
    │   │   └── PollTimeout    the whole poll ran past LISTENER_POLL_TIMEOUT (or still runs)
    │   ├── RateLimited        429; carries ``retry_after`` seconds when the source said so
    │   ├── SourceRejected     4xx other than 408/429 (bad URL, bad credentials)
    │   │   ├── RedirectRefused  a redirect to a loopback/private/link-local/… address
    │   │   ├── _Rejected      collectors.bluesky: a 4xx with its XRPC error name
    │   │   └── CommentsDisabled collectors.youtube: one video's comments are off (a
    │   │                        partial failure of the poll)
    │   └── MalformedResponse  the body could not be parsed, or was larger than the cap
    ├── SinkError              an alert could not be delivered
    │   ├── SinkUnavailable    5xx, timeout, connection refused, 429 (retry with backoff)
    │   │   └── _Unavailable   sinks.slack: a retryable Slack failure (``rate_limited`` for 429)
    │   └── SinkRejected       4xx other than 408/429: retrying will not help
    │       └── _Rejected      sinks.slack: a Slack API error code retrying will not fix
    ├── RequestError           a request (HTTP API or CLI) cannot be served as sent; ``status``
    │   │                      is the HTTP answer, ``field`` names the field at fault
    │   ├── InvalidRequest     400: malformed, or a field of the wrong type, length or value
    │   ├── NotFound           404: no such incident or silence
    │   ├── Conflict           409: the current state forbids it (already acknowledged, resolved)
    │   └── RequestTooLarge    413/414/431: the body, request line or headers over their limit
    │
    │   Signals that never leave the module raising them (translated there into one of the
    │   above); in the tree so that nothing listener raises is outside it:
    ├── ResponseTooLarge       collectors.requests_http: a body over the cap (also a
    │                          requests RequestException, so the client libraries wrap it)
    ├── _StopRequest           collectors.reddit: the session refuses to send (prawcore wraps it)
    │   ├── _QuotaSpent        the rate-limit window is spent
    │   ├── _PagesSpent        the stream's page budget is used up
    │   └── _Unavailable       a timeout, connection error or retryable status
    ├── _Refused               config.load: a YAML feature or size rules.yaml refuses (also a
    │                          yaml.YAMLError, so PyYAML's callers see a YAML error)
    ├── _Unsupported           scoring.gates: regex syntax the pattern reader does not know
    │                          (the pattern then has no gates and is tried on every text)
    └── _TooLarge              sinks.http: a receiver's answer over the cap (the body is ignored)

``tests/unit/test_errors.py`` keeps this diagram complete: it imports every module of
the package and checks that every exception class defined in it is a ListenerError and
appears here under one of its bases.
"""

from __future__ import annotations

from dataclasses import dataclass

from listener.retry_after import clamp_retry_after


class ListenerError(Exception):
    """Base of every error listener raises on purpose (and of every exception class
    defined in the package)."""

    error_type = "error"


class UsageError(ListenerError):
    """The command line cannot be used as given (the CLI exits 2, like a config error)."""

    error_type = "usage"


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


class DurationError(ListenerError, ValueError):
    """A duration that cannot be used: not one of the accepted forms, negative, not
    finite, or longer than the maximum. ``str()`` is the message and the hint together;
    ``message`` and ``hint`` are the parts (for a ConfigProblem)."""

    error_type = "duration"

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} (hint: {hint})" if hint else message)


class UnknownType(ListenerError, ValueError):
    """A config class that no builder is registered for in a
    :class:`~listener.registry.Registry`; the message lists the known ``type`` tags."""

    error_type = "unknown_type"


class StoreError(ListenerError):
    """The state store could not be opened or written."""

    error_type = "store"


class BrandStateError(ListenerError):
    """A brand's Evaluate state (``listener.rules.brand_state.BrandState``) cannot be
    handed from one worker to another: its JSON is malformed, or a part of it belongs to
    another brand."""

    error_type = "brand_state"


class BrandHeld(BrandStateError):
    """A brand cannot be adopted where it is already held (its state would be merged
    into state of the same brand), or exported from where it is not held."""

    error_type = "brand_held"


class BusError(ListenerError):
    """The message bus of distributed mode (``LISTENER_BUS``, a Kafka-protocol broker) cannot
    be used: its address is malformed, the client library is not installed, or the broker
    refuses what is asked of it."""

    error_type = "bus"


class MessageError(BusError):
    """A message read from a topic is not what the topic carries (not JSON, a missing or
    wrongly typed field, an unknown format version). The message is skipped and counted;
    the worker keeps consuming."""

    error_type = "message"


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
    """The source answered 429. ``retry_after`` is in seconds when the source said so
    (at most :data:`~listener.retry_after.MAX_RETRY_AFTER`; a non-finite or negative
    value is dropped)."""

    error_type = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = clamp_retry_after(retry_after)


class SourceRejected(CollectorError):
    """The source answered 4xx (other than 408/429): a wrong URL or credentials."""

    error_type = "rejected"


class RedirectRefused(SourceRejected):
    """The source redirected (or linked) to an address the collector may not reach: a
    loopback, link-local, private, unspecified, multicast or reserved address that the
    configured URL is not (see :mod:`listener.collectors.redirects`). Nothing was sent
    there."""

    error_type = "redirect_refused"


class MalformedResponse(CollectorError):
    """The source's answer could not be parsed, or exceeded the size cap."""

    error_type = "malformed"


class SinkError(ListenerError):
    """An alert could not be delivered to a sink. ``retry_after``: seconds the receiver
    asked for (at most :data:`~listener.retry_after.MAX_RETRY_AFTER`; a non-finite or
    negative value is dropped)."""

    error_type = "sink"
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = clamp_retry_after(retry_after)


class SinkUnavailable(SinkError):
    """The receiver answered 5xx/408/429, timed out or refused the connection."""

    error_type = "unavailable"


class SinkRejected(SinkError):
    """The receiver rejected the alert (4xx); retrying will not help."""

    error_type = "rejected"
    retryable = False


class RequestError(ListenerError):
    """A request cannot be served as sent. ``status`` is the HTTP status the API answers
    with; ``field`` names the request field at fault when there is one."""

    error_type = "request"
    status = 400

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message)
        self.field = field
        if status is not None:
            self.status = status


class InvalidRequest(RequestError):
    """A malformed request, or a field of the wrong type, length or value (400)."""

    error_type = "invalid"


class NotFound(RequestError):
    """No such incident or silence (404)."""

    error_type = "not_found"
    status = 404


class Conflict(RequestError):
    """The request conflicts with the current state: already acknowledged, resolved (409)."""

    error_type = "conflict"
    status = 409


class RequestTooLarge(RequestError):
    """The body (413), the request line (414) or the header section (431) is over its limit."""

    error_type = "too_large"
    status = 413
