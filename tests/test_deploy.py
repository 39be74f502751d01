"""The Grafana dashboard and its provisioning stay true to the metrics the daemon exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from listener.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana/dashboards/listener.json"
DATASOURCES = DEPLOY / "grafana/provisioning/datasources/prometheus.yml"
PROVIDERS = DEPLOY / "grafana/provisioning/dashboards/listener.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus/prometheus.yml"

# What Prometheus exposes for each family type of prometheus_client.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}
# Values for the Grafana variables when promtool parses the queries.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "6h",
    "$brand": ".*",
    "$source": ".*",
}
# promtool lint findings tolerated on the daemon's scrape (none today).
ACCEPTABLE_LINT: tuple[str, ...] = ()


def _populated() -> Metrics:
    """Metrics with one child per labelled metric, so every series type is rendered."""
    metrics = Metrics()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            child = metric.labels(**dict.fromkeys(metric._labelnames, "x"))
            if isinstance(child, Histogram):
                child.observe(1)
            elif isinstance(child, Gauge):
                child.set(1)
            elif isinstance(child, Counter):
                child.inc()
    # the condition gauges are a collector: one leaf of one rule, read for one brand
    key = ("x", "x", "x")
    metrics.conditions.layout([key], ["x"])
    metrics.conditions.put(key, 0, (1.0, 1.0, 1.0))
    metrics.brands.source(lambda: {"x": (1.0, 1.0, 1.0, 1.0)})
    return metrics


def exported_names() -> set[str]:
    """Every series name a scrape of the daemon can contain."""
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in SUFFIXES[family.type]
    }


def exported_labels() -> dict[str, set[str]]:
    """Series name → its label names (``le`` included for buckets)."""
    out: dict[str, set[str]] = {}
    for family in _populated().registry.collect():
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def _expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every query in the dashboard: panels, variables, annotations."""
    out = [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            query = query["query"] if isinstance(query, dict) else query
            out.append((f"variable {var['name']}", query))
    out.extend(
        (f"annotation {a['name']!r}", a["expr"])
        for a in dashboard["annotations"]["list"]
        if "expr" in a
    )
    return out


def _metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (a small lexer, enough for our queries)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def _label_names(expr: str) -> set[str]:
    """Label names used in matchers and in by/without/on/ignoring clauses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    used = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        used.update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        used.update(n.strip() for n in grouping.split(",") if n.strip())
    label_values = re.match(r"\s*label_values\(\s*[\w:]+\s*,\s*(\w+)\s*\)", text)
    if label_values:
        used.add(label_values.group(1))
    return used


def test_metric_name_lexer() -> None:
    """The expression lexer finds series names and skips functions, labels and variables."""
    expr = (
        "histogram_quantile(0.95, sum by (source, le) (rate(listener_poll_duration_seconds_bucket"
        '{source=~"$source"}[$__rate_interval]))) / on (source) group_left up > 0.5e3'
    )
    assert _metric_names(expr) == {"listener_poll_duration_seconds_bucket", "up"}
    assert _label_names(expr) == {"source", "le"}
    assert _metric_names("label_values(listener_matches_total, brand)") == {
        "listener_matches_total",
        "brand",
    }


def test_dashboard_parses() -> None:
    """The dashboard is JSON with a uid, a title, a schema version and panels."""
    dashboard = _dashboard()
    assert dashboard["uid"] == "listener"
    assert dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["panels"]


def test_dashboard_queries_use_only_exported_metrics() -> None:
    """Every PromQL expression selects only series the daemon exports, by labels they have."""
    names = exported_names()
    labels = exported_labels()
    assert labels.keys() <= names
    dashboard = _dashboard()
    expressions = _expressions(dashboard)
    assert len(expressions) > 20
    for where, expr in expressions:
        used = _metric_names(expr)
        if expr.lstrip().startswith("label_values("):
            used -= {re.split(r"[(,)]", expr)[2].strip()}
        assert used, f"{where}: no metric in {expr!r}"
        assert used <= names, f"{where}: unknown {sorted(used - names)} in {expr!r}"
        # Prometheus adds its target's labels to every series it scrapes
        known = set().union(*(labels[n] for n in used)) | {"instance", "job"}
        unknown = _label_names(expr) - known
        assert not unknown, f"{where}: labels {sorted(unknown)} not on {sorted(used)}"
        if "histogram_quantile" in expr:
            assert all(n.endswith("_bucket") for n in used), f"{where}: quantile of non-bucket"


def test_dashboard_covers_every_metric() -> None:
    """Every metric family the daemon exports appears on the dashboard (rule evaluations and
    collected-mention counts excepted: they are for ad hoc queries)."""
    used = set().union(*(_metric_names(e) for _, e in _expressions(_dashboard())))
    optional = {"listener_rule_evaluations", "listener_mentions_collected"}
    for family in Metrics().registry.collect():
        if family.name in optional:
            continue
        exposed = {family.name + s for s in SUFFIXES[family.type]}
        assert exposed & used, f"{family.name} is not on the dashboard"


def test_every_panel_has_a_title_and_datasource() -> None:
    """Every panel has a title; every non-row panel and query names the Prometheus datasource."""
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard):
        assert panel.get("title", "").strip(), f"panel {panel['id']} has no title"
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        if panel["type"] == "row":
            continue
        for ds in [panel.get("datasource"), *(t.get("datasource") for t in panel["targets"])]:
            assert ds is not None, f"{panel['title']!r}: no datasource"
            assert ds["type"] == "prometheus"
            uid = ds["uid"]
            if uid.startswith("${"):
                var = variables[uid[2:-1]]
                assert var["type"] == "datasource"
                assert var["query"] == "prometheus"
            else:
                assert uid == "prometheus"


def test_dashboard_rows() -> None:
    """The dashboard has the Brand, Sources, Delivery and Daemon rows, in that order."""
    rows = [p["title"] for p in _dashboard()["panels"] if p["type"] == "row"]
    assert rows == ["Brand", "Sources", "Delivery", "Daemon"]


def test_brand_template_variable() -> None:
    """A multi-value brand variable lists brands from listener_matches_total, and panels use it."""
    dashboard = _dashboard()
    brand = next(v for v in dashboard["templating"]["list"] if v["name"] == "brand")
    query = brand["query"]["query"] if isinstance(brand["query"], dict) else brand["query"]
    assert re.fullmatch(r"label_values\(\s*listener_matches_total\s*,\s*brand\s*\)", query)
    assert brand["multi"]
    assert brand["includeAll"]
    assert any('brand=~"$brand"' in expr for _, expr in _expressions(dashboard))


def _bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → host path (relative to deploy/) of a compose service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith((".", "/")):
            out[container] = host
    return out


def test_compose_mounts_grafana_provisioning_and_dashboards() -> None:
    """Compose mounts Grafana's provisioning and dashboards from paths that exist, where the
    provisioning expects them, and Grafana's datasource points at the Prometheus service."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for container, host in _bind_mounts(service).items():
            assert (DEPLOY / host).exists(), f"{name}: {host} (for {container}) is missing"
    grafana = compose["services"]["grafana"]
    assert re.fullmatch(r"grafana/grafana(-oss)?:\d+\.\d+\.\d+", grafana["image"])
    assert all(p.startswith("127.0.0.1:") for p in grafana["ports"])
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] in ("false", "${GRAFANA_ANONYMOUS:-false}")
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")
    mounts = _bind_mounts(grafana)
    assert (
        DEPLOY / mounts["/etc/grafana/provisioning"]
    ).resolve() == DEPLOY / "grafana/provisioning"
    dashboards_dir = next(
        c for c, h in mounts.items() if (DEPLOY / h).resolve() == DASHBOARD.parent
    )
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == [dashboards_dir]
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert home == f"{dashboards_dir}/{DASHBOARD.name}"

    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "prometheus"
    prometheus = compose["services"]["prometheus"]
    port = prometheus["ports"][0].rsplit(":", 1)[1]
    assert source["url"] == f"http://prometheus:{port}"
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: ./scripts/test installs Debian's prometheus package")
        pytest.skip("promtool not installed")
    return tool


def test_scrape_passes_promtool_lint() -> None:
    """The daemon's rendered metrics (every series populated) pass `promtool check metrics`."""
    scrape = generate_latest(_populated().registry)
    result = subprocess.run(
        [_promtool(), "check", "metrics"], input=scrape, capture_output=True, timeout=60
    )
    output = (result.stdout + result.stderr).decode()
    if result.returncode == 3:  # lint findings, one per line
        problems = [line for line in output.splitlines() if line.strip()]
        unexpected = [p for p in problems if not any(a in p for a in ACCEPTABLE_LINT)]
        assert not unexpected, output
    else:
        assert result.returncode == 0, output


def test_dashboard_queries_parse_with_promtool(tmp_path: Path) -> None:
    """Every dashboard query (Grafana variables filled in) is PromQL that promtool accepts."""
    rules = []
    for i, (where, expr) in enumerate(_expressions(_dashboard())):
        if expr.lstrip().startswith("label_values("):
            continue  # Grafana's own function, not PromQL
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{where}: unknown variable in {expr!r}"
        rules.append({"alert": f"Query{i}", "expr": expr})
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
