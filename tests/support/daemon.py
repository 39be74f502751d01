"""Run `listener run` as a subprocess and watch it: logs, /metrics, /readyz, signals."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

SECRET = "s3cr3t-hook-token"


class Daemon:
    """A running `listener run` subprocess with its log lines collected."""

    def __init__(self, config: Path, state: Path, env: dict[str, str] | None = None) -> None:
        extra = env or {}
        full_env = {
            **os.environ,
            "HOOK_TOKEN": SECRET,
            "LISTENER_EVALUATE_EVERY": "1s",
            "LISTENER_LOG_FORMAT": "json",
            "LISTENER_SHUTDOWN_TIMEOUT": "5s",
            **extra,
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "listener",
                "run",
                "--config",
                str(config),
                "--state",
                str(state),
                "--listen",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        self.logs: list[dict[str, object]] = []
        self.raw: list[str] = []
        self.stdout: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, False), daemon=True),
        ]
        for reader in self.readers:
            reader.start()
        started = self.wait_log("started")
        host, port = str(started["listen"]).rsplit(":", 1)
        self.base = f"http://{host}:{port}"

    def _read(self, stream: object, is_log: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            (self.raw if is_log else self.stdout).append(line)
            if is_log:
                with contextlib.suppress(ValueError):
                    self.logs.append(json.loads(line))

    def wait_log(self, event: str, timeout: float = 30.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in list(self.logs):
                if entry.get("event") == event:
                    return entry
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} log line; stderr:\n{''.join(self.raw)}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def call(
        self, method: str, path: str, body: object = None, token: str | None = None
    ) -> tuple[int, object]:
        """An HTTP request to the daemon; returns the status and the parsed JSON body."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def metric(self, name: str, **labels: str) -> float:
        _, text = self.get("/metrics")
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
            if m and m.group(1) == name:
                got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
                if got == want:
                    return float(m.group(3))
        return 0.0

    def wait_metric(self, name: str, at_least: float, timeout: float = 30.0, **labels: str) -> None:
        deadline = time.monotonic() + timeout
        while self.metric(name, **labels) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}{labels} stayed below {at_least}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Kill if still running, then release the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for reader in self.readers:
            reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
