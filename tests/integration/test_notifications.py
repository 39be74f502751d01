"""Acknowledgements, silences, inhibition, reminders and hand-offs through the processor
and the store, as the daemon runs them; and the `incidents`/`ack`/`silence` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from listener import incidents
from listener.config.load import load_config_text
from listener.metrics import Metrics
from listener.model import Mention
from listener.processor import Processor
from listener.sinks.console import render_text
from listener.store import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIG = """
brands:
  - name: Acme
  - name: Globex
rules:
  - name: neg
    levels:
      watch:
        when: {type: volume, window: 15m, above: 5}
      crisis:
        when: {type: volume, window: 15m, above: 20}
        escalate:
          - {after: 15m, route: [exec]}
    resolve_after: 1h
    repeat_every: 30m
    summary: "{{ brand }} {{ level }}: {{ facts[0] }}"
  - name: any-volume
    levels:
      watch:
        when: {type: volume, metric: total, window: 15m, above: 5}
routes:
  watch: [social]
  crisis: [social, pager]
notifications:
  inhibit:
    - {source: [crisis], target: [watch]}
sinks:
  social: {type: console}
  pager: {type: console}
  exec: {type: console}
"""


def angry(i: int, at: datetime, brand: str = "Acme") -> Mention:
    return Mention(
        source="news",
        id=f"{brand}{i}",
        created_at=at,
        text=f"{brand} is terrible, broken and awful, worst outage {i}",
    )


def processor(tmp_path: Path) -> Processor:
    return Processor(
        load_config_text(CONFIG, "rules.yaml", {}), Store.open(tmp_path / "s.db"), Metrics()
    )


def kinds_to(p: Processor, sink: str, now: datetime) -> list[str]:
    return [i.alert.kind + ":" + i.alert.level for i in p.store.outbox.due(sink, now, 100)]


def test_crisis_inhibits_the_other_rules_watch_and_escalates_to_exec(tmp_path: Path) -> None:
    """A crisis mutes another rule's watch alert for the same brand; nobody acknowledges,
    so the exec route is paged after 15 minutes; then reminders every 30 minutes."""
    p = processor(tmp_path)
    p.ingest("news", [angry(i, T0) for i in range(25)], T0)
    first = p.evaluate(T0 + timedelta(seconds=30))
    assert [(a.rule, a.kind, a.level) for a in first] == [("neg", "opened", "crisis")]
    muted = p.store.incident_log.notices(p.store.incident_log.recent(status="open")[-1].id)
    assert muted == [] or all(n.muted is None for n in muted)
    other = next(r for r in p.store.incident_log.recent() if r.rule == "any-volume")
    (note,) = p.store.incident_log.notices(other.id)
    assert note.muted is not None
    assert note.muted.startswith("inhibited by ")
    assert (
        p.metrics.registry.get_sample_value(
            "listener_alerts_muted_total", {"rule": "any-volume", "reason": "inhibited"}
        )
        == 1
    )
    p.evaluate(T0 + timedelta(minutes=16))
    now = T0 + timedelta(minutes=31)
    p.evaluate(now)
    assert kinds_to(p, "exec", now) == ["handoff:crisis"]
    assert kinds_to(p, "pager", now) == ["opened:crisis", "reminder:crisis"]
    crisis = next(a for a in first if a.rule == "neg")
    assert crisis.summary.startswith("Acme crisis: negative mentions in 15m = 25")


def test_acknowledgement_is_announced_once_and_stops_reminders(tmp_path: Path) -> None:
    """An ack (as `listener ack` stores it) is announced to everyone who heard, records
    time-to-ack, and no reminder or hand-off follows."""
    p = processor(tmp_path)
    p.ingest("news", [angry(i, T0) for i in range(25)], T0)
    (opened,) = p.evaluate(T0 + timedelta(seconds=30))
    incidents.acknowledge(
        p.store, opened.incident_id, "ana", T0 + timedelta(minutes=5), "drafting a statement"
    )
    (ack,) = p.evaluate(T0 + timedelta(minutes=6))
    assert (ack.kind, ack.ack and ack.ack.by) == ("acknowledged", "ana")
    assert ack.summary.startswith("Acme crisis:")  # the rule's own summary template
    assert p.evaluate(T0 + timedelta(minutes=50)) == []
    hist = p.metrics.registry.get_sample_value("listener_time_to_ack_seconds_sum", {"rule": "neg"})
    assert hist == 270.0  # opened at 09:00:30, acknowledged at 09:05
    detail = incidents.detail(p.store, opened.incident_id)
    assert detail["acknowledged_by"] == "ana"
    assert detail["time_to_ack_seconds"] == 270.0
    assert [n["kind"] for n in detail["notifications"]] == ["opened", "acknowledged"]


def test_silence_from_the_store_mutes_and_catches_up(tmp_path: Path) -> None:
    """A silence stored by `listener silence add` mutes the brand; after it expires the
    still-open incident is announced once."""
    p = processor(tmp_path)
    incidents.add_silence(
        p.store,
        now=T0,
        duration=timedelta(minutes=20),
        by="ana",
        comment="planned maintenance",
        brand="Acme",
    )
    p.ingest("news", [angry(i, T0) for i in range(25)], T0)
    assert p.evaluate(T0 + timedelta(seconds=30)) == []
    caught_up = p.evaluate(T0 + timedelta(minutes=21))
    assert [a.kind for a in caught_up if a.rule == "neg"] == ["handoff", "reminder"]


def test_cli_incidents_ack_and_silences(tmp_path: Path) -> None:
    """The commands work on the state file and refuse bad requests with one line."""
    p = processor(tmp_path)
    p.ingest("news", [angry(i, T0) for i in range(25)], T0)
    (opened,) = p.evaluate(T0 + timedelta(seconds=30))
    p.store.close()
    state = str(tmp_path / "s.db")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "listener", *args, "--state", state],
            capture_output=True,
            text=True,
            timeout=60,
        )

    rules = tmp_path / "rules.yaml"  # what silence add checks --brand against
    rules.write_text(CONFIG)
    listing = run("incidents", "--status", "open", "--json")
    assert listing.returncode == 0, listing.stderr
    assert {r["id"] for r in json.loads(listing.stdout)} >= {opened.incident_id}
    ack = run("ack", opened.incident_id, "--by", "ana", "--note", "on it")
    assert ack.returncode == 0
    assert "acknowledged" in ack.stdout
    again = run("ack", opened.incident_id, "--by", "bob")
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"error: incident {opened.incident_id} was already acknowledged by ana"
    )
    assert run("ack", "nope", "--by", "x").stderr.strip() == "error: no incident 'nope'"
    show = run("incidents", "show", opened.incident_id)
    assert "acknowledged by ana" in show.stdout
    assert "timeline:" in show.stdout
    added = run(
        "silence",
        "add",
        "--brand",
        "Acme",
        "--for",
        "2h",
        "--comment",
        "known issue",
        "--by",
        "ana",
        "--config",
        str(rules),
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split(":")[0]
    assert silence_id in run("silence", "list").stdout
    assert run("silence", "expire", silence_id).returncode == 0
    assert run("silence", "expire", silence_id).returncode == 1
    bad = run("silence", "add", "--for", "soon", "--comment", "x", "--by", "y")
    assert bad.returncode == 2  # a usage error
    assert "invalid duration" in bad.stderr


def test_inhibited_reminder_is_recorded_and_counted(tmp_path: Path) -> None:
    """A reminder due while a crisis inhibits the incident is recorded as muted (shown by
    `incidents show`) and counted in listener_alerts_muted_total{reason="inhibited"}."""
    config = CONFIG.replace(
        "        when: {type: volume, metric: total, window: 15m, above: 5}\n",
        "        when: {type: volume, metric: total, window: 15m, above: 5}\n"
        "    resolve_after: 2h\n    repeat_every: 30m\n",
    )
    cfg = load_config_text(config, "rules.yaml", {})
    p = Processor(cfg, Store.open(tmp_path / "s.db"), Metrics())
    p.ingest("news", [angry(i, T0) for i in range(25)], T0)
    p.evaluate(T0 + timedelta(seconds=30))
    other = next(r for r in p.store.incident_log.recent() if r.rule == "any-volume")
    for minutes in (16, 31, 40):
        p.evaluate(T0 + timedelta(minutes=minutes))

    notes = p.store.incident_log.notices(other.id)
    assert [(n.kind, n.sinks) for n in notes] == [("opened", ()), ("reminder", ())]
    assert all(n.muted and n.muted.startswith("inhibited by ") for n in notes)
    assert (
        p.metrics.registry.get_sample_value(
            "listener_alerts_muted_total", {"rule": "any-volume", "reason": "inhibited"}
        )
        == 2
    )
    shown = incidents.render_detail(incidents.detail(p.store, other.id))
    assert "reminder" in shown
    assert shown.count("(muted: inhibited by ") == 2


def test_resolved_alert_says_from_which_level_and_lists_no_angry_posts(tmp_path: Path) -> None:
    """The all-clear carries the level it resolved from and its peak, no top mentions, and
    a summary that says it is over."""
    p = processor(tmp_path)
    p.ingest("news", [angry(i, T0) for i in range(25)], T0)
    (opened,) = [a for a in p.evaluate(T0 + timedelta(seconds=30)) if a.rule == "neg"]
    assert opened.top_mentions
    resolved = []
    for minutes in range(5, 120, 5):
        resolved += [a for a in p.evaluate(T0 + timedelta(minutes=minutes)) if a.kind == "resolved"]
    (done,) = [a for a in resolved if a.rule == "neg"]
    assert done.top_mentions == ()
    assert done.peak_level == "crisis"
    assert done.previous_level is not None
    assert done.summary.startswith("Acme ")  # the rule's template
    text = render_text(done)
    assert f"resolved (last {done.previous_level}, peak crisis)" in text
    assert "top mentions" not in text


def test_ack_note_shows_in_incidents_show_and_the_api_document(tmp_path: Path) -> None:
    """Who acknowledged and their note appear in `incidents show` and GET /incidents/ID."""
    p = processor(tmp_path)
    p.ingest("news", [angry(i, T0) for i in range(25)], T0)
    (opened,) = [a for a in p.evaluate(T0 + timedelta(seconds=30)) if a.rule == "neg"]
    incidents.acknowledge(
        p.store, opened.incident_id, "ana", T0 + timedelta(minutes=5), "drafting a statement"
    )
    detail = incidents.detail(p.store, opened.incident_id)
    assert detail["acknowledged_by"] == "ana"
    assert detail["acknowledged_note"] == "drafting a statement"
    assert json.loads(json.dumps(detail))["acknowledged_note"] == "drafting a statement"
    shown = incidents.render_detail(detail)
    assert "acknowledged by ana at " in shown
    assert "note: drafting a statement" in shown
    (listed,) = [r for r in incidents.listing(p.store) if r["id"] == opened.incident_id]
    assert listed["acknowledged_note"] == "drafting a statement"


def test_silence_and_ack_from_another_process_apply_at_the_next_tick(tmp_path: Path) -> None:
    """While the processor runs (its ticks have read silences and acks already), a
    silence and an ack stored by `listener silence add` and `listener ack` in other
    processes take effect at its next evaluation."""
    p = processor(tmp_path)
    p.ingest("news", [angry(i, T0) for i in range(25)], T0)
    (opened,) = p.evaluate(T0 + timedelta(seconds=30))
    assert p.evaluate(T0 + timedelta(minutes=1)) == []

    def run(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "listener", *args, "--state", str(tmp_path / "s.db")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    silence = (  # as `listener silence add` stores it, at the processor's time
        "from datetime import datetime, timedelta; import sys; from listener.store import Store;"
        "from listener.model import Silence; at = datetime.fromisoformat(sys.argv[2]);"
        "Store.open(sys.argv[1]).silence_log.add("
        "Silence('s1', at, at + timedelta(hours=2), 'ana', 'known', brand='Acme'))"
    )
    added = subprocess.run(
        [sys.executable, "-c", silence, str(tmp_path / "s.db"), T0.isoformat()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    assert p.evaluate(T0 + timedelta(minutes=16)) == []  # the hand-off to exec is muted
    notices = p.store.incident_log.notices(opened.incident_id)
    (handoff,) = [n for n in notices if n.kind == "handoff"]
    assert handoff.muted == "silenced s1"
    run("ack", opened.incident_id, "--by", "ana")
    (ack,) = p.evaluate(T0 + timedelta(minutes=17))
    assert (ack.kind, ack.ack and ack.ack.by) == ("acknowledged", "ana")


def test_a_tick_that_changes_nothing_writes_nothing(tmp_path: Path) -> None:
    """Ticks that raise nothing and change no state open no transaction; the next one
    that opens an incident writes it all, and a restart loads what was written."""
    p = processor(tmp_path)
    p.ingest("news", [angry(i, T0) for i in range(3)], T0)  # below every threshold
    p.evaluate(T0 + timedelta(seconds=30))
    statements: list[str] = []
    p.store._conn.set_trace_callback(statements.append)
    for minute in range(1, 5):
        assert p.evaluate(T0 + timedelta(minutes=minute)) == []
    assert not [s for s in statements if s.startswith(("BEGIN", "INSERT", "UPDATE", "DELETE"))]
    p.ingest("news", [angry(i, T0 + timedelta(minutes=5)) for i in range(3, 28)], T0)
    (opened,) = p.evaluate(T0 + timedelta(minutes=5))
    assert opened.kind == "opened"
    reopened = processor(tmp_path)  # what was written is what the next process loads
    assert reopened.notify == p.notify
    assert reopened.state == p.state
