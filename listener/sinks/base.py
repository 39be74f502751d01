"""The sink extension point.

A sink turns an :class:`~listener.model.Alert` into one request to one receiver.
Rendering is a pure function in each sink module (``render_*``), unit-tested;
``send`` is the thin I/O part. Retries, backoff, ordering, metrics and the durable
outbox belong to :mod:`listener.sinks.delivery`, never to a sink.
"""

from __future__ import annotations

from typing import Protocol

from listener.model import Alert


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
