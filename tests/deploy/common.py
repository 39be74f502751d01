"""What the deploy tests share: the files under deploy/, the Dockerfile read as data, and
the external tools (promtool, amtool), which CI must have."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from listener.httpapi import parse_listen
from listener.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager/alertmanager.yml"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes"
KUSTOMIZATION = KUBERNETES / "kustomization.yaml"
OPERATOR_OVERLAY = DEPLOY / "overlays/prometheus-operator"
"""The base plus the Prometheus Operator's ServiceMonitor and PrometheusRule."""
OPERATIONS = REPO / "docs/operations.md"
JOB = "listener"
"""The Prometheus job of the daemon: the compose scrape job and the Kubernetes Service's
name (the ServiceMonitor's job label); the alerts select up{job="listener"}."""


def require_tool(name: str, package: str) -> str:
    """The path of a command-line tool; a missing one skips locally and fails in CI."""
    tool = shutil.which(name)
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing: ./scripts/test installs Debian's {package} package")
        pytest.skip(f"{name} not installed")
    return tool


def check_compose_spec(path: Path) -> None:
    """check-jsonschema validates a compose file against the Compose Specification."""
    import subprocess
    import sys

    schema = ["--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def daemon_port() -> int:
    """The daemon's default port: what every deploy file must use."""
    return parse_listen(Settings().listen)[1]


def setting_names() -> set[str]:
    """Every LISTENER_* variable the daemon reads."""
    return {f"LISTENER_{name.upper()}" for name in Settings.__dataclass_fields__}


@dataclass(frozen=True)
class Dockerfile:
    """The runtime stage of the Dockerfile, read as data."""

    env: dict[str, str]
    user: str
    uid: int
    gid: int
    expose: list[int]
    healthcheck: str
    healthcheck_cmd: list[str]
    """The HEALTHCHECK's exec-form command (after ``CMD``)."""
    cmd: list[str]
    volumes: list[str]


def dockerfile() -> Dockerfile:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = "FROM " + text.rsplit("\nFROM ", 1)[1]  # the last stage is the image
    lines = [line for line in runtime.splitlines() if line.strip() and line[0] != "#"]
    instructions = [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines]
    env: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    by = dict(instructions)  # the last of each instruction
    uid = re.search(r"useradd .*--uid (\d+)", runtime)
    gid = re.search(r"groupadd .*--gid (\d+)", runtime)
    assert uid, "the Dockerfile creates its user with a fixed --uid"
    assert gid, "the Dockerfile creates its group with a fixed --gid"
    return Dockerfile(
        env=env,
        user=by["USER"].strip(),
        uid=int(uid.group(1)),
        gid=int(gid.group(1)),
        expose=[int(p) for p in by["EXPOSE"].split()],
        healthcheck=by["HEALTHCHECK"],
        healthcheck_cmd=json.loads(by["HEALTHCHECK"].split(" CMD ", 1)[1]),
        cmd=yaml.safe_load(by["CMD"]),
        volumes=yaml.safe_load(by["VOLUME"]),
    )


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    anchors = set()
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)  # not comments in code
    for heading in re.findall(r"^#+ (.+)$", prose, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def generated_config_maps(folder: Path = KUBERNETES) -> list[dict[str, Any]]:
    """The ConfigMaps kustomize's configMapGenerator makes (before the hash suffix)."""
    out = []
    for generator in load_yaml(folder / "kustomization.yaml").get("configMapGenerator", []):
        data = {}
        for entry in generator["files"]:
            key, _, file = entry.rpartition("=")
            data[key or Path(file).name] = (folder / file).read_text()
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    return out


def manifests(folder: Path = KUBERNETES) -> list[dict[str, Any]]:
    """Every resource `kubectl apply -k FOLDER` creates (a resource that is a folder is a
    base: its resources, read the same way); deploy/kubernetes by default."""
    docs = []
    for entry in load_yaml(folder / "kustomization.yaml")["resources"]:
        path = (folder / entry).resolve()
        if path.is_dir():
            docs += manifests(path)
        else:
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs + generated_config_maps(folder)


def resource(kind: str, folder: Path = KUBERNETES) -> dict[str, Any]:
    """The one resource of that kind (in the base unless another kustomization is named)."""
    (found,) = (m for m in manifests(folder) if m["kind"] == kind)
    return found


def listener_container() -> dict[str, Any]:
    (container,) = resource("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def container_env() -> dict[str, str]:
    """The listener container's ``env`` (not its ``envFrom``)."""
    return {e["name"]: e["value"] for e in listener_container()["env"]}


def secret_data() -> dict[str, str]:
    """The Secret's (placeholder) values, which ``envFrom`` puts in the environment."""
    secret = resource("Secret")
    data: dict[str, str] = secret["stringData"]
    return data
