"""A real PostgreSQL server for distributed mode's tests: Debian's ``postgresql`` package
(``./scripts/test`` installs it), a throwaway cluster (``initdb``, trust authentication,
``fsync=off``) on a free loopback port, run as the ``postgres`` user when the tests run as
root. Without the server binaries the tests skip, but fail under ``CI=true``.

One server per test session (:func:`server`); each test gets a database of its own
(:func:`new_database`), so tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import pytest

_NUMBERS = itertools.count()


def _need(what: str, why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing: {why}")
    pytest.skip(f"{what} not installed")


def bin_dir() -> Path:
    """The newest installed PostgreSQL's ``bin`` folder; skip without one (fail under CI)."""
    found = sorted(
        glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    _need("PostgreSQL (Debian package postgresql)", "./scripts/test installs it")
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(argv: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """A PostgreSQL server on a free loopback port: its base URL (no database name)."""
    try:
        import psycopg  # noqa: F401 - the store's driver
    except ImportError:
        _need("psycopg (the kafka extra)", "./scripts/test installs it with the dev extra")
    bindir = bin_dir()
    owner = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            owner = pwd.getpwnam("postgres").pw_name
        except KeyError:
            _need("the postgres user", "the postgresql package creates it")
    root = Path(tempfile.mkdtemp(prefix="listener-pg-"))
    data, log = root / "data", root / "server.log"
    if owner:
        shutil.chown(root, owner)
    port = _free_port()
    try:
        subprocess.run(
            _as_owner(
                [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"], owner
            ),
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        started = subprocess.run(
            _as_owner(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                owner,
            ),
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            text = log.read_text(errors="replace") if log.exists() else ""
            pytest.fail(f"postgres did not start: {started.stderr}{started.stdout}\n{text[-2000:]}")
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                pytest.fail("postgres did not listen within 30 s")
            time.sleep(0.05)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_owner(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                    owner,
                ),
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)


def new_database(server: str) -> str:
    """A new, empty database on ``server``: its URL."""
    import psycopg

    name = f"t{os.getpid()}_{next(_NUMBERS)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
