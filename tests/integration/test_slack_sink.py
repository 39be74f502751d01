"""The Slack sink against the loopback fake Slack: threading, updates, crashes, errors."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from listener.clock import ManualClock
from listener.config.schema import SlackSinkConfig
from listener.errors import SinkError, SinkRejected, SinkUnavailable
from listener.model import Ack, Alert, AlertKind
from listener.sinks import build_sink
from listener.sinks.base import MemorySinkState, SinkContext
from listener.sinks.slack import REPLY_EVENT, TEST_TEXT, SlackSink, render_blocks
from tests.support.fake_slack import CHANNEL_ID, FakeSlack
from tests.support.receiver import sample_alert

MakeSink = Callable[..., SlackSink]
INCIDENT = "inc-0001"


@pytest.fixture
def slack(clock: ManualClock) -> Iterator[FakeSlack]:
    """A loopback fake Slack whose message ts follow the test clock."""
    with FakeSlack(clock=clock) as fake:
        yield fake


@pytest.fixture
def state() -> MemorySinkState:
    """The sink's durable state, shared by every sink a test builds (a restart)."""
    return MemorySinkState()


@pytest.fixture
async def make_sink(
    slack: FakeSlack, state: MemorySinkState, clock: ManualClock
) -> AsyncIterator[MakeSink]:
    """Build Slack sinks over the shared state (closed at teardown): Web API mode by
    default, ``webhook=True`` for an incoming webhook, other config keys as keywords."""
    sinks: list[SlackSink] = []

    def make(*, webhook: bool = False, **overrides: Any) -> SlackSink:
        if webhook:
            block: dict[str, Any] = {"webhook_url": slack.webhook_url()}
        else:
            block = {"token": slack.token, "channel": CHANNEL_ID, "api_url": slack.api_url}
        block = {"type": "slack", "timeout": timedelta(seconds=5), **block, **overrides}
        config = SlackSinkConfig.model_validate(block)
        sink = SlackSink("team", config, context=SinkContext(state, clock))
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


def alert(n: int, kind: AlertKind, level: str = "high", **changes: Any) -> Alert:
    """The n-th alert of the test incident."""
    return sample_alert(id=f"{INCIDENT}#{n}", kind=kind, level=level, **changes)


async def send(sink: SlackSink, a: Alert) -> None:
    await sink.send(a, a.id)


def parent_of(slack: FakeSlack) -> dict[str, Any]:
    [parent] = slack.messages()
    return parent


def header(message: dict[str, Any]) -> str:
    return str(message["blocks"][0]["text"]["text"])


def reply_ids(slack: FakeSlack, ts: str) -> list[str]:
    return [r["metadata"]["event_payload"]["alert_id"] for r in slack.replies(ts)]


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


# --------------------------------------------------------------------------- threading


async def test_opened_posts_one_parent_with_metadata(
    make_sink: MakeSink, slack: FakeSlack, state: MemorySinkState
) -> None:
    """The first alert posts one parent carrying the incident and alert ids; its ts is kept."""
    await send(make_sink(), alert(1, "opened"))
    parent = parent_of(slack)
    assert parent["metadata"]["event_type"] == "listener_incident"
    assert parent["metadata"]["event_payload"]["incident_id"] == INCIDENT
    assert parent["metadata"]["event_payload"]["alert_id"] == f"{INCIDENT}#1"
    assert header(parent).startswith("🚨 HIGH: Acme")
    assert parent["ts"] in (state.get(f"ts:{INCIDENT}") or "")
    assert slack.replies(parent["ts"]) == []


async def test_escalation_updates_the_parent_and_replies_in_its_thread(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """A later alert edits the same parent in place and adds one thread reply."""
    sink = make_sink()
    await send(sink, alert(1, "opened"))
    await send(sink, alert(2, "escalated", "crisis", previous_level="high"))
    parent = parent_of(slack)
    assert "edited" in parent
    assert header(parent).startswith("⏫ ESCALATED to CRISIS")
    assert parent["attachments"][0]["color"] == "#D0021B"
    [reply] = slack.replies(parent["ts"])
    assert reply["text"].startswith("⏫ *Escalated* to 🔴 *CRISIS* (was high)")
    assert reply["metadata"]["event_type"] == REPLY_EVENT
    assert reply["metadata"]["event_payload"]["alert_id"] == f"{INCIDENT}#2"
    assert reply["subtype"] == "thread_broadcast"  # an escalation is also shown in the channel
    assert parent["metadata"]["event_payload"]["alert_id"] == f"{INCIDENT}#1"


async def test_acknowledged_shows_who_is_on_it(make_sink: MakeSink, slack: FakeSlack) -> None:
    """The acknowledgement names who took it, on the parent and in the thread."""
    sink = make_sink()
    await send(sink, alert(1, "opened"))
    ack = Ack("Dana", sample_alert().at, "talking to support")
    await send(sink, alert(2, "acknowledged", ack=ack))
    parent = parent_of(slack)
    fields = parent["blocks"][-1]["fields"]
    assert any(f["text"].startswith("*On it*\n*Dana* since") for f in fields)
    [reply] = slack.replies(parent["ts"])
    assert reply["text"] == "👀 Acknowledged by *Dana*: “talking to support”"
    assert "subtype" not in reply


async def test_resolved_turns_the_parent_into_the_all_clear(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """The resolved alert makes the parent the all-clear and says so in the thread."""
    sink = make_sink()
    await send(sink, alert(1, "opened"))
    await send(sink, alert(2, "escalated", "crisis", previous_level="high"))
    await send(sink, alert(3, "resolved", "crisis"))
    parent = parent_of(slack)
    assert header(parent).startswith("✅ RESOLVED: Acme")
    assert parent["attachments"][0]["color"] == "#2EB67D"
    assert "All clear." in str(parent["blocks"])
    assert reply_ids(slack, parent["ts"]) == [f"{INCIDENT}#2", f"{INCIDENT}#3"]
    assert slack.replies(parent["ts"])[-1]["text"].startswith("✅ *All clear*")


async def test_a_restart_continues_the_same_thread(make_sink: MakeSink, slack: FakeSlack) -> None:
    """A new sink over the same state updates the same parent and threads under it."""
    await send(make_sink(), alert(1, "opened"))
    await send(make_sink(), alert(2, "escalated", "crisis"))
    parent = parent_of(slack)
    assert reply_ids(slack, parent["ts"]) == [f"{INCIDENT}#2"]
    assert slack.methods().count("conversations.history") == 1  # before the first post only


async def test_two_incidents_get_two_parents(make_sink: MakeSink, slack: FakeSlack) -> None:
    """Each incident has its own parent message and thread."""
    sink = make_sink()
    await send(sink, alert(1, "opened"))
    await send(sink, sample_alert(id="other#1", incident_id="other"))
    await send(sink, alert(2, "escalated"))
    first, second = slack.messages()
    assert reply_ids(slack, first["ts"]) == [f"{INCIDENT}#2"]
    assert slack.replies(second["ts"]) == []


async def test_a_channel_name_is_resolved_to_its_id(
    make_sink: MakeSink, slack: FakeSlack, state: MemorySinkState
) -> None:
    """With the channel given by name, updates and threads use the id Slack answered."""
    sink = make_sink(channel="#alerts")
    await send(sink, alert(1, "opened"))
    await send(sink, alert(2, "escalated"))
    assert state.get("channel:#alerts") == CHANNEL_ID
    assert reply_ids(slack, parent_of(slack)["ts"]) == [f"{INCIDENT}#2"]


async def test_mentions_go_with_the_levels_that_notify(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """The level's mention leads the parent and an escalation reply, not a de-escalation."""
    sink = make_sink(mentions={"crisis": "<!subteam^S0123>"})
    await send(sink, alert(1, "opened", "crisis"))
    await send(sink, alert(2, "escalated", "crisis"))
    await send(sink, alert(3, "deescalated", "crisis"))
    parent = parent_of(slack)
    escalated, deescalated = slack.replies(parent["ts"])
    assert escalated["text"].startswith("<!subteam^S0123> ")
    assert "subteam" not in deescalated["text"]


async def test_a_deleted_parent_is_posted_again(make_sink: MakeSink, slack: FakeSlack) -> None:
    """When someone deleted the parent, the next alert posts a new one."""
    sink = make_sink()
    await send(sink, alert(1, "opened"))
    slack.delete_message(parent_of(slack)["ts"])
    await send(sink, alert(2, "escalated", "crisis"))
    parent = parent_of(slack)
    assert parent["metadata"]["event_payload"]["alert_id"] == f"{INCIDENT}#2"
    assert header(parent).startswith("⏫ ESCALATED")


# --------------------------------------------------------------------------- idempotency


async def test_a_repeated_alert_is_not_posted_twice(make_sink: MakeSink, slack: FakeSlack) -> None:
    """Sending an alert id again (a retry, a restart) calls Slack no more."""
    sink = make_sink()
    opened, escalated = alert(1, "opened"), alert(2, "escalated")
    await send(sink, opened)
    await send(sink, escalated)
    calls = len(slack.calls)
    await send(sink, opened)
    await send(make_sink(), escalated)
    assert len(slack.calls) == calls
    parent = parent_of(slack)
    assert reply_ids(slack, parent["ts"]) == [f"{INCIDENT}#2"]


async def test_a_lost_answer_to_the_parent_post_adopts_it_after_a_restart(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """Slack posted the parent but the answer was lost (a crash): the retry finds it."""
    slack.drop_after("chat.postMessage")
    with pytest.raises(SinkUnavailable):
        await send(make_sink(), alert(1, "opened"))
    assert len(slack.messages()) == 1
    await send(make_sink(), alert(1, "opened"))
    await send(make_sink(), alert(2, "escalated"))
    parent = parent_of(slack)
    assert reply_ids(slack, parent["ts"]) == [f"{INCIDENT}#2"]
    assert slack.methods().count("conversations.history") == 2  # first post, recovery


async def test_a_crash_before_the_ts_was_stored_adopts_the_parent_via_history(
    make_sink: MakeSink, slack: FakeSlack, state: MemorySinkState
) -> None:
    """With the stored ts gone, the next alert adopts the existing parent, not a second."""
    await send(make_sink(), alert(1, "opened"))
    state.delete(f"ts:{INCIDENT}")
    await send(make_sink(), alert(2, "escalated", "crisis"))
    parent = parent_of(slack)
    assert header(parent).startswith("⏫ ESCALATED")
    assert reply_ids(slack, parent["ts"]) == [f"{INCIDENT}#2"]
    assert state.get(f"ts:{INCIDENT}") is not None


async def test_a_lost_ts_and_done_marker_do_not_repost_the_opening(
    make_sink: MakeSink, slack: FakeSlack, state: MemorySinkState
) -> None:
    """Resending the opening alert with all its state gone adopts its own parent."""
    await send(make_sink(), alert(1, "opened"))
    state.values.clear()
    await send(make_sink(), alert(1, "opened"))
    parent = parent_of(slack)
    assert slack.replies(parent["ts"]) == []


async def test_a_lost_answer_to_a_thread_reply_is_not_posted_again(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """Slack posted the reply but the answer was lost: the retry finds it in the thread."""
    await send(make_sink(), alert(1, "opened"))
    slack.drop_after("chat.postMessage")
    with pytest.raises(SinkUnavailable):
        await send(make_sink(), alert(2, "escalated"))
    await send(make_sink(), alert(2, "escalated"))
    parent = parent_of(slack)
    assert reply_ids(slack, parent["ts"]) == [f"{INCIDENT}#2"]
    assert slack.methods().count("conversations.replies") == 1


async def test_a_required_look_up_that_is_rate_limited_is_retried_later(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """After a possibly-posted parent, a 429 on the look-up waits instead of reposting."""
    slack.drop_after("chat.postMessage")
    with pytest.raises(SinkUnavailable):
        await send(make_sink(), alert(1, "opened"))
    slack.rate_limit(method="conversations.history", retry_after="30")
    with pytest.raises(SinkUnavailable) as info:
        await send(make_sink(), alert(1, "opened"))
    assert info.value.retry_after == 30
    assert len(slack.messages()) == 1


async def test_a_best_effort_look_up_that_is_refused_still_posts(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """Without history scope (or rate-limited), a fresh incident is posted anyway."""
    slack.fail(error="missing_scope", method="conversations.history")
    await send(make_sink(), alert(1, "opened"))
    slack.rate_limit(method="conversations.history")
    await send(make_sink(), sample_alert(id="b#1", incident_id="b"))
    assert len(slack.messages()) == 2


# --------------------------------------------------------------------------- errors


async def test_429_is_unavailable_with_retry_after_and_no_sdk_retry(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """A 429 gives SinkUnavailable with Retry-After's seconds; the SDK does not retry."""
    slack.rate_limit(retry_after="7", method="chat.postMessage")
    with pytest.raises(SinkUnavailable) as info:
        await send(make_sink(), alert(1, "opened"))
    assert info.value.retry_after == 7
    assert info.value.retryable
    assert slack.methods().count("chat.postMessage") == 1


async def test_429_without_retry_after_leaves_it_to_the_backoff(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """A 429 with no Retry-After is retryable with no retry_after."""
    slack.rate_limit(retry_after=None, method="chat.postMessage")
    with pytest.raises(SinkUnavailable) as info:
        await send(make_sink(), alert(1, "opened"))
    assert info.value.retry_after is None


async def test_invalid_auth_is_rejected(make_sink: MakeSink) -> None:
    """A wrong token is a SinkRejected naming invalid_auth."""
    sink = make_sink(token="xoxb-wrong")
    with pytest.raises(SinkRejected, match="invalid_auth"):
        await send(sink, alert(1, "opened"))
    with pytest.raises(SinkRejected, match="invalid_auth"):
        await sink.healthcheck()


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "invalid_blocks"])
async def test_slack_errors_that_retrying_cannot_fix_are_rejected(
    make_sink: MakeSink, slack: FakeSlack, error: str
) -> None:
    """Channel and payload errors are SinkRejected naming Slack's code."""
    slack.fail(error=error, method="chat.postMessage")
    with pytest.raises(SinkRejected, match=error):
        await send(make_sink(), alert(1, "opened"))


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unavailable(
    make_sink: MakeSink, slack: FakeSlack, status: int
) -> None:
    """A 5xx from Slack is retryable."""
    slack.fail(status, method="chat.postMessage")
    with pytest.raises(SinkUnavailable):
        await send(make_sink(), alert(1, "opened"))


async def test_a_failed_update_is_retryable_and_the_retry_completes(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """A 503 on chat.update fails the alert for now; the retry updates and replies once."""
    sink = make_sink()
    await send(sink, alert(1, "opened"))
    slack.fail(503, method="chat.update")
    with pytest.raises(SinkUnavailable):
        await send(sink, alert(2, "escalated"))
    await send(sink, alert(2, "escalated"))
    assert reply_ids(slack, parent_of(slack)["ts"]) == [f"{INCIDENT}#2"]


async def test_a_stalled_slack_times_out_as_unavailable(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """No answer within the timeout is SinkUnavailable."""
    slack.stall(seconds=10, method="chat.postMessage")
    with pytest.raises(SinkUnavailable, match="timed out"):
        await send(make_sink(timeout=timedelta(seconds=0.3)), alert(1, "opened"))


async def test_a_refused_connection_is_unavailable(make_sink: MakeSink) -> None:
    """Nothing listening at the API URL is SinkUnavailable."""
    with pytest.raises(SinkUnavailable, match="transport error"):
        await send(make_sink(api_url=refused_url()), alert(1, "opened"))


async def test_no_secret_in_any_error(make_sink: MakeSink, slack: FakeSlack) -> None:
    """Neither the token nor the webhook URL appears in any error or its chain."""
    errors: list[SinkError] = []
    scenarios: list[tuple[Callable[[], None], SlackSink]] = [
        (lambda: slack.fail(503), make_sink()),
        (lambda: slack.rate_limit(method="chat.postMessage"), make_sink()),
        (lambda: slack.fail(error="channel_not_found"), make_sink()),
        (lambda: None, make_sink(token="xoxb-wrong-s3cret")),
        (lambda: None, make_sink(api_url=refused_url())),
        (lambda: slack.fail(404, method="webhook", error="no_service"), make_sink(webhook=True)),
        (lambda: slack.fail(500, method="webhook"), make_sink(webhook=True)),
        (lambda: None, make_sink(webhook=True, webhook_url=refused_url() + "T/B/s3cret")),
    ]
    for n, (arrange, sink) in enumerate(scenarios):
        arrange()
        with pytest.raises(SinkError) as info:
            await sink.send(sample_alert(id=f"x#{n}", incident_id=f"x{n}"), f"x#{n}")
        errors.append(info.value)
    for error in errors:
        text = f"{error} {error!r} {error.__cause__!r}"
        for secret in (slack.token, "xoxb-wrong-s3cret", "s3cret", slack.url):
            assert secret not in text
        assert error.__cause__ is None


# --------------------------------------------------------------------------- webhook mode


async def test_webhook_posts_one_message_per_alert(make_sink: MakeSink, slack: FakeSlack) -> None:
    """Webhook mode posts each alert's rendering, one message each, and skips repeats."""
    sink = make_sink(webhook=True, mentions={"high": "<!here>"})
    first, second = alert(1, "opened"), alert(2, "escalated")
    await send(sink, first)
    await send(sink, second)
    await send(sink, second)
    posts = slack.webhook_posts
    assert posts == [
        render_blocks(first, mention="<!here>"),
        render_blocks(second, mention="<!here>"),
    ]


async def test_webhook_429_and_4xx(make_sink: MakeSink, slack: FakeSlack) -> None:
    """Webhook 429 is retryable with Retry-After; 404 no_service is rejected."""
    sink = make_sink(webhook=True)
    slack.fail(429, method="webhook", headers={"Retry-After": "12"}, error="rate_limited")
    with pytest.raises(SinkUnavailable) as info:
        await send(sink, alert(1, "opened"))
    assert info.value.retry_after == 12
    slack.fail(404, method="webhook", error="no_service")
    with pytest.raises(SinkRejected, match="no_service"):
        await send(sink, alert(1, "opened"))
    assert slack.webhook_posts == []


# --------------------------------------------------------------------------- checks


async def test_healthcheck_uses_auth_test_and_posts_nothing(
    make_sink: MakeSink, slack: FakeSlack
) -> None:
    """The Web API health check is auth.test; the webhook one makes no request."""
    await make_sink().healthcheck()
    await make_sink(webhook=True).healthcheck()
    assert slack.methods() == ["auth.test"]
    # the schema refuses such a URL (tests/unit/test_config_checks.py); the sink's own
    # check still guards a config built without validation
    unchecked = SlackSinkConfig.model_construct(
        type="slack", webhook_url=SecretStr("not a url"), timeout=timedelta(seconds=5)
    )
    with pytest.raises(SinkRejected):
        await SlackSink("team", unchecked, context=SinkContext()).healthcheck()


async def test_send_test_posts_the_test_notification(make_sink: MakeSink, slack: FakeSlack) -> None:
    """send_test() posts "listener test notification" in both modes."""
    await make_sink(webhook=True).send_test()
    await make_sink().send_test()
    assert slack.webhook_posts == [{"text": TEST_TEXT}]
    assert [m["text"] for m in slack.messages()] == [TEST_TEXT]


async def test_the_registry_builds_it_with_its_context(
    slack: FakeSlack, state: MemorySinkState, clock: ManualClock
) -> None:
    """build_sink() builds a SlackSink that keeps its state in the given context."""
    config = SlackSinkConfig.model_validate(
        {"type": "slack", "token": slack.token, "channel": CHANNEL_ID, "api_url": slack.api_url}
    )
    sink = build_sink("named", config, SinkContext(state, clock))
    try:
        assert isinstance(sink, SlackSink)
        assert sink.mode == "webapi"
        await sink.send(alert(1, "opened"), f"{INCIDENT}#1")
        assert state.get(f"done:{INCIDENT}#1") is not None
    finally:
        await sink.aclose()
        await sink.aclose()


async def test_a_drill_is_marked_in_slack(make_sink: MakeSink, slack: FakeSlack) -> None:
    """A drill alert's parent says [DRILL]."""
    await send(make_sink(), replace(alert(1, "opened"), drill=True))
    assert "[DRILL]" in header(parent_of(slack))
