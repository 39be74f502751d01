"""The delivery framework: drains the durable outbox into the sinks.

Sinks only send (see :mod:`listener.sinks.base`); everything else lives here:

- **Order.** A sink's items are tried oldest first. An alert never overtakes an
  earlier, still pending alert of the same incident for the same sink: while an
  incident's oldest pending item waits for its retry, its later items wait too.
- **Retry.** A retryable failure (:class:`~listener.errors.SinkUnavailable`, or any
  unexpected exception from a sink) schedules that item's next attempt after
  ``initial_backoff × 2^attempts`` (capped at ``max_backoff``, jittered to between half
  and all of it, never less than the sink's ``retry_after``) and ends the pass for that
  sink, so a receiver that is down is not hammered.
- **Give up, loudly.** :class:`~listener.errors.SinkRejected`, or an item older than
  ``max_age``, is marked failed, logged at error level and counted
  (``alerts{outcome="failed"}``); the next item proceeds.
- **Isolation.** One worker task per sink; a slow or broken sink never delays another.
- **At least once.** An item is marked delivered only after ``send`` returned; a crash
  in between resends it after a restart with the same idempotency key (the alert id).

Every store call runs in a worker thread (``asyncio.to_thread``). Logs never contain
a sink's URL or headers: only the messages of :class:`~listener.errors.SinkError`
(which sinks keep free of secrets) and, for anything else, the exception's type.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog

from listener.clock import Clock
from listener.config.schema import DeliveryConfig
from listener.errors import SinkError
from listener.metrics import Metrics
from listener.sinks.base import Sink
from listener.store import OutboxItem, Store

log = structlog.get_logger("listener.delivery")

WINDOW = 1000
"""How many of a sink's oldest pending items one pass looks at (a pass that made
progress on a full window looks again)."""

_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_MAX_EXPONENT = 32

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class _Result:
    outcome: Outcome
    retry_at: datetime | None = None


def backoff(
    policy: DeliveryConfig, attempts: int, rng: random.Random, retry_after: float | None = None
) -> timedelta:
    """Delay before the next attempt after ``attempts`` earlier failed attempts (0 for the
    first failure): ``initial_backoff × 2^attempts`` capped at ``max_backoff``, jittered
    uniformly to [50 %, 100 %] of that, and at least ``retry_after`` seconds when given."""
    base = policy.initial_backoff.total_seconds() * 2 ** min(max(attempts, 0), _MAX_EXPONENT)
    base = min(base, policy.max_backoff.total_seconds())
    delay = base * (0.5 + 0.5 * rng.random())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=delay)


def _earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


class Deliverer:
    """Delivers outbox items to ``sinks`` by the per-sink ``policies`` (missing ones use
    the :class:`DeliveryConfig` defaults).

    ``max_wait`` bounds how long an idle worker sleeps before looking at the outbox
    again (so a clock change is picked up); ``stop_grace`` bounds how long :meth:`run`
    waits, once ``stop`` is set, for a send in flight before cancelling it (the item
    then stays pending and is resent later with the same key).
    Use from one event loop; :meth:`wake` is not thread-safe.
    """

    def __init__(
        self,
        store: Store,
        sinks: Mapping[str, Sink],
        policies: Mapping[str, DeliveryConfig],
        metrics: Metrics,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        max_wait: float = 2.0,
        stop_grace: float = 3.0,
    ) -> None:
        self._store = store
        self._sinks = dict(sinks)
        self._policies = {name: policies.get(name, DeliveryConfig()) for name in self._sinks}
        self._metrics = metrics
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._max_wait = max_wait
        self._stop_grace = stop_grace
        self._locks = {name: asyncio.Lock() for name in self._sinks}
        self._wakes = {name: asyncio.Event() for name in self._sinks}
        self._next_at: dict[str, datetime | None] = dict.fromkeys(self._sinks)

    # ------------------------------------------------------------------ public API

    def wake(self) -> None:
        """New outbox rows were committed: every idle worker looks at the outbox now."""
        for event in self._wakes.values():
            event.set()

    async def deliver_due(self, sink_name: str) -> int:
        """One pass over ``sink_name``'s due items, in outbox order; returns how many
        were delivered. Never raises for a sink's failure (only ``StoreError`` from the
        store, and ``KeyError`` for an unknown sink)."""
        return await self._pass(sink_name, None)

    async def drain(self) -> None:
        """Deliver everything due now, for every sink, without waiting for any retry.

        Passes are repeated until nothing is due (a pass ends at the first retryable
        failure; the next pass then tries the other incidents). Sinks run concurrently.
        """
        results = await asyncio.gather(
            *(self._drain_sink(name) for name in self._sinks), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def flush(self, timeout: float) -> None:  # noqa: ASYNC109 - API fixed by the pipeline
        """At shutdown: like :meth:`drain`, but bounded by ``timeout`` seconds overall.

        Never raises; whatever is not delivered in time stays pending for the next start.
        """
        tasks = [
            asyncio.create_task(self._drain_sink(name), name=f"flush:{name}")
            for name in self._sinks
        ]
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, timeout))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                self._pass_failed(task.get_name().removeprefix("flush:"), exc)
        if pending:
            log.warning(
                "delivery_flush_timeout",
                timeout=timeout,
                sinks=sorted(t.get_name().removeprefix("flush:") for t in pending),
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set: one worker task per sink, each looping over a
        pass, then a wait for :meth:`wake`, ``stop``, or the sink's next due item
        (at most ``max_wait`` seconds). Returns once every worker has ended."""
        tasks = [
            asyncio.create_task(self._worker(name, stop), name=f"deliver:{name}")
            for name in self._sinks
        ]
        try:
            await stop.wait()
            if tasks:
                await asyncio.wait(tasks, timeout=self._stop_grace)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ workers

    async def _worker(self, name: str, stop: asyncio.Event) -> None:
        wake = self._wakes[name]
        while not stop.is_set():
            wake.clear()
            try:
                await self._pass(name, stop)
            except Exception as exc:  # the store failed: log, count, try again later
                self._pass_failed(name, exc)
                self._next_at[name] = None
            if stop.is_set():
                break
            await self._sleep(stop, wake, self._wait_seconds(name))

    def _wait_seconds(self, name: str) -> float:
        next_at = self._next_at[name]
        if next_at is None:
            return self._max_wait
        seconds = (next_at - self._clock.now()).total_seconds()
        return min(max(seconds, 0.0), self._max_wait)

    @staticmethod
    async def _sleep(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _pass_failed(self, name: str, exc: BaseException) -> None:
        error_type = getattr(exc, "error_type", type(exc).__name__)
        self._metrics.error("deliver", str(error_type))
        log.error("delivery_pass_failed", sink=name, error_type=error_type, error=str(exc))

    async def _drain_sink(self, name: str) -> None:
        for _ in range(WINDOW):
            await self._pass(name, None)
            next_at = self._next_at[name]
            if next_at is None or next_at > self._clock.now():
                return

    # ------------------------------------------------------------------ one pass

    async def _pass(self, name: str, stop: asyncio.Event | None) -> int:
        sink = self._sinks[name]
        policy = self._policies[name]
        delivered = 0
        async with self._locks[name]:
            while True:
                items = await asyncio.to_thread(self._store.due, name, _FAR_FUTURE, WINDOW)
                blocked: set[str] = set()  # incidents whose oldest pending item must wait
                next_at: datetime | None = None
                halted = progressed = False
                for item in items:
                    if item.incident_id in blocked:
                        continue
                    now = self._clock.now()
                    if halted or item.next_attempt_at > now or (stop is not None and stop.is_set()):
                        blocked.add(item.incident_id)
                        next_at = _earliest(next_at, item.next_attempt_at)
                        continue
                    result = await self._attempt(sink, policy, item)
                    if result.outcome == "retry":
                        assert result.retry_at is not None
                        blocked.add(item.incident_id)
                        next_at = _earliest(next_at, result.retry_at)
                        halted = True
                    else:
                        progressed = True
                        if result.outcome == "delivered":
                            delivered += 1
                self._next_at[name] = next_at
                if halted or not progressed or len(items) < WINDOW:
                    break
            await self._update_pending()
        return delivered

    async def _attempt(self, sink: Sink, policy: DeliveryConfig, item: OutboxItem) -> _Result:
        fields = {
            "sink": item.sink,
            "alert_id": item.alert_id,
            "incident_id": item.incident_id,
            "attempt": item.attempts + 1,
        }
        now = self._clock.now()
        expires = item.created_at + policy.max_age
        if now >= expires:
            return await self._fail(item, "expired", f"older than max_age {policy.max_age}", fields)
        started = time.perf_counter()
        try:
            await sink.send(item.alert, item.alert_id)
        except SinkError as exc:
            error_type, message, retryable = exc.error_type, str(exc), exc.retryable
            retry_after = exc.retry_after
        except Exception as exc:  # a buggy sink must never kill the worker
            error_type, retryable, retry_after = "unexpected", True, None
            message = f"sink '{item.sink}' raised {type(exc).__name__}"
            fields["exc_type"] = type(exc).__name__
        else:
            self._observe(item, started)
            done = self._clock.now()
            await asyncio.to_thread(self._store.mark_delivered, item.id, done)
            self._metrics.alerts.labels(rule=item.rule, sink=item.sink, outcome="delivered").inc()
            log.info("alert_delivered", **fields)
            return _Result("delivered")
        self._observe(item, started)
        if not retryable:
            return await self._fail(item, error_type, message, fields)
        now = self._clock.now()
        retry_at = min(now + backoff(policy, item.attempts, self._rng, retry_after), expires)
        await asyncio.to_thread(self._store.mark_retry, item.id, retry_at, message)
        self._metrics.alerts.labels(rule=item.rule, sink=item.sink, outcome="retry").inc()
        self._metrics.error("deliver", error_type)
        log.warning(
            "alert_delivery_retry",
            **fields,
            error_type=error_type,
            error=message,
            retry_in=round((retry_at - now).total_seconds(), 3),
        )
        return _Result("retry", retry_at)

    async def _fail(
        self, item: OutboxItem, error_type: str, message: str, fields: dict[str, object]
    ) -> _Result:
        await asyncio.to_thread(self._store.mark_failed, item.id, self._clock.now(), message)
        self._metrics.alerts.labels(rule=item.rule, sink=item.sink, outcome="failed").inc()
        self._metrics.error("deliver", error_type)
        log.error("alert_delivery_failed", **fields, error_type=error_type, error=message)
        return _Result("failed")

    def _observe(self, item: OutboxItem, started: float) -> None:
        elapsed = time.perf_counter() - started
        self._metrics.delivery_duration.labels(sink=item.sink).observe(elapsed)

    async def _update_pending(self) -> None:
        pending = await asyncio.to_thread(self._store.outbox_pending)
        for name in set(self._sinks) | set(pending):
            self._metrics.outbox_pending.labels(sink=name).set(pending.get(name, 0))


__all__ = ["WINDOW", "Deliverer", "backoff"]
