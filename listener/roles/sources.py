"""Source health in distributed mode: the collector that polls a source checks it.

Embedded mode's ``source-health`` rule (docs/rules.md, source_health) runs in the
collectors: each one, at every multiple of ``LISTENER_EVALUATE_EVERY``, checks the sources
it polls (those it has polled at least once since it took them) with the same
:meth:`~listener.processor.Processor.evaluate_sources` code as embedded mode, and writes
each alert to ``alerts`` (keyed by the incident id), where the delivery workers record and
send it as any other.

**State.** A source's check state (what its pollers knew: when watching began, the last
success, the last new mention, the failures in a row; its engine key and its tracked
incident) lives in the shared database, one ``kv`` entry per source
(``source_health/NAME``), read at each check and written after the check's alerts are on
the bus. A collector that takes a source over goes on from it (its poller resumes the
source's status, so a source failing at its last owner is still failing at the next), and
one that dies between the alerts and the write makes the same alerts again at its next
check (same ids: the ledger sends each once). Acknowledgements and silences are read from
the shared state, where the API and the CLI write them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from listener.bus.alerts import alert_messages
from listener.clock import as_utc
from listener.config.schema import Config
from listener.metrics import Metrics
from listener.processor import RELEASED, Processor
from listener.rules.notify import NotifyState
from listener.rules.source_health import SourceStatus
from listener.rules.state import EngineState
from listener.store import Store
from listener.store.cursors import KeyValues

log = structlog.get_logger("listener")

KEY = "source_health/"
"""The prefix of a source's entry in the shared state's ``kv``."""
VERSION = 1


@dataclass(frozen=True)
class HeldSource:
    """One source's check state, as the shared state keeps it."""

    status: SourceStatus
    engine: EngineState
    """The source's engine key (rule ``source-health``, the source in the brand's place)."""
    notify: NotifyState
    """The source's tracked incident (reminders, escalations, acknowledgement)."""

    def to_json(self) -> str:
        s = self.status
        return json.dumps(
            {
                "v": VERSION,
                "since": _iso(s.since),
                "last_success_at": _iso(s.last_success_at),
                "last_new_at": _iso(s.last_new_at),
                "last_error": s.last_error,
                "failures": s.failures,
                "engine": self.engine.to_json() if self.engine.keys else "",
                "notify": self.notify.to_json() if self.notify.incidents else "",
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> HeldSource:
        """ValueError when ``text`` is not one."""
        try:
            data = json.loads(text)
            since = _when(data["since"])
            if data.get("v") != VERSION or since is None:
                raise ValueError("no version 1 or no since")
            return cls(
                SourceStatus(
                    since,
                    _when(data.get("last_success_at")),
                    _when(data.get("last_new_at")),
                    data.get("last_error"),
                    int(data.get("failures", 0)),
                ),
                EngineState.from_json(data["engine"]) if data.get("engine") else EngineState(),
                NotifyState.from_json(data["notify"]) if data.get("notify") else NotifyState(),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a source's check state ({exc}): {text[:80]!r}") from None


def held_source(store: Store, name: str) -> HeldSource | None:
    """The source's check state in the shared state (None before its first check, and
    when it cannot be read: logged, and the source's checks start over)."""
    text = store.kv.get(KEY + name)
    if not text:
        return None
    try:
        return HeldSource.from_json(text)
    except ValueError as exc:
        log.error("source_state_unreadable", source=name, error=str(exc))
        return None


class SourceChecks:
    """The source-health check of one collector: :meth:`check` takes the statuses of the
    sources it polls, gives the alert messages to put on ``alerts`` and the states to
    :meth:`save` once they are there."""

    def __init__(self, config: Config, shared: Store, metrics: Metrics, now: datetime) -> None:
        self.shared = shared
        self._cache = tempfile.TemporaryDirectory(prefix="listener-sources-")
        # what the check records of the incidents goes to a cache: the delivery workers
        # record the alerts in the shared state
        self.cache = Store.open(Path(self._cache.name) / "sources.sqlite")
        self.cache.commit(now=now, kv={RELEASED: json.dumps(sorted(config.brand_names()))})
        self.cache.silence_log, self.cache.ack_log = shared.silence_log, shared.ack_log
        self.processor = Processor(config, self.cache, metrics, readings=False, holds_state=False)

    def close(self) -> None:
        self.cache.close()
        self._cache.cleanup()

    def check(
        self, at: datetime, statuses: Mapping[str, SourceStatus]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Check these sources at ``at``, from their states in the shared state: the alert
        messages it makes, and the ``kv`` entries to write once they are on the bus."""
        engine: dict[Any, Any] = {}
        tracked: dict[str, Any] = {}
        for name in statuses:
            held = held_source(self.shared, name)
            if held is not None:
                engine.update(held.engine.keys)
                tracked.update(held.notify.incidents)
        decided, after, notify = self.processor.evaluate_sources(
            at, statuses, EngineState(engine), NotifyState(tracked)
        )
        entries = {
            KEY + name: HeldSource(
                status, after.split_brand(name)[0], notify.split_brand(name)[0]
            ).to_json()
            for name, status in statuses.items()
        }
        return alert_messages(decided, at), entries

    def save(self, entries: Mapping[str, str]) -> None:
        """Write the sources' states, in one transaction."""
        with self.shared.db.transaction("source_health") as c:
            KeyValues.put(c, entries)


def _iso(when: datetime | None) -> str | None:
    return as_utc(when).isoformat() if when is not None else None


def _when(text: Any) -> datetime | None:
    return as_utc(datetime.fromisoformat(text)) if isinstance(text, str) else None


def shared_health(store: Store, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The sources' health as their collectors' last checks left it in the shared state
    (the shape of :meth:`listener.pipeline.SourceHealth.as_dict`; ``pending`` before a
    source's first check): what the console's ``/sources`` shows in distributed mode."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        held = held_source(store, name)
        s = held.status if held is not None else None
        out[name] = {
            "status": "pending" if s is None else ("error" if s.failures else "ok"),
            "last_poll_at": None,
            "last_success_at": _iso(s.last_success_at) if s else None,
            "last_new_mention_at": _iso(s.last_new_at) if s else None,
            "last_error": s.last_error if s else None,
            "consecutive_failures": s.failures if s else 0,
            "backoff_until": None,
        }
    return out
