"""How much of the volume is copies? Replays the airline tweets through StoryIndex.

    .venv/bin/python bench/stories.py [--data ../shared/data]

Prints mentions, distinct stories, the share of volume that is copies (by reason),
per airline, and mentions/s on one core. Skips cleanly when the data is absent.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from listener.matching.stories import StoryIndex
from listener.model import Author, Mention

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(path: Path) -> list[tuple[str, Mention]]:
    rows = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["tweet_id"] in seen:  # the file repeats some rows (see SOURCE.md)
                continue
            seen.add(row["tweet_id"])
            at = datetime.strptime(row["tweet_created"], "%Y-%m-%d %H:%M:%S %z")
            rows.append(
                (
                    row["airline"],
                    Mention(
                        source="x",
                        id=row["tweet_id"],
                        text=row["text"],
                        created_at=at,
                        author=Author(handle=row["name"]),
                    ),
                )
            )
    rows.sort(key=lambda r: r[1].created_at)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    args = parser.parse_args()
    path = args.data / "twitter-airline-sentiment" / "Tweets.csv"
    if not path.exists():
        print(f"skip: {path} not found")
        return 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rows = load(path)
    index = StoryIndex()
    reasons: Counter[str] = Counter()
    per_airline: dict[str, Counter[str]] = {}
    stories: dict[str, set[str]] = {}
    start = time.perf_counter()
    for airline, m in rows:
        a = index.assign(m)
        reasons[a.reason] += 1
        per_airline.setdefault(airline, Counter())[a.reason] += 1
        stories.setdefault(airline, set()).add(a.story)
    elapsed = time.perf_counter() - start
    total = len(rows)
    copies = total - reasons["new"]
    print(
        f"airline tweets: {total} mentions (duplicate rows removed), "
        f"{reasons['new']} distinct stories"
    )
    print(
        f"copies: {copies} = {copies / total:.1%} of volume  "
        + "  ".join(f"{r}={n}" for r, n in sorted(reasons.items()) if r != "new")
    )
    print(f"{'airline':<16}{'mentions':>10}{'stories':>10}{'copies':>10}")
    for airline, counts in sorted(per_airline.items()):
        n = sum(counts.values())
        print(f"{airline:<16}{n:>10}{len(stories[airline]):>10}{(n - counts['new']) / n:>10.1%}")
    print(f"speed: {total / elapsed:,.0f} mentions/s on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
