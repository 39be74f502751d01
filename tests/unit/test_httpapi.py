"""The daemon's tiny HTTP server."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter

from listener.httpapi import HttpApi, Request, Response, parse_listen


async def fetch(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_metrics_routes_404_405_and_handler_errors() -> None:
    """/metrics serves the registry; unknown paths 404; wrong method 405; a bug 500."""
    registry = CollectorRegistry()
    Counter("demo_total", "demo", registry=registry).inc(3)
    api = HttpApi(registry)

    async def boom(request: Request) -> Response:
        raise RuntimeError("bug")

    async def echo(request: Request) -> Response:
        return Response.json({"body": request.body.decode(), "q": request.query})

    api.route("GET", "/boom", boom)
    api.route("POST", "/echo", echo)
    _, port = await api.start("127.0.0.1", 0)
    try:
        metrics = await fetch(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert metrics.startswith(b"HTTP/1.1 200")
        assert b"demo_total 3.0" in metrics
        assert (await fetch(port, b"GET /nope HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        assert (await fetch(port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
        assert (await fetch(port, b"GET /boom HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 500")
        echoed = await fetch(port, b"POST /echo?a=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        assert b'"body": "hi"' in echoed
        assert b'"q": "a=1"' in echoed
        assert (await fetch(port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
    finally:
        await api.stop()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), (":80", ("0.0.0.0", 80)), ("[::1]:9", ("::1", 9))],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    """Listen addresses are HOST:PORT."""
    assert parse_listen(text) == expected


def test_parse_listen_rejects() -> None:
    """A missing port is a clear error."""
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("localhost")
