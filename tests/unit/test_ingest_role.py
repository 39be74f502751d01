"""The ingest role's decision (listener.roles.ingest.IngestWorker.score): a raw message in,
the scored messages out; a reload (SIGHUP) takes the new brands, and a broken file keeps
the running ones. The worker on a real broker: tests/integration/test_bus_ingest.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from listener.bus import Bus, decode_scored, encode_mention
from listener.metrics import Metrics
from listener.model import Mention
from listener.roles.ingest import IngestWorker

RULES = """brands:
{brands}
rules:
  - name: neg
    levels:
      watch:
        when: {{type: volume, window: 15m, above: 10}}
routes:
  default: [ops]
sinks:
  ops: {{type: console}}
  pager: {{type: webhook, url: "${{INGEST_TEST_HOOK_URL}}"}}
"""


def _write(path: Path, *brands: str) -> None:
    path.write_text(
        RULES.format(brands="\n".join(f"  - name: {b}" for b in brands)), encoding="utf-8"
    )


def _brands(messages: list[dict[str, object]]) -> list[str]:
    return [decode_scored(json.dumps(m))[0] for m in messages]


def test_a_mention_comes_out_once_per_brand_and_reloads_take_the_new_brands(
    tmp_path: Path,
) -> None:
    """A sink's secret (``${INGEST_TEST_HOOK_URL}``, unset) does not stop a worker that
    delivers nothing."""
    rules = tmp_path / "rules.yaml"
    _write(rules, "Acme")
    metrics = Metrics(CollectorRegistry())
    worker = IngestWorker(Bus("127.0.0.1:9"), str(rules), state_dir=str(tmp_path), metrics=metrics)
    at = datetime(2026, 3, 2, tzinfo=UTC)
    both = encode_mention(Mention("x", "1", "Acme and Globex are both down again", at))
    assert _brands(worker.score(both)) == ["Acme"]
    assert worker.score(encode_mention(Mention("x", "2", "nothing to see", at))) == []

    _write(rules, "Acme", "Globex")
    worker.request_reload()
    assert _brands(worker.score(both)) == ["Acme", "Globex"]

    rules.write_text("brands: [\n", encoding="utf-8")  # broken: the running brands stay
    worker.request_reload()
    assert _brands(worker.score(both)) == ["Acme", "Globex"]

    assert worker.score(b"not json") == []
    sample = metrics.registry.get_sample_value
    labels = {"role": "ingest", "topic": "mentions"}
    assert sample("listener_bus_messages_total", {**labels, "outcome": "ok"}) == 4
    assert sample("listener_bus_messages_total", {**labels, "outcome": "skipped"}) == 1
    assert sample("listener_errors_total", {"stage": "match", "error_type": "message"}) == 1
    assert sample("listener_matches_total", {"source": "x", "brand": "Globex"}) == 2
