"""One brand's Evaluate state as a record: its JSON round trip, and splitting it out of
(and merging it into) the engine, notification and window states."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from listener.errors import BrandHeld, BrandStateError
from listener.model import Ack
from listener.rules.brand_state import (
    BRAND_STATE_VERSION,
    BrandState,
    first_seen_at,
    merge_brand,
    split_brand,
)
from listener.rules.notify import NotifyState, Tracked
from listener.rules.source_health import SOURCE_HEALTH
from listener.rules.state import EngineState, Incident, KeyState, LevelTimer
from listener.scoring.velocity import Sample, VelocityWindows

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MEASURES = ("total", "negative", "voices", "stories", "sentiment_sum", "reach")


def windows() -> VelocityWindows:
    w = VelocityWindows(retention=timedelta(hours=2), distinct_retention=timedelta(hours=1))
    for i in range(40):
        for brand in ("Acme", "Globex"):
            sample = Sample(
                negative=i % 3 == 0,
                positive=i % 5 == 0,
                compound=-0.5 if i % 3 == 0 else 0.25,
                reach=float(i),
                author=f"news:user{i % 7}",
                story=f"s{i % 4}",
                categories=("outage",) if i % 2 else (),
                source="news" if i % 2 else "blog",
                language="en",
            )
            w.add(brand, T0 + timedelta(minutes=i // 2, seconds=i), sample)
    return w


def key_state(brand: str) -> KeyState:
    opened = T0 + timedelta(minutes=10)
    return KeyState(
        {
            "watch": LevelTimer(since=opened, last_held=opened + timedelta(minutes=5)),
            "crisis": LevelTimer(),
        },
        Incident(f"20260302T091000Z-{brand.lower()}-neg", "watch", "watch", opened, opened),
    )


def tracked(brand: str) -> Tracked:
    opened = T0 + timedelta(minutes=10)
    return Tracked(
        incident_id=f"20260302T091000Z-{brand.lower()}-neg",
        rule="neg",
        brand=brand,
        level="watch",
        opened_at=opened,
        level_since=opened,
        heard=("social", "pager"),
        last_sent_at=opened,
        reminders=2,
        handoffs=1,
        pages=1,
        ack=Ack("ana", opened + timedelta(minutes=3), "on it"),
        muted_at=opened + timedelta(minutes=40),
    )


def states() -> tuple[EngineState, NotifyState]:
    engine = EngineState(
        {
            ("neg", "Acme"): key_state("Acme"),
            ("other", "Acme"): KeyState({"watch": LevelTimer()}),
            ("neg", "Globex"): key_state("Globex"),
            (SOURCE_HEALTH, "Acme"): KeyState({"down": LevelTimer(since=T0)}),
        }
    )
    notify = NotifyState({t.incident_id: t for t in (tracked("Acme"), tracked("Globex"))})
    return engine, notify


def acme_state() -> BrandState:
    engine, notify = states()
    w = windows()
    state, _, _ = split_brand(
        "Acme",
        engine,
        notify,
        tuple(w.export_brand("Acme")),
        w.first_seen("Acme"),
        {"Acme": T0 + timedelta(hours=1), "Globex": T0},
    )
    return state


def test_json_round_trip_is_exact() -> None:
    """The JSON of a brand's state parses back equal, and gives the same text again."""
    state = acme_state()
    assert state.buckets
    assert state.engine.keys
    assert state.notify.incidents
    text = state.to_json()
    back = BrandState.from_json(text)
    assert back == state
    assert back.to_json() == text
    assert BrandState.from_json(BrandState("Initech").to_json()) == BrandState("Initech")
    assert BrandState("Initech").empty()
    assert not state.empty()


def test_split_takes_the_brand_and_only_the_brand() -> None:
    """Splitting leaves the other brands' keys and incidents, and source-health keys."""
    engine, notify = states()
    state, rest_engine, rest_notify = split_brand("Acme", engine, notify)
    assert set(state.engine.keys) == {("neg", "Acme"), ("other", "Acme")}
    assert set(rest_engine.keys) == {("neg", "Globex"), (SOURCE_HEALTH, "Acme")}
    assert {t.brand for t in state.notify.incidents.values()} == {"Acme"}
    assert {t.brand for t in rest_notify.incidents.values()} == {"Globex"}
    assert state.quiet_until is None


def test_merge_gives_back_the_whole_state() -> None:
    """Merging a split brand back gives states equal to those it was split from."""
    engine, notify = states()
    state, rest_engine, rest_notify = split_brand("Acme", engine, notify)
    merged_engine, merged_notify = merge_brand(state, rest_engine, rest_notify)
    assert merged_engine == engine
    assert merged_notify == notify


def test_merging_a_brand_already_present_fails() -> None:
    """A brand's state cannot be merged where the brand already has keys or incidents."""
    engine, notify = states()
    state, _, rest_notify = split_brand("Acme", engine, notify)
    with pytest.raises(BrandHeld, match="'Acme'"):
        merge_brand(state, engine, rest_notify)
    _, rest_engine, _ = split_brand("Acme", engine, notify)
    with pytest.raises(BrandHeld, match="incidents of 'Acme'"):
        merge_brand(state, rest_engine, notify)


def test_a_record_holds_one_brand_only() -> None:
    """A record naming one brand cannot carry another's keys or buckets."""
    engine, _ = states()
    with pytest.raises(BrandStateError, match="Globex"):
        BrandState("Acme", engine=EngineState({("neg", "Globex"): KeyState()}))
    with pytest.raises(BrandStateError, match="Globex"):
        BrandState("Acme", buckets=(("Globex", 0, "{}"),))
    assert engine.brands() == {"Acme", "Globex"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"version": 3, "brand": "Acme"}', "version 3"),
        ('{"version": true, "brand": "Acme"}', "version True"),
        ('{"version": 1, "brand": ""}', "no valid brand"),
        ('{"version": 1, "brand": "Acme"}', "malformed"),
        (
            '{"version": 1, "brand": "Acme", "buckets": [["x", "{}"]], "first_seen": null,'
            ' "engine": {"version": 1, "keys": []}, "notify": {"version": 1, "incidents": {}},'
            ' "quiet_until": null}',
            "bad bucket row",
        ),
        (
            '{"version": 1, "brand": "Acme", "buckets": [], "first_seen": null,'
            ' "engine": {"version": 9, "keys": []}, "notify": {"version": 1, "incidents": {}},'
            ' "quiet_until": null}',
            "newer listener",
        ),
    ],
)
def test_malformed_json_is_a_brand_state_error(text: str, message: str) -> None:
    """Bad JSON says what is wrong with it, as a BrandStateError."""
    with pytest.raises(BrandStateError, match=message):
        BrandState.from_json(text)


def test_a_version_1_record_with_object_bucket_rows_is_still_read() -> None:
    """Version 1 (store schema 5) wrote bucket rows as JSON objects; the windows still load
    them, so a record from a worker not yet upgraded is adopted with its counts."""
    text = json.dumps(
        {
            "version": 1,
            "brand": "Acme",
            "buckets": [[60, '{"total":3,"negative":2,"first_seen":60}']],
            "first_seen": 60,
            "engine": {"version": 1, "keys": []},
            "notify": {"version": 1, "incidents": {}},
            "quiet_until": None,
        }
    )
    state = BrandState.from_json(text)
    w = VelocityWindows(retention=timedelta(hours=2))
    w.load(state.buckets)
    at = datetime(1970, 1, 1, 0, 1, tzinfo=UTC)
    assert w.value("Acme", "total", at, at + timedelta(minutes=1)) == 3
    assert w.value("Acme", "negative", at, at + timedelta(minutes=1)) == 2
    assert json.loads(state.to_json())["version"] == BRAND_STATE_VERSION == 2


def test_windows_hand_a_brand_over_with_every_read() -> None:
    """Exported rows loaded into other windows (with the first bucket) give every read of
    the brand that the first windows gave; dropping the brand forgets it there."""
    w = windows()
    w.prune(T0 + timedelta(hours=1, minutes=5))  # drops author sets of the first buckets
    w.drain_dirty()
    w.add("Acme", T0 + timedelta(minutes=30), Sample(negative=True, author="x"))  # undrained
    rows = w.export_brand("Acme")
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
    first = w.first_seen("Acme")
    assert first is not None
    other = VelocityWindows(retention=timedelta(hours=2), distinct_retention=timedelta(hours=1))
    other.load(rows)
    other.start_history("Acme", first)
    end = T0 + timedelta(hours=1)
    for measure in MEASURES:
        for start in (T0, T0 + timedelta(minutes=7), T0 + timedelta(minutes=19)):
            assert other.value("Acme", measure, start, end) == w.value(
                "Acme", measure, start, end
            ), measure
        assert other.value("Acme", measure, T0, end, source="news") == w.value(
            "Acme", measure, T0, end, source="news"
        )
    assert other.first_seen("Acme") == first
    changes = w.changes("Acme")
    w.drop_brand("Acme")
    assert "Acme" not in w.brands()
    assert w.first_seen("Acme") is None
    assert w.export_brand("Acme") == []
    assert w.changes("Acme") != changes
    assert all(row[0] != "Acme" for row in w.drain_dirty())
    assert w.value("Globex", "total", T0, end) == 40


def test_history_outlives_the_buckets_it_started_in() -> None:
    """A brand whose buckets were all pruned still hands over when its history started."""
    w = windows()
    w.prune(T0 + timedelta(hours=5))
    assert w.export_brand("Acme") == []
    state, _, _ = split_brand("Acme", EngineState(), NotifyState(), (), w.first_seen("Acme"))
    assert first_seen_at(state) == T0
    other = VelocityWindows()
    other.start_history("Acme", T0)
    assert other.first_seen("Acme") == T0
