"""The Dockerfile's build, read as data (no Docker engine here): base images pinned by
digest, dependencies in a layer of their own that only pyproject.toml invalidates, and the
dependency list that layer installs is pyproject.toml's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.common import REPO, dockerfile, resource

PINNED = re.compile(r"[a-z0-9][a-z0-9._/-]*(?::[\w.-]+)?@sha256:[0-9a-f]{64}")


def _stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), in order."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        elif not stages:
            continue  # ARG before the first FROM
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def _base(stage: list[tuple[str, str]]) -> str:
    keyword, rest = stage[0]
    assert keyword == "FROM"
    words = [w for w in rest.split() if not w.startswith("--platform=")]
    return words[0]


def _arg_default(stage: list[tuple[str, str]], name: str) -> str:
    (value,) = (r.split("=", 1)[1] for k, r in stage if k == "ARG" and r.startswith(f"{name}="))
    return value


def test_every_from_is_pinned_by_digest() -> None:
    """Every FROM names an image by digest (or an earlier stage), so a rebuild gets the
    same base; the build and runtime stages share one Python."""
    stages = _stages()
    names: set[str] = set()
    bases = []
    for stage in stages:
        base = _base(stage)
        alias = re.search(r"\bAS\s+(\S+)", stage[0][1], re.IGNORECASE)
        if base not in names:
            assert PINNED.fullmatch(base), f"FROM {base} is not pinned by @sha256 digest"
            bases.append(base)
        if alias:
            names.add(alias.group(1))
    assert len(stages) >= 2
    assert len(set(bases)) == 1, bases  # the venv built in one runs in the other


def test_a_tag_alone_is_not_a_pin() -> None:
    """The check above rejects what it must: a tag, a short digest, a `latest`."""
    for image in ("python:3.11-slim", "python:3.11-slim@sha256:abc", "python"):
        assert not PINNED.fullmatch(image)


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    """The build stage copies only pyproject.toml before installing the dependencies, then
    the code, then installs listener itself with --no-deps (and pip check)."""
    (build, _) = _stages()
    steps = build[1:]
    install = next(i for i, (k, r) in enumerate(steps) if k == "RUN" and "-r requirements" in r)
    copied_before = [r.split()[:-1] for k, r in steps[:install] if k == "COPY"]
    assert copied_before == [["pyproject.toml"]]
    code = next(i for i, (k, r) in enumerate(steps) if k == "COPY" and "listener" in r.split())
    assert code > install
    (last,) = (r for k, r in steps[code:] if k == "RUN")
    assert re.search(r"pip install .*--no-deps \.", last)
    assert "pip check" in last


def _requirements(extras: str, tmp_path: Path) -> list[str]:
    """What the dependency layer's RUN writes to requirements.txt for LISTENER_EXTRAS."""
    (build, _) = _stages()
    (run,) = (r for k, r in build if k == "RUN" and "requirements.txt" in r and "tomllib" in r)
    extract = run.split(">", 1)[0]  # the python -c '...' "$LISTENER_EXTRAS" part
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    result = subprocess.run(
        ["bash", "-c", extract.replace("python ", f"{sys.executable} ", 1)],
        cwd=tmp_path,
        env={"LISTENER_EXTRAS": extras, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize("extras", ["", "report", "report,transformers"])
def test_dependency_layer_installs_pyprojects_dependencies(extras: str, tmp_path: Path) -> None:
    """The layer installs exactly pyproject.toml's dependencies plus the chosen extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in filter(None, extras.split(",")):
        wanted += project["optional-dependencies"][extra]
    assert _requirements(extras, tmp_path) == wanted


def test_image_carries_the_report_extra(tmp_path: Path) -> None:
    """By default the image has matplotlib (the report extra), which the daemon's own
    dependencies do not: on-call runs `listener report` beside the state file."""
    (build, _) = _stages()
    assert _arg_default(build, "LISTENER_EXTRAS") == "report"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("matplotlib") for d in project["dependencies"])
    assert any(d.startswith("matplotlib") for d in _requirements("report", tmp_path))


def test_user_is_numeric_and_the_pods() -> None:
    """USER is uid:gid in numbers (Kubernetes' runAsNonRoot cannot check a name), the
    Deployment's runAsUser and runAsGroup."""
    image = dockerfile()
    uid, _, gid = image.user.partition(":")
    assert re.fullmatch(r"\d+:\d+", image.user), image.user
    pod = resource("Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"]) == (image.uid, image.gid)
