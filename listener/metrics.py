"""Every Prometheus metric listener exports, in one place; the catalogue is docs/metrics.md.

Built against an injected ``CollectorRegistry`` so tests use a fresh one and read
values with ``registry.get_sample_value``. Label values are bounded: source, sink,
rule, brand and level names come from the config, ``condition`` is a path in a rule's
config (``spike``, ``all.1.negative_share``), and the rest come from fixed sets.
Never a mention's text, author, URL or id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from listener import __version__
from listener.clock import Clock

STAGES = ("collect", "match", "score", "store", "evaluate", "deliver", "config", "bus")

BRAND_WINDOW = timedelta(hours=1)
"""The window of the ``listener_brand_*_1h`` gauges: mentions dated in the last hour."""

SENTIMENT_BUCKETS = (-0.8, -0.6, -0.4, -0.2, -0.05, 0.05, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Upper bounds of the compound-score histogram (scores lie in [-1, 1]; ±0.05 is the
usual neutral band)."""

LATENCY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
"""Upper bounds (seconds) of the alert-to-delivery latency histogram."""


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("listener_build", "listener version", registry=r)
        self.build_info.info({"version": __version__})

        # collect
        self.polls = Counter(
            "listener_polls_total",
            "Polls of each source by outcome (ok, error)",
            ["source", "outcome"],
            registry=r,
        )
        self.mentions_collected = Counter(
            "listener_mentions_collected_total",
            "Mentions returned by each source",
            ["source"],
            registry=r,
        )
        self.mentions_new = Counter(
            "listener_mentions_new_total",
            "Mentions not seen before (after deduplication)",
            ["source"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "listener_poll_duration_seconds",
            "Time one poll of a source took",
            ["source"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.source_last_success = Gauge(
            "listener_source_last_success_timestamp_seconds",
            "Unix time of the last successful poll of each source",
            ["source"],
            registry=r,
        )
        self.source_up = Gauge(
            "listener_source_up",
            "1 if the last poll of the source succeeded, else 0",
            ["source"],
            registry=r,
        )
        self.source_quota = Gauge(
            "listener_source_quota_remaining",
            "Requests left in the source's current rate-limit window (where the API says)",
            ["source"],
            registry=r,
        )
        self.source_backoff = Gauge(
            "listener_source_backoff_seconds",
            "Current backoff before the next poll after errors",
            ["source"],
            registry=r,
        )

        self.queue_mentions = Gauge(
            "listener_queue_mentions",
            "Mentions polled and waiting for the processing stage (bounded by "
            "LISTENER_QUEUE_MAX_MENTIONS)",
            registry=r,
        )
        self.queue_backpressure = Counter(
            "listener_queue_backpressure_total",
            "Polls of each source that waited for room in the full processing queue (waited) "
            "or were not started because it was full (skipped)",
            ["source", "action"],
            registry=r,
        )

        # match, score
        self.matches = Counter(
            "listener_matches_total",
            "New mentions matched to each brand, by the source that brought them",
            ["source", "brand"],
            registry=r,
        )
        self.scored = Counter(
            "listener_mentions_scored_total",
            "Matched mentions by brand and sentiment label",
            ["brand", "sentiment"],
            registry=r,
        )
        self.unscored = Counter(
            "listener_mentions_unscored_total",
            "Matched mentions in a language no scorer reads (counted in volume, labelled "
            "unscored), by language ('unknown' when none was found)",
            ["language"],
            registry=r,
        )

        self.sentiment = Histogram(
            "listener_sentiment_compound",
            "Compound sentiment score (-1 to 1) of each matched mention, per brand (no _sum: "
            "the buckets go below zero; the mean is listener_brand_sentiment_mean_1h)",
            ["brand"],
            buckets=SENTIMENT_BUCKETS,
            registry=r,
        )
        self.brands = BrandReadings()
        r.register(self.brands)

        # evaluate
        self.evaluations = Counter(
            "listener_rule_evaluations_total", "Rule evaluations", ["rule"], registry=r
        )
        self.conditions = ConditionReadings()
        r.register(self.conditions)
        self.incident_events = Counter(
            "listener_incident_events_total",
            "Incident lifecycle events (opened, escalated, deescalated, resolved)",
            ["rule", "brand", "kind"],
            registry=r,
        )
        self.incidents_open = Gauge(
            "listener_incidents_open",
            "Open incidents by rule, brand and level",
            ["rule", "brand", "level"],
            registry=r,
        )

        # deliver
        self.alerts = Counter(
            "listener_alerts_total",
            "Alert deliveries by outcome: delivered, retry, failed; grouped (delivered inside a "
            "storm digest, also counted as delivered); rate_limited (had to wait)",
            ["rule", "sink", "outcome"],
            registry=r,
        )
        self.digests = Counter(
            "listener_digests_total",
            "Scheduled digests by outcome: delivered, retry, failed (refused, or not delivered "
            "before the next one was due)",
            ["digest", "sink", "outcome"],
            registry=r,
        )
        self.alerts_muted = Counter(
            "listener_alerts_muted_total",
            "Alerts not sent because of a silence, inhibition or nobody to tell",
            ["rule", "reason"],
            registry=r,
        )
        self.time_to_ack = Histogram(
            "listener_time_to_ack_seconds",
            "Time from an incident opening to its acknowledgement",
            ["rule"],
            buckets=(60, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400),
            registry=r,
        )
        self.delivery_duration = Histogram(
            "listener_delivery_duration_seconds",
            "Time one send to a sink took",
            ["sink"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.delivery_latency = Histogram(
            "listener_delivery_latency_seconds",
            "Time from an alert entering the outbox to its delivery to a sink",
            ["sink"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outbox_pending = Gauge(
            "listener_outbox_pending",
            "Alerts waiting in the outbox for each sink",
            ["sink"],
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "listener_outbox_oldest_age_seconds",
            "Age of the oldest alert waiting in the outbox for each sink (0 when none waits)",
            ["sink"],
            registry=r,
        )

        # distributed mode
        self.bus_messages = Counter(
            "listener_bus_messages_total",
            "Messages each role of distributed mode read from a topic (an evaluator: or "
            "wrote to alerts), by outcome (ok; skipped: not what the topic carries; "
            "duplicate: counted or evaluated before; stale: older than the windows keep)",
            ["role", "topic", "outcome"],
            registry=r,
        )
        self.bus_lag = Gauge(
            "listener_bus_lag",
            "Messages of a topic the role's consumer group has not committed yet, all "
            "partitions (every worker of the role reports its whole group: take the max)",
            ["role", "topic"],
            registry=r,
        )
        self.bus_rebalances = Counter(
            "listener_bus_rebalances_total",
            "Partition assignments this worker was given (assigned), gave back (revoked) "
            "or lost to the group (lost)",
            ["role", "event"],
            registry=r,
        )
        self.bus_partitions = Gauge(
            "listener_bus_partitions",
            "Partitions of the role's input topics this worker holds now",
            ["role"],
            registry=r,
        )
        self.bus_recovery = Histogram(
            "listener_bus_recovery_seconds",
            "How long a worker took to restore its state from the changelog after being "
            "given partitions",
            ["role"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )

        # process
        self.errors = Counter(
            "listener_errors_total",
            "Errors by pipeline stage and type",
            ["stage", "error_type"],
            registry=r,
        )
        self.log_write_errors = Counter(
            "listener_log_write_errors_total",
            "Log lines that could not be written (standard error closed or a broken pipe) "
            "and were dropped",
            registry=r,
        )
        self.config_reloads = Counter(
            "listener_config_reloads_total",
            "SIGHUP reloads of rules.yaml by outcome",
            ["outcome"],
            registry=r,
        )
        for outcome in ("ok", "error"):  # present from the start, so increase() sees the 1st
            self.config_reloads.labels(outcome=outcome)
        self.config_reload_ok = Gauge(
            "listener_config_last_reload_successful",
            "1 if the last load of rules.yaml (startup or SIGHUP) succeeded, 0 if the last "
            "reload was rejected and the previous configuration is still running",
            registry=r,
        )
        self.mentions_pruned = Counter(
            "listener_mentions_pruned_total",
            "Mentions deleted from the store by retention",
            registry=r,
        )
        self.outbox_pruned = Counter(
            "listener_outbox_pruned_total",
            "Delivered or failed outbox rows whose alert document retention dropped (the "
            "row, what incident reports read, stays)",
            registry=r,
        )
        self.store_size = Gauge(
            "listener_store_size_bytes",
            "Size of the SQLite state file on disk",
            registry=r,
        )
        self.store_last_vacuum = Gauge(
            "listener_store_last_vacuum_timestamp_seconds",
            "Unix time the store was last vacuumed",
            registry=r,
        )
        self.config_last_reload = Gauge(
            "listener_config_last_reload_success_timestamp_seconds",
            "Unix time rules.yaml was last loaded successfully",
            registry=r,
        )

    def error(self, stage: str, error_type: str) -> None:
        self.errors.labels(stage=stage, error_type=error_type).inc()


ReadingKey = tuple[str, str, str]
"""``(rule, level, condition path)``: one leaf of one rule's level."""

_FIELDS = (
    (
        "listener_condition_value",
        "What each rule condition measured for each brand at the last evaluation "
        "(a count, share or mean: the condition's first fact)",
    ),
    (
        "listener_condition_threshold",
        "The value at which each rule condition holds (the most allowed, for a drop)",
    ),
    (
        "listener_condition_baseline",
        "The baseline each history-comparing condition (spike, zscore, seasonal, ramp) "
        "compared the current value with",
    ),
)


@dataclass(frozen=True)
class _Layout:
    """The brands :class:`ConditionReadings` holds, each one's row, the readings by leaf
    (3 × brands: value, threshold, baseline), and when each brand was last evaluated (by
    the clock of :meth:`ConditionReadings.hold`; None without)."""

    brands: tuple[str, ...]
    rows: dict[str, int]
    values: dict[ReadingKey, NDArray[np.float64]]
    seen: NDArray[np.float64] | None


class ConditionReadings(Collector):
    """The ``listener_condition_{value,threshold,baseline}`` gauges, labelled by rule,
    brand, level and condition path, held as arrays and turned into samples at scrape
    time.

    A tick at 1,000 brands × 10 rules measures tens of thousands of readings; setting
    a labelled gauge child for each costs more than evaluating them. Here the Evaluate
    stage writes them in bulk (:meth:`put_many`, numpy rows) or one key at a time
    (:meth:`put`), and a scrape reads them. A reading that is NaN is absent (no sample),
    as a fact without a threshold or baseline, or a key not evaluated, is."""

    def __init__(self) -> None:
        self._layout = _Layout((), {}, {}, None)
        self._keep: tuple[float, Clock] | None = None

    def hold(self, keep_for: timedelta, clock: Clock) -> None:
        """Keep the brands of each :meth:`layout` next to those held before, each one's
        readings shown until ``keep_for`` (by ``clock``) after its last evaluation, and
        dropped then.

        For an evaluator of distributed mode: it evaluates the brand of each tick alone,
        and a rebalance hands its brands to another evaluator without telling which."""
        self._keep = (keep_for.total_seconds(), clock)

    def held_brands(self) -> frozenset[str]:
        """The brands whose readings are shown (in :meth:`hold` mode, those evaluated in
        the last ``keep_for``)."""
        layout = self._layout
        live = self._live(layout)
        if live is None:
            return frozenset(layout.brands)
        return frozenset(layout.brands[i] for i in np.flatnonzero(live).tolist())

    def layout(
        self, leaves: Sequence[ReadingKey], brands: Sequence[str]
    ) -> NDArray[np.intp] | None:
        """Hold readings for these leaves and brands (values of leaves and brands held
        before are kept; the others go, unless :meth:`hold` keeps them). The row of each
        of ``brands`` in the arrays :meth:`put` and :meth:`put_many` write: None when it
        is its index in ``brands``."""
        held = self._layout
        keep = self._keep
        if keep is None:
            brands = tuple(brands)
            if brands != held.brands or list(held.values) != list(leaves):
                self._layout = self._moved(held, leaves, brands, None)
            return None
        now = keep[1].now().timestamp()
        rows, cutoff = held.rows, now - keep[0]
        seen = held.seen if held.seen is not None else np.zeros(0)
        if list(held.values) != list(leaves) or any(
            b not in rows or seen[rows[b]] < cutoff for b in brands
        ):
            # a brand new here, or back after its readings expired, starts with none
            fresh = set(brands)
            kept = [b for i, b in enumerate(held.brands) if seen[i] >= cutoff and b not in fresh]
            held = self._layout = self._moved(held, leaves, (*kept, *brands), seen, fresh)
            rows = held.rows
        at = np.fromiter((rows[b] for b in brands), dtype=np.intp, count=len(brands))
        assert held.seen is not None
        held.seen[at] = now
        return at

    def _live(self, layout: _Layout) -> NDArray[np.bool_] | None:
        keep = self._keep
        if keep is None or layout.seen is None:
            return None
        live: NDArray[np.bool_] = layout.seen >= keep[1].now().timestamp() - keep[0]
        return live

    def _moved(
        self,
        old: _Layout,
        leaves: Sequence[ReadingKey],
        brands: tuple[str, ...],
        seen: NDArray[np.float64] | None,
        fresh: Container[str] = (),
    ) -> _Layout:
        """``old``'s readings, for these leaves and brands (none for those ``fresh``)."""
        rows = {brand: i for i, brand in enumerate(brands)}
        carried = [b for b in rows if b in old.rows and b not in fresh]
        keep_new = np.array([rows[b] for b in carried], dtype=np.intp)
        keep_old = np.array([old.rows[b] for b in carried], dtype=np.intp)
        values: dict[ReadingKey, NDArray[np.float64]] = {}
        for key in leaves:
            made = np.full((3, len(brands)), np.nan)
            held = old.values.get(key)
            if held is not None and len(keep_new):
                made[:, keep_new] = held[:, keep_old]
            values[key] = made
        new_seen = None
        if seen is not None:
            new_seen = np.zeros(len(brands))
            if len(keep_new):
                new_seen[keep_new] = seen[keep_old]
        return _Layout(brands, rows, values, new_seen)

    def put(
        self, key: ReadingKey, row: int, reading: tuple[float, float | None, float | None]
    ) -> None:
        """One brand's reading of one leaf (None: no such number)."""
        held = self._layout.values.get(key)
        if held is not None:
            value, threshold, baseline = reading
            held[0, row] = value
            held[1, row] = math.nan if threshold is None else threshold
            held[2, row] = math.nan if baseline is None else baseline

    def put_many(
        self,
        key: ReadingKey,
        rows: NDArray[np.intp],
        value: NDArray[np.float64],
        threshold: NDArray[np.float64] | None,
        baseline: NDArray[np.float64] | None,
    ) -> None:
        """Readings of one leaf for the brands at ``rows``."""
        held = self._layout.values.get(key)
        if held is not None and len(rows):
            held[0, rows] = value
            held[1, rows] = math.nan if threshold is None else threshold
            held[2, rows] = math.nan if baseline is None else baseline

    def clear(self, key: ReadingKey, rows: NDArray[np.intp] | None = None) -> None:
        """Forget the readings of one leaf (for the brands at ``rows``, or all)."""
        held = self._layout.values.get(key)
        if held is not None:
            if rows is None:
                held[:] = math.nan
            else:
                held[:, rows] = math.nan

    def collect(self) -> Iterator[Metric]:
        labels = ["rule", "brand", "level", "condition"]
        families = [GaugeMetricFamily(name, text, labels=labels) for name, text in _FIELDS]
        layout = self._layout  # one layout, whatever an evaluation does meanwhile
        brands, live = layout.brands, self._live(layout)
        for (rule, level, path), held in layout.values.items():
            for family, numbers in zip(families, held, strict=True):
                shown = ~np.isnan(numbers) if live is None else ~np.isnan(numbers) & live
                for row in np.flatnonzero(shown).tolist():
                    family.add_metric([rule, brands[row], level, path], float(numbers[row]))
        yield from families

    def describe(self) -> Iterator[Metric]:
        labels = ["rule", "brand", "level", "condition"]
        for name, text in _FIELDS:
            yield GaugeMetricFamily(name, text, labels=labels)


BrandValues = tuple[float, float, float, float]
"""A brand's mentions, negative mentions, negative share and mean sentiment."""

_BRAND_FIELDS = (
    (
        "listener_brand_mentions_1h",
        "Matched mentions of each brand dated in the last hour (at the last evaluation)",
    ),
    (
        "listener_brand_negative_mentions_1h",
        "Negative mentions of each brand dated in the last hour (at the last evaluation)",
    ),
    (
        "listener_brand_negative_share_1h",
        "Negative share (0 to 1) of each brand's mentions in the last hour (0 with none)",
    ),
    (
        "listener_brand_sentiment_mean_1h",
        "Mean compound sentiment (-1 to 1) of each brand's mentions in the last hour (0 with none)",
    ),
)


class BrandReadings(Collector):
    """The ``listener_brand_*_1h`` gauges, read when scraped from a source the Evaluate
    stage installs (:meth:`source`): per configured brand, its values over the hour before
    the last evaluation. Worked out at scrape time, once per scrape, instead of at every
    evaluation (the daemon evaluates after every batch: at 1,000 brands that was a third
    of a tick)."""

    def __init__(self) -> None:
        self._read: Callable[[], Mapping[str, BrandValues]] | None = None

    def source(self, read: Callable[[], Mapping[str, BrandValues]]) -> None:
        """Read the values from ``read`` (brand → values; brands absent have no series)."""
        self._read = read

    def collect(self) -> Iterator[Metric]:
        families = [GaugeMetricFamily(name, text, labels=["brand"]) for name, text in _BRAND_FIELDS]
        values = self._read() if self._read is not None else {}
        for brand, numbers in values.items():
            for family, number in zip(families, numbers, strict=True):
                family.add_metric([brand], number)
        yield from families

    def describe(self) -> Iterator[Metric]:
        for name, text in _BRAND_FIELDS:
            yield GaugeMetricFamily(name, text, labels=["brand"])
