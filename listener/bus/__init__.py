"""The message bus of distributed mode: Kafka-protocol topics, read and written through
Quix Streams (``docs/scaling.md``).

Embedded mode (``listener run``, the default) needs none of this: its stages hand work to
each other in memory. In distributed mode each stage runs as its own role (``listener run
--role ROLE``) and they meet on topics of a Kafka-protocol broker named by
``LISTENER_BUS``::

    kafka://HOST:PORT[,HOST:PORT...][?prefix=listener&partitions=6&replication=1
                                      &retention=7d&retention_bytes=-1
                                      &guarantee=at-least-once&batch=0]

Topics (``{prefix}.{name}``), each created when missing with explicit ``retention.ms`` and
``retention.bytes`` (Quix Streams reads both back, and some brokers report neither):

* ``mentions``: raw mentions as collected, keyed by ``[source, id]`` (JSON), the value a
  :meth:`~listener.model.Mention.to_dict` object with ``"v": 1`` (and ``"backfill":
  true`` when it came from a source's first poll, reaching into history);
* ``scored``: each mention that matched a brand, once per brand, keyed by the brand, the
  value ``{"v": 1, "brand": ..., "scored": ScoredMention.to_dict()}`` (``"backfill":
  true`` carried on from its raw message: the brand's evaluator keeps it from opening an
  incident until that history has left the longest rule window, as embedded mode does);
* ``ticks``: the time reaching a brand, keyed by the brand, the value
  ``{"v": 1, "brand": ..., "at": "<ISO 8601 instant>"}`` (the brand's evaluator runs the
  rules at that instant);
* ``alerts``: what an evaluation decided, keyed by the incident id, the value
  ``{"v": 1, "alert": Alert.to_dict(), "sinks": [...], "event": {...}, "notice": {...}}``
  (no sinks: muted or routed nowhere; it still records the incident). ``event`` (the
  rule engine's event behind it; absent for reminders, acknowledgements and hand-offs)
  and ``notice`` (what the notification policy decided, stamped with the evaluation's
  instant) are what the deliver role records in the shared state;
* ``commands``: what people decided, keyed by the brand, for the brand's evaluator: an
  acknowledgement (``{"v": 1, "brand": ..., "command": "ack", "incident_id": ..., "by":
  ..., "at": ..., "note": ...}``), a silence (``"command": "silence"``, one message per
  brand it may mute) or a silence ended (``"command": "expire"``).

Messages are decoded here (:func:`decode_mention`, :func:`decode_scored`,
:func:`decode_event`, :func:`decode_alert`; an alert's record:
:mod:`listener.bus.alerts`): one that is not
what its topic carries raises :class:`~listener.errors.MessageError`, which the roles
count and skip. Pure but for :func:`quix_app`, which builds the client application.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, get_args
from urllib.parse import parse_qsl, urlsplit

from listener.clock import as_utc
from listener.config.duration import parse_duration
from listener.errors import BusError, DurationError, MessageError
from listener.model import Ack, Alert, Mention, ScoredMention, Silence

if TYPE_CHECKING:
    from quixstreams import Application
    from quixstreams.models.topics import Topic

__all__ = [
    "FORMAT",
    "TOPICS",
    "AppWatch",
    "Bus",
    "Command",
    "Guarantee",
    "Scored",
    "ack_command",
    "decode_alert",
    "decode_command",
    "decode_event",
    "decode_mention",
    "decode_raw",
    "decode_scored",
    "encode_mention",
    "encode_scored",
    "expire_command",
    "instant",
    "mention_key",
    "mention_message",
    "quix_app",
    "scored_message",
    "silence_command",
    "silence_from",
    "silence_value",
    "tick_message",
    "topic",
]

FORMAT: Final = 1
"""The version of the messages' JSON (``"v"``); a reader refuses any other."""

Guarantee = Literal["at-least-once", "exactly-once"]
TopicName = Literal["mentions", "scored", "ticks", "alerts", "commands"]
TOPICS: Final[tuple[TopicName, ...]] = get_args(TopicName)

_HINT: Final = "e.g. LISTENER_BUS=kafka://127.0.0.1:9092 (docs/scaling.md)"


@dataclass(frozen=True, slots=True)
class Bus:
    """Where distributed mode's topics live and how they are made (see the module)."""

    brokers: str
    """``host:port`` pairs, comma-separated (the client's ``bootstrap.servers``)."""
    prefix: str = "listener"
    partitions: int = 6
    """Partitions of a topic this makes: the most workers of one role that share work."""
    replication: int = 1
    """Replicas of each partition of a topic this makes (3 on a production cluster)."""
    retention: timedelta = timedelta(days=7)
    retention_bytes: int = -1
    """Per partition; -1: no size limit (the time limit applies)."""
    guarantee: Guarantee = "at-least-once"
    """Quix Streams' processing guarantee. ``exactly-once`` needs a broker whose
    transactions work (Apache Kafka, Redpanda; not tansu, which never aborts the
    transaction of a producer that died)."""
    batch: int = 0
    """Records per batch a producer sends, at most (librdkafka's ``batch.num.messages``);
    0: the client's default (10,000). tansu 0.6 needs 1: it reports a partition's end as
    one past the first record of its last batch, so a worker given back a partition whose
    state it holds would find the changelog shorter than its state and refuse it."""

    @classmethod
    def parse(cls, url: str) -> Bus:
        """The bus ``url`` names (the module's syntax); :class:`BusError` naming what is
        wrong otherwise."""
        parts = urlsplit(url.strip())
        if parts.scheme != "kafka":
            raise BusError(f"LISTENER_BUS: {url!r} is not a kafka:// URL ({_HINT})")
        if parts.path not in ("", "/") or parts.fragment or "@" in parts.netloc:
            raise BusError(
                f"LISTENER_BUS: {url!r}: only hosts, ports and query settings go in it ({_HINT})"
            )
        brokers = [b.strip() for b in parts.netloc.split(",")]
        for broker in brokers:
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise BusError(
                    f"LISTENER_BUS: {broker!r} is not HOST:PORT ({_HINT})"
                    if broker
                    else f"LISTENER_BUS: {url!r} names no broker ({_HINT})"
                )
        return cls(",".join(brokers), **_options(dict(parse_qsl(parts.query, True)), url))

    def name(self, topic: TopicName) -> str:
        """The full name of one of :data:`TOPICS`."""
        return f"{self.prefix}.{topic}"

    def group(self, role: str) -> str:
        """The consumer group of a role's workers."""
        return f"{self.prefix}-{role}"


def _options(query: Mapping[str, str], url: str) -> dict[str, Any]:
    known = {
        "prefix",
        "partitions",
        "replication",
        "retention",
        "retention_bytes",
        "guarantee",
        "batch",
    }
    unknown = sorted(set(query) - known)
    if unknown:
        raise BusError(
            f"LISTENER_BUS: unknown setting {unknown[0]!r} in {url!r} "
            f"(known: {', '.join(sorted(known))})"
        )
    out: dict[str, Any] = {}
    if "prefix" in query:
        prefix = query["prefix"]
        if not prefix or not all(c.isalnum() or c in "-_." for c in prefix):
            raise BusError(
                f"LISTENER_BUS: prefix {prefix!r}: use letters, digits, '-', '_' and '.'"
            )
        out["prefix"] = prefix
    for name in ("partitions", "replication", "retention_bytes", "batch"):
        if name in query:
            value = query[name]
            low = {"retention_bytes": -1, "batch": 0}.get(name, 1)
            if not value.lstrip("-").isdigit() or int(value) < low:
                raise BusError(f"LISTENER_BUS: {name}={value!r}: a whole number >= {low}")
            out[name] = int(value)
    if "retention" in query:
        try:
            retention = parse_duration(query["retention"])
        except DurationError as exc:
            raise BusError(f"LISTENER_BUS: retention={query['retention']!r}: {exc}") from None
        if retention <= timedelta(0):
            raise BusError("LISTENER_BUS: retention must be more than 0s")
        out["retention"] = retention
    if "guarantee" in query:
        guarantee = query["guarantee"]
        if guarantee not in get_args(Guarantee):
            raise BusError(f"LISTENER_BUS: guarantee={guarantee!r}: at-least-once or exactly-once")
        out["guarantee"] = guarantee
    return out


# --------------------------------------------------------------------------- messages


def mention_key(mention: Mention) -> str:
    """The key of a raw mention: its ``(source, id)`` as a JSON array."""
    return json.dumps([mention.source, mention.id], ensure_ascii=False)


def mention_message(mention: Mention, *, backfill: bool = False) -> dict[str, Any]:
    """The value of a raw mention's message, as a JSON-ready object (``backfill``: it
    came from a source's first poll)."""
    return {"v": FORMAT, **mention.to_dict(), **({"backfill": True} if backfill else {})}


def scored_message(scored: ScoredMention, brand: str, *, backfill: bool = False) -> dict[str, Any]:
    """The value of a scored mention's message for one of the brands it matched."""
    return {
        "v": FORMAT,
        "brand": brand,
        "scored": scored.to_dict(),
        **({"backfill": True} if backfill else {}),
    }


def tick_message(brand: str, at: datetime) -> dict[str, Any]:
    """The value of a tick: ``brand``'s evaluator runs the rules at ``at``."""
    return {"v": FORMAT, "brand": brand, "at": as_utc(at).isoformat()}


def encode_mention(mention: Mention, *, backfill: bool = False) -> bytes:
    """:func:`mention_message` as the bytes of a message."""
    return json.dumps(mention_message(mention, backfill=backfill), ensure_ascii=False).encode()


def encode_scored(scored: ScoredMention, brand: str, *, backfill: bool = False) -> bytes:
    """:func:`scored_message` as the bytes of a message."""
    return json.dumps(scored_message(scored, brand, backfill=backfill), ensure_ascii=False).encode()


def _backfill(data: Mapping[str, Any], what: str) -> bool:
    value = data.get("backfill", False)
    if not isinstance(value, bool):
        raise MessageError(f"{what}: backfill: not true or false")
    return value


def _object(value: bytes | str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"{what}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MessageError(f"{what}: not a JSON object")
    if data.get("v") != FORMAT:
        raise MessageError(f"{what}: format {data.get('v')!r}, this worker reads {FORMAT}")
    return data


def decode_mention(value: bytes | str) -> Mention:
    """The mention a raw message carries; :class:`MessageError` when it carries none."""
    return decode_raw(value)[0]


def decode_raw(value: bytes | str) -> tuple[Mention, bool]:
    """The mention a raw message carries and whether it is a backfill;
    :class:`MessageError` when it carries none."""
    data = _object(value, "raw mention")
    backfill = _backfill(data, "raw mention")
    data.pop("backfill", None)
    try:
        return Mention.from_dict(data), backfill
    except (KeyError, ValueError, TypeError) as exc:
        raise MessageError(f"raw mention: {_describe(exc)}") from None


@dataclass(frozen=True, slots=True)
class Scored:
    """A scored mention as it reaches the evaluator of one of its brands."""

    brand: str
    scored: ScoredMention
    backfill: bool = False


def decode_scored(value: bytes | str) -> tuple[str, ScoredMention]:
    """The brand and scored mention a scored message carries; :class:`MessageError` when it
    carries none, or names a brand the mention did not match."""
    got = _scored(_object(value, "scored mention"))
    return got.brand, got.scored


def _scored(data: dict[str, Any]) -> Scored:
    try:
        brand = data["brand"]
        scored = ScoredMention.from_dict(data["scored"])
    except (KeyError, ValueError, TypeError) as exc:
        raise MessageError(f"scored mention: {_describe(exc)}") from None
    if not isinstance(brand, str) or brand not in scored.brands:
        raise MessageError(f"scored mention: brand {brand!r} is not one it matched")
    return Scored(brand, scored, _backfill(data, "scored mention"))


@dataclass(frozen=True, slots=True)
class Command:
    """What people decided about a brand's alerts, for the evaluator that holds the brand
    (the ``commands`` topic): an acknowledgement of one of its incidents (``ack`` with
    ``incident_id``), a silence that covers it (``silence``), or a silence ended
    (``expire``: ``silence_id`` at ``at``)."""

    brand: str
    incident_id: str | None = None
    ack: Ack | None = None
    silence: Silence | None = None
    silence_id: str | None = None
    at: datetime | None = None


def ack_command(brand: str, incident_id: str, ack: Ack) -> dict[str, Any]:
    """The value of a command: ``incident_id`` (of ``brand``) was acknowledged."""
    return {
        "v": FORMAT,
        "brand": brand,
        "command": "ack",
        "incident_id": incident_id,
        "by": ack.by,
        "at": as_utc(ack.at).isoformat(),
        "note": ack.note,
    }


def silence_command(brand: str, silence: Silence) -> dict[str, Any]:
    """The value of a command: ``silence`` covers ``brand`` (one per brand it may mute)."""
    return {
        "v": FORMAT,
        "brand": brand,
        "command": "silence",
        "silence": {"id": silence.id, **silence_value(silence)},
    }


def silence_value(silence: Silence) -> dict[str, Any]:
    """A silence as JSON (but its id): in a command, and in an evaluator's state."""
    return {
        "brand": silence.brand,
        "rule": silence.rule,
        "level": silence.level,
        "starts_at": as_utc(silence.starts_at).isoformat(),
        "ends_at": as_utc(silence.ends_at).isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
    }


def silence_from(silence_id: str, value: Mapping[str, Any]) -> Silence:
    """The silence :func:`silence_value` wrote (``KeyError``, ``TypeError``,
    :class:`MessageError` when it is not one)."""
    return Silence(
        id=silence_id,
        starts_at=instant(value["starts_at"], "silence"),
        ends_at=instant(value["ends_at"], "silence"),
        created_by=str(value["created_by"]),
        comment=str(value["comment"]),
        brand=value.get("brand"),
        rule=value.get("rule"),
        level=value.get("level"),
    )


def expire_command(brand: str, silence_id: str, at: datetime) -> dict[str, Any]:
    """The value of a command: the silence ``silence_id`` ended at ``at``."""
    return {
        "v": FORMAT,
        "brand": brand,
        "command": "expire",
        "silence_id": silence_id,
        "at": as_utc(at).isoformat(),
    }


def decode_command(value: bytes | str) -> Command:
    """The command a ``commands`` message carries; :class:`MessageError` otherwise."""
    data = _object(value, "command")
    brand, kind = data.get("brand"), data.get("command")
    if not isinstance(brand, str) or not brand:
        raise MessageError("command: no brand")
    try:
        if kind == "ack":
            return Command(
                brand,
                incident_id=str(data["incident_id"]),
                ack=Ack(str(data["by"]), instant(data["at"], "ack"), str(data.get("note", ""))),
            )
        if kind == "silence":
            return Command(brand, silence=silence_from(str(data["silence"]["id"]), data["silence"]))
        if kind == "expire":
            return Command(
                brand, silence_id=str(data["silence_id"]), at=instant(data["at"], "expire")
            )
    except (KeyError, TypeError, AttributeError) as exc:
        raise MessageError(f"command: {_describe(exc)}") from None
    raise MessageError(f"command: unknown command {kind!r} (ack, silence, expire)")


def decode_event(value: bytes | str) -> tuple[str, Scored | datetime | Command]:
    """What reaches a brand's evaluator: a scored mention (``scored``), a tick (``ticks``)
    or a command (``commands``), with the brand; :class:`MessageError` when the message is
    none of them."""
    data = _object(value, "evaluator message")
    if "scored" in data:
        got = _scored(data)
        return got.brand, got
    if "command" in data:
        command = decode_command(value)
        return command.brand, command
    brand, at = data.get("brand"), data.get("at")
    if not isinstance(brand, str) or not brand or not isinstance(at, str):
        raise MessageError("evaluator message: neither a scored mention nor a tick")
    return brand, instant(at, "tick")


def instant(value: Any, what: str) -> datetime:
    """``value`` as a UTC instant (ISO 8601 with an offset); :class:`MessageError` naming
    ``what`` otherwise."""
    if not isinstance(value, str):
        raise MessageError(f"{what}: not an ISO 8601 instant")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise MessageError(f"{what}: {value!r} is not an ISO 8601 instant") from None
    if when.tzinfo is None:
        raise MessageError(f"{what}: {value!r} has no UTC offset")
    return as_utc(when)


def decode_alert(value: bytes | str) -> tuple[Alert, tuple[str, ...]]:
    """The alert and sinks an alert message carries; :class:`MessageError` otherwise."""
    data = _object(value, "alert")
    try:
        alert = Alert.from_dict(data["alert"])
        sinks = data["sinks"]
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise MessageError(f"alert: {_describe(exc)}") from None
    if not isinstance(sinks, list) or not all(isinstance(s, str) for s in sinks):
        raise MessageError("alert: sinks is not a list of names")
    return alert, tuple(sinks)


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------- Quix Streams

CONSUMER: Final[Mapping[str, int]] = {
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
    "max.poll.interval.ms": 10_000,
}
"""Consumer settings of every role: a worker that dies is noticed within 10 s (its
partitions go to the others), and a group forms within seconds: some brokers (tansu)
hold a join for the whole poll interval, 5 minutes by the client's default. A worker
handles each message in well under the 10 s allowed between polls."""


BUFFER: Final = 1000
"""Messages a worker takes from the broker per partition at a time (Quix Streams'
``max_partition_buffer_size``; its default is 10,000). It must poll within
``max.poll.interval.ms`` (10 s) or lose its partitions, so it polls again every 2 s
while it works through them (:func:`pace`): 1,000 ticks of an evaluator at 1,000 brands
take about 10 s, 1,000 mentions through VADER a quarter of a second. A worker whose
messages cost more (the transformers backend on CPU) asks for fewer (``buffer`` of
:func:`quix_app`); fewer than about 1,000 slow the evaluator's counting down several
times (bench/scale.py)."""


POLL_EVERY: Final = 2.0
"""Seconds a worker may take messages from its buffer before it polls the broker again
(well within ``max.poll.interval.ms``; see :func:`pace`)."""


REQUEST_TIMEOUT: Final = 10.0
"""Seconds a worker waits for the broker's answer to a metadata or admin request."""


class AppWatch(Protocol):
    """What a worker wants told of its application (``listener.roles.watch.Watch``)."""

    def starting(self) -> None: ...

    def assigned(self, partitions: Sequence[Any]) -> None: ...

    def revoked(self, partitions: Sequence[Any], *, lost: bool = False) -> None: ...

    def recovered(self, seconds: float) -> None: ...


def quix_app(
    bus: Bus,
    role: str,
    state_dir: str,
    *,
    watch: AppWatch | None = None,
    buffer: int = BUFFER,
) -> Application:
    """The Quix Streams application of one role's worker (consumer group
    ``{prefix}-{role}``, state under ``state_dir``), telling ``watch`` of its partition
    assignments and state recoveries; :class:`BusError` when the ``kafka`` extra is not
    installed."""
    try:
        from quixstreams import Application
    except ImportError:
        raise BusError(
            "distributed mode needs the kafka extra: pip install 'listener[kafka]'"
        ) from None
    kind: type[Application] = Application if watch is None else _watched(Application, watch)
    app = kind(
        broker_address=bus.brokers,
        consumer_group=bus.group(role),
        auto_offset_reset="earliest",
        processing_guarantee=bus.guarantee,
        state_dir=state_dir,
        consumer_extra_config=dict(CONSUMER),
        producer_extra_config={"batch.num.messages": bus.batch} if bus.batch else None,
        # a broker that does not answer a metadata or admin request within 10 s counts as
        # unreachable: the worker says so and tries again (listener.roles.supervise)
        request_timeout=REQUEST_TIMEOUT,
        loglevel=None,  # listener's logging (listener.log) is configured by then
        max_partition_buffer_size=buffer,
    )
    if watch is not None:  # the restore from the changelog, timed
        manager = app._state_manager  # Quix Streams has no hook for it
        recover = manager.do_recovery

        def timed() -> None:
            began = time.monotonic()
            try:
                recover()
            finally:
                watch.recovered(time.monotonic() - began)

        manager.do_recovery = timed  # type: ignore[method-assign]
    pace(app._consumer._buffer)
    return app


def pace(
    buffer: Any, every: float = POLL_EVERY, clock: Callable[[], float] = time.monotonic
) -> None:
    """Make the application of Quix Streams' consumer ``buffer`` poll the broker at least
    every ``every`` seconds (by ``clock``) while it has messages buffered.

    An application that reads several topics (the evaluator: ``scored``, ``ticks``,
    ``commands``) takes its messages from Quix Streams' buffer, up to ``BUFFER`` per
    topic partition, and polls the broker only once the buffer has nothing it may hand
    out: 48 partitions' worth of mentions at 1,000 brands took over the 10 s
    ``max.poll.interval.ms`` (the worker lost its partitions, bench/RESULTS.md). Here the
    buffer hands out nothing once ``every`` has passed since it was last fed, so the
    consumer polls (and feeds it) before the next message. Quix Streams has no setting
    for it (pinned below 4)."""
    pop, feed = buffer.pop, buffer.feed
    fed = [clock()]

    def fed_now(*args: Any, **kwargs: Any) -> None:
        fed[0] = clock()
        feed(*args, **kwargs)

    def paced_pop() -> Any:
        if clock() - fed[0] > every:
            return None
        return pop()

    buffer.feed, buffer.pop = fed_now, paced_pop


def _watched(base: type[Application], watch: AppWatch) -> type[Application]:
    """``base`` telling ``watch`` of each assignment (Quix Streams' rebalance callbacks,
    which it offers no public hook for; quixstreams is pinned below 4)."""

    class Watched(base):  # type: ignore[valid-type,misc]
        def run(self, *args: Any, **kwargs: Any) -> Any:
            watch.starting()
            return super().run(*args, **kwargs)

        def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
            super()._on_assign(consumer, partitions)
            watch.assigned(partitions)

        def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
            try:
                super()._on_revoke(consumer, partitions)
            finally:
                watch.revoked(partitions)

        def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
            try:
                super()._on_lost(consumer, partitions)
            finally:
                watch.revoked(partitions, lost=True)

    return Watched


def topic(
    app: Application, bus: Bus, name: TopicName, *, write: Literal["bytes", "json"] = "bytes"
) -> Topic:
    """One of :data:`TOPICS` on ``app``, made with the bus's partitions, replication and
    retention when missing. Values are read as bytes (decoded here) and written as bytes,
    or, with ``write="json"``, as the JSON of the objects a dataframe hands over
    (:func:`scored_message`)."""
    from quixstreams.models.topics import TopicConfig

    config = TopicConfig(
        num_partitions=bus.partitions,
        replication_factor=bus.replication,
        extra_config={
            "retention.ms": str(bus.retention // timedelta(milliseconds=1)),
            "retention.bytes": str(bus.retention_bytes),
        },
    )
    return app.topic(
        bus.name(name),
        key_serializer="str",
        key_deserializer="str",
        value_serializer=write,
        value_deserializer="bytes",
        config=config,
    )
