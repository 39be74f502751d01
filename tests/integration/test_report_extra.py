"""matplotlib is the optional 'report' extra: the daemon and the CLI run without it, and
whatever draws a chart says how to install it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from listener.cli import main
from listener.config.load import load_config
from listener.drill import run_drill
from listener.report import chart
from listener.report.chart import REPORT_EXTRA_HINT, ReportExtraMissing
from tests.support.incident_state import CONFIG, build_state

REPO = Path(__file__).resolve().parents[2]
HINT = "listener report needs the 'report' extra: pip install 'listener[report]'"


def test_hint_names_the_extra() -> None:
    """The message is the one the docs and the issue promise."""
    assert REPORT_EXTRA_HINT == HINT


def test_cli_and_daemon_modules_do_not_import_matplotlib() -> None:
    """Importing the daemon, the CLI, the drill and the report package loads no matplotlib,
    and `listener check` works where matplotlib cannot be imported."""
    code = (
        "import sys\n"
        "import listener.app, listener.cli, listener.drill, listener.report\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')\n"
        "assert not loaded, loaded\n"
        "sys.modules['matplotlib'] = None\n"
        "sys.exit(listener.cli.main(['check', sys.argv[1]]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "rules.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.usefixtures("no_matplotlib")
def test_chart_without_matplotlib_names_the_extra() -> None:
    """Drawing a chart raises ReportExtraMissing with the hint; the level colours of the
    tables (the report's, the console's) need no matplotlib."""
    with pytest.raises(ReportExtraMissing) as info:
        chart.render_chart(None)  # type: ignore[arg-type]  # fails before reading it
    assert str(info.value) == HINT
    assert [chart.level_colour(r, 3) for r in (0, 1, 2, 3)] == [
        "#f7d84a", "#f28e2b", "#d62728", "#d62728",
    ]  # fmt: skip


@pytest.mark.usefixtures("no_matplotlib")
def test_report_command_without_matplotlib_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`listener report` without the extra exits 1 with the hint, no traceback."""
    state = tmp_path / "listener.db"
    incident_id, _ = build_state(state)
    rules = tmp_path / "rules.yaml"
    rules.write_text(CONFIG)
    code = main(["report", incident_id, "--state", str(state), "--config", str(rules),
                 "--out", str(tmp_path / "r.html")])  # fmt: skip
    assert code == 1
    assert capsys.readouterr().err == f"error: {HINT}\n"
    assert not (tmp_path / "r.html").exists()


@pytest.mark.usefixtures("no_matplotlib")
async def test_drill_without_matplotlib_keeps_its_verdict(tmp_path: Path) -> None:
    """The drill still plays and passes; only its report is skipped, with the hint."""
    out = io.StringIO()
    report = tmp_path / "drill.html"
    code = await run_drill(
        load_config(REPO / "rules.yaml"), deliver=False, out=out, report=str(report)
    )
    assert code == 0, out.getvalue()
    assert out.getvalue().rstrip().endswith(f"post-incident report skipped: {HINT}")
    assert not report.exists()
