"""Brand matching benchmark: texts/s for BrandMatcher with and without boolean queries.

Run from the repository root::

    .venv/bin/python bench/matching.py                 # data from ../shared/data
    .venv/bin/python bench/matching.py --data DIR      # another data folder
    .venv/bin/python bench/matching.py --synthetic     # generated texts, no data needed
    .venv/bin/python bench/matching.py --repeat 5      # best of 5 timed passes (default 3)
    .venv/bin/python bench/matching.py --brands 1,1000 # brand counts of the scaling table

Texts: ``twitter-airline-sentiment/Tweets.csv`` (exact duplicate rows dropped) when
present, else 20,000 synthetic airline-ish posts (seeded). Six airlines are the brands,
named as the dataset's ``airline`` column names them (its "Delta" tweets are addressed
to @JetBlue, so that brand watches JetBlue).

Configurations, each timed one text at a time on one core (the process pins itself to
CPU 0 where it can) after a warm-up pass, best of ``--repeat`` passes:

- ``aliases``: aliases, handles, hashtags and exclusion phrases only (the regex matcher);
- ``queries``: the same brands, each also with a ``query`` (phrases, case-sensitive
  terms, wildcards, ``NEAR``) and an ``exclude``, matched with ``language``/``source``
  given so the filters run;
- ``document``: :class:`listener.matching.query.Document` alone, the per-mention
  preparation the queries share.

Besides texts/s it prints how many texts matched some brand and, with the dataset, how
often the labelled airline was among the matches (a sanity check of the queries, not a
quality metric).

Then the scaling table: texts/s at 1, 10, 100 and 1,000 brands (``--brands``): the six
airlines, then other real airlines (they occur in the tweets), then generated company
names (aliases, handle, hashtag, an exclusion; with ``queries`` also a query and an
exclude each). ``old`` is the per-brand regex loop the automaton replaced
(``tests/support/brand_reference.py``), timed on a sample of the texts where it is slow
(at least 300 texts, about a second a pass); ``new`` is :class:`BrandMatcher` on every
text; ``ratio`` is new/old, both measured in the same run. ``same`` counts the texts of
the sample on which both return the same brands; exit status 1 if any differs.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# the repository root must be on the path first (tests.support)
from listener.config.schema import BrandConfig  # noqa: E402
from listener.matching.brands import BrandMatcher  # noqa: E402
from listener.matching.query import Document  # noqa: E402
from tests.support.brand_reference import ReferenceMatcher  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("LISTENER_SHARED_DIR", REPO.parent / "shared")) / "data"

# name (as the dataset's airline column) -> (aliases, handles, hashtags, query, exclude)
AIRLINES: dict[str, tuple[list[str], list[str], list[str], str, str]] = {
    "Virgin America": (
        ["Virgin America"],
        ["VirginAmerica"],
        ["VirginAmerica"],
        '@virginamerica OR "virgin america" OR ({Virgin} NEAR/2 (flight* OR airline* OR plane*))',
        "giveaway OR sweepstakes OR (hiring NEAR/3 (job* OR apply))",
    ),
    "United": (
        ["United Airlines"],
        ["united"],
        ["UnitedAirlines"],
        "@united OR #unitedairlines OR ({United} NEAR/3 "
        "(flight* OR airline* OR gate OR crew OR agent* OR luggage OR bag*))",
        '"united states" OR "manchester united" OR "united nations" OR giveaway',
    ),
    "Southwest": (
        ["Southwest Airlines"],
        ["SouthwestAir"],
        ["SouthwestAir"],
        "@southwestair OR #southwestair OR ({Southwest} NEAR/3 (flight* OR airline* OR bag*))",
        '"southwest florida" OR giveaway OR (source:test AND NOT lang:en)',
    ),
    "Delta": (
        ["JetBlue"],
        ["JetBlue"],
        ["JetBlue"],
        "@jetblue OR jetblue OR #jetblue* OR ({Delta} NEAR/3 (flight* OR airline*))",
        '"delta force" OR "delta variant" OR giveaway',
    ),
    "US Airways": (
        ["US Airways"],
        ["USAirways"],
        ["USAirways"],
        '@usairways OR "us airways" OR usairways OR #usairways',
        "giveaway OR sweepstakes",
    ),
    "American": (
        ["American Airlines"],
        ["AmericanAir"],
        ["AmericanAir"],
        '@americanair OR #americanair OR "american airlines" OR '
        "({American} NEAR/2 (flight* OR airline* OR eagle))",
        '"american express" OR "native american" OR giveaway',
    ),
}


def brands(with_queries: bool) -> list[BrandConfig]:
    """The six airline brands, with or without their query and exclude."""
    out: list[BrandConfig] = []
    for name, (aliases, handles, hashtags, query, exclude) in AIRLINES.items():
        extra = {"query": query, "exclude": exclude} if with_queries else {}
        out.append(
            BrandConfig.model_validate(
                {
                    "name": name,
                    "aliases": aliases,
                    "handles": handles,
                    "hashtags": hashtags,
                    "exclusions": ["job opening"],
                    **extra,
                }
            )
        )
    return out


def load_airline(data: Path) -> tuple[list[str], list[str]] | None:
    """Texts and airline labels of the airline dataset, or None when it is absent."""
    path = data / "twitter-airline-sentiment" / "Tweets.csv"
    if not path.exists():
        print(f"note: {path} not found; using synthetic texts")
        return None
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(dict.fromkeys(tuple(row) for row in reader))
    col = {name: i for i, name in enumerate(header)}
    print(f"texts: {len(rows)} from {path}")
    return [r[col["text"]] for r in rows], [r[col["airline"]] for r in rows]


SYNTHETIC_WORDS = (  # noqa: SIM905 - one readable line of vocabulary
    "the flight was late again and my bag is lost thanks for nothing great crew "
    "gate agent rebooked cancelled delayed refund seat upgrade wifi app customer service "
    "hold for hours weather Boston Dallas today tomorrow never again love it 😡 ✈️ 👍"
).split()
SYNTHETIC_BRANDS = [
    "@united",
    "United",
    "@AmericanAir",
    "American Airlines",
    "@SouthwestAir",
    "Southwest",
    "@JetBlue",
    "#jetbluerocks",
    "@USAirways",
    "US Airways",
    "@VirginAmerica",
    "Virgin",
    "the United States",
    "American Express",
]


def synthetic(count: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """``count`` short posts of 8-25 words, most naming one airline somewhere."""
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(count):
        words = rng.choices(SYNTHETIC_WORDS, k=rng.randint(8, 25))
        if rng.random() < 0.9:
            words.insert(rng.randrange(len(words) + 1), rng.choice(SYNTHETIC_BRANDS))
        texts.append(" ".join(words))
    print(f"texts: {count} synthetic")
    return texts, [""] * count


def best_rate(run: Callable[[], object], count: int, repeat: int) -> float:
    """Texts per second over the best of ``repeat`` timed passes, after one warm-up."""
    run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def report(
    name: str, matcher: BrandMatcher, texts: Sequence[str], labels: Sequence[str], repeat: int
) -> None:
    """Time ``matcher`` over ``texts`` and print one row."""

    def run() -> list[tuple[str, ...]]:
        match = matcher.match
        return [match(t, language="en", source="twitter") for t in texts]

    rate = best_rate(run, len(texts), repeat)
    found = run()
    matched = sum(1 for f in found if f)
    labelled = [(f, label) for f, label in zip(found, labels, strict=True) if label]
    recall = (
        f"{sum(label in f for f, label in labelled) / len(labelled):6.1%}" if labelled else "     -"
    )
    print(f"{name:<10} {rate:>12,.0f} {matched:>10,} {recall:>12}")


OTHER_AIRLINES = (  # real airlines, so the larger configurations also hit in the tweets
    "Delta Air Lines",
    "Alaska Airlines",
    "Frontier",
    "Spirit",
    "Hawaiian Airlines",
    "Allegiant",
    "Sun Country",
    "Air Canada",
    "British Airways",
    "Lufthansa",
    "Emirates",
    "Ryanair",
    "easyJet",
    "Qantas",
    "WestJet",
    "Avianca",
)
SYLLABLES = "ka lo mi zen tor vex pra quo lin dar sul ber nox fi ta gro mar vel cor ion".split()  # noqa: SIM905
SUFFIXES = ("", "", " Corp", " Labs", " Air", " Bank", " Foods", " Systems", " & Co")


def generated_brand(name: str, with_queries: bool) -> BrandConfig:
    """A brand named ``name``: alias, handle, hashtag, an exclusion, maybe a query."""
    compact = "".join(ch for ch in name if ch.isalnum())
    fields: dict[str, object] = {
        "name": name,
        "aliases": [name],
        "handles": [compact],
        "hashtags": [compact + "fail"],
        "exclusions": [f"{name} stock"],
    }
    if with_queries:
        first = name.split()[0]
        fields["query"] = (
            f'@{compact.lower()} OR "{name}" OR '
            f"({{{first}}} NEAR/3 (flight* OR outage OR refund* OR service))"
        )
        fields["exclude"] = f'giveaway OR "{name} stock" OR (hiring NEAR/3 job*)'
    return BrandConfig.model_validate(fields)


def scaled_brands(count: int, with_queries: bool, seed: int = 11) -> list[BrandConfig]:
    """``count`` brands: the six airlines, other airlines, then generated names."""
    out = brands(with_queries)[:count]
    names = {b.name for b in out}
    rng = random.Random(seed)
    others = iter(OTHER_AIRLINES)
    while len(out) < count:
        name = next(others, None)
        if name is None:
            stem = "".join(rng.choices(SYLLABLES, k=rng.randint(2, 3))).title()
            name = stem + rng.choice(SUFFIXES)
        if name not in names:
            names.add(name)
            out.append(generated_brand(name, with_queries))
    return out


class Matcher(Protocol):
    def match(
        self, text: str, *, language: str | None = None, source: str | None = None
    ) -> tuple[str, ...]: ...


def timed(
    matcher: Matcher, texts: Sequence[str], repeat: int
) -> tuple[float, list[tuple[str, ...]]]:
    """Texts/s of ``matcher`` (best of ``repeat`` passes) and its decisions."""

    def run() -> list[tuple[str, ...]]:
        match = matcher.match
        return [match(t, language="en", source="twitter") for t in texts]

    return best_rate(run, len(texts), repeat), run()


def scaling(texts: Sequence[str], counts: Sequence[int], repeat: int) -> bool:
    """Print old vs new texts/s per brand count; False if any decision differs."""
    print()
    print(f"{'brands':>6} {'config':<8} {'old texts/s':>12} {'new texts/s':>12} {'ratio':>8}  same")
    agree = True
    for count in counts:
        for with_queries in (False, True):
            config = scaled_brands(count, with_queries)
            new_rate, new_found = timed(BrandMatcher(config), texts, repeat)
            sample = texts[: max(300, min(len(texts), 30_000 // count))]
            old_repeat = repeat if len(sample) == len(texts) else 1
            old_rate, old_found = timed(ReferenceMatcher(config), sample, old_repeat)
            same = sum(a == b for a, b in zip(old_found, new_found, strict=False))
            agree = agree and same == len(sample)
            print(
                f"{count:>6} {'queries' if with_queries else 'aliases':<8} {old_rate:>12,.0f} "
                f"{new_rate:>12,.0f} {new_rate / old_rate:>7.1f}x  {same}/{len(sample)}"
            )
    return agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--synthetic", action="store_true", help="generated texts only")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (best is kept)")
    parser.add_argument(
        "--brands",
        default="1,10,100,1000",
        help="brand counts of the scaling table, comma-separated (empty: no table)",
    )
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {0})
        except OSError:
            print("note: could not pin to CPU 0; timing may use several cores")
    loaded = None if args.synthetic else load_airline(args.data)
    texts, labels = loaded if loaded is not None else synthetic(20_000)

    print(f"{'config':<10} {'texts/s':>12} {'matched':>10} {'label recall':>12}")
    report("aliases", BrandMatcher(brands(with_queries=False)), texts, labels, args.repeat)
    report("queries", BrandMatcher(brands(with_queries=True)), texts, labels, args.repeat)
    rate = best_rate(lambda: [Document.of(t) for t in texts], len(texts), args.repeat)
    print(f"{'document':<10} {rate:>12,.0f} {'-':>10} {'-':>12}")
    print(f"python {sys.version.split()[0]}, {len(AIRLINES)} brands, one text at a time")
    counts = [int(c) for c in args.brands.split(",") if c.strip()]
    if counts and not scaling(texts, counts, args.repeat):
        print("decisions differ between the old and the new matcher")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
