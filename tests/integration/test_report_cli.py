"""``listener report`` as a user runs it, on a state file the real processor wrote."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from listener.cli import main
from tests.support.incident_state import CONFIG, build_state


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("state") / "listener.db"
    incident_id, _ = build_state(path)
    return path, incident_id


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(CONFIG)
    return path


def test_report_html_to_a_file(
    state: tuple[Path, str], rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out report.html writes one self-contained page and says where."""
    path, incident_id = state
    out = tmp_path / "report.html"
    code = main(["report", incident_id, "--state", str(path), "--config", str(rules),
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    assert f"written to {out}" in capsys.readouterr().err
    html = out.read_text()
    root = ET.fromstring(html.split("\n", 1)[1])
    assert len(list(root.iter("img"))) == 1
    assert "Complaints about Acme piling up." in html
    assert "&lt;script&gt;" in html
    assert "<script" not in html


def test_report_markdown_writes_the_chart_beside_it(
    state: tuple[Path, str], rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out x.md (format from the extension) writes x.md and x.png and links the PNG."""
    path, incident_id = state
    out = tmp_path / "x.md"
    main(["report", incident_id, "--state", str(path), "-c", str(rules), "-o", str(out)])
    assert "x.png" in capsys.readouterr().err
    assert "](x.png)" in out.read_text()
    with Image.open(tmp_path / "x.png") as image:
        assert image.format == "PNG"


def test_report_markdown_to_stdout(
    state: tuple[Path, str], rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Markdown on standard output has the tables and says how to get the chart."""
    path, incident_id = state
    assert main(["report", incident_id, "--state", str(path), "-c", str(rules),
                 "--format", "md", "--out", "-"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert text.startswith("# Post-incident report: Acme — neg")
    assert "| watch |" in text
    assert "--format md --out report.md" in text


def test_report_errors_are_one_line(
    state: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown incident, missing state file, broken config: one line and an exit code."""
    path, incident_id = state
    assert main(["report", "20260302", "--state", str(path), "-c", str(tmp_path / "x")]) == 2
    assert "x" in capsys.readouterr().err
    assert main(["report", "nope", "--state", str(path), "--format", "md"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no incident 'nope'")
    assert err.count("\n") == 1
    assert main(["report", incident_id[:8], "--state", str(path), "--format", "md"]) == 1
    assert f"did you mean {incident_id}" in capsys.readouterr().err
    assert main(["report", incident_id, "--state", str(tmp_path / "none.db")]) == 1
    assert "no state file" in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("")
    out = str(blocked / "r.html")
    assert main(["report", incident_id, "--state", str(path), "--out", out]) == 1
    assert capsys.readouterr().err.startswith("error: cannot write the report")


def test_report_and_incidents_show_say_why_it_spiked(
    state: tuple[Path, str], rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report's "Why it spiked" table and `incidents show`'s lines: the complaints
    (one post copied nine times: its story) that rose against the day's store news, with
    counts now and before; every row links to an example post."""
    path, incident_id = state
    assert main(["report", incident_id, "--state", str(path), "-c", str(rules),
                 "--format", "md", "--out", "-"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    section = text.split("## Why it spiked", 1)[1].split("\n## ", 1)[0]
    assert "what rose: negative mentions of the last 16 min" in section
    rows = [line for line in section.splitlines() if line.startswith("| story")]
    assert any("worst outage ever" in row and "| 9 | 0 |" in row for row in rows)
    assert all("](https://news.example.test/" in row for row in rows)
    assert main(["incidents", "show", incident_id, "--state", str(path), "-c", str(rules)]) == 0
    shown = capsys.readouterr().out
    assert "why it spiked (what rose: negative mentions of the last 16 min" in shown
    assert "  story “@acme your service is terrible and broken, worst outage ever" in shown
    assert main(["incidents", "show", incident_id, "--state", str(path), "-c", str(rules),
                 "--json"]) == 0  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    [story] = [d for d in doc["explanation"]["drivers"] if d["kind"] == "story"]
    assert (story["now"], story["before"], story["rose"]) == (9, 0, True)
