"""The email sink: one multipart message (plain text + HTML) per alert, over SMTP.

:func:`render_email` is pure: a ``multipart/alternative`` message whose plain-text part
is :func:`~listener.sinks.console.render_text` (plus categories, the acknowledgement and
the route) and whose HTML part shows the same with every value escaped (mention texts,
authors and URLs are untrusted; only ``http(s)`` URLs become links). Its headers make
mail clients thread an incident and let people filter:

- ``Message-ID: <alert-id@domain>``: stable per alert (a resend is the same message);
- ``In-Reply-To`` / ``References``: the first message this sink sent for the incident;
- ``X-Listener-Incident``, ``X-Listener-Alert``, ``X-Listener-Kind``, ``X-Listener-Level``
  (and ``X-Listener-Drill: yes``), ``Auto-Submitted: auto-generated``.

:class:`EmailSink` sends it with :mod:`smtplib` in a worker thread (never on the event
loop): ``security`` ``starttls`` (upgrade, certificate verified), ``tls`` (implicit TLS)
or ``none``; login when a username is set; ``timeout`` per connection and operation.
Outcomes: accepted → delivered; SMTP 4xx, timeouts, refused or dropped connections, TLS
errors → :class:`~listener.errors.SinkUnavailable`; SMTP 5xx (and a server without
STARTTLS or AUTH when they are configured) → :class:`~listener.errors.SinkRejected`. The
password never appears in an error message or exception chain.

State (:class:`~listener.sinks.base.SinkState`, durable in the store), one key per open
incident: the thread's first alert, the alerts already accepted (a resend of one of
them, after a crash between the SMTP answer and the outbox update, is skipped) and, for
an alert only some recipients accepted, which ones (a retry goes to the others only).
The key is deleted once the incident's ``resolved`` alert went out.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import NoReturn
from urllib.parse import quote

from listener import __version__
from listener.clock import Clock
from listener.config.schema import EmailSinkConfig
from listener.errors import SinkError, SinkRejected, SinkUnavailable
from listener.model import Alert, Digest, MentionRef
from listener.sinks.base import SinkContext, SinkState
from listener.sinks.console import DRILL_BANNER, render_text
from listener.sinks.text import (
    clean_line,
    driver_text,
    excerpt,
    explanation_heading,
    incident_line,
    incidents_line,
    listed_incidents,
    render_digest_text,
    share_line,
    story_line,
    volume_line,
)
from listener.sinks.webhook import make_test_alert

EXCERPT_CHARS = 500
"""Mention texts longer than this are cut (with an ellipsis) in the HTML part."""

MAX_SENT = 200
"""How many accepted alert ids of one incident the state remembers (newest kept)."""

DEFAULT_DOMAIN = "listener"

_MSGID_SAFE = "!#$&'*+-/=?^_`{|}~"
"""RFC 5322 ``atext`` characters ``quote`` may leave alone (``%`` escapes the rest)."""


# --------------------------------------------------------------------------- rendering


def _esc(value: object) -> str:
    return html.escape(clean_line(value), quote=True)


def _web_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL without whitespace or control characters."""
    if url is None or not url.lower().startswith(("https://", "http://")):
        return None
    return url if url == clean_line(url) and " " not in url else None


def _domain(sender: str) -> str:
    """The domain of the sender's address (the right side of Message-IDs)."""
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2].strip().lower()
    ok = domain and all(ch.isalnum() or ch in "-." for ch in domain) and domain.isascii()
    return domain if ok else DEFAULT_DOMAIN


def message_id(alert_id: str, domain: str = DEFAULT_DOMAIN) -> str:
    """The stable ``Message-ID`` of an alert's email: ``<alert-id@domain>``, the alert id
    percent-encoded where RFC 5322 does not allow a character (dots included). Pure."""
    left = quote(alert_id, safe=_MSGID_SAFE).replace(".", "%2E") or "alert"
    return f"<{left}@{domain}>"


def _extra_lines(alert: Alert) -> list[str]:
    lines: list[str] = []
    if alert.categories:
        lines.append("categories:")
        lines += [f"  - {clean_line(name)}: {count}" for name, count in alert.categories]
    if alert.ack is not None:
        note = f": {clean_line(alert.ack.note)}" if alert.ack.note else ""
        lines.append(
            f"acknowledged by {clean_line(alert.ack.by)} at {alert.ack.at.isoformat()}{note}"
        )
    if alert.route:
        lines.append(f"route: {' → '.join(clean_line(r) for r in alert.route)}")
    return lines


def _footer(alert: Alert) -> str:
    return (
        f"Sent by listener {__version__} · incident {clean_line(alert.incident_id)} · "
        f"alert {clean_line(alert.id)}"
    )


def render_plain(alert: Alert) -> str:
    """The plain-text part: the summary (when the alert has one), the console text
    block, categories, acknowledgement, route and a signature line. Pure."""
    parts = []
    summary = clean_line(getattr(alert, "summary", ""))
    if summary:
        parts.append(summary)
    block = render_text(alert)
    extra = _extra_lines(alert)
    parts.append("\n".join([block, *extra]))
    parts.append("-- \n" + _footer(alert))
    return "\n\n".join(parts) + "\n"


def _mention_html(ref: MentionRef) -> str:
    who = f"@{clean_line(ref.author).lstrip('@')}" if ref.author else "unknown author"
    meta = html.escape(who)
    if ref.followers is not None:
        meta += f" ({ref.followers:,} followers)"
    meta += f" · {_esc(ref.source)} · {_esc(ref.created_at.isoformat())}"
    text = html.escape(excerpt(ref.text, EXCERPT_CHARS), quote=True)
    url = _web_url(ref.url)
    link = f' <a href="{html.escape(url, quote=True)}">open</a>' if url else ""
    if ref.url and not url:
        link = f" <code>{_esc(ref.url)}</code>"
    return f"<li><div>{meta}</div><blockquote>{text}</blockquote>{link}</li>"


def render_html(alert: Alert) -> str:
    """The HTML part: the same content as :func:`render_plain`, every value escaped,
    only http(s) mention URLs as links, inline styles only. Pure."""
    level = _esc(alert.level)
    if alert.previous_level is not None:
        level += f" (was {_esc(alert.previous_level)})"
    rows = [
        ("brand", _esc(alert.brand)),
        ("rule", _esc(alert.rule)),
        ("level", level),
        ("kind", _esc(alert.kind)),
        ("incident", _esc(alert.incident_id)),
        ("alert", _esc(alert.id)),
        ("at", _esc(alert.at.isoformat())),
    ]
    if alert.ack is not None:
        ack = f"{_esc(alert.ack.by)} at {_esc(alert.ack.at.isoformat())}"
        if alert.ack.note:
            ack += f": {_esc(alert.ack.note)}"
        rows.append(("acknowledged", ack))
    if alert.route:
        rows.append(("route", " → ".join(_esc(r) for r in alert.route)))
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>' + _esc(alert.title) + "</title></head>",
        '<body style="font-family: sans-serif; line-height: 1.4">',
        f"<h2>{_esc(alert.title)}</h2>",
    ]
    if alert.drill:
        out.append(
            '<p style="background: #fff3cd; padding: 6px"><strong>'
            + html.escape(DRILL_BANNER)
            + "</strong></p>"
        )
    summary = clean_line(getattr(alert, "summary", ""))
    if summary:
        out.append(f"<p>{html.escape(summary)}</p>")
    out.append('<table style="border-collapse: collapse">')
    out += [
        f'<tr><th style="text-align: left; padding-right: 12px">{name}</th><td>{value}</td></tr>'
        for name, value in rows
    ]
    out.append("</table>")
    if alert.facts:
        out.append("<h3>Facts</h3><ul>")
        out += [f"<li>{_esc(fact)}</li>" for fact in alert.facts]
        out.append("</ul>")
    e = alert.explanation
    if e is not None and e.drivers:
        out.append(f"<h3>Why</h3><p>{_esc(explanation_heading(e).capitalize())}:</p><ul>")
        for d in e.drivers:
            url = _web_url(d.example.url) if d.example is not None else None
            link = f' <a href="{html.escape(url, quote=True)}">example</a>' if url else ""
            out.append(f"<li>{_esc(driver_text(d))}{link}</li>")
        out.append("</ul>")
    if alert.categories:
        out.append("<h3>Categories</h3><ul>")
        out += [f"<li>{_esc(name)}: {count}</li>" for name, count in alert.categories]
        out.append("</ul>")
    if alert.top_mentions:
        out.append("<h3>Top mentions</h3><ol>")
        out += [_mention_html(ref) for ref in alert.top_mentions]
        out.append("</ol>")
    out.append(f'<hr><p style="color: #666; font-size: small">{html.escape(_footer(alert))}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_email(
    alert: Alert,
    *,
    sender: str,
    recipients: Sequence[str],
    subject_prefix: str,
    thread_root: str | None = None,
) -> EmailMessage:
    """The email for ``alert`` (a fresh message; pure).

    ``sender`` and ``recipients`` fill ``From`` and ``To`` as configured (``"Name
    <a@b>"`` allowed); the subject is ``subject_prefix`` and the alert title. The
    ``Date`` is the alert's time. ``thread_root`` is the id of the incident's first
    alert this sink sent: when given (and not this alert), ``In-Reply-To`` and
    ``References`` point at its Message-ID so clients thread the incident. The
    Message-ID domain is the sender's (``listener`` when it has none).
    """
    domain = _domain(sender)
    msg = EmailMessage()
    subject = clean_line(f"{subject_prefix} {alert.title}")
    msg["Subject"] = subject
    msg["From"] = clean_line(sender)
    msg["To"] = ", ".join(clean_line(r) for r in recipients)
    msg["Date"] = format_datetime(alert.at)
    msg["Message-ID"] = message_id(alert.id, domain)
    if thread_root is not None and thread_root != alert.id:
        root = message_id(thread_root, domain)
        msg["In-Reply-To"] = root
        msg["References"] = root
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Listener-Incident"] = clean_line(alert.incident_id)
    msg["X-Listener-Alert"] = clean_line(alert.id)
    msg["X-Listener-Kind"] = alert.kind
    msg["X-Listener-Level"] = clean_line(alert.level)
    if alert.drill:
        msg["X-Listener-Drill"] = "yes"
    msg.set_content(render_plain(alert), subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(render_html(alert), subtype="html", charset="utf-8", cte="quoted-printable")
    # A boundary from the alert id keeps the rendering deterministic; "=_" cannot occur
    # in quoted-printable text, so it cannot collide with the parts.
    digest = hashlib.sha256(alert.id.encode("utf-8")).hexdigest()[:32]
    msg.set_boundary(f"=_listener_{digest}")
    return msg


def render_digest_html(digest: Digest) -> str:
    """A digest's HTML part: the lines of the text part, every value escaped, the stories'
    links http(s) only. Pure."""
    zone = digest.timezone
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>' + _esc(digest.title) + "</title></head>",
        '<body style="font-family: sans-serif; line-height: 1.4">',
        f"<h2>{_esc(digest.title)}</h2>",
        f'<p style="color: #666">{_esc(digest.span)}</p>',
    ]
    for b in digest.brands:
        out += [
            f"<h3>{_esc(b.brand)}</h3><ul>",
            f"<li>{_esc(volume_line(b, digest.every))}</li>",
            f"<li>{_esc(share_line(b))}</li>",
            f"<li>{_esc(incidents_line(b))}</li>",
            "</ul>",
        ]
        listed = listed_incidents(b)
        if listed:
            out.append("<ul>")
            out += [f"<li>{_esc(incident_line(i, zone))}</li>" for i in listed]
            out.append("</ul>")
        if b.stories:
            out.append("<p><strong>Top stories</strong></p><ol>")
            for story in b.stories:
                url = _web_url(story.lead.url)
                link = f' <a href="{html.escape(url, quote=True)}">open</a>' if url else ""
                out.append(f"<li>{_esc(story_line(story))}{link}</li>")
            out.append("</ol>")
    out.append(f'<hr><p style="color: #666; font-size: small">listener {__version__}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_digest_email(
    digest: Digest, *, sender: str, recipients: Sequence[str], subject_prefix: str
) -> EmailMessage:
    """The email for ``digest`` (pure): subject ``subject_prefix`` and the digest's title,
    a text and an HTML part, dated at the digest's end."""
    msg = EmailMessage()
    msg["Subject"] = clean_line(f"{subject_prefix} {digest.title}")
    msg["From"] = clean_line(sender)
    msg["To"] = ", ".join(clean_line(r) for r in recipients)
    msg["Date"] = format_datetime(digest.end)
    msg["Message-ID"] = message_id(digest.id, _domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Listener-Digest"] = clean_line(digest.name)
    text = render_digest_text(digest)
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(
        render_digest_html(digest), subtype="html", charset="utf-8", cte="quoted-printable"
    )
    msg.set_boundary(f"=_listener_{hashlib.sha256(digest.id.encode()).hexdigest()[:32]}")
    return msg


# --------------------------------------------------------------------------- state


@dataclass
class _Thread:
    """What the sink remembers about one open incident (JSON in its state)."""

    root: str | None = None
    sent: list[str] = field(default_factory=list)
    partial: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, raw: str | None) -> _Thread:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(
                root=data.get("root"),
                sent=[str(k) for k in data.get("sent", [])],
                partial={str(k): [str(a) for a in v] for k, v in data.get("partial", {}).items()},
            )
        except (ValueError, TypeError, AttributeError):
            return cls()

    def dump(self) -> str:
        data = {"root": self.root, "sent": self.sent[-MAX_SENT:], "partial": self.partial}
        return json.dumps(data, separators=(",", ":"))


# --------------------------------------------------------------------------- sending


def _address(value: str) -> str:
    return parseaddr(value)[1] or value


def _code_error(what: str, code: int, text: str) -> SinkError:
    message = f"{what}: SMTP {code}" + (f" {text}" if text else "")
    return SinkRejected(message) if 500 <= code < 600 else SinkUnavailable(message)


class EmailSink:
    """Sends :func:`render_email` messages over SMTP; see the module docstring.

    ``ssl_context`` replaces the default (system CAs, hostname checked) for ``tls`` and
    ``starttls`` (tests trust their own certificate with it). A connection is opened per
    send and closed after it; :meth:`aclose` has nothing to release.
    """

    def __init__(
        self,
        name: str,
        config: EmailSinkConfig,
        *,
        context: SinkContext | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        context = context if context is not None else SinkContext()
        self._state: SinkState = context.state
        self._clock: Clock = context.clock
        self._host = config.host
        self._port = config.port
        self._security = config.security
        self._username = config.username
        self._password = config.password.get_secret_value() if config.password else None
        self._sender = config.from_
        self._recipients = list(config.to)
        self._subject_prefix = config.subject_prefix
        self._timeout = config.timeout.total_seconds()
        self._ssl_context = ssl_context

    def _label(self) -> str:
        return f"email sink '{self.name}'"

    # ------------------------------------------------------------------ SMTP (worker thread)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _server_text(self, raw: bytes | str) -> str:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        text = clean_line(text)[:200]
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _fail(self, exc: Exception, stage: str) -> NoReturn:
        """Raise the :class:`SinkError` for ``exc`` raised during ``stage``, unchained."""
        what = f"{self._label()}: {stage}"
        error: SinkError
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            answers = list(exc.recipients.values())
            codes = sorted({code for code, _ in answers})
            text = self._server_text(answers[0][1]) if answers else ""
            permanent = bool(codes) and all(500 <= c < 600 for c in codes)
            message = f"{what}: every recipient refused (SMTP {', '.join(map(str, codes))})"
            message += f" {text}" if text else ""
            error = SinkRejected(message) if permanent else SinkUnavailable(message)
        elif isinstance(exc, smtplib.SMTPResponseException):
            error = _code_error(what, exc.smtp_code, self._server_text(exc.smtp_error))
        elif isinstance(exc, smtplib.SMTPServerDisconnected):
            # smtplib reports a read timeout as a disconnection caused by TimeoutError.
            if isinstance(exc.__context__, TimeoutError):
                error = SinkUnavailable(f"{what}: timed out after {self._timeout:g}s")
            else:
                error = SinkUnavailable(f"{what}: the server closed the connection")
        elif isinstance(exc, smtplib.SMTPNotSupportedError):
            error = SinkRejected(f"{what}: not supported by the server ({clean_line(exc)})")
        elif isinstance(exc, smtplib.SMTPException):
            error = SinkRejected(f"{what}: {type(exc).__name__} ({clean_line(exc)[:200]})")
        elif isinstance(exc, TimeoutError):
            error = SinkUnavailable(f"{what}: timed out after {self._timeout:g}s")
        elif isinstance(exc, ssl.SSLError):
            error = SinkUnavailable(f"{what}: TLS error ({type(exc).__name__})")
        elif isinstance(exc, OSError):
            error = SinkUnavailable(f"{what}: connection failed ({type(exc).__name__})")
        else:
            error = SinkUnavailable(f"{what}: {type(exc).__name__}")
        raise error from None

    def _open(self) -> smtplib.SMTP:
        """Connect, secure and log in; raise :class:`SinkError` on any failure."""
        stage = "connect"
        smtp: smtplib.SMTP | None = None
        try:
            if self._security == "tls":
                smtp = smtplib.SMTP_SSL(
                    self._host, self._port, timeout=self._timeout, context=self._tls()
                )
            else:
                smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            stage = "EHLO"
            smtp.ehlo()
            if self._security == "starttls":
                stage = "STARTTLS"
                smtp.starttls(context=self._tls())
                smtp.ehlo()
            if self._username:
                stage = "login"
                smtp.login(self._username, self._password or "")
        except Exception as exc:
            if smtp is not None:
                smtp.close()
            self._fail(exc, stage)
        return smtp

    @staticmethod
    def _close(smtp: smtplib.SMTP) -> None:
        """QUIT politely; the message is already accepted, so nothing here is an error."""
        try:
            smtp.quit()
        except Exception:  # any failure after acceptance is irrelevant
            smtp.close()

    def _transmit(self, msg: EmailMessage, to: list[str]) -> dict[str, tuple[int, bytes]]:
        """Send ``msg`` to the envelope recipients ``to``; return the refused ones
        (``{}`` when all accepted); raise :class:`SinkError` when nothing was accepted."""
        smtp = self._open()
        try:
            refused = smtp.send_message(msg, from_addr=_address(self._sender), to_addrs=to)
        except Exception as exc:
            smtp.close()
            self._fail(exc, "send")
        self._close(smtp)
        return dict(refused)

    def _probe(self) -> None:
        smtp = self._open()
        try:
            smtp.noop()
        except Exception as exc:
            smtp.close()
            self._fail(exc, "NOOP")
        self._close(smtp)

    # ------------------------------------------------------------------ state

    def _state_key(self, incident_id: str) -> str:
        return f"incident:{incident_id}"

    def _load(self, incident_id: str) -> _Thread:
        return _Thread.load(self._state.get(self._state_key(incident_id)))

    def _save(self, incident_id: str, thread: _Thread | None) -> None:
        if thread is None:
            self._state.delete(self._state_key(incident_id))
        else:
            self._state.set(self._state_key(incident_id), thread.dump())

    # ------------------------------------------------------------------ the Sink protocol

    def _render(self, alert: Alert, thread_root: str | None) -> EmailMessage:
        return render_email(
            alert,
            sender=self._sender,
            recipients=self._recipients,
            subject_prefix=self._subject_prefix,
            thread_root=thread_root,
        )

    async def send(self, alert: Alert, idempotency_key: str) -> None:
        """Email one alert to every recipient that has not accepted it yet; return when
        all have, else raise a :class:`~listener.errors.SinkError` (``SinkUnavailable``
        while a refusal was temporary). A key already accepted is not sent again."""
        thread = await asyncio.to_thread(self._load, alert.incident_id)
        if idempotency_key in thread.sent:
            return
        done = set(thread.partial.get(idempotency_key, []))
        to = [a for a in (_address(r) for r in self._recipients) if a not in done]
        msg = self._render(alert, thread.root)
        refused = await asyncio.to_thread(self._transmit, msg, to) if to else {}
        if thread.root is None:
            thread.root = alert.id
        if not refused:
            thread.partial.pop(idempotency_key, None)
            thread.sent.append(idempotency_key)
            finished = alert.kind == "resolved"
            await asyncio.to_thread(self._save, alert.incident_id, None if finished else thread)
            return
        thread.partial[idempotency_key] = sorted(done | (set(to) - set(refused)))
        await asyncio.to_thread(self._save, alert.incident_id, thread)
        raise self._refused(refused)

    def _refused(self, refused: dict[str, tuple[int, bytes]]) -> SinkError:
        codes = sorted({code for code, _ in refused.values()})
        message = (
            f"{self._label()}: send: {len(refused)} of {len(self._recipients)} recipients "
            f"refused (SMTP {', '.join(map(str, codes))}); the others have it"
        )
        if all(500 <= c < 600 for c in codes):
            return SinkRejected(message)
        return SinkUnavailable(message)

    async def send_digest(self, digest: Digest, idempotency_key: str) -> None:
        """Email one digest to every recipient that has not accepted it yet (kept in the
        sink's state until all have); raise like :meth:`send`."""
        key = f"digest:{idempotency_key}"
        raw = await asyncio.to_thread(self._state.get, key)
        done = set(json.loads(raw or "[]"))
        to = [a for a in (_address(r) for r in self._recipients) if a not in done]
        if not to:
            return
        msg = render_digest_email(
            digest,
            sender=self._sender,
            recipients=self._recipients,
            subject_prefix=self._subject_prefix,
        )
        refused = await asyncio.to_thread(self._transmit, msg, to)
        if not refused:
            await asyncio.to_thread(self._state.delete, key)
            return
        accepted = sorted(done | (set(to) - set(refused)))
        await asyncio.to_thread(self._state.set, key, json.dumps(accepted))
        raise self._refused(refused)

    async def send_test(self) -> None:
        """Email :func:`~listener.sinks.webhook.make_test_alert` (a drill that says it is
        a test) to every recipient (``listener check --deep``); no state is kept."""
        alert = make_test_alert(self.name, self._clock.now())
        to = [_address(r) for r in self._recipients]
        refused = await asyncio.to_thread(self._transmit, self._render(alert, None), to)
        if refused:
            codes = sorted({code for code, _ in refused.values()})
            raise _code_error(
                f"{self._label()}: test: {len(refused)} recipients refused", max(codes), ""
            )

    async def healthcheck(self) -> None:
        """Connect, secure, log in and ``NOOP``, sending nothing: proves the server,
        the TLS setup and the credentials; raises like :meth:`send`."""
        await asyncio.to_thread(self._probe)

    async def aclose(self) -> None:
        """Nothing to release: each send opens and closes its own connection."""
