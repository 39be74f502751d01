"""The Microsoft Teams sink: the Adaptive Card it renders, and its sends against a
loopback Teams workflow webhook (accepted, throttled, refused, repeated)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from listener.clock import ManualClock
from listener.config.schema import TeamsSinkConfig
from listener.errors import SinkError, SinkRejected, SinkUnavailable
from listener.model import Ack, Fact, MentionRef
from listener.sinks import build_sink
from listener.sinks.base import MemorySinkState, SendsDigest, SendsTest, Sink, SinkContext
from listener.sinks.teams import (
    MAX_PAYLOAD,
    TeamsSink,
    esc,
    payload_size,
    render_card,
    render_digest_card,
)
from tests.support.fake_teams import SIG, WORKFLOW_ID, FakeTeams, problems
from tests.support.receiver import (
    HOSTILE_TEXT,
    Answer,
    assert_secrets_absent,
    closed_port,
    sample_alert,
    sample_digest,
    sample_explanation,
)

MakeSink = Callable[..., TeamsSink]
CONSOLE = "https://listener.example.com"


@pytest.fixture
def teams() -> Iterator[FakeTeams]:
    """A loopback Teams workflow webhook."""
    with FakeTeams() as fake:
        yield fake


@pytest.fixture
def state() -> MemorySinkState:
    """The sink's durable state, shared by the sinks a test builds (as across a restart)."""
    return MemorySinkState()


@pytest.fixture
async def make_sink(
    teams: FakeTeams, state: MemorySinkState, clock: ManualClock
) -> AsyncIterator[MakeSink]:
    """Build Teams sinks on the shared state (closed at teardown)."""
    sinks: list[TeamsSink] = []

    def make(url: str | None = None, **overrides: Any) -> TeamsSink:
        block = {"type": "teams", "url": url or teams.webhook_url, "timeout": 5, **overrides}
        sink = TeamsSink(
            "ops", TeamsSinkConfig.model_validate(block), context=SinkContext(state, clock)
        )
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


def card_of(message: dict[str, Any]) -> dict[str, Any]:
    [attachment] = message["attachments"]
    content: dict[str, Any] = attachment["content"]
    return content


def texts(card: dict[str, Any]) -> list[str]:
    """Every TextBlock's text and every fact, in order."""
    found = []
    for element in card["body"]:
        if element["type"] == "TextBlock":
            found.append(element["text"])
        elif element["type"] == "FactSet":
            found += [f"{f['title']}: {f['value']}" for f in element["facts"]]
    return found


def assert_no_secret(exc: BaseException) -> None:
    """The error shows none of the URL's secrets."""
    assert_secrets_absent(exc, SIG, WORKFLOW_ID)


# --------------------------------------------------------------------------- rendering


def test_the_card_is_a_teams_message_with_an_adaptive_card() -> None:
    """The body is a message with one Adaptive Card 1.4 attachment that the fake accepts."""
    message = render_card(sample_alert(explanation=sample_explanation()), CONSOLE)
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert problems(message) == []
    assert all(e["wrap"] for e in card["body"] if e["type"] == "TextBlock")
    json.dumps(message, allow_nan=False)


def test_the_card_shows_what_people_need() -> None:
    """Title, level, brand, rule, incident, the facts, Why with examples, top mentions,
    and buttons for the console and the mentions."""
    alert = sample_alert(explanation=sample_explanation())
    card = card_of(render_card(alert, CONSOLE))
    header = card["body"][0]
    assert header["text"] == "🚨 HIGH: Acme — negative-spike"
    assert (header["size"], header["weight"], header["color"]) == ("Large", "Bolder", "Warning")
    shown = texts(card)
    for line in (
        "Brand: Acme",
        "Level: HIGH",
        "Rule: negative-spike",
        "Incident: inc-0001",
        "Status: Open, not acknowledged yet",
        "negative mentions in 15m: 42 (threshold 10 · baseline 3.50, 12.0× baseline)",
    ):
        assert line in shown
    why = next(t for t in shown if t.startswith("Why: what rose"))
    assert "negative mentions of the last 16 min (42)" in why
    assert "• “outage” 31 now, 2 before · [example](https://news.example/acme-outage)" in shown
    assert "• @bob (forum) 5 now, 0 before" in shown  # no example: no link
    assert "Top mentions" in shown
    assert any(
        t.startswith("1. “Acme outage") and t.endswith("(https://news.example/acme-outage)")
        for t in shown
    )
    assert shown[-1] == "Incident inc-0001 · Alert alert-0001"
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open in console",
            "url": f"{CONSOLE}/incidents/inc-0001",
        },
        {"type": "Action.OpenUrl", "title": "Mention 1", "url": "https://news.example/acme-outage"},
    ]


@pytest.mark.parametrize(
    ("level", "kind", "colour"),
    [
        ("crisis", "opened", "Attention"),
        ("Critical", "escalated", "Attention"),
        ("high", "opened", "Warning"),
        ("elevated", "reminder", "Warning"),
        ("watch", "opened", "Accent"),
        ("crisis", "resolved", "Good"),
    ],
)
def test_the_header_colour_follows_the_severity(level: str, kind: str, colour: str) -> None:
    """Attention for crisis/critical, Warning for high/elevated, Accent else, Good once resolved."""
    card = card_of(render_card(sample_alert(level=level, kind=kind)))
    assert card["body"][0]["color"] == colour


def test_drill_resolved_and_acknowledged_say_so() -> None:
    """A drill carries [DRILL] and a note; the all-clear and who acknowledged are shown."""
    base = sample_alert(drill=True, opened_at=sample_alert().at - timedelta(minutes=50))
    drill = texts(card_of(render_card(base)))
    assert drill[0].startswith("🚨 \\[DRILL\\] HIGH")
    assert any("**DRILL**: this is a test alert" in t for t in drill)
    resolved = texts(card_of(render_card(replace(base, kind="resolved"))))
    assert "✅ **All clear.** Resolved after 50m." in resolved
    acked = replace(base, kind="acknowledged", ack=Ack("dana", base.at, "drafting a statement"))
    shown = texts(card_of(render_card(acked)))
    assert "Status: Acknowledged by dana" in shown
    assert "👀 **dana** acknowledged: “drafting a statement”" in shown


def test_untrusted_text_cannot_format_link_or_ping() -> None:
    """Mention text, authors and URLs are escaped; only http(s) URLs become links or buttons."""
    junk = MentionRef(
        "x",
        "m3",
        HOSTILE_TEXT,
        "javascript:alert(1)",
        "[x](https://evil)",
        1,
        sample_alert().at,
        -0.5,
    )
    odd = replace(junk, id="m4", url="https://ok.example/a(b)c<d>")
    alert = sample_alert(top_mentions=(junk, odd), summary=HOSTILE_TEXT, facts=(Fact("*x*", 1),))
    message = render_card(alert, "javascript:alert(1)")
    dumped = json.dumps(message, ensure_ascii=False)
    assert "javascript:" not in dumped
    assert "[click](https://evil.example)" not in dumped
    assert "\\\\[click\\\\]" in dumped  # escaped in the JSON text
    assert "@\u200beveryone" in dumped
    assert "\\\\<@123\\\\>" in dumped
    assert "\\\\*\\\\*bold\\\\*\\\\*" in dumped
    assert "\\\\`code\\\\`" in dumped
    card = card_of(message)
    assert [a["url"] for a in card["actions"]] == ["https://ok.example/a(b)c<d>"]
    assert any("[open](https://ok.example/a%28b%29c%3Cd%3E)" in t for t in texts(card))


def test_esc_escapes_markdown_and_cuts() -> None:
    """esc() escapes before cutting nothing in half and keeps to one line."""
    assert esc("a_b*c [d](e) <f> `g` ~h \\ i") == "a\\_b\\*c \\[d\\](e) \\<f\\> \\`g\\` \\~h \\\\ i"
    assert esc("line\nbreak\x1b[31m") == "line break \\[31m"
    assert esc("x" * 50, 10) == "x" * 9 + "…"


def test_a_huge_alert_stays_under_the_teams_limit() -> None:
    """Long texts are cut, lists capped, and sections dropped (with a note) to stay under 28 KB."""
    at = sample_alert().at
    mentions = tuple(
        MentionRef(
            "x", f"m{i}", "*" * 5000, f"https://x.example/{i}/" + "a" * 900, "a" * 500, 10, at, -1.0
        )
        for i in range(40)
    )
    facts = tuple(Fact("f" * 900 + str(i), 1.5, 2, 3) for i in range(40))
    alert = sample_alert(
        top_mentions=mentions,
        facts=facts,
        summary="_" * 10_000,
        rule="r" * 3000,
        explanation=replace(sample_explanation(), drivers=sample_explanation().drivers * 20),
        categories=tuple((f"c{i}" * 50, i) for i in range(50)),
        route=tuple("route" * 40 for _ in range(20)),
    )
    message = render_card(alert)
    assert payload_size(message) <= MAX_PAYLOAD
    assert problems(message) == []
    card = card_of(message)
    assert len(card["actions"]) <= 6
    assert (
        sum(1 for t in texts(card) if t.startswith(("1. ", "2. ", "3. ", "4. ", "5. ", "6. "))) <= 5
    )
    assert texts(card)[-1] == "Some details were left out to fit Teams' message size."


def test_the_digest_card_lists_each_brand() -> None:
    """Title, span, each brand's lines and stories with http(s) links only; a console button."""
    message = render_digest_card(sample_digest(3, hostile=True), CONSOLE)
    assert problems(message) == []
    card = card_of(message)
    shown = texts(card)
    assert shown[:2] == [
        "Daily digest · Mon 07 Dec 2026",
        "Sun 06 Dec 08:00 – Mon 07 Dec 08:00 (UTC)",
    ]
    assert "Acme" in shown
    assert "• 20 mentions (▲ 100% on the day before: 10)" in shown
    assert "• 45% negative (9) (▲ 25 pts from 20%)" in shown
    assert any(
        t.startswith("   ◦ crisis · surge · opened Sun 09:00 · acknowledged by ana") for t in shown
    )
    assert any(
        t.startswith("1. “Acme outage") and "[open](https://news.example/acme-outage)" in t
        for t in shown
    )
    dumped = json.dumps(message, ensure_ascii=False)
    assert "javascript:" not in dumped
    assert "@\u200beveryone" in dumped
    assert "Brand 2" in shown
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open the console", "url": CONSOLE}
    ]


def test_a_digest_of_many_brands_is_cut_with_a_note() -> None:
    """More brands than fit are counted, not sent."""
    message = render_digest_card(sample_digest(60))
    assert payload_size(message) <= MAX_PAYLOAD
    assert texts(card_of(message))[-1] == "…and 40 more brands (see the console or email digest)"


# --------------------------------------------------------------------------- against the fake


async def test_send_posts_the_card_and_teams_accepts_it(
    teams: FakeTeams, make_sink: MakeSink
) -> None:
    """One POST of JSON to the workflow URL (query kept), answered 202."""
    await make_sink(console_url=CONSOLE).send(
        sample_alert(explanation=sample_explanation()), "alert-0001"
    )
    [request] = teams.requests
    assert (request.method, request.status) == ("POST", 202)
    assert f"sig={SIG}" in request.query
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("listener/")
    [card] = teams.cards
    assert card["body"][0]["text"] == "🚨 HIGH: Acme — negative-spike"


async def test_a_legacy_connector_answer_is_success(make_sink: MakeSink) -> None:
    """An Office 365 connector's 200 "1" is a delivery."""
    with FakeTeams(legacy=True) as legacy:
        await make_sink(legacy.webhook_url).send(sample_alert(), "k")
        assert [r.status for r in legacy.requests] == [200]


async def test_a_repeated_key_is_not_posted_twice(
    teams: FakeTeams, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """The done marker keeps a retry, even by a sink built after a restart, from posting again."""
    alert = sample_alert()
    await make_sink().send(alert, alert.id)
    await make_sink().send(alert, alert.id)
    assert len(teams.cards) == 1
    assert state.get(f"done:{alert.id}") is not None
    await make_sink().send(replace(alert, id="alert-0002"), "alert-0002")
    assert len(teams.cards) == 2


async def test_429_is_retryable_with_retry_after(
    teams: FakeTeams, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """A throttled post raises SinkUnavailable with Retry-After and is not marked done."""
    teams.throttle(retry_after="30")
    sink = make_sink()
    with pytest.raises(SinkUnavailable) as info:
        await sink.send(sample_alert(), "k")
    assert info.value.retry_after == 30.0
    assert str(info.value) == "teams sink 'ops': HTTP 429"
    assert_no_secret(info.value)
    assert state.get("done:k") is None
    await sink.send(sample_alert(), "k")
    assert len(teams.cards) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retryable(
    teams: FakeTeams, make_sink: MakeSink, status: int
) -> None:
    """5xx and 408 raise SinkUnavailable."""
    teams.respond(status)
    with pytest.raises(SinkUnavailable, match=f"HTTP {status}") as info:
        await make_sink().send(sample_alert(), "k")
    assert_no_secret(info.value)


async def test_400_is_rejected_with_teams_reason(teams: FakeTeams, make_sink: MakeSink) -> None:
    """A 400 raises SinkRejected with Teams' text, the URL's secrets cut out."""
    teams.reject(f"Bad payload received by generic incoming webhook. sig={SIG}")
    with pytest.raises(SinkRejected) as info:
        await make_sink().send(sample_alert(), "k")
    message = str(info.value)
    assert message.startswith(
        "teams sink 'ops': HTTP 400 (Bad payload received by generic incoming webhook."
    )
    assert "<redacted>" in message
    assert_no_secret(info.value)


async def test_workflow_errors_are_rejected_with_their_code(
    make_sink: MakeSink, teams: FakeTeams
) -> None:
    """A wrong signature (401, the Workflows JSON error) is rejected, naming the code only."""
    with pytest.raises(SinkRejected) as info:
        await make_sink(teams.webhook_url.replace(SIG, "wrong" + SIG[5:])).send(sample_alert(), "k")
    assert "HTTP 401 (DirectApiAuthorizationRequired: The request must be authenticated" in str(
        info.value
    )
    assert_no_secret(info.value)


async def test_a_failed_delivery_reported_with_200_is_not_a_success(
    teams: FakeTeams, make_sink: MakeSink
) -> None:
    """A connector's 200 saying Teams refused (429) is retryable; another refusal is rejected."""
    text = (
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
        "HTTP error 429 with ContextId tcid=0"
    )
    teams.script(
        Answer(200, {}, text.encode()),
        Answer(200, {}, b"Webhook message delivery failed with error: Forbidden"),
    )
    sink = make_sink()
    with pytest.raises(SinkUnavailable, match="HTTP 200"):
        await sink.send(sample_alert(), "k")
    with pytest.raises(SinkRejected, match="Forbidden"):
        await sink.send(sample_alert(), "k")


async def test_transport_errors_are_unavailable_without_the_url(make_sink: MakeSink) -> None:
    """A refused connection and a timeout raise SinkUnavailable without any secret."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}/workflows/{WORKFLOW_ID}/triggers?sig={SIG}"
    with pytest.raises(SinkUnavailable, match="connection failed") as info:
        await make_sink(url).send(sample_alert(), "k")
    assert_no_secret(info.value)

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timeout reading {request.url}", request=request)

    config = TeamsSinkConfig.model_validate({"type": "teams", "url": url, "timeout": 0.5})
    sink = TeamsSink("ops", config, transport=httpx.MockTransport(broken))
    try:
        with pytest.raises(SinkUnavailable, match=r"timed out after 0\.5s") as info:
            await sink.send(sample_alert(), "k")
    finally:
        await sink.aclose()
    assert_no_secret(info.value)


async def test_send_test_posts_a_labelled_test_card(teams: FakeTeams, make_sink: MakeSink) -> None:
    """send_test() posts a drill card that says it is a test, every time."""
    sink = make_sink()
    await sink.send_test()
    await sink.send_test()
    first = teams.cards[0]
    assert first["body"][0]["text"].startswith("🚨 \\[DRILL\\] TEST: listener — check --deep")
    assert len(teams.cards) == 2


async def test_healthcheck_posts_nothing(teams: FakeTeams, make_sink: MakeSink) -> None:
    """healthcheck() sends OPTIONS only; an unreachable URL raises SinkError."""
    await make_sink().healthcheck()
    assert [r.method for r in teams.requests] == ["OPTIONS"]
    port = closed_port()
    with pytest.raises(SinkError):
        await make_sink(f"http://127.0.0.1:{port}/x").healthcheck()


async def test_send_digest_posts_once(teams: FakeTeams, make_sink: MakeSink) -> None:
    """A digest is one card; the same key again posts nothing."""
    digest = sample_digest()
    sink = make_sink(console_url=CONSOLE)
    await sink.send_digest(digest, digest.id)
    await sink.send_digest(digest, digest.id)
    [card] = teams.cards
    assert card["body"][0]["text"] == "Daily digest · Mon 07 Dec 2026"


async def test_the_registry_builds_it_with_its_capabilities(
    teams: FakeTeams, clock: ManualClock
) -> None:
    """build_sink gives a TeamsSink that is a Sink, SendsTest and SendsDigest."""
    config = TeamsSinkConfig.model_validate({"type": "teams", "url": teams.webhook_url})
    sink = build_sink("ops", config, SinkContext(clock=clock))
    try:
        assert isinstance(sink, TeamsSink)
        assert isinstance(sink, Sink)
        assert isinstance(sink, SendsTest)
        assert isinstance(sink, SendsDigest)
    finally:
        await sink.aclose()


def test_the_config_masks_the_url() -> None:
    """The URL is a secret: repr and dumps do not show it."""
    config = TeamsSinkConfig.model_validate(
        {"type": "teams", "url": f"https://x.example/w?sig={SIG}"}
    )
    assert SIG not in repr(config)
    assert SIG not in str(config.model_dump())
