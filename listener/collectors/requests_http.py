"""Guard rails for collectors whose client libraries use ``requests`` (tweepy, praw).

tweepy passes no timeout at all and praw ignores its own ``timeout`` setting (see
``shared/docs/api-emulation.md``); neither caps response size. A
:class:`GuardedAdapter` mounted on the library's own session imposes both, and can
send the library's hard-coded API host to a configured base URL (an API gateway,
or a loopback fake in tests) while everything above the transport stays the real
library code. It also keeps requests where the source may send them: every request
(first, redirected or linked) is checked by
:func:`~listener.collectors.redirects.refusal` against the source's configured URLs
before it connects, and a session follows at most
:data:`~listener.collectors.redirects.MAX_REDIRECTS` redirects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from listener.collectors.fetch import redact_url
from listener.collectors.redirects import MAX_REDIRECTS, Resolver, refusal, resolve_host
from listener.errors import ListenerError, RedirectRefused


class ResponseTooLarge(requests.exceptions.RequestException, ListenerError):
    """The response body exceeded the configured byte cap. A ``requests`` exception, so the
    client libraries wrap it as they wrap a network error; each collector translates it
    into :class:`~listener.errors.MalformedResponse`."""

    error_type = "malformed"


class GuardedAdapter(HTTPAdapter):
    """Default and maximum timeouts, a byte cap, an optional base-URL rewrite and, with
    ``origins`` (the source's configured URLs), the redirect policy: a request to a
    host :func:`~listener.collectors.redirects.refusal` refuses raises
    :class:`~listener.errors.RedirectRefused` before connecting."""

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        base_url: str | None = None,
        origins: Sequence[str] = (),
        resolve: Resolver = resolve_host,
    ) -> None:
        super().__init__()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.base = urlsplit(base_url) if base_url else None
        self.origins = tuple(origins)
        self.resolve = resolve

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if self.base is not None and request.url:
            url = urlsplit(request.url)
            prefix = self.base.path.rstrip("/")
            request.url = urlunsplit(
                (self.base.scheme, self.base.netloc, prefix + url.path, url.query, "")
            )
            # requests chose proxies for the original host; choose again for the new one
            proxies = get_environ_proxies(request.url)
        if self.origins and request.url:
            reason = refusal(self.origins, request.url, self.resolve)
            if reason is not None:
                raise RedirectRefused(f"request to {redact_url(request.url)} refused: {reason}")
        cap = self.timeout
        if timeout is None:
            timeout = cap
        elif isinstance(timeout, tuple):
            timeout = tuple(min(t or cap, cap) for t in timeout)
        else:
            timeout = min(timeout, cap)
        response = super().send(
            request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        if stream:
            return response
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise ResponseTooLarge(f"response of {declared} bytes exceeds {self.max_bytes}")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.raw.stream(65536, decode_content=True):
                total += len(chunk)
                if total > self.max_bytes:
                    raise ResponseTooLarge(f"response exceeds {self.max_bytes} bytes")
                chunks.append(chunk)
        except ResponseTooLarge:
            response.close()
            raise
        except Exception as exc:  # urllib3 errors while reading → requests' own types
            response.close()
            raise requests.exceptions.ConnectionError(str(exc)) from exc
        response._content = b"".join(chunks)
        response._content_consumed = True  # type: ignore[attr-defined]
        return response


def guard_session(
    session: requests.Session,
    *,
    timeout: float,
    max_bytes: int,
    hosts: Mapping[str, str | None],
    resolve: Resolver = resolve_host,
) -> requests.Session:
    """Mount a :class:`GuardedAdapter` on ``session`` for each host, and one for every
    other URL (a redirect or link elsewhere gets the same limits), all checking the
    redirect policy against the configured URLs; follow at most
    :data:`~listener.collectors.redirects.MAX_REDIRECTS` redirects.

    ``hosts`` maps a real API host (``api.twitter.com``) to the base URL requests for
    it should go to, or ``None`` to keep the host (guard rails only); those base URLs,
    or the hosts themselves, are the configured URLs.
    """
    origins = [base or f"https://{host}/" for host, base in hosts.items()]
    for host, base in hosts.items():
        adapter = GuardedAdapter(
            timeout=timeout, max_bytes=max_bytes, base_url=base, origins=origins, resolve=resolve
        )
        session.mount(f"https://{host}/", adapter)
        session.mount(f"http://{host}/", adapter)
    elsewhere = GuardedAdapter(
        timeout=timeout, max_bytes=max_bytes, origins=origins, resolve=resolve
    )
    for scheme in ("http://", "https://"):
        session.mount(scheme, elsewhere)
    session.max_redirects = MAX_REDIRECTS
    return session
