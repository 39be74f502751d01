"""X/Twitter collector: API v2 recent search per brand and mentions timelines, through tweepy.

tweepy's ``Client`` hard-codes ``https://api.twitter.com``, passes no timeout and caps
nothing, so a :class:`~listener.collectors.requests_http.GuardedAdapter` is mounted on
the client's own ``session``: it imposes ``timeout`` and ``max_bytes`` and sends the
requests to ``api_url`` when that is not the real API (a gateway, or a loopback fake in
tests). ``wait_on_rate_limit`` stays off: with it, a 429 without ``x-rate-limit-reset``
makes tweepy retry at once, recursively, with no sleep. A 429 becomes
:class:`~listener.errors.RateLimited` and the pipeline backs off.

The client returns plain dicts (``return_type=dict``): tweepy's ``Tweet`` model is never
built, so pages recorded before September 2022 (without ``edit_history_tweet_ids``)
cause no ``RuntimeWarning``, and no process-wide warning filter has to be changed from
a worker thread (``warnings.catch_warnings`` is not thread-safe).

Cursor shape (JSON)::

    {"queries": {"<query>": {"since_id": "<newest tweet id>"}
                          | {"start_time": "<ISO time>"}},
     "mentions": {"<username>": {"user_id": "<id>", "since_id": "<newest tweet id>"}}}

A query or user without ``since_id`` is polled with ``start_time``: ``now - lookback``
the first time (a *backfill*, when it returns anything), or the ``start_time`` stored by
an earlier poll that found nothing (not a backfill). ``since_id`` advances only over
tweets actually returned (``meta.newest_id``), and only when every page of that query
was fetched without error. When ``page_limit`` pages did not reach the end, the older
rest is skipped (``notes["truncated"]`` counts such queries): the newest tweets matter
most for alerting.

Errors: a 429, a 401, a 5xx, a timeout or a refused connection stops the poll at once
(no further requests). A failure confined to one query or user (a rejected query, an
unknown user, an unparseable or oversized page) is reported in
:attr:`PollResult.errors` beside the others' mentions. When nothing succeeded, the
first error is raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
import tweepy  # type: ignore[import-untyped]

from listener.clock import as_utc
from listener.collectors.base import Cursor, PollResult
from listener.collectors.fetch import DEFAULT_USER_AGENT, parse_retry_after
from listener.collectors.queries import brands_for, quoted
from listener.collectors.requests_http import ResponseTooLarge, guard_session
from listener.collectors.text import as_count
from listener.config.schema import BrandConfig, TwitterSourceConfig
from listener.errors import (
    CollectorError,
    MalformedResponse,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from listener.model import Author, Engagement, Mention

REAL_API = "https://api.twitter.com"
API_HOSTS = ("api.twitter.com", "api.x.com")
EXPANSIONS = ["author_id", "referenced_tweets.id", "referenced_tweets.id.author_id"]
TWEET_FIELDS = [
    "created_at",
    "lang",
    "public_metrics",
    "referenced_tweets",
    "author_id",
    "conversation_id",
    "entities",
]
USER_FIELDS = ["username", "name", "public_metrics", "verified"]
SEARCH_WINDOW = timedelta(days=7) - timedelta(minutes=1)
"""Recent search reaches back seven days; a ``start_time`` before that is rejected."""
MIN_AGE = timedelta(seconds=10)
"""The API rejects a ``start_time`` less than 10 seconds before the request."""
UNDETERMINED_LANGS = frozenset({"und", "zxx", "qam", "qct", "qht", "qme", "qst", "art"})
"""X's ``lang`` values that name no language (media only, hashtags only, ...)."""

_HANDLE = re.compile(r"^@?(\w{1,50})$")
_HASHTAG = re.compile(r"^#?(\w+)$")
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_DIGITS = re.compile(r"^[0-9]{1,20}$")


# --------------------------------------------------------------------------- queries


def _term(text: str) -> str:
    """An alias or keyword as a search term: quoted when needed, and ``OR`` quoted."""
    term = quoted(text)
    return f'"{term}"' if term == "OR" else term


def _brand_terms(brand: BrandConfig) -> list[str]:
    terms: list[str] = [_term(t) for t in [*brand.search_terms, *brand.keywords]]
    for handle in brand.handles:
        match = _HANDLE.match(handle.strip())
        if match is None:
            raise ValueError(f"brand {brand.name!r}: {handle!r} is not a valid X handle")
        terms.append("@" + match.group(1))
    for tag in brand.hashtags:
        match = _HASHTAG.match(tag.strip())
        if match is None:
            raise ValueError(f"brand {brand.name!r}: {tag!r} is not a valid hashtag")
        terms.append("#" + match.group(1))
    unique: dict[str, str] = {}
    for term in terms:
        if term and term not in ('""', "-"):
            unique.setdefault(term.casefold(), term)  # X search is case-insensitive
    return list(unique.values())


def _filters(brand: BrandConfig, *, exclude_retweets: bool, languages: Sequence[str]) -> list[str]:
    parts: list[str] = []
    for exclusion in dict.fromkeys(brand.exclusions):
        term = _term(exclusion)
        if term and term != '""':
            parts.append("-" + term)
    if exclude_retweets:
        parts.append("-is:retweet")
    langs: list[str] = []
    for lang in languages:
        code = lang.strip().lower()
        if not _LANG.match(code):
            raise ValueError(f"{lang!r} is not a language code")
        if code not in langs:
            langs.append(code)
    if len(langs) == 1:
        parts.append(f"lang:{langs[0]}")
    elif langs:
        parts.append("(" + " OR ".join(f"lang:{code}" for code in langs) + ")")
    return parts


def build_queries(
    brand: BrandConfig,
    *,
    max_length: int,
    exclude_retweets: bool = False,
    languages: Sequence[str] = (),
) -> list[str]:
    """The X search queries for ``brand`` (pure, deterministic).

    The brand's aliases (default: its name) and keywords, then its handles (``@x``) and
    hashtags (``#x``) are OR'ed in parentheses; each exclusion follows as ``-word`` or
    ``-"a phrase"``, then ``-is:retweet`` when asked and ``lang:xx`` (OR'ed) when given.
    A query longer than ``max_length`` characters is split into several, each with the
    same exclusions and filters. Raises ``ValueError`` naming a term that cannot fit
    into any query, or an invalid handle, hashtag or language code.
    """
    terms = _brand_terms(brand)
    suffix = " ".join(_filters(brand, exclude_retweets=exclude_retweets, languages=languages))

    def render(chunk: Sequence[str]) -> str:
        core = chunk[0] if len(chunk) == 1 else "(" + " OR ".join(chunk) + ")"
        return f"{core} {suffix}" if suffix else core

    queries: list[str] = []
    chunk: list[str] = []
    for term in terms:
        if len(render([term])) > max_length:
            raise ValueError(
                f"brand {brand.name!r}: the term {term} cannot fit into a query of at most "
                f"{max_length} characters (exclusions and filters take {len(suffix)})"
            )
        if chunk and len(render([*chunk, term])) > max_length:
            queries.append(render(chunk))
            chunk = []
        chunk.append(term)
    if chunk:
        queries.append(render(chunk))
    return queries


# --------------------------------------------------------------------------- normalising


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _tweet_id(value: Any) -> str | None:
    return value if isinstance(value, str) and _DIGITS.match(value) else None


def _newer(a: str | None, b: str | None) -> str | None:
    """The larger of two tweet ids (ids grow with time)."""
    if a is None or b is None:
        return a or b
    return a if int(a) >= int(b) else b


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _iso(when: datetime) -> str:
    return as_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def _language(value: Any) -> str | None:
    lang = _str(value)
    if lang is None:
        return None
    lang = lang.lower()
    return None if lang in UNDETERMINED_LANGS else lang


@dataclass(frozen=True, slots=True)
class _Page:
    """One API page as the collector reads it."""

    tweets: list[dict[str, Any]]
    users: dict[str, dict[str, Any]]
    included: dict[str, dict[str, Any]]
    newest_id: str | None
    next_token: str | None

    @classmethod
    def parse(cls, body: Any) -> _Page:
        if not isinstance(body, dict):
            raise MalformedResponse(f"expected a JSON object, got {type(body).__name__}")
        includes = _dict(body.get("includes"))
        tweets = [
            t for t in _list(body.get("data")) if isinstance(t, dict) and _tweet_id(t.get("id"))
        ]
        users = {
            u["id"]: u
            for u in _list(includes.get("users"))
            if isinstance(u, dict) and _str(u.get("id"))
        }
        included = {
            t["id"]: t
            for t in _list(includes.get("tweets"))
            if isinstance(t, dict) and _str(t.get("id"))
        }
        meta = _dict(body.get("meta"))
        newest = _tweet_id(meta.get("newest_id"))
        for tweet in tweets:
            newest = _newer(newest, tweet["id"])
        return cls(tweets, users, included, newest, _str(meta.get("next_token")))


def tweet_mention(
    source: str,
    tweet: Mapping[str, Any],
    users: Mapping[str, Mapping[str, Any]],
    included: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> Mention:
    """One v2 tweet object (with the page's ``includes``) as a :class:`Mention` (pure).

    Authors are joined from ``includes.users``. A retweet sets ``is_repost`` and
    ``reposted_id``; when X truncated its text, the original's full text is used
    (``RT @author: ...``). Quotes and replies are original voices. ``created_at``
    falls back to ``now`` when missing.
    """
    tweet_id = str(tweet["id"])
    user = users.get(str(tweet.get("author_id")), {})
    handle = _str(user.get("username"))
    metrics = _dict(tweet.get("public_metrics"))
    text = str(tweet.get("text") or "")
    reposted_id: str | None = None
    for ref in _list(tweet.get("referenced_tweets")):
        if isinstance(ref, dict) and ref.get("type") == "retweeted" and _str(ref.get("id")):
            reposted_id = str(ref["id"])
            break
    if reposted_id is not None and text.endswith("…"):
        original = included.get(reposted_id, {})
        original_author = _str(users.get(str(original.get("author_id")), {}).get("username"))
        original_text = _str(original.get("text"))
        if original_author and original_text:
            text = f"RT @{original_author}: {original_text}"
    followers = as_count(_dict(user.get("public_metrics")).get("followers_count"))
    return Mention(
        source=source,
        id=tweet_id,
        text=text,
        created_at=_time(tweet.get("created_at")) or now,
        url=f"https://x.com/{handle or 'i/web'}/status/{tweet_id}",
        author=Author(
            handle=handle,
            display_name=_str(user.get("name")) or handle,
            followers=followers,
        ),
        language=_language(tweet.get("lang")),
        engagement=Engagement(
            likes=as_count(metrics.get("like_count")),
            reposts=as_count(metrics.get("retweet_count")),
            replies=as_count(metrics.get("reply_count")),
            quotes=as_count(metrics.get("quote_count")),
        ),
        is_repost=reposted_id is not None,
        reposted_id=reposted_id,
    )


# --------------------------------------------------------------------------- errors


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name, "").strip()
    try:
        return int(value)
    except ValueError:
        return None


def translate_error(
    exc: Exception, now: datetime, last_status: int | None = None
) -> CollectorError:
    """A tweepy or requests error as a :class:`CollectorError` (``now``: the poll time,
    against which ``x-rate-limit-reset`` becomes ``retry_after`` seconds)."""
    if isinstance(exc, CollectorError):
        return exc
    if isinstance(exc, tweepy.TooManyRequests):
        headers = {str(k).lower(): str(v) for k, v in exc.response.headers.items()}
        retry_after = parse_retry_after(headers, now.timestamp())
        return RateLimited(f"X API rate limit: {exc}", retry_after=retry_after)
    if isinstance(exc, tweepy.TwitterServerError):
        return SourceUnavailable(f"X API server error: {exc}")
    if isinstance(exc, tweepy.HTTPException):
        status = getattr(exc.response, "status_code", None)
        if status == 408:
            return SourceUnavailable(f"X API timeout: {exc}")
        if isinstance(status, int) and 400 <= status < 500:
            return SourceRejected(f"X API rejected the request: {exc}")
        return SourceUnavailable(f"X API answered {exc}")
    if isinstance(exc, ResponseTooLarge):
        return MalformedResponse(f"X API response too large: {exc}")
    if isinstance(
        exc, requests.exceptions.JSONDecodeError | requests.exceptions.ContentDecodingError
    ):
        return MalformedResponse(f"X API response is not valid JSON ({type(exc).__name__})")
    if isinstance(exc, requests.exceptions.Timeout):
        return SourceUnavailable(f"X API timed out ({type(exc).__name__})")
    if isinstance(exc, requests.exceptions.RequestException):
        return SourceUnavailable(f"X API unreachable: {_short(exc)}")
    if isinstance(exc, ValueError) and last_status == 429:
        # tweepy's int() of an unreadable x-rate-limit-reset header, before it could raise 429
        return RateLimited("X API rate limit (unreadable x-rate-limit-reset)", retry_after=None)
    if isinstance(exc, ValueError | TypeError | KeyError | AttributeError):
        return MalformedResponse(f"X API response has an unexpected shape ({type(exc).__name__})")
    if isinstance(exc, tweepy.TweepyException):
        return SourceUnavailable(f"X API error: {_short(exc)}")
    return SourceUnavailable(f"X API error ({type(exc).__name__}: {_short(exc)})")


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "…" if len(text) > 300 else text) or type(exc).__name__


def _stops_poll(error: CollectorError, exc: Exception) -> bool:
    """Errors that every further request of this poll would hit too (no more requests)."""
    return isinstance(error, RateLimited | SourceUnavailable) or isinstance(
        exc, tweepy.Unauthorized
    )


# --------------------------------------------------------------------------- collector


@dataclass(slots=True)
class _Outcome:
    """What one query or one user's mentions produced."""

    mentions: list[Mention] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    backfill: bool = False
    pages: int = 0
    truncated: bool = False


class TwitterCollector:
    """Polls X API v2 recent search for each brand query and the mentions timeline of
    each ``mentions_of`` user; see the module docstring."""

    name: str

    def __init__(
        self,
        name: str,
        config: TwitterSourceConfig,
        brands: Sequence[BrandConfig] = (),
        *,
        session_hook: Callable[[requests.Session], None] | None = None,
    ) -> None:
        self.name = name
        self._config = config
        queries: list[str] = []
        if config.search:
            for brand in brands_for(config, brands):
                queries.extend(
                    build_queries(
                        brand,
                        max_length=config.max_query_length,
                        exclude_retweets=config.exclude_retweets,
                        languages=config.languages,
                    )
                )
        self.queries: list[str] = list(dict.fromkeys(queries))
        self.usernames: list[str] = list(
            dict.fromkeys(u.strip().lstrip("@") for u in config.mentions_of if u.strip("@ "))
        )
        self._client = tweepy.Client(
            bearer_token=config.bearer_token.get_secret_value(),
            return_type=dict,
            wait_on_rate_limit=False,
        )
        self._client.user_agent = config.user_agent or DEFAULT_USER_AGENT
        session: requests.Session = self._client.session
        base = config.api_url.rstrip("/")
        target = None if base == REAL_API else base
        guard_session(
            session,
            timeout=config.timeout.total_seconds(),
            max_bytes=config.max_bytes,
            hosts=dict.fromkeys(API_HOSTS, target),
        )
        session.hooks["response"].append(self._on_response)
        if session_hook is not None:
            session_hook(session)
        self._session = session
        self._quota: int | None = None
        self._last_status: int | None = None

    # ------------------------------------------------------------------ poll

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult:
        now = as_utc(now)
        stored = _dict(cursor)
        old = {"queries": _dict(stored.get("queries")), "mentions": _dict(stored.get("mentions"))}
        new: dict[str, dict[str, Any]] = {"queries": {}, "mentions": {}}
        units: list[tuple[str, str, Callable[[dict[str, Any]], _Outcome]]] = [
            *(("queries", q, self._search_unit(q, now)) for q in self.queries),
            *(("mentions", u, self._mentions_unit(u, now)) for u in self.usernames),
        ]
        self._quota = self._last_status = None
        mentions: list[Mention] = []
        errors: list[CollectorError] = []
        stop: CollectorError | None = None
        backfill = False
        succeeded = skipped = pages = truncated = 0
        for kind, key, run in units:
            state = dict(_dict(old[kind].get(key)))
            if stop is not None:
                skipped += 1
            else:
                try:
                    outcome = run(state)
                except Exception as exc:
                    error = translate_error(exc, now, self._last_status)
                    if error is not exc:
                        error.__cause__ = exc
                    if _stops_poll(error, exc):
                        stop = error
                    else:
                        errors.append(error)
                else:
                    succeeded += 1
                    state = outcome.state
                    mentions.extend(outcome.mentions)
                    backfill = backfill or outcome.backfill
                    pages += outcome.pages
                    truncated += outcome.truncated
            if state:  # a failed or skipped unit keeps its old state (and a resolved user id)
                new[kind][key] = state
        if stop is not None:
            if not succeeded:
                raise stop
            errors.insert(0, stop)
        if errors and not succeeded:
            raise errors[0]
        unique = list({m.id: m for m in reversed(mentions)}.values())[::-1]
        notes = {
            "queries": len(self.queries),
            "users": len(self.usernames),
            "pages": pages,
            "truncated": truncated,
            "failed": len(errors),
            "skipped": skipped,
        }
        return PollResult(
            mentions=unique,
            cursor=dict(new),
            errors=errors,
            notes=notes,
            backfill=backfill,
            quota_remaining=self._quota,
        )

    def _search_unit(self, query: str, now: datetime) -> Callable[[dict[str, Any]], _Outcome]:
        def run(state: dict[str, Any]) -> _Outcome:
            return self._collect(
                self._client.search_recent_tweets, (query,), "next_token", state, now
            )

        return run

    def _mentions_unit(self, username: str, now: datetime) -> Callable[[dict[str, Any]], _Outcome]:
        def run(state: dict[str, Any]) -> _Outcome:
            user_id = _tweet_id(state.get("user_id"))
            if user_id is None:
                user_id = self._resolve(username)
                state.clear()  # a new user id: the old since_id belongs to someone else
                state["user_id"] = user_id
            outcome = self._collect(
                self._client.get_users_mentions, (user_id,), "pagination_token", state, now
            )
            outcome.state = {"user_id": user_id, **outcome.state}
            return outcome

        return run

    def _resolve(self, username: str) -> str:
        body = self._client.get_user(username=username)
        user_id = _tweet_id(_dict(_dict(body).get("data")).get("id"))
        if user_id is None:
            problems = [_str(_dict(e).get("detail")) for e in _list(_dict(body).get("errors"))]
            detail = next((p for p in problems if p), "no such user")
            raise SourceRejected(f"X user @{username} cannot be resolved: {detail}")
        return user_id

    def _collect(
        self,
        method: Callable[..., Any],
        args: tuple[str, ...],
        token_param: str,
        state: Mapping[str, Any],
        now: datetime,
    ) -> _Outcome:
        """Fetch up to ``page_limit`` pages of one query or timeline, following
        ``meta.next_token`` (sent as ``token_param``); the mentions and new state."""
        config = self._config
        params: dict[str, Any] = {
            "max_results": config.max_results,
            "expansions": EXPANSIONS,
            "tweet_fields": TWEET_FIELDS,
            "user_fields": USER_FIELDS,
        }
        since_id = _tweet_id(state.get("since_id"))
        stored_start = _time(state.get("start_time"))
        first = since_id is None and stored_start is None
        start_time: datetime | None = None
        if since_id is not None:
            params["since_id"] = since_id
        else:
            wanted = stored_start or now - config.lookback
            start_time = min(max(wanted, now - SEARCH_WINDOW), now - MIN_AGE)
            params["start_time"] = start_time
        outcome = _Outcome()
        newest = since_id
        token: str | None = None
        for _ in range(config.page_limit):
            body = method(*args, **params, **({token_param: token} if token else {}))
            page = _Page.parse(body)
            outcome.pages += 1
            for tweet in page.tweets:
                outcome.mentions.append(
                    tweet_mention(self.name, tweet, page.users, page.included, now)
                )
            newest = _newer(newest, page.newest_id)
            token = page.next_token
            if token is None:
                break
        outcome.truncated = token is not None
        outcome.backfill = first and bool(outcome.mentions)
        if newest is not None:
            outcome.state = {"since_id": newest}
        elif start_time is not None:
            outcome.state = {"start_time": _iso(start_time)}
        return outcome

    # ------------------------------------------------------------------ plumbing

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Session hook: remember the status and the smallest ``x-rate-limit-remaining``."""
        self._last_status = response.status_code
        remaining = _header_int(response.headers, "x-rate-limit-remaining")
        if remaining is not None:
            self._quota = remaining if self._quota is None else min(self._quota, remaining)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()
