"""Distributed mode's ingest role on a real broker (tansu): ``listener publish`` puts
mentions on the bus, ``listener run --role ingest`` workers score them, and what they
write is what embedded mode's Ingest stage finds for the same mentions."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from listener.bus import Bus, decode_scored, encode_mention
from listener.config.lint import load_with_warnings
from listener.ingest import Ingest
from listener.model import Author, Mention
from tests.conftest import need_shared
from tests.integration.broker import (
    Worker,
    bus_env,
    consume,
    free_port,
    new_bus,
    produce,
    running_broker,
    stop_all,
)

pytestmark = pytest.mark.e2e

AIRLINES = {
    "United": "@united",
    "American": "@AmericanAir",
    "Southwest": "@SouthwestAir",
    "Delta": "@Delta",
    "US Airways": "@USAirways",
    "Virgin America": "@VirginAmerica",
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_broker(tmp_path_factory.mktemp("tansu") / "tansu.log") as address:
        yield address


@pytest.fixture
def config(tmp_path: Path) -> Path:
    brands = "".join(
        f"  - name: {name}\n    handles: ['{handle}']\n" for name, handle in AIRLINES.items()
    )
    path = tmp_path / "rules.yaml"
    path.write_text(
        "brands:\n" + brands + "rules:\n"
        "  - name: neg\n"
        "    levels:\n"
        "      watch:\n"
        "        when: {type: volume, window: 15m, above: 10}\n"
        "routes:\n  default: [ops]\n"
        "sinks:\n  ops: {type: console}\n",
        encoding="utf-8",
    )
    return path


def airline_mentions(n: int, every: int = 45) -> list[Mention]:
    """``n`` tweets of the airline data set as mentions, every ``every``-th (the file goes
    airline by airline)."""
    path = need_shared("data", "twitter-airline-sentiment", "Tweets.csv")
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i % every:
                continue
            at = datetime.strptime(row["tweet_created"], "%Y-%m-%d %H:%M:%S %z").astimezone(UTC)
            out.append(Mention("x", row["tweet_id"], row["text"], at, author=Author(row["name"])))
            if len(out) == n:
                break
    return out


def publish(bus: Bus, mentions: list[Mention], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "mentions.jsonl"
    path.write_text("".join(json.dumps(m.to_dict()) + "\n" for m in mentions), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "listener", "publish", str(path)],
        env=bus_env(bus, tmp_path / "publish-state"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _alive(*workers: Worker) -> None:
    for worker in workers:
        if worker.proc.poll() is not None:
            pytest.fail(
                f"a worker exited with {worker.proc.returncode}:\n{worker.output()[-3000:]}"
            )


def test_ingest_workers_score_what_embedded_ingest_scores(
    broker: str, config: Path, tmp_path: Path
) -> None:
    """300 airline tweets published to the bus and scored by two ingest workers sharing
    the partitions: each matched mention comes out once per brand, keyed by the brand,
    with the brands, sentiment, categories, emotions and reach that embedded mode's
    Ingest stage gives it, and a story; unmatched ones do not come out. Messages that are
    not mentions (not JSON, another format version, a field missing) are each logged once
    and skipped. SIGTERM stops a worker cleanly (exit 0)."""
    bus = new_bus(broker, partitions=4)
    mentions = airline_mentions(300)
    done = publish(bus, mentions, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"published 300 mentions to {bus.name('mentions')} on {broker}"
    # not mentions: each is logged once, counted as skipped and passed over
    bad_version = json.dumps({**json.loads(encode_mention(mentions[0])), "v": 99}).encode()
    produce(
        bus,
        "mentions",
        [
            ("k1", b"\xff not json"),
            ("k2", bad_version),
            ("k3", json.dumps({"v": 1, "source": "x"}).encode()),
        ],
    )
    stage = Ingest.build(load_with_warnings(str(config))[0])
    expected = {
        (s.mention.key, brand): s
        for s in stage.run(mentions, datetime.now(UTC))
        for brand in s.brands
    }
    assert 250 < len(expected) < 320  # most tweets name one airline; some none, some two
    workers = [
        Worker("ingest", config, bus_env(bus, tmp_path / f"w{i}"), tmp_path / f"w{i}.log")
        for i in range(2)
    ]
    try:
        out = consume(
            bus, "scored", lambda got: len(got) >= len(expected), alive=lambda: _alive(*workers)
        )
    finally:
        codes = stop_all(workers)
    assert codes == [0, 0], [w.output()[-2000:] for w in workers]
    got = {}
    for key, value in out:
        brand, scored = decode_scored(value)
        assert key == brand
        got[scored.mention.key, brand] = scored
    assert len(out) == len(got) == len(expected)  # none twice (no worker died)
    for pair, want in expected.items():
        have = got[pair]
        assert have.mention == want.mention
        assert (have.brands, have.sentiment, have.categories, have.emotions) == (
            want.brands,
            want.sentiment,
            want.categories,
            want.emotions,
        )
        assert have.reach == pytest.approx(want.reach)
        assert have.story
    by_brand = Counter(brand for _, brand in got)
    assert set(by_brand) == set(AIRLINES)
    skipped = sorted(
        e["error"] for w in workers for e in w.events() if e.get("event") == "message_skipped"
    )
    assert len(skipped) == 3
    assert all(error.startswith("raw mention: ") for error in skipped)
    assert "format 99" in skipped[0]
    assert "missing key 'id'" in skipped[1]
    assert "not JSON" in skipped[2]
    started = [e for w in workers for e in w.events() if e.get("event") == "role_started"]
    assert len(started) == 2
    assert started[0]["group"] == bus.group("ingest")


def test_a_worker_waits_for_a_broker_that_is_not_there_yet(config: Path, tmp_path: Path) -> None:
    """Started before its broker, a worker does not exit: it logs ``bus_unavailable`` with
    the error and when it tries again, and once the broker is up it scores what is
    published there."""
    port = free_port()
    bus = new_bus(f"127.0.0.1:{port}", partitions=1)
    worker = Worker("ingest", config, bus_env(bus, tmp_path / "w"), tmp_path / "w.log")
    try:
        deadline = time.monotonic() + 90
        while not any(e.get("event") == "bus_unavailable" for e in worker.events()):
            _alive(worker)
            assert time.monotonic() < deadline, worker.output()[-2000:]
            time.sleep(0.2)
        (waiting,) = [e for e in worker.events() if e.get("event") == "bus_unavailable"][:1]
        assert waiting["failures"] == 1
        assert 0.5 <= waiting["retry_in_s"] <= 1.0
        assert worker.get("/healthz") == (200, "ok\n")
        status, body = worker.get("/readyz")
        assert status == 503
        ready = json.loads(body)
        assert ready["ready"] is False
        assert ready["bus"]["reachable"] is False
        assert "KafkaException" in ready["bus"]["error"]
        with running_broker(tmp_path / "tansu.log", port):
            mention = Mention("x", "1", "@united lost my bag", datetime(2026, 3, 2, tzinfo=UTC))
            done = publish(bus, [mention], tmp_path)
            assert done.returncode == 0, done.stderr
            out = consume(bus, "scored", lambda got: len(got) >= 1, alive=lambda: _alive(worker))
            assert decode_scored(out[0][1])[0] == "United"
            status, body = worker.get("/readyz")
            assert status == 200
            assert json.loads(body)["bus"] == {
                "brokers": bus.brokers,
                "prefix": bus.prefix,
                "reachable": True,
                "error": None,
                "since": json.loads(body)["bus"]["since"],
            }
            status, metrics = worker.get("/metrics")
            assert status == 200
            assert (
                'listener_bus_messages_total{outcome="ok",role="ingest",topic="mentions"} 1.0'
                in metrics
            )
            assert 'listener_errors_total{error_type="KafkaException",stage="bus"}' in metrics
            assert worker.stop() == 0, worker.output()[-2000:]
    finally:
        worker.stop()


def test_distributed_commands_say_what_is_missing_without_a_traceback(tmp_path: Path) -> None:
    """Without LISTENER_BUS, with a malformed one, or with an unknown role, the commands
    exit 2 with one line naming the setting and a hint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTENER_")}
    path = tmp_path / "m.jsonl"
    path.write_text("", encoding="utf-8")
    cases = [
        (["publish", str(path)], {}, "distributed mode needs LISTENER_BUS"),
        (["run", "--role", "ingest", "--config", str(path)], {}, "needs LISTENER_BUS"),
        (["publish", str(path)], {"LISTENER_BUS": "http://x:1"}, "LISTENER_BUS"),
        (["publish", str(path)], {"LISTENER_BUS": "kafka://h:99999"}, "is not HOST:PORT"),
        (["run"], {"LISTENER_ROLE": "evaluator"}, "unknown role 'evaluator'"),
    ]
    for args, extra, message in cases:
        done = subprocess.run(
            [sys.executable, "-m", "listener", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
