"""Process settings: where state lives, where to listen, how to log.

Read from ``LISTENER_*`` environment variables; command-line flags override them.
What to watch and whom to alert lives in rules.yaml, not here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

from listener.bus import Bus
from listener.config.duration import parse_duration
from listener.errors import BusError, ConfigError, ConfigProblem, DurationError
from listener.roles import ROLES

LogFormat = Literal["auto", "json", "console"]


@dataclass(frozen=True, slots=True)
class Settings:
    config: str = "rules.yaml"
    state: str = "listener.db"
    listen: str = "127.0.0.1:9464"
    log_level: str = "info"
    log_format: LogFormat = "auto"
    evaluate_every: timedelta = timedelta(seconds=30)
    shutdown_timeout: timedelta = timedelta(seconds=10)
    mention_retention: timedelta = timedelta(days=30)
    vacuum_every: timedelta = timedelta(days=7)
    """How often housekeeping rebuilds the state file (SQLite ``VACUUM``); 0 disables."""
    api_token: str = ""
    """Bearer token for the HTTP write endpoints (ack, silences); empty disables them."""
    poll_timeout: timedelta = timedelta(minutes=2)
    """Deadline of one whole poll of a source (every page and request of it)."""
    queue_max_mentions: int = 20_000
    """Mentions polled but not yet processed, at most; polls wait (or are skipped) beyond."""
    role: str = "all"
    """``all``: embedded mode; another role (``listener.roles``) runs one stage of
    distributed mode on ``bus``."""
    bus: str = ""
    """Distributed mode's message bus, ``kafka://HOST:PORT...`` (``listener.bus``)."""
    bus_state: str = "listener-state"
    """The folder where a worker of distributed mode keeps its local state."""
    ticker: bool = True
    """Whether an evaluator publishes ticks for every brand each ``evaluate_every``
    (``LISTENER_TICKER=off`` for a replay that publishes its own)."""
    console_refresh: int | None = None
    """Seconds between the web console's live updates of its pages (a whole number, at
    least 1); None: the console's own default (``listener.console.REFRESH_SECONDS``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``LISTENER_*`` variables, then non-None ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[ConfigProblem] = []
        for name in cls.__dataclass_fields__:
            key = f"LISTENER_{name.upper()}"
            if key in env:
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        durations = (
            "evaluate_every",
            "shutdown_timeout",
            "mention_retention",
            "vacuum_every",
            "poll_timeout",
        )
        for name in durations:
            if isinstance(values.get(name), str | int | float):
                try:
                    values[name] = parse_duration(values[name])
                except DurationError as exc:
                    problems.append(
                        ConfigProblem(
                            "environment", None, f"LISTENER_{name.upper()}", exc.message, exc.hint
                        )
                    )
        if values.get("evaluate_every") == timedelta(0):
            problems.append(
                ConfigProblem(
                    "environment",
                    None,
                    "LISTENER_EVALUATE_EVERY",
                    "must be more than 0s",
                    "rules are evaluated this often; the default is 30s",
                )
            )
        poll_timeout = values.get("poll_timeout")
        if isinstance(poll_timeout, timedelta) and poll_timeout <= timedelta(0):
            problems.append(
                ConfigProblem("environment", None, "LISTENER_POLL_TIMEOUT", "must be above 0")
            )
        for name in ("queue_max_mentions", "console_refresh"):
            if not isinstance(values.get(name), str):
                continue
            try:
                values[name] = int(values[name])
                if values[name] < 1:
                    raise ValueError
            except ValueError:
                problems.append(
                    ConfigProblem(
                        "environment",
                        None,
                        f"LISTENER_{name.upper()}",
                        f"not a positive whole number: {values[name]!r}",
                    )
                )
        if values.get("log_format", "auto") not in ("auto", "json", "console"):
            problems.append(
                ConfigProblem(
                    "environment",
                    None,
                    "LISTENER_LOG_FORMAT",
                    f"unknown log format {values['log_format']!r}",
                    "known: auto, json, console",
                )
            )
        if values.get("log_level", "info").lower() not in (
            "debug",
            "info",
            "warning",
            "error",
            "critical",
        ):
            problems.append(
                ConfigProblem(
                    "environment",
                    None,
                    "LISTENER_LOG_LEVEL",
                    f"unknown log level {values['log_level']!r}",
                    "known: debug, info, warning, error, critical",
                )
            )
        if values.get("role", "all") not in ROLES:
            problems.append(
                ConfigProblem(
                    "environment",
                    None,
                    "LISTENER_ROLE",
                    f"unknown role {values['role']!r}",
                    f"known: {', '.join(ROLES)}",
                )
            )
        ticker = values.get("ticker", True)
        if isinstance(ticker, str):
            flag = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}
            if ticker.strip().lower() in flag:
                values["ticker"] = flag[ticker.strip().lower()]
            else:
                problems.append(
                    ConfigProblem(
                        "environment",
                        None,
                        "LISTENER_TICKER",
                        f"not on or off: {ticker!r}",
                        "on (the default) or off",
                    )
                )
        if values.get("bus"):
            try:
                Bus.parse(values["bus"])
            except BusError as exc:
                message = str(exc).removeprefix("LISTENER_BUS: ")
                problems.append(ConfigProblem("environment", None, "LISTENER_BUS", message))
        if problems:
            raise ConfigError(problems)
        return replace(cls(), **values)
