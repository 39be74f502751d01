"""The console's sessions: the API token exchanged for a signed session cookie, and a
CSRF token per session for every form.

A session is a cookie (``listener_session``: HttpOnly, SameSite=Strict, Secure over TLS)
holding who signed in and a random nonce, signed with a key derived from the API token
(itsdangerous), valid :data:`SESSION_HOURS`: a new token ends every session. A form
carries ``csrf``, an HMAC of the session's nonce, checked on every POST (the login form
too: against a nonce cookie of its own). Nothing here stores state: any worker that has
the token checks any session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl

from itsdangerous import BadSignature, URLSafeTimedSerializer

from listener.httpapi import Request

SESSION_COOKIE = "listener_session"
LOGIN_COOKIE = "listener_login"
SESSION_HOURS = 12


@dataclass(frozen=True)
class Session:
    """Who is signed in, and the CSRF token of their forms."""

    name: str
    csrf: str


class Sessions:
    """Sign and check sessions with a key from ``token`` (no token: no sessions)."""

    def __init__(self, token: str) -> None:
        self.token = token
        key = hmac.new(token.encode(), b"listener console session", hashlib.sha256).digest()
        self._key = key
        self._signer = URLSafeTimedSerializer(key, salt="listener-console")

    def token_matches(self, given: str) -> bool:
        return bool(self.token) and same(given, self.token)

    def csrf_for(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()

    def new(self, name: str) -> tuple[str, Session]:
        """A session cookie's value for ``name``, and the session."""
        nonce = new_nonce()
        return self._signer.dumps({"n": name, "x": nonce}), Session(name, self.csrf_for(nonce))

    def read(self, request: Request) -> Session | None:
        """The request's session, when it carries a valid one."""
        if not self.token:
            return None
        value = cookies(request).get(SESSION_COOKIE)
        if not value:
            return None
        try:
            data = self._signer.loads(value, max_age=SESSION_HOURS * 3600)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        name, nonce = data.get("n"), data.get("x")
        if not isinstance(name, str) or not isinstance(nonce, str):
            return None
        return Session(name, self.csrf_for(nonce))

    def login_nonce(self, request: Request) -> str | None:
        return cookies(request).get(LOGIN_COOKIE) or None


def same(given: str, expected: str) -> bool:
    """Whether two secrets are equal, in time independent of where they differ."""
    return hmac.compare_digest(given.encode(), expected.encode())


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def cookies(request: Request) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(request.headers.get("cookie", ""))
    except Exception:  # a malformed cookie header: no cookies
        return {}
    return {k: v.value for k, v in jar.items()}


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value: HttpOnly, SameSite=Strict, Path=/, Secure over TLS
    (``max_age`` 0 deletes it)."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def form_fields(request: Request) -> dict[str, str]:
    """A form's fields (``application/x-www-form-urlencoded``), each once."""
    return dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
