"""Prometheus Alertmanager for tests: the real binary on loopback, and a tiny fake.

:func:`running_alertmanager` starts Debian's ``prometheus-alertmanager`` (0.25) in a
temporary folder with a minimal ``alertmanager.yml`` (one route to a receiver that
notifies nobody, short group timings, one inhibition rule: ``severity=watch`` is muted
while a ``severity=crisis`` alert of the same brand fires), clustering off, bound to
``127.0.0.1:<free port>``; it waits for ``/-/ready`` and stops the process at the end
(terminate, wait, kill). When the binary is missing the test is skipped, or failed when
``CI=true`` (``./scripts/test`` installs the Debian package)::

    with running_alertmanager() as am:
        ...  # AlertmanagerSinkConfig(url=am.url) ...
        [alert] = am.alerts(incident="inc-1")
        assert alert["status"]["state"] == "active"

:class:`FakeAlertmanager` answers ``POST /api/v2/alerts`` (recording each posted alert),
``GET /-/ready`` and ``GET /api/v2/status``, and fails on request; the contract suite
uses it so it stays fast and runs without the binary.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

BINARIES = ("prometheus-alertmanager", "alertmanager")
"""Names the binary goes by: Debian's package, then upstream's."""

START_DEADLINE = 30.0
"""Seconds Alertmanager gets to answer ``/-/ready`` (it takes about one)."""

CONFIG = """\
route:
  receiver: nobody
  group_by: [brand, rule]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: nobody
inhibit_rules:
  - source_matchers: ['severity="crisis"']
    target_matchers: ['severity="watch"']
    equal: [brand]
"""


def alertmanager_binary() -> str:
    """Path of the Alertmanager binary; skip the test when there is none, fail under CI."""
    for name in BINARIES:
        found = shutil.which(name)
        if found is not None:
            return found
    message = (
        "prometheus-alertmanager is not installed (./scripts/test installs the Debian package)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rfc3339(when: datetime) -> str:
    """``when`` as RFC 3339 in UTC with milliseconds, as Alertmanager writes it."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An RFC 3339 time from Alertmanager's API (nanoseconds cut to microseconds)."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = rest[: len(rest) - 6]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[-6:]}"
    return datetime.fromisoformat(text)


class Alertmanager:
    """A running Alertmanager: its base URL and a synchronous client for its API v2."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self.client = httpx.Client(base_url=url, timeout=10.0)

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` filtered by equality on ``labels`` (resolved alerts are
        never listed; silenced and inhibited ones are, with ``status.state=suppressed``)."""
        return self._get_alerts(labels, [])

    def unmuted(self, **labels: str) -> list[dict[str, Any]]:
        """Like :meth:`alerts`, leaving out silenced and inhibited alerts."""
        return self._get_alerts(labels, [("silenced", "false"), ("inhibited", "false")])

    def _get_alerts(
        self, labels: dict[str, str], extra: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("filter", f"{name}={json.dumps(value)}") for name, value in labels.items()
        ]
        params += extra
        response = self.client.get("/api/v2/alerts", params=params)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts

    def wait_for(
        self,
        check: Callable[[list[dict[str, Any]]], bool],
        *,
        timeout: float = 10.0,
        **labels: str,
    ) -> list[dict[str, Any]]:
        """Poll :meth:`alerts` (filtered by ``labels``) until ``check`` holds; return that
        list, or raise ``AssertionError`` with the last answer after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            alerts = self.alerts(**labels)
            if check(alerts):
                return alerts
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s; alerts: {alerts}")
            time.sleep(0.05)

    def silence(self, comment: str = "test", minutes: int = 30, **labels: str) -> str:
        """``POST /api/v2/silences`` muting alerts whose labels equal ``labels``; the id."""
        now = datetime.now(UTC)
        body = {
            "matchers": [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in labels.items()
            ],
            "startsAt": rfc3339(now - timedelta(seconds=1)),
            "endsAt": rfc3339(now + timedelta(minutes=minutes)),
            "createdBy": "listener tests",
            "comment": comment,
        }
        response = self.client.post("/api/v2/silences", json=body)
        response.raise_for_status()
        return str(response.json()["silenceID"])

    def close(self) -> None:
        self.client.close()


def _start(binary: str, folder: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    log = folder / f"alertmanager-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'alertmanager.yml'}",
                f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}", log


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_ready(process: subprocess.Popen[bytes], url: str, deadline: float) -> bool:
    """True once ``/-/ready`` answers 200; False when the process exits first."""
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if client.get(f"{url}/-/ready").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise AssertionError(f"Alertmanager at {url} not ready within {START_DEADLINE}s")


@contextmanager
def running_alertmanager(config: str = CONFIG) -> Iterator[Alertmanager]:
    """Start the real Alertmanager with ``config`` on a free loopback port; yield it ready;
    stop it at the end. Skips (fails under ``CI=true``) when the binary is missing."""
    binary = alertmanager_binary()
    with tempfile.TemporaryDirectory(prefix="listener-am-") as tmp:
        folder = Path(tmp)
        (folder / "alertmanager.yml").write_text(config)
        deadline = time.monotonic() + START_DEADLINE
        for _attempt in range(3):  # another process may take the free port first
            process, url, log = _start(binary, folder)
            try:
                if _wait_ready(process, url, deadline):
                    break
            except BaseException:
                _stop(process)
                raise
            _stop(process)
        else:
            raise AssertionError(f"Alertmanager did not start:\n{log.read_text()[-4000:]}")
        am = Alertmanager(url, log)
        try:
            yield am
        finally:
            am.close()
            _stop(process)


# --------------------------------------------------------------------------- the fake


class _FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: FakeAlertmanager


class _FakeHandler(BaseHTTPRequestHandler):
    server: _FakeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/-/ready":
            self._answer(200, b"OK")
        elif self.path == "/api/v2/status":
            self._answer(200, b'{"cluster": {"status": "disabled"}}')
        else:
            self._answer(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if self.path != "/api/v2/alerts":
            self._answer(404)
            return
        owner = self.server.owner
        status = owner._next_status()
        if status == 200:
            try:
                posted = json.loads(raw)
            except ValueError:
                self._answer(400, b'"malformed JSON"')
                return
            owner._record(posted if isinstance(posted, list) else [posted])
        self._answer(status)


class FakeAlertmanager:
    """A loopback stand-in for Alertmanager's API v2 (thread-safe): ``POST /api/v2/alerts``
    records every posted alert (a dict) in :attr:`posted` and answers 200, or the status
    given to :meth:`fail_next`; ``GET /-/ready`` and ``/api/v2/status`` answer 200."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posted: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._httpd: _FakeServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeAlertmanager:
        httpd = _FakeServer(("127.0.0.1", 0), _FakeHandler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeAlertmanager is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def posted(self) -> list[dict[str, Any]]:
        """Every alert accepted so far, in arrival order."""
        with self._lock:
            return list(self._posted)

    def fail_next(self, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` posts with ``status`` (recording nothing)."""
        with self._lock:
            self._failures.extend([status] * times)

    def _next_status(self) -> int:
        with self._lock:
            return self._failures.pop(0) if self._failures else 200

    def _record(self, alerts: list[Any]) -> None:
        with self._lock:
            self._posted.extend(a for a in alerts if isinstance(a, dict))
