"""The webhook sink against a real loopback receiver: headers, status mapping, secrets."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from listener import __version__
from listener.config.schema import WebhookSinkConfig
from listener.errors import SinkError, SinkRejected, SinkUnavailable
from listener.sinks.http import parse_retry_after
from listener.sinks.webhook import WebhookSink, render_webhook
from tests.support.receiver import WebhookReceiver, sample_alert

SECRET = "s3cret"
MakeSink = Callable[..., WebhookSink]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A loopback webhook receiver."""
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
async def make_sink() -> AsyncIterator[MakeSink]:
    """Build webhook sinks (closed at teardown): ``make_sink(url, timeout=..., headers=...)``."""
    sinks: list[WebhookSink] = []

    def make(
        url: str,
        *,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> WebhookSink:
        config = WebhookSinkConfig.model_validate(
            {
                "type": "webhook",
                "url": url,
                "headers": headers or {},
                "timeout": timedelta(seconds=timeout),
            }
        )
        sink = WebhookSink("hook", config, transport=transport)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


def refused_url() -> str:
    """A loopback URL on a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook?token={SECRET}"


def assert_no_secret(exc: BaseException) -> None:
    """Neither the message, the repr nor a chained exception mentions the secret URL."""
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)
    assert "127.0.0.1" not in str(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


async def test_posts_the_document_with_the_headers(
    receiver: WebhookReceiver, make_sink: MakeSink
) -> None:
    """One POST carries the rendered document, the idempotency key and the configured headers."""
    alert = sample_alert()
    sink = make_sink(receiver.url(f"/hook?token={SECRET}"), headers={"X-Auth": "t0ken"})
    await sink.send(alert, "key-1")
    [request] = receiver.requests
    assert request.method == "POST"
    assert (request.path, request.query) == ("/hook", f"token={SECRET}")
    assert request.json == render_webhook(alert)
    assert request.headers["idempotency-key"] == "key-1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"listener/{__version__}"
    assert request.headers["x-auth"] == "t0ken"
    assert receiver.idempotency_keys() == ["key-1"]


async def test_configured_headers_cannot_replace_the_key_or_content_type(
    receiver: WebhookReceiver, make_sink: MakeSink
) -> None:
    """Idempotency-Key and Content-Type always come from the sink, whatever the config says."""
    sink = make_sink(
        receiver.url(), headers={"idempotency-key": "fixed", "content-type": "text/plain"}
    )
    await sink.send(sample_alert(), "key-2")
    [request] = receiver.requests
    assert request.headers["idempotency-key"] == "key-2"
    assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retryable(
    receiver: WebhookReceiver, make_sink: MakeSink, status: int
) -> None:
    """5xx and 408 raise SinkUnavailable naming the status, not the URL."""
    receiver.respond(status)
    sink = make_sink(receiver.url(f"/hook?token={SECRET}"))
    with pytest.raises(SinkUnavailable) as info:
        await sink.send(sample_alert(), "k")
    assert str(info.value) == f"webhook sink 'hook': HTTP {status}"
    assert info.value.retryable
    assert_no_secret(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
async def test_client_errors_are_rejected(
    receiver: WebhookReceiver, make_sink: MakeSink, status: int
) -> None:
    """Other 4xx (and a redirect, which is not followed) raise SinkRejected."""
    receiver.respond(status, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    sink = make_sink(receiver.url(f"/hook?token={SECRET}"))
    with pytest.raises(SinkRejected) as info:
        await sink.send(sample_alert(), "k")
    assert str(info.value) == f"webhook sink 'hook': HTTP {status}"
    assert not info.value.retryable
    assert_no_secret(info.value)
    assert len(receiver.requests) == 1


async def test_429_carries_retry_after_seconds(
    receiver: WebhookReceiver, make_sink: MakeSink
) -> None:
    """A 429 with Retry-After in seconds gives retry_after in seconds."""
    receiver.respond(429, retry_after="7")
    with pytest.raises(SinkUnavailable) as info:
        await make_sink(receiver.url()).send(sample_alert(), "k")
    assert info.value.retry_after == 7.0


async def test_429_carries_retry_after_http_date(
    receiver: WebhookReceiver, make_sink: MakeSink
) -> None:
    """A 429 with an HTTP-date Retry-After is read against the receiver's Date header."""
    when = datetime.now(UTC) + timedelta(seconds=120)
    receiver.respond(429, retry_after=format_datetime(when, usegmt=True))
    with pytest.raises(SinkUnavailable) as info:
        await make_sink(receiver.url()).send(sample_alert(), "k")
    assert info.value.retry_after is not None
    assert 100 <= info.value.retry_after <= 122


async def test_429_without_retry_after(receiver: WebhookReceiver, make_sink: MakeSink) -> None:
    """A 429 without Retry-After is retryable with no retry_after."""
    receiver.respond(429)
    with pytest.raises(SinkUnavailable) as info:
        await make_sink(receiver.url()).send(sample_alert(), "k")
    assert info.value.retry_after is None


def test_parse_retry_after() -> None:
    """Retry-After parses as seconds or an HTTP-date relative to now; junk gives None."""
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after("1000000000000", now) == 3600.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == 3600.0
    assert parse_retry_after("Mon, 02 Mar 2026 09:01:30 GMT", now) == 90.0
    assert parse_retry_after("Mon, 02 Mar 2026 08:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None


async def test_stall_times_out_as_unavailable(
    receiver: WebhookReceiver, make_sink: MakeSink
) -> None:
    """A receiver that never answers raises SinkUnavailable after the configured timeout."""
    receiver.stall(seconds=10)
    sink = make_sink(receiver.url(f"/hook?token={SECRET}"), timeout=0.2)
    started = time.monotonic()
    with pytest.raises(SinkUnavailable) as info:
        await sink.send(sample_alert(), "k")
    assert time.monotonic() - started < 3.0
    assert "timed out after 0.2s" in str(info.value)
    assert_no_secret(info.value)


async def test_connection_refused_is_unavailable(make_sink: MakeSink) -> None:
    """A refused connection raises SinkUnavailable without the URL."""
    with pytest.raises(SinkUnavailable) as info:
        await make_sink(refused_url()).send(sample_alert(), "k")
    assert "connection failed" in str(info.value)
    assert_no_secret(info.value)


async def test_other_transport_errors_are_unavailable(make_sink: MakeSink) -> None:
    """Any other httpx transport error raises SinkUnavailable naming only the error type."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(f"garbage from {request.url}", request=request)

    sink = make_sink(
        f"https://hooks.example/x?token={SECRET}", transport=httpx.MockTransport(broken)
    )
    with pytest.raises(SinkUnavailable) as info:
        await sink.send(sample_alert(), "k")
    assert str(info.value) == "webhook sink 'hook': transport error (RemoteProtocolError)"
    assert_no_secret(info.value)


async def test_healthcheck_probes_without_posting(
    receiver: WebhookReceiver, make_sink: MakeSink
) -> None:
    """The health check sends an OPTIONS request and no alert; 404/405 still mean reachable."""
    sink = make_sink(receiver.url(), headers={"X-Auth": "t0ken"})
    await sink.healthcheck()
    receiver.probe_status = 405
    await sink.healthcheck()
    assert [r.method for r in receiver.requests] == ["OPTIONS", "OPTIONS"]
    assert receiver.requests[0].headers["x-auth"] == "t0ken"
    assert receiver.bodies() == []


async def test_healthcheck_fails_when_unreachable_or_broken(
    receiver: WebhookReceiver, make_sink: MakeSink
) -> None:
    """The health check raises SinkUnavailable on a refused connection or a 5xx."""
    with pytest.raises(SinkUnavailable) as info:
        await make_sink(refused_url()).healthcheck()
    assert_no_secret(info.value)
    receiver.probe_status = 503
    with pytest.raises(SinkUnavailable, match="health check: HTTP 503"):
        await make_sink(receiver.url()).healthcheck()


async def test_errors_are_sink_errors(receiver: WebhookReceiver, make_sink: MakeSink) -> None:
    """Every failure mode surfaces as a SinkError, never a raw httpx exception."""
    sink = make_sink(receiver.url(), timeout=0.2)
    receiver.respond(500)
    receiver.respond(400)
    receiver.stall(seconds=10)
    for _ in range(3):
        with pytest.raises(SinkError):
            await sink.send(sample_alert(), "k")
