"""NAB score of the default volume-spike rule on the realTweets files, through listener.backtest.

    .venv/bin/python bench/nab.py [--data ../shared/data] [--config bench/rules-nab.yaml]
                                  [--rule volume-spike] [--out DIR] [--timing]

Each of the five realTweets series in ``<data>/nab-realtweets`` is replayed online through
the real windows and rules engine (``listener.backtest.replay_volume``); the rows where an
incident opens or escalates get ``anomaly_score`` 1.0, all others 0.0. The scorer below is
our own implementation of the NAB rule as described in ``SCORING.md`` beside the data
(windows, probation, scaled sigmoid, cost profiles, normalisation against the null and
perfect detectors). Prints per-file and total scores for the three profiles, the
throughput, and the published detectors for comparison. Skips cleanly when the data is
absent. ``--out DIR`` writes each file's ``timestamp,value,anomaly_score`` CSV;
``--timing`` also prints where in each window its first detection lands.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_CONFIG = REPO / "bench" / "rules-nab.yaml"
FILES = ("AAPL", "AMZN", "GOOG", "IBM", "KO")
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

# Reference: NAB's published per-file scores at each detector's corpus-wide threshold,
# normalised over these five files' 16 windows (SCORING.md, standard profile).
REFERENCE_5_FILES = {
    "ARTime": 81.4,
    "earthgeckoSkyline": 63.7,
    "contextOSE": 60.4,
    "twitterADVec": 59.8,
    "numenta (HTM)": 58.2,
    "windowedGaussian": 53.8,
    "random": 12.4,
}


# --------------------------------------------------------------------------- the scorer


@dataclass(frozen=True, slots=True)
class Profile:
    """A NAB cost matrix (``tnWeight`` is never used)."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}


def load_profiles(path: Path) -> dict[str, Profile]:
    """Profiles from NAB's ``config/profiles.json``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        name: Profile(
            tp=float(p["CostMatrix"]["tpWeight"]),
            fp=float(p["CostMatrix"]["fpWeight"]),
            fn=float(p["CostMatrix"]["fnWeight"]),
        )
        for name, p in data.items()
    }


def scaled_sigmoid(x: float) -> float:
    """``2 / (1 + e^(5x)) - 1`` for x ≤ 3, else -1: +1 far left, 0 at 0, -1 far right."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_rows(n: int) -> int:
    """Rows at the start of a file that are not scored: 15% of it, at most 750."""
    return int(min(math.floor(0.15 * n), 0.15 * 5000))


@dataclass(frozen=True, slots=True)
class FileScore:
    """The score of one file under one profile, and how it came about."""

    score: float
    window_scores: tuple[float | None, ...]
    """Per window: σ of its earliest detection, or None when it was missed."""
    false_positives: int
    """Detections (rows) outside every window, after probation."""
    fp_cost: float
    """Their summed (negative) weight."""

    @property
    def detected(self) -> int:
        return sum(s is not None for s in self.window_scores)

    @property
    def missed(self) -> int:
        return sum(s is None for s in self.window_scores)


def window_indices(
    timestamps: Sequence[str], windows: Sequence[tuple[str, str]]
) -> list[tuple[int, int]]:
    """Windows ``[start, end]`` as inclusive row indices, matched by exact timestamp
    (NAB writes ``YYYY-MM-DD HH:MM:SS.000000``; the fraction is ignored)."""
    where = {t.strip(): i for i, t in enumerate(timestamps)}
    out = []
    for start, end in windows:
        s, e = start.split(".")[0], end.split(".")[0]
        if s not in where or e not in where:
            raise ValueError(f"window [{start}, {end}] does not match row timestamps")
        out.append((where[s], where[e]))
    return sorted(out)


def score_file(
    scores: Sequence[float],
    windows: Sequence[tuple[int, int]],
    profile: Profile,
    threshold: float = 0.5,
) -> FileScore:
    """NAB's score of one file: rows with ``score ≥ threshold`` are detections.

    Rows before the probation are ignored. Inside window k (rows L..R, width w) a
    detection at row i is worth ``A_TP · S(-(R - i + 1) / w) / S(-1)`` and only the
    earliest detection of a window counts; a window without one costs ``A_FN``. A
    detection outside every window costs ``A_FP`` before the first window, else
    ``A_FP · S((i - R') / (w' - 1))`` after the most recent window (R', w').
    """
    windows = sorted(windows)
    n = len(scores)
    first_scored = probation_rows(n)
    starts = [lo for lo, _ in windows]
    best: list[float | None] = [None] * len(windows)
    unit = scaled_sigmoid(-1.0)
    fp_cost = 0.0
    false_positives = 0
    for i in range(first_scored, n):
        if scores[i] < threshold:
            continue
        k = bisect_right(starts, i) - 1  # the last window starting at or before i
        if k >= 0 and i <= windows[k][1]:
            lo, hi = windows[k]
            width = hi - lo + 1
            sigma = profile.tp * scaled_sigmoid(-(hi - i + 1) / width) / unit
            current = best[k]
            if current is None or sigma > current:
                best[k] = sigma
            continue
        false_positives += 1
        if k < 0:
            fp_cost -= profile.fp
        else:
            lo, hi = windows[k]
            width = hi - lo + 1
            fp_cost += profile.fp * scaled_sigmoid((i - hi) / max(width - 1, 1))
    total = fp_cost
    for (_, hi), got in zip(windows, best, strict=True):
        if got is not None:
            total += got
        elif hi >= first_scored:  # a window wholly in probation is neither TP nor FN
            total -= profile.fn
    return FileScore(total, tuple(best), false_positives, fp_cost)


def first_detections(
    scores: Sequence[float], windows: Sequence[tuple[int, int]], threshold: float = 0.5
) -> list[str]:
    """One line per window: its width and where its first scored detection lands, in
    hours after the window's start and as a share of its width (0.5 = the centre, where
    NAB puts the label), or that it was missed. For reading results, not for tuning."""
    first_scored = probation_rows(len(scores))
    lines = []
    for k, (lo, hi) in enumerate(sorted(windows), start=1):
        width = hi - lo + 1
        hits = [i for i in range(max(lo, first_scored), hi + 1) if scores[i] >= threshold]
        where = (
            f"first detection at {(hits[0] - lo) * 5 / 60:5.1f} h ({(hits[0] - lo) / width:.2f})"
            if hits
            else "missed"
        )
        lines.append(f"window {k}: {width} rows ({width * 5 / 60:.1f} h), {where}")
    return lines


def normalised(raw: float, n_windows: int, profile: Profile) -> float:
    """``100 · (S - S_null) / (S_perfect - S_null)``: null detector 0, perfect 100."""
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null)


# --------------------------------------------------------------------------- the bench


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--rule", default=None, help="rule to score (default: volume-spike)")
    parser.add_argument("--out", type=Path, help="write each file's results CSV here")
    parser.add_argument(
        "--timing",
        action="store_true",
        help="also print where in each window its first detection lands",
    )
    args = parser.parse_args(argv)
    folder = args.data / "nab-realtweets"
    if not (folder / "combined_windows_realTweets.json").exists():
        print(f"skip: {folder} not found")
        return 0

    from listener.backtest import (
        DEFAULT_RULE,
        read_volume,
        replay_volume,
        select_rules,
        write_scores,
    )
    from listener.config.load import load_config

    config = load_config(args.config)
    rules = select_rules(
        config, [args.rule] if args.rule else None, default=DEFAULT_RULE, file=str(args.config)
    )
    windows_json = json.loads((folder / "combined_windows_realTweets.json").read_text())
    profiles_path = folder / "profiles.json"
    profiles = load_profiles(profiles_path) if profiles_path.exists() else PROFILES
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)

    print(
        f"NAB realTweets ({len(FILES)} files), rule {', '.join(r.name for r in rules)} "
        f"from {args.config}; binary detector (1.0 where an incident opens or escalates)\n"
    )
    header = (
        f"{'file':<6} {'rows':>6} {'incidents':>9} {'detections':>10} {'windows':>8} "
        f"{'missed':>6} {'FP rows':>7} {'standard':>9} {'low_FP':>8} {'low_FN':>8}  "
        "window σ (standard)"
    )
    print(header)
    raw: dict[str, float] = dict.fromkeys(PROFILE_NAMES, 0.0)
    n_windows = 0
    timing: list[str] = []
    total_rows = 0
    elapsed = 0.0
    wall = time.perf_counter()
    for name in FILES:
        path = folder / f"Twitter_volume_{name}.csv"
        rows = read_volume(path)
        result = replay_volume(rows, rules, brand=name, source=str(path))
        total_rows += len(rows)
        elapsed += result.elapsed
        wins = window_indices([r.timestamp for r in rows], windows_json[f"realTweets/{path.name}"])
        n_windows += len(wins)
        per = {p: score_file(result.scores, wins, profiles[p]) for p in PROFILE_NAMES}
        for p in PROFILE_NAMES:
            raw[p] += per[p].score
        std = per["standard"]
        detections = sum(
            1 for i, s in enumerate(result.scores) if s >= 0.5 and i >= probation_rows(len(rows))
        )
        sigmas = " ".join("miss" if s is None else f"{s:.2f}" for s in std.window_scores)
        print(
            f"{name:<6} {len(rows):>6} {len(result.incidents):>9} {detections:>10} "
            f"{len(wins):>8} {std.missed:>6} {std.false_positives:>7} {std.score:>9.3f} "
            f"{per['reward_low_FP_rate'].score:>8.3f} {per['reward_low_FN_rate'].score:>8.3f}  "
            f"{sigmas}"
        )
        if args.timing:
            timing.extend(f"  {name} {line}" for line in first_detections(result.scores, wins))
        if args.out:
            with (args.out / f"listener_{path.name}").open("w", newline="") as f:
                write_scores(rows, result.scores, f)
    wall = time.perf_counter() - wall

    if timing:
        print("\nfirst detection in each window (5-minute rows; the label is at the centre):")
        print("\n".join(timing))
    print("\nnormalised NAB score over these files (null detector 0, perfect 100):")
    scores = {p: normalised(raw[p], n_windows, profiles[p]) for p in PROFILE_NAMES}
    for p in PROFILE_NAMES:
        print(f"  {p:<20} {scores[p]:6.1f}   (raw {raw[p]:.3f} over {n_windows} windows)")
    print(
        f"\nthroughput: {total_rows:,} rows replayed in {elapsed:.2f} s "
        f"({total_rows / elapsed:,.0f} rows/s; {wall:.2f} s with reading and scoring)"
    )
    _compare(scores["standard"], folder / "final_results.json")
    return 0


def _compare(ours: float, final_results: Path) -> None:
    print("\nstandard profile on these 5 files (published per-file scores, SCORING.md):")
    table = [*REFERENCE_5_FILES.items(), ("listener volume-spike (this run)", ours)]
    for name, value in sorted(table, key=lambda item: -item[1]):
        print(f"  {name:<34} {value:6.1f}")
    if final_results.exists():
        data: Mapping[str, Mapping[str, float]] = json.loads(final_results.read_text())
        print(
            "\nfor context, final_results.json (whole 58-file NAB corpus, not comparable "
            "with 5 files):"
        )
        ranked = sorted(data.items(), key=lambda item: -item[1]["standard"])
        for name, by_profile in ranked:
            print(
                f"  {name:<20} standard {by_profile['standard']:5.1f}  "
                f"low_FP {by_profile['reward_low_FP_rate']:5.1f}  "
                f"low_FN {by_profile['reward_low_FN_rate']:5.1f}"
            )


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
