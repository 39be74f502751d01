"""Distributed mode's deliver role on a real broker (tansu) and a real PostgreSQL: alert
messages as evaluators write them (keyed by incident, with the engine's event and the
policy's notice) are recorded in the shared state and delivered once in effect, through
the SIGKILL of the delivery worker that was sending; ``listener incidents`` and ``listener
ack`` then work against the shared state."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listener.bus import decode_command
from listener.bus.alerts import alert_message
from listener.model import Fact
from listener.rules.engine import IncidentEvent
from listener.rules.notify import Notice
from listener.store import Store
from tests.integration.broker import (
    Worker,
    bus_env,
    caught_up,
    consume,
    new_bus,
    produce,
    running_broker,
    stop_all,
    wait_for,
)
from tests.support.receiver import WebhookReceiver, sample_alert

pytestmark = pytest.mark.e2e

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)
"""Recent: the workers run on the real clock, and an alert older than a day expires."""
KINDS = (
    ("opened", "high", None),
    ("escalated", "crisis", "high"),
    ("resolved", "crisis", "crisis"),
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_broker(tmp_path_factory.mktemp("tansu") / "tansu.log") as address:
        yield address


def messages(
    incidents: range, *, muted: int | None = None, still_open: tuple[int, ...] = ()
) -> list[tuple[str, bytes]]:
    """Each incident's life (opened, escalated, resolved) as an evaluator writes it: keyed
    by the incident, in order; incident ``muted``'s escalation is silenced (no sinks), and
    the incidents ``still_open`` have only opened."""
    out = []
    for n in incidents:
        incident, brand = f"inc-{n:03d}", f"Brand{n % 4}"
        peak = "high"
        kinds = KINDS[:1] if n in still_open else KINDS
        for seq, (kind, level, previous) in enumerate(kinds, start=1):
            at = T0 + timedelta(minutes=10 * n + 5 * seq)
            peak = "crisis" if level == "crisis" else peak
            facts = (Fact("negative mentions in 15m", 10.0 * seq, threshold=8.0),)
            event = IncidentEvent(
                kind, incident, seq, "spike", brand, level, previous, peak, at, facts
            )
            silenced = n == muted and kind == "escalated"
            sinks = () if silenced else ("hook",)
            notice = Notice(
                event.alert_id, kind, incident, level, sinks, "silenced s1" if silenced else None
            )
            alert = replace(
                sample_alert(),
                id=event.alert_id,
                incident_id=incident,
                kind=kind,
                brand=brand,
                rule="spike",
                level=level,
                previous_level=previous,
                at=at,
                facts=facts,
                peak_level=peak,
            )
            value = alert_message(alert, sinks, event=event, notice=notice, at=at)
            out.append((incident, json.dumps(value).encode()))
    return out


def accepted(receiver: WebhookReceiver) -> list[str]:
    return [str(r.idempotency_key) for r in receiver.requests if r.accepted]


def leader(workers: list[Worker]) -> int | None:
    """Which worker holds the delivery lease now (the last to take it, still running)."""
    held = None
    for i, worker in enumerate(workers):
        taken = [e for e in worker.events() if e.get("event") == "delivery_lease_taken"]
        if taken and worker.proc.poll() is None:
            held = i
    return held


TOKEN = "t0ken-of-the-api"


def use_the_api(url: str) -> dict[str, str]:
    """The HTTP API of a delivery worker, as an operator's tools use it: incidents read
    from the shared state, an ack and a silence (told to the evaluators first)."""
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, timeout=30) as http:
        listed = http.get("/incidents", params={"status": "open"})
        assert listed.status_code == 200, listed.text
        assert [i["id"] for i in listed.json()] == ["inc-015", "inc-014"]
        shown = http.get("/incidents/inc-007").json()
        assert [e["kind"] for e in shown["timeline"]] == [k for k, _, _ in KINDS]
        assert http.post("/incidents/inc-014/ack", json={"by": "api"}).status_code == 401
        acked = http.post("/incidents/inc-014/ack", json={"by": "api"}, headers=auth)
        assert acked.status_code == 200, acked.text
        again = http.post("/incidents/inc-014/ack", json={"by": "bo"}, headers=auth)
        assert again.status_code == 409  # already acknowledged, by api
        unknown = {"brand": "Nope", "for": "1h", "by": "api", "comment": "x"}
        assert http.post("/silences", json=unknown, headers=auth).status_code == 400
        wanted = {"brand": "Brand1", "for": "1h", "by": "api", "comment": "launch"}
        added = http.post("/silences", json=wanted, headers=auth)
        assert added.status_code == 201, added.text
        silence = added.json()["id"]
        assert [s["id"] for s in http.get("/silences").json()] == [silence]
        ended = http.delete(f"/silences/{silence}", headers=auth)
        assert ended.status_code == 200, ended.text
        assert http.delete(f"/silences/{silence}", headers=auth).status_code == 404
        use_the_console(http)
    return {"silence": silence}


def use_the_console(http: Any) -> None:
    """The web console of a delivery worker, on the shared state: sign in, the incidents,
    a note on one (read back from PostgreSQL), the mention inbox and its export."""
    import re

    page = {"Accept": "text/html"}
    form = http.get("/login", headers=page)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    signed = http.post(
        "/login", data={"csrf": csrf.group(1), "name": "ana", "token": TOKEN}, headers=page
    )
    assert signed.status_code == 303, signed.text
    home = http.get("/", headers=page)
    assert 'href="/incidents/inc-015"' in home.text
    incident = http.get("/incidents/inc-015", headers=page)
    assert 'class="sentence"' in incident.text
    token = re.search(r'name="csrf" value="([^"]+)"', incident.text)
    assert token is not None
    noted = http.post(
        "/console/note",
        data={"incident": "inc-015", "text": "statement posted", "csrf": token.group(1)},
        headers=page,
    )
    assert noted.status_code == 303, noted.text
    notes = http.get("/incidents/inc-015").json()["notes"]
    assert [(n["by"], n["text"]) for n in notes] == [("ana", "statement posted")]
    assert http.get("/mentions", headers=page).status_code == 200
    assert http.get("/sources", headers=page).status_code == 200  # the collectors' checks
    assert http.get("/mentions.csv").text.startswith("created_at,source,id")


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


class Cli:
    """``listener ...`` in this process (as a subprocess it would cost seconds of start-up
    each), with only the given ``LISTENER_*`` variables set."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
        self.capsys, self.monkeypatch = capsys, monkeypatch

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Ran:
        from listener.cli import main

        self.capsys.readouterr()
        with self.monkeypatch.context() as m:
            for key in [k for k in os.environ if k.startswith("LISTENER_")]:
                m.delenv(key)
            for key, value in (env or {}).items():
                if key.startswith("LISTENER_"):
                    m.setenv(key, value)
            try:
                code = main(list(args))
            except SystemExit as exc:
                code = int(exc.code or 0)
        out = self.capsys.readouterr()
        return Ran(code, out.out, out.err)


def test_alerts_are_recorded_and_delivered_once_through_a_sigkill(
    broker: str,
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two delivery workers share the alerts topic; the one holding the lease sends. The
    receiver leaves the first alert unanswered, and while that send hangs its worker is
    SIGKILLed: the other takes the lease (the failover time is measured) and the
    partitions, and sends everything, the hung alert again with the same idempotency key.
    Every alert routed to the sink is accepted exactly once, the silenced one never; the
    shared state holds every incident with its timeline and notices, and every ledger row
    delivered. Alerts written after the kill are recorded and sent too (a worker that
    comes back: tests/integration/test_bus_evaluate.py). The digest that fell due is sent
    by the lease holder, once, from the shared state."""
    bus = new_bus(broker, partitions=4)
    # a daily digest whose fire time was half an hour ago, last sent the day before
    fired = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    seeded = Store.open(database)
    last = {"at": (fired - timedelta(hours=1)).isoformat(), "outcome": "scheduled"}
    seeded.kv.set({"digest/daily/digests": json.dumps(last)})
    seeded.close()
    with WebhookReceiver() as receiver, WebhookReceiver() as digests:
        config = tmp_path / "rules.yaml"
        config.write_text(
            "brands:\n"
            + "".join(f"  - name: Brand{i}\n    keywords: [brand{i}]\n" for i in range(4))
            + "rules:\n  - name: spike\n    levels:\n      high:\n"
            "        when: {type: volume, metric: negative, window: 1h, above: 5}\n"
            "routes:\n  default: [hook]\n"
            f"sinks:\n  hook:\n    type: webhook\n    url: {receiver.url()}\n    timeout: 30s\n"
            f"  digests:\n    type: webhook\n    url: {digests.url()}\n"
            f"digests:\n  daily:\n    every: day\n    at: '{fired:%H:%M}'\n"
            "    route: [digests]\n",
            encoding="utf-8",
        )
        env = bus_env(bus, tmp_path / "state", LISTENER_STATE=database, LISTENER_API_TOKEN=TOKEN)

        def start(name: str) -> Worker:
            return Worker("deliver", config, env, tmp_path / f"{name}.log")

        workers = [start("d0"), start("d1")]
        killed: list[Worker] = []
        try:
            for worker in workers:
                worker.address()
            wait_for("a lease holder", lambda: leader(workers) is not None, timeout=60)
            receiver.stall(seconds=25)  # the first send hangs: the leader is mid-send
            first = messages(range(12), muted=3)
            produce(bus, "alerts", first)
            wait_for("the hung send", lambda: len(receiver.requests) >= 1, timeout=60)
            sending = leader(workers)
            assert sending is not None
            hung = receiver.requests[0].idempotency_key
            killed.append(workers[sending])
            workers[sending].proc.kill()
            workers[sending].proc.wait()
            down = time.monotonic()
            wait_for("the next send", lambda: len(accepted(receiver)) >= 1, timeout=60)
            failover = time.monotonic() - down
            later = messages(range(12, 16), still_open=(14, 15))
            produce(bus, "alerts", later)
            want = {
                json.loads(v)["alert"]["id"] for _, v in first + later if json.loads(v)["sinks"]
            }
            wait_for("every alert sent", lambda: set(accepted(receiver)) >= want, timeout=120)
            wait_for("every alert recorded", lambda: caught_up(bus, "deliver", "alerts"))
            time.sleep(2)  # a pass of the new standby, were it to send
            got = accepted(receiver)
            sent_digests = [r.idempotency_key for r in digests.accepted]
            answers = use_the_api(f"http://{workers[1 - sending].address()}")
        finally:
            codes = stop_all([w for w in workers if w not in killed])
            for worker in killed:
                worker.stop()
    assert codes == [0], [w.output()[-2000:] for w in workers]
    print(f"delivery failover after SIGKILL: {failover:.1f} s")  # measured, for -s
    assert failover < 30
    assert Counter(got) == Counter(want)  # each once: the hung one was never accepted
    assert hung in want
    assert [r.idempotency_key for r in receiver.requests].count(hung) == 2
    assert "inc-003#2" not in got  # silenced
    # the lease holder sent the digest that was due, once: the next holder knew
    assert sent_digests == [f"digest:daily:{fired.strftime('%Y%m%dT%H%M%SZ')}"]

    store = Store.open(database)
    try:
        incidents = {i.id: i for i in store.incidents(limit=1000)}
        assert set(incidents) == {f"inc-{n:03d}" for n in range(16)}
        assert {(i.status, i.level, i.peak_level) for i in incidents.values()} == {
            ("resolved", "crisis", "crisis"),
            ("open", "high", "high"),  # inc-014 and inc-015
        }
        assert [e.kind for e in store.incident_events("inc-007")] == [k for k, _, _ in KINDS]
        notices = store.incident_log.notices("inc-003")
        assert [(n.alert_id, n.muted) for n in notices] == [
            ("inc-003#1", None),
            ("inc-003#2", "silenced s1"),
            ("inc-003#3", None),
        ]
        rows = [d for n in range(16) for d in store.outbox.deliveries(f"inc-{n:03d}")]
        assert {(d.alert_id, d.status) for d in rows} == {(a, "delivered") for a in want}
    finally:
        store.close()

    # the CLI on the shared state, as an operator uses it: what changes decisions reaches
    # the evaluators on the commands topic, keyed by brand
    cli = Cli(capsys, monkeypatch)
    shown = cli("incidents", "--state", database)
    assert shown.returncode == 0, shown.stderr
    assert "inc-015" in shown.stdout
    alone = cli(
        "ack", "inc-015", "--state", database, "--by", "ana", env=env | {"LISTENER_BUS": ""}
    )
    assert alone.returncode == 2
    assert "set LISTENER_BUS too" in alone.stderr
    env = {**env, "LISTENER_CONFIG": str(config)}
    acked = cli("ack", "inc-01", "--state", database, "--by", "ana", env=env)
    assert acked.returncode != 0  # a prefix of several incidents is refused, with a hint
    acked = cli("ack", "inc-015", "--by", "ana", "--note", "on it", env=env)
    assert acked.returncode == 0, acked.stderr
    added = cli(
        "silence", "add", "--all", "--for", "1h", "--comment", "deploy", "--by", "bo", env=env
    )
    assert added.returncode == 0, added.stderr
    silence = added.stdout.split(":")[0]
    ended = cli("silence", "expire", silence, env=env)
    assert ended.returncode == 0, ended.stderr
    store = Store.open(database)
    try:
        assert store.acks(["inc-015"])["inc-015"].by == "ana"
        assert store.acks(["inc-014"])["inc-014"].by == "api"
        assert [s.id for s in store.silences()] == [silence, answers["silence"]]
    finally:
        store.close()
    told = [
        (key, decode_command(value))
        for key, value in consume(bus, "commands", lambda got: len(got) >= 12, timeout=60)
    ]
    assert sorted((k, c.incident_id, c.ack.by) for k, c in told if c.ack) == [
        ("Brand2", "inc-014", "api"),
        ("Brand3", "inc-015", "ana"),
    ]
    by_api = answers["silence"]
    assert sorted(k for k, c in told if c.silence) == sorted(
        ["Brand1", *(f"Brand{i}" for i in range(4))]
    )
    assert [k for k, c in told if c.silence and c.silence.id == by_api] == ["Brand1"]
    assert [k for k, c in told if c.silence_id == by_api] == ["Brand1"]
    assert sorted(k for k, c in told if c.silence_id == silence) == [f"Brand{i}" for i in range(4)]
