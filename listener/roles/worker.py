"""What every worker of distributed mode does around its role's application.

:class:`RoleWorker` holds the worker's bus, rules file, state folder, metrics and clock;
:meth:`RoleWorker.run` serves ``/healthz``, ``/readyz`` and ``/metrics``, watches its
group's lag, re-reads rules.yaml on SIGHUP (:meth:`RoleWorker.reloaded`) and runs the
role's application under :func:`~listener.roles.supervise.supervise` until SIGTERM or
SIGINT. A role gives :meth:`RoleWorker.application` (its Quix Streams dataframe) and the
topics it reads.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from listener.bus import BUFFER, Bus, TopicName, quix_app
from listener.clock import Clock, SystemClock
from listener.config.load import load_config, load_config_without_secrets
from listener.config.schema import Config
from listener.config.secrets import config_secrets
from listener.errors import ConfigError, ConfigProblem, ListenerError
from listener.httpapi import HttpApi, parse_listen
from listener.log import REDACTOR
from listener.metrics import Metrics
from listener.roles.health import HealthServer, Readiness
from listener.roles.supervise import supervise
from listener.roles.watch import LagWatch, Watch
from listener.store import is_database_url

if TYPE_CHECKING:
    from quixstreams import Application

log = structlog.get_logger("listener")

STALLED = 30.0
"""Seconds a worker that lost its partitions waits to be given some before it restarts
its application."""


def load_rules(path: str, *, secrets: bool = False) -> Config:
    """rules.yaml for a worker. One that polls no source and delivers to no sink reads it
    without secrets: they (``${VARIABLE}``s) need not be set where it runs, and are not
    held there. A delivery worker reads them (its sinks need them)."""
    if secrets:
        return load_config(path)
    config, _ = load_config_without_secrets(path)
    return config


def shared_state(database: str, what: str) -> str:
    """``database`` (``LISTENER_STATE``), which must name the shared state in PostgreSQL
    for a role that keeps ``what`` there; a ConfigError saying so otherwise (exit 2)."""
    if not is_database_url(database):
        raise ConfigError(
            [
                ConfigProblem(
                    "environment",
                    None,
                    "LISTENER_STATE",
                    f"{what}: kept in the shared state in PostgreSQL, not in {database!r}",
                    "set LISTENER_STATE (or --state) to postgresql://USER@HOST/DB "
                    "(docs/scaling.md)",
                )
            ]
        )
    return database


class RoleWorker:
    """The common part of a role's worker (see the module)."""

    role: ClassVar[str]
    inputs: ClassVar[tuple[TopicName, ...]]
    """The topics its consumer group reads (their lag is ``listener_bus_lag``)."""
    buffer: int = BUFFER
    """Messages taken from the broker per partition at a time (:data:`listener.bus.BUFFER`)."""
    secrets: ClassVar[bool] = False
    """Whether it reads rules.yaml with the secrets (:func:`load_rules`)."""

    def __init__(
        self,
        bus: Bus,
        config_path: str,
        *,
        state_dir: str,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.bus = bus
        self.config_path = config_path
        self.state_dir = state_dir
        self.metrics = metrics or Metrics()
        self.clock: Clock = clock or SystemClock()
        self.config = load_rules(config_path, secrets=self.secrets)  # ConfigError: exit 2
        self._hide_secrets(self.config)
        self._reload = threading.Event()
        self.bound: tuple[str, int] = ("", 0)
        """Where ``/healthz``, ``/readyz`` and ``/metrics`` are served (once running)."""
        self._app: Application | None = None
        self._watch: Watch | None = None
        self._restart = threading.Event()
        self.setup()

    def hidden(self) -> list[str]:
        """Secrets of the role's own (not in rules.yaml) that no log line may show."""
        return []

    def _hide_secrets(self, config: Config) -> None:
        """What a worker that reads the secrets must never log: they are redacted."""
        if self.secrets:
            REDACTOR.update([*config_secrets(config), *self.hidden()])

    def setup(self) -> None:
        """A role's own start, once the rules are read (``self.config``)."""

    def groups(self) -> list[tuple[str, tuple[TopicName, ...]]]:
        """The consumer groups whose lag this worker reports (``listener_bus_lag``), each
        with the topics it reads: the role's own."""
        return [(self.role, self.inputs)]

    def request_reload(self) -> None:
        """Re-read rules.yaml before the next message (SIGHUP)."""
        self._reload.set()

    def reloaded(self) -> Config | None:
        """The rules file read again when a reload was asked for (and it loads), else
        None; one that does not load is logged and the running one kept."""
        if not self._reload.is_set():
            return None
        self._reload.clear()
        try:
            config = load_rules(self.config_path, secrets=self.secrets)
        except ConfigError as exc:
            log.error(
                "reload_kept_old_config",
                role=self.role,
                problems=len(exc.problems),
                error=str(exc),
            )
            return None
        except Exception as exc:  # reading or parsing it failed otherwise: kept, not a crash
            log.error(
                "reload_kept_old_config", role=self.role, error=f"{type(exc).__name__}: {exc}"
            )
            return None
        self.config = config
        self._hide_secrets(config)
        log.info("config_reloaded", role=self.role, brands=len(config.brands))
        return config

    def application(self) -> Application:
        """The role's Quix Streams application, its topics made when missing (this
        reaches the broker, and raises when it cannot); built on :meth:`quix`."""
        raise NotImplementedError

    def quix(self) -> Application:
        """A new Quix Streams application for the role, watched (:class:`Watch`)."""
        self._watch = Watch(self.role, self.metrics)
        self._app = quix_app(
            self.bus, self.role, self.state_dir, watch=self._watch, buffer=self.buffer
        )
        return self._app

    def guard(self, stop: threading.Event, stalled: float = STALLED) -> None:
        """Until ``stop``: restart the application when it lost its partitions and the
        group has not given it any for ``stalled`` seconds, or when the group has not
        answered its first join in that time: a new consumer joins afresh (both seen on
        tansu: a consumer that overran ``max.poll.interval.ms`` was never taken back, and
        two that restarted at once were never answered)."""
        while not stop.wait(stalled / 6):
            watch, app = self._watch, self._app
            if watch is None or app is None or not watch.stalled(stalled):
                continue
            log.warning("rejoin_stalled", role=self.role, after=stalled)
            self.metrics.error("bus", "rejoin_stalled")
            watch.lost_at = None
            self._restart.set()
            app.stop()

    def routes(self, api: HttpApi) -> None:
        """Routes the role serves besides ``/healthz``, ``/readyz`` and ``/metrics``."""

    def status(self) -> dict[str, Any]:
        """What the role adds to ``/readyz`` (called from the server's thread)."""
        return {}

    def stopped(self) -> None:
        """Called once the worker has stopped consuming (a role's own clean-up)."""

    def run(self, listen: str) -> int:
        """Serve ``/healthz``, ``/readyz`` and ``/metrics`` on ``listen`` and consume until
        stopped (SIGTERM, SIGINT); the process's exit code. A broker that cannot be
        reached is waited for (:func:`~listener.roles.supervise.supervise`)."""
        readiness = Readiness(self.role, self.bus, details=self.status)
        server = HealthServer(readiness, self.metrics)
        self.routes(server.api)
        host, port = parse_listen(listen)
        try:
            self.bound = server.start(host, port)
        except OSError as exc:
            raise ListenerError(f"cannot listen on {listen}: {exc.strerror}") from None
        log.info("role_listening", role=self.role, listen=f"{self.bound[0]}:{self.bound[1]}")
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        lags = [LagWatch(self.bus, group, topics, self.metrics) for group, topics in self.groups()]
        for lag in lags:
            lag.start()
        done = threading.Event()
        guard = threading.Thread(target=self.guard, args=(done,), name="guard", daemon=True)
        guard.start()
        try:
            return supervise(
                self.role,
                self.application,
                self.metrics,
                readiness,
                self.clock,
                restart=self._restart,
            )
        finally:
            done.set()
            for lag in lags:
                lag.stop()
            server.stop()
            self.stopped()

    def started(self, **fields: object) -> None:
        """Log ``role_started`` with the worker's group and address."""
        log.info(
            "role_started",
            role=self.role,
            bus=self.bus.brokers,
            group=self.bus.group(self.role),
            listen=f"{self.bound[0]}:{self.bound[1]}",
            **fields,
        )
