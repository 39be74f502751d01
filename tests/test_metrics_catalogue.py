"""docs/metrics.md lists every metric listener exports, with its exact type and labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import Info, Metric
from prometheus_client.metrics import MetricWrapperBase

from listener.metrics import BrandReadings, ConditionReadings, Metrics

CATALOGUE = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
# Label names that would mean a mention's content or an unbounded id became a label.
FORBIDDEN_LABELS = {"text", "author", "url", "id", "title", "handle", "link", "mention"}
ROW = re.compile(r"^\|\s*`(listener_\w+)`\s*\|\s*(\w+)\s*\|\s*([^|]*)\|")


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Exposed name → (type, label names) for every row of the catalogue tables."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in CATALOGUE.read_text().splitlines():
        row = ROW.match(line)
        if row is None:
            continue
        name, kind, labels = row.groups()
        assert name not in out, f"{name} is listed twice"
        out[name] = (kind, tuple(re.findall(r"`(\w+)`", labels)))
    return out


def _family(metric: MetricWrapperBase) -> Metric:
    return next(iter(metric.describe()))


def _exposed_name(metric: MetricWrapperBase) -> str:
    """The name a scrape shows for the family (counters end in _total, info in _info)."""
    family = _family(metric)
    suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
    return f"{family.name}{suffix}"


def exported() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Exposed name → (type, label names) for every metric attribute of ``Metrics``."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(
            metric, ConditionReadings | BrandReadings
        ):  # a collector: families of its own
            for family in metric.describe():
                out[family.name] = (str(family.type), tuple(family._labelnames))
            continue
        if not isinstance(metric, MetricWrapperBase):
            continue
        kind = str(_family(metric).type)
        labels = tuple(metric._labelnames)
        if isinstance(metric, Info):  # an info's labels are its keys
            labels = tuple(sorted(next(iter(metric.collect())).samples[0].labels))
        out[_exposed_name(metric)] = (kind, labels)
    return out


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    """Each metric family in Metrics has a catalogue row with the same type and the same
    labels in the same order, and the catalogue lists nothing else."""
    docs, code = documented(), exported()
    assert len(code) >= 30
    missing = sorted(code.keys() - docs.keys())
    assert not missing, f"not in docs/metrics.md: {missing}"
    stale = sorted(docs.keys() - code.keys())
    assert not stale, f"in docs/metrics.md but not exported: {stale}"
    for name, (kind, labels) in code.items():
        assert docs[name] == (kind, labels), f"{name}: docs say {docs[name]}, code {kind, labels}"


def test_every_metric_family_is_an_attribute_of_metrics() -> None:
    """Nothing registers a family behind Metrics' back: the registry holds exactly the
    families of its attributes, so the catalogue check above sees them all."""
    metrics = Metrics()
    attributes = {
        _family(m).name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)
    }
    attributes |= {
        family.name
        for m in vars(metrics).values()
        if isinstance(m, ConditionReadings | BrandReadings)
        for family in m.describe()
    }
    assert {family.name for family in metrics.registry.collect()} == attributes


def test_no_label_carries_content_or_ids() -> None:
    """No label is a mention's text, author, URL, title or an id of any kind."""
    for name, (_, labels) in exported().items():
        for label in labels:
            assert label not in FORBIDDEN_LABELS, f"{name} has label {label!r}"
            assert not label.endswith(("_id", "_url", "_text")), f"{name} has label {label!r}"
