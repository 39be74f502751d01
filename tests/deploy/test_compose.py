"""deploy/docker-compose.yml and the Dockerfile: valid, and true to the daemon's settings,
port and paths (the truth comes from listener.settings, not from another copy)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from listener.config.duration import parse_duration
from listener.httpapi import parse_listen
from listener.settings import Settings
from tests.deploy.common import (
    COMPOSE,
    DEPLOY,
    REPO,
    check_compose_spec,
    daemon_port,
    dockerfile,
    load_yaml,
    setting_names,
)


def _listener() -> dict[str, Any]:
    service: dict[str, Any] = load_yaml(COMPOSE)["services"]["listener"]
    return service


def _volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path → source (a path relative to deploy/, or a named volume)."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def test_compose_file_matches_the_compose_spec() -> None:
    """check-jsonschema validates the compose file against the Compose Specification."""
    check_compose_spec(COMPOSE)


def test_compose_settings_are_the_daemons() -> None:
    """The listener service sets only real LISTENER_* settings, which the daemon accepts."""
    env = _listener()["environment"]
    assert set(env) <= setting_names(), set(env) - setting_names()
    Settings.from_env(env)  # raises ConfigError on a value the daemon would refuse


def test_compose_port_is_the_daemons() -> None:
    """The service listens on all interfaces at the daemon's port and publishes that port on
    127.0.0.1 only."""
    service = _listener()
    host, port = parse_listen(service["environment"]["LISTENER_LISTEN"])
    assert (host, port) == ("0.0.0.0", daemon_port())
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
    for name, other in load_yaml(COMPOSE)["services"].items():
        assert all(p.startswith("127.0.0.1:") for p in other.get("ports", [])), name


def test_compose_config_and_state_paths() -> None:
    """rules.yaml is mounted read-only where LISTENER_CONFIG points, and the state file's
    folder is a named volume (the Dockerfile's VOLUME)."""
    service = _listener()
    env = Settings.from_env(service["environment"])
    volumes = _volumes(service)
    assert volumes[env.config] == "../rules.yaml"
    assert (DEPLOY / volumes[env.config]).resolve() == REPO / "rules.yaml"
    assert f"../rules.yaml:{env.config}:ro" in service["volumes"]
    state_dir = str(PurePosixPath(env.state).parent)
    assert volumes[state_dir] in load_yaml(COMPOSE)["volumes"]
    assert state_dir in dockerfile().volumes


def test_compose_stop_grace_period_outlasts_the_drain() -> None:
    """Docker waits longer than LISTENER_SHUTDOWN_TIMEOUT before it sends SIGKILL."""
    service = _listener()
    drain = Settings.from_env(service["environment"]).shutdown_timeout
    assert parse_duration(service["stop_grace_period"]) > drain


def test_compose_runs_listener_read_only() -> None:
    """The container's root file system is read-only; /tmp is a tmpfs for what the process
    writes outside the state volume (MPLCONFIGDIR among it)."""
    service = _listener()
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]
    writable = ["/tmp", *(c for c, s in _volumes(service).items() if not s.startswith("."))]
    mpl = PurePosixPath(dockerfile().env["MPLCONFIGDIR"])
    assert any(mpl.is_relative_to(w) for w in writable)


def test_dockerfile_matches_the_daemon() -> None:
    """The image's settings are real and accepted, its port is the daemon's, its command
    reads LISTENER_CONFIG, its HEALTHCHECK probes /healthz at LISTENER_LISTEN (not a port of
    its own: tests/deploy/test_routes.py runs it), and it runs as a numeric non-root user."""
    image = dockerfile()
    listener_env = {k: v for k, v in image.env.items() if k.startswith("LISTENER_")}
    assert set(listener_env) <= setting_names()
    settings = Settings.from_env(listener_env)
    host, port = parse_listen(settings.listen)
    assert (host, port) == ("0.0.0.0", daemon_port())
    assert image.expose == [port]
    assert "LISTENER_LISTEN" in image.healthcheck
    assert "/healthz" in image.healthcheck
    assert image.cmd[:2] == ["listener", "run"]
    assert image.cmd[image.cmd.index("--config") + 1] == settings.config
    assert image.user == f"{image.uid}:{image.gid}"  # numeric: runAsNonRoot can check it
    assert image.uid != 0


def test_compose_environment_agrees_with_the_image() -> None:
    """Every LISTENER_* value the compose file repeats is the image's own."""
    image = dockerfile().env
    for name, value in _listener()["environment"].items():
        if name in image:
            assert value == image[name], name
