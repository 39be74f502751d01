"""The processor over a real SQLite store: dedup, windows, incidents, outbox, restart."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.clock import ManualClock
from listener.config.load import load_config_text
from listener.config.schema import Config
from listener.errors import StoreError
from listener.metrics import Metrics
from listener.model import Author, Mention
from listener.processor import BUCKET, Processor
from listener.rules.source_health import SourceStatus
from listener.store import EvaluateWrite, Store

CONFIG = """
brands:
  - name: Acme
    handles: ["@acme"]
  - name: Globex
rules:
  - name: neg
    levels:
      watch:
        when: {type: volume, window: 15m, above: 5}
      crisis:
        when: {type: volume, window: 15m, above: 20}
    resolve_after: 10m
routes:
  watch: [ops]
  crisis: [ops, pager]
sinks:
  ops: {type: console}
  pager: {type: webhook, url: "http://127.0.0.1:9/hook"}
"""

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def config() -> Config:
    return load_config_text(CONFIG, "rules.yaml", {})


def angry(i: int, at: datetime, source: str = "news", followers: int = 10) -> Mention:
    return Mention(
        source=source,
        id=f"m{i}",
        text=f"@acme your service is terrible and broken, worst outage ever ({i})",
        created_at=at,
        url=f"https://example.test/{i}",
        author=Author(handle=f"user{i}", followers=followers),
    )


def open_processor(path: Path, config: Config) -> Processor:
    return Processor(config, Store.open(path), Metrics())


def test_dedup_by_source_and_id_across_batches_and_restarts(tmp_path: Path, config: Config) -> None:
    """A mention seen before is never counted again, in a batch, a later batch or after restart."""
    p = open_processor(tmp_path / "s.db", config)
    batch = [angry(1, T0), angry(1, T0), angry(2, T0)]
    first = p.ingest("news", batch, T0 + timedelta(minutes=1))
    assert (first.received, first.new, first.matched, first.negative) == (3, 2, 2, 2)
    again = p.ingest("news", batch, T0 + timedelta(minutes=2))
    assert again.new == 0
    other_source = p.ingest("blog", [angry(1, T0, source="blog")], T0 + timedelta(minutes=2))
    assert other_source.new == 1
    p.store.close()
    p2 = open_processor(tmp_path / "s.db", config)
    assert p2.ingest("news", batch, T0 + timedelta(minutes=3)).new == 0
    now = T0 + timedelta(minutes=3)
    assert p2.windows.count("Acme", "negative", now - timedelta(minutes=15), now) == 3


def test_cursor_is_persisted_with_the_mentions(tmp_path: Path, config: Config) -> None:
    """The cursor is stored in the same step as the mentions it produced."""
    p = open_processor(tmp_path / "s.db", config)
    p.ingest("news", [angry(1, T0)], T0, cursor={"feeds": {"u": {"etag": "x"}}})
    assert p.store.cursors.load("news") == {"feeds": {"u": {"etag": "x"}}}
    assert p.store.cursors.load("other") is None


def test_backfill_is_stored_but_cannot_raise_a_spike(tmp_path: Path, config: Config) -> None:
    """History older than the windows' retention is remembered but not counted."""
    p = open_processor(tmp_path / "s.db", config)
    now = T0 + timedelta(days=3)
    old = [angry(i, T0 + timedelta(seconds=i)) for i in range(50)]
    result = p.ingest("news", old, now)
    assert (result.new, result.stale) == (50, 50)
    assert p.evaluate(now) == []
    assert p.store.mentions.count() == 50


def test_unmatched_mentions_are_remembered_not_counted(tmp_path: Path, config: Config) -> None:
    """A mention about no brand is stored for dedup but moves no window."""
    p = open_processor(tmp_path / "s.db", config)
    m = Mention(source="news", id="x", text="the weather is awful today", created_at=T0)
    result = p.ingest("news", [m], T0)
    assert (result.new, result.matched) == (1, 0)
    assert p.windows.count("Acme", "total", T0 - timedelta(hours=1), T0 + timedelta(minutes=1)) == 0


def test_incident_lifecycle_routes_alerts_into_the_outbox(tmp_path: Path, config: Config) -> None:
    """Open at watch, escalate to crisis, resolve: each alert is routed and stored once."""
    clock = ManualClock(T0)
    p = open_processor(tmp_path / "s.db", config)
    n = 0
    for _minute in range(15):
        batch = [angry(n + k, clock.now()) for k in range(2)]
        n += 2
        p.ingest("news", batch, clock.now())
        p.evaluate(clock.now())
        clock.advance(timedelta(minutes=1))
    for _ in range(40):
        p.evaluate(clock.now())
        clock.advance(timedelta(minutes=1))
    incidents = p.store.incident_log.recent()
    assert len(incidents) == 1
    inc = incidents[0]
    assert (inc.rule, inc.brand, inc.status, inc.peak_level) == (
        "neg",
        "Acme",
        "resolved",
        "crisis",
    )
    kinds = [e.kind for e in p.store.incident_log.events(inc.id)]
    assert kinds[0] == "opened"
    assert kinds[-1] == "resolved"
    assert "escalated" in kinds
    deliveries = p.store.outbox.deliveries(inc.id)
    by_sink = {s: [d.alert_id for d in deliveries if d.sink == s] for s in ("ops", "pager")}
    assert by_sink["ops"][0] == f"{inc.id}#1"
    assert len(by_sink["ops"]) == len(kinds)
    # the pager hears from the crisis on, including the all-clear
    assert by_sink["pager"][-1] == f"{inc.id}#{len(kinds)}"
    assert f"{inc.id}#1" not in by_sink["pager"]
    opened = p.store.outbox.due("ops", clock.now())[0].alert
    assert opened.top_mentions
    assert opened.top_mentions[0].url
    assert opened.facts[0].threshold == 5


def test_evaluating_twice_at_the_same_instant_adds_nothing(tmp_path: Path, config: Config) -> None:
    """Repeated evaluation (a retried tick) produces no second alert."""
    p = open_processor(tmp_path / "s.db", config)
    p.ingest("news", [angry(i, T0) for i in range(6)], T0)
    assert len(p.evaluate(T0 + timedelta(seconds=1))) == 1
    assert p.evaluate(T0 + timedelta(seconds=1)) == []
    assert sum(p.store.outbox.pending().values()) == 1


def test_restart_between_ingest_and_evaluate_loses_nothing(tmp_path: Path, config: Config) -> None:
    """A crash after the mentions are stored but before evaluation still alerts once."""
    p = open_processor(tmp_path / "s.db", config)
    p.ingest("news", [angry(i, T0) for i in range(6)], T0)
    p.store.close()  # "crash": evaluate never ran
    p2 = open_processor(tmp_path / "s.db", config)
    alerts = p2.evaluate(T0 + timedelta(seconds=30))
    assert [a.kind for a in alerts] == ["opened"]
    p2.store.close()
    p3 = open_processor(tmp_path / "s.db", config)
    assert p3.evaluate(T0 + timedelta(seconds=40)) == []
    assert p3.store.outbox.pending() == {"ops": 1}


def test_a_batch_reaching_back_counts_old_mentions_without_voices_or_stories(
    tmp_path: Path, config: Config
) -> None:
    """Mentions of a batch from before the windows' distinct retention (a backfill, a batch
    spanning hours) count, but add no voice or story: the evaluation's prune would strip
    them. Their buckets are written once, by the ingest (the evaluation has nothing to
    strip), and a restart restores the same windows."""
    slow = (
        "  - name: slow\n    levels:\n      watch:\n"
        "        when: {type: volume, window: 3h, above: 99}\n"
    )
    config = load_config_text(CONFIG.replace("routes:", slow + "routes:"), "rules.yaml", {})
    p = open_processor(tmp_path / "s.db", config)
    assert p.windows.retention == timedelta(hours=3, minutes=10)
    assert p.windows.distinct_retention == timedelta(minutes=70)
    now = T0 + timedelta(hours=2)
    old = [angry(i, T0 + timedelta(minutes=i)) for i in range(5)]
    recent = [angry(10 + i, now - timedelta(minutes=i + 1)) for i in range(3)]
    written: list[int] = []
    write_evaluate = p.store.write_evaluate

    def spy(w: EvaluateWrite) -> None:
        written.append(len(w.buckets))
        write_evaluate(w)

    p.store.write_evaluate = spy  # type: ignore[method-assign]
    p.ingest("news", old + recent, now)
    p.evaluate(now)
    assert written == [0]
    span = (T0 - timedelta(hours=1), now + timedelta(minutes=1))
    assert p.windows.value("Acme", "total", *span) == 8
    assert p.windows.value("Acme", "voices", *span) == 3  # the recent authors only
    assert p.windows.value("Acme", "negative_voices", *span) == 3
    assert p.windows.value("Acme", "stories", *span) == 1  # near-duplicates: one story
    p.store.close()
    again = open_processor(tmp_path / "s.db", config)
    assert again.windows.export_brand("Acme") == p.windows.export_brand("Acme")


def test_a_failing_rule_does_not_stop_the_others(tmp_path: Path, config: Config) -> None:
    """An exception in one rule is counted and the next rule still runs."""
    text = CONFIG.replace(
        "rules:\n",
        "rules:\n  - name: first\n    levels:\n      watch:\n"
        "        when: {type: volume, window: 15m, above: 1}\n",
    )
    cfg = load_config_text(text, "rules.yaml", {})
    p = open_processor(tmp_path / "s.db", cfg)

    class Boom:
        def check(self, *args: object) -> object:
            raise RuntimeError("bug in a condition")

    first = p.rules[0]
    broken_level = dataclasses.replace(first.levels[0], when=Boom())
    p.rules[0] = dataclasses.replace(first, levels=(broken_level,))
    p.ingest("news", [angry(i, T0) for i in range(6)], T0)
    alerts = p.evaluate(T0 + timedelta(seconds=1))
    assert [a.rule for a in alerts] == ["neg"]
    assert (
        p.metrics.registry.get_sample_value(
            "listener_errors_total", {"stage": "evaluate", "error_type": "RuntimeError"}
        )
        == 1
    )


def test_store_failure_rolls_memory_back(tmp_path: Path, config: Config) -> None:
    """If the commit fails, window counts in memory do not run ahead of the store."""
    p = open_processor(tmp_path / "s.db", config)
    p.ingest("news", [angry(1, T0)], T0)
    p.store._conn.execute("DROP TABLE mention_brands")
    with pytest.raises(StoreError):
        p.ingest("news", [angry(2, T0)], T0)
    assert (
        p.windows.count("Acme", "negative", T0 - timedelta(minutes=5), T0 + timedelta(minutes=1))
        == 1
    )
    # nor do the metrics: the failed batch is not counted (a retry would count it twice)
    sample = p.metrics.registry.get_sample_value
    assert sample("listener_matches_total", {"source": "news", "brand": "Acme"}) == 1
    assert sample("listener_sentiment_compound_count", {"brand": "Acme"}) == 1


def test_store_rejects_newer_schema(tmp_path: Path) -> None:
    """A state file from a newer listener is refused with an explanation."""
    path = tmp_path / "s.db"
    Store.open(path).close()
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StoreError, match="newer listener"):
        Store.open(path)


def test_backfill_counts_into_baseline_but_cannot_open_an_incident(
    tmp_path: Path, config: Config
) -> None:
    """A first poll's history moves the windows but opens nothing, even after a restart;
    fresh mentions after the quiet span open incidents as usual."""
    p = open_processor(tmp_path / "s.db", config)
    history = [angry(i, T0 - timedelta(minutes=i % 10)) for i in range(30)]
    p.ingest("news", history, T0, backfill=True)
    assert p.windows.count("Acme", "negative", T0 - timedelta(minutes=15), T0 + BUCKET) == 30
    assert p.evaluate(T0 + timedelta(minutes=1)) == []
    p.store.close()
    p2 = open_processor(tmp_path / "s.db", config)  # the quiet span survives a restart
    assert p2.evaluate(T0 + timedelta(minutes=5)) == []
    later = T0 + timedelta(minutes=40)
    p2.ingest("news", [angry(100 + i, later) for i in range(6)], later)
    assert [a.kind for a in p2.evaluate(later + timedelta(seconds=30))] == ["opened"]


def test_source_health_incident_opens_routes_and_resolves(tmp_path: Path, config: Config) -> None:
    """A source failing past failing_after opens a source-health incident routed like its
    level; the first success resolves it."""
    text = CONFIG.replace("routes:\n", "routes:\n  source-health: [pager]\n").replace(
        "rules:\n",
        "sources:\n  news: {type: rss, urls: ['http://127.0.0.1:9/f'],"
        " health: {failing_after: 20m}}\nrules:\n",
    )
    cfg = load_config_text(text, "rules.yaml", {})
    p = open_processor(tmp_path / "s.db", cfg)
    started = SourceStatus(since=T0)
    assert p.evaluate(T0 + timedelta(minutes=19), {"news": started}) == []
    (opened,) = p.evaluate(T0 + timedelta(minutes=21), {"news": started})
    assert (opened.kind, opened.rule, opened.brand, opened.level) == (
        "opened",
        "source-health",
        "news",
        "watch",
    )
    assert opened.facts[0].value == 21.0
    assert p.store.outbox.pending() == {"pager": 1}
    assert p.evaluate(T0 + timedelta(minutes=30), {"news": started}) == []
    healthy = SourceStatus(since=T0, last_success_at=T0 + timedelta(minutes=31))
    (resolved,) = p.evaluate(T0 + timedelta(minutes=32), {"news": healthy})
    assert resolved.kind == "resolved"
    assert resolved.incident_id == opened.incident_id
    assert p.store.outbox.pending() == {"pager": 2}


def test_source_health_alert_names_the_last_error(tmp_path: Path, config: Config) -> None:
    """A failing source's alert says what went wrong in plain words, not a class name."""
    text = CONFIG.replace(
        "rules:\n",
        "sources:\n  news: {type: rss, urls: ['http://127.0.0.1:9/f'],"
        " health: {failing_after: 20m}}\nrules:\n",
    )
    p = open_processor(tmp_path / "s.db", load_config_text(text, "rules.yaml", {}))
    failing = SourceStatus(
        since=T0, last_error="https://feeds.example.com/rss?key=k: HTTP 503", failures=4
    )
    (opened,) = p.evaluate(T0 + timedelta(minutes=21), {"news": failing})
    facts = [str(f) for f in opened.facts]
    assert "failed polls in a row (last error: HTTP 503 from feeds.example.com) = 4" in facts
    assert all("key=" not in f for f in facts)


def test_silent_source_raises_source_health(tmp_path: Path, config: Config) -> None:
    """With silent_after, a source that polls fine but brings nothing new is an incident."""
    text = CONFIG.replace(
        "rules:\n",
        "sources:\n  news: {type: rss, urls: ['http://127.0.0.1:9/f']}\n"
        "source_health: {failing_after: 1h, silent_after: 2h, level: crisis}\nrules:\n",
    )
    p = open_processor(tmp_path / "s.db", load_config_text(text, "rules.yaml", {}))
    now = T0 + timedelta(hours=3)
    status = SourceStatus(since=T0, last_success_at=now, last_new_at=T0 + timedelta(minutes=30))
    (opened,) = p.evaluate(now, {"news": status})
    assert opened.level == "crisis"
    assert [f.value for f in opened.facts] == [0.0, 150.0]
    assert p.store.outbox.pending() == {"ops": 1, "pager": 1}


def test_sink_state_is_durable_per_sink(tmp_path: Path) -> None:
    """A sink's state survives reopening the store and is separate from other sinks'."""
    from listener.store import StoreSinkState

    store = Store.open(tmp_path / "s.db")
    slack = StoreSinkState(store, "slack")
    slack.set("ts:inc-1", "1700000000.0001")
    StoreSinkState(store, "pager").set("ts:inc-1", "other")
    store.close()
    again = Store.open(tmp_path / "s.db")
    assert StoreSinkState(again, "slack").get("ts:inc-1") == "1700000000.0001"
    StoreSinkState(again, "slack").delete("ts:inc-1")
    assert StoreSinkState(again, "slack").get("ts:inc-1") is None
    assert StoreSinkState(again, "pager").get("ts:inc-1") == "other"


def test_rules_count_categories_voices_stories_and_reach(tmp_path: Path) -> None:
    """A rule on distinct negative voices about outages ignores one author's copy storm,
    and fires when different people complain; reach and stories are counted too."""
    text = """
brands:
  - name: Acme
rules:
  - name: outage-voices
    levels:
      watch:
        when: {type: volume, metric: negative_voices, category: outage, window: 15m, above: 5}
routes:
  default: [ops]
sinks:
  ops: {type: console}
"""
    p = Processor(
        load_config_text(text, "rules.yaml", {}), Store.open(tmp_path / "s.db"), Metrics()
    )
    storm = [
        Mention(
            source="x",
            id=f"bot{i}",
            created_at=T0,
            author=Author(handle="bot"),
            text=f"Acme is down again, outage all day, terrible #{i}",
        )
        for i in range(30)
    ]
    p.ingest("x", storm, T0)
    now = T0 + timedelta(seconds=30)
    assert p.evaluate(now) == []
    assert p.windows.value("Acme", "negative", T0, now + BUCKET, category="outage") == 30
    assert p.windows.value("Acme", "negative_voices", T0, now + BUCKET) == 1
    assert p.windows.value("Acme", "stories", T0, now + BUCKET) <= 2  # one text, copied
    people = [
        Mention(
            source="x",
            id=f"p{i}",
            created_at=T0,
            author=Author(handle=f"user{i}", followers=100),
            text=f"Acme login broken for me too, is Acme down? ({i} here)",
        )
        for i in range(6)
    ]
    p.ingest("x", people, now)
    (alert,) = p.evaluate(now + timedelta(seconds=5))
    assert alert.facts[0].value == 7  # six people plus the bot account
    assert ("outage", 36) in alert.categories
    assert p.windows.value("Acme", "negative_reach", T0, now + BUCKET) >= 600
    assert alert.authors[0].role == "detractor"
    assert alert.authors[0].handle == "bot"


def test_mention_retention_forgets_old_mentions_only(tmp_path: Path, config: Config) -> None:
    """Housekeeping drops mentions collected before the cutoff and keeps the rest."""
    p = open_processor(tmp_path / "s.db", config)
    p.ingest("news", [angry(1, T0)], T0)
    p.ingest("news", [angry(2, T0)], T0 + timedelta(days=40))
    assert p.store.mentions.prune(T0 + timedelta(days=30)) == 1
    assert p.store.mentions.count() == 1
    assert p.store.mentions.seen([("news", "m2"), ("news", "m1")]) == {("news", "m2")}


def test_ingesting_many_batches_at_once_is_ingesting_them_in_turn(
    tmp_path: Path, config: Config
) -> None:
    """``ingest_many`` (a replay's stretch of steps, the stage run once, one transaction)
    leaves the results, windows, stored mentions, buckets and quiet periods that
    ingesting each batch in turn leaves: repeats across batches and with the store are
    counted once, stale mentions move no window, a backfill keeps its brand quiet."""
    stored = [angry(0, T0)]
    batches = [
        (T0 + timedelta(minutes=1), [angry(1, T0), angry(2, T0), angry(1, T0), angry(0, T0)]),
        (T0 + timedelta(minutes=2), []),
        (T0 + timedelta(minutes=3), [angry(2, T0), angry(3, T0 + timedelta(minutes=2))]),
        (T0 + timedelta(hours=3), [angry(4, T0), angry(5, T0 + timedelta(hours=2, minutes=59))]),
    ]
    for backfill in (False, True):
        one = open_processor(tmp_path / f"one{backfill}.db", config)
        many = open_processor(tmp_path / f"many{backfill}.db", config)
        for p in (one, many):
            p.ingest("news", stored, T0)
        each = [p for now, ms in batches for p in [one.ingest("news", ms, now, backfill=backfill)]]
        assert many.ingest_many("news", batches, backfill=backfill) == each
        assert [r.new for r in each] == [2, 0, 1, 2]
        assert each[-1].stale == 1  # three hours late for a 15m rule: stored, not counted
        assert many.store.load_buckets() == one.store.load_buckets()
        assert many.store.load_kv("quiet_until") == one.store.load_kv("quiet_until")
        assert many.quiet_until == one.quiet_until
        assert bool(many.quiet_until) == backfill
        keys = [(m.source, m.id) for _, ms in batches for m in ms]
        assert many.store.seen(keys) == one.store.seen(keys) == set(keys)
        now = T0 + timedelta(hours=3)
        for brand in ("Acme", "Globex"):
            for measure in ("total", "negative"):
                start = now - timedelta(hours=4)
                assert many.windows.count(brand, measure, start, now) == one.windows.count(
                    brand, measure, start, now
                )
        assert many.windows.count("Acme", "total", T0, now) == 5


def test_alerts_that_call_people_say_why_it_spiked(tmp_path: Path, config: Config) -> None:
    """A calm day of store news, then complaints about a checkout outage from many
    people: the opening alert's explanation leads with what rose, with its counts and an
    example post; it survives the outbox (and the bus's encoding, the same dict); the
    all-clear carries none."""
    clock = ManualClock(T0 - timedelta(hours=20))
    p = open_processor(tmp_path / "s.db", config)
    n = 0
    while clock.now() < T0:  # the usual: four store openings an hour
        calm = [
            Mention(
                "news",
                f"c{n + k}",
                f"@acme opens a new store in town number {n + k}",
                clock.now(),
                author=Author(handle=f"press{k}"),
            )
            for k in range(4)
        ]
        n += 4
        p.ingest("news", calm, clock.now())
        p.evaluate(clock.now())
        clock.advance(timedelta(hours=1))
    for minute in range(10):
        burst = [
            Mention(
                "social",
                f"o{minute}-{k}",
                f"@acme checkout outage again, cannot pay anything ({minute}{k})",
                clock.now(),
                url=f"https://social.example/{minute}/{k}",
                author=Author(handle=f"buyer{minute}{k}", followers=minute * 10 + k),
            )
            for k in range(3)
        ]
        p.ingest("social", burst, clock.now())
        p.evaluate(clock.now())
        clock.advance(timedelta(minutes=1))
    for _ in range(40):
        p.evaluate(clock.now())
        clock.advance(timedelta(minutes=1))
    alerts = [item.alert for item in p.store.outbox.due("ops", clock.now(), limit=100)]
    opened = alerts[0]
    assert opened.kind == "opened"
    e = opened.explanation
    assert e is not None
    assert e.rose
    top = {d.label: d for d in e.drivers}
    assert {"outage", "checkout", "checkout outage"} <= set(top)
    assert top["outage"].before == 0
    assert top["outage"].now == e.mentions
    example = top["outage"].example
    assert example is not None
    assert example.url is not None
    assert example.url.startswith("https://social.example/")
    assert "acme" not in top  # the brand's own name is never why
    assert dataclasses.replace(opened) == type(opened).from_dict(opened.to_dict())
    resolved = next(a for a in alerts if a.kind == "resolved")
    assert resolved.explanation is None
