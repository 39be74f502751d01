"""Does the spike explanation say why? Measured on the airline tweets' crowd labels.

    .venv/bin/python bench/explain.py [--data ../shared/data] [--config rules.yaml]
                                      [--rules bench/rules-nab.yaml] [--top 3] [--show 12]

Replays the airline tweets as ``bench/airline_replay.py`` does (six brands by handle, the
shipped rules plus ``volume-spike``), so every incident carries the explanation its
opening alert would have carried (``listener.processor.explain_spike``: the rule's window
against the day before). The file's crowd labels say why each negative tweet was
negative (``negativereason``: Cancelled Flight, Late Flight, Customer Service Issue, Lost
Luggage, ...). For each incident, the **dominant reason** is the most common reason among
the crowd-negative tweets to that airline in the explained window ("Can't Tell" left
out); the explanation **corresponds** when one of its top ``--top`` word, phrase, hashtag
or story drivers holds a word of that reason's vocabulary (:data:`REASON_WORDS`, written
from the reason names before any result was seen).

As a yardstick, the same check is made on the window's most frequent words (no
baseline, no statistic: what a word count of the window would say), and on words drawn
at random from the day before's complaints (what no explanation at all would score).
The correspondence is also split by the explanation's tier: something rose against the
day before, or nothing did and the drivers are what the window is about.
Prints one line per incident (``--show`` of them) and the shares. Skips cleanly when the
data is absent.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

REASON_WORDS: dict[str, frozenset[str]] = {
    "Cancelled Flight": frozenset(
        [
            "cancelled",
            "canceled",
            "cancel",
            "cancels",
            "cancellation",
            "cancellations",
            "flightled",
            "rebook",
            "rebooked",
            "rebooking",
        ]
    ),
    "Late Flight": frozenset(
        [
            "late",
            "delay",
            "delayed",
            "delays",
            "hours",
            "hour",
            "stuck",
            "tarmac",
            "flightr",
            "waiting",
            "wait",
        ]
    ),
    "Customer Service Issue": frozenset(
        [
            "service",
            "customer",
            "hold",
            "phone",
            "call",
            "calls",
            "calling",
            "agent",
            "agents",
            "rude",
            "response",
            "answer",
            "help",
            "hung",
            "representative",
            "rep",
        ]
    ),
    "Lost Luggage": frozenset(["bag", "bags", "luggage", "baggage", "lost", "claim"]),
    "Damaged Luggage": frozenset(["damaged", "broken", "bag", "bags", "luggage", "baggage"]),
    "Flight Booking Problems": frozenset(
        [
            "booking",
            "book",
            "booked",
            "reservation",
            "website",
            "site",
            "ticket",
            "tickets",
            "online",
            "app",
            "change",
        ]
    ),
    "Bad Flight": frozenset(
        ["seat", "seats", "plane", "crew", "wifi", "entertainment", "food", "legroom"]
    ),
    "Flight Attendant Complaints": frozenset(["attendant", "attendants", "crew"]),
    "longlines": frozenset(["line", "lines", "long", "wait", "waiting", "counter", "queue"]),
}
"""Each reason's vocabulary: the words a tweet with that reason would use, from the
reason's name and its everyday synonyms (fixed before the bench was first run)."""
TEXT_KINDS = ("term", "phrase", "hashtag", "story")


def words_of(label: str) -> set[str]:
    from listener.matching.brands import normalise

    return {w.strip("#'\".,!?:;()“”") for w in normalise(label).split()}


def corresponds(labels: Iterable[str], reason: str) -> bool:
    vocabulary = REASON_WORDS.get(reason, frozenset())
    return any(words_of(label) & vocabulary for label in labels)


OUTAGE_WORDS = frozenset(
    [
        "outage",
        "outages",
        "down",
        "broken",
        "crashed",
        "crash",
        "crashes",
        "error",
        "errors",
        "offline",
        "unavailable",
    ]
)
"""The vocabulary of an outage, for the drill's check."""


def _drill(config: Path) -> list[str]:
    """``listener drill`` (the scripted outage, shipped rules) into a state file; each
    opening and escalation explained as its alert was; do outage words lead?"""
    import subprocess
    import tempfile

    from listener.config.load import load_config
    from listener.processor import explain_spike, rule_window
    from listener.store import Store

    with tempfile.TemporaryDirectory() as work:
        state = Path(work) / "drill.db"
        subprocess.run(
            [sys.executable, "-m", "listener", "drill", "-c", str(config), "--quiet-sinks",
             "--state", str(state), "--no-report", "-q"],
            check=True, capture_output=True, cwd=work, timeout=600,
        )  # fmt: skip
        rules = {r.name: r for r in load_config(config).rules}
        cfg = load_config(config)
        store = Store.open(state)
        lines = ["drill (the scripted outage, shipped rules): top 3 drivers of each alert"]
        try:
            for incident in store.incident_log.recent(limit=100):
                for event in store.incident_log.events(incident.id):
                    if event.kind not in ("opened", "escalated"):
                        continue
                    window = rule_window(rules[incident.rule])
                    e = explain_spike(store, cfg, incident.brand, event.at, window)
                    top = [d for d in (e.drivers if e else ()) if d.kind in TEXT_KINDS][:3]
                    lead = bool(top) and bool(words_of(top[0].label) & OUTAGE_WORDS)
                    shown = "; ".join(f"{d.label[:50]} {d.now}/{d.before}" for d in top)
                    lines.append(
                        f"  {'outage leads' if lead else 'outage not first':16} "
                        f"{event.kind} {event.level}: {shown}"
                    )
        finally:
            store.close()
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=REPO / "rules.yaml")
    parser.add_argument("--rules", type=Path, default=REPO / "bench" / "rules-nab.yaml")
    parser.add_argument("--top", type=int, default=3, help="drivers checked per incident")
    parser.add_argument("--show", type=int, default=12, help="incidents printed in full")
    parser.add_argument(
        "--out", default=None, help="results file (default bench/RESULTS.md; - for none)"
    )
    args = parser.parse_args(argv)
    path = args.data / "twitter-airline-sentiment" / "Tweets.csv"
    if not path.exists():
        print(f"skip: {path} not found")
        return 0

    from listener.backtest import parse_map, read_mention_csv, replay_mentions, select_rules
    from listener.config.load import load_config
    from listener.config.schema import BrandConfig
    from listener.matching.brands import normalise
    from listener.scoring.explain import STOPWORDS, brand_words

    sys.path.insert(0, str(REPO / "bench"))
    from airline_replay import AIRLINES, MAPPING, _has

    config = load_config(args.config)
    have = {r.name for r in config.rules}
    extra = [r for r in load_config(args.rules).rules if r.name not in have]
    brands = [BrandConfig(name=n, aliases=[h], handles=[h]) for n, h, _ in AIRLINES]
    config = config.model_copy(update={"brands": brands, "rules": [*config.rules, *extra]})
    rules = select_rules(config, None, default=None, file=str(args.config))
    records = read_mention_csv(path, parse_map([MAPPING]))
    began = time.perf_counter()
    result = replay_mentions(records, config, rules, source=str(path), kind="csv", explain=True)
    elapsed = time.perf_counter() - began

    from listener.backtest import parse_time

    rows: list[tuple[datetime, dict[str, str], str]] = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["tweet_id"] in seen:
                continue
            seen.add(row["tweet_id"])
            rows.append((parse_time(row["tweet_created"]), row, normalise(row["text"])))
    handle = {name: h for name, h, _ in AIRLINES}
    ignore = {b.name: brand_words(b) for b in brands}
    rng = random.Random(7)

    checked = matched = counted = guessed = 0
    per_reason: Counter[tuple[str, bool]] = Counter()
    tiers: Counter[tuple[bool, bool]] = Counter()
    pools: list[int] = []
    lines = []
    for incident in result.incidents:
        opened = incident.changes[0]
        e = opened.explanation
        if e is None:
            continue
        mine = [
            (at, row, text)
            for at, row, text in rows
            if _has(text, handle[incident.brand]) and e.start <= at < e.end
        ]
        reasons = Counter(
            row["negativereason"]
            for _, row, _ in mine
            if row["airline_sentiment"] == "negative"
            and row["negativereason"]
            and row["negativereason"] != "Can't Tell"
        )
        if not reasons:
            continue
        reason, n = reasons.most_common(1)[0]
        top = [d.label for d in e.drivers if d.kind in TEXT_KINDS][: args.top]
        ok = corresponds(top, reason)
        # the yardstick: the window's most frequent words (no baseline, no statistic)
        frequent = Counter(
            w
            for _, row, text in mine
            if row["airline_sentiment"] == "negative"
            for w in {x.strip("#'\".,!?:;()") for x in text.split()}
            if len(w) >= 3
            and w not in STOPWORDS
            and w not in ignore[incident.brand]
            and not w.startswith("@")
        )
        common = sorted(frequent, key=lambda w: (-frequent[w], w))[: args.top]
        # no explanation at all: words drawn at random from the day before's complaints
        pool = sorted(
            {
                w
                for at, row, text in rows
                if _has(text, handle[incident.brand])
                and e.baseline_start <= at < e.start
                and row["airline_sentiment"] == "negative"
                for w in {x.strip("#'\".,!?:;()") for x in text.split()}
                if len(w) >= 3
                and w not in STOPWORDS
                and w not in ignore[incident.brand]
                and not w.startswith("@")
            }
        )
        draws = rng.sample(pool, min(args.top, len(pool))) if pool else []
        pools.append(len(pool))
        checked += 1
        matched += ok
        counted += corresponds(common, reason)
        guessed += corresponds(draws, reason)
        per_reason[(reason, ok)] += 1
        tiers[(e.rose, ok)] += 1
        lines.append(
            f"  {'yes' if ok else 'no ':3} {'rose ' if e.rose else 'about'} "
            f"{incident.rule:<15} {incident.brand:<11} "
            f"{opened.at:%a %d %H:%M}Z  {reason} ({n} of {sum(reasons.values())})  why: "
            + "; ".join(f"{d.label[:40]} {d.now}/{d.before}" for d in e.drivers[: args.top])
        )

    report: list[str] = []

    def say(line: str = "") -> None:
        print(line)
        report.append(line)

    say(
        f"airline replay: {len(result.incidents)} incidents, replayed in {elapsed:.1f} s "
        f"(explanations included); {checked} with a dominant crowd reason in their window"
    )
    for line in lines[: args.show]:
        say(line)
    if len(lines) > args.show:
        say(f"  … {len(lines) - args.show} more")
    if not checked:
        return 0
    say(
        f"\ntop {args.top} drivers name the dominant reason: {matched}/{checked} "
        f"({matched / checked:.0%})"
    )
    say(
        f"window's {args.top} most frequent words (yardstick): {counted}/{checked} "
        f"({counted / checked:.0%})"
    )
    say(
        f"{args.top} random words of the day before's complaints (no explanation): "
        f"{guessed}/{checked} ({guessed / checked:.0%})"
    )
    for rose, name in ((True, "something rose"), (False, "nothing rose: what it is about")):
        yes, no = tiers[(rose, True)], tiers[(rose, False)]
        say(f"  explanations where {name}: {yes}/{yes + no} name it")
    say(f"  (words drawn from {min(pools)}–{max(pools)} distinct words per incident)")
    say("by dominant reason (corresponds / checked):")
    for reason in sorted({r for r, _ in per_reason}):
        yes, no = per_reason[(reason, True)], per_reason[(reason, False)]
        say(f"  {reason:<28} {yes}/{yes + no}")
    say()
    for line in _drill(args.config):
        say(line)
    out = None if args.out == "-" else Path(args.out or REPO / "bench" / "RESULTS.md")
    if out is not None:
        import perf

        command = "bench/explain.py" + (f" --top {args.top}" if args.top != 3 else "")
        written_by = "`bench/explain.py` (bench/README.md, docs/explain.md)"
        perf.write_bench_section(out, perf.EXPLAIN_SECTION, written_by, command, report)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
