"""``listener run --role ingest``: the Ingest stage as a worker of distributed mode.

Each worker of the consumer group ``{prefix}-ingest`` reads raw mentions from the
``mentions`` topic (the partitions the group gives it), runs them through the same
:class:`~listener.ingest.Ingest` stage as embedded mode (match, score, tag, reach, story)
and writes each mention that matched, once per brand, to the ``scored`` topic keyed by
the brand, for the brand's evaluator (a backfill, from a source's first poll, marked as
one). It keeps no state of its own: a worker that dies
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

from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from listener.bus import decode_raw, scored_message, topic
from listener.errors import MessageError
from listener.ingest import Ingest
from listener.roles.worker import RoleWorker

if TYPE_CHECKING:
    from quixstreams import Application

log = structlog.get_logger("listener")

ROLE = "ingest"
TRANSFORMERS_BUFFER = 100
"""Mentions taken per partition at a time when the transformers backend scores them."""


class IngestWorker(RoleWorker):
    """One ingest worker: :meth:`score` is its whole decision (a raw message → the scored
    messages it makes), :meth:`run` consumes until SIGTERM or SIGINT."""

    role = ROLE
    inputs = ("mentions",)

    def setup(self) -> None:
        self.stage = Ingest.build(self.config)
        self._messages = self.metrics.bus_messages
        if self.stage.scorers.uses_model:
            # tens of milliseconds a mention on CPU: poll again well within 10 s
            self.buffer = TRANSFORMERS_BUFFER

    def score(self, value: bytes) -> list[dict[str, Any]]:
        """The scored messages of one raw message: one per brand it matched (none for a
        mention of no brand, or a message that is not a mention: counted and skipped)."""
        config = self.reloaded()
        if config is not None:
            self.stage = self.stage.reconfigure(config)
        try:
            mention, backfill = decode_raw(value)
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
        if scored.brands and scored.sentiment.label == "unscored":
            self.metrics.unscored.labels(language=scored.mention.language or "unknown").inc()
        for brand in scored.brands:
            self.metrics.matches.labels(source=mention.source, brand=brand).inc()
            self.metrics.scored.labels(brand=brand, sentiment=scored.sentiment.label).inc()
        return [scored_message(scored, brand, backfill=backfill) for brand in scored.brands]

    def application(self) -> Application:
        """The worker's Quix Streams application, its topics made when missing (this
        reaches the broker, and raises when it cannot)."""
        app = self.quix()
        raw = topic(app, self.bus, "mentions")
        scored = topic(app, self.bus, "scored", write="json")
        sdf = app.dataframe(raw)
        sdf = sdf.apply(self.score, expand=True)
        sdf.to_topic(scored, key=lambda message: message["brand"])
        self.started(reads=self.bus.name("mentions"), writes=self.bus.name("scored"))
        return app
