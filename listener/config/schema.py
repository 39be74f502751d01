"""The rules.yaml schema: strict, frozen pydantic models with defaults in the models.

Every block that has variants carries a ``type`` tag; the tagged unions below *are*
the registries of sources, sinks and conditions. Unknown keys and unknown types are
rejected (the loader turns pydantic's errors into one clear line each).
Runtime objects are built from these by the stage that owns them
(``listener.collectors``, ``listener.sinks``, ``listener.rules``); config is never mutated.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from listener.config.duration import Duration

Name = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
PositiveDuration = Annotated[Duration, Field(gt=timedelta(0))]
NonNegativeDuration = Annotated[Duration, Field(ge=timedelta(0))]


class Strict(BaseModel):
    """Base of every config block: unknown keys rejected, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- brands


class BrandConfig(Strict):
    """A brand to watch. A mention matches when any alias, handle, hashtag or keyword
    occurs in it (whole words, case- and Unicode-insensitive) and no exclusion does."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    aliases: list[Annotated[str, Field(min_length=1)]] = []
    handles: list[Annotated[str, Field(min_length=1)]] = []
    hashtags: list[Annotated[str, Field(min_length=1)]] = []
    keywords: list[Annotated[str, Field(min_length=1)]] = []
    exclusions: list[Annotated[str, Field(min_length=1)]] = []

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


HttpUrl = Annotated[str, Field(pattern=r"^https?://")]


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
    bearer_token: SecretStr
    search: bool = True
    mentions_of: list[Annotated[str, Field(min_length=1)]] = []
    exclude_retweets: bool = False
    languages: list[Annotated[str, Field(min_length=2, max_length=8)]] = []
    max_query_length: Annotated[int, Field(ge=64, le=4096)] = 512
    max_results: Annotated[int, Field(ge=10, le=100)] = 100
    api_url: HttpUrl = "https://api.twitter.com"
    interval: PositiveDuration = timedelta(minutes=2)


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


class HackerNewsSourceConfig(SourceBase):
    """Hacker News stories and comments through the public Algolia search API."""

    type: Literal["hackernews"]
    kinds: list[Literal["story", "comment"]] = ["story", "comment"]
    api_url: HttpUrl = "https://hn.algolia.com/api/v1"


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


SourceConfig = Annotated[
    RssSourceConfig
    | TwitterSourceConfig
    | RedditSourceConfig
    | HackerNewsSourceConfig
    | MastodonSourceConfig
    | BlueskySourceConfig,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- sinks


class DeliveryConfig(Strict):
    """How the outbox retries a sink: exponential backoff with jitter, up to ``max_age``."""

    initial_backoff: PositiveDuration = timedelta(seconds=1)
    max_backoff: PositiveDuration = timedelta(minutes=5)
    max_age: PositiveDuration = timedelta(hours=24)


class ConsoleSinkConfig(Strict):
    """Print alerts to standard output (text for people, json for pipes)."""

    type: Literal["console"]
    format: Literal["text", "json"] = "text"
    delivery: DeliveryConfig = DeliveryConfig()


class WebhookSinkConfig(Strict):
    """POST each alert as JSON to a URL, with an ``Idempotency-Key`` header."""

    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, SecretStr] = {}
    timeout: PositiveDuration = timedelta(seconds=10)
    delivery: DeliveryConfig = DeliveryConfig()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("the webhook url must start with http:// or https://")
        return value


SinkConfig = Annotated[ConsoleSinkConfig | WebhookSinkConfig, Field(discriminator="type")]


# --------------------------------------------------------------------------- conditions

Metric = Literal["total", "negative"]


class VolumeCondition(Strict):
    """Holds when the mention count in the last ``window`` is at least ``above``."""

    type: Literal["volume"]
    metric: Metric = "negative"
    window: PositiveDuration
    above: Annotated[int, Field(ge=1)]


class SpikeCondition(Strict):
    """Holds when the count in the last ``window`` is ``ratio`` times the baseline rate.

    The baseline is the mean count per ``window`` over the ``baseline`` span just before
    the window, floored at ``min_baseline`` so that a quiet brand does not divide by zero;
    the window must also hold at least ``min_volume`` mentions, so 0 → 1 never fires.
    """

    type: Literal["spike"]
    metric: Metric = "negative"
    window: PositiveDuration
    baseline: PositiveDuration = timedelta(hours=6)
    ratio: Annotated[float, Field(gt=1)] = 3.0
    min_volume: Annotated[int, Field(ge=1)] = 10
    min_baseline: Annotated[float, Field(gt=0)] = 1.0


class NegativeShareCondition(Strict):
    """Holds when at least ``above`` (0–1) of the mentions in ``window`` are negative
    and there are at least ``min_volume`` mentions."""

    type: Literal["negative_share"]
    window: PositiveDuration
    above: Annotated[float, Field(gt=0, le=1)]
    min_volume: Annotated[int, Field(ge=1)] = 20


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
    | AllCondition
    | AnyCondition
    | NotCondition,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- rules


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


class RuleConfig(Strict):
    """A rule: ordered severity levels (lowest first) evaluated per brand."""

    name: Name
    description: str = ""
    brands: list[str] | None = None
    levels: Annotated[dict[Name, LevelConfig], Field(min_length=1)]
    resolve_after: PositiveDuration = timedelta(minutes=30)
    routes: dict[str, list[str]] | None = None

    def route_for(self, level: str, default_routes: dict[str, list[str]]) -> list[str]:
        routes = self.routes if self.routes is not None else default_routes
        if level in routes:
            return routes[level]
        return routes.get("default", [])


# --------------------------------------------------------------------------- top level


class Config(Strict):
    """The whole rules.yaml."""

    version: Literal[1] = 1
    brands: Annotated[list[BrandConfig], Field(min_length=1)]
    sources: dict[Name, SourceConfig] = {}
    rules: list[RuleConfig] = []
    routes: dict[str, list[str]] = {}
    sinks: dict[Name, SinkConfig] = {}
    source_health: SourceHealthConfig = SourceHealthConfig()

    def brand_names(self) -> list[str]:
        return [b.name for b in self.brands]


AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()
LevelConfig.model_rebuild()
