"""``listener run --role ingest``: the Ingest stage as a worker of distributed mode.

Each worker of the consumer group ``{prefix}-ingest`` reads raw mentions from the
``mentions`` topic (the partitions the group gives it), runs them through the same
:class:`~listener.ingest.Ingest` stage as embedded mode (match, score, tag, reach, story)
and writes each mention that matched, once per brand, to the ``scored`` topic keyed by
the brand, for the brand's evaluator. It keeps no state of its own: a worker that dies
leaves its partitions to the others, which take up from the last committed offset.

At least once: a mention read again after a crash is scored and written again (the
evaluator counts each mention key once, so a repeat changes no count). Stories are found
within each worker's own index (a copy read by another worker starts its own story;
``docs/scaling.md``). A message that is not a mention is logged, counted
(``listener_bus_messages_total{outcome="skipped"}``) and skipped; the worker goes on.
SIGHUP re-reads rules.yaml for the brands and categories (a file that does not load is
logged and the running one kept), as the daemon's reload does. The secrets of sinks and
sources need not be set where a worker runs (it uses neither).
"""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from listener.bus import Bus, decode_mention, quix_app, scored_message, topic
from listener.clock import Clock, SystemClock
from listener.config.load import load_config_without_secrets
from listener.config.schema import Config
from listener.errors import ConfigError, ListenerError, MessageError
from listener.httpapi import parse_listen
from listener.ingest import Ingest
from listener.metrics import Metrics
from listener.roles.health import HealthServer, Readiness
from listener.roles.supervise import supervise

if TYPE_CHECKING:
    from quixstreams import Application

log = structlog.get_logger("listener")

ROLE = "ingest"


def _load(path: str) -> Config:
    """rules.yaml for an ingest worker: it polls no source and delivers to no sink, so
    their secrets (``${VARIABLE}``s) need not be set where it runs, and are not held
    there."""
    config, _ = load_config_without_secrets(path)
    return config


class IngestWorker:
    """One ingest worker: :meth:`score` is its whole decision (a raw message → the scored
    messages it makes), :meth:`run` consumes until SIGTERM or SIGINT."""

    def __init__(
        self,
        bus: Bus,
        config_path: str,
        *,
        state_dir: str,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.bus = bus
        self.config_path = config_path
        self.state_dir = state_dir
        self.metrics = metrics or Metrics()
        self.clock: Clock = clock or SystemClock()
        config = _load(config_path)  # ConfigError: the CLI says why, exit 2
        self.stage = Ingest.build(config)
        self._reload = threading.Event()
        self._messages = self.metrics.bus_messages
        self.bound: tuple[str, int] = ("", 0)
        """Where ``/healthz``, ``/readyz`` and ``/metrics`` are served (once running)."""

    def score(self, value: bytes) -> list[dict[str, Any]]:
        """The scored messages of one raw message: one per brand it matched (none for a
        mention of no brand, or a message that is not a mention: counted and skipped)."""
        if self._reload.is_set():
            self._apply_reload()
        try:
            mention = decode_mention(value)
        except MessageError as exc:
            self._messages.labels(role=ROLE, topic="mentions", outcome="skipped").inc()
            self.metrics.error("match", exc.error_type)
            log.warning(
                "message_skipped", role=ROLE, topic=self.bus.name("mentions"), error=str(exc)
            )
            return []
        self._messages.labels(role=ROLE, topic="mentions", outcome="ok").inc()
        now: datetime = self.clock.now()
        (scored,) = self.stage.run([mention], now)
        for brand in scored.brands:
            self.metrics.matches.labels(source=mention.source, brand=brand).inc()
            self.metrics.scored.labels(brand=brand, sentiment=scored.sentiment.label).inc()
        return [scored_message(scored, brand) for brand in scored.brands]

    def request_reload(self) -> None:
        """Re-read rules.yaml before the next message (SIGHUP)."""
        self._reload.set()

    def _apply_reload(self) -> None:
        self._reload.clear()
        try:
            config = _load(self.config_path)
        except ConfigError as exc:
            log.error(
                "reload_kept_old_config", role=ROLE, problems=len(exc.problems), error=str(exc)
            )
            return
        except Exception as exc:  # reading or parsing it failed otherwise: kept, not a crash
            log.error("reload_kept_old_config", role=ROLE, error=f"{type(exc).__name__}: {exc}")
            return
        self.stage = self.stage.reconfigure(config)
        log.info("config_reloaded", role=ROLE, brands=len(config.brands))

    def run(self, listen: str) -> int:
        """Serve ``/healthz``, ``/readyz`` and ``/metrics`` on ``listen`` and consume until
        stopped (SIGTERM, SIGINT); the process's exit code. A broker that cannot be
        reached is waited for (:func:`~listener.roles.supervise.supervise`)."""
        readiness = Readiness(ROLE, self.bus)
        server = HealthServer(readiness, self.metrics)
        host, port = parse_listen(listen)
        try:
            self.bound = server.start(host, port)
        except OSError as exc:
            raise ListenerError(f"cannot listen on {listen}: {exc.strerror}") from None
        log.info("role_listening", role=ROLE, listen=f"{self.bound[0]}:{self.bound[1]}")
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        try:
            return supervise(ROLE, self.application, self.metrics, readiness, self.clock)
        finally:
            server.stop()

    def application(self) -> Application:
        """The worker's Quix Streams application, its topics made when missing (this
        reaches the broker, and raises when it cannot)."""
        app = quix_app(self.bus, ROLE, self.state_dir)
        raw = topic(app, self.bus, "mentions")
        scored = topic(app, self.bus, "scored", write="json")
        sdf = app.dataframe(raw)
        sdf = sdf.apply(self.score, expand=True)
        sdf.to_topic(scored, key=lambda message: message["brand"])
        log.info(
            "role_started",
            role=ROLE,
            bus=self.bus.brokers,
            group=self.bus.group(ROLE),
            reads=self.bus.name("mentions"),
            writes=self.bus.name("scored"),
            listen=f"{self.bound[0]}:{self.bound[1]}",
        )
        return app
