"""The evaluate role's decisions without a broker: ``Processor.evaluate_brands`` (a brand's
own tick) decides as one evaluation of every brand does, and a :class:`BrandEvaluator`
fed scored mentions and ticks, its state in per-brand key-value state as Quix Streams
holds it, decides as embedded mode: across a worker that starts over from that state, a
brand that moves between workers, and a mention delivered twice. On a real broker:
tests/integration/test_bus_evaluate.py."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from listener.bus import decode_alert, scored_message, tick_message
from listener.clock import ManualClock
from listener.config.lint import load_with_warnings
from listener.config.schema import Config
from listener.ingest import Ingest
from listener.metrics import Metrics
from listener.model import Author, Mention, ScoredMention
from listener.processor import Processor
from listener.roles.evaluate import SEEN_CHUNK, BrandEvaluator, tick_times
from listener.store import Store

BRANDS = ("Acme", "Globex", "Initech")
RULES = """brands:
  - name: Acme
  - name: Globex
  - name: Initech
rules:
  - name: angry
    resolve_after: 20m
    levels:
      watch:
        when: {type: volume, metric: negative, window: 15m, above: 4}
      critical:
        when: {type: volume, metric: negative, window: 15m, above: 9}
        for: 10m
        escalate: [{after: 15m, route: [pager]}]
  - name: loud
    brands: [Globex]
    levels:
      busy:
        when: {type: volume, window: 30m, above: 12}
routes:
  default: [ops]
  critical: [ops, pager]
sinks:
  ops: {type: console}
  pager: {type: console}
notifications:
  repeat_every: 30m
"""
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
EVERY = timedelta(minutes=1)


class KeyValues(dict[str, Any]):
    """One brand's state as Quix Streams keeps it: values go through JSON."""

    def set(self, key: str, value: Any) -> None:
        self[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.pop(key, None)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return load_with_warnings(str(path))[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "embedded.db")
    yield s
    s.close()


def stream(config: Config, seed: int, n: int = 220) -> list[ScoredMention]:
    """Mentions of the brands over three hours, angry in bursts, scored as ingest does."""
    rng = random.Random(seed)
    texts = {
        True: "{b} is down again, terrible awful service, I hate this",
        False: "{b} shipped my order, nice",
    }
    mentions = []
    for i in range(n):
        brand = rng.choice(BRANDS)
        minute = rng.random() * 180
        burst = int(minute // 20) % 3 == rng.randrange(3)
        text = texts[burst or rng.random() < 0.2].format(b=brand)
        if rng.random() < 0.1:
            text += f" and {rng.choice(BRANDS)} too"
        at = START + timedelta(minutes=minute)
        mentions.append(Mention("x", f"m{i}", text, at, author=Author(f"u{i % 37}")))
    mentions.sort(key=lambda m: m.created_at)
    return Ingest.build(config).run(mentions, START)


def ticks() -> list[datetime]:
    return tick_times(START, START + timedelta(hours=4), EVERY)


def _alert(alert: Any) -> tuple[str, str, str, str]:
    return (alert.id, alert.kind, alert.level, alert.incident_id)


@pytest.mark.parametrize("seed", [1, 2])
def test_each_brand_at_its_own_tick_decides_as_all_brands_at_once(
    config: Config, tmp_path: Path, seed: int
) -> None:
    scored = stream(config, seed)
    decided = []
    for name in ("all", "each"):
        store = Store.open(tmp_path / f"{name}.db")
        processor = Processor(config, store, Metrics(CollectorRegistry()))
        for s in scored:  # counted as they come, as an evaluator does
            for brand in s.brands:
                processor.count_scored(brand, [s], s.mention.created_at)
        alerts = []
        for at in ticks():
            if name == "all":
                alerts += [_alert(a) for a in processor.evaluate(at)]
            else:
                for brand in BRANDS:
                    found = processor.evaluate_brands(at, [brand]).alerts
                    alerts += [_alert(a) for a, sinks in found if sinks]
        decided.append((sorted(alerts), processor.state.to_json(), processor.notify.to_json()))
        store.close()
    assert decided[0] == decided[1]
    alerts = decided[0][0]
    assert {kind for _, kind, _, _ in alerts} >= {"opened", "resolved"}


def _messages(scored: list[ScoredMention]) -> list[tuple[str, bytes]]:
    """Each scored mention once per brand, then a tick a minute for each brand."""
    out = [
        (brand, json.dumps(scored_message(s, brand)).encode()) for s in scored for brand in s.brands
    ]
    out += [
        (brand, json.dumps(tick_message(brand, at)).encode()) for at in ticks() for brand in BRANDS
    ]
    return out


def _embedded(config: Config, store: Store, scored: list[ScoredMention]) -> list[tuple[str, ...]]:
    processor = Processor(config, store, Metrics(CollectorRegistry()))
    for s in scored:
        for brand in s.brands:
            processor.count_scored(brand, [s], s.mention.created_at)
    return sorted(_alert(a) for at in ticks() for a in processor.evaluate(at))


def _evaluator(config: Config, tmp: Path, name: str) -> BrandEvaluator:
    folder = tmp / name
    folder.mkdir(exist_ok=True)
    return BrandEvaluator(config, str(folder), Metrics(CollectorRegistry()), START)


def test_an_evaluator_decides_as_embedded_mode_from_its_stored_state(
    config: Config, store: Store, tmp_path: Path
) -> None:
    """Workers take turns: every 97 messages another worker (or one that started over)
    handles what comes, its brands read from the stored state; each mention is also
    delivered twice. The alerts are embedded mode's, each once."""
    scored = stream(config, 7)
    want = _embedded(config, store, scored)
    assert len(want) > 5
    states = {brand: KeyValues() for brand in BRANDS}
    workers = [_evaluator(config, tmp_path, f"w{i}") for i in range(2)]
    got = []
    for i, (brand, value) in enumerate(_messages(scored)):
        if i % 97 == 96:  # a worker started over: it holds nothing yet
            workers[0].close()
            workers[0] = _evaluator(config, tmp_path, f"w0-{i}")
        worker = workers[(i // 41) % 2]  # brands move from one worker to the other
        for _ in range(2 if b'"scored"' in value else 1):
            for message in worker.handle(value, states[brand]):
                alert, sinks = decode_alert(json.dumps(message))
                if sinks:
                    got.append(_alert(alert))
    assert sorted(got) == want


def test_a_mention_is_counted_once_and_ticks_move_only_forward(
    config: Config, tmp_path: Path
) -> None:
    scored = [s for s in stream(config, 3) if s.brands == ("Acme",)]
    state = KeyValues()
    worker = _evaluator(config, tmp_path, "w")
    message = json.dumps(scored_message(scored[0], "Acme")).encode()
    worker.handle(message, state)
    version = state["v"]
    worker.handle(message, state)
    assert state["v"] == version  # a repeat changes nothing
    other = _evaluator(config, tmp_path, "other")
    other.handle(message, state)  # nor does it where another worker reads the state
    assert state["v"] == version
    at = scored[0].mention.created_at + timedelta(minutes=1)
    tick = json.dumps(tick_message("Acme", at)).encode()
    worker.handle(tick, state)
    assert state["tick"] == at.isoformat()
    version = state["v"]
    worker.handle(json.dumps(tick_message("Acme", at - EVERY)).encode(), state)
    worker.handle(tick, state)
    assert state["v"] == version  # a tick not after the last one is passed over


def test_a_brands_counted_keys_are_stored_in_chunks_and_leave_with_their_bucket(
    config: Config, tmp_path: Path
) -> None:
    at = START + timedelta(seconds=5)
    mentions = [
        Mention("x", f"k{i}", "Acme is down, awful", at, author=Author(f"u{i}"))
        for i in range(SEEN_CHUNK + 3)
    ]
    scored = Ingest.build(config).run(mentions, START)
    state = KeyValues()
    worker = _evaluator(config, tmp_path, "w")
    for s in scored:
        worker.handle(json.dumps(scored_message(s, "Acme")).encode(), state)
    start = int(START.timestamp())
    assert state["idx"] == [start]
    assert len(state[f"s{start}.0"]) == SEEN_CHUNK
    assert len(state[f"s{start}.1"]) == 3
    later = START + timedelta(days=2)  # past every rule's retention: the bucket goes
    worker.handle(json.dumps(tick_message("Acme", later)).encode(), state)
    assert state["idx"] == []
    assert not [k for k in state if k.startswith(("b", "s"))]
    fresh = _evaluator(config, tmp_path, "fresh")
    stale = json.dumps(scored_message(scored[0], "Acme")).encode()
    fresh.handle(stale, state)  # a repeat after its bucket went: too old to count
    assert state["idx"] == []


def test_messages_that_are_not_for_an_evaluator_are_skipped(config: Config, tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    worker = BrandEvaluator(config, str(tmp_path), metrics, START)
    state = KeyValues()
    for value in (
        b"not json",
        json.dumps({"v": 1, "brand": "Acme"}).encode(),
        json.dumps(tick_message("Umbrella", START)).encode(),
        json.dumps({"v": 1, "brand": "Acme", "at": "yesterday"}).encode(),
    ):
        assert worker.handle(value, state) == []
    assert state == {}
    skipped = metrics.bus_messages.labels(role="evaluate", topic="evaluate", outcome="skipped")
    assert skipped._value.get() == 4


def test_tick_times_are_the_multiples_of_the_step() -> None:
    t = datetime(2026, 3, 2, 8, 0, 30, tzinfo=UTC)
    assert tick_times(t, t + timedelta(minutes=2), EVERY) == [
        datetime(2026, 3, 2, 8, 1, tzinfo=UTC),
        datetime(2026, 3, 2, 8, 2, tzinfo=UTC),
    ]
    assert tick_times(t, t, EVERY) == []


def test_listener_tick_says_what_is_wrong_with_its_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from listener.cli import main

    monkeypatch.delenv("LISTENER_BUS", raising=False)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    span = ["--from", "2026-03-02T08:00:00Z", "--to", "2026-03-02T09:00:00Z"]
    assert main(["tick", "-c", str(rules), *span]) == 2
    assert "distributed mode needs LISTENER_BUS" in capsys.readouterr().err
    for bad, says in [
        (["--from", "noon", "--to", "2026-03-02T09:00:00Z"], "is not an ISO 8601 instant"),
        (["--from", "2026-03-02T08:00:00", "--to", "2026-03-02T09:00:00Z"], "no UTC offset"),
        ([*span, "--every", "0s"], "is not above 0"),
        ([*span, "--every", "often"], "often"),
    ]:
        with pytest.raises(SystemExit) as caught:
            main(["tick", "-c", str(rules), *bad])
        assert caught.value.code == 2
        assert says in capsys.readouterr().err
    late = ["--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T08:00:00Z"]
    monkeypatch.setenv("LISTENER_BUS", "kafka://127.0.0.1:9")
    assert main(["tick", "-c", str(rules), *late]) == 2
    assert "--to is before --from" in capsys.readouterr().err


def test_an_evaluators_cache_keeps_no_outbox_and_forgets_old_mentions(
    config: Config, tmp_path: Path
) -> None:
    """Alerts leave on the bus, not through the cache's outbox; the cached mentions
    (an alert's top posts) older than a day are pruned as the ticks move on, but for
    the evidence of incidents (as embedded mode's retention keeps it)."""
    scored = stream(config, 5)
    worker = _evaluator(config, tmp_path, "w")
    states = {brand: KeyValues() for brand in BRANDS}
    alerts = []
    for brand, value in _messages(scored):
        alerts += worker.handle(value, states[brand])
    assert alerts
    assert worker.store.outbox.pending() == {}
    assert worker.store.seen([scored[0].mention.key]) == {scored[0].mention.key}
    calm = Ingest.build(config).run(
        [
            Mention("x", f"calm{i}", "Initech shipped my order, nice", START - timedelta(days=3))
            for i in range(5)
        ],
        START,
    )
    for c in calm:  # days before anything happened: no incident's evidence
        worker.handle(json.dumps(scored_message(c, "Initech")).encode(), KeyValues())
    keys = [s.mention.key for s in [*scored, *calm]]
    assert len(worker.store.seen(keys)) == len(keys)
    for brand in BRANDS:
        at = START + timedelta(days=3)
        worker.handle(json.dumps(tick_message(brand, at)).encode(), states[brand])
    # the calm ones go; those near an incident stay (a report of it shows them)
    assert worker.store.seen(keys) == {s.mention.key for s in scored}


def test_acks_and_silences_reach_the_evaluator_as_commands(config: Config, tmp_path: Path) -> None:
    """An acknowledgement and silences given as ``commands`` messages, just before the tick
    at which embedded mode's store first holds them, give the same notices: the
    acknowledged alert and no more reminders, muted alerts with the silence's id, a
    silence of every brand (one command per brand) and one expired early. A command
    delivered twice changes nothing."""
    from listener.bus import ack_command, expire_command, silence_command
    from listener.bus.alerts import decode_record
    from listener.model import Ack, Silence

    scored = stream(config, 7)
    probe = Store.open(tmp_path / "probe.db")
    processor = Processor(config, probe, Metrics(CollectorRegistry()))
    for s in scored:
        for brand in s.brands:
            processor.count_scored(brand, [s], s.mention.created_at)
    opened = next(a for at in ticks() for a in processor.evaluate(at) if a.kind == "opened")
    probe.close()
    ack_at = opened.at + timedelta(minutes=3)
    mute_at, end_at = START + timedelta(minutes=40), START + timedelta(minutes=100)
    everyone = Silence("sil-all", mute_at, end_at, "ana", "release", rule="angry")
    g_at = START + timedelta(hours=2)
    globex = Silence("sil-g", g_at, START + timedelta(hours=3), "bo", "ok", brand="Globex")
    expire_at = g_at + timedelta(minutes=25)  # before the reminder of the incident it muted

    def commands(at: datetime) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if at == ack_at:
            out.append(ack_command(opened.brand, opened.incident_id, Ack("ana", at, "on it")))
        if at == mute_at:
            out += [silence_command(b, everyone) for b in BRANDS]
        if at == g_at:
            out.append(silence_command("Globex", globex))
        if at == expire_at:
            out.append(expire_command("Globex", "sil-g", at))
        return out

    # embedded mode: the store holds each at the same instant
    store = Store.open(tmp_path / "embedded.db")
    processor = Processor(config, store, Metrics(CollectorRegistry()))
    for s in scored:
        for brand in s.brands:
            processor.count_scored(brand, [s], s.mention.created_at)
    for at in ticks():
        if at == ack_at:
            store.ack_log.add(opened.incident_id, "ana", at, "on it")
        if at == mute_at:
            store.silence_log.add(everyone)
        if at == g_at:
            store.silence_log.add(globex)
        if at == expire_at:
            store.silence_log.expire("sil-g", at)
        processor.evaluate(at)
    want = sorted(
        (r[0], r[1], r[2], tuple(json.loads(r[3])), r[4])
        for r in store._read("SELECT alert_id, kind, level, sinks, muted FROM notices")
    )
    store.close()
    assert any(kind == "acknowledged" for _, kind, _, _, _ in want)
    muted = [(a, m.split()[1]) for a, *_, m in want if m and m.startswith("silenced")]
    assert {sid for _, sid in muted} == {"sil-all", "sil-g"}
    assert ("20260302T101600Z-globex-angry#1", "sil-g") in muted
    assert not any(a.startswith("20260302T101600Z-globex-angry#rem") for a, _ in muted)

    worker = _evaluator(config, tmp_path, "w")
    states = {brand: KeyValues() for brand in BRANDS}
    for s in scored:
        for brand in s.brands:
            worker.handle(json.dumps(scored_message(s, brand)).encode(), states[brand])
    got = []
    for at in ticks():
        for command in commands(at):
            for _ in range(2):  # delivered twice
                assert worker.handle(json.dumps(command).encode(), states[command["brand"]]) == []
        for brand in BRANDS:
            for message in worker.handle(
                json.dumps(tick_message(brand, at)).encode(), states[brand]
            ):
                n = decode_record(json.dumps(message)).notice
                assert n is not None
                got.append((n.alert_id, n.kind, n.level, n.sinks, n.muted))
    assert sorted(got) == want
    duplicate = worker.metrics.bus_messages.labels(
        role="evaluate", topic="commands", outcome="duplicate"
    )
    assert duplicate._value.get() == len(BRANDS) + 3
    assert set(states["Globex"]["silences"]) == {"sil-all", "sil-g"}
    later = json.dumps(tick_message("Globex", START + timedelta(days=2))).encode()
    worker.handle(later, states["Globex"])
    assert states["Globex"]["silences"] == {}  # ended over a day before: forgotten


def test_a_backfill_keeps_its_brands_quiet_as_embedded_mode_across_workers(
    config: Config, tmp_path: Path
) -> None:
    """A source's first poll reaches into history: its mentions come marked as a backfill
    (a collector's first poll) and count into the baseline, but a brand they touched opens
    no incident until that history has left the longest rule window, as in embedded mode.
    The quiet period is part of the brand's state: a worker that starts over, or another
    one, keeps it."""
    scored = stream(config, 7)
    history = START + timedelta(minutes=70)
    backfilled = {s.mention.key for s in scored if s.mention.created_at < history}

    def embedded(backfill: bool) -> list[tuple[str, ...]]:
        store = Store.open(tmp_path / f"embedded-{backfill}.db")
        processor = Processor(config, store, Metrics(CollectorRegistry()))
        for s in scored:
            for brand in s.brands:
                old = backfill and s.mention.key in backfilled
                processor.count_scored(brand, [s], s.mention.created_at, backfill=old)
        alerts = sorted(_alert(a) for at in ticks() for a in processor.evaluate(at))
        store.close()
        return alerts

    want, unquiet = embedded(True), embedded(False)
    assert want != unquiet  # the backfill held incidents back
    assert {a for a in unquiet if a[1] == "opened"} - {a for a in want if a[1] == "opened"}
    states = {brand: KeyValues() for brand in BRANDS}
    workers = [_evaluator(config, tmp_path, f"w{i}") for i in range(2)]
    messages = [
        (brand, json.dumps(scored_message(s, brand, backfill=s.mention.key in backfilled)))
        for s in scored
        for brand in s.brands
    ] + [(brand, json.dumps(tick_message(brand, at))) for at in ticks() for brand in BRANDS]
    got = []
    for i, (brand, value) in enumerate(messages):
        if i % 97 == 96:  # a worker started over: it holds nothing yet
            workers[0].close()
            workers[0] = _evaluator(config, tmp_path, f"w0-{i}")
        worker = workers[(i // 41) % 2]  # brands move from one worker to the other
        for message in worker.handle(value.encode(), states[brand]):
            alert, sinks = decode_alert(json.dumps(message))
            if sinks:
                got.append(_alert(alert))
    assert sorted(got) == want
    assert all(datetime.fromisoformat(states[b]["quiet"]) > history for b in BRANDS)


def _gauges(*registries: CollectorRegistry) -> dict[tuple[str, ...], float]:
    """The condition and brand gauges' samples: (name, label values...) → value."""
    out: dict[tuple[str, ...], float] = {}
    for registry in registries:
        for family in registry.collect():
            if family.name.startswith(("listener_condition_", "listener_brand_")):
                for sample in family.samples:
                    key = (sample.name, *sorted(sample.labels.items()))
                    assert key not in out, f"{key} exported twice"
                    out[key] = sample.value  # type: ignore[assignment]
    return out


def test_evaluators_export_the_gauges_of_the_brands_they_evaluate_lately(
    config: Config, store: Store, tmp_path: Path
) -> None:
    """Two evaluators sharing the brands export, between them, embedded mode's condition
    and brand gauges, each brand once; a brand that moved to the other evaluator leaves
    the first one's gauges once it has not been evaluated there for ``shown_for``."""
    end = START + timedelta(minutes=95)
    scored = [s for s in stream(config, 4) if s.mention.created_at <= end]
    at_end = [at for at in ticks() if at <= end]
    embedded = Processor(config, store, Metrics(registry := CollectorRegistry()))
    for s in scored:
        for brand in s.brands:
            embedded.count_scored(brand, [s], s.mention.created_at)
    for at in at_end:
        embedded.evaluate(at)
    want = _gauges(registry)
    assert any(k[0] == "listener_condition_threshold" for k in want)
    assert {dict(k[1:])["brand"] for k in want} == set(BRANDS)

    clock = ManualClock(START)
    registries = [CollectorRegistry(), CollectorRegistry()]
    workers = [
        BrandEvaluator(
            config,
            str(tmp_path),
            Metrics(r),
            START,
            clock=clock,
            shown_for=timedelta(minutes=5),
        )
        for r in registries
    ]
    owner = {"Acme": 0, "Globex": 0, "Initech": 1}
    states = {brand: KeyValues() for brand in BRANDS}
    for brand, value in _messages(scored):
        if b'"scored"' in value or json.loads(value)["at"] <= end.isoformat():
            workers[owner[brand]].handle(value, states[brand])
    got = _gauges(*registries)
    assert got.keys() == want.keys()
    assert got == pytest.approx(want)

    # Globex moves to the second evaluator; the first still evaluates Acme
    for minutes in range(1, 8):
        clock.set(START + timedelta(minutes=minutes))
        at = end + timedelta(minutes=minutes)
        workers[0].handle(json.dumps(tick_message("Acme", at)).encode(), states["Acme"])
        workers[1].handle(json.dumps(tick_message("Globex", at)).encode(), states["Globex"])
        first = {dict(k[1:])["brand"] for k in _gauges(registries[0])}
        assert first == ({"Acme", "Globex"} if minutes <= 5 else {"Acme"}), minutes
    # the second shows Globex; Initech, not evaluated for 7 minutes, has left too
    assert {dict(k[1:])["brand"] for k in _gauges(registries[1])} == {"Globex"}
