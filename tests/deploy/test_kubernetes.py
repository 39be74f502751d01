"""deploy/kubernetes: valid against the Kubernetes schemas (offline, kubernetes-validate),
made of built-in kinds only (it applies on a cluster without the Prometheus Operator), and
true to the daemon: its settings, port, paths and user. deploy/overlays/prometheus-operator
is that base plus a ServiceMonitor and a PrometheusRule that match the Service and
deploy/prometheus/alerts.yml."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from listener.cli import main as listener_main
from listener.httpapi import parse_listen
from listener.settings import Settings
from tests.deploy.common import (
    ALERTS,
    JOB,
    KUBERNETES,
    KUSTOMIZATION,
    OPERATOR_OVERLAY,
    container_env,
    daemon_port,
    dockerfile,
    listener_container,
    load_yaml,
    manifests,
    require_tool,
    resource,
    secret_data,
    setting_names,
)

OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}  # CRDs: no offline schema
VERSIONS = sorted({all_versions()[0], all_versions()[-1]})  # the oldest and newest schemas
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def _settings() -> Settings:
    return Settings.from_env({**container_env(), **secret_data()})


def _mounts() -> dict[str, dict[str, Any]]:
    """Mount path → the pod volume mounted there (with the mount's readOnly)."""
    pod = resource("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {
        m["mountPath"]: {**volumes[m["name"]], "readOnly": m.get("readOnly", False)}
        for m in listener_container()["volumeMounts"]
    }


def _rules_yaml() -> tuple[str, str]:
    """The key and text of rules.yaml in the ConfigMap the Deployment mounts."""
    config = Path(_settings().config)
    volume = _mounts()[str(config.parent)]
    (config_map,) = (
        m
        for m in manifests()
        if m["kind"] == "ConfigMap" and m["metadata"]["name"] == volume["configMap"]["name"]
    )
    return config.name, config_map["data"][config.name]


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml lists every manifest in the folder once (generator inputs aside)."""
    kustomization = load_yaml(KUSTOMIZATION)
    resources = kustomization["resources"]
    generated = {
        Path(entry.rpartition("=")[2]).name
        for generator in kustomization.get("configMapGenerator", [])
        for entry in generator["files"]
    }
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {KUSTOMIZATION.name} - generated
    assert sorted(resources) == sorted(set(resources))
    assert set(resources) == files
    kinds = sorted(m["kind"] for m in manifests())
    assert kinds == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service"]


def test_base_has_only_built_in_kinds() -> None:
    """`kubectl apply -k deploy/kubernetes` works on a cluster without the Prometheus
    Operator: no manifest needs a CRD (core and apps API groups only)."""
    for manifest in manifests():
        assert manifest["apiVersion"] in ("v1", "apps/v1"), manifest["kind"]
    assert not OPERATOR_KINDS & {m["kind"] for m in manifests()}


def test_operator_overlay_is_the_base_plus_its_two_objects() -> None:
    """deploy/overlays/prometheus-operator lists the base and every manifest in its folder,
    and makes exactly the base's resources plus one ServiceMonitor and one PrometheusRule."""
    kustomization = load_yaml(OPERATOR_OVERLAY / "kustomization.yaml")
    resources = kustomization["resources"]
    (base,) = (r for r in resources if (OPERATOR_OVERLAY / r).is_dir())
    assert (OPERATOR_OVERLAY / base).resolve() == KUBERNETES
    files = {p.name for p in OPERATOR_OVERLAY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources) - {base} == files
    overlay = manifests(OPERATOR_OVERLAY)
    extra = [m for m in overlay if m["kind"] in OPERATOR_KINDS]
    assert sorted(m["kind"] for m in extra) == sorted(OPERATOR_KINDS)
    assert all(m["apiVersion"] == "monitoring.coreos.com/v1" for m in extra)
    assert [m for m in overlay if m["kind"] not in OPERATOR_KINDS] == manifests()


@pytest.mark.parametrize("folder", [KUBERNETES, OPERATOR_OVERLAY], ids=["base", "overlay"])
def test_kustomize_builds_what_the_tests_read(folder: Path) -> None:
    """The real kustomize (`kubectl kustomize`) builds each kustomization into the kinds
    these tests read from the files (skipped without kubectl: ./scripts/test does not
    install it)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert sorted(m["kind"] for m in built) == sorted(m["kind"] for m in manifests(folder))


@pytest.mark.parametrize("version", VERSIONS)
def test_core_manifests_pass_kubernetes_validate(version: str) -> None:
    """Every core resource passes strict schema validation (no unknown fields) for the
    oldest and the newest Kubernetes version kubernetes-validate knows."""
    checked = []
    for manifest in manifests():
        if manifest["kind"] in OPERATOR_KINDS:
            continue
        kubernetes_validate.validate(manifest, version, strict=True)
        checked.append(manifest["kind"])
    assert len(checked) == 5


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validation above is strict: a misspelt field fails it."""
    deployment = resource("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_manifests_are_namespace_agnostic_and_labelled() -> None:
    """No manifest (base or overlay) names a namespace; all carry app.kubernetes.io/name:
    listener."""
    for manifest in manifests(OPERATOR_OVERLAY):
        meta = manifest["metadata"]
        assert "namespace" not in meta, meta["name"]
        if manifest["kind"] != "ConfigMap":  # the generator's own, unlabelled
            assert meta["labels"]["app.kubernetes.io/name"] == "listener", meta["name"]


def test_one_writer_on_a_read_write_once_volume() -> None:
    """One replica, replaced with Recreate (never two pods on the SQLite file), and its
    state on the ReadWriteOnce claim in the folder of LISTENER_STATE."""
    spec = resource("Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    claim = resource("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    state = _mounts()[str(PurePosixPath(_settings().state).parent)]
    assert state["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert not state["readOnly"]


def test_deployment_settings_are_the_daemons() -> None:
    """The container sets only real LISTENER_* settings, the daemon accepts them, and they
    agree with the image's (Dockerfile) paths and port."""
    env = container_env()
    listener_env = {k for k in env if k.startswith("LISTENER_")}
    assert listener_env <= setting_names(), listener_env - setting_names()
    settings = _settings()
    image = Settings.from_env(
        {k: v for k, v in dockerfile().env.items() if k.startswith("LISTENER_")}
    )
    assert (settings.config, settings.state, settings.listen) == (
        image.config,
        image.state,
        image.listen,
    )


def test_deployment_port_is_the_daemons() -> None:
    """LISTENER_LISTEN is all interfaces at the daemon's port, which is the container port,
    the Service's port and target, and what the ServiceMonitor scrapes."""
    host, port = parse_listen(_settings().listen)
    assert (host, port) == ("0.0.0.0", daemon_port())
    (container_port,) = listener_container()["ports"]
    assert container_port["containerPort"] == port
    (service_port,) = resource("Service")["spec"]["ports"]
    assert service_port["port"] == port
    assert service_port["targetPort"] == container_port["name"]
    (endpoint,) = resource("ServiceMonitor", OPERATOR_OVERLAY)["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]


def test_probes_use_the_daemons_health_endpoints() -> None:
    """Startup and liveness probe /healthz, readiness /readyz, on the daemon's named port
    (tests/deploy/test_routes.py checks that the real daemon serves them)."""
    container = listener_container()
    port_name = container["ports"][0]["name"]
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == port_name, probe
        paths[probe] = get["path"]
    assert paths == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # migrations


def test_termination_grace_outlasts_the_drain() -> None:
    """Kubernetes waits longer than LISTENER_SHUTDOWN_TIMEOUT before it sends SIGKILL."""
    pod = resource("Deployment")["spec"]["template"]["spec"]
    drain = _settings().shutdown_timeout.total_seconds()
    assert pod["terminationGracePeriodSeconds"] >= drain + 5


def test_no_service_links_into_the_settings_namespace() -> None:
    """Service links are off: a Service named listener would otherwise put
    LISTENER_SERVICE_HOST, LISTENER_PORT, ... into the daemon's LISTENER_* settings."""
    pod = resource("Deployment")["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False
    assert resource("Service")["metadata"]["name"].upper() == "LISTENER"


def test_security_context_matches_the_image() -> None:
    """The pod runs as the Dockerfile's non-root user, can't escalate, and has a read-only
    root file system with every path the daemon writes on a writable volume."""
    image = dockerfile()
    pod = resource("Deployment")["spec"]["template"]["spec"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (image.uid, image.gid)
    assert security["fsGroup"] == image.gid  # the volume is writable for it
    container = listener_container()["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    writable = [PurePosixPath(p) for p, v in _mounts().items() if not v["readOnly"]]
    env = container_env()
    assert env["MPLCONFIGDIR"] == image.env["MPLCONFIGDIR"]
    for path in [
        PurePosixPath(_settings().state).parent,  # the file, its -wal and -shm
        PurePosixPath(env["MPLCONFIGDIR"]),
        PurePosixPath("/tmp"),  # SQLite's and Python's temporary files
    ]:
        assert any(path.is_relative_to(w) for w in writable), path
    assert "emptyDir" in _mounts()["/tmp"]


def test_resources_are_bounded() -> None:
    """The container requests and limits CPU and memory."""
    resources = listener_container()["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, kind


def test_config_map_rules_pass_listener_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The rules.yaml the Deployment mounts (at LISTENER_CONFIG) passes `listener check`
    with the Secret's values in the environment."""
    name, text = _rules_yaml()
    path = tmp_path / name
    path.write_text(text)
    for key, value in secret_data().items():
        monkeypatch.setenv(key, value)
    assert listener_main(["check", str(path)]) == 0
    assert f"{path}: ok" in capsys.readouterr().out


def test_secret_holds_every_variable_rules_yaml_needs() -> None:
    """Every ${VAR} rules.yaml uses comes from the Secret (through envFrom) or the env,
    LISTENER_API_TOKEN is there, and the Secret holds nothing nobody reads."""
    name = resource("Secret")["metadata"]["name"]
    assert listener_container()["envFrom"] == [{"secretRef": {"name": name}}]
    _, text = _rules_yaml()
    used = set(ENV_REF.findall(yaml.safe_dump(yaml.safe_load(text))))  # comments dropped
    provided = set(secret_data()) | set(container_env())
    assert used <= provided, used - provided
    assert "LISTENER_API_TOKEN" in secret_data()
    mentioned = set(ENV_REF.findall(text))  # commented-out examples count here
    unread = set(secret_data()) - setting_names() - mentioned
    assert not unread, f"secret keys nothing reads: {sorted(unread)}"


def test_service_monitor_scrapes_the_service() -> None:
    """The ServiceMonitor selects the Service by its labels, scrapes its named metrics port
    at /metrics, and the Service selects the Deployment's pods."""
    monitor = resource("ServiceMonitor", OPERATOR_OVERLAY)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = resource("Service")
    labels = service["metadata"]["labels"]
    selector = monitor["spec"]["selector"]
    assert set(selector) == {"matchLabels"}
    assert selector["matchLabels"].items() <= labels.items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
    pod_labels = resource("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert resource("Deployment")["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    # the operator names the job after the Service: the alerts select up{job="listener"}
    assert "jobLabel" not in monitor["spec"]
    assert service["metadata"]["name"] == JOB


def test_prometheus_rule_is_the_alerts_file(tmp_path: Path) -> None:
    """The PrometheusRule's spec is deploy/prometheus/alerts.yml, which promtool accepts."""
    rule = resource("PrometheusRule", OPERATOR_OVERLAY)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == load_yaml(ALERTS), (
        "deploy/overlays/prometheus-operator/prometheusrule.yaml's spec differs from "
        "deploy/prometheus/alerts.yml"
    )
    copy = tmp_path / "rules.yml"
    copy.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run(
        [require_tool("promtool", "prometheus"), "check", "rules", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
