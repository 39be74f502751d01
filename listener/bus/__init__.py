"""The message bus of distributed mode: Kafka-protocol topics, read and written through
Quix Streams (``docs/scaling.md``).

Embedded mode (``listener run``, the default) needs none of this: its stages hand work to
each other in memory. In distributed mode each stage runs as its own role (``listener run
--role ROLE``) and they meet on topics of a Kafka-protocol broker named by
``LISTENER_BUS``::

    kafka://HOST:PORT[,HOST:PORT...][?prefix=listener&partitions=6&replication=1
                                      &retention=7d&retention_bytes=-1
                                      &guarantee=at-least-once]

Topics (``{prefix}.{name}``), each created when missing with explicit ``retention.ms`` and
``retention.bytes`` (Quix Streams reads both back, and some brokers report neither):

* ``mentions``: raw mentions as collected, keyed by ``[source, id]`` (JSON), the value a
  :meth:`~listener.model.Mention.to_dict` object with ``"v": 1``;
* ``scored``: each mention that matched a brand, once per brand, keyed by the brand, the
  value ``{"v": 1, "brand": ..., "scored": ScoredMention.to_dict()}``.

Messages are decoded here (:func:`decode_mention`, :func:`decode_scored`): one that is not
what its topic carries raises :class:`~listener.errors.MessageError`, which the roles
count and skip. Pure but for :func:`quix_app`, which builds the client application.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, get_args
from urllib.parse import parse_qsl, urlsplit

from listener.config.duration import parse_duration
from listener.errors import BusError, DurationError, MessageError
from listener.model import Mention, ScoredMention

if TYPE_CHECKING:
    from quixstreams import Application
    from quixstreams.models.topics import Topic

__all__ = [
    "FORMAT",
    "TOPICS",
    "Bus",
    "Guarantee",
    "decode_mention",
    "decode_scored",
    "encode_mention",
    "encode_scored",
    "mention_key",
    "mention_message",
    "quix_app",
    "scored_message",
    "topic",
]

FORMAT: Final = 1
"""The version of the messages' JSON (``"v"``); a reader refuses any other."""

Guarantee = Literal["at-least-once", "exactly-once"]
TopicName = Literal["mentions", "scored"]
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
    known = {"prefix", "partitions", "replication", "retention", "retention_bytes", "guarantee"}
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
    for name in ("partitions", "replication", "retention_bytes"):
        if name in query:
            value = query[name]
            low = -1 if name == "retention_bytes" else 1
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


def mention_message(mention: Mention) -> dict[str, Any]:
    """The value of a raw mention's message, as a JSON-ready object."""
    return {"v": FORMAT, **mention.to_dict()}


def scored_message(scored: ScoredMention, brand: str) -> dict[str, Any]:
    """The value of a scored mention's message for one of the brands it matched."""
    return {"v": FORMAT, "brand": brand, "scored": scored.to_dict()}


def encode_mention(mention: Mention) -> bytes:
    """:func:`mention_message` as the bytes of a message."""
    return json.dumps(mention_message(mention), ensure_ascii=False).encode()


def encode_scored(scored: ScoredMention, brand: str) -> bytes:
    """:func:`scored_message` as the bytes of a message."""
    return json.dumps(scored_message(scored, brand), ensure_ascii=False).encode()


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
    data = _object(value, "raw mention")
    try:
        return Mention.from_dict(data)
    except (KeyError, ValueError, TypeError) as exc:
        raise MessageError(f"raw mention: {_describe(exc)}") from None


def decode_scored(value: bytes | str) -> tuple[str, ScoredMention]:
    """The brand and scored mention a scored message carries; :class:`MessageError` when it
    carries none, or names a brand the mention did not match."""
    data = _object(value, "scored mention")
    try:
        brand = data["brand"]
        scored = ScoredMention.from_dict(data["scored"])
    except (KeyError, ValueError, TypeError) as exc:
        raise MessageError(f"scored mention: {_describe(exc)}") from None
    if not isinstance(brand, str) or brand not in scored.brands:
        raise MessageError(f"scored mention: brand {brand!r} is not one it matched")
    return brand, scored


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


REQUEST_TIMEOUT: Final = 10.0
"""Seconds a worker waits for the broker's answer to a metadata or admin request."""


def quix_app(bus: Bus, role: str, state_dir: str, **options: Any) -> Application:
    """The Quix Streams application of one role's worker (consumer group
    ``{prefix}-{role}``, state under ``state_dir``); :class:`BusError` when the
    ``kafka`` extra is not installed."""
    try:
        from quixstreams import Application
    except ImportError:
        raise BusError(
            "distributed mode needs the kafka extra: pip install 'listener[kafka]'"
        ) from None
    return Application(
        broker_address=bus.brokers,
        consumer_group=bus.group(role),
        auto_offset_reset="earliest",
        processing_guarantee=bus.guarantee,
        state_dir=state_dir,
        consumer_extra_config=dict(CONSUMER),
        # a broker that does not answer a metadata or admin request within 10 s counts as
        # unreachable: the worker says so and tries again (listener.roles.supervise)
        request_timeout=REQUEST_TIMEOUT,
        loglevel=None,  # listener's logging (listener.log) is configured by then
        **options,
    )


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
