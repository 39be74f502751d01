"""Docs and deploy files stay true to the code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import typing
from pathlib import Path

import pytest
import yaml

from listener.config import schema
from listener.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _tags(union: object) -> list[str]:
    members = typing.get_args(typing.get_args(union)[0]) or (typing.get_args(union)[0],)
    return [typing.get_args(m.model_fields["type"].annotation)[0] for m in members]


@pytest.mark.parametrize(
    ("union", "doc"),
    [
        (schema.SourceConfig, "docs/rules.md"),
        (schema.SinkConfig, "docs/rules.md"),
        (schema.ConditionConfig, "docs/rules.md"),
        (schema.SinkConfig, "docs/sinks.md"),
        (schema.SourceConfig, "docs/collectors.md"),
    ],
)
def test_every_type_is_documented(union: object, doc: str) -> None:
    """Every registered source, sink and condition type has a section in the docs."""
    text = (REPO / doc).read_text()
    for tag in _tags(union):
        assert re.search(rf"^#+ .*`?(type: )?{tag}`?", text, re.M), f"{tag} missing in {doc}"


def test_every_config_key_is_documented() -> None:
    """Every key of every config model appears in docs/rules.md."""
    text = (REPO / "docs/rules.md").read_text()
    models = [
        m
        for m in vars(schema).values()
        if isinstance(m, type) and issubclass(m, schema.Strict) and m is not schema.Strict
    ]
    for model in models:
        for name, field in model.model_fields.items():
            key = field.alias or name
            pattern = rf"`([a-z_]+\.)?{re.escape(key)}(\.[a-z_]+)?`"
            assert re.search(pattern, text), f"{model.__name__}.{key} undocumented"


def test_readme_quick_start_commands_exist() -> None:
    """The README's two Quick start commands are the scripts .ci/run uses."""
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "./scripts/run" in quick
    assert "./scripts/test" in quick
    assert os.access(REPO / "scripts/run", os.X_OK)
    assert os.access(REPO / "scripts/test", os.X_OK)
    assert "./scripts/test" in (REPO / ".ci/run").read_text()


def test_every_setting_is_documented() -> None:
    """Every LISTENER_* setting is in the README."""
    readme = (REPO / "README.md").read_text()
    for name in Settings.__dataclass_fields__:
        assert f"LISTENER_{name.upper()}" in readme


def test_compose_and_dockerfile_match_daemon_defaults() -> None:
    """Ports, paths and the health endpoint agree across Dockerfile, compose and Prometheus."""
    compose = yaml.safe_load((REPO / "deploy/docker-compose.yml").read_text())
    svc = compose["services"]["listener"]
    port = Settings().listen.rsplit(":", 1)[1]
    assert svc["environment"]["LISTENER_LISTEN"] == f"0.0.0.0:{port}"
    assert f"127.0.0.1:{port}:{port}" in svc["ports"]
    state_dir = str(Path(svc["environment"]["LISTENER_STATE"]).parent)
    assert any(v.endswith(f":{state_dir}") for v in svc["volumes"])
    prom = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"listener:{port}"]
    docker = (REPO / "Dockerfile").read_text()
    assert f"EXPOSE {port}" in docker
    assert f"LISTENER_LISTEN=0.0.0.0:{port}" in docker  # the HEALTHCHECK probes /healthz there
    assert f"LISTENER_STATE={svc['environment']['LISTENER_STATE']}" in docker
    assert "USER 10001:10001" in docker


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: ./scripts/test installs Debian's prometheus package")
        pytest.skip("promtool not installed")
    return tool


def test_prometheus_alert_rules_are_valid() -> None:
    """The real promtool accepts deploy/prometheus/alerts.yml and its metric names exist."""
    result = subprocess.run(
        [_promtool(), "check", "rules", str(REPO / "deploy/prometheus/alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    from listener.metrics import Metrics

    names = {m.name for m in Metrics().registry.collect()}
    exposed = names | {n + s for n in names for s in ("_total", "_bucket", "_sum", "_count")}
    alerts = (REPO / "deploy/prometheus/alerts.yml").read_text()
    used = set(re.findall(r"\b(listener_[a-z_]+)", alerts))
    assert used <= exposed, used - exposed


def test_prometheus_config_is_valid() -> None:
    """The real promtool accepts deploy/prometheus/prometheus.yml (its rule file path is
    relative to it)."""
    cfg = REPO / "deploy/prometheus/prometheus.yml"
    result = subprocess.run(
        [_promtool(), "check", "config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
