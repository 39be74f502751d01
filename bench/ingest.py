"""Ingest stage benchmark: mentions/s of Ingest vs a bare VADER loop over the same texts.

Run from the repository root::

    .venv/bin/python bench/ingest.py                   # data from ../shared/data
    .venv/bin/python bench/ingest.py --repeat 5        # best of 5 timed passes (default 3)
    .venv/bin/python bench/ingest.py --repo ../main    # the code of another checkout
    .venv/bin/python bench/ingest.py --dump out.tsv    # every decision, one line a mention
    .venv/bin/python bench/ingest.py --profile out.txt # a pyinstrument profile of one pass

Texts: every row of ``twitter-airline-sentiment/Tweets.csv`` (14,640 tweets, duplicates
kept), as mentions of source ``x`` in time order, in batches of ``--batch`` (100). Brands:
the six airlines matched by handle (as ``bench/airline_replay.py``); categories, emotions
and the sentiment scorer as the shipped ``rules.yaml`` configures them.

Timed in CPU seconds of this process (so a busy machine shifts the figures little), each
on one core after a warm-up pass, best of ``--repeat``, in the same run:

- ``vader``: ``SentimentIntensityAnalyzer().polarity_scores(text)`` over every text;
- ``ingest``: :class:`listener.ingest.Ingest` (a fresh story index each pass) over every
  batch: match, score, tag, story. With ``--repo`` pointing at a checkout that predates
  the stage, the same steps are run as its ``Processor.ingest`` ran them.

It prints mentions/s of each and the ratio ingest/vader. ``--dump`` writes
``id, brands, label, compound, categories, emotions, story`` of every mention (tab
separated) from the last pass: diff two checkouts' dumps to check decisions are identical.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("LISTENER_SHARED_DIR", HERE.parent / "shared")) / "data"
AIRLINES = (  # brand name, handle (as bench/airline_replay.py)
    ("United", "@united"),
    ("American", "@AmericanAir"),
    ("Southwest", "@SouthwestAir"),
    ("Delta", "@Delta"),
    ("US Airways", "@USAirways"),
    ("Virgin America", "@VirginAmerica"),
)
MAPPING = "text=text,created_at=tweet_created,id=tweet_id,author=name"
Row = tuple[str, tuple[str, ...], str, float, tuple[str, ...], tuple[str, ...], str | None]


def _pin() -> None:
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {0})


def _best(run: Callable[[], object], repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()  # CPU time: the machine may be shared
        run()
        times.append(time.process_time() - start)
    return min(times)


def _legacy(config: Any) -> Callable[[Sequence[Any], Any], list[Any]]:
    """The ingest steps of a ``Processor`` without ``listener.ingest`` (main before the stage)."""
    from listener.processor import Processor

    try:  # main before the Ingest stage kept it in the processor
        from listener.processor import UNMATCHED  # type: ignore[attr-defined]
    except ImportError:
        from listener.ingest import UNMATCHED
    from listener.scoring import build_scorer, score_many

    fake = Processor.__new__(Processor)
    from listener.matching.brands import BrandMatcher
    from listener.matching.stories import StoryIndex
    from listener.model import ScoredMention
    from listener.scoring.categories import CategoryTagger, EmotionDetector

    fake.matcher = BrandMatcher(config.brands)
    fake.scorer = build_scorer(config.scoring.sentiment)
    fake.tagger = CategoryTagger(config.categories.custom, defaults=config.categories.defaults)
    fake.emotions = EmotionDetector()
    state = {"stories": StoryIndex()}

    def run(fresh: Sequence[Any], now: Any) -> list[Any]:
        stories = state["stories"]
        texts = [
            f"{m.title}. {m.text}" if m.title and m.title not in m.text else m.text for m in fresh
        ]
        brands_of = [
            fake.matcher.match(t, language=m.language, source=m.source)
            for t, m in zip(texts, fresh, strict=True)
        ]
        to_score = [t for t, b in zip(texts, brands_of, strict=True) if b]
        sentiments = iter(score_many(fake.scorer, to_score))
        out = []
        for m, text, brands in zip(fresh, texts, brands_of, strict=True):
            if not brands:
                out.append(ScoredMention(m, brands, UNMATCHED))
                continue
            story = stories.assign(m).story
            out.append(ScoredMention(m, brands, next(sentiments), *fake._tags(text), story=story))
        return out

    def reset() -> None:
        state["stories"] = StoryIndex()

    run.reset = reset  # type: ignore[attr-defined]
    return run


def _stage(config: Any) -> Callable[[Sequence[Any], Any], list[Any]]:
    from listener.ingest import Ingest

    holder = {"stage": Ingest.build(config)}

    def run(fresh: Sequence[Any], now: Any) -> list[Any]:
        return list(holder["stage"].run(fresh, now))

    def reset() -> None:
        holder["stage"] = holder["stage"].with_new_stories()

    run.reset = reset  # type: ignore[attr-defined]
    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repo", type=Path, default=HERE, help="checkout whose code runs")
    parser.add_argument("--config", type=Path, default=None, help="default: REPO/rules.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() once the stage is built")
    parser.add_argument("--dump", type=Path)
    parser.add_argument("--profile", type=Path, help="write a pyinstrument text profile")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    sys.path.insert(0, str(repo))
    path = args.data / "twitter-airline-sentiment" / "Tweets.csv"
    if not path.exists():
        print(f"skip: {path} not found")
        return 0
    _pin()

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from listener.backtest import parse_map, read_mention_csv
    from listener.config.load import load_config
    from listener.config.schema import BrandConfig

    config = load_config(args.config or repo / "rules.yaml")
    brands = [BrandConfig(name=n, aliases=[h], handles=[h]) for n, h in AIRLINES]
    config = config.model_copy(update={"brands": brands})
    mentions = sorted(
        (r.mention for r in read_mention_csv(path, parse_map([MAPPING]))),
        key=lambda m: m.created_at,
    )
    texts = [m.text for m in mentions]
    batches = [mentions[i : i + args.batch] for i in range(0, len(mentions), args.batch)]
    try:
        import listener.ingest  # noqa: F401

        kind, ingest = "stage", _stage(config)
    except ImportError:
        kind, ingest = "legacy", _legacy(config)

    analyser = SentimentIntensityAnalyzer()
    if args.freeze:
        gc.collect()
        gc.freeze()

    def vader() -> None:
        for t in texts:
            analyser.polarity_scores(t)

    result: list[Any] = []

    def stage() -> None:
        ingest.reset()  # type: ignore[attr-defined]
        result.clear()
        for batch in batches:
            result.extend(ingest(batch, batch[-1].created_at))

    t_vader = _best(vader, args.repeat)
    t_ingest = _best(stage, args.repeat)
    n = len(texts)
    matched = sum(1 for s in result if s.brands)
    print(f"code: {repo} ({kind}); {n} mentions, {matched} matched, batches of {args.batch}")
    print(f"vader   {n / t_vader:10,.0f} mentions/s")
    print(f"ingest  {n / t_ingest:10,.0f} mentions/s  ratio to vader {t_vader / t_ingest:.3f}")
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        stage()
        profiler.stop()
        args.profile.write_text(profiler.output_text(unicode=False, show_all=False))
    if args.dump:
        with args.dump.open("w", encoding="utf-8") as f:
            for s in result:
                row: Row = (
                    s.mention.id,
                    s.brands,
                    s.sentiment.label,
                    s.sentiment.compound,
                    s.categories,
                    s.emotions,
                    s.story,
                )
                f.write("\t".join(map(repr, row)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
