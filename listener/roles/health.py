"""A worker's ``/healthz``, ``/readyz`` and ``/metrics`` (distributed mode), on
``LISTENER_LISTEN`` as the daemon's, served from a thread of their own: the worker's main
thread belongs to Quix Streams.

* ``/healthz``: 200 ``ok`` while the process answers;
* ``/readyz``: 200 while the worker's application runs on a reachable broker, 503 while
  it waits for one (``{"ready": false, "bus": {"reachable": false, "error": ...}}``,
  what :func:`~listener.roles.supervise.supervise` last met); a collector adds its
  sources (``"sources": {name: {"status": ..., "last_error": ...}}``, as the daemon's);
* ``/metrics``: the worker's Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from listener.bus import Bus
from listener.httpapi import HttpApi, Request, Response
from listener.metrics import Metrics


@dataclass
class Readiness:
    """What ``/readyz`` says; set by the supervisor, read by the server thread."""

    role: str
    bus: Bus
    reachable: bool = False
    error: str | None = None
    since: datetime | None = None
    details: Callable[[], dict[str, Any]] = dict
    """More of the body, from the role (a collector's sources)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def up(self, now: datetime) -> None:
        with self._lock:
            if not self.reachable:
                self.since = now
            self.reachable, self.error = True, None

    def down(self, error: str, now: datetime) -> None:
        with self._lock:
            if self.reachable or self.since is None:
                self.since = now
            self.reachable, self.error = False, error

    def as_dict(self) -> dict[str, Any]:
        details = self.details()
        with self._lock:
            return details | {
                "ready": self.reachable,
                "role": self.role,
                "bus": {
                    "brokers": self.bus.brokers,
                    "prefix": self.bus.prefix,
                    "reachable": self.reachable,
                    "error": self.error,
                    "since": self.since.isoformat() if self.since else None,
                },
            }


class HealthServer:
    """The worker's HTTP endpoint in a daemon thread with its own event loop."""

    def __init__(self, readiness: Readiness, metrics: Metrics) -> None:
        self.readiness = readiness
        self.api = HttpApi(metrics.registry)
        self.api.route("GET", "/healthz", self._healthz)
        self.api.route("GET", "/readyz", self._readyz)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _healthz(self, request: Request) -> Response:
        return Response(200, b"ok\n")

    async def _readyz(self, request: Request) -> Response:
        body = self.readiness.as_dict()
        return Response.json(body, 200 if body["ready"] else 503)

    def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen (port 0: any free one); the bound address. Raises ``OSError`` when the
        address cannot be bound."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.api.start(host, port), self._loop)
        return future.result(timeout=10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.api.stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
