"""The store on a real PostgreSQL server (distributed mode's shared state): migrations,
every public method, the same answers as the SQLite file for the same writes, another
writer's silences and acks seen at once, and driver errors as StoreError."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from listener.errors import StoreError
from listener.model import Silence
from listener.rules.engine import IncidentEvent
from listener.rules.notify import Notice
from listener.store import EvaluateWrite, IngestWrite, MentionQuery, Store, StoreSinkState
from listener.store.cursors import Collected
from listener.store.postgres import SCHEMA_VERSION, is_database_url
from tests.integration.test_store import PUBLIC, T0, _silence, opened, scored
from tests.support.receiver import sample_alert


def _plain(value: Any) -> Any:
    """``value`` with dataclasses as dicts and floats rounded (doubles travel exactly, but
    sums may add in another order)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, float):
        return round(value, 9)
    return value


def _history(store: Store) -> None:
    """The same writes, as the stages and the CLI make them."""
    hour = timedelta(hours=1)
    store.write_ingest(
        IngestWrite(
            now=T0,
            mentions=[
                scored(1),
                scored(2, brands=("Acme", "Globex"), label="neutral"),
                scored(3, T0 + timedelta(minutes=7)),
                scored(4, T0 + timedelta(minutes=95)),
            ],
            cursor=("x", {"since": "m4"}),
        )
    )
    alert = sample_alert(id="inc-1#1", incident_id="inc-1")
    escalated = IncidentEvent(
        "escalated", "inc-1", 2, "spike", "Acme", "crisis", "high", "crisis", T0 + hour, ()
    )
    store.write_evaluate(
        EvaluateWrite(
            now=T0,
            events=[opened(), escalated],
            notices=[
                Notice("inc-1#1", "opened", "inc-1", "high", ("hook", "slack")),
                Notice("inc-1#2", "escalated", "inc-1", "crisis", (), muted="silenced s1"),
            ],
            outbox=[(alert, ["hook", "slack"])],
        )
    )
    store.incident_log.mark_drill(["inc-1"])
    store.silence_log.add(_silence("s1", T0, 30))
    store.silence_log.add(Silence("s2", T0, T0 + hour, "ana", "all of it"))
    store.silence_log.expire("s2", T0 + timedelta(minutes=5))
    store.ack_log.add("inc-1", "ana", T0 + timedelta(minutes=3), "on it")
    store.ack_log.add("inc-1", "bo", T0 + timedelta(minutes=4))  # the first ack wins
    store.notes.add("inc-1", "assigned", "ana", "bo", T0 + timedelta(minutes=5))
    store.notes.add("inc-1", "note", "bo", "statement posted", T0 + timedelta(minutes=6))
    store.notes.add("inc-1", "assigned", "bo", "cy", T0 + timedelta(minutes=7))
    (first, second) = store.outbox.due("hook", T0) + store.outbox.due("slack", T0)
    store.outbox.mark_delivered(first.id, T0 + timedelta(seconds=2))
    store.outbox.mark_retry(second.id, T0 + timedelta(minutes=1), "503 from slack")
    StoreSinkState(store, "slack").set("thread:inc-1", "1700000000.1")
    StoreSinkState(store, "slack").set("thread:inc-1", "1700000000.2")
    StoreSinkState(store, "hook").set("gone", "x")
    StoreSinkState(store, "hook").delete("gone")
    with store.db.transaction() as c:
        Collected.remember(c, "x", ["m1", "m2"], T0.timestamp())
        Collected.remember(c, "x", ["m2", "m3"], (T0 + timedelta(days=2)).timestamp())


def _reads(store: Store) -> dict[str, Any]:
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=3))
    out: dict[str, Any] = {}
    for name in (
        "mentions.seen",
        "mentions.count",
        "cursors.load",
        "outbox.pending",
        "outbox.backlog",
        "incident_log.recent",
        "silence_log.select",
        "ack_log.get",
    ):
        out[name] = PUBLIC[name](store)
    m = store.mentions
    out["top"] = m.top("Acme", *window, limit=10, negative_only=False)
    out["categories"] = m.top_categories("Acme", *window)
    out["authors"] = m.top_authors("Acme", *window)
    out["series"] = m.series("Acme", *window, timedelta(minutes=30))
    out["first"], out["last"] = m.first_at("Acme", *window), m.last_at("Acme", *window)
    out["sources"] = m.source_counts("Acme", *window)
    out["stories"] = m.stories("Acme", *window)
    out["recent"] = m.recent("Acme", *window, 10) + m.recent("Acme", *window, 2, True)
    out["touching"] = store.incident_log.touching(["Acme", "Globex"], *window)
    out["inbox"] = [
        r.as_dict()
        for q in (
            MentionQuery(*window, brand="Acme"),
            MentionQuery(*window, text="ACME", sentiment="negative", limit=2, offset=1),
            MentionQuery(*window, source="x", text="100%_off"),
        )
        for r in m.search(q)
    ]
    out["events"] = store.incident_log.events("inc-1")
    out["notices"] = store.incident_log.notices("inc-1")
    out["ids"] = store.incident_log.ids("inc")
    out["drill"] = store.incident_log.drill_ids(["inc-1", "inc-2"])
    out["notes"] = store.notes.of("inc-1")
    out["assignees"] = store.notes.assignees(["inc-1", "inc-2"])
    out["starting"] = store.incident_log.starting_with("inc-")
    out["deliveries"] = store.outbox.deliveries("inc-1")
    out["active"] = store.silences(active_at=T0 + timedelta(minutes=1))
    out["acks"] = store.acks(["inc-1", "inc-9"])
    out["due"] = [(i.alert_id, i.sink, i.attempts) for i in store.outbox.due("slack", T0)]
    out["thread"] = StoreSinkState(store, "slack").get("thread:inc-1")
    out["gone"] = StoreSinkState(store, "hook").get("gone")
    out["pruned_outbox"] = store.outbox.prune(T0 + timedelta(days=1))
    out["after_prune"] = store.outbox.deliveries("inc-1")
    out["pruned_mentions"] = store.mentions.prune(T0 + timedelta(minutes=1))
    out["left"] = store.mentions.count()
    out["collected"] = store.collected.seen("x", ["m1", "m3", "m9"])
    out["forgotten"] = store.collected.prune(T0 + timedelta(days=1))
    out["collected_after"] = store.collected.seen("x", ["m1", "m2", "m3"])
    return out


def test_postgresql_answers_as_the_sqlite_file_does(tmp_path: Path, database: str) -> None:
    """The same writes through the stages' typed writes, the CLI's and the deliverer's
    calls give the same reads on PostgreSQL as on the embedded SQLite file: mentions and
    the report's queries, incidents, notices, acks, silences, the outbox with its marks
    and retention, sinks' state, retention of mentions."""
    lite, pg = Store.open(tmp_path / "s.db"), Store.open(database)
    try:
        for store in (lite, pg):
            _history(store)
        expected, got = _plain(_reads(lite)), _plain(_reads(pg))
        assert got == expected
        assert expected["series"]
        assert expected["inbox"]
        assert expected["deliveries"]
        assert expected["pruned_outbox"] == 1
        assert expected["drill"] == ["inc-1"]
        assert expected["acks"]["inc-1"]["by"] == "ana"
        assert expected["assignees"] == {"inc-1": "cy"}
        assert len(expected["notes"]) == 3
    finally:
        lite.close()
        pg.close()


def test_every_public_method_runs_on_postgresql(database: str) -> None:
    """Every public method of the store and its concerns runs on PostgreSQL (on an empty
    database, in turn), vacuum included."""
    store = Store.open(database)
    try:
        for name in sorted(PUBLIC):
            try:
                PUBLIC[name](store)
            except StoreError as exc:
                pytest.fail(f"{name}: {exc}")
    finally:
        store.close()


def test_migrations_run_once_and_a_newer_database_is_refused(database: str) -> None:
    """Opening migrates to the current schema once (a second open finds it there); a
    database migrated by a newer listener is refused with a StoreError, its URL's
    password left out."""
    Store.open(database).close()
    store = Store.open(database)
    assert store.db.schema_version() == SCHEMA_VERSION  # type: ignore[attr-defined]
    rows = store._read("SELECT count(*) FROM listener_schema")
    assert rows == [(SCHEMA_VERSION,)]
    store._write("INSERT INTO listener_schema (version, what) VALUES (?, 'future')", (999,))
    store.close()
    secret = database.replace("postgres@", "postgres:hunter2@")
    with pytest.raises(StoreError, match="newer listener") as info:
        Store.open(secret)
    assert "hunter2" not in str(info.value)
    assert is_database_url(database)
    assert not is_database_url("listener.db")


def test_silences_and_acks_from_another_worker_are_read_at_once(database: str) -> None:
    """Another worker's (or the CLI's) silence or ack is seen by the next read."""
    store, other = Store.open(database), Store.open(database)
    try:
        assert store.silences(active_at=T0) == []
        assert store.acks(["i1"]) == {}
        other.silence_log.add(_silence("cli", T0 - timedelta(minutes=1), 60))
        other.ack_log.add("i1", "ana", T0)
        assert [s.id for s in store.silences(active_at=T0)] == ["cli"]
        assert list(store.acks(["i1"])) == ["i1"]
    finally:
        store.close()
        other.close()


def test_a_lost_connection_is_a_store_error_then_reconnects(database: str) -> None:
    """When the server drops the connection (a restart, a failover), the statement in
    flight raises StoreError and the next one connects again; a transaction cut off in
    the middle leaves nothing."""
    store = Store.open(database)
    try:
        store.write_ingest(IngestWrite(now=T0, mentions=[scored(1)]))
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreError, match="failed"):
            store.mentions.count()
        assert store.mentions.count() == 1

        def half_done() -> None:
            with store.db.transaction() as c:
                c.execute("DELETE FROM mentions")
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            half_done()
        assert store.mentions.count() == 1
    finally:
        store.close()


def test_an_unreachable_server_is_a_store_error(pg_server: str) -> None:
    """A database that does not exist (or a server that does not answer) is a StoreError
    naming it, never a driver traceback."""
    with pytest.raises(StoreError, match="cannot connect"):
        Store.open(f"{pg_server}/no_such_database")
