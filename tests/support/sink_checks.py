"""Checks the sink tests share: no secret in an error, a port nothing listens on."""

from __future__ import annotations

import socket


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    """Neither the message nor the repr shows any of ``secrets`` (nor the word
    ``SECRET`` the fakes' credentials carry), and no exception is chained to it."""
    for text in (str(exc), repr(exc)):
        assert "SECRET" not in text
        for secret in secrets:
            assert secret not in text
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` of a port just freed, so a connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
