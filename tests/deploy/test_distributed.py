"""deploy/distributed: the compose file and the Kubernetes manifests of distributed mode are
valid (the Compose Specification; the Kubernetes schemas, strictly, offline; promtool), and
true to the daemon: each worker runs a role of distributed mode with settings the daemon
accepts, on the daemon's port, its rules file and state folder where the settings say, its
probes on /healthz and /readyz; every worker is scraped; the collector and deliver workers
(and they alone) get rules.yaml's secrets (the sources' and the sinks') and the shared
state, a PostgreSQL database that the deployment runs with the user, password and database
of LISTENER_STATE's URL."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from listener.bus import Bus
from listener.cli import main as listener_main
from listener.httpapi import parse_listen
from listener.roles import ROLES
from listener.settings import Settings
from listener.store import is_database_url
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
PROMETHEUS_CONFIG = DISTRIBUTED / "prometheus.yml"
KUBERNETES = DISTRIBUTED / "kubernetes"
WORKER_ROLES = ("collector", "ingest", "evaluate", "deliver")
SECRET_ROLES = ("collector", "deliver")
"""The roles that read rules.yaml with its secrets (the sources' and the sinks': the file is
read whole) and keep the shared state (the collectors' cursors, the delivery ledger)."""
REPLICAS = {"collector": 2, "deliver": 2}
"""Collectors: each source polled by one, a survivor takes a dead one's sources over.
Deliver workers: one holds the delivery lease and sends, the other stands by."""
POSTGRES_PORT = 5432
VERSIONS = sorted({all_versions()[0], all_versions()[-1]})
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")
"""A ``${VARIABLE}`` (with an optional ``:-default``) of rules.yaml or of compose."""
COMPOSE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def test_the_roles_are_the_daemons() -> None:
    assert set(WORKER_ROLES) == set(ROLES) - {"all"}


def _secret_variables(text: str) -> tuple[set[str], set[str]]:
    """The ``${VARIABLE}``s of a rules file: those it uses (comments dropped), and those it
    mentions (commented-out examples too)."""
    used = set(ENV_REF.findall(yaml.safe_dump(yaml.safe_load(text))))
    return used, set(ENV_REF.findall(text))


# --- docker compose ---------------------------------------------------------------------


def _services() -> dict[str, Any]:
    services: dict[str, Any] = load_yaml(COMPOSE)["services"]
    return services


def _role(command: list[str]) -> str:
    assert command[:3] == ["listener", "run", "--role"], command
    return command[3]


def _interpolate(value: object, shell: Mapping[str, str]) -> str:
    """A compose value as compose passes it: ``${VAR}`` and ``${VAR:-default}`` from the
    shell that runs compose (the default where it is unset or empty)."""

    def sub(match: re.Match[str]) -> str:
        return shell.get(match[1]) or match[2] or ""

    return COMPOSE_VAR.sub(sub, str(value)).replace("$$", "$")


def _environment(service: dict[str, Any], shell: Mapping[str, str] | None = None) -> dict[str, str]:
    return {k: _interpolate(v, shell or {}) for k, v in service.get("environment", {}).items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → source (a path relative to deploy/distributed, or a named volume)."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def _compose_rules(service: dict[str, Any]) -> str:
    """The rules file a worker service mounts at LISTENER_CONFIG."""
    config = _environment(service)["LISTENER_CONFIG"]
    return (DISTRIBUTED / _mounts(service)[config]).read_text()


def _workers() -> dict[str, str]:
    """The services that run a role of distributed mode: role → service name."""
    return {
        _role(s["command"]): name
        for name, s in _services().items()
        if s.get("command", [])[:2] == ["listener", "run"]
    }


def test_compose_file_matches_the_compose_spec() -> None:
    """check-jsonschema validates the compose file against the Compose Specification."""
    check_compose_spec(COMPOSE)


def test_compose_runs_every_role() -> None:
    """A service per role, named after it."""
    workers = _workers()
    assert sorted(workers) == sorted(WORKER_ROLES)
    assert all(role == name for role, name in workers.items()), workers


@pytest.mark.parametrize("name", WORKER_ROLES)
def test_compose_workers_run_a_role_with_the_daemons_settings(name: str) -> None:
    """Each worker service runs its role with real LISTENER_* settings the daemon accepts,
    on the daemon's port, with its rules file mounted where LISTENER_CONFIG says and its
    state folder on a writable tmpfs (the root file system is read-only). Besides its
    settings, only a collector or deliver worker gets variables: the secrets of its rules
    file (the sources' and the sinks')."""
    service = _services()[name]
    assert _role(service["command"]) == name
    assert name in ROLES
    env = _environment(service)
    _, mentioned = _secret_variables(_compose_rules(service))
    secrets = set(env) - setting_names()
    assert secrets <= (mentioned if name in SECRET_ROLES else set()), secrets
    settings = Settings.from_env({k: v for k, v in env.items() if k in setting_names()})
    assert settings.role == "all"  # the role comes from --role
    Bus.parse(settings.bus)
    assert settings.bus == _environment(_services()["ingest"])["LISTENER_BUS"]  # one bus
    assert parse_listen(settings.listen) == ("0.0.0.0", daemon_port())
    mounts = _mounts(service)
    assert Path(DISTRIBUTED, mounts[settings.config]).resolve() == DEPLOY.parent / "rules.yaml"
    assert str(PurePosixPath(settings.bus_state).parent) in service["tmpfs"]
    assert "kafka" in service["build"]["args"]["LISTENER_EXTRAS"].split(",")
    assert service["depends_on"]["redpanda"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", WORKER_ROLES)
def test_compose_workers_are_hardened(name: str) -> None:
    """A read-only root file system (writes to tmpfs only), no capabilities, no new
    privileges, and time to stop cleanly."""
    service = _services()[name]
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["stop_grace_period"] == "20s"
    assert service["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", SECRET_ROLES)
def test_compose_workers_share_postgresql(name: str) -> None:
    """The collectors (two: each source polled by one) and the deliver workers (two: one
    sends, one stands by) keep the shared state in the postgres service's database (one
    URL for both roles), with its user, password and database (the password from the same
    variable, whether it is set or not), and start once it is healthy."""
    services = _services()
    worker = services[name]
    assert worker["deploy"]["replicas"] == REPLICAS[name]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["depends_on"]["redpanda"]["condition"] == "service_healthy"
    urls = {str(services[role]["environment"]["LISTENER_STATE"]) for role in SECRET_ROLES}
    assert len(urls) == 1, "one shared state"
    for shell in ({}, {"POSTGRES_PASSWORD": "s3cret"}):
        settings = Settings.from_env(
            {k: v for k, v in _environment(worker, shell).items() if k in setting_names()}
        )
        assert settings.state.startswith("postgresql://"), settings.state
        assert is_database_url(settings.state)
        url = urlsplit(settings.state)
        assert url.hostname == "postgres"
        server = _environment(postgres, shell)
        assert url.port == POSTGRES_PORT
        assert url.username == server["POSTGRES_USER"]
        assert (
            url.password
            == server["POSTGRES_PASSWORD"]
            == shell.get("POSTGRES_PASSWORD", "listener")
        )
        assert url.path == "/" + server["POSTGRES_DB"]
    assert "${POSTGRES_PASSWORD:-" in postgres["environment"]["POSTGRES_PASSWORD"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    data = _mounts(postgres)["/var/lib/postgresql/data"]
    assert data in load_yaml(COMPOSE)["volumes"], "the data on a named volume"
    for other, service in services.items():  # no other service keeps the shared state
        if other not in SECRET_ROLES:
            assert "LISTENER_STATE" not in service.get("environment", {}), other


@pytest.mark.parametrize("role", SECRET_ROLES)
def test_compose_workers_get_the_rules_secrets(role: str) -> None:
    """Every ${VARIABLE} the collectors' and deliver workers' rules file uses (the sources'
    and the sinks': each reads it whole) is in their environment, passed from the shell
    that runs compose (docs/operations.md), never a literal; both roles get the same."""
    services = _services()
    worker = services[role]
    used, _ = _secret_variables(_compose_rules(worker))
    env = worker["environment"]
    assert used <= set(env), used - set(env)
    for name in set(env) - setting_names():
        assert ENV_REF.fullmatch(str(env[name])), f"{name}: pass it from the shell"
    secrets = {r: set(services[r]["environment"]) - setting_names() for r in SECRET_ROLES}
    assert all(names == secrets[role] for names in secrets.values()), secrets


def test_compose_ports_are_bound_to_localhost() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_compose_prometheus_discovers_every_worker() -> None:
    """The scrape job finds every replica of every worker service: a DNS A query of a
    service's name answers with all of its replicas, on the daemon's port."""
    (job,) = load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    assert job["job_name"] == JOB
    (sd,) = job["dns_sd_configs"]
    assert sd["type"] == "A"
    assert sorted(sd["names"]) == sorted(_workers()) == sorted(WORKER_ROLES)
    assert sd["port"] == daemon_port()
    for role, replicas in REPLICAS.items():
        assert _services()[role]["deploy"]["replicas"] == replicas, role
    mounts = _mounts(_services()["prometheus"])
    assert (DISTRIBUTED / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS_CONFIG


def test_compose_prometheus_scrapes_every_worker(tmp_path: Path) -> None:
    """promtool accepts the Prometheus config in the layout compose mounts it (with
    ../prometheus/alerts.yml beside it), and its job finds every worker service."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    prometheus = _services()["prometheus"]
    for target, source in _mounts(prometheus).items():
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


# --- Kubernetes -------------------------------------------------------------------------


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


def _secrets() -> dict[str, dict[str, str]]:
    """The (placeholder) data of each Secret of the manifests."""
    return {m["metadata"]["name"]: m["stringData"] for m in _manifests() if m["kind"] == "Secret"}


def _named(kind: str, name: str) -> dict[str, Any]:
    (found,) = (m for m in _manifests() if m["kind"] == kind and m["metadata"]["name"] == name)
    return found


def _env(container: dict[str, Any]) -> dict[str, str]:
    """A container's environment: its ``env`` (values, and keys of Secrets and ConfigMaps)
    after its ``envFrom`` (the generated ConfigMaps, the Secrets)."""
    sources = {"configMap": _generated(), "secret": _secrets()}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ((ref, name),) = source.items()
        env |= sources[ref.removesuffix("Ref")][name["name"]]
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ((ref, key),) = entry["valueFrom"].items()
            env[entry["name"]] = sources[ref.removesuffix("KeyRef")][key["name"]][key["key"]]
    return env


def _secret_names(container: dict[str, Any]) -> set[str]:
    """The Secrets a container reads."""
    names = {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
    for entry in container.get("env", []):
        if "secretKeyRef" in entry.get("valueFrom", {}):
            names.add(entry["valueFrom"]["secretKeyRef"]["name"])
    return names


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(KUBERNETES / "kustomization.yaml")
    generated = {
        Path(f).name for g in kustomization["configMapGenerator"] for f in g.get("files", [])
    }
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"} - generated
    assert sorted(kustomization["resources"]) == sorted(files)
    assert sorted(m["kind"] for m in _manifests()) == sorted(
        ["Deployment"] * 3 + ["Secret"] * 3 + ["Service"] * 7 + ["StatefulSet"] * 3
    )


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


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def test_kubernetes_runs_every_role() -> None:
    assert sorted(_workloads()) == sorted(WORKER_ROLES)


@pytest.mark.parametrize("role", WORKER_ROLES)
def test_kubernetes_workers_run_a_role_with_the_daemons_settings(role: str) -> None:
    """Each worker runs its role with settings the daemon accepts (LISTENER_BUS from the
    generated ConfigMap), serves its probes on the daemon's port, and mounts the rules
    file and its state folder where the settings say; evaluators keep their state on a
    volume of their own (a StatefulSet), collectors, ingest and deliver workers keep none.
    Only the collectors and deliver workers read Secrets, and only settings and rules.yaml's
    secrets."""
    workload = _workloads()[role]
    pod = workload["spec"]["template"]["spec"]
    container = _container(workload)
    assert _role(container["args"]) == role
    assert role in ROLES
    env = _env(container)
    _, mentioned = _secret_variables(_generated()["listener-config"]["rules.yaml"])
    secrets = set(env) - setting_names()
    assert secrets <= (mentioned if role in SECRET_ROLES else set()), secrets
    if role not in SECRET_ROLES:
        assert not _secret_names(container), role
    settings = Settings.from_env({k: v for k, v in env.items() if k in setting_names()})
    assert settings.role == "all"  # the role comes from --role
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
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("role", SECRET_ROLES)
def test_kubernetes_workers_share_postgresql(role: str) -> None:
    """The collectors (two: each source polled by one) and the deliver workers (two: one
    sends, one stands by) read LISTENER_STATE from the same Secret; the placeholder URL
    names postgres.yaml's server (a pod of the StatefulSet, through its Service, on its
    port) with the user, database and password it is started with. No other worker gets
    LISTENER_STATE."""
    workloads = _workloads()
    worker = workloads[role]
    assert worker["spec"]["replicas"] == REPLICAS[role]
    container = _container(worker)
    (state,) = (e for e in container["env"] if e["name"] == "LISTENER_STATE")
    assert "secretKeyRef" in state["valueFrom"], "the URL holds a password: a Secret"
    refs = {
        str(e["valueFrom"])
        for r in SECRET_ROLES
        for e in _container(workloads[r])["env"]
        if e["name"] == "LISTENER_STATE"
    }
    assert len(refs) == 1, "one shared state"
    for other, workload in workloads.items():
        if other not in SECRET_ROLES:
            assert "LISTENER_STATE" not in _env(_container(workload)), other
    url_text = Settings.from_env({"LISTENER_STATE": _env(container)["LISTENER_STATE"]}).state
    assert url_text.startswith("postgresql://"), url_text
    assert is_database_url(url_text)
    url = urlsplit(url_text)
    assert url.hostname is not None
    pod_name, _, service_name = url.hostname.partition(".")
    service = _named("Service", service_name or pod_name)
    postgres = _named("StatefulSet", "postgres")
    assert postgres["spec"]["serviceName"] == service["metadata"]["name"]
    if service_name:  # a pod's own name: POD.SERVICE
        assert service["spec"]["clusterIP"] == "None"
        name, _, ordinal = pod_name.rpartition("-")
        assert name == postgres["metadata"]["name"]
        assert int(ordinal) < postgres["spec"]["replicas"]
    labels = postgres["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (server,) = postgres["spec"]["template"]["spec"]["containers"]
    assert server["image"].startswith("postgres:")
    (service_port,) = service["spec"]["ports"]
    (container_port,) = server["ports"]
    assert url.port == service_port["port"] == POSTGRES_PORT
    assert service_port["targetPort"] == container_port["name"]
    assert container_port["containerPort"] == POSTGRES_PORT
    server_env = _env(server)
    assert url.username == server_env["POSTGRES_USER"]
    assert url.password == server_env["POSTGRES_PASSWORD"], "the placeholders must agree"
    assert url.path == "/" + server_env["POSTGRES_DB"]
    assert _secret_names(server) == {"postgres"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert server[probe]["exec"]["command"][0] == "pg_isready", probe
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    (mount,) = server["volumeMounts"]
    assert mount["name"] == claim["metadata"]["name"]
    assert PurePosixPath(server_env["PGDATA"]).parent == PurePosixPath(mount["mountPath"])
    pod = postgres["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("role", SECRET_ROLES)
def test_kubernetes_workers_get_the_rules_secrets(role: str) -> None:
    """Every ${VARIABLE} the rules file uses (the sources' and the sinks') reaches the
    collectors and the deliver workers from a Secret (both read the same ones); those
    Secrets hold nothing nobody reads, and only placeholders (never a real secret)."""
    workloads = _workloads()
    container = _container(workloads[role])
    assert {"secretRef": {"name": "listener-secrets"}} in container["envFrom"]
    used, mentioned = _secret_variables(_generated()["listener-config"]["rules.yaml"])
    secret_keys = {k for name in _secret_names(container) for k in _secrets()[name]}
    assert used <= secret_keys, used - secret_keys
    unread = secret_keys - setting_names() - mentioned
    assert not unread, f"secret keys nothing reads: {sorted(unread)}"
    names = {r: _secret_names(_container(workloads[r])) for r in SECRET_ROLES}
    assert all(n == names[role] for n in names.values()), names
    read = _secret_names(container) | {"postgres"}
    assert set(_secrets()) == read, "a Secret nobody reads"
    for name, data in _secrets().items():
        for key, value in data.items():
            assert "replace-me" in value, f"{name}.{key}: commit placeholders only"


def test_each_role_has_a_service_for_its_metrics() -> None:
    """A headless Service per role: every worker (both collectors and both deliver workers
    too) is a target."""
    services = {m["metadata"]["name"]: m for m in _manifests() if m["kind"] == "Service"}
    for role, workload in _workloads().items():
        service = services[f"listener-{role}"]
        assert service["spec"]["clusterIP"] == "None", role
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert service["spec"]["ports"][0]["targetPort"] == "http-metrics"
        assert service["spec"]["ports"][0]["port"] == daemon_port()
        if workload["kind"] == "StatefulSet":
            assert workload["spec"]["serviceName"] == service["metadata"]["name"]


def test_the_api_service_reaches_the_deliver_workers_with_a_token() -> None:
    """Service listener-api selects the deliver workers' pods on their HTTP port, and the
    workers get LISTENER_API_TOKEN from a Secret (a placeholder here)."""
    service = _named("Service", "listener-api")
    deliver = _workloads()["deliver"]
    labels = deliver["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (daemon_port(), "http-metrics")
    (token,) = (e for e in _container(deliver)["env"] if e["name"] == "LISTENER_API_TOKEN")
    ref = token["valueFrom"]["secretKeyRef"]
    assert ref["key"] in _secrets()[ref["name"]]


def test_the_example_rules_pass_listener_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rules file passes `listener check` with the collectors' and deliver workers'
    secrets set."""
    for key, value in _secrets()["listener-secrets"].items():
        monkeypatch.setenv(key, value)
    assert listener_main(["check", str(KUBERNETES / "rules.yaml")]) == 0
    assert "ok" in capsys.readouterr().out


def test_kustomize_builds_it() -> None:
    """`kubectl kustomize` builds it offline, and every ConfigMap and Secret a workload
    refers to (the generated ones by their hashed names) is in what it builds."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    built = sorted(d["kind"] for d in docs)
    assert built == sorted([*(m["kind"] for m in _manifests()), "ConfigMap", "ConfigMap"])
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    refs = [ref for d in docs for ref in _references(d)]
    assert ("Secret", "listener-state") in refs
    assert not set(refs) - names, set(refs) - names


REFERENCES = {
    "configMapRef": "ConfigMap",
    "configMapKeyRef": "ConfigMap",
    "configMap": "ConfigMap",
    "secretRef": "Secret",
    "secretKeyRef": "Secret",
}
"""The fields of a pod's spec that name a ConfigMap or a Secret (``{name: ...}``)."""


def _references(node: object) -> list[tuple[str, str]]:
    """The (kind, name) of every ConfigMap and Secret a manifest refers to."""
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    if not isinstance(node, dict):
        return []
    refs = [(REFERENCES[k], v["name"]) for k, v in node.items() if k in REFERENCES]
    return refs + [ref for v in node.values() for ref in _references(v)]
