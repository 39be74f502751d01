"""Store persistence benchmark: bytes and microseconds per stored mention.

    .venv/bin/python bench/store_bytes.py [--data ../shared/data] [--batch 50] [--limit N]
                                          [--memory]

Stores the airline tweets (``twitter-airline-sentiment/Tweets.csv`` under ``--data``:
14,640 mentions, each matched to its airline, sentiment from the crowd's label) through
:meth:`listener.store.Store.write_ingest` (``Store.commit`` where that is all there is) in
batches of ``--batch`` (one transaction each, as one poll), into a fresh state file on disk
(``--memory``: ``:memory:``, the cost without fsync). Prints the SQLite pages in use per
mention (database pages minus free pages, times the page size, over the mentions stored:
the ``mentions`` and ``mention_brands`` tables and their indexes) and the wall time of the
store writes per mention. Only the store is timed: the mentions are scored up front.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from listener.model import (  # noqa: E402 - needs the repository root on the path
    Author,
    Mention,
    ScoredMention,
    Sentiment,
)
from listener.store import Store  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
_COMPOUND = {"negative": -0.6, "neutral": 0.0, "positive": 0.6}


def _reach(m: Mention) -> dict[str, float]:
    """The ``reach`` argument where ScoredMention carries it (before, the store computed it)."""
    if "reach" not in ScoredMention.__dataclass_fields__:
        return {}
    from listener.scoring.reach import reach_score

    return {"reach": reach_score(m)}


def airline_mentions(path: Path, limit: int | None) -> list[ScoredMention]:
    out: list[ScoredMention] = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            created = datetime.strptime(row["tweet_created"], "%Y-%m-%d %H:%M:%S %z")
            m = Mention(
                source="x",
                id=row["tweet_id"],
                text=row["text"],
                created_at=created.astimezone(UTC),
                url=f"https://x.com/{row['name']}/status/{row['tweet_id']}",
                author=Author(handle=row["name"]),
            )
            label = row["airline_sentiment"]
            categories = ("delay",) if row["negativereason"] == "Late Flight" else ()
            out.append(
                ScoredMention(
                    m,
                    (row["airline"],),
                    Sentiment(label, _COMPOUND[label]),  # type: ignore[arg-type]
                    categories,
                    ("anger",) if label == "negative" else (),
                    story=f"{m.source}:{m.id}",
                    **_reach(m),
                )
            )
            if limit is not None and len(out) >= limit:
                break
    return out


def _write(store: Store, batch: Sequence[ScoredMention], now: datetime) -> None:
    write = getattr(store, "write_ingest", None)
    if write is None:  # the store before the typed writes
        store.commit(now=now, mentions=batch)
        return
    from listener.store import IngestWrite

    write(IngestWrite(now=now, mentions=tuple(batch)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch", type=int, default=50, help="mentions per transaction")
    parser.add_argument("--limit", type=int, help="store at most this many mentions")
    parser.add_argument("--memory", action="store_true", help="an in-memory store (no fsync)")
    args = parser.parse_args(argv)
    scored = airline_mentions(args.data / "twitter-airline-sentiment" / "Tweets.csv", args.limit)
    now = datetime(2015, 2, 25, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(":memory:" if args.memory else Path(tmp) / "state.db")
        elapsed = 0.0
        for i in range(0, len(scored), args.batch):
            batch = scored[i : i + args.batch]
            t0 = time.perf_counter()
            _write(store, batch, now)
            elapsed += time.perf_counter() - t0
        stored = store.mentions.count()
        conn = store._conn  # a bench reads the page counts
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        store.close()
    print(f"mentions stored:      {stored:,} (batches of {args.batch})")
    print(f"bytes per mention:    {(pages - free) * size / stored:,.0f}")
    print(f"store µs per mention: {elapsed / stored * 1e6:,.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
