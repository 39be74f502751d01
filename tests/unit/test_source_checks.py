"""Source health in distributed mode (listener.roles.sources): collectors that take turns
checking a source, its state in the shared state between them, decide as embedded mode
does with the same statuses: the same alerts (ids, kinds), the acknowledgement read from
the shared state. On a real broker and PostgreSQL: tests/integration/test_bus_collect.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from listener.bus.alerts import decode_record
from listener.config.lint import load_with_warnings
from listener.config.schema import Config
from listener.incidents import acknowledge
from listener.metrics import Metrics
from listener.model import Ack, Silence
from listener.processor import Processor
from listener.roles.deliver import record_alert
from listener.roles.sources import KEY, HeldSource, SourceChecks, held_source, shared_health
from listener.rules.source_health import SOURCE_HEALTH, SourceStatus
from listener.store import Store

RULES = """brands:
  - name: Acme
sources:
  feed:
    type: rss
    urls: ['http://127.0.0.1:9/feed.xml']
    health: {failing_after: 5m, level: urgent}
  other:
    type: rss
    urls: ['http://127.0.0.1:9/other.xml']
rules:
  - name: loud
    levels:
      busy:
        when: {type: volume, window: 30m, above: 12}
routes:
  default: [ops]
sinks:
  ops: {type: console}
notifications:
  repeat_every: 10m
"""
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return load_with_warnings(str(path))[0]


def status(minute: int) -> SourceStatus:
    """``feed`` fails from the start until minute 40, then polls well again."""
    at = START + timedelta(minutes=minute)
    if minute < 40:
        return SourceStatus(START, None, None, "HTTP 503 from feed.test", minute + 1)
    return SourceStatus(START, at, None, None, 0)


class Evaluators:
    """What distributed mode tells its evaluators (nothing, for source health)."""

    def __init__(self) -> None:
        self.told: list[object] = []

    def acknowledged(self, brand: str, incident_id: str, ack: Ack) -> None:
        self.told.append(incident_id)

    def silenced(self, silence: Silence) -> None:
        self.told.append(silence.id)

    def expired(self, silence: Silence, at: datetime) -> None:
        self.told.append(silence.id)


def test_collectors_taking_turns_check_a_source_as_embedded_mode(
    config: Config, tmp_path: Path
) -> None:
    embedded_store = Store.open(tmp_path / "embedded.db")
    embedded = Processor(config, embedded_store, Metrics(CollectorRegistry()))
    shared = Store.open(tmp_path / "shared.db")
    checks = [SourceChecks(config, shared, Metrics(CollectorRegistry()), START) for _ in range(2)]
    want: list[tuple[str, str, str]] = []
    got: list[tuple[str, str, str]] = []
    evaluators = Evaluators()
    for minute in range(60):
        at = START + timedelta(minutes=minute)
        statuses = {"feed": status(minute)}
        want += [(a.id, a.kind, a.incident_id) for a in embedded.evaluate(at, statuses)]
        messages, entries = checks[minute // 7 % 2].check(at, statuses)  # turns every 7m
        for message in messages:  # as the delivery workers record them
            record_alert(shared, decode_record(json.dumps(message)))
        checks[minute // 7 % 2].save(entries)
        got += [
            (m["alert"]["id"], m["alert"]["kind"], m["alert"]["incident_id"])
            for m in messages
            if m["sinks"]
        ]
        if minute == 27:  # the PR lead acknowledges: no more reminders
            incident = next(i for _, kind, i in got if kind == "opened")
            for store, told in ((embedded_store, None), (shared, evaluators)):
                acknowledge(store, incident, "dana", at, evaluators=told)
    kinds = [kind for _, kind, _ in got]
    assert kinds == ["opened", "reminder", "reminder", "acknowledged", "resolved"]
    assert got == want
    assert len({i for _, _, i in got}) == 1  # one incident across both collectors
    assert evaluators.told == []  # an ack of source health is no evaluator's business
    held = held_source(shared, "feed")
    assert held is not None
    assert held.status == status(59)
    assert not held.engine.get(SOURCE_HEALTH, "feed").incident  # resolved
    assert HeldSource.from_json(held.to_json()) == held
    shown = shared_health(shared, ["feed", "other"])  # what the console's /sources shows
    assert shown["feed"]["status"] == "ok"
    assert shown["feed"]["last_success_at"] == status(59).last_success_at.isoformat()  # type: ignore[union-attr]
    assert shown["other"] == {**shown["other"], "status": "pending", "consecutive_failures": 0}
    for c in checks:
        c.close()
    shared.close()
    embedded_store.close()


def test_a_check_state_that_cannot_be_read_starts_the_source_over(
    config: Config, tmp_path: Path
) -> None:
    shared = Store.open(tmp_path / "shared.db")
    for text in ("{}", json.dumps({"v": 2, "since": START.isoformat()}), "[1]"):
        with pytest.raises(ValueError, match="not a source's check state"):
            HeldSource.from_json(text)
        shared.commit(now=START, kv={KEY + "feed": text})
        assert held_source(shared, "feed") is None
    checks = SourceChecks(config, shared, Metrics(CollectorRegistry()), START)
    at = START + timedelta(minutes=6)
    messages, entries = checks.check(at, {"feed": status(6)})
    assert [m["alert"]["kind"] for m in messages] == ["opened"]
    checks.save(entries)
    held = held_source(shared, "feed")
    assert held is not None
    assert held.engine.get(SOURCE_HEALTH, "feed").incident is not None
    checks.close()
    shared.close()
