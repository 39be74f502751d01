"""The Telegram sink against a loopback Bot API: posts, done-markers, errors, the token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from listener.clock import ManualClock
from listener.config.schema import TelegramSinkConfig
from listener.errors import SinkError, SinkRejected, SinkUnavailable
from listener.sinks import build_sink
from listener.sinks.base import MemorySinkState, SendsDigest, SendsTest, Sink, SinkContext
from listener.sinks.telegram import TelegramSink
from tests.support.fake_telegram import CHAT_ID, TOKEN, FakeTelegram, error
from tests.support.receiver import sample_alert
from tests.support.sink_checks import assert_no_secret, closed_port_url
from tests.unit.test_telegram_render import sample_digest

MakeSink = Callable[..., TelegramSink]


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    """A loopback Bot API."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def state() -> MemorySinkState:
    return MemorySinkState()


@pytest.fixture
async def make_sink(clock: ManualClock, state: MemorySinkState) -> AsyncIterator[MakeSink]:
    """Build Telegram sinks (closed at teardown) sharing one durable state."""
    sinks: list[TelegramSink] = []

    def make(
        api_url: str, *, transport: httpx.AsyncBaseTransport | None = None, **fields: Any
    ) -> TelegramSink:
        config = TelegramSinkConfig.model_validate(
            {
                "type": "telegram",
                "token": TOKEN,
                "chat_id": CHAT_ID,
                "api_url": api_url,
                "timeout": timedelta(seconds=5),
                **fields,
            }
        )
        sink = TelegramSink(
            "tg", config, context=SinkContext(state=state, clock=clock), transport=transport
        )
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


async def test_an_alert_is_posted_as_html_to_the_chat(
    telegram: FakeTelegram, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """sendMessage with the chat, HTML mode and no link preview; Telegram accepts it."""
    alert = sample_alert()
    await make_sink(telegram.url).send(alert, alert.id)
    [call] = telegram.calls
    assert (call.method, call.path, call.status) == ("POST", f"/bot{TOKEN}/sendMessage", 200)
    assert call.headers["content-type"] == "application/json"
    assert call.headers["user-agent"].startswith("listener/")
    [message] = telegram.messages
    assert message.params["chat_id"] == CHAT_ID
    assert message.params["parse_mode"] == "HTML"
    assert message.params["disable_web_page_preview"] is True
    assert "message_thread_id" not in message.params
    assert "disable_notification" not in message.params
    assert message.text.startswith("🚨 HIGH: Acme — negative-spike")
    assert state.values == {f"done:{alert.id}": "1"}


async def test_a_second_send_with_the_same_key_posts_nothing(
    telegram: FakeTelegram, make_sink: MakeSink
) -> None:
    """The done-marker (durable state) stops a retry of an accepted alert, even from a
    new sink instance (a restart); another key posts."""
    alert = sample_alert()
    await make_sink(telegram.url).send(alert, alert.id)
    await make_sink(telegram.url).send(alert, alert.id)
    await make_sink(telegram.url).send(sample_alert(id="alert-0002"), "alert-0002")
    assert [m.message_id for m in telegram.messages] == [1, 2]


async def test_429_waits_for_telegrams_retry_after_then_posts(
    telegram: FakeTelegram, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """parameters.retry_after sets retry_after; nothing is marked done until accepted."""
    telegram.respond(429, retry_after=5)
    sink = make_sink(telegram.url)
    with pytest.raises(SinkUnavailable) as info:
        await sink.send(sample_alert(), "k")
    assert info.value.retry_after == 5.0
    assert str(info.value) == (
        "telegram sink 'tg': sendMessage: HTTP 429 (Too Many Requests: retry after 5)"
    )
    assert_no_secret(info.value, TOKEN)
    assert state.values == {}
    await sink.send(sample_alert(), "k")
    assert len(telegram.messages) == 1


async def test_429_without_parameters_uses_the_retry_after_header(
    telegram: FakeTelegram, make_sink: MakeSink
) -> None:
    """A 429 whose body has no parameters falls back to the Retry-After header."""
    telegram.respond(429, body=error(429, "Too Many Requests"), headers={"Retry-After": "7"})
    with pytest.raises(SinkUnavailable) as info:
        await make_sink(telegram.url).send(sample_alert(), "k")
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retried(
    telegram: FakeTelegram, make_sink: MakeSink, status: int
) -> None:
    """5xx and 408 are retryable; the retry posts once."""
    telegram.respond(status, body=error(status, "Internal Server Error"))
    sink = make_sink(telegram.url)
    with pytest.raises(SinkUnavailable, match=f"sendMessage: HTTP {status}") as info:
        await sink.send(sample_alert(), "k")
    assert_no_secret(info.value, TOKEN)
    await sink.send(sample_alert(), "k")
    assert len(telegram.messages) == 1


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (400, "HTTP 400 (Bad Request: chat not found)"),
        (401, "HTTP 401 (Unauthorized); the bot token is wrong or was revoked"),
        (403, "HTTP 403 (Forbidden: bot was blocked by the user); add the bot to the chat"),
        (404, "HTTP 404 (Not Found)"),
    ],
)
async def test_client_errors_are_rejected_with_telegrams_words(
    telegram: FakeTelegram, make_sink: MakeSink, status: int, words: str
) -> None:
    """400, 401, 403 and other 4xx are not retried; the error says why, not the token."""
    telegram.respond(status)
    with pytest.raises(SinkRejected) as info:
        await make_sink(telegram.url).send(sample_alert(), "k")
    assert f"telegram sink 'tg': sendMessage: {words}" in str(info.value)
    assert not info.value.retryable
    assert_no_secret(info.value, TOKEN)


async def test_the_real_checks_refuse_an_unknown_chat_and_a_wrong_token(
    telegram: FakeTelegram, make_sink: MakeSink
) -> None:
    """Against the fake's own checks: chat not found (400), Unauthorized (401)."""
    with pytest.raises(SinkRejected, match="chat not found"):
        await make_sink(telegram.url, chat_id="@nobody_here").send(sample_alert(), "k")
    wrong = make_sink(telegram.url, token="999:wrongSECRET")
    with pytest.raises(SinkRejected, match="HTTP 401") as info:
        await wrong.send(sample_alert(), "k")
    assert "999:wrong" not in str(info.value)
    with pytest.raises(SinkRejected, match="getMe: HTTP 401"):
        await wrong.healthcheck()


async def test_an_echoed_token_and_a_moved_group_in_an_answer(
    telegram: FakeTelegram, make_sink: MakeSink
) -> None:
    """A description quoting the token is scrubbed; migrate_to_chat_id says what to set."""
    telegram.respond(400, body=error(400, f"Bad Request: bot{TOKEN} is odd"))
    with pytest.raises(SinkRejected, match="<token> is odd") as info:
        await make_sink(telegram.url).send(sample_alert(), "k")
    assert_no_secret(info.value, TOKEN)
    telegram.respond(
        400,
        body=error(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            migrate_to_chat_id=-1009876543210,
        ),
    )
    with pytest.raises(SinkRejected, match="set chat_id: -1009876543210"):
        await make_sink(telegram.url).send(sample_alert(), "k")


async def test_ok_false_in_a_2xx_answer_is_rejected(
    telegram: FakeTelegram, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """A 200 whose body says ok: false is not a delivery."""
    telegram.respond(200, body={"ok": False, "description": "odd"})
    with pytest.raises(SinkRejected, match=r"sendMessage: not ok \(odd\)"):
        await make_sink(telegram.url).send(sample_alert(), "k")
    assert state.values == {}


async def test_network_errors_never_show_the_token(make_sink: MakeSink) -> None:
    """A refused connection and a timeout are retryable and name the method only."""
    with pytest.raises(SinkUnavailable, match="sendMessage: connection failed") as info:
        await make_sink(closed_port_url()).send(sample_alert(), "k")
    assert_no_secret(info.value, TOKEN)

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timeout reading {request.url}", request=request)

    sink = make_sink("https://api.telegram.example", transport=httpx.MockTransport(broken))
    with pytest.raises(SinkUnavailable, match="timed out") as info:
        await sink.send(sample_alert(), "k")
    assert_no_secret(info.value, TOKEN)


async def test_forum_topic_and_silent_levels(telegram: FakeTelegram, make_sink: MakeSink) -> None:
    """message_thread_id goes with every message; silent levels arrive without a sound."""
    sink = make_sink(telegram.url, message_thread_id=42, silent_levels=["watch"])
    await sink.send(sample_alert(level="watch"), "a")
    await sink.send(sample_alert(level="crisis"), "b")
    quiet, loud = telegram.messages
    assert quiet.params["message_thread_id"] == loud.params["message_thread_id"] == 42
    assert quiet.params["disable_notification"] is True
    assert "disable_notification" not in loud.params


async def test_a_channel_name_is_a_chat_id(telegram: FakeTelegram, make_sink: MakeSink) -> None:
    """chat_id "@acme_alerts" is sent as the string; "-100…" as a number."""
    await make_sink(telegram.url, chat_id="@acme_alerts").send(sample_alert(), "a")
    await make_sink(telegram.url, chat_id=str(CHAT_ID)).send(sample_alert(), "b")
    assert [m.params["chat_id"] for m in telegram.messages] == ["@acme_alerts", CHAT_ID]


async def test_send_test_posts_a_labelled_drill_every_time(
    telegram: FakeTelegram, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """send_test() posts a drill that says it is a test; no done-marker, so each deep
    check posts again."""
    sink = make_sink(telegram.url)
    await sink.send_test()
    await sink.send_test()
    first, second = telegram.messages
    assert first.text.startswith("🚨 [DRILL] TEST: listener — check --deep")
    assert "test alert from 'listener check --deep' for sink 'tg'" in first.text
    assert second.text == first.text
    assert state.values == {}


async def test_healthcheck_calls_get_me(telegram: FakeTelegram, make_sink: MakeSink) -> None:
    """healthcheck() is getMe (posts nothing); unreachable raises SinkUnavailable."""
    await make_sink(telegram.url).healthcheck()
    assert [(c.method, c.path) for c in telegram.calls] == [("GET", f"/bot{TOKEN}/getMe")]
    assert telegram.messages == []
    with pytest.raises(SinkError):
        await make_sink(closed_port_url()).healthcheck()


async def test_a_digest_is_posted_once(telegram: FakeTelegram, make_sink: MakeSink) -> None:
    """send_digest posts the digest text; the same key again posts nothing."""
    sink = make_sink(telegram.url)
    digest = sample_digest()
    await sink.send_digest(digest, digest.id)
    await sink.send_digest(digest, digest.id)
    [message] = telegram.messages
    assert message.text.startswith("📊 Daily digest")


async def test_the_registry_builds_it_with_its_capabilities() -> None:
    """type: telegram builds a Sink that sends tests and digests."""
    config = TelegramSinkConfig.model_validate(
        {"type": "telegram", "token": TOKEN, "chat_id": CHAT_ID}
    )
    sink = build_sink("tg", config, SinkContext())
    assert isinstance(sink, TelegramSink)
    assert isinstance(sink, Sink)
    assert isinstance(sink, SendsTest)
    assert isinstance(sink, SendsDigest)
    await sink.aclose()
