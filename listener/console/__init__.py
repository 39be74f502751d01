"""The web console: pages for the people who answer the crisis, served by the daemon (and
by the delivery workers in distributed mode) next to the JSON API, on the same port.

Pages are rendered on the server (Jinja2, autoescaped) with one stylesheet of our own
and no script or font from elsewhere; every page works at 390 px wide. A path the JSON
API also serves (``/incidents/ID``, ``/silences``) is a page for a browser (``Accept:
text/html``) and JSON for anything else.

* ``/``: incidents, open first, then recent; filters by brand, rule, level and status.
* ``/incidents/ID``: what is happening in one sentence; acknowledge, assign, add a note;
  then the live post-incident report (:mod:`listener.report`): its chart
  (``/incidents/ID/chart.png``, drawn in a worker thread of the console's own), the
  timeline, the levels, alerts and notes, the top stories, authors, categories and
  sources.
* ``/silences``: active and ended silences; add one (checked like ``POST /silences``; one
  that mutes everything must be confirmed), end one.
* ``/sources``: each source's health: the daemon's pollers', or in distributed mode what
  the collectors' last source-health checks wrote to the shared state.
* ``/login``, ``/logout``.

**Live pages.** ``/`` and ``/incidents/ID`` keep themselves up to date without a reload:
``/console.js`` (served here, the only script; no inline script, nothing from elsewhere)
fetches the page again every ``refresh`` seconds and swaps the regions marked
``data-live``, which hold no form, so what someone is typing stays. Without JavaScript
the pages work the same, with a Refresh link.

**Access.** With ``LISTENER_API_TOKEN`` set, every page needs a session: the token, given
once on ``/login``, becomes a signed cookie (:mod:`listener.console.auth`), and every
form carries a CSRF token. Without a token the console is read-only, and only for
clients on the loopback address.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape

from listener import inbox, incidents
from listener.api_models import INCIDENT_STATUSES, check_silence_scope
from listener.config.duration import parse_duration
from listener.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_HOURS,
    Session,
    Sessions,
    cookie_header,
    form_fields,
    new_nonce,
    same,
)
from listener.digests import Settled, latest_fire, next_fire, settled_of
from listener.digests import gather as gather_digest
from listener.errors import BusError, ListenerError, RequestError, StoreError
from listener.httpapi import HttpApi, Request, Response
from listener.matching.query import QuerySyntaxError
from listener.report import gather, render_chart
from listener.report.chart import PIXELS, REPORT_EXTRA_HINT, ReportExtraMissing, available
from listener.report.render import View, build_view, span
from listener.sinks.text import (
    incident_line,
    incidents_line,
    listed_incidents,
    share_line,
    story_line,
    volume_line,
)
from listener.workers import Pool

if TYPE_CHECKING:
    from listener.api import IncidentApi

log = structlog.get_logger("listener.console")

HERE = Path(__file__).parent
CSS = (HERE / "static" / "console.css").read_bytes()
JS = (HERE / "static" / "console.js").read_bytes()
REFRESH_SECONDS = 30
CHART_SLOT = timedelta(seconds=30)
"""A chart is drawn as of ``now`` floored to this: the viewers of an incident within one
slot share one drawing (:data:`CHARTS_KEPT` kept), unless something on it changed."""
CHARTS_KEPT = 32
"""Seconds between the live updates of ``/`` and ``/incidents/ID`` (``refresh`` of
:class:`Console`, ``LISTENER_CONSOLE_REFRESH``, overrides it)."""
REPORT_FACTS = ("Duration", "Alerts", "First delivery", "Spike → first alert", "Mentions")
"""The lines of the report's summary the incident page adds to its own facts."""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["age"] = _age
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["link"] = _link
    return env


class Console:
    """The console's pages on ``api``'s store, clock and config; ``sources`` reads the
    sources' health (each as :meth:`SourceHealth.as_dict`; given the store, and run in
    the API's pool): the daemon's pollers, or the shared state in distributed mode.
    ``charts`` draws the incidents' charts (matplotlib: a quarter of a second of CPU or
    more each), one at a time by default, apart from the API's pool so an ack never
    waits on a chart.
    ``refresh``: seconds between the live pages' updates (None: :data:`REFRESH_SECONDS`)."""

    def __init__(
        self,
        api: IncidentApi,
        sources: Callable[[Any], Mapping[str, Mapping[str, Any]]] | None = None,
        *,
        charts: Pool | None = None,
        refresh: int | None = None,
    ) -> None:
        self.api = api
        self.sources = sources
        self.charts = charts or Pool("console-chart", 1, copy_context=False)
        self._drawn: OrderedDict[str, bytes] = OrderedDict()
        self.refresh = REFRESH_SECONDS if refresh is None else refresh
        self.sessions = Sessions(api.token)
        self.env = _environment()

    def mount(self, server: HttpApi) -> None:
        server.page("/", self.incidents_page)
        server.page("/incidents/", self.incident_page, prefix=True)
        server.route("GET", "/incidents/{id}/chart.png", self.chart)
        server.page("/silences", self.silences_page)
        server.page("/sources", self.sources_page)
        server.page("/digests", self.digests_page)
        server.page("/digests/", self.digest_page, prefix=True)
        server.page("/mentions", self.mentions_page)
        server.page("/preview", self.preview_page)
        server.page("/login", self.login_page)
        server.route("POST", "/login", self.login)
        server.route("POST", "/logout", self.logout)
        server.route("POST", "/console/ack", self.ack)
        server.route("POST", "/console/note", self.note)
        server.route("POST", "/console/assign", self.assign)
        server.route("POST", "/console/silences", self.add_silence)
        server.route("POST", "/console/silences/expire", self.expire_silence)
        server.route("GET", "/console.css", self.css)
        server.route("GET", "/console.js", self.js)

    # ------------------------------------------------------------------ access

    def _reader(self, request: Request) -> Session | Response | None:
        """Who may read: their session (a token is set), None (no token, a loopback
        client: read-only), or the response that sends them away."""
        if self.api.token:
            session = self.sessions.read(request)
            if session is None:
                return _redirect("/login?next=" + quote(_here(request), safe=""))
            return session
        if not _loopback(request.client):
            return self._page(
                request,
                "message.html",
                None,
                403,
                title="Console closed",
                text="Set LISTENER_API_TOKEN to open the console to other machines; without "
                "it, it answers only on this machine (127.0.0.1), read-only.",
            )
        return None

    def _writer(self, request: Request) -> tuple[Session, dict[str, str]] | Response:
        """The session and form of a POST that may change something: a valid session and
        the form's CSRF token, or the response that refuses it."""
        session = self.sessions.read(request) if self.api.token else None
        if session is None:
            return self._page(
                request,
                "message.html",
                None,
                403,
                title="Not signed in",
                text="Sign in to change anything."
                if self.api.token
                else "The console is read-only: set LISTENER_API_TOKEN.",
            )
        form = form_fields(request)
        if not same(form.get("csrf", ""), session.csrf):
            return self._page(
                request,
                "message.html",
                session,
                403,
                title="Form expired",
                text="This form is from an old page or another site. Go back, reload, and "
                "try again.",
            )
        return session, form

    # ------------------------------------------------------------------ pages

    async def login_page(self, request: Request, error: str = "") -> Response:
        nonce = self.sessions.login_nonce(request) or new_nonce()
        nxt = dict(parse_qsl(request.query)).get("next", "/")
        response = self._page(
            request,
            "login.html",
            None,
            401 if error else 200,
            csrf=self.sessions.csrf_for(nonce),
            next=_safe_next(nxt),
            error=error,
            enabled=bool(self.api.token),
        )
        response.headers["Set-Cookie"] = cookie_header(
            LOGIN_COOKIE, nonce, secure=request.secure, max_age=3600
        )
        return response

    async def login(self, request: Request) -> Response:
        form = form_fields(request)
        nonce = self.sessions.login_nonce(request)
        if nonce is None or not same(form.get("csrf", ""), self.sessions.csrf_for(nonce)):
            return await self.login_page(request, "The form expired: try again.")
        name = " ".join(form.get("name", "").split())[:80]
        if not name:
            return await self.login_page(request, "Say who you are: it is shown with your acks.")
        if not self.sessions.token_matches(form.get("token", "")):
            log.warning("console_login_refused", client=request.client)
            return await self.login_page(request, "That is not the API token.")
        value, _ = self.sessions.new(name)
        log.info("console_login", by=name, client=request.client)
        response = _redirect(_safe_next(form.get("next", "/")))
        response.headers["Set-Cookie"] = cookie_header(
            SESSION_COOKIE, value, secure=request.secure, max_age=SESSION_HOURS * 3600
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = _redirect("/login")
        response.headers["Set-Cookie"] = cookie_header(
            SESSION_COOKIE, "", secure=request.secure, max_age=0
        )
        return response

    async def incidents_page(self, request: Request) -> Response:
        who = self._reader(request)
        if isinstance(who, Response):
            return who
        query = dict(parse_qsl(request.query))
        status = query.get("status") or None
        if status not in (None, *INCIDENT_STATUSES):
            status = None
        wanted = {k: query.get(k) or None for k in ("brand", "rule", "level")}

        def read(store: Any) -> list[dict[str, Any]]:
            rows = incidents.listing(store, status, 200)
            rows = [r for r in rows if all(not v or r[k] == v for k, v in wanted.items())]
            for row in rows:
                events = store.incident_log.events(row["id"])
                row["why"] = str(events[-1].facts[0]) if events and events[-1].facts else ""
            # open first; each part stays newest first, as listed
            return sorted(rows, key=lambda r: r["status"] != "open")

        found = await self._read(request, who, read)
        if isinstance(found, Response):
            return found
        config = self.api.config()
        return self._page(
            request,
            "incidents.html",
            who,
            rows=found,
            filters={"status": status, **wanted},
            brands=config.brand_names() if config else [],
            rules=[r.name for r in config.rules] if config else [],
            levels=sorted({lv for r in config.rules for lv in r.levels}) if config else [],
            statuses=INCIDENT_STATUSES,
            refresh=self.refresh,
            now=self.api.clock.now(),
        )

    async def incident_page(self, request: Request, notice: str = "") -> Response:
        who = self._reader(request)
        if isinstance(who, Response):
            return who
        wanted = request.path.removeprefix("/incidents/")
        now = self.api.clock.now()
        config = self.api.config()

        def read(store: Any) -> tuple[dict[str, Any], View, bool]:
            found = incidents.detail(store, wanted)
            report = build_view(gather(store, found["id"], now, config))
            return found, report, available()

        got = await self._read(request, who, read)
        if isinstance(got, Response):
            return got
        found, report, drawable = got
        entries = [{"source": "engine", **e} for e in found["timeline"]]
        entries += [{"source": "person", **n} for n in found.get("notes", [])]
        entries.sort(key=lambda e: e["at"])
        opened = datetime.fromisoformat(found["opened_at"])
        acked = found.get("acknowledged_at")
        return self._page(
            request,
            "incident.html",
            who,
            incident=found,
            entries=entries,
            sentence=summary_sentence(found, now),
            notice=notice,
            now=now,
            report=report,
            facts=[(k, v) for k, v in report.summary if k in REPORT_FACTS],
            time_to_ack=span(datetime.fromisoformat(acked) - opened) if acked else "",
            chart=drawable,
            chart_size=PIXELS,
            install=REPORT_EXTRA_HINT.rpartition(": ")[2],
            refresh=self.refresh,
        )

    async def chart(self, request: Request) -> Response:
        """``/incidents/ID/chart.png``: the report's chart as it stands (as of the current
        :data:`CHART_SLOT`), for whoever may read the incident's page; read in the API's
        pool, drawn in ``charts`` unless the same data was drawn lately."""
        who = self._reader(request)
        if isinstance(who, Response):
            return who
        wanted = request.path.removeprefix("/incidents/").removesuffix("/chart.png")
        clock = self.api.clock.now()
        now = clock - (clock - datetime.min.replace(tzinfo=clock.tzinfo)) % CHART_SLOT
        config = self.api.config()
        data = await self._read(
            request,
            who,
            lambda store: gather(
                store, incidents.find(store, wanted).id, now, config, explain=False
            ),
        )
        if isinstance(data, Response):
            return data
        key = hashlib.sha256(repr(data).encode()).hexdigest()  # what the chart is drawn from
        png = self._drawn.get(key)
        if png is None:
            try:
                png = await self.charts.run(render_chart, data)
            except ReportExtraMissing as exc:
                return Response(501, str(exc).encode(), headers={"Cache-Control": "no-store"})
            self._drawn[key] = png
            while len(self._drawn) > CHARTS_KEPT:
                self._drawn.popitem(last=False)
        return Response(
            200,
            png,
            "image/png",
            {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    async def silences_page(self, request: Request, error: str = "") -> Response:
        who = self._reader(request)
        if isinstance(who, Response):
            return who
        now = self.api.clock.now()
        found = await self._read(
            request,
            who,
            lambda store: [incidents.silence_dict(s, now) for s in store.silence_log.select()],
        )
        if isinstance(found, Response):
            return found
        found.sort(key=lambda s: (not s["active"], s["ends_at"]))
        config = self.api.config()
        return self._page(
            request,
            "silences.html",
            who,
            400 if error else 200,
            silences=found,
            error=error,
            brands=[*config.brand_names(), *config.sources] if config else [],
            rules=[r.name for r in config.rules] if config else [],
        )

    async def mentions_page(self, request: Request) -> Response:
        who = self._reader(request)
        if isinstance(who, Response):
            return who
        params = {k: v for k, v in parse_qsl(request.query) if v}
        config = self.api.config()
        choices: dict[str, Any] = {
            "brands": config.brand_names() if config else [],
            "sources": sorted(config.sources) if config else [],
            "sentiments": inbox.SENTIMENTS,
        }
        try:
            query = inbox.parse_query(params, self.api.clock.now())
        except RequestError as exc:
            return self._page(
                request,
                "mentions.html",
                who,
                400,
                rows=[],
                error=str(exc),
                params=params,
                **choices,
            )
        rows = await self._read(request, who, lambda store: inbox.search(store, query))
        if isinstance(rows, Response):
            return rows
        filters = {k: v for k, v in params.items() if k in inbox.FILTERS}
        return self._page(
            request,
            "mentions.html",
            who,
            rows=[r.as_dict() for r in rows],
            params=params,
            error="",
            query=urlencode(filters),
            prev=max(0, query.offset - query.limit) if query.offset else None,
            next=query.offset + query.limit if len(rows) == query.limit else None,
            limit=query.limit,
            **choices,
        )

    async def preview_page(self, request: Request) -> Response:
        who = self._reader(request)
        if isinstance(who, Response):
            return who
        params = dict(parse_qsl(request.query))
        text = params.get("query", "").strip()
        days = params.get("days", "7")
        config = self.api.config()
        brands = {b.name: b for b in config.brands} if config else {}
        context: dict[str, Any] = {
            "text": text,
            "days": days,
            "brand": params.get("brand", ""),
            "brands": list(brands),
            "result": None,
            "error": "",
            "pointer": "",
        }
        if not text:
            return self._page(request, "preview.html", who, **context)
        if not days.isdigit() or not 1 <= int(days) <= 30:
            context["error"] = "Days: a whole number from 1 to 30."
            return self._page(request, "preview.html", who, 400, **context)
        end = self.api.clock.now()
        start = end - timedelta(days=int(days))
        types = {n: c.type for n, c in config.sources.items()} if config else {}
        chosen = brands.get(context["brand"])

        def run(store: Any) -> inbox.Preview:
            return inbox.preview(
                store, text, start=start, end=end, brand=chosen, source_types=types
            )

        try:
            result = await self._read(request, who, run)
        except QuerySyntaxError as exc:
            context["error"] = exc.detail + (f" ({exc.hint})" if exc.hint else "")
            context["pointer"] = exc.pointer()
            return self._page(request, "preview.html", who, 400, **context)
        if isinstance(result, Response):
            return result
        context["result"] = result
        context["peak"] = max([n for _, n in result.per_day] + [1])
        return self._page(request, "preview.html", who, **context)

    async def sources_page(self, request: Request) -> Response:
        who = self._reader(request)
        if isinstance(who, Response):
            return who
        read = self.sources
        if read is None:
            return self._page(request, "sources.html", who, sources={}, here=False)
        health = await self._read(request, who, read)
        if isinstance(health, Response):
            return health
        rows = dict(sorted(health.items()))
        return self._page(request, "sources.html", who, sources=rows, here=True)

    async def digests_page(self, request: Request) -> Response:
        """``/digests``: each scheduled digest: when it goes, to whom, what each receiver
        last got, and when the next one is due."""
        who = self._reader(request)
        if isinstance(who, Response):
            return who
        config = self.api.config()
        wanted = config.digests if config is not None else {}
        now = self.api.clock.now()

        def read(store: Any) -> dict[str, dict[str, Settled | None]]:
            return {
                name: {sink: settled_of(store, name, sink) for sink in cfg.route}
                for name, cfg in wanted.items()
            }

        settled = await self._read(request, who, read)
        if isinstance(settled, Response):
            return settled
        rows = [
            {
                "name": name,
                "schedule": cfg.describe(),
                "covers": "the day before" if cfg.every == "day" else "the week before",
                "brands": ", ".join(cfg.brands) if cfg.brands else "every brand",
                "next": next_fire(cfg, now),
                "sinks": [(sink, settled[name][sink]) for sink in cfg.route],
            }
            for name, cfg in sorted(wanted.items())
        ]
        return self._page(request, "digests.html", who, digests=rows, loaded=config is not None)

    async def digest_page(self, request: Request) -> Response:
        """``/digests/NAME``: the digest as it was sent at its last fire time (or would
        have been), from the state as it is now."""
        who = self._reader(request)
        if isinstance(who, Response):
            return who
        name = unquote(request.path.removeprefix("/digests/"))
        config = self.api.config()
        cfg = config.digests.get(name) if config is not None else None
        if config is None or cfg is None:
            known = ", ".join(sorted(config.digests)) if config is not None else ""
            text = f"There is no digest named {name!r}" + (
                f" (digests: {known})." if known else "."
            )
            return self._page(request, "message.html", who, 404, title="No such digest", text=text)
        now = self.api.clock.now()
        fire = latest_fire(cfg, now)
        digest = None
        if fire is not None:
            brands = config.brand_names()
            digest = await self._read(
                request, who, lambda store: gather_digest(store, name, cfg, brands, fire)
            )
            if isinstance(digest, Response):
                return digest
        return self._page(
            request,
            "digest.html",
            who,
            name=name,
            schedule=cfg.describe(),
            digest=digest,
            next=next_fire(cfg, now),
            lines={
                "volume": volume_line,
                "share": share_line,
                "incidents": incidents_line,
                "incident": incident_line,
                "listed": listed_incidents,
                "story": story_line,
            },
        )

    async def css(self, request: Request) -> Response:
        return _asset(CSS, "text/css; charset=utf-8")

    async def js(self, request: Request) -> Response:
        return _asset(JS, "text/javascript; charset=utf-8")

    # ------------------------------------------------------------------ actions

    async def ack(self, request: Request) -> Response:
        allowed = self._writer(request)
        if isinstance(allowed, Response):
            return allowed
        session, form = allowed
        incident_id = form.get("incident", "")
        note = form.get("note", "")[:2000]
        done = await self._write(
            request,
            session,
            lambda store: incidents.acknowledge(
                store, incident_id, session.name, self.api.clock.now(), note, self.api.evaluators
            ),
        )
        if isinstance(done, str):
            log.info("acknowledged", incident_id=done, by=session.name, via="console")
            if self.api.changed is not None:
                self.api.changed()
        return await self._after(request, incident_id, done)

    async def note(self, request: Request) -> Response:
        return await self._on_incident(
            request,
            lambda store, session, form, now: incidents.add_note(
                store, form.get("incident", ""), session.name, form.get("text", ""), now
            ),
        )

    async def assign(self, request: Request) -> Response:
        return await self._on_incident(
            request,
            lambda store, session, form, now: incidents.assign(
                store, form.get("incident", ""), form.get("to", ""), session.name, now
            ),
        )

    async def _on_incident(
        self, request: Request, act: Callable[[Any, Session, dict[str, str], datetime], str]
    ) -> Response:
        """A form's change to the incident it names, by whoever is signed in."""
        allowed = self._writer(request)
        if isinstance(allowed, Response):
            return allowed
        session, form = allowed
        now = self.api.clock.now()
        done = await self._write(request, session, lambda store: act(store, session, form, now))
        return await self._after(request, form.get("incident", ""), done)

    async def _after(self, request: Request, incident_id: str, done: Any) -> Response:
        """Back to the incident's page, or that page with what was wrong."""
        if isinstance(done, Response):
            return done
        if isinstance(done, RequestError):
            page = _as_get(request, f"/incidents/{incident_id}")
            return await self.incident_page(page, notice=str(done))
        return _redirect(f"/incidents/{quote(str(done), safe='')}")

    async def add_silence(self, request: Request) -> Response:
        allowed = self._writer(request)
        if isinstance(allowed, Response):
            return allowed
        session, form = allowed
        brand, rule, level = (form.get(k) or None for k in ("brand", "rule", "level"))
        comment = form.get("comment", "").strip()[:2000]
        back = _as_get(request, "/silences")
        try:
            duration = parse_duration(form.get("for", ""))
        except (ValueError, ListenerError) as exc:
            return await self.silences_page(back, f"How long: {exc}")
        if duration <= timedelta(0) or duration > timedelta(days=30):
            return await self.silences_page(back, "How long: from over zero to 30 days.")
        if not comment:
            return await self.silences_page(back, "Say why: it is shown with every muted alert.")
        if not (brand or rule or level) and form.get("everything") != "yes":
            return await self.silences_page(
                back,
                "This silence matches every alert. Tick “mute everything” to confirm it.",
            )
        config = self.api.config()
        if config is None:
            return await self.silences_page(back, "Not ready: the rules are not loaded yet.")
        try:
            check_silence_scope(config, brand, rule, level)
        except RequestError as exc:
            return await self.silences_page(back, str(exc))
        done = await self._write(
            request,
            session,
            lambda store: incidents.add_silence(
                store,
                now=self.api.clock.now(),
                duration=duration,
                by=session.name,
                comment=comment,
                brand=brand,
                rule=rule,
                level=level,
                evaluators=self.api.evaluators,
            ),
        )
        if isinstance(done, Response):
            return done
        if isinstance(done, RequestError):
            return await self.silences_page(back, str(done))
        log.info("silenced", silence_id=done.id, by=session.name, via="console")
        return _redirect("/silences")

    async def expire_silence(self, request: Request) -> Response:
        allowed = self._writer(request)
        if isinstance(allowed, Response):
            return allowed
        session, form = allowed
        silence_id = form.get("silence", "")
        done = await self._write(
            request,
            session,
            lambda store: incidents.expire_silence(
                store, silence_id, self.api.clock.now(), self.api.evaluators
            ),
        )
        if isinstance(done, Response):
            return done
        if isinstance(done, RequestError):
            return await self.silences_page(_as_get(request, "/silences"), str(done))
        return _redirect("/silences")

    # ------------------------------------------------------------------ plumbing

    async def _read(self, request: Request, who: Session | None, fn: Callable[[Any], Any]) -> Any:
        """``fn(store)`` in the API's pool: its result, or the page that says why not."""
        try:
            return await self.api.pool.run(lambda: fn(self.api.store))
        except RequestError as exc:
            return self._page(
                request, "message.html", who, exc.status, title="Cannot show this", text=str(exc)
            )
        except (StoreError, BusError) as exc:
            return self._unavailable(request, who, exc)

    async def _write(self, request: Request, who: Session, fn: Callable[[Any], Any]) -> Any:
        """``fn(store)`` in the API's pool: its result, a RequestError to show on the form,
        or the page that says the state is away."""
        try:
            return await self.api.pool.run(lambda: fn(self.api.store))
        except RequestError as exc:
            return exc
        except (StoreError, BusError) as exc:
            return self._unavailable(request, who, exc)

    def _unavailable(self, request: Request, who: Session | None, exc: Exception) -> Response:
        response = self._page(
            request,
            "message.html",
            who,
            503,
            title="Not available right now",
            text=f"{exc}. Nothing was changed; try again in a few seconds.",
        )
        response.headers["Retry-After"] = "5"
        return response

    def _page(
        self,
        request: Request,
        template: str,
        who: Session | None,
        status: int = 200,
        **context: Any,
    ) -> Response:
        body = self.env.get_template(template).render(
            who=who,
            path=request.path,
            this_page=_here(request),
            writable=who is not None,
            csrf=who.csrf if who is not None else context.pop("csrf", ""),
            **context,
        )
        return Response(
            status,
            body.encode(),
            "text/html; charset=utf-8",
            {
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; "
                "form-action 'self'; base-uri 'none'",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )


def summary_sentence(incident: Mapping[str, Any], now: datetime) -> str:
    """:func:`listener.incidents.sentence` of an incident's detail (``incidents.detail``)."""
    facts = [f for e in incident.get("timeline") or [] for f in e.get("facts", [])]
    opened = datetime.fromisoformat(incident["opened_at"])
    end = datetime.fromisoformat(incident["resolved_at"]) if incident.get("resolved_at") else now
    return incidents.sentence(
        brand=incident["brand"],
        rule=incident["rule"],
        level=incident["level"],
        status=incident["status"],
        lasted=end - opened,
        what=facts[0] if facts else None,
        acknowledged_by=incident.get("acknowledged_by"),
    )


def _asset(body: bytes, content_type: str) -> Response:
    """A file of the console's own (its stylesheet, its script)."""
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(200, body, content_type, headers)


def _redirect(to: str) -> Response:
    return Response(303, b"", "text/plain; charset=utf-8", {"Location": to})


def _here(request: Request) -> str:
    return request.path + (f"?{request.query}" if request.query else "")


def _safe_next(target: str) -> str:
    """Where to go after signing in: a path of this site only."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _as_get(request: Request, path: str) -> Request:
    return replace(request, method="GET", path=path, query="", body=b"")


def _loopback(client: str | None) -> bool:
    try:
        return client is not None and ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False


def _link(url: object) -> str | None:
    """A source's URL when it is an http(s) one (a ``javascript:`` link renders inert)."""
    text = str(url or "")
    return text if text.lower().startswith(("https://", "http://")) else None


def _when(text: str | None) -> str:
    if not text:
        return "-"
    return text[:16].replace("T", " ") + " UTC"


def _age(text: str | None, now: datetime) -> str:
    if not text:
        return "-"
    seconds = int((now - datetime.fromisoformat(text)).total_seconds())
    return incidents.human_span(max(0, seconds))


__all__ = ["Console", "summary_sentence"]
