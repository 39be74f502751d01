"""A loopback fake of the X API v2 that replays real recorded responses.

``FakeX`` binds ``127.0.0.1`` on an ephemeral port and serves from a daemon thread
(a context manager; ``url`` is the base URL to put in a source's ``api_url``). It
works for the collector in-process and for a daemon subprocess alike.

Endpoints (every request needs ``Authorization: Bearer <bearer_token>``, else 401):

- ``GET /2/tweets/search/recent``: the twarc-csv pages ``kpop.jsonl`` → ``brexit.jsonl``
  → ``two_tweets.jsonl`` (``__twarc`` stripped), chained by each page's own
  ``meta.next_token``.
- ``GET /2/users/by/username/:name``: ``Twitter`` (id 783214) from tweepy's cassette;
  any name added with :meth:`FakeX.add_user`; others get X's 200-with-``errors``
  "Could not find user" answer.
- ``GET /2/users/:id/mentions``: tweepy's cassette page for 783214 (its dangling
  ``next_token`` leads to an empty page); pages set with :meth:`FakeX.set_mentions_pages`.

Repeated polls behave like the real API: without ``since_id`` a chain starts at its
first (newest) page; with ``since_id`` only tweets with a larger id are served (pages
left empty are skipped, ``meta`` is recomputed), and ``{"meta": {"result_count": 0}}``
when there are none. ``start_time`` and ``max_results`` are recorded but not applied
(the recordings are from 2021-2022 and hold 100 tweets a page). A ``next_token`` the
fake never issued is a 400, as on X.

Injecting tweets (fresh ids: larger than every id served, so they pass ``since_id``)::

    page = fake.page(TweetSpec("Acme lost my parcel again", username="angry1",
                               created_at=now), ...)
    fake.add_search_page(page)        # newest first, in front of the chain
    fake.set_search_pages([page])     # or replace the whole chain
    fake.add_search_tweets(TweetSpec(...), ...)   # both steps at once

Injecting errors (one-shot by default; ``times=None`` until :meth:`FakeX.clear_faults`)::

    fake.fail(Fault.rate_limited(reset=int(NOW.timestamp()) + 60))
    fake.fail(Fault.rate_limited(reset=None))          # 429 without x-rate-limit-reset
    fake.fail(Fault.server_error(503), endpoint="mentions", times=None)
    fake.fail(Fault.stall(5.0)); fake.fail(Fault.truncated_json())
    fake.fail(Fault.oversized(6 * 2**20, declare_length=False))

Every answer other than a 429 fault carries ``x-rate-limit-limit``/``-remaining``/
``-reset``; :meth:`FakeX.set_quota` sets what the next answer reports. Stalls are
bounded by :data:`MAX_STALL` and end at once when the server stops.
"""

from __future__ import annotations

import copy
import functools
import gzip
import itertools
import json
import re
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from tests.conftest import SHARED
from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

MAX_STALL = 30.0
"""No stall lasts longer than this many seconds, whatever a fault asks for."""

DEFAULT_TOKEN = "fake-x-bearer-token"
FIXTURES = SHARED / "fixtures" / "tweepy"
SEARCH_FILES = ("kpop.jsonl", "brexit.jsonl", "two_tweets.jsonl")
TWITTER_USER_ID = "783214"
TWITTER_EPOCH_MS = 1288834974657

Endpoint = Literal["search", "user", "mentions"]
ENDPOINTS: tuple[Endpoint, ...] = ("search", "user", "mentions")
RATE_LIMITS: dict[Endpoint, int] = {"search": 450, "user": 300, "mentions": 450}
WINDOW_SECONDS = 900

TOO_MANY_REQUESTS = {
    "title": "Too Many Requests",
    "detail": "Too Many Requests",
    "type": "about:blank",
    "status": 429,
}
UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}

_SEARCH = re.compile(r"^/2/tweets/search/recent/?$")
_USER = re.compile(r"^/2/users/by/username/([^/]+)/?$")
_MENTIONS = re.compile(r"^/2/users/([0-9]+)/mentions/?$")


# --------------------------------------------------------------------------- fixtures


def load_search_pages(root: Path = FIXTURES) -> list[dict[str, Any]]:
    """The recorded search pages, in chain order, without twarc's ``__twarc`` key."""
    pages: list[dict[str, Any]] = []
    for name in SEARCH_FILES:
        text = (root / "twarc-csv" / "test-data" / name).read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.strip():
                page = json.loads(line)
                page.pop("__twarc", None)
                pages.append(page)
    return pages


def load_cassette(path: Path) -> list[tuple[str, int, dict[str, str], bytes]]:
    """``(uri, status, headers, body)`` per interaction of a vcrpy YAML cassette, gzip
    bodies decoded; content-/transfer-encoding, length, cookies and HSTS dropped."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    dropped = {
        "content-encoding",
        "transfer-encoding",
        "content-length",
        "connection",
        "set-cookie",
        "strict-transport-security",
    }
    out: list[tuple[str, int, dict[str, str], bytes]] = []
    for interaction in data["interactions"]:
        response = interaction["response"]
        raw_headers: dict[str, list[str]] = response.get("headers") or {}
        encoding = ",".join(raw_headers.get("content-encoding", [])).lower()
        body = response["body"]["string"]
        body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        if "gzip" in encoding:
            body = gzip.decompress(body)
        elif "deflate" in encoding:
            body = zlib.decompress(body)
        headers = {k.lower(): v[-1] for k, v in raw_headers.items() if k.lower() not in dropped}
        out.append((interaction["request"]["uri"], int(response["status"]["code"]), headers, body))
    return out


def _cassette_json(name: str, root: Path) -> dict[str, Any]:
    _, _, _, body = load_cassette(root / "cassettes" / name)[0]
    page: dict[str, Any] = json.loads(body)
    return page


@functools.cache
def _recorded(root: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Search chain, the ``Twitter`` user and its mentions page; loaded once per process
    and shared read-only by every fake."""
    user = _cassette_json("test_client_get_user.yaml", root)["data"]
    mentions = _cassette_json("test_client_get_users_mentions.yaml", root)
    return load_search_pages(root), user, mentions


# --------------------------------------------------------------------------- building tweets


@dataclass(frozen=True)
class TweetSpec:
    """A tweet to inject. ``created_at`` defaults to the wall clock (for daemon tests;
    unit tests should pass it); ``id`` defaults to a fresh id above every id served."""

    text: str
    username: str = "listener_test_user"
    name: str | None = None
    followers: int = 100
    created_at: datetime | None = None
    lang: str = "en"
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    quotes: int = 0
    retweet_of: str | None = None
    id: str | None = None


def _user_id(username: str) -> str:
    return str(10**15 + zlib.crc32(username.lower().encode("utf-8")))


def _snowflake(when: datetime) -> int:
    return (int(when.timestamp() * 1000) - TWITTER_EPOCH_MS) << 22


def _meta(tweets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if not tweets:
        return {"result_count": 0}
    ids = sorted((str(t["id"]) for t in tweets), key=int)
    return {"newest_id": ids[-1], "oldest_id": ids[0], "result_count": len(tweets)}


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Fault:
    """A programmed bad answer. ``status``/``headers``/``body`` replace the answer unless
    ``truncate`` (the normal answer cut to half, with a matching Content-Length).
    ``delay`` seconds are slept before the status line, or after ``stall_after_bytes``
    bytes of the body when that is set. ``declare_length=False`` omits Content-Length."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncate: bool = False
    delay: float = 0.0
    stall_after_bytes: int | None = None
    declare_length: bool = True
    rate_headers: bool = True

    @classmethod
    def rate_limited(cls, *, reset: int | None, limit: int = 450) -> Fault:
        """429 with X's body, ``x-rate-limit-remaining: 0`` and (unless ``None``) the
        ``x-rate-limit-reset`` epoch."""
        headers = {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": "0"}
        if reset is not None:
            headers["x-rate-limit-reset"] = str(reset)
        return cls(429, headers, json.dumps(TOO_MANY_REQUESTS).encode(), rate_headers=False)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx with an X-style problem body."""
        body = {"title": "Service Unavailable" if status == 503 else "Internal Server Error"}
        return cls(status, body=json.dumps({**body, "status": status}).encode())

    @classmethod
    def stall(cls, seconds: float, *, after_bytes: int | None = None) -> Fault:
        """The normal answer, delayed: before the headers, or mid-body."""
        return cls(200, delay=seconds, stall_after_bytes=after_bytes)

    @classmethod
    def truncated_json(cls) -> Fault:
        """The normal answer's JSON cut in half (a complete HTTP response)."""
        return cls(200, truncate=True)

    @classmethod
    def oversized(cls, size: int, *, declare_length: bool = True) -> Fault:
        """A 200 JSON body of ``size`` bytes."""
        pad = max(0, size - len(b'{"pad":""}'))
        return cls(200, body=b'{"pad":"' + b"x" * pad + b'"}', declare_length=declare_length)

    @classmethod
    def answer(cls, status: int, body: Mapping[str, Any] | bytes = b"") -> Fault:
        """Any status with a JSON (or raw) body."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return cls(status, body=raw)


@dataclass
class _Armed:
    fault: Fault
    endpoint: Endpoint | None
    times: int | None


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it, and the status it answered."""

    method: str
    path: str
    endpoint: Endpoint | None
    params: dict[str, str]
    headers: dict[str, str]
    status: int


# --------------------------------------------------------------------------- chains


class _Chain:
    """Pages linked by their ``meta.next_token``; serves them filtered by ``since_id``."""

    def __init__(self, pages: Iterable[dict[str, Any]]) -> None:
        self.pages = list(pages)  # never mutated: serve() builds new dicts
        self.tokens: dict[str, int] = {}
        for index, page in enumerate(self.pages):
            token = (page.get("meta") or {}).get("next_token")
            if isinstance(token, str):
                self.tokens[token] = index + 1

    def ids(self) -> Iterable[int]:
        for page in self.pages:
            for tweet in page.get("data") or ():
                yield int(tweet["id"])

    def serve(self, token: str | None, since_id: int | None) -> dict[str, Any] | None:
        """The page for ``token`` (``None``: the first), or ``None`` for an unknown token."""
        if token is None:
            start = 0
        elif token in self.tokens:
            start = self.tokens[token]
        else:
            return None
        if since_id is None:
            return self.pages[start] if start < len(self.pages) else {"meta": {"result_count": 0}}
        kept = [self._newer(p, since_id) for p in self.pages]
        index = next((i for i in range(start, len(kept)) if kept[i]), None)
        if index is None:
            return {"meta": {"result_count": 0}}
        page = {k: v for k, v in self.pages[index].items() if k not in ("data", "meta")}
        page["data"] = kept[index]
        meta = _meta(kept[index])
        token = (self.pages[index].get("meta") or {}).get("next_token")
        if token and any(kept[index + 1 :]):
            meta["next_token"] = token
        page["meta"] = meta
        return page

    @staticmethod
    def _newer(page: Mapping[str, Any], since_id: int) -> list[dict[str, Any]]:
        return [t for t in page.get("data") or () if int(t["id"]) > since_id]


@dataclass
class _Quota:
    limit: int
    remaining: int
    reset: int


# --------------------------------------------------------------------------- server


class _Server(LoopbackHTTPServer):
    owner: FakeX


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def do_POST(self) -> None:
        self.server.owner._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""


class FakeX(LoopbackServer):
    """The fake X API; see the module docstring. Thread-safe."""

    handler_class = _Handler
    server_class = _Server
    poll_interval = 0.01

    def __init__(
        self,
        *,
        bearer_token: str = DEFAULT_TOKEN,
        recorded: bool = True,
        fixtures: Path = FIXTURES,
    ) -> None:
        super().__init__()
        self.bearer_token = bearer_token
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Armed] = []
        self._tokens = itertools.count(1)
        self._users: dict[str, dict[str, Any]] = {}
        self._mentions: dict[str, _Chain] = {}
        self._search = _Chain([])
        self._max_id = 0
        now = int(time.time())
        self._quota = {e: _Quota(n, n, now + WINDOW_SECONDS) for e, n in RATE_LIMITS.items()}
        if recorded:
            search, user, mentions = _recorded(fixtures)
            self._search = _Chain(search)
            self._users[user["username"].lower()] = dict(user)
            self._mentions[str(user["id"])] = _Chain([mentions])
        self._max_id = max(self._all_ids(), default=0)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``) for a source's ``api_url``."""
        return self.base_url

    # ------------------------------------------------------------------ programming

    def set_search_pages(self, pages: Sequence[Mapping[str, Any]]) -> None:
        """Replace the search chain with API-shaped pages (newest first; copied). Missing
        ``meta`` fields are filled in and pages are chained with fresh ``next_token``s."""
        with self._lock:
            self._search = _Chain(self._linked(copy.deepcopy(list(pages))))
            self._max_id = max(self._max_id, *self._search.ids(), 0)

    def add_search_page(self, page: Mapping[str, Any]) -> None:
        """Put ``page`` in front of the search chain (it becomes the newest page)."""
        with self._lock:
            pages = self._linked([copy.deepcopy(dict(page)), *self._search.pages])
            self._search = _Chain(pages)
            self._max_id = max(self._max_id, *self._search.ids(), 0)

    def add_search_tweets(self, *specs: TweetSpec) -> dict[str, Any]:
        """Build a page of fresh tweets and put it in front of the search chain."""
        page = self.page(*specs)
        self.add_search_page(page)
        return page

    def set_mentions_pages(self, user_id: str, pages: Sequence[Mapping[str, Any]]) -> None:
        """Replace the mentions timeline of ``user_id`` with API-shaped pages."""
        with self._lock:
            self._mentions[str(user_id)] = _Chain(self._linked(copy.deepcopy(list(pages))))
            self._max_id = max(self._max_id, *self._mentions[str(user_id)].ids(), 0)

    def add_user(self, username: str, user_id: str | None = None, name: str | None = None) -> str:
        """Make ``username`` resolvable; returns its id."""
        uid = user_id or _user_id(username)
        with self._lock:
            self._users[username.lower()] = {
                "id": uid,
                "name": name or username,
                "username": username,
            }
        return uid

    def page(self, *specs: TweetSpec) -> dict[str, Any]:
        """An API-shaped page (``data``, ``includes.users``, ``meta``) of fresh tweets,
        newest (largest id) first. Does not change what the fake serves."""
        tweets: list[dict[str, Any]] = []
        users: dict[str, dict[str, Any]] = {}
        for spec in specs:
            created = spec.created_at or datetime.now(UTC)
            with self._lock:
                tweet_id = spec.id or str(max(self._max_id + 1, _snowflake(created)))
                self._max_id = max(self._max_id, int(tweet_id))
            author_id = _user_id(spec.username)
            users[author_id] = {
                "id": author_id,
                "username": spec.username,
                "name": spec.name or spec.username,
                "verified": False,
                "public_metrics": {
                    "followers_count": spec.followers,
                    "following_count": 10,
                    "tweet_count": 100,
                    "listed_count": 0,
                },
            }
            tweet: dict[str, Any] = {
                "id": tweet_id,
                "edit_history_tweet_ids": [tweet_id],
                "text": spec.text,
                "author_id": author_id,
                "conversation_id": tweet_id,
                "created_at": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "lang": spec.lang,
                "public_metrics": {
                    "retweet_count": spec.reposts,
                    "reply_count": spec.replies,
                    "like_count": spec.likes,
                    "quote_count": spec.quotes,
                },
            }
            if spec.retweet_of is not None:
                tweet["referenced_tweets"] = [{"type": "retweeted", "id": spec.retweet_of}]
            tweets.append(tweet)
        tweets.sort(key=lambda t: int(t["id"]), reverse=True)
        return {"data": tweets, "includes": {"users": list(users.values())}, "meta": _meta(tweets)}

    def fail(
        self, fault: Fault, *, endpoint: Endpoint | None = "search", times: int | None = 1
    ) -> None:
        """Answer the next ``times`` requests to ``endpoint`` (``None``: any) with
        ``fault``; ``times=None`` keeps failing until :meth:`clear_faults`."""
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {ENDPOINTS}")
        with self._lock:
            self._faults.append(_Armed(fault, endpoint, times))

    def clear_faults(self) -> None:
        """Forget every programmed fault."""
        with self._lock:
            self._faults.clear()

    def set_quota(
        self,
        endpoint: Endpoint,
        *,
        remaining: int | None = None,
        limit: int | None = None,
        reset: int | None = None,
    ) -> None:
        """Set the rate-limit headers the next answer for ``endpoint`` reports
        (``remaining`` then counts down by one per request)."""
        with self._lock:
            quota = self._quota[endpoint]
            if limit is not None:
                quota.limit = limit
            if remaining is not None:
                quota.remaining = remaining
            if reset is not None:
                quota.reset = reset

    # ------------------------------------------------------------------ records

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, endpoint: Endpoint) -> list[RecordedRequest]:
        """The recorded requests for one endpoint."""
        return [r for r in self.requests if r.endpoint == endpoint]

    # ------------------------------------------------------------------ internals

    def _all_ids(self) -> Iterable[int]:
        yield from self._search.ids()
        for chain in self._mentions.values():
            yield from chain.ids()

    def _linked(self, pages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Shallow copies of ``pages`` with ``meta`` completed and chained."""
        out: list[dict[str, Any]] = []
        for index, original in enumerate(pages):
            page = dict(original)
            meta = dict(page.get("meta") or {})
            for key, value in _meta(page.get("data") or []).items():
                meta.setdefault(key, value)
            if index < len(pages) - 1 and not meta.get("next_token"):
                meta["next_token"] = f"fake-x-{next(self._tokens)}"
            page["meta"] = meta
            out.append(page)
        return out

    def _take_fault(self, endpoint: Endpoint | None) -> Fault | None:
        with self._lock:
            for armed in self._faults:
                if armed.endpoint is None or armed.endpoint == endpoint:
                    if armed.times is not None:
                        armed.times -= 1
                        if armed.times <= 0:
                            self._faults.remove(armed)
                    return armed.fault
        return None

    def _rate_headers(self, endpoint: Endpoint) -> dict[str, str]:
        with self._lock:
            quota = self._quota[endpoint]
            now = int(time.time())
            if now >= quota.reset:
                quota.remaining, quota.reset = quota.limit, now + WINDOW_SECONDS
            headers = {
                "x-rate-limit-limit": str(quota.limit),
                "x-rate-limit-remaining": str(quota.remaining),
                "x-rate-limit-reset": str(quota.reset),
            }
            quota.remaining = max(0, quota.remaining - 1)
        return headers

    def _route(
        self, path: str, params: Mapping[str, str]
    ) -> tuple[Endpoint | None, int, dict[str, Any]]:
        """Endpoint, status and JSON body of the normal answer."""
        since = params.get("since_id")
        since_id = int(since) if since and since.isdigit() else None
        token = params.get("next_token") or params.get("pagination_token")
        if _SEARCH.match(path):
            if not params.get("query"):
                return "search", 400, _invalid("query", "The `query` parameter is missing.")
            with self._lock:
                page = self._search.serve(token, since_id)
            return "search", *_page_or_bad_token(page, token)
        match = _USER.match(path)
        if match:
            name = unquote(match.group(1))
            with self._lock:
                user = self._users.get(name.lower())
            if user is None:
                return "user", 200, _not_found(name)
            return "user", 200, {"data": dict(user)}
        match = _MENTIONS.match(path)
        if match:
            with self._lock:
                chain = self._mentions.get(match.group(1))
                page = chain.serve(token, since_id) if chain else {"meta": {"result_count": 0}}
            return "mentions", *_page_or_bad_token(page, token)
        return None, 404, {"title": "Not Found Error", "status": 404, "detail": f"no route {path}"}

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _stall(self, seconds: float) -> None:
        self._stopping.wait(min(max(seconds, 0.0), MAX_STALL))

    def _handle(self, handler: _Handler) -> None:
        handler.close_connection = True
        length = int(handler.headers.get("Content-Length") or 0)
        if length > 0:
            handler.rfile.read(length)
        parts = urlsplit(handler.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        request_headers = {k.lower(): v for k, v in handler.headers.items()}
        endpoint, status, payload = self._route(parts.path, params)
        fault: Fault | None = None
        if request_headers.get("authorization") != f"Bearer {self.bearer_token}":
            status, payload = 401, UNAUTHORIZED
        elif handler.command != "GET":
            status, payload = 405, {"title": "Method Not Allowed", "status": 405}
        else:
            fault = self._take_fault(endpoint)
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers: dict[str, str] = {"content-type": "application/json; charset=utf-8"}
        if endpoint is not None and (fault is None or fault.rate_headers):
            headers.update(self._rate_headers(endpoint))
        declare_length = True
        if fault is not None:
            if fault.truncate:
                body = body[: len(body) // 2]
            elif fault.status != 200 or fault.body:
                status, body = fault.status, fault.body
            headers.update(fault.headers)
            declare_length = fault.declare_length
        self._record(
            RecordedRequest(
                method=handler.command,
                path=parts.path,
                endpoint=endpoint,
                params=params,
                headers=request_headers,
                status=status,
            )
        )
        try:
            if fault is not None and fault.delay > 0 and fault.stall_after_bytes is None:
                self._stall(fault.delay)
                if self._stopping.is_set():
                    return
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            if declare_length:
                handler.send_header("content-length", str(len(body)))
            handler.send_header("connection", "close")
            handler.end_headers()
            if fault is not None and fault.delay > 0 and fault.stall_after_bytes is not None:
                head = body[: fault.stall_after_bytes]
                handler.wfile.write(head)
                handler.wfile.flush()
                self._stall(fault.delay)
                if self._stopping.is_set():
                    return
                body = body[len(head) :]
            handler.wfile.write(body)
            handler.wfile.flush()
        except OSError:
            pass  # the client gave up (timeout, size cap)


def _page_or_bad_token(
    page: dict[str, Any] | None, token: str | None
) -> tuple[int, dict[str, Any]]:
    if page is None:
        return 400, _invalid(
            "next_token", f"The `next_token` query parameter value [{token}] is not valid"
        )
    return 200, page


def _invalid(parameter: str, message: str) -> dict[str, Any]:
    return {
        "errors": [{"parameters": {parameter: []}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }


def _not_found(username: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "value": username,
                "detail": f"Could not find user with username: [{username}].",
                "title": "Not Found Error",
                "resource_type": "user",
                "parameter": "username",
                "resource_id": username,
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            }
        ]
    }
