"""Bluesky collector: post search (``app.bsky.feed.searchPosts``) through the atproto SDK.

Without credentials it searches the public AppView (``service_url``, default
``https://public.api.bsky.app``), which at times refuses unauthenticated search (403:
the error says to log in) or its ``cursor`` (the first page is kept). With ``handle`` and
``app_password`` it logs in once (``com.atproto.server.createSession`` against
``service_url``, or :data:`LOGIN_SERVICE` when that is a public AppView), after which
atproto sends every call to the account's PDS named in the session's DID document; the
session is kept and refreshed by atproto between polls, and dropped (logged in again
next poll) when the service rejects it.

Each brand is searched once per term (aliases, else the name, plus keywords; phrases
quoted), newest first (``sort=latest``) and only since the brand's cursor: one OR-query
is not something the search service documents. At most ``page_limit`` pages of
:data:`PAGE_SIZE` posts per query per poll.

Cursor shape (JSON)::

    {"brands": {"<brand name>": {"since": "<ISO datetime>", "seen": ["at://…", ...]}}}

``since`` is the newest ``sortAt`` seen (the earlier of a post's ``createdAt`` and
``indexedAt``, which is what ``since`` filters on, inclusively) and ``seen`` the post URIs
at exactly that instant, which the next poll drops. A brand without a cursor reaches back
``lookback`` and the poll is a backfill.

Every request has the source's connect/read ``timeout``, an overall deadline of three
times that, and the ``max_bytes`` cap. HTTP errors are translated as in
:class:`~listener.collectors.fetch.HttpFetcher`; 429 and unavailability fail the poll,
a rejected or malformed answer to one brand's query is a partial failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn, Self

import httpx
from atproto import Client  # type: ignore[import-untyped]
from atproto_client.exceptions import (  # type: ignore[import-untyped]
    BadRequestError,
    InvokeTimeoutError,
    LoginRequiredError,
    ModelError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.request import Request  # type: ignore[import-untyped]
from atproto_core.exceptions import AtProtocolError  # type: ignore[import-untyped]

from listener.collectors.base import Cursor, PollResult
from listener.collectors.fetch import (
    DEFAULT_USER_AGENT,
    parse_retry_after,
    redact_url,
    send_following,
)
from listener.collectors.queries import brands_for, quoted
from listener.collectors.text import as_count, cap_text
from listener.config.schema import BlueskySourceConfig, BrandConfig
from listener.errors import (
    CollectorError,
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.model import Author, Engagement, Mention

PAGE_SIZE = 100
"""Posts asked for per page (the most ``searchPosts`` allows)."""

POST_URL = "https://bsky.app/profile/{actor}/post/{rkey}"

PUBLIC_APPVIEWS = frozenset({"https://public.api.bsky.app", "https://api.bsky.app"})
LOGIN_SERVICE = "https://bsky.social"
"""Where to log in when ``service_url`` is Bluesky's public AppView (the default)."""

MAX_SEEN = 1000
"""At most this many URIs are kept for the newest instant."""

_SESSION_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthMissing", "AuthRequired"})


# ------------------------------------------------------------------ transport


class _Session(Request):  # type: ignore[misc]
    """atproto's synchronous ``Request`` with our limits: every response body is read as
    a stream under ``max_bytes`` and an overall deadline, and HTTP failures become
    :mod:`listener.errors` types here (atproto sees only successful answers).
    ``quota`` is the smallest ``ratelimit-remaining`` seen since :meth:`reset_quota`."""

    def __init__(self, *, max_bytes: int, total_timeout: float, **kwargs: Any) -> None:
        self._max_bytes = max_bytes
        self._total_timeout = total_timeout
        self.quota: int | None = None
        super().__init__(**kwargs)

    def reset_quota(self) -> None:
        self.quota = None

    def _new_instance(self) -> Self:
        return type(self)(
            max_bytes=self._max_bytes, total_timeout=self._total_timeout, **self._client_kwargs
        )

    def _send_request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        where = redact_url(url)
        headers = self.get_headers(kwargs.pop("headers", None))
        deadline = time.monotonic() + self._total_timeout
        try:
            request = self._client.build_request(method, url, headers=headers, **kwargs)
            response = send_following(self._client, request)
            try:
                body = self._read(response, where, deadline)
            finally:
                response.close()
        except CollectorError:
            raise
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(f"{where}: timed out ({type(exc).__name__})") from exc
        except httpx.TooManyRedirects as exc:
            raise SourceUnavailable(f"{where}: too many redirects") from exc
        except httpx.DecodingError as exc:
            raise MalformedResponse(f"{where}: could not decode the body") from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise SourceRejected(f"{where}: unusable URL ({type(exc).__name__})") from exc
        except (httpx.HTTPError, httpx.StreamError, OSError) as exc:
            raise SourceUnavailable(f"{where}: {type(exc).__name__}") from exc
        lowered = {k.lower(): v for k, v in response.headers.items()}
        remaining = lowered.get("ratelimit-remaining", "").strip()
        if remaining.isdigit():
            self.quota = min(int(remaining), self.quota if self.quota is not None else 1 << 62)
        _raise_for_status(response.status_code, lowered, body, where)
        kept = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=kept, content=body, request=request)

    def _read(self, response: httpx.Response, where: str, deadline: float) -> bytes:
        cap = self._max_bytes
        declared = response.headers.get("content-length", "")
        if (
            declared.isdigit()
            and int(declared) > cap
            and "content-encoding" not in response.headers
        ):
            raise MalformedResponse(f"{where}: body of {declared} bytes exceeds {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap or response.num_bytes_downloaded > cap:
                raise MalformedResponse(f"{where}: body exceeds {cap} bytes")
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise SourceUnavailable(
                    f"{where}: body not received within {self._total_timeout:g}s"
                )
        return b"".join(chunks)


def _xrpc_error(body: bytes) -> str:
    """``Error: message`` from an XRPC error body, or ``""``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(data, Mapping):
        return ""
    parts = [str(data.get(k))[:200] for k in ("error", "message") if data.get(k)]
    return ": ".join(parts)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: ``Retry-After``, else Bluesky's ``ratelimit-reset`` (epoch seconds)."""
    now = time.time()
    seconds = parse_retry_after(headers, now)
    if seconds is not None:
        return seconds
    try:
        reset = float(headers.get("ratelimit-reset", ""))
    except ValueError:
        return None
    return max(0.0, reset - now) if reset == reset and reset != float("inf") else None


class _Rejected(SourceRejected):
    """A 4xx; ``error`` is the XRPC error name (``ExpiredToken``, ``InvalidRequest`` …)."""

    def __init__(self, message: str, status: int, error: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error

    @property
    def session_problem(self) -> bool:
        """The credentials or the session were refused: log in again next time."""
        return self.status in (401, 403) or self.error in _SESSION_ERRORS


def _raise_for_status(status: int, headers: Mapping[str, str], body: bytes, where: str) -> None:
    if 200 <= status < 300:
        return
    detail = _xrpc_error(body)
    suffix = f" ({detail})" if detail else ""
    if status == 429:
        retry_after = _retry_after(headers)
        hint = f", retry after {retry_after:g}s" if retry_after is not None else ""
        raise RateLimited(f"{where}: HTTP 429 rate limited{hint}{suffix}", retry_after)
    if status == 408 or status >= 500:
        raise SourceUnavailable(f"{where}: HTTP {status}{suffix}")
    if 400 <= status < 500:
        raise _Rejected(f"{where}: HTTP {status}{suffix}", status, detail.partition(":")[0])
    raise SourceUnavailable(f"{where}: unexpected HTTP {status}")


def translate(exc: Exception, where: str) -> CollectorError | None:
    """An atproto (or JSON/model) exception as a :mod:`listener.errors` type; ``None``
    for anything else (a bug, which must not pass for an unavailable source)."""
    if isinstance(exc, CollectorError):
        return exc
    if isinstance(exc, RateLimitExceededError):
        headers = exc.response.headers if exc.response is not None else {}
        retry_after = _retry_after({str(k).lower(): str(v) for k, v in headers.items()})
        return RateLimited(f"{where}: rate limited", retry_after)
    if isinstance(exc, InvokeTimeoutError):
        return SourceUnavailable(f"{where}: timed out")
    if isinstance(exc, NetworkError):
        return SourceUnavailable(f"{where}: network error ({exc})")
    if isinstance(exc, UnauthorizedError | BadRequestError | LoginRequiredError):
        return SourceRejected(f"{where}: {type(exc).__name__} ({exc})")
    if isinstance(exc, RequestErrorBase):
        status = exc.response.status_code if exc.response is not None else None
        if status is not None and 400 <= status < 500 and status != 408:
            return SourceRejected(f"{where}: HTTP {status} ({exc})")
        return SourceUnavailable(f"{where}: {type(exc).__name__} ({exc})")
    if isinstance(exc, ModelError | ValueError):
        return MalformedResponse(f"{where}: unexpected answer ({type(exc).__name__})")
    if isinstance(exc, AtProtocolError):
        return MalformedResponse(f"{where}: {type(exc).__name__}")
    return None


def _reraise(exc: Exception, where: str) -> NoReturn:
    """Raise ``exc`` translated (or as it is, when it is ours or not a library error)."""
    error = translate(exc, where)
    if error is None or error is exc:
        raise exc
    raise error from exc


# ------------------------------------------------------------------ normalising


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    """Microsecond ISO form (cursors)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_ms(moment: datetime) -> str:
    """Millisecond ISO form, rounded down (the ``since`` parameter)."""
    return _iso(moment)[:-4] + "Z"


def _field(obj: Any, name: str, camel: str) -> Any:
    """``obj.name`` of an atproto model, or ``obj[camel]`` of a raw dict."""
    if isinstance(obj, Mapping):
        return obj.get(camel, obj.get(name))
    return getattr(obj, name, None)


def sort_time(post: Any) -> datetime | None:
    """The post's ``sortAt``: the earlier of ``createdAt`` and ``indexedAt``."""
    record = _field(post, "record", "record")
    times = [
        t
        for t in (
            _parse_time(_field(record, "created_at", "createdAt")),
            _parse_time(_field(post, "indexed_at", "indexedAt")),
        )
        if t is not None
    ]
    return min(times) if times else None


def post_mention(source: str, post: Any) -> Mention | None:
    """A mention from one ``postView`` (atproto model or raw JSON dict); ``None`` for a
    post without a URI or any usable time."""
    uri = _field(post, "uri", "uri")
    at = sort_time(post)
    if not isinstance(uri, str) or not uri.startswith("at://") or at is None:
        return None
    record = _field(post, "record", "record")
    author = _field(post, "author", "author")
    text = _field(record, "text", "text")
    text = text.strip() if isinstance(text, str) else ""
    text = cap_text(text)
    handle = _field(author, "handle", "handle")
    handle = handle if isinstance(handle, str) and handle else None
    did = uri[len("at://") :].split("/", 1)[0]
    actor = handle if handle and handle != "handle.invalid" else did
    rkey = uri.rstrip("/").rsplit("/", 1)[-1]
    display = _field(author, "display_name", "displayName")
    langs = _field(record, "langs", "langs")
    language = langs[0].lower() if isinstance(langs, list) and langs and langs[0] else None
    return Mention(
        source=source,
        id=uri,
        text=text,
        created_at=at,
        url=POST_URL.format(actor=actor, rkey=rkey),
        author=Author(
            handle=handle,
            display_name=display if isinstance(display, str) and display else None,
        ),
        language=language if isinstance(language, str) else None,
        engagement=Engagement(
            likes=as_count(_field(post, "like_count", "likeCount")),
            reposts=as_count(_field(post, "repost_count", "repostCount")),
            replies=as_count(_field(post, "reply_count", "replyCount")),
            quotes=as_count(_field(post, "quote_count", "quoteCount")),
        ),
    )


def search_queries(brand: BrandConfig) -> list[str]:
    """The brand's search queries: one per alias (or name) and keyword, phrases quoted."""
    terms = [t.replace('"', "").strip() for t in (*brand.search_terms, *brand.keywords)]
    return list(dict.fromkeys(quoted(t) for t in terms if t))


def _state(value: Any) -> tuple[datetime, set[str]] | None:
    if not isinstance(value, Mapping):
        return None
    since = _parse_time(value.get("since"))
    if since is None:
        return None
    seen = value.get("seen")
    ids = {s for s in seen if isinstance(s, str)} if isinstance(seen, list) else set()
    return since, ids


# ------------------------------------------------------------------ collector


class BlueskyCollector:
    """Searches Bluesky for every brand; see the module docstring."""

    name: str

    def __init__(
        self,
        name: str,
        config: BlueskySourceConfig,
        brands: Sequence[BrandConfig] = (),
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._brands = brands_for(config, brands)
        self._transport = transport
        self._where = redact_url(config.service_url)
        password = config.app_password.get_secret_value() if config.app_password else ""
        self._login = (config.handle, password) if config.handle and password else None
        self._client: Any = None
        self._session: _Session | None = None

    def _connect(self) -> tuple[Any, _Session]:
        """The atproto client, logged in where credentials are configured."""
        if self._client is not None and self._session is not None:
            return self._client, self._session
        timeout = self._config.timeout.total_seconds()
        kwargs: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout),
            "headers": {"Accept-Encoding": "gzip, deflate"},
        }
        if self._transport is not None:
            kwargs["transport"] = self._transport
        session = _Session(max_bytes=self._config.max_bytes, total_timeout=3 * timeout, **kwargs)
        session.add_additional_header("User-Agent", self._config.user_agent or DEFAULT_USER_AGENT)
        base = self._config.service_url.rstrip("/")
        if self._login is not None and base in PUBLIC_APPVIEWS:
            base = LOGIN_SERVICE  # an AppView cannot log anyone in
        client = Client(base_url=base, request=session)
        if self._login is not None:
            handle, password = self._login
            try:
                client.login(handle, password, fetch_bsky_profile=False)
            except Exception as exc:
                session.close()
                _reraise(exc, f"{self._where}: login as {handle}")
        self._client, self._session = client, session
        return client, session

    def _drop_session(self) -> None:
        if self._session is not None:
            self._session.close()
        self._client = self._session = None

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        stored = (cursor or {}).get("brands")
        previous: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
        floor = now.astimezone(UTC) - self._config.lookback
        client, session = self._connect()
        session.reset_quota()
        states: dict[str, dict[str, Any]] = {}
        mentions: dict[str, Mention] = {}
        errors: list[CollectorError] = []
        backfill = False
        queries = requests = truncated = 0
        for brand in self._brands:
            state = _state(previous.get(brand.name))
            if state is None:
                backfill = True
                since, seen = floor, set[str]()
            else:
                since, seen = state
            posts: list[Any] = []
            try:
                for query in search_queries(brand):
                    queries += 1
                    found, pages, complete = self._search(client, query, since)
                    requests += pages
                    truncated += not complete
                    posts.extend(found)
            except (RateLimited, SourceUnavailable):
                raise
            except CollectorError as exc:
                if isinstance(exc, _Rejected) and exc.session_problem:
                    self._drop_session()
                    raise
                errors.append(exc)
                if isinstance(previous.get(brand.name), Mapping):
                    states[brand.name] = dict(previous[brand.name])
                continue
            newest, newest_ids = since, set(seen)
            for post in posts:
                mention = post_mention(self.name, post)
                if mention is None or mention.id in seen or mention.created_at < since:
                    continue
                mentions.setdefault(mention.id, mention)
                if mention.created_at > newest:
                    newest, newest_ids = mention.created_at, {mention.id}
                elif mention.created_at == newest:
                    newest_ids.add(mention.id)
            states[brand.name] = {"since": _iso(newest), "seen": sorted(newest_ids)[-MAX_SEEN:]}
        if errors and len(errors) == len(self._brands):
            raise errors[0]
        ordered = sorted(mentions.values(), key=lambda m: m.created_at, reverse=True)
        return PollResult(
            mentions=ordered,
            cursor={"brands": states},
            errors=errors,
            notes={"queries": queries, "requests": requests, "truncated": truncated},
            backfill=backfill,
            quota_remaining=session.quota,
        )

    def _search(self, client: Any, query: str, since: datetime) -> tuple[list[Any], int, bool]:
        """Posts for ``query`` since ``since``, the pages fetched, and whether the search
        ran to its end (``False`` when ``page_limit`` cut it short)."""
        posts: list[Any] = []
        page_cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {
                "q": query,
                "sort": "latest",
                "since": _iso_ms(since),
                "limit": PAGE_SIZE,
            }
            if page_cursor:
                params["cursor"] = page_cursor
            try:
                response = client.app.bsky.feed.search_posts(params=params)
            except _Rejected as exc:
                if pages and (self._login is None or not exc.session_problem):
                    # a refused continuation (the public AppView refuses `cursor` without
                    # login): keep the pages that came
                    return posts, pages, False
                if self._login is None and exc.session_problem:
                    raise SourceRejected(
                        f"{exc} (the service refuses unauthenticated search: "
                        "set handle and app_password)"
                    ) from exc
                raise
            except Exception as exc:
                _reraise(exc, f"{self._where}: searchPosts")
            pages += 1
            found = list(getattr(response, "posts", None) or [])
            posts.extend(found)
            page_cursor = getattr(response, "cursor", None)
            if not found or not page_cursor:
                return posts, pages, True
            if pages >= self._config.page_limit:
                return posts, pages, False

    def close(self) -> None:
        """Close the HTTP client."""
        self._drop_session()
