"""The daemon's tiny HTTP server."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator
from http import HTTPStatus

import pytest
from prometheus_client import CollectorRegistry, Counter

from listener import httpapi
from listener.errors import Conflict, InvalidRequest
from listener.httpapi import MAX_BODY, HttpApi, Request, Response, parse_listen


async def fetch(port: int, raw: bytes, *, eof: bool = False) -> bytes:
    """Send ``raw`` (then end the sending side with ``eof``); everything answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    if eof:
        writer.write_eof()
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


@pytest.fixture
async def server() -> AsyncIterator[int]:
    """An HttpApi with a few routes (statuses, an echo, a refusing handler); its port."""
    api = HttpApi(CollectorRegistry())

    async def status(request: Request) -> Response:
        return Response.json({}, int(request.query))

    async def echo(request: Request) -> Response:
        return Response.json({"size": len(request.body)})

    async def refuse(request: Request) -> Response:
        raise InvalidRequest("by: must be a string, not an object", field="by")

    async def conflict(request: Request) -> Response:
        raise Conflict("incident x was already acknowledged by ana")

    api.route("GET", "/status", status)
    api.route("POST", "/echo", echo)
    api.route("POST", "/refuse", refuse)
    api.route("POST", "/conflict", conflict)
    _, port = await api.start("127.0.0.1", 0)
    yield port
    await api.stop()


def status_line(raw: bytes) -> str:
    return raw.partition(b"\r\n")[0].decode("latin-1")


def line(code: int) -> str:
    """The status line as it must be on the wire (phrases as Python's http.HTTPStatus)."""
    return f"HTTP/1.1 {code} {HTTPStatus(code).phrase}"


def body_of(raw: bytes) -> dict[str, object]:
    data = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("code", [200, 201, 400, 401, 403, 404, 409, 413, 500, 503])
async def test_every_status_carries_its_standard_reason_phrase(server: int, code: int) -> None:
    """The status line reads ``401 Unauthorized``, ``201 Created``…, never ``401 OK``."""

    def get() -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
        try:
            conn.request("GET", f"/status?{code}")
            response = conn.getresponse()
            return response.status, response.reason
        finally:
            conn.close()

    assert await asyncio.to_thread(get) == (code, HTTPStatus(code).phrase)
    raw = await fetch(server, f"GET /status?{code} HTTP/1.1\r\n\r\n".encode())
    assert status_line(raw) == line(code)


async def test_errors_raised_by_handlers_become_their_status_with_a_json_reason(
    server: int,
) -> None:
    """A handler's InvalidRequest is a 400 naming the field, a Conflict a 409: not a 500."""
    raw = await fetch(server, b"POST /refuse HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert status_line(raw) == line(400)
    assert body_of(raw) == {"error": "by: must be a string, not an object", "field": "by"}
    raw = await fetch(server, b"POST /conflict HTTP/1.1\r\n\r\n")
    assert status_line(raw) == line(409)
    assert "already acknowledged" in str(body_of(raw)["error"])


async def test_wrong_method_is_405_with_allow(server: int) -> None:
    """A known path with the wrong method says which methods it takes."""
    raw = await fetch(server, b"DELETE /echo HTTP/1.1\r\n\r\n")
    assert status_line(raw) == line(405)
    assert b"\r\nAllow: POST\r\n" in raw


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"\r\n\r\n",
        b"GET /status?200 HTTP/1.1 extra\r\n\r\n",
        b"GET  /status?200 HTTP/1.1\r\n\r\n",
        b"GET status HTTP/1.1\r\n\r\n",
        b"GET /status?200 FOO/1.1\r\n\r\n",
        b"G(T /status?200 HTTP/1.1\r\n\r\n",
        b"GET /status?200 HTTP/1.1",
        b"GET /status?200 HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /status?200 HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /status?200 HTTP/1.1\r\n folded: x\r\n\r\n",
        b"GET /status?200 HTTP/1.1\r\nHost: x\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n0123456789",
        b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
        b"GET //[x/ HTTP/1.1\r\n\r\n",
    ],
)
async def test_malformed_requests_are_400_with_a_json_reason(server: int, raw: bytes) -> None:
    """A malformed request line, header or Content-Length, or a request cut short, is
    answered 400 with a JSON reason: never a 500 or a dropped connection."""
    answer = await fetch(server, raw, eof=True)
    assert status_line(answer) == line(400)
    assert body_of(answer)["error"]


async def test_other_http_versions_and_chunked_bodies_are_refused(server: int) -> None:
    """HTTP/2.0 on the HTTP/1 port is a 505; a chunked body (no Content-Length) a 411."""
    raw = await fetch(server, b"GET /status?200 HTTP/2.0\r\n\r\n")
    assert status_line(raw) == line(505)
    chunked = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    raw = await fetch(server, chunked)
    assert status_line(raw) == line(411)
    assert "Content-Length" in str(body_of(raw)["error"])


async def test_a_body_at_the_limit_is_read_and_one_byte_more_is_413(server: int) -> None:
    """Bodies up to MAX_BODY reach the handler; a larger one is refused from its
    Content-Length, and the client still reads the 413 after sending it all."""
    head = b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
    raw = await fetch(server, head % MAX_BODY + b"x" * MAX_BODY)
    assert status_line(raw) == line(200)
    assert body_of(raw) == {"size": MAX_BODY}
    big = 4 * MAX_BODY
    raw = await fetch(server, head % big + b"x" * big)
    assert status_line(raw) == line(413)
    assert str(MAX_BODY) in str(body_of(raw)["error"])
    raw = await fetch(server, head % 10**30)  # announced, never sent
    assert status_line(raw) == line(413)


async def test_request_line_and_header_section_are_bounded(server: int) -> None:
    """A huge request line is a 414; a huge header line, header section, or too many
    header lines a 431; the server reads no further and keeps serving."""
    raw = await fetch(server, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
    assert status_line(raw) == line(414)
    raw = await fetch(server, b"GET /" + b"a" * 9_000 + b" HTTP/1.1\r\n\r\n")
    assert status_line(raw) == line(414)
    one_huge = b"X-Big: " + b"a" * 20_000 + b"\r\n"
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))
    too_many = b"".join(b"X-H%d: a\r\n" % i for i in range(101))
    for headers in (one_huge, many, too_many):
        raw = await fetch(server, b"GET /status?200 HTTP/1.1\r\n" + headers + b"\r\n")
        assert status_line(raw) == line(431)
    raw = await fetch(server, b"GET /status?200 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_line(raw) == line(200)


async def test_a_client_too_slow_to_send_its_request_gets_408(
    server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that does not arrive within the read timeout is answered 408."""
    monkeypatch.setattr(httpapi, "READ_TIMEOUT", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /status?200 HTTP/1.1\r\n")  # and nothing more
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert status_line(raw) == line(408)


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
