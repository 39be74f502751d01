"""bench/nab_candidates.py: the candidate detectors are deterministic and online, the
vectorised alerter and combination match the online ones, and leave-one-out (plain,
per-file-normalised, grid-smoothed) never reads the held-out file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_nab_candidates", REPO / "bench" / "nab_candidates.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_nab_candidates"] = module
    spec.loader.exec_module(module)
    return module


nc = _load()


def _series(n: int = 1500, seed: int = 7) -> list[float]:
    rng = np.random.default_rng(seed)
    day = np.sin(np.arange(n) * 2 * np.pi / 288) * 10 + 30
    x = rng.poisson(day).astype(float)
    x[700:712] += 400  # a burst
    x[1100:1300] += 60  # a level shift
    x[1400:1403] += 150
    return [float(v) for v in x]


_COMBO: dict[str, Any] = {
    "scales": (3, 6),
    "history": 288,
    "hazard": 300.0,
    "max_run": 100,
    "bocpd_threshold": 0.5,
    "cooldown": 24,
}

DETECTORS: dict[str, Any] = {
    "ensemble": lambda: nc.RobustMultiScale(scales=(3, 6), history=288, threshold=5, cooldown=24),
    "ensemble-vote-log": lambda: nc.RobustMultiScale(
        scales=(3, 6, 12), history=288, transform="log", k=2, threshold=4, cooldown=24
    ),
    "bocpd": lambda: nc.BOCPD(hazard=300, max_run=100, threshold=0.5, cooldown=24),
    "bocpd-bucket": lambda: nc.BOCPD(hazard=100, max_run=60, bucket=6, threshold=0.3),
    "art": lambda: nc.FuzzyARTDetector(bucket=3, rho=0.8, max_categories=16, cooldown=24),
    "record": lambda: nc.RecordMultiScale(
        horizon=288, ratio=1.0, threshold=4, cooldown=24, scales=(3, 6), history=288
    ),
    "combo-or": lambda: nc.EnsembleOrBOCPD(**_COMBO),
    "combo-z": lambda: nc.EnsembleOrBOCPD(**_COMBO, confirm="z", confirm_at=2.0),
    "combo-seasonal": lambda: nc.EnsembleOrBOCPD(
        **_COMBO, confirm="seasonal", confirm_at=1.5, seasons=1
    ),
    "anomaly": lambda: nc.EnsembleOrSeasonal(window=6, seasons=1, history=24, threshold=5),
}


def _decisions(make: Any, values: list[float]) -> list[bool]:
    det = make()
    return [bool(det.step(v)) for v in values]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_deterministic_and_online(name: str) -> None:
    values = _series()
    full = _decisions(DETECTORS[name], values)
    assert full == _decisions(DETECTORS[name], values)
    prefix = _decisions(DETECTORS[name], values[:900])
    assert prefix == full[:900]
    # a different future does not change the past decisions
    other = values[:900] + [0.0] * 600
    assert _decisions(DETECTORS[name], other)[:900] == full[:900]


def test_ensemble_sees_the_burst() -> None:
    values = _series()
    fired = [i for i, d in enumerate(_decisions(DETECTORS["ensemble"], values)) if d]
    assert any(700 <= i < 712 for i in fired)


def test_alert_openings_match_the_online_alerter() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=3000)
    scores[rng.integers(0, 3000, 50)] = np.nan
    for threshold, cooldown in ((1.0, 0), (1.5, 5), (2.0, 40)):
        alerter = nc.Alerter(threshold, cooldown)
        online = [i for i, s in enumerate(scores) if alerter.step(float(s))]
        assert online == nc.alert_openings(scores, threshold, cooldown).tolist()


def test_record_gate() -> None:
    gate = nc.RecordGate(horizon=3, ratio=1.0)
    out = [gate.step(s) for s in (5.0, 4.0, 6.0, 1.0, 1.0, 1.0, 2.0, 5.5)]
    # 4 < 5 (previous max) is dropped; 2.0 is a record once 6 and 5 left the 3-row horizon
    assert out == [5.0, 0.0, 6.0, 0.0, 0.0, 0.0, 2.0, 5.5]


def test_leave_one_out_never_reads_the_held_out_file() -> None:
    # 3 files, 3 cells. Over all files cell 0 is best, but without file 0 cell 1 is.
    table = np.array(
        [
            [10.0, 1.0, 1.0],  # cell 0: great on file 0 only
            [0.0, 3.0, 3.0],  # cell 1: best on files 1 and 2
            [0.0, 2.0, 3.5],  # cell 2
        ]
    )
    assert int(np.argmax(table.sum(axis=1))) == 0
    picks = nc.leave_one_out(table)
    assert picks == [1, 0, 0]
    # the held-out column can be anything without changing its own fold's pick
    for f in range(3):
        poisoned = table.copy()
        poisoned[:, f] = [-100.0, 100.0, 1000.0]
        assert nc.leave_one_out(poisoned)[f] == picks[f]


def test_combination_sees_the_burst_and_the_level_shift() -> None:
    values = _series()
    fired = [i for i, d in enumerate(_decisions(DETECTORS["combo-or"], values)) if d]
    assert any(700 <= i < 712 for i in fired)
    assert any(1100 <= i < 1130 for i in fired)


def test_combination_online_matches_the_vectorised_grid_path() -> None:
    """The grid scores cached parts with ``combined_trigger`` and ``alert_openings``;
    the online object must open the same alerts."""
    values = _series()
    for confirm, at in (("none", 0.0), ("z", 2.0), ("seasonal", 1.5)):
        params = {**_COMBO, "confirm": confirm, "confirm_at": at, "seasons": 1}
        det = nc.EnsembleOrBOCPD(**params)
        parts = np.array([det.parts(v) for v in values])
        trig = nc.combined_trigger(parts[:, 0], parts[:, 1], parts[:, 2], 5.0, 0.5, confirm, at)
        online = [
            i
            for i, d in enumerate(_decisions(lambda p=params: nc.EnsembleOrBOCPD(**p), values))
            if d
        ]
        assert online == nc.alert_openings(trig, 0.5, 24).tolist()
        assert online  # the synthetic burst is seen by every variant


def test_combined_trigger() -> None:
    nan = float("nan")
    z = np.array([6.0, 1.0, 2.5, 2.5, nan, 2.5])
    b = np.array([0.0, 0.9, 0.9, 0.4, 0.9, nan])
    s = np.array([nan, 1.0, 1.0, 3.0, 3.0, 3.0])
    assert nc.combined_trigger(z, b, s, 5.0, 0.5, "none", 0.0).tolist() == [1, 1, 1, 0, 1, 0]
    assert nc.combined_trigger(z, b, s, 5.0, 0.5, "z", 2.0).tolist() == [1, 0, 1, 0, 0, 0]
    assert nc.combined_trigger(z, b, s, 5.0, 0.5, "seasonal", 2.0).tolist() == [1, 0, 0, 0, 1, 0]
    assert float(nc.combined_trigger(6.0, nan, nan, 5.0, 0.5, "z", 2.0)) == 1.0
    with pytest.raises(ValueError, match="confirm must be one of"):
        nc.combined_trigger(z, b, s, 5.0, 0.5, "record", 2.0)


def test_seasonal_ratio() -> None:
    rng = np.random.default_rng(5)
    x = rng.poisson(20, size=3 * 288).astype(float)
    ratio = nc.SeasonalRatio(window=6, seasons=2)
    out = [ratio.step(float(v)) for v in x]
    first = 2 * 288 + 6 - 1  # the first row with 2 days and a window before it
    assert all(np.isnan(out[:first]))
    for t in (first, first + 1, 700, len(x) - 1):
        current = x[t - 5 : t + 1].sum()
        past = (x[t - 288 - 5 : t - 288 + 1].sum() + x[t - 576 - 5 : t - 576 + 1].sum()) / 2
        assert out[t] == pytest.approx(current / max(past, 1.0))


def test_normalise_per_file() -> None:
    table = np.array([[-4.0, -2.0, 2.0], [4.0, 0.0, -1.0]])
    profile = nc.Profile(tp=1.0, fp=0.11, fn=1.0)
    norm = nc.normalise_per_file(table, [4, 2, 2], profile)
    # null (every window missed) → 0, perfect (every window at its start) → 1
    assert norm.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.5, 0.25]]


def test_grid_neighbours() -> None:
    params = [
        {"t": t, "x": x, "y": y} for t in ("a", "b") for x in (1.0, 2.0, 3.0) for y in (10, 20)
    ]
    nb = nc.grid_neighbours(params)
    at = {(p["t"], p["x"], p["y"]): c for c, p in enumerate(params)}
    mid = at[("a", 2.0, 10)]
    assert sorted(nb[mid]) == sorted(
        [mid, at[("a", 1.0, 10)], at[("a", 3.0, 10)], at[("a", 2.0, 20)]]
    )
    corner = at[("b", 1.0, 20)]
    assert sorted(nb[corner]) == sorted([corner, at[("b", 2.0, 20)], at[("b", 1.0, 10)]])


def test_smoothed_leave_one_out_prefers_a_plateau_and_never_reads_the_held_out_file() -> None:
    # cells on a line x = 0..4; cell 1 is an isolated peak, cells 3-4 a plateau
    params = [{"x": float(x)} for x in range(5)]
    nb = nc.grid_neighbours(params)
    table = np.array([[0.0] * 3, [5.0] * 3, [0.0] * 3, [3.0] * 3, [3.0] * 3])
    assert nc.leave_one_out(table) == [1, 1, 1]
    picks = nc.leave_one_out_smoothed(table, nb)
    assert picks == [4, 4, 4]
    for f in range(3):
        poisoned = table.copy()
        poisoned[:, f] = [1000.0, -100.0, 50.0, -7.0, 0.0]
        assert nc.leave_one_out_smoothed(poisoned, nb)[f] == picks[f]


def test_seasonal_residual_online_matches_the_vectorised_grid_path() -> None:
    """The online seasonal residual z (the engine's seasonal_zscore) equals the
    vectorised one the grid uses, row by row, -inf before the look-back and under
    min_volume included."""
    values = _series(n=1400)
    want = nc.seasonal_residual_z(values, 6, 2, 24, 10.0, period=288)
    det = nc.SeasonalResidual(6, 2, 24, 10.0, period=288)
    got = np.array([det.step(v) for v in values])
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = ~np.isinf(want)
    assert finite.sum() > 500
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-9)
    # the level shift at 1100 is unusual for its time of day
    assert (want[1100:1130] >= 5).any()
    assert not (want[(6 + 24 + 1) + 2 * 288 : 690] >= 5).any()
