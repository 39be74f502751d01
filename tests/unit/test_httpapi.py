"""The daemon's tiny HTTP server."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator
from http import HTTPStatus

import pytest
from prometheus_client import CollectorRegistry, Counter

from listener.errors import Conflict, InvalidRequest
from listener.httpapi import MAX_BODY, MAX_HEADER_BYTES, HttpApi, Request, Response, parse_listen

HEAD = b"Host: x\r\nConnection: close\r\n"


async def fetch(port: int, raw: bytes, *, eof: bool = False) -> bytes:
    """Send ``raw`` (then end the sending side with ``eof``); everything answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    if eof:
        writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


def get(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, str, bytes]:
    """One request with http.client: (status, reason, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.reason, response.read()
    finally:
        conn.close()


async def test_metrics_routes_404_405_and_handler_errors() -> None:
    """/metrics serves the registry; unknown paths 404; wrong method 405; a bug 500."""
    registry = CollectorRegistry()
    Counter("demo_total", "demo", registry=registry).inc(3)
    api = HttpApi(registry)

    async def boom(request: Request) -> Response:
        raise RuntimeError("bug")

    async def echo(request: Request) -> Response:
        return Response.json({"body": request.body.decode(), "q": request.query})

    async def rest(request: Request) -> Response:
        return Response.json({"path": request.path})

    api.route("GET", "/boom", boom)
    api.route("POST", "/echo", echo)
    api.route("GET", "/things/", rest, prefix=True)
    _, port = await api.start("127.0.0.1", 0)
    try:
        status, _, metrics = await asyncio.to_thread(get, port, "GET", "/metrics")
        assert status == 200
        assert b"demo_total 3.0" in metrics
        assert (await asyncio.to_thread(get, port, "GET", "/nope"))[0] == 404
        assert (await asyncio.to_thread(get, port, "POST", "/metrics"))[0] == 405
        status, _, body = await asyncio.to_thread(get, port, "GET", "/boom")
        assert (status, json.loads(body)) == (500, {"error": "internal error"})
        _, _, echoed = await asyncio.to_thread(get, port, "POST", "/echo?a=1", b"hi")
        assert json.loads(echoed) == {"body": "hi", "q": "a=1"}
        _, _, found = await asyncio.to_thread(get, port, "GET", "/things/a/b")
        assert json.loads(found) == {"path": "/things/a/b"}
        assert (await fetch(port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
    finally:
        await api.stop()


async def test_a_port_in_use_is_an_oserror_and_stop_frees_it() -> None:
    first = HttpApi(CollectorRegistry())
    _, port = await first.start("127.0.0.1", 0)
    second = HttpApi(CollectorRegistry())
    with pytest.raises(OSError, match="in use"):
        await second.start("127.0.0.1", port)
    await first.stop()
    _, again = await second.start("127.0.0.1", port)
    assert again == port
    await second.stop()


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
    status, phrase, _ = await asyncio.to_thread(get, server, "GET", f"/status?{code}")
    assert (status, phrase) == (code, HTTPStatus(code).phrase)
    raw = await fetch(server, f"GET /status?{code} HTTP/1.1\r\n".encode() + HEAD + b"\r\n")
    assert status_line(raw) == line(code)


async def test_errors_raised_by_handlers_become_their_status_with_a_json_reason(
    server: int,
) -> None:
    """A handler's InvalidRequest is a 400 naming the field, a Conflict a 409: not a 500."""
    raw = await fetch(server, b"POST /refuse HTTP/1.1\r\n" + HEAD + b"Content-Length: 0\r\n\r\n")
    assert status_line(raw) == line(400)
    assert body_of(raw) == {"error": "by: must be a string, not an object", "field": "by"}
    raw = await fetch(server, b"POST /conflict HTTP/1.1\r\n" + HEAD + b"\r\n")
    assert status_line(raw) == line(409)
    assert "already acknowledged" in str(body_of(raw)["error"])


async def test_wrong_method_is_405_with_allow(server: int) -> None:
    """A known path with the wrong method says which methods it takes."""
    raw = await fetch(server, b"DELETE /echo HTTP/1.1\r\n" + HEAD + b"\r\n")
    assert status_line(raw) == line(405)
    assert b"\r\nallow: post\r\n" in raw.lower()
    assert "allowed: POST" in str(body_of(raw)["error"])


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"GET /status?200 HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET /status?200 FOO/1.1\r\nHost: x\r\n\r\n",
        b"G(T /status?200 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /status?200 HTTP/1.1\r\n\r\n",  # no Host
        b"GET /status?200 HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET /status?200 HTTP/1.1\r\nHost : x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    ],
)
async def test_malformed_requests_are_400(server: int, raw: bytes) -> None:
    """A malformed request line, header or Content-Length is answered 400: never a 500
    or a dropped connection."""
    answer = await fetch(server, raw, eof=True)
    assert status_line(answer) == line(400)


async def test_a_request_cut_short_is_no_error_and_the_server_goes_on(server: int) -> None:
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort"
    assert await fetch(server, raw, eof=True) in (b"", *[b"HTTP/1.1 400 Bad Request"])
    assert (await asyncio.to_thread(get, server, "GET", "/status?200"))[0] == 200


async def test_a_body_at_the_limit_is_read_and_one_byte_more_is_413(server: int) -> None:
    """Bodies up to MAX_BODY reach the handler; a larger one is refused from its
    Content-Length (the client still reads the 413 after sending it all) or, chunked,
    once it passes the limit."""
    head = b"POST /echo HTTP/1.1\r\n" + HEAD + b"Content-Length: %d\r\n\r\n"
    raw = await fetch(server, head % MAX_BODY + b"x" * MAX_BODY)
    assert status_line(raw) == line(200)
    assert body_of(raw) == {"size": MAX_BODY}
    big = 4 * MAX_BODY
    raw = await fetch(server, head % big + b"x" * big)
    assert status_line(raw) == line(413)
    assert str(MAX_BODY) in str(body_of(raw)["error"])
    chunked = b"POST /echo HTTP/1.1\r\n" + HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    raw = await fetch(server, chunked + b"2\r\nhi\r\n0\r\n\r\n")
    assert body_of(raw) == {"size": 2}
    size = MAX_BODY + 1
    raw = await fetch(server, chunked + b"%x\r\n" % size + b"x" * size + b"\r\n0\r\n\r\n")
    assert status_line(raw) == line(413)


async def test_a_header_section_sent_slowly_past_its_bound_is_refused(server: int) -> None:
    """Headers that keep coming, in pieces, past MAX_HEADER_BYTES: the server refuses
    and closes the connection, and serves others meanwhile (a slow client blocks
    nobody)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /status?200 HTTP/1.1\r\nHost: x\r\n")
    sent, answer = 0, b""
    try:
        for i in range(60):
            writer.write(b"X-H%d: %s\r\n" % (i, b"a" * 1000))
            await writer.drain()
            sent += 1
            if i == 5:  # another client is served while this one dawdles
                assert (await asyncio.to_thread(get, server, "GET", "/status?200"))[0] == 200
            await asyncio.sleep(0.02)
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        pass  # closed on us while we were still sending: refused
    finally:
        writer.close()
    assert sent < 60 or status_line(answer) == line(400), answer[:80]
    assert sent * 1000 >= MAX_HEADER_BYTES // 2


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


@pytest.mark.parametrize("page_first", [True, False])
async def test_a_page_and_a_json_route_share_a_path_in_either_order(page_first: bool) -> None:
    """A browser gets the page, anything else the JSON, whichever was registered first;
    a path with only a page serves it to everyone."""
    api = HttpApi(CollectorRegistry())

    async def page(request: Request) -> Response:
        return Response(200, b"<p>page</p>", "text/html")

    async def data(request: Request) -> Response:
        return Response.json({"json": True})

    if page_first:
        api.page("/things", page)
        api.route("GET", "/things", data)
    else:
        api.route("GET", "/things", data)
        api.page("/things", page)
    api.page("/only", page)
    _, port = await api.start("127.0.0.1", 0)
    try:
        browser = HEAD + b"Accept: text/html,*/*;q=0.8\r\n"
        raw = await fetch(port, b"GET /things HTTP/1.1\r\n" + browser + b"\r\n")
        assert raw.endswith(b"<p>page</p>")
        assert body_of(await fetch(port, b"GET /things HTTP/1.1\r\n" + HEAD + b"\r\n")) == {
            "json": True
        }
        assert (await fetch(port, b"GET /only HTTP/1.1\r\n" + HEAD + b"\r\n")).endswith(
            b"<p>page</p>"
        )
    finally:
        await api.stop()


@pytest.mark.parametrize("prefix_first", [True, False])
async def test_a_path_under_a_prefix_is_served_by_its_own_route_in_either_order(
    prefix_first: bool,
) -> None:
    """``/things/{id}/icon.png`` answers its paths ahead of the ``/things/`` prefix,
    whichever was registered first; the prefix answers the rest, other methods too."""
    api = HttpApi(CollectorRegistry())

    async def icon(request: Request) -> Response:
        return Response(200, b"png:" + request.path.encode(), "image/png")

    async def rest(request: Request) -> Response:
        return Response.json({"rest": request.path, "method": request.method})

    routes = [
        lambda: api.route("GET", "/things/", rest, prefix=True),
        lambda: api.route("POST", "/things/", rest, prefix=True),
        lambda: api.route("GET", "/things/{id}/icon.png", icon),
    ]
    for add in routes if prefix_first else reversed(routes):
        add()
    _, port = await api.start("127.0.0.1", 0)
    try:
        assert await asyncio.to_thread(get, port, "GET", "/things/a1/icon.png") == (
            200, "OK", b"png:/things/a1/icon.png",
        )  # fmt: skip
        status, _, body = await asyncio.to_thread(get, port, "GET", "/things/a1/b/icon.png")
        assert json.loads(body) == {"rest": "/things/a1/b/icon.png", "method": "GET"}
        status, _, body = await asyncio.to_thread(get, port, "POST", "/things/a1/icon.png", b"")
        assert (status, json.loads(body)["method"]) == (200, "POST")
    finally:
        await api.stop()
