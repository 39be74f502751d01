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
- **Rate limit.** With ``max_per_minute``, a sink gets at most that many sends (attempts,
  failed ones included) in any sixty seconds (:class:`RateLimiter`, on the injected
  clock). What is over the limit stays due in the outbox and goes out as sends free up;
  nothing is dropped. Each send that had to wait is counted once
  (``alerts{outcome="rate_limited"}``).
- **Storm digests.** With ``group_over``, when more than that many never-tried items are
  due for a sink at once, they go out as **one** :func:`digest` (at most
  :data:`DIGEST_MAX` members; the rest follow in the next one). Every member is marked
  delivered when the digest is accepted, and counted both ``delivered`` and ``grouped``.
  A digest is one unit of delivery: it is retried, expires (when its oldest member
  reaches ``max_age``) and fails as a whole.
- **Isolation.** One worker task per sink; a slow or broken sink never delays another.
- **At least once.** An item is marked delivered only after ``send`` returned; a crash
  in between resends it after a restart with the same idempotency key (the alert id).

**Digests survive crashes with the same id.** Before a digest is first sent, its members
(outbox ids and alerts) are written to a journal in the state file (the ``sink_state``
table, namespace ``@delivery:<sink>``, which no sink name can take). Until every member
is settled, that sink sends exactly this digest again (same members, same body, same id
:func:`digest_key`), after a failure or a restart, and forms no other digest. The marks
that settle the members are separate writes; the journal is cleared after them. So if
the process dies between an accepted digest and its marks (or halfway through them),
the next start finds the journal, resends the same digest (the receiver drops it by its
``Idempotency-Key``), marks the rest and clears the journal: from the outbox's point of
view the members are delivered together or not at all.

**An alert is never seen both alone and inside a digest.** An item that was already
tried on its own (``attempts > 0``, or one of the last items sent alone, which the
journal records while grouping is on, in case the process died or was stopped before
marking it) is never grouped, nor is any later item of its incident: they keep going
out one by one. One digest at a time is unsettled per sink; while it waits for its
retry, a further storm waits for it (``group_over`` due items or fewer still go out
alone).

Every store call runs in a worker thread (``asyncio.to_thread``). Logs never contain
a sink's URL or headers: only the messages of :class:`~listener.errors.SinkError`
(which sinks keep free of secrets) and, for anything else, the exception's type.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog

from listener.clock import Clock
from listener.config.schema import DeliveryConfig
from listener.errors import ListenerError, SinkError
from listener.metrics import Metrics
from listener.model import Alert, Fact, MentionRef
from listener.sinks.base import Sink
from listener.store import OutboxItem, Store, StoreSinkState

log = structlog.get_logger("listener.delivery")

WINDOW = 1000
"""How many of a sink's oldest pending items one pass looks at (a pass that made
progress on a full window looks again)."""

DIGEST_MAX = 100
"""The most alerts one digest carries; a larger storm goes out as several digests."""

JOURNAL_NAMESPACE = "@delivery:"
"""``sink_state`` namespace prefix of the delivery journal (a sink name cannot start
with ``@``, so no sink's own state can collide with it)."""

RATE_PERIOD = timedelta(minutes=1)

KIND_SEVERITY: Mapping[str, int] = {
    "resolved": 0,
    "acknowledged": 1,
    "deescalated": 2,
    "reminder": 3,
    "opened": 4,
    "escalated": 5,
    "handoff": 6,
}
"""How urgent each alert kind is, for a digest's ``kind`` and ``level`` (highest wins)."""

_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_MAX_EXPONENT = 32
_DIGEST_MENTIONS = 5
_DIGEST_NAMES = 3
_SINGLES_KEPT = 16

Outcome = Literal["delivered", "retry", "failed", "limited"]


@dataclass(frozen=True, slots=True)
class _Result:
    outcome: Outcome
    at: datetime | None = None
    """``retry``: when the next attempt is due; ``limited``: when a send frees up."""
    delivered: int = 0


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


# ---------------------------------------------------------------------- rate limit


class RateLimiter:
    """At most ``per_minute`` sends in any sixty seconds of ``clock``.

    A token bucket of ``per_minute`` tokens in which each spent token comes back exactly
    one minute after it was spent: a burst of up to ``per_minute`` goes out at once, and
    the bound holds over every sliding minute (a classic bucket refilling continuously
    would allow almost twice as many). In memory: a restart starts with a full bucket.
    A clock set backwards counts earlier sends as made now, so no wait exceeds a minute.
    """

    def __init__(self, per_minute: int, clock: Clock) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._clock = clock
        self._spent: deque[datetime] = deque()

    def _refill(self, now: datetime) -> None:
        if self._spent and self._spent[-1] > now:
            self._spent = deque(min(t, now) for t in self._spent)
        while self._spent and self._spent[0] + RATE_PERIOD <= now:
            self._spent.popleft()

    def ready_at(self) -> datetime:
        """When the next send is allowed (now, when one is)."""
        return self._ready_at(self._clock.now())

    def _ready_at(self, now: datetime) -> datetime:
        self._refill(now)
        if len(self._spent) < self.per_minute:
            return now
        return self._spent[0] + RATE_PERIOD

    def try_take(self) -> bool:
        """Spend a token for one send now; ``False`` (nothing spent) when none is left.
        One reading of the clock decides (a real clock moves between two readings)."""
        now = self._clock.now()
        if self._ready_at(now) > now:
            return False
        self._spent.append(now)
        return True


# ---------------------------------------------------------------------- digests


@dataclass(frozen=True, slots=True)
class DigestAlert(Alert):
    """One alert that stands for several (a storm), built by :func:`digest`.

    ``members`` are the member alert ids, in delivery order; ``headline`` is the title
    (``"N alerts: …"``). Every sink can send it like any alert: its ``id`` is the
    idempotency key, its ``incident_id`` equals its ``id`` (a digest is its own thread),
    and ``to_dict()`` carries ``members``.
    """

    members: tuple[str, ...] = ()
    headline: str = ""

    @property
    def title(self) -> str:
        return self.headline


def digest_key(alert_ids: Iterable[str]) -> str:
    """The id of the digest of these alert ids: the same set always gives the same id,
    in any order (so a retry, after a failure or a crash, is recognisable). Pure."""
    joined = "\n".join(sorted(alert_ids)).encode("utf-8")
    return "digest-" + hashlib.sha256(joined).hexdigest()[:32]


def _severity(alert: Alert) -> int:
    return KIND_SEVERITY.get(alert.kind, 0)


def _names(values: Iterable[str]) -> str:
    distinct = sorted(set(values))
    shown = ", ".join(distinct[:_DIGEST_NAMES])
    more = len(distinct) - _DIGEST_NAMES
    return f"{shown} +{more} more" if more > 0 else shown


def _member_fact(alert: Alert) -> Fact:
    """One line per member: ``[<alert id>] <title> — <its first fact>``, carrying that
    fact's numbers (0 when the member has no fact)."""
    name = f"[{alert.id}] {alert.title}"
    if not alert.facts:
        return Fact(name, 0.0)
    first = alert.facts[0]
    return Fact(f"{name} — {first.name}", first.value, first.threshold, first.baseline)


def digest(alerts: Sequence[Alert]) -> DigestAlert:
    """One alert summarising ``alerts`` (in the order given), for a storm. Pure.

    - ``id`` and ``incident_id``: :func:`digest_key` of the member ids;
    - ``kind`` and ``level``: those of the most severe member (:data:`KIND_SEVERITY`;
      the first one on a tie); ``previous_level``: ``None``;
    - ``title``: ``"N alerts: 3 escalated, 27 opened — Acme, Globex +2 more"`` (with
      ``[DRILL] `` in front when every member is a drill); ``brand`` and ``rule``: the
      distinct brands and rules, named the same way;
    - ``facts``: one per member, ``[<alert id>] <title> — <first fact>`` with that fact's
      numbers, in member order;
    - ``at``: the latest member's; ``opened_at``: the earliest member's;
      ``top_mentions``: up to five distinct ones, most severe members first;
      ``categories``: summed over the members; ``route``: their union, in order;
    - ``members``: the member ids.

    Raises ``ValueError`` for no alerts or a repeated alert id.
    """
    if not alerts:
        raise ValueError("a digest needs at least one alert")
    ids = [a.id for a in alerts]
    if len(set(ids)) != len(ids):
        raise ValueError("a digest cannot carry the same alert twice")
    key = digest_key(ids)
    top = max(alerts, key=_severity)
    kinds = Counter(a.kind for a in alerts)
    ordered_kinds = sorted(kinds.items(), key=lambda kv: (-KIND_SEVERITY.get(kv[0], 0), kv[0]))
    drill = all(a.drill for a in alerts)
    headline = (
        ("[DRILL] " if drill else "")
        + f"{len(alerts)} alerts: "
        + ", ".join(f"{n} {kind}" for kind, n in ordered_kinds)
        + f" — {_names(a.brand for a in alerts)}"
    )
    mentions: list[MentionRef] = []
    seen: set[tuple[str, str]] = set()
    for member in sorted(alerts, key=lambda a: -_severity(a)):
        for ref in member.top_mentions:
            if (ref.source, ref.id) not in seen and len(mentions) < _DIGEST_MENTIONS:
                seen.add((ref.source, ref.id))
                mentions.append(ref)
    categories: Counter[str] = Counter()
    for member in alerts:
        for name, count in member.categories:
            categories[name] += count
    route: list[str] = []
    for member in alerts:
        route.extend(r for r in member.route if r not in route)
    opened = [a.opened_at for a in alerts if a.opened_at is not None]
    return DigestAlert(
        id=key,
        incident_id=key,
        kind=top.kind,
        rule=_names(a.rule for a in alerts),
        brand=_names(a.brand for a in alerts),
        level=top.level,
        previous_level=None,
        at=max(a.at for a in alerts),
        facts=tuple(_member_fact(a) for a in alerts),
        top_mentions=tuple(mentions),
        drill=drill,
        categories=tuple(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))),
        opened_at=min(opened) if opened else None,
        route=tuple(route),
        members=tuple(ids),
        headline=headline,
    )


# ---------------------------------------------------------------------- journal


@dataclass(frozen=True, slots=True)
class _Unsettled:
    """A digest that was (or is about to be) sent and whose members are not all settled."""

    alert: DigestAlert
    items: tuple[int, ...]
    """The members' outbox ids."""
    alerts: tuple[Alert, ...]


class _Journal:
    """A sink's delivery journal in the state file: the unsettled digest, and (while
    grouping is on) the outbox ids of the last items sent on their own (one of them may
    have reached the receiver although the process died, or was stopped, before marking
    it). Use from one sink's pass at a time (the Deliverer's per-sink lock)."""

    _DIGEST = "digest"
    _SINGLE = "single"

    def __init__(self, store: Store, sink: str) -> None:
        self._state = StoreSinkState(store, JOURNAL_NAMESPACE + sink)
        self._sink = sink
        self._singles: list[int] | None = None

    def load_digest(self) -> _Unsettled | None:
        raw = self._state.get(self._DIGEST)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            alerts = tuple(Alert.from_dict(a) for a in data["alerts"])
            alert = digest(alerts)
            if alert.id != data["id"]:  # written by another version: keep the id it sent
                alert = replace(alert, id=str(data["id"]), incident_id=str(data["id"]))
            return _Unsettled(alert, tuple(int(i) for i in data["items"]), alerts)
        except (KeyError, TypeError, ValueError) as exc:
            log.error(
                "delivery_journal_unreadable",
                sink=self._sink,
                error_type=type(exc).__name__,
                note="the digest's members will be delivered again, possibly in a new digest",
            )
            self._state.delete(self._DIGEST)
            return None

    def save_digest(self, unsettled: _Unsettled) -> None:
        data = {
            "id": unsettled.alert.id,
            "items": list(unsettled.items),
            "alerts": [a.to_dict() for a in unsettled.alerts],
        }
        self._state.set(self._DIGEST, json.dumps(data))

    def clear_digest(self) -> None:
        self._state.delete(self._DIGEST)

    def load_singles(self) -> frozenset[int]:
        if self._singles is None:
            raw = self._state.get(self._SINGLE) or ""
            self._singles = [int(part) for part in raw.split(",") if part.isdigit()]
        return frozenset(self._singles)

    def save_single(self, item_id: int) -> None:
        """Record ``item_id`` among the last :data:`_SINGLES_KEPT` items sent on their own."""
        self.load_singles()
        assert self._singles is not None
        self._singles = [*self._singles[-(_SINGLES_KEPT - 1) :], item_id]
        self._state.set(self._SINGLE, ",".join(map(str, self._singles)))


# ---------------------------------------------------------------------- one pass's bookkeeping


@dataclass(slots=True)
class _Pass:
    delivered: int = 0
    next_at: datetime | None = None
    limited_at: datetime | None = None
    halted: bool = False
    progressed: bool = False
    again: bool = False
    """A digest was settled: the items after it need a fresh look."""

    def wait_until(self, when: datetime) -> None:
        self.next_at = _earliest(self.next_at, when)

    def absorb(self, result: _Result) -> None:
        if result.outcome == "retry":
            assert result.at is not None
            self.halted = True
            self.wait_until(result.at)
        elif result.outcome == "limited":
            assert result.at is not None
            self.halted = True
            self.limited_at = result.at
        else:
            self.progressed = True
            self.delivered += result.delivered

    def wake_at(self) -> datetime | None:
        """When the sink's worker should look again: nothing is sent before the rate
        limiter frees a send, whatever else is due."""
        return self.limited_at if self.limited_at is not None else self.next_at


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
        self._limiters = {
            name: RateLimiter(policy.max_per_minute, clock)
            for name, policy in self._policies.items()
            if policy.max_per_minute is not None
        }
        self._journals = {name: _Journal(store, name) for name in self._sinks}
        self._waiting: dict[str, str | None] = dict.fromkeys(self._sinks)

    # ------------------------------------------------------------------ public API

    def wake(self) -> None:
        """New outbox rows were committed: every idle worker looks at the outbox now."""
        for event in self._wakes.values():
            event.set()

    async def deliver_due(self, sink_name: str) -> int:
        """One pass over ``sink_name``'s due items, in outbox order; returns how many
        were delivered (each member of a digest counts). Never raises for a sink's
        failure (only ``StoreError`` from the store, and ``KeyError`` for an unknown sink)."""
        return await self._pass(sink_name, None)

    async def drain(self) -> None:
        """Deliver everything due now, for every sink, without waiting for any retry
        (nor for the rate limit: what is over it stays pending).

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
        error_type = exc.error_type if isinstance(exc, ListenerError) else type(exc).__name__
        self._metrics.error("deliver", error_type)
        log.error("delivery_pass_failed", sink=name, error_type=error_type, error=str(exc))

    async def _drain_sink(self, name: str) -> None:
        for _ in range(WINDOW):
            await self._pass(name, None)
            next_at = self._next_at[name]
            if next_at is None or next_at > self._clock.now():
                return

    # ------------------------------------------------------------------ one pass

    async def _pass(self, name: str, stop: asyncio.Event | None) -> int:
        delivered = 0
        async with self._locks[name]:
            while True:
                items = await asyncio.to_thread(self._store.outbox.due, name, _FAR_FUTURE, WINDOW)
                step = await self._step(name, items, stop)
                delivered += step.delivered
                self._next_at[name] = step.wake_at()
                if step.halted or not step.progressed:
                    break
                if len(items) < WINDOW and not step.again:
                    break
            await self._update_pending()
        return delivered

    async def _step(self, name: str, items: list[OutboxItem], stop: asyncio.Event | None) -> _Pass:
        """Go once through ``items`` (a sink's oldest pending items, due or not)."""
        policy = self._policies[name]
        journal = self._journals[name]
        now = self._clock.now()
        step = _Pass()
        blocked: set[str] = set()  # incidents whose oldest pending item must wait
        unsettled_due: datetime | None = None  # the unsettled digest waits until then

        def stopping() -> bool:
            return stop is not None and stop.is_set()

        unsettled = await asyncio.to_thread(journal.load_digest)
        members: set[int] = set()
        if unsettled is not None:
            members = set(unsettled.items)
            live = [item for item in items if item.id in members]
            if not live:
                await asyncio.to_thread(journal.clear_digest)
                unsettled = None
            else:
                blocked.update(item.incident_id for item in live)
                due_at = max(item.next_attempt_at for item in live)
                if due_at > now or stopping():
                    step.wait_until(due_at)
                    unsettled_due = due_at
                else:
                    result = await self._attempt_digest(name, policy, unsettled, live)
                    step.absorb(result)
                    if result.outcome in ("delivered", "failed"):
                        step.again = True  # settled: look again with its incidents free
                        return step
                    unsettled_due = result.at

        ready: list[OutboxItem] = []
        for item in items:
            if item.id in members or item.incident_id in blocked:
                continue
            if step.halted or stopping() or item.next_attempt_at > now:
                blocked.add(item.incident_id)
                step.wait_until(item.next_attempt_at)
                continue
            if now >= item.created_at + policy.max_age:
                step.absorb(await self._expire(item, policy))
                continue
            ready.append(item)
        if not ready:
            return step

        singles, grouped = await self._split(name, policy, ready)
        if grouped and unsettled_due is not None:
            # One digest at a time per sink: the next storm waits for the unsettled one.
            step.wait_until(unsettled_due)
            grouped = []
        for item in singles:
            if step.halted or stopping():
                step.wait_until(item.next_attempt_at)
                continue
            step.absorb(await self._attempt(name, policy, item))
        if not grouped:
            return step
        if step.halted or stopping():
            step.wait_until(min(item.next_attempt_at for item in grouped))
            return step
        chosen = grouped[:DIGEST_MAX]
        alerts = tuple(item.alert for item in chosen)
        fresh = _Unsettled(digest(alerts), tuple(item.id for item in chosen), alerts)
        await asyncio.to_thread(journal.save_digest, fresh)
        result = await self._attempt_digest(name, policy, fresh, chosen)
        step.absorb(result)
        step.again = result.outcome in ("delivered", "failed")
        return step

    async def _split(
        self, name: str, policy: DeliveryConfig, ready: list[OutboxItem]
    ) -> tuple[list[OutboxItem], list[OutboxItem]]:
        """``ready`` (due, in outbox order) split into what goes out on its own and what
        goes into a digest (empty unless more than ``group_over`` may be grouped)."""
        if policy.group_over is None:
            return ready, []
        sent_alone = await asyncio.to_thread(self._journals[name].load_singles)
        tainted: set[str] = set()  # incidents with an item that may have been seen alone
        singles: list[OutboxItem] = []
        grouped: list[OutboxItem] = []
        for item in ready:
            if item.incident_id in tainted or item.attempts > 0 or item.id in sent_alone:
                tainted.add(item.incident_id)
                singles.append(item)
            else:
                grouped.append(item)
        if len(grouped) <= policy.group_over:
            return ready, []
        return singles, grouped

    def _take_send(self, name: str, rule: str, unit: str) -> _Result | None:
        """Spend one send of the sink's rate limit; a ``limited`` result when none is left
        (each waiting unit is counted and logged once)."""
        limiter = self._limiters.get(name)
        if limiter is None or limiter.try_take():
            return None
        ready_at = limiter.ready_at()
        if self._waiting[name] != unit:
            self._waiting[name] = unit
            self._metrics.alerts.labels(rule=rule, sink=name, outcome="rate_limited").inc()
            log.info(
                "delivery_rate_limited",
                sink=name,
                unit=unit,
                max_per_minute=limiter.per_minute,
                wait=round((ready_at - self._clock.now()).total_seconds(), 3),
            )
        return _Result("limited", ready_at)

    async def _expire(self, item: OutboxItem, policy: DeliveryConfig) -> _Result:
        fields = self._fields(item)
        message = f"older than max_age {policy.max_age}"
        return await self._fail(item, "expired", message, fields)

    @staticmethod
    def _fields(item: OutboxItem) -> dict[str, object]:
        return {
            "sink": item.sink,
            "alert_id": item.alert_id,
            "incident_id": item.incident_id,
            "attempt": item.attempts + 1,
        }

    async def _send(self, name: str, alert: Alert) -> tuple[SinkError | None, dict[str, object]]:
        """Send ``alert`` with its id as the key; the error (an unexpected exception
        becomes a retryable ``SinkError`` named ``unexpected``) and extra log fields."""
        started = time.perf_counter()
        extra: dict[str, object] = {}
        error: SinkError | None = None
        try:
            await self._sinks[name].send(alert, alert.id)
        except SinkError as exc:
            error = exc
        except Exception as exc:  # a buggy sink must never kill the worker
            error = SinkError(f"sink '{name}' raised {type(exc).__name__}")
            error.error_type = "unexpected"
            extra["exc_type"] = type(exc).__name__
        elapsed = time.perf_counter() - started
        self._metrics.delivery_duration.labels(sink=name).observe(elapsed)
        return error, extra

    async def _attempt(self, name: str, policy: DeliveryConfig, item: OutboxItem) -> _Result:
        limited = self._take_send(name, item.rule, f"alert:{item.alert_id}")
        if limited is not None:
            return limited
        fields = self._fields(item)
        if policy.group_over is not None:  # never group it later: it may be seen alone
            await asyncio.to_thread(self._journals[name].save_single, item.id)
        error, extra = await self._send(name, item.alert)
        fields.update(extra)
        if error is None:
            done = self._clock.now()
            await asyncio.to_thread(self._store.outbox.mark_delivered, item.id, done)
            self._metrics.alerts.labels(rule=item.rule, sink=item.sink, outcome="delivered").inc()
            self._observe_latency(name, item, done)
            log.info("alert_delivered", **fields)
            return _Result("delivered", delivered=1)
        message = str(error)
        if not error.retryable:
            return await self._fail(item, error.error_type, message, fields)
        now = self._clock.now()
        expires = item.created_at + policy.max_age
        delay = backoff(policy, item.attempts, self._rng, error.retry_after)
        retry_at = min(now + delay, expires)
        await asyncio.to_thread(self._store.outbox.mark_retry, item.id, retry_at, message)
        self._metrics.alerts.labels(rule=item.rule, sink=item.sink, outcome="retry").inc()
        self._metrics.error("deliver", error.error_type)
        log.warning(
            "alert_delivery_retry",
            **fields,
            error_type=error.error_type,
            error=message,
            retry_in=round((retry_at - now).total_seconds(), 3),
        )
        return _Result("retry", retry_at)

    async def _fail(
        self, item: OutboxItem, error_type: str, message: str, fields: dict[str, object]
    ) -> _Result:
        await asyncio.to_thread(self._store.outbox.mark_failed, item.id, self._clock.now(), message)
        self._metrics.alerts.labels(rule=item.rule, sink=item.sink, outcome="failed").inc()
        self._metrics.error("deliver", error_type)
        log.error("alert_delivery_failed", **fields, error_type=error_type, error=message)
        return _Result("failed")

    # ------------------------------------------------------------------ digests

    async def _attempt_digest(
        self, name: str, policy: DeliveryConfig, unsettled: _Unsettled, live: list[OutboxItem]
    ) -> _Result:
        """Send the unsettled digest once; settle ``live`` (its still pending members)."""
        alert = unsettled.alert
        fields: dict[str, object] = {
            "sink": name,
            "digest_id": alert.id,
            "members": len(unsettled.items),
            "pending_members": len(live),
            "attempt": max(item.attempts for item in live) + 1,
        }
        now = self._clock.now()
        expires = min(item.created_at for item in live) + policy.max_age
        if now >= expires:
            message = f"digest older than max_age {policy.max_age}"
            return await self._fail_digest(name, live, "expired", message, fields)
        limited = self._take_send(name, live[0].rule, alert.id)
        if limited is not None:
            return limited
        error, extra = await self._send(name, alert)
        fields.update(extra)
        if error is None:
            done = self._clock.now()
            await asyncio.to_thread(self._settle, name, live, "delivered", done, None)
            for item in live:
                for outcome in ("delivered", "grouped"):
                    self._metrics.alerts.labels(rule=item.rule, sink=name, outcome=outcome).inc()
                self._observe_latency(name, item, done)
                log.info(
                    "alert_delivered",
                    sink=name,
                    alert_id=item.alert_id,
                    incident_id=item.incident_id,
                    attempt=item.attempts + 1,
                    digest_id=alert.id,
                )
            log.info("digest_delivered", **fields)
            return _Result("delivered", delivered=len(live))
        message = str(error)
        if not error.retryable:
            return await self._fail_digest(name, live, error.error_type, message, fields)
        attempts = max(item.attempts for item in live)
        retry_at = min(now + backoff(policy, attempts, self._rng, error.retry_after), expires)
        await asyncio.to_thread(self._settle, name, live, "retry", retry_at, message)
        for item in live:
            self._metrics.alerts.labels(rule=item.rule, sink=name, outcome="retry").inc()
        self._metrics.error("deliver", error.error_type)
        log.warning(
            "digest_delivery_retry",
            **fields,
            error_type=error.error_type,
            error=message,
            retry_in=round((retry_at - self._clock.now()).total_seconds(), 3),
        )
        return _Result("retry", retry_at)

    async def _fail_digest(
        self,
        name: str,
        live: list[OutboxItem],
        error_type: str,
        message: str,
        fields: dict[str, object],
    ) -> _Result:
        await asyncio.to_thread(self._settle, name, live, "failed", self._clock.now(), message)
        for item in live:
            self._metrics.alerts.labels(rule=item.rule, sink=name, outcome="failed").inc()
            log.error(
                "alert_delivery_failed",
                **self._fields(item),
                digest_id=fields["digest_id"],
                error_type=error_type,
                error=message,
            )
        self._metrics.error("deliver", error_type)
        log.error("digest_delivery_failed", **fields, error_type=error_type, error=message)
        return _Result("failed")

    def _settle(
        self,
        name: str,
        live: Sequence[OutboxItem],
        outcome: Literal["delivered", "retry", "failed"],
        when: datetime,
        message: str | None,
    ) -> None:
        """Mark every live member (in a worker thread); clear the journal once they are
        all delivered or failed. A crash halfway leaves the journal, so the next pass
        resends the same digest and finishes the marks."""
        for item in live:
            if outcome == "delivered":
                self._store.outbox.mark_delivered(item.id, when)
            elif outcome == "retry":
                self._store.outbox.mark_retry(item.id, when, message or "")
            else:
                self._store.outbox.mark_failed(item.id, when, message or "")
        if outcome != "retry":
            self._journals[name].clear_digest()

    def _observe_latency(self, name: str, item: OutboxItem, done: datetime) -> None:
        """Time from the alert entering the outbox to its delivery (never negative)."""
        latency = max(0.0, (done - item.created_at).total_seconds())
        self._metrics.delivery_latency.labels(sink=name).observe(latency)

    async def _update_pending(self) -> None:
        """The outbox gauges after a pass: every sink's pending count and
        the age of its oldest pending alert (0 when none waits), from one query."""
        backlog = await asyncio.to_thread(self._store.outbox.backlog)
        now = self._clock.now()
        for sink in set(self._sinks) | set(backlog):
            n, oldest = backlog.get(sink, (0, now))
            self._metrics.outbox_pending.labels(sink=sink).set(n)
            age = max(0.0, (now - oldest).total_seconds())
            self._metrics.outbox_oldest_age.labels(sink=sink).set(age)


__all__ = [
    "DIGEST_MAX",
    "KIND_SEVERITY",
    "WINDOW",
    "Deliverer",
    "DigestAlert",
    "RateLimiter",
    "backoff",
    "digest",
    "digest_key",
]
