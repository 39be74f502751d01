"""The wheel (what the Dockerfile's ``pip install .`` builds) carries every file the
daemon reads beside its code: the console's templates, styles and script."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_console_file(tmp_path: Path) -> None:
    """Built as the Dockerfile builds it: from a copy of pyproject.toml, README.md and
    listener/ alone (no build/ left over from an earlier build to hide a missing file)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "listener", src / "listener", ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(src),
        ],
        check=True,
        cwd=tmp_path,
        timeout=300,
    )
    [wheel] = tmp_path.glob("listener-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        str(p.relative_to(REPO))
        for folder in ("listener/console/templates", "listener/console/static")
        for p in (REPO / folder).iterdir()
        if p.is_file()
    }
    assert {"listener/console/static/console.js", "listener/console/static/console.css"} <= wanted
    assert wanted <= names, sorted(wanted - names)
    assert "listener/py.typed" in names
