"""The email sink against a loopback SMTP server: MIME, escaping, threading, TLS, errors."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from listener.clock import ManualClock
from listener.config.schema import EmailSinkConfig
from listener.errors import SinkError, SinkRejected, SinkUnavailable
from listener.model import Alert, AlertKind, MentionRef
from listener.sinks.base import MemorySinkState, SinkContext
from listener.sinks.console import render_text
from listener.sinks.email import EmailSink, message_id, render_email, render_html
from tests.support.receiver import sample_alert, sample_explanation
from tests.support.smtp import SmtpServer

PASSWORD = "pw-S3CRET-7"
SENDER = "Listener <alerts@example.com>"
TO = ["social@example.com", "Dana <dana@example.com>"]
MakeSink = Callable[..., EmailSink]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain loopback SMTP server that accepts everything."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def state() -> MemorySinkState:
    """The sink's state, inspectable."""
    return MemorySinkState()


@pytest.fixture
def make_sink(clock: ManualClock, state: MemorySinkState) -> MakeSink:
    """Build email sinks for a server: ``make_sink(server, security=..., username=...)``."""

    def make(server: SmtpServer | None = None, **overrides: Any) -> EmailSink:
        trusted = overrides.pop("trusted", True)
        data: dict[str, Any] = {
            "type": "email",
            "host": "127.0.0.1",
            "port": server.port if server else 25,
            "security": server.security if server else "none",
            "from": SENDER,
            "to": TO,
            "timeout": timedelta(seconds=5),
        }
        data.update(overrides)
        config = EmailSinkConfig.model_validate(data)
        context = server.client_context() if server and server.security != "none" else None
        return EmailSink(
            "mail",
            config,
            context=SinkContext(state=state, clock=clock),
            ssl_context=context if trusted else None,
        )

    return make


def render(alert: Alert, thread_root: str | None = None) -> EmailMessage:
    """The pure rendering with the test sender and recipients."""
    return render_email(
        alert, sender=SENDER, recipients=TO, subject_prefix="[listener]", thread_root=thread_root
    )


def parts(msg: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a message."""
    plain = msg.get_body(("plain",))
    html_part = msg.get_body(("html",))
    assert isinstance(plain, EmailMessage)
    assert isinstance(html_part, EmailMessage)
    return str(plain.get_content()), str(html_part.get_content())


def incident(n: int = 3) -> list[Alert]:
    """The first ``n`` alerts of one incident: opened, escalated, resolved."""
    base = sample_alert(incident_id="inc-0001")
    kinds: list[AlertKind] = ["opened", "escalated", "resolved"]
    return [replace(base, id=f"inc-0001#{i + 1}", kind=kinds[i]) for i in range(n)]


def assert_no_secret(exc: BaseException) -> None:
    """Neither the message, the repr nor a chained exception shows the password."""
    assert PASSWORD not in str(exc)
    assert PASSWORD not in repr(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


# --------------------------------------------------------------------------- rendering


def test_email_is_multipart_plain_and_html() -> None:
    """A multipart/alternative message: the console text block, then an HTML part."""
    alert = sample_alert()
    msg = render(alert)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    plain, html_body = parts(msg)
    assert render_text(alert) in plain
    assert f"<h2>{alert.title}</h2>" in html_body
    assert "https://news.example/acme-outage" in html_body
    assert msg["Subject"] == f"[listener] {alert.title}"
    assert msg["From"] == SENDER
    assert msg["To"] == ", ".join(TO)
    assert msg["Date"] == "Mon, 02 Mar 2026 09:00:00 +0000"
    assert msg["X-Listener-Incident"] == "inc-0001"
    assert msg["X-Listener-Alert"] == "alert-0001"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "X-Listener-Drill" not in msg


def test_both_parts_say_why_it_spiked() -> None:
    """The explanation in the text part (as the console's block) and as an HTML list with
    example links (http(s) only), its labels escaped."""
    explanation = sample_explanation()
    evil = replace(explanation.drivers[0], label="<script>x</script>", example=None)
    alert = sample_alert(explanation=replace(explanation, drivers=(*explanation.drivers, evil)))
    plain, html_body = parts(render(alert))
    assert "  - “outage” 31 now, 2 before" in plain
    assert "<h3>Why</h3>" in html_body
    assert (
        "<li>#acmedown 12 now, 0 before "
        '<a href="https://news.example/acme-outage">example</a></li>' in html_body
    )
    assert "<li>@bob (forum) 5 now, 0 before</li>" in html_body
    assert "<script>" not in html_body
    assert "&lt;script&gt;x&lt;/script&gt;" in html_body


def test_html_escapes_untrusted_mentions() -> None:
    """Mention text, author and URL cannot inject markup; only http(s) URLs become links."""
    alert = sample_alert()
    evil = MentionRef(
        source="forum",
        id="m9",
        text='<script>alert("x")</script> & <img src=x onerror=alert(1)>',
        url="javascript:alert(document.cookie)",
        author="<b>mallory</b>",
        followers=1,
        created_at=alert.at,
        sentiment=-1.0,
    )
    quoted = replace(evil, id="m10", text="fine", url='https://ok.example/"><script>x</script>')
    alert = replace(alert, brand="Acme <Corp>", top_mentions=(evil, quoted))
    html_body = render_html(alert)
    assert "<script" not in html_body
    assert "<img" not in html_body
    assert "<b>mallory" not in html_body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in html_body
    assert 'href="javascript:' not in html_body
    assert "<code>javascript:alert(document.cookie)</code>" in html_body
    assert 'href="https://ok.example/&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in html_body
    assert "Acme &lt;Corp&gt;" in html_body


def test_headers_cannot_be_injected() -> None:
    """Newlines in a brand or prefix end up as spaces, never as new headers."""
    alert = sample_alert(brand="Acme\r\nBcc: victim@example.com")
    msg = render_email(alert, sender=SENDER, recipients=TO, subject_prefix="[x]\n")
    assert "Bcc" not in msg
    assert "\n" not in str(msg["Subject"])


def test_message_id_is_stable_and_valid() -> None:
    """The Message-ID derives from the alert id, escaped where needed; rendering is stable."""
    assert render(sample_alert())["Message-ID"] == "<alert-0001@example.com>"
    assert render(sample_alert()).as_bytes() == render(sample_alert()).as_bytes()
    assert message_id("inc 1#2") == "<inc%201#2@listener>"
    assert message_id("a..b:c") == "<a%2E%2Eb%3Ac@listener>"
    assert message_id("a%20") != message_id("a ")


def test_threading_headers_point_at_the_first_alert() -> None:
    """With a thread root, In-Reply-To and References carry the root's Message-ID."""
    first, second, _ = incident()
    assert "In-Reply-To" not in render(first)
    assert "In-Reply-To" not in render(first, thread_root=first.id)
    reply = render(second, thread_root=first.id)
    root = render(first)["Message-ID"]
    assert reply["In-Reply-To"] == root
    assert reply["References"] == root


def test_drill_is_marked() -> None:
    """A drill says so in the subject, a header and both bodies."""
    msg = render(sample_alert(drill=True))
    assert str(msg["Subject"]).startswith("[listener] [DRILL] ")
    assert msg["X-Listener-Drill"] == "yes"
    plain, html_body = parts(msg)
    assert "DRILL" in plain
    assert "DRILL" in html_body


def test_rich_alerts_show_categories_ack_and_route() -> None:
    """Categories, the acknowledgement and the route appear in both parts."""
    from listener.model import Ack

    alert = sample_alert(
        kind="acknowledged",
        categories=(("outage", 12),),
        ack=Ack("dana", sample_alert().at, "on it"),
        route=("social", "pr-lead"),
    )
    plain, html_body = parts(render(alert))
    for body in (plain, html_body):
        assert "outage: 12" in body
        assert "dana" in body
        assert "on it" in body
        assert "pr-lead" in body


# --------------------------------------------------------------------------- over SMTP


async def test_delivers_one_message_to_every_recipient(
    smtp: SmtpServer, make_sink: MakeSink
) -> None:
    """send() hands one multipart message to the server for every configured recipient."""
    alert = sample_alert()
    await make_sink(smtp).send(alert, alert.id)
    [received] = smtp.messages
    assert received.mail_from == "alerts@example.com"
    assert received.rcpt_tos == ["social@example.com", "dana@example.com"]
    msg = received.email
    assert msg["Message-ID"] == "<alert-0001@example.com>"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Subject"] == f"[listener] {alert.title}"


async def test_an_incident_is_one_thread(
    smtp: SmtpServer, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """Later alerts reply to the incident's first email; the state is gone after resolve."""
    sink = make_sink(smtp)
    for alert in incident():
        await sink.send(alert, alert.id)
    other = sample_alert(id="inc-0002#1", incident_id="inc-0002")
    await sink.send(other, other.id)
    first, second, third, fourth = (m.email for m in smtp.messages)
    assert "In-Reply-To" not in first
    assert second["In-Reply-To"] == third["In-Reply-To"] == first["Message-ID"]
    assert third["References"] == first["Message-ID"]
    assert "In-Reply-To" not in fourth
    assert list(state.values) == ["incident:inc-0002"]


async def test_a_resend_is_not_a_second_email(smtp: SmtpServer, make_sink: MakeSink) -> None:
    """The same alert sent again (a retry after a crash) is skipped: the state knows it."""
    sink = make_sink(smtp)
    first, second, _ = incident()
    await sink.send(first, first.id)
    await sink.send(first, first.id)
    await sink.send(second, second.id)
    await make_sink(smtp).send(second, second.id)
    assert [m.email["X-Listener-Alert"] for m in smtp.messages] == [first.id, second.id]


async def test_a_temporary_recipient_refusal_retries_only_that_recipient(
    smtp: SmtpServer, make_sink: MakeSink
) -> None:
    """One recipient refused with 4xx: SinkUnavailable, and the retry goes to that one only."""
    smtp.reject(450, stage="RCPT", address="dana@example.com")
    sink = make_sink(smtp)
    alert = sample_alert()
    with pytest.raises(SinkUnavailable, match=r"1 of 2 recipients refused \(SMTP 450\)"):
        await sink.send(alert, alert.id)
    await sink.send(alert, alert.id)
    await sink.send(alert, alert.id)
    assert [m.rcpt_tos for m in smtp.messages] == [["social@example.com"], ["dana@example.com"]]
    assert smtp.messages[0].data == smtp.messages[1].data


async def test_a_permanent_recipient_refusal_is_rejected(
    smtp: SmtpServer, make_sink: MakeSink
) -> None:
    """A recipient refused with 5xx (the others accepted) raises SinkRejected."""
    smtp.reject(550, stage="RCPT", address="dana@example.com")
    with pytest.raises(SinkRejected, match="the others have it"):
        await make_sink(smtp).send(sample_alert(), "k")
    assert len(smtp.messages) == 1


@pytest.mark.parametrize(
    ("stage", "code", "error"),
    [
        ("DATA", 451, SinkUnavailable),
        ("DATA", 421, SinkUnavailable),
        ("DATA", 554, SinkRejected),
        ("MAIL", 452, SinkUnavailable),
        ("MAIL", 553, SinkRejected),
    ],
)
async def test_smtp_codes_map_onto_sink_errors(
    smtp: SmtpServer, make_sink: MakeSink, stage: Any, code: int, error: type[SinkError]
) -> None:
    """SMTP 4xx answers are retryable (SinkUnavailable), 5xx are not (SinkRejected)."""
    smtp.reject(code, stage=stage)
    with pytest.raises(error, match=f"SMTP {code}") as info:
        await make_sink(smtp).send(sample_alert(), "k")
    assert type(info.value) is error
    assert smtp.messages == []


async def test_every_recipient_refused(smtp: SmtpServer, make_sink: MakeSink) -> None:
    """All recipients refused: 5xx everywhere is rejected, any 4xx is retryable."""
    smtp.reject(550, stage="RCPT", times=2)
    with pytest.raises(SinkRejected, match="every recipient refused"):
        await make_sink(smtp).send(sample_alert(), "k")
    smtp.reject(550, stage="RCPT")
    smtp.reject(451, stage="RCPT")
    with pytest.raises(SinkUnavailable, match="every recipient refused"):
        await make_sink(smtp).send(sample_alert(), "k")


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_tls_and_login(make_sink: MakeSink, security: Any) -> None:
    """STARTTLS and implicit TLS with a verified certificate, then login, then delivery."""
    with SmtpServer(security=security, login=("bot", PASSWORD)) as server:
        await make_sink(server, username="bot", password=PASSWORD).send(sample_alert(), "k")
        [received] = server.messages
    assert received.tls
    assert received.login == "bot"


async def test_a_wrong_password_is_rejected_without_leaking_it(make_sink: MakeSink) -> None:
    """A 535 at login raises SinkRejected naming the stage, never the password."""
    with SmtpServer(security="starttls", login=("bot", "right")) as server:
        sink = make_sink(server, username="bot", password=PASSWORD)
        with pytest.raises(SinkRejected, match="login: SMTP 535") as info:
            await sink.send(sample_alert(), "k")
        with pytest.raises(SinkRejected, match="login: SMTP 535"):
            await sink.healthcheck()
        assert server.messages == []
    assert_no_secret(info.value)


async def test_starttls_missing_on_the_server_is_rejected(
    smtp: SmtpServer, make_sink: MakeSink
) -> None:
    """security: starttls against a server without STARTTLS never falls back to plain text."""
    with pytest.raises(SinkRejected, match="STARTTLS: not supported"):
        await make_sink(smtp, security="starttls").send(sample_alert(), "k")
    assert smtp.messages == []


async def test_an_untrusted_certificate_is_unavailable(make_sink: MakeSink) -> None:
    """A certificate the system does not trust fails the TLS handshake: SinkUnavailable."""
    with SmtpServer(security="tls") as server:
        with pytest.raises(SinkUnavailable, match="TLS error") as info:
            await make_sink(server, trusted=False).send(sample_alert(), "k")
        assert server.messages == []
    assert_no_secret(info.value)


async def test_connection_refused_is_unavailable(make_sink: MakeSink) -> None:
    """Nothing listening raises SinkUnavailable without the password."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = make_sink(port=port, username="bot", password=PASSWORD)
    with pytest.raises(SinkUnavailable, match="connect: connection failed") as info:
        await sink.send(sample_alert(), "k")
    assert_no_secret(info.value)


async def test_a_silent_server_times_out(make_sink: MakeSink) -> None:
    """A server that never greets raises SinkUnavailable after the configured timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        sink = make_sink(port=listener.getsockname()[1], timeout=timedelta(seconds=0.3))
        started = time.monotonic()
        with pytest.raises(SinkUnavailable, match=r"timed out after 0\.3s"):
            await sink.send(sample_alert(), "k")
    assert time.monotonic() - started < 3.0


async def test_a_stalled_data_answer_times_out(smtp: SmtpServer, make_sink: MakeSink) -> None:
    """A server that takes too long to accept the message raises SinkUnavailable."""
    smtp.stall(seconds=5)
    sink = make_sink(smtp, timeout=timedelta(seconds=0.3))
    with pytest.raises(SinkUnavailable, match="send: timed out"):
        await sink.send(sample_alert(), "k")


async def test_healthcheck_sends_nothing(smtp: SmtpServer, make_sink: MakeSink) -> None:
    """healthcheck() connects and says NOOP without delivering; unreachable raises."""
    await make_sink(smtp).healthcheck()
    assert smtp.messages == []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SinkUnavailable):
        await make_sink(port=port).healthcheck()


async def test_send_test_emails_a_marked_test_alert(
    smtp: SmtpServer, make_sink: MakeSink, state: MemorySinkState
) -> None:
    """send_test() emails a drill test alert to everyone and keeps no state."""
    await make_sink(smtp).send_test()
    [received] = smtp.messages
    msg = received.email
    assert str(msg["Subject"]).startswith("[listener] [DRILL] TEST: listener")
    assert msg["X-Listener-Drill"] == "yes"
    assert len(received.rcpt_tos) == 2
    assert state.values == {}


async def test_aclose_is_harmless(make_sink: MakeSink) -> None:
    """aclose() has nothing to release and may be called twice."""
    sink = make_sink()
    await sink.aclose()
    await sink.aclose()
