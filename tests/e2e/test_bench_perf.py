"""bench/perf.py --quick --smoke: the performance suite runs end to end at tiny sizes.

Only that it runs and prints its lines: no timing is asserted (timed tests flake)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def test_perf_suite_smoke_prints_every_section(tmp_path: Path) -> None:
    """Every section prints its figure lines and the results file gets its table."""
    out = tmp_path / "RESULTS.md"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "perf.py"),
            "--quick",
            "--smoke",
            "--data",
            str(tmp_path / "no-data"),  # synthetic texts: no shared data needed
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    for line in (
        "6 brands:",
        "tick at",
        "backtest airline:",
        "peak RSS",
        "SQLite bytes per mention",
        "feed-to-webhook after the poll",
        "profile of the 6-brand end-to-end run",
        "done in",
    ):
        assert line in text, text
    table = out.read_text(encoding="utf-8")
    assert "| measure | this run | target |" in table
    assert "Command: `bench/perf.py --quick --smoke`" in table
