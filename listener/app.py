"""The composition root: settings + config → components → pipeline, housekeeping, API.

This module only wires and handles signals; each concern lives in its own module:

- :mod:`listener.pipeline`: scheduling (APScheduler), supervision of tasks, polls with
  backoff and source health, the processing loop, delivery, graceful shutdown;
- :mod:`listener.housekeeping`: retention and outbox prunes, ``VACUUM``, the store size;
- :mod:`listener.api`: the REST routes on :mod:`listener.httpapi`'s small server;
- :mod:`listener.workers`: the threads and pools blocking work runs in.

Startup and SIGHUP reload go through the same :meth:`Daemon.apply` path: build the
config's collectors and sinks (:mod:`listener.components`), then
:meth:`~listener.pipeline.Pipeline.install` them. A reload that fails keeps the running
config.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Sequence

import structlog

from listener import heap
from listener.api import RestApi
from listener.clock import Clock, SystemClock
from listener.components import build_collectors, build_sinks
from listener.config.lint import load_with_warnings
from listener.config.schema import Config
from listener.config.secrets import config_secrets
from listener.console import Console
from listener.errors import ConfigError, ConfigProblem, ListenerError
from listener.housekeeping import Housekeeping
from listener.httpapi import HttpApi, parse_listen
from listener.log import REDACTOR, WRITE_ERRORS
from listener.metrics import Metrics
from listener.pipeline import Pipeline
from listener.processor import Processor
from listener.settings import Settings
from listener.sinks.base import SinkContext
from listener.slack_actions import SlackActions
from listener.store import Store, StoreSinkState
from listener.workers import Pool

log = structlog.get_logger("listener")


class Daemon:
    """``listener run``. Call :meth:`run`; it returns the process exit code.

    Holds what the wiring made: ``store``, ``processor``, ``pipeline``, ``housekeeping``,
    the HTTP ``api`` server (with :class:`~listener.api.RestApi` mounted) and ``config``,
    the config running now (None until the first one is applied).
    """

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.metrics = Metrics()
        self.config: Config | None = None
        self.store: Store | None = None
        self.processor: Processor | None = None
        self.pipeline: Pipeline | None = None
        self.housekeeping: Housekeeping | None = None
        self.api = HttpApi(self.metrics.registry)
        self.stop_event = asyncio.Event()
        self.bound: tuple[str, int] | None = None
        self._store_pool = Pool("store")
        self._api_pool = Pool("api", copy_context=False)
        self._reloading = asyncio.Lock()
        self._reloads = 0

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        unsubscribe = WRITE_ERRORS.subscribe(self.metrics.log_write_errors.inc)
        try:
            return await self._run()
        finally:
            unsubscribe()
            self._store_pool.shutdown()
            self._api_pool.shutdown()

    async def _run(self) -> int:
        # ConfigError → CLI prints, exit 2
        config, warnings = load_with_warnings(self.settings.config)
        REDACTOR.update([*config_secrets(config), self.settings.api_token])
        self.store = store = Store.open(self.settings.state)
        self.processor = Processor(config, store, self.metrics)
        self.pipeline = pipeline = Pipeline(
            self.settings,
            store,
            self.processor,
            self.metrics,
            self.clock,
            stop_event=self.stop_event,
            store_pool=self._store_pool,
        )
        self.housekeeping = Housekeeping(
            store,
            self.metrics,
            self.clock,
            retention=self.settings.mention_retention,
            vacuum_every=self.settings.vacuum_every,
            pool=self._store_pool,
            working=pipeline.working,
            stopping=pipeline.stopping,
        )
        rest = RestApi(
            self.settings, store, pipeline, self.clock, lambda: self.config, pool=self._api_pool
        )
        rest.mount(self.api)
        Console(
            rest,
            sources=lambda _: {n: h.as_dict() for n, h in pipeline.health.items()},
            refresh=self.settings.console_refresh,
        ).mount(self.api)
        SlackActions(rest).mount(self.api)
        host, port = parse_listen(self.settings.listen)
        try:
            self.bound = await self.api.start(host, port)
        except OSError as exc:
            store.close()
            raise ListenerError(
                f"cannot listen on {self.settings.listen}: {exc.strerror}"
            ) from None
        try:
            await self.apply(config, warnings)
        except ConfigError:
            await self.api.stop()
            store.close()
            raise
        with heap.settled():  # the config, models and state are loaded: they live on
            pipeline.start(self.housekeeping.run)
            loop = asyncio.get_running_loop()
            for sig, handler in (
                (signal.SIGTERM, self.request_stop),
                (signal.SIGINT, self.request_stop),
                (signal.SIGHUP, self.request_reload),
            ):
                loop.add_signal_handler(sig, handler)
            log.info(
                "started",
                listen=f"{self.bound[0]}:{self.bound[1]}",
                state=self.settings.state,
                config=self.settings.config,
                sources=sorted(pipeline.collectors),
                sinks=sorted(pipeline.sinks),
                rules=[r.name for r in config.rules],
            )
            await self.stop_event.wait()
            await self.shutdown()
        return 0

    def request_stop(self) -> None:
        if not self.stop_event.is_set():
            self.stop_event.set()  # first: nothing after this may keep the daemon running
            log.info("stopping")

    def request_reload(self) -> None:
        assert self.pipeline is not None
        self._reloads += 1  # each SIGHUP reloads (one after another): the last file wins
        self.pipeline.spawn(f"reload:{self._reloads}", self.reload)

    async def shutdown(self) -> None:
        """Stop the pipeline (in-flight polls and evaluations finish, what they brought is
        processed, the outbox flushed), then the API and the store: all within
        ``LISTENER_SHUTDOWN_TIMEOUT``."""
        deadline = time.monotonic() + self.settings.shutdown_timeout.total_seconds()
        if self.pipeline is not None:
            await self.pipeline.shutdown(deadline)
        await self.api.stop()
        if self.store is not None:
            pending = self.store.outbox.pending()
            self.store.close()
            log.info("stopped", outbox_pending=sum(pending.values()))

    # ------------------------------------------------------------------ config

    async def apply(self, config: Config, warnings: Sequence[ConfigProblem] = ()) -> None:
        """Build everything a config describes and run it (startup and reload)."""
        assert self.store is not None
        assert self.pipeline is not None
        collectors = build_collectors(config, self.settings.config)
        try:
            store = self.store
            sinks = build_sinks(
                config,
                self.settings.config,
                lambda name: SinkContext(StoreSinkState(store, name), self.clock),
            )
        except ConfigError:
            for collector in collectors.values():
                with contextlib.suppress(Exception):
                    collector.close()
            raise
        replacing = self.config is not None
        self.config = config  # what the processor runs from here on (install reconfigures it)
        await self.pipeline.install(config, collectors, sinks, replacing=replacing)
        self.metrics.config_last_reload.set(time.time())
        self.metrics.config_reload_ok.set(1)
        for warning in warnings:
            log.warning("config_warning", warning=str(warning))

    async def reload(self) -> None:
        """SIGHUP: load rules.yaml again; keep the running config when the new one is invalid.

        The file is parsed in a worker thread: polling and the HTTP API go on meanwhile."""
        async with self._reloading:
            try:
                await self._reload()
            except Exception as exc:  # a reload never takes the daemon down
                self._reload_rejected([], error=exc)

    async def _reload(self) -> None:
        try:
            config, warnings = await asyncio.to_thread(load_with_warnings, self.settings.config)
        except ConfigError as exc:
            self._reload_rejected(exc.problems)
            log.error("reload_kept_old_config", problems=len(exc.problems))
            return
        except Exception as exc:  # anything else reading or parsing it: rejected, not a crash
            self._reload_rejected([], error=exc)
            log.error("reload_kept_old_config", problems=0)
            return
        old = config_secrets(self.config) if self.config is not None else []
        # both sets while the new config is applied: either may still be running after
        REDACTOR.update([*old, *config_secrets(config), self.settings.api_token])
        try:
            await self.apply(config, warnings)
        except ConfigError as exc:  # a source or sink could not be built: keep the old config
            self._reload_rejected(exc.problems)
            return
        except Exception as exc:  # building a component failed: keep running what we can
            self._reload_rejected([], error=exc)
            return
        REDACTOR.update([*config_secrets(config), self.settings.api_token])
        assert self.pipeline is not None
        self.metrics.config_reloads.labels(outcome="ok").inc()
        log.info(
            "reloaded",
            sources=sorted(self.pipeline.collectors),
            sinks=sorted(self.pipeline.sinks),
            rules=[r.name for r in config.rules],
        )

    def _reload_rejected(
        self, problems: Sequence[ConfigProblem], error: Exception | None = None
    ) -> None:
        self.metrics.config_reload_ok.set(0)  # before the counter: a scrape sees both agree
        self.metrics.config_reloads.labels(outcome="error").inc()
        self.metrics.error("config", "invalid" if error is None else type(error).__name__)
        for problem in problems:
            log.error("reload_rejected", problem=str(problem))
        if error is not None:
            log.error("reload_failed", error_type=type(error).__name__, error=str(error))
