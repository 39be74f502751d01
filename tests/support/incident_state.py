"""A state file with one real incident, built through the real processor and store.

Eight quiet hours of Acme mentions, a 20-minute burst of complaints (one hostile post
among them) that opens an incident at watch and escalates it to crisis, then quiet until
it resolves. The console sink's alerts are delivered, the webhook's fail, and someone
acknowledges five minutes after opening. Times are fixed: no wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from listener.clock import ManualClock
from listener.config.load import load_config_text
from listener.config.schema import Config
from listener.metrics import Metrics
from listener.model import Author, Engagement, Mention
from listener.processor import Processor
from listener.store import Store

CONFIG = """
brands:
  - name: Acme
    handles: ["@acme"]
  - name: Globex
rules:
  - name: neg
    description: Complaints about Acme piling up.
    levels:
      watch:
        when: {type: volume, metric: negative, window: 15m, above: 5}
      crisis:
        when: {type: volume, metric: negative, window: 15m, above: 20}
    resolve_after: 10m
routes:
  watch: [ops]
  crisis: [ops, pager]
sinks:
  ops: {type: console}
  pager: {type: webhook, url: "http://127.0.0.1:9/hook"}
"""

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""When the burst of complaints starts."""
HOSTILE_TEXT = (
    '@acme <script>alert("pwned")</script> | **down** again [click](javascript:alert(1)) & more'
)
HOSTILE_URL = "javascript:alert(document.cookie)"
HOSTILE_AUTHOR = '<img src=x onerror="alert(1)">'


def config() -> Config:
    return load_config_text(CONFIG, "rules.yaml", {})


def quiet(i: int, at: datetime) -> Mention:
    return Mention(
        source="blog",
        id=f"q{i}",
        text=f"Reading about the Acme product launch today ({i})",
        created_at=at,
        url=f"https://blog.example.test/{i}",
        author=Author(handle=f"reader{i % 7}", followers=20),
    )


def angry(i: int, at: datetime) -> Mention:
    return Mention(
        source="news" if i % 3 else "social",
        id=f"a{i}",
        text=f"@acme your service is terrible and broken, worst outage ever ({i})",
        created_at=at,
        url=f"https://news.example.test/{i}",
        author=Author(handle=f"user{i % 9}", followers=100 + i),
        engagement=Engagement(likes=i % 5),
    )


def hostile(at: datetime) -> Mention:
    return Mention(
        source="social",
        id="evil",
        text=HOSTILE_TEXT + " terrible awful broken",
        created_at=at,
        url=HOSTILE_URL,
        author=Author(handle=HOSTILE_AUTHOR, followers=1_000_000),
    )


def build_state(path: Path) -> tuple[str, datetime]:
    """Write the state file; return the incident id and the end of the story."""
    store = Store.open(path)
    processor = Processor(config(), store, Metrics())
    clock = ManualClock(T0 - timedelta(hours=8))
    n = 0
    while clock.now() < T0:  # one quiet mention every 10 minutes
        processor.ingest("blog", [quiet(n, clock.now())], clock.now())
        processor.evaluate(clock.now())
        n += 1
        clock.advance(timedelta(minutes=10))
    for minute in range(20):  # 3 complaints a minute
        batch = [angry(minute * 3 + k, clock.now()) for k in range(3)]
        if minute == 4:
            batch.append(hostile(clock.now()))
        processor.ingest("news", batch, clock.now())
        processor.evaluate(clock.now())
        clock.advance(timedelta(minutes=1))
    for _ in range(60):
        processor.evaluate(clock.now())
        clock.advance(timedelta(minutes=1))
    (incident,) = store.incident_log.recent()
    store.ack_log.add(incident.id, "dana", incident.opened_at + timedelta(minutes=5), "on it")
    end = clock.now()
    for item in store.outbox.due("ops", end, limit=100):
        store.outbox.mark_delivered(item.id, item.created_at + timedelta(seconds=2))
    for item in store.outbox.due("pager", end, limit=100):
        store.outbox.mark_failed(
            item.id, item.created_at + timedelta(minutes=1), "HTTP 503 from pager"
        )
    store.close()
    return incident.id, end
