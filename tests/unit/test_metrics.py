"""The metrics the processor and the deliverer set: what moves them, and by how much."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.clock import ManualClock
from listener.config.load import load_config_text
from listener.config.schema import Config, DeliveryConfig
from listener.errors import SinkUnavailable
from listener.metrics import Metrics
from listener.model import Alert, Mention, Sentiment
from listener.processor import Processor, ReadOnce, condition_leaves
from listener.rules.conditions import build_condition
from listener.sinks.delivery import Deliverer
from listener.store import Store
from tests.support.receiver import sample_alert

CONFIG = """
brands:
  - name: Acme
  - name: Globex
rules:
  - name: surge
    brands: [Acme]
    levels:
      watch:
        when: {type: spike, window: 10m, baseline: 1h, ratio: 3, min_volume: 2, warmup: false}
      crisis:
        when:
          type: all
          conditions:
            - {type: volume, metric: negative, window: 10m, above: 10}
            - {type: negative_share, window: 10m, above: 0.5, min_volume: 5}
routes:
  default: [ops]
sinks:
  ops: {type: console}
"""

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class WordScorer:
    """Scores by keyword: 'bad' is -0.7 (negative), 'good' 0.6 (positive), else neutral."""

    def score(self, text: str) -> Sentiment:
        if "bad" in text:
            return Sentiment("negative", -0.7)
        if "good" in text:
            return Sentiment("positive", 0.6)
        return Sentiment("neutral", 0.0)


def load(text: str = CONFIG) -> Config:
    return load_config_text(text, "rules.yaml", {})


@pytest.fixture
def processor(tmp_path: Path) -> Iterator[Processor]:
    """A processor over a fresh state file, with a fresh registry and a keyword scorer."""
    p = Processor(load(), Store.open(tmp_path / "state.db"), Metrics(), scorer=WordScorer())
    yield p
    p.store.close()


def sample(p: Processor, name: str, labels: dict[str, str]) -> float | None:
    return p.metrics.registry.get_sample_value(name, labels)


def mention(n: int, text: str, at: datetime, source: str = "news") -> Mention:
    return Mention(source=source, id=f"{source}-{n}", text=text, created_at=at)


def test_matches_and_sentiment_are_counted_per_source_and_brand(processor: Processor) -> None:
    """Each matched mention counts once per (source, brand) and its compound score lands in
    the brand's histogram; unmatched mentions move neither."""
    news = [mention(i, f"Acme is bad #{i}", NOW) for i in range(3)]
    news.append(mention(3, "Acme and Globex look good", NOW))
    news.append(mention(4, "nothing to see here", NOW))
    processor.ingest("news", news, NOW)
    processor.ingest("blog", [mention(1, "Acme bad again", NOW, source="blog")], NOW)

    def matches(source: str, brand: str) -> float | None:
        return sample(processor, "listener_matches_total", {"source": source, "brand": brand})

    assert matches("news", "Acme") == 4
    assert matches("news", "Globex") == 1
    assert matches("blog", "Acme") == 1
    assert matches("blog", "Globex") is None
    acme = {"brand": "Acme"}
    assert sample(processor, "listener_sentiment_compound_count", acme) == 5
    assert sample(processor, "listener_sentiment_compound_sum", acme) is None  # see metrics.py
    assert sample(processor, "listener_sentiment_compound_bucket", {**acme, "le": "-0.8"}) == 0
    assert sample(processor, "listener_sentiment_compound_bucket", {**acme, "le": "-0.6"}) == 4
    assert sample(processor, "listener_sentiment_compound_bucket", {**acme, "le": "0.4"}) == 4
    assert sample(processor, "listener_sentiment_compound_bucket", {**acme, "le": "0.6"}) == 5
    globex = {"brand": "Globex"}
    assert sample(processor, "listener_sentiment_compound_bucket", {**globex, "le": "0.4"}) == 0
    assert sample(processor, "listener_sentiment_compound_bucket", {**globex, "le": "0.6"}) == 1


def test_match_counts_add_up_over_batches(processor: Processor) -> None:
    """Batch after batch, the same (source, brand) and (brand, sentiment) series keep
    counting (the processor keeps each labelled series once looked up)."""
    for batch in range(3):
        texts = ["Acme is bad", "Acme is good", "Globex is bad"]
        processor.ingest(
            "news", [mention(10 * batch + i, t, NOW) for i, t in enumerate(texts)], NOW
        )

    def scored(brand: str, label: str) -> float | None:
        return sample(
            processor, "listener_mentions_scored_total", {"brand": brand, "sentiment": label}
        )

    def matches(brand: str) -> float | None:
        return sample(processor, "listener_matches_total", {"source": "news", "brand": brand})

    assert (matches("Acme"), matches("Globex")) == (6, 3)
    assert (scored("Acme", "negative"), scored("Acme", "positive")) == (3, 3)
    assert scored("Globex", "negative") == 3
    assert sample(processor, "listener_sentiment_compound_count", {"brand": "Acme"}) == 6


def test_brand_gauges_cover_the_last_hour(processor: Processor) -> None:
    """Volume, negative volume and negative share per brand count mentions dated in the
    last hour at the evaluation; a brand with none reads 0 (share 0, not NaN)."""
    batch = [
        mention(1, "Acme bad", NOW - timedelta(minutes=50)),
        mention(2, "Acme bad", NOW - timedelta(minutes=5)),
        mention(3, "Acme good", NOW - timedelta(minutes=5)),
        mention(4, "Acme fine", NOW - timedelta(minutes=1)),
        mention(5, "Acme bad, long ago", NOW - timedelta(minutes=70)),
    ]
    processor.ingest("news", batch, NOW)
    processor.evaluate(NOW)
    acme, globex = {"brand": "Acme"}, {"brand": "Globex"}
    assert sample(processor, "listener_brand_mentions_1h", acme) == 4
    assert sample(processor, "listener_brand_negative_mentions_1h", acme) == 2
    assert sample(processor, "listener_brand_negative_share_1h", acme) == 0.5
    assert sample(processor, "listener_brand_sentiment_mean_1h", acme) == pytest.approx(-0.2)
    assert sample(processor, "listener_brand_mentions_1h", globex) == 0
    assert sample(processor, "listener_brand_negative_share_1h", globex) == 0
    assert sample(processor, "listener_brand_sentiment_mean_1h", globex) == 0

    processor.evaluate(NOW + timedelta(minutes=20))  # the 50-minute-old one has left
    assert sample(processor, "listener_brand_negative_mentions_1h", acme) == 1


def test_condition_gauges_report_value_threshold_and_baseline(processor: Processor) -> None:
    """Each leaf condition of each level reports what it measured, its threshold and (for
    history comparisons) its baseline, per rule, brand and level; only the brands the
    rule applies to get series."""
    history = [mention(i, "Acme bad", NOW - timedelta(minutes=65 - i)) for i in range(6)]
    current = [mention(10 + i, "Acme bad", NOW - timedelta(minutes=5)) for i in range(4)]
    current.append(mention(20, "Acme fine", NOW - timedelta(minutes=4)))
    processor.ingest("news", [*history, *current], NOW)
    processor.evaluate(NOW)

    def read(name: str, level: str, condition: str) -> float | None:
        labels = {"rule": "surge", "brand": "Acme", "level": level, "condition": condition}
        return sample(processor, f"listener_condition_{name}", labels)

    # 6 negative in the hour before the window = 1 per 10 minutes; 4 now; 3 × 1 needed
    assert read("value", "watch", "spike") == 4
    assert read("baseline", "watch", "spike") == pytest.approx(1.0)
    assert read("threshold", "watch", "spike") == pytest.approx(3.0)
    assert read("value", "crisis", "all.0.volume") == 4
    assert read("threshold", "crisis", "all.0.volume") == 10
    assert read("baseline", "crisis", "all.0.volume") is None
    assert read("value", "crisis", "all.1.negative_share") == pytest.approx(0.8)
    assert read("threshold", "crisis", "all.1.negative_share") == 0.5
    scrape = processor.metrics.registry.collect()
    condition_brands = {
        s.labels["brand"]
        for f in scrape
        if f.name.startswith("listener_condition_")
        for s in f.samples
    }
    assert condition_brands == {"Acme"}


SMALLER = """
brands:
  - name: Acme
rules:
  - name: {rule}
    levels:
      watch:
        when: {{type: spike, window: 10m, baseline: 1h, ratio: 3, min_volume: 2, warmup: false}}
routes:
  default: [ops]
sinks:
  ops: {{type: console}}
"""


def test_series_of_removed_rules_levels_and_brands_go(processor: Processor) -> None:
    """After a reload drops a level, a brand or a rule, their series disappear at the next
    evaluation while the others keep theirs."""
    processor.ingest("news", [mention(1, "Acme bad", NOW - timedelta(minutes=1))], NOW)
    processor.evaluate(NOW)
    crisis = {"rule": "surge", "brand": "Acme", "level": "crisis", "condition": "all.0.volume"}
    assert sample(processor, "listener_condition_value", crisis) == 1
    assert sample(processor, "listener_brand_mentions_1h", {"brand": "Globex"}) == 0

    processor.reconfigure(load(SMALLER.format(rule="surge")))
    processor.evaluate(NOW + timedelta(minutes=1))
    assert sample(processor, "listener_condition_value", crisis) is None
    assert sample(processor, "listener_condition_threshold", crisis) is None
    watch = {**crisis, "level": "watch", "condition": "spike"}
    assert sample(processor, "listener_condition_value", watch) == 1
    assert sample(processor, "listener_brand_mentions_1h", {"brand": "Globex"}) is None
    assert sample(processor, "listener_brand_negative_share_1h", {"brand": "Globex"}) is None
    assert sample(processor, "listener_brand_mentions_1h", {"brand": "Acme"}) == 1

    processor.reconfigure(load(SMALLER.format(rule="renamed")))
    processor.evaluate(NOW + timedelta(minutes=2))
    assert sample(processor, "listener_condition_value", watch) is None
    assert sample(processor, "listener_condition_baseline", watch) is None
    assert sample(processor, "listener_condition_value", {**watch, "rule": "renamed"}) == 1


def test_condition_leaves_are_named_by_type_and_position() -> None:
    """Leaves are named by their config type, nested ones by the path that leads to them."""
    config = load(
        CONFIG.replace(
            "        when: {type: spike, window: 10m, baseline: 1h, ratio: 3, min_volume: 2, "
            "warmup: false}",
            "        when:\n"
            "          type: any\n"
            "          conditions:\n"
            "            - {type: zscore, window: 10m}\n"
            "            - type: not\n"
            "              condition: {type: mean_sentiment, window: 1h, below: -0.2}\n"
            "            - type: all\n"
            "              conditions:\n"
            "                - {type: ramp, window: 10m}\n"
            "                - {type: seasonal, window: 1h, period: 1d}\n",
        )
    )
    when = config.rules[0].levels["watch"].when
    assert [path for path, _ in condition_leaves(build_condition(when))] == [
        "any.0.zscore",
        "any.1.not.mean_sentiment",
        "any.2.all.0.ramp",
        "any.2.all.1.seasonal",
    ]


def test_read_once_reads_each_range_once() -> None:
    """The evaluation's view asks the windows for a range once and answers repeats from
    what it read; other ranges or filters are read anew."""

    class Counting:
        def __init__(self) -> None:
            self.reads = 0

        def value(
            self, brand: str, measure: str, start: datetime, end: datetime, **f: object
        ) -> float:
            self.reads += 1
            return 7.0

        def first_seen(self, brand: str) -> datetime | None:
            return None

    windows = Counting()
    view = ReadOnce(windows)
    for _ in range(3):
        assert view.value("Acme", "negative", NOW - timedelta(hours=1), NOW) == 7.0
    assert windows.reads == 1
    view.value("Acme", "negative", NOW - timedelta(hours=1), NOW, source="news")
    view.value("Acme", "total", NOW - timedelta(hours=1), NOW)
    assert windows.reads == 3


# ---------------------------------------------------------------------- delivery


class FlakySink:
    """Fails with SinkUnavailable ``failures`` times, then accepts everything."""

    name = "hook"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        if self.failures:
            self.failures -= 1
            raise SinkUnavailable("down")

    async def healthcheck(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


POLICY = DeliveryConfig(
    initial_backoff=timedelta(seconds=10),
    max_backoff=timedelta(seconds=10),
    max_age=timedelta(hours=1),
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state.db")
    yield s
    s.close()


def deliverer(store: Store, sink: FlakySink, metrics: Metrics, clock: ManualClock) -> Deliverer:
    return Deliverer(store, {"hook": sink}, {"hook": POLICY}, metrics, clock, rng=random.Random(1))


def enqueue(store: Store, clock: ManualClock, alert_id: str) -> None:
    alert = sample_alert(id=alert_id, incident_id=alert_id)
    store.commit(now=clock.now(), outbox=[(alert, ["hook"])])


async def test_delivery_latency_runs_from_the_outbox_to_delivery(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """An alert delivered 90 seconds after it entered the outbox observes 90 s for its
    sink (the send's own duration is a separate histogram)."""
    enqueue(store, clock, "a-1")
    clock.advance(timedelta(seconds=90))
    assert await deliverer(store, FlakySink(), metrics, clock).deliver_due("hook") == 1

    def read(suffix: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(
            f"listener_delivery_latency_seconds{suffix}", {"sink": "hook", **labels}
        )

    assert read("_count") == 1
    assert read("_sum") == 90
    assert read("_bucket", le="60.0") == 0
    assert read("_bucket", le="120.0") == 1


async def test_outbox_age_is_the_oldest_pending_alert(
    store: Store, clock: ManualClock, metrics: Metrics
) -> None:
    """While a sink is down, the age of its oldest waiting alert grows with the clock;
    once everything is delivered it reads 0."""
    d = deliverer(store, FlakySink(failures=2), metrics, clock)

    def age() -> float | None:
        return metrics.registry.get_sample_value(
            "listener_outbox_oldest_age_seconds", {"sink": "hook"}
        )

    enqueue(store, clock, "a-1")
    clock.advance(timedelta(seconds=30))
    enqueue(store, clock, "b-1")
    assert await d.deliver_due("hook") == 0
    assert age() == 30
    clock.advance(timedelta(seconds=15))
    assert await d.deliver_due("hook") == 0  # the retry fails too
    assert age() == 45
    for _ in range(5):
        clock.advance(timedelta(seconds=11))
        await d.deliver_due("hook")
    assert store.outbox.pending() == {}
    assert age() == 0
