"""Replay the airline tweets (Feb 2015) as six brands and explain each incident opened.

    .venv/bin/python bench/airline_replay.py [--data ../shared/data] [--config rules.yaml]
                                             [--rules bench/rules-nab.yaml] [--rule NAME]
                                             [--by handle|column]

The tweets (``twitter-airline-sentiment/Tweets.csv``) are read with the backtest's CSV
column mapping (``text=text,created_at=tweet_created,id=tweet_id,author=name``), sorted
by ``tweet_created`` and de-duplicated by tweet id (the processor's own ``(source, id)``
dedup), and replayed minute by minute through the daemon's Processor
(``listener.backtest.replay_mentions``): matching, the default sentiment scorer, windows,
rules. The six brands are matched by handle only: @united, @AmericanAir, @SouthwestAir,
@Delta, @USAirways, @VirginAmerica; with ``--by column`` each tweet counts for the airline
the file's ``airline`` column names instead (``--map ...,brand=airline``: the file's
"Delta" rows are nearly all tweets to @JetBlue, which the output shows). The rules are
those of ``--config`` (default: the shipped rules.yaml) plus the rules of ``--rules``
(default: bench/rules-nab.yaml, the volume-spike rule) that ``--config`` lacks.
Each incident is printed with the facts that opened it and, from the file's own columns,
context that explains it: the brand's tweets per day, and the crowd's sentiment, negative
reasons and hashtags in the hour before it opened. Skips cleanly when the data is absent.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
PACIFIC = timezone(timedelta(hours=-8))  # every tweet_created in the file is -0800

AIRLINES = (  # brand name, handle, the value of the file's `airline` column
    ("United", "@united", "United"),
    ("American", "@AmericanAir", "American"),
    ("Southwest", "@SouthwestAir", "Southwest"),
    ("Delta", "@Delta", "Delta"),
    ("US Airways", "@USAirways", "US Airways"),
    ("Virgin America", "@VirginAmerica", "Virgin America"),
)
MAPPING = "text=text,created_at=tweet_created,id=tweet_id,author=name"


def _local(at: datetime) -> str:
    return f"{at.astimezone(PACIFIC):%a %m-%d %H:%M} -0800"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=REPO / "rules.yaml")
    parser.add_argument("--rules", type=Path, default=REPO / "bench" / "rules-nab.yaml")
    parser.add_argument("--rule", action="append", help="replay only these rules")
    parser.add_argument(
        "--by",
        choices=["handle", "column"],
        default="handle",
        help="brand of a tweet: the airline handles it mentions (default), or the file's "
        "`airline` column (--map brand=airline)",
    )
    args = parser.parse_args(argv)
    path = args.data / "twitter-airline-sentiment" / "Tweets.csv"
    if not path.exists():
        print(f"skip: {path} not found")
        return 0

    from listener.backtest import (
        format_report,
        parse_map,
        read_mention_csv,
        replay_mentions,
        select_rules,
    )
    from listener.config.load import load_config
    from listener.config.schema import BrandConfig

    config = load_config(args.config)
    have = {r.name for r in config.rules}
    extra = [r for r in load_config(args.rules).rules if r.name not in have] if args.rules else []
    brands = [BrandConfig(name=n, aliases=[h], handles=[h]) for n, h, _ in AIRLINES]
    config = config.model_copy(update={"brands": brands, "rules": [*config.rules, *extra]})
    rules = select_rules(config, args.rule, default=None, file=str(args.config))

    mapping = MAPPING + (",brand=airline" if args.by == "column" else "")
    records = read_mention_csv(path, parse_map([mapping]))
    result = replay_mentions(records, config, rules, source=str(path), kind="csv")
    print(
        f"rules from {args.config}"
        + (f" + {', '.join(r.name for r in extra)} from {args.rules}" if extra else "")
        + (
            f"; brands matched by handle: {', '.join(h for _, h, _ in AIRLINES)}"
            if args.by == "handle"
            else "; brands from the file's airline column (--map ...,brand=airline)"
        )
        + f"\nmapping: --map {mapping}\n"
    )
    print("\n".join(format_report(result)))
    _explain(path, result)
    return 0


def _has(text: str, handle: str) -> bool:
    """Whether normalised ``text`` holds ``handle`` as a whole word (as the matcher does)."""
    return re.search(rf"(?<!\w){re.escape(handle.lower())}(?!\w)", text) is not None


def _explain(path: Path, result: object) -> None:
    from listener.backtest import BacktestResult, parse_time
    from listener.matching.brands import normalise

    assert isinstance(result, BacktestResult)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["tweet_id"] not in seen:
                seen.add(row["tweet_id"])
                rows.append(row)
    by_airline: dict[str, list[tuple[datetime, dict[str, str]]]] = {}
    for row in rows:
        by_airline.setdefault(row["airline"], []).append((parse_time(row["tweet_created"]), row))
    column = {name: airline for name, _, airline in AIRLINES}

    print("\nhandles in the text by the file's airline column (tweets; duplicates removed):")
    handles = [h for _, h, _ in AIRLINES] + ["@JetBlue"]
    print(f"  {'':<15}" + "".join(h.rjust(15) for h in handles))
    for name, _, airline in AIRLINES:
        texts = [normalise(row["text"]) for _, row in by_airline.get(airline, [])]
        found = [sum(_has(t, h) for t in texts) for h in handles]
        print(f"  {name:<15}" + "".join(str(n).rjust(15) for n in found))

    print("\nper-day tweets by the file's airline column (local -0800 dates):")
    days = sorted({at.astimezone(PACIFIC).date() for at, _ in by_airline[AIRLINES[0][2]]})
    print(f"  {'':<15}" + "".join(f"{d:%m-%d}".rjust(7) for d in days))
    for name, _, airline in AIRLINES:
        counts = Counter(at.astimezone(PACIFIC).date() for at, _ in by_airline.get(airline, []))
        print(f"  {name:<15}" + "".join(str(counts.get(d, 0)).rjust(7) for d in days))

    print("\nincidents opened per rule, brand and local day:")
    opened = Counter(
        (i.rule, i.brand, i.opened_at.astimezone(PACIFIC).date()) for i in result.incidents
    )
    for rule in result.rules:
        print(f"  {rule}:")
        for name, _, _ in AIRLINES:
            cells = "".join(str(opened.get((rule, name, d), "")).rjust(7) for d in days)
            if cells.strip():
                print(f"    {name:<13}" + cells)
    levels = Counter((i.rule, i.peak_level) for i in result.incidents)
    print("  peak levels: " + ", ".join(f"{r} {lv} {c}" for (r, lv), c in sorted(levels.items())))

    print("\nexplanations (the hour before each incident opened, from the file's crowd labels):")
    for n, incident in enumerate(result.incidents, 1):
        airline = column.get(incident.brand, incident.brand)
        opened = incident.opened_at
        hour = [
            row
            for at, row in by_airline.get(airline, [])
            if opened - timedelta(hours=1) <= at < opened
        ]
        day_before = [
            row
            for at, row in by_airline.get(airline, [])
            if opened - timedelta(days=1, hours=1) <= at < opened - timedelta(days=1)
        ]
        sentiment = Counter(row["airline_sentiment"] for row in hour)
        reasons = Counter(row["negativereason"] for row in hour if row["negativereason"])
        top = ", ".join(f"{r} {c}" for r, c in reasons.most_common(3)) or "none"
        tags = Counter(
            word.lower().rstrip(".,!?:;")
            for row in hour
            for word in row["text"].split()
            if word.startswith("#") and len(word) > 1
        )
        hashtags = ", ".join(f"{t} {c}" for t, c in tags.most_common(3) if c > 1) or "none"
        print(
            f"  {n}. {incident.rule} / {incident.brand}, opened {_local(opened)} "
            f"at {incident.level}, peak {incident.peak_level}: {len(hour)} tweets in the hour "
            f"before ({len(day_before)} in the same hour a day earlier); "
            f"{sentiment.get('negative', 0)} negative, {sentiment.get('neutral', 0)} neutral, "
            f"{sentiment.get('positive', 0)} positive; negative reasons: {top}; "
            f"hashtags: {hashtags}"
        )
        for row in hour[:2]:
            text = " ".join(row["text"].split())
            print(f"       e.g. {text[:110]}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
