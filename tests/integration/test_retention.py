"""Retention that keeps the evidence: incidents' mentions outlive pruning; VACUUM runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.clock import ManualClock
from listener.errors import StoreError
from listener.housekeeping import Housekeeping
from listener.metrics import Metrics
from listener.model import Author, Mention, ScoredMention, Sentiment
from listener.report import gather
from listener.rules.engine import IncidentEvent
from listener.settings import Settings
from listener.store import EVIDENCE_AFTER, EVIDENCE_BEFORE, Store
from tests.support.incident_state import T0, build_state

LATER = T0 + timedelta(days=90)


def keys(store: Store) -> set[str]:
    return {str(r[0]) for r in store._read("SELECT id FROM mentions")}


def brand_rows(store: Store) -> set[str]:
    return {str(r[0]) for r in store._read("SELECT id FROM mention_brands")}


def scored(i: int, at: datetime, brands: tuple[str, ...] = ("Acme",), size: int = 100):
    mention = Mention(
        source="s",
        id=f"m{i}",
        text=f"Acme {i} " + "x" * size,
        created_at=at,
        author=Author(handle=f"u{i}"),
    )
    return ScoredMention(mention, brands, Sentiment("neutral", 0.0), reach=1.0)


def test_evidence_mentions_survive_pruning_and_the_rest_go(tmp_path: Path) -> None:
    """An old incident's mentions stay (and its report still renders); the rest go."""
    incident_id, _ = build_state(tmp_path / "s.db")
    store = Store.open(tmp_path / "s.db")
    incident = store.incident_log.get(incident_id)
    assert incident is not None
    assert incident.resolved_at is not None
    # mentions far from any incident, of the same brand, of another brand and of none
    store.commit(now=T0 - timedelta(days=5), mentions=[scored(1, T0 - timedelta(days=5))])
    store.commit(now=T0, mentions=[scored(2, T0, ("Globex",))])
    store.commit(now=T0, mentions=[scored(3, T0, ())])
    store.commit(
        now=T0 + timedelta(hours=5), mentions=[scored(4, incident.resolved_at + EVIDENCE_AFTER * 2)]
    )
    before = keys(store)
    removed = store.mentions.prune(LATER - timedelta(days=30))
    kept = keys(store)
    assert removed == len(before) - len(kept) == 4
    assert {"m1", "m2", "m3", "m4"}.isdisjoint(kept)
    assert "evil" in kept
    assert any(k.startswith("q") for k in kept)  # the quiet baseline before the incident
    assert brand_rows(store) <= kept  # no orphan brand rows
    assert brand_rows(store) == kept
    data = gather(store, incident_id, LATER)
    assert "evil" in {s.lead.id for s in data.stories}
    assert any(b.baseline is not None for b in data.buckets)
    assert store.incident_log.events(incident_id)
    assert store.incident_log.notices(incident_id)
    assert store.ack_log.get([incident_id])
    assert (
        store.mentions.prune(LATER - timedelta(days=30)) == 0
    )  # nothing more goes on a second run
    store.close()


def test_evidence_window_edges(tmp_path: Path) -> None:
    """Kept from EVIDENCE_BEFORE before opening to EVIDENCE_AFTER after resolving."""
    incident_id, _ = build_state(tmp_path / "s.db")
    store = Store.open(tmp_path / "s.db")
    incident = store.incident_log.get(incident_id)
    assert incident is not None
    assert incident.resolved_at is not None
    second = timedelta(seconds=1)
    edges = {
        "in-first": incident.opened_at - EVIDENCE_BEFORE,
        "out-early": incident.opened_at - EVIDENCE_BEFORE - second,
        "in-last": incident.resolved_at + EVIDENCE_AFTER,
        "out-late": incident.resolved_at + EVIDENCE_AFTER + second,
    }
    for name, at in edges.items():
        m = scored(0, at)
        m = ScoredMention(
            Mention(source="s", id=name, text="Acme", created_at=at),
            m.brands,
            m.sentiment,
            reach=1.0,
        )
        store.commit(now=at, mentions=[m])
    store.mentions.prune(LATER)
    kept = keys(store)
    assert {"in-first", "in-last"} <= kept
    assert not {"out-early", "out-late"} & kept
    store.close()


def test_open_incident_keeps_everything_since_its_look_back(tmp_path: Path) -> None:
    """While an incident is open its brand's mentions are kept, however old."""
    store = Store.open(tmp_path / "s.db")
    opened = T0
    store.commit(
        now=opened,
        events=[
            IncidentEvent("opened", "inc", 1, "neg", "Acme", "watch", None, "watch", opened, ())
        ],
    )
    store.commit(now=opened, mentions=[scored(1, opened + timedelta(days=3))])
    store.commit(now=opened, mentions=[scored(2, opened - EVIDENCE_BEFORE * 2)])
    assert store.mentions.prune(LATER) == 1
    assert keys(store) == {"m1"}
    store.close()


def test_what_an_open_incident_kept_goes_once_it_resolved(tmp_path: Path) -> None:
    """Evidence is judged again at every prune: mentions an open incident kept are
    released when it resolves and they lie outside its evidence period."""
    store = Store.open(tmp_path / "s.db")
    opened = T0
    store.commit(
        now=opened,
        events=[
            IncidentEvent("opened", "inc", 1, "neg", "Acme", "watch", None, "watch", opened, ())
        ],
    )
    late = opened + timedelta(days=3)  # after the resolution below + EVIDENCE_AFTER
    store.commit(now=late, mentions=[scored(1, late), scored(2, opened + timedelta(hours=1))])
    assert store.mentions.prune(LATER) == 0  # open: both kept
    resolved = opened + timedelta(days=1)
    store.commit(
        now=resolved,
        events=[
            IncidentEvent(
                "resolved", "inc", 2, "neg", "Acme", "watch", "watch", "watch", resolved, ()
            )
        ],
    )
    assert store.mentions.prune(LATER) == 1
    assert keys(store) == {"m2"}
    assert brand_rows(store) == {"m2"}
    store.close()


def test_settings_vacuum_every() -> None:
    """LISTENER_VACUUM_EVERY takes a duration; 0 disables; the default is a week."""
    assert Settings.from_env({}).vacuum_every == timedelta(days=7)
    assert Settings.from_env({"LISTENER_VACUUM_EVERY": "0"}).vacuum_every == timedelta(0)
    assert Settings.from_env({"LISTENER_VACUUM_EVERY": "1d"}).vacuum_every == timedelta(days=1)


def _housekeeping(path: Path, clock: ManualClock, **env: str) -> Housekeeping:
    settings = Settings.from_env({"LISTENER_STATE": str(path), **env})
    return Housekeeping(
        Store.open(path),
        Metrics(),
        clock,
        retention=settings.mention_retention,
        vacuum_every=settings.vacuum_every,
    )


def _value(housekeeping: Housekeeping, name: str) -> float | None:
    return housekeeping.metrics.registry.get_sample_value(name)


async def test_housekeeping_prunes_vacuums_and_exports_the_store_size(tmp_path: Path) -> None:
    """Old mentions go, VACUUM gives the space back once a week, metrics follow."""
    path = tmp_path / "s.db"
    clock = ManualClock(LATER)
    housekeeping = _housekeeping(path, clock)
    store = housekeeping.store
    assert store is not None
    old = T0 - timedelta(days=1)
    store.commit(now=old, mentions=[scored(i, old, size=4000) for i in range(600)])
    store.commit(now=LATER, mentions=[scored(9999, LATER)])
    store._write("PRAGMA wal_checkpoint(TRUNCATE)")
    full = store.size_bytes()

    await housekeeping.run()

    assert keys(store) == {"m9999"}
    assert _value(housekeeping, "listener_mentions_pruned_total") == 600
    assert store.size_bytes() < full / 4
    assert _value(housekeeping, "listener_store_size_bytes") == store.size_bytes()
    assert _value(housekeeping, "listener_store_last_vacuum_timestamp_seconds") == LATER.timestamp()
    assert store.last_vacuum() == LATER
    assert store._read("PRAGMA integrity_check") == [("ok",)]

    clock.advance(timedelta(days=6))  # not due yet
    await housekeeping.run()
    assert store.last_vacuum() == LATER
    clock.advance(timedelta(days=1))
    await housekeeping.run()
    assert store.last_vacuum() == clock.now()
    assert _value(housekeeping, "listener_store_last_vacuum_timestamp_seconds") == (
        clock.now().timestamp()
    )
    store.close()


async def test_retention_never_cuts_into_a_new_incidents_look_back(tmp_path: Path) -> None:
    """A retention shorter than the evidence look-back is stretched to it."""
    clock = ManualClock(LATER)
    housekeeping = _housekeeping(tmp_path / "s.db", clock, LISTENER_MENTION_RETENTION="1h")
    store = housekeeping.store
    assert store is not None
    for i, age in enumerate((timedelta(hours=2), EVIDENCE_BEFORE + timedelta(minutes=1))):
        store.commit(now=LATER - age, mentions=[scored(i, LATER - age)])
    await housekeeping.run()
    assert keys(store) == {"m0"}
    store.close()


async def test_vacuum_can_be_disabled_and_failures_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LISTENER_VACUUM_EVERY=0 never vacuums; a failing VACUUM is counted, not raised."""
    clock = ManualClock(LATER)
    off = _housekeeping(tmp_path / "off.db", clock, LISTENER_VACUUM_EVERY="0")
    assert off.store is not None
    await off.run()
    assert off.store.last_vacuum() is None
    assert _value(off, "listener_store_last_vacuum_timestamp_seconds") == 0
    assert _value(off, "listener_store_size_bytes") == off.store.size_bytes()
    off.store.close()

    housekeeping = _housekeeping(tmp_path / "s.db", clock)
    assert housekeeping.store is not None

    def disk_full(now: datetime) -> None:
        raise StoreError("s.db: vacuum failed: database or disk is full")

    monkeypatch.setattr(housekeeping.store, "vacuum", disk_full)
    await housekeeping.run()
    errors = {"stage": "store", "error_type": "store"}
    assert housekeeping.metrics.registry.get_sample_value("listener_errors_total", errors) == 1
    assert _value(housekeeping, "listener_store_last_vacuum_timestamp_seconds") == 0
    assert _value(housekeeping, "listener_store_size_bytes") == housekeeping.store.size_bytes()
    housekeeping.store.close()


def test_vacuum_keeps_every_row(tmp_path: Path) -> None:
    """VACUUM rebuilds the file without losing data, incidents or the schema version."""
    incident_id, _ = build_state(tmp_path / "s.db")
    store = Store.open(tmp_path / "s.db")
    count = store.mentions.count()
    store.vacuum(datetime(2026, 4, 1, tzinfo=UTC))
    assert store.mentions.count() == count
    assert store.incident_log.get(incident_id) is not None
    assert store._read("PRAGMA user_version")[0][0] >= 3
    assert not Path(f"{tmp_path / 's.db'}-wal").exists() or (
        Path(f"{tmp_path / 's.db'}-wal").stat().st_size == 0
    )
    store.close()


def _outbox(store: Store) -> dict[tuple[str, str], tuple[str, int]]:
    """(alert id, sink) → (status, payload size) of every outbox row."""
    rows = store._read("SELECT alert_id, sink, status, length(payload) FROM outbox")
    return {(str(a), str(s)): (str(st), int(n)) for a, s, st, n in rows}


def test_outbox_documents_go_with_retention_and_the_report_keeps_its_deliveries(
    tmp_path: Path,
) -> None:
    """Delivered and failed alerts older than the retention lose their document, not their
    row; pending ones and recent ones keep everything; the report reads the same history."""
    incident_id, _ = build_state(tmp_path / "s.db")
    store = Store.open(tmp_path / "s.db")
    before = _outbox(store)
    report_before = gather(store, incident_id, LATER).alerts
    statuses = {status for status, _ in before.values()}
    assert statuses == {"delivered", "failed"}
    # a recent delivered alert and an old alert still pending (its sink is down)
    fresh = (incident_id + "#late", "ops")
    store._write(
        "INSERT INTO outbox (alert_id, sink, incident_id, rule, payload, created_at, "
        "next_attempt_at, status, delivered_at) SELECT ?, sink, incident_id, rule, payload, "
        "?, ?, 'delivered', ? FROM outbox LIMIT 1",
        (fresh[0], LATER.timestamp(), LATER.timestamp(), LATER.timestamp()),
    )
    stuck = (incident_id + "#stuck", "ops")
    store._write(
        "INSERT INTO outbox (alert_id, sink, incident_id, rule, payload, created_at, "
        "next_attempt_at) SELECT ?, sink, incident_id, rule, payload, created_at, "
        "created_at FROM outbox LIMIT 1",
        (stuck[0],),
    )

    pruned = store.outbox.prune(LATER - timedelta(days=30))

    after = _outbox(store)
    assert pruned == len(before)
    assert set(after) == {*before, fresh, stuck}  # no row goes
    assert all(after[k][0] == before[k][0] for k in before)  # outcomes unchanged
    assert all(after[k][1] < 40 < before[k][1] for k in before)  # the documents went
    assert after[fresh][1] > 1000
    assert after[stuck] == ("pending", after[fresh][1])
    assert [i.alert_id for i in store.outbox.due("ops", LATER)] == [stuck[0]]
    assert gather(store, incident_id, LATER).alerts == report_before
    assert store.outbox.prune(LATER - timedelta(days=30)) == 0  # nothing twice
    store.close()


async def test_housekeeping_prunes_the_outbox_and_counts_it(tmp_path: Path) -> None:
    """Hourly housekeeping prunes old outbox documents into listener_outbox_pruned_total."""
    build_state(tmp_path / "s.db")
    clock = ManualClock(LATER)
    housekeeping = _housekeeping(tmp_path / "s.db", clock)
    assert housekeeping.store is not None
    rows = len(_outbox(housekeeping.store))
    assert rows > 0
    assert _value(housekeeping, "listener_outbox_pruned_total") == 0

    await housekeeping.run()

    assert _value(housekeeping, "listener_outbox_pruned_total") == rows
    await housekeeping.run()
    assert _value(housekeeping, "listener_outbox_pruned_total") == rows
    housekeeping.store.close()


async def test_housekeeping_leaves_vacuum_to_the_next_start_while_stopping(
    tmp_path: Path,
) -> None:
    """A run that starts while the daemon stops still prunes and exports the size, but
    never begins a VACUUM that could outlast the shutdown bound."""
    clock = ManualClock(LATER)
    store = Store.open(tmp_path / "s.db")
    old = T0 - timedelta(days=1)
    store.commit(now=old, mentions=[scored(1, old)])
    housekeeping = Housekeeping(
        store,
        Metrics(),
        clock,
        retention=timedelta(days=30),
        vacuum_every=timedelta(days=7),
        stopping=lambda: True,
    )
    await housekeeping.run()
    assert keys(store) == set()
    assert store.last_vacuum() is None
    assert _value(housekeeping, "listener_store_size_bytes") == store.size_bytes()
    store.close()
