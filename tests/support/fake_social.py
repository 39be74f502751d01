"""Loopback fakes of the Hacker News (Algolia), Mastodon, Bluesky and GDELT DOC APIs.

Each fake binds ``127.0.0.1`` on an ephemeral port, serves from a daemon thread and is a
context manager; ``url`` is its base URL. They are built from the services' public
documentation and answer the real client libraries (httpx, Mastodon.py, atproto), so a
test, or a daemon started as a subprocess, talks to them over real sockets::

    with FakeHackerNews() as hn:
        hn.add("Acme is down again", author="pg", created_at=now - timedelta(minutes=5))
        config = {"type": "hackernews", "api_url": hn.api_url}
        ...

    with FakeMastodon(token="s3cret") as masto:      # config: instance=masto.url
        masto.add("#acme outage", acct="bob@example.social", created_at=now)

    with FakeBluesky(accounts={"me.test": "app-pass"}) as bsky:   # service_url=bsky.url
        bsky.add("acme broke my order", handle="carol.test", created_at=now)

    with FakeGdelt() as gdelt:                        # config: api_url=gdelt.api_url
        gdelt.add("Acme recalls its kettles", seen_at=now, domain="news.example")

Posts are returned newest first with the services' own pagination and filters
(``numericFilters``/``page``; ``since_id``/``max_id``/``min_id`` and ``offset``;
``since``/``until``/``cursor``). Every request is recorded (:attr:`requests`).

:meth:`_Fake.fail` scripts failures in front of the normal answers: ``"rate_limit"``
(429 with ``Retry-After`` and the service's rate-limit headers), ``"server_error"``
(500), ``"stall"`` (no answer for a while, bounded by :data:`MAX_STALL` and ended at once
when the fake stops) and ``"truncated"`` (the normal JSON cut in half, with a matching
``Content-Length``). By default a failure hits the fake's data endpoint only (search or
timeline), not instance metadata or login. Every connection is closed after one answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

MAX_STALL = 30.0
"""No stall lasts longer than this many seconds, whatever a test asks for."""

FailureKind = Literal["rate_limit", "server_error", "stall", "truncated"]
When = datetime | int | float
"""A post's time: an aware datetime, or epoch seconds."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as a fake saw it, and the status it answered (``None``: stalled)."""

    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.params.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class _Failure:
    kind: FailureKind
    paths: tuple[str, ...]
    retry_after: float
    retry_after_header: bool
    stall: float


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = "application/json; charset=utf-8"


def _json(status: int, data: Any, headers: Iterable[tuple[str, str]] = ()) -> _Answer:
    return _Answer(status, json.dumps(data).encode(), list(headers))


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(data))
    return copied


def _epoch(when: When) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("use an aware datetime")
        return when.timestamp()
    return float(when)


def _iso(epoch: float) -> str:
    """``2026-03-02T08:59:00.000Z``: the millisecond UTC form the services use."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(value: str) -> float | None:
    """Epoch seconds of an ISO datetime or date; ``None`` when unparseable."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _int_param(params: Mapping[str, list[str]], name: str) -> int | None:
    values = params.get(name)
    if not values or not values[0].strip():
        return None
    try:
        return int(values[0])
    except ValueError:
        return None


_TAG_RE = re.compile(r"<[^>]*>")


def _plain(fragment: str | None) -> str:
    return html.unescape(_TAG_RE.sub(" ", fragment or "")).lower()


class _Server(LoopbackHTTPServer):
    owner: _Fake


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.owner._serve(self)

    def do_POST(self) -> None:
        self.server.owner._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""


class _Fake(LoopbackServer):
    """What the three fakes share: lifecycle, recording, scripted failures."""

    handler_class = _Handler
    server_class = _Server

    data_paths: ClassVar[tuple[str, ...]] = ("/",)
    """Path prefixes that :meth:`fail` hits by default."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return self.base_url

    # ------------------------------------------------------------------ scripting

    def fail(
        self,
        kind: FailureKind,
        *,
        times: int = 1,
        path: str | None = None,
        retry_after: float = 30.0,
        retry_after_header: bool = True,
        stall: float = MAX_STALL,
    ) -> None:
        """Answer the next ``times`` requests whose path starts with ``path`` (default:
        the data endpoints) with a failure instead of the normal answer.

        ``rate_limit``: 429 whose rate-limit window resets in ``retry_after`` seconds,
        with a ``Retry-After`` header unless ``retry_after_header`` is false.
        ``stall``: wait ``stall`` seconds (at most :data:`MAX_STALL`) before answering.
        """
        paths = (path,) if path else self.data_paths
        failure = _Failure(kind, paths, retry_after, retry_after_header, stall)
        with self._lock:
            self._failures.extend([failure] * times)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """The recorded requests whose path starts with ``path``."""
        return [r for r in self.requests if r.path.startswith(path)]

    # ------------------------------------------------------------------ per service

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> _Answer:
        raise NotImplementedError

    def _rate_limit_headers(self, retry_after: float) -> list[tuple[str, str]]:
        return []

    def _error(self, status: int, message: str) -> _Answer:
        return _json(status, {"error": message})

    # ------------------------------------------------------------------ internals

    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if path.startswith(failure.paths):
                    self._failures.remove(failure)
                    return failure
        return None

    def _serve(self, handler: _Handler) -> None:
        handler.close_connection = True
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        parts = urlsplit(handler.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        failure = self._take_failure(parts.path)
        answer: _Answer | None
        if failure is not None and failure.kind == "rate_limit":
            answer = self._error(429, "Too many requests")
            answer.headers.extend(self._rate_limit_headers(failure.retry_after))
            if failure.retry_after_header:
                answer.headers.append(("Retry-After", f"{failure.retry_after:g}"))
        elif failure is not None and failure.kind == "server_error":
            answer = self._error(500, "Internal server error")
        else:
            try:
                with self._lock:
                    answer = self._answer(handler.command, parts.path, params, headers, body)
            except Exception as exc:  # a bug in the fake: say so loudly
                answer = _json(599, {"error": "FakeBug", "message": repr(exc)})
            if failure is not None and failure.kind == "truncated":
                answer.body = answer.body[: max(1, len(answer.body) // 2)]
        stalled = failure is not None and failure.kind == "stall"
        record = RecordedRequest(
            handler.command, parts.path, params, headers, body, None if stalled else answer.status
        )
        with self._lock:
            self._requests.append(record)
        try:
            if failure is not None and stalled:
                self._stopping.wait(min(max(failure.stall, 0.0), MAX_STALL))
                if self._stopping.is_set():
                    return
            handler.send_response(answer.status)
            if answer.content_type is not None:
                handler.send_header("Content-Type", answer.content_type)
            handler.send_header("Content-Length", str(len(answer.body)))
            handler.send_header("Connection", "close")
            for name, value in answer.headers:
                handler.send_header(name, value)
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(answer.body)
            handler.wfile.flush()
        except OSError:
            pass  # the client gave up (timeout, size cap): nothing to report


# ============================================================================ Hacker News

_NUMERIC = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|!=|<|>|=)\s*(-?\d+(?:\.\d+)?)\s*$")
_PHRASE_OR_WORD = re.compile(r'([+-]?)(?:"([^"]*)"|(\S+))')


def _terms(query: str) -> list[tuple[str, str]]:
    """``(operator, lowercased term)`` pairs of a query: phrases in quotes, or words."""
    out: list[tuple[str, str]] = []
    for op, phrase, word in _PHRASE_OR_WORD.findall(query):
        term = (phrase if phrase else word).strip().lower()
        if term:
            out.append((op, term))
    return out


class FakeHackerNews(_Fake):
    """The Hacker News search API of Algolia (``/api/v1/search_by_date``, ``/api/v1/search``).

    A query matches an item when every word (or quoted phrase) of it occurs in the
    item's title, text, URL or author, as in Algolia, where there is no ``OR``.
    ``tags`` takes ``story``, ``comment``, ``author_NAME`` and ``story_ID``, joined by
    commas (AND) with parenthesised groups (OR); ``numericFilters`` compares
    ``created_at_i``, ``points`` and ``num_comments``. ``hitsPerPage`` is at most 1000,
    ``page`` counts from 0, and at most 1000 hits can be paged through.
    """

    data_paths = ("/api/v1/search",)
    MAX_HITS = 1000

    def __init__(self) -> None:
        super().__init__()
        self._items: list[dict[str, Any]] = []
        self._next_id = 40_000_000

    @property
    def api_url(self) -> str:
        """The ``api_url`` to configure: ``http://127.0.0.1:PORT/api/v1``."""
        return f"{self.url}/api/v1"

    def add(
        self,
        text: str = "",
        *,
        created_at: When,
        kind: Literal["story", "comment"] = "story",
        title: str | None = None,
        author: str = "alice",
        points: int | None = None,
        num_comments: int | None = None,
        url: str | None = None,
        story_id: int | None = None,
        story_title: str | None = None,
        object_id: str | None = None,
    ) -> dict[str, Any]:
        """Add a story (``title`` or, without one, ``text`` is its title; ``text`` with a
        title is its ``story_text``) or a comment (``text`` is its HTML ``comment_text``).
        Returns the hit as the API serves it."""
        with self._lock:
            self._next_id += 1
            oid = object_id or str(self._next_id)
        epoch = int(_epoch(created_at))
        hit: dict[str, Any] = {
            "objectID": oid,
            "created_at": _iso(epoch),
            "created_at_i": epoch,
            "updated_at": _iso(epoch),
            "author": author,
        }
        if kind == "story":
            hit.update(
                title=title if title is not None else text,
                url=url,
                story_text=text if title is not None and text else None,
                comment_text=None,
                points=1 if points is None else points,
                num_comments=0 if num_comments is None else num_comments,
                story_id=int(oid) if oid.isdigit() else None,
                story_title=None,
                story_url=None,
                parent_id=None,
                _tags=["story", f"author_{author}", f"story_{oid}"],
            )
        else:
            parent = story_id if story_id is not None else 39_999_999
            hit.update(
                title=None,
                url=None,
                story_text=None,
                comment_text=text,
                points=points,
                num_comments=num_comments,
                story_id=parent,
                story_title=story_title or "A story",
                story_url=url,
                parent_id=parent,
                _tags=["comment", f"author_{author}", f"story_{parent}"],
            )
        with self._lock:
            self._items.append(hit)
        return dict(hit)

    def _error(self, status: int, message: str) -> _Answer:
        return _json(status, {"message": message, "status": status})

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> _Answer:
        path = path.rstrip("/")
        if method != "GET":
            return self._error(404, "Not Found")
        if path not in ("/api/v1/search_by_date", "/api/v1/search"):
            return self._error(404, "Not Found")
        try:
            tag_groups = self._tag_groups(params.get("tags", [""])[0])
            numeric = self._numeric(params.get("numericFilters", [""])[0])
        except ValueError as exc:
            return self._error(400, str(exc))
        query = params.get("query", [""])[0]
        hits_per_page = max(1, min(_int_param(params, "hitsPerPage") or 20, 1000))
        page = max(0, _int_param(params, "page") or 0)
        words = _terms(query)
        found = [
            hit
            for hit in self._items
            if self._matches(hit, words) and self._tagged(hit, tag_groups) and numeric(hit)
        ]
        if path.endswith("search_by_date"):
            found.sort(key=lambda h: (h["created_at_i"], h["objectID"]), reverse=True)
        else:
            found.sort(key=lambda h: (h.get("points") or 0, h["created_at_i"]), reverse=True)
        reachable = found[: self.MAX_HITS]
        pages = math.ceil(len(reachable) / hits_per_page)
        start = page * hits_per_page
        hits = reachable[start : start + hits_per_page]
        return _json(
            200,
            {
                "hits": hits,
                "nbHits": len(found),
                "page": page,
                "nbPages": pages,
                "hitsPerPage": hits_per_page,
                "exhaustiveNbHits": True,
                "exhaustiveTypo": True,
                "query": query,
                "params": urlencode({k: v[0] for k, v in params.items()}),
                "processingTimeMS": 1,
            },
        )

    @staticmethod
    def _matches(hit: Mapping[str, Any], words: list[tuple[str, str]]) -> bool:
        haystack = " ".join(
            _plain(hit.get(key))
            for key in ("title", "story_text", "comment_text", "url", "author")
            if hit.get(key)
        )
        for op, term in words:
            present = term in haystack
            if present == (op == "-"):
                return False
        return True

    @staticmethod
    def _tag_groups(value: str) -> list[set[str]]:
        groups: list[set[str]] = []
        depth, current, token = 0, set[str](), ""
        for char in value + ",":
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            elif char == "," and depth == 0:
                if token.strip():
                    current.add(token.strip())
                if current:
                    groups.append(current)
                current, token = set(), ""
            elif char == "," and depth > 0:
                if token.strip():
                    current.add(token.strip())
                token = ""
            else:
                token += char
            if depth < 0 or depth > 1:
                raise ValueError(f"invalid tags {value!r}")
        if depth != 0:
            raise ValueError(f"invalid tags {value!r}")
        return groups

    @staticmethod
    def _tagged(hit: Mapping[str, Any], groups: list[set[str]]) -> bool:
        tags = set(hit["_tags"])
        return all(group & tags for group in groups)

    @staticmethod
    def _numeric(value: str) -> Any:
        checks: list[tuple[str, str, float]] = []
        for part in (p for p in value.split(",") if p.strip()):
            match = _NUMERIC.match(part)
            if match is None or match.group(1) not in ("created_at_i", "points", "num_comments"):
                raise ValueError(f"invalid numericFilters {part!r}")
            checks.append((match.group(1), match.group(2), float(match.group(3))))

        def accept(hit: Mapping[str, Any]) -> bool:
            for name, op, number in checks:
                have = hit.get(name)
                if have is None:
                    return False
                ok = {
                    "<": have < number,
                    "<=": have <= number,
                    ">": have > number,
                    ">=": have >= number,
                    "=": have == number,
                    "!=": have != number,
                }[op]
                if not ok:
                    return False
            return True

        return accept


# ============================================================================ Mastodon


class FakeMastodon(_Fake):
    """A Mastodon instance: ``/api/v1/instance``, ``/api/v2/instance``,
    ``/api/v1/timelines/tag/:hashtag`` and ``/api/v2/search``. Call :meth:`add` while it
    runs (statuses carry its URL).

    Status ids are snowflakes (time-ordered numeric strings). Tag timelines are public (a
    token is ignored, as on Mastodon) and hold the public statuses carrying the tag (no
    reblogs, as on Mastodon), newest first, with ``max_id``/``since_id``/``min_id``,
    ``limit`` (≤ 40) and a ``Link`` header. Status search needs the bearer ``token`` (a
    wrong one is refused with 401; without one, ``statuses`` is empty and ``offset`` is
    refused). Its plain terms and quoted phrases are OR-ed, ``+term`` is required and
    ``-term`` excluded, as in Mastodon's query parser; results are newest first with
    ``offset``/``min_id``/``max_id``. Every answer carries ``X-RateLimit-*`` headers.
    """

    data_paths = ("/api/v1/timelines/", "/api/v2/search")
    VERSION = "4.3.0"

    def __init__(self, *, token: str | None = None, hashtag_feeds: str = "public") -> None:
        super().__init__()
        self.token = token
        self.hashtag_feeds = hashtag_feeds
        self._statuses: list[dict[str, Any]] = []
        self._seq = 0
        self._remaining = 300

    def add(
        self,
        text: str,
        *,
        created_at: When,
        acct: str = "alice",
        display_name: str | None = None,
        followers: int = 0,
        tags: Iterable[str] = (),
        language: str | None = "en",
        likes: int = 0,
        reposts: int = 0,
        replies: int = 0,
        spoiler_text: str = "",
        visibility: str = "public",
    ) -> dict[str, Any]:
        """Add a status. Its hashtags are ``tags`` plus every ``#word`` in ``text``;
        ``text`` becomes HTML ``content``. Returns the status as the API serves it."""
        epoch = _epoch(created_at)
        with self._lock:
            self._seq += 1
            sid = str((int(epoch * 1000) << 16) + (self._seq & 0xFFFF))
        names = list(dict.fromkeys([t.lstrip("#").lower() for t in tags if t.lstrip("#")]))
        for found in re.findall(r"(?<!\w)#(\w+)", text):
            if found.lower() not in names:
                names.append(found.lower())
        username = acct.split("@", 1)[0]
        base = f"http://127.0.0.1:{self.port}"
        content = (
            "<p>"
            + re.sub(
                r"(?<!\w)#(\w+)",
                lambda m: (
                    f'<a href="{base}/tags/{m.group(1).lower()}" class="mention hashtag" '
                    f'rel="tag">#<span>{m.group(1)}</span></a>'
                ),
                html.escape(text, quote=False),
            ).replace("\n", "<br />")
            + "</p>"
        )
        account_id = str(int(hashlib.sha1(acct.encode()).hexdigest()[:12], 16))
        status: dict[str, Any] = {
            "id": sid,
            "uri": f"{base}/users/{username}/statuses/{sid}",
            "url": f"{base}/@{username}/{sid}",
            "created_at": _iso(epoch),
            "edited_at": None,
            "in_reply_to_id": None,
            "in_reply_to_account_id": None,
            "sensitive": bool(spoiler_text),
            "spoiler_text": spoiler_text,
            "visibility": visibility,
            "language": language,
            "replies_count": replies,
            "reblogs_count": reposts,
            "favourites_count": likes,
            "content": content,
            "reblog": None,
            "application": None,
            "account": {
                "id": account_id,
                "username": username,
                "acct": acct,
                "display_name": display_name if display_name is not None else username,
                "locked": False,
                "bot": False,
                "discoverable": True,
                "group": False,
                "created_at": "2020-01-01T00:00:00.000Z",
                "note": "",
                "url": f"{base}/@{username}",
                "uri": f"{base}/users/{username}",
                "avatar": f"{base}/avatars/original/missing.png",
                "avatar_static": f"{base}/avatars/original/missing.png",
                "header": f"{base}/headers/original/missing.png",
                "header_static": f"{base}/headers/original/missing.png",
                "followers_count": followers,
                "following_count": 0,
                "statuses_count": 1,
                "last_status_at": _iso(epoch)[:10],
                "emojis": [],
                "fields": [],
            },
            "media_attachments": [],
            "mentions": [],
            "tags": [{"name": n, "url": f"{base}/tags/{n}"} for n in names],
            "emojis": [],
            "card": None,
            "poll": None,
        }
        with self._lock:
            self._statuses.append(status)
        return _copy(status)

    # ------------------------------------------------------------------ serving

    def _rate_limit_headers(self, retry_after: float) -> list[tuple[str, str]]:
        reset = datetime.now(UTC) + timedelta(seconds=retry_after)
        return [
            ("X-RateLimit-Limit", "300"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", reset.isoformat(timespec="microseconds").replace("+00:00", "Z")),
        ]

    def _usual_headers(self) -> list[tuple[str, str]]:
        self._remaining = max(0, self._remaining - 1)
        reset = datetime.now(UTC) + timedelta(minutes=5)
        return [
            ("X-RateLimit-Limit", "300"),
            ("X-RateLimit-Remaining", str(self._remaining)),
            ("X-RateLimit-Reset", reset.isoformat(timespec="microseconds").replace("+00:00", "Z")),
        ]

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> _Answer:
        path = path.rstrip("/")
        authorization = headers.get("authorization", "")
        authed = bool(self.token) and authorization == f"Bearer {self.token}"
        if authorization and not authed and path == "/api/v2/search":
            # search checks a token when one is sent; public timelines ignore it
            return self._error(401, "The access token is invalid")
        if method != "GET":
            return self._error(404, "Record not found")
        if path == "/api/v1/instance":
            answer = _json(200, self._instance_v1())
        elif path == "/api/v2/instance":
            answer = _json(200, self._instance_v2())
        elif path.startswith("/api/v1/timelines/tag/"):
            answer = self._tag_timeline(path.rsplit("/", 1)[1], params)
        elif path == "/api/v2/search":
            answer = self._search(params, authed)
        else:
            answer = self._error(404, "Record not found")
        answer.headers.extend(self._usual_headers())
        return answer

    def _instance_v1(self) -> dict[str, Any]:
        return {
            "uri": f"127.0.0.1:{self.port}",
            "title": "Fake Mastodon",
            "short_description": "",
            "description": "A loopback fake",
            "email": "admin@example.test",
            "version": self.VERSION,
            "urls": {"streaming_api": f"ws://127.0.0.1:{self.port}"},
            "stats": {"user_count": 1, "status_count": len(self._statuses), "domain_count": 1},
            "thumbnail": None,
            "languages": ["en"],
            "registrations": False,
            "approval_required": False,
            "invites_enabled": False,
            "configuration": {"statuses": {"max_characters": 500}},
            "contact_account": None,
            "rules": [],
        }

    def _instance_v2(self) -> dict[str, Any]:
        feeds = {"local": self.hashtag_feeds, "remote": self.hashtag_feeds}
        return {
            "domain": f"127.0.0.1:{self.port}",
            "title": "Fake Mastodon",
            "version": self.VERSION,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "A loopback fake",
            "usage": {"users": {"active_month": 1}},
            "thumbnail": {"url": f"{self.url}/thumb.png"},
            "languages": ["en"],
            "api_versions": {"mastodon": 2},
            "configuration": {
                "urls": {"streaming": f"ws://127.0.0.1:{self.port}"},
                "statuses": {"max_characters": 500},
                "timelines_access": {
                    "live_feeds": {"local": "public", "remote": "public"},
                    "hashtag_feeds": feeds,
                    "trending_link_feeds": {"local": "public", "remote": "public"},
                },
            },
            "registrations": {"enabled": False, "approval_required": False, "message": None},
            "contact": {"email": "admin@example.test", "account": None},
            "rules": [],
        }

    @staticmethod
    def _id_key(value: str) -> tuple[int, str]:
        return (len(value), value)

    def _window(
        self, statuses: list[dict[str, Any]], params: Mapping[str, list[str]], limit: int
    ) -> list[dict[str, Any]]:
        key = self._id_key
        max_id = params.get("max_id", [""])[0]
        since_id = params.get("since_id", [""])[0]
        min_id = params.get("min_id", [""])[0]
        chosen = [
            s
            for s in statuses
            if (not max_id or key(s["id"]) < key(max_id))
            and (not since_id or key(s["id"]) > key(since_id))
            and (not min_id or key(s["id"]) > key(min_id))
        ]
        chosen.sort(key=lambda s: key(s["id"]), reverse=True)
        if min_id:  # the page immediately newer than min_id, still served newest first
            return chosen[-limit:]
        return chosen[:limit]

    def _tag_timeline(self, tag: str, params: Mapping[str, list[str]]) -> _Answer:
        limit = max(1, min(_int_param(params, "limit") or 20, 40))
        wanted = tag.lower()
        statuses = [
            s
            for s in self._statuses
            if s["visibility"] == "public"
            and s["reblog"] is None
            and any(t["name"] == wanted for t in s["tags"])
        ]
        page = self._window(statuses, params, limit)
        links: list[tuple[str, str]] = []
        if page:
            base = f"{self.url}/api/v1/timelines/tag/{quote(tag)}"
            links.append(
                (
                    "Link",
                    f'<{base}?max_id={page[-1]["id"]}>; rel="next", '
                    f'<{base}?min_id={page[0]["id"]}>; rel="prev"',
                )
            )
        return _json(200, page, links)

    def _search(self, params: Mapping[str, list[str]], authed: bool) -> _Answer:
        query = params.get("q", [""])[0]
        kind = params.get("type", [""])[0]
        offset = _int_param(params, "offset") or 0
        limit = max(1, min(_int_param(params, "limit") or 20, 40))
        if offset and not authed:
            return self._error(
                401, "Search queries pagination is not supported without authentication"
            )
        statuses: list[dict[str, Any]] = []
        if authed and kind in ("", "statuses"):
            clauses = _terms(query)
            matching = [s for s in self._statuses if s["reblog"] is None and self._hit(s, clauses)]
            ordered = self._window(matching, params, len(matching) or 1)
            statuses = ordered[offset : offset + limit]
        return _json(200, {"accounts": [], "statuses": statuses, "hashtags": []})

    @staticmethod
    def _hit(status: Mapping[str, Any], clauses: list[tuple[str, str]]) -> bool:
        if not clauses:
            return False
        text = _plain(status["content"]) + " " + _plain(status["spoiler_text"])
        words = set(re.findall(r"\w+", text))

        def has(term: str) -> bool:
            return term in text if " " in term else term.lstrip("#") in words

        musts = [t for op, t in clauses if op == "+"]
        nots = [t for op, t in clauses if op == "-"]
        shoulds = [t for op, t in clauses if op == ""]
        if any(has(t) for t in nots) or not all(has(t) for t in musts):
            return False
        return bool(musts) or any(has(t) for t in shoulds)


# ============================================================================ Bluesky

_B32_SORTABLE = "234567abcdefghijklmnopqrstuvwxyz"
_FORBIDDEN_PAGE = (
    b"<html><body><h1>403 Forbidden</h1>Request forbidden by administrative rules.</body></html>"
)


def _tid(micros: int, clock_id: int) -> str:
    """An AT Protocol TID (record key): 13 base32-sortable characters."""
    value = (micros << 10) | (clock_id & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(_B32_SORTABLE[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeBluesky(_Fake):
    """A Bluesky entryway, PDS and AppView in one: ``com.atproto.server.createSession`` /
    ``refreshSession`` / ``getSession``, ``app.bsky.actor.getProfile`` and
    ``app.bsky.feed.searchPosts``.

    ``accounts`` maps handles to app passwords. A session's ``didDoc`` names ``pds_url``
    (default: this fake) as the account's PDS, which atproto switches to after login.
    Tokens are decodable JWTs with ``exp``, signed with a key all FakeBluesky instances
    share, so a second fake can play the PDS. ``require_auth`` makes search without a
    session answer 403 ``AuthMissing`` and ``refuse_cursor_without_auth`` makes it refuse
    ``cursor`` with an HTML 403, as Bluesky's public AppView does at times.

    Search: every word or quoted phrase of ``q`` must occur (``-word`` excludes);
    ``since`` (inclusive) and ``until`` compare ``sortAt``, the earlier of ``createdAt``
    and ``indexedAt``; ``sort=latest`` is newest first; ``limit`` is 1–100 (default 25)
    and ``cursor`` is opaque.
    """

    data_paths = ("/xrpc/app.bsky.feed.searchPosts",)
    _SECRET = b"fake-bluesky"

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        require_auth: bool = False,
        refuse_cursor_without_auth: bool = False,
        pds_url: str | None = None,
        token_lifetime: float = 7200.0,
    ) -> None:
        super().__init__()
        self.accounts = dict(accounts or {})
        self.require_auth = require_auth
        self.refuse_cursor_without_auth = refuse_cursor_without_auth
        self.pds_url = pds_url
        self.token_lifetime = token_lifetime
        self._posts: list[dict[str, Any]] = []
        self._used_refresh: set[str] = set()
        self._seq = 0
        self._remaining = 3000

    @staticmethod
    def did_for(handle: str) -> str:
        """The ``did:plc`` the fake gives ``handle``."""
        digest = hashlib.sha256(handle.encode()).digest()
        return "did:plc:" + base64.b32encode(digest).decode().lower()[:24]

    def add(
        self,
        text: str,
        *,
        created_at: When,
        indexed_at: When | None = None,
        handle: str = "alice.test",
        display_name: str | None = None,
        langs: Iterable[str] | None = ("en",),
        likes: int = 0,
        reposts: int = 0,
        replies: int = 0,
        quotes: int = 0,
    ) -> dict[str, Any]:
        """Add a post; returns the ``postView`` the API serves."""
        created = _epoch(created_at)
        indexed = _epoch(indexed_at) if indexed_at is not None else created
        with self._lock:
            self._seq += 1
            rkey = _tid(int(created * 1_000_000), self._seq)
        did = self.did_for(handle)
        uri = f"at://{did}/app.bsky.feed.post/{rkey}"
        cid = (
            "bafyrei"
            + base64.b32encode(hashlib.sha256(uri.encode()).digest()).decode().lower()[:52]
        )
        record: dict[str, Any] = {
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": _iso(created),
        }
        if langs is not None:
            record["langs"] = list(langs)
        post: dict[str, Any] = {
            "$type": "app.bsky.feed.defs#postView",
            "uri": uri,
            "cid": cid,
            "author": {
                "did": did,
                "handle": handle,
                "displayName": display_name if display_name is not None else handle.split(".")[0],
                "labels": [],
                "createdAt": "2023-01-01T00:00:00.000Z",
            },
            "record": record,
            "replyCount": replies,
            "repostCount": reposts,
            "likeCount": likes,
            "quoteCount": quotes,
            "bookmarkCount": 0,
            "indexedAt": _iso(indexed),
            "labels": [],
        }
        with self._lock:
            self._posts.append({"view": post, "sort_at": min(created, indexed)})
        return _copy(post)

    # ------------------------------------------------------------------ serving

    def _error(self, status: int, message: str) -> _Answer:
        names = {
            400: "InvalidRequest",
            401: "AuthenticationRequired",
            429: "RateLimitExceeded",
            500: "InternalServerError",
        }
        return _json(status, {"error": names.get(status, "Error"), "message": message})

    def _rate_limit_headers(self, retry_after: float) -> list[tuple[str, str]]:
        return [
            ("RateLimit-Limit", "3000"),
            ("RateLimit-Remaining", "0"),
            ("RateLimit-Reset", str(int(time.time() + retry_after))),
            ("RateLimit-Policy", "3000;w=300"),
        ]

    def _usual_headers(self) -> list[tuple[str, str]]:
        self._remaining = max(0, self._remaining - 1)
        return [
            ("RateLimit-Limit", "3000"),
            ("RateLimit-Remaining", str(self._remaining)),
            ("RateLimit-Reset", str(int(time.time() + 300))),
            ("RateLimit-Policy", "3000;w=300"),
        ]

    def _jwt(self, handle: str, scope: str, lifetime: float) -> str:
        now = int(time.time())
        did = self.did_for(handle)
        header = _b64url(json.dumps({"typ": "at+jwt", "alg": "HS256"}).encode())
        claims: dict[str, Any] = {
            "scope": scope,
            "sub": did,
            "aud": "did:web:127.0.0.1",
            "iat": now,
            "exp": now + int(lifetime),
            "handle": handle,
        }
        self._seq += 1
        claims["jti"] = f"{did}-{self._seq}"
        payload = _b64url(json.dumps(claims).encode())
        signature = hmac.new(self._SECRET, f"{header}.{payload}".encode(), hashlib.sha256)
        return f"{header}.{payload}.{_b64url(signature.digest())}"

    def _session(self, handle: str) -> dict[str, Any]:
        did = self.did_for(handle)
        access = self._jwt(handle, "com.atproto.appPass", self.token_lifetime)
        refresh = self._jwt(handle, "com.atproto.refresh", 90 * 86400)
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": handle,
            "did": did,
            "didDoc": {
                "@context": [
                    "https://www.w3.org/ns/did/v1",
                    "https://w3id.org/security/multikey/v1",
                ],
                "id": did,
                "alsoKnownAs": [f"at://{handle}"],
                "verificationMethod": [
                    {
                        "id": f"{did}#atproto",
                        "type": "Multikey",
                        "controller": did,
                        "publicKeyMultibase": "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF",
                    }
                ],
                "service": [
                    {
                        "id": "#atproto_pds",
                        "type": "AtprotoPersonalDataServer",
                        "serviceEndpoint": self.pds_url or self.url,
                    }
                ],
            },
            "email": f"{handle}@example.test",
            "emailConfirmed": True,
            "active": True,
        }

    def _bearer(self, headers: Mapping[str, str]) -> str | None:
        value = headers.get("authorization", "")
        return value[7:] if value.startswith("Bearer ") else None

    def _verify(self, token: str, scope: str) -> dict[str, Any] | _Answer:
        """The claims of a token this fake (or any FakeBluesky) signed, or the error."""
        invalid = _json(400, {"error": "InvalidToken", "message": "Token could not be verified"})
        try:
            header, payload, signature = token.split(".")
            expected = hmac.new(self._SECRET, f"{header}.{payload}".encode(), hashlib.sha256)
            if not hmac.compare_digest(_b64url(expected.digest()), signature):
                return invalid
            claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
        except ValueError:
            return invalid
        if claims.get("scope") != scope and not (
            scope == "access" and claims.get("scope") != "com.atproto.refresh"
        ):
            return invalid
        if int(claims.get("exp", 0)) <= time.time():
            return _json(400, {"error": "ExpiredToken", "message": "Token has expired"})
        return claims

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> _Answer:
        nsid = path.removeprefix("/xrpc/").rstrip("/") if path.startswith("/xrpc/") else ""
        token = self._bearer(headers)
        claims: dict[str, Any] | None = None
        if token is not None:
            checked = self._verify(
                token,
                "com.atproto.refresh" if nsid == "com.atproto.server.refreshSession" else "access",
            )
            if isinstance(checked, _Answer):
                return checked
            claims = checked
        if nsid == "com.atproto.server.createSession" and method == "POST":
            answer = self._create_session(body)
        elif nsid == "com.atproto.server.refreshSession" and method == "POST":
            answer = self._refresh_session(token, claims)
        elif nsid == "com.atproto.server.getSession" and method == "GET":
            if claims is None:
                return _json(401, {"error": "AuthMissing", "message": "Authentication Required"})
            answer = _json(200, {"handle": claims["handle"], "did": claims["sub"], "active": True})
        elif nsid == "app.bsky.actor.getProfile" and method == "GET":
            answer = self._profile(params.get("actor", [""])[0])
        elif nsid == "app.bsky.feed.searchPosts" and method == "GET":
            if self.require_auth and claims is None:
                return _json(403, {"error": "AuthMissing", "message": "Authentication Required"})
            if self.refuse_cursor_without_auth and claims is None and params.get("cursor"):
                return _Answer(403, _FORBIDDEN_PAGE, content_type="text/html")
            answer = self._search(params)
        else:
            return _json(
                501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}
            )
        answer.headers.extend(self._usual_headers())
        return answer

    def _create_session(self, body: bytes) -> _Answer:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "Request body is not JSON")
        identifier = str(data.get("identifier") or "")
        password = str(data.get("password") or "")
        handle = identifier.removesuffix("@example.test") if "@" in identifier else identifier
        if not identifier or not password:
            return self._error(400, "Input must have the properties identifier and password")
        if self.accounts.get(handle) != password:
            return self._error(401, "Invalid identifier or password")
        return _json(200, self._session(handle))

    def _refresh_session(self, token: str | None, claims: Mapping[str, Any] | None) -> _Answer:
        if token is None or claims is None:
            return _json(401, {"error": "AuthMissing", "message": "Authentication Required"})
        if token in self._used_refresh:
            return _json(400, {"error": "ExpiredToken", "message": "Token has been revoked"})
        self._used_refresh.add(token)
        return _json(200, self._session(str(claims["handle"])))

    def _profile(self, actor: str) -> _Answer:
        handles = set(self.accounts) | {p["view"]["author"]["handle"] for p in self._posts}
        handle = next((h for h in handles if actor in (h, self.did_for(h))), None)
        if handle is None:
            return self._error(400, "Profile not found")
        return _json(
            200,
            {
                "did": self.did_for(handle),
                "handle": handle,
                "displayName": handle.split(".")[0],
                "description": "",
                "followersCount": 0,
                "followsCount": 0,
                "postsCount": sum(
                    1 for p in self._posts if p["view"]["author"]["handle"] == handle
                ),
                "indexedAt": "2023-01-01T00:00:00.000Z",
                "createdAt": "2023-01-01T00:00:00.000Z",
                "labels": [],
            },
        )

    def _search(self, params: Mapping[str, list[str]]) -> _Answer:
        query = params.get("q", [""])[0]
        if not query.strip():
            return self._error(400, 'Error: Params must have the property "q"')
        limit = _int_param(params, "limit")
        if limit is None:
            limit = 25
        if not 1 <= limit <= 100:
            return self._error(400, "Error: limit must be between 1 and 100")
        bounds: dict[str, float] = {}
        for name in ("since", "until"):
            value = params.get(name, [""])[0]
            if value:
                parsed = _parse_time(value)
                if parsed is None:
                    return self._error(400, f"Error: invalid {name} datetime")
                bounds[name] = parsed
        cursor = params.get("cursor", [""])[0]
        offset = int(cursor) if cursor.isdigit() else 0
        clauses = _terms(query)
        lang = params.get("lang", [""])[0]
        found = [
            p
            for p in self._posts
            if self._hit(p["view"], clauses)
            and ("since" not in bounds or p["sort_at"] >= bounds["since"])
            and ("until" not in bounds or p["sort_at"] < bounds["until"])
            and (not lang or lang in (p["view"]["record"].get("langs") or []))
        ]
        if params.get("sort", ["latest"])[0] == "top":
            found.sort(key=lambda p: (p["view"]["likeCount"], p["sort_at"]), reverse=True)
        else:
            found.sort(key=lambda p: (p["sort_at"], p["view"]["uri"]), reverse=True)
        page = found[offset : offset + limit]
        data: dict[str, Any] = {"posts": [p["view"] for p in page], "hitsTotal": len(found)}
        if offset + limit < len(found):
            data["cursor"] = str(offset + limit)
        return _json(200, data)

    @staticmethod
    def _hit(view: Mapping[str, Any], clauses: list[tuple[str, str]]) -> bool:
        text = str(view["record"].get("text") or "").lower()
        for op, term in clauses:
            if (term in text) == (op == "-"):
                return False
        return bool(clauses)


# ============================================================================ GDELT

GDELT_PATH = "/api/v2/doc/doc"
GDELT_SEENDATE = "%Y%m%dT%H%M%SZ"
GDELT_PARAM_TIME = "%Y%m%d%H%M%S"
GDELT_RATE_TEXT = "Please limit requests to one every 5 seconds."
GDELT_SHORT_TEXT = "The specified phrase is too short."
GDELT_PARENS_TEXT = "Parentheses may only be used around OR'd statements."
GDELT_OR_TEXT = "Queries containing OR'd terms must be surrounded by ()."
_GDELT_TOKEN = re.compile(r'\(|\)|-?"[^"]*"|[^\s()]+')


class FakeGdelt(_Fake):
    """The GDELT DOC 2.0 API in article-list mode (``/api/v2/doc/doc``).

    Articles are served in GDELT's JSON shape (``{"articles": [...]}``, or ``{}`` when
    nothing matches) between ``startdatetime`` and ``enddatetime`` (both inclusive),
    newest first (``sort=datedesc``; ``dateasc`` oldest first), at most ``maxrecords``
    (default 75, at most 250). The query is checked as GDELT checks it and refused the
    way GDELT refuses: HTTP 200 with a line of plain text (a term or phrase under three
    characters, parentheses around a single term, ``OR`` outside parentheses). Terms and
    phrases match the title and the article's ``body`` (GDELT searches the full text);
    ``-term`` excludes; ``sourcelang:``, ``sourcecountry:``, ``domain:`` (contains) and
    ``domainis:`` (equals) filter. Failures are GDELT's too: a 429 and a 500 answer plain
    text; :meth:`refuse` scripts 200 plain-text refusals.
    """

    data_paths = (GDELT_PATH,)

    def __init__(self) -> None:
        super().__init__()
        self._articles: list[dict[str, Any]] = []
        self._refusals: deque[str] = deque()

    @property
    def api_url(self) -> str:
        """The ``api_url`` to configure: ``http://127.0.0.1:PORT/api/v2/doc/doc``."""
        return f"{self.url}{GDELT_PATH}"

    def add(
        self,
        title: str,
        *,
        seen_at: When,
        url: str | None = None,
        body: str = "",
        domain: str = "example.com",
        language: str = "English",
        country: str = "United States",
    ) -> dict[str, Any]:
        """Add an article seen at ``seen_at`` (GDELT's ``seendate``, whole seconds);
        ``body`` is searched but never served. Returns the article as served."""
        moment = datetime.fromtimestamp(int(_epoch(seen_at)), UTC)
        with self._lock:
            number = len(self._articles) + 1
        article = {
            "url": url or f"https://{domain}/news/{number}",
            "url_mobile": "",
            "title": title,
            "seendate": moment.strftime(GDELT_SEENDATE),
            "socialimage": f"https://{domain}/img/{number}.jpg",
            "domain": domain,
            "language": language,
            "sourcecountry": country,
        }
        with self._lock:
            self._articles.append({**article, "_body": body, "_at": moment})
        return article

    def refuse(self, text: str, *, times: int = 1) -> None:
        """Answer the next ``times`` searches with HTTP 200 and ``text`` (GDELT's way)."""
        with self._lock:
            self._refusals.extend([text] * times)

    def _error(self, status: int, message: str) -> _Answer:
        text = GDELT_RATE_TEXT if status == 429 else message
        return _Answer(status, (text + "\n").encode(), content_type="text/html; charset=utf-8")

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> _Answer:
        if method != "GET" or path.rstrip("/") != GDELT_PATH:
            return self._error(404, "Not Found")
        if self._refusals:
            return self._error(200, self._refusals.popleft())
        if params.get("mode", ["artlist"])[0].lower() != "artlist":
            return self._error(200, "Invalid mode.")
        try:
            clauses = self._parse(params.get("query", [""])[0])
            start = self._time(params, "startdatetime", datetime.min.replace(tzinfo=UTC))
            end = self._time(params, "enddatetime", datetime.now(UTC))
        except ValueError as exc:
            return self._error(200, str(exc))
        limit = max(1, min(_int_param(params, "maxrecords") or 75, 250))
        found = [
            a
            for a in self._articles
            if start <= a["_at"] <= end and all(self._holds(c, a) for c in clauses)
        ]
        ascending = params.get("sort", ["datedesc"])[0].lower() == "dateasc"
        found.sort(key=lambda a: (a["_at"], a["url"]), reverse=not ascending)
        if not found:
            return _json(200, {})
        served = [{k: v for k, v in a.items() if not k.startswith("_")} for a in found[:limit]]
        return _json(200, {"articles": served})

    @staticmethod
    def _time(params: Mapping[str, list[str]], name: str, default: datetime) -> datetime:
        value = params.get(name, [""])[0].strip()
        if not value:
            return default
        try:
            return datetime.strptime(value, GDELT_PARAM_TIME).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"Invalid {name.upper()} specified.") from None

    @staticmethod
    def _term(token: str) -> tuple[bool, str]:
        negated = token.startswith("-")
        text = token[1:] if negated else token
        text = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
        if len(text.strip()) < 3:
            raise ValueError(GDELT_SHORT_TEXT)
        return negated, text.strip().lower()

    def _parse(self, query: str) -> list[tuple[str, Any]]:
        """Clauses, all of which must hold: ``("any", [terms])``, ``("not", term)``,
        ``(operator, value)``; raises ValueError with GDELT's text."""
        tokens = _GDELT_TOKEN.findall(query)
        clauses: list[tuple[str, Any]] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token == "(":
                close = tokens.index(")", i) if ")" in tokens[i:] else -1
                if close < 0:
                    raise ValueError("Your search contained an unmatched parenthesis.")
                inner = tokens[i + 1 : close]
                terms = inner[::2]
                if len(terms) < 2 or any(t.upper() != "OR" for t in inner[1::2]):
                    raise ValueError(GDELT_PARENS_TEXT)
                clauses.append(("any", [self._term(t)[1] for t in terms]))
                i = close + 1
                continue
            if token.upper() == "OR":
                raise ValueError(GDELT_OR_TEXT)
            key, colon, value = token.partition(":")
            if colon and key.lower() in ("sourcelang", "sourcecountry", "domain", "domainis"):
                clauses.append((key.lower(), value.strip('"').lower()))
            else:
                negated, term = self._term(token)
                clauses.append(("not", term) if negated else ("any", [term]))
            i += 1
        if not clauses:
            raise ValueError("Your search contained no search terms.")
        return clauses

    @staticmethod
    def _holds(clause: tuple[str, Any], article: Mapping[str, Any]) -> bool:
        kind, value = clause
        text = f"{article['title']} {article['_body']}".lower()
        if kind == "any":
            return any(term in text for term in value)
        if kind == "not":
            return value not in text
        if kind == "sourcelang":
            return bool(article["language"].lower() == value)
        if kind == "sourcecountry":
            return bool(article["sourcecountry"].replace(" ", "").lower() == value)
        if kind == "domain":
            return value in article["domain"]
        return bool(article["domain"] == value)
