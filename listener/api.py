"""The daemon's REST API: the routes and their handlers, mounted on a
:class:`~listener.httpapi.HttpApi` (the small server, which also serves ``/metrics``).

=======  ==========================  ==================================================
GET      /healthz                    alive: 503 once the processing loop has ended
GET      /readyz                     config loaded, store open, per-source health
GET      /incidents[?status=]        incident list
GET      /incidents/ID               one incident with its events
POST     /incidents/ID/ack           acknowledge (bearer token); evaluates at once
GET      /silences                   silences with their state
POST     /silences                   add a silence (bearer token); 201 + Location
DELETE   /silences/ID                expire a silence (bearer token)
=======  ==========================  ==================================================

Bodies are validated by :mod:`listener.api_models`; a ``RequestError`` becomes its status
code, any other ``ListenerError`` a 400. Store reads and writes run in the API's own pool,
so a busy pipeline never makes a request wait for a thread. Write endpoints are disabled
(403) until ``LISTENER_API_TOKEN`` is set.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

import structlog

from listener import incidents
from listener.api_models import (
    AckRequest,
    SilenceRequest,
    check_incident_status,
    check_silence_scope,
    parse_body,
)
from listener.clock import Clock
from listener.config.schema import Config
from listener.errors import ListenerError, RequestError
from listener.httpapi import HttpApi, Request, Response
from listener.pipeline import SourceHealth
from listener.settings import Settings
from listener.store import Store
from listener.workers import Pool

log = structlog.get_logger("listener")


class PipelineView(Protocol):
    """What the API reads from the running pipeline (:class:`listener.pipeline.Pipeline`)."""

    @property
    def health(self) -> Mapping[str, SourceHealth]: ...

    def stopping(self) -> bool: ...

    def processing_alive(self) -> bool: ...

    async def evaluate(self) -> None: ...


class RestApi:
    """The handlers. ``config`` returns the running config (None until one is loaded)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        pipeline: PipelineView,
        clock: Clock,
        config: Callable[[], Config | None],
        *,
        pool: Pool | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self.config = config
        self.pool = pool or Pool("api", copy_context=False)

    def mount(self, server: HttpApi) -> None:
        """Register every route on ``server``."""
        server.route("GET", "/healthz", self.healthz)
        server.route("GET", "/readyz", self.readyz)
        server.route("GET", "/incidents", self.incidents)
        server.route("GET", "/incidents/", self.incident, prefix=True)
        server.route("POST", "/incidents/", self.ack, prefix=True)
        server.route("GET", "/silences", self.silences)
        server.route("POST", "/silences", self.add_silence)
        server.route("DELETE", "/silences/", self.expire_silence, prefix=True)

    def _authorised(self, request: Request) -> Response | None:
        """None when the request carries the API token; else the error response."""
        token = self.settings.api_token
        if not token:
            return Response.json(
                {"error": "write endpoints are disabled: set LISTENER_API_TOKEN"}, 403
            )
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response.json(
                {"error": "missing or wrong bearer token"}, 401, {"WWW-Authenticate": "Bearer"}
            )
        return None

    async def _store_call(self, fn: Any, *args: Any, **kwargs: Any) -> Response | Any:
        try:
            return await self.pool.run(fn, *args, **kwargs)
        except RequestError as exc:
            return Response.error(exc)
        except ListenerError as exc:
            return Response.json({"error": str(exc)}, 400)

    async def incidents(self, request: Request) -> Response:
        status = dict(parse_qsl(request.query)).get("status") or None
        check_incident_status(status)
        rows = await self.pool.run(incidents.listing, self.store, status)
        return Response.json(rows)

    async def incident(self, request: Request) -> Response:
        result = await self._store_call(
            incidents.detail, self.store, request.path.removeprefix("/incidents/")
        )
        return result if isinstance(result, Response) else Response.json(result)

    async def ack(self, request: Request) -> Response:
        incident_id, _, action = request.path.removeprefix("/incidents/").partition("/")
        if action != "ack":
            return Response.json({"error": "not found: POST /incidents/ID/ack"}, 404)
        if (denied := self._authorised(request)) is not None:
            return denied
        ack = parse_body(request.body, AckRequest)
        result = await self._store_call(
            incidents.acknowledge, self.store, incident_id, ack.by, self.clock.now(), ack.note
        )
        if isinstance(result, Response):
            return result
        log.info("acknowledged", incident_id=incident_id, by=ack.by)
        asyncio.get_running_loop().create_task(self.pipeline.evaluate())  # announce it now
        return Response.json({"acknowledged": incident_id})

    async def silences(self, request: Request) -> Response:
        now = self.clock.now()
        found = await self.pool.run(self.store.silence_log.select)
        return Response.json([incidents.silence_dict(s, now) for s in found])

    async def add_silence(self, request: Request) -> Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        wanted = parse_body(request.body, SilenceRequest)
        config = self.config()
        if config is None:
            return Response.json({"error": "not ready: the config is not loaded yet"}, 503)
        check_silence_scope(config, wanted.brand, wanted.rule, wanted.level)
        result = await self._store_call(
            incidents.add_silence,
            self.store,
            now=self.clock.now(),
            duration=wanted.duration,
            by=wanted.by,
            comment=wanted.comment,
            brand=wanted.brand,
            rule=wanted.rule,
            level=wanted.level,
        )
        if isinstance(result, Response):
            return result
        log.info(
            "silenced",
            silence_id=result.id,
            brand=result.brand,
            rule=result.rule,
            level=result.level,
            until=result.ends_at.isoformat(),
        )
        return Response.json(
            incidents.silence_dict(result, self.clock.now()),
            201,
            {"Location": f"/silences/{result.id}"},
        )

    async def expire_silence(self, request: Request) -> Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        silence_id = request.path.removeprefix("/silences/")
        done = await self.pool.run(self.store.silence_log.expire, silence_id, self.clock.now())
        if not done:
            return Response.json({"error": f"no active silence {silence_id[:200]!r}"}, 404)
        return Response.json({"expired": silence_id})

    async def healthz(self, request: Request) -> Response:
        """Alive: the event loop answers and the processing stage still runs (a dead one
        would leave polls waiting on a full queue for ever: restart rather)."""
        if not self.pipeline.processing_alive():
            return Response(503, b"processing stage stopped\n")
        return Response(200, b"ok\n")

    async def readyz(self, request: Request) -> Response:
        config = self.config()
        health = self.pipeline.health
        ready = config is not None and not self.pipeline.stopping()
        body = {
            "ready": ready,
            "config": {"loaded": config is not None, "file": self.settings.config},
            "store": {"open": True, "path": self.settings.state},
            "sources": {name: h.as_dict() for name, h in sorted(health.items())},
            "degraded": any(h.status in ("error", "degraded") for h in health.values()),
        }
        return Response.json(body, 200 if ready else 503)
