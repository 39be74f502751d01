"""Sentiment benchmark: bare VADER vs the crisis-aware default scorer (and, optionally, a model).

Run from the repository root::

    .venv/bin/python bench/sentiment.py                      # data from ../shared/data
    .venv/bin/python bench/sentiment.py --data DIR           # another data folder
    .venv/bin/python bench/sentiment.py --transformers MODEL # add listener.scoring.transformers
    .venv/bin/python bench/sentiment.py --airline-raw        # airline text as published

It reads (each dataset is skipped with a message when its folder is absent):

- ``tweeteval-sentiment/val_text.txt`` + ``val_labels.txt`` (0 negative, 1 neutral,
  2 positive): the official TweetEval metric, macro-averaged recall over the 3 classes.
- ``vader-groundtruth/tweets_GroundTruth.txt`` (``id<TAB>mean<TAB>text``, mean of ≥ 20
  human ratings on -4..+4): 3-class accuracy and macro-F1 with the truth at ±0.05 of the
  mean rating (positive ≥ 0.05, negative ≤ -0.05) against each scorer's own label, and
  Pearson r of the compound score vs the mean rating.
- ``twitter-airline-sentiment/Tweets.csv``: negative precision, recall and F1 (label
  ``negative`` vs not), after dropping exact duplicate rows and sorting by
  ``tweet_created``. By default the publisher's global find-and-replace is undone first
  ("Late Flight" -> "late", "Cancelled Flight" -> "cancel", so "Cancelled Flightled" reads
  "cancelled" again, as the tweet was written); ``--airline-raw`` scores the text as
  published.
- Speed: texts/s over the whole airline set (or the TweetEval texts when it is absent) on
  one core: the process pins itself to CPU 0 (``os.sched_setaffinity``) where it can, warms
  each scorer up on 500 texts, then times ``--repeat`` passes (default 3) one text at a
  time and reports the best pass, as ``timeit`` does, because other work on the machine
  only ever slows a pass down. A transformers model is timed once, through
  ``score_batch``, on whatever device it loaded onto.

Every ratio column is the scorer's figure divided by bare VADER's. Exit status 0.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from listener.model import Sentiment, SentimentLabel
from listener.scoring.crisis import CrisisScorer
from listener.scoring.sentiment import VaderScorer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("LISTENER_SHARED_DIR", REPO.parent / "shared")) / "data"
TWEETEVAL_LABELS: dict[str, SentimentLabel] = {"0": "negative", "1": "neutral", "2": "positive"}
CLASSES: tuple[SentimentLabel, ...] = ("negative", "neutral", "positive")
_ARTEFACTS = re.compile(r"Late Flight|Cancelled Flight")
_REPAIR = {"Late Flight": "late", "Cancelled Flight": "cancel"}

BatchScore = Callable[[Sequence[str]], list[Sentiment]]


@dataclass
class Column:
    """One scorer under test and the figures measured for it."""

    name: str
    run: BatchScore
    repeat: int = 3
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class Datasets:
    tweeteval: tuple[list[str], list[SentimentLabel]] | None
    vader: tuple[list[str], list[float]] | None
    airline: tuple[list[str], list[bool]] | None


def load_tweeteval(data: Path) -> tuple[list[str], list[SentimentLabel]] | None:
    folder = data / "tweeteval-sentiment"
    text_path, label_path = folder / "val_text.txt", folder / "val_labels.txt"
    if not (text_path.exists() and label_path.exists()):
        print(f"skip TweetEval: {text_path} or {label_path} not found")
        return None
    texts = text_path.read_text(encoding="utf-8").split("\n")
    labels = label_path.read_text(encoding="utf-8").split()
    texts = texts[: len(labels)]
    return texts, [TWEETEVAL_LABELS[label] for label in labels]


def load_vader(data: Path) -> tuple[list[str], list[float]] | None:
    path = data / "vader-groundtruth" / "tweets_GroundTruth.txt"
    if not path.exists():
        print(f"skip VADER ground truth: {path} not found")
        return None
    texts: list[str] = []
    means: list[float] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t", 2)
        if len(parts) == 3:
            means.append(float(parts[1]))
            texts.append(parts[2])
    return texts, means


def load_airline(data: Path, raw: bool) -> tuple[list[str], list[bool]] | None:
    path = data / "twitter-airline-sentiment" / "Tweets.csv"
    if not path.exists():
        print(f"skip airline tweets: {path} not found")
        return None
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(dict.fromkeys(tuple(row) for row in reader))  # exact duplicates out, in order
    col = {name: i for i, name in enumerate(header)}
    rows.sort(key=lambda row: row[col["tweet_created"]])
    texts = [row[col["text"]] for row in rows]
    if not raw:
        texts = [_ARTEFACTS.sub(lambda m: _REPAIR[m.group(0)], text) for text in texts]
    return texts, [row[col["airline_sentiment"]] == "negative" for row in rows]


def macro_recall(truth: Sequence[str], pred: Sequence[str]) -> float:
    recalls = []
    for cls in CLASSES:
        total = sum(1 for t in truth if t == cls)
        hit = sum(1 for t, p in zip(truth, pred, strict=True) if t == cls and p == cls)
        recalls.append(hit / total if total else 0.0)
    return sum(recalls) / len(recalls)


def prf(truth: Sequence[bool], pred: Sequence[bool]) -> tuple[float, float, float]:
    tp = sum(1 for t, p in zip(truth, pred, strict=True) if t and p)
    fp = sum(1 for t, p in zip(truth, pred, strict=True) if not t and p)
    fn = sum(1 for t, p in zip(truth, pred, strict=True) if t and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def macro_f1(truth: Sequence[str], pred: Sequence[str]) -> float:
    scores = [prf([t == cls for t in truth], [p == cls for p in pred])[2] for cls in CLASSES]
    return sum(scores) / len(scores)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else 0.0


def truth_label(mean: float) -> SentimentLabel:
    if mean >= 0.05:
        return "positive"
    if mean <= -0.05:
        return "negative"
    return "neutral"


def measure(column: Column, data: Datasets) -> None:
    figures = column.figures
    if data.tweeteval is not None:
        texts, labels = data.tweeteval
        preds = [s.label for s in column.run(texts)]
        figures["TweetEval val macro recall"] = macro_recall(labels, preds)
    if data.vader is not None:
        texts, means = data.vader
        scores = column.run(texts)
        truth = [truth_label(m) for m in means]
        preds = [s.label for s in scores]
        figures["VADER tweets 3-class accuracy"] = sum(
            1 for t, p in zip(truth, preds, strict=True) if t == p
        ) / len(truth)
        figures["VADER tweets 3-class macro-F1"] = macro_f1(truth, preds)
        figures["VADER tweets Pearson r"] = pearson([s.compound for s in scores], means)
    if data.airline is not None:
        texts, negative = data.airline
        preds_neg = [s.label == "negative" for s in column.run(texts)]
        precision, recall, f1 = prf(negative, preds_neg)
        figures["airline negative precision"] = precision
        figures["airline negative recall"] = recall
        figures["airline negative F1"] = f1
    speed_texts = data.airline[0] if data.airline else data.tweeteval[0] if data.tweeteval else None
    if speed_texts:
        column.run(speed_texts[:500])  # warm-up
        best = math.inf
        for _ in range(max(1, column.repeat)):
            start = time.perf_counter()
            column.run(speed_texts)
            best = min(best, time.perf_counter() - start)
        figures["texts/s (one core)"] = len(speed_texts) / best


def one_by_one(score: Callable[[str], Sentiment]) -> BatchScore:
    return lambda texts: [score(text) for text in texts]


def transformers_column(model: str) -> Column | None:
    try:
        from listener.scoring.transformers import (  # type: ignore[import-not-found,unused-ignore]
            TransformersScorer,
        )
    except ImportError as exc:
        print(f"skip transformers: listener.scoring.transformers is not importable ({exc})")
        return None
    try:
        scorer = TransformersScorer(model, batch_size=32)
    except Exception as exc:  # a missing model or library is a skipped column, not a crash
        print(f"skip transformers: could not load {model!r} ({type(exc).__name__}: {exc})")
        return None
    return Column(f"transformers ({Path(model).name or model})", scorer.score_batch, repeat=1)


def render(columns: list[Column]) -> str:
    metrics = list(dict.fromkeys(name for c in columns for name in c.figures))
    base = columns[0]
    header = ["metric", base.name]
    for column in columns[1:]:
        header += [column.name, "ratio"]
    rows = [header]
    for metric in metrics:
        row = [metric, _fmt(base.figures.get(metric))]
        for column in columns[1:]:
            value, ref = column.figures.get(metric), base.figures.get(metric)
            ratio = value / ref if value is not None and ref else None
            row += [_fmt(value), "" if ratio is None else f"{ratio:.2f}x"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append(" | ".join(cells))
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 10 else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--transformers", metavar="MODEL_PATH_OR_ID", help="also run this model")
    parser.add_argument(
        "--airline-raw", action="store_true", help="score airline text as published"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best counts")
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {0})
        except OSError as exc:
            print(f"note: could not pin to CPU 0 ({exc}); timing may use several cores")
    else:
        print("note: os.sched_setaffinity unavailable; timing may use several cores")

    data = Datasets(
        tweeteval=load_tweeteval(args.data),
        vader=load_vader(args.data),
        airline=load_airline(args.data, raw=args.airline_raw),
    )
    columns = [
        Column("bare VADER", one_by_one(VaderScorer().score), repeat=args.repeat),
        Column("CrisisScorer", one_by_one(CrisisScorer().score), repeat=args.repeat),
    ]
    if args.transformers:
        extra = transformers_column(args.transformers)
        if extra is not None:
            columns.append(extra)
    for column in columns:
        measure(column, data)
    sizes = []
    if data.tweeteval:
        sizes.append(f"TweetEval val {len(data.tweeteval[0])}")
    if data.vader:
        sizes.append(f"VADER tweets {len(data.vader[0])}")
    if data.airline:
        mode = "as published" if args.airline_raw else "publisher replacements undone"
        sizes.append(f"airline {len(data.airline[0])} after dedup ({mode})")
    if not sizes:
        print(f"data: {args.data}: no datasets found, nothing to measure")
        return 0
    print(f"data: {args.data} ({'; '.join(sizes)})")
    print(render(columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
