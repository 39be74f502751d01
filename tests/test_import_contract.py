"""The import contract: ``lint-imports`` keeps the contracts in pyproject.toml
(``[tool.importlinter]``), and an AST check keeps the pure core (matching, scoring, rules)
off the real clock and the environment, which import-linter cannot see."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ("matching", "scoring", "rules")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (module, finding) pairs of the pure core that read the process environment or the clock
# today, each with why; remove one when its use goes.
ALLOWED = {
    # the Hugging Face libraries' own offline switch, read once when a model is loaded (at
    # build time, not per text): a local model must not be looked up on the hub when it is set
    ("listener/scoring/transformers.py", "os.environ"),
}


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``root`` (its pyproject.toml), without cache."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extra (import-linter)")
    env = {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_contract_is_kept() -> None:
    """Every import contract in pyproject.toml holds for the package as it is."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_store_contract_has_no_exception() -> None:
    """The store contract (no scoring, no rules) holds with no ignored import, and no other
    contract ignores an import from the store."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (store,) = [c for c in contracts if c["id"] == "store-below-rules"]
    assert "ignore_imports" not in store
    ignored = [i for c in contracts for i in c.get("ignore_imports", ())]
    assert [i for i in ignored if i.startswith("listener.store")] == []


def test_a_violation_breaks_the_contract(tmp_path: Path) -> None:
    """A forbidden import in a copy of the package makes lint-imports fail and name each
    contract it breaks (so the test above can fail)."""
    shutil.copytree(ROOT / "listener", tmp_path / "listener")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    injected = {
        "listener/rules/engine.py": "import httpx\n",  # I/O in the pure core
        "listener/matching/query.py": "import listener.sinks.base\n",  # core → edge
        "listener/config/duration.py": "import listener.scoring.velocity\n",  # config → core
        "listener/store.py": "import listener.rules.engine\n",  # store → rules
    }
    for path, line in injected.items():
        target = tmp_path / path
        if not target.exists():  # the store is a package once it is split
            target = tmp_path / path.removesuffix(".py") / "__init__.py"
        target.write_text(target.read_text(encoding="utf-8") + line, encoding="utf-8")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    flat = " ".join(result.stdout.split())
    for name in (
        "does no I/O and uses no edge component BROKEN",
        "config imports neither matching nor scoring BROKEN",
        "store imports neither scoring nor rules BROKEN",
        "> model/errors/clock BROKEN",
    ):
        assert name in flat, result.stdout
    assert "listener.rules.engine -> httpx" in flat


# --------------------------------------------------------------------------- clock, env

_CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}
_CLOCK_OWNERS = {"datetime", "date", "time"}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def impurities(source: str) -> list[str]:
    """What in ``source`` reads the real clock or the environment: ``datetime.now()``,
    ``date.today()``, ``time.*``, ``SystemClock``, ``os.environ``/``os.getenv``, and
    ``urllib.request`` (import-linter cannot name a stdlib subpackage)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = _dotted(node.func.value).rsplit(".", 1)[-1]
            if node.func.attr in _CLOCK_CALLS and owner in _CLOCK_OWNERS:
                found.append(f"{_dotted(node.func)}()")
        elif isinstance(node, ast.Name) and node.id == "SystemClock":
            found.append("SystemClock")
        elif isinstance(node, ast.Attribute) and _dotted(node) in ("os.environ", "os.getenv"):
            found.append(_dotted(node))
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "time", "urllib.request"):
            names = {alias.name for alias in node.names}
            if node.module != "os" or names & {"environ", "getenv"}:
                found.append(f"from {node.module} import {', '.join(sorted(names))}")
        elif isinstance(node, ast.ImportFrom) and node.module == "listener.clock":
            if any(alias.name == "SystemClock" for alias in node.names):
                found.append("SystemClock")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name == "urllib.request"]
    return found


def _core_files() -> list[Path]:
    return sorted(p for package in CORE for p in (ROOT / "listener" / package).rglob("*.py"))


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_reads_no_clock_and_no_environment(path: Path) -> None:
    """matching, scoring and rules take ``now`` and their settings as arguments."""
    relative = str(path.relative_to(ROOT))
    found = impurities(path.read_text(encoding="utf-8"))
    assert [f for f in found if (relative, f) not in ALLOWED] == []


def test_the_allowed_impurities_are_still_there() -> None:
    """Each listed exception still matches, so a stale one is noticed and removed."""
    for relative, finding in ALLOWED:
        assert finding in impurities((ROOT / relative).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("source", "finding"),
    [
        ("from datetime import datetime\nx = datetime.now(UTC)\n", "datetime.now()"),
        ("import datetime\nx = datetime.datetime.utcnow()\n", "datetime.datetime.utcnow()"),
        ("from datetime import date\nx = date.today()\n", "date.today()"),
        ("import time\nx = time.monotonic()\n", "time.monotonic()"),
        ("from time import time\n", "from time import time"),
        ("from listener.clock import SystemClock\n", "SystemClock"),
        ("import os\nx = os.environ['X']\n", "os.environ"),
        ("import os\nx = os.getenv('X')\n", "os.getenv"),
        ("import urllib.request\n", "import urllib.request"),
    ],
)
def test_the_clock_check_notices(source: str, finding: str) -> None:
    """The AST check finds each way of reading the clock or the environment."""
    assert finding in impurities(source)


def test_the_clock_check_allows_injected_time() -> None:
    """Arithmetic on a ``now`` argument and ``as_utc`` are pure."""
    source = "from listener.clock import as_utc\ndef f(now):\n    return as_utc(now).date()\n"
    assert impurities(source) == []
