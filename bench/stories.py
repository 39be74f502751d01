"""How much of the volume is copies? Replays the airline tweets through StoryIndex.

    .venv/bin/python bench/stories.py [--data DIR] [--check] [--against REF] [--seed-families N]
                                      [--batch N]

Prints mentions, distinct stories, the share of volume that is copies (by reason),
per airline, mentions/s and µs per ``assign`` on one core, in CPU time (with ``--batch
N``, per mention of ``assign_many`` over batches of N, as the ingest stage calls it).
``--check`` compares the near-duplicate flag with exact Jaccard on the token sets:
precision (flagged mentions whose story holds an earlier mention, within the horizon,
with Jaccard >= SIMILARITY) and recall (mentions with such an earlier mention, not
already an exact/URL copy, that were flagged), all pairs found by prefix filtering.
``--against REF`` also replays ``listener/matching/stories.py`` as of the git ref REF
(e.g. ``main``) in the same run, interleaved, and reports both speeds (per ``assign`` and
per ``minhash``) and how many decisions differ. ``--seed-families N`` repeats the
near-duplicate figures with N draws of the permutation seeds, for this tree's scheme and
REF's. Skips cleanly when the data is absent.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from listener.matching import stories as current
from listener.model import Author, Mention

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data"


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


def module_at(ref: str) -> ModuleType:
    """``listener/matching/stories.py`` as of git ``ref``, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{ref}:listener/matching/stories.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("stories_at_ref", f.name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    os.unlink(f.name)
    return module


def replay(
    module: ModuleType, rows: list[tuple[str, Mention]], batch: int = 1
) -> tuple[list[Any], float]:
    """Every mention's assignment, and the seconds spent in ``assign`` (one at a time) or
    ``assign_many`` (in batches of ``batch``)."""
    index = module.StoryIndex()
    mentions = [m for _, m in rows]
    batches = [mentions[i : i + batch] for i in range(0, len(mentions), batch)]
    start = time.process_time()
    if batch == 1:
        out = [index.assign(m) for m in mentions]
    else:
        out = [a for chunk in batches for a in index.assign_many(chunk)]
    return out, time.process_time() - start


def signing(module: ModuleType, texts: list[list[str]]) -> float:
    """µs per ``minhash`` of the texts, best of three passes."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for tokens in texts:
            module.minhash(tokens)
        best = min(best, time.process_time() - start)
    return best / len(texts) * 1e6


def reseed(module: ModuleType, family: int) -> None:
    """Draw the module's permutation seeds from labels ``f{family}-a{i}``/``f{family}-b{i}``
    (family 0: the shipped ``a{i}``/``b{i}``), for the scheme here (``_A``, ``_B``) or the
    one before it (``_SEEDS`` modulo ``_PRIME``): how much do the figures owe to the draw?"""
    prefix = f"f{family}-" if family else ""

    def seed(label: str) -> int:
        return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=8).digest(), "big")

    seeds = [(seed(f"{prefix}a{i}"), seed(f"{prefix}b{i}")) for i in range(32)]
    if hasattr(module, "_SEEDS"):  # (a * h + b) mod 2**61 - 1
        module._SEEDS = [(a % module._PRIME | 1, b % module._PRIME) for a, b in seeds]
    else:
        module._A = np.array([a | 1 for a, _ in seeds], dtype=np.uint64)
        module._B = np.array([b for _, b in seeds], dtype=np.uint64)


def families(
    modules: dict[str, ModuleType], rows: list[tuple[str, Mention]], n: int, batch: int
) -> None:
    """Near-duplicate count, precision and recall with ``n`` seed families per scheme."""
    for name, module in modules.items():
        print(f"\n{name}, {n} seed families (0 = shipped):")
        for family in range(n):
            reseed(module, family)
            assigned, _ = replay(module, rows, batch)
            near = sum(a.reason == "near" for a in assigned)
            print(f"  {family}: near={near}  {check(rows, assigned)}")
        reseed(module, 0)


def check(rows: list[tuple[str, Mention]], assigned: list[Any]) -> str:
    """Precision and recall of ``near`` against exact Jaccard (see the module docstring)."""
    horizon = current.StoryIndex().horizon
    t = Fraction(str(current.SIMILARITY))
    sets = [frozenset(current.story_text(m.text)) for _, m in rows]
    tokens = [current.story_text(m.text) for _, m in rows]
    usable = [len(ts) >= current.MIN_TOKENS for ts in tokens]
    times = [m.created_at for _, m in rows]
    freq = Counter(w for s, ok in zip(sets, usable, strict=True) if ok for w in s)
    postings: dict[str, list[int]] = defaultdict(list)
    best = [Fraction(0)] * len(rows)  # best Jaccard with an earlier mention in the horizon
    pairs: dict[int, list[tuple[int, Fraction]]] = defaultdict(list)
    for i, s in enumerate(sets):
        if not usable[i]:
            continue
        ordered = sorted(s, key=lambda w: (freq[w], w))
        # J >= t needs an overlap >= ceil(t * |s|): the two prefixes of this length share a word
        prefix = ordered[: len(ordered) - math.ceil(t * len(ordered)) + 1]
        candidates = {j for w in prefix for j in postings[w]}
        for j in candidates:
            if times[j] >= times[i] - horizon:
                jac = Fraction(len(s & sets[j]), len(s | sets[j]))
                pairs[i].append((j, jac))
                best[i] = max(best[i], jac)
        for w in prefix:
            postings[w].append(i)
    near = [i for i, a in enumerate(assigned) if a.reason == "near"]
    true_near = 0
    for i in near:  # the best Jaccard with an earlier mention of the story it joined
        in_story = [jac for j, jac in pairs[i] if assigned[j].story == assigned[i].story]
        true_near += bool(in_story) and max(in_story) >= t
    truth = [
        i
        for i, a in enumerate(assigned)
        if best[i] >= t and a.reason not in ("exact", "url", "repost", "repeat")
    ]
    found = sum(assigned[i].reason == "near" for i in truth)
    return (
        f"near vs exact Jaccard >= {float(t)}: precision {true_near}/{len(near)}"
        f" = {true_near / max(len(near), 1):.1%}, recall {found}/{len(truth)}"
        f" = {found / max(len(truth), 1):.1%}"
    )


def report(
    rows: list[tuple[str, Mention]], assigned: list[Any], elapsed: float, batch: int = 1
) -> None:
    reasons: Counter[str] = Counter()
    per_airline: dict[str, Counter[str]] = {}
    stories: dict[str, set[str]] = {}
    for (airline, _), a in zip(rows, assigned, strict=True):
        reasons[a.reason] += 1
        per_airline.setdefault(airline, Counter())[a.reason] += 1
        stories.setdefault(airline, set()).add(a.story)
    total = len(rows)
    copies = total - reasons["new"]
    print(
        f"airline tweets: {total} mentions (duplicate rows removed), "
        f"{reasons['new']} distinct stories"
    )
    print(
        f"copies: {copies} = {copies / total:.1%} of volume  "
        + "  ".join(f"{r}={n}" for r, n in sorted(reasons.items()) if r != "new")
        + f"  (near: similarity >= {current.SIMILARITY}, {current.PERMUTATIONS} permutations)"
    )
    print(f"{'airline':<16}{'mentions':>10}{'stories':>10}{'copies':>10}")
    for airline, counts in sorted(per_airline.items()):
        n = sum(counts.values())
        print(f"{airline:<16}{n:>10}{len(stories[airline]):>10}{(n - counts['new']) / n:>10.1%}")
    print(
        f"speed: {total / elapsed:,.0f} mentions/s on one core, "
        f"{elapsed / total * 1e6:.1f} µs per assign"
        + (f" (assign_many, batches of {batch})" if batch > 1 else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--check", action="store_true", help="precision/recall vs exact Jaccard")
    parser.add_argument("--against", metavar="REF", help="also replay stories.py as of REF")
    parser.add_argument(
        "--seed-families", type=int, default=0, metavar="N", help="near figures for N seed draws"
    )
    parser.add_argument(
        "--batch", type=int, default=1, metavar="N", help="assign_many over batches of N"
    )
    args = parser.parse_args()
    path = args.data / "twitter-airline-sentiment" / "Tweets.csv"
    if not path.exists():
        print(f"skip: {path} not found")
        return 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rows = load(path)
    assigned, elapsed = replay(current, rows, args.batch)
    report(rows, assigned, elapsed, args.batch)
    if args.check:
        print(check(rows, assigned))
    if args.against:
        old = module_at(args.against)
        times: dict[str, list[float]] = {"this tree": [elapsed], args.against: []}
        before, took = replay(old, rows, args.batch)
        times[args.against].append(took)
        for _ in range(2):  # interleaved, best of three each: the machine may be busy
            for name, module in (("this tree", current), (args.against, old)):
                times[name].append(replay(module, rows, args.batch)[1])
        print(f"\n--against {args.against}:")
        report(rows, before, min(times[args.against]), args.batch)
        if args.check:
            print(check(rows, before))
        texts = [
            t for t in (current.story_text(m.text) for _, m in rows) if len(t) >= current.MIN_TOKENS
        ]
        took_sig = {
            name: signing(module, texts) for name, module in (("this", current), ("ref", old))
        }
        moved = sum(a.story != b.story for a, b in zip(assigned, before, strict=True))
        changed = sum(a.reason != b.reason for a, b in zip(assigned, before, strict=True))
        ratio = min(times[args.against]) / min(times["this tree"])
        print(
            f"\nbest of 3, µs per assign: {args.against} "
            f"{min(times[args.against]) / len(rows) * 1e6:.1f}, this tree "
            f"{min(times['this tree']) / len(rows) * 1e6:.1f} ({ratio:.2f}x faster); "
            f"decisions differing: {changed} reasons, {moved} stories of {len(rows)}"
        )
        print(
            f"best of 3, µs per minhash ({len(texts)} texts of >= {current.MIN_TOKENS} words): "
            f"{args.against} {took_sig['ref']:.1f}, this tree {took_sig['this']:.1f} "
            f"({took_sig['ref'] / took_sig['this']:.1f}x faster)"
        )
    if args.seed_families:
        modules = {"this tree": current}
        if args.against:
            modules[args.against] = old
        families(modules, rows, args.seed_families, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
