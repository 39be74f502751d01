"""Shared fixtures: the shared data folder, a manual clock, a fresh metrics registry,
no matplotlib."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings

from listener.clock import ManualClock
from listener.metrics import Metrics

# Property tests draw the same examples on every run and machine (a failure reproduces,
# and no run meets an example no earlier run met); no example database is written.
settings.register_profile("listener", derandomize=True, database=None, print_blob=True)
settings.load_profile("listener")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LISTENER_SHARED_DIR", REPO.parent / "shared"))


def need_shared(*parts: str) -> Path:
    """Path to a file under ../shared; skip when absent, but fail when CI=true."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing; CI must run with ../shared beside the repo")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared folder (fixtures and data), skipping when absent outside CI."""
    return need_shared()


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib (and everything under it) cannot be imported, as without the extra."""
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at a fixed instant."""
    return ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def metrics() -> Metrics:
    """Metrics on a fresh registry."""
    return Metrics()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A real PostgreSQL server for the session (tests/support/postgres.py): its base URL.
    Skips without the server, but fails under CI=true."""
    from tests.support.postgres import running_server

    with running_server() as url:
        yield url


@pytest.fixture
def database(pg_server: str) -> str:
    """The URL of a new, empty PostgreSQL database of this test's own."""
    from tests.support.postgres import new_database

    return new_database(pg_server)
