"""deploy/distributed: the compose file and the Kubernetes manifests of distributed mode are
valid (the Compose Specification; the Kubernetes schemas, strictly, offline; promtool), and
true to the daemon: each worker runs a role of distributed mode with settings the daemon
accepts, on the daemon's port, its rules file and state folder where the settings say, its
probes on /healthz and /readyz; every worker is scraped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from listener.bus import Bus
from listener.cli import main as listener_main
from listener.roles import ROLES
from listener.settings import Settings
from tests.deploy.common import (
    ALERTS,
    DEPLOY,
    JOB,
    check_compose_spec,
    daemon_port,
    load_yaml,
    setting_names,
)

DISTRIBUTED = DEPLOY / "distributed"
COMPOSE = DISTRIBUTED / "docker-compose.yml"
KUBERNETES = DISTRIBUTED / "kubernetes"
WORKER_ROLES = ("ingest", "evaluate")
VERSIONS = sorted({all_versions()[0], all_versions()[-1]})


def _services() -> dict[str, Any]:
    services: dict[str, Any] = load_yaml(COMPOSE)["services"]
    return services


def _role(command: list[str]) -> str:
    assert command[:3] == ["listener", "run", "--role"], command
    return command[3]


def test_compose_file_matches_the_compose_spec() -> None:
    """check-jsonschema validates the compose file against the Compose Specification."""
    check_compose_spec(COMPOSE)


@pytest.mark.parametrize("name", WORKER_ROLES)
def test_compose_workers_run_a_role_with_the_daemons_settings(name: str) -> None:
    """Each worker service runs its role with real LISTENER_* settings the daemon accepts,
    on the daemon's port, with its rules file mounted where LISTENER_CONFIG says and its
    state folder on a writable tmpfs (the root file system is read-only)."""
    service = _services()[name]
    assert _role(service["command"]) == name
    assert name in ROLES
    env = service["environment"]
    assert set(env) <= setting_names(), set(env) - setting_names()
    settings = Settings.from_env({k: str(v) for k, v in env.items()})
    assert settings.role == "all"  # the role comes from --role
    Bus.parse(settings.bus)
    assert int(settings.listen.rpartition(":")[2]) == daemon_port()
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    assert Path(DISTRIBUTED, mounts[settings.config]).resolve() == DEPLOY.parent / "rules.yaml"
    assert service["read_only"] is True
    assert str(PurePosixPath(settings.bus_state).parent) in service["tmpfs"]
    assert "kafka" in service["build"]["args"]["LISTENER_EXTRAS"].split(",")
    assert service["depends_on"]["redpanda"]["condition"] == "service_healthy"


def test_compose_prometheus_scrapes_every_worker(tmp_path: Path) -> None:
    """promtool accepts the Prometheus config in the layout compose mounts it (with
    ../prometheus/alerts.yml beside it), and its job finds every worker service."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    prometheus = _services()["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    for target, source in mounts.items():
        if target.startswith("/etc/prometheus/"):
            shutil.copy(DISTRIBUTED / source, tmp_path / PurePosixPath(target).name)
    assert (tmp_path / "alerts.yml").read_text() == ALERTS.read_text()
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = load_yaml(tmp_path / "prometheus.yml")["scrape_configs"]
    assert job["job_name"] == JOB
    (sd,) = job["dns_sd_configs"]
    assert sorted(sd["names"]) == sorted(WORKER_ROLES)
    assert sd["port"] == daemon_port()


def _manifests() -> list[dict[str, Any]]:
    docs = []
    for entry in load_yaml(KUBERNETES / "kustomization.yaml")["resources"]:
        docs += [d for d in yaml.safe_load_all((KUBERNETES / entry).read_text()) if d]
    return docs


def _generated() -> dict[str, dict[str, str]]:
    """The data of each ConfigMap the kustomization generates."""
    out = {}
    for generator in load_yaml(KUBERNETES / "kustomization.yaml")["configMapGenerator"]:
        data = {Path(f).name: (KUBERNETES / f).read_text() for f in generator.get("files", [])}
        data |= dict(item.split("=", 1) for item in generator.get("literals", []))
        out[generator["name"]] = data
    return out


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(KUBERNETES / "kustomization.yaml")
    generated = {
        Path(f).name for g in kustomization["configMapGenerator"] for f in g.get("files", [])
    }
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"} - generated
    assert sorted(kustomization["resources"]) == sorted(files)
    assert sorted(m["kind"] for m in _manifests()) == [
        "Deployment",
        "Service",
        "Service",
        "Service",
        "StatefulSet",
        "StatefulSet",
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_pass_kubernetes_validate(version: str) -> None:
    for manifest in _manifests():
        assert manifest["apiVersion"] in ("v1", "apps/v1"), manifest["kind"]
        kubernetes_validate.validate(manifest, version, strict=True)


def _workloads() -> dict[str, dict[str, Any]]:
    return {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m
        for m in _manifests()
        if m["kind"] in ("Deployment", "StatefulSet")
        and m["metadata"]["labels"].get("app.kubernetes.io/name") == "listener"
    }


@pytest.mark.parametrize("role", WORKER_ROLES)
def test_kubernetes_workers_run_a_role_with_the_daemons_settings(role: str) -> None:
    """Each worker runs its role with settings the daemon accepts (LISTENER_BUS from the
    generated ConfigMap), serves its probes on the daemon's port, and mounts the rules
    file and its state folder where the settings say; evaluators keep their state on a
    volume of their own (a StatefulSet), ingest workers keep none."""
    workload = _workloads()[role]
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert _role(container["args"]) == role
    env = {e["name"]: e["value"] for e in container["env"]}
    (source,) = container["envFrom"]
    env |= _generated()[source["configMapRef"]["name"]]
    assert set(env) <= setting_names(), set(env) - setting_names()
    settings = Settings.from_env(env)
    Bus.parse(settings.bus)
    (port,) = container["ports"]
    assert port["containerPort"] == daemon_port() == int(settings.listen.rpartition(":")[2])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[str(PurePosixPath(settings.config).parent)] == "config"
    assert mounts[str(PurePosixPath(settings.bus_state).parent)] == "state"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "listener-config"
    if role == "evaluate":
        assert workload["kind"] == "StatefulSet"
        (claim,) = workload["spec"]["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "state"
    else:
        assert workload["kind"] == "Deployment"
        assert "emptyDir" in volumes["state"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_each_role_has_a_service_for_its_metrics() -> None:
    services = {m["metadata"]["name"]: m for m in _manifests() if m["kind"] == "Service"}
    for role, workload in _workloads().items():
        service = services[f"listener-{role}"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert service["spec"]["ports"][0]["targetPort"] == "http-metrics"
        if workload["kind"] == "StatefulSet":
            assert workload["spec"]["serviceName"] == service["metadata"]["name"]


def test_the_example_rules_pass_listener_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert listener_main(["check", str(KUBERNETES / "rules.yaml")]) == 0
    assert "ok" in capsys.readouterr().out


def test_kustomize_builds_it() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    built = sorted(d["kind"] for d in yaml.safe_load_all(result.stdout) if d)
    assert built == sorted([*(m["kind"] for m in _manifests()), "ConfigMap", "ConfigMap"])
