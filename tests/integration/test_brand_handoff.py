"""Handing a brand's Evaluate state from one processor to another: two processors that
split the brands and pass them between them mid-stream decide exactly as one processor
fed everything; the hand-off is stored, and refused where the brand already lives."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.config.load import load_config_text
from listener.config.schema import Config
from listener.errors import BrandHeld
from listener.metrics import Metrics
from listener.model import Alert, Mention
from listener.processor import Processor
from listener.rules.brand_state import BrandState
from listener.store import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BRANDS = ("Acme", "Globex", "Initech", "Umbrella")
CONFIG = """
brands:
  - name: Acme
  - name: Globex
  - name: Initech
  - name: Umbrella
rules:
  - name: neg
    levels:
      watch:
        when: {type: volume, window: 15m, above: 5}
      crisis:
        when: {type: volume, window: 15m, above: 20}
        escalate:
          - {after: 10m, route: [exec]}
    resolve_after: 20m
    repeat_every: 15m
  - name: chatter
    levels:
      watch:
        when: {type: volume, metric: total, window: 10m, above: 12}
    resolve_after: 5m
routes:
  watch: [social]
  crisis: [social, pager]
notifications:
  inhibit:
    - {source: [crisis], target: [watch]}
sinks:
  social: {type: console}
  pager: {type: console}
  exec: {type: console}
"""

BURSTS = {
    # brand: [(from minute, to minute, angry mentions a minute)]
    "Acme": [(8, 20, 1), (20, 34, 3), (90, 100, 2)],
    "Globex": [(45, 110, 1)],
    "Initech": [(2, 4, 1), (60, 70, 4)],
    "Umbrella": [(120, 140, 2), (150, 158, 3)],
}
MINUTES = 200
HANDOFFS = {
    # after the evaluation at this minute: (brand, from, to)
    5: [("Initech", "a", "b")],  # backfilled: its quiet period travels
    30: [("Acme", "a", "b")],  # crisis open, hand-off to exec pending
    70: [("Globex", "b", "a"), ("Initech", "b", "a")],  # watch open, reminders running
    95: [("Acme", "b", "a")],  # reopened after resolving
    140: [("Umbrella", "b", "a")],
    152: [("Umbrella", "a", "b")],
}


@pytest.fixture
def config() -> Config:
    return load_config_text(CONFIG, "rules.yaml", {})


def words(rng: random.Random) -> str:
    """Words that make each text its own story (the Ingest stage's story index is not
    split by brand, so near-duplicates across brands would join stories differently)."""
    return " ".join(f"{rng.choice('bcdfgklmnprstvz')}{rng.randrange(10**6)}" for _ in range(10))


def mentions_at(minute: int, rng: random.Random) -> Iterator[Mention]:
    at = T0 + timedelta(minutes=minute)
    for brand in BRANDS:
        angry = sum(rate for lo, hi, rate in BURSTS[brand] if lo <= minute < hi)
        for j in range(angry):
            yield Mention(
                source="news",
                id=f"{brand}-{minute}-{j}",
                created_at=at + timedelta(seconds=j),
                text=f"{brand} is terrible, broken and awful, worst outage {words(rng)}",
            )
        if rng.random() < 0.6:
            yield Mention(
                source="news",
                id=f"{brand}-{minute}-calm",
                created_at=at + timedelta(seconds=30),
                text=f"I had lunch near the {brand} office today {words(rng)}",
            )


def backfill() -> list[Mention]:
    """History from before the first poll (every brand becomes quiet for a while)."""
    return [
        Mention(
            source="news",
            id=f"{brand}-old-{i}",
            created_at=T0 - timedelta(minutes=3 + i),
            text=f"{brand} is terrible and broken, outage {i}",
        )
        for brand in BRANDS
        for i in range(8)
    ]


def brand_of(m: Mention) -> str:
    return next(b for b in BRANDS if b in m.text)


def decided(alerts: list[Alert]) -> list[tuple[object, ...]]:
    return sorted(
        (a.id, a.kind, a.rule, a.brand, a.level, a.previous_level, a.incident_id, a.facts, a.route)
        for a in alerts
    )


def memory_processor(config: Config) -> Processor:
    return Processor(config, Store.open(":memory:"), Metrics())


def test_handing_brands_over_mid_stream_decides_as_one_processor(config: Config) -> None:
    """Two processors splitting the brands, handing some over (export then adopt) while
    incidents are open, escalating, reminding and resolving, raise the same alerts and end
    with the same engine, notification and window state as one processor fed everything."""
    single = memory_processor(config)
    workers = {"a": memory_processor(config), "b": memory_processor(config)}
    owner = {"Acme": "a", "Initech": "a", "Globex": "b", "Umbrella": "b"}
    for brand, name in owner.items():  # each starts holding every brand: release the others'
        other = "b" if name == "a" else "a"
        assert workers[other].export_brand(brand).empty()
    rng = random.Random(12)
    old = backfill()
    single.ingest("news", old, T0, backfill=True)
    for name, worker in workers.items():
        mine = [m for m in old if owner[brand_of(m)] == name]
        worker.ingest("news", mine, T0, backfill=True)
    one: list[Alert] = []
    split: list[Alert] = []
    moved_open = 0
    for minute in range(MINUTES):
        now = T0 + timedelta(minutes=minute, seconds=45)
        batch = list(mentions_at(minute, rng))
        single.ingest("news", batch, now)
        for name, worker in workers.items():
            worker.ingest("news", [m for m in batch if owner[brand_of(m)] == name], now)
        one += single.evaluate(now)
        for worker in workers.values():
            split += worker.evaluate(now)
        assert decided(split) == decided(one), f"minute {minute}"
        for brand, source, target in HANDOFFS.get(minute, []):
            assert owner[brand] == source
            state = workers[source].export_brand(brand)
            moved_open += len(state.notify.incidents)
            if minute % 2:  # sometimes as JSON, as it would cross processes
                state = BrandState.from_json(state.to_json())
            workers[target].adopt_brand(state)
            owner[brand] = target
    kinds = {a.kind for a in one}
    assert {"opened", "escalated", "deescalated", "resolved", "reminder", "handoff"} <= kinds
    assert moved_open >= 3  # brands moved with incidents open
    a, b = workers["a"], workers["b"]
    assert a.state.merge_brands(b.state) == single.state
    assert a.notify.merge_brands(b.notify) == single.notify
    assert {**a.quiet_until, **b.quiet_until} == single.quiet_until
    for brand in BRANDS:
        held = workers[owner[brand]]
        assert held.windows.export_brand(brand) == single.windows.export_brand(brand)
        assert brand not in workers["b" if owner[brand] == "a" else "a"].windows.brands()


def test_adopting_a_brand_already_held_fails(config: Config) -> None:
    """A brand lives in one worker: adopting it where it is held is refused, and nothing
    changes there."""
    first, second = memory_processor(config), memory_processor(config)
    first.ingest("news", list(mentions_at(25, random.Random(1))), T0)
    state = first.export_brand("Acme")
    assert state.buckets
    before = (second.state, second.notify, second.windows.export_brand("Acme"))
    with pytest.raises(BrandHeld, match="'Acme': this processor already holds it"):
        second.adopt_brand(state)
    assert (second.state, second.notify, second.windows.export_brand("Acme")) == before
    first.adopt_brand(state)
    with pytest.raises(BrandHeld, match="already holds it"):
        first.adopt_brand(state)
    first.export_brand("Acme")
    with pytest.raises(BrandHeld, match="released"):
        first.export_brand("Acme")


def test_hand_off_is_stored(tmp_path: Path, config: Config) -> None:
    """A processor restarted after exporting a brand no longer has it (nor counts it);
    one restarted after adopting it has all of it."""
    giver = Processor(config, Store.open(tmp_path / "a.db"), Metrics())
    rng = random.Random(3)
    for minute in range(20, 32):
        now = T0 + timedelta(minutes=minute, seconds=45)
        giver.ingest("news", list(mentions_at(minute, rng)), now)
        giver.evaluate(now)
    assert any(t.brand == "Acme" for t in giver.notify.incidents.values())
    state = giver.export_brand("Acme")
    assert state.engine.keys
    assert state.notify.incidents
    giver.store.close()

    giver = Processor(config, Store.open(tmp_path / "a.db"), Metrics())
    assert "Acme" in giver.released
    assert "Acme" not in giver.windows.brands()
    assert "Acme" not in giver.state.brands()
    assert "Acme" not in giver.notify.brands()
    assert all(brand != "Acme" for brand, _, _ in giver.store.load_buckets())
    assert "Globex" in giver.state.brands()  # the others stay
    now = T0 + timedelta(minutes=33)
    giver.ingest("news", list(mentions_at(33, rng)), now)
    giver.evaluate(now)
    assert "Acme" not in giver.windows.brands()  # released: not counted,
    assert "Acme" not in giver.state.brands()  # not evaluated

    taker = Processor(config, Store.open(tmp_path / "b.db"), Metrics())
    taker.export_brand("Acme")  # it starts holding every brand
    taker.adopt_brand(state)
    taker.store.close()
    taker = Processor(config, Store.open(tmp_path / "b.db"), Metrics())
    assert "Acme" not in taker.released
    assert taker.state.split_brand("Acme")[0] == state.engine
    assert taker.notify.split_brand("Acme")[0] == state.notify
    assert tuple(taker.windows.export_brand("Acme")) == state.buckets
    assert taker.export_brand("Acme") == state
