"""The store package: typed writes, compact rows, old files, and errors translated."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.errors import StoreError
from listener.model import Author, Engagement, Mention, ScoredMention, Sentiment, Silence
from listener.rules.engine import IncidentEvent
from listener.scoring.reach import reach_score
from listener.store import (
    SCHEMA_VERSION,
    BrandWrite,
    EvaluateWrite,
    IngestWrite,
    MentionQuery,
    Store,
    StoreSinkState,
    mention_row,
)
from listener.store.cursors import ENGINE_STATE, Collected, Cursors, KeyValues
from listener.store.incidents import Acks, IncidentNotes, Incidents, Silences
from listener.store.mentions import Mentions
from listener.store.outbox import Outbox
from listener.store.windows import Buckets
from tests.support.receiver import sample_alert

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def scored(
    i: int,
    at: datetime = T0,
    brands: tuple[str, ...] = ("Acme",),
    label: str = "negative",
    **fields: Any,
) -> ScoredMention:
    mention = Mention(
        source="x",
        id=f"m{i}",
        text=f"Acme {i} is down again",
        created_at=at,
        author=Author(handle=f"u{i}", followers=10 * i),
        **fields,
    )
    compound = -0.5 if label == "negative" else 0.2
    return ScoredMention(
        mention,
        brands,
        Sentiment(label, compound),  # type: ignore[arg-type]
        categories=("outage",),
        emotions=("anger",),
        story=f"x:m{i}",
        reach=reach_score(mention),
    )


def opened(incident: str = "inc-1", at: datetime = T0) -> IncidentEvent:
    return IncidentEvent("opened", incident, 1, "spike", "Acme", "high", None, "high", at, ())


def test_compact_rows_keep_every_field_but_the_columns() -> None:
    """A stored row carries no null field and nothing the columns hold; it reads back whole."""
    s = scored(3, url="https://x.example/3", engagement=Engagement(likes=2), title="T")
    row = mention_row(s, T0.timestamp())
    data = json.loads(row[7])
    assert data == {
        "text": "Acme 3 is down again",
        "url": "https://x.example/3",
        "author": {"followers": 30},
        "engagement": {"likes": 2},
        "title": "T",
    }
    assert json.loads(row[9]) == {"categories": ["outage"], "emotions": ["anger"]}
    full = s.mention.to_dict()
    assert row[8] == "x:u3"  # the handle lives in the author column
    data["author"]["handle"] = row[8].partition(":")[2]
    rebuilt = Mention.from_dict({**data, "source": row[0], "id": row[1], "created_at": T0})
    assert rebuilt.to_dict() == full


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(max_size=40),
    url=st.none() | st.just("https://x.example/1"),
    handle=st.none() | st.sampled_from(["", "ann", 'o"brien']),
    display_name=st.none() | st.text(max_size=5),
    followers=st.none() | st.integers(0, 10**6),
    language=st.none() | st.just("en"),
    likes=st.none() | st.integers(0, 9),
    quotes=st.none() | st.integers(0, 9),
    is_repost=st.booleans(),
    reposted_id=st.none() | st.just("r1"),
    title=st.none() | st.text(max_size=5),
)
def test_compact_rows_read_back_any_mention(
    text: str,
    url: str | None,
    handle: str | None,
    display_name: str | None,
    followers: int | None,
    language: str | None,
    likes: int | None,
    quotes: int | None,
    is_repost: bool,
    reposted_id: str | None,
    title: str | None,
) -> None:
    """Whatever fields a mention has, its row's ``data`` is compact JSON (the text alone
    written as ``{"text":...}``) that rebuilds the mention with the row's columns."""
    mention = Mention(
        source="x",
        id="m1",
        text=text,
        created_at=T0,
        url=url,
        author=Author(handle=handle, display_name=display_name, followers=followers),
        language=language,
        engagement=Engagement(likes=likes, quotes=quotes),
        is_repost=is_repost,
        reposted_id=reposted_id,
        title=title,
    )
    scored_ = ScoredMention(mention, ("Acme",), Sentiment("neutral", 0.0), reach=0.0)
    row = mention_row(scored_, 0.0)
    data = json.loads(row[7])
    assert row[7] == json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert None not in data.values()
    by = row[8]
    assert by == (f"x:{handle}" if handle else None)
    if by is not None:
        data.setdefault("author", {})["handle"] = by.partition(":")[2]
    rebuilt = Mention.from_dict({**data, "source": row[0], "id": row[1], "created_at": T0})
    assert rebuilt == mention


def test_ingest_write_stores_mentions_cursor_buckets_and_kv_at_once(tmp_path: Path) -> None:
    """One IngestWrite: mentions, their brands, cursor, buckets and kv land together."""
    store = Store.open(tmp_path / "s.db")
    store.write_ingest(
        IngestWrite(
            now=T0,
            mentions=[scored(1), scored(2, brands=("Acme", "Globex"), label="neutral")],
            cursor=("x", {"since": "m2"}),
            buckets=[("Acme", 100, "{}")],
            kv={"quiet_until": "{}"},
        )
    )
    assert store.mentions.seen([("x", "m1"), ("x", "m2"), ("x", "m3")]) == {
        ("x", "m1"),
        ("x", "m2"),
    }
    assert store.cursors.load("x") == {"since": "m2"}
    assert store.buckets.load() == [("Acme", 100, "{}")]
    assert store.kv.get("quiet_until") == "{}"
    hour = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    top = store.mentions.top("Acme", *hour)
    assert [(m.id, m.author, m.followers, m.created_at) for m in top] == [("m1", "u1", 10, T0)]
    assert store.mentions.top_categories("Acme", *hour) == [("outage", 1)]
    assert [r.lead.id for r in store.mentions.stories("Globex", *hour)] == ["m2"]
    recent = store.mentions.recent("Acme", *hour, 10)
    assert [(m.ref.id, m.text, m.story) for m in recent] == [  # newest first, then by id
        ("m1", "Acme 1 is down again", "x:m1"),
        ("m2", "Acme 2 is down again", "x:m2"),
    ]
    assert [m.ref.id for m in store.mentions.recent("Acme", *hour, 10, True)] == ["m1"]
    assert store.mentions.source_counts("Acme", *hour)[0].mentions == 2


def test_stories_count_a_mention_with_its_copies(tmp_path: Path) -> None:
    """Copies share their original's story: the period's stories rank by mentions (then
    reach), each led by its furthest-travelled mention, with its own counts and span."""
    store = Store.open(tmp_path / "s.db")
    minute = timedelta(minutes=1)
    copies = [dataclasses.replace(scored(i, T0 + i * minute), story="x:m1") for i in (2, 3, 9)]
    neutral = dataclasses.replace(scored(4, T0, label="neutral"), story="x:m1", categories=())
    store.write_ingest(
        IngestWrite(
            now=T0,
            mentions=[scored(1), *copies, neutral, scored(5), scored(6, label="neutral")],
        )
    )
    hour = (T0, T0 + timedelta(hours=1))
    top = store.mentions.stories("Acme", *hour, limit=2)
    assert [(s.story, s.mentions, s.negative) for s in top] == [("x:m1", 5, 4), ("x:m6", 1, 0)]
    first = top[0]
    assert first.lead.id == "m9"  # 90 followers: the furthest travelled of the five
    assert (first.first_at, first.last_at) == (T0, T0 + 9 * minute)
    assert first.categories == ("outage",)
    members = [scored(1), *copies, neutral]
    assert first.reach == pytest.approx(sum(reach_score(s.mention) for s in members))
    negative = store.mentions.stories("Acme", *hour, negative_only=True)
    assert [(s.story, s.mentions) for s in negative] == [("x:m1", 4), ("x:m5", 1)]
    assert store.mentions.stories("Acme", T0 - timedelta(hours=2), T0) == []


def test_ingest_write_leaves_the_brands_of_a_stored_mention(tmp_path: Path) -> None:
    """A batch with a mention stored before adds only the new ones (and their brands)."""
    store = Store.open(tmp_path / "s.db")
    store.write_ingest(IngestWrite(now=T0, mentions=[scored(1)]))
    store.write_ingest(
        IngestWrite(now=T0, mentions=[scored(1, brands=("Acme", "Globex")), scored(2), scored(2)])
    )
    rows = store._read("SELECT brand, id FROM mention_brands ORDER BY id, brand")
    assert rows == [("Acme", "m1"), ("Acme", "m2")]
    assert store.mentions.count() == 2


def test_evaluate_write_is_all_or_nothing(tmp_path: Path) -> None:
    """An EvaluateWrite that fails half-way leaves nothing; a good one writes everything."""
    store = Store.open(tmp_path / "s.db")
    alert = sample_alert(id="inc-1#1", incident_id="inc-1")
    with pytest.raises(AttributeError):
        store.write_evaluate(
            EvaluateWrite(
                now=T0, engine_state="{}", events=[opened(), object()], outbox=[(alert, ["hook"])]
            )
        )
    assert store.kv.get(ENGINE_STATE) is None
    assert store.incident_log.recent() == []
    assert store.outbox.pending() == {}
    store.write_evaluate(
        EvaluateWrite(
            now=T0,
            engine_state="{}",
            events=[opened()],
            outbox=[(alert, ["hook"])],
            buckets=[("Acme", 5, "{}"), ("Acme", 50, "{}")],
            prune_buckets_before=10,
            kv={"notify_state": "{}"},
        )
    )
    assert store.kv.get(ENGINE_STATE) == "{}"
    assert store.kv.get("notify_state") == "{}"
    assert [i.id for i in store.incident_log.recent()] == ["inc-1"]
    assert store.outbox.pending() == {"hook": 1}
    assert store.buckets.load() == [("Acme", 50, "{}")]


_V4_MENTIONS = """
CREATE TABLE mentions (
    source TEXT NOT NULL, id TEXT NOT NULL, created_at REAL NOT NULL,
    collected_at REAL NOT NULL, sentiment TEXT NOT NULL, compound REAL NOT NULL,
    reach REAL NOT NULL, data TEXT NOT NULL, author TEXT, tags TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (source, id)
);
CREATE INDEX mentions_collected ON mentions (collected_at);
CREATE TABLE mention_brands (
    brand TEXT NOT NULL, created_at REAL NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL,
    negative INTEGER NOT NULL, PRIMARY KEY (brand, source, id)
);
CREATE INDEX mention_brands_time ON mention_brands (brand, created_at);
CREATE TABLE incidents (
    id TEXT PRIMARY KEY, rule TEXT NOT NULL, brand TEXT NOT NULL, status TEXT NOT NULL,
    level TEXT NOT NULL, peak_level TEXT NOT NULL, opened_at REAL NOT NULL,
    updated_at REAL NOT NULL, resolved_at REAL
);
PRAGMA user_version=4;
"""


def test_a_version_4_file_opens_reads_and_prunes(tmp_path: Path) -> None:
    """A state file of schema 4 (full JSON rows, rowid mention_brands) opens at the current
    version with its mentions readable, prunable, and new ones stored beside them."""
    path = tmp_path / "v4.db"
    conn = sqlite3.connect(path)
    conn.executescript(_V4_MENTIONS)
    old = scored(1, T0 - timedelta(days=40)).mention
    conn.execute(
        "INSERT INTO mentions VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            "x",
            "m1",
            old.created_at.timestamp(),
            old.created_at.timestamp(),
            "negative",
            -0.5,
            11.0,
            json.dumps(old.to_dict()),
            "x:u1",
            json.dumps({"categories": ["outage"], "emotions": [], "story": "x:m1"}),
        ),
    )
    conn.execute(
        "INSERT INTO mention_brands VALUES (?,?,?,?,?)",
        ("Acme", old.created_at.timestamp(), "x", "m1", 1),
    )
    conn.commit()
    conn.close()

    store = Store.open(path)
    assert store._read("PRAGMA user_version") == [(SCHEMA_VERSION,)]
    (ddl,) = store._read("SELECT sql FROM sqlite_master WHERE name = 'mention_brands'")[0]
    assert "WITHOUT ROWID" in ddl
    around = (old.created_at - timedelta(hours=1), old.created_at + timedelta(hours=1))
    (ref,) = store.mentions.top("Acme", *around)
    assert (ref.id, ref.text, ref.author, ref.created_at) == ("m1", old.text, "u1", old.created_at)
    assert store.mentions.top_categories("Acme", *around) == [("outage", 1)]
    assert store.mentions.seen([("x", "m1")]) == {("x", "m1")}
    store.write_ingest(IngestWrite(now=T0, mentions=[scored(1), scored(2)]))
    assert store.mentions.count() == 2
    assert store.mentions.prune(T0 - timedelta(days=1)) == 1
    assert store._read("SELECT id FROM mention_brands") == [("m2",)]
    store.close()
    Store.open(path).close()  # and again: the migration does not run twice


def test_a_file_that_is_not_sqlite_raises_store_error(tmp_path: Path) -> None:
    """Opening a file that is not a SQLite database is a StoreError, not sqlite3's error."""
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match="cannot open state file"):
        Store.open(path)


_SILENCE = Silence("s1", T0, T0 + timedelta(hours=1), "me", "")

PUBLIC: dict[str, Callable[[Store], object]] = {
    "write_ingest": lambda s: s.write_ingest(IngestWrite(now=T0, mentions=[scored(9)])),
    "write_evaluate": lambda s: s.write_evaluate(EvaluateWrite(now=T0, engine_state="{}")),
    "write_brand": lambda s: s.write_brand(BrandWrite(brand="Acme", engine_state="{}")),
    "commit": lambda s: s.commit(now=T0, kv={"a": "b"}),
    "mentions.seen": lambda s: s.mentions.seen([("x", "m1")]),
    "mentions.count": lambda s: s.mentions.count(),
    "mentions.top": lambda s: s.mentions.top("Acme", T0, T0),
    "mentions.search": lambda s: s.mentions.search(MentionQuery(T0, T0, text="a_%")),
    "mentions.top_categories": lambda s: s.mentions.top_categories("Acme", T0, T0),
    "mentions.top_authors": lambda s: s.mentions.top_authors("Acme", T0, T0),
    "mentions.series": lambda s: s.mentions.series("Acme", T0, T0, timedelta(hours=1)),
    "mentions.first_at": lambda s: s.mentions.first_at("Acme", T0, T0),
    "mentions.last_at": lambda s: s.mentions.last_at("Acme", T0, T0),
    "mentions.source_counts": lambda s: s.mentions.source_counts("Acme", T0, T0),
    "mentions.stories": lambda s: s.mentions.stories("Acme", T0, T0),
    "mentions.recent": lambda s: s.mentions.recent("Acme", T0, T0, 10, True),
    "mentions.prune": lambda s: s.mentions.prune(T0),
    "cursors.load": lambda s: s.cursors.load("x"),
    "collected.seen": lambda s: s.collected.seen("x", ["m1"]),
    "collected.prune": lambda s: s.collected.prune(T0),
    "buckets.load": lambda s: s.buckets.load(),
    "kv.get": lambda s: s.kv.get(ENGINE_STATE),
    "kv.set": lambda s: s.kv.set({"digest/daily/hook": "x"}),
    "outbox.due": lambda s: s.outbox.due("hook", T0),
    "outbox.mark_delivered": lambda s: s.outbox.mark_delivered(1, T0),
    "outbox.mark_retry": lambda s: s.outbox.mark_retry(1, T0, "e"),
    "outbox.mark_failed": lambda s: s.outbox.mark_failed(1, T0, "e"),
    "outbox.mute_pending": lambda s: s.outbox.mute_pending(["i"], ["hook"], "drill"),
    "outbox.pending": lambda s: s.outbox.pending(),
    "outbox.backlog": lambda s: s.outbox.backlog(),
    "outbox.deliveries": lambda s: s.outbox.deliveries("i"),
    "outbox.prune": lambda s: s.outbox.prune(T0),
    "incident_log.recent": lambda s: s.incident_log.recent(),
    "incident_log.get": lambda s: s.incident_log.get("i"),
    "incident_log.touching": lambda s: s.incident_log.touching(["Acme"], T0, T0),
    "incident_log.events": lambda s: s.incident_log.events("i"),
    "incident_log.ids": lambda s: s.incident_log.ids("i"),
    "incident_log.notices": lambda s: s.incident_log.notices("i"),
    "incident_log.mark_drill": lambda s: s.incident_log.mark_drill(["i"]),
    "incident_log.drill_ids": lambda s: s.incident_log.drill_ids(["i"]),
    "incident_log.starting_with": lambda s: s.incident_log.starting_with("i"),
    "notes.add": lambda s: s.notes.add("i", "note", "ana", "statement posted", T0),
    "notes.of": lambda s: s.notes.of("i"),
    "notes.assignees": lambda s: s.notes.assignees(["i"]),
    "silence_log.add": lambda s: s.silence_log.add(_SILENCE),
    "silence_log.expire": lambda s: s.silence_log.expire("s1", T0),
    "silence_log.select": lambda s: s.silence_log.select(),
    "ack_log.add": lambda s: s.ack_log.add("i", "me", T0),
    "ack_log.get": lambda s: s.ack_log.get(),
    "vacuum": lambda s: s.vacuum(T0),
    "last_vacuum": lambda s: s.last_vacuum(),
    # the delegations from before the split that the processor and the backtest still call
    "seen": lambda s: s.seen([("x", "m1")]),
    "top_mentions": lambda s: s.top_mentions("Acme", T0, T0),
    "top_categories": lambda s: s.top_categories("Acme", T0, T0),
    "top_authors": lambda s: s.top_authors("Acme", T0, T0),
    "load_buckets": lambda s: s.load_buckets(),
    "load_engine_state": lambda s: s.load_engine_state(),
    "load_kv": lambda s: s.load_kv("a"),
    "incidents": lambda s: s.incidents(),
    "incident_events": lambda s: s.incident_events("i"),
    "silences": lambda s: s.silences(),
    "acks": lambda s: s.acks(),
    "sink_state.get": lambda s: StoreSinkState(s, "hook").get("k"),
    "sink_state.set": lambda s: StoreSinkState(s, "hook").set("k", "v"),
    "sink_state.delete": lambda s: StoreSinkState(s, "hook").delete("k"),
}

WRITES = {
    "write_ingest",
    "write_evaluate",
    "write_brand",
    "commit",
    "mentions.prune",
    "collected.prune",
    "outbox.mark_delivered",
    "outbox.mark_retry",
    "outbox.mark_failed",
    "outbox.mute_pending",
    "incident_log.mark_drill",
    "silence_log.add",
    "silence_log.expire",
    "ack_log.add",
    "vacuum",
    "sink_state.set",
    "sink_state.delete",
}


CONCERNS: dict[str, type] = {
    "mentions": Mentions,
    "cursors": Cursors,
    "collected": Collected,
    "buckets": Buckets,
    "kv": KeyValues,
    "outbox": Outbox,
    "incident_log": Incidents,
    "silence_log": Silences,
    "ack_log": Acks,
    "notes": IncidentNotes,
    "sink_state": StoreSinkState,
}


def test_the_error_table_names_every_public_method() -> None:
    """Every public method of Store and of each concern's object is in the table above (a
    new one must be added); the concerns' static writes run inside Store's typed writes."""
    public = {n for n in dir(Store) if not n.startswith("_") and callable(getattr(Store, n))}
    assert public - {"open", "close", "size_bytes"} == {n for n in PUBLIC if "." not in n}
    for prefix, cls in CONCERNS.items():
        methods = {
            f"{prefix}.{n}"
            for n, v in vars(cls).items()
            if not n.startswith("_") and callable(v) and not isinstance(v, staticmethod)
        }
        assert methods == {n for n in PUBLIC if n.startswith(f"{prefix}.")}, prefix


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_method_raises_store_error_on_a_broken_connection(
    tmp_path: Path, name: str
) -> None:
    """A sqlite3.Error from any read or write (here: the connection went away) leaves the
    package as a StoreError naming the file."""
    store = Store.open(tmp_path / "s.db")
    store._conn.close()
    with pytest.raises(StoreError, match=r"s\.db"):
        PUBLIC[name](store)


@pytest.mark.parametrize("name", sorted(WRITES))
def test_every_write_raises_store_error_on_a_locked_database(tmp_path: Path, name: str) -> None:
    """A write while another process holds the write lock is a StoreError (after the busy
    timeout), and the store works again once the lock is released."""
    path = tmp_path / "s.db"
    store = Store.open(path)
    store._conn.execute("PRAGMA busy_timeout=0")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked"):
            PUBLIC[name](store)
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.write_ingest(IngestWrite(now=T0, mentions=[scored(1)]))
    assert store.mentions.count() == 1


def test_created_at_reads_back_to_the_microsecond(tmp_path: Path) -> None:
    """The compact row keeps no created_at; the column gives it back exactly, microseconds too."""
    store = Store.open(tmp_path / "s.db")
    at = T0.replace(microsecond=123457)
    store.write_ingest(IngestWrite(now=T0, mentions=[scored(1, at)]))
    (ref,) = store.mentions.top("Acme", T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert ref.created_at == at
    assert "created_at" not in json.loads(store._read("SELECT data FROM mentions")[0][0])


def _silence(sid: str, start: datetime, minutes: int, brand: str = "Acme") -> Silence:
    return Silence(sid, start, start + timedelta(minutes=minutes), "ana", "why", brand=brand)


def test_active_silences_follow_time_and_every_writer(tmp_path: Path) -> None:
    """The silences active at a time are read again as time passes a silence's start or
    end, and after a silence is added or expired through this store or by another
    connection to the file (`listener silence` from another process)."""
    path = tmp_path / "s.db"
    store, other = Store.open(path), Store.open(path)

    def active(at: datetime) -> list[str]:
        return [s.id for s in store.silences(active_at=at)]

    store.silence_log.add(_silence("now", T0, 30))
    store.silence_log.add(_silence("later", T0 + timedelta(minutes=10), 30))
    assert active(T0) == ["now"]
    assert active(T0 + timedelta(minutes=10)) == ["later", "now"]  # newest first
    assert active(T0 + timedelta(minutes=30)) == ["later"]
    assert active(T0) == ["now"]  # time may go back
    other.silence_log.add(_silence("cli", T0 - timedelta(minutes=1), 60))
    assert active(T0) == ["now", "cli"]
    assert store.silence_log.expire("now", T0 + timedelta(seconds=1))
    assert active(T0 + timedelta(seconds=2)) == ["cli"]
    assert other.silence_log.expire("cli", T0 + timedelta(seconds=3))
    assert active(T0 + timedelta(seconds=4)) == []
    assert active(T0 + timedelta(minutes=10)) == ["later"]


def test_a_memory_store_reads_its_own_silences_and_acks() -> None:
    """A ``:memory:`` store (a backtest's: no other connection can write it) still reads
    the silences and acks written through it as soon as they are."""
    store = Store.open(":memory:")
    assert store.silences(active_at=T0) == []
    assert store.acks(["i1"]) == {}
    store.silence_log.add(_silence("now", T0, 30))
    assert [s.id for s in store.silences(active_at=T0)] == ["now"]
    assert store.silence_log.expire("now", T0 + timedelta(seconds=1))
    assert store.silences(active_at=T0 + timedelta(seconds=2)) == []
    store.ack_log.add("i1", "ana", T0)
    assert list(store.acks(["i1"])) == ["i1"]


def test_acks_written_by_another_connection_are_read_at_once(tmp_path: Path) -> None:
    """An incident's ack is found as soon as it is stored, by this store or by another
    connection to the file (`listener ack` from another process)."""
    path = tmp_path / "s.db"
    store, other = Store.open(path), Store.open(path)
    assert store.acks(["i1", "i2"]) == {}
    assert store.acks(["i1", "i2"]) == {}
    other.ack_log.add("i1", "ana", T0, "on it")
    assert {k: a.by for k, a in store.acks(["i1", "i2"]).items()} == {"i1": "ana"}
    store.ack_log.add("i2", "bob", T0)
    assert {k: a.by for k, a in store.acks(["i1", "i2"]).items()} == {"i1": "ana", "i2": "bob"}
    assert set(store.acks(["i2"])) == {"i2"}


def test_an_evaluate_write_of_nothing_opens_no_transaction(tmp_path: Path) -> None:
    """An evaluation that changed nothing costs no transaction (no lock, no fsync); one
    that changed anything is written as before."""
    store = Store.open(tmp_path / "s.db")
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    store.write_evaluate(EvaluateWrite(now=T0))
    store.write_evaluate(EvaluateWrite(now=T0, prune_buckets_before=10, prune_brands=()))
    assert statements == []
    store.write_evaluate(EvaluateWrite(now=T0, kv={"notify_state": "{}"}))
    assert statements[0] == "BEGIN IMMEDIATE"
    assert store.load_kv("notify_state") == "{}"


def test_pruning_buckets_of_some_brands_keeps_the_others(tmp_path: Path) -> None:
    """A prune limited to the brands whose buckets the windows dropped deletes only
    theirs; an unlimited one deletes every brand's."""
    store = Store.open(tmp_path / "s.db")
    rows = [(b, k, "{}") for b in ("Acme", "Globex") for k in (60, 120, 180)]
    store.commit(now=T0, buckets=rows)
    store.write_evaluate(EvaluateWrite(now=T0, prune_buckets_before=180, prune_brands=["Acme"]))
    assert sorted((b, k) for b, k, _ in store.load_buckets()) == [
        ("Acme", 180),
        ("Globex", 60),
        ("Globex", 120),
        ("Globex", 180),
    ]
    store.write_evaluate(EvaluateWrite(now=T0, prune_buckets_before=180))
    assert sorted((b, k) for b, k, _ in store.load_buckets()) == [("Acme", 180), ("Globex", 180)]


def test_a_brand_write_replaces_the_brands_buckets_and_state_at_once(tmp_path: Path) -> None:
    """A brand hand-off drops every stored bucket of the brand, writes the ones it brings
    and the engine and other state, in one transaction; other brands' buckets stay."""
    store = Store.open(tmp_path / "s.db")
    store.commit(now=T0, buckets=[("Acme", 60, "{}"), ("Acme", 120, "{}"), ("Globex", 60, "{}")])
    store.write_brand(
        BrandWrite(
            brand="Acme",
            engine_state='{"keys": [], "version": 1}',
            buckets=[("Acme", 180, '{"total":1}')],
            kv={"quiet_until": "{}"},
        )
    )
    assert sorted(store.load_buckets()) == [("Acme", 180, '{"total":1}'), ("Globex", 60, "{}")]
    assert store.load_engine_state() == '{"keys": [], "version": 1}'
    assert store.load_kv("quiet_until") == "{}"
    store.write_brand(BrandWrite(brand="Acme", engine_state="{}"))
    assert store.load_buckets() == [("Globex", 60, "{}")]
