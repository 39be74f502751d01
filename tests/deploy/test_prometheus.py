"""deploy/prometheus and deploy/alertmanager: the real promtool and amtool accept them, the
alert rules pass their unit tests, and they watch metrics the daemon really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.common import (
    ALERTMANAGER_CONFIG,
    ALERTS,
    COMPOSE,
    DEPLOY,
    JOB,
    OPERATIONS,
    PROMETHEUS,
    PROMETHEUS_CONFIG,
    github_anchors,
    load_yaml,
    require_tool,
)
from tests.test_deploy import _label_names, _metric_names, exported_labels, exported_names

RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series


def _promtool() -> str:
    return require_tool("promtool", "prometheus")


def _run(*args: str) -> str:
    """Run a tool; its standard output and error, after checking it succeeded."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def test_alert_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts deploy/prometheus/alerts.yml."""
    output = _run(_promtool(), "check", "rules", str(ALERTS))
    assert f"SUCCESS: {len(_alerts())} rules found" in output


def test_alert_rule_unit_tests_pass() -> None:
    """The `promtool test rules` cases in deploy/prometheus/tests/ pass."""
    assert RULE_TESTS
    output = _run(_promtool(), "test", "rules", *map(str, RULE_TESTS))
    assert "SUCCESS" in output
    assert "FAILED" not in output


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Every alert has a promtool case where it fires and one where it stays quiet, and the
    cases name no alert that does not exist."""
    names = {rule["alert"] for rule in _alerts()}
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        spec = load_yaml(path)
        assert [(path.parent / f).resolve() for f in spec["rule_files"]] == [ALERTS]
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                assert check["alertname"] in names, f"{path.name}: unknown {check['alertname']}"
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert names - fires == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


def test_alerts_use_only_exported_metrics() -> None:
    """Every series an alert selects is one the daemon exports (or `up`), by labels it has."""
    names = exported_names() | {"up"}
    labels = {**exported_labels(), "up": set()}
    for rule in _alerts():
        used = _metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= names, f"{rule['alert']}: unknown {sorted(used - names)}"
        known = set().union(*(labels.get(n, set()) for n in used)) | TARGET_LABELS
        unknown = _label_names(rule["expr"]) - known
        assert not unknown, f"{rule['alert']}: labels {sorted(unknown)} not on {sorted(used)}"
    down = next(r for r in _alerts() if r["alert"] == "ListenerDown")
    assert f'up{{job="{JOB}"}}' in down["expr"]


def test_alerts_have_severity_summary_and_runbook() -> None:
    """Every alert pages or warns, says what is wrong, and links a runbook section that
    exists in docs/operations.md."""
    anchors = github_anchors(OPERATIONS.read_text())
    for rule in _alerts():
        name = rule["alert"]
        assert re.fullmatch(r"Listener[A-Z]\w+", name)
        assert rule["labels"]["severity"] in ("page", "warn"), name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/operations.md", name
        assert anchor in anchors, f"{name}: no section #{anchor} in docs/operations.md"
        assert anchor.startswith(name.lower()), f"{name}: runbook #{anchor} is another alert's"


def test_prometheus_config_passes_promtool() -> None:
    """`promtool check config` accepts prometheus.yml where it lies in the repository, and
    it loads the alert rules from there."""
    output = _run(_promtool(), "check", "config", str(PROMETHEUS_CONFIG))
    assert f"SUCCESS: {len(_alerts())} rules found" in output


def _compose_layout(service: str, root: Path) -> None:
    """Copy a compose service's bind-mounted files to where the container sees them,
    under ``root``."""
    compose = load_yaml(COMPOSE)
    for volume in compose["services"][service]["volumes"]:
        host, container = volume.split(":")[:2]
        if host.startswith("."):
            target = root / container.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(DEPLOY / host, target)


def _flag(service: str, flag: str) -> str:
    command = load_yaml(COMPOSE)["services"][service]["command"]
    (value,) = (arg.split("=", 1)[1] for arg in command if arg.startswith(f"{flag}="))
    return str(value)


def test_prometheus_config_passes_promtool_as_compose_mounts_it(tmp_path: Path) -> None:
    """In the layout the compose file mounts (prometheus.yml at --config.file, alerts.yml
    beside it), promtool accepts the config and finds every rule."""
    _compose_layout("prometheus", tmp_path)
    config = tmp_path / _flag("prometheus", "--config.file").lstrip("/")
    assert config.read_bytes() == PROMETHEUS_CONFIG.read_bytes()
    output = _run(_promtool(), "check", "config", str(config))
    assert f"SUCCESS: {len(_alerts())} rules found" in output


def test_alertmanager_config_passes_amtool(tmp_path: Path) -> None:
    """`amtool check-config` accepts the Alertmanager config the compose file mounts, and
    it routes listener's own alerts to a receiver."""
    amtool = require_tool("amtool", "prometheus-alertmanager")
    _compose_layout("alertmanager", tmp_path)
    config = tmp_path / _flag("alertmanager", "--config.file").lstrip("/")
    assert config.read_bytes() == ALERTMANAGER_CONFIG.read_bytes()
    _run(amtool, "check-config", str(config))
    route = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            "alertname=ListenerDown",
            "severity=page",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert route.strip() == load_yaml(ALERTMANAGER_CONFIG)["route"]["receiver"]


@pytest.mark.parametrize("service", ["alertmanager", "listener"])
def test_prometheus_targets_are_compose_services(service: str) -> None:
    """Prometheus scrapes the listener service and alerts to the alertmanager service, at
    the ports those containers listen on."""
    config = load_yaml(PROMETHEUS_CONFIG)
    compose = load_yaml(COMPOSE)["services"]
    if service == "listener":
        (job,) = config["scrape_configs"]
        assert job["job_name"] == JOB
        assert job["metrics_path"] == "/metrics"
        (target,) = job["static_configs"][0]["targets"]
    else:
        (target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = target.rsplit(":", 1)
    assert host == service
    published = [p.rsplit(":", 1)[1] for p in compose[service]["ports"]]
    assert port in published


def _routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    """The route and every route below it."""
    return [route, *(r for child in route.get("routes", []) for r in _routes(child))]


def _integrations(receiver: dict[str, Any]) -> list[Any]:
    """A receiver's notifications: the entries of its *_configs lists."""
    return [
        entry
        for key, entries in receiver.items()
        if key.endswith("_configs")
        for entry in entries or []
    ]


def test_no_route_ends_in_an_empty_receiver() -> None:
    """Every receiver a route names exists and notifies somewhere: a receiver without an
    integration is where alerts silently go nowhere."""
    config = load_yaml(ALERTMANAGER_CONFIG)
    receivers = {r["name"]: r for r in config["receivers"]}
    routes = _routes(config["route"])
    assert routes[0]["receiver"]  # the root route has the default receiver
    for route in routes:
        if "receiver" in route:
            name = route["receiver"]
            assert name in receivers, f"route to unknown receiver {name!r}"
            assert _integrations(receivers[name]), f"receiver {name!r} notifies nobody"
    assert _integrations({"name": "x"}) == []  # the check sees an empty receiver as one


def test_every_listener_alert_routes_to_a_receiver_that_notifies() -> None:
    """`amtool config routes test` sends each alert of alerts.yml, with its labels, to a
    receiver with at least one integration."""
    amtool = require_tool("amtool", "prometheus-alertmanager")
    receivers = {r["name"]: r for r in load_yaml(ALERTMANAGER_CONFIG)["receivers"]}
    for alert in _alerts():
        labels = {"alertname": alert["alert"], "job": JOB, **alert.get("labels", {})}
        output = _run(
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            *(f"{k}={v}" for k, v in labels.items()),
        )
        for name in output.split()[0].split(","):
            assert _integrations(receivers[name]), f"{alert['alert']} → {name}: notifies nobody"


def test_on_call_placeholder_fails_loudly_and_is_documented() -> None:
    """The shipped on-call webhook is a placeholder that can never be delivered to (an
    .invalid host: failures show in Alertmanager's log and metrics), and docs/operations.md
    shows it and how to replace it."""
    (receiver,) = (r for r in load_yaml(ALERTMANAGER_CONFIG)["receivers"] if r["name"] == "on-call")
    (webhook,) = receiver["webhook_configs"]
    host = re.match(r"https?://([^/:]+)", webhook["url"])
    assert host
    assert host.group(1).endswith(".invalid")
    assert webhook["send_resolved"] is True
    docs = OPERATIONS.read_text()
    assert webhook["url"] in docs
    assert "amtool check-config" in docs
