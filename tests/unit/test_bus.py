"""Distributed mode's bus settings (LISTENER_BUS) and message formats (listener.bus)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listener.bus import (
    FORMAT,
    Bus,
    Scored,
    decode_alert,
    decode_event,
    decode_mention,
    decode_raw,
    decode_scored,
    encode_mention,
    encode_scored,
    mention_key,
    pace,
    tick_message,
)
from listener.bus.alerts import alert_message, decode_record
from listener.errors import BusError, ConfigError, MessageError
from listener.model import Alert, Author, Engagement, Fact, Mention, ScoredMention, Sentiment
from listener.rules.engine import IncidentEvent
from listener.rules.notify import Notice
from listener.settings import Settings


def test_a_bus_url_names_brokers_and_settings() -> None:
    """Hosts and ports, comma-separated; the query sets the prefix, partitions,
    replication, retention and guarantee; the rest keep their defaults."""
    assert Bus.parse("kafka://127.0.0.1:9092") == Bus("127.0.0.1:9092")
    bus = Bus.parse(
        "kafka://k1:9092,k2:9093?prefix=acme.prod&partitions=12&replication=3"
        "&retention=3d&retention_bytes=1000000&guarantee=exactly-once&batch=1"
    )
    assert bus == Bus(
        "k1:9092,k2:9093",
        prefix="acme.prod",
        partitions=12,
        replication=3,
        retention=timedelta(days=3),
        retention_bytes=1_000_000,
        guarantee="exactly-once",
        batch=1,
    )
    assert bus.name("scored") == "acme.prod.scored"
    assert bus.group("ingest") == "acme.prod-ingest"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://k:9092", "is not a kafka:// URL"),
        ("kafka://", "names no broker"),
        ("kafka://k", "'k' is not HOST:PORT"),
        ("kafka://k:0", "is not HOST:PORT"),
        ("kafka://k:99999", "is not HOST:PORT"),
        ("kafka://k:9092,", "names no broker"),
        ("kafka://user@k:9092", "only hosts, ports and query settings"),
        ("kafka://k:9092/topic", "only hosts, ports and query settings"),
        ("kafka://k:9092?partitons=3", "unknown setting 'partitons'"),
        ("kafka://k:9092?partitions=0", "partitions='0': a whole number >= 1"),
        ("kafka://k:9092?replication=x", "replication='x'"),
        ("kafka://k:9092?retention_bytes=-2", "retention_bytes='-2'"),
        ("kafka://k:9092?retention=soon", "retention='soon'"),
        ("kafka://k:9092?retention=0s", "retention must be more than 0s"),
        ("kafka://k:9092?guarantee=maybe", "at-least-once or exactly-once"),
        ("kafka://k:9092?prefix=a/b", "prefix 'a/b'"),
        ("kafka://k:9092?batch=-1", "batch='-1': a whole number >= 0"),
    ],
)
def test_a_bad_bus_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(BusError, match=r"^LISTENER_BUS: ") as caught:
        Bus.parse(url)
    assert message in str(caught.value)


def test_settings_check_the_bus_and_the_role() -> None:
    """LISTENER_BUS and LISTENER_ROLE are checked with the other settings: each problem
    is one ConfigProblem naming the variable."""
    settings = Settings.from_env({"LISTENER_BUS": "kafka://k:1", "LISTENER_ROLE": "ingest"})
    assert (settings.bus, settings.role) == ("kafka://k:1", "ingest")
    assert Settings.from_env({}).role == "all"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"LISTENER_BUS": "kafka://k", "LISTENER_ROLE": "deliverer"})
    problems = {p.path: p for p in caught.value.problems}
    assert set(problems) == {"LISTENER_BUS", "LISTENER_ROLE"}
    assert "'k' is not HOST:PORT" in problems["LISTENER_BUS"].message
    assert problems["LISTENER_ROLE"].hint == "known: all, collector, ingest, evaluate, deliver"


def test_the_ticker_is_on_or_off() -> None:
    assert Settings.from_env({}).ticker is True
    assert Settings.from_env({"LISTENER_TICKER": "off"}).ticker is False
    assert Settings.from_env({"LISTENER_TICKER": "ON"}).ticker is True
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"LISTENER_TICKER": "sometimes"})
    (problem,) = caught.value.problems
    assert problem.path == "LISTENER_TICKER"
    assert problem.hint == "on (the default) or off"


def test_ticks_and_alerts_come_back_as_they_were_sent() -> None:
    at = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    assert decode_event(json.dumps(tick_message("Acme", at))) == ("Acme", at)
    offset = json.dumps({"v": FORMAT, "brand": "Acme", "at": "2026-03-02T09:30:00+01:00"})
    assert decode_event(offset) == ("Acme", at)
    alert = Alert(
        id="i#1",
        incident_id="i",
        kind="opened",
        rule="angry",
        brand="Acme",
        level="watch",
        previous_level=None,
        at=at,
        facts=(),
        route=("ops",),
        trend=(1, 2, 3),
        trend_step=1800,
    )
    assert decode_alert(json.dumps(alert_message(alert, ["ops"]))) == (alert, ("ops",))


def _recorded_alert() -> tuple[Alert, IncidentEvent, Notice]:
    at = datetime(2026, 3, 2, 8, tzinfo=UTC)
    facts = (Fact("negative", 14.0, threshold=12.0, baseline=2.5),)
    event = IncidentEvent(
        "escalated", "i", 2, "angry", "Acme", "critical", "watch", "critical", at, facts
    )
    alert = Alert(
        id="i#2",
        incident_id="i",
        kind="escalated",
        rule="angry",
        brand="Acme",
        level="critical",
        previous_level="watch",
        at=at,
        facts=facts,
    )
    notice = Notice("i#2", "escalated", "i", "critical", (), muted="silenced s1")
    return alert, event, notice


def test_an_alert_record_carries_the_event_and_notice_the_deliver_role_records() -> None:
    """The event behind an alert and its notice (stamped with the evaluation's instant)
    travel with it and decode to what the evaluator had; without them (an older writer)
    the record has none and the alert's own time."""
    alert, event, notice = _recorded_alert()
    now = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    record = decode_record(json.dumps(alert_message(alert, [], event=event, notice=notice, at=now)))
    assert (record.alert, record.sinks, record.event, record.notice) == (alert, (), event, notice)
    assert record.at == now
    bare = decode_record(json.dumps(alert_message(alert, ["ops"])))
    assert (bare.event, bare.notice, bare.at, bare.sinks) == (None, None, alert.at, ("ops",))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event": {"seq": 2}}, "missing key 'kind'"),
        ({"notice": {"at": "noon"}}, "not an ISO 8601 instant"),
        ({"event.seq": 3}, "event i#3 is not alert i#2's"),
        ({"notice.alert_id": "i#1"}, "notice i#1 is not alert i#2's"),
    ],
)
def test_an_alert_record_that_does_not_hold_together_says_why(
    change: dict[str, object], message: str
) -> None:
    alert, event, notice = _recorded_alert()
    value = alert_message(alert, [], event=event, notice=notice, at=alert.at)
    for key, new in change.items():
        if "." in key:
            part, field = key.split(".")
            value[part][field] = new
        else:
            value[key] = new
    with pytest.raises(MessageError) as caught:
        decode_record(json.dumps(value))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"v": FORMAT, "brand": "Acme"}, "neither a scored mention nor a tick"),
        ({"v": FORMAT, "brand": "", "at": "2026-03-02T08:00:00Z"}, "neither"),
        ({"v": FORMAT, "brand": "Acme", "at": "noon"}, "'noon' is not an ISO 8601 instant"),
        ({"v": FORMAT, "brand": "Acme", "at": "2026-03-02T08:00:00"}, "has no UTC offset"),
        ({"v": 2, "brand": "Acme", "at": "2026-03-02T08:00:00Z"}, "format 2"),
    ],
)
def test_an_evaluator_message_that_is_neither_says_why(
    value: dict[str, object], message: str
) -> None:
    with pytest.raises(MessageError) as caught:
        decode_event(json.dumps(value))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"v": FORMAT, "sinks": []}, "missing key 'alert'"),
        ({"v": FORMAT, "alert": {"id": "x"}, "sinks": []}, "alert: "),
        ({"v": FORMAT, "alert": None, "sinks": []}, "alert: "),
    ],
)
def test_an_alert_message_that_is_not_one_says_why(value: dict[str, object], message: str) -> None:
    with pytest.raises(MessageError) as caught:
        decode_alert(json.dumps(value))
    assert message in str(caught.value)


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
MENTIONS = st.builds(
    Mention,
    source=TEXT.filter(bool),
    id=TEXT.filter(bool),
    text=TEXT,
    created_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    url=st.none() | TEXT,
    author=st.builds(Author, st.none() | TEXT, st.none() | TEXT, st.none() | st.integers(0)),
    language=st.none() | st.sampled_from(["en", "fr"]),
    engagement=st.builds(Engagement, likes=st.none() | st.integers(0)),
    is_repost=st.booleans(),
    reposted_id=st.none() | TEXT,
    title=st.none() | TEXT,
)


@given(mention=MENTIONS)
def test_a_mention_comes_back_as_it_was_sent(mention: Mention) -> None:
    assert decode_mention(encode_mention(mention)) == mention
    assert json.loads(mention_key(mention)) == [mention.source, mention.id]


@given(
    mention=MENTIONS,
    brands=st.lists(TEXT.filter(bool), min_size=1, max_size=3, unique=True),
    label=st.sampled_from(["negative", "neutral", "positive"]),
    compound=st.floats(-1, 1),
    reach=st.floats(0, 1e9),
    story=st.none() | TEXT,
)
def test_a_scored_mention_comes_back_as_it_was_sent(
    mention: Mention,
    brands: list[str],
    label: str,
    compound: float,
    reach: float,
    story: str | None,
) -> None:
    scored = ScoredMention(
        mention,
        tuple(brands),
        Sentiment(label, compound),  # type: ignore[arg-type]
        ("outage",),
        ("anger",),
        story=story,
        reach=reach,
    )
    for brand in brands:
        assert decode_scored(encode_scored(scored, brand)) == (brand, scored)


def _scored() -> ScoredMention:
    m = Mention("x", "1", "@acme down", datetime(2026, 3, 2, tzinfo=UTC))
    return ScoredMention(m, ("Acme",), Sentiment("negative", -0.5), reach=10.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"v": 2}).encode(), f"format 2, this worker reads {FORMAT}"),
        (json.dumps({"source": "x"}).encode(), "format None"),
        (json.dumps({"v": 1, "source": "x", "text": "t"}).encode(), "missing key 'id'"),
        (
            json.dumps(
                {"v": 1, "source": "x", "id": "1", "text": "t", "created_at": "noon"}
            ).encode(),
            "Invalid isoformat",
        ),
    ],
)
def test_a_raw_message_that_is_not_a_mention_says_why(value: bytes, message: str) -> None:
    with pytest.raises(MessageError, match=r"^raw mention: ") as caught:
        decode_mention(value)
    assert message in str(caught.value)


def test_a_backfill_is_marked_from_the_raw_message_to_the_evaluator() -> None:
    """A source's first poll: its raw messages say so, and so do the scored messages ingest
    makes of them (the evaluator keeps the brand quiet); a message without the mark is
    not a backfill, and a mark that is not true or false is refused."""
    scored = _scored()
    mention = scored.mention
    assert decode_raw(encode_mention(mention, backfill=True)) == (mention, True)
    assert decode_raw(encode_mention(mention)) == (mention, False)
    assert "backfill" not in json.loads(encode_mention(mention))
    assert decode_event(encode_scored(scored, "Acme", backfill=True)) == (
        "Acme",
        Scored("Acme", scored, True),
    )
    assert decode_event(encode_scored(scored, "Acme")) == ("Acme", Scored("Acme", scored))
    assert decode_scored(encode_scored(scored, "Acme", backfill=True)) == ("Acme", scored)
    bad = {**json.loads(encode_mention(mention)), "backfill": "yes"}
    with pytest.raises(MessageError, match="raw mention: backfill: not true or false"):
        decode_raw(json.dumps(bad))
    bad = {**json.loads(encode_scored(scored, "Acme")), "backfill": 1}
    with pytest.raises(MessageError, match="scored mention: backfill: not true or false"):
        decode_event(json.dumps(bad))


def test_a_scored_message_must_name_a_brand_it_matched() -> None:
    good = json.loads(encode_scored(_scored(), "Acme"))
    assert decode_scored(json.dumps(good))[0] == "Acme"
    for change, message in [
        ({"brand": "Globex"}, "brand 'Globex' is not one it matched"),
        ({"brand": None}, "brand None"),
        ({"scored": {**good["scored"], "sentiment": {"label": "meh", "compound": 0}}}, "meh"),
        ({"scored": {**good["scored"], "reach": "far"}}, "could not convert"),
    ]:
        with pytest.raises(MessageError, match=r"^scored mention: ") as caught:
            decode_scored(json.dumps({**good, **change}))
        assert message in str(caught.value)


@given(mention=MENTIONS)
def test_a_mentions_dict_is_every_field_of_it(mention: Mention) -> None:
    """``Mention.to_dict`` (spelled out for speed) has every field ``dataclasses.asdict``
    gives, the time as ISO 8601."""
    import dataclasses

    expected = dataclasses.asdict(mention)
    expected["created_at"] = mention.created_at.isoformat()
    assert mention.to_dict() == expected


class _Message:
    """What Quix Streams' consumer buffer reads of a Kafka message."""

    def __init__(self, topic: str, offset: int) -> None:
        self._topic, self._offset = topic, offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._offset)


def test_a_paced_buffer_lets_the_consumer_poll_every_few_seconds() -> None:
    """Quix Streams' buffer hands out what it holds without a poll of the broker; paced,
    it hands out nothing once ``every`` has passed since it was last fed (the consumer
    polls then, within max.poll.interval.ms), and goes on once fed again."""
    from confluent_kafka import TopicPartition
    from quixstreams.internal_consumer.buffering import InternalConsumerBuffer

    now = [0.0]
    buffer = InternalConsumerBuffer(max_partition_buffer_size=100)
    buffer.assign_partitions([TopicPartition("scored", 0)])
    pace(buffer, every=2.0, clock=lambda: now[0])
    buffer.feed([_Message("scored", i) for i in range(5)], {("scored", 0): 5})
    assert buffer.pop().offset() == 0
    now[0] = 1.5
    assert buffer.pop().offset() == 1
    now[0] = 2.5  # time to poll: nothing until the buffer is fed
    assert buffer.pop() is None
    buffer.feed([], {("scored", 0): 5})
    assert [buffer.pop().offset() for _ in range(3)] == [2, 3, 4]
    assert buffer.pop() is None
