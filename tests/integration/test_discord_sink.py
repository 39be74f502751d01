"""The Discord sink: the message and embed it renders, and its sends against a loopback
Discord webhook (created, rate limited, refused, repeated)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from listener.clock import ManualClock
from listener.config.schema import DiscordSinkConfig
from listener.errors import SinkError, SinkRejected, SinkUnavailable
from listener.model import Ack, Fact, MentionRef
from listener.sinks import build_sink
from listener.sinks.base import MemorySinkState, SendsDigest, SendsTest, Sink, SinkContext
from listener.sinks.discord import (
    MAX_EMBED,
    DiscordSink,
    embed_size,
    esc,
    fit,
    render_digest_message,
    render_message,
    units,
)
from tests.support.fake_discord import TOKEN, WEBHOOK_ID, FakeDiscord, problems
from tests.support.receiver import (
    HOSTILE_TEXT,
    Answer,
    assert_secrets_absent,
    closed_port,
    sample_alert,
    sample_digest,
    sample_explanation,
)

MakeSink = Callable[..., DiscordSink]
CONSOLE = "https://listener.example.com"


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    """A loopback Discord webhook."""
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def state() -> MemorySinkState:
    """The sink's durable state, shared by the sinks a test builds (as across a restart)."""
    return MemorySinkState()


@pytest.fixture
async def make_sink(
    discord: FakeDiscord, state: MemorySinkState, clock: ManualClock
) -> AsyncIterator[MakeSink]:
    """Build Discord sinks on the shared state (closed at teardown)."""
    sinks: list[DiscordSink] = []

    def make(url: str | None = None, **overrides: Any) -> DiscordSink:
        block = {"type": "discord", "url": url or discord.webhook_url, "timeout": 5, **overrides}
        config = DiscordSinkConfig.model_validate(block)
        sink = DiscordSink("chat", config, context=SinkContext(state, clock))
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


def assert_no_secret(exc: BaseException) -> None:
    """The error shows none of the URL's secrets."""
    assert_secrets_absent(exc, TOKEN, WEBHOOK_ID)


# --------------------------------------------------------------------------- rendering


def test_the_message_shows_what_people_need() -> None:
    """Content line, title, level, brand, rule, facts, Why with examples, mentions, ids,
    colour, timestamp, the console link; and no pings at all."""
    alert = sample_alert(explanation=sample_explanation(), opened_at=sample_alert().at)
    body = render_message(alert, console_url=CONSOLE, username="listener")
    assert problems(body) == {}
    assert body["allowed_mentions"] == {"parse": []}
    assert body["username"] == "listener"
    assert body["content"].startswith(
        "🚨 HIGH: Acme — negative-spike · negative mentions in 15m: 42"
    )
    [embed] = body["embeds"]
    assert embed["title"] == "🚨 HIGH: Acme — negative-spike"
    assert embed["url"] == f"{CONSOLE}/incidents/inc-0001"
    assert embed["color"] == 0xF2711C
    assert embed["timestamp"] == "2026-03-02T09:00:00+00:00"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Brand"] == "Acme"
    assert fields["Level"] == "HIGH"
    assert fields["Rule"] == "negative-spike"
    assert fields["Status"] == "Open, not acknowledged yet"
    assert fields["Opened"] == "<t:1772442000:f> (<t:1772442000:R>)"
    assert fields["negative mentions in 15m"].startswith("42 \\(threshold 10")
    lines = embed["description"].split("\n")
    assert lines[0].startswith("**Why:** what rose: negative mentions of the last 16 min \\(42\\)")
    assert "• “outage” 31 now, 2 before · [example](https://news.example/acme-outage)" in lines
    assert "• @bob \\(forum\\) 5 now, 0 before" in lines
    assert "**Top mentions**" in lines
    assert any(
        x.startswith("1. “Acme outage") and x.endswith("[open](https://news.example/acme-outage)")
        for x in lines
    )
    assert embed["footer"]["text"] == "listener · incident inc-0001 · alert alert-0001"


@pytest.mark.parametrize(
    ("level", "kind", "colour"),
    [
        ("crisis", "opened", 0xD0021B),
        ("critical", "escalated", 0xD0021B),
        ("elevated", "opened", 0xF2711C),
        ("watch", "opened", 0x439FE0),
        ("crisis", "resolved", 0x2EB67D),
    ],
)
def test_the_colour_follows_the_severity(level: str, kind: str, colour: int) -> None:
    """Red crisis/critical, orange high/elevated, blue else, green once resolved."""
    [embed] = render_message(sample_alert(level=level, kind=kind))["embeds"]
    assert embed["color"] == colour


def test_drill_resolved_and_acknowledged_say_so() -> None:
    """A drill carries [DRILL] and a note; the all-clear and who acknowledged are shown."""
    base = sample_alert(drill=True, opened_at=sample_alert().at - timedelta(hours=2))
    [drill] = render_message(base)["embeds"]
    assert drill["title"].startswith("🚨 \\[DRILL\\] HIGH")
    assert "**DRILL**: this is a test alert" in drill["description"]
    [resolved] = render_message(replace(base, kind="resolved"))["embeds"]
    assert "✅ **All clear.** Resolved after 2h." in resolved["description"]
    acked = replace(base, kind="acknowledged", ack=Ack("dana", base.at, "drafting a statement"))
    [embed] = render_message(acked)["embeds"]
    assert "👀 **dana** acknowledged: “drafting a statement”" in embed["description"]
    assert {"name": "Status", "value": "Acknowledged by dana", "inline": True} in embed["fields"]


def test_untrusted_text_cannot_format_link_or_ping() -> None:
    """Markdown, mentions, mass mentions and non-http links from sources stay inert."""
    at = sample_alert().at
    junk = MentionRef("x", "m3", HOSTILE_TEXT, "javascript:alert(1)", "@everyone", 1, at, -0.5)
    odd = replace(junk, id="m4", url="https://ok.example/a(b)")
    alert = sample_alert(top_mentions=(junk, odd), summary=HOSTILE_TEXT)
    body = render_message(alert, console_url="javascript:alert(1)", avatar_url="javascript:x")
    assert body["allowed_mentions"] == {"parse": []}
    assert "avatar_url" not in body
    dumped = json.dumps(body, ensure_ascii=False)
    assert "javascript:" not in dumped
    assert "@everyone" not in dumped
    assert "@\u200beveryone" in dumped
    description = body["embeds"][0]["description"]
    assert "\\[click\\]\\(https://evil.example\\)" in description
    assert "\\*\\*bold\\*\\*" in description
    assert "\\`code\\`" in description
    assert "\\<@123\\>" in description
    assert "\\# big" in description
    assert "[open](https://ok.example/a%28b%29)" in description
    assert "url" not in body["embeds"][0]


def test_esc_and_fit() -> None:
    """esc() escapes Discord Markdown; fit() counts UTF-16 units and never leaves half an escape."""
    assert esc("a*b_c~d`e|f>g<h[i](j)#k\\") == "a\\*b\\_c\\~d\\`e\\|f\\>g\\<h\\[i\\]\\(j\\)\\#k\\\\"
    assert units("😀") == 2
    assert fit("😀" * 10, 5) == "😀😀…"
    assert fit("abc\\*def", 5) == "abc…"
    assert fit("short", 5) == "short"


def test_a_huge_alert_fits_discords_limits() -> None:
    """Long texts, many facts and mentions: every limit holds (the fake would say 400)."""
    at = sample_alert().at
    mentions = tuple(
        MentionRef("x", f"m{i}", "😀" * 3000, f"https://x.example/{i}", "a" * 500, 1, at, -1.0)
        for i in range(30)
    )
    alert = sample_alert(
        top_mentions=mentions,
        facts=tuple(Fact("f" * 900 + str(i), 1.5, 2, 3) for i in range(40)),
        summary="_" * 10_000,
        rule="r" * 3000,
        explanation=replace(sample_explanation(), drivers=sample_explanation().drivers * 20),
        categories=tuple((f"c{i}" * 50, i) for i in range(50)),
        route=tuple("route" * 40 for _ in range(20)),
    )
    body = render_message(alert, console_url=CONSOLE)
    assert problems(body) == {}
    [embed] = body["embeds"]
    assert embed_size(embed) <= MAX_EMBED
    assert len(embed["fields"]) <= 25


def test_the_digest_message_lists_each_brand() -> None:
    """Title, span, one field per brand with its lines and http(s) story links only."""
    body = render_digest_message(sample_digest(3, hostile=True), console_url=CONSOLE)
    assert problems(body) == {}
    assert body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert embed["title"] == "Daily digest · Mon 07 Dec 2026"
    assert embed["description"] == "Sun 06 Dec 08:00 – Mon 07 Dec 08:00 \\(UTC\\)"
    assert embed["url"] == CONSOLE
    acme = embed["fields"][0]
    assert acme["name"] == "Acme"
    assert "• 20 mentions \\(▲ 100% on the day before: 10\\)" in acme["value"]
    assert "[open](https://news.example/acme-outage)" in acme["value"]
    assert [f["name"] for f in embed["fields"]] == ["Acme", "Brand 1", "Brand 2"]
    dumped = json.dumps(body, ensure_ascii=False)
    assert "javascript:" not in dumped
    assert "@\u200beveryone" in dumped


def test_a_digest_of_many_brands_stays_within_limits() -> None:
    """Brands that do not fit are counted in a closing field."""
    body = render_digest_message(sample_digest(60))
    assert problems(body) == {}
    [embed] = body["embeds"]
    assert embed_size(embed) <= MAX_EMBED
    assert embed["fields"][-1]["name"] == "More"
    assert embed["fields"][-1]["value"].startswith("…and ")


def test_the_config_checks_the_username_and_hides_the_url() -> None:
    """Discord refuses names with 'discord'; the URL is a secret."""
    with pytest.raises(ValidationError, match="Discord refuses the webhook name"):
        DiscordSinkConfig.model_validate(
            {"type": "discord", "url": "https://d.example/x", "username": "My Discord bot"}
        )
    with pytest.raises(ValidationError, match="1 to 80 characters"):
        DiscordSinkConfig.model_validate(
            {"type": "discord", "url": "https://d.example/x", "username": "x" * 81}
        )
    config = DiscordSinkConfig.model_validate(
        {"type": "discord", "url": f"https://d.example/api/webhooks/1/{TOKEN}"}
    )
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config.model_dump())


# --------------------------------------------------------------------------- against the fake


async def test_send_posts_with_wait_and_keeps_the_message_id(
    discord: FakeDiscord, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """POST {url}?wait=true: Discord answers 200 with the message, whose id is the done marker."""
    sink = make_sink(username="listener", avatar_url="https://cdn.example/a.png")
    await sink.send(sample_alert(explanation=sample_explanation()), "alert-0001")
    [request] = discord.requests
    assert (request.method, request.status, request.query) == ("POST", 200, "wait=true")
    assert request.path == f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}"
    assert request.headers["content-type"] == "application/json"
    [message] = discord.messages
    assert message["username"] == "listener"
    assert message["avatar_url"] == "https://cdn.example/a.png"
    assert state.get("done:alert-0001") == "1100000000000000000"


async def test_a_query_in_the_url_is_kept(discord: FakeDiscord, make_sink: MakeSink) -> None:
    """thread_id (a forum thread) stays; wait=true is added."""
    await make_sink(discord.webhook_url + "?thread_id=42").send(sample_alert(), "k")
    [request] = discord.requests
    assert sorted(request.query.split("&")) == ["thread_id=42", "wait=true"]


async def test_the_fake_answers_204_without_wait(discord: FakeDiscord) -> None:
    """Sanity: without wait=true Discord answers 204 and no body."""
    async with httpx.AsyncClient() as client:
        response = await client.post(discord.webhook_url, json={"content": "hi"})
    assert (response.status_code, response.content) == (204, b"")


async def test_a_repeated_key_is_not_posted_twice(
    discord: FakeDiscord, make_sink: MakeSink
) -> None:
    """The done marker keeps a retry, even by a sink built after a restart, from posting again."""
    alert = sample_alert()
    await make_sink().send(alert, alert.id)
    await make_sink().send(alert, alert.id)
    assert len(discord.messages) == 1


@pytest.mark.parametrize("global_", [False, True])
async def test_429_uses_discords_retry_after(
    discord: FakeDiscord, make_sink: MakeSink, state: MemorySinkState, global_: bool
) -> None:
    """429: SinkUnavailable with the JSON retry_after (1.5 s, not the header's 2), unmarked."""
    discord.rate_limit(retry_after=1.5, global_=global_)
    sink = make_sink()
    with pytest.raises(SinkUnavailable) as info:
        await sink.send(sample_alert(), "k")
    assert info.value.retry_after == 1.5
    scope = "global rate limit" if global_ else "rate limited"
    assert str(info.value) == f"discord sink 'chat': HTTP 429 ({scope})"
    assert_no_secret(info.value)
    assert state.get("done:k") is None
    await sink.send(sample_alert(), "k")
    assert len(discord.messages) == 1


async def test_429_without_a_json_body_uses_the_header(
    discord: FakeDiscord, make_sink: MakeSink
) -> None:
    """A 429 from a proxy (no JSON) still honours Retry-After."""
    discord.respond(429, retry_after="7")
    with pytest.raises(SinkUnavailable) as info:
        await make_sink().send(sample_alert(), "k")
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retryable(
    discord: FakeDiscord, make_sink: MakeSink, status: int
) -> None:
    """5xx and 408 raise SinkUnavailable."""
    discord.respond(status)
    with pytest.raises(SinkUnavailable, match=f"HTTP {status}") as info:
        await make_sink().send(sample_alert(), "k")
    assert_no_secret(info.value)


async def test_an_invalid_token_is_rejected_without_the_token(
    discord: FakeDiscord, make_sink: MakeSink
) -> None:
    """401 Invalid Webhook Token (code 50027) is SinkRejected naming Discord's words only."""
    discord.invalid_token()
    with pytest.raises(SinkRejected) as info:
        await make_sink().send(sample_alert(), "k")
    assert str(info.value) == "discord sink 'chat': HTTP 401 (Invalid Webhook Token, code 50027)"
    assert_no_secret(info.value)
    wrong = discord.webhook_url.replace(TOKEN, "x" + TOKEN[1:])
    with pytest.raises(SinkRejected, match="Invalid Webhook Token") as info:
        await make_sink(wrong).send(sample_alert(), "k")
    assert_no_secret(info.value)


async def test_an_echoed_token_is_redacted(discord: FakeDiscord, make_sink: MakeSink) -> None:
    """Should Discord quote the URL or token in an error, the message has it cut out."""
    discord.script(
        Answer.json(400, {"message": f"bad webhook {discord.webhook_url} {TOKEN}", "code": 1})
    )
    with pytest.raises(SinkRejected, match="<redacted>") as info:
        await make_sink().send(sample_alert(), "k")
    assert_no_secret(info.value)


async def test_a_refused_body_is_rejected(discord: FakeDiscord, make_sink: MakeSink) -> None:
    """Discord's 400 Invalid Form Body (code 50035) is SinkRejected."""
    errors = {"embeds": {"0": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}}}
    discord.script(
        Answer.json(400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"})
    )
    with pytest.raises(SinkRejected, match=r"HTTP 400 \(Invalid Form Body, code 50035\)"):
        await make_sink().send(sample_alert(), "k")


async def test_transport_errors_are_unavailable_without_the_token(make_sink: MakeSink) -> None:
    """A refused connection and a timeout raise SinkUnavailable without any secret."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"
    with pytest.raises(SinkUnavailable, match="connection failed") as info:
        await make_sink(url).send(sample_alert(), "k")
    assert_no_secret(info.value)

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timeout reading {request.url}", request=request)

    config = DiscordSinkConfig.model_validate({"type": "discord", "url": url, "timeout": 0.5})
    sink = DiscordSink("chat", config, transport=httpx.MockTransport(broken))
    try:
        with pytest.raises(SinkUnavailable, match=r"timed out after 0\.5s") as info:
            await sink.send(sample_alert(), "k")
    finally:
        await sink.aclose()
    assert_no_secret(info.value)


async def test_send_test_posts_a_labelled_test_message(
    discord: FakeDiscord, make_sink: MakeSink
) -> None:
    """send_test() posts a drill message that says it is a test, every time."""
    sink = make_sink()
    await sink.send_test()
    await sink.send_test()
    assert len(discord.messages) == 2
    assert discord.messages[0]["embeds"][0]["title"].startswith("🚨 \\[DRILL\\] TEST: listener")


async def test_healthcheck_reads_the_webhook_and_posts_nothing(
    discord: FakeDiscord, make_sink: MakeSink
) -> None:
    """healthcheck() GETs the webhook (the token is valid); a wrong token is rejected."""
    await make_sink().healthcheck()
    assert [(r.method, r.status) for r in discord.requests] == [("GET", 200)]
    with pytest.raises(SinkRejected, match="health check: HTTP 401") as info:
        await make_sink(discord.webhook_url.replace(TOKEN, "nope" + TOKEN[4:])).healthcheck()
    assert_no_secret(info.value)
    assert discord.messages == []
    port = closed_port()
    with pytest.raises(SinkError):
        await make_sink(f"http://127.0.0.1:{port}/api/webhooks/1/x").healthcheck()


async def test_send_digest_posts_once(discord: FakeDiscord, make_sink: MakeSink) -> None:
    """A digest is one message; the same key again posts nothing."""
    digest = sample_digest()
    sink = make_sink(console_url=CONSOLE)
    await sink.send_digest(digest, digest.id)
    await sink.send_digest(digest, digest.id)
    [message] = discord.messages
    assert message["embeds"][0]["title"] == "Daily digest · Mon 07 Dec 2026"


async def test_the_registry_builds_it_with_its_capabilities(
    discord: FakeDiscord, clock: ManualClock
) -> None:
    """build_sink gives a DiscordSink that is a Sink, SendsTest and SendsDigest."""
    config = DiscordSinkConfig.model_validate({"type": "discord", "url": discord.webhook_url})
    sink = build_sink("chat", config, SinkContext(clock=clock))
    try:
        assert isinstance(sink, DiscordSink)
        assert isinstance(sink, Sink)
        assert isinstance(sink, SendsTest)
        assert isinstance(sink, SendsDigest)
    finally:
        await sink.aclose()
