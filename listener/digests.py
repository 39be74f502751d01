"""Scheduled digests (``digests:`` in rules.yaml): a daily or weekly summary per brand.

Each digest covers the period before it is sent (the day or the week) beside the period
of the same length before that: volume, negative share and their change, the most told
stories, incidents opened and resolved, and how fast they were acknowledged. It goes to
the sinks of its ``route`` that can take one (:class:`~listener.sinks.base.SendsDigest`:
console, webhook, Slack, email; the loader refuses the others).

**When.** The schedule is an APScheduler :class:`CronTrigger` in the digest's time zone
(``at``/``day`` are written as a cron expression; ``cron`` takes one directly).
:meth:`Digests.serve` (a task of the daemon's delivery, in embedded mode and on the
delivery worker that holds the lease in distributed mode) sleeps until the triggers' next
fire time and calls :meth:`Digests.run`, which decides what is due from the injected
clock: the latest fire time at or before now, at most one period ago (a daemon that was
down at 08:00 and starts at 10:00 sends that morning's digest; one down for a week sends
only the last).

**Once per receiver, durably.** What was delivered is recorded per digest and sink in the
store (``kv`` key ``digest/<name>/<sink>``: the fire time last settled and how,
:class:`Settled`), after the send returns; a digest is due for a sink until then. A
digest or receiver seen for the first time records the present instead, so its first
digest goes at the next fire time (not at once for a period it was not configured for).
A failed send is tried again with the sink's backoff (``delivery:`` in its config) until
it is delivered, refused, or the next fire time of that digest comes (then that one is
due instead, and the old one counted ``failed``). A crash between a send and its record
sends it again after the restart with the same id (``Digest.id``, the idempotency key
receivers deduplicate by): at least once, like alerts.

:func:`gather` reads a digest's numbers from the store (read methods only).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from apscheduler.triggers.cron import CronTrigger

from listener.clock import Clock
from listener.config.schema import Config, DigestConfig
from listener.errors import ListenerError, SinkError, SinkRejected
from listener.metrics import Metrics
from listener.model import BrandDigest, Digest, DigestIncident
from listener.sinks.base import SendsDigest, Sink
from listener.sinks.delivery import backoff
from listener.store import IncidentRecord, Store

log = structlog.get_logger("listener.digests")

PERIODS: Mapping[str, timedelta] = {"day": timedelta(days=1), "week": timedelta(days=7)}
LOOK_EVERY = timedelta(minutes=1)
"""The longest :meth:`Digests.serve` sleeps before looking at the clock again."""
KEY = "digest/"
"""``kv`` prefix of what was delivered: ``digest/<name>/<sink>`` → the fire time (ISO)."""


Outcome = Literal["scheduled", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class Settled:
    """What a sink's last digest came to: ``delivered`` or ``failed`` (given up) for the
    fire time ``at``; ``scheduled``: the digest or sink was first seen at ``at`` (its
    first digest goes at the next fire time)."""

    at: datetime
    outcome: Outcome


def settled_of(store: Store, name: str, sink: str) -> Settled | None:
    """The sink's last settled digest ``name`` (None: never seen). An entry that cannot
    be read counts as never seen."""
    value = store.kv.get(f"{KEY}{name}/{sink}")
    if not value:
        return None
    try:
        data = json.loads(value)
        outcome = data["outcome"]
        if outcome not in ("scheduled", "delivered", "failed"):
            return None
        return Settled(datetime.fromisoformat(data["at"]), outcome)
    except (ValueError, KeyError, TypeError):
        log.warning("digest_state_unreadable", digest=name, sink=sink)
        return None


def trigger(config: DigestConfig) -> CronTrigger:
    """The digest's schedule as an APScheduler cron trigger in its time zone."""
    return CronTrigger.from_crontab(config.crontab(), timezone=config.timezone)


def latest_fire(config: DigestConfig, now: datetime) -> datetime | None:
    """The last fire time of the digest's schedule at or before ``now``, no older than
    one period (None: none in that span); in UTC."""
    cron = trigger(config)
    period = PERIODS[config.every]
    latest, at = None, cron.get_next_fire_time(None, now - period)
    while at is not None and at <= now:
        latest = at
        at = cron.get_next_fire_time(at, at + timedelta(seconds=1))
    return latest.astimezone(UTC) if latest is not None else None


def next_fire(config: DigestConfig, now: datetime) -> datetime | None:
    """The first fire time after ``now`` (UTC)."""
    at = trigger(config).get_next_fire_time(None, now + timedelta(seconds=1))
    return at.astimezone(UTC) if at is not None else None


def digest_id(name: str, fire: datetime) -> str:
    """Stable for the digest and its fire time: the same after a restart."""
    return f"digest:{name}:{fire.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def _line(record: IncidentRecord, acks: Mapping[str, tuple[str, datetime]]) -> DigestIncident:
    ack = acks.get(record.id)
    return DigestIncident(
        id=record.id,
        rule=record.rule,
        peak_level=record.peak_level,
        status=record.status,
        opened_at=record.opened_at,
        resolved_at=record.resolved_at,
        acknowledged_by=ack[0] if ack else None,
        time_to_ack=max(0.0, (ack[1] - record.opened_at).total_seconds()) if ack else None,
    )


def gather(
    store: Store,
    name: str,
    config: DigestConfig,
    brands: Sequence[str],
    fire: datetime,
) -> Digest:
    """The digest ``name`` sent at ``fire``: [fire − period, fire) for each brand (all of
    them when the digest names none), beside the period before."""
    period = PERIODS[config.every]
    end = fire.astimezone(UTC)
    start = end - period
    chosen = list(config.brands or brands)
    records = store.incident_log.touching(chosen, start, end)
    acks = {i: (a.by, a.at) for i, a in store.ack_log.get([r.id for r in records]).items()}
    parts = []
    for brand in chosen:
        counts = {
            k: (n, neg)
            for k, n, neg, _ in store.mentions.series(brand, start - period, end, period)
        }
        mentions, negative = counts.get(start, (0, 0))
        before, before_negative = counts.get(start - period, (0, 0))
        mine = [_line(r, acks) for r in records if r.brand == brand]
        parts.append(
            BrandDigest(
                brand=brand,
                mentions=mentions,
                negative=negative,
                previous_mentions=before,
                previous_negative=before_negative,
                stories=tuple(store.mentions.stories(brand, start, end, config.stories))
                if config.stories
                else (),
                opened=tuple(i for i in mine if i.opened_at >= start),
                resolved=tuple(
                    i for i in mine if i.resolved_at is not None and i.resolved_at < end
                ),
                still_open=tuple(i for i in mine if i.resolved_at is None or i.resolved_at >= end),
            )
        )
    return Digest(
        id=digest_id(name, end),
        name=name,
        every=config.every,
        start=start,
        end=end,
        timezone=config.timezone,
        brands=tuple(parts),
    )


@dataclass
class _Retry:
    fire: datetime
    attempts: int
    not_before: datetime


class Digests:
    """Sends the digests that are due (see the module docstring). One instance per
    installed config; :meth:`run` is called by the scheduler and after a failure's
    backoff, never concurrently with itself. Every store call runs in a worker
    thread (``asyncio.to_thread``), never on the event loop."""

    def __init__(
        self,
        store: Store,
        sinks: Mapping[str, Sink],
        config: Config,
        metrics: Metrics,
        clock: Clock,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.sinks = sinks
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self._retries: dict[tuple[str, str], _Retry] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look again now (:meth:`serve`): the clock moved (tests) or the config changed."""
        self._wake.set()

    def next_fire(self, now: datetime) -> datetime | None:
        """The first fire time of any digest after ``now``."""
        times = [t for cfg in self.config.digests.values() if (t := next_fire(cfg, now))]
        return min(times, default=None)

    async def serve(self, stop: asyncio.Event) -> None:
        """Send digests until ``stop`` is set: at once (what fell due while the daemon was
        down), at every fire time of every digest (their cron triggers), and when a
        failed send's backoff ends. Sleeps at most :data:`LOOK_EVERY` at a time, so a
        clock that jumps is noticed. Errors are logged and counted, never fatal."""
        if not self.config.digests:
            return
        while not stop.is_set():
            try:
                wake = await self.run()
            except Exception as exc:  # the store away, say: try again after a pause
                error_type = exc.error_type if isinstance(exc, ListenerError) else "unexpected"
                self.metrics.error("deliver", error_type)
                log.warning("digests_failed", error_type=error_type, error=str(exc))
                wake = self.clock.now() + LOOK_EVERY
            now = self.clock.now()
            due = [t for t in (wake, self.next_fire(now)) if t is not None]
            pause = min([LOOK_EVERY, *(t - now for t in due)])
            self._wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(
                waiters,
                timeout=max(pause.total_seconds(), 0.01),
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in waiters:
                waiter.cancel()

    async def _delivered(self, name: str, sink: str) -> datetime | None:
        settled = await asyncio.to_thread(settled_of, self.store, name, sink)
        return settled.at if settled is not None else None

    async def _record(self, name: str, sink: str, at: datetime, outcome: Outcome) -> None:
        value = json.dumps({"at": at.isoformat(), "outcome": outcome})
        await asyncio.to_thread(self.store.kv.set, {f"{KEY}{name}/{sink}": value})

    async def _settle(self, name: str, sink: str, fire: datetime, outcome: Outcome) -> None:
        await self._record(name, sink, fire, outcome)
        self._retries.pop((name, sink), None)

    async def run(self) -> datetime | None:
        """Send every digest due now to every sink of its route that has not had it;
        return when a failed one should be tried again (None: nothing waits)."""
        now = self.clock.now()
        brands = self.config.brand_names()
        wake: datetime | None = None
        for name, cfg in self.config.digests.items():
            fire = latest_fire(cfg, now)
            if fire is None:
                continue
            built: Digest | None = None
            for sink_name in cfg.route:
                sink = self.sinks.get(sink_name)
                if not isinstance(sink, SendsDigest):
                    continue  # refused at load; a sink that failed to build is logged there
                done = await self._delivered(name, sink_name)
                if done is None:  # new digest or receiver: the first goes at the next fire
                    await self._record(name, sink_name, now, "scheduled")
                    log.info(
                        "digest_scheduled",
                        digest=name,
                        sink=sink_name,
                        next=str(next_fire(cfg, now)),
                    )
                    continue
                if done >= fire:
                    continue
                retry = self._retries.get((name, sink_name))
                if retry is not None and retry.fire < fire:  # a newer one is due instead
                    await self._give_up(name, sink_name, retry.fire, "superseded by the next one")
                    retry = None
                if retry is not None and now < retry.not_before:
                    wake = min(wake or retry.not_before, retry.not_before)
                    continue
                if built is None:
                    built = await asyncio.to_thread(gather, self.store, name, cfg, brands, fire)
                at = await self._send(name, sink_name, sink, built, fire, retry, now)
                if at is not None:
                    wake = min(wake or at, at)
        later = self.clock.now()
        if any((f := latest_fire(c, later)) and f > now for c in self.config.digests.values()):
            return later  # one fell due while this run sent: look again at once
        return wake

    async def _send(
        self,
        name: str,
        sink_name: str,
        sink: SendsDigest,
        digest: Digest,
        fire: datetime,
        retry: _Retry | None,
        now: datetime,
    ) -> datetime | None:
        try:
            await sink.send_digest(digest, digest.id)
        except SinkRejected as exc:
            await self._give_up(name, sink_name, fire, str(exc))
            return None
        except Exception as exc:  # SinkUnavailable, or anything a sink did not expect
            attempts = retry.attempts + 1 if retry is not None else 1
            policy = self.config.sinks[sink_name].delivery
            after = exc.retry_after if isinstance(exc, SinkError) else None
            delay = backoff(policy, attempts - 1, self.rng, after)
            self._retries[(name, sink_name)] = _Retry(fire, attempts, now + delay)
            self.metrics.digests.labels(digest=name, sink=sink_name, outcome="retry").inc()
            log.warning(
                "digest_retry",
                digest=name,
                sink=sink_name,
                attempts=attempts,
                retry_in=round(delay.total_seconds(), 1),
                error=str(exc) if isinstance(exc, SinkError) else type(exc).__name__,
            )
            return now + delay
        await self._settle(name, sink_name, fire, "delivered")
        self.metrics.digests.labels(digest=name, sink=sink_name, outcome="delivered").inc()
        log.info("digest_delivered", digest=name, sink=sink_name, id=digest.id)
        return None

    async def _give_up(self, name: str, sink: str, fire: datetime, why: str) -> None:
        await self._settle(name, sink, fire, "failed")
        self.metrics.digests.labels(digest=name, sink=sink, outcome="failed").inc()
        log.error("digest_failed", digest=name, sink=sink, id=digest_id(name, fire), error=why)
