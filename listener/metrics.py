"""Every Prometheus metric listener exports, in one place; the catalogue is docs/metrics.md.

Built against an injected ``CollectorRegistry`` so tests use a fresh one and read
values with ``registry.get_sample_value``. Label values are bounded: source, sink,
rule, brand and level names come from the config, ``condition`` is a path in a rule's
config (``spike``, ``all.1.negative_share``), and the rest come from fixed sets.
Never a mention's text, author, URL or id.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from listener import __version__

STAGES = ("collect", "match", "score", "store", "evaluate", "deliver", "config")

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

        self.sentiment = Histogram(
            "listener_sentiment_compound",
            "Compound sentiment score (-1 to 1) of each matched mention, per brand (no _sum: "
            "the buckets go below zero; the mean is listener_brand_sentiment_mean_1h)",
            ["brand"],
            buckets=SENTIMENT_BUCKETS,
            registry=r,
        )
        self.brand_mentions = Gauge(
            "listener_brand_mentions_1h",
            "Matched mentions of each brand dated in the last hour (at the last evaluation)",
            ["brand"],
            registry=r,
        )
        self.brand_negative = Gauge(
            "listener_brand_negative_mentions_1h",
            "Negative mentions of each brand dated in the last hour (at the last evaluation)",
            ["brand"],
            registry=r,
        )
        self.brand_sentiment_mean = Gauge(
            "listener_brand_sentiment_mean_1h",
            "Mean compound sentiment (-1 to 1) of each brand's mentions in the last hour "
            "(0 with none)",
            ["brand"],
            registry=r,
        )
        self.brand_negative_share = Gauge(
            "listener_brand_negative_share_1h",
            "Negative share (0 to 1) of each brand's mentions in the last hour (0 with none)",
            ["brand"],
            registry=r,
        )

        # evaluate
        self.evaluations = Counter(
            "listener_rule_evaluations_total", "Rule evaluations", ["rule"], registry=r
        )
        self.condition_value = Gauge(
            "listener_condition_value",
            "What each rule condition measured for each brand at the last evaluation "
            "(a count, share or mean: the condition's first fact)",
            ["rule", "brand", "level", "condition"],
            registry=r,
        )
        self.condition_threshold = Gauge(
            "listener_condition_threshold",
            "The value at which each rule condition holds (the most allowed, for a drop)",
            ["rule", "brand", "level", "condition"],
            registry=r,
        )
        self.condition_baseline = Gauge(
            "listener_condition_baseline",
            "The baseline each history-comparing condition (spike, zscore, seasonal, ramp) "
            "compared the current value with",
            ["rule", "brand", "level", "condition"],
            registry=r,
        )
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
