"""bench/nab.py: the NAB scorer on tiny hand-computed cases from SCORING.md."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_nab", REPO / "bench" / "nab.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_nab"] = module
    spec.loader.exec_module(module)
    return module


nab = _load()
STANDARD = nab.PROFILES["standard"]
LOW_FP = nab.PROFILES["reward_low_FP_rate"]
LOW_FN = nab.PROFILES["reward_low_FN_rate"]
S_MINUS_1 = 0.9866142981514305  # S(-1) = 2/(1+e^-5) - 1


def _scores(n: int, *hits: int) -> list[float]:
    return [1.0 if i in hits else 0.0 for i in range(n)]


def test_scaled_sigmoid_values_from_scoring_md() -> None:
    """S(-1) = 0.98661, S(-0.5) = 0.84828, S(0) = 0, S(1) = -0.98661, and -1 beyond 3."""
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == pytest.approx(2 / (1 + math.exp(15)) - 1)
    assert nab.scaled_sigmoid(3.01) == -1.0


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    """P = min(floor(0.15 n), 750): 15 rows of 100, 750 of realTweets' ~15,900."""
    assert nab.probation_rows(100) == 15
    assert nab.probation_rows(109) == 16
    assert nab.probation_rows(15902) == 750


def test_a_detection_on_the_first_row_of_a_window_earns_a_tp() -> None:
    """x = -(R - L + 1)/w = -1, so σ = A_TP · S(-1)/S(-1) = 1."""
    result = nab.score_file(_scores(100, 40), [(40, 49)], STANDARD)
    assert result.score == pytest.approx(1.0)
    assert result.window_scores == (pytest.approx(1.0),)


def test_a_detection_halfway_and_on_the_last_row() -> None:
    """Row 22 of window 20..23 (w 4): x = -2/4, σ = S(-0.5)/S(-1) = 0.85979; row 23: x = -1/4."""
    assert nab.score_file(_scores(100, 22), [(20, 23)], STANDARD).score == pytest.approx(
        0.84828 / 0.98661, abs=1e-5
    )
    last = (2 / (1 + math.exp(-1.25)) - 1) / S_MINUS_1
    assert nab.score_file(_scores(100, 23), [(20, 23)], STANDARD).score == pytest.approx(last)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    """Later detections in the same window add and cost nothing."""
    once = nab.score_file(_scores(100, 21), [(20, 29)], STANDARD).score
    assert nab.score_file(_scores(100, 21, 22, 28), [(20, 29)], STANDARD).score == once


def test_a_missed_window_costs_a_fn() -> None:
    """No detection in a window: -A_FN, 1 under standard, 2 under reward_low_FN_rate."""
    assert nab.score_file(_scores(100), [(20, 29)], STANDARD).score == -1.0
    assert nab.score_file(_scores(100), [(20, 29)], LOW_FN).score == -2.0


def test_false_positives_before_and_after_windows() -> None:
    """Before the first window: -A_FP; just after one: A_FP·S((i-R)/(w-1)); far after: -A_FP."""
    windows = [(50, 59)]  # w = 10
    before = nab.score_file(_scores(100, 20), windows, STANDARD)
    assert before.score == pytest.approx(-1.0 - 0.11)
    assert before.false_positives == 1
    just_after = nab.score_file(_scores(100, 60), windows, STANDARD)  # x = 1/9
    expected = 0.11 * (2 / (1 + math.exp(5 / 9)) - 1)
    assert just_after.fp_cost == pytest.approx(expected)
    assert just_after.score == pytest.approx(-1.0 + expected)
    far = nab.score_file(_scores(100, 95), windows, STANDARD)  # x = 36/9 = 4 > 3
    assert far.fp_cost == pytest.approx(-0.11)
    assert nab.score_file(_scores(100, 95), windows, LOW_FP).fp_cost == pytest.approx(-0.22)


def test_each_detected_row_outside_windows_costs_on_its_own() -> None:
    """Ten consecutive far-away detections cost ten FPs: no grouping into events."""
    result = nab.score_file(_scores(200, *range(150, 160)), [(40, 49)], STANDARD)
    assert result.false_positives == 10
    assert result.score == pytest.approx(-1.0 - 10 * 0.11)


def test_probation_rows_are_not_scored() -> None:
    """A detection in the first 15% is neither a TP nor an FP."""
    assert nab.score_file(_scores(100, 5), [(50, 59)], STANDARD).score == -1.0
    assert nab.score_file(_scores(100, 5), [(50, 59)], STANDARD).false_positives == 0


def test_the_threshold_decides_what_is_a_detection() -> None:
    """Rows score ≥ θ are detections; any θ in (0, 1] scores a binary detector the same."""
    scores = [0.0] * 100
    scores[40] = 0.4
    assert nab.score_file(scores, [(40, 49)], STANDARD, threshold=0.5).score == -1.0
    assert nab.score_file(scores, [(40, 49)], STANDARD, threshold=0.4).score == pytest.approx(1.0)


def test_normalisation_against_null_and_perfect() -> None:
    """Null scores 0, perfect 100; with 33 windows null's raw score is -33, or -66 under low FN."""
    assert nab.normalised(-33.0, 33, STANDARD) == 0.0
    assert nab.normalised(33.0, 33, STANDARD) == 100.0
    assert nab.normalised(-66.0, 33, LOW_FN) == 0.0
    assert nab.normalised(0.0, 16, STANDARD) == 50.0
    assert nab.normalised(-20.0, 16, STANDARD) < 0  # not bounded below


def test_window_indices_match_nab_timestamps() -> None:
    """Windows given as NAB's '... .000000' timestamps map to inclusive row indices."""
    stamps = [f"2015-02-26 21:{m:02d}:53" for m in range(0, 60, 5)]
    windows = [("2015-02-26 21:10:53.000000", "2015-02-26 21:20:53.000000")]
    assert nab.window_indices(stamps, windows) == [(2, 4)]
    with pytest.raises(ValueError, match="does not match"):
        nab.window_indices(stamps, [("2015-02-26 21:11:00.000000", "2015-02-26 21:20:53.000000")])


def test_profiles_load_from_nab_json(tmp_path: Path) -> None:
    """profiles.json's CostMatrix weights become A_TP, A_FP and A_FN."""
    path = tmp_path / "profiles.json"
    path.write_text(
        '{"standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11,'
        ' "tnWeight": 1.0}}}'
    )
    assert nab.load_profiles(path) == {"standard": STANDARD}


def test_a_window_wholly_in_probation_is_neither_tp_nor_fn() -> None:
    """Rows 20..29 of 200 lie before P = 30: the window neither scores nor costs."""
    assert nab.score_file(_scores(200), [(20, 29)], STANDARD).score == 0.0


def test_first_detections_report_where_each_window_is_caught() -> None:
    """--timing: hours after the window's start and share of its width, probation ignored."""
    n = 1000  # probation: 150 rows
    scores = _scores(n, 100, 212, 230, 500)
    lines = nab.first_detections(scores, [(90, 189), (200, 299), (400, 449)])
    assert lines == [
        "window 1: 100 rows (8.3 h), missed",
        "window 2: 100 rows (8.3 h), first detection at   1.0 h (0.12)",
        "window 3: 50 rows (4.2 h), missed",
    ]
