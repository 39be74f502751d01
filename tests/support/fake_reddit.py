"""A loopback fake of Reddit (OAuth API, token endpoint, public search feeds) for praw.

``FakeReddit`` binds ``127.0.0.1`` on an ephemeral port and serves from a daemon thread.
Point a Reddit source's ``api_url``, ``auth_url`` and ``public_url`` at :attr:`FakeReddit.url`
(the collector's guarded session rewrites praw's hard-coded hosts to it)::

    with FakeReddit(client_id="cid", client_secret="secret") as reddit:
        reddit.load_cassette(path, ignore_params={"q"})       # replay a recorded praw cassette
        reddit.add_posts([{"title": "Acme is down", "created_utc": 1772441000}])
        reddit.inject(Fault.too_many_requests(retry_after=7))   # the next API request gets 429
        ...

What it answers, in this order:

* ``POST /api/v1/access_token``: checks the Basic client credentials (401 otherwise) and the
  ``client_credentials`` grant (200 with an ``error`` otherwise, as Reddit does) and issues
  a bearer token.
* Every other request except the feeds (``*.rss``) is an API request and must carry a bearer
  token the fake issued (401 otherwise). Then:

  1. :class:`Fault` answers queued with :meth:`FakeReddit.inject`, in order;
  2. interactions recorded in cassettes loaded with :meth:`FakeReddit.load_cassette`, matched on
     method + URL-decoded path without trailing slash + the *significant* query parameters
     (:data:`SIGNIFICANT_PARAMS`, compared as sorted pairs), played FIFO per key; a key whose
     queue ran dry answers **599** so a test cannot loop silently;
  3. ``GET /search``, ``GET /r/<subs>/search``: a JSON listing of the posts added with
     :meth:`FakeReddit.add_posts` that match ``q`` (any ``OR`` term, case-insensitive), newest
     first, ``limit`` capped at 100 as Reddit does, ``after``/``before`` pagination;
     ``GET /r/<subs>/comments``: the same for comments added with
     :meth:`FakeReddit.add_comments` (not filtered by ``q``);
  4. 404 otherwise.

* ``GET /search.rss``, ``GET /r/<subs>/search.rss``: an Atom feed shaped like Reddit's
  (``<id>t3_…</id>``, ``/u/name`` authors, the "submitted by … [link] [comments]" trailer),
  with the 25 newest matching posts (``limit`` up to 100), an ``ETag`` and 304 on a match.
  Faults queued with ``path="/search.rss"`` apply to it.

The time filter ``t`` is not applied (the fake has no clock). Every API response carries
``x-ratelimit-*`` headers; :attr:`FakeReddit.ratelimit` picks them. Every request is
recorded (:attr:`FakeReddit.requests`). Stalls are bounded by :data:`MAX_STALL` and end at
once when the server stops. Every connection is closed after one response.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

MAX_STALL = 30.0
"""No stall lasts longer than this many seconds, whatever a test asks for."""

TOKEN_PATH = "/api/v1/access_token"
REDDIT = "https://www.reddit.com"
"""Links in listings and feeds point at the real site, as Reddit's own do."""

SIGNIFICANT_PARAMS = frozenset(
    {"q", "query", "after", "before", "id", "ids", "url", "names", "sr_name"}
)
"""Query parameters that select a recorded answer; the rest (``limit``, ``raw_json``,
``sort``, ``syntax``, ``t``, ``restrict_sr``, ...) changed between praw versions."""

DEFAULT_SUBSTITUTIONS: Mapping[str, str] = {
    "<TEST_SUBREDDIT>": "listener_test",
    "<USERNAME>": "listener_user",
    "<ACCESS_TOKEN>": "recorded-token",
    "<USER_AGENT>": "listener-tests",
    "<CLIENT_ID>": "recorded-client",
    "<BASIC_AUTH>": "cmVjb3JkZWQ6c2VjcmV0",
}
"""What the placeholders of praw's cassettes become when loaded."""

_DROPPED_HEADERS = frozenset(
    {
        "content-encoding",
        "content-length",
        "transfer-encoding",
        "connection",
        "set-cookie",
        "strict-transport-security",
    }
)
_RATELIMIT_HEADERS = ("x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset")
_JSON = "application/json; charset=UTF-8"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class FakePost:
    """A submission the fake serves from its search endpoints. ``id`` (base36) is
    assigned by :meth:`FakeReddit.add_posts` when empty; ``author=None`` is a deleted
    account."""

    title: str
    created_utc: float
    selftext: str = ""
    author: str | None = "fake_user"
    score: int = 1
    num_comments: int = 0
    subreddit: str = "listener_test"
    id: str = ""

    @property
    def fullname(self) -> str:
        return f"t3_{self.id}"

    @property
    def permalink(self) -> str:
        slug = "_".join("".join(c if c.isalnum() else " " for c in self.title).lower().split())
        return f"/r/{self.subreddit}/comments/{self.id}/{slug[:50] or 'post'}/"

    def text(self) -> str:
        return f"{self.title}\n{self.selftext}"


@dataclass(frozen=True)
class FakeComment:
    """A comment the fake serves from ``/r/<subs>/comments``; ``link_id`` names the
    submission (``t3_…``)."""

    body: str
    created_utc: float
    author: str | None = "fake_user"
    score: int = 1
    subreddit: str = "listener_test"
    link_id: str = "t3_zzzzzz"
    link_title: str = "A thread"
    id: str = ""

    @property
    def fullname(self) -> str:
        return f"t1_{self.id}"

    @property
    def permalink(self) -> str:
        return f"/r/{self.subreddit}/comments/{self.link_id.removeprefix('t3_')}/_/{self.id}/"


@dataclass(frozen=True)
class RateLimit:
    """Fixed ``x-ratelimit-*`` values sent with every API response."""

    remaining: float
    used: int
    reset: int


@dataclass(frozen=True)
class Fault:
    """One scripted answer to an API request (see the ``Fault.*`` constructors).

    ``stall`` waits that many seconds before the status line (bounded by
    :data:`MAX_STALL`); ``content_length=False`` omits ``Content-Length`` (the body
    ends when the connection closes)."""

    status: int = 500
    body: bytes = b'{"message": "Internal Server Error", "error": 500}'
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = _JSON
    stall: float = 0.0
    content_length: bool = True

    @classmethod
    def too_many_requests(cls, retry_after: float | None = 7) -> Fault:
        """429 with Reddit's body and (unless ``None``) a ``Retry-After`` header."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return cls(429, b'{"message": "Too Many Requests", "error": 429}', headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx with a JSON body."""
        return cls(status, json.dumps({"message": "Server Error", "error": status}).encode())

    @classmethod
    def error(cls, status: int, message: str = "Error") -> Fault:
        """Any status with Reddit's JSON error body (403, 404, ...)."""
        return cls(status, json.dumps({"message": message, "error": status}).encode())

    @classmethod
    def stalled(cls, seconds: float) -> Fault:
        """No answer for ``seconds``, then an empty listing (if the client still waits)."""
        return cls(200, _listing_json("t3", [], None), stall=seconds)

    @classmethod
    def truncated_json(cls) -> Fault:
        """200 with a listing cut off in the middle (a valid ``Content-Length``)."""
        whole = _listing_json("t3", [{"id": "abc", "name": "t3_abc", "title": "x" * 200}], None)
        return cls(200, whole[: len(whole) // 2])

    @classmethod
    def oversized(cls, size: int, *, declare_length: bool = True) -> Fault:
        """200 with a ``size``-byte JSON body (with or without ``Content-Length``)."""
        head = b'{"kind": "Listing", "data": {"children": [], "pad": "'
        tail = b'"}}'
        pad = max(0, size - len(head) - len(tail))
        return cls(200, head + b"x" * pad + tail, content_length=declare_length)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it, and the status it answered (0: not answered)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass(frozen=True)
class _Recorded:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    stall: float = 0.0
    content_length: bool = True


Key = tuple[str, str, tuple[tuple[str, str], ...]]


# --------------------------------------------------------------------------- helpers


def _b36(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _B36[rest] + digits
        if number == 0:
            return digits


def normalise_path(path: str) -> str:
    """URL-decoded path without a trailing slash (``/`` stays ``/``)."""
    decoded = unquote(path)
    return decoded.rstrip("/") or "/"


def request_key(
    method: str, path: str, query: Mapping[str, str], ignore: Iterable[str] = ()
) -> Key:
    """The replay key of a request: method, normalised path, sorted significant params."""
    skip = set(ignore)
    significant = tuple(
        sorted((k, v) for k, v in query.items() if k in SIGNIFICANT_PARAMS and k not in skip)
    )
    return (method.upper(), normalise_path(path), significant)


def _listing_json(kind: str, children: list[dict[str, Any]], after: str | None) -> bytes:
    listing = {
        "kind": "Listing",
        "data": {
            "after": after,
            "before": None,
            "dist": len(children),
            "modhash": "",
            "children": [{"kind": kind, "data": c} for c in children],
        },
    }
    return json.dumps(listing).encode()


def _terms(query: str) -> list[str]:
    """The OR-terms of a simple search query, lower-cased, quotes dropped."""
    parts = [p.strip().strip("()").strip().strip('"').strip().lower() for p in query.split(" OR ")]
    return [p for p in parts if p]


def _subreddits(path: str) -> list[str] | None:
    """``/r/a+b/...`` → ``["a", "b"]``; ``None`` for site-wide paths and ``r/all``."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "r":
        names = [n.lower() for n in parts[2].split("+") if n]
        return None if names in ([], ["all"]) else names
    return None


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"1", "true", "on", "yes"}


def _page(
    items: list[Any], query: Mapping[str, str], default_limit: int
) -> tuple[list[Any], str | None]:
    """Slice newest-first ``items`` by ``after``/``before``/``limit``."""
    try:
        limit = int(query.get("limit") or default_limit)
    except ValueError:
        limit = default_limit
    limit = max(1, min(limit, 100))
    names = [item.fullname for item in items]
    after, before = query.get("after"), query.get("before")
    if after and after in names:
        items = items[names.index(after) + 1 :]
    elif before and before in names:
        items = items[: names.index(before)]
    page = items[:limit]
    more = len(items) > limit
    return page, (page[-1].fullname if more and page else None)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _post_data(post: FakePost) -> dict[str, Any]:
    return {
        "id": post.id,
        "name": post.fullname,
        "title": post.title,
        "selftext": post.selftext,
        "author": post.author if post.author is not None else "[deleted]",
        "created_utc": post.created_utc,
        "created": post.created_utc,
        "score": post.score,
        "ups": post.score,
        "num_comments": post.num_comments,
        "subreddit": post.subreddit,
        "subreddit_name_prefixed": f"r/{post.subreddit}",
        "permalink": post.permalink,
        "url": REDDIT + post.permalink,
        "is_self": True,
        "over_18": False,
    }


def _comment_data(comment: FakeComment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "name": comment.fullname,
        "body": comment.body,
        "author": comment.author if comment.author is not None else "[deleted]",
        "created_utc": comment.created_utc,
        "created": comment.created_utc,
        "score": comment.score,
        "ups": comment.score,
        "subreddit": comment.subreddit,
        "link_id": comment.link_id,
        "link_title": comment.link_title,
        "parent_id": comment.link_id,
        "permalink": comment.permalink,
    }


def _selftext_html(text: str) -> str:
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    if not paragraphs:
        return ""
    inner = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return f'<!-- SC_OFF --><div class="md">{inner}</div><!-- SC_ON --> '


def atom_feed(posts: list[FakePost], self_url: str, query: str) -> bytes:
    """An Atom document shaped like Reddit's search feeds."""
    entries: list[str] = []
    for post in posts:
        link = REDDIT + post.permalink
        sub = html.escape(post.subreddit)
        if post.author is not None:
            user = f"{REDDIT}/user/{post.author}"
            by = f'<a href="{html.escape(user)}"> /u/{html.escape(post.author)} </a>'
            author = (
                f"<author><name>/u/{html.escape(post.author)}</name>"
                f"<uri>{html.escape(user)}</uri></author>"
            )
        else:
            by, author = "[deleted]", ""
        content = (
            f"{_selftext_html(post.selftext)}&#32; submitted by &#32; {by} <br/> "
            f'<span><a href="{html.escape(link)}">[link]</a></span> &#32; '
            f'<span><a href="{html.escape(link)}">[comments]</a></span>'
        )
        entries.append(
            f"<entry>{author}"
            f'<category term="{sub}" label="r/{sub}"/>'
            f'<content type="html">{html.escape(content)}</content>'
            f"<id>{post.fullname}</id>"
            f'<link href="{html.escape(link)}" />'
            f"<updated>{_iso(post.created_utc)}</updated>"
            f"<published>{_iso(post.created_utc)}</published>"
            f"<title>{html.escape(post.title)}</title>"
            "</entry>"
        )
    updated = _iso(max((p.created_utc for p in posts), default=0.0))
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<updated>{updated}</updated>"
        "<icon>https://www.redditstatic.com/icon.png/</icon>"
        f"<id>{html.escape(self_url)}</id>"
        f'<link rel="self" href="{html.escape(REDDIT + self_url)}" type="application/atom+xml" />'
        f"<title>reddit.com: search results - {html.escape(query)}</title>"
        + "".join(entries)
        + "</feed>"
    )
    return document.encode()


def load_interactions(
    path: Path, substitutions: Mapping[str, str] | None = None
) -> list[tuple[str, str, _Recorded]]:
    """``(method, uri, response)`` for every interaction of a vcrpy-style JSON cassette,
    placeholders substituted and transport headers dropped."""
    subs = {**DEFAULT_SUBSTITUTIONS, **(substitutions or {})}

    def fill(text: str) -> str:
        for placeholder, value in subs.items():
            text = text.replace(placeholder, value)
        return text

    data = json.loads(path.read_text(encoding="utf-8"))
    out: list[tuple[str, str, _Recorded]] = []
    for interaction in data["interactions"]:
        request, response = interaction["request"], interaction["response"]
        headers: list[tuple[str, str]] = []
        for name, values in (response.get("headers") or {}).items():
            if name.lower() in _DROPPED_HEADERS:
                continue
            listed = values if isinstance(values, list) else [values]
            headers.extend((name, fill(str(value))) for value in listed)
        body = response.get("body", {}).get("string") or ""
        raw = fill(str(body)).encode("utf-8")
        status = response["status"]
        out.append(
            (
                str(request["method"]).upper(),
                fill(str(request["uri"])),
                _Recorded(
                    int(status["code"]), str(status.get("message") or ""), tuple(headers), raw
                ),
            )
        )
    return out


# --------------------------------------------------------------------------- server


class _Server(LoopbackHTTPServer):
    owner: FakeReddit


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _serve(self) -> None:
        self.close_connection = True
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = owner._answer(self.command, parts.path, query, headers, body)
        owner._record(
            RecordedRequest(self.command, parts.path, query, headers, body, answer.status)
        )
        try:
            if answer.stall > 0:
                owner._stall(answer.stall)
                if owner._stopping.is_set():
                    return
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            if answer.content_length:
                self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
            self.wfile.flush()
        except OSError:
            # The client gave up (timeout, size cap): nothing to report.
            self.close_connection = True


class FakeReddit(LoopbackServer):
    """A loopback fake of Reddit; see the module docstring. Thread-safe.

    ``ratelimit``: ``"auto"`` (default) sends recorded ``x-ratelimit-*`` headers where a
    cassette has them and otherwise generous ones (``used`` counts API requests in windows
    of 500, ``remaining = 1000 - used``, ``reset = 300``), under which prawcore never paces
    and the quota never runs out; a :class:`RateLimit` sends those values on every API
    response; ``None`` sends none.
    """

    handler_class = _Handler
    server_class = _Server

    def __init__(
        self,
        *,
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",
        token_lifetime: int = 3600,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.ratelimit: RateLimit | Literal["auto"] | None = "auto"
        self._lock = threading.Lock()
        self._tokens: set[str] = set()
        self._issued = 0
        self._api_served = 0
        self._faults: deque[tuple[str | None, str | None, Fault]] = deque()
        self._recorded: dict[Key, deque[_Recorded]] = {}
        self._ignored: dict[Key, frozenset[str]] = {}
        self._posts: list[FakePost] = []
        self._comments: list[FakeComment] = []
        self._next_id = 36**5  # ids start at "100000", like real six-character ids
        self._requests: list[RecordedRequest] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``) for ``api_url``, ``auth_url`` and ``public_url``."""
        return self.base_url

    # ------------------------------------------------------------------ programming

    def load_cassette(
        self,
        path: Path,
        *,
        substitutions: Mapping[str, str] | None = None,
        ignore_params: Iterable[str] = (),
    ) -> int:
        """Queue the API interactions of a recorded praw cassette (vcrpy JSON schema) for
        replay; token interactions are skipped (the fake issues its own tokens).
        ``ignore_params`` drops significant params from this cassette's keys (e.g.
        ``{"q"}`` to answer any search query with the recorded one). Returns the number
        of interactions queued."""
        ignore = frozenset(ignore_params)
        queued = 0
        with self._lock:
            for method, uri, recorded in load_interactions(path, substitutions):
                parts = urlsplit(uri)
                if normalise_path(parts.path) == TOKEN_PATH:
                    continue
                query = dict(parse_qsl(parts.query, keep_blank_values=True))
                key = request_key(method, parts.path, query, ignore)
                self._recorded.setdefault(key, deque()).append(recorded)
                self._ignored[key] = ignore
                queued += 1
        return queued

    def add_posts(self, posts: Iterable[FakePost | Mapping[str, Any]]) -> list[FakePost]:
        """Add submissions (``FakePost`` or dicts of its fields: title, created_utc,
        selftext, author, score, num_comments, subreddit, id) to the search endpoints.
        Returns them with their ids."""
        added: list[FakePost] = []
        names = {f.name for f in fields(FakePost)}
        with self._lock:
            for item in posts:
                post = (
                    item
                    if isinstance(item, FakePost)
                    else FakePost(**{k: v for k, v in item.items() if k in names})
                )
                if not post.id:
                    post = replace(post, id=self._new_id())
                self._posts.append(post)
                added.append(post)
            self._posts.sort(key=lambda p: (p.created_utc, p.id), reverse=True)
        return added

    def add_comments(
        self, comments: Iterable[FakeComment | Mapping[str, Any]]
    ) -> list[FakeComment]:
        """Add comments (``FakeComment`` or dicts of its fields) to ``/r/<subs>/comments``."""
        added: list[FakeComment] = []
        names = {f.name for f in fields(FakeComment)}
        with self._lock:
            for item in comments:
                comment = (
                    item
                    if isinstance(item, FakeComment)
                    else FakeComment(**{k: v for k, v in item.items() if k in names})
                )
                if not comment.id:
                    comment = replace(comment, id=self._new_id())
                self._comments.append(comment)
                added.append(comment)
            self._comments.sort(key=lambda c: (c.created_utc, c.id), reverse=True)
        return added

    def inject(self, *faults: Fault, path: str | None = None, method: str | None = None) -> None:
        """Answer the next matching requests with ``faults``, in order. ``path`` (decoded,
        trailing slash ignored) limits them to one path, e.g. ``/r/all/search``,
        ``/search.rss`` or ``/api/v1/access_token``; without it they apply to the next API
        requests (never to the token endpoint or the feeds)."""
        wanted = normalise_path(path) if path is not None else None
        with self._lock:
            for fault in faults:
                self._faults.append((wanted, method.upper() if method else None, fault))

    def revoke_tokens(self) -> None:
        """Forget every issued token: the next API request gets 401 (praw fetches a new one)."""
        with self._lock:
            self._tokens.clear()

    # ------------------------------------------------------------------ records

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def api_requests(self, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests other than token requests, optionally for one path."""
        wanted = normalise_path(path) if path is not None else None
        return [
            r
            for r in self.requests
            if normalise_path(r.path) != TOKEN_PATH
            and (wanted is None or normalise_path(r.path) == wanted)
        ]

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Recorded requests for one path (decoded, trailing slash ignored)."""
        wanted = normalise_path(path)
        return [r for r in self.requests if normalise_path(r.path) == wanted]

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._issued

    # ------------------------------------------------------------------ internals

    def _new_id(self) -> str:
        self._next_id += 1
        return _b36(self._next_id)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _stall(self, seconds: float) -> None:
        self._stopping.wait(min(max(seconds, 0.0), MAX_STALL))

    def _answer(
        self,
        method: str,
        raw_path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> _Answer:
        path = normalise_path(raw_path)
        if path == TOKEN_PATH:
            return self._fault_for(method, path, api=False) or self._token(method, headers, body)
        if path.endswith(".rss"):
            return self._fault_for(method, path, api=False) or self._feed(
                method, path, query, headers
            )
        if not self._authorised(headers):
            return _Answer(
                401,
                [
                    ("Content-Type", _JSON),
                    ("www-authenticate", 'Bearer realm="reddit", error="invalid_token"'),
                ],
                b'{"message": "Unauthorized", "error": 401}',
            )
        with self._lock:
            self._api_served += 1
        fault = self._fault_for(method, path, api=True)
        if fault is not None:
            return self._with_ratelimit(fault, recorded_has_limits=False)
        replay = self._replay(method, raw_path, query)
        if replay is not None:
            return replay
        if method == "GET" and (
            path == "/search" or (path.startswith("/r/") and path.endswith("/search"))
        ):
            return self._search_listing(path, query)
        if method == "GET" and path.startswith("/r/") and path.endswith("/comments"):
            return self._comment_listing(path, query)
        return self._with_ratelimit(
            _Answer(404, [("Content-Type", _JSON)], b'{"message": "Not Found", "error": 404}'),
            recorded_has_limits=False,
        )

    def _fault_for(self, method: str, path: str, *, api: bool) -> _Answer | None:
        with self._lock:
            for index, (wanted, wanted_method, fault) in enumerate(self._faults):
                if wanted_method is not None and wanted_method != method:
                    continue
                if (wanted is None and api) or wanted == path:
                    del self._faults[index]
                    return _Answer(
                        fault.status,
                        [("Content-Type", fault.content_type), *fault.headers.items()],
                        fault.body,
                        stall=fault.stall,
                        content_length=fault.content_length,
                    )
        return None

    def _replay(self, method: str, raw_path: str, query: Mapping[str, str]) -> _Answer | None:
        with self._lock:
            for key, queue in self._recorded.items():
                if key != request_key(method, raw_path, query, self._ignored.get(key, ())):
                    continue
                if not queue:
                    message = f"fake reddit: the recorded answers for {key} ran out"
                    return _Answer(599, [("Content-Type", "text/plain")], message.encode())
                recorded = queue.popleft()
                break
            else:
                return None
        has_limits = any(name.lower() == "x-ratelimit-remaining" for name, _ in recorded.headers)
        answer = _Answer(recorded.status, list(recorded.headers), recorded.body)
        return self._with_ratelimit(answer, recorded_has_limits=has_limits)

    def _with_ratelimit(self, answer: _Answer, *, recorded_has_limits: bool) -> _Answer:
        limit = self.ratelimit
        if limit == "auto" and recorded_has_limits:
            return answer
        headers = [(n, v) for n, v in answer.headers if n.lower() not in _RATELIMIT_HEADERS]
        if limit == "auto":
            with self._lock:
                used = (self._api_served - 1) % 500 + 1  # a fresh window every 500 requests
            headers += [
                ("x-ratelimit-remaining", f"{max(0, 1000 - used)}.0"),
                ("x-ratelimit-used", str(used)),
                ("x-ratelimit-reset", "300"),
            ]
        elif isinstance(limit, RateLimit):
            headers += [
                ("x-ratelimit-remaining", f"{limit.remaining:.1f}"),
                ("x-ratelimit-used", str(limit.used)),
                ("x-ratelimit-reset", str(limit.reset)),
            ]
        return replace(answer, headers=headers)

    def _authorised(self, headers: Mapping[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and token.strip() in self._tokens

    def _token(self, method: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        unauthorized = _Answer(
            401, [("Content-Type", _JSON)], b'{"message": "Unauthorized", "error": 401}'
        )
        if method != "POST":
            return _Answer(405, [("Content-Type", _JSON)], b'{"error": 405}')
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        try:
            user, _, password = (
                base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return unauthorized
        if scheme.lower() != "basic" or (user, password) != (self.client_id, self.client_secret):
            return unauthorized
        grant = dict(parse_qsl(body.decode("utf-8", "replace"))).get("grant_type")
        if grant != "client_credentials":
            payload: dict[str, Any] = {"error": "unsupported_grant_type"}
        else:
            with self._lock:
                self._issued += 1
                token = f"fake-token-{self._issued}"
                self._tokens.add(token)
            payload = {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
                "scope": "*",
            }
        return _Answer(200, [("Content-Type", _JSON)], json.dumps(payload).encode())

    def _matching_posts(
        self, path: str, query: Mapping[str, str], *, restrict: bool
    ) -> list[FakePost]:
        terms = _terms(query.get("q", ""))
        subs = _subreddits(path) if restrict else None
        with self._lock:
            posts = list(self._posts)
        return [
            p
            for p in posts
            if (not terms or any(t in p.text().lower() for t in terms))
            and (subs is None or p.subreddit.lower() in subs)
        ]

    def _search_listing(self, path: str, query: Mapping[str, str]) -> _Answer:
        restrict = path != "/search" and _truthy(query.get("restrict_sr"))
        posts = self._matching_posts(path, query, restrict=restrict)
        page, after = _page(posts, query, 25)
        body = _listing_json("t3", [_post_data(p) for p in page], after)
        return self._with_ratelimit(
            _Answer(200, [("Content-Type", _JSON)], body), recorded_has_limits=False
        )

    def _comment_listing(self, path: str, query: Mapping[str, str]) -> _Answer:
        subs = _subreddits(path)
        with self._lock:
            comments = [c for c in self._comments if subs is None or c.subreddit.lower() in subs]
        page, after = _page(comments, query, 25)
        body = _listing_json("t1", [_comment_data(c) for c in page], after)
        return self._with_ratelimit(
            _Answer(200, [("Content-Type", _JSON)], body), recorded_has_limits=False
        )

    def _feed(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> _Answer:
        if method != "GET" or not path.endswith("/search.rss"):
            return _Answer(404, [("Content-Type", "text/plain")], b"not found\n")
        restrict = path != "/search.rss" and _truthy(query.get("restrict_sr"))
        posts = self._matching_posts(path, query, restrict=restrict)
        page, _ = _page(posts, query, 25)
        self_url = path + "?" + "&".join(f"{k}={quote(v)}" for k, v in sorted(query.items()))
        body = atom_feed(page, self_url, query.get("q", ""))
        etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest()[:16] + '"'
        if etag in {t.strip() for t in headers.get("if-none-match", "").split(",")}:
            return _Answer(304, [("ETag", etag)], b"")
        return _Answer(
            200, [("Content-Type", "application/atom+xml; charset=UTF-8"), ("ETag", etag)], body
        )
