"""Keeping a worker of distributed mode running while its broker comes and goes.

A worker whose broker cannot be reached at start (or whose application stops with an
error) does not exit: it logs ``bus_unavailable`` (or ``role_failed``) with the error and
when it tries again, counts it (``listener_errors_total{stage="bus"}``; ``stage="store"``
when it is the shared state in PostgreSQL that cannot be reached), waits with
exponential backoff and jitter (1 s doubling to 60 s; SIGTERM or SIGINT end the wait and
the worker, exit 0) and starts again; meanwhile ``/readyz`` answers 503 with the error
(:mod:`listener.roles.health`). Once running, librdkafka reconnects by itself and Quix
Streams resumes from the committed offsets. A worker never stops listening silently.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Callable
from typing import Any, Final, Protocol

import structlog

from listener.clock import Clock
from listener.errors import StoreError
from listener.metrics import Metrics
from listener.pipeline import backoff_delay
from listener.roles.health import Readiness

log = structlog.get_logger("listener")

INITIAL: Final = 1.0
MAXIMUM: Final = 60.0


class Runnable(Protocol):
    """What a role starts: a Quix Streams application (``run`` blocks until SIGTERM or
    SIGINT, or raises)."""

    def run(self) -> Any: ...


def supervise(
    role: str,
    start: Callable[[], Runnable],
    metrics: Metrics,
    readiness: Readiness,
    clock: Clock,
    *,
    rng: random.Random | None = None,
    stop: threading.Event | None = None,
    restart: threading.Event | None = None,
) -> int:
    """Run what ``start`` builds until it stops cleanly (exit code 0), starting it again
    after a failure to build or run it (see the module); ``readiness`` (``/readyz``) says
    whether it runs. A run that ends while ``restart`` is set (the worker stopped it to
    start afresh) is started again at once."""
    rng = rng or random.Random()
    stop = stop or threading.Event()
    failures = 0

    def failed(event: str, exc: Exception) -> None:
        readiness.down(f"{type(exc).__name__}: {exc}", clock.now())
        _wait(role, event, exc, failures, metrics, rng, stop)

    def on_signal(*_: Any) -> None:
        stop.set()

    while not stop.is_set():
        # between runs the worker's own handlers end a wait; Quix Streams installs its own
        # for a run
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            app = start()
        except Exception as exc:  # the broker unreachable, a topic refused: try again
            failures += 1
            failed("bus_unavailable", exc)
            continue
        failures = 0
        readiness.up(clock.now())
        try:
            app.run()
        except Exception as exc:  # the run ended with an error: start again
            failures += 1
            failed("role_failed", exc)
            continue
        if restart is not None and restart.is_set():
            restart.clear()
            log.info("role_restarting", role=role)
            continue
        return 0
    log.info("role_stopped", role=role)
    return 0


def _wait(
    role: str,
    event: str,
    exc: Exception,
    failures: int,
    metrics: Metrics,
    rng: random.Random,
    stop: threading.Event,
) -> None:
    delay = backoff_delay(failures, INITIAL, MAXIMUM, rng)
    # the shared state (a delivery worker's or a collector's PostgreSQL) or the broker
    metrics.error("store" if isinstance(exc, StoreError) else "bus", type(exc).__name__)
    log.warning(
        event,
        role=role,
        error=f"{type(exc).__name__}: {exc}",
        failures=failures,
        retry_in_s=round(delay, 1),
    )
    stop.wait(delay)
