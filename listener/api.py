"""The daemon's REST API: the routes and their handlers, mounted on a
:class:`~listener.httpapi.HttpApi` (Starlette on uvicorn, which also serves ``/metrics``).

=======  ==========================  ==================================================
GET      /healthz                    alive: 503 once the processing loop has ended
GET      /readyz                     config loaded, store open, per-source health
GET      /incidents[?status=]        incident list
GET      /incidents/ID               one incident with its events
POST     /incidents/ID/ack           acknowledge (bearer token); evaluates at once
POST     /incidents/ID/notes         a note on its timeline (bearer token); 201
POST     /incidents/ID/assign        give it to someone (bearer token)
GET      /mentions[?filters]         the mention inbox, a page at a time (listener.inbox)
GET      /mentions.csv|.jsonl        every mention the filters select, as a file
GET      /silences                   silences with their state
POST     /silences                   add a silence (bearer token); 201 + Location
DELETE   /silences/ID                expire a silence (bearer token)
=======  ==========================  ==================================================

Bodies are validated by :mod:`listener.api_models`; a ``RequestError`` becomes its status
code, a bus or store that cannot be reached a 503, any other ``ListenerError`` a 400.
Store reads and writes run in the API's own pool, so a busy pipeline never makes a
request wait for a thread. Write endpoints are disabled (403) until
``LISTENER_API_TOKEN`` is set.

:class:`IncidentApi` is the incident and silence routes alone, on any store: the daemon's
state file (:class:`RestApi` adds its health) or distributed mode's shared database,
served by the delivery workers, whose acks and silences reach the evaluators first
(:class:`listener.incidents.Evaluators`).
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

import structlog

from listener import inbox, incidents
from listener.api_models import (
    AckRequest,
    AssignRequest,
    NoteRequest,
    SilenceRequest,
    check_incident_status,
    check_silence_scope,
    incident_limit,
    parse_body,
)
from listener.clock import Clock
from listener.config.schema import Config
from listener.errors import BusError, ListenerError, RequestError, StoreError
from listener.httpapi import HttpApi, Request, Response
from listener.incidents import Evaluators
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


class IncidentApi:
    """The incident and silence routes on ``store``. ``config`` returns the running
    config (None until one is loaded); ``evaluators``: distributed mode's, told of acks
    and silences before they are written; ``changed``: called (on the event loop) after
    an ack, for the daemon to announce it at once. ``store`` may be a function opening
    it on first use (a database that may be away when the worker starts)."""

    def __init__(
        self,
        token: str,
        store: Store | Callable[[], Store],
        clock: Clock,
        config: Callable[[], Config | None],
        *,
        pool: Pool | None = None,
        evaluators: Evaluators | None = None,
        changed: Callable[[], None] | None = None,
    ) -> None:
        self.token = token
        self._store = store
        self.clock = clock
        self.config = config
        self.pool = pool or Pool("api", copy_context=False)
        self.evaluators = evaluators
        self.changed = changed
        self._opening = threading.Lock()
        self._opens = not isinstance(store, Store)

    @property
    def store(self) -> Store:
        """The store (opened now when it was given as a function; StoreError if it
        cannot be, and the next request tries again)."""
        with self._opening:
            if not isinstance(self._store, Store):
                self._store = self._store()
            return self._store

    def close(self) -> None:
        """Close the store, when this API opened it (given as a function)."""
        with self._opening:
            if isinstance(self._store, Store) and self._opens:
                self._store.close()

    def mount(self, server: HttpApi) -> None:
        """Register the routes on ``server``."""
        server.route("GET", "/incidents", self.incidents)
        server.route("GET", "/incidents/", self.incident, prefix=True)
        server.route("POST", "/incidents/", self.incident_action, prefix=True)
        server.route("GET", "/mentions", self.mentions)
        server.route("GET", "/mentions.csv", self.mentions_csv)
        server.route("GET", "/mentions.jsonl", self.mentions_jsonl)
        server.route("GET", "/silences", self.silences)
        server.route("POST", "/silences", self.add_silence)
        server.route("DELETE", "/silences/", self.expire_silence, prefix=True)

    def _authorised(self, request: Request) -> Response | None:
        """None when the request carries the API token; else the error response."""
        if not self.token:
            return Response.json(
                {"error": "write endpoints are disabled: set LISTENER_API_TOKEN"}, 403
            )
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return Response.json(
                {"error": "missing or wrong bearer token"}, 401, {"WWW-Authenticate": "Bearer"}
            )
        return None

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Response | Any:
        """``fn(store, ...)`` in the pool; an error as its response."""

        def call() -> Any:
            return fn(self.store, *args, **kwargs)

        try:
            return await self.pool.run(call)
        except RequestError as exc:
            return Response.error(exc)
        except (StoreError, BusError) as exc:  # away for now: nothing was changed
            return Response.json({"error": str(exc)}, 503, {"Retry-After": "5"})
        except ListenerError as exc:
            return Response.json({"error": str(exc)}, 400)

    async def incidents(self, request: Request) -> Response:
        query = dict(parse_qsl(request.query))
        status = query.get("status") or None
        check_incident_status(status)
        limit = incident_limit(query.get("limit"))
        result = await self._call(incidents.listing, status, limit)
        return result if isinstance(result, Response) else Response.json(result)

    async def incident(self, request: Request) -> Response:
        wanted = request.path.removeprefix("/incidents/")
        result = await self._call(incidents.detail, wanted, self.config(), explain=True)
        return result if isinstance(result, Response) else Response.json(result)

    async def incident_action(self, request: Request) -> Response:
        """``POST /incidents/ID/ack``, ``/notes`` and ``/assign``."""
        incident_id, _, action = request.path.removeprefix("/incidents/").partition("/")
        handler = {"ack": self.ack, "notes": self.note, "assign": self.assign}.get(action)
        if handler is None:
            return Response.json(
                {"error": "not found: POST /incidents/ID/ack, /notes or /assign"}, 404
            )
        if (denied := self._authorised(request)) is not None:
            return denied
        return await handler(request, incident_id)

    async def note(self, request: Request, incident_id: str) -> Response:
        wanted = parse_body(request.body, NoteRequest)
        result = await self._call(
            incidents.add_note, incident_id, wanted.by, wanted.text, self.clock.now()
        )
        if isinstance(result, Response):
            return result
        log.info("incident_note", incident_id=result, by=wanted.by)
        return Response.json({"noted": result}, 201)

    async def assign(self, request: Request, incident_id: str) -> Response:
        wanted = parse_body(request.body, AssignRequest)
        result = await self._call(
            incidents.assign, incident_id, wanted.to, wanted.by, self.clock.now()
        )
        if isinstance(result, Response):
            return result
        log.info("incident_assigned", incident_id=result, to=wanted.to, by=wanted.by)
        return Response.json({"assigned": result, "to": wanted.to})

    async def ack(self, request: Request, incident_id: str) -> Response:
        ack = parse_body(request.body, AckRequest)
        result = await self._call(
            incidents.acknowledge,
            incident_id,
            ack.by,
            self.clock.now(),
            ack.note,
            self.evaluators,
        )
        if isinstance(result, Response):
            return result
        log.info("acknowledged", incident_id=result, by=ack.by)
        if self.changed is not None:
            self.changed()  # announce it now
        return Response.json({"acknowledged": result})

    async def mentions(self, request: Request) -> Response:
        query = inbox.parse_query(dict(parse_qsl(request.query)), self.clock.now())
        result = await self._call(inbox.search, query)
        if isinstance(result, Response):
            return result
        return Response.json([row.as_dict() for row in result])

    async def mentions_csv(self, request: Request) -> Response:
        return await self._export(request, inbox.to_csv, "text/csv; charset=utf-8", "csv")

    async def mentions_jsonl(self, request: Request) -> Response:
        return await self._export(request, inbox.to_jsonl, "application/x-ndjson", "jsonl")

    async def _export(
        self, request: Request, render: Callable[[Any], str], kind: str, suffix: str
    ) -> Response:
        """Every mention the filters select (up to ``inbox.EXPORT_MAX``), as a file; read
        and written in the API's pool, never on the event loop."""
        now = self.clock.now()
        query = inbox.parse_query(dict(parse_qsl(request.query)), now, export=True)
        result = await self._call(lambda store: render(inbox.search(store, query)))
        if isinstance(result, Response):
            return result
        name = f"mentions-{now:%Y%m%dT%H%M%SZ}.{suffix}"
        return Response(
            200,
            result.encode(),
            kind,
            {"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def silences(self, request: Request) -> Response:
        now = self.clock.now()
        found = await self._call(lambda store: store.silence_log.select())
        if isinstance(found, Response):
            return found
        return Response.json([incidents.silence_dict(s, now) for s in found])

    async def add_silence(self, request: Request) -> Response:
        if (denied := self._authorised(request)) is not None:
            return denied
        wanted = parse_body(request.body, SilenceRequest)
        config = self.config()
        if config is None:
            return Response.json({"error": "not ready: the config is not loaded yet"}, 503)
        check_silence_scope(config, wanted.brand, wanted.rule, wanted.level)
        result = await self._call(
            incidents.add_silence,
            now=self.clock.now(),
            duration=wanted.duration,
            by=wanted.by,
            comment=wanted.comment,
            brand=wanted.brand,
            rule=wanted.rule,
            level=wanted.level,
            evaluators=self.evaluators,
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
        result = await self._call(
            incidents.expire_silence, silence_id, self.clock.now(), self.evaluators
        )
        if isinstance(result, Response):
            return result
        return Response.json({"expired": silence_id})


class RestApi(IncidentApi):
    """The daemon's API: :class:`IncidentApi` on its state file, and its health."""

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
        super().__init__(
            settings.api_token, store, clock, config, pool=pool, changed=self._evaluate_now
        )
        self.settings = settings
        self.pipeline = pipeline
        self._tasks: set[asyncio.Task[None]] = set()

    def _evaluate_now(self) -> None:
        task = asyncio.get_running_loop().create_task(self.pipeline.evaluate())
        self._tasks.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    def mount(self, server: HttpApi) -> None:
        """Register every route on ``server``."""
        server.route("GET", "/healthz", self.healthz)
        server.route("GET", "/readyz", self.readyz)
        super().mount(server)

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
