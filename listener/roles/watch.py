"""What a worker of distributed mode tells about its place in the group, as metrics.

* :class:`Watch` is handed to :func:`listener.bus.quix_app`: each partition assignment the
  worker is given, gives back or loses (``listener_bus_rebalances_total``), the input
  partitions it holds (``listener_bus_partitions``), and how long each restore of its
  state from the changelog took (``listener_bus_recovery_seconds``);
* :class:`LagWatch` asks the broker, every 15 s from a thread, how far the role's consumer
  group is behind on each topic it reads (``listener_bus_lag``: the messages not
  committed yet, every partition; each worker reports its whole group). A broker that
  does not answer leaves the gauge as it was (``/readyz`` and ``ListenerBusUnavailable``
  say so).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import structlog

from listener.bus import Bus, TopicName
from listener.metrics import Metrics

log = structlog.get_logger("listener")

CHANGELOG_PREFIX = "changelog__"
"""Quix Streams' changelog topics: state, not the role's input."""


class Watch:
    """The partition and state-recovery hooks of one worker's application."""

    def __init__(self, role: str, metrics: Metrics) -> None:
        self.role = role
        self._rebalances = metrics.bus_rebalances
        self._partitions = metrics.bus_partitions.labels(role=role)
        self._recovery = metrics.bus_recovery.labels(role=role)
        self._held: set[tuple[str, int]] = set()
        self._partitions.set(0)
        self.lost_at: float | None = None
        """When (``time.monotonic``) the worker last lost its partitions to the group, while
        it has not been given any since (None otherwise)."""
        self.started_at: float | None = None
        """When the application started consuming (it joins the group then)."""
        self.joined = False
        """Whether the group has answered its join once: an assignment, even of no
        partitions (a worker with nothing to do is told so)."""

    @staticmethod
    def _inputs(partitions: Sequence[Any]) -> set[tuple[str, int]]:
        return {
            (tp.topic, tp.partition)
            for tp in partitions
            if not str(tp.topic).startswith(CHANGELOG_PREFIX)
        }

    def starting(self) -> None:
        self.started_at = time.monotonic()

    def assigned(self, partitions: Sequence[Any]) -> None:
        self.lost_at, self.joined = None, True
        self._rebalances.labels(role=self.role, event="assigned").inc()
        self._held |= self._inputs(partitions)
        self._partitions.set(len(self._held))

    def revoked(self, partitions: Sequence[Any], *, lost: bool = False) -> None:
        self._rebalances.labels(role=self.role, event="lost" if lost else "revoked").inc()
        self._held -= self._inputs(partitions)
        self._partitions.set(len(self._held))
        if lost:
            self.lost_at = time.monotonic()
            log.warning("partitions_lost", role=self.role, partitions=len(partitions))

    def stalled(self, after: float) -> bool:
        """Whether the worker lost its partitions over ``after`` seconds ago and has not
        been given any since (the group did not take it back), or has waited over ``after``
        seconds for the group to answer its first join (seen on tansu after both workers
        of a group restarted at once: the join was never answered)."""
        now = time.monotonic()
        if not self.joined:
            return self.started_at is not None and now - self.started_at > after
        return self.lost_at is not None and now - self.lost_at > after

    def recovered(self, seconds: float) -> None:
        self._recovery.observe(seconds)
        log.info("state_recovered", role=self.role, seconds=round(seconds, 3))


class LagWatch:
    """Polls the group's lag on ``topics`` every ``every`` seconds (a daemon thread)."""

    def __init__(
        self,
        bus: Bus,
        role: str,
        topics: Sequence[TopicName],
        metrics: Metrics,
        every: float = 15.0,
    ) -> None:
        self.bus, self.role, self.topics, self.every = bus, role, tuple(topics), every
        self._gauge = metrics.bus_lag
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lag-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.poll()
            except Exception as exc:  # the broker away: the gauge stays, readiness says why
                log.debug("lag_unknown", role=self.role, error=f"{type(exc).__name__}: {exc}")

    def poll(self) -> dict[str, int]:
        """Ask the broker once; the lag of each topic (also set on the gauge)."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.bus.brokers,
                "group.id": self.bus.group(self.role),
                "enable.auto.commit": False,
            }
        )
        found: dict[str, int] = {}
        try:
            for name in self.topics:
                full = self.bus.name(name)
                meta = consumer.list_topics(full, timeout=10).topics.get(full)
                if meta is None or meta.error is not None:
                    continue
                wanted = [TopicPartition(full, p) for p in sorted(meta.partitions)]
                lag = 0
                for tp in consumer.committed(wanted, timeout=10):
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(full, tp.partition), timeout=10
                    )
                    done = tp.offset if tp.offset >= 0 else low
                    lag += max(0, high - max(done, low))
                found[name] = lag
                self._gauge.labels(role=self.role, topic=name).set(lag)
        finally:
            consumer.close()
        return found
