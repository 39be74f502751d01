"""Putting messages on the bus from outside a worker: ``listener publish`` and ``listener
tick``, and the commands an ack or a silence sends the evaluators (from the CLI and from a
delivery worker's HTTP API)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from listener.bus import (
    Bus,
    TopicName,
    ack_command,
    expire_command,
    quix_app,
    silence_command,
    topic,
)
from listener.errors import BusError
from listener.model import Ack, Silence


def produce(bus: Bus, name: TopicName, messages: Sequence[tuple[str, bytes]]) -> None:
    """Put ``(key, value)`` messages on one of the bus's topics (made as the workers make
    it, when missing), waiting until the broker has acknowledged every one; BusError
    when it has not."""
    full = bus.name(name)
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    with tempfile.TemporaryDirectory() as state:
        app = quix_app(bus, "publish", state)
        try:
            topic(app, bus, name)
            with app.get_producer() as producer:
                for key, value in messages:
                    producer.produce(full, value, key, on_delivery=delivered)
                left = producer.flush(60)
        except Exception as exc:  # librdkafka's errors: the broker, the buffer
            raise BusError(f"publishing to {bus.brokers}: {type(exc).__name__}: {exc}") from None
    if left or failed:
        raise BusError(
            f"publishing to {bus.brokers}: {left + len(failed)} of {len(messages)} {name} "
            f"not acknowledged ({failed[0] if failed else 'timed out after 60s'})"
        )


class CommandsTopic:
    """Distributed mode's evaluators, as an ack or a silence reaches them: the
    ``commands`` topic, keyed by brand (:class:`listener.incidents.Evaluators`).

    ``brands`` lists the brands of the rules (a silence of every brand becomes one
    command for each: each evaluator holds only its own brands); it may raise a
    ListenerError saying how to give it them. A broker that does not take the commands
    raises BusError, before anything was written."""

    def __init__(self, bus: Bus, brands: Callable[[], Sequence[str]]) -> None:
        self.bus = bus
        self._brands = brands

    def acknowledged(self, brand: str, incident_id: str, ack: Ack) -> None:
        self._tell([ack_command(brand, incident_id, ack)])

    def silenced(self, silence: Silence) -> None:
        self._tell([silence_command(b, silence) for b in self._covered(silence.brand)])

    def expired(self, silence: Silence, at: datetime) -> None:
        self._tell([expire_command(b, silence.id, at) for b in self._covered(silence.brand)])

    def _covered(self, brand: str | None) -> list[str]:
        return [brand] if brand is not None else list(self._brands())

    def _tell(self, messages: list[dict[str, Any]]) -> None:
        try:
            produce(self.bus, "commands", [(m["brand"], json.dumps(m).encode()) for m in messages])
        except BusError as exc:
            raise BusError(f"{exc}; nothing was changed: try again once the bus is back") from None
