"""The HTTP paths the deploy files probe and scrape are served by the real daemon: `listener
run` started with the Deployment's environment, asked for each path, then stopped with
SIGTERM within the time Kubernetes and compose give it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.common import (
    OPERATOR_OVERLAY,
    PROMETHEUS_CONFIG,
    container_env,
    dockerfile,
    listener_container,
    load_yaml,
    resource,
    secret_data,
)
from tests.support.daemon import Daemon

pytestmark = pytest.mark.e2e

RULES = """
version: 1
brands:
  - name: Acme
    aliases: ["Acme"]
sinks:
  console: {type: console}
"""


def _deploy_paths() -> dict[str, str]:
    """Where → HTTP path, for every path a deploy file sends a request to."""
    container = listener_container()
    paths = {
        f"deployment {probe}": container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    for i, endpoint in enumerate(resource("ServiceMonitor", OPERATOR_OVERLAY)["spec"]["endpoints"]):
        paths[f"servicemonitor endpoint {i}"] = endpoint["path"]
    for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]:
        paths[f"prometheus job {job['job_name']}"] = job.get("metrics_path", "/metrics")
    url = re.search(r"/healthz|/readyz|/metrics", dockerfile().healthcheck)
    assert url
    paths["Dockerfile HEALTHCHECK"] = url.group(0)
    return paths


def _start(folder: Path) -> Daemon:
    """`listener run` with the Deployment's environment and Secret (paths and address given
    as flags, which override them) on a temporary state file."""
    config = folder / "rules.yaml"
    config.write_text(RULES)
    env = {**container_env(), **secret_data(), "MPLCONFIGDIR": str(folder / "matplotlib")}
    return Daemon(config, folder / "listener.db", env=env)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = _start(tmp_path_factory.mktemp("routes"))
    try:
        yield running
    finally:
        running.close()


def test_every_deploy_path_is_served(daemon: Daemon) -> None:
    """Each probed or scraped path is a route of the daemon: /healthz answers 200 "ok",
    /readyz its JSON readiness (200, or 503 while not ready), /metrics the exposition."""
    status, _ = daemon.get("/no-such-route")
    assert status == 404  # so a path that is not a route would fail below
    paths = _deploy_paths()
    assert set(paths.values()) == {"/healthz", "/readyz", "/metrics"}
    for where, path in paths.items():
        status, body = daemon.get(path)
        if path == "/healthz":
            assert (status, body) == (200, "ok\n"), where
        elif path == "/readyz":
            assert status in (200, 503), where
            assert json.loads(body)["ready"] is (status == 200), where
        else:
            assert status == 200, where
            assert "listener_build_info" in body, where


def _healthcheck(listen: str) -> int:
    """Exit status of the Dockerfile's HEALTHCHECK command with LISTENER_LISTEN=listen."""
    command = dockerfile().healthcheck_cmd
    assert command[0] == "python"
    env = {**os.environ, "LISTENER_LISTEN": listen}
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30
    ).returncode


def test_dockerfile_healthcheck_follows_listener_listen(daemon: Daemon) -> None:
    """The image's HEALTHCHECK asks /healthz where LISTENER_LISTEN says the daemon listens
    (a wildcard host on loopback), and fails where nothing answers."""
    host, port = daemon.base.removeprefix("http://").rsplit(":", 1)
    assert host == "127.0.0.1"
    for listen in (f"127.0.0.1:{port}", f"0.0.0.0:{port}", f":{port}"):
        assert _healthcheck(listen) == 0, listen
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    assert _healthcheck(f"0.0.0.0:{closed}") != 0


def test_ready_after_start(daemon: Daemon) -> None:
    """With its config applied the daemon is ready, so a readiness probe passes."""
    deadline = time.monotonic() + 10
    while daemon.get("/readyz")[0] != 200:
        assert time.monotonic() < deadline, daemon.get("/readyz")
        time.sleep(0.1)


def test_sigterm_drains_within_the_grace_period(tmp_path: Path) -> None:
    """SIGTERM stops the daemon with exit code 0 sooner than Kubernetes' grace period."""
    grace = resource("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    daemon = _start(tmp_path)
    try:
        started = time.monotonic()
        assert daemon.stop(timeout=grace) == 0
        assert time.monotonic() - started < grace
        daemon.wait_log("stopped")
    finally:
        daemon.close()
