"""bench/nab_candidates.py: the candidate detectors are deterministic and online, the
vectorised alerter matches the online one, and leave-one-out never reads the held-out file."""

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
