"""Every Prometheus metric listener exports, in one place.

Built against an injected ``CollectorRegistry`` so tests use a fresh one and read
values with ``registry.get_sample_value``. Label values are bounded: source, sink,
rule and brand names come from the config; ``stage`` and ``error_type`` from fixed
sets. Never a mention's text, author or URL.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from listener import __version__

STAGES = ("collect", "match", "score", "store", "evaluate", "deliver", "config")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("listener_build", "listener version", registry=r)
        self.build_info.info({"version": __version__})

        # collect
        self.polls = Counter(
            "listener_polls_total",
            "Polls of each source by outcome (ok, not_modified, error)",
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

        # match, score
        self.matches = Counter(
            "listener_matches_total", "Mentions matched to each brand", ["brand"], registry=r
        )
        self.scored = Counter(
            "listener_mentions_scored_total",
            "Matched mentions by brand and sentiment label",
            ["brand", "sentiment"],
            registry=r,
        )

        # evaluate
        self.evaluations = Counter(
            "listener_rule_evaluations_total", "Rule evaluations", ["rule"], registry=r
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
        self.outbox_pending = Gauge(
            "listener_outbox_pending",
            "Alerts waiting in the outbox for each sink",
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
        self.config_reloads = Counter(
            "listener_config_reloads_total",
            "SIGHUP reloads of rules.yaml by outcome",
            ["outcome"],
            registry=r,
        )
        self.config_last_reload = Gauge(
            "listener_config_last_reload_success_timestamp_seconds",
            "Unix time rules.yaml was last loaded successfully",
            registry=r,
        )

    def error(self, stage: str, error_type: str) -> None:
        self.errors.labels(stage=stage, error_type=error_type).inc()
