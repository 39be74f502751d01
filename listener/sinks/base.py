"""The sink extension point.

A sink turns an :class:`~listener.model.Alert` into one request to one receiver.
Rendering is a pure function in each sink module (``render_*``), unit-tested;
``send`` is the thin I/O part. Retries, backoff, ordering, metrics and the durable
outbox belong to :mod:`listener.sinks.delivery`, never to a sink.

Optional capabilities are ``@runtime_checkable`` protocols beside :class:`Sink`, checked
with ``isinstance`` (never ``getattr`` with a string): :class:`SendsTest` (``listener
check --deep`` sends a test notification), :class:`SendsDigest` (scheduled digests,
:mod:`listener.digests`) and :class:`Refreshable` (the daemon re-posts firing alerts
every ``resend_every``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, runtime_checkable

from listener.clock import Clock, SystemClock
from listener.model import Alert, Digest


@runtime_checkable
class Sink(Protocol):
    """Contract: ``send`` delivers one alert once or raises
    :class:`~listener.errors.SinkError` (``SinkUnavailable`` when a retry may help,
    ``SinkRejected`` when it will not). ``idempotency_key`` is the same for every
    retry of the same alert, across restarts; receivers use it to drop copies.
    ``healthcheck`` verifies the receiver is reachable (``listener check --deep``)."""

    name: str

    async def send(self, alert: Alert, idempotency_key: str) -> None: ...

    async def healthcheck(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SendsTest(Protocol):
    """Optional: ``send_test`` posts a harmless, clearly labelled test notification
    (``listener check --deep`` prefers it to :meth:`Sink.healthcheck`). Raises
    :class:`~listener.errors.SinkError` like ``send``."""

    async def send_test(self) -> None: ...


@runtime_checkable
class SendsDigest(Protocol):
    """Optional: a sink that can deliver a scheduled :class:`~listener.model.Digest`
    (``digests:`` in rules.yaml; :mod:`listener.digests` decides when). Raises
    :class:`~listener.errors.SinkError` like ``send``; ``idempotency_key`` is the same for
    every retry of the same digest, across restarts."""

    async def send_digest(self, digest: Digest, idempotency_key: str) -> None: ...


@runtime_checkable
class Refreshable(Protocol):
    """Optional: a receiver that expires what it was sent (Alertmanager's ``endsAt``).
    The daemon calls ``refresh`` every ``resend_every`` to re-post what still fires;
    it raises :class:`~listener.errors.SinkError` like ``send``."""

    resend_every: timedelta

    async def refresh(self) -> None: ...


class SinkState(Protocol):
    """Small durable key-value state a sink keeps across restarts (a Slack message ts
    per incident, the last Alertmanager post). Keys and values are strings; each sink
    sees only its own keys."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


class MemorySinkState:
    """A :class:`SinkState` that lives only as long as the process (tests, the drill)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What the framework hands a sink when building it."""

    state: SinkState = field(default_factory=MemorySinkState)
    clock: Clock = field(default_factory=SystemClock)
