"""Scheduled digests: schedules in time zones, the numbers from the store, the sinks
that take them (against their loopback receivers), and delivery once per receiver with
retries, on the injected clock."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from listener.clock import ManualClock
from listener.config.load import load_config_text
from listener.config.schema import (
    Config,
    ConsoleSinkConfig,
    DigestConfig,
    EmailSinkConfig,
    SlackSinkConfig,
    WebhookSinkConfig,
)
from listener.digests import Digests, digest_id, gather, latest_fire, next_fire
from listener.errors import ConfigError
from listener.metrics import Metrics
from listener.model import Author, Digest, Mention, ScoredMention, Sentiment
from listener.rules.engine import IncidentEvent
from listener.sinks.base import MemorySinkState, SendsDigest, Sink, SinkContext
from listener.sinks.console import ConsoleSink
from listener.sinks.discord import render_digest_message
from listener.sinks.email import EmailSink, render_digest_html
from listener.sinks.slack import SlackSink, render_digest_blocks
from listener.sinks.teams import render_digest_card
from listener.sinks.text import render_digest_text
from listener.sinks.webhook import WebhookSink
from listener.store import EvaluateWrite, IngestWrite, Store
from tests.support.fake_slack import CHANNEL_ID, FakeSlack
from tests.support.receiver import Answer, WebhookReceiver
from tests.support.smtp import SmtpServer

UTC8 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)


def digest_config(**fields: Any) -> DigestConfig:
    return DigestConfig.model_validate({"every": "day", "route": ["hook"], **fields})


# ---------------------------------------------------------------------- schedules


def test_daily_digest_fires_at_its_local_time_across_a_clock_change() -> None:
    """08:00 in London is 08:00 UTC in winter and 07:00 UTC in summer; the last fire
    before now is found within one period, the next one after it."""
    cfg = digest_config(at="08:00", timezone="Europe/London")
    assert latest_fire(cfg, datetime(2026, 12, 7, 9, tzinfo=UTC)) == UTC8
    assert latest_fire(cfg, datetime(2026, 12, 7, 7, 59, tzinfo=UTC)) == UTC8 - DAY
    assert latest_fire(cfg, datetime(2026, 7, 1, 7, 30, tzinfo=UTC)) == datetime(
        2026, 7, 1, 7, tzinfo=UTC
    )
    assert next_fire(cfg, UTC8) == UTC8 + DAY
    assert latest_fire(cfg, UTC8) == UTC8  # a fire time is due at that very instant


def test_weekly_and_cron_schedules() -> None:
    weekly = digest_config(every="week", day="fri", at="17:30", timezone="America/New_York")
    assert latest_fire(weekly, UTC8) == datetime(2026, 12, 4, 22, 30, tzinfo=UTC)
    assert next_fire(weekly, UTC8) == datetime(2026, 12, 11, 22, 30, tzinfo=UTC)
    default = digest_config(every="week")
    assert default.crontab() == "0 9 * * mon"
    weekdays = digest_config(cron="30 7 * * 1-5")
    sunday = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert latest_fire(weekdays, sunday) is None  # none in the last day: Friday's is older
    assert next_fire(weekdays, sunday) == datetime(2026, 12, 7, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("every: day\n    at: '8:61'", "not a time of day"),
        ("every: day\n    timezone: Mars/Base", "unknown time zone 'Mars/Base'"),
        ("every: day\n    day: mon", "'day' is for weekly digests"),
        ("every: week\n    cron: '0 8 * *'", "not a 5-field cron expression"),
        ("every: week\n    cron: '0 8 * * 1'\n    at: '08:00'", "either 'cron' or 'at'/'day'"),
        ("every: month", "every"),
    ],
)
def test_a_broken_digest_is_refused_with_its_line(block: str, message: str) -> None:
    text = (
        "brands: [{name: Acme, query: acme}]\nsinks: {hook: {type: console}}\n"
        f"digests:\n  daily:\n    {block}\n    route: [hook]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config_text(text, "rules.yaml")
    assert message in str(err.value)
    assert "rules.yaml:" in str(err.value)


def test_digests_go_to_chat_sinks() -> None:
    """Teams and Discord sinks take digests."""
    text = """
brands: [{name: Acme, query: acme}]
sinks:
  ms: {type: teams, url: "https://teams.example/w?sig=s"}
  dc: {type: discord, url: "https://discord.com/api/webhooks/1/t"}
digests:
  daily: {every: day, route: [ms, dc]}
"""
    assert load_config_text(text, "rules.yaml").digests["daily"].route == ["ms", "dc"]


def test_digests_go_only_to_known_sinks_that_take_them() -> None:
    text = """
brands: [{name: Acme, query: acme}]
sinks:
  pd: {type: pagerduty, routing_key: k}
  out: {type: console}
digests:
  daily:
    every: day
    brands: [Acme, Acme Corp]
    route: [pd, out, outt]
"""
    with pytest.raises(ConfigError) as err:
        load_config_text(text, "rules.yaml")
    lines = str(err.value)
    assert "digests.daily.brands[1]: unknown brand 'Acme Corp'" in lines
    assert "digests.daily.route[0]: sink 'pd' is a pagerduty sink" in lines
    assert "digests.daily.route[2]: unknown sink 'outt'" in lines
    assert "did you mean 'out'" in lines


# ---------------------------------------------------------------------- the numbers


def scored(
    i: int, at: datetime, brand: str = "Acme", negative: bool = False, story: str | None = None
) -> ScoredMention:
    mention = Mention(
        source="x",
        id=f"m{i}",
        text=f"Acme post {i}",
        created_at=at,
        url=f"https://x.example/{i}",
        author=Author(handle=f"u{i}", followers=i),
    )
    label = "negative" if negative else "neutral"
    return ScoredMention(
        mention,
        (brand,),
        Sentiment(label, -0.6 if negative else 0.0),
        categories=("outage",) if negative else (),
        story=story or f"x:m{i}",
        reach=float(i),
    )


def event(kind: str, incident: str, seq: int, at: datetime, brand: str = "Acme") -> IncidentEvent:
    return IncidentEvent(kind, incident, seq, "surge", brand, "high", None, "crisis", at, ())  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A day (Sunday 08:00 to Monday 08:00) and the day before, with incidents."""
    s = Store.open(tmp_path / "state.db")
    day = UTC8 - DAY
    mentions = [scored(i, day - timedelta(hours=i), negative=i <= 2) for i in range(1, 11)]
    mentions += [
        scored(100 + i, day + timedelta(hours=1, minutes=i), negative=i < 9, story="x:m100")
        for i in range(12)
    ]
    mentions += [scored(200 + i, day + timedelta(hours=3), negative=False) for i in range(8)]
    mentions += [scored(300, day + timedelta(hours=2), brand="Globex")]
    s.write_ingest(IngestWrite(now=UTC8, mentions=mentions))
    s.write_evaluate(
        EvaluateWrite(
            now=UTC8,
            events=[
                event("opened", "old", 1, day - timedelta(hours=5)),  # resolved in the day
                event("resolved", "old", 2, day + timedelta(hours=2)),
                event("opened", "new", 1, day + timedelta(hours=1)),  # still open
                event("opened", "quick", 1, day + timedelta(hours=4)),
                event("resolved", "quick", 2, day + timedelta(hours=6)),
                event("opened", "gone", 1, day - timedelta(hours=9)),  # before the day
                event("resolved", "gone", 2, day - timedelta(hours=8)),
                event("opened", "drill", 1, day + timedelta(hours=1)),
            ],
        )
    )
    s.incident_log.mark_drill(["drill"])
    s.ack_log.add("new", "ana", day + timedelta(hours=1, minutes=4))
    s.ack_log.add("quick", "bo", day + timedelta(hours=4, minutes=12))
    yield s
    s.close()


def test_gather_compares_the_period_with_the_one_before(store: Store) -> None:
    cfg = digest_config(brands=["Acme", "Globex"], stories=2)
    digest = gather(store, "daily", cfg, ["Acme", "Globex", "Initech"], UTC8)
    assert (digest.id, digest.start, digest.end) == (
        "digest:daily:20261207T080000Z",
        UTC8 - DAY,
        UTC8,
    )
    acme, globex = digest.brands
    assert (acme.mentions, acme.negative) == (20, 9)
    assert (acme.previous_mentions, acme.previous_negative) == (10, 2)
    assert acme.negative_share == pytest.approx(0.45)
    assert acme.previous_share == pytest.approx(0.2)
    [story, _] = acme.stories
    assert (story.story, story.mentions, story.negative, story.lead.id) == ("x:m100", 12, 9, "m111")
    assert [i.id for i in acme.opened] == ["new", "quick"]
    assert [i.id for i in acme.resolved] == ["old", "quick"]
    assert [i.id for i in acme.still_open] == ["new"]
    assert acme.median_time_to_ack == pytest.approx(8 * 60)  # 4 and 12 minutes
    assert (globex.mentions, globex.previous_mentions, globex.opened) == (1, 0, ())
    every = gather(store, "daily", digest_config(), ["Acme", "Globex", "Initech"], UTC8)
    assert [b.brand for b in every.brands] == ["Acme", "Globex", "Initech"]


def test_the_text_says_what_changed(store: Store) -> None:
    digest = gather(store, "daily", digest_config(timezone="Europe/Paris"), ["Acme", "Nope"], UTC8)
    text = render_digest_text(digest)
    assert text.startswith(
        "Daily digest · Mon 07 Dec 2026\nSun 06 Dec 09:00 – Mon 07 Dec 09:00 (Europe/Paris)"
    )
    assert "20 mentions (▲ 100% on the day before: 10)" in text
    assert "45% negative (9) (▲ 25 pts from 20%)" in text
    assert "2 incidents opened, 2 resolved, 1 still open; median time to acknowledge 8 min" in text
    assert "crisis · surge · opened Sun 10:00 · acknowledged by ana after 4 min" in text
    assert "“Acme post 111” — @u111 (x) · 1 + 11 copies, 9 negative" in text
    assert "0 mentions (none the day before either)" in text
    assert "no incidents" in text


# ---------------------------------------------------------------------- sinks


HOSTILE = "<script>alert(1)</script> <!channel> @here"


def hostile_digest(store: Store) -> Digest:
    evil = Mention(
        source="x",
        id="evil",
        text=HOSTILE,
        created_at=UTC8 - timedelta(hours=2),
        url="javascript:alert(1)",
        author=Author(handle="<b>mallory</b>", followers=10**6),
    )
    scored_evil = ScoredMention(evil, ("Acme",), Sentiment("negative", -0.9), reach=1e6)
    store.write_ingest(IngestWrite(now=UTC8, mentions=[scored_evil]))
    return gather(store, "daily", digest_config(), ["Acme"], UTC8)


def test_what_sources_wrote_stays_inert_in_every_rendering(store: Store) -> None:
    digest = hostile_digest(store)
    page = render_digest_html(digest)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "<b>mallory" not in page
    assert 'href="javascript' not in page
    assert 'href="https://x.example/111"' in page
    slack = json.dumps(render_digest_blocks(digest))
    assert "<!channel>" not in slack
    assert "<script>" not in slack
    assert "@\\u200bhere" in slack
    assert "javascript:" not in slack
    for chat in (render_digest_card(digest), render_digest_message(digest)):
        text = json.dumps(chat, ensure_ascii=False)
        assert "<script>" not in text
        assert "<!channel>" not in text
        assert "@\u200bhere" in text
        assert "javascript:" not in text


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def slack(clock: ManualClock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock) as fake:
        yield fake


def config_for(sinks: dict[str, Any], **digest: Any) -> Config:
    return Config.model_validate(
        {
            "brands": [{"name": "Acme", "query": "acme"}],
            "sinks": sinks,
            "digests": {"daily": {"every": "day", "at": "08:00", "route": list(sinks), **digest}},
        }
    )


async def test_every_digest_sink_delivers_it(
    store: Store, hook: WebhookReceiver, smtp: SmtpServer, slack: FakeSlack, clock: ManualClock
) -> None:
    """Webhook (signed JSON with the digest id as Idempotency-Key), Slack incoming webhook
    and Web API (a message of its own in the channel), email (text and HTML) and console."""
    digest = gather(store, "daily", digest_config(), ["Acme"], UTC8)
    out = io.StringIO()
    state = MemorySinkState()
    web = WebhookSink(
        "hook",
        WebhookSinkConfig(type="webhook", url=SecretStr(hook.url()), secret=SecretStr("k")),
        clock=clock,
    )
    api = SlackSink(
        "slack",
        SlackSinkConfig.model_validate(
            {
                "type": "slack",
                "token": slack.token,
                "channel": CHANNEL_ID,
                "api_url": slack.api_url,
                "console_url": "https://listener.example.com",
            }
        ),
        context=SinkContext(state, clock),
    )
    incoming = SlackSink(
        "incoming",
        SlackSinkConfig.model_validate({"type": "slack", "webhook_url": slack.webhook_url()}),
        context=SinkContext(MemorySinkState(), clock),
    )
    mail = EmailSink(
        "mail",
        EmailSinkConfig.model_validate(
            {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "from": "listener@example.com",
                "to": ["pr@example.com"],
            }
        ),
        context=SinkContext(MemorySinkState(), clock),
    )
    console = ConsoleSink("out", ConsoleSinkConfig(type="console", format="json"), stream=out)
    sinks: list[Sink] = [web, api, incoming, mail, console]
    for sink in sinks:
        assert isinstance(sink, SendsDigest)
        await sink.send_digest(digest, digest.id)
    await api.send_digest(digest, digest.id)  # a repeat posts nothing more
    [posted] = hook.wait_for(1)
    assert posted.idempotency_key == digest.id
    assert posted.json["type"] == "digest"
    assert posted.json["brands"][0]["mentions"] == 20
    assert "x-listener-signature" in posted.headers
    [message] = slack.messages()
    assert message["blocks"][0]["text"]["text"] == "Daily digest · Mon 07 Dec 2026"
    assert "listener.example.com" in json.dumps(message["blocks"])
    [webhook_post] = slack.webhook_posts
    assert "*Acme*" in json.dumps(webhook_post)
    [email] = smtp.messages
    parsed = email.email
    assert parsed["Subject"] == "[listener] Daily digest · Mon 07 Dec 2026"
    assert "20 mentions" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<h3>Acme</h3>" in parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert json.loads(out.getvalue())["id"] == digest.id
    for sink in sinks:
        await sink.aclose()


# ---------------------------------------------------------------------- delivery


def webhook_digests(
    store: Store, hook: WebhookReceiver, clock: ManualClock, metrics: Metrics | None = None
) -> Digests:
    config = config_for(
        {
            "hook": {
                "type": "webhook",
                "url": hook.url(),
                "delivery": {"initial_backoff": "10s", "max_backoff": "1m"},
            }
        }
    )
    sinks = {"hook": WebhookSink("hook", config.sinks["hook"], clock=clock)}  # type: ignore[arg-type]
    return Digests(store, sinks, config, metrics or Metrics(), clock, rng=random.Random(0))


def counter(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "listener_digests_total", {"digest": "daily", "sink": "hook", "outcome": outcome}
    )
    return value or 0.0


async def test_a_digest_goes_once_per_fire_time_and_survives_a_restart(
    store: Store, hook: WebhookReceiver
) -> None:
    clock = ManualClock(UTC8 - timedelta(hours=3))
    metrics = Metrics()
    digests = webhook_digests(store, hook, clock, metrics)
    assert await digests.run() is None  # first sight: the first digest waits for 08:00
    assert hook.requests == []
    clock.set(UTC8 - timedelta(seconds=1))
    await digests.run()
    assert hook.requests == []
    clock.set(UTC8)
    await digests.run()
    await digests.run()
    [sent] = hook.wait_for(1)
    assert sent.idempotency_key == digest_id("daily", UTC8)
    assert sent.json["start"] == (UTC8 - DAY).isoformat()
    assert counter(metrics, "delivered") == 1
    clock.advance(timedelta(hours=1))
    restarted = webhook_digests(store, hook, clock)  # a new process on the same state
    await restarted.run()
    assert len(hook.requests) == 1
    clock.set(UTC8 + DAY)
    await restarted.run()
    assert [r.idempotency_key for r in hook.requests] == [
        digest_id("daily", UTC8),
        digest_id("daily", UTC8 + DAY),
    ]


async def test_a_daemon_down_at_fire_time_sends_that_digest_when_it_starts(
    store: Store, hook: WebhookReceiver
) -> None:
    clock = ManualClock(UTC8 - timedelta(hours=12))
    await webhook_digests(store, hook, clock).run()  # seen the evening before, then down
    clock.set(UTC8 + timedelta(hours=5))
    await webhook_digests(store, hook, clock).run()
    assert [r.idempotency_key for r in hook.requests] == [digest_id("daily", UTC8)]
    clock.set(UTC8 + timedelta(days=9))  # down for a week: only the last one
    await webhook_digests(store, hook, clock).run()
    assert hook.requests[-1].idempotency_key == digest_id("daily", UTC8 + 9 * DAY)
    assert len(hook.requests) == 2


async def test_a_failed_send_is_retried_with_backoff_until_delivered(
    store: Store, hook: WebhookReceiver
) -> None:
    clock = ManualClock(UTC8 - timedelta(hours=1))
    metrics = Metrics()
    digests = webhook_digests(store, hook, clock, metrics)
    await digests.run()
    clock.set(UTC8)
    hook.script(Answer(503), Answer(503))
    wake = await digests.run()
    assert wake is not None
    assert UTC8 + timedelta(seconds=5) <= wake <= UTC8 + timedelta(seconds=10)
    assert await digests.run() == wake  # not before the backoff ends
    assert len(hook.requests) == 1
    clock.set(wake)
    second = await digests.run()
    assert second is not None
    assert second - wake >= timedelta(seconds=10)
    clock.set(second)
    assert await digests.run() is None
    keys = [r.idempotency_key for r in hook.requests]
    assert keys == [digest_id("daily", UTC8)] * 3
    assert (counter(metrics, "retry"), counter(metrics, "delivered")) == (2, 1)


async def test_a_refused_or_superseded_digest_is_given_up_loudly(
    store: Store, hook: WebhookReceiver
) -> None:
    clock = ManualClock(UTC8 - timedelta(hours=1))
    metrics = Metrics()
    digests = webhook_digests(store, hook, clock, metrics)
    await digests.run()
    clock.set(UTC8)
    hook.script(Answer(400))
    assert await digests.run() is None  # refused: not retried
    await digests.run()
    assert len(hook.requests) == 1
    assert counter(metrics, "failed") == 1
    clock.set(UTC8 + DAY)
    hook.script(Answer(503))
    assert await digests.run() is not None
    clock.set(UTC8 + 2 * DAY)  # not delivered yet when the next one is due
    await digests.run()
    assert counter(metrics, "failed") == 2
    assert hook.requests[-1].idempotency_key == digest_id("daily", UTC8 + 2 * DAY)
    assert hook.requests[-1].accepted


async def test_serve_sleeps_until_the_next_fire_time_and_stops(
    store: Store, hook: WebhookReceiver
) -> None:
    clock = ManualClock(UTC8 - timedelta(minutes=1))
    digests = webhook_digests(store, hook, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(digests.serve(stop))
    await asyncio.sleep(0.2)
    assert hook.requests == []
    clock.set(UTC8)
    digests.wake()
    await asyncio.to_thread(hook.wait_for, 1)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [r.idempotency_key for r in hook.requests] == [digest_id("daily", UTC8)]


def test_listener_digest_shows_what_would_be_sent(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``listener digest NAME`` prints the digest of the last fire time before --at, from
    the state; it sends nothing. A name that is not there, or no fire time, is refused."""
    from listener.cli import main

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "brands: [{name: Acme, query: acme}]\n"
        "sinks: {hook: {type: webhook, url: 'http://127.0.0.1:9/never'}}\n"
        "digests:\n  morning: {every: day, at: '08:00', route: [hook]}\n"
        "  weekdays: {every: day, cron: '0 8 * * 1-5', route: [hook]}\n",
        encoding="utf-8",
    )
    assert main(["check", str(rules)]) == 0
    assert "1 sinks, 2 digests)" in capsys.readouterr().out
    state = str(tmp_path / "state.db")
    common = ["--config", str(rules), "--state", state]
    at = ["--at", "2026-12-07T09:30:00Z"]
    assert main(["digest", "morning", *at, *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Daily digest · Mon 07 Dec 2026\nSun 06 Dec 08:00 – Mon 07 Dec 08:00")
    assert "20 mentions (▲ 100% on the day before: 10)" in out
    assert (
        main(["digest", "morning", "--at", "2026-12-07T09:30:00Z", "--format", "json", *common])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["id"] == "digest:morning:20261207T080000Z"
    assert main(["digest", "evening", *common]) == 2
    assert "no digest named 'evening' in the rules file (digests: morning, weekdays)" in (
        capsys.readouterr().err
    )
    assert main(["digest", "weekdays", "--at", "2026-12-06T12:00:00Z", *common]) == 2
    assert "had no fire time in the 1d before" in capsys.readouterr().err
