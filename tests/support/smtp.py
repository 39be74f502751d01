"""A loopback SMTP server (aiosmtpd) that records every message, for testing email alerts.

``SmtpServer`` binds ``127.0.0.1`` on an ephemeral port and runs aiosmtpd's event loop in
a daemon thread (its ``Controller``)::

    with SmtpServer(security="starttls", login=("bot", "pw")) as smtp:
        smtp.reject(451)                       # the next message gets 451 after DATA
        smtp.reject(550, stage="RCPT", address="b@example.com")   # refuse one recipient
        smtp.stall(seconds=5)                  # the next DATA is answered after 5 s
        ...  # EmailSinkConfig(host=smtp.host, port=smtp.port, security="starttls", ...)
        # EmailSink(..., ssl_context=smtp.client_context())   # trusts its certificate
        [message] = smtp.messages
        assert message.email["Subject"] == "..."

``security``: ``none`` (plain), ``starttls`` (STARTTLS offered and required before MAIL)
or ``tls`` (implicit TLS from the first byte), with a fresh self-signed certificate for
``127.0.0.1`` (:meth:`SmtpServer.client_context` trusts it). ``login`` makes the server
offer AUTH (PLAIN, LOGIN; after STARTTLS unless ``security`` is ``none``) and accept only
that user and password (``535`` otherwise); logging in stays optional, as on most relays
for tests. Rejections apply to the next matching command, in order: ``stage`` ``MAIL``,
``RCPT`` (one ``address`` or any) or ``DATA``; the reply text is ``<code> <text>``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ipaddress
import logging
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Security = Literal["none", "starttls", "tls"]
Stage = Literal["MAIL", "RCPT", "DATA"]

MAX_STALL = 30.0
"""No stall lasts longer than this many seconds, whatever a test asks for."""

# aiosmtpd logs a deprecation notice (its own doing) on every login; keep test output clean.
logging.getLogger("mail.log").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Received:
    """One accepted message: envelope, raw bytes, the parsed message and the session."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    @property
    def email(self) -> EmailMessage:
        """The message parsed with the modern email policy."""
        parsed = email.message_from_bytes(self.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Rejection:
    stage: Stage
    code: int
    text: str
    address: str | None = None
    stall: float = 0.0


@dataclass
class _Handler:
    owner: SmtpServer
    script: list[_Rejection] = field(default_factory=list)

    def _take(self, stage: Stage, address: str | None = None) -> _Rejection | None:
        with self.owner._lock:
            for i, r in enumerate(self.script):
                if r.stage == stage and (r.address is None or r.address == address):
                    return self.script.pop(i)
        return None

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        rejection = self._take("MAIL")
        if rejection is not None:
            return f"{rejection.code} {rejection.text}"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        rejection = self._take("RCPT", address)
        if rejection is not None:
            return f"{rejection.code} {rejection.text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rejection = self._take("DATA")
        if rejection is not None and rejection.stall > 0:
            await asyncio.sleep(min(rejection.stall, MAX_STALL))
            rejection = None
        if rejection is not None:
            return f"{rejection.code} {rejection.text}"
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode()
        login = session.auth_data if isinstance(session.auth_data, str) else None
        self.owner._record(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                data=data,
                tls=session.ssl is not None or self.owner.security == "tls",
                login=login,
            )
        )
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's Controller bound to port 0: the real port is read back before the
    controller's own readiness probe connects to it."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


def _certificate() -> tuple[bytes, bytes]:
    """A fresh self-signed certificate (PEM) and key (PEM) for 127.0.0.1 / localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class SmtpServer:
    """A loopback SMTP server; see the module docstring. Thread-safe."""

    host = "127.0.0.1"

    def __init__(
        self, *, security: Security = "none", login: tuple[str, str] | None = None
    ) -> None:
        self.security = security
        self._login = login
        self._lock = threading.Lock()
        self._handler = _Handler(self)
        self._messages: list[Received] = []
        self._cert_pem = b""
        self._controller: _Controller | None = None
        self.failed_logins = 0

    # ------------------------------------------------------------------ lifecycle

    def _server_context(self) -> ssl.SSLContext:
        cert, key = _certificate()
        self._cert_pem = cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
            cert_file.write_bytes(cert)
            key_file.write_bytes(key)
            context.load_cert_chain(cert_file, key_file)
        return context

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if (
            self._login is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self._login
        ):
            return AuthResult(success=True, auth_data=self._login[0])
        with self._lock:
            self.failed_logins += 1
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpServer:
        """Bind 127.0.0.1:0 and serve in a daemon thread."""
        kwargs: dict[str, Any] = {"server_hostname": "smtp.test"}
        if self.security != "none":
            context = self._server_context()
            if self.security == "tls":
                kwargs["ssl_context"] = context
            else:
                kwargs["tls_context"] = context
                kwargs["require_starttls"] = True
        if self._login is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = self.security == "starttls"
        controller = _Controller(self._handler, hostname=self.host, port=0, **kwargs)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop serving (cancelling stalls) and close the socket. Idempotent."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("SmtpServer is not running")
        return int(self._controller.port)

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's certificate (hostname checked)."""
        return ssl.create_default_context(cadata=self._cert_pem.decode())

    # ------------------------------------------------------------------ script

    def reject(
        self,
        code: int,
        *,
        stage: Stage = "DATA",
        address: str | None = None,
        times: int = 1,
        text: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching commands with ``code`` (``address``: only
        ``RCPT`` for that recipient)."""
        text = text or ("4.3.0 Try again later" if code < 500 else "5.7.1 Rejected by policy")
        with self._lock:
            self._handler.script += [_Rejection(stage, code, text, address) for _ in range(times)]

    def stall(self, *, seconds: float = 5.0) -> None:
        """Answer the next ``DATA`` only after ``seconds`` (stopping the server ends it)."""
        with self._lock:
            self._handler.script.append(_Rejection("DATA", 250, "", stall=seconds))

    def _record(self, message: Received) -> None:
        with self._lock:
            self._messages.append(message)

    # ------------------------------------------------------------------ records

    @property
    def messages(self) -> list[Received]:
        """A snapshot of the accepted messages, in arrival order."""
        with self._lock:
            return list(self._messages)
