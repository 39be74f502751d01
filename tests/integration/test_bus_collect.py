"""Distributed mode's collector role on a real broker (tansu) and PostgreSQL, against RSS
feeds served on 127.0.0.1: each source is polled by one collector at a time, every item
reaches ``mentions`` once, and when a collector is SIGKILLed the other takes its sources
over from their durable cursors."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from listener.bus import decode_mention
from tests.integration.broker import (
    Worker,
    bus_env,
    consume,
    new_bus,
    running_broker,
    stop_all,
    wait_for,
)
from tests.support.feed_server import FeedServer, Route

pytestmark = pytest.mark.e2e

SOURCES = [f"news{i}" for i in range(6)]
BROKEN = "broken"
"""A seventh source whose feed fails until the end: its source-health incident."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_broker(tmp_path_factory.mktemp("tansu") / "tansu.log") as address:
        yield address


def rss(items: list[str]) -> bytes:
    when = format_datetime(datetime.now(UTC))
    entries = "".join(
        f"<item><guid>{guid}</guid><title>Acme news {guid}</title>"
        f"<link>https://news.test/{guid}</link><pubDate>{when}</pubDate></item>"
        for guid in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{entries}'
        "</channel></rss>"
    ).encode()


def spans(worker: Worker) -> dict[str, list[tuple[float, float]]]:
    """Per source, when this collector owned it: (from, to) in Unix seconds (to: now
    while it still does)."""
    out: dict[str, list[tuple[float, float]]] = {}
    opened: dict[str, float] = {}
    for event in worker.events():
        name, source = event.get("event"), event.get("source")
        if not isinstance(source, str):
            continue
        at = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()
        if name == "source_owned":
            opened[source] = at
        elif name == "source_released" and source in opened:
            out.setdefault(source, []).append((opened.pop(source), at))
    for source, at in opened.items():
        out.setdefault(source, []).append((at, float("inf")))
    return out


def owned_now(worker: Worker) -> set[str]:
    return {s for s, periods in spans(worker).items() if periods[-1][1] == float("inf")}


def test_each_source_has_one_collector_and_moves_with_its_cursor_on_sigkill(
    broker: str, database: str, tmp_path: Path
) -> None:
    """Two collectors share six RSS sources: every source is owned by one of them at any
    time (their logs' ownership spans never overlap), every item reaches ``mentions``
    once, keyed by source and id. One collector is SIGKILLed: the other owns every source
    within the group's session timeout, resumes each from the cursor saved in the
    shared state (nothing published again), and publishes what the feeds add next.

    A seventh source fails: its owner opens a source-health incident on ``alerts``; the
    victim is that owner, and the survivor goes on with the same incident (no second
    one) and resolves it once the feed answers."""
    bus = new_bus(broker, partitions=4)
    items = {s: [f"{s}-a{i}" for i in range(3)] for s in SOURCES}
    with FeedServer() as server:
        for source in SOURCES:
            server.route(f"/{source}.xml", Route(body=rss(items[source])))
        server.route(f"/{BROKEN}.xml", Route(status=503))
        config = tmp_path / "rules.yaml"
        config.write_text(
            "brands:\n  - name: Acme\n"
            "sources:\n"
            + "".join(
                f"  {s}:\n    type: rss\n    urls: ['{server.url(f'/{s}.xml')}']\n"
                "    interval: 1s\n    jitter: 0s\n    retry: {initial: 1s, max: 2s}\n"
                for s in SOURCES
            )
            + f"  {BROKEN}:\n    type: rss\n    urls: ['{server.url(f'/{BROKEN}.xml')}']\n"
            "    interval: 1s\n    jitter: 0s\n    retry: {initial: 1s, max: 1s}\n"
            "    health: {failing_after: 3s}\n"
            + "rules:\n  - name: spike\n    levels:\n      high:\n"
            "        when: {type: volume, window: 1h, above: 100}\n"
            "routes:\n  default: [ops]\nsinks:\n  ops: {type: console}\n",
            encoding="utf-8",
        )
        env = bus_env(
            bus, tmp_path / "state", LISTENER_STATE=database, LISTENER_EVALUATE_EVERY="1s"
        )
        workers = [Worker("collector", config, env, tmp_path / f"c{i}.log") for i in range(2)]
        killed: list[Worker] = []

        def keys(got: list[tuple[str, bytes]]) -> Counter[tuple[str, str]]:
            return Counter(decode_mention(v).key for _, v in got)

        def published(want: int) -> list[tuple[str, bytes]]:
            return consume(bus, "mentions", lambda got: len(keys(got)) >= want, timeout=90)

        def health(*kinds: str) -> list[tuple[str, str, str]]:
            """The source-health alerts on ``alerts`` once they are these kinds, in order:
            (alert id, kind, incident id)."""

            def alerts(got: list[tuple[str, bytes]]) -> list[tuple[str, str, str]]:
                found = [json.loads(v)["alert"] for _, v in got]
                return [(a["id"], a["kind"], a["incident_id"]) for a in found]

            def arrived(got: list[tuple[str, bytes]]) -> bool:
                return tuple(k for _, k, _ in alerts(got))[: len(kinds)] == kinds

            got = consume(bus, "alerts", arrived, timeout=90)
            return alerts(got)

        try:
            wait_for(
                "both collectors own sources",
                lambda: (
                    all(owned_now(w) for w in workers)
                    and set().union(*(owned_now(w) for w in workers)) == {*SOURCES, BROKEN}
                ),
                timeout=90,
            )
            first = published(len(SOURCES) * 3)
            opened = health("opened")
            time.sleep(3)  # polls that find nothing new: each cursor saved after its poll
            victim = next(w for w in workers if BROKEN in owned_now(w))
            taken = owned_now(victim)
            killed.append(victim)
            victim.proc.kill()
            victim.proc.wait()
            down, killed_at = time.monotonic(), time.time()
            survivor = next(w for w in workers if w is not victim)
            wait_for(
                "the survivor owns every source",
                lambda: owned_now(survivor) == {*SOURCES, BROKEN},
            )
            takeover = time.monotonic() - down
            for source in SOURCES:
                items[source].append(f"{source}-b")
                server.route(f"/{source}.xml", Route(body=rss(items[source])))
            everything = published(len(SOURCES) * 4)
            time.sleep(2)  # another poll of each: nothing more may come
            everything = published(len(SOURCES) * 4)
            time.sleep(3)  # the survivor checks the broken source: no second incident
            server.route(f"/{BROKEN}.xml", Route(body=rss([])))
            resolved = health("opened", "resolved")
            _, metrics = survivor.get("/metrics")
            ready, readyz = survivor.get("/readyz")
        finally:
            alive = [w for w in workers if w not in killed]
            codes = stop_all(alive)
            for worker in killed:
                worker.stop()
    assert codes == [0], alive[0].output()[-2000:]
    assert taken  # the victim did own sources
    print(f"collector failover after SIGKILL: {takeover:.1f} s")  # measured, for -s
    assert takeover < 60
    got = keys(everything)
    assert len(got) == len(SOURCES) * 4
    assert max(got.values()) == 1  # nothing published twice, before or after the kill
    assert len(keys(first)) == len(SOURCES) * 3
    # one owner at a time: the ownership spans of the two never overlap (the victim's
    # open ones end when it was killed)
    for source in SOURCES:
        periods = sorted(
            [(a, min(b, killed_at)) for a, b in spans(killed[0]).get(source, [])]
            + spans(survivor).get(source, [])
        )
        for (_, end), (start, _) in itertools.pairwise(periods):
            assert start >= end, (source, periods)
    for source in SOURCES:
        assert f'listener_polls_total{{outcome="ok",source="{source}"}}' in metrics
    # /readyz names the sources it polls, with their health (as the daemon's)
    assert ready == 200
    sources = json.loads(readyz)["sources"]
    assert set(sources) == {*SOURCES, BROKEN}
    assert {sources[s]["status"] for s in SOURCES} == {"ok"}
    # one incident for the broken source, opened by the victim and resolved by the
    # survivor, each alert once
    assert [kind for _, kind, _ in opened] == ["opened"]
    assert [kind for _, kind, _ in resolved] == ["opened", "resolved"]
    assert resolved[0] == opened[0]
    assert resolved[1][2] == opened[0][2]
